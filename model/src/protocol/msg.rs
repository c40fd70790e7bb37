//! The one message type every actor speaks, in the model and on the wire.

use serde::{Deserialize, Serialize};
use stateright::actor::Id;

/// Log sequence number: allocated by the writer, strictly increasing, dense within the volume.
pub type Lsn = u64;
/// The key a record updates (a page, in Aurora's terms); the models use a single key.
pub type Key = u32;
/// The value a record writes.
pub type Value = u64;
/// A client's request number, echoed back so replies can be matched to calls.
pub type ReqId = u32;
/// A volume epoch: each writer opens the volume in its own epoch, higher than every earlier one
/// (the control plane hands them out). Segments refuse requests from older epochs: this is what
/// fences a superseded writer, without leases.
pub type Epoch = u32;

/// The epoch the volume is created in: its first writer has no predecessor to fence and nothing
/// to truncate.
pub const FIRST_EPOCH: Epoch = 1;

fn first_epoch() -> Epoch {
    FIRST_EPOCH
}

/// The recovery of `epoch` kept everything up to `after`: whatever an older writer wrote above
/// it was never committed and must never be served, acknowledged or gossiped again. LSNs
/// `after < lsn <= upto` hold no record at all (new LSNs start above them), so segments count
/// them as complete when they compute SCL.
///
/// **Voiding is open-ended.** An older writer's record above `upto` is void too. The bounded
/// range assumed no older writer allocates more than LAL above the recovered VDL, which a chain
/// of failovers breaks: a recovered writer allocates above its own range, up to 2·LAL above the
/// VDL it found, and a next recovery that finds the same VDL voids only LAL of it. The
/// `failover` model found it with three failovers and two writes in flight: writers 2 and 3
/// both recovered at VDL 0 and both allocated LSN 9; a segment holding writer 2's LSN 9 took
/// writer 3's as a duplicate, acknowledged it, and kept the wrong value. No older epoch can
/// have committed above `after` (a commit is on a write quorum, which the recovery read meets),
/// so voiding all of it is safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Truncation {
    /// The epoch whose recovery declared it.
    pub epoch: Epoch,
    /// The VDL that recovery found: the last LSN kept.
    pub after: Lsn,
    /// The end of the range that holds no record (`after` + LAL).
    pub upto: Lsn,
}

impl Truncation {
    /// Whether the recovery voids this record: an older epoch wrote it above the kept VDL.
    pub fn voids(&self, record: &Record) -> bool {
        record.lsn > self.after && record.epoch < self.epoch
    }

    /// Whether the LSN lies in the range.
    pub fn covers(&self, lsn: Lsn) -> bool {
        self.after < lsn && lsn <= self.upto
    }
}

/// What a writer tells segments about the volume with every write: its epoch and every
/// truncation range declared up to it. A segment that learns a newer epoch adopts both
/// at once, so it can never hold a record of the new epoch while still serving one its recovery
/// voided.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VolumeEpoch {
    /// The writer's epoch.
    pub number: Epoch,
    /// Truncation ranges, oldest first.
    pub truncations: Vec<Truncation>,
}

/// A redo record: the unit the writer ships to all six segments.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Record {
    /// Where the record sits in the log; its backlink is `lsn - 1` (one protection group).
    pub lsn: Lsn,
    /// The key it updates.
    pub key: Key,
    /// The value it writes.
    pub value: Value,
    /// The epoch of the writer that wrote it (recovery voids older epochs' records above VDL).
    #[serde(default = "first_epoch")]
    pub epoch: Epoch,
}

/// What a read saw: the value and the LSN of the record that wrote it (LSN 0 = never written,
/// value 0), so that checks can order reads against commits without comparing values.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Version {
    /// LSN of the record read, 0 for the initial value.
    pub lsn: Lsn,
    /// The value read.
    pub value: Value,
    /// The epoch of the writer that wrote it (0 for the initial value).
    #[serde(default)]
    pub epoch: Epoch,
}

impl Record {
    /// What a read of this record sees.
    pub fn version(&self) -> Version {
        Version {
            lsn: self.lsn,
            value: self.value,
            epoch: self.epoch,
        }
    }
}

/// Short on purpose (counterexamples and the explorer print messages with `{:?}`):
/// `lsn 2 k0=20`.
impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "lsn {} k{}={}", self.lsn, self.key, self.value)?;
        if self.epoch != FIRST_EPOCH {
            write!(f, " e{}", self.epoch)?;
        }
        Ok(())
    }
}

/// Short on purpose: `20@lsn2`, or `initial` for a key never written.
impl std::fmt::Debug for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.lsn == 0 {
            write!(f, "initial")
        } else {
            write!(f, "{}@lsn{}", self.value, self.lsn)
        }
    }
}

/// Short on purpose (counterexamples print every Append): `e2 void(1,9]`.
impl std::fmt::Debug for VolumeEpoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "e{}", self.number)?;
        for t in &self.truncations {
            write!(f, " void({},{}]", t.after, t.upto)?;
        }
        Ok(())
    }
}

impl VolumeEpoch {
    /// The volume as created: the first epoch, nothing truncated.
    pub fn first() -> Self {
        VolumeEpoch {
            number: FIRST_EPOCH,
            truncations: Vec::new(),
        }
    }
}

/// Every message of the protocol. Clients talk to the writer; the writer talks to segments.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Msg {
    /// Client → writer: write `value` to `key`; answered by `WriteOk` once committed.
    Write {
        /// The client's request number.
        req: ReqId,
        /// Key to update.
        key: Key,
        /// Value to write.
        value: Value,
    },
    /// Client → writer: read `key` at the current VDL.
    Read {
        /// The client's request number.
        req: ReqId,
        /// Key to read.
        key: Key,
    },
    /// Writer → client: the write is committed (its LSN ≤ VDL).
    WriteOk {
        /// The request answered.
        req: ReqId,
        /// The LSN the write was given.
        lsn: Lsn,
        /// The epoch of the writer that acknowledged it.
        #[serde(default = "first_epoch")]
        epoch: Epoch,
    },
    /// Writer → client: this instance is not (or no longer) the writer: its lease has expired or
    /// a newer epoch fenced it. Ask the control plane for the current writer.
    NotWriter {
        /// The request refused.
        req: ReqId,
    },
    /// Writer → client: the result of a read.
    ReadOk {
        /// The request answered.
        req: ReqId,
        /// What was read.
        version: Version,
    },
    /// Writer → segment: persist this record, then ack.
    Append {
        /// The record to persist.
        record: Record,
        /// The writer's epoch and the truncations up to it.
        #[serde(default = "VolumeEpoch::first")]
        volume: VolumeEpoch,
    },
    /// Segment → writer: the record is durable; the segment's SCL is `scl`.
    Ack {
        /// The LSN acknowledged.
        lsn: Lsn,
        /// The segment's SCL after persisting it.
        scl: Lsn,
    },
    /// Writer → segment: serve a single-node read of `key` at read point `point`.
    ReadAt {
        /// The client the read is for.
        client: Id,
        /// The client's request number.
        req: ReqId,
        /// Key to read.
        key: Key,
        /// The read point (the VDL when the read started).
        point: Lsn,
        /// The writer's epoch: a segment that knows a newer one refuses.
        #[serde(default = "first_epoch")]
        epoch: Epoch,
    },
    /// Segment → writer: the answer to `ReadAt`; `None` when the segment refuses because the
    /// read point is above its SCL, in which case `scl` corrects the writer's bookkeeping.
    ReadReply {
        /// The client the read is for.
        client: Id,
        /// The client's request number.
        req: ReqId,
        /// Key read.
        key: Key,
        /// What was read, or `None` if refused.
        version: Option<Version>,
        /// The segment's SCL when it answered.
        scl: Lsn,
    },
    /// Writer → segment: report your SCL (the quorum read of volume open). The segment first
    /// adopts the epoch, so that once a read quorum has answered, the old writer can no longer
    /// reach a write quorum.
    OpenQuery {
        /// The opening writer's epoch.
        #[serde(default = "first_epoch")]
        epoch: Epoch,
    },
    /// Segment → writer: the answer to `OpenQuery`.
    SclReport {
        /// The segment's SCL.
        scl: Lsn,
        /// The truncation ranges the segment knows of.
        #[serde(default)]
        truncations: Vec<Truncation>,
    },
    /// Segment → writer: refused, because the segment has seen a newer epoch.
    Fenced {
        /// The segment's epoch.
        epoch: Epoch,
        /// The LSN of the Append refused, if it was one.
        lsn: Option<Lsn>,
    },
    /// Control plane → writer: your lease is renewed; keep serving reads.
    LeaseGrant,
    /// Segment → peer segment (gossip): send me every record you hold from LSN `from` on.
    GossipPull {
        /// The first LSN the asking segment lacks (its SCL + 1).
        from: Lsn,
    },
    /// Peer segment → segment (gossip): the answer to `GossipPull`, in LSN order.
    GossipPush {
        /// Records the peer holds from the asked LSN on.
        records: Vec<Record>,
    },
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Record `lsn` of `epoch` on key 0, its value `10 · lsn`: the test record other modules'
    /// tests use too.
    pub(crate) fn record(lsn: Lsn, epoch: Epoch) -> Record {
        Record {
            lsn,
            key: 0,
            value: 10 * lsn,
            epoch,
        }
    }

    /// The recovery of epoch 3 kept up to LSN 4: it voids every older epoch's record above 4,
    /// however far above, and nothing at or below 4, nor its own or a newer epoch's records.
    #[test]
    fn a_truncation_voids_exactly_older_records_above_the_kept_vdl() {
        let t = Truncation {
            epoch: 3,
            after: 4,
            upto: 12,
        };
        assert!(t.voids(&record(5, 2)));
        assert!(t.voids(&record(5, 1)));
        assert!(t.voids(&record(40, 2)), "open-ended above upto");
        assert!(!t.voids(&record(4, 2)), "the kept VDL");
        assert!(!t.voids(&record(3, 2)));
        assert!(!t.voids(&record(5, 3)), "the recovering epoch's own record");
        assert!(!t.voids(&record(5, 4)), "a newer epoch's record");
        assert!(!t.voids(&record(3, 3)));
    }

    #[test]
    fn a_truncation_covers_the_lsns_after_the_vdl_up_to_its_end() {
        let t = Truncation {
            epoch: 2,
            after: 4,
            upto: 12,
        };
        let covered: Vec<Lsn> = (0..20).filter(|&l| t.covers(l)).collect();
        assert_eq!(covered, (5..=12).collect::<Vec<_>>());
    }

    #[test]
    fn a_record_reads_as_its_lsn_value_and_epoch() {
        let r = record(3, 2);
        assert_eq!(
            r.version(),
            Version {
                lsn: 3,
                value: 30,
                epoch: 2
            }
        );
    }

    /// Messages and records written before epochs were on the wire (and old traces) read back
    /// in the first epoch, with the volume as created.
    #[test]
    fn fields_missing_from_old_messages_default_to_the_first_epoch() {
        let r: Record = serde_json::from_str(r#"{"lsn":1,"key":0,"value":10}"#).unwrap();
        assert_eq!(r.epoch, FIRST_EPOCH);
        let append: Msg =
            serde_json::from_str(r#"{"Append":{"record":{"lsn":1,"key":0,"value":10}}}"#).unwrap();
        assert_eq!(
            append,
            Msg::Append {
                record: r,
                volume: VolumeEpoch::first(),
            }
        );
        assert_eq!(VolumeEpoch::first().number, FIRST_EPOCH);
        assert!(VolumeEpoch::first().truncations.is_empty());
        let ok: Msg = serde_json::from_str(r#"{"WriteOk":{"req":0,"lsn":1}}"#).unwrap();
        assert_eq!(
            ok,
            Msg::WriteOk {
                req: 0,
                lsn: 1,
                epoch: FIRST_EPOCH
            }
        );
        let query: Msg = serde_json::from_str(r#"{"OpenQuery":{}}"#).unwrap();
        assert_eq!(query, Msg::OpenQuery { epoch: FIRST_EPOCH });
    }
}
