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
use crate::protocol::msg::{Epoch, Key, Lsn, Msg, Record, ReqId, VolumeEpoch};
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
            Msg::Append { record, volume } => self.on_append(state, src, record, &volume, o),
            Msg::ReadAt {
                client,
                req,
                key,
                point,
                epoch,
            } => {
                if self.refused(state, src, epoch, None, o) {
                    return;
                }
                let reply = self.read(state, client, req, key, point);
                o.send(src, reply);
            }
            Msg::OpenQuery { epoch } => self.on_open_query(state, src, epoch, o),
            Msg::GossipPull { from } => {
                let records = state
                    .records()
                    .iter()
                    .filter(|r| r.lsn >= from)
                    .copied()
                    .collect();
                o.send(src, Msg::GossipPush { records });
            }
            Msg::GossipPush { records } => self.on_gossip_push(state, records, o),
            _ => {}
        }
    }

    /// Answers a request from a superseded epoch with `Fenced` (naming the Append's LSN, if it
    /// is one); returns whether it was refused.
    fn refused(
        &self,
        log: &Log,
        src: Id,
        epoch: Epoch,
        lsn: Option<Lsn>,
        o: &mut Out<impl Proto>,
    ) -> bool {
        let fenced = self.fenced(log, epoch);
        if fenced {
            o.send(
                src,
                Msg::Fenced {
                    epoch: log.epoch(),
                    lsn,
                },
            );
        }
        fenced
    }

    /// An Append: adopt the writer's epoch and truncations, insert the record, save, then ack
    /// with the SCL.
    fn on_append(
        &self,
        state: &mut Cow<Log>,
        src: Id,
        record: Record,
        volume: &VolumeEpoch,
        o: &mut Out<impl Proto>,
    ) {
        if self.refused(state, src, volume.number, Some(record.lsn), o) {
            return;
        }
        let mut log = state.as_ref().clone();
        let adopted = log.adopt(volume);
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
        let scl = state.scl();
        o.send(
            src,
            Msg::Ack {
                lsn: record.lsn,
                scl,
            },
        );
    }

    /// A single-node read: served only at a point within SCL (the mutants bend this rule).
    fn read(&self, log: &Log, client: Id, req: ReqId, key: Key, point: Lsn) -> Msg {
        let scl = log.scl();
        let version = if self.cfg.is(Mutant::ReadUnbounded) {
            Some(log.read_at(key, u64::MAX))
        } else if point <= scl || self.cfg.is(Mutant::ReadAnyNode) {
            Some(log.read_at(key, point))
        } else {
            None
        };
        Msg::ReadReply {
            client,
            req,
            key,
            version,
            scl,
        }
    }

    /// A (recovering) writer's quorum read: adopt its epoch durably, then report SCL and the
    /// known truncations.
    fn on_open_query(&self, state: &mut Cow<Log>, src: Id, epoch: Epoch, o: &mut Out<impl Proto>) {
        if self.refused(state, src, epoch, None, o) {
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

    /// A peer's answer to a pull: insert what is missing, save, and pull again if a gap is left.
    fn on_gossip_push(&self, state: &mut Cow<Log>, records: Vec<Record>, o: &mut Out<impl Proto>) {
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
}
