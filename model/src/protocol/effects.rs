//! What a step may produce besides a new state, and the types it is made of: the durable
//! storage a node saves, the timers it sets, the open choices it offers. A leaf module: the step
//! functions of the segment, the writer and the client use it, and so does the [`Node`] enum that
//! dispatches to them, so none of them imports another.
//!
//! [`Node`]: crate::protocol::actor::Node

use crate::protocol::log::Log;
use crate::protocol::msg::{Key, Lsn, Msg, ReqId};
use stateright::actor::{Actor, Id};

/// An actor whose messages, timers, storage and choices are the protocol's: what a step
/// function's `Out` is for. Step functions take `&mut Out<impl Proto>`, so they need not name
/// the [`Node`](crate::protocol::actor::Node) enum (which names them).
pub trait Proto:
    Actor<Msg = Msg, Timer = NodeTimer, Storage = NodeStorage, Random = Choice>
{
}

impl<A> Proto for A where
    A: Actor<Msg = Msg, Timer = NodeTimer, Storage = NodeStorage, Random = Choice>
{
}

/// What a node saves durably: only segments save (their log).
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum NodeStorage {
    /// A segment's durable log.
    Segment(Log),
}

/// The timers a node may set; the runtime fires them after their duration, the model at will.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum NodeTimer {
    /// The writer's first open quorum read has not completed: ask the other segments.
    OpenRetry,
    /// A segment has a gap: pull the missing records from a peer.
    Gossip,
    /// The writer's lease ran out: it stops serving reads.
    Lease,
}

/// A decision the writer leaves open. The model checker explores every option offered; the
/// runtime picks one. Both then feed the pick back through `on_random`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Choice {
    /// Serve this read from this segment.
    ReadFrom {
        /// Segment index.
        segment: usize,
        /// The client the read is for.
        client: Id,
        /// The client's request number.
        req: ReqId,
        /// Key to read.
        key: Key,
        /// The read point.
        point: Lsn,
    },
    /// Ask this segment for its SCL, widening the open quorum read.
    Ask {
        /// Segment index.
        segment: usize,
    },
    /// (A segment's choice) pull the records missing from its gap from this peer segment.
    PullFrom {
        /// Segment index of the peer.
        segment: usize,
    },
    /// (A recovering writer's choice) the read quorum to query first, as a bitset.
    Quorum {
        /// The segments, one bit each.
        segments: u8,
    },
}
