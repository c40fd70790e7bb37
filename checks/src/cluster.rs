//! The `sixfold cluster`, `sixfold node` and `sixfold client` commands: run the runtime of
//! `sixfold-impl` as real processes and talk to it.
//!
//! `cluster` is a supervisor: it writes the layout to `DIR/cluster.json`, starts one
//! `sixfold node` process per member (so any member can be SIGKILLed and restarted on its own),
//! prints the addresses and the exact command that restarts each member, and on Ctrl-C (or
//! SIGTERM) stops them all; with `--trace FILE` it then merges the members' per-process traces
//! into one file that `sixfold replay` checks.
//!
//! It is also the **control plane** (`sixfold_impl::control`): it hands out epochs (persisted in
//! `DIR/epoch`, so a restarted cluster never reuses one), grants the writer's lease in answer to
//! its heartbeats, and when the writer fails (missed heartbeats, lost lease, never started) it
//! stops granting, waits until the old lease has certainly run out, and starts a writer in the
//! next epoch, which recovers the volume; `DIR/writer.json` tells clients where it is.
//!
//! Started on an existing `DIR` it is a restarted control plane: it takes `DIR`'s lock, and
//! unless `DIR/control-plane` records that the previous one stopped cleanly it waits
//! `GRANT_WINDOW + LEASE + margin` from its own start before it appoints a writer, since the
//! previous one may have granted a lease just before it died; then it promotes the next epoch,
//! which fences the old one. What to do when is `sixfold_impl::promotion::decide`; this file
//! gathers the facts and carries the decisions out.

use clap::{Args, Subcommand, ValueEnum};
use sixfold_impl::client::{ClusterClient, Discovery};
use sixfold_impl::control::{ControlPlane, DirLock, Health, LastRun, Revoked, Timing};
use sixfold_impl::faults::Faults;
use sixfold_impl::host::{self, NodeOptions, NodeSpec, WRITER_ID};
use sixfold_impl::layout::{self, free_ports, local_addr, Layout, WriterInfo};
use sixfold_impl::load::{self, LoadError, LoadReport, LoadSpec, Progress};
use sixfold_impl::promotion::{self, Decision, Facts, Incumbent, Previous};
use sixfold_model::config::{Config, Mutant, SEGMENTS};
use sixfold_model::msg::{Epoch, FIRST_EPOCH};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// Inject faults into the first writer this cluster starts, e.g.
    /// `partition=control+clients@1500` or `seed=7,drop=0.01,delay=20` (see
    /// `sixfold_impl::faults`).
    #[arg(long, value_name = "SPEC")]
    pub writer_faults: Option<String>,
    /// Inject faults into every storage node (same form as --writer-faults).
    #[arg(long, value_name = "SPEC")]
    pub segment_faults: Option<String>,
    #[command(flatten)]
    pub protocol: ProtocolArgs,
}

/// The role of a `sixfold node`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A storage node (segment), ids 0..6.
    Storage,
    /// The writer, id 6 + epoch - 1.
    Writer,
}

/// `sixfold node`.
#[derive(Args, Debug)]
pub struct NodeArgs {
    /// What this member is.
    #[arg(long)]
    pub role: Role,
    /// Its actor id: 0..=5 for storage nodes (AZ = id / 2); for the writer 6 + epoch - 1.
    #[arg(long)]
    pub id: usize,
    /// The writer's epoch (from the control plane). Epoch 1 opens a new volume; any later one
    /// runs recovery.
    #[arg(long, default_value_t = FIRST_EPOCH)]
    pub epoch: Epoch,
    /// Where a promoted writer (id past 6) listens for peers.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// The control plane's heartbeat address: the writer's lease comes from it. Without it the
    /// writer renews its own lease (a static cluster, where no other writer is ever promoted).
    #[arg(long)]
    pub control: Option<SocketAddr>,
    /// Inject faults (see `sixfold cluster --writer-faults`).
    #[arg(long, value_name = "SPEC")]
    pub faults: Option<Faults>,
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
    /// Write the acknowledged writes as `key value lsn epoch` lines to this file (epoch: of the
    /// writer that acknowledged it).
    #[arg(long)]
    pub acked: Option<PathBuf>,
}

impl LoadArgs {
    /// The load the runtime runs: these operations with `mix`.
    fn spec(&self, mix: &LoadMix) -> LoadSpec {
        LoadSpec {
            ops: self.ops,
            clients: self.clients,
            keys: self.keys,
            read_ratio: mix.read_ratio,
            acked: self.acked.clone(),
            history: mix.history.clone(),
        }
    }
}

/// Where the writer of one epoch runs.
struct WriterSlot {
    epoch: Epoch,
    id: usize,
    peer: SocketAddr,
    client: SocketAddr,
}

impl WriterSlot {
    /// The first epoch uses the layout's writer addresses; a later one gets fresh ports, since
    /// its predecessor may still be alive (partitioned, not dead) and holding its ports.
    fn new(layout: &Layout, epoch: Epoch) -> std::io::Result<WriterSlot> {
        let (peer, client) = if epoch == FIRST_EPOCH {
            (layout.peers[WRITER_ID], layout.client)
        } else {
            let p = free_ports(2)?;
            (local_addr(p[0]), local_addr(p[1]))
        };
        Ok(WriterSlot {
            epoch,
            id: host::writer_id(epoch),
            peer,
            client,
        })
    }
}

fn node_command(
    layout: &Layout,
    dir: &Path,
    id: usize,
    args: &ClusterArgs,
    writer: Option<(&WriterSlot, Option<&str>)>,
) -> (PathBuf, Vec<String>) {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("sixfold"));
    let role = if writer.is_some() {
        "writer"
    } else {
        "storage"
    };
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
    if let Some((w, faults)) = writer {
        v.extend(["--client-addr".into(), w.client.to_string()]);
        v.extend(["--epoch".into(), w.epoch.to_string()]);
        if w.id != WRITER_ID {
            v.extend(["--listen".into(), w.peer.to_string()]);
        }
        if let Some(c) = layout.control {
            v.extend(["--control".into(), c.to_string()]);
        }
        if let Some(f) = faults {
            v.extend(["--faults".into(), f.to_string()]);
        }
    } else if let Some(f) = &args.segment_faults {
        v.extend(["--faults".into(), f.clone()]);
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

/// Milliseconds since the cluster started, for its log lines.
fn stamp(t0: Instant) -> String {
    format!("[{:>7.3} s]", t0.elapsed().as_secs_f64())
}

/// Hands out the next epoch (durably, before anything runs in it) and starts its writer.
fn start_writer(
    layout: &Layout,
    dir: &Path,
    args: &ClusterArgs,
    faults: Option<&str>,
) -> Result<(WriterSlot, Child), String> {
    let epoch = layout::last_epoch(dir).map_err(|e| e.to_string())? + 1;
    if epoch > host::MAX_EPOCH {
        return Err(format!("epoch {epoch} exceeds {}", host::MAX_EPOCH));
    }
    layout::store_epoch(dir, epoch).map_err(|e| e.to_string())?;
    let slot = WriterSlot::new(layout, epoch).map_err(|e| e.to_string())?;
    let (exe, argv) = node_command(layout, dir, slot.id, args, Some((&slot, faults)));
    let mut child = spawn_node(&exe, &argv).map_err(|e| format!("cannot start the writer: {e}"))?;
    let saved = WriterInfo {
        epoch,
        id: slot.id,
        peer: slot.peer,
        client: slot.client,
        pid: Some(child.id()),
    }
    .save(dir);
    if let Err(e) = saved {
        // Not appointed, but it holds its first lease: reap it, so that a clean stop is one.
        let _ = child.kill();
        let _ = child.wait();
        return Err(e.to_string());
    }
    Ok((slot, child))
}

/// The current writer process and what the supervisor has reported about it.
struct Current {
    slot: WriterSlot,
    child: Child,
    running: bool,
    /// When the failover that started it began (the failed writer was detected).
    failover_from: Option<Instant>,
    reported_open: bool,
}

/// Runs `sixfold cluster`: exit 0 after a clean stop, 2 if it could not start.
pub fn run_cluster(args: &ClusterArgs) -> ExitCode {
    catch_signals();
    let t0 = Instant::now();
    let cfg = args.protocol.config();
    let dir = &args.dir;
    if let Some(bad) = args.slow.iter().find(|&&s| s >= SEGMENTS) {
        eprintln!("sixfold cluster: --slow {bad}: only segments 0..=5 can be slowed");
        return ExitCode::from(2);
    }
    for spec in [&args.writer_faults, &args.segment_faults]
        .into_iter()
        .flatten()
    {
        if let Err(e) = spec.parse::<Faults>() {
            eprintln!("sixfold cluster: {e}");
            return ExitCode::from(2);
        }
    }
    // One control plane per directory, held until this process dies (see `promotion`).
    let lock = std::fs::create_dir_all(dir).and_then(|()| DirLock::acquire(dir));
    let _lock = match lock {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sixfold cluster: {e}");
            return ExitCode::from(2);
        }
    };
    let layout = match Layout::load(dir) {
        Ok(mut l) if args.port_base == 0 => {
            l.config = cfg;
            if l.control.is_none() {
                l.control = free_ports(1).ok().map(|p| local_addr(p[0]));
            }
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
    let Some(control_addr) = layout.control else {
        eprintln!("sixfold cluster: no control-plane port");
        return ExitCode::from(2);
    };
    let control = match ControlPlane::start(control_addr, Timing::default()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sixfold cluster: {e}");
            return ExitCode::from(2);
        }
    };
    // What the previous control plane left, read once it can do nothing more; then, durably
    // and before any writer is appointed, that this one runs (a crash from here on must make
    // the next one wait out our leases).
    let previous = match read_previous(dir) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sixfold cluster: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = LastRun::Running.store(dir) {
        eprintln!(
            "sixfold cluster: {}: {e}",
            dir.join(sixfold_impl::control::RUN_FILE).display()
        );
        return ExitCode::from(2);
    }
    let facts = |incumbent| Facts {
        now: Instant::now(),
        started: control.started(),
        previous,
        incumbent,
        strays: control.strays(),
        timing: control.timing(),
    };
    if let Some(t) = &args.trace {
        // A fresh recording: per-member traces from an earlier run would not merge with it.
        let _ = std::fs::remove_dir_all(dir.join("trace"));
        let _ = std::fs::remove_file(t);
    }
    let mut children: Vec<(usize, Child, bool)> = Vec::new();
    let mut commands = Vec::new();
    for id in 0..SEGMENTS {
        let (exe, argv) = node_command(&layout, dir, id, args, None);
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
    if !wait_for_first_promotion(t0, previous, &facts) {
        println!("stopping");
        stop_children(&mut children);
        record_stop(dir, &control, &facts);
        return ExitCode::SUCCESS;
    }
    let mut current = match start_writer(&layout, dir, args, args.writer_faults.as_deref()) {
        Ok((slot, child)) => {
            control.appoint(slot.epoch);
            if previous.epoch().is_some() {
                println!(
                    "{} promoting writer epoch {}: pid {}, peers {}, clients {} \
                     (recovering the volume)",
                    stamp(t0),
                    slot.epoch,
                    child.id(),
                    slot.peer,
                    slot.client
                );
            }
            Current {
                slot,
                child,
                running: true,
                failover_from: None,
                reported_open: false,
            }
        }
        Err(e) => {
            eprintln!("sixfold cluster: {e}");
            stop_children(&mut children);
            return ExitCode::from(2);
        }
    };
    let mut old_writers: Vec<(Epoch, Child)> = Vec::new();
    // The appointed writer once revoked (until its successor is promoted), and when its
    // failure was detected.
    let mut revoked: Option<Revoked> = None;
    let mut detected = Instant::now();
    if !wait_for_port(current.slot.client, Duration::from_secs(10)) {
        eprintln!(
            "sixfold cluster: the writer did not open {} in 10 s",
            current.slot.client
        );
        stop_children(&mut children);
        let _ = current.child.kill();
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
        "  writer (epoch {})  peers {}  clients {}  pid {}",
        current.slot.epoch,
        current.slot.peer,
        current.slot.client,
        current.child.id()
    );
    println!("  control plane  {control_addr}  (leases, failover; current writer in writer.json)");
    println!(
        "clients: sixfold client --dir {} write KEY VALUE",
        dir.display()
    );
    println!("restart a member with:");
    for (id, cmd) in commands.iter().enumerate() {
        println!("  [{id}] {cmd}");
    }
    println!("  the writer is replaced by the control plane when it fails (kill -9 it to see)");
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
        old_writers.retain_mut(|(_, c)| !matches!(c.try_wait(), Ok(Some(_))));
        if current.running {
            if let Ok(Some(status)) = current.child.try_wait() {
                current.running = false;
                println!(
                    "{} writer (epoch {}) exited ({status})",
                    stamp(t0),
                    current.slot.epoch
                );
            }
        }
        let book = control.writer(current.slot.epoch);
        if book.open && !current.reported_open {
            current.reported_open = true;
            let took = current
                .failover_from
                .map(|t| {
                    format!(
                        " ({} ms after the failure was detected)",
                        t.elapsed().as_millis()
                    )
                })
                .unwrap_or_default();
            println!(
                "{} writer (epoch {}) recovered VDL={}, open{took}",
                stamp(t0),
                current.slot.epoch,
                book.vdl
            );
        }
        let health = control.health();
        let incumbent = match (health, &revoked) {
            (Some((_, h)), _) => Incumbent::Appointed(h),
            (None, Some(r)) => Incumbent::revoked(r, !current.running),
            (None, None) => Incumbent::None,
        };
        let mut nap = Duration::from_millis(10);
        match promotion::decide(&facts(incumbent)) {
            Decision::Keep => {}
            Decision::Revoke => {
                detected = Instant::now();
                revoked = control.revoke();
                if let (Some((epoch, Health::Failed(why))), Some(r)) = (health, &revoked) {
                    let wait = match promotion::decide(&facts(Incumbent::revoked(r, false))) {
                        Decision::WaitUntil(t) => r.lease_ends_by.map(|e| t.max(e)),
                        _ => r.lease_ends_by,
                    };
                    match wait {
                        Some(t) => println!(
                            "{} writer (epoch {epoch}) {why}; lease expires at {:.3} s (in {} ms); \
                             promoting writer epoch {} after that",
                            stamp(t0),
                            t.duration_since(t0).as_secs_f64(),
                            t.saturating_duration_since(detected).as_millis(),
                            epoch + 1
                        ),
                        None => println!(
                            "{} writer (epoch {epoch}) {why}; never heard from, so killing it \
                             before promoting writer epoch {}",
                            stamp(t0),
                            epoch + 1
                        ),
                    }
                }
                continue;
            }
            Decision::Kill => {
                if current.running {
                    let _ = current.child.kill();
                    let _ = current.child.wait();
                    current.running = false;
                }
                continue;
            }
            Decision::WaitUntil(t) => {
                nap = nap.min(t.saturating_duration_since(Instant::now()));
            }
            Decision::Promote => match start_writer(&layout, dir, args, None) {
                Ok((slot, child)) => {
                    control.appoint(slot.epoch);
                    revoked = None;
                    println!(
                        "{} promoting writer epoch {}: pid {}, peers {}, clients {} \
                         (recovering the volume)",
                        stamp(t0),
                        slot.epoch,
                        child.id(),
                        slot.peer,
                        slot.client
                    );
                    let old = std::mem::replace(
                        &mut current,
                        Current {
                            slot,
                            child,
                            running: true,
                            failover_from: Some(detected),
                            reported_open: false,
                        },
                    );
                    if old.running {
                        old_writers.push((old.slot.epoch, old.child));
                    }
                }
                Err(e) => {
                    eprintln!("sixfold cluster: cannot promote a writer: {e}");
                    break;
                }
            },
        }
        std::thread::sleep(nap);
    }
    println!("stopping");
    if current.running {
        children.push((current.slot.id, current.child, true));
    }
    for (e, c) in old_writers {
        children.push((host::writer_id(e), c, true));
    }
    stop_children(&mut children);
    record_stop(dir, &control, &facts);
    drop(control);
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

/// What the previous control plane left in `dir`: the last epoch and how its run ended.
fn read_previous(dir: &Path) -> Result<Previous, String> {
    let epoch = layout::last_epoch(dir).map_err(|e| e.to_string())?;
    let run = LastRun::load(dir).map_err(|e| {
        format!(
            "{}: {e}",
            dir.join(sixfold_impl::control::RUN_FILE).display()
        )
    })?;
    Ok(Previous::from_disk(epoch, run))
}

/// Before the first writer: waits (printing why) until the promotion rule allows one. `false`
/// if the cluster was told to stop meanwhile.
fn wait_for_first_promotion(
    t0: Instant,
    previous: Previous,
    facts: &impl Fn(Incumbent) -> Facts,
) -> bool {
    let mut announced = None;
    loop {
        if STOP.load(Ordering::SeqCst) {
            return false;
        }
        let t = match promotion::decide(&facts(Incumbent::None)) {
            Decision::WaitUntil(t) => t,
            _ => return true,
        };
        if announced != Some(t) {
            announced = Some(t);
            let now = Instant::now();
            let why = match previous {
                Previous::MayHoldLease { epoch } => format!(
                    "control plane restarted: DIR/epoch is {epoch} and no clean stop was \
                     recorded, so writer (epoch {epoch}) may hold a lease"
                ),
                _ => "a writer this control plane never appointed may hold a lease".into(),
            };
            println!(
                "{} {why} until {:.3} s (in {} ms); promoting writer epoch {} after that",
                stamp(t0),
                t.duration_since(t0).as_secs_f64(),
                t.saturating_duration_since(now).as_millis(),
                previous.epoch().unwrap_or(0) + 1
            );
        }
        std::thread::sleep(
            t.saturating_duration_since(Instant::now())
                .min(Duration::from_millis(10)),
        );
    }
}

/// After every writer this control plane started has been killed and reaped: stops granting
/// and, if no lease of another writer can still be running, records a clean stop, so that the
/// next control plane in `dir` may promote at once ([`promotion`]).
fn record_stop(dir: &Path, control: &ControlPlane, facts: &impl Fn(Incumbent) -> Facts) {
    let _ = control.revoke();
    if !promotion::no_lease_outstanding(&facts(Incumbent::None)) {
        println!("no clean stop recorded: an earlier writer's lease may still be running");
        return;
    }
    let recorded = layout::last_epoch(dir)
        .map_err(|e| e.to_string())
        .and_then(|epoch| {
            LastRun::Stopped { epoch }
                .store(dir)
                .map_err(|e| e.to_string())
        });
    if let Err(e) = recorded {
        eprintln!("sixfold cluster: cannot record the clean stop: {e}");
    }
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
        Role::Writer => host::writer_epoch(args.id) == Some(args.epoch),
    };
    if !role_ok {
        eprintln!(
            "sixfold node: --role {:?} needs --id {}",
            args.role,
            if args.role == Role::Writer {
                format!(
                    "{} (6 + epoch - 1, epoch {})",
                    host::writer_id(args.epoch),
                    args.epoch
                )
            } else {
                "0..=5".into()
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
    let opts = NodeOptions {
        epoch: args.epoch,
        listen: args.listen,
        control: args.control,
        faults: args.faults.clone(),
    };
    let handle = match host::spawn_with(spec, opts) {
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

fn discovery(args: &ClientArgs) -> Result<Discovery, String> {
    match (&args.addr, &args.dir) {
        (Some(a), _) => Ok(Discovery::Fixed(*a)),
        (None, Some(d)) => {
            Layout::load(d).map_err(|e| e.to_string())?;
            Ok(Discovery::Dir(d.clone()))
        }
        (None, None) => Err("say where the cluster is: --dir DIR or --addr HOST:PORT".into()),
    }
}

/// Runs `sixfold client`: exit 0 on success, 1 if a request failed or timed out, 2 on bad usage.
pub fn run_client(args: &ClientArgs) -> ExitCode {
    let disc = match discovery(args) {
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
        let spec = load.load.spec(&load.mix);
        return match load::run(disc, timeout, &spec, &mut progress(load.load.ops)) {
            Ok(r) => {
                println!("{}", summary(&r));
                if r.unknown > 0 {
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                eprintln!("sixfold client load: {}", describe_load_error(&e));
                ExitCode::from(1)
            }
        };
    }
    let mut c = ClusterClient::new(disc, timeout);
    let r = match &args.op {
        ClientOp::Write { key, value } => c.write(*key, *value).map(|a| {
            format!(
                "ok: key {key} = {value} committed at lsn {} (writer epoch {})",
                a.lsn, a.epoch
            )
        }),
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

/// Prints a load's progress to stderr: `done` of `total` operations and the rate so far.
fn progress(total: u64) -> impl FnMut(Progress) {
    move |p| {
        eprintln!(
            "  {}/{total} operations, {:.0} operations/s",
            p.done,
            p.done as f64 / p.elapsed.as_secs_f64()
        )
    }
}

/// A load's failure as `sixfold client load` words it: a file it could not write is named by
/// the writer the load ran against, as it always was.
fn describe_load_error(e: &LoadError) -> String {
    match e {
        LoadError::Save { addr, source, .. } => format!("{addr}: {source}"),
        LoadError::Client(e) => e.to_string(),
    }
}

/// The final report line(s) of a load.
fn summary(r: &LoadReport) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "{} operations acknowledged, {} unknown, {} failed, in {:.2} s: {:.0} operations/s\n\
         latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        r.ok,
        r.unknown,
        r.failed,
        r.elapsed.as_secs_f64(),
        r.throughput(),
        ms(r.percentile(0.5)),
        ms(r.percentile(0.9)),
        ms(r.percentile(0.99)),
        ms(r.latencies.last().copied().unwrap_or_default()),
    )
}

/// Runs a write load of `args.ops` writes from `args.clients` connections against the writer
/// at `addr`, printing progress to stderr once a second: the runtime benchmark's load.
pub fn run_load(
    addr: SocketAddr,
    timeout: Duration,
    args: &LoadArgs,
) -> Result<LoadReport, LoadError> {
    let spec = args.spec(&LoadMix::default());
    load::run(
        Discovery::Fixed(addr),
        timeout,
        &spec,
        &mut progress(args.ops),
    )
}
