//! The storage node (segment): persist, then ack with SCL; serve single-node reads within SCL.
//!
//! **Epochs and truncation.** Every writer request carries the writer's epoch. A segment that has
//! seen a newer epoch refuses it with `Fenced` (a superseded writer's writes, reads and queries
//! all bounce); one that sees a newer epoch adopts it, durably, before acting. Writes also carry
//! every truncation range declared so far: the segment drops the
//! records they void, never inserts one again (from the writer or from gossip), and counts the
//! ranges as complete when it computes SCL. The epoch and the ranges are part of the saved log,
//! so a restart forgets neither.
//!
//! Segments have no vote. They never wait for one another and never refuse a record: they make it
//! durable (`Out::save`), then acknowledge it with their SCL so the writer can advance PGCL.
//!
//! **Gossip repair.** A segment that holds a record above SCL + 1 knows it has a gap (an Append
//! was lost or is late) and arms [`NodeTimer::Gossip`]. When the timer fires and the gap is still
//! there it leaves open which peer to pull from (a [`Choice::PullFrom`], so the model checker
//! explores every peer), sends that peer `GossipPull { from: SCL + 1 }` and the peer answers with
//! every record it holds from there on (`GossipPush`). The segment inserts what it lacks (the log
//! is idempotent), saves, and re-arms the timer if a gap is left. **[choice]** The timer is not
//! armed while a pull is in flight (at most one pull per segment), which keeps the model small;
//! a pull whose answer is lost leaves the gap to the next restart or the next new gap. A gap at
//! the tail (the newest record never arrived) is invisible to the segment until a newer record
//! arrives.

use crate::protocol::config::{Config, Mutant, SEGMENTS};
use crate::protocol::effects::Choice;
use crate::protocol::effects::Proto;
use crate::protocol::effects::{NodeStorage, NodeTimer};
use crate::protocol::log::Log;
use crate::protocol::msg::{Epoch, Msg};
use stateright::actor::{Id, Out};
use std::borrow::Cow;
use std::ops::Range;
use std::time::Duration;

/// How long a segment waits, once it has seen a gap, before pulling the missing records.
pub const GOSSIP: Range<Duration> = Duration::from_millis(100)..Duration::from_millis(200);

/// The `choose_random` key of the gossip peer choice.
const GOSSIP_CHOICE: &str = "gossip";

/// Whether the segment knows of an LSN above SCL + 1 (a record, or the end of a truncation
/// range): a gap it can see.
pub fn has_gap(log: &Log) -> bool {
    log.horizon() > log.scl()
}

/// A segment's step functions. The volatile state and the durable storage are both a [`Log`]:
/// after a crash the segment restarts from what it saved, nothing more.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StorageNode {
    /// The protocol configuration.
    pub cfg: Config,
    /// The segments of the protection group (this one included), by segment index.
    pub peers: [Id; SEGMENTS],
}

impl StorageNode {
    /// A segment of the protection group made of actors `0..SEGMENTS`, the layout every model
    /// and the runtime use.
    pub fn new(cfg: Config) -> Self {
        StorageNode {
            cfg,
            peers: std::array::from_fn(Id::from),
        }
    }

    /// Restart from the durable log, or start empty on a fresh disk; a restored gap arms gossip.
    pub fn on_start(&self, storage: &Option<Log>, o: &mut Out<impl Proto>) -> Log {
        let log = storage.clone().unwrap_or_default();
        if has_gap(&log) {
            o.set_timer(NodeTimer::Gossip, GOSSIP);
        }
        log
    }

    /// The gossip timer fired: if the gap is still there, offer every peer to pull from.
    pub fn on_timeout(
        &self,
        id: Id,
        state: &mut Cow<Log>,
        timer: &NodeTimer,
        o: &mut Out<impl Proto>,
    ) {
        if *timer != NodeTimer::Gossip || !has_gap(state) {
            return;
        }
        let choices: Vec<Choice> = (0..SEGMENTS)
            .filter(|&i| self.peers[i] != id)
            .map(|segment| Choice::PullFrom { segment })
            .collect();
        o.choose_random(GOSSIP_CHOICE, choices);
    }

    /// A peer was picked: ask it for everything from the first missing LSN on.
    pub fn on_random(&self, state: &mut Cow<Log>, choice: &Choice, o: &mut Out<impl Proto>) {
        if let Choice::PullFrom { segment } = *choice {
            if has_gap(state) {
                o.send(
                    self.peers[segment],
                    Msg::GossipPull {
                        from: state.scl() + 1,
                    },
                );
            }
        }
    }

    /// Whether a request from `epoch` must be refused: the segment has seen a newer epoch.
    fn fenced(&self, log: &Log, epoch: Epoch) -> bool {
        epoch < log.epoch() && !self.cfg.is(Mutant::NoFencing)
    }

    /// Save `saved` and make `log` the new state, arming or cancelling the gossip timer if a
    /// gap opened or closed.
    fn commit(&self, state: &mut Cow<Log>, log: Log, saved: Log, o: &mut Out<impl Proto>) {
        o.save(NodeStorage::Segment(saved));
        match (has_gap(state), has_gap(&log)) {
            (false, true) => o.set_timer(NodeTimer::Gossip, GOSSIP),
            (true, false) => o.cancel_timer(NodeTimer::Gossip),
            _ => {}
        }
        *state.to_mut() = log;
    }

    /// Handle one message; `o` collects the sends and the save.
    pub fn on_msg(&self, state: &mut Cow<Log>, src: Id, msg: Msg, o: &mut Out<impl Proto>) {
        match msg {
            Msg::Append { record, volume } => {
                if self.fenced(state, volume.number) {
                    let epoch = state.epoch();
                    o.send(
                        src,
                        Msg::Fenced {
                            epoch,
                            lsn: Some(record.lsn),
                        },
                    );
                    return;
                }
                let mut log = state.as_ref().clone();
                let adopted = log.adopt(&volume);
                let before = log.clone();
                let inserted = log.insert(record);
                if adopted || inserted {
                    let saved = if inserted && self.cfg.is(Mutant::AckBeforePersist) {
                        // The write-back lags: what reaches disk is the log before this record.
                        before
                    } else {
                        log.clone()
                    };
                    self.commit(state, log, saved, o);
                }
                o.send(
                    src,
                    Msg::Ack {
                        lsn: record.lsn,
                        scl: state.scl(),
                    },
                );
            }
            Msg::ReadAt {
                client,
                req,
                key,
                point,
                epoch,
            } => {
                if self.fenced(state, epoch) {
                    let epoch = state.epoch();
                    o.send(src, Msg::Fenced { epoch, lsn: None });
                    return;
                }
                let scl = state.scl();
                let version = if self.cfg.is(Mutant::ReadUnbounded) {
                    Some(state.read_at(key, u64::MAX))
                } else if point <= scl || self.cfg.is(Mutant::ReadAnyNode) {
                    Some(state.read_at(key, point))
                } else {
                    None
                };
                o.send(
                    src,
                    Msg::ReadReply {
                        client,
                        req,
                        key,
                        version,
                        scl,
                    },
                );
            }
            Msg::OpenQuery { epoch } => {
                if self.fenced(state, epoch) {
                    let epoch = state.epoch();
                    o.send(src, Msg::Fenced { epoch, lsn: None });
                    return;
                }
                if epoch > state.epoch() {
                    let mut log = state.as_ref().clone();
                    log.raise_epoch(epoch);
                    self.commit(state, log.clone(), log, o);
                }
                o.send(
                    src,
                    Msg::SclReport {
                        scl: state.scl(),
                        truncations: state.truncations().to_vec(),
                    },
                );
            }
            Msg::GossipPull { from } => {
                let records = state
                    .records()
                    .iter()
                    .filter(|r| r.lsn >= from)
                    .copied()
                    .collect();
                o.send(src, Msg::GossipPush { records });
            }
            Msg::GossipPush { records } => {
                let mut log = state.as_ref().clone();
                let mut grew = false;
                for r in records {
                    grew |= if self.cfg.is(Mutant::GossipIgnoresTruncation) {
                        log.insert_unchecked(r)
                    } else {
                        log.insert(r)
                    };
                }
                if grew {
                    o.save(NodeStorage::Segment(log.clone()));
                }
                let gap = has_gap(&log);
                if grew {
                    *state.to_mut() = log;
                }
                if gap {
                    o.set_timer(NodeTimer::Gossip, GOSSIP);
                }
            }
            _ => {}
        }
    }
}
