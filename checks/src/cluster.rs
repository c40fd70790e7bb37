//! The `sixfold cluster`, `sixfold node` and `sixfold client` commands: run the runtime of
//! `sixfold-impl` as real processes and talk to it.
//!
//! `cluster` is a supervisor: it writes the layout to `DIR/cluster.json`, starts one
//! `sixfold node` process per member (so any member can be SIGKILLed and restarted on its own),
//! prints the addresses and the exact command that restarts each member, and on Ctrl-C (or
//! SIGTERM) stops them all; with `--trace FILE` it then merges the members' per-process traces
//! into one file that `sixfold replay` checks.

use crate::lincheck::history::{HistoryWriter, OpKind, Outcome, Record, Value as HValue};
use clap::{Args, Subcommand, ValueEnum};
use sixfold_impl::client::{Client, ClientError};
use sixfold_impl::host::{self, NodeSpec, ACTORS, WRITER_ID};
use sixfold_impl::layout::Layout;
use sixfold_model::config::{Config, Mutant, SEGMENTS};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Makes Ctrl-C and SIGTERM set [`STOP`] instead of killing the process, so it can stop cleanly.
fn catch_signals() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// Protocol options every member of a cluster must agree on.
#[derive(Args, Debug, Clone)]
pub struct ProtocolArgs {
    /// Run a deliberately broken protocol variant (see `sixfold mutants`).
    #[arg(long, value_name = "NAME")]
    pub mutant: Option<Mutant>,
    /// Benchmark variant: the writer counts a record durable only once all six segments acked
    /// (write quorum 6 instead of 4).
    #[arg(long)]
    pub wait_all: bool,
}

impl ProtocolArgs {
    /// The configuration the members run.
    pub fn config(&self) -> Config {
        let cfg = Config::new(self.mutant);
        if self.wait_all {
            cfg.wait_all()
        } else {
            cfg
        }
    }
}

/// `sixfold cluster`.
#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// Directory for the layout, every member's files and traces (reused if it exists).
    #[arg(long)]
    pub dir: PathBuf,
    /// First of eight consecutive ports on 127.0.0.1; 0 picks free ports (or reuses the
    /// ports in DIR/cluster.json if present).
    #[arg(long, default_value_t = 0)]
    pub port_base: u16,
    /// Record every step; on shutdown merge the members' traces into this NDJSON file.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Slow these segments down (comma-separated ids) by --slow-ms per message.
    #[arg(long, value_delimiter = ',')]
    pub slow: Vec<usize>,
    /// The delay the --slow segments add to every message they receive.
    #[arg(long, default_value_t = 50)]
    pub slow_ms: u64,
    #[command(flatten)]
    pub protocol: ProtocolArgs,
}

/// The role of a `sixfold node`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A storage node (segment), ids 0..6.
    Storage,
    /// The writer, id 6.
    Writer,
}

/// `sixfold node`.
#[derive(Args, Debug)]
pub struct NodeArgs {
    /// What this member is.
    #[arg(long)]
    pub role: Role,
    /// Its actor id: 0..=5 for storage nodes (AZ = id / 2), 6 for the writer.
    #[arg(long)]
    pub id: usize,
    /// Directory for its files.
    #[arg(long)]
    pub dir: PathBuf,
    /// All seven peer addresses, comma-separated, by actor id (six segments, then the writer).
    #[arg(long, value_delimiter = ',', required = true)]
    pub peers: Vec<SocketAddr>,
    /// The writer's client port.
    #[arg(long)]
    pub client_addr: Option<SocketAddr>,
    /// Record every step of this member to this NDJSON file (appends across restarts).
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Hold every inbound message this long before processing it (a slow node).
    #[arg(long, default_value_t = 0)]
    pub delay_ms: u64,
    #[command(flatten)]
    pub protocol: ProtocolArgs,
}

/// `sixfold client`.
#[derive(Args, Debug)]
pub struct ClientArgs {
    /// The cluster directory (its cluster.json names the writer's client port).
    #[arg(long, conflicts_with = "addr")]
    pub dir: Option<PathBuf>,
    /// The writer's client address.
    #[arg(long)]
    pub addr: Option<SocketAddr>,
    /// Give up on a request after this long (its outcome is then unknown).
    #[arg(long, default_value_t = 5000)]
    pub timeout_ms: u64,
    #[command(subcommand)]
    pub op: ClientOp,
}

/// What `sixfold client` does.
#[derive(Subcommand, Debug)]
pub enum ClientOp {
    /// Write VALUE to KEY; prints the commit LSN once acknowledged.
    Write {
        /// The key.
        key: u32,
        /// The value.
        value: u64,
    },
    /// Read KEY; prints the value and the LSN that wrote it.
    Read {
        /// The key.
        key: u32,
    },
    /// Run a load (writes, and reads with --read-ratio) and report throughput and latency
    /// percentiles.
    Load(LoadCmd),
}

/// `sixfold client load` with its operation mix and history recording.
#[derive(Args, Debug, Clone)]
pub struct LoadCmd {
    /// Operations, clients, keys.
    #[command(flatten)]
    pub load: LoadArgs,
    /// Reads and history recording.
    #[command(flatten)]
    pub mix: LoadMix,
}

/// What a load issues besides writes, and whether it records a history for `sixfold lincheck`.
#[derive(Args, Debug, Clone, Default)]
pub struct LoadMix {
    /// Fraction (0..=1) of the operations that are reads of the round-robin key instead of
    /// writes to it.
    #[arg(long, default_value_t = 0.0)]
    pub read_ratio: f64,
    /// Record every operation to this file in sixfold's NDJSON history format (kv: keys and
    /// values as strings; a timeout or failure is outcome unknown); check it with
    /// `sixfold lincheck FILE --model kv`.
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,
}

/// `sixfold client load`.
#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// Total writes.
    #[arg(long, default_value_t = 1000)]
    pub ops: u64,
    /// Concurrent clients (one connection each, one write in flight each).
    #[arg(long, default_value_t = 4)]
    pub clients: u64,
    /// Keys written, round robin.
    #[arg(long, default_value_t = 16)]
    pub keys: u32,
    /// Write the acknowledged writes as `key value lsn` lines to this file.
    #[arg(long)]
    pub acked: Option<PathBuf>,
}

fn node_command(
    layout: &Layout,
    dir: &Path,
    id: usize,
    args: &ClusterArgs,
) -> (PathBuf, Vec<String>) {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("sixfold"));
    let role = if id == WRITER_ID { "writer" } else { "storage" };
    let mut v = vec![
        "node".to_string(),
        "--role".into(),
        role.into(),
        "--id".into(),
        id.to_string(),
        "--dir".into(),
        dir.join(format!("node-{id}")).display().to_string(),
        "--peers".into(),
        layout.peers_arg(),
    ];
    if id == WRITER_ID {
        v.extend(["--client-addr".into(), layout.client.to_string()]);
    }
    if let Some(m) = args.protocol.mutant {
        v.extend(["--mutant".into(), m.name().into()]);
    }
    if args.protocol.wait_all {
        v.push("--wait-all".into());
    }
    if args.trace.is_some() {
        v.extend([
            "--trace".into(),
            dir.join("trace")
                .join(format!("node-{id}.ndjson"))
                .display()
                .to_string(),
        ]);
    }
    if args.slow.contains(&id) {
        v.extend(["--delay-ms".into(), args.slow_ms.to_string()]);
    }
    (exe, v)
}

fn spawn_node(exe: &Path, argv: &[String]) -> std::io::Result<Child> {
    let mut cmd = std::process::Command::new(exe);
    cmd.args(argv);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; it makes the member die with the supervisor.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
    }
    cmd.spawn()
}

fn wait_for_port(addr: SocketAddr, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Runs `sixfold cluster`: exit 0 after a clean stop, 2 if it could not start.
pub fn run_cluster(args: &ClusterArgs) -> ExitCode {
    catch_signals();
    let cfg = args.protocol.config();
    let dir = &args.dir;
    if let Some(bad) = args.slow.iter().find(|&&s| s >= SEGMENTS) {
        eprintln!("sixfold cluster: --slow {bad}: only segments 0..=5 can be slowed");
        return ExitCode::from(2);
    }
    let layout = match Layout::load(dir) {
        Ok(mut l) if args.port_base == 0 => {
            l.config = cfg;
            Ok(l)
        }
        _ => Layout::local(cfg, args.port_base),
    };
    let layout = match layout.and_then(|l| l.save(dir).map(|_| l)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sixfold cluster: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(t) = &args.trace {
        // A fresh recording: per-member traces from an earlier run would not merge with it.
        let _ = std::fs::remove_dir_all(dir.join("trace"));
        let _ = std::fs::remove_file(t);
    }
    let mut children: Vec<(usize, Child, bool)> = Vec::new();
    let mut commands = Vec::new();
    for id in 0..ACTORS {
        let (exe, argv) = node_command(&layout, dir, id, args);
        match spawn_node(&exe, &argv) {
            Ok(c) => children.push((id, c, true)),
            Err(e) => {
                eprintln!("sixfold cluster: cannot start member {id}: {e}");
                stop_children(&mut children);
                return ExitCode::from(2);
            }
        }
        commands.push(format!("{} {}", exe.display(), argv.join(" ")));
    }
    if !wait_for_port(layout.client, Duration::from_secs(10)) {
        eprintln!(
            "sixfold cluster: the writer did not open {} in 10 s",
            layout.client
        );
        stop_children(&mut children);
        return ExitCode::from(2);
    }
    println!(
        "sixfold cluster in {} ({})",
        dir.display(),
        describe_cfg(&cfg)
    );
    for (id, child, _) in &children {
        println!("  {}  pid {}", layout.describe(*id), child.id());
    }
    println!(
        "clients: sixfold client --dir {} write KEY VALUE",
        dir.display()
    );
    println!("restart a member with:");
    for (id, cmd) in commands.iter().enumerate() {
        println!("  [{id}] {cmd}");
    }
    println!("cluster ready; Ctrl-C stops it");
    while !STOP.load(Ordering::SeqCst) {
        for (id, child, running) in children.iter_mut() {
            if *running {
                if let Ok(Some(status)) = child.try_wait() {
                    *running = false;
                    println!("member {id} exited ({status}); restart it with command [{id}] above");
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("stopping");
    stop_children(&mut children);
    if let Some(t) = &args.trace {
        match crate::replay::merge_dir(&dir.join("trace"), t) {
            Ok(n) => println!("trace: {n} steps merged into {}", t.display()),
            Err(e) => {
                eprintln!("sixfold cluster: {e}");
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}

fn describe_cfg(cfg: &Config) -> String {
    let mut s = format!(
        "write quorum {}/6, read quorum {}/6",
        cfg.write_quorum, cfg.read_quorum
    );
    if let Some(m) = cfg.mutant {
        s.push_str(&format!(", MUTANT {m}"));
    }
    s
}

fn stop_children(children: &mut [(usize, Child, bool)]) {
    for (_, c, _) in children.iter() {
        // SAFETY: sending a signal to our own child's pid.
        unsafe {
            libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for (_, c, _) in children.iter_mut() {
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Runs `sixfold node`: exit 0 after a clean stop, 2 on a bad spec, 1 if the node failed.
pub fn run_node(args: &NodeArgs) -> ExitCode {
    catch_signals();
    let role_ok = match args.role {
        Role::Storage => args.id < SEGMENTS,
        Role::Writer => args.id == WRITER_ID,
    };
    if !role_ok {
        eprintln!(
            "sixfold node: --role {:?} needs --id {}",
            args.role,
            if args.role == Role::Writer {
                "6"
            } else {
                "0..=5"
            }
        );
        return ExitCode::from(2);
    }
    let spec = NodeSpec {
        id: args.id,
        cfg: args.protocol.config(),
        peers: args.peers.clone(),
        client_addr: args.client_addr,
        dir: args.dir.clone(),
        trace: args.trace.clone(),
        delay: Duration::from_millis(args.delay_ms),
    };
    let handle = match host::spawn(spec) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("sixfold node {}: {e}", args.id);
            return ExitCode::from(2);
        }
    };
    eprintln!("sixfold node {} ({}) running", args.id, host::name(args.id));
    match handle.wait(&STOP) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sixfold node {}: {e}", args.id);
            ExitCode::from(1)
        }
    }
}

fn client_addr(args: &ClientArgs) -> Result<SocketAddr, String> {
    match (&args.addr, &args.dir) {
        (Some(a), _) => Ok(*a),
        (None, Some(d)) => Layout::load(d).map(|l| l.client).map_err(|e| e.to_string()),
        (None, None) => Err("say where the cluster is: --dir DIR or --addr HOST:PORT".into()),
    }
}

/// Runs `sixfold client`: exit 0 on success, 1 if a request failed or timed out, 2 on bad usage.
pub fn run_client(args: &ClientArgs) -> ExitCode {
    let addr = match client_addr(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sixfold client: {e}");
            return ExitCode::from(2);
        }
    };
    let timeout = Duration::from_millis(args.timeout_ms);
    if let ClientOp::Load(load) = &args.op {
        if !(0.0..=1.0).contains(&load.mix.read_ratio) {
            eprintln!("sixfold client load: --read-ratio must be between 0 and 1");
            return ExitCode::from(2);
        }
        return match run_load_mix(addr, timeout, &load.load, &load.mix) {
            Ok(r) => {
                println!("{}", r.summary());
                if r.unknown > 0 {
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                eprintln!("sixfold client load: {e}");
                ExitCode::from(1)
            }
        };
    }
    let mut c = match Client::connect(addr, timeout) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sixfold client: {e}");
            return ExitCode::from(1);
        }
    };
    let r = match &args.op {
        ClientOp::Write { key, value } => c
            .write(*key, *value)
            .map(|lsn| format!("ok: key {key} = {value} committed at lsn {lsn}")),
        ClientOp::Read { key } => c
            .read(*key)
            .map(|v| format!("key {key} = {} (written at lsn {})", v.value, v.lsn)),
        ClientOp::Load(_) => unreachable!("handled above"),
    };
    match r {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sixfold client: {e}");
            ExitCode::from(1)
        }
    }
}

/// The outcome of a load run.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Operations (writes, and reads if any) answered.
    pub ok: u64,
    /// Operations that timed out or failed (outcome unknown).
    pub unknown: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Latencies of the acknowledged writes, sorted.
    pub latencies: Vec<Duration>,
}

impl LoadReport {
    /// The latency at quantile `q` (0..=1) of acknowledged writes.
    pub fn percentile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        self.latencies[i]
    }

    /// Acknowledged writes per second.
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The final report line(s).
    pub fn summary(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        format!(
            "{} operations acknowledged, {} unknown, in {:.2} s: {:.0} operations/s\n\
             latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
            self.ok,
            self.unknown,
            self.elapsed.as_secs_f64(),
            self.throughput(),
            ms(self.percentile(0.5)),
            ms(self.percentile(0.9)),
            ms(self.percentile(0.99)),
            ms(self.latencies.last().copied().unwrap_or_default()),
        )
    }
}

/// Runs a write load of `args.ops` writes from `args.clients` connections, printing progress to
/// stderr once a second.
pub fn run_load(
    addr: SocketAddr,
    timeout: Duration,
    args: &LoadArgs,
) -> Result<LoadReport, ClientError> {
    run_load_mix(addr, timeout, args, &LoadMix::default())
}

/// Whether operation `i` of a load is a read: a fixed hash of `i` (splitmix64) against the
/// ratio, so a run's mix does not depend on timing.
fn is_read(i: u64, ratio: f64) -> bool {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    ((z >> 11) as f64 / (1u64 << 53) as f64) < ratio
}

/// Runs a load of `args.ops` operations (a `mix.read_ratio` share of them reads) from
/// `args.clients` connections, printing progress to stderr once a second; with `mix.history`
/// records every operation for `sixfold lincheck --model kv`. Times are ns since the load
/// started, on one clock shared by all clients (they are threads of this process). After an
/// operation with an unknown outcome a connection continues as a new history client
/// (`worker + clients * n`), since that operation may still be in flight.
pub fn run_load_mix(
    addr: SocketAddr,
    timeout: Duration,
    args: &LoadArgs,
    mix: &LoadMix,
) -> Result<LoadReport, ClientError> {
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut conns = Vec::new();
    for _ in 0..args.clients.max(1) {
        conns.push(Client::connect(addr, timeout)?);
    }
    let n_clients = conns.len() as u64;
    let ns = move |t: Instant| t.duration_since(start).as_nanos() as u64;
    let workers: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(w, mut c)| {
            let (next, done, ops, keys) = (next.clone(), done.clone(), args.ops, args.keys.max(1));
            let ratio = mix.read_ratio;
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let mut acked = Vec::new();
                let mut history = Vec::new();
                let mut unknown = 0u64;
                let mut client = w as u64;
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= ops {
                        break;
                    }
                    let (key, value) = ((i % keys as u64) as u32, i + 1);
                    let t = Instant::now();
                    let (op, result) = if is_read(i, ratio) {
                        // The initial version (lsn 0) is the absent key: null, which kv reads as "".
                        let r = c
                            .read(key)
                            .map(|v| (v.lsn > 0).then(|| HValue::Str(v.value.to_string())));
                        (OpKind::Read, r)
                    } else {
                        let r = c.write(key, value).map(|lsn| {
                            acked.push((key, value, lsn));
                            Some(HValue::Str(value.to_string()))
                        });
                        (OpKind::Write, r)
                    };
                    let end = Instant::now();
                    let ok = result.is_ok();
                    let written = (op == OpKind::Write).then(|| HValue::Str(value.to_string()));
                    history.push(Record {
                        client,
                        call: ns(t),
                        ret: Some(ns(end)),
                        outcome: if ok { Outcome::Ok } else { Outcome::Unknown },
                        op,
                        key: Some(key.to_string()),
                        value: result.unwrap_or(written),
                        from: None,
                        to: None,
                    });
                    if ok {
                        lat.push(end - t);
                    } else {
                        unknown += 1;
                        client += n_clients;
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                (lat, acked, unknown, history)
            })
        })
        .collect();
    let mut last = Instant::now();
    while workers.iter().any(|w| !w.is_finished()) {
        std::thread::sleep(Duration::from_millis(20));
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            let d = done.load(Ordering::Relaxed);
            eprintln!(
                "  {d}/{} operations, {:.0} operations/s",
                args.ops,
                d as f64 / start.elapsed().as_secs_f64()
            );
        }
    }
    let mut report = LoadReport {
        ok: 0,
        unknown: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    let mut acked_all = Vec::new();
    let mut history_all = Vec::new();
    for w in workers {
        let (lat, acked, unknown, history) = w.join().unwrap_or_default();
        report.ok += lat.len() as u64;
        report.unknown += unknown;
        report.latencies.extend(lat);
        acked_all.extend(acked);
        history_all.extend(history);
    }
    report.elapsed = start.elapsed();
    report.latencies.sort();
    if let Some(p) = &args.acked {
        acked_all.sort_by_key(|a| a.2);
        let text: String = acked_all
            .iter()
            .map(|(k, v, l)| format!("{k} {v} {l}\n"))
            .collect();
        if let Err(source) = std::fs::write(p, text) {
            return Err(ClientError::Io { addr, source });
        }
    }
    if let Some(p) = &mix.history {
        history_all.sort_by_key(|r| r.call);
        let write = || -> std::io::Result<()> {
            let mut w = HistoryWriter::new(std::io::BufWriter::new(std::fs::File::create(p)?));
            for r in &history_all {
                w.record(r)?;
            }
            w.finish().map(drop)
        };
        if let Err(source) = write() {
            return Err(ClientError::Io { addr, source });
        }
    }
    Ok(report)
}
