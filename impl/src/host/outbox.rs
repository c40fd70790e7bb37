//! Everything that leaves a node: messages to peers, replies to clients and confirmations of the
//! frames peers sent, held until the step loop's group commit and then released in that order.
//!
//! The step loop hands every `Send` of a batch to [`Outbox::send`] and every confirmation it
//! owes to [`Outbox::confirm`]; nothing is written before [`Outbox::release`], which the loop
//! calls only after the batch's fsync, so no message leaves before the save it follows is
//! durable and no peer frame is confirmed before it is. Then:
//! - a message to a peer (writers included, at the address they told in their hello) passes
//!   through the fault net ([`crate::faults`]: lost, held back, or sent now) and is queued on the
//!   link to that peer ([`Outbound`]: its own thread, reconnects, resends what was not confirmed);
//! - a message to a client id ([`CLIENT_ID_BASE`] + n) is written as a [`Frame::Reply`] on that
//!   client's connection ([`Clients`]), unless a fault cuts the node off from its clients;
//! - confirmations go back on the connections the frames came in on ([`Confirms`]).
//!
//! The outbox also owns the node's [`FaultNet`], so the fault schedule is one: a partition that
//! drops what this node sends also drops what it receives ([`Outbox::cut_off_from`]).

use super::{Stats, CLIENT_ID_BASE};
use crate::faults::{Fate, FaultNet, Target};
use crate::transport::{ConfirmLink, Confirms, Outbound};
use crate::wire::{self, Frame};
use sixfold_model::protocol::msg::Msg;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The connections of the clients of this node, by virtual actor id: registered by their
/// connection threads, written by the outbox.
#[derive(Clone, Default)]
pub(super) struct Clients(Arc<Mutex<HashMap<usize, TcpStream>>>);

impl Clients {
    /// Registers the write half of client `vid`'s connection (writes time out after a second);
    /// false if it cannot be cloned (the connection is gone).
    pub(super) fn register(&self, vid: usize, s: &TcpStream) -> bool {
        let Ok(w) = s.try_clone() else { return false };
        let _ = w.set_write_timeout(Some(Duration::from_secs(1)));
        self.0.lock().expect("clients lock").insert(vid, w);
        true
    }

    /// Forgets client `vid` (its connection closed).
    pub(super) fn forget(&self, vid: usize) {
        self.0.lock().expect("clients lock").remove(&vid);
    }

    /// Writes a reply to client `vid`, if it is still connected; forgets it if the write fails.
    fn reply(&self, vid: usize, msg: Msg) {
        let mut clients = self.0.lock().expect("clients lock");
        if let Some(s) = clients.get_mut(&vid) {
            if wire::write_frame(s, &Frame::Reply { msg }).is_err() {
                clients.remove(&vid);
            }
        }
    }
}

/// What leaves a node, held until the batch it belongs to is durable.
pub(super) struct Outbox {
    /// The node's actor id, sent in the hello of every link.
    id: usize,
    /// Where the node listens for peers, sent in the hello of every link.
    listen: SocketAddr,
    tag: String,
    /// Every peer's address, by actor id (a writer's as it told in its hello).
    peers: HashMap<usize, SocketAddr>,
    /// The link to each peer sent to so far.
    links: HashMap<usize, Outbound>,
    clients: Clients,
    faults: Option<FaultNet>,
    /// The batch's sends: destination, message, and the clock of the step that sent it.
    sends: Vec<(usize, Msg, u64)>,
    confirms: Confirms,
    stats: Arc<Stats>,
}

impl Outbox {
    /// The outbox of actor `id`, listening at `listen`, with `peers`' addresses by actor id.
    pub(super) fn new(
        id: usize,
        listen: SocketAddr,
        peers: Vec<SocketAddr>,
        clients: Clients,
        faults: Option<FaultNet>,
        tag: String,
        stats: Arc<Stats>,
    ) -> Outbox {
        Outbox {
            id,
            listen,
            tag,
            peers: peers.into_iter().enumerate().collect(),
            links: HashMap::new(),
            clients,
            faults,
            sends: Vec::new(),
            confirms: Confirms::default(),
            stats,
        }
    }

    /// Holds a message of the step with Lamport clock `clock` until [`Outbox::release`].
    pub(super) fn send(&mut self, dst: usize, msg: Msg, clock: u64) {
        self.sends.push((dst, msg, clock));
    }

    /// Owes the peer on `link` a confirmation of its frames up to `seq`, sent at release.
    pub(super) fn confirm(&mut self, link: ConfirmLink, seq: u64) {
        self.confirms.owe(link, seq);
    }

    /// Peer `src` said it listens at `addr`; a new address is a new incarnation, so the link to
    /// it is dropped and reconnects there on the next send.
    pub(super) fn peer_at(&mut self, src: usize, addr: SocketAddr) {
        if self.peers.insert(src, addr) != Some(addr) {
            self.links.remove(&src);
        }
    }

    /// Whether a fault cuts the node off from `src` (a peer, or a client id) now: its messages
    /// are dropped on arrival.
    pub(super) fn cut_off_from(&self, src: usize) -> bool {
        let target = if src >= CLIENT_ID_BASE {
            Target::Clients
        } else {
            Target::Peer(src)
        };
        self.faults.as_ref().is_some_and(|f| f.cut(target))
    }

    /// When the next message the fault net held back is due.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.faults.as_ref().and_then(FaultNet::next_due)
    }

    /// Releases the batch (call only after its fsync): the sends in the order they were made,
    /// then the confirmations.
    pub(super) fn release(&mut self) {
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
            } else if !self.faults.as_ref().is_some_and(|f| f.cut(Target::Clients)) {
                self.clients.reply(dst, msg);
            }
        }
        self.confirms.release();
    }

    /// Sends the messages the fault net held back whose time has come.
    pub(super) fn release_held(&mut self) {
        let due = self.faults.as_mut().map(FaultNet::due).unwrap_or_default();
        for (dst, msg, clock) in due {
            self.send_peer(dst, msg, clock);
        }
    }

    /// Queues a message on the link to peer `dst`, starting the link on first use.
    fn send_peer(&mut self, dst: usize, msg: Msg, clock: u64) {
        let Some(addr) = self.peers.get(&dst).copied() else {
            eprintln!("{}: no address for actor {dst}; dropping {msg:?}", self.tag);
            return;
        };
        let (src, me, tag) = (self.id as u64, Some(self.listen), self.tag.clone());
        let n = self
            .links
            .entry(dst)
            .or_insert_with(|| Outbound::start(src, me, dst as u64, addr, tag))
            .send(clock, msg);
        self.stats.peer_bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}
