//! Every checked-in trace replays against the model, and its timeline is a reviewed snapshot:
//! a change in protocol behaviour changes a timeline, which shows up as a snapshot diff.

use sixfold_checks::replay::{self, ReplayVerdict};
use sixfold_impl::trace_merge::{self, Trace, TraceStep};
use std::path::Path;

/// The replay of `file` as text: verdict first, then the timeline. Only line numbers appear,
/// never paths, so snapshots are the same on every machine.
fn render(file: &Path) -> (ReplayVerdict, String) {
    let trace = trace_merge::load(file).unwrap_or_else(|e| panic!("{e}"));
    let out = replay::replay(&trace);
    let verdict = match &out.verdict {
        ReplayVerdict::Pass => "pass: every step matches the model, invariants hold".to_string(),
        ReplayVerdict::Reproduced { property, at } => {
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
        assert_eq!(verdict, ReplayVerdict::Pass, "{}", f.display());
        saw_restart |= text.contains("CRASH") && text.contains("start from log");
        insta::assert_snapshot!(format!("run-{}", stem(&f)), text);
    }
    assert!(
        saw_restart,
        "a recorded run shows a segment crash and restart"
    );
}

/// The recorded failover runs (`examples/record_failover.rs`): each has two writers, so it is
/// judged with the failover model's properties, and each shows what it was recorded for.
#[test]
fn recorded_failover_runs_are_judged_as_failover_and_show_what_they_are_for() {
    let run = |name: &str| {
        let f = sixfold_traces::root().join(format!("runs/failover-{name}.ndjson"));
        let trace = trace_merge::load(&f).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(trace.header.model, "failover", "{}", f.display());
        let text = render(&f).1;
        assert!(
            text.contains("writer2   start") && text.contains("WriteOk{epoch:2,"),
            "{name}: epoch 2 starts and commits"
        );
        text
    };
    let kill = run("kill");
    assert!(kill.contains("WriteOk{epoch:1,"), "epoch 1 committed first");
    let zombie = run("zombie");
    assert!(
        zombie.contains("=> Fenced{epoch:2,"),
        "a zombie Append is fenced"
    );
    assert!(
        zombie.contains("writer    <- ext") && zombie.contains("=> NotWriter"),
        "the zombie refuses its clients"
    );
    let restart = run("restart");
    assert_eq!(restart.matches("  CRASH").count(), 6, "six segments crash");
    assert_eq!(
        restart.matches(" start from log ").count(),
        6,
        "and restart from their disks"
    );
    assert!(
        restart
            .lines()
            .filter(|l| l.contains(" start from log "))
            .all(|l| l.contains(" e2 ")),
        "in epoch 2: {restart}"
    );
    let restarted = restart.find(" start from log ").unwrap();
    assert!(
        restart[restarted..].contains("=> Fenced{epoch:2,"),
        "the restarted segments fence the zombie"
    );
}

/// Recorded runs are in an order replay can trust: each receive after the step that sent it
/// (the `sent` clock names it), and the writer of each later epoch starting only after its
/// predecessor's lease has run out (its `Lease` timer) or its last step (it was killed).
#[test]
fn recorded_runs_keep_sends_before_receives_and_promotions_after_leases() {
    use sixfold_model::protocol::effects::NodeTimer;
    use sixfold_model::trace::{ActorSpec, Input};
    for f in sixfold_traces::files("runs") {
        let trace = trace_merge::load(&f).unwrap();
        let mut stepped = std::collections::HashSet::new();
        for s in &trace.steps {
            if let (Input::Msg { src, .. }, Some(sent)) = (&s.step.input, s.sent) {
                assert!(
                    stepped.contains(&(*src, sent)),
                    "{}: receive before its send",
                    s.at
                );
            }
            stepped.insert((s.step.actor, s.clock.unwrap_or(0)));
        }
        let writers: Vec<usize> = (0..trace.header.actors.len())
            .filter(|&i| matches!(trace.header.actors[i], ActorSpec::Writer { .. }))
            .collect();
        for pair in writers.windows(2) {
            let pos = |f: &dyn Fn(&TraceStep) -> bool| trace.steps.iter().position(f);
            let start = pos(&|s| s.step.actor == pair[1]).expect("the new writer steps");
            let lease_timer = Input::Timer {
                timer: NodeTimer::Lease,
            };
            let lease = pos(&|s| s.step.actor == pair[0] && s.step.input == lease_timer);
            let last = trace.steps.iter().rposition(|s| s.step.actor == pair[0]);
            let before = lease.or(last).expect("the old writer steps");
            assert!(
                before < start,
                "{}: promoted before the old lease ended",
                f.display()
            );
        }
    }
}

#[test]
fn every_mutant_has_a_counterexample_that_reproduces() {
    for m in sixfold_traces::replayed_mutants() {
        let f = sixfold_traces::root()
            .join("counterexamples")
            .join(format!("{}.ndjson", m.name()));
        assert!(f.is_file(), "missing counterexample {}", f.display());
        let (verdict, text) = render(&f);
        match verdict {
            ReplayVerdict::Reproduced { property, .. } => {
                assert_eq!(property, sixfold_traces::broken_property(m).1)
            }
            other => panic!("{}: {other:?}", f.display()),
        }
        insta::assert_snapshot!(format!("counterexample-{}", m.name()), text);
    }
}

/// A recorded failover run split back into its per-process files (one per actor, as `sixfold
/// node --trace` writes them) merges into exactly the recorded order.
#[test]
fn a_failover_run_split_into_process_files_merges_back_into_its_order() {
    let f = sixfold_traces::root().join("runs/failover-zombie.ndjson");
    let text = std::fs::read_to_string(&f).unwrap();
    let dir = std::env::temp_dir().join(format!("sixfold-split-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let trace = trace_merge::load(&f).unwrap();
    let header = text.lines().next().unwrap();
    let mut files: std::collections::BTreeMap<usize, String> = Default::default();
    for s in &trace.steps {
        let file = files
            .entry(s.step.actor)
            .or_insert_with(|| format!("{header}\n"));
        file.push_str(&s.raw);
        file.push('\n');
    }
    for (actor, body) in &files {
        std::fs::write(dir.join(format!("node-{actor}.ndjson")), body).unwrap();
    }
    let merged = trace_merge::load(&dir).unwrap();
    let raw = |t: &Trace| t.steps.iter().map(|s| s.raw.clone()).collect::<Vec<_>>();
    assert_eq!(raw(&merged), raw(&trace));
    let _ = std::fs::remove_dir_all(&dir);
}
