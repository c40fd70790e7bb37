//! Regional asynchronous replication (Aurora Global Database): the step functions of a region's
//! storage, the primary's writer, the replication agent and the global control plane.
//!
//! Each region's volume is abstracted as the durable, VDL-ordered log the `quorum` and
//! `failover` models prove (see [`crate::check::region`] for the refinement argument): a
//! [`RegionStorage`] holds that log, the region epoch it has adopted, the epoch whose log it
//! holds and its role. Everything here is sans-IO: input in, state change and effects out, so
//! the model checker and a later runtime drive the same functions. Every protocol decision of
//! the issue lives here: what the agent ships ([`agent_ships`]), how a secondary applies
//! ([`RegionStorage::apply`]), the fence ([`RegionStorage::accepts_write`]), rejoin truncation
//! ([`RegionStorage::rejoin`]), the RPO gate ([`rpo_allows_ack`]), the switchover wait
//! ([`switchover_may_promote`]), the failover target rule ([`failover_target_ok`]) and the
//! forwarding read wait ([`read_ready`]).

use crate::protocol::config::{Config, Mutant};
use std::fmt;
use std::str::FromStr;

/// A position in a region's log. Small: the model writes a handful of records.
pub type Lsn = u8;
/// A region epoch, held by the global control plane; bumped by every promotion.
pub type RegionEpoch = u8;
/// A region's index.
pub type RegionId = usize;

/// One record of a region's log: its LSN and the (unique) value it writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rec {
    /// Its position, 1-based.
    pub lsn: Lsn,
    /// The value written.
    pub value: u8,
}

/// What a region's storage is in the epoch whose log it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// It takes the writer's records and ships them to the secondaries.
    Primary,
    /// It applies what the primary ships and serves reads.
    Secondary,
}

/// One region's storage: the durable log of its volume and its place among the regions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RegionStorage {
    /// The newest region epoch it has adopted: writes of older epochs are refused (the fence).
    pub epoch: RegionEpoch,
    /// The epoch whose log it holds: as primary, the epoch it writes; as secondary, the epoch of
    /// the primary it applies from.
    pub follows: RegionEpoch,
    /// Primary or secondary of `follows`.
    pub role: Role,
    /// Whether it still holds the primary's region lease (only a primary's matters).
    pub lease: bool,
    /// The durable log, LSN-ordered from 1 (only a mutant leaves a gap).
    pub log: Vec<Rec>,
}

/// What a secondary did with a shipped record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// It was the next record: applied.
    Applied,
    /// Already applied: a resend, ignored.
    Duplicate,
    /// Above the next one (it overtook an earlier record): dropped, the agent resends it.
    OutOfOrder,
    /// Shipped in an epoch this storage does not follow: dropped.
    WrongEpoch,
}

impl RegionStorage {
    /// The first primary, of epoch 1, with an empty log.
    pub fn primary() -> Self {
        RegionStorage {
            epoch: 1,
            follows: 1,
            role: Role::Primary,
            lease: true,
            log: Vec::new(),
        }
    }

    /// A secondary of epoch 1, with an empty log.
    pub fn secondary() -> Self {
        RegionStorage {
            role: Role::Secondary,
            lease: false,
            ..RegionStorage::primary()
        }
    }

    /// The highest LSN applied (or written, as primary).
    pub fn applied(&self) -> Lsn {
        self.log.last().map_or(0, |r| r.lsn)
    }

    /// Whether it is a secondary of epoch `e`.
    pub fn is_secondary_of(&self, e: RegionEpoch) -> bool {
        self.role == Role::Secondary && self.follows == e
    }

    /// Whether the writer of region epoch `writer` may make a record durable here, or have one
    /// acknowledged: this is the primary of that epoch, its lease has not run out, and it has
    /// adopted no newer epoch. The last condition is the region fence a switchover installs
    /// (mutant `no-region-fence` drops it); the lease is what fences after a failover, which
    /// waits it out.
    pub fn accepts_write(&self, cfg: &Config, writer: RegionEpoch) -> bool {
        self.role == Role::Primary
            && self.follows == writer
            && self.lease
            && (self.epoch == writer || cfg.is(Mutant::NoRegionFence))
    }

    /// Makes `value` durable as the next record (the caller asked [`Self::accepts_write`]).
    pub fn append(&mut self, value: u8) -> Rec {
        let rec = Rec {
            lsn: self.applied() + 1,
            value,
        };
        self.log.push(rec);
        rec
    }

    /// Applies a record the agent of epoch `epoch`'s primary shipped: strictly in LSN order, so
    /// the applied log is always a prefix of the primary's (mutant `apply-out-of-order` applies
    /// any record above the applied point at once).
    pub fn apply(&mut self, cfg: &Config, epoch: RegionEpoch, rec: Rec) -> Applied {
        if !self.is_secondary_of(epoch) || self.epoch != epoch {
            return Applied::WrongEpoch;
        }
        let next = self.applied() + 1;
        if rec.lsn < next {
            Applied::Duplicate
        } else if rec.lsn == next || cfg.is(Mutant::ApplyOutOfOrder) {
            self.log.push(rec);
            Applied::Applied
        } else {
            Applied::OutOfOrder
        }
    }

    /// The switchover's fence: the old primary adopts `epoch`, so it refuses every further
    /// write of its writer (it is read-only), and reports how far its durable log goes, which
    /// the target must reach before it is promoted.
    pub fn fence(&mut self, epoch: RegionEpoch) -> Lsn {
        self.epoch = self.epoch.max(epoch);
        self.applied()
    }

    /// Becomes the primary of `epoch`, with the log it has applied and a fresh lease.
    pub fn promote(&mut self, epoch: RegionEpoch) {
        *self = RegionStorage {
            epoch,
            follows: epoch,
            role: Role::Primary,
            lease: true,
            log: std::mem::take(&mut self.log),
        };
    }

    /// Follows the new primary of `epoch`. `starts[e - 1]` is the LSN at which the primary of
    /// epoch `e` was promoted (its log agrees with epoch `e - 1`'s up to there, and may differ
    /// above), for every epoch up to `epoch`: the notice carries that history. This storage's log
    /// is a prefix of the log of the epoch it follows, so it agrees with `epoch`'s log up to the
    /// lowest promotion point of the epochs in between; every record above it is divergent (the
    /// new primary never had it) and is discarded. So a returning old primary rejoins as a
    /// secondary whose log is a prefix of the new primary's, even if it slept through several
    /// promotions (mutant `rejoin-keeps-suffix` keeps the records). Returns how many records it
    /// discarded. A notice of an epoch it already follows or has passed is stale and changes
    /// nothing.
    pub fn rejoin(&mut self, cfg: &Config, epoch: RegionEpoch, starts: &[Lsn]) -> usize {
        if self.follows >= epoch {
            return 0;
        }
        let between = &starts[usize::from(self.follows)..usize::from(epoch)];
        let keep = between.iter().copied().min().unwrap_or(0);
        let before = self.log.len();
        if !cfg.is(Mutant::RejoinKeepsSuffix) {
            self.log.retain(|r| r.lsn <= keep);
        }
        *self = RegionStorage {
            epoch: self.epoch.max(epoch),
            follows: epoch,
            role: Role::Secondary,
            lease: false,
            log: std::mem::take(&mut self.log),
        };
        before - self.log.len()
    }

    /// What a read served here returns: the newest applied record (LSN 0, value 0 before any).
    pub fn serve_read(&self) -> Rec {
        self.log.last().copied().unwrap_or(Rec { lsn: 0, value: 0 })
    }
}

/// The records the replication agent of `primary` (re)ships to a secondary that has
/// acknowledged `acked`: every durable record above it, in any order and as often as needed,
/// since the network loses and reorders (a lost record is shipped again; one that overtook its
/// predecessor is dropped by the secondary and shipped again). Only a primary's agent ships;
/// durable means at or below VDL, which is every record of the abstracted log.
pub fn agent_ships(primary: &RegionStorage, acked: Lsn) -> impl Iterator<Item = Rec> + '_ {
    let ships = primary.role == Role::Primary;
    primary
        .log
        .iter()
        .filter(move |r| ships && r.lsn > acked)
        .copied()
}

/// The managed RPO gate: the commit at `lsn` may be acknowledged once some secondary of the
/// writer's epoch has applied at least `lsn - k` (commits block while every secondary lags by
/// more than `k` records). No gate without `--rpo`; mutant `rpo-ignored` skips it.
pub fn rpo_allows_ack(
    cfg: &Config,
    rpo: Option<Lsn>,
    lsn: Lsn,
    mut secondaries: impl Iterator<Item = Lsn>,
) -> bool {
    match rpo {
        None => true,
        Some(_) if cfg.is(Mutant::RpoIgnored) => true,
        Some(k) => secondaries.any(|applied| lsn <= applied.saturating_add(k)),
    }
}

/// Whether a managed switchover may promote its target: only once it has applied everything the
/// fenced old primary holds (`end`), so nothing is lost (mutant `switchover-no-wait` promotes
/// at once).
pub fn switchover_may_promote(cfg: &Config, target_applied: Lsn, end: Lsn) -> bool {
    target_applied >= end || cfg.is(Mutant::SwitchoverNoWait)
}

/// Whether an unplanned failover may promote a secondary that has applied `target`, when the
/// most advanced secondary has applied `best` and the current primary was promoted at `start`.
/// Without a managed RPO, any secondary. With `--rpo K`, the most advanced one (the gate
/// guarantees only that *some* secondary is within K of what the writer acknowledged), and
/// only once it is within K of `start`: the current primary inherited every record up to
/// `start` as committed, which the gate never held back, so a failover before its secondaries
/// catch up would lose more than K (found by walks of three promotions). Such a failover is
/// refused: the RPO is a promise, not a target.
pub fn failover_target_ok(rpo: Option<Lsn>, target: Lsn, best: Lsn, start: Lsn) -> bool {
    rpo.is_none_or(|k| target >= best && target.saturating_add(k) >= start)
}

/// The read consistency of a write-forwarding session at a secondary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Consistency {
    /// Reads are served at once from what the secondary has applied.
    Eventual,
    /// Reads wait until the secondary has applied the session's own last write.
    #[default]
    Session,
    /// Reads wait until the secondary has applied everything the primary had committed when the
    /// read began.
    Global,
}

impl Consistency {
    /// All three, for listings.
    pub const ALL: [Consistency; 3] = [
        Consistency::Eventual,
        Consistency::Session,
        Consistency::Global,
    ];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Consistency::Eventual => "eventual",
            Consistency::Session => "session",
            Consistency::Global => "global",
        }
    }
}

impl fmt::Display for Consistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Consistency {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Consistency::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                format!("unknown consistency '{s}'; valid ones: eventual, session, global")
            })
    }
}

/// A point a forwarded read waits for: an LSN of a region epoch's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReadPoint {
    /// The epoch whose log the LSN is in.
    pub epoch: RegionEpoch,
    /// The LSN.
    pub lsn: Lsn,
}

/// Whether a secondary may serve a forwarded read that waits for `wait` (the session's own
/// write, or the primary's commit point when a global read began; nothing for eventual
/// reads). It must follow that epoch or a later one: a storage still on an older epoch may
/// hold different records at the same LSNs. Mutant `session-no-wait` serves session reads
/// at once.
pub fn read_ready(
    cfg: &Config,
    mode: Consistency,
    storage: &RegionStorage,
    wait: Option<ReadPoint>,
) -> bool {
    if mode == Consistency::Session && cfg.is(Mutant::SessionNoWait) {
        return true;
    }
    wait.is_none_or(|p| storage.follows >= p.epoch && storage.applied() >= p.lsn)
}

/// Where a write came from, so its acknowledgement reaches its client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The application at the primary.
    App,
    /// A session at a secondary that forwarded it.
    Session,
}

/// The writer of one region epoch, in the primary region: it makes writes durable in its
/// region's storage and acknowledges them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RegionWriter {
    /// Its region epoch.
    pub epoch: RegionEpoch,
    /// Its region.
    pub region: RegionId,
    /// Durable records not yet acknowledged, and who wrote them.
    pub pending: Vec<(Lsn, Origin)>,
    /// The highest LSN it counts as committed: what it acknowledged, and what its storage held
    /// when it was promoted. A global read waits for it.
    pub committed: Lsn,
}

impl RegionWriter {
    /// The writer of `epoch`, in `region`, whose storage holds `log_end` records.
    pub fn new(epoch: RegionEpoch, region: RegionId, log_end: Lsn) -> Self {
        RegionWriter {
            epoch,
            region,
            pending: Vec::new(),
            committed: log_end,
        }
    }

    /// Makes a write durable in its storage, if the storage accepts its epoch; returns the
    /// record, or `None` if it was refused (fenced, or its lease has run out).
    pub fn write(
        &mut self,
        cfg: &Config,
        storage: &mut RegionStorage,
        value: u8,
        origin: Origin,
    ) -> Option<Rec> {
        if !storage.accepts_write(cfg, self.epoch) {
            return None;
        }
        let rec = storage.append(value);
        self.pending.push((rec.lsn, origin));
        Some(rec)
    }

    /// Acknowledges the pending record at `lsn`, if its storage still accepts the epoch (no
    /// acknowledgement once fenced) and the RPO gate is open; returns who wrote it.
    pub fn ack(
        &mut self,
        cfg: &Config,
        storage: &RegionStorage,
        gate_open: bool,
        lsn: Lsn,
    ) -> Option<Origin> {
        let i = self.pending.iter().position(|p| p.0 == lsn)?;
        if !gate_open || !storage.accepts_write(cfg, self.epoch) {
            return None;
        }
        self.committed = self.committed.max(lsn);
        Some(self.pending.remove(i).1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(lsn: Lsn) -> Rec {
        Rec { lsn, value: lsn }
    }

    #[test]
    fn secondaries_apply_in_lsn_order_only() {
        let cfg = Config::default();
        let mut s = RegionStorage::secondary();
        assert_eq!(s.apply(&cfg, 1, rec(2)), Applied::OutOfOrder);
        assert_eq!(s.apply(&cfg, 1, rec(1)), Applied::Applied);
        assert_eq!(s.apply(&cfg, 1, rec(1)), Applied::Duplicate);
        assert_eq!(s.apply(&cfg, 2, rec(2)), Applied::WrongEpoch);
        let bad = Config::new(Some(Mutant::ApplyOutOfOrder));
        let mut s = RegionStorage::secondary();
        assert_eq!(s.apply(&bad, 1, rec(2)), Applied::Applied);
    }

    #[test]
    fn the_fence_refuses_the_old_epoch_unless_mutated() {
        let cfg = Config::default();
        let mut p = RegionStorage::primary();
        assert!(p.accepts_write(&cfg, 1));
        p.fence(2);
        assert!(!p.accepts_write(&cfg, 1));
        assert!(p.accepts_write(&Config::new(Some(Mutant::NoRegionFence)), 1));
        p.lease = false;
        assert!(!p.accepts_write(&Config::new(Some(Mutant::NoRegionFence)), 1));
    }

    #[test]
    fn rejoin_discards_the_divergent_suffix() {
        let cfg = Config::default();
        let mut p = RegionStorage::primary();
        p.append(1);
        p.append(2);
        assert_eq!(p.rejoin(&cfg, 2, &[0, 1]), 1);
        assert!(p.is_secondary_of(2));
        assert_eq!(p.applied(), 1);
        assert_eq!(
            p.rejoin(&cfg, 2, &[0, 0]),
            0,
            "a stale notice changes nothing"
        );
        let mut q = RegionStorage::primary();
        q.append(1);
        q.rejoin(&Config::new(Some(Mutant::RejoinKeepsSuffix)), 2, &[0, 0]);
        assert_eq!(q.applied(), 1);
    }

    /// Found by walks of three promotions: an old primary of epoch 1 that sleeps through epoch 2
    /// (promoted at 0) and rejoins epoch 3 (promoted at 1) must discard down to 0, not 1.
    #[test]
    fn rejoin_across_several_promotions_discards_down_to_the_lowest_point() {
        let mut p = RegionStorage::primary();
        p.append(1);
        p.append(2);
        assert_eq!(p.rejoin(&Config::default(), 3, &[0, 0, 1]), 2);
        assert_eq!(p.applied(), 0);
    }

    #[test]
    fn the_rpo_gate_needs_one_secondary_within_k() {
        let cfg = Config::default();
        assert!(rpo_allows_ack(&cfg, None, 5, [].into_iter()));
        assert!(!rpo_allows_ack(&cfg, Some(1), 3, [1, 0].into_iter()));
        assert!(rpo_allows_ack(&cfg, Some(1), 3, [2, 0].into_iter()));
        let bad = Config::new(Some(Mutant::RpoIgnored));
        assert!(rpo_allows_ack(&bad, Some(0), 3, [0].into_iter()));
    }

    #[test]
    fn forwarded_reads_wait_for_their_point_in_its_epoch() {
        let cfg = Config::default();
        let mut s = RegionStorage::secondary();
        let own = Some(ReadPoint { epoch: 1, lsn: 1 });
        assert!(!read_ready(&cfg, Consistency::Session, &s, own));
        assert!(read_ready(&cfg, Consistency::Eventual, &s, None));
        s.apply(&cfg, 1, rec(1));
        assert!(read_ready(&cfg, Consistency::Session, &s, own));
        let later = Some(ReadPoint { epoch: 2, lsn: 1 });
        assert!(!read_ready(&cfg, Consistency::Global, &s, later));
        let bad = Config::new(Some(Mutant::SessionNoWait));
        assert!(read_ready(&bad, Consistency::Session, &s, later));
        for c in Consistency::ALL {
            assert_eq!(c.name().parse::<Consistency>(), Ok(c));
        }
    }

    #[test]
    fn a_fenced_writer_gets_no_acknowledgement() {
        let cfg = Config::default();
        let mut p = RegionStorage::primary();
        let mut w = RegionWriter::new(1, 0, 0);
        let r = w.write(&cfg, &mut p, 7, Origin::App).unwrap();
        assert!(w.ack(&cfg, &p, false, r.lsn).is_none(), "gate closed");
        p.fence(2);
        assert!(w.ack(&cfg, &p, true, r.lsn).is_none(), "fenced");
        assert!(w.write(&cfg, &mut p, 8, Origin::App).is_none());
        assert_eq!(
            agent_ships(&p, 0).count(),
            1,
            "a fenced primary still ships"
        );
    }
}
