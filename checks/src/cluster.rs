//! The `sixfold cluster`, `sixfold node` and `sixfold client` commands: the command line of the
//! runtime in `sixfold-impl`, which runs as real processes.
//!
//! `cluster` runs [`sixfold_impl::cluster::run`]: the supervisor of one `sixfold node` process
//! per member and the control plane that appoints, watches and replaces the writer (see that
//! module). This file parses the arguments, words what the cluster reports ([`Event`]) as the
//! lines an operator reads (addresses, the exact command that restarts each member, the
//! failover log), turns Ctrl-C (or SIGTERM) into a clean stop, and with `--trace FILE` then
//! merges the members' per-process traces into one file that `sixfold replay` checks. `node`
//! hosts one member ([`sixfold_impl::host`]); `client` writes, reads or runs a load
//! ([`sixfold_impl::load`]).

use clap::{Args, Subcommand, ValueEnum};
use sixfold_impl::client::{ClusterClient, Discovery};
use sixfold_impl::cluster::{self, ClusterError, ClusterSpec, Event, Protocol, Ready, TRACE_DIR};
use sixfold_impl::control::Failure;
use sixfold_impl::faults::Faults;
use sixfold_impl::host::{self, NodeOptions, NodeSpec};
use sixfold_impl::layout::Layout;
use sixfold_impl::load::{self, LoadError, LoadReport, LoadSpec, Progress};
use sixfold_impl::promotion::Previous;
use sixfold_model::protocol::config::{Config, Mutant, SEGMENTS};
use sixfold_model::protocol::msg::{Epoch, FIRST_EPOCH};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
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
    /// The options as the runtime takes them.
    pub fn protocol(&self) -> Protocol {
        Protocol {
            mutant: self.mutant,
            wait_all: self.wait_all,
        }
    }

    /// The configuration the members run.
    pub fn config(&self) -> Config {
        self.protocol().config()
    }
}

/// `sixfold cluster`.
#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// Directory for the layout, every member's files and traces (reused if it exists).
    #[arg(long)]
    pub dir: PathBuf,
    /// First of nine consecutive ports on 127.0.0.1; 0 picks free ports (or reuses the
    /// ports in DIR/cluster.json if present).
    #[arg(long, default_value_t = 0)]
    pub port_base: u16,
    /// Record every step; on shutdown merge the members' traces into this NDJSON file.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// With --trace: append to the members' traces an earlier run left in DIR/trace instead of
    /// starting a fresh recording (a control plane restarted mid-recording).
    #[arg(long, requires = "trace")]
    pub keep_trace: bool,
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

impl ClusterArgs {
    /// The cluster the runtime runs: these options, with this very binary as every member.
    fn spec(&self) -> ClusterSpec {
        ClusterSpec {
            dir: self.dir.clone(),
            port_base: self.port_base,
            exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("sixfold")),
            protocol: self.protocol.protocol(),
            trace: self.trace.clone(),
            keep_trace: self.keep_trace,
            slow: self.slow.clone(),
            slow_ms: self.slow_ms,
            writer_faults: self.writer_faults.clone(),
            segment_faults: self.segment_faults.clone(),
        }
    }
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

/// Seconds since the cluster started, for its log lines.
fn stamp(t0: Instant) -> String {
    format!("[{:>7.3} s]", t0.elapsed().as_secs_f64())
}

/// Runs `sixfold cluster`: exit 0 after a clean stop, 2 if it could not start, 1 if the
/// members' traces could not be merged.
pub fn run_cluster(args: &ClusterArgs) -> ExitCode {
    catch_signals();
    let t0 = Instant::now();
    let mut print = |e: Event<'_>| print_event(t0, &args.dir, e);
    // Holds the directory's lock until the traces are merged.
    let stopped = match cluster::run(&args.spec(), &STOP, &mut print) {
        Ok(s) => s,
        Err(ClusterError::NoSuchSegment(bad)) => {
            eprintln!("sixfold cluster: --slow {bad}: only segments 0..=5 can be slowed");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("sixfold cluster: {e}");
            return ExitCode::from(2);
        }
    };
    if let (true, Some(t)) = (stopped.served, &args.trace) {
        match sixfold_impl::trace_merge::merge_dir(&args.dir.join(TRACE_DIR), t) {
            Ok(n) => println!("trace: {n} steps merged into {}", t.display()),
            Err(e) => {
                eprintln!("sixfold cluster: {e}");
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}

/// Prints what the cluster in `dir` reports, stamped with the time since `t0` where it is part
/// of the failover log.
fn print_event(t0: Instant, dir: &Path, event: Event<'_>) {
    match event {
        Event::RestartWait {
            at,
            until,
            previous,
        } => print_restart_wait(t0, at, until, previous),
        Event::Promoted { writer, pid } => println!(
            "{} promoting writer epoch {}: pid {pid}, peers {}, clients {} \
             (recovering the volume)",
            stamp(t0),
            writer.epoch,
            writer.peer,
            writer.client
        ),
        Event::Ready(ready) => print_banner(dir, &ready),
        Event::MemberExited { id, status } => {
            println!("member {id} exited ({status}); restart it with command [{id}] above")
        }
        Event::WriterExited { epoch, status } => {
            println!("{} writer (epoch {epoch}) exited ({status})", stamp(t0))
        }
        Event::WriterOpen {
            epoch,
            vdl,
            since_failure,
        } => {
            let took = since_failure
                .map(|d| format!(" ({} ms after the failure was detected)", d.as_millis()))
                .unwrap_or_default();
            println!(
                "{} writer (epoch {epoch}) recovered VDL={vdl}, open{took}",
                stamp(t0)
            );
        }
        Event::WriterFailed {
            epoch,
            why,
            detected,
            promote_after,
        } => print_failure(t0, epoch, why, detected, promote_after),
        Event::PromotionFailed(e) => eprintln!("sixfold cluster: cannot promote a writer: {e}"),
        Event::Stopping => println!("stopping"),
        Event::NoCleanStop => {
            println!("no clean stop recorded: an earlier writer's lease may still be running")
        }
        Event::CleanStopFailed(e) => {
            eprintln!("sixfold cluster: cannot record the clean stop: {e}")
        }
    }
}

/// Why the first writer waits, and until when.
fn print_restart_wait(t0: Instant, at: Instant, until: Instant, previous: Previous) {
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
        until.duration_since(t0).as_secs_f64(),
        until.saturating_duration_since(at).as_millis(),
        previous.epoch().unwrap_or(0) + 1
    );
}

/// The failed writer, and when its successor will be promoted.
fn print_failure(
    t0: Instant,
    epoch: Epoch,
    why: Failure,
    detected: Instant,
    promote_after: Option<Instant>,
) {
    match promote_after {
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

/// The start-up banner of a cluster that is [`Ready`]: its members and how to use it.
fn print_banner(dir: &Path, ready: &Ready<'_>) {
    let Ready {
        layout,
        storage,
        writer,
        writer_pid,
        control,
    } = ready;
    println!(
        "sixfold cluster in {} ({})",
        dir.display(),
        describe_cfg(&layout.config)
    );
    for m in storage.iter() {
        println!("  {}  pid {}", layout.describe(m.id), m.pid());
    }
    println!(
        "  writer (epoch {})  peers {}  clients {}  pid {writer_pid}",
        writer.epoch, writer.peer, writer.client,
    );
    println!("  control plane  {control}  (leases, failover; current writer in writer.json)");
    println!(
        "clients: sixfold client --dir {} write KEY VALUE",
        dir.display()
    );
    println!("restart a member with:");
    for m in storage.iter() {
        println!("  [{}] {}", m.id, m.command());
    }
    println!("  the writer is replaced by the control plane when it fails (kill -9 it to see)");
    println!("cluster ready; Ctrl-C stops it");
}

/// The protocol in force, for the banner: the quorums, and the mutant if one runs.
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
