//! Geometry, quorum rules and protocol variants: one value handed to every actor.
//!
//! Aurora places each protection group on six segments, two in each of three availability zones.
//! The quorum sizes and the deliberately broken variants (mutants) live here, in one `Config`, so
//! that the model checker and the runtime hand the *same* value to the *same* step functions and
//! no rule is a constant scattered through the code.

use crate::protocol::msg::Lsn;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Number of segments (storage nodes) in a protection group.
pub const SEGMENTS: usize = 6;
/// Number of availability zones the segments are spread over.
pub const AZS: usize = 3;

/// Read quorum of the geometry (Vr = 3): every set of three segments meets every write quorum.
/// Properties judge durability against this, whatever quorum a mutant uses.
pub const READ_QUORUM: usize = 3;

/// Where the segments keep what: six full segments, or three full and three tail ones.
///
/// Aurora's cost cut (SIGMOD 2018): a *tail* segment keeps only the redo log, a *full* one the
/// log and the data pages, one full and one tail per AZ. Writes still need 4 of 6 acks, or all 3
/// full segments; reads need 3 of 6 that include a full segment. Every such read set meets every
/// such write set (3 + 4 > 6, and a read set's full segment is one of the 3/3), and a commit on
/// 3 full segments is readable from any of them. Only full segments serve single-node reads
/// (tails have no pages).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Geometry {
    /// Six full segments: Aurora's original geometry.
    #[default]
    Six,
    /// Segments 0, 2 and 4 (one per AZ) are full, 1, 3 and 5 are tails.
    FullTail,
}

impl Geometry {
    /// Both, for listings and tests.
    pub const ALL: [Geometry; 2] = [Geometry::Six, Geometry::FullTail];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Geometry::Six => "six",
            Geometry::FullTail => "full-tail",
        }
    }

    /// The full segments, as a bitset.
    pub fn full(self) -> u8 {
        match self {
            Geometry::Six => (1 << SEGMENTS) - 1,
            Geometry::FullTail => 0b01_0101,
        }
    }

    /// Whether `segment` keeps data pages and so may serve a read.
    pub fn is_full(self, segment: Segment) -> bool {
        self.full() & (1 << segment) != 0
    }

    /// Whether the segments in `set` form a read quorum: 3 of 6, at least one of them full.
    pub fn is_read_quorum(self, set: u8) -> bool {
        set.count_ones() as usize >= READ_QUORUM && set & self.full() != 0
    }

    /// Whether the segments in `set` form a write quorum: 4 of 6, or every full segment.
    pub fn is_write_quorum(self, set: u8) -> bool {
        set.count_ones() >= 4 || (self == Geometry::FullTail && set & self.full() == self.full())
    }

    fn is_six(&self) -> bool {
        *self == Geometry::Six
    }
}

impl fmt::Display for Geometry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Geometry {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Geometry::ALL
            .into_iter()
            .find(|g| g.name() == s)
            .ok_or_else(|| format!("unknown geometry '{s}'; valid geometries: six, full-tail"))
    }
}

/// Index of a segment within its protection group, `0..SEGMENTS`.
pub type Segment = usize;

/// The availability zone a segment lives in: segments `2z` and `2z+1` share AZ `z`.
pub fn az_of(segment: Segment) -> usize {
    segment / (SEGMENTS / AZS)
}

/// A deliberately broken variant of the protocol, used to show that a property catches something.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Mutant {
    /// The writer counts a record durable after 3 acks instead of 4 (Vw = 3).
    WriteQuorum3,
    /// Single-node reads ignore SCL: the writer picks the first segment and the segment serves
    /// whatever it has below the read point, gaps and all.
    ReadAnyNode,
    /// Segments ignore the read point and return their newest record, committed or not.
    ReadUnbounded,
    /// A segment acks a record before it is durable: its saved log lags one record behind.
    AckBeforePersist,
    /// Segments accept requests from any epoch: nothing fences a superseded writer.
    NoFencing,
    /// Recovery bumps the epoch but declares no truncation range: the new writer allocates
    /// right above the recovered VDL, where the old writer's uncommitted records may sit.
    NoTruncation,
    /// Segments insert records pulled by gossip even where a truncation voids them.
    GossipIgnoresTruncation,
    /// Recovery (volume open) trusts the SCLs of two segments instead of a read quorum of three.
    RecoverWith2,
    /// A recovered writer serves reads at the recovered VDL at once, before the records up to
    /// it are on a write quorum.
    NoRepair,
    /// Full/tail geometry, but recovery takes any three segments' SCLs as a read quorum, even
    /// three tails: the "1 of 3 full" read condition is dropped.
    ReadIgnoresFull,
    /// The control plane promotes a new writer without waiting out the old writer's lease: the
    /// zombie keeps serving reads from segments that have not seen the new epoch.
    NoLeaseWait,
    /// Regional replication: the old primary's storage ignores the region epoch, so a
    /// switchover's fence does not stop the superseded writer.
    NoRegionFence,
    /// Regional replication: a managed switchover promotes its target without waiting for it to
    /// apply everything the fenced old primary holds.
    SwitchoverNoWait,
    /// Regional replication: a secondary applies a shipped record as soon as it arrives, even
    /// above a gap.
    ApplyOutOfOrder,
    /// Regional replication: a returning old primary rejoins as a secondary without discarding
    /// the records above the promoted secondary's applied point.
    RejoinKeepsSuffix,
    /// Regional replication: the primary acknowledges commits without the `--rpo` gate.
    RpoIgnored,
    /// Regional replication: a write-forwarding session's read is served at once, without
    /// waiting for the session's own write to be applied.
    SessionNoWait,
}

impl Mutant {
    /// Every mutant, for `--help` listings and exhaustive tests.
    pub const ALL: [Mutant; 17] = [
        Mutant::WriteQuorum3,
        Mutant::ReadAnyNode,
        Mutant::ReadUnbounded,
        Mutant::AckBeforePersist,
        Mutant::NoFencing,
        Mutant::NoTruncation,
        Mutant::GossipIgnoresTruncation,
        Mutant::RecoverWith2,
        Mutant::NoRepair,
        Mutant::ReadIgnoresFull,
        Mutant::NoLeaseWait,
        Mutant::NoRegionFence,
        Mutant::SwitchoverNoWait,
        Mutant::ApplyOutOfOrder,
        Mutant::RejoinKeepsSuffix,
        Mutant::RpoIgnored,
        Mutant::SessionNoWait,
    ];

    /// The name used on the command line and in trace files.
    pub fn name(self) -> &'static str {
        match self {
            Mutant::WriteQuorum3 => "write-quorum-3",
            Mutant::ReadAnyNode => "read-any-node",
            Mutant::ReadUnbounded => "read-unbounded",
            Mutant::AckBeforePersist => "ack-before-persist",
            Mutant::NoFencing => "no-fencing",
            Mutant::NoTruncation => "no-truncation",
            Mutant::GossipIgnoresTruncation => "gossip-ignores-truncation",
            Mutant::RecoverWith2 => "recover-with-2",
            Mutant::NoRepair => "no-repair",
            Mutant::ReadIgnoresFull => "read-ignores-full",
            Mutant::NoLeaseWait => "no-lease-wait",
            Mutant::NoRegionFence => "no-region-fence",
            Mutant::SwitchoverNoWait => "switchover-no-wait",
            Mutant::ApplyOutOfOrder => "apply-out-of-order",
            Mutant::RejoinKeepsSuffix => "rejoin-keeps-suffix",
            Mutant::RpoIgnored => "rpo-ignored",
            Mutant::SessionNoWait => "session-no-wait",
        }
    }

    /// One line saying what the mutant breaks, for listings.
    pub fn describe(self) -> &'static str {
        match self {
            Mutant::WriteQuorum3 => "writer commits after 3 of 6 acks (Vw = 3)",
            Mutant::ReadAnyNode => "single-node reads ignore SCL bookkeeping",
            Mutant::ReadUnbounded => "segments serve their newest record, ignoring the read point",
            Mutant::AckBeforePersist => "segments ack a record before saving it",
            Mutant::NoFencing => "segments accept requests from superseded epochs",
            Mutant::NoTruncation => "recovery declares no truncation range above the VDL",
            Mutant::GossipIgnoresTruncation => "gossip copies records a truncation voided",
            Mutant::RecoverWith2 => "recovery reads the SCLs of 2 segments, not 3",
            Mutant::NoRepair => "a recovered writer serves reads before its range is on 4 segments",
            Mutant::ReadIgnoresFull => "full/tail recovery reads 3 segments even if none is full",
            Mutant::NoLeaseWait => "the control plane promotes before the old writer's lease ends",
            Mutant::NoRegionFence => "the old primary's storage ignores the region epoch",
            Mutant::SwitchoverNoWait => "switchover promotes before the target is synchronized",
            Mutant::ApplyOutOfOrder => "a secondary applies shipped records out of LSN order",
            Mutant::RejoinKeepsSuffix => "a returning old primary keeps its divergent suffix",
            Mutant::RpoIgnored => "commits are acknowledged without the --rpo gate",
            Mutant::SessionNoWait => "session reads do not wait for the session's own write",
        }
    }
}

impl fmt::Display for Mutant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for a mutant name nobody defined; it lists the valid ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownMutant(pub String);

impl fmt::Display for UnknownMutant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = Mutant::ALL.iter().map(|m| m.name()).collect();
        write!(
            f,
            "unknown mutant '{}'; valid mutants: {}",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownMutant {}

impl FromStr for Mutant {
    type Err = UnknownMutant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mutant::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| UnknownMutant(s.to_string()))
    }
}

/// The protocol configuration every actor is built with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Config {
    /// Write quorum: acks needed before a record counts toward PGCL (4 in Aurora).
    pub write_quorum: usize,
    /// Read quorum: SCL reports needed to open the volume (3 in Aurora).
    pub read_quorum: usize,
    /// The broken variant in force, if any.
    pub mutant: Option<Mutant>,
    /// How far LSN allocation may run ahead of VDL (Aurora's LAL), in records; also the width
    /// of the range a recovery voids. A model parameter: small values make back-pressure bind.
    #[serde(default = "default_lal")]
    pub lal: Lsn,
    /// Six full segments or three full and three tails; absent in traces of six.
    #[serde(default, skip_serializing_if = "Geometry::is_six")]
    pub geometry: Geometry,
}

/// Aurora's LAL is ten million LSNs; the models and the runtime use a small one so that
/// back-pressure and truncation ranges are visible.
pub const DEFAULT_LAL: Lsn = 8;

fn default_lal() -> Lsn {
    DEFAULT_LAL
}

impl Config {
    /// Aurora's protocol, or the given mutant of it.
    pub fn new(mutant: Option<Mutant>) -> Self {
        let write_quorum = if mutant == Some(Mutant::WriteQuorum3) {
            3
        } else {
            4
        };
        let read_quorum = if mutant == Some(Mutant::RecoverWith2) {
            2
        } else {
            READ_QUORUM
        };
        let geometry = if mutant == Some(Mutant::ReadIgnoresFull) {
            Geometry::FullTail
        } else {
            Geometry::Six
        };
        Config {
            write_quorum,
            read_quorum,
            mutant,
            lal: DEFAULT_LAL,
            geometry,
        }
    }

    /// Whether the segments in `set` answering an open or recovery query are enough to recover
    /// from: a read quorum of this geometry (`read_quorum` of them, a full one among them unless
    /// `read-ignores-full`).
    pub fn opens_on(&self, set: u8) -> bool {
        set.count_ones() as usize >= self.read_quorum
            && (set & self.geometry.full() != 0 || self.is(Mutant::ReadIgnoresFull))
    }

    /// The `--wait-all` variant the runtime benchmark compares against: a commit waits for all
    /// six segments, so its latency follows the slowest one. Safe, just slow.
    pub fn wait_all(self) -> Self {
        Config {
            write_quorum: SEGMENTS,
            ..self
        }
    }

    /// Whether the given mutant is in force.
    pub fn is(&self, mutant: Mutant) -> bool {
        self.mutant == Some(mutant)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::new(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorums_overlap_only_in_the_real_protocol() {
        let real = Config::default();
        assert!(real.write_quorum + real.read_quorum > SEGMENTS);
        assert!(2 * real.write_quorum > SEGMENTS);
        let broken = Config::new(Some(Mutant::WriteQuorum3));
        assert!(broken.write_quorum + broken.read_quorum <= SEGMENTS);
    }

    /// Every read quorum meets every write quorum in both geometries, and only the full/tail
    /// mutant lets a recovery open on three tails that miss a 3/3-full commit.
    #[test]
    fn full_tail_quorums_intersect() {
        for g in Geometry::ALL {
            for r in 0u8..1 << SEGMENTS {
                for w in 0u8..1 << SEGMENTS {
                    if g.is_read_quorum(r) && g.is_write_quorum(w) {
                        assert_ne!(r & w, 0, "{g}: read {r:06b} misses write {w:06b}");
                    }
                }
            }
        }
        let ft = Geometry::FullTail;
        assert!(ft.is_write_quorum(ft.full()), "3/3 full is a write quorum");
        assert!(!Geometry::Six.is_write_quorum(0b01_0101), "3 of six is not");
        let tails = !ft.full() & 0b11_1111;
        assert!(!ft.is_read_quorum(tails));
        assert!(Config::new(None).opens_on(tails), "six: any three will do");
        let mut cfg = Config::new(None);
        cfg.geometry = ft;
        assert!(!cfg.opens_on(tails));
        assert!(Config::new(Some(Mutant::ReadIgnoresFull)).opens_on(tails));
        for g in Geometry::ALL {
            assert_eq!(g.name().parse::<Geometry>(), Ok(g));
        }
        assert!("five"
            .parse::<Geometry>()
            .unwrap_err()
            .contains("full-tail"));
    }

    #[test]
    fn two_segments_per_az() {
        let per_az: Vec<usize> = (0..SEGMENTS).map(az_of).collect();
        assert_eq!(per_az, vec![0, 0, 1, 1, 2, 2]);
    }

    #[test]
    fn mutant_names_round_trip_and_unknown_names_list_choices() {
        for m in Mutant::ALL {
            assert_eq!(m.name().parse::<Mutant>(), Ok(m));
        }
        let err = "nope".parse::<Mutant>().unwrap_err().to_string();
        assert!(err.contains("write-quorum-3") && err.contains("read-any-node"));
    }
}
