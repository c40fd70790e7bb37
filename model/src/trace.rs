//! The trace format: one JSON object per line (NDJSON), one line per actor step.
//!
//! A trace is how the model and the runtime show each other their work. The runtime records every
//! step of every actor (which input it took, which outputs it produced, a digest of the state it
//! ended in); `sixfold check` writes counterexamples the same way; `sixfold replay` feeds each
//! recorded input back to the model's actor and compares. So the format lives in the core, next to
//! the one function that runs a step ([`apply`]), which every driver calls.
//!
//! The first line is a [`Line::Header`] naming the model, the configuration and the actors; every
//! other line is a [`Line::Step`].

use crate::protocol::actor::{Node, NodeState};
use crate::protocol::client::{Client, Op};
use crate::protocol::config::{Config, SEGMENTS};
use crate::protocol::effects::Choice;
use crate::protocol::effects::{NodeStorage, NodeTimer};
use crate::protocol::msg::{Epoch, Msg, FIRST_EPOCH};
use crate::protocol::storage_node::StorageNode;
use crate::protocol::writer::Writer;
use serde::{Deserialize, Serialize};
use stateright::actor::{Actor, Command, Id, Out};
use std::borrow::Cow;

/// Version of the trace format; bumped on any incompatible change.
pub const TRACE_VERSION: u32 = 1;

/// What an actor is, enough to rebuild it: the header of a trace lists one per actor id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum ActorSpec {
    /// A storage node.
    Segment,
    /// The writer, with the actor ids of its six segments.
    Writer {
        /// Segment actor ids, by segment index.
        segments: [usize; SEGMENTS],
        /// The epoch it opens the volume in.
        #[serde(default = "first_epoch")]
        epoch: Epoch,
    },
    /// A scripted client of the writer.
    Client {
        /// The writer's actor id.
        writer: usize,
        /// The client's operations.
        script: Vec<Op>,
        /// Writes it may have outstanding at once.
        #[serde(default = "one")]
        window: u8,
    },
}

impl ActorSpec {
    /// Describe an actor.
    pub fn of(node: &Node) -> Self {
        match node {
            Node::Segment(_) => ActorSpec::Segment,
            Node::Writer(w) => ActorSpec::Writer {
                segments: w.segments.map(usize::from),
                epoch: w.epoch,
            },
            Node::Client(c) => ActorSpec::Client {
                writer: c.writer.into(),
                script: c.script.clone(),
                window: c.window,
            },
        }
    }

    /// Rebuild the actor this spec describes, under `cfg`.
    pub fn build(&self, cfg: Config) -> Node {
        match self {
            ActorSpec::Segment => Node::Segment(StorageNode::new(cfg)),
            ActorSpec::Writer { segments, epoch } => Node::Writer(Writer {
                cfg,
                segments: segments.map(Id::from),
                epoch: *epoch,
            }),
            ActorSpec::Client {
                writer,
                script,
                window,
            } => Node::Client(Client {
                writer: Id::from(*writer),
                script: script.clone(),
                window: *window,
            }),
        }
    }
}

fn first_epoch() -> Epoch {
    FIRST_EPOCH
}

fn one() -> u8 {
    1
}

/// The first line of a trace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// [`TRACE_VERSION`] of the writer of the trace.
    pub version: u32,
    /// Who produced it: `"model"` (a counterexample) or `"runtime"` (a recorded run).
    pub source: String,
    /// The model it belongs to, e.g. `"quorum"`.
    pub model: String,
    /// The protocol configuration, mutant included.
    pub config: Config,
    /// The actors, by id.
    pub actors: Vec<ActorSpec>,
    /// The property a counterexample violates, if it is one.
    pub violates: Option<String>,
}

/// What an actor took as input in one step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Input {
    /// The actor (re)started with this durable storage.
    Start {
        /// What it had saved, if anything.
        storage: Option<NodeStorage>,
    },
    /// A message arrived.
    Msg {
        /// The sender's actor id.
        src: usize,
        /// The message.
        msg: Msg,
    },
    /// A timer fired.
    Timer {
        /// Which one.
        timer: NodeTimer,
    },
    /// One of the options the actor offered (`Output::Choose`) was picked.
    Choice {
        /// The option picked.
        choice: Choice,
    },
    /// The actor crashed: it loses its volatile state and takes no step until it starts again.
    Crash,
    /// The actor's disk is gone for good (a model fault; the actor never starts again).
    LoseDisk,
}

/// One effect of a step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Output {
    /// Send a message.
    Send {
        /// The recipient's actor id.
        dst: usize,
        /// The message.
        msg: Msg,
    },
    /// Arm a timer.
    SetTimer {
        /// Which one.
        timer: NodeTimer,
    },
    /// Disarm a timer.
    CancelTimer {
        /// Which one.
        timer: NodeTimer,
    },
    /// Offer a choice under `key`: one option will come back as `Input::Choice`. An empty list
    /// withdraws the offer.
    Choose {
        /// Names the offer; a new offer under the same key replaces it.
        key: String,
        /// The options.
        choices: Vec<Choice>,
    },
    /// Make this durable before any later send leaves the process.
    Save {
        /// The new durable storage.
        storage: NodeStorage,
    },
}

/// One line of a trace after the header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The actor id that stepped.
    pub actor: usize,
    /// What it took.
    pub input: Input,
    /// What it produced, in order.
    pub outputs: Vec<Output>,
    /// [`digest`] of its state after the step (`None` when it is down).
    pub digest: Option<String>,
}

/// A line of a trace file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Line {
    /// The first line.
    Header(Header),
    /// Every other line.
    Step(Step),
}

/// A digest of an actor's state that is the same on every machine and every run: FNV-1a over its
/// JSON form. It lets a trace pin the state without carrying it.
pub fn digest(state: &NodeState) -> String {
    let json = serde_json::to_vec(state).expect("actor states always serialize");
    let hash = json.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// Turn an actor's commands into trace outputs.
pub fn outputs(out: Out<Node>) -> Vec<Output> {
    out.into_iter()
        .map(|c| match c {
            Command::Send(dst, msg) => Output::Send {
                dst: dst.into(),
                msg,
            },
            Command::SetTimer(timer, _) => Output::SetTimer { timer },
            Command::CancelTimer(timer) => Output::CancelTimer { timer },
            Command::Save(storage) => Output::Save { storage },
            Command::ChooseRandom(key, choices) => Output::Choose { key, choices },
        })
        .collect()
}

/// Run one step of `node`, whose state is `state` (`None` while it is down), on `input`.
/// Returns the state after the step (`None` when the step leaves it down) and the commands it
/// produced. This is the single entry point every driver uses: the runtime for live steps, replay
/// for recorded ones.
pub fn apply(
    node: &Node,
    id: Id,
    state: Option<&NodeState>,
    input: &Input,
) -> (Option<NodeState>, Out<Node>) {
    let mut out = Out::new();
    let next = match (input, state) {
        (Input::Start { storage }, _) => Some(node.on_start(id, storage, &mut out)),
        (Input::Msg { src, msg }, Some(st)) => {
            let mut cow = Cow::Borrowed(st);
            node.on_msg(id, &mut cow, Id::from(*src), msg.clone(), &mut out);
            Some(cow.into_owned())
        }
        (Input::Timer { timer }, Some(st)) => {
            let mut cow = Cow::Borrowed(st);
            node.on_timeout(id, &mut cow, timer, &mut out);
            Some(cow.into_owned())
        }
        (Input::Choice { choice }, Some(st)) => {
            let mut cow = Cow::Borrowed(st);
            node.on_random(id, &mut cow, choice, &mut out);
            Some(cow.into_owned())
        }
        (Input::Msg { .. } | Input::Timer { .. } | Input::Choice { .. }, None) => None,
        (Input::Crash | Input::LoseDisk, _) => None,
    };
    (next, out)
}
