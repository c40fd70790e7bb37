//! Seeded random walks: the checking behind `sixfold simulate` and `sixfold check --simulate`.
//!
//! Exhaustive search proves a model within small bounds; a walk reaches far deeper bounds (a
//! dozen writes, three failovers, gossip, crashes and an AZ plus one of disk losses) and proves
//! nothing, but a bug that needs them is found. The rules, after FoundationDB's and
//! TigerBeetle's simulators:
//! - **one seed names one walk**: a walk starts at the initial state and at each step takes an
//!   action chosen by a ChaCha8 generator seeded with the seed (portable, so the same seed gives
//!   the same walk on every machine), uniformly among the actions that change the state, until
//!   none is left or [`MAX_DEPTH`] steps;
//! - every property is judged on every state of every walk;
//! - seeds are independent, so disjoint seed ranges can run on different machines and their
//!   summaries merge ([`Summary::merge`]): a property's verdict is decided by the lowest seed
//!   that decides it, whichever shard walked it;
//! - with several threads the seeds are handed out in order, and when a walk finds the
//!   violation awaited no seed above it is started, but every seed below it is finished: the
//!   violation reported is always the lowest seed's, as with one thread;
//! - a violation is shrunk before it is reported ([`shrink`]): steps are dropped, in halves and
//!   then one at a time, while what is left still replays and still breaks the property first.
//!
//! Stateright 0.31's own simulation checker records a wrong action index whenever an action it
//! picks turns out to be a no-op, so its paths cannot be rebuilt for these models (whose no-op
//! deliveries are common); these walks keep the actions themselves.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use stateright::{Expectation, Model, Property};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest walk. Every model here quiesces well before it at the documented deep bounds;
/// a walk cut here is counted ([`Totals::cut`]) so that a run that hits it says so.
pub const MAX_DEPTH: usize = 5_000;

/// Which seeds to walk and when to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The first seed.
    pub first: u64,
    /// The last seed (inclusive), if the range is closed.
    pub last: Option<u64>,
    /// Stop starting walks after this long.
    pub time: Option<Duration>,
    /// Stop starting walks after this many states (a budget for runs with neither a last seed
    /// nor a time).
    pub states: Option<usize>,
    /// Stop at the lowest seed whose walk breaks `awaited` (or any `always` property when
    /// `awaited` is `None`), rather than walking every seed.
    pub stop_at_violation: bool,
}

/// What one walk found: its steps, and for each property the number of steps after which it was
/// first discovered (an `always` violated, a `sometimes` reached).
struct Walk<A> {
    actions: Vec<A>,
    found: Vec<Option<usize>>,
    cut: bool,
}

/// The odds, one in this many, that a step tries a fault first: faults are rare, so that
/// between two of them the system makes progress (a dozen writes take some 150 steps). Without
/// it a walk spends its whole fault budget in its first steps, while few messages are in flight.
pub const FAULT_ODDS: u32 = 16;

/// Walks the model from its (first) initial state with the generator seeded by `seed`, until it
/// quiesces, reaches [`MAX_DEPTH`] or breaks an `always` property. At each
/// step it picks faults (as `is_fault` tells them) with odds [`FAULT_ODDS`], other actions
/// otherwise, falling back to the other kind when none of the one picked changes the state.
fn walk<M: Model>(
    model: &M,
    properties: &[Property<M>],
    is_fault: fn(&M::Action) -> bool,
    seed: u64,
) -> Walk<M::Action>
where
    M::Action: Clone,
{
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut state = model.init_states().swap_remove(0);
    let mut walk = Walk {
        actions: Vec::new(),
        found: vec![None; properties.len()],
        cut: false,
    };
    let mut actions = Vec::new();
    loop {
        let mut broken = false;
        for (i, p) in properties.iter().enumerate() {
            if walk.found[i].is_none() && discovered(model, p, &state) {
                walk.found[i] = Some(walk.actions.len());
                broken |= p.expectation == Expectation::Always;
            }
        }
        // A walk ends at its first broken invariant, as TLC's search does: what follows a
        // violation is not a counterexample to anything else (replay, too, reports the first).
        if broken {
            return walk;
        }
        if walk.actions.len() >= MAX_DEPTH {
            walk.cut = true;
            return walk;
        }
        actions.clear();
        model.actions(&state, &mut actions);
        let fault_first = rng.random_ratio(1, FAULT_ODDS);
        let (mut first, mut second): (Vec<_>, Vec<_>) =
            actions.drain(..).partition(|a| is_fault(a) == fault_first);
        let Some(next) = pick(model, &state, &mut first, &mut rng)
            .or_else(|| pick(model, &state, &mut second, &mut rng))
        else {
            return walk;
        };
        walk.actions.push(next.0);
        state = next.1;
    }
}

/// Takes actions out of `pool` at random until one changes the state: uniform among those that
/// do, without computing every successor.
fn pick<M: Model>(
    model: &M,
    state: &M::State,
    pool: &mut Vec<M::Action>,
    rng: &mut ChaCha8Rng,
) -> Option<(M::Action, M::State)>
where
    M::Action: Clone,
{
    while !pool.is_empty() {
        let action = pool.swap_remove(rng.random_range(0..pool.len()));
        if let Some(next) = model.next_state(state, action.clone()) {
            return Some((action, next));
        }
    }
    None
}

/// Whether `state` discovers `p`: violates an `always`, or satisfies a `sometimes`.
fn discovered<M: Model>(model: &M, p: &Property<M>, state: &M::State) -> bool {
    let holds = (p.condition)(model, state);
    match p.expectation {
        Expectation::Sometimes => holds,
        _ => !holds,
    }
}

/// Replays `actions` from the initial state, skipping every one that is not enabled or changes
/// nothing where it comes; returns the steps taken up to the first state where an `always`
/// property fails, provided property `target` is among those failing there.
fn replay_to_failure<M: Model>(
    model: &M,
    properties: &[Property<M>],
    target: usize,
    actions: &[M::Action],
) -> Option<Vec<M::Action>>
where
    M::Action: PartialEq + Clone,
{
    let mut state = model.init_states().swap_remove(0);
    let mut taken = Vec::new();
    let mut enabled = Vec::new();
    let mut rest = actions.iter();
    loop {
        let failing: Vec<usize> = (0..properties.len())
            .filter(|&i| properties[i].expectation == Expectation::Always)
            .filter(|&i| discovered(model, &properties[i], &state))
            .collect();
        if !failing.is_empty() {
            return failing.contains(&target).then_some(taken);
        }
        let next = loop {
            let action = rest.next()?;
            enabled.clear();
            model.actions(&state, &mut enabled);
            if !enabled.contains(action) {
                continue;
            }
            if let Some(next) = model.next_state(&state, action.clone()) {
                break (action.clone(), next);
            }
        };
        taken.push(next.0);
        state = next.1;
    }
}

/// Shrinks a walk that breaks `always` property `target` first. It drops runs of steps, halving
/// their length down to one step, and replays what is left, skipping the steps that dropping
/// others disabled (a delivery whose send was dropped), so a whole causal chain goes at once;
/// it keeps the result while it still breaks `target` first, cut at the failure. Returns
/// `actions` unchanged if they do not break `target` first (another property broke earlier on
/// this walk).
pub fn shrink<M: Model>(
    model: &M,
    properties: &[Property<M>],
    target: usize,
    actions: &[M::Action],
) -> Vec<M::Action>
where
    M::Action: PartialEq + Clone,
{
    let Some(mut best) = replay_to_failure(model, properties, target, actions) else {
        return actions.to_vec();
    };
    let mut chunk = best.len().div_ceil(2).max(1);
    loop {
        let before = best.len();
        let mut at = 0;
        while at < best.len() {
            let mut candidate = best[..at].to_vec();
            candidate.extend_from_slice(&best[(at + chunk).min(best.len())..]);
            match replay_to_failure(model, properties, target, &candidate) {
                Some(shorter) if shorter.len() < best.len() => best = shorter,
                _ => at += chunk,
            }
        }
        // Single steps again until none can go: a drop late in a pass can free an earlier one.
        if chunk == 1 && best.len() == before {
            return best;
        }
        chunk = chunk.div_ceil(2);
    }
}

/// The steps of one discovery: the seed of its walk and its actions.
pub struct Discovery<A> {
    /// The walk's seed.
    pub seed: u64,
    /// The walk's actions up to the discovering state.
    pub actions: Vec<A>,
}

/// Counts over every walk of a run (or of merged runs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Walks taken.
    pub walks: u64,
    /// States visited (every state of every walk, initial ones included).
    pub states: u64,
    /// The longest walk, in steps.
    pub depth: u64,
    /// Walks cut at [`MAX_DEPTH`] before the model quiesced.
    pub cut: u64,
}

/// What a run found: the totals, the seeds it walked and each property's lowest discovering
/// seed with that walk's steps.
pub struct Outcome<A> {
    /// Counts.
    pub totals: Totals,
    /// The seeds walked, as inclusive ranges.
    pub seeds: Vec<(u64, u64)>,
    /// Per property (in the order given), its discovery from the lowest seed, if any.
    pub found: Vec<Option<Discovery<A>>>,
}

/// Shared state of a run's worker threads.
struct Shared<A> {
    /// Totals so far, for progress.
    totals: Totals,
    /// Each walk taken: its seed, steps and whether it was cut.
    walked: Vec<(u64, usize, bool)>,
    found: Vec<Option<Discovery<A>>>,
}

/// Walks seeds as `plan` says on `threads` threads. `is_fault` tells faults from progress
/// ([`FAULT_ODDS`]). `awaited` is the property whose violation ends the run under
/// `plan.stop_at_violation` (`None`: any `always`). `progress` is called about once a second
/// with the totals so far.
pub fn run<M>(
    model: &M,
    properties: &[Property<M>],
    is_fault: fn(&M::Action) -> bool,
    plan: &Plan,
    threads: usize,
    awaited: Option<&str>,
    progress: &(dyn Fn(&Totals, Duration) + Sync),
) -> Outcome<M::Action>
where
    M: Model + Sync,
    M::Action: Clone + Send,
{
    let start = Instant::now();
    let next = AtomicU64::new(plan.first);
    let stop_below = AtomicU64::new(u64::MAX);
    let shared = Mutex::new(Shared {
        totals: Totals::default(),
        walked: Vec::new(),
        found: (0..properties.len()).map(|_| None).collect(),
    });
    let ends = |p: &Property<M>| {
        p.expectation == Expectation::Always && awaited.is_none_or(|name| name == p.name)
    };
    let last_report = Mutex::new(Instant::now());
    let worker = || loop {
        let seed = next.fetch_add(1, Ordering::SeqCst);
        let over_time = plan.time.is_some_and(|t| start.elapsed() >= t);
        let over_states = plan.states.is_some_and(|s| {
            let states = shared.lock().expect("no worker panics").totals.states;
            states >= s as u64
        });
        if plan.last.is_some_and(|l| seed > l)
            || seed >= stop_below.load(Ordering::SeqCst)
            || over_time
            || over_states
        {
            return;
        }
        let w = walk(model, properties, is_fault, seed);
        let mut s = shared.lock().expect("no worker panics");
        s.totals.walks += 1;
        s.totals.states += w.actions.len() as u64 + 1;
        s.totals.depth = s.totals.depth.max(w.actions.len() as u64);
        s.totals.cut += u64::from(w.cut);
        s.walked.push((seed, w.actions.len(), w.cut));
        for (i, at) in w.found.iter().enumerate() {
            let Some(at) = *at else { continue };
            if s.found[i].as_ref().is_some_and(|d| d.seed < seed) {
                continue;
            }
            s.found[i] = Some(Discovery {
                seed,
                actions: w.actions[..at].to_vec(),
            });
            if plan.stop_at_violation && ends(&properties[i]) {
                stop_below.fetch_min(seed, Ordering::SeqCst);
            }
        }
        let totals = s.totals;
        drop(s);
        let mut last = last_report.lock().expect("no worker panics");
        if last.elapsed() >= Duration::from_secs(1) {
            *last = Instant::now();
            progress(&totals, start.elapsed());
        }
    };
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(worker);
        }
    });
    let Shared {
        mut walked,
        mut found,
        ..
    } = shared.into_inner().expect("no worker panics");
    // Walks above the violating seed that were already under way when it was found are
    // forgotten, so that a run's outcome does not depend on how the threads were scheduled.
    let cutoff = stop_below.into_inner();
    walked.retain(|&(seed, ..)| seed <= cutoff);
    for f in &mut found {
        if f.as_ref().is_some_and(|d| d.seed > cutoff) {
            *f = None;
        }
    }
    let totals = walked
        .iter()
        .fold(Totals::default(), |t, &(_, steps, cut)| Totals {
            walks: t.walks + 1,
            states: t.states + steps as u64 + 1,
            depth: t.depth.max(steps as u64),
            cut: t.cut + u64::from(cut),
        });
    Outcome {
        totals,
        seeds: ranges(walked.into_iter().map(|(seed, ..)| seed).collect()),
        found,
    }
}

/// Sorted seeds as inclusive ranges: `[1, 2, 3, 7]` → `[(1, 3), (7, 7)]`.
fn ranges(mut seeds: Vec<u64>) -> Vec<(u64, u64)> {
    seeds.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for s in seeds {
        match out.last_mut() {
            Some((_, hi)) if *hi + 1 >= s => *hi = (*hi).max(s),
            _ => out.push((s, s)),
        }
    }
    out
}

/// One property's verdict in a [`Summary`]: its kind and the lowest seed that decided it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryProperty {
    /// The property's name.
    pub name: String,
    /// `always` or `sometimes`.
    pub kind: String,
    /// The lowest seed whose walk violated it (`always`) or reached it (`sometimes`).
    pub seed: Option<u64>,
}

/// A run's result in a form that outlives it: what `--json` writes and `--merge` reads, so that
/// shards of one seed space, run anywhere, combine into one verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The model.
    pub model: String,
    /// `protocol` or the mutant's name.
    pub variant: String,
    /// The bounds and protocol options walked, rendered (shards must agree on them).
    pub bounds: String,
    /// Seeds walked, as inclusive ranges.
    pub seeds: Vec<(u64, u64)>,
    /// Counts.
    pub totals: Totals,
    /// Seconds spent, summed over shards.
    pub seconds: f64,
    /// Each property's verdict.
    pub properties: Vec<SummaryProperty>,
}

/// Why two summaries cannot be merged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MergeError {
    /// They walked different models, variants or bounds.
    #[error("cannot merge a run of {0} with a run of {1}: they walk different models or bounds")]
    Different(String, String),
    /// They walked the same seed twice.
    #[error("seed {0} was walked by two of the runs merged (their seed ranges overlap)")]
    Overlap(u64),
    /// Nothing to merge.
    #[error("no summaries to merge")]
    Empty,
}

impl Summary {
    /// What this summary walked, for messages: `failover/protocol writes 12 …`.
    pub fn label(&self) -> String {
        format!("{}/{} ({})", self.model, self.variant, self.bounds)
    }

    /// Combines summaries of disjoint seed ranges of one model and bounds.
    pub fn merge(parts: &[Summary]) -> Result<Summary, MergeError> {
        let (first, rest) = parts.split_first().ok_or(MergeError::Empty)?;
        let mut out = first.clone();
        for p in rest {
            let same = p.model == out.model
                && p.variant == out.variant
                && p.bounds == out.bounds
                && p.properties.len() == out.properties.len();
            if !same {
                return Err(MergeError::Different(out.label(), p.label()));
            }
            out.seeds.extend(&p.seeds);
            out.totals.walks += p.totals.walks;
            out.totals.states += p.totals.states;
            out.totals.depth = out.totals.depth.max(p.totals.depth);
            out.totals.cut += p.totals.cut;
            out.seconds += p.seconds;
            for (mine, theirs) in out.properties.iter_mut().zip(&p.properties) {
                mine.seed = match (mine.seed, theirs.seed) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        out.seeds.sort_unstable();
        for pair in out.seeds.windows(2) {
            if pair[1].0 <= pair[0].1 {
                return Err(MergeError::Overlap(pair[1].0));
            }
        }
        let merged: Vec<u64> = out.seeds.iter().flat_map(|&(a, b)| a..=b).collect();
        out.seeds = ranges(merged);
        Ok(out)
    }

    /// The seed ranges, rendered: `1..=500, 1001..=1500`.
    pub fn seed_ranges(&self) -> String {
        let parts: Vec<String> = self
            .seeds
            .iter()
            .map(|(a, b)| format!("{a}..={b}"))
            .collect();
        parts.join(", ")
    }

    /// The verdicts as a table, one property per line.
    pub fn table(&self) -> String {
        let mut by_name = BTreeMap::new();
        for p in &self.properties {
            by_name.insert(p.name.as_str(), p);
        }
        let mut out = String::new();
        for p in &self.properties {
            let verdict = match (p.kind.as_str(), p.seed) {
                ("sometimes", Some(s)) => format!("reached (seed {s})"),
                ("sometimes", None) => "NOT REACHED".to_string(),
                (_, Some(s)) => format!("VIOLATED (seed {s})"),
                (_, None) => format!("holds in {} walks", self.totals.walks),
            };
            out.push_str(&format!("{:<10} {:<36} {verdict}\n", p.kind, p.name));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(seeds: Vec<(u64, u64)>, found: Option<u64>) -> Summary {
        Summary {
            model: "quorum".into(),
            variant: "protocol".into(),
            bounds: "writes 2".into(),
            seeds,
            totals: Totals {
                walks: 10,
                states: 100,
                depth: 7,
                cut: 0,
            },
            seconds: 1.5,
            properties: vec![SummaryProperty {
                name: "durability".into(),
                kind: "always".into(),
                seed: found,
            }],
        }
    }

    #[test]
    fn merging_takes_the_lowest_deciding_seed_and_joins_ranges() {
        let merged = Summary::merge(&[
            summary(vec![(11, 20)], Some(17)),
            summary(vec![(1, 10)], Some(9)),
            summary(vec![(21, 30)], None),
        ])
        .expect("disjoint shards merge");
        assert_eq!(merged.seeds, [(1, 30)]);
        assert_eq!(merged.properties[0].seed, Some(9));
        assert_eq!(merged.totals.walks, 30);
        assert_eq!(merged.totals.depth, 7);
        assert!((merged.seconds - 4.5).abs() < 1e-9);
    }

    #[test]
    fn merging_refuses_overlaps_and_other_bounds() {
        let overlap = Summary::merge(&[summary(vec![(1, 10)], None), summary(vec![(5, 6)], None)]);
        assert_eq!(overlap, Err(MergeError::Overlap(5)));
        let mut other = summary(vec![(11, 20)], None);
        other.bounds = "writes 3".into();
        assert!(matches!(
            Summary::merge(&[summary(vec![(1, 10)], None), other]),
            Err(MergeError::Different(..))
        ));
        assert_eq!(Summary::merge(&[]), Err(MergeError::Empty));
    }

    #[test]
    fn seeds_become_inclusive_ranges() {
        assert_eq!(ranges(vec![7, 1, 3, 2]), [(1, 3), (7, 7)]);
        assert_eq!(ranges(vec![]), []);
    }
}
