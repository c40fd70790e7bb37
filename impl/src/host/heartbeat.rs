//! The lease heartbeat client: the writer's side of the lease book in [`crate::control`].
//!
//! A writer started with a control plane ([`super::NodeOptions::control`]) runs this on a thread
//! of its own: every [`HEARTBEAT_EVERY`] it sends a [`Frame::Heartbeat`] carrying what its step
//! loop last published ([`LeaseStatus`]: whether it holds its lease, is open, and its VDL). Each
//! [`Frame::Grant`] the control plane sends back becomes an [`Event::Grant`] stamped with when
//! the heartbeat it answers was sent. The step loop steps it as `Msg::LeaseGrant` from
//! [`super::CONTROL_ID`] only within [`GRANT_WINDOW`] of that instant, and drops it otherwise (as a
//! lossy network may). So the writer's lease ends at most `GRANT_WINDOW + LEASE` after the control
//! plane sent its last grant, which is what the lease book waits out before it lets another
//! writer be promoted.
//!
//! The client reconnects whenever the connection fails, and sends nothing, and takes no grant,
//! while a fault cuts the writer off from the control plane ([`Target::Control`]).

use super::driver::Event;
use crate::faults::{FaultNet, Target};
use crate::wire::{self, Frame, WireError};
use sixfold_model::protocol::msg::Epoch;
use std::collections::VecDeque;
use std::io::{BufReader, ErrorKind};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a writer with a control plane sends a heartbeat.
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(50);
/// A grant is stepped only this soon after the heartbeat it answers; later ones are dropped, so
/// the control plane knows when a lease it granted ends at the latest.
pub const GRANT_WINDOW: Duration = Duration::from_millis(100);
/// Most heartbeats remembered while waiting for their grants.
const REMEMBERED: usize = 64;

/// What the writer's step loop tells the control plane through heartbeats, published after every
/// step.
#[derive(Debug, Default)]
pub(super) struct LeaseStatus {
    /// Set once the writer has started: no heartbeat goes out before.
    started: AtomicBool,
    lease: AtomicBool,
    open: AtomicBool,
    vdl: AtomicU64,
}

impl LeaseStatus {
    /// Publishes the writer's state after a step.
    pub(super) fn publish(&self, lease: bool, open: bool, vdl: u64) {
        self.lease.store(lease, Ordering::Relaxed);
        self.open.store(open, Ordering::Relaxed);
        self.vdl.store(vdl, Ordering::Relaxed);
        self.started.store(true, Ordering::Release);
    }
}

/// Starts the heartbeat client of the writer of `epoch`, talking to the control plane at
/// `control`; it ends when `stop` is set or the step loop is gone.
pub(super) fn spawn(
    control: SocketAddr,
    epoch: Epoch,
    tx: Sender<Event>,
    status: Arc<LeaseStatus>,
    faults: Option<FaultNet>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let client = Client {
            epoch,
            tx,
            status,
            faults,
            seq: 0,
        };
        client.run(control, &stop)
    })
}

/// Whether a connection ended because it failed (reconnect) or because the step loop is gone.
enum Ended {
    Failed,
    LoopGone,
}

struct Client {
    epoch: Epoch,
    tx: Sender<Event>,
    status: Arc<LeaseStatus>,
    /// The writer's faults, for partitions from the control plane only.
    faults: Option<FaultNet>,
    /// The last heartbeat's number (they are numbered across connections).
    seq: u64,
}

impl Client {
    fn cut(&self) -> bool {
        self.faults.as_ref().is_some_and(|f| f.cut(Target::Control))
    }

    /// Connects, and reconnects after every failure, until `stop`.
    fn run(mut self, control: SocketAddr, stop: &AtomicBool) {
        while !stop.load(Ordering::SeqCst) {
            let Ok(s) = TcpStream::connect_timeout(&control, Duration::from_millis(200)) else {
                std::thread::sleep(HEARTBEAT_EVERY);
                continue;
            };
            let _ = s.set_nodelay(true);
            let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
            let Ok(r) = s.try_clone() else { continue };
            if let Ended::LoopGone = self.beat(s, BufReader::new(r), stop) {
                return;
            }
        }
    }

    /// Heartbeats on one connection, reading grants in between, until it fails or `stop`.
    fn beat(&mut self, mut s: TcpStream, mut r: BufReader<TcpStream>, stop: &AtomicBool) -> Ended {
        let mut sent: VecDeque<(u64, Instant)> = VecDeque::new();
        while !stop.load(Ordering::SeqCst) {
            let beat = Instant::now();
            if !self.cut() && self.status.started.load(Ordering::Acquire) {
                self.seq += 1;
                let hb = Frame::Heartbeat {
                    epoch: self.epoch,
                    seq: self.seq,
                    lease: self.status.lease.load(Ordering::Relaxed),
                    open: self.status.open.load(Ordering::Relaxed),
                    vdl: self.status.vdl.load(Ordering::Relaxed),
                };
                if wire::write_frame(&mut s, &hb).is_err() {
                    return Ended::Failed;
                }
                sent.push_back((self.seq, beat));
                while sent.len() > REMEMBERED {
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
                        if let (Some(sent), false) = (at, self.cut()) {
                            if self.tx.send(Event::Grant { sent }).is_err() {
                                return Ended::LoopGone;
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(WireError::Io(e))
                        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                    {
                        break
                    }
                    Err(_) => return Ended::Failed,
                }
            }
        }
        Ended::Failed
    }
}
