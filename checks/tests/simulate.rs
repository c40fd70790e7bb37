//! Seeded walks at deep bounds (`sixfold simulate`): every mutant is found within a fixed seed
//! range and its shrunk counterexample replays; the protocol passes; one seed names one run
//! whatever the threads; shards merge into the verdict of the whole range.

mod common;

use common::sixfold;
use sixfold_checks::replay::{replay, ReplayVerdict};
use sixfold_checks::runner::{run, ModelCheck, ModelKind, ModelReport, Strategy};
use sixfold_impl::trace_merge::load;
use sixfold_model::check::region::RegionBounds;
use sixfold_model::protocol::config::Mutant;

fn out_dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("sixfold-sim-{}-{name}", std::process::id()))
}

/// Walks `seeds` of `model` at its deep bounds.
fn walks(
    model: ModelKind,
    mutant: Option<Mutant>,
    seeds: (u64, u64),
    threads: usize,
) -> ModelReport {
    let mut opts = ModelCheck::new(model, mutant);
    opts.bounds = model.walk_bounds(mutant);
    opts.region = RegionBounds::walk(mutant);
    opts.strategy = Strategy::Simulation;
    opts.symmetry = false;
    opts.threads = threads;
    opts.plan.first = seeds.0;
    opts.plan.last = Some(seeds.1);
    opts.plan.states = None;
    opts.out_dir = out_dir(&format!(
        "{model}-{}",
        mutant.map_or("protocol", Mutant::name)
    ));
    run(&opts).expect("valid options")
}

/// A mutant, found by walks of seeds 1 to 3,000 at the model's deep bounds (each in under a
/// second on two cores; `cargo bench -p sixfold-checks --bench simulate` times them), broken on
/// `property`, shrunk, and replayed from its trace.
fn found(model: ModelKind, mutant: Mutant, property: &str) {
    assert_eq!(
        model.expected_failure(mutant),
        Some(property),
        "the catalogue agrees"
    );
    let report = walks(model, Some(mutant), (1, 3_000), 2);
    let v = report.verdicts.iter().find(|v| v.name == property).unwrap();
    assert!(
        !v.holds,
        "{model} {mutant}: walks of seeds 1..=3000 miss it"
    );
    let w = report.walks.as_ref().expect("a simulation reports walks");
    let (seed, unshrunk) = w.found[property];
    assert!(v.steps <= unshrunk, "{mutant}: shrinking never lengthens");
    assert_eq!(w.seeds.last().map(|r| r.1), Some(seed), "stops at its seed");
    let trace = load(v.trace.as_ref().expect("trace written")).expect("trace loads");
    let replayed = replay(&trace);
    assert!(
        matches!(&replayed.verdict, ReplayVerdict::Reproduced { property: p, .. } if p == property),
        "{mutant}: the shrunk counterexample replays: {:?}",
        replayed.verdict
    );
}

#[test]
fn walks_find_write_quorum_3() {
    found(ModelKind::Quorum, Mutant::WriteQuorum3, "durability");
}

#[test]
fn walks_find_read_any_node() {
    found(ModelKind::Quorum, Mutant::ReadAnyNode, "no stale read");
}

#[test]
fn walks_find_read_unbounded() {
    found(
        ModelKind::Quorum,
        Mutant::ReadUnbounded,
        "no uncommitted read",
    );
}

#[test]
fn walks_find_ack_before_persist() {
    found(ModelKind::Quorum, Mutant::AckBeforePersist, "durability");
}

#[test]
fn walks_find_no_fencing() {
    found(ModelKind::Failover, Mutant::NoFencing, "no stale commit");
}

#[test]
fn walks_find_no_truncation() {
    found(ModelKind::Failover, Mutant::NoTruncation, "no resurrection");
}

#[test]
fn walks_find_gossip_ignores_truncation() {
    found(
        ModelKind::Failover,
        Mutant::GossipIgnoresTruncation,
        "no resurrection",
    );
}

#[test]
fn walks_find_recover_with_2() {
    found(
        ModelKind::Failover,
        Mutant::RecoverWith2,
        "durability across failover",
    );
}

#[test]
fn walks_find_no_repair() {
    found(ModelKind::Failover, Mutant::NoRepair, "no voided read");
}

#[test]
fn walks_find_no_lease_wait() {
    found(ModelKind::Failover, Mutant::NoLeaseWait, "no stale commit");
}

#[test]
fn walks_find_read_ignores_full() {
    found(
        ModelKind::Failover,
        Mutant::ReadIgnoresFull,
        "durability across failover",
    );
}

#[test]
fn walks_find_the_region_mutants() {
    for (mutant, property) in [
        (Mutant::NoRegionFence, "no split brain"),
        (Mutant::SwitchoverNoWait, "switchover loses nothing"),
        (Mutant::ApplyOutOfOrder, "prefix"),
        // Walks end at their first broken invariant: the kept suffix breaks "prefix" the step
        // the old primary rejoins, before a read can be served from it ("no divergent read",
        // which the exhaustive check names, comes a step later).
        (Mutant::RejoinKeepsSuffix, "prefix"),
        (Mutant::SessionNoWait, "session reads see own writes"),
        (Mutant::RpoIgnored, "failover loss is bounded"),
    ] {
        let report = walks(ModelKind::Region, Some(mutant), (1, 2_000), 2);
        let v = report.verdicts.iter().find(|v| v.name == property).unwrap();
        assert!(!v.holds, "region {mutant}: walks of seeds 1..=2000 miss it");
    }
}

/// Every mutant has its test above.
#[test]
fn every_mutant_has_a_walk_test() {
    let all: usize = ModelKind::ALL.iter().map(|m| m.mutants().len()).sum();
    assert_eq!(all, 17, "a new mutant needs a walks_find_ test");
}

/// The protocol at deep bounds: no `always` property broken in 300 walks of each model, every
/// `sometimes` reached (so the walks do exercise commits, reads, gossip and failovers).
#[test]
fn the_protocol_passes_its_walks_at_deep_bounds() {
    for model in ModelKind::ALL {
        let report = walks(model, None, (1, 300), 2);
        for v in &report.verdicts {
            assert!(v.holds, "{model}: {} {} fails", v.expectation, v.name);
        }
        let w = report.walks.as_ref().unwrap();
        assert_eq!(w.totals.walks, 300);
        assert_eq!(w.seeds, [(1, 300)]);
        assert_eq!(w.totals.cut, 0, "{model}: every walk quiesces");
        assert!(w.totals.depth > 40, "{model}: walks go deep");
    }
}

/// One seed names one run: the same seeds on one thread and on two give the same counts and
/// the same discoveries, and a mutant's violation comes from the same seed.
#[test]
fn a_seed_range_gives_the_same_outcome_on_any_number_of_threads() {
    for mutant in [None, Some(Mutant::NoTruncation)] {
        let one = walks(ModelKind::Failover, mutant, (1, 1_000), 1);
        let two = walks(ModelKind::Failover, mutant, (1, 1_000), 2);
        let (a, b) = (one.walks.as_ref().unwrap(), two.walks.as_ref().unwrap());
        assert_eq!(a.totals, b.totals);
        assert_eq!(a.seeds, b.seeds);
        assert_eq!(a.found, b.found);
        let steps = |r: &ModelReport| r.verdicts.iter().map(|v| v.steps).collect::<Vec<_>>();
        assert_eq!(steps(&one), steps(&two), "the same shrunk counterexamples");
    }
}

/// Two shards of a seed range, run as two commands and merged, give the verdict and the counts
/// of one run over the whole range.
#[test]
fn shards_merge_into_the_whole_range() {
    let dir = out_dir("shards");
    std::fs::create_dir_all(&dir).unwrap();
    let file = |n: &str| dir.join(n).to_string_lossy().into_owned();
    let shard = |seeds: &str, json: &str| {
        let (code, out, err) = sixfold(&[
            "simulate",
            "quorum",
            "--seeds",
            seeds,
            "-q",
            "--json",
            &file(json),
            "--out",
            &file("ce"),
        ]);
        assert_eq!(code, 0, "{out}{err}");
        out
    };
    shard("1..200", "a.json");
    shard("201..400", "b.json");
    let whole = shard("1..400", "whole.json");
    let (code, merged, err) = sixfold(&["simulate", "--merge", &file("a.json"), &file("b.json")]);
    assert_eq!(code, 0, "{err}");
    let counts = |out: &str| {
        out.lines()
            .find(|l| l.contains(" walks, "))
            .map(|l| {
                l.split(" s, ")
                    .next()
                    .unwrap()
                    .rsplit_once(',')
                    .unwrap()
                    .0
                    .to_string()
            })
            .expect("a counts line")
    };
    assert!(merged.contains("seeds 1..=400"), "{merged}");
    assert_eq!(counts(&merged), counts(&whole), "{merged}\n{whole}");
    let verdicts = |out: &str| {
        out.lines()
            .filter(|l| l.starts_with("always") || l.starts_with("sometimes"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(verdicts(&merged), verdicts(&whole));
    let (code, _, err) = sixfold(&["simulate", "--merge", &file("a.json"), &file("a.json")]);
    assert_eq!(code, 2);
    assert!(err.contains("overlap"), "{err}");
}

/// Bad input gets a message and exit status 2, never a panic.
#[test]
fn bad_simulation_input_is_refused_with_a_reason() {
    let garbage = out_dir("garbage.json");
    std::fs::create_dir_all(garbage.parent().unwrap()).unwrap();
    std::fs::write(&garbage, "{not json").unwrap();
    let garbage = garbage.to_string_lossy().into_owned();
    for (args, says) in [
        (vec!["simulate", "quorum", "--seeds", "9..3"], "empty"),
        (vec!["simulate", "quorum", "--seconds", "0"], "positive"),
        (
            vec!["simulate", "quorum", "--writes", "40"],
            "between 1 and 16",
        ),
        (vec!["simulate", "raft"], "unknown model"),
        (vec!["simulate", "quorum", "--deep"], "own deep bounds"),
        (
            vec!["simulate", "quorum", "--mutant", "no-fencing"],
            "no mutant",
        ),
        (
            vec!["simulate", "--merge", garbage.as_str()],
            "not a simulation summary",
        ),
    ] {
        let (code, _, err) = sixfold(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
