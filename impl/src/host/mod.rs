//! Hosting one actor of the model in this process: the step loop, its timers, its disk and its
//! sockets.
//!
//! The loop takes one input at a time (a message from a peer or a client, or a timer), calls
//! [`sixfold_model::trace::apply`] (the single step entry point) and interprets the commands it
//! returns. It adds nothing to the protocol. Inputs that arrive together are processed as a batch
//! and their saves share one fsync (group commit): sends and transport confirmations produced by
//! the batch are released only after that fsync, so no message leaves the process before the save
//! it follows is durable.
//!
//! Transport details that are not protocol:
//! - external clients connect to the writer's client port; each connection is given a virtual
//!   actor id ([`CLIENT_ID_BASE`] + n) and replies addressed to that id go back on it;
//! - a client request whose step changes nothing (the writer is still opening, or LAL
//!   back-pressure) is parked and offered again after every step that changed the state, as the
//!   model's network keeps such a message pending; parked requests expire after [`PARK_TTL`];
//! - `delay` holds every inbound message for a fixed time before the step (a slow node, for the
//!   benchmark), without reordering;
//! - a [`Faults`] spec drops, delays or partitions messages ([`crate::faults`]).
//!
//! # Writers, epochs and the lease
//! The writer of epoch `e` is actor [`writer_id`]`(e)`: each writer is its own actor, as in the
//! model's failover, so a segment's answers to an old writer can never reach a new one. A writer
//! tells segments where it listens in its connection hello, so a promoted writer, whose address
//! nobody was started with, is answered.
//!
//! The writer serves reads only while it holds its lease (`NodeTimer::Lease`). With a control
//! plane ([`NodeOptions::control`]) a heartbeat thread sends [`Frame::Heartbeat`] every
//! [`HEARTBEAT_EVERY`]; each [`Frame::Grant`] that comes back is stepped as `Msg::LeaseGrant` from
//! [`CONTROL_ID`], but only if it is stepped within [`GRANT_WINDOW`] of the heartbeat it answers
//! (a late grant is dropped, as a lossy network may). So the lease ends at most
//! `GRANT_WINDOW + LEASE` after the control plane sent its last grant, which is what the control
//! plane waits for before it promotes another writer ([`crate::control`]). A due lease timer is
//! fired before any message is stepped, so a read is never served on an expired lease because
//! the loop was busy. Without a control plane (a static cluster, where no other writer can ever
//! be promoted) the host renews the lease itself whenever it runs out.

use crate::faults::{Fate, FaultNet, Faults, Target};
use crate::storage::{SegmentStore, StorageError};
use crate::trace_log::{TraceLog, TraceLogError};
use crate::transport::Outbound;
use crate::wire::{self, Frame};
use sixfold_model::actor::{Node, NodeState, NodeStorage, NodeTimer};
use sixfold_model::config::{Config, SEGMENTS};
use sixfold_model::msg::{Epoch, Msg, FIRST_EPOCH};
use sixfold_model::storage_node::StorageNode;
use sixfold_model::topology::Topology;
use sixfold_model::trace::{self, ActorSpec, Header, Input, Step, TRACE_VERSION};
use sixfold_model::writer::Writer;
use stateright::actor::{Actor, Command, Id};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use sixfold_model::topology::{writer_id, CLIENT_ID_BASE, CONTROL_ID, MAX_EPOCH};

/// Actor id of the first writer ([`writer_id`] of the first epoch).
pub const WRITER_ID: usize = writer_id(FIRST_EPOCH);
/// Number of actors in a cluster's first epoch: six segments and the writer.
pub const ACTORS: usize = SEGMENTS + 1;
/// How long a parked client request waits for the writer before it is forgotten.
pub const PARK_TTL: Duration = Duration::from_secs(30);
/// How often a writer with a control plane sends a heartbeat.
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(50);
/// A grant is stepped only this soon after the heartbeat it answers; later ones are dropped, so
/// the control plane knows when a lease it granted ends at the latest.
pub const GRANT_WINDOW: Duration = Duration::from_millis(100);
/// Most inputs processed between two fsyncs.
const BATCH: usize = 512;

/// The epoch of writer actor `id`, if `id` is a writer's in the runtime's layout.
pub fn writer_epoch(id: usize) -> Option<Epoch> {
    Topology::runtime().writer_epoch(id)
}

/// The actors of a cluster, built exactly as `QuorumModel::new` builds them.
pub fn actors(cfg: Config) -> Vec<Node> {
    actors_upto(cfg, FIRST_EPOCH)
}

/// The six segments and the writers of epochs 1..=`epoch`, by actor id.
pub fn actors_upto(cfg: Config, epoch: Epoch) -> Vec<Node> {
    let segments: [Id; SEGMENTS] = std::array::from_fn(Id::from);
    let mut v: Vec<Node> = (0..SEGMENTS)
        .map(|_| Node::Segment(StorageNode::new(cfg)))
        .collect();
    for e in FIRST_EPOCH..=epoch.max(FIRST_EPOCH) {
        v.push(Node::Writer(Writer {
            cfg,
            segments,
            epoch: e,
        }));
    }
    v
}

/// The trace header every process of a cluster with configuration `cfg` writes.
pub fn header(cfg: Config) -> Header {
    header_upto(cfg, FIRST_EPOCH)
}

/// The trace header of a process that knows writers up to `epoch` (a promoted writer's). A run
/// with more than one writer is judged by the `failover` model's properties, one with a single
/// writer by the `quorum` model's; merged traces take the header with the most writers.
pub fn header_upto(cfg: Config, epoch: Epoch) -> Header {
    Header {
        version: TRACE_VERSION,
        source: "runtime".into(),
        model: if epoch > FIRST_EPOCH {
            "failover"
        } else {
            "quorum"
        }
        .into(),
        config: cfg,
        actors: actors_upto(cfg, epoch).iter().map(ActorSpec::of).collect(),
        violates: None,
    }
}

/// How a member runs beyond its [`NodeSpec`]: the writer's epoch and lease source, and faults.
#[derive(Clone, Debug, Default)]
pub struct NodeOptions {
    /// The writer's epoch (ignored for segments); 0 means [`FIRST_EPOCH`]. The writer's actor id
    /// must be [`writer_id`] of it.
    pub epoch: Epoch,
    /// Where a promoted writer (actor id past the peer list) listens for peers.
    pub listen: Option<SocketAddr>,
    /// The control plane that grants the writer's lease; `None` for a static cluster, whose one
    /// writer renews its own lease.
    pub control: Option<SocketAddr>,
    /// Faults to inject.
    pub faults: Option<Faults>,
}

/// Everything one member of a cluster needs to run.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// Its actor id: 0..6 a segment, 6 the writer.
    pub id: usize,
    /// The protocol configuration (mutant included).
    pub cfg: Config,
    /// Every actor's peer address, by actor id; this node listens on its own entry.
    pub peers: Vec<SocketAddr>,
    /// The writer's client port (ignored for segments).
    pub client_addr: Option<SocketAddr>,
    /// Where its files live.
    pub dir: PathBuf,
    /// Record every step to this NDJSON file.
    pub trace: Option<PathBuf>,
    /// Hold every inbound message this long before stepping (a slow node).
    pub delay: Duration,
}

/// Why a node could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The spec is inconsistent.
    #[error("bad node spec: {0}")]
    Spec(String),
    /// A listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The segment log failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The trace file failed.
    #[error(transparent)]
    Trace(#[from] TraceLogError),
}

/// Counters a running node exposes (for the benchmark and tests).
#[derive(Debug, Default)]
pub struct Stats {
    /// Steps taken.
    pub steps: AtomicU64,
    /// Protocol messages sent to peers.
    pub peer_msgs: AtomicU64,
    /// Bytes of protocol frames queued to peers (first transmission; resends not counted).
    pub peer_bytes: AtomicU64,
    /// fsyncs issued.
    pub fsyncs: AtomicU64,
}

type ConnHandle = Arc<Mutex<TcpStream>>;

enum Event {
    Msg {
        src: usize,
        msg: Msg,
        clock: u64,
        confirm: Option<(ConnHandle, u64)>,
    },
    /// A peer said where it listens.
    Peer { src: usize, addr: SocketAddr },
    /// The control plane renewed the lease in answer to the heartbeat sent at `sent`.
    Grant { sent: Instant },
}

/// What the writer's host tells the control plane in heartbeats.
#[derive(Debug, Default)]
struct LeaseStatus {
    /// Set once the writer has started: no heartbeat goes out before.
    started: AtomicBool,
    lease: AtomicBool,
    open: AtomicBool,
    vdl: AtomicU64,
}

/// A node running on its own threads; [`NodeHandle::stop`] ends it.
pub struct NodeHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), HostError>>>,
    /// Live counters.
    pub stats: Arc<Stats>,
}

impl NodeHandle {
    /// Stops the node and waits for it; returns the error that ended it early, if any.
    pub fn stop(mut self) -> Result<(), HostError> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().map_or(Ok(()), |t| {
            t.join()
                .unwrap_or_else(|_| Err(HostError::Spec("node thread panicked".into())))
        })
    }

    /// Whether the node's loop has ended (by itself: an I/O error).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Waits until the node ends by itself or `stop` is set.
    pub fn wait(mut self, stop: &AtomicBool) -> Result<(), HostError> {
        while !stop.load(Ordering::SeqCst) && !self.is_finished() {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().map_or(Ok(()), |t| {
            t.join()
                .unwrap_or_else(|_| Err(HostError::Spec("node thread panicked".into())))
        })
    }
}

impl Drop for NodeHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn bind(addr: SocketAddr) -> Result<TcpListener, HostError> {
    let l = TcpListener::bind(addr).map_err(|source| HostError::Bind { addr, source })?;
    l.set_nonblocking(true)
        .map_err(|source| HostError::Bind { addr, source })?;
    Ok(l)
}

/// Binds the node's ports, recovers its disk and starts its threads (first-epoch writer, no
/// control plane, no faults).
pub fn spawn(spec: NodeSpec) -> Result<NodeHandle, HostError> {
    spawn_with(spec, NodeOptions::default())
}

/// [`spawn`] with a writer epoch, a control plane and faults.
pub fn spawn_with(spec: NodeSpec, opts: NodeOptions) -> Result<NodeHandle, HostError> {
    let epoch = opts.epoch.max(FIRST_EPOCH);
    if epoch > MAX_EPOCH {
        return Err(HostError::Spec(format!(
            "epoch {epoch} is past the last one this runtime numbers ({MAX_EPOCH})"
        )));
    }
    let is_writer = writer_epoch(spec.id).is_some();
    if is_writer && spec.id != writer_id(epoch) {
        return Err(HostError::Spec(format!(
            "the writer of epoch {epoch} is actor {}, not {}",
            writer_id(epoch),
            spec.id
        )));
    }
    if spec.peers.len() != ACTORS {
        return Err(HostError::Spec(format!(
            "expected {ACTORS} peer addresses (6 segments then the writer), got {}",
            spec.peers.len()
        )));
    }
    if spec.id >= ACTORS && !is_writer {
        return Err(HostError::Spec(format!(
            "actor id {} out of range 0..{ACTORS}",
            spec.id
        )));
    }
    let listen = match (spec.peers.get(spec.id), opts.listen) {
        (_, Some(a)) => a,
        (Some(a), None) => *a,
        (None, None) => {
            return Err(HostError::Spec(format!(
                "writer {} of epoch {epoch} needs its own listen address",
                spec.id
            )))
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Stats::default());
    let (tx, rx) = mpsc::channel();
    let tag = format!("sixfold[{}]", name(spec.id));
    let peer_listener = bind(listen)?;
    let clients: Arc<Mutex<HashMap<usize, TcpStream>>> = Arc::default();
    let mut threads = Vec::new();
    {
        let (stop, tx, tag) = (stop.clone(), tx.clone(), tag.clone());
        threads.push(std::thread::spawn(move || {
            accept_loop(peer_listener, &stop, |s| {
                let (tx, tag, stop) = (tx.clone(), tag.clone(), stop.clone());
                std::thread::spawn(move || peer_conn(s, tx, &tag, &stop));
            })
        }));
    }
    let status = Arc::new(LeaseStatus::default());
    if let (true, Some(control)) = (is_writer, opts.control) {
        let (stop, tx, status) = (stop.clone(), tx.clone(), status.clone());
        let cut = opts.faults.clone().map(FaultNet::new);
        threads.push(std::thread::spawn(move || {
            heartbeat_loop(control, epoch, &tx, &status, cut, &stop)
        }));
    }
    if is_writer {
        let addr = spec
            .client_addr
            .ok_or_else(|| HostError::Spec("the writer needs a client address".into()))?;
        let l = bind(addr)?;
        let (stop, tx, tag, clients) = (stop.clone(), tx.clone(), tag.clone(), clients.clone());
        threads.push(std::thread::spawn(move || {
            let mut next = CLIENT_ID_BASE;
            accept_loop(l, &stop, |s| {
                let vid = next;
                next += 1;
                let (tx, tag, stop, clients) =
                    (tx.clone(), tag.clone(), stop.clone(), clients.clone());
                std::thread::spawn(move || client_conn(s, vid, tx, clients, &tag, &stop));
            })
        }));
    }
    drop(tx);
    let mut host = match Host::new(spec, &opts, listen, tag, clients, stats.clone(), status) {
        Ok(h) => h,
        Err(e) => {
            stop.store(true, Ordering::SeqCst);
            return Err(e);
        }
    };
    let stop2 = stop.clone();
    let thread = std::thread::Builder::new()
        .name("actor".into())
        .spawn(move || {
            let r = host.run(rx, &stop2);
            if let Err(e) = &r {
                eprintln!("{}: stopped: {e}", host.tag);
            }
            stop2.store(true, Ordering::SeqCst);
            drop(host);
            for t in threads {
                let _ = t.join();
            }
            r
        })
        .expect("spawn actor thread");
    Ok(NodeHandle {
        stop,
        thread: Some(thread),
        stats,
    })
}

/// A short name for an actor id, for logs and banners ([`Topology::name`]).
pub fn name(id: usize) -> String {
    Topology::runtime().name(id)
}

fn accept_loop(l: TcpListener, stop: &AtomicBool, mut on: impl FnMut(TcpStream)) {
    while !stop.load(Ordering::SeqCst) {
        match l.accept() {
            Ok((s, _)) => {
                let _ = s.set_nonblocking(false);
                let _ = s.set_nodelay(true);
                on(s)
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Reads frames until `stop`; read timeouts only re-check `stop`.
fn read_loop(
    s: &mut TcpStream,
    stop: &AtomicBool,
    mut on: impl FnMut(Frame) -> Result<(), String>,
) -> Result<(), String> {
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    let mut r = std::io::BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        // Wait for the first byte of a frame with the short timeout, then read it whole.
        let mut first = [0u8; 1];
        match std::io::Read::read(&mut r, &mut first) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return Ok(()),
        }
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let mut chained = std::io::Read::chain(&first[..], &mut r);
        let f = match wire::read_frame(&mut chained) {
            Ok(f) => f,
            Err(e) if e.is_garbage() => return Err(e.to_string()),
            Err(_) => return Ok(()),
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
        on(f)?;
    }
}

fn reject(s: &mut TcpStream, tag: &str, reason: String) {
    if reason.is_empty() {
        return; // the node is stopping: nothing to tell the peer
    }
    eprintln!("{tag}: closing a connection: {reason}");
    let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = wire::write_frame(s, &Frame::Error { reason });
    let _ = s.shutdown(std::net::Shutdown::Both);
}

fn peer_conn(mut s: TcpStream, tx: Sender<Event>, tag: &str, stop: &AtomicBool) {
    let Ok(w) = s.try_clone() else { return };
    let _ = w.set_write_timeout(Some(Duration::from_secs(1)));
    let conn: ConnHandle = Arc::new(Mutex::new(w));
    let mut src = None;
    let r = read_loop(&mut s, stop, |f| match (f, src) {
        (Frame::Hello { src: id, addr }, None)
            if (id as usize) < ACTORS || writer_epoch(id as usize).is_some() =>
        {
            src = Some(id as usize);
            match addr {
                Some(addr) => tx
                    .send(Event::Peer {
                        src: id as usize,
                        addr,
                    })
                    .map_err(|_| String::new()),
                None => Ok(()),
            }
        }
        (Frame::Hello { src: id, .. }, None) => Err(format!("hello from unknown actor {id}")),
        (Frame::Data { seq, clock, msg }, Some(src)) => {
            let confirm = Some((conn.clone(), seq));
            tx.send(Event::Msg {
                src,
                msg,
                clock,
                confirm,
            })
            .map_err(|_| String::new())
        }
        (f, _) => Err(format!("unexpected frame on a peer connection: {f:?}")),
    });
    if let Err(reason) = r {
        reject(&mut s, tag, reason);
    }
}

fn client_conn(
    mut s: TcpStream,
    vid: usize,
    tx: Sender<Event>,
    clients: Arc<Mutex<HashMap<usize, TcpStream>>>,
    tag: &str,
    stop: &AtomicBool,
) {
    let Ok(w) = s.try_clone() else { return };
    let _ = w.set_write_timeout(Some(Duration::from_secs(1)));
    clients.lock().expect("clients lock").insert(vid, w);
    let r = read_loop(&mut s, stop, |f| match f {
        Frame::Request {
            msg: msg @ (Msg::Write { .. } | Msg::Read { .. }),
        } => tx
            .send(Event::Msg {
                src: vid,
                msg,
                clock: 0,
                confirm: None,
            })
            .map_err(|_| String::new()),
        f => Err(format!(
            "clients may only send Write or Read requests, got {f:?}"
        )),
    });
    clients.lock().expect("clients lock").remove(&vid);
    if let Err(reason) = r {
        reject(&mut s, tag, reason);
    }
}

struct Host {
    id: usize,
    node: Node,
    state: Option<NodeState>,
    store: Option<SegmentStore>,
    trace: Option<TraceLog>,
    timers: HashMap<NodeTimer, Instant>,
    choices: BTreeMap<String, Vec<<Node as Actor>::Random>>,
    peers: HashMap<usize, SocketAddr>,
    listen: SocketAddr,
    faults: Option<FaultNet>,
    status: Arc<LeaseStatus>,
    /// No control plane: the writer renews its own lease (a static cluster).
    local_lease: bool,
    out: HashMap<usize, Outbound>,
    clients: Arc<Mutex<HashMap<usize, TcpStream>>>,
    clock: u64,
    delay: Duration,
    delayed: VecDeque<(Instant, Event)>,
    parked: VecDeque<(Instant, usize, Msg)>,
    sends: Vec<(usize, Msg, u64)>,
    confirms: Vec<(ConnHandle, u64)>,
    tag: String,
    stats: Arc<Stats>,
    rng: u64,
}

impl Host {
    fn new(
        spec: NodeSpec,
        opts: &NodeOptions,
        listen: SocketAddr,
        tag: String,
        clients: Arc<Mutex<HashMap<usize, TcpStream>>>,
        stats: Arc<Stats>,
        status: Arc<LeaseStatus>,
    ) -> Result<Host, HostError> {
        std::fs::create_dir_all(&spec.dir).map_err(|source| {
            HostError::Storage(StorageError::Io {
                path: spec.dir.clone(),
                source,
            })
        })?;
        let epoch = opts.epoch.max(FIRST_EPOCH);
        let is_writer = writer_epoch(spec.id).is_some();
        let node = if is_writer {
            Node::Writer(Writer {
                cfg: spec.cfg,
                segments: std::array::from_fn(Id::from),
                epoch,
            })
        } else {
            actors(spec.cfg).swap_remove(spec.id)
        };
        let (mut storage, mut disk_fresh) = (None, false);
        let store = if spec.id < SEGMENTS {
            let (store, rec) = SegmentStore::open(&spec.dir.join("segment.log"))?;
            let kept = rec.log.as_ref().map_or(0, |l| l.records().len());
            let epoch = rec.log.as_ref().map_or(FIRST_EPOCH, |l| l.epoch());
            let what = format!("{kept} record(s), epoch {epoch}");
            if let Some(d) = &rec.dropped {
                eprintln!(
                    "{tag}: recovery dropped {} byte(s) at offset {} of {} ({}); kept {} save(s): {what}",
                    d.bytes,
                    d.offset,
                    store.path().display(),
                    d.reason,
                    rec.frames
                );
            } else if rec.frames > 0 {
                eprintln!("{tag}: recovered {what}");
            }
            disk_fresh = rec.frames == 0 && rec.dropped.is_none();
            storage = rec.log.map(NodeStorage::Segment);
            Some(store)
        } else {
            None
        };
        let mut clock = 0;
        let mut crashed = false;
        let mut recorded = None;
        let trace = match &spec.trace {
            Some(p) => {
                let h = if is_writer {
                    header_upto(spec.cfg, epoch)
                } else {
                    header(spec.cfg)
                };
                let (t, prev) = TraceLog::open(p, &h)?;
                clock = prev.last_clock;
                crashed = prev.had_steps;
                recorded = prev.last_save;
                Some(t)
            }
            None => None,
        };
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        let mut host = Host {
            id: spec.id,
            node,
            state: None,
            store,
            trace,
            timers: HashMap::new(),
            choices: BTreeMap::new(),
            peers: spec.peers.into_iter().enumerate().collect(),
            listen,
            faults: opts.faults.clone().map(FaultNet::new),
            status,
            local_lease: is_writer && opts.control.is_none(),
            out: HashMap::new(),
            clients,
            clock,
            delay: spec.delay,
            delayed: VecDeque::new(),
            parked: VecDeque::new(),
            sends: Vec::new(),
            confirms: Vec::new(),
            tag,
            stats,
            rng: seed,
        };
        if crashed {
            let restart = host.reconcile(storage, &recorded, disk_fresh)?;
            storage = restart.1;
            host.step(restart.0, 0)?;
        }
        host.step(Input::Start { storage }, 0)?;
        host.settle(true)?;
        host.flush()?;
        Ok(host)
    }

    /// How a traced restart is written down, and from which storage it starts. The trace's last
    /// save is what the disk must hold. A disk that came back empty was replaced (`LoseDisk`).
    /// A disk that holds saves the trace never recorded (the process was killed mid-batch, before
    /// its trace lines or any of its messages left) is cut back to the trace's last save. Any
    /// other difference is left for replay to report.
    fn reconcile(
        &mut self,
        storage: Option<NodeStorage>,
        recorded: &Option<NodeStorage>,
        disk_fresh: bool,
    ) -> Result<(Input, Option<NodeStorage>), HostError> {
        if storage == *recorded {
            return Ok((Input::Crash, storage));
        }
        if disk_fresh {
            eprintln!(
                "{}: the disk came back empty: recorded as replaced",
                self.tag
            );
            return Ok((Input::LoseDisk, storage));
        }
        let target = recorded.as_ref().map(|NodeStorage::Segment(l)| l);
        if let Some(store) = &mut self.store {
            if store.rollback_to(target)? {
                eprintln!(
                    "{}: undid saves the trace never recorded (killed mid-batch)",
                    self.tag
                );
                return Ok((Input::Crash, recorded.clone()));
            }
        }
        Ok((Input::Crash, storage))
    }

    fn random_in(&mut self, r: &std::ops::Range<Duration>) -> Duration {
        let x = self.next_random();
        let span = r.end.saturating_sub(r.start).as_micros() as u64;
        r.start + Duration::from_micros(if span == 0 { 0 } else { x % span })
    }

    /// One step; returns whether it did anything (a message step that changes nothing is not a
    /// step, as in the model).
    fn step(&mut self, input: Input, in_clock: u64) -> Result<bool, HostError> {
        let (next, out) = trace::apply(&self.node, Id::from(self.id), self.state.as_ref(), &input);
        if matches!(input, Input::Msg { .. }) && out.is_empty() && next == self.state {
            return Ok(false);
        }
        if matches!(input, Input::Start { .. } | Input::Crash) {
            self.timers.clear();
            self.choices.clear();
        }
        self.clock = self.clock.max(in_clock) + 1;
        let now = Instant::now();
        for c in out.iter() {
            match c {
                Command::Send(dst, msg) => {
                    self.sends
                        .push((usize::from(*dst), msg.clone(), self.clock))
                }
                Command::SetTimer(t, range) => {
                    let at = now + self.random_in(range);
                    self.timers.insert(t.clone(), at);
                }
                Command::CancelTimer(t) => {
                    self.timers.remove(t);
                }
                Command::Save(NodeStorage::Segment(log)) => match &mut self.store {
                    Some(s) => s.save(log)?,
                    None => {
                        return Err(HostError::Spec(format!(
                            "{} saved a segment log but has no segment store",
                            self.tag
                        )))
                    }
                },
                Command::ChooseRandom(key, options) => {
                    if options.is_empty() {
                        self.choices.remove(key);
                    } else {
                        self.choices.insert(key.clone(), options.clone());
                    }
                }
            }
        }
        self.stats.steps.fetch_add(1, Ordering::Relaxed);
        if let Some(t) = &mut self.trace {
            // A peer's message carries the clock of the step that sent it (clients, the control
            // plane and the host's own lease renewal send 0): replay matches the two steps.
            let sent = match input {
                Input::Msg { .. } if in_clock > 0 => Some(in_clock),
                _ => None,
            };
            let step = Step {
                actor: self.id,
                input,
                outputs: trace::outputs(out),
                digest: next.as_ref().map(trace::digest),
            };
            t.write(&step, self.clock, sent)?;
        }
        self.state = next;
        if let Some(w) = self.state.as_ref().and_then(NodeState::as_writer) {
            self.status.lease.store(w.lease, Ordering::Relaxed);
            self.status.open.store(w.is_open(), Ordering::Relaxed);
            self.status.vdl.store(w.vdl, Ordering::Relaxed);
            self.status.started.store(true, Ordering::Release);
        }
        Ok(true)
    }

    /// Makes the batch's saves durable, then releases its sends and confirmations.
    fn flush(&mut self) -> Result<(), HostError> {
        if let Some(s) = &mut self.store {
            s.sync()?;
            self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(t) = &mut self.trace {
            t.flush()?;
        }
        for (dst, msg, clock) in std::mem::take(&mut self.sends) {
            if dst < CLIENT_ID_BASE {
                match self.faults.as_mut().map_or(Fate::Now, |f| f.fate(dst)) {
                    Fate::Now => self.send_peer(dst, msg, clock),
                    Fate::At(at) => self
                        .faults
                        .as_mut()
                        .expect("faults")
                        .hold(at, dst, msg, clock),
                    Fate::Lost => {}
                }
            } else {
                if self.faults.as_ref().is_some_and(|f| f.cut(Target::Clients)) {
                    continue;
                }
                let mut clients = self.clients.lock().expect("clients lock");
                if let Some(s) = clients.get_mut(&dst) {
                    if wire::write_frame(s, &Frame::Reply { msg }).is_err() {
                        clients.remove(&dst);
                    }
                }
            }
        }
        let mut confirms: Vec<(ConnHandle, u64)> = Vec::new();
        for (c, seq) in std::mem::take(&mut self.confirms) {
            match confirms.iter_mut().find(|(k, _)| Arc::ptr_eq(k, &c)) {
                Some((_, s)) => *s = (*s).max(seq),
                None => confirms.push((c, seq)),
            }
        }
        for (c, seq) in confirms {
            let mut s = c.lock().expect("conn lock");
            let _ = wire::write_frame(&mut *s, &Frame::Confirm { seq });
        }
        Ok(())
    }

    /// Queues a message on the link to peer `dst` (writers included, at the address they told).
    fn send_peer(&mut self, dst: usize, msg: Msg, clock: u64) {
        let Some(addr) = self.peers.get(&dst).copied() else {
            eprintln!("{}: no address for actor {dst}; dropping {msg:?}", self.tag);
            return;
        };
        let (src, me, tag) = (self.id as u64, Some(self.listen), self.tag.clone());
        let n = self
            .out
            .entry(dst)
            .or_insert_with(|| Outbound::start(src, me, dst as u64, addr, tag))
            .send(clock, msg);
        self.stats.peer_bytes.fetch_add(n as u64, Ordering::Relaxed);
        self.stats.peer_msgs.fetch_add(1, Ordering::Relaxed);
    }

    /// Sends the messages the fault injector held back whose time has come.
    fn release_held(&mut self) {
        let due = self.faults.as_mut().map(FaultNet::due).unwrap_or_default();
        for (dst, msg, clock) in due {
            self.send_peer(dst, msg, clock);
        }
    }

    /// Fires the lease timer if it is due (before any message is stepped, so a read is never
    /// served on a lease that has run out while the loop was busy). In a static cluster the
    /// host renews the lease instead.
    fn lease_check(&mut self) -> Result<bool, HostError> {
        let due = self
            .timers
            .get(&NodeTimer::Lease)
            .is_some_and(|t| *t <= Instant::now());
        if !due {
            return Ok(false);
        }
        self.timers.remove(&NodeTimer::Lease);
        if self.local_lease {
            let grant = Input::Msg {
                src: self.id,
                msg: Msg::LeaseGrant,
            };
            return self.step(grant, 0);
        }
        self.step(
            Input::Timer {
                timer: NodeTimer::Lease,
            },
            0,
        )
    }

    fn handle(&mut self, ev: Event) -> Result<bool, HostError> {
        let (src, msg, clock, confirm) = match ev {
            Event::Msg {
                src,
                msg,
                clock,
                confirm,
            } => (src, msg, clock, confirm),
            Event::Peer { src, addr } => {
                if self.peers.insert(src, addr) != Some(addr) {
                    self.out.remove(&src); // a new incarnation: reconnect to where it is now
                }
                return Ok(false);
            }
            Event::Grant { sent } => {
                if sent.elapsed() > GRANT_WINDOW {
                    return Ok(false); // too late: the control plane no longer counts on it
                }
                let grant = Input::Msg {
                    src: CONTROL_ID,
                    msg: Msg::LeaseGrant,
                };
                return self.step(grant, 0);
            }
        };
        if let Some(c) = confirm {
            self.confirms.push(c);
        }
        if let Some(f) = &self.faults {
            let cut = if src >= CLIENT_ID_BASE {
                f.cut(Target::Clients)
            } else {
                f.cut(Target::Peer(src))
            };
            if cut {
                return Ok(false);
            }
        }
        let mut changed = self.lease_check()?;
        let input = Input::Msg {
            src,
            msg: msg.clone(),
        };
        let did = self.step(input, clock)?;
        if !did && src >= CLIENT_ID_BASE {
            self.parked.push_back((Instant::now(), src, msg));
        }
        changed |= did;
        Ok(changed)
    }

    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// Makes the choices the actor left open (`Out::choose_random`): one option, picked at
    /// random, is fed back as an `Input::Choice` step, as the model's `SelectRandom` does.
    /// Returns whether any was made.
    fn resolve_choices(&mut self) -> Result<bool, HostError> {
        let mut any = false;
        // Bounded: a choice step may open new choices, but never unboundedly many.
        for _ in 0..1024 {
            let Some(key) = self.choices.keys().next().cloned() else {
                break;
            };
            let mut options = self.choices.remove(&key).unwrap_or_default();
            if options.is_empty() {
                continue;
            }
            let pick = (self.next_random() % options.len() as u64) as usize;
            let choice = options.swap_remove(pick);
            self.step(Input::Choice { choice }, 0)?;
            any = true;
        }
        Ok(any)
    }

    /// After a batch: make open choices and offer parked requests again until neither changes
    /// anything.
    fn settle(&mut self, mut changed: bool) -> Result<(), HostError> {
        for _ in 0..64 {
            changed |= self.resolve_choices()?;
            if !changed || self.parked.is_empty() {
                return Ok(());
            }
            changed = self.retry_parked()?;
        }
        Ok(())
    }

    fn retry_parked(&mut self) -> Result<bool, HostError> {
        let now = Instant::now();
        self.parked
            .retain(|(t, ..)| now.duration_since(*t) < PARK_TTL);
        let mut any = false;
        loop {
            let mut progressed = false;
            let mut still = VecDeque::new();
            while let Some((t, src, msg)) = self.parked.pop_front() {
                let input = Input::Msg {
                    src,
                    msg: msg.clone(),
                };
                if self.step(input, 0)? {
                    progressed = true;
                } else {
                    still.push_back((t, src, msg));
                }
            }
            self.parked = still;
            any |= progressed;
            if !progressed || self.parked.is_empty() {
                return Ok(any);
            }
        }
    }

    fn run(&mut self, rx: Receiver<Event>, stop: &AtomicBool) -> Result<(), HostError> {
        while !stop.load(Ordering::SeqCst) {
            let now = Instant::now();
            let mut wake = now + Duration::from_millis(50);
            if let Some(t) = self.timers.values().min() {
                wake = wake.min(*t);
            }
            if let Some((t, _)) = self.delayed.front() {
                wake = wake.min(*t);
            }
            if let Some(t) = self.faults.as_ref().and_then(FaultNet::next_due) {
                wake = wake.min(t);
            }
            let mut batch = Vec::new();
            match rx.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(ev) => batch.push(ev),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(ev) => batch.push(ev),
                    Err(_) => break,
                }
            }
            let mut changed = self.lease_check()?;
            let now = Instant::now();
            let ready: Vec<Event> = if self.delay.is_zero() {
                batch
            } else {
                for ev in batch {
                    self.delayed.push_back((now + self.delay, ev));
                }
                let mut ready = Vec::new();
                while self.delayed.front().is_some_and(|(t, _)| *t <= now) {
                    ready.push(self.delayed.pop_front().expect("front").1);
                }
                ready
            };
            for ev in ready {
                changed |= self.handle(ev)?;
            }
            let due: Vec<NodeTimer> = self
                .timers
                .iter()
                .filter(|(_, t)| **t <= now)
                .map(|(k, _)| k.clone())
                .collect();
            for timer in due {
                if timer == NodeTimer::Lease {
                    changed |= self.lease_check()?;
                    continue;
                }
                self.timers.remove(&timer);
                changed |= self.step(Input::Timer { timer }, 0)?;
            }
            self.settle(changed)?;
            self.flush()?;
            self.release_held();
        }
        Ok(())
    }
}

/// The writer's side of the lease: every [`HEARTBEAT_EVERY`] a [`Frame::Heartbeat`] to the
/// control plane at `control`; each [`Frame::Grant`] becomes an [`Event::Grant`] carrying when
/// its heartbeat was sent. Reconnects on failure; sends nothing while a fault cuts the control
/// plane off.
fn heartbeat_loop(
    control: SocketAddr,
    epoch: Epoch,
    tx: &Sender<Event>,
    status: &LeaseStatus,
    faults: Option<FaultNet>,
    stop: &AtomicBool,
) {
    let cut = || faults.as_ref().is_some_and(|f| f.cut(Target::Control));
    let mut seq = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let Ok(mut s) = TcpStream::connect_timeout(&control, Duration::from_millis(200)) else {
            std::thread::sleep(HEARTBEAT_EVERY);
            continue;
        };
        let _ = s.set_nodelay(true);
        let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
        let Ok(r) = s.try_clone() else { continue };
        let mut r = std::io::BufReader::new(r);
        let mut sent: VecDeque<(u64, Instant)> = VecDeque::new();
        'conn: while !stop.load(Ordering::SeqCst) {
            let beat = Instant::now();
            if !cut() && status.started.load(Ordering::Acquire) {
                seq += 1;
                let hb = Frame::Heartbeat {
                    epoch,
                    seq,
                    lease: status.lease.load(Ordering::Relaxed),
                    open: status.open.load(Ordering::Relaxed),
                    vdl: status.vdl.load(Ordering::Relaxed),
                };
                if wire::write_frame(&mut s, &hb).is_err() {
                    break;
                }
                sent.push_back((seq, beat));
                while sent.len() > 64 {
                    sent.pop_front();
                }
            }
            // Read grants until the next heartbeat is due.
            loop {
                let left = (beat + HEARTBEAT_EVERY).saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                let _ = s.set_read_timeout(Some(left));
                match wire::read_frame(&mut r) {
                    Ok(Frame::Grant { seq: g }) => {
                        let at = sent.iter().find(|(n, _)| *n == g).map(|(_, t)| *t);
                        if let (Some(sent), false) = (at, cut()) {
                            if tx.send(Event::Grant { sent }).is_err() {
                                return;
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(wire::WireError::Io(e))
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        break
                    }
                    Err(_) => break 'conn,
                }
            }
        }
    }
}
