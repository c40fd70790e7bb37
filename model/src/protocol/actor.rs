//! `Node`: the one `stateright::actor::Actor` every process of sixfold runs.
//!
//! The model checker and the runtime both drive this type through the same three entry points
//! (`on_start`, `on_msg`, `on_timeout`). A node is a segment, the writer or a client; the variants
//! delegate to the step functions in [`crate::protocol::storage_node`], [`crate::protocol::writer`] and
//! [`crate::protocol::client`], which are the only place protocol decisions are made.

use crate::protocol::client::{Client, ClientState};
use crate::protocol::effects::Choice;
pub use crate::protocol::effects::{NodeStorage, NodeTimer};
use crate::protocol::log::Log;
use crate::protocol::msg::Msg;
use crate::protocol::storage_node::StorageNode;
use crate::protocol::writer::{Writer, WriterState};
use stateright::actor::{Actor, Id, Out};
use std::borrow::Cow;

/// A process of the protocol.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    /// A storage node holding one segment.
    Segment(StorageNode),
    /// The writer instance.
    Writer(Writer),
    /// A client of the writer.
    Client(Client),
}

/// A node's volatile state.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum NodeState {
    /// A segment's in-memory log.
    Segment(Log),
    /// The writer's watermarks and queues.
    Writer(WriterState),
    /// A client's progress through its script.
    Client(ClientState),
}

impl NodeState {
    /// The segment's log, if this is a segment's state.
    pub fn as_segment(&self) -> Option<&Log> {
        match self {
            NodeState::Segment(l) => Some(l),
            _ => None,
        }
    }

    /// The writer's state, if this is the writer's.
    pub fn as_writer(&self) -> Option<&WriterState> {
        match self {
            NodeState::Writer(w) => Some(w),
            _ => None,
        }
    }

    /// The client's state, if this is a client's.
    pub fn as_client(&self) -> Option<&ClientState> {
        match self {
            NodeState::Client(c) => Some(c),
            _ => None,
        }
    }
}

/// Shows the inner state only: the actor's role is already on screen wherever it is printed.
impl std::fmt::Debug for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeState::Segment(l) => l.fmt(f),
            NodeState::Writer(w) => w.fmt(f),
            NodeState::Client(c) => c.fmt(f),
        }
    }
}

/// Runs `f` on the inner state of the expected variant, keeping `Cow` borrowed until `f` writes.
fn with_inner<T: Clone>(
    state: &mut Cow<NodeState>,
    get: fn(&NodeState) -> Option<&T>,
    wrap: fn(T) -> NodeState,
    f: impl FnOnce(&mut Cow<T>),
) {
    let Some(inner) = get(state) else { return };
    let mut inner = Cow::Borrowed(inner);
    f(&mut inner);
    if let Cow::Owned(inner) = inner {
        *state.to_mut() = wrap(inner);
    }
}

impl Actor for Node {
    type Msg = Msg;
    type State = NodeState;
    type Timer = NodeTimer;
    type Storage = NodeStorage;
    type Random = Choice;

    fn name(&self) -> String {
        match self {
            Node::Segment(_) => "segment",
            Node::Writer(_) => "writer",
            Node::Client(_) => "client",
        }
        .to_string()
    }

    fn on_start(&self, _id: Id, storage: &Option<NodeStorage>, o: &mut Out<Self>) -> NodeState {
        match self {
            Node::Segment(s) => {
                let log = storage.as_ref().map(|NodeStorage::Segment(l)| l.clone());
                NodeState::Segment(s.on_start(&log, o))
            }
            Node::Writer(w) => NodeState::Writer(w.on_start(o)),
            Node::Client(c) => NodeState::Client(c.on_start(o)),
        }
    }

    fn on_msg(&self, _id: Id, state: &mut Cow<NodeState>, src: Id, msg: Msg, o: &mut Out<Self>) {
        match self {
            Node::Segment(s) => {
                with_inner(state, NodeState::as_segment, NodeState::Segment, |inner| {
                    s.on_msg(inner, src, msg, o)
                })
            }
            Node::Writer(w) => {
                with_inner(state, NodeState::as_writer, NodeState::Writer, |inner| {
                    w.on_msg(inner, src, msg, o)
                })
            }
            Node::Client(c) => {
                with_inner(state, NodeState::as_client, NodeState::Client, |inner| {
                    c.on_msg(inner, msg, o)
                })
            }
        }
    }

    fn on_random(&self, _id: Id, state: &mut Cow<NodeState>, choice: &Choice, o: &mut Out<Self>) {
        match self {
            Node::Writer(w) => {
                with_inner(state, NodeState::as_writer, NodeState::Writer, |inner| {
                    w.on_random(inner, choice, o)
                })
            }
            Node::Segment(s) => {
                with_inner(state, NodeState::as_segment, NodeState::Segment, |inner| {
                    s.on_random(inner, choice, o)
                })
            }
            Node::Client(_) => {}
        }
    }

    fn on_timeout(&self, id: Id, state: &mut Cow<NodeState>, timer: &NodeTimer, o: &mut Out<Self>) {
        match self {
            Node::Writer(w) => {
                with_inner(state, NodeState::as_writer, NodeState::Writer, |inner| {
                    w.on_timeout(inner, timer, o)
                })
            }
            Node::Segment(s) => {
                with_inner(state, NodeState::as_segment, NodeState::Segment, |inner| {
                    s.on_timeout(id, inner, timer, o)
                })
            }
            Node::Client(_) => {}
        }
    }
}
