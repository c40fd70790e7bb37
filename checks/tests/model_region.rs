//! The `region` model (regional asynchronous replication): the protocol passes at its default
//! bounds with its state count pinned, each option adds behaviour (more states, and its own
//! properties judged), and every region mutant is caught by the property it must break.

use sixfold_checks::runner::{run, ModelCheck, ModelKind, ModelReport};
use sixfold_model::check::region::RegionBounds;
use sixfold_model::protocol::config::Mutant;
use sixfold_model::protocol::region::Consistency;

fn out_dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("sixfold-region-{}-{name}", std::process::id()))
}

fn check(region: RegionBounds, name: &str) -> ModelReport {
    let mut opts = ModelCheck::new(ModelKind::Region, None);
    opts.region = region;
    opts.out_dir = out_dir(name);
    run(&opts).expect("valid options")
}

/// Every property listed holds (an `always`) or is reached (a `sometimes`), the run explored
/// everything, and the properties judged are exactly `names`.
fn assert_passes(report: &ModelReport, names: &[&str]) {
    for v in &report.verdicts {
        assert!(v.holds, "{} {} does not hold", v.expectation, v.name);
    }
    assert!(report.complete);
    let judged: Vec<&str> = report.verdicts.iter().map(|v| v.name).collect();
    assert_eq!(judged, names);
}

const COMMON: [&str; 12] = [
    "prefix",
    "a secondary applies a record",
    "no split brain",
    "a superseded writer is refused",
    "switchover loses nothing",
    "a switchover completes after a commit",
    "failover loss is bounded",
    "a failover loses a commit",
    "no divergent read",
    "a rejoin discards a divergent record",
    "monotonic reads",
    "a client reads a newer record",
];

fn with(extra: &[&'static str]) -> Vec<&'static str> {
    COMMON
        .iter()
        .copied()
        .chain(extra.iter().copied())
        .collect()
}

/// The default bounds of `sixfold check region`: the README's figures come from this run.
#[test]
fn region_protocol_passes_at_default_bounds() {
    let report = check(RegionBounds::default(), "default");
    let session = [
        "session reads see own writes",
        "a session read sees its own write",
    ];
    assert_passes(&report, &with(&session));
    assert_eq!(report.unique, 94_539);
}

/// Global reads: the global property and its witness are judged, the session ones are not.
#[test]
fn global_reads_see_every_prior_commit() {
    let b = RegionBounds {
        consistency: Consistency::Global,
        ..RegionBounds::default()
    };
    let report = check(b, "global");
    let global = [
        "global reads see prior commits",
        "a global read sees a prior commit",
    ];
    assert_passes(&report, &with(&global));
    assert_eq!(report.unique, 199_291);
}

/// Eventual reads: only the properties every mode shares.
#[test]
fn eventual_reads_keep_the_shared_properties() {
    let b = RegionBounds {
        consistency: Consistency::Eventual,
        ..RegionBounds::default()
    };
    let report = check(b, "eventual");
    assert_passes(&report, &COMMON);
    assert_eq!(report.unique, 112_767);
}

/// The RPO gate removes behaviour (commits wait: 70,347 unique states against 94,539), K = 1 still lets a failover lose one
/// commit, and K = 0 none, so its loss witness is not judged there.
#[test]
fn the_rpo_gate_bounds_the_loss() {
    let one = RegionBounds {
        rpo: Some(1),
        ..RegionBounds::default()
    };
    let session = [
        "session reads see own writes",
        "a session read sees its own write",
    ];
    let report = check(one, "rpo1");
    assert_passes(&report, &with(&session));
    assert_eq!(report.unique, 70_347);
    let zero = RegionBounds {
        rpo: Some(0),
        ..RegionBounds::default()
    };
    let report = check(zero, "rpo0");
    let names: Vec<&str> = with(&session)
        .into_iter()
        .filter(|n| *n != "a failover loses a commit")
        .collect();
    assert_passes(&report, &names);
    assert_eq!(report.unique, 43_307);
}

/// A chain of two promotions: switchover after failover, a rejoined primary promoted again.
#[test]
fn two_promotions_pass() {
    let b = RegionBounds {
        promotions: 2,
        ..RegionBounds::default()
    };
    let report = check(b, "promotions2");
    for v in &report.verdicts {
        assert!(v.holds, "{} {} does not hold", v.expectation, v.name);
    }
    assert_eq!(report.unique, 684_513);
}

/// Each region mutant is caught by its property (breadth-first, one thread: the shortest
/// counterexample, the same every run).
fn caught(mutant: Mutant, property: &str, steps: usize) {
    assert_eq!(ModelKind::Region.expected_failure(mutant), Some(property));
    let mut opts = ModelCheck::new(ModelKind::Region, Some(mutant));
    opts.out_dir = out_dir(mutant.name());
    let report = run(&opts).expect("valid options");
    let v = report.verdicts.iter().find(|v| v.name == property).unwrap();
    assert!(!v.holds, "{mutant} is not caught by {property}");
    assert!(!report.complete, "the run stopped at the counterexample");
    assert_eq!(v.steps, steps, "the search is deterministic (one thread)");
    let file = v.trace.as_ref().expect("counterexample written");
    let header = std::fs::read_to_string(file).unwrap();
    assert!(header.contains(property) && header.contains("region"));
}

#[test]
fn no_region_fence_splits_the_brain() {
    caught(Mutant::NoRegionFence, "no split brain", 6);
}

#[test]
fn switchover_without_waiting_loses_a_commit() {
    caught(Mutant::SwitchoverNoWait, "switchover loses nothing", 6);
}

#[test]
fn applying_out_of_order_breaks_the_prefix() {
    caught(Mutant::ApplyOutOfOrder, "prefix", 7);
}

#[test]
fn rejoin_keeping_its_suffix_serves_a_divergent_record() {
    caught(Mutant::RejoinKeepsSuffix, "no divergent read", 7);
}

#[test]
fn ignoring_the_rpo_loses_more_than_k() {
    caught(Mutant::RpoIgnored, "failover loss is bounded", 7);
}

#[test]
fn session_reads_without_waiting_miss_their_own_write() {
    caught(Mutant::SessionNoWait, "session reads see own writes", 6);
}

/// `sixfold check all` runs the region model too.
#[test]
fn check_all_includes_region() {
    assert!(ModelKind::ALL.contains(&ModelKind::Region));
    assert_eq!("region".parse::<ModelKind>().unwrap(), ModelKind::Region);
    assert_eq!(ModelKind::Region.mutants().len(), 6);
}
