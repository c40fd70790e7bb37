//! The fast kill suite: the models explored at small bounds, each run pinned by its unique state
//! count and every property's verdict, so that a change in protocol behaviour fails a test in
//! seconds. It lives in the model crate (which runs its own checks through Stateright, without
//! the `sixfold` runner) because that is the cheapest crate to rebuild: `scripts/mutation-score.sh`
//! runs cargo-mutants over the protocol core against this suite and the crate's unit tests.
//!
//! The runs are one test, cheapest first, so that a mutant is killed by the first run it
//! changes (most are, in under a second) and only a survivor pays for all of them.
//!
//! The state counts are sensitive on purpose: a step function that sends one message more or
//! less, or saves a different log, changes the state graph even when no property breaks. The
//! counts are exact, not estimates: every run is single-threaded depth-first search with the
//! segment-relabelling reduction, which visits the same states in the same order every time.

use sixfold_model::check::failover::FailoverModel;
use sixfold_model::check::gossip::GossipModel;
use sixfold_model::check::quorum::{Bounds, QuorumModel, QuorumState};
use sixfold_model::check::symmetry;
use sixfold_model::protocol::config::{Config, Geometry};
use stateright::{Checker, Expectation, HasDiscoveries, Model};

/// What one exploration found: unique states, and each property with whether it holds (an
/// `always` with no counterexample, a `sometimes` with an example).
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    unique: usize,
    verdicts: Vec<(&'static str, bool)>,
}

/// Explores `model` depth-first on one thread with symmetry reduction, stopping at the first
/// violated invariant (so a broken protocol fails fast instead of exploring on), to `depth`
/// steps if given.
fn explore<M>(model: M, depth: Option<usize>) -> Outcome
where
    M: Model<State = QuorumState> + Send + Sync + Clone + 'static,
    M::Action: std::fmt::Debug + Send + Sync + Clone + PartialEq + 'static,
{
    let properties = model.properties();
    let mut builder = model
        .checker()
        .threads(1)
        .symmetry_fn(symmetry::canonical)
        .finish_when(HasDiscoveries::AnyFailures);
    if let Some(depth) = depth {
        builder = builder.target_max_depth(depth);
    }
    let checker = builder.spawn_dfs().join();
    let found = checker.discoveries();
    let verdicts = properties
        .iter()
        .map(|p| {
            let seen = found.contains_key(p.name);
            let holds = match p.expectation {
                Expectation::Sometimes => seen,
                Expectation::Always | Expectation::Eventually => !seen,
            };
            (p.name, holds)
        })
        .collect();
    Outcome {
        unique: checker.unique_state_count(),
        verdicts,
    }
}

/// Every property of the run holds, and the run saw `unique` states.
fn assert_outcome(outcome: &Outcome, names: &[&str], unique: usize) {
    assert_outcome_except(outcome, names, &[], unique);
}

/// Every property of the run holds except the `unreached` witnesses, and the run saw `unique`
/// states.
fn assert_outcome_except(outcome: &Outcome, names: &[&str], unreached: &[&str], unique: usize) {
    let expected: Vec<(&str, bool)> = names.iter().map(|n| (*n, !unreached.contains(n))).collect();
    let got: Vec<(&str, bool)> = outcome.verdicts.iter().map(|(n, h)| (*n, *h)).collect();
    assert_eq!(
        got, expected,
        "every property holds, but the unreached witnesses"
    );
    assert_eq!(outcome.unique, unique, "unique states");
}

/// `writes` writes, no reader, no crash and no disk loss: the quiet baseline most runs start
/// from.
fn quiet(writes: u8) -> Bounds {
    Bounds {
        writes,
        reads: 0,
        crashes: 0,
        losses: 0,
        ..Bounds::default()
    }
}

const QUORUM_ALL: &[&str] = &[
    "durability",
    "no stale read",
    "no uncommitted read",
    "a commit is acknowledged",
    "a read returns a committed value",
    "a disk is lost after a commit",
];

const QUORUM_NO_LOSS: &[&str] = &[
    "durability",
    "no stale read",
    "no uncommitted read",
    "a commit is acknowledged",
    "a read returns a committed value",
];

fn quorum(bounds: Bounds) -> QuorumModel {
    QuorumModel::new(Config::new(None), bounds)
}

/// `sixfold check quorum` at its defaults: one write and its read-back, a concurrent reader, a
/// crash-restart and a disk loss.
fn quorum_at_default_bounds() {
    let outcome = explore(quorum(Bounds::default()), None);
    assert_outcome(&outcome, QUORUM_ALL, 61_412);
}

/// Two writes, no faults and no reader: gaps, SCL-based routing and refused reads.
fn quorum_with_two_writes() {
    let outcome = explore(quorum(quiet(2)), None);
    assert_outcome(&outcome, QUORUM_NO_LOSS, 3_736);
}

/// Two writes in flight and LAL 1: the commit queue holds two and back-pressure binds.
fn quorum_with_pipelined_writes_and_back_pressure() {
    let bounds = Bounds {
        inflight: 2,
        ..quiet(2)
    };
    let cfg = Config {
        lal: 1,
        ..Config::new(None)
    };
    let outcome = explore(QuorumModel::new(cfg, bounds), None);
    assert_outcome(&outcome, QUORUM_NO_LOSS, 12_466);
}

/// A lossy network and spurious open-retry timeouts: the writer widens its open quorum read.
fn quorum_with_lossy_network_and_spurious_timeouts() {
    let bounds = Bounds {
        lossy: true,
        spurious_timeouts: true,
        ..quiet(1)
    };
    let outcome = explore(quorum(bounds), None);
    assert_outcome(&outcome, QUORUM_NO_LOSS, 19_255);
}

/// Gossip at its defaults (two writes, one lost Append), explored to 32 steps (the whole space
/// takes 15 s on one thread; by 32 steps a pull has filled a gap).
fn gossip_fills_gaps_to_bounded_depth() {
    let outcome = explore(GossipModel::new(Config::new(None), 2, 1), Some(32));
    assert_outcome(
        &outcome,
        &[
            "no fabrication",
            "convergence at quiescence",
            "gossip fills a gap",
            "a commit is acknowledged",
        ],
        30_888,
    );
}

const FAILOVER_ALL: &[&str] = &[
    "durability across failover",
    "no stale commit",
    "no resurrection",
    "no voided read",
    "no uncommitted read",
    "a failover completes",
    "a zombie write is refused",
    "a truncation happens",
];

/// One failover at its default bounds, explored to 20 steps (the whole space takes a minute on
/// two cores): recovery, fencing, truncation and the zombie. Twenty is the least depth at
/// which every `sometimes` of the model is reached.
fn failover_to_bounded_depth() {
    let model = FailoverModel::new(Config::new(None), FailoverModel::default_bounds());
    let outcome = explore(model, Some(20));
    assert_outcome(&outcome, FAILOVER_ALL, 74_333);
}

fn full_tail() -> Config {
    Config {
        geometry: Geometry::FullTail,
        ..Config::new(None)
    }
}

/// Full/tail geometry, two writes, no faults and no reader: the 3/3-full write quorum and reads
/// routed to full segments only.
fn quorum_full_tail_with_two_writes() {
    let outcome = explore(QuorumModel::new(full_tail(), quiet(2)), None);
    assert_outcome(&outcome, QUORUM_NO_LOSS, 19_294);
}

/// Full/tail failover to 14 steps: recoveries whose read quorum must include a full segment
/// fence the zombie. A recovered writer's first commit lies deeper than 16 steps, where the
/// space costs tens of seconds; the full/tail mutant test (`read-ignores-full`, by walks)
/// reaches it.
fn failover_full_tail_to_bounded_depth() {
    let model = FailoverModel::new(full_tail(), FailoverModel::default_bounds());
    let outcome = explore(model, Some(14));
    let unreached = ["a failover completes", "a truncation happens"];
    assert_outcome_except(&outcome, FAILOVER_ALL, &unreached, 21_713);
}

/// Every run above, cheapest first (times on one core of the shared machine).
#[test]
fn every_model_at_small_bounds_cheapest_first() {
    let runs: [(&str, fn()); 8] = [
        ("quorum, two writes (0.2 s)", quorum_with_two_writes),
        (
            "quorum, pipelined (0.4 s)",
            quorum_with_pipelined_writes_and_back_pressure,
        ),
        (
            "quorum, lossy (0.6 s)",
            quorum_with_lossy_network_and_spurious_timeouts,
        ),
        (
            "gossip, 32 steps (0.8 s)",
            gossip_fills_gaps_to_bounded_depth,
        ),
        ("quorum, defaults (3 s)", quorum_at_default_bounds),
        ("failover, 20 steps (3.6 s)", failover_to_bounded_depth),
        (
            "quorum, full/tail, two writes",
            quorum_full_tail_with_two_writes,
        ),
        (
            "failover, full/tail, 20 steps",
            failover_full_tail_to_bounded_depth,
        ),
    ];
    for (name, run) in runs {
        eprintln!("{name}");
        run();
    }
}
