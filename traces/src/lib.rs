//! Checked-in traces of sixfold: recorded runtime runs (`runs/`) and the model checker's
//! counterexample for every mutant (`counterexamples/`). The tests of this crate replay each one
//! against the model and snapshot its timeline, so any change in protocol behaviour shows up as a
//! reviewed snapshot diff. `cargo run -p sixfold-traces --example regen` regenerates the files.

use sixfold_checks::runner::ModelKind;
use sixfold_model::config::{Config, Mutant};
use sixfold_model::quorum::{Bounds, QuorumModel};
use sixfold_model::trace::Line;
use stateright::{Checker, HasDiscoveries, Model};
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

/// The property each mutant is known to break: the model catalogue's word, not a second list.
pub fn broken_property(m: Mutant) -> &'static str {
    ModelKind::Quorum
        .expected_failure(m)
        .expect("every mutant belongs to the quorum model")
}

/// The shortest counterexample (single-threaded BFS, default bounds) for mutant `m`, as trace
/// lines; `None` if the model checker finds none.
pub fn counterexample(m: Mutant) -> Option<Vec<Line>> {
    let model = QuorumModel::new(Config::new(Some(m)), Bounds::default());
    let name = broken_property(m);
    let checker = model
        .clone()
        .checker()
        .finish_when(HasDiscoveries::AnyFailures)
        .spawn_bfs()
        .join();
    let path = checker.discovery(name)?;
    Some(model.trace(&path, Some(name)))
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
