//! A self-contained HTML visualization of a verdict (inline SVG, CSS and script, nothing fetched from
//! the network): one lane per client, operations as bars over rank-compressed time, the
//! (partial) linearization numbered in order, and the point where it fails. A long timeline
//! runs off screen, so the page opens scrolled to the failure point and zooms (`html.js`).

use crate::history::History;
use crate::search::{PartitionOutcome, PartitionReport, Report, Verdict};
use crate::Spec;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;

const LANE: usize = 34;

/// Opens the page at the failure point (scrolled there) and zooms; marks `<body>` with
/// `data-status` `ok` or `error` for headless browsers.
const SCRIPT: &str = include_str!("html.js");
const LEFT: usize = 90;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders the page: the violating partition for a violation, every partition otherwise.
pub fn render(file: &Path, spec: Spec, history: &History, report: &Report) -> String {
    let verdict = match report.verdict {
        Verdict::Linearizable => "LINEARIZABLE",
        Verdict::NotLinearizable => "NOT LINEARIZABLE",
        Verdict::Unknown => "UNKNOWN (time limit reached)",
    };
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>lincheck: {name}</title>\
         <style>body{{font-family:sans-serif;margin:1.5em}}svg{{background:#fafafa;border:1px solid #ddd}}\
         .lane{{font-size:12px;fill:#444;paint-order:stroke;stroke:#fafafa;stroke-width:4px}}.num{{font-size:10px;fill:#fff;font-weight:bold}}\
         .legend span{{display:inline-block;padding:2px 8px;margin-right:6px;border-radius:3px;color:#fff}}\
         li{{font-family:monospace;font-size:12px}}.timeline{{overflow-x:auto;max-width:100%}}\
         .zoom button{{min-width:2.2em}}</style></head><body data-status=\"loading\">\
         <h1>{name}</h1><p>model <b>{model}</b>, {ops} operations, {parts} partition(s): <b>{verdict}</b></p>\
         <p class=\"legend\"><span style=\"background:#2e7d32\">linearized (number = order)</span>\
         <span style=\"background:#c62828\">blocked: returns before it can be placed</span>\
         <span style=\"background:#ef6c00\">could come next, but cannot be placed</span>\
         <span style=\"background:#9e9e9e\">not reached</span> dashed: outcome unknown</p>\
         <p class=\"zoom\">zoom <button id=\"zoom-out\">−</button><button id=\"zoom-fit\">fit</button>\
         <button id=\"zoom-in\">+</button> <span id=\"zoom-level\">100%</span> \
         <button id=\"to-failure\">to the failure point</button> (keys: + − 0 fit, 1 actual size, f failure point)</p>",
        name = escape(&file.display().to_string()),
        model = spec,
        ops = history.ops.len(),
        parts = report.partitions.len(),
    );
    let shown: Vec<&PartitionReport> = match report.violation() {
        Some((p, _)) => vec![p],
        None => report.partitions.iter().collect(),
    };
    for part in shown {
        section(&mut page, history, part);
    }
    let _ = writeln!(page, "<script>{SCRIPT}</script></body></html>");
    page
}

/// One partition: its key, its timeline, and what the outcome says about it.
fn section(page: &mut String, history: &History, part: &PartitionReport) {
    if let Some(key) = &part.partition.key {
        let _ = write!(page, "<h2>key {}</h2>", escape(&format!("{key:?}")));
    }
    let marks = Marks::new(page, &part.outcome);
    let ops = &part.partition.ops;
    let timeline = Timeline::new(history, ops);
    timeline.open(page);
    for &i in ops {
        timeline.bar(page, history, i, &marks);
    }
    timeline.failure(page, history, &marks);
    page.push_str("</svg></div>");
    explanation(page, history, &marks);
}

/// What an outcome says about a partition's operations, read once so that every bar and the
/// text below the timeline agree: the (partial) linearization, the operation it blocks on,
/// those that could come next, and the state the prefix leaves.
struct Marks {
    order: Vec<usize>,
    /// Operation index to its 1-based place in `order`.
    position: HashMap<usize, usize>,
    blocked: Option<usize>,
    candidates: Vec<usize>,
    state: Option<String>,
}

impl Marks {
    /// Reads the marks off `outcome`. An undecided outcome has none, and says so on the page
    /// (here, so the note comes before the timeline).
    fn new(page: &mut String, outcome: &PartitionOutcome) -> Self {
        let (order, blocked, candidates, state) = match outcome {
            PartitionOutcome::Linearizable(order) => (order.clone(), None, Vec::new(), None),
            PartitionOutcome::Violation(v) => (
                v.prefix.clone(),
                Some(v.blocked),
                v.candidates.iter().map(|&(i, _)| i).collect(),
                Some(v.state.clone()),
            ),
            PartitionOutcome::TimedOut | PartitionOutcome::Cancelled => {
                page.push_str("<p>undecided (time limit or cancelled)</p>");
                (Vec::new(), None, Vec::new(), None)
            }
        };
        let position = order.iter().enumerate().map(|(n, &i)| (i, n + 1)).collect();
        Marks {
            order,
            position,
            blocked,
            candidates,
            state,
        }
    }

    /// The fill of operation `i`'s bar: the legend's colours, the blocking operation first.
    fn color(&self, i: usize) -> &'static str {
        if Some(i) == self.blocked {
            "#c62828"
        } else if self.position.contains_key(&i) {
            "#2e7d32"
        } else if self.candidates.contains(&i) {
            "#ef6c00"
        } else {
            "#9e9e9e"
        }
    }
}

/// The geometry of one partition's SVG timeline, kept apart from the drawing so each drawing
/// step reads on its own: one lane per client, and time compressed to the ranks of the
/// distinct call and return instants, `step` pixels apart.
struct Timeline {
    clients: Vec<u64>,
    /// Client to its lane number.
    lane: HashMap<u64, usize>,
    /// The distinct call and return instants, ascending.
    times: Vec<u64>,
    step: usize,
    width: usize,
    height: usize,
}

impl Timeline {
    fn new(history: &History, ops: &[usize]) -> Self {
        let clients: Vec<u64> = ops
            .iter()
            .map(|&i| history.ops[i].client)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let lane = clients.iter().enumerate().map(|(n, &c)| (c, n)).collect();
        let times: Vec<u64> = ops
            .iter()
            .flat_map(|&i| [Some(history.ops[i].call), history.ops[i].ret])
            .flatten()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let step = (3000 / times.len().max(1)).clamp(4, 28);
        let mut timeline = Timeline {
            height: LANE * clients.len() + 30,
            clients,
            lane,
            times,
            step,
            width: 0,
        };
        timeline.width = timeline.x(u64::MAX) + 60;
        timeline
    }

    /// The horizontal position of instant `t`: its rank among the instants.
    fn x(&self, t: u64) -> usize {
        LEFT + self.step * self.times.partition_point(|&u| u < t)
    }

    /// Opens the `<svg>` and draws one labelled lane per client.
    fn open(&self, page: &mut String) {
        let (width, height) = (self.width, self.height);
        let _ = write!(
            page,
            "<div class=\"timeline\"><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" \
             height=\"{height}\" viewBox=\"0 0 {width} {height}\" data-width=\"{width}\" \
             data-height=\"{height}\">"
        );
        for (n, c) in self.clients.iter().enumerate() {
            let y = n * LANE + 20;
            let _ = write!(
                page,
                "<text class=\"lane\" x=\"6\" y=\"{}\">client {c}</text>\
                 <line x1=\"{LEFT}\" x2=\"{width}\" y1=\"{y}\" y2=\"{y}\" stroke=\"#eee\"/>",
                y + 4
            );
        }
    }

    /// Draws operation `i` as a bar from its call to its return (to the edge if it never
    /// returned, dashed), coloured by `marks`, numbered if it is linearized.
    fn bar(&self, page: &mut String, history: &History, i: usize, marks: &Marks) {
        let op = &history.ops[i];
        let y = self.lane[&op.client] * LANE + 10;
        let x0 = self.x(op.call);
        let x1 = op
            .ret
            .map_or(self.width - 10, |t| self.x(t))
            .max(x0 + self.step.max(8));
        let color = marks.color(i);
        let dash = if op.ret.is_none() {
            " stroke=\"#333\" stroke-dasharray=\"4 3\" fill-opacity=\"0.5\""
        } else {
            ""
        };
        let _ = write!(
            page,
            "<g><title>{}</title><rect x=\"{x0}\" y=\"{y}\" width=\"{}\" height=\"20\" \
             rx=\"3\" fill=\"{color}\"{dash}/>",
            escape(&op.to_string()),
            x1 - x0
        );
        if let Some(n) = marks.position.get(&i) {
            let _ = write!(
                page,
                "<text class=\"num\" x=\"{}\" y=\"{}\">{n}</text>",
                x0 + 3,
                y + 14
            );
        }
        page.push_str("</g>");
    }

    /// Marks the instant the blocking operation returns, where the linearization fails.
    fn failure(&self, page: &mut String, history: &History, marks: &Marks) {
        let Some(b) = marks.blocked.and_then(|b| history.ops[b].ret) else {
            return;
        };
        let (fx, height) = (self.x(b), self.height);
        let _ = write!(
            page,
            "<line class=\"failure\" x1=\"{fx}\" x2=\"{fx}\" y1=\"0\" y2=\"{height}\" stroke=\"#c62828\" \
             stroke-width=\"2\" stroke-dasharray=\"6 3\"/>\
             <text x=\"{}\" y=\"{}\" fill=\"#c62828\" font-size=\"12\">fails here</text>",
            fx + 4,
            height - 4
        );
    }
}

/// The text under a timeline: for a violation, what the longest prefix leaves and which
/// operation cannot be placed; then the linearization order, folded.
fn explanation(page: &mut String, history: &History, marks: &Marks) {
    if let (Some(b), Some(state)) = (marks.blocked, &marks.state) {
        let _ = write!(
            page,
            "<p>Longest linearizable prefix: {} operation(s), leaving the state {}. Then \
             <b>{}</b> returns, but none of the operations that could come next can be placed.</p>",
            marks.order.len(),
            escape(state),
            escape(&history.ops[b].to_string())
        );
    }
    if !marks.order.is_empty() {
        page.push_str("<details><summary>linearization order</summary><ol>");
        for &i in &marks.order {
            let _ = write!(page, "<li>{}</li>", escape(&history.ops[i].to_string()));
        }
        page.push_str("</ol></details>");
    }
}
