//! A self-contained HTML visualization of a verdict (inline SVG and CSS, nothing fetched from
//! the network): one lane per client, operations as bars over rank-compressed time, the
//! (partial) linearization numbered in order, and the point where it fails.

use crate::history::History;
use crate::search::{PartitionOutcome, PartitionReport, Report, Verdict};
use crate::Spec;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;

const LANE: usize = 34;
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
         .lane{{font-size:12px;fill:#444}}.num{{font-size:10px;fill:#fff;font-weight:bold}}\
         .legend span{{display:inline-block;padding:2px 8px;margin-right:6px;border-radius:3px;color:#fff}}\
         li{{font-family:monospace;font-size:12px}}</style></head><body>\
         <h1>{name}</h1><p>model <b>{model}</b>, {ops} operations, {parts} partition(s): <b>{verdict}</b></p>\
         <p class=\"legend\"><span style=\"background:#2e7d32\">linearized (number = order)</span>\
         <span style=\"background:#c62828\">blocked: returns before it can be placed</span>\
         <span style=\"background:#ef6c00\">could come next, but cannot be placed</span>\
         <span style=\"background:#9e9e9e\">not reached</span> dashed: outcome unknown</p>",
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
    page.push_str("</body></html>\n");
    page
}

fn section(page: &mut String, history: &History, part: &PartitionReport) {
    let ops = &part.partition.ops;
    if let Some(key) = &part.partition.key {
        let _ = write!(page, "<h2>key {}</h2>", escape(&format!("{key:?}")));
    }
    let (order, blocked, candidates, state) = match &part.outcome {
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
    let position: HashMap<usize, usize> =
        order.iter().enumerate().map(|(n, &i)| (i, n + 1)).collect();
    let clients: Vec<u64> = ops
        .iter()
        .map(|&i| history.ops[i].client)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let lane: HashMap<u64, usize> = clients.iter().enumerate().map(|(n, &c)| (c, n)).collect();
    let times: Vec<u64> = ops
        .iter()
        .flat_map(|&i| [Some(history.ops[i].call), history.ops[i].ret])
        .flatten()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let step = (3000 / times.len().max(1)).clamp(4, 28);
    let x = |t: u64| LEFT + step * times.partition_point(|&u| u < t);
    let width = x(u64::MAX) + 60;
    let height = LANE * clients.len() + 30;
    let _ = write!(
        page,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\">"
    );
    for (n, c) in clients.iter().enumerate() {
        let y = n * LANE + 20;
        let _ = write!(
            page,
            "<text class=\"lane\" x=\"6\" y=\"{}\">client {c}</text>\
             <line x1=\"{LEFT}\" x2=\"{width}\" y1=\"{y}\" y2=\"{y}\" stroke=\"#eee\"/>",
            y + 4
        );
    }
    for &i in ops {
        let op = &history.ops[i];
        let y = lane[&op.client] * LANE + 10;
        let x0 = x(op.call);
        let x1 = op.ret.map_or(width - 10, x).max(x0 + step.max(8));
        let color = if Some(i) == blocked {
            "#c62828"
        } else if position.contains_key(&i) {
            "#2e7d32"
        } else if candidates.contains(&i) {
            "#ef6c00"
        } else {
            "#9e9e9e"
        };
        let dash = if op.ret.is_none() {
            " stroke=\"#333\" stroke-dasharray=\"4 3\" fill-opacity=\"0.5\""
        } else {
            ""
        };
        let _ = write!(
            page,
            "<g><title>{}</title><rect x=\"{x0}\" y=\"{y}\" width=\"{}\" height=\"20\" rx=\"3\" fill=\"{color}\"{dash}/>",
            escape(&op.to_string()),
            x1 - x0
        );
        if let Some(n) = position.get(&i) {
            let _ = write!(
                page,
                "<text class=\"num\" x=\"{}\" y=\"{}\">{n}</text>",
                x0 + 3,
                y + 14
            );
        }
        page.push_str("</g>");
    }
    if let Some(b) = blocked.and_then(|b| history.ops[b].ret) {
        let fx = x(b);
        let _ = write!(
            page,
            "<line x1=\"{fx}\" x2=\"{fx}\" y1=\"0\" y2=\"{height}\" stroke=\"#c62828\" stroke-width=\"2\" stroke-dasharray=\"6 3\"/>\
             <text x=\"{}\" y=\"{}\" fill=\"#c62828\" font-size=\"12\">fails here</text>",
            fx + 4,
            height - 4
        );
    }
    page.push_str("</svg>");
    if let (Some(b), Some(state)) = (blocked, state) {
        let _ = write!(
            page,
            "<p>Longest linearizable prefix: {} operation(s), leaving the state {}. Then \
             <b>{}</b> returns, but none of the operations that could come next can be placed.</p>",
            order.len(),
            escape(&state),
            escape(&history.ops[b].to_string())
        );
    }
    if !order.is_empty() {
        page.push_str("<details><summary>linearization order</summary><ol>");
        for &i in &order {
            let _ = write!(page, "<li>{}</li>", escape(&history.ops[i].to_string()));
        }
        page.push_str("</ol></details>");
    }
}
