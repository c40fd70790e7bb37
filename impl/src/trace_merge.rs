//! Reading trace files, and merging the per-process files of one run into the order replay
//! takes them in: the reading side of [`crate::trace_log`].
//!
//! A trace (see `sixfold_model::trace`) is a header and one line per actor step; every error
//! names the file and, for content, the line ([`TraceFileError`]). A directory of per-process
//! traces (what `sixfold node --trace` writes) is merged ([`load`], [`merge_dir`]): the headers
//! must agree but for the actors (a promoted writer's lists the writers before it), and the
//! steps are put in causal order.
//!
//! That order is the Lamport `clock` each runtime line carries, ties broken by actor id: every
//! receive then follows its send. Clocks cannot see one order the runtime guarantees: the control
//! plane promotes the writer of epoch `e + 1` only after the lease of the writer of epoch `e` has
//! ended, which the model's `Promote` step takes as one step (the old lease runs out, the new
//! writer starts). So the merge also puts every step the old writer took up to its lease running
//! out (its `Lease` timer; all of them if it never fired: a killed writer) before the new
//! writer's start, and delays whatever follows from that start, using the `sent` field of each
//! receive (the clock of the step that sent it) to keep every receive after its send
//! ([`causal_order`]). Without it a read the old writer served under its lease can land after a
//! commit of the new one, a stale read that never happened.

use crate::trace_log::{CLOCK_FIELD, SENT_FIELD};
use serde_json::Value;
use sixfold_model::check::properties;
use sixfold_model::protocol::effects::NodeTimer;
use sixfold_model::protocol::msg::{Epoch, Msg};
use sixfold_model::trace::{ActorSpec, Header, Input, Line, Output, Step, TRACE_VERSION};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::{Path, PathBuf};

/// Where a line came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct At {
    /// The file.
    pub file: PathBuf,
    /// 1-based line number in it.
    pub line: usize,
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// Why a trace could not be read: always names the file and, for content, the line.
#[derive(Debug, thiserror::Error)]
pub enum TraceFileError {
    /// A line is not a valid trace line.
    #[error("{at}: {reason}")]
    BadLine {
        /// Where.
        at: At,
        /// What is wrong with it.
        reason: String,
    },
    /// The file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// One step of a trace with its provenance.
#[derive(Clone, Debug)]
pub struct TraceStep {
    /// Where it was read.
    pub at: At,
    /// The step.
    pub step: Step,
    /// The runtime's Lamport clock, when recorded.
    pub clock: Option<u64>,
    /// For a peer's message: the clock of the sender's step that sent it, when recorded.
    pub sent: Option<u64>,
    /// The line as written.
    pub raw: String,
}

/// A parsed trace.
#[derive(Clone, Debug)]
pub struct Trace {
    /// Its header.
    pub header: Header,
    /// Its steps, in replay order.
    pub steps: Vec<TraceStep>,
}

fn bad(file: &Path, line: usize, reason: impl Into<String>) -> TraceFileError {
    TraceFileError::BadLine {
        at: At {
            file: file.to_path_buf(),
            line,
        },
        reason: reason.into(),
    }
}

/// Pinpoints why a step line did not parse: names the message or output that is wrong.
fn explain(v: &Value, err: &serde_json::Error) -> String {
    if let Some(m) = v.get("input").and_then(|i| i.get("msg")) {
        if let Err(e) = serde_json::from_value::<Msg>(m.clone()) {
            return format!("input message does not parse: {e}: {m}");
        }
    }
    if let Some(outs) = v.get("outputs").and_then(Value::as_array) {
        for (i, o) in outs.iter().enumerate() {
            if let Err(e) = serde_json::from_value::<Output>(o.clone()) {
                if let Some(m) = o.get("msg") {
                    if let Err(e) = serde_json::from_value::<Msg>(m.clone()) {
                        return format!("output {i}: message does not parse: {e}: {m}");
                    }
                }
                return format!("output {i} does not parse: {e}: {o}");
            }
        }
    }
    format!("not a trace step: {err}")
}

/// Why a header cannot be read by this build, if it cannot: another format version, or a model
/// without properties to judge it by.
fn check_header(h: &Header) -> Result<(), String> {
    if h.version != TRACE_VERSION {
        return Err(format!(
            "trace format version {} (this build reads {TRACE_VERSION})",
            h.version
        ));
    }
    if properties::of_model(&h.model).is_none() {
        return Err(format!("unknown model '{}'", h.model));
    }
    Ok(())
}

/// Parses one trace file.
pub fn parse_file(path: &Path) -> Result<Trace, TraceFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| TraceFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_text(path, &text)
}

/// Parses the text of a trace file named `path` (for errors).
pub fn parse_text(path: &Path, text: &str) -> Result<Trace, TraceFileError> {
    let mut header: Option<Header> = None;
    let mut steps = Vec::new();
    let last = text.lines().count();
    let ends_cleanly = text.is_empty() || text.ends_with('\n');
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let v: Value = match serde_json::from_str(raw) {
            Ok(v) => v,
            Err(e) if n == last && !ends_cleanly => {
                return Err(bad(
                    path,
                    n,
                    format!("truncated line (no newline at end of file): {e}"),
                ))
            }
            Err(e) => return Err(bad(path, n, format!("not JSON (truncated line?): {e}"))),
        };
        let line: Line = match serde_json::from_value(v.clone()) {
            Ok(l) => l,
            Err(e) => return Err(bad(path, n, explain(&v, &e))),
        };
        match (line, &header) {
            (Line::Header(h), None) => {
                check_header(&h).map_err(|reason| bad(path, n, reason))?;
                header = Some(h);
            }
            (Line::Header(_), Some(_)) => {
                return Err(bad(path, n, "a second header line"));
            }
            (Line::Step(_), None) => {
                return Err(bad(
                    path,
                    n,
                    "missing header: the first line must be the header",
                ));
            }
            (Line::Step(step), Some(h)) => {
                if step.actor >= h.actors.len() {
                    return Err(bad(
                        path,
                        n,
                        format!(
                            "unknown actor id {} (the header lists actors 0..={})",
                            step.actor,
                            h.actors.len().saturating_sub(1)
                        ),
                    ));
                }
                steps.push(TraceStep {
                    at: At {
                        file: path.to_path_buf(),
                        line: n,
                    },
                    step,
                    clock: v.get(CLOCK_FIELD).and_then(Value::as_u64),
                    sent: v.get(SENT_FIELD).and_then(Value::as_u64),
                    raw: raw.to_string(),
                });
            }
        }
    }
    let header = header.ok_or_else(|| bad(path, 1, "missing header: the file has no lines"))?;
    Ok(Trace { header, steps })
}

/// The header of two per-process files merged: they must agree on everything but the actors,
/// and one actor list must extend the other (a promoted writer knows the writers before it; a
/// segment started before the failover knows only the first). The longer one wins, with its
/// model: a run with several writers is judged as `failover`.
fn merge_headers(a: &Header, b: &Header) -> Option<Header> {
    let (short, long) = if a.actors.len() <= b.actors.len() {
        (a, b)
    } else {
        (b, a)
    };
    let same = short.version == long.version
        && short.source == long.source
        && short.config == long.config
        && short.violates == long.violates
        && long.actors.starts_with(&short.actors);
    same.then(|| long.clone())
}

/// Loads a trace file, or merges a directory of per-process trace files (`*.ndjson`).
pub fn load(path: &Path) -> Result<Trace, TraceFileError> {
    if !path.is_dir() {
        return parse_file(path);
    }
    let io = |source| TraceFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ndjson"))
        .collect();
    files.sort();
    let mut merged: Option<Trace> = None;
    for f in &files {
        let t = parse_file(f)?;
        match &mut merged {
            None => merged = Some(t),
            Some(m) => {
                let Some(h) = merge_headers(&m.header, &t.header) else {
                    return Err(bad(
                        f,
                        1,
                        "header differs from the other files of the directory",
                    ));
                };
                m.header = h;
                m.steps.extend(t.steps);
            }
        }
    }
    let mut merged = merged.ok_or_else(|| {
        io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no *.ndjson trace files in this directory",
        ))
    })?;
    merged.steps = causal_order(&merged.header, merged.steps);
    Ok(merged)
}

/// The order in which the steps of several per-process files are replayed: by Lamport clock,
/// ties broken by actor id (within a file, one actor's steps keep their order), except that the
/// writer of each later epoch starts only after its predecessor's lease has run out (see the
/// module docs) and everything that follows from that start waits with it.
///
/// A topological sort of: each actor's own order, each receive after the step that sent it
/// (matched by `sent`), and one edge per promotion, from the old writer's `Lease` timer step (its
/// last step if the timer never fired) to the new writer's first step; among the steps that are
/// ready, the smallest clock goes first. Every edge but the promotions' goes from a smaller
/// clock to a larger one, so without a promotion this is exactly the sort by clock. A trace
/// whose receives do not all name their send, or whose promotion edges cannot be honoured (a
/// cycle), is sorted by clock alone.
pub fn causal_order(header: &Header, steps: Vec<TraceStep>) -> Vec<TraceStep> {
    let traced = header.actors.len();
    let from_peer =
        |s: &TraceStep| matches!(&s.step.input, Input::Msg { src, .. } if *src < traced);
    let order = if steps.iter().any(|s| from_peer(s) && s.sent.is_none()) {
        None
    } else {
        let succ = causal_edges(&steps);
        topo_sort(&steps, &succ, &promotions(header, &steps))
            .or_else(|| topo_sort(&steps, &succ, &[]))
    };
    let order = order.unwrap_or_else(|| by_clock(&steps));
    let mut slots: Vec<Option<TraceStep>> = steps.into_iter().map(Some).collect();
    order
        .into_iter()
        .map(|i| slots[i].take().expect("each step once"))
        .collect()
}

/// The merge's sort key of step `i`: its clock, then its actor, then where it was read.
fn clock_key(i: usize, s: &TraceStep) -> (u64, usize, usize) {
    (s.clock.unwrap_or(0), s.step.actor, i)
}

/// The steps' indices sorted by [`clock_key`] alone.
fn by_clock(steps: &[TraceStep]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..steps.len()).collect();
    order.sort_by_key(|&i| clock_key(i, &steps[i]));
    order
}

/// The successors of each step that the order must respect whatever the promotions: the next
/// step of the same actor, and every receive that names (by `sent`) the step that sent it.
fn causal_edges(steps: &[TraceStep]) -> Vec<Vec<usize>> {
    let mut succ: Vec<Vec<usize>> = vec![Vec::new(); steps.len()];
    let mut at: HashMap<(usize, u64), usize> = HashMap::new();
    let mut last: HashMap<usize, usize> = HashMap::new();
    for (i, s) in steps.iter().enumerate() {
        if let Some(prev) = last.insert(s.step.actor, i) {
            succ[prev].push(i);
        }
        if let Some(c) = s.clock {
            at.insert((s.step.actor, c), i);
        }
    }
    for (i, s) in steps.iter().enumerate() {
        if let (Input::Msg { src, .. }, Some(c)) = (&s.step.input, s.sent) {
            if let Some(&j) = at.get(&(*src, c)) {
                succ[j].push(i);
            }
        }
    }
    succ
}

/// One edge per promotion, between the writers of consecutive epochs: from the old writer's
/// `Lease` timer step (its last step if the timer never fired) to the new writer's first step.
fn promotions(header: &Header, steps: &[TraceStep]) -> Vec<(usize, usize)> {
    let mut writers: Vec<(Epoch, usize)> = header
        .actors
        .iter()
        .enumerate()
        .filter_map(|(id, a)| match a {
            ActorSpec::Writer { epoch, .. } => Some((*epoch, id)),
            _ => None,
        })
        .collect();
    writers.sort();
    let steps_of = |id: usize| -> Vec<usize> {
        (0..steps.len())
            .filter(|&i| steps[i].step.actor == id)
            .collect()
    };
    let lease = Input::Timer {
        timer: NodeTimer::Lease,
    };
    let mut edges = Vec::new();
    for pair in writers.windows(2) {
        let (old, new) = (steps_of(pair[0].1), steps_of(pair[1].1));
        let ran_out = old.iter().find(|&&i| steps[i].step.input == lease);
        if let (Some(&from), Some(&to)) = (ran_out.or(old.last()), new.first()) {
            edges.push((from, to));
        }
    }
    edges
}

/// A topological order of the steps under `succ` plus the `extra` edges, taking the smallest
/// [`clock_key`] among the steps that are ready; `None` if the edges form a cycle.
fn topo_sort(
    steps: &[TraceStep],
    succ: &[Vec<usize>],
    extra: &[(usize, usize)],
) -> Option<Vec<usize>> {
    let n = steps.len();
    let mut succ = succ.to_vec();
    for &(a, b) in extra {
        succ[a].push(b);
    }
    let mut preds = vec![0usize; n];
    for bs in &succ {
        for &b in bs {
            preds[b] += 1;
        }
    }
    let mut ready: BinaryHeap<_> = (0..n)
        .filter(|&i| preds[i] == 0)
        .map(|i| Reverse(clock_key(i, &steps[i])))
        .collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse((_, _, i))) = ready.pop() {
        order.push(i);
        for &b in &succ[i] {
            preds[b] -= 1;
            if preds[b] == 0 {
                ready.push(Reverse(clock_key(b, &steps[b])));
            }
        }
    }
    (order.len() == n).then_some(order)
}

/// Merges a directory of per-process traces into one file; returns the number of steps.
pub fn merge_dir(dir: &Path, out: &Path) -> Result<usize, TraceFileError> {
    let t = load(dir)?;
    let mut text = serde_json::to_string(&Line::Header(t.header.clone())).expect("serialize");
    text.push('\n');
    for s in &t.steps {
        text.push_str(&s.raw);
        text.push('\n');
    }
    std::fs::write(out, text).map_err(|source| TraceFileError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    Ok(t.steps.len())
}
