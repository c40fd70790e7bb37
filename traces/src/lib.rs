//! Checked-in traces of sixfold: recorded runtime runs (`runs/`) and the model checker's
//! counterexample for every mutant (`counterexamples/`). The tests of this crate replay each one
//! against the model and snapshot its timeline, so any change in protocol behaviour shows up as a
//! reviewed snapshot diff. `cargo run -p sixfold-traces --example regen` regenerates the files.

use sixfold_checks::runner::{self, ModelCheck, ModelKind};
use sixfold_model::protocol::config::Mutant;
use sixfold_model::trace::Line;
use std::path::{Path, PathBuf};

/// The directory holding the traces (this crate's root).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `*.ndjson` file under `root()/sub`, sorted by name.
pub fn files(sub: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join(sub))
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "ndjson"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The model that runs mutant `m` and the property it is known to break: the model catalogue's
/// word, not a second list.
pub fn broken_property(m: Mutant) -> (ModelKind, &'static str) {
    ModelKind::ALL
        .into_iter()
        .find_map(|k| k.expected_failure(m).map(|p| (k, p)))
        .expect("every mutant belongs to a model")
}

/// The counterexample `sixfold check --mutant` finds for `m` (its model's default bounds and
/// search), as trace lines; `None` if the model checker finds none.
pub fn counterexample(m: Mutant) -> Option<Vec<Line>> {
    let (model, property) = broken_property(m);
    let mut opts = ModelCheck::new(model, Some(m));
    let dir = std::env::temp_dir().join(format!("sixfold-traces-{}-{}", std::process::id(), m));
    opts.out_dir = dir.clone();
    let report = runner::run(&opts).ok()?;
    let file = report
        .verdicts
        .iter()
        .find(|v| v.name == property)?
        .trace
        .clone()?;
    let text = std::fs::read_to_string(file).ok()?;
    let _ = std::fs::remove_dir_all(dir);
    text.lines().map(|l| serde_json::from_str(l).ok()).collect()
}

/// The mutants whose counterexamples are checked in and replayed: those of the models whose
/// traces `sixfold replay` replays ([`ModelKind::replays`]; not yet `region`'s).
pub fn replayed_mutants() -> impl Iterator<Item = Mutant> {
    Mutant::ALL
        .into_iter()
        .filter(|m| broken_property(*m).0.replays())
}

/// Writes trace lines as NDJSON.
pub fn write_lines(path: &Path, lines: &[Line]) -> std::io::Result<()> {
    let mut text = String::new();
    for l in lines {
        text.push_str(&serde_json::to_string(l).expect("trace lines serialize"));
        text.push('\n');
    }
    std::fs::write(path, text)
}
