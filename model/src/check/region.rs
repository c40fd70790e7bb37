//! Model `region`: Aurora Global Database, the primary region's storage shipping redo
//! asynchronously to the secondary regions, with managed switchover, unplanned failover,
//! rejoin of a returning old primary, a managed RPO and write forwarding.
//!
//! # The system
//! Two regions by default (`--regions 3` allowed). Region 0 starts as the primary of region
//! epoch 1; the others are its secondaries. The actors and their steps
//! ([`crate::protocol::region`] holds every decision; this module only enumerates them):
//! - **the primary writer** of each region epoch makes the app's `writes` values durable in its
//!   region's storage and acknowledges them (two steps, so a fence or the RPO gate may fall in
//!   between). A superseded writer lives on as a zombie and keeps trying: nothing but the fence
//!   stops it;
//! - **a replication agent per secondary**: the primary's agent ships any durable record above
//!   what the secondary has acknowledged, at any moment and as often as it likes, over a network
//!   that reorders (a set of messages);
//! - **secondary storage** applies strictly in LSN order: a record that overtook its
//!   predecessor is dropped and shipped again;
//! - **secondary readers**: one client pinned to each region reads `reads` times while its
//!   region is a secondary;
//! - **a write-forwarding session** in region 1 forwards one write to the primary (retrying if
//!   it reached a superseded writer), then reads it back in its `--consistency` mode;
//! - **the global control plane** holds the region epoch and the primary. A *switchover* to a
//!   secondary fences the old primary (it adopts the next epoch and becomes read-only), waits
//!   until the target has applied everything the old primary holds, then promotes it. A
//!   *failover* waits out the old primary's region lease and promotes a secondary at once,
//!   with whatever it has applied (with `--rpo`, the most advanced one). Either way the other
//!   regions are told the new epoch and the promotion point; a region that receives the notice
//!   (the returning old primary among them, whenever its region comes back) discards what it
//!   holds above that point and rejoins as a secondary.
//!
//! # Refinement: a region's volume as one log
//! Each region's storage is the durable, VDL-ordered log that the `quorum` and `failover`
//! models prove a protection group presents: a write is durable once its record is at or below
//! VDL (a write quorum holds it and every record below), what is below VDL survives every
//! segment fault within AZ+1 ("durability"), a recovery keeps exactly the records up to a VDL
//! at least every acknowledged commit ("durability across failover", "no resurrection"), and a
//! superseded writer of the volume cannot get a record above that VDL acknowledged ("no stale
//! commit"). So every behaviour of a region's six segments, seen through VDL, is a behaviour of
//! a single log that only grows at its end, never loses a record at or below its end and is
//! written by one writer epoch at a time, and that is what [`RegionStorage`] is: `append` is a
//! commit reaching VDL, `log` is the records up to VDL, and the agent ships "records at or below
//! VDL", i.e. anything in `log`. A secondary region's volume is likewise a log applied by its own
//! (internal) writer in LSN order. Every region property below reads only those logs, so it
//! holds of the composed system whenever it holds here and the volume models' properties
//! hold. What the abstraction leaves out: the latency between a write and its VDL (a write
//! not yet durable is simply not yet appended, which the interleaving covers) and intra-region
//! failover of a region's own writer (the `failover` model; the region writer's epoch is the
//! region epoch, a volume epoch would sit below it). The composed configuration with real
//! segments is **not** checked here (the optional cross-check).
//!
//! **[choice]** Fused steps, each sound because it only removes intermediate states no other
//! step can observe:
//! - the failover's lease expiry and the promotion are one step: between the expiry and the
//!   promotion the old primary can do nothing (its storage refuses writes and acks), and every
//!   other step commutes with the expiry, so any interleaving there is reached by taking those
//!   steps first;
//! - the switchover's fence and its reply (the old primary's end) are one step: the control
//!   plane may still promote at any later moment, so a slower reply only postpones it;
//! - a secondary's applied point is acknowledged to the agent and the primary at once: a later
//!   acknowledgement only makes the agent resend more (no new state at the secondary) and the
//!   RPO gate block longer, so the instant one is the gate's most permissive behaviour, the one
//!   the loss bound must survive;
//! - a global read learns the primary's commit point when it begins: the real round trip
//!   learns a point at least as high, so waiting for this one is the weakest wait;
//! - lost messages: shipping is a set of messages the agent may add again at any time, so a lost
//!   record plus its resend is the same state as a delayed one. There is no separate loss
//!   action, since it would add no behaviour. Reordering does add behaviour: a record that
//!   overtakes its predecessor is dropped and has to be shipped again.
//!
//! # Bounds, what they reach and what they cannot
//! Unique states of `sixfold check region` (DFS, two threads, no symmetry: the regions have
//! roles), each row the defaults with one bound changed; every run passes. The defaults
//! (2 regions, 2 writes, 2 reads per reader, 1 promotion, no RPO, session reads) explore
//! 94,539 unique states at depth 26 in 0.2 s.
//!
//! | change | unique | what it adds |
//! |---|---|---|
//! | `--writes 1` | 6,692 | one write: no record can overtake another, and a failover loses at most one |
//! | (defaults) `--writes 2` | 94,539 | reordering (record 2 arrives first, is dropped, is shipped again), a loss of two |
//! | `--writes 3` | 1,168,992 (3.6 s) | longer divergent suffixes |
//! | `--reads 1` | 35,038 | no second read, so "monotonic reads" has no witness (not judged) |
//! | `--promotions 0` | 5,634 | replication alone: the fencing, switchover, failover and rejoin witnesses are not judged |
//! | `--promotions 2` | 684,513 | switchover after failover, a rejoined old primary promoted again |
//! | `--rpo 1` | 70,347 | *fewer* states: acknowledgements wait for a secondary, and a failover still loses one |
//! | `--rpo 0` | 43,307 | no failover loses an acknowledged commit (that witness is not judged) |
//! | `--consistency eventual` | 112,767 | reads served at once: only the properties every mode shares |
//! | `--consistency global` | 199,291 | the read point taken from the primary, and its property |
//! | `--regions 3` | 14,085,612 (60 s) | a lagging third region that rejoins too, a choice of failover target |
//!
//! `sixfold simulate region` walks three regions, four writes, two reads per reader and three
//! promotions ([`RegionBounds::walk`]). Those walks found two protocol bugs and one
//! over-strict property, all fixed before the first commit: a region that slept through a
//! promotion rejoined at the last promotion point instead of the lowest one since the epoch it
//! followed ([`RegionStorage::rejoin`] now takes the history of points); under `--rpo` a
//! failover right after a failover lost the records the new primary had inherited, which the
//! gate never held back ([`crate::protocol::region::failover_target_ok`] now refuses it); and a
//! secondary that had not heard of a failover served a record the failover had discarded,
//! which "monotonic reads" must not count as a floor.
//!
//! Not reached at any bound: a region losing its storage outright (the volume models' fault
//! budget forbids it), the primary's writer failing over inside its own region, clocks (the
//! lease is an event: the control plane waits it out, as in `failover`), more than one
//! forwarding session, and a switchover abandoned for a failover.
//!
//! # Properties
//! Judged on the state or on the ghost history ([`Ghost`]); each invariant is followed in
//! [`PROPS`] by a witness that shows it is not vacuous.
//! - **prefix**: every secondary's log is a prefix of the durable log of the primary of the
//!   epoch it follows (the ghost keeps each epoch's log as it grew). Witness: a secondary has
//!   applied a record. Mutant `apply-out-of-order`.
//! - **no split brain**: once an epoch is superseded (a newer primary is promoted), none of its
//!   writers gets another commit acknowledged. Witness: a superseded writer is refused.
//!   Mutant `no-region-fence` (after a switchover the fenced old primary still takes writes).
//! - **switchover loses nothing**: the promoted target holds every acknowledged commit.
//!   Witness: a switchover after a commit. Mutant `switchover-no-wait`.
//! - **failover loss is bounded**: a failover loses only acknowledged commits above the
//!   promoted secondary's applied point, and at most K with `--rpo K`. Witness: a failover loses
//!   a commit. Mutant `rpo-ignored` (at `--rpo 1`, two commits lost).
//! - **no divergent read**: no secondary serves a record that is not in the log of the epoch it
//!   follows, so a rejoined old primary never serves its discarded suffix. Witness: a rejoin
//!   discards a record. Mutant `rejoin-keeps-suffix`.
//! - **monotonic reads**: a reader pinned to a secondary never reads an older LSN than before,
//!   except below records a failover has discarded since (down to its promotion point).
//!   Witness: a second read returns a newer record.
//! - **session reads see own writes** (`session`): the forwarding session's read returns a log
//!   that holds its acknowledged write, unless a failover lost it. Witness: it does. Mutant
//!   `session-no-wait`.
//! - **global reads see prior commits** (`global`): the read returns a log holding every commit
//!   acknowledged before it began and not lost by a failover. Witness: it holds one.
//!
//! Counterexamples are printed step by step ([`RegionState::summary`]); the trace file holds
//! only a header naming the property, since no runtime replays this model yet.

use crate::check::properties::Kind;
use crate::protocol::config::{Config, Mutant};
use crate::protocol::region::{
    agent_ships, failover_target_ok, read_ready, rpo_allows_ack, switchover_may_promote,
    Consistency, Lsn, Origin, ReadPoint, Rec, RegionEpoch, RegionId, RegionStorage, RegionWriter,
    Role,
};
use stateright::{Expectation, Model, Property};
use std::collections::BTreeSet;

/// The region of the write-forwarding session.
pub const SESSION_REGION: RegionId = 1;
/// The value the session forwards (app values are 1, 2, …).
pub const SESSION_VALUE: u8 = 100;

/// What the `region` model explores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionBounds {
    /// Regions: 2 or 3.
    pub regions: u8,
    /// App writes.
    pub writes: u8,
    /// Reads per secondary reader.
    pub reads: u8,
    /// Switchovers and failovers, in total.
    pub promotions: u8,
    /// The managed RPO, if any: commits block while every secondary lags by more than K.
    pub rpo: Option<Lsn>,
    /// The forwarding session's read consistency.
    pub consistency: Consistency,
}

impl Default for RegionBounds {
    /// Two regions, two writes, two reads per reader, one promotion, no RPO, session reads.
    fn default() -> Self {
        RegionBounds {
            regions: 2,
            writes: 2,
            reads: 2,
            promotions: 1,
            rpo: None,
            consistency: Consistency::Session,
        }
    }
}

impl RegionBounds {
    /// The deep bounds `sixfold simulate region` walks: three regions, four writes, two reads
    /// per reader and a chain of three promotions; far beyond what exhaustive search finishes,
    /// and no proof. `rpo-ignored` walks them with `--rpo 1`, which it needs.
    pub fn walk(mutant: Option<Mutant>) -> Self {
        RegionBounds {
            regions: 3,
            writes: 4,
            reads: 2,
            promotions: 3,
            ..RegionBounds::for_mutant(mutant)
        }
    }

    /// The bounds a mutant is checked at by default: `rpo-ignored` needs the gate (`--rpo 1`,
    /// so the loss must exceed one record); every other one the defaults.
    pub fn for_mutant(mutant: Option<Mutant>) -> Self {
        match mutant {
            Some(Mutant::RpoIgnored) => RegionBounds {
                rpo: Some(1),
                ..RegionBounds::default()
            },
            _ => RegionBounds::default(),
        }
    }
}

/// A message between regions (the network is a set: it reorders and merges resends).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RegionMsg {
    /// A record the primary of `epoch` shipped to a secondary.
    Ship {
        /// The secondary.
        to: RegionId,
        /// The shipping primary's epoch.
        epoch: RegionEpoch,
        /// The record.
        rec: Rec,
    },
    /// The control plane's notice of a promotion: follow `epoch`. It carries the promotion
    /// point of every epoch up to `epoch`, which is [`Control::starts`] up to it (that list only
    /// grows), so the model reads it there instead of copying it into the message.
    Rejoin {
        /// The region told.
        to: RegionId,
        /// The new epoch.
        epoch: RegionEpoch,
    },
    /// The session's write, forwarded to the writer of `epoch`.
    Forward {
        /// The epoch the session's region follows.
        epoch: RegionEpoch,
    },
}

/// A switchover under way: its target and the fenced old primary's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Switchover {
    /// The secondary to promote.
    pub target: RegionId,
    /// What the fenced old primary holds.
    pub end: Lsn,
}

/// The global control plane.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Control {
    /// The LSN at which each epoch's primary was promoted, by epoch − 1 (0 for epoch 1).
    pub starts: Vec<Lsn>,
    /// The region epoch.
    pub epoch: RegionEpoch,
    /// The primary region of `epoch`.
    pub primary: RegionId,
    /// A switchover that has fenced the old primary and waits for its target.
    pub switchover: Option<Switchover>,
    /// Promotions made.
    pub promotions: u8,
}

/// The forwarding session's progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Session {
    /// Nothing forwarded yet (or refused: it forwards again).
    Idle,
    /// Forwarded, not yet acknowledged.
    Forwarded,
    /// Acknowledged at this point.
    Written(ReadPoint),
    /// A global read began: it waits for `wait`; `before` commits had been acknowledged.
    Reading {
        /// The primary's commit point when it began.
        wait: ReadPoint,
        /// How many commits had been acknowledged then.
        before: u8,
    },
    /// Its read was served.
    Done,
}

/// A violation or a witness recorded in the ghost history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum Event {
    /// A writer of a superseded epoch got a commit acknowledged.
    SplitBrain = 1,
    /// A switchover promoted a target that misses an acknowledged commit.
    SwitchoverLost = 1 << 1,
    /// A failover lost a commit at or below the promoted secondary's applied point.
    LossBelowPoint = 1 << 2,
    /// A failover lost more than K acknowledged commits under `--rpo K`.
    LossOverK = 1 << 3,
    /// A secondary served a record that is not in the log of the epoch it follows.
    DivergentRead = 1 << 4,
    /// A client read an older record than it had read before.
    NonMonotonic = 1 << 5,
    /// A session read missed the session's own acknowledged write.
    SessionMissed = 1 << 6,
    /// A global read missed a commit acknowledged before it began.
    GlobalMissed = 1 << 7,
    /// A superseded writer's write was refused.
    ZombieRefused = 1 << 8,
    /// A switchover completed after a commit.
    SwitchedAfterCommit = 1 << 9,
    /// A failover lost an acknowledged commit.
    FailoverLost = 1 << 10,
    /// A rejoin discarded a divergent record.
    RejoinDiscarded = 1 << 11,
    /// A client read a newer record than before.
    NewerRead = 1 << 12,
    /// A session read saw the session's own write.
    SessionSaw = 1 << 13,
    /// A global read saw a commit acknowledged before it began.
    GlobalSaw = 1 << 14,
}

/// The history of a run, kept beside the state so the properties can judge it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Ghost {
    /// The durable log of each epoch's primary as it grew (values by LSN), by epoch − 1.
    pub epoch_logs: Vec<Vec<u8>>,
    /// Every acknowledged commit, in order.
    pub acked: Vec<Rec>,
    /// The values of acknowledged commits a promotion lost, sorted.
    pub lost: Vec<u8>,
    /// Per reader (by region): the LSN of its last read, if it has read.
    pub floors: Vec<Option<Lsn>>,
    /// The [`Event`]s seen, as bits.
    pub events: u16,
}

impl Ghost {
    /// Whether `e` happened.
    pub fn saw(&self, e: Event) -> bool {
        self.events & e as u16 != 0
    }

    fn note(&mut self, e: Event) {
        self.events |= e as u16;
    }

    fn is_lost(&self, rec: &Rec) -> bool {
        self.lost.binary_search(&rec.value).is_ok()
    }

    /// Whether `rec` is the record at its LSN of epoch `e`'s log.
    fn in_epoch_log(&self, e: RegionEpoch, rec: Rec) -> bool {
        self.epoch_logs[usize::from(e) - 1].get(usize::from(rec.lsn) - 1) == Some(&rec.value)
    }
}

/// A state of the `region` model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RegionState {
    /// The control plane.
    pub control: Control,
    /// Each region's storage.
    pub storages: Vec<RegionStorage>,
    /// The writer of each epoch, by epoch − 1; all but the last are superseded.
    pub writers: Vec<RegionWriter>,
    /// Messages in flight.
    pub net: BTreeSet<RegionMsg>,
    /// App writes issued.
    pub app_written: u8,
    /// Reads left per reader, by region.
    pub reads_left: Vec<u8>,
    /// The forwarding session.
    pub session: Session,
    /// The history.
    pub history: Ghost,
}

impl RegionState {
    /// The applied points of the secondaries of epoch `e`.
    fn secondaries_of(&self, e: RegionEpoch) -> impl Iterator<Item = Lsn> + '_ {
        self.storages
            .iter()
            .filter(move |s| s.is_secondary_of(e))
            .map(RegionStorage::applied)
    }

    /// Whether every secondary's log is a prefix of the durable log of the epoch it follows.
    pub fn prefix_holds(&self) -> bool {
        self.storages
            .iter()
            .filter(|s| s.role == Role::Secondary)
            .all(|s| {
                s.log.iter().enumerate().all(|(i, r)| {
                    usize::from(r.lsn) == i + 1 && self.history.in_epoch_log(s.follows, *r)
                })
            })
    }
}

/// One step of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegionAction {
    /// The writer of this epoch makes the next app write durable (or is refused).
    Write(RegionEpoch),
    /// The writer of this epoch acknowledges the commit at this LSN.
    Ack(RegionEpoch, Lsn),
    /// The agent of the primary `from` ships a record to `to`.
    Ship {
        /// The primary region.
        from: RegionId,
        /// The secondary region.
        to: RegionId,
        /// The record shipped.
        rec: Rec,
    },
    /// The network delivers a message.
    Deliver(RegionMsg),
    /// A switchover to this region begins: the old primary is fenced.
    Fence(RegionId),
    /// The switchover under way promotes its target.
    Promote,
    /// An unplanned failover promotes this region.
    Failover(RegionId),
    /// The reader pinned to this region reads.
    Read(RegionId),
    /// The session forwards its write.
    Forward,
    /// The session's global read begins.
    BeginGlobal,
    /// The session's read is served.
    SessionRead,
}

/// The `region` model.
#[derive(Clone, Debug)]
pub struct RegionModel {
    /// The protocol configuration (its mutant).
    pub cfg: Config,
    /// The bounds.
    pub bounds: RegionBounds,
}

impl RegionModel {
    /// The model of `cfg` within `bounds`.
    pub fn new(cfg: Config, bounds: RegionBounds) -> Self {
        RegionModel { cfg, bounds }
    }

    fn regions(&self) -> RegionId {
        usize::from(self.bounds.regions)
    }

    /// A promotion to `t`, by switchover (`failover` false) or failover: the loss accounting,
    /// then the new epoch, its primary and writer, and the notice to every other region.
    fn promote(&self, s: &mut RegionState, t: RegionId, failover: bool) {
        let keep = s.storages[t].applied();
        let lost: Vec<Rec> = s
            .history
            .acked
            .iter()
            .filter(|r| {
                !s.history.is_lost(r) && s.storages[t].log.get(usize::from(r.lsn) - 1) != Some(*r)
            })
            .copied()
            .collect();
        let h = &mut s.history;
        if failover {
            if lost.iter().any(|r| r.lsn <= keep) {
                h.note(Event::LossBelowPoint);
            }
            if self.bounds.rpo.is_some_and(|k| lost.len() > usize::from(k)) {
                h.note(Event::LossOverK);
            }
            if !lost.is_empty() {
                h.note(Event::FailoverLost);
            }
            for f in h.floors.iter_mut().flatten() {
                *f = (*f).min(keep);
            }
        } else if !lost.is_empty() {
            h.note(Event::SwitchoverLost);
        } else if !h.acked.is_empty() {
            h.note(Event::SwitchedAfterCommit);
        }
        h.lost.extend(lost.iter().map(|r| r.value));
        h.lost.sort_unstable();
        let epoch = s.control.epoch + 1;
        s.control.epoch = epoch;
        s.control.primary = t;
        s.control.switchover = None;
        s.control.promotions += 1;
        s.control.starts.push(keep);
        s.storages[t].promote(epoch);
        h.epoch_logs
            .push(s.storages[t].log.iter().map(|r| r.value).collect());
        s.writers.push(RegionWriter::new(epoch, t, keep));
        for to in (0..self.regions()).filter(|&r| r != t) {
            s.net.insert(RegionMsg::Rejoin { to, epoch });
        }
    }

    /// Whether `t` may be the target of a promotion now.
    fn may_target(&self, s: &RegionState, t: RegionId) -> bool {
        s.control.switchover.is_none()
            && s.control.promotions < self.bounds.promotions
            && s.storages[t].is_secondary_of(s.control.epoch)
    }

    /// A write of the writer of `epoch`: durable, or refused (noted if it is a zombie's).
    fn write(&self, s: &mut RegionState, epoch: RegionEpoch, value: u8, origin: Origin) -> bool {
        let w = &mut s.writers[usize::from(epoch) - 1];
        match w.write(&self.cfg, &mut s.storages[w.region], value, origin) {
            Some(_) => {
                s.history.epoch_logs[usize::from(epoch) - 1].push(value);
                true
            }
            None => {
                if s.control.epoch > epoch {
                    s.history.note(Event::ZombieRefused);
                }
                false
            }
        }
    }

    /// A read served by secondary `r`: noted as divergent if it is not in the log of the epoch
    /// `r` follows.
    fn serve(s: &mut RegionState, r: RegionId) -> Rec {
        let st = &s.storages[r];
        let rec = st.serve_read();
        if rec.lsn > 0 && !s.history.in_epoch_log(st.follows, rec) {
            s.history.note(Event::DivergentRead);
        }
        rec
    }

    /// A secondary reader's read, judged against the client's previous one. Its floor for the
    /// next read is what the history still holds of this one: a storage that has not yet heard
    /// of a failover may serve a record above that failover's promotion point, which the
    /// failover has already discarded, so the floor is cut to the lowest promotion point of the
    /// epochs after the one the storage follows (found by walks of three promotions).
    fn read(s: &mut RegionState, r: RegionId) {
        let rec = Self::serve(s, r);
        let later = &s.control.starts[usize::from(s.storages[r].follows)..];
        let held = later.iter().copied().fold(rec.lsn, Lsn::min);
        if let Some(floor) = s.history.floors[r] {
            if rec.lsn < floor {
                s.history.note(Event::NonMonotonic);
            } else if rec.lsn > floor {
                s.history.note(Event::NewerRead);
            }
        }
        s.history.floors[r] = Some(held);
        s.reads_left[r] -= 1;
    }

    /// The session's read, served: judged against its own write and, for a global read, every
    /// commit acknowledged before it began.
    fn session_read(&self, s: &mut RegionState) {
        let r = SESSION_REGION;
        Self::serve(s, r);
        let log = &s.storages[r].log;
        let has = |rec: &Rec| log.get(usize::from(rec.lsn) - 1) == Some(rec);
        let h = &s.history;
        let own = h.acked.iter().find(|a| a.value == SESSION_VALUE).copied();
        let mut noted = Vec::new();
        match (self.bounds.consistency, s.session) {
            (Consistency::Session, _) => match own {
                Some(own) if !h.is_lost(&own) && !has(&own) => noted.push(Event::SessionMissed),
                Some(own) if has(&own) => noted.push(Event::SessionSaw),
                _ => {}
            },
            (Consistency::Global, Session::Reading { before, .. }) => {
                let prior: Vec<&Rec> = h.acked[..usize::from(before)]
                    .iter()
                    .filter(|a| !h.is_lost(a))
                    .collect();
                if prior.iter().any(|a| !has(a)) {
                    noted.push(Event::GlobalMissed);
                } else if !prior.is_empty() {
                    noted.push(Event::GlobalSaw);
                }
            }
            _ => {}
        }
        for e in noted {
            s.history.note(e);
        }
        s.session = Session::Done;
    }

    /// What the session's read waits for, in its mode.
    fn session_wait(&self, s: &RegionState) -> Option<Option<ReadPoint>> {
        match (self.bounds.consistency, s.session) {
            (Consistency::Eventual, Session::Written(_)) => Some(None),
            (Consistency::Session, Session::Written(own)) => Some(Some(own)),
            (Consistency::Global, Session::Reading { wait, .. }) => Some(Some(wait)),
            _ => None,
        }
    }
}

impl RegionState {
    /// One line per actor, for counterexamples: the control plane, each region's storage
    /// (`P`/`S`, adopted epoch / epoch followed, lease, log as `lsn=value`), the writers'
    /// pending records, the messages in flight and the session.
    pub fn summary(&self) -> String {
        let c = &self.control;
        let mut out = format!(
            "control: epoch {} primary r{} starts {:?}",
            c.epoch, c.primary, c.starts
        );
        if let Some(sw) = c.switchover {
            out += &format!(", switchover to r{} waits for {}", sw.target, sw.end);
        }
        for (r, st) in self.storages.iter().enumerate() {
            let role = if st.role == Role::Primary { "P" } else { "S" };
            let log: Vec<String> = st
                .log
                .iter()
                .map(|x| format!("{}={}", x.lsn, x.value))
                .collect();
            out += &format!(
                "\nr{r}: {role} e{}/f{}{} log[{}]",
                st.epoch,
                st.follows,
                if st.lease { " lease" } else { "" },
                log.join(" ")
            );
        }
        for w in &self.writers {
            out += &format!(
                "\nwriter e{} in r{}: pending {:?}, committed {}",
                w.epoch, w.region, w.pending, w.committed
            );
        }
        out += &format!(
            "\nnet: {:?}\nsession: {:?}; acked {:?}",
            self.net, self.session, self.history.acked
        );
        out
    }
}

impl Model for RegionModel {
    type State = RegionState;
    type Action = RegionAction;

    fn format_step(&self, last: &RegionState, action: RegionAction) -> Option<String> {
        self.next_state(last, action).map(|s| s.summary())
    }

    fn init_states(&self) -> Vec<RegionState> {
        let n = self.regions();
        let storages = (0..n)
            .map(|r| {
                if r == 0 {
                    RegionStorage::primary()
                } else {
                    RegionStorage::secondary()
                }
            })
            .collect();
        vec![RegionState {
            control: Control {
                starts: vec![0],
                epoch: 1,
                primary: 0,
                switchover: None,
                promotions: 0,
            },
            storages,
            writers: vec![RegionWriter::new(1, 0, 0)],
            net: BTreeSet::new(),
            app_written: 0,
            reads_left: vec![self.bounds.reads; n],
            session: Session::Idle,
            history: Ghost {
                epoch_logs: vec![Vec::new()],
                floors: vec![None; n],
                ..Ghost::default()
            },
        }]
    }

    fn actions(&self, s: &RegionState, actions: &mut Vec<RegionAction>) {
        for w in &s.writers {
            if s.app_written < self.bounds.writes {
                actions.push(RegionAction::Write(w.epoch));
            }
            for &(lsn, _) in &w.pending {
                actions.push(RegionAction::Ack(w.epoch, lsn));
            }
        }
        for (from, p) in s.storages.iter().enumerate() {
            for (to, sec) in s.storages.iter().enumerate().filter(|(to, _)| *to != from) {
                for rec in agent_ships(p, sec.applied()) {
                    let msg = RegionMsg::Ship {
                        to,
                        epoch: p.follows,
                        rec,
                    };
                    if !s.net.contains(&msg) {
                        actions.push(RegionAction::Ship { from, to, rec });
                    }
                }
            }
        }
        actions.extend(s.net.iter().map(|m| RegionAction::Deliver(*m)));
        for t in (0..self.regions()).filter(|&t| self.may_target(s, t)) {
            actions.push(RegionAction::Fence(t));
            actions.push(RegionAction::Failover(t));
        }
        if s.control.switchover.is_some() {
            actions.push(RegionAction::Promote);
        }
        for r in 0..self.regions() {
            if s.reads_left[r] > 0 && s.storages[r].role == Role::Secondary {
                actions.push(RegionAction::Read(r));
            }
        }
        let at_secondary = s.storages[SESSION_REGION].role == Role::Secondary;
        match s.session {
            Session::Idle if at_secondary => actions.push(RegionAction::Forward),
            Session::Written(_) if self.bounds.consistency == Consistency::Global => {
                actions.push(RegionAction::BeginGlobal)
            }
            _ => {}
        }
        if at_secondary && self.session_wait(s).is_some() {
            actions.push(RegionAction::SessionRead);
        }
    }

    fn next_state(&self, last: &RegionState, action: RegionAction) -> Option<RegionState> {
        let mut s = last.clone();
        match action {
            RegionAction::Write(e) => {
                let value = s.app_written + 1;
                if self.write(&mut s, e, value, Origin::App) {
                    s.app_written += 1;
                } else if s.history == last.history {
                    return None;
                }
            }
            RegionAction::Ack(e, lsn) => {
                let gate = rpo_allows_ack(&self.cfg, self.bounds.rpo, lsn, s.secondaries_of(e));
                let w = &mut s.writers[usize::from(e) - 1];
                let storage = &s.storages[w.region];
                let origin = w.ack(&self.cfg, storage, gate, lsn)?;
                let rec = storage.log[usize::from(lsn) - 1];
                s.history.acked.push(rec);
                if s.control.epoch > e {
                    s.history.note(Event::SplitBrain);
                }
                if origin == Origin::Session {
                    s.session = Session::Written(ReadPoint { epoch: e, lsn });
                }
            }
            RegionAction::Ship { from, to, rec } => {
                let epoch = s.storages[from].follows;
                s.net.insert(RegionMsg::Ship { to, epoch, rec });
            }
            RegionAction::Deliver(m) => {
                s.net.remove(&m);
                match m {
                    RegionMsg::Ship { to, epoch, rec } => {
                        s.storages[to].apply(&self.cfg, epoch, rec);
                    }
                    RegionMsg::Rejoin { to, epoch } => {
                        let starts = &s.control.starts;
                        if s.storages[to].rejoin(&self.cfg, epoch, starts) > 0 {
                            s.history.note(Event::RejoinDiscarded);
                        }
                    }
                    RegionMsg::Forward { epoch } => {
                        if !self.write(&mut s, epoch, SESSION_VALUE, Origin::Session) {
                            s.session = Session::Idle;
                        }
                    }
                }
            }
            RegionAction::Fence(t) => {
                let p = s.control.primary;
                let end = s.storages[p].fence(s.control.epoch + 1);
                s.control.switchover = Some(Switchover { target: t, end });
            }
            RegionAction::Promote => {
                let sw = s.control.switchover?;
                let applied = s.storages[sw.target].applied();
                if !switchover_may_promote(&self.cfg, applied, sw.end) {
                    return None;
                }
                self.promote(&mut s, sw.target, false);
            }
            RegionAction::Failover(t) => {
                let best = s.secondaries_of(s.control.epoch).max().unwrap_or(0);
                let start = s.control.starts[usize::from(s.control.epoch) - 1];
                let target = s.storages[t].applied();
                if !failover_target_ok(self.bounds.rpo, target, best, start) {
                    return None;
                }
                let p = s.control.primary;
                s.storages[p].lease = false;
                self.promote(&mut s, t, true);
            }
            RegionAction::Read(r) => Self::read(&mut s, r),
            RegionAction::Forward => {
                let epoch = s.storages[SESSION_REGION].follows;
                s.net.insert(RegionMsg::Forward { epoch });
                s.session = Session::Forwarded;
            }
            RegionAction::BeginGlobal => {
                let epoch = s.control.epoch;
                let lsn = s.writers[usize::from(epoch) - 1].committed;
                s.session = Session::Reading {
                    wait: ReadPoint { epoch, lsn },
                    before: s.history.acked.len() as u8,
                };
            }
            RegionAction::SessionRead => {
                let wait = self.session_wait(&s)?;
                let mode = self.bounds.consistency;
                if !read_ready(&self.cfg, mode, &s.storages[SESSION_REGION], wait) {
                    return None;
                }
                self.session_read(&mut s);
            }
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        PROPS
            .iter()
            .zip(CONDITIONS)
            .filter(|(p, _)| (p.applies)(&self.bounds))
            .map(|(p, condition)| Property {
                expectation: match p.kind {
                    Kind::Always => Expectation::Always,
                    Kind::Sometimes => Expectation::Sometimes,
                },
                name: p.name,
                condition,
            })
            .collect()
    }
}

/// One property of the `region` model: the shape of [`crate::check::properties::Prop`] (name,
/// kind, what it reads, condition, the mutants it catches, where it applies), over a
/// [`RegionState`] and [`RegionBounds`].
pub struct RegionProp {
    /// Its name, as printed in verdict tables.
    pub name: &'static str,
    /// Invariant or witness.
    pub kind: Kind,
    /// What it reads, for people.
    pub judges: &'static str,
    /// The condition.
    pub holds: fn(&RegionState) -> bool,
    /// The mutants it must catch.
    pub catches: &'static [Mutant],
    /// Whether it applies at these bounds.
    pub applies: fn(&RegionBounds) -> bool,
}

const fn always(
    name: &'static str,
    judges: &'static str,
    holds: fn(&RegionState) -> bool,
    catches: &'static [Mutant],
) -> RegionProp {
    RegionProp {
        name,
        kind: Kind::Always,
        judges,
        holds,
        catches,
        applies: |_| true,
    }
}

const fn sometimes(name: &'static str, holds: fn(&RegionState) -> bool) -> RegionProp {
    RegionProp {
        name,
        kind: Kind::Sometimes,
        judges: "ghost",
        holds,
        catches: &[],
        applies: |_| true,
    }
}

/// Whether the control plane promotes at all: the witnesses of fencing, switchover, failover
/// and rejoin need one.
fn promoting(b: &RegionBounds) -> bool {
    b.promotions > 0
}

const fn only(p: RegionProp, applies: fn(&RegionBounds) -> bool) -> RegionProp {
    RegionProp { applies, ..p }
}

/// The `region` model's properties: eight invariants, each followed by its witness.
pub const PROPS: &[RegionProp] = &[
    always(
        "prefix",
        "secondary logs, ghost epoch logs",
        RegionState::prefix_holds,
        &[Mutant::ApplyOutOfOrder],
    ),
    sometimes("a secondary applies a record", |s| {
        s.storages
            .iter()
            .any(|st| st.role == Role::Secondary && st.applied() > 0)
    }),
    always(
        "no split brain",
        "ghost",
        |s| !s.history.saw(Event::SplitBrain),
        &[Mutant::NoRegionFence],
    ),
    only(
        sometimes("a superseded writer is refused", |s| {
            s.history.saw(Event::ZombieRefused)
        }),
        promoting,
    ),
    always(
        "switchover loses nothing",
        "ghost",
        |s| !s.history.saw(Event::SwitchoverLost),
        &[Mutant::SwitchoverNoWait],
    ),
    only(
        sometimes("a switchover completes after a commit", |s| {
            s.history.saw(Event::SwitchedAfterCommit)
        }),
        promoting,
    ),
    always(
        "failover loss is bounded",
        "ghost",
        |s| !s.history.saw(Event::LossBelowPoint) && !s.history.saw(Event::LossOverK),
        &[Mutant::RpoIgnored],
    ),
    only(
        sometimes("a failover loses a commit", |s| {
            s.history.saw(Event::FailoverLost)
        }),
        |b| b.rpo != Some(0) && promoting(b),
    ),
    always(
        "no divergent read",
        "ghost",
        |s| !s.history.saw(Event::DivergentRead),
        &[Mutant::RejoinKeepsSuffix],
    ),
    only(
        sometimes("a rejoin discards a divergent record", |s| {
            s.history.saw(Event::RejoinDiscarded)
        }),
        promoting,
    ),
    always(
        "monotonic reads",
        "ghost",
        |s| !s.history.saw(Event::NonMonotonic),
        &[],
    ),
    only(
        sometimes("a client reads a newer record", |s| {
            s.history.saw(Event::NewerRead)
        }),
        |b| b.reads >= 2,
    ),
    only(
        always(
            "session reads see own writes",
            "ghost",
            |s| !s.history.saw(Event::SessionMissed),
            &[Mutant::SessionNoWait],
        ),
        |b| b.consistency == Consistency::Session,
    ),
    only(
        sometimes("a session read sees its own write", |s| {
            s.history.saw(Event::SessionSaw)
        }),
        |b| b.consistency == Consistency::Session,
    ),
    only(
        always(
            "global reads see prior commits",
            "ghost",
            |s| !s.history.saw(Event::GlobalMissed),
            &[],
        ),
        |b| b.consistency == Consistency::Global,
    ),
    only(
        sometimes("a global read sees a prior commit", |s| {
            s.history.saw(Event::GlobalSaw)
        }),
        |b| b.consistency == Consistency::Global,
    ),
];

/// Property `I` of [`PROPS`] as the plain `fn` Stateright needs.
fn condition<const I: usize>(_: &RegionModel, s: &RegionState) -> bool {
    (PROPS[I].holds)(s)
}

/// One condition per entry of [`PROPS`].
const CONDITIONS: [fn(&RegionModel, &RegionState) -> bool; 16] = [
    condition::<0>,
    condition::<1>,
    condition::<2>,
    condition::<3>,
    condition::<4>,
    condition::<5>,
    condition::<6>,
    condition::<7>,
    condition::<8>,
    condition::<9>,
    condition::<10>,
    condition::<11>,
    condition::<12>,
    condition::<13>,
    condition::<14>,
    condition::<15>,
];

/// The property `mutant` must break in the `region` model, if it is one of this model's.
pub fn catching_mutant(mutant: Mutant) -> Option<&'static str> {
    PROPS
        .iter()
        .find(|p| p.catches.contains(&mutant))
        .map(|p| p.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_condition_table_covers_the_list_and_names_are_unique() {
        assert_eq!(PROPS.len(), CONDITIONS.len());
        let mut names: Vec<&str> = PROPS.iter().map(|p| p.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PROPS.len());
    }

    #[test]
    fn every_invariant_has_a_witness_after_it() {
        for pair in PROPS.chunks(2) {
            assert_eq!(pair[0].kind, Kind::Always, "{}", pair[0].name);
            assert_eq!(pair[1].kind, Kind::Sometimes, "{}", pair[1].name);
        }
    }
}
