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
//! One job per file:
//! - this file: what a node is ([`NodeSpec`], [`NodeOptions`]), starting it ([`spawn_with`]) and
//!   stopping it ([`NodeHandle`]);
//! - `actors`: actor ids, names, and the trace header ([`header`], [`writer_epoch`]);
//! - `start`: recovery of the segment log and the trace file, and how a restart is recorded;
//! - `driver`: the step loop, which drives the actor as quinn's connection driver drives a
//!   quinn-proto connection;
//! - `inbound`: the accept loops and the threads that decode each connection into the loop's
//!   channel;
//! - `outbox`: everything that leaves (peer messages, client replies, confirmations), released
//!   after the batch's fsync;
//! - `heartbeat`: the writer's lease heartbeat client, the writer's side of [`crate::control`].
//!
//! Transport details that are not protocol:
//! - external clients connect to the writer's client port; each connection is given a virtual
//!   actor id ([`CLIENT_ID_BASE`] + n) and replies addressed to that id go back on it;
//! - a client request whose step changes nothing (the writer is still opening, or LAL
//!   back-pressure) is parked and offered again after every step that changed the state, as the
//!   model's network keeps such a message pending; parked requests expire after [`PARK_TTL`];
//! - `delay` holds every inbound message for a fixed time before the step (a slow node, for the
//!   benchmark), without reordering;
//! - a [`Faults`] spec drops, delays or partitions messages ([`crate::faults`]);
//! - every random decision of the loop (timer durations, open choices) comes from a generator
//!   seeded by [`crate::faults::runtime_seed`]: the fault spec's seed and the actor id, so one
//!   seed names one run (up to thread timing).
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
//!
//! [`Frame::Heartbeat`]: crate::wire::Frame::Heartbeat
//! [`Frame::Grant`]: crate::wire::Frame::Grant

mod actors;
mod driver;
mod heartbeat;
mod inbound;
mod outbox;
mod start;

pub use actors::{
    actors, actors_upto, header, header_upto, name, writer_epoch, writer_id, ACTORS,
    CLIENT_ID_BASE, CONTROL_ID, MAX_EPOCH, WRITER_ID,
};
pub use heartbeat::{GRANT_WINDOW, HEARTBEAT_EVERY};

use crate::faults::{self, FaultNet, Faults};
use crate::storage::StorageError;
use crate::trace_log::TraceLogError;
use driver::{Host, Wiring};
use heartbeat::LeaseStatus;
use outbox::{Clients, Outbox};
use sixfold_model::protocol::config::{Config, SEGMENTS};
use sixfold_model::protocol::msg::{Epoch, FIRST_EPOCH};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a parked client request waits for the writer before it is forgotten.
pub const PARK_TTL: Duration = Duration::from_secs(30);

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
    /// Faults to inject; their seed also seeds the node's random decisions
    /// ([`crate::faults::runtime_seed`]; without a spec, [`crate::faults::DEFAULT_SEED`]).
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

/// Counters a running node exposes (for the benchmark).
#[derive(Debug, Default)]
pub struct Stats {
    /// Bytes of protocol frames queued to peers (first transmission; resends not counted).
    pub peer_bytes: AtomicU64,
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

/// Binds the node's ports, recovers its disk and starts its threads (first-epoch writer, no
/// control plane, no faults).
pub fn spawn(spec: NodeSpec) -> Result<NodeHandle, HostError> {
    spawn_with(spec, NodeOptions::default())
}

/// [`spawn`] with a writer epoch, a control plane and faults.
///
/// Checks the spec, binds the peer port (and the writer's client port), starts the accept loops
/// and the heartbeat client, recovers the node and takes its first steps, then runs the step loop
/// on a thread of its own, which joins the others when it ends.
pub fn spawn_with(spec: NodeSpec, opts: NodeOptions) -> Result<NodeHandle, HostError> {
    let role = Role::of(&spec, &opts)?;
    let peer_listener = inbound::bind(role.listen)?;
    let client_listener = role.client.map(inbound::bind).transpose()?;
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Stats::default());
    let (tx, rx) = mpsc::channel();
    let tag = format!("sixfold[{}]", name(spec.id));
    let clients = Clients::default();
    let status = Arc::new(LeaseStatus::default());
    let mut threads = vec![inbound::serve_peers(
        peer_listener,
        tx.clone(),
        tag.clone(),
        stop.clone(),
    )];
    if let (true, Some(control)) = (role.writer, opts.control) {
        let cut = opts.faults.clone().map(FaultNet::new);
        let (tx, status, stop) = (tx.clone(), status.clone(), stop.clone());
        threads.push(heartbeat::spawn(control, role.epoch, tx, status, cut, stop));
    }
    if let Some(l) = client_listener {
        let (tx, clients, tag, stop) = (tx.clone(), clients.clone(), tag.clone(), stop.clone());
        threads.push(inbound::serve_clients(l, tx, clients, tag, stop));
    }
    drop(tx);
    let wiring = Wiring {
        status,
        local_lease: role.writer && opts.control.is_none(),
        delay: spec.delay,
        seed: faults::runtime_seed(opts.faults.as_ref(), spec.id),
        tag,
    };
    let host = match recover(&spec, &opts, &role, clients, stats.clone(), wiring) {
        Ok(h) => h,
        Err(e) => {
            stop.store(true, Ordering::SeqCst);
            return Err(e);
        }
    };
    let thread = drive(host, rx, stop.clone(), threads);
    Ok(NodeHandle {
        stop,
        thread: Some(thread),
        stats,
    })
}

/// What a spec makes of a node: its epoch, whether it is a writer, where it listens.
struct Role {
    epoch: Epoch,
    writer: bool,
    /// The peer port.
    listen: SocketAddr,
    /// The client port (writers only).
    client: Option<SocketAddr>,
}

impl Role {
    /// Checks that the spec and options are consistent.
    fn of(spec: &NodeSpec, opts: &NodeOptions) -> Result<Role, HostError> {
        let epoch = opts.epoch.max(FIRST_EPOCH);
        if epoch > MAX_EPOCH {
            return Err(HostError::Spec(format!(
                "epoch {epoch} is past the last one this runtime numbers ({MAX_EPOCH})"
            )));
        }
        let writer = writer_epoch(spec.id).is_some();
        if writer && spec.id != writer_id(epoch) {
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
        if spec.id >= ACTORS && !writer {
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
        let client = match (writer, spec.client_addr) {
            (false, _) => None,
            (true, Some(a)) => Some(a),
            (true, None) => {
                return Err(HostError::Spec("the writer needs a client address".into()))
            }
        };
        Ok(Role {
            epoch,
            writer,
            listen,
            client,
        })
    }
}

/// Recovers the node's disk and trace, then starts its outbox (and with it the fault schedule,
/// timed from here) and its step loop.
fn recover(
    spec: &NodeSpec,
    opts: &NodeOptions,
    role: &Role,
    clients: Clients,
    stats: Arc<Stats>,
    wiring: Wiring,
) -> Result<Host, HostError> {
    let node = if role.writer {
        actors::writer(spec.cfg, role.epoch)
    } else {
        actors(spec.cfg).swap_remove(spec.id)
    };
    let disk = start::open_store(spec, &wiring.tag)?;
    let header = || {
        if role.writer {
            header_upto(spec.cfg, role.epoch)
        } else {
            header(spec.cfg)
        }
    };
    let trace = start::open_trace(spec, header)?;
    let faults = opts.faults.clone().map(FaultNet::new);
    let (id, peers, tag) = (spec.id, spec.peers.clone(), wiring.tag.clone());
    let outbox = Outbox::new(id, role.listen, peers, clients, faults, tag, stats);
    Host::new(id, node, disk, trace, outbox, wiring)
}

/// Runs the step loop on the `actor` thread until `stop` (or an error, which stops the node);
/// then joins the node's other threads.
fn drive(
    mut host: Host,
    rx: Receiver<driver::Event>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
) -> JoinHandle<Result<(), HostError>> {
    std::thread::Builder::new()
        .name("actor".into())
        .spawn(move || {
            let r = host.run(rx, &stop);
            if let Err(e) = &r {
                eprintln!("{}: stopped: {e}", host.tag);
            }
            stop.store(true, Ordering::SeqCst);
            drop(host);
            for t in threads {
                let _ = t.join();
            }
            r
        })
        .expect("spawn actor thread")
}
