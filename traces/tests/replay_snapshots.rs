//! Every checked-in trace replays against the model, and its timeline is a reviewed snapshot:
//! a change in protocol behaviour changes a timeline, which shows up as a snapshot diff.

use sixfold_checks::replay::{self, Verdict};
use sixfold_model::config::Mutant;
use std::path::Path;

/// The replay of `file` as text: verdict first, then the timeline. Only line numbers appear,
/// never paths, so snapshots are the same on every machine.
fn render(file: &Path) -> (Verdict, String) {
    let trace = replay::load(file).unwrap_or_else(|e| panic!("{e}"));
    let out = replay::replay(&trace);
    let verdict = match &out.verdict {
        Verdict::Pass => "pass: every step matches the model, invariants hold".to_string(),
        Verdict::Reproduced { property, at } => {
            format!(
                "counterexample reproduced: '{property}' violated at line {}",
                at.line
            )
        }
        other => format!("FAILED: {other:?}"),
    };
    let h = &trace.header;
    let text = format!(
        "source: {}, config: write quorum {}, read quorum {}, mutant {}\n{verdict}\n\n{}",
        h.source,
        h.config.write_quorum,
        h.config.read_quorum,
        h.config.mutant.map_or("none", |m| m.name()),
        out.timeline
    );
    (out.verdict, text)
}

fn stem(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

#[test]
fn recorded_runs_replay_and_match_their_snapshots() {
    let runs = sixfold_traces::files("runs");
    assert!(
        !runs.is_empty(),
        "traces/runs holds at least one recorded run"
    );
    let mut saw_restart = false;
    for f in runs {
        let (verdict, text) = render(&f);
        assert_eq!(verdict, Verdict::Pass, "{}", f.display());
        saw_restart |= text.contains("CRASH") && text.contains("start from log");
        insta::assert_snapshot!(format!("run-{}", stem(&f)), text);
    }
    assert!(
        saw_restart,
        "a recorded run shows a segment crash and restart"
    );
}

#[test]
fn every_mutant_has_a_counterexample_that_reproduces() {
    for m in Mutant::ALL {
        let f = sixfold_traces::root()
            .join("counterexamples")
            .join(format!("{}.ndjson", m.name()));
        assert!(f.is_file(), "missing counterexample {}", f.display());
        let (verdict, text) = render(&f);
        match verdict {
            Verdict::Reproduced { property, .. } => {
                assert_eq!(property, sixfold_traces::broken_property(m).1)
            }
            other => panic!("{}: {other:?}", f.display()),
        }
        insta::assert_snapshot!(format!("counterexample-{}", m.name()), text);
    }
}
