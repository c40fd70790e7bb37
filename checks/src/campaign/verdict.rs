//! The campaign's end: whether every acknowledged write reads back, whether the history is
//! linearizable, whether the merged trace replays against the model, whether any process
//! panicked; and the table of faults by kind.

use super::inject::Effect;
use super::workload::Acked;
use sixfold_impl::schedule::{Fault, Kind};
use sixfold_lincheck::history::Format;
use sixfold_lincheck::{CheckOptions, Spec, Verdict};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// One fault as it happened.
pub struct Done {
    /// Its number in the schedule.
    pub n: usize,
    /// The fault.
    pub fault: Fault,
    /// When it began (ns on the load's clock).
    pub began: u64,
    /// What it did.
    pub effect: Effect,
    /// How long healing took after it.
    pub healed: Duration,
}

/// One verdict line: what was checked, whether it holds, and the evidence.
pub struct Check {
    /// What.
    pub what: &'static str,
    /// Whether it holds.
    pub ok: bool,
    /// How many things were checked (writes, operations, steps, logs, faults).
    pub count: u64,
    /// What `count` counts, for the summary over rounds.
    pub unit: &'static str,
    /// Figures or the first failure.
    pub detail: String,
    /// When the failure happened on the load's clock (ns), to name the fault before it.
    pub at: Option<u64>,
}

/// Every acknowledged write reads back: the last read of its key returned it or a later write.
pub fn acked_read_back(acked: &[Acked], last: &[Option<(u64, u64)>]) -> Check {
    let mut lost: Vec<&Acked> = Vec::new();
    let mut unread = 0;
    for a in acked {
        match last.get(a.key as usize).copied().flatten() {
            None => unread += 1,
            Some((value, lsn)) if lsn < a.lsn || (lsn == a.lsn && value != a.value) => lost.push(a),
            Some(_) => {}
        }
    }
    let ok = lost.is_empty() && unread == 0;
    let detail = match lost.first() {
        Some(a) => format!(
            "{} of {} acknowledged writes lost; first: key {} = {} at lsn {}, read back {:?}",
            lost.len(),
            acked.len(),
            a.key,
            a.value,
            a.lsn,
            last[a.key as usize]
        ),
        None if unread > 0 => format!("{unread} acknowledged writes on keys no read answered"),
        None => format!("{} acknowledged writes, 0 lost", acked.len()),
    };
    Check {
        what: "acknowledged writes read back",
        ok,
        count: acked.len() as u64,
        unit: "acknowledged writes, 0 lost",
        detail,
        at: lost.first().map(|a| a.at),
    }
}

/// The history at `path` is linearizable (kv), decided within `limit`.
pub fn linearizable(path: &Path, limit: Duration) -> Check {
    let what = "history linearizable (lincheck, kv)";
    let history = match sixfold_lincheck::load_checked(path, Format::Auto, Spec::Kv) {
        Ok(h) => h,
        Err(e) => {
            return Check {
                what,
                ok: false,
                count: 0,
                unit: "operations",
                detail: e.to_string(),
                at: None,
            }
        }
    };
    let report = sixfold_lincheck::check(
        &history,
        &CheckOptions {
            spec: Spec::Kv,
            time_limit: Some(limit),
        },
    );
    let n = history.ops.len();
    let (ok, detail, at) = match report.verdict {
        Verdict::Linearizable => (true, format!("{n} operations: LINEARIZABLE"), None),
        Verdict::Unknown => (
            false,
            format!("{n} operations: UNKNOWN within {} s", limit.as_secs()),
            None,
        ),
        Verdict::NotLinearizable => {
            let blocked = report.violation().map(|(_, v)| &history.ops[v.blocked]);
            (
                false,
                format!(
                    "{n} operations: NOT LINEARIZABLE; cannot place {}",
                    blocked.map(|o| o.to_string()).unwrap_or_default()
                ),
                blocked.map(|o| o.call),
            )
        }
    };
    Check {
        what,
        ok,
        count: n as u64,
        unit: "operations, all linearizable",
        detail,
        at,
    }
}

/// The merged trace at `path` replays against the model.
pub fn replays(path: &Path) -> Check {
    let what = "merged trace replays against the model";
    let (ok, steps, detail) = match sixfold_impl::trace_merge::load(path) {
        Err(e) => (false, 0, e.to_string()),
        Ok(trace) => {
            let r = crate::replay::replay(&trace);
            let ok = r.verdict.passed();
            let detail = if ok {
                format!("{} steps match; invariants hold throughout", r.steps)
            } else {
                format!("after {} steps: {:?}", r.steps, r.verdict)
            };
            (ok, r.steps as u64, detail)
        }
    };
    Check {
        what,
        ok,
        count: steps,
        unit: "steps replayed, invariants hold throughout",
        detail,
        at: None,
    }
}

/// No process panicked: no stderr file in `logs` says so.
pub fn no_panics(logs: &Path) -> Check {
    let mut files = 0u64;
    let mut panics = Vec::new();
    for entry in std::fs::read_dir(logs).into_iter().flatten().flatten() {
        files += 1;
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for l in text.lines().filter(|l| l.contains("panicked")) {
            panics.push(format!("{}: {l}", entry.file_name().to_string_lossy()));
        }
    }
    Check {
        what: "no process panicked",
        ok: panics.is_empty(),
        count: files,
        unit: "member stderr logs, 0 panics",
        detail: match panics.first() {
            None => format!("0 panics in {files} stderr logs"),
            Some(p) => format!("{} panic(s); first: {p}", panics.len()),
        },
        at: None,
    }
}

/// Every fault was refused or survived on its own terms (strangers refused, tails dropped).
pub fn faults_held(done: &[Done]) -> Check {
    let bad: Vec<&Done> = done
        .iter()
        .filter(|d| d.effect.violation.is_some())
        .collect();
    Check {
        what: "every bad frame refused, every bad tail dropped",
        ok: bad.is_empty(),
        count: done.len() as u64,
        unit: "faults, none broke a promise",
        detail: match bad.first() {
            None => format!("{} faults, none broke a promise", done.len()),
            Some(d) => format!(
                "{} fault(s); first #{}: {}",
                bad.len(),
                d.n,
                d.effect.violation.as_deref().unwrap_or_default()
            ),
        },
        at: bad.first().map(|d| d.began),
    }
}

/// Passing checks of one kind over several rounds, summed: "12345 acknowledged writes, 0 lost".
pub fn summed(checks: &[&Check]) -> String {
    let total: u64 = checks.iter().map(|c| c.count).sum();
    let unit = checks.first().map_or("", |c| c.unit);
    format!("{total} {unit}")
}

/// The table of faults by kind: how many, what they did, how long healing took.
pub fn table(done: &[&Done]) -> String {
    let mut by: BTreeMap<Kind, Vec<&Done>> = BTreeMap::new();
    for &d in done {
        by.entry(d.fault.kind()).or_default().push(d);
    }
    let mut out = String::from(
        "| fault | n | what it did | until the new writer / cluster served, p50 / max ms | healed p50 / max ms |\n|---|---:|---|---|---|\n",
    );
    for kind in Kind::ALL {
        let Some(ds) = by.get(&kind) else {
            out.push_str(&format!("| {kind} | 0 | – | – | – |\n"));
            continue;
        };
        let mut classes: BTreeMap<&str, usize> = BTreeMap::new();
        for d in ds {
            *classes.entry(d.effect.class.as_str()).or_default() += 1;
        }
        let what: Vec<String> = classes.iter().map(|(c, k)| format!("{c} ×{k}")).collect();
        let figures: Vec<u64> = ds.iter().filter_map(|d| d.effect.ms).collect();
        let healed: Vec<u64> = ds.iter().map(|d| d.healed.as_millis() as u64).collect();
        out.push_str(&format!(
            "| {kind} | {} | {} | {} | {} |\n",
            ds.len(),
            what.join(", "),
            p50_max(figures),
            p50_max(healed)
        ));
    }
    out
}

fn p50_max(mut v: Vec<u64>) -> String {
    if v.is_empty() {
        return "–".into();
    }
    v.sort_unstable();
    format!("{} / {}", v[v.len() / 2], v[v.len() - 1])
}
