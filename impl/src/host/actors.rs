//! The actors a cluster runs, by actor id, their names, and the trace header that lists them.
//!
//! Ids follow the model's runtime topology ([`Topology::runtime`]): segments 0..6, then the writer
//! of each epoch ([`writer_id`]); external clients and the control plane have ids past the
//! actors ([`CLIENT_ID_BASE`], [`CONTROL_ID`]).

use sixfold_model::protocol::actor::Node;
use sixfold_model::protocol::config::{Config, SEGMENTS};
use sixfold_model::protocol::msg::{Epoch, FIRST_EPOCH};
use sixfold_model::protocol::storage_node::StorageNode;
use sixfold_model::protocol::topology::Topology;
use sixfold_model::protocol::writer::Writer;
use sixfold_model::trace::{ActorSpec, Header, TRACE_VERSION};
use stateright::actor::Id;

pub use sixfold_model::protocol::topology::{writer_id, CLIENT_ID_BASE, CONTROL_ID, MAX_EPOCH};

/// Actor id of the first writer ([`writer_id`] of the first epoch).
pub const WRITER_ID: usize = writer_id(FIRST_EPOCH);
/// Number of actors in a cluster's first epoch: six segments and the writer.
pub const ACTORS: usize = SEGMENTS + 1;

/// The epoch of writer actor `id`, if `id` is a writer's in the runtime's layout.
pub fn writer_epoch(id: usize) -> Option<Epoch> {
    Topology::runtime().writer_epoch(id)
}

/// A short name for an actor id, for logs and banners ([`Topology::name`]).
pub fn name(id: usize) -> String {
    Topology::runtime().name(id)
}

/// The actors of a cluster, built exactly as `QuorumModel::new` builds them.
pub fn actors(cfg: Config) -> Vec<Node> {
    actors_upto(cfg, FIRST_EPOCH)
}

/// The six segments and the writers of epochs 1..=`epoch`, by actor id.
pub fn actors_upto(cfg: Config, epoch: Epoch) -> Vec<Node> {
    let mut v: Vec<Node> = (0..SEGMENTS)
        .map(|_| Node::Segment(StorageNode::new(cfg)))
        .collect();
    for e in FIRST_EPOCH..=epoch.max(FIRST_EPOCH) {
        v.push(writer(cfg, e));
    }
    v
}

/// The writer of epoch `epoch`, writing to the six segments.
pub(super) fn writer(cfg: Config, epoch: Epoch) -> Node {
    let segments: [Id; SEGMENTS] = std::array::from_fn(Id::from);
    Node::Writer(Writer {
        cfg,
        segments,
        epoch,
    })
}

/// The trace header every process of a cluster with configuration `cfg` writes.
pub fn header(cfg: Config) -> Header {
    header_upto(cfg, FIRST_EPOCH)
}

/// The trace header of a process that knows writers up to `epoch` (a promoted writer's). A run
/// with more than one writer is judged by the `failover` model's properties, one with a single
/// writer by the `quorum` model's; merged traces take the header with the most writers.
pub fn header_upto(cfg: Config, epoch: Epoch) -> Header {
    Header {
        version: TRACE_VERSION,
        source: "runtime".into(),
        model: if epoch > FIRST_EPOCH {
            "failover"
        } else {
            "quorum"
        }
        .into(),
        config: cfg,
        actors: actors_upto(cfg, epoch).iter().map(ActorSpec::of).collect(),
        violates: None,
    }
}
