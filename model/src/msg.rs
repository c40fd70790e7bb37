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

/// A redo record: the unit the writer ships to all six segments.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Record {
    /// Where the record sits in the log; its backlink is `lsn - 1` (one protection group).
    pub lsn: Lsn,
    /// The key it updates.
    pub key: Key,
    /// The value it writes.
    pub value: Value,
}

/// What a read saw: the value and the LSN of the record that wrote it (LSN 0 = never written,
/// value 0), so that checks can order reads against commits without comparing values.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Version {
    /// LSN of the record read, 0 for the initial value.
    pub lsn: Lsn,
    /// The value read.
    pub value: Value,
}

/// Short on purpose (counterexamples and the explorer print messages with `{:?}`):
/// `lsn 2 k0=20`.
impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "lsn {} k{}={}", self.lsn, self.key, self.value)
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
    /// Writer → segment: report your SCL (the quorum read of volume open).
    OpenQuery,
    /// Segment → writer: the answer to `OpenQuery`.
    SclReport {
        /// The segment's SCL.
        scl: Lsn,
    },
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
