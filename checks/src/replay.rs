//! `sixfold replay`: check a recorded trace against the model, step by step.
//!
//! A trace (see `sixfold_model::trace`) is a header and one line per actor step. Replay rebuilds
//! every actor from the header, feeds each recorded input to it through
//! [`sixfold_model::trace::apply`] (the same entry point the runtime and the model use) and checks
//! three things on every line:
//! 1. the outputs are the ones recorded;
//! 2. the digest of the actor's new state is the one recorded;
//! 3. the model's invariants hold on the reconstructed global state: each segment's durable
//!    storage (from its saves and restarts) and a [`Ghost`] history updated with
//!    [`Ghost::observe_send`] for every recorded send, judged by [`Ghost::durable`] and the ghost's
//!    stale / uncommitted read flags — the same rules the model checker applies.
//!
//! The model's ghost describes one register (the model uses a single key). A runtime run writes
//! many keys, so replay keeps the model's ghost for the whole volume (durability and uncommitted
//! reads are about LSNs and VDL, which are global) plus one model ghost per key for stale reads,
//! feeding each the sends that concern its key ([`KeyedHistory`]). On single-key traces (every
//! model counterexample) the two views coincide.
//!
//! A message from a sender that is not an actor of the trace (an external client of a runtime
//! cluster) is observed by the ghost when the recipient takes it, since its send was not recorded.
//!
//! A directory of per-process traces (what `sixfold node --trace` writes) is merged into one
//! causal order before it is replayed: reading and merging trace files is the runtime's
//! ([`sixfold_impl::trace_merge`], beside the writing side, `sixfold_impl::trace_log`).
//!
//! Every runtime writer numbers its client connections from `CLIENT_ID_BASE`, so two writers'
//! clients share ids; the ghost tells them apart by the writer they talk to.
//!
//! A counterexample (its header names the property it `violates`) passes when every step matches
//! and that property is indeed violated.

use serde_json::Value;
use sixfold_impl::trace_merge::{load, At, Trace, TraceStep};
use sixfold_model::check::properties::{self, View};
use sixfold_model::check::quorum::Ghost;
use sixfold_model::protocol::actor::{Node, NodeState};
use sixfold_model::protocol::effects::NodeStorage;
use sixfold_model::protocol::log::Log;
use sixfold_model::protocol::msg::{Epoch, Key, Lsn, Msg, ReqId, FIRST_EPOCH};
use sixfold_model::protocol::topology::{Topology, CLIENT_ID_BASE};
use sixfold_model::trace::{self, ActorSpec, Header, Input, Output};
use stateright::actor::Id;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// How a replay ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayVerdict {
    /// Every step matched and every invariant held.
    Pass,
    /// A counterexample: every step matched and the property it names was violated here.
    Reproduced {
        /// The property.
        property: String,
        /// The step where it first failed.
        at: At,
    },
    /// A step's outputs or state digest differ from the model's.
    Mismatch {
        /// The first diverging step.
        at: At,
        /// Expected (model) against actual (recorded), rendered.
        detail: String,
    },
    /// An invariant failed on a trace that does not claim to violate it.
    Violation {
        /// The property.
        property: String,
        /// The step where it first failed.
        at: At,
    },
    /// A counterexample whose property never failed.
    NotReproduced {
        /// The property it claims to violate.
        property: String,
    },
}

impl ReplayVerdict {
    /// Whether the trace passed (a counterexample passes when it reproduces).
    pub fn passed(&self) -> bool {
        matches!(self, ReplayVerdict::Pass | ReplayVerdict::Reproduced { .. })
    }
}

/// The result of a replay: the verdict and a human-readable timeline of the steps replayed.
#[derive(Clone, Debug)]
pub struct Replayed {
    /// How it ended.
    pub verdict: ReplayVerdict,
    /// Steps replayed (up to and including a mismatch).
    pub steps: usize,
    /// One line per step, plus marks where invariants failed.
    pub timeline: String,
}

/// The layout a trace's actors follow: its writers, then its scripted clients.
pub fn topology(actors: &[ActorSpec]) -> Topology {
    let count = |f: fn(&ActorSpec) -> bool| actors.iter().filter(|a| f(a)).count();
    Topology {
        writers: count(|a| matches!(a, ActorSpec::Writer { .. })) as Epoch,
        clients: count(|a| matches!(a, ActorSpec::Client { .. })),
    }
}

/// Actor names for timelines ([`Topology::name`]): `seg3/az1`, `writer`, `writer2`, `client0`;
/// senders outside the trace are the control plane or external clients (`ext0`).
pub fn actor_name(actors: &[ActorSpec], id: usize) -> String {
    topology(actors).name(id)
}

/// Renders a serde value compactly: `Ack{lsn:1,scl:1}`, `OpenQuery`, `None`.
pub fn compact(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(compact).collect::<Vec<_>>().join(",")),
        Value::Object(m) if m.len() == 1 => {
            let (k, inner) = m.iter().next().expect("one entry");
            match inner {
                Value::Object(_) => format!("{k}{}", compact_fields(inner)),
                other => format!("{k}({})", compact(other)),
            }
        }
        Value::Object(_) => compact_fields(v),
        other => other.to_string(),
    }
}

fn compact_fields(v: &Value) -> String {
    let Value::Object(m) = v else {
        return compact(v);
    };
    let fields: Vec<String> = m
        .iter()
        .map(|(k, x)| format!("{k}:{}", compact(x)))
        .collect();
    format!("{{{}}}", fields.join(","))
}

fn render_msg(msg: &sixfold_model::protocol::msg::Msg) -> String {
    compact(&serde_json::to_value(msg).expect("messages serialize"))
}

/// LSN ranges of a log: `[1-3,5]`.
pub fn render_log(log: &Log) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(u64, u64)> = None;
    let flush = |run: Option<(u64, u64)>, parts: &mut Vec<String>| match run {
        Some((a, b)) if a == b => parts.push(a.to_string()),
        Some((a, b)) => parts.push(format!("{a}-{b}")),
        None => {}
    };
    for r in log.records() {
        run = match run {
            Some((a, b)) if r.lsn == b + 1 => Some((a, r.lsn)),
            other => {
                flush(other, &mut parts);
                Some((r.lsn, r.lsn))
            }
        };
    }
    flush(run, &mut parts);
    format!("[{}]", parts.join(","))
}

/// A saved log: its LSN ranges, then its epoch and truncations when there are any.
fn render_storage(s: &NodeStorage) -> String {
    let NodeStorage::Segment(log) = s;
    let mut text = format!("log {}", render_log(log));
    if log.epoch() != FIRST_EPOCH {
        let _ = write!(text, " e{}", log.epoch());
    }
    for t in log.truncations() {
        let _ = write!(text, " void({},{}]", t.after, t.upto);
    }
    text
}

fn timer_name(t: &impl serde::Serialize) -> String {
    compact(&serde_json::to_value(t).expect("timers serialize"))
}

/// One step's input, rendered.
pub fn render_input(actors: &[ActorSpec], input: &Input) -> String {
    match input {
        Input::Start { storage: None } => "start".into(),
        Input::Start { storage: Some(s) } => format!("start from {}", render_storage(s)),
        Input::Msg { src, msg } => format!("<- {} {}", actor_name(actors, *src), render_msg(msg)),
        Input::Timer { timer } => format!("timer {}", timer_name(timer)),
        Input::Choice { choice } => format!(
            "pick {}",
            compact(&serde_json::to_value(choice).expect("choices serialize"))
        ),
        Input::Crash => "CRASH".into(),
        Input::LoseDisk => "LOSE DISK".into(),
    }
}

/// One step's outputs, rendered.
pub fn render_outputs(actors: &[ActorSpec], outputs: &[Output]) -> String {
    // Runs of the same message to several recipients (the writer's broadcasts) collapse.
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < outputs.len() {
        match &outputs[i] {
            Output::Send { dst, msg } => {
                let mut dsts = vec![*dst];
                while let Some(Output::Send { dst: d, msg: m }) = outputs.get(i + dsts.len()) {
                    if m != msg {
                        break;
                    }
                    dsts.push(*d);
                }
                i += dsts.len();
                let to = if dsts.len() == 1 {
                    actor_name(actors, dsts[0])
                } else if dsts
                    .iter()
                    .all(|d| matches!(actors.get(*d), Some(ActorSpec::Segment)))
                {
                    format!(
                        "seg{{{}}}",
                        dsts.iter()
                            .map(|d| d.to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    )
                } else {
                    dsts.iter()
                        .map(|d| actor_name(actors, *d))
                        .collect::<Vec<_>>()
                        .join(",")
                };
                parts.push(format!("{} -> {to}", render_msg(msg)));
                continue;
            }
            Output::SetTimer { timer } => parts.push(format!("set {}", timer_name(timer))),
            Output::CancelTimer { timer } => parts.push(format!("cancel {}", timer_name(timer))),
            Output::Save { storage } => parts.push(format!("save {}", render_storage(storage))),
            Output::Choose { key, choices } if choices.is_empty() => {
                parts.push(format!("withdraw {key:?}"))
            }
            Output::Choose { key, choices } => parts.push(format!(
                "offer {key:?}: {}",
                choices
                    .iter()
                    .map(|c| compact(&serde_json::to_value(c).expect("choices serialize")))
                    .collect::<Vec<_>>()
                    .join(" | ")
            )),
        }
        i += 1;
    }
    parts.join(", ")
}

fn timeline_line(actors: &[ActorSpec], s: &TraceStep) -> String {
    let out = render_outputs(actors, &s.step.outputs);
    let input = render_input(actors, &s.step.input);
    let who = actor_name(actors, s.step.actor);
    if out.is_empty() {
        format!("{:>5}  {who:<9} {input}", s.at.line)
    } else {
        format!("{:>5}  {who:<9} {input}  => {out}", s.at.line)
    }
}

/// The model's history rules applied to a multi-key run: a volume-wide [`Ghost`] and one per key.
#[derive(Clone, Debug, Default)]
pub struct KeyedHistory {
    /// Every send, as the model observes them: durability and uncommitted reads.
    pub volume: Ghost,
    /// Per key, the sends about that key: stale reads.
    pub per_key: std::collections::BTreeMap<Key, Ghost>,
    lsn_key: std::collections::HashMap<Lsn, Key>,
    read_key: std::collections::HashMap<(usize, ReqId), Key>,
}

impl KeyedHistory {
    /// Observes `src` sending `msg` to `dst`, with [`Ghost::observe_send`].
    pub fn observe(&mut self, src: usize, dst: usize, msg: &Msg) {
        let (s, d) = (Id::from(src), Id::from(dst));
        if let Some(g) = self.volume.observe_send(s, d, msg) {
            self.volume = g;
        }
        let key = match msg {
            Msg::Append { record, .. } => {
                self.lsn_key.insert(record.lsn, record.key);
                None
            }
            Msg::WriteOk { lsn, .. } => self.lsn_key.get(lsn).copied(),
            Msg::Read { req, key } => {
                self.read_key.insert((src, *req), *key);
                Some(*key)
            }
            Msg::ReadOk { req, .. } => self.read_key.get(&(dst, *req)).copied(),
            _ => None,
        };
        if let Some(k) = key {
            let g = self.per_key.entry(k).or_default();
            if let Some(next) = g.observe_send(s, d, msg) {
                *g = next;
            }
        }
    }

    /// Whether some read returned a version older than a commit of its key acknowledged before
    /// the read was issued.
    pub fn stale_read(&self) -> bool {
        self.per_key.values().any(|g| g.stale_read)
    }
}

/// The first property of `model` (the trace header's model name) the run has broken so far,
/// judged by the model's own property list (stale reads per key).
fn first_violation(
    model: &str,
    h: &KeyedHistory,
    states: &[Option<NodeState>],
    st: &[Option<NodeStorage>],
) -> Option<&'static str> {
    let props = properties::of_model(model).unwrap_or(properties::QUORUM);
    let view = View::of_run(&h.volume, h.stale_read(), states, st);
    properties::first_broken(props, &view)
}

/// Why a `Start` step's storage is not what the actor last saved in the trace (`saved`), if it
/// is not: the disk must give back exactly the last save, or nothing after a `LoseDisk`.
fn restart_mismatch(input: &Input, saved: &Option<NodeStorage>) -> Option<String> {
    let Input::Start { storage } = input else {
        return None;
    };
    if storage == saved {
        return None;
    }
    let show = |s: &Option<NodeStorage>| s.as_ref().map_or("nothing".into(), render_storage);
    Some(format!(
        "  storage expected (its last save in the trace): {}\n  storage actual (the restart):                {}",
        show(saved),
        show(storage)
    ))
}

/// The id the ghost knows `id` by when actor `a` talks to it: a runtime client connection
/// (each writer numbers its own from `CLIENT_ID_BASE`) is told apart by its writer; any other id
/// is itself.
fn ghost_id(a: usize, id: usize) -> usize {
    match id.checked_sub(CLIENT_ID_BASE) {
        Some(n) => CLIENT_ID_BASE + n * CLIENT_ID_BASE + a,
        None => id,
    }
}

/// Replays a trace against the model.
pub fn replay(trace: &Trace) -> Replayed {
    replay_with(trace, |_| {})
}

/// What replay knows after one matched step, for pictures of a run (`sixfold show`): the step,
/// every actor's state (`None` while down) and durable storage after it, by actor id, and the
/// property this step broke first, if it did.
pub struct Snapshot<'a> {
    /// The step replayed.
    pub step: &'a TraceStep,
    /// Each actor's state after it.
    pub states: &'a [Option<NodeState>],
    /// Each actor's durable storage after it.
    pub storages: &'a [Option<NodeStorage>],
    /// The first property broken in the run, if this is the step that broke it.
    pub broke: Option<&'a str>,
}

/// Replays a trace like [`replay`], handing `each` a [`Snapshot`] after every matched step.
pub fn replay_with(trace: &Trace, mut each: impl FnMut(Snapshot)) -> Replayed {
    let mut run = Run::new(&trace.header);
    for s in &trace.steps {
        let broken_before = run.violated.is_some();
        if let Err(mismatch) = run.step(s) {
            return run.end(mismatch);
        }
        each(Snapshot {
            step: s,
            states: &run.states,
            storages: &run.storages,
            broke: match &run.violated {
                Some((p, _)) if !broken_before => Some(p),
                _ => None,
            },
        });
    }
    let verdict = match (&trace.header.violates, run.violated.take()) {
        (None, None) => ReplayVerdict::Pass,
        (None, Some((property, at))) => ReplayVerdict::Violation { property, at },
        (Some(want), Some((property, at))) if *want == property => {
            ReplayVerdict::Reproduced { property, at }
        }
        (Some(_), Some((property, at))) => ReplayVerdict::Violation { property, at },
        (Some(want), None) => ReplayVerdict::NotReproduced {
            property: want.clone(),
        },
    };
    run.end(verdict)
}

/// The global state a replay rebuilds, one recorded step at a time.
struct Run<'a> {
    h: &'a Header,
    nodes: Vec<Node>,
    states: Vec<Option<NodeState>>,
    /// Each actor's durable storage: its last save, or nothing since a lost disk.
    storages: Vec<Option<NodeStorage>>,
    ghost: KeyedHistory,
    timeline: String,
    /// The first property broken, and where.
    violated: Option<(String, At)>,
    steps: usize,
}

impl<'a> Run<'a> {
    fn new(h: &'a Header) -> Run<'a> {
        let nodes: Vec<Node> = h.actors.iter().map(|a| a.build(h.config)).collect();
        Run {
            h,
            states: vec![None; nodes.len()],
            storages: vec![None; nodes.len()],
            nodes,
            ghost: KeyedHistory {
                volume: Ghost {
                    geometry: h.config.geometry,
                    ..Ghost::default()
                },
                ..KeyedHistory::default()
            },
            timeline: String::new(),
            violated: None,
            steps: 0,
        }
    }

    fn end(self, verdict: ReplayVerdict) -> Replayed {
        Replayed {
            verdict,
            steps: self.steps,
            timeline: self.timeline,
        }
    }

    /// Replays one step: its restart storage, outputs and digest must be the model's (else the
    /// mismatch is returned); then the ghost observes it and the properties are judged.
    fn step(&mut self, s: &TraceStep) -> Result<(), ReplayVerdict> {
        self.steps += 1;
        let (h, a) = (self.h, s.step.actor);
        let _ = writeln!(self.timeline, "{}", timeline_line(&h.actors, s));
        if let Input::Msg { src, msg } = &s.step.input {
            if *src >= self.nodes.len() {
                self.ghost.observe(ghost_id(a, *src), a, msg);
            }
        }
        if let Some(detail) = restart_mismatch(&s.step.input, &self.storages[a]) {
            let _ = writeln!(self.timeline, "  !! restarts from storage it never saved");
            let who = actor_name(&h.actors, a);
            return Err(ReplayVerdict::Mismatch {
                at: s.at.clone(),
                detail: format!("restart of {who}\n{detail}"),
            });
        }
        let node = &self.nodes[a];
        let (next, out) = trace::apply(node, Id::from(a), self.states[a].as_ref(), &s.step.input);
        let outputs = trace::outputs(out);
        let digest = next.as_ref().map(trace::digest);
        if let Some(detail) = divergence(&h.actors, s, &outputs, &digest) {
            let _ = writeln!(self.timeline, "  !! diverges from the model here");
            return Err(ReplayVerdict::Mismatch {
                at: s.at.clone(),
                detail,
            });
        }
        if let Node::Writer(w) = node {
            let before = self.states[a].as_ref().and_then(NodeState::as_writer);
            let after = next.as_ref().and_then(NodeState::as_writer);
            self.ghost
                .volume
                .observe_writer_step(w.epoch, before, after);
        }
        self.states[a] = next;
        self.observe(a, &s.step.input, &outputs);
        if self.violated.is_none() {
            let (st, sto) = (&self.states, &self.storages);
            if let Some(p) = first_violation(&h.model, &self.ghost, st, sto) {
                let _ = writeln!(self.timeline, "  !! property violated: {p}");
                self.violated = Some((p.to_string(), s.at.clone()));
            }
        }
        Ok(())
    }

    /// Takes a matched step of actor `a` into the global state: disks lost and replaced, saves,
    /// and every send into the ghost.
    fn observe(&mut self, a: usize, input: &Input, outputs: &[Output]) {
        match input {
            // A segment that starts again after losing its disk was given a new one: it counts
            // again, as a segment that holds nothing yet.
            Input::Start { .. } if a < 8 => self.ghost.volume.lost &= !(1 << a),
            Input::LoseDisk => {
                self.storages[a] = None;
                if a < 8 {
                    self.ghost.volume.lost |= 1 << a;
                }
            }
            _ => {}
        }
        for o in outputs {
            match o {
                Output::Save { storage } => self.storages[a] = Some(storage.clone()),
                Output::Send { dst, msg } => {
                    self.ghost.observe(a, ghost_id(a, *dst), msg);
                }
                _ => {}
            }
        }
    }
}

/// How a replayed step differs from the recorded one (outputs, state digest), rendered as
/// expected (model) against actual (trace); `None` if it does not.
fn divergence(
    actors: &[ActorSpec],
    s: &TraceStep,
    outputs: &[Output],
    digest: &Option<String>,
) -> Option<String> {
    if outputs == s.step.outputs && *digest == s.step.digest {
        return None;
    }
    let mut detail = String::new();
    if outputs != s.step.outputs {
        let _ = writeln!(
            detail,
            "  outputs expected (model): {}\n  outputs actual (trace):   {}",
            render_outputs(actors, outputs),
            render_outputs(actors, &s.step.outputs)
        );
    }
    if *digest != s.step.digest {
        let _ = writeln!(
            detail,
            "  state digest expected (model): {}\n  state digest actual (trace):   {}",
            digest.as_deref().unwrap_or("down"),
            s.step.digest.as_deref().unwrap_or("down")
        );
    }
    Some(format!(
        "step of {} ({})\n{detail}",
        actor_name(actors, s.step.actor),
        render_input(actors, &s.step.input)
    ))
}

/// `sixfold replay`.
#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// A trace file (NDJSON), or a directory of per-process trace files to merge.
    pub file: PathBuf,
    /// Also print the replayed steps as a timeline.
    #[arg(long)]
    pub timeline: bool,
}

/// Runs `sixfold replay`: exit 0 pass, 1 mismatch or invariant violation, 2 bad input.
pub fn run(args: &ReplayArgs) -> ExitCode {
    let trace = match load(&args.file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("sixfold replay: {e}");
            return ExitCode::from(2);
        }
    };
    let out = replay(&trace);
    if args.timeline {
        print!("{}", out.timeline);
    }
    let src = &trace.header.source;
    match &out.verdict {
        ReplayVerdict::Pass => {
            println!(
                "PASS {}: {} steps ({src} trace) match the model; invariants hold throughout",
                args.file.display(),
                out.steps
            );
            ExitCode::SUCCESS
        }
        ReplayVerdict::Reproduced { property, at } => {
            println!(
                "PASS {}: {} steps match the model; counterexample reproduced: '{property}' violated at {at}",
                args.file.display(),
                out.steps
            );
            ExitCode::SUCCESS
        }
        ReplayVerdict::Mismatch { at, detail } => {
            println!("FAIL {at}: first diverging line\n{detail}");
            ExitCode::from(1)
        }
        ReplayVerdict::Violation { property, at } => {
            println!("FAIL {at}: invariant '{property}' violated on the reconstructed state");
            ExitCode::from(1)
        }
        ReplayVerdict::NotReproduced { property } => {
            println!(
                "FAIL {}: counterexample does not reproduce: '{property}' never violated",
                args.file.display()
            );
            ExitCode::from(1)
        }
    }
}
