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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::actor::Node;
    use crate::protocol::msg::tests::record;
    use crate::protocol::msg::{Truncation, FIRST_EPOCH};
    use stateright::actor::Command;

    const WRITER: usize = 6;

    fn volume(number: Epoch) -> VolumeEpoch {
        VolumeEpoch {
            number,
            truncations: Vec::new(),
        }
    }

    /// Delivers `msg` from the writer to segment 0 holding `log`; returns the new log and the
    /// commands of the step.
    fn deliver(log: &Log, msg: Msg) -> (Log, Commands) {
        let node = StorageNode::new(Config::new(None));
        let mut o: Out<Node> = Out::new();
        let mut state = Cow::Borrowed(log);
        node.on_msg(&mut state, Id::from(WRITER), msg, &mut o);
        (state.into_owned(), cmds(o))
    }

    type Commands = Vec<Command<Msg, NodeTimer, Choice, NodeStorage>>;

    fn cmds(o: Out<Node>) -> Commands {
        o.into_iter().collect()
    }

    fn saves(commands: &[Command<Msg, NodeTimer, Choice, NodeStorage>]) -> usize {
        commands
            .iter()
            .filter(|c| matches!(c, Command::Save(_)))
            .count()
    }

    /// A duplicate Append changes nothing durable: it is acknowledged again, with no save.
    #[test]
    fn a_duplicate_append_is_acked_without_a_save() {
        let mut log = Log::default();
        assert!(log.insert(record(1, FIRST_EPOCH)));
        let append = Msg::Append {
            record: record(1, FIRST_EPOCH),
            volume: VolumeEpoch::first(),
        };
        let (after, commands) = deliver(&log, append);
        assert_eq!(after, log);
        assert_eq!(saves(&commands), 0);
        assert!(matches!(
            commands.as_slice(),
            [Command::Send(_, Msg::Ack { lsn: 1, scl: 1 })]
        ));
    }

    /// An OpenQuery of the epoch the segment already has saves nothing; a newer one is saved
    /// before the report.
    #[test]
    fn an_open_query_saves_only_a_newer_epoch() {
        let log = Log::default();
        let (after, commands) = deliver(&log, Msg::OpenQuery { epoch: FIRST_EPOCH });
        assert_eq!(after, log);
        assert_eq!(saves(&commands), 0);
        assert_eq!(commands.len(), 1, "only the report");
        let (after, commands) = deliver(&log, Msg::OpenQuery { epoch: 2 });
        assert_eq!(after.epoch(), 2);
        assert_eq!(saves(&commands), 1);
        assert!(matches!(
            commands.last(),
            Some(Command::Send(_, Msg::SclReport { scl: 0, .. }))
        ));
        let (_, commands) = deliver(&after, Msg::OpenQuery { epoch: 1 });
        assert!(
            matches!(
                commands.as_slice(),
                [Command::Send(
                    _,
                    Msg::Fenced {
                        epoch: 2,
                        lsn: None
                    }
                )]
            ),
            "an older writer's query is refused"
        );
    }

    /// An Append that brings only a newer epoch (its record is already there) is saved for the
    /// epoch; one whose record a truncation voids is saved for the truncation and acked
    /// without the record.
    #[test]
    fn an_append_saves_what_it_adopts_even_without_its_record() {
        let mut log = Log::default();
        assert!(log.insert(record(1, FIRST_EPOCH)));
        let (after, commands) = deliver(
            &log,
            Msg::Append {
                record: record(1, FIRST_EPOCH),
                volume: volume(2),
            },
        );
        assert_eq!(after.epoch(), 2);
        assert_eq!(saves(&commands), 1);
        let t = Truncation {
            epoch: 3,
            after: 0,
            upto: 8,
        };
        let (after, commands) = deliver(
            &after,
            Msg::Append {
                record: record(2, 2),
                volume: VolumeEpoch {
                    number: 3,
                    truncations: vec![t],
                },
            },
        );
        assert!(after.records().is_empty(), "both records are void");
        assert_eq!(after.scl(), 8);
        assert!(matches!(
            commands.as_slice(),
            [Command::Save(NodeStorage::Segment(saved)), Command::Send(_, Msg::Ack { lsn: 2, scl: 8 })]
                if *saved == after
        ));
    }

    /// A gap arms gossip on restart and on the step that opens it, and its closing cancels it.
    #[test]
    fn gossip_is_armed_while_a_gap_is_visible() {
        let node = StorageNode::new(Config::new(None));
        let mut gap = Log::default();
        assert!(gap.insert(record(2, FIRST_EPOCH)));
        let mut o: Out<Node> = Out::new();
        assert_eq!(node.on_start(&Some(gap.clone()), &mut o), gap);
        assert!(matches!(
            cmds(o).as_slice(),
            [Command::SetTimer(NodeTimer::Gossip, _)]
        ));
        let mut o: Out<Node> = Out::new();
        assert_eq!(node.on_start(&None, &mut o), Log::default());
        assert!(o.is_empty(), "no gap on a fresh disk");
        let open = |r| Msg::Append {
            record: r,
            volume: VolumeEpoch::first(),
        };
        let (after, commands) = deliver(&Log::default(), open(record(2, FIRST_EPOCH)));
        assert_eq!(after, gap);
        assert!(commands
            .iter()
            .any(|c| matches!(c, Command::SetTimer(NodeTimer::Gossip, _))));
        let (_, commands) = deliver(&gap, open(record(1, FIRST_EPOCH)));
        assert!(commands
            .iter()
            .any(|c| matches!(c, Command::CancelTimer(NodeTimer::Gossip))));
    }

    /// The gossip timer offers every other segment; a pick asks it from the first missing LSN;
    /// the peer answers with what it holds from there; nothing happens once the gap is closed.
    #[test]
    fn a_gossip_round_pulls_from_scl_plus_one() {
        let node = StorageNode::new(Config::new(None));
        let mut gap = Log::default();
        for l in [1, 3] {
            assert!(gap.insert(record(l, FIRST_EPOCH)));
        }
        let me = Id::from(2);
        let mut o: Out<Node> = Out::new();
        node.on_timeout(me, &mut Cow::Borrowed(&gap), &NodeTimer::Gossip, &mut o);
        let offered = cmds(o);
        let [Command::ChooseRandom(_, peers)] = offered.as_slice() else {
            panic!("one choice: {offered:?}");
        };
        let peers: Vec<Option<usize>> = peers.iter().map(Choice::segment).collect();
        assert_eq!(peers, [0, 1, 3, 4, 5].map(Some));
        let mut o: Out<Node> = Out::new();
        node.on_timeout(me, &mut Cow::Borrowed(&gap), &NodeTimer::Lease, &mut o);
        assert!(o.is_empty(), "not the gossip timer");
        let mut o: Out<Node> = Out::new();
        node.on_random(
            &mut Cow::Borrowed(&gap),
            &Choice::PullFrom { segment: 4 },
            &mut o,
        );
        assert!(matches!(
            cmds(o).as_slice(),
            [Command::Send(to, Msg::GossipPull { from: 2 })] if usize::from(*to) == 4
        ));
        let mut full = gap.clone();
        assert!(full.insert(record(2, FIRST_EPOCH)));
        let (_, commands) = deliver(&full, Msg::GossipPull { from: 2 });
        assert!(matches!(
            commands.as_slice(),
            [Command::Send(_, Msg::GossipPush { records })]
                if *records == [record(2, FIRST_EPOCH), record(3, FIRST_EPOCH)]
        ));
        let mut o: Out<Node> = Out::new();
        node.on_timeout(me, &mut Cow::Borrowed(&full), &NodeTimer::Gossip, &mut o);
        assert!(o.is_empty(), "no gap left");
        let (after, commands) = deliver(
            &gap,
            Msg::GossipPush {
                records: vec![record(2, FIRST_EPOCH), record(3, FIRST_EPOCH)],
            },
        );
        assert_eq!(after, full);
        assert!(matches!(
            commands.as_slice(),
            [Command::Save(NodeStorage::Segment(saved))] if *saved == full
        ));
    }

    /// A read is served at a point within SCL, refused (with the SCL) above it.
    #[test]
    fn a_read_is_served_only_within_scl() {
        let mut log = Log::default();
        for l in [1, 3] {
            assert!(log.insert(record(l, FIRST_EPOCH)));
        }
        let read = |point| Msg::ReadAt {
            client: Id::from(7),
            req: 0,
            key: 0,
            point,
            epoch: FIRST_EPOCH,
        };
        let (_, commands) = deliver(&log, read(1));
        assert!(matches!(
            commands.as_slice(),
            [Command::Send(_, Msg::ReadReply { version: Some(v), scl: 1, .. })]
                if *v == record(1, FIRST_EPOCH).version()
        ));
        let (_, commands) = deliver(&log, read(3));
        assert!(matches!(
            commands.as_slice(),
            [Command::Send(
                _,
                Msg::ReadReply {
                    version: None,
                    scl: 1,
                    ..
                }
            )]
        ));
    }
}
