//! `sixfold show`: a counterexample or a recorded run as one self-contained web page.
//!
//! A trace read as forty numbered lines is slow going; the same run drawn as lanes (segments
//! grouped by AZ, the writers, the clients) with messages as arrows, and every actor's state
//! beside it, is read at a glance. The page is built from the replay ([`replay::replay_with`]),
//! so what it shows (each actor's state after every step, the step that breaks a property) is
//! exactly what `sixfold replay` judges.
//!
//! The page is one file with no network access: the data is embedded as JSON, and the script and
//! the style sheet (`checks/assets/`) are compiled into the binary. The script marks the page's
//! `<body>` with `data-status="ok"` once it has drawn everything, or `"error"` with the message
//! in `#errors`, so a headless browser can tell a page that works from one that does not.

use crate::replay::{self, ReplayVerdict, Snapshot};
use serde::Serialize;
use sixfold_impl::trace_merge::{load, Trace, TraceFileError};
use sixfold_model::check::properties;
use sixfold_model::protocol::actor::{Node, NodeState};
use sixfold_model::protocol::config::{az_of, SEGMENTS};
use sixfold_model::protocol::effects::NodeStorage;
use sixfold_model::protocol::log::Log;
use sixfold_model::protocol::msg::{Epoch, Lsn, Msg};
use sixfold_model::protocol::topology::Topology;
use sixfold_model::trace::{ActorSpec, Input, Line, Output};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const SCRIPT: &str = include_str!("../assets/show.js");
const STYLE: &str = include_str!("../assets/show.css");

/// `sixfold show`.
#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// A trace file (NDJSON), or a directory of per-process trace files to merge.
    pub trace: PathBuf,
    /// Write the page to this file.
    #[arg(long, value_name = "OUT")]
    pub html: PathBuf,
}

/// Why a page could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ShowError {
    /// The trace could not be read.
    #[error(transparent)]
    Trace(#[from] TraceFileError),
    /// The page could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The page's path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Runs `sixfold show`: exit 0 once the page is written, 2 on bad input or an unwritable page.
pub fn run(args: &ShowArgs) -> ExitCode {
    match write_page(&args.trace, &args.html) {
        Ok(verdict) => {
            println!("wrote {} ({})", args.html.display(), verdict_text(&verdict));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sixfold show: {e}");
            ExitCode::from(2)
        }
    }
}

/// Draws the trace at `trace_file` as a page at `out` and returns the replay's verdict. This is
/// also the hook `sixfold check --html` calls for each counterexample trace it writes.
pub fn write_page(trace_file: &Path, out: &Path) -> Result<ReplayVerdict, ShowError> {
    let trace = load(trace_file)?;
    let (page, verdict) = render(&trace, &trace_file.display().to_string());
    std::fs::write(out, page).map_err(|source| ShowError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    Ok(verdict)
}

/// Writes a counterexample's trace `lines` to `trace` and its page beside it (`X.html`), for
/// counterexamples found outside `sixfold check` (the explorer's); returns the page's path.
pub fn write_trace_and_page(lines: &[Line], trace: &Path) -> Result<PathBuf, ShowError> {
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ShowError::Write { path, source }
    };
    let mut text = String::new();
    for line in lines {
        text.push_str(&serde_json::to_string(line).expect("trace lines serialize"));
        text.push('\n');
    }
    std::fs::write(trace, text).map_err(write_err(trace))?;
    let page = trace.with_extension("html");
    write_page(trace, &page)?;
    Ok(page)
}

/// The `sixfold check --html` hook: draws the counterexample trace at `trace` as a page beside
/// it (`X.ndjson` to `X.html`) and says where, or why it could not.
pub fn page_beside(trace: &Path) {
    let out = trace.with_extension("html");
    match write_page(trace, &out) {
        Ok(_) => println!("counterexample page written to {}", out.display()),
        Err(e) => eprintln!("sixfold check: no page for {}: {e}", trace.display()),
    }
}

/// One line for a verdict, as the page's banner and the command's output say it.
pub fn verdict_text(v: &ReplayVerdict) -> String {
    match v {
        ReplayVerdict::Pass => "every step matches the model; invariants hold throughout".into(),
        ReplayVerdict::Reproduced { property, at } | ReplayVerdict::Violation { property, at } => {
            format!("\"{property}\" breaks at trace line {}", at.line)
        }
        ReplayVerdict::Mismatch { at, .. } => {
            format!("diverges from the model at trace line {}", at.line)
        }
        ReplayVerdict::NotReproduced { property } => {
            format!("claims to break \"{property}\", but it holds throughout")
        }
    }
}

/// The page for `trace` (named `title`), and the replay's verdict.
pub fn render(trace: &Trace, title: &str) -> (String, ReplayVerdict) {
    let (data, verdict) = PageData::of(trace);
    let json = serde_json::to_string(&data).expect("page data serializes");
    let mut page = String::new();
    let _ = writeln!(
        page,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>sixfold show: {t}</title>\
         <style>{STYLE}</style></head><body data-status=\"loading\">\
         <header><h1>{t}</h1><p>{src} trace of the <b>{model}</b> model, {variant}, {n} steps. \
         <span class=\"keys\">Keys: ↓/j next step, ↑/k previous, PgDn/PgUp ten, Home/End, \
         f the failure point; click a row.</span></p>\
         <p id=\"verdict\" class=\"{class}\">{verdict}</p></header>\
         <pre id=\"errors\" hidden></pre><main><div id=\"diagram\"></div><aside id=\"panel\"></aside></main>\
         <script id=\"data\" type=\"application/json\">{data}</script><script>{SCRIPT}</script>\
         </body></html>",
        t = escape(title),
        src = escape(&trace.header.source),
        model = escape(&trace.header.model),
        variant = escape(&data.variant),
        n = trace.steps.len(),
        class = if verdict.passed() && data.fail.is_none() {
            "pass"
        } else {
            "fail"
        },
        verdict = escape(&verdict_text(&verdict)),
        // `<` escaped keeps `</script>` inside a string from closing the element.
        data = json.replace('<', "\\u003c"),
    );
    (page, verdict)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Everything the script draws, by actor id and step index.
#[derive(Serialize)]
struct PageData {
    variant: String,
    /// The lanes, left to right.
    lanes: Vec<Lane>,
    steps: Vec<StepData>,
    arrows: Vec<Arrow>,
    /// The step that breaks a property, if one does.
    fail: Option<Failure>,
    /// The step that diverges from the model, if one does.
    mismatch: Option<Mismatch>,
}

#[derive(Serialize)]
struct Lane {
    id: usize,
    name: String,
    /// What the lane header groups it under: `AZ 0`, `writers`, `clients`, `outside`.
    group: String,
    /// A second header line, e.g. the writer's epoch.
    note: String,
}

#[derive(Serialize)]
struct StepData {
    actor: usize,
    line: usize,
    kind: &'static str,
    input: String,
    outputs: String,
    /// The actor's state after the step; `None` for steps after a divergence (not replayed).
    after: Option<ActorView>,
}

#[derive(Serialize)]
struct Failure {
    step: usize,
    property: String,
    judges: String,
}

#[derive(Serialize)]
struct Mismatch {
    step: usize,
    detail: String,
}

/// A message: sent at step `from` (`None`: by a sender outside the trace), taken at step `to`
/// (`None`: never taken in the trace, or taken by an actor outside it).
#[derive(Serialize)]
struct Arrow {
    src: usize,
    dst: usize,
    from: Option<usize>,
    to: Option<usize>,
    label: String,
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum ActorView {
    Down {
        disk: Option<LogView>,
    },
    Segment {
        log: LogView,
        /// What is on disk, when it differs from the log in memory.
        disk: Option<LogView>,
    },
    Writer {
        epoch: Epoch,
        /// `None` once open; else the segments asked and those that answered.
        opening: Option<(Vec<usize>, Vec<usize>)>,
        lease: bool,
        deposed: bool,
        /// The PGCL of the SCLs as last reported (VCL = VDL is the writer's own `vdl`: one
        /// protection group, every LSN a consistency point).
        pgcl: Lsn,
        vdl: Lsn,
        last_lsn: Lsn,
        scl: [Lsn; SEGMENTS],
        queue: Vec<Lsn>,
        truncations: Vec<(Epoch, Lsn, Lsn)>,
    },
    Client {
        done: u32,
        script: Vec<String>,
    },
}

#[derive(Serialize, PartialEq)]
struct LogView {
    /// `(lsn, key, value, epoch, voided)`.
    records: Vec<(Lsn, u32, u64, Epoch, bool)>,
    epoch: Epoch,
    scl: Lsn,
    /// `(epoch, after, upto)`.
    truncations: Vec<(Epoch, Lsn, Lsn)>,
}

impl LogView {
    fn of(log: &Log) -> Self {
        LogView {
            records: log
                .records()
                .iter()
                .map(|r| (r.lsn, r.key, r.value, r.epoch, log.voided(r)))
                .collect(),
            epoch: log.epoch(),
            scl: log.scl(),
            truncations: log
                .truncations()
                .iter()
                .map(|t| (t.epoch, t.after, t.upto))
                .collect(),
        }
    }
}

/// The segment indexes in a bitset.
fn bits(b: u8) -> Vec<usize> {
    (0..SEGMENTS).filter(|i| b & (1 << i) != 0).collect()
}

impl ActorView {
    /// An actor's view after a step: its state, or its disk while it is down.
    fn of(node: &Node, state: Option<&NodeState>, disk: Option<&NodeStorage>) -> Self {
        let disk = disk.map(|NodeStorage::Segment(l)| LogView::of(l));
        match (node, state) {
            (_, None) => ActorView::Down { disk },
            (Node::Segment(_), Some(NodeState::Segment(log))) => {
                let log = LogView::of(log);
                let disk = disk.filter(|d| *d != log);
                ActorView::Segment { log, disk }
            }
            (Node::Writer(w), Some(NodeState::Writer(s))) => ActorView::Writer {
                epoch: w.epoch,
                opening: s.opening.map(|answered| (bits(s.queried), bits(answered))),
                lease: s.lease,
                deposed: s.deposed,
                pgcl: w.pgcl(&s.scl),
                vdl: s.vdl,
                last_lsn: s.last_lsn,
                scl: s.scl,
                queue: s.commit_queue.iter().map(|p| p.lsn).collect(),
                truncations: s
                    .truncations
                    .iter()
                    .map(|t| (t.epoch, t.after, t.upto))
                    .collect(),
            },
            (Node::Client(c), Some(NodeState::Client(s))) => ActorView::Client {
                done: s.done,
                script: c.script.iter().map(|op| format!("{op:?}")).collect(),
            },
            (_, Some(other)) => {
                unreachable!("replay gives each actor states of its own role, not {other:?}")
            }
        }
    }
}

fn kind(input: &Input) -> &'static str {
    match input {
        Input::Start { .. } => "start",
        Input::Msg { .. } => "msg",
        Input::Timer { .. } => "timer",
        Input::Choice { .. } => "choice",
        Input::Crash => "crash",
        Input::LoseDisk => "lose_disk",
    }
}

impl PageData {
    fn of(trace: &Trace) -> (PageData, ReplayVerdict) {
        let h = &trace.header;
        let nodes: Vec<Node> = h.actors.iter().map(|a| a.build(h.config)).collect();
        let mut afters = Vec::new();
        let mut fail = None;
        let replayed = replay::replay_with(trace, |s: Snapshot| {
            let a = s.step.step.actor;
            if let Some(p) = s.broke {
                fail = Some((afters.len(), p.to_string()));
            }
            afters.push(ActorView::of(
                &nodes[a],
                s.states[a].as_ref(),
                s.storages[a].as_ref(),
            ));
        });
        let props = properties::of_model(&h.model).unwrap_or(properties::QUORUM);
        let fail = fail.map(|(step, property)| Failure {
            step,
            judges: props
                .iter()
                .find(|p| p.name == property)
                .map_or("", |p| p.judges)
                .to_string(),
            property,
        });
        let mismatch = match &replayed.verdict {
            ReplayVerdict::Mismatch { detail, .. } => Some(Mismatch {
                step: afters.len(),
                detail: detail.clone(),
            }),
            _ => None,
        };
        let mut afters = afters.into_iter();
        let steps = trace
            .steps
            .iter()
            .map(|s| StepData {
                actor: s.step.actor,
                line: s.at.line,
                kind: kind(&s.step.input),
                input: replay::render_input(&h.actors, &s.step.input),
                outputs: replay::render_outputs(&h.actors, &s.step.outputs),
                after: afters.next(),
            })
            .collect();
        let data = PageData {
            variant: h.config.mutant.map_or("Aurora's protocol".into(), |m| {
                format!("mutant {}", m.name())
            }),
            lanes: lanes(&h.actors, trace),
            steps,
            arrows: arrows(trace),
            fail,
            mismatch,
        };
        (data, replayed.verdict)
    }
}

/// The lanes: segments by AZ, the writers, the scripted clients, then every id outside the trace
/// that sends or receives (the control plane, a runtime's external clients).
fn lanes(actors: &[ActorSpec], trace: &Trace) -> Vec<Lane> {
    let topo: Topology = replay::topology(actors);
    let mut lanes: Vec<Lane> = actors
        .iter()
        .enumerate()
        .map(|(id, spec)| {
            let (group, note) = match spec {
                ActorSpec::Segment => (format!("AZ {}", az_of(id)), String::new()),
                ActorSpec::Writer { epoch, .. } => ("writers".into(), format!("epoch {epoch}")),
                ActorSpec::Client { writer, .. } => {
                    ("clients".into(), format!("of {}", topo.name(*writer)))
                }
            };
            Lane {
                id,
                name: topo.name(id),
                group,
                note,
            }
        })
        .collect();
    lanes.sort_by_key(|l| (group_rank(&l.group), l.id));
    let mut outside: Vec<usize> = trace
        .steps
        .iter()
        .flat_map(|s| {
            let src = match &s.step.input {
                Input::Msg { src, .. } => Some(*src),
                _ => None,
            };
            let dsts = s.step.outputs.iter().filter_map(|o| match o {
                Output::Send { dst, .. } => Some(*dst),
                _ => None,
            });
            src.into_iter().chain(dsts).collect::<Vec<_>>()
        })
        .filter(|&id| id >= actors.len())
        .collect();
    outside.sort_unstable();
    outside.dedup();
    lanes.extend(outside.into_iter().map(|id| Lane {
        id,
        name: topo.name(id),
        group: "outside".into(),
        note: String::new(),
    }));
    lanes
}

fn group_rank(group: &str) -> (u8, String) {
    match group {
        "writers" => (1, String::new()),
        "clients" => (2, String::new()),
        az => (0, az.to_string()),
    }
}

/// Pairs every send with the step that takes it: the earliest later receipt of the same message
/// by its recipient from its sender (the network may reorder, so not simply the next one).
fn arrows(trace: &Trace) -> Vec<Arrow> {
    let actors = &trace.header.actors;
    let label = |m: &Msg| replay::compact(&serde_json::to_value(m).expect("messages serialize"));
    let mut arrows: Vec<Arrow> = Vec::new();
    // Indexes into `arrows` of the sends not yet taken, oldest first, with their message.
    let mut pending: Vec<(usize, &Msg)> = Vec::new();
    for (i, s) in trace.steps.iter().enumerate() {
        let a = s.step.actor;
        if let Input::Msg { src, msg } = &s.step.input {
            let found = pending
                .iter()
                .position(|&(k, m)| arrows[k].src == *src && arrows[k].dst == a && m == msg);
            match found {
                Some(p) => arrows[pending.remove(p).0].to = Some(i),
                None => arrows.push(Arrow {
                    src: *src,
                    dst: a,
                    from: None,
                    to: Some(i),
                    label: label(msg),
                }),
            }
        }
        for o in &s.step.outputs {
            if let Output::Send { dst, msg } = o {
                if *dst < actors.len() {
                    pending.push((arrows.len(), msg));
                }
                arrows.push(Arrow {
                    src: a,
                    dst: *dst,
                    from: Some(i),
                    to: None,
                    label: label(msg),
                });
            }
        }
    }
    arrows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counterexample(name: &str) -> Trace {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../traces/counterexamples")
            .join(name);
        load(&path).expect("checked-in counterexample loads")
    }

    #[test]
    fn no_fencing_fails_where_the_zombie_acknowledges_its_commit() {
        let trace = counterexample("no-fencing.ndjson");
        let (data, verdict) = PageData::of(&trace);
        assert!(
            matches!(verdict, ReplayVerdict::Reproduced { .. }),
            "{verdict:?}"
        );
        let fail = data.fail.expect("a failure point");
        assert_eq!(fail.property, "no stale commit");
        let step = &data.steps[fail.step];
        // The zombie is the epoch-1 writer; its commit is a WriteOk of epoch 1.
        assert_eq!(
            replay::actor_name(&trace.header.actors, step.actor),
            "writer"
        );
        assert!(
            step.outputs.contains("WriteOk") && step.outputs.contains("epoch:1"),
            "{}",
            step.outputs
        );
        assert!(data.steps.iter().all(|s| s.after.is_some()));
    }

    #[test]
    fn lanes_group_segments_by_az_then_writers_then_clients() {
        let trace = counterexample("no-fencing.ndjson");
        let names: Vec<(String, String)> = lanes(&trace.header.actors, &trace)
            .into_iter()
            .map(|l| (l.group, l.name))
            .collect();
        assert_eq!(names[0], ("AZ 0".into(), "seg0/az0".into()));
        assert_eq!(names[5], ("AZ 2".into(), "seg5/az2".into()));
        assert_eq!(names[6], ("writers".into(), "writer".into()));
        assert_eq!(names[7], ("writers".into(), "writer2".into()));
        assert_eq!(names[8], ("clients".into(), "client0".into()));
        assert_eq!(names.len(), trace.header.actors.len());
    }

    #[test]
    fn every_taken_message_is_paired_with_its_send() {
        let trace = counterexample("write-quorum-3.ndjson");
        let arrows = arrows(&trace);
        let receipts = trace
            .steps
            .iter()
            .filter(|s| matches!(s.step.input, Input::Msg { .. }))
            .count();
        assert_eq!(arrows.iter().filter(|a| a.to.is_some()).count(), receipts);
        // A model trace has no sender outside it: every receipt has its send.
        assert!(arrows.iter().all(|a| a.from.is_some()));
        assert!(arrows
            .iter()
            .all(|a| a.to.is_none_or(|t| a.from.is_some_and(|f| f < t))));
    }

    #[test]
    fn the_page_is_self_contained_and_embeds_data_that_cannot_close_its_script() {
        let trace = counterexample("no-fencing.ndjson");
        let (page, _) = render(&trace, "x</script><b>");
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert_eq!(page.matches("</script>").count(), 2, "data and script only");
        assert!(page.contains("&quot;no stale commit&quot; breaks at trace line"));
        assert!(
            page.contains("x&lt;/script&gt;&lt;b&gt;"),
            "the title is escaped"
        );
        let fetches = [
            "<script src",
            "<link",
            "@import",
            "url(http",
            "src=\"http",
            "href=\"http",
            "fetch(",
            "XMLHttpRequest",
        ];
        for external in fetches {
            assert!(!page.contains(external), "fetches {external}");
        }
    }

    #[test]
    fn a_missing_trace_is_an_error_naming_it() {
        let missing = std::env::temp_dir().join("sixfold-show-no-such-trace.ndjson");
        let out = std::env::temp_dir().join("sixfold-show-no-such-trace.html");
        let err = write_page(&missing, &out).expect_err("no trace, no page");
        assert!(matches!(err, ShowError::Trace(_)), "{err:?}");
        assert!(
            err.to_string()
                .contains("sixfold-show-no-such-trace.ndjson"),
            "{err}"
        );
        assert!(!out.exists());
    }

    #[test]
    fn a_diverging_trace_shows_where_it_diverges() {
        let mut trace = counterexample("write-quorum-3.ndjson");
        let last = trace.steps.len() - 1;
        trace.steps[last].step.digest = Some("0000000000000000".into());
        let (data, verdict) = PageData::of(&trace);
        assert!(matches!(verdict, ReplayVerdict::Mismatch { .. }));
        let m = data.mismatch.expect("a mismatch");
        assert_eq!(m.step, last);
        assert!(m.detail.contains("state digest"), "{}", m.detail);
        assert!(data.steps[last].after.is_none());
    }
}
