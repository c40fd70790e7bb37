//! The model-check runner behind `sixfold check`: builds a model from its name and bounds, runs
//! Stateright's checker with progress, and turns the outcome into verdicts, numbers and
//! counterexample traces.
//!
//! Strategy defaults: the real protocol is explored depth-first with symmetry reduction (cheap:
//! fingerprints only, and one state per relabelling of the segments); a mutant is explored
//! breadth-first on one thread, because only then is the counterexample the shortest one, and the
//! run stops at the first failing property.

use crate::simulate;
use sixfold_model::check::failover::FailoverModel;
use sixfold_model::check::gossip::GossipModel;
use sixfold_model::check::properties::{self, Prop};
use sixfold_model::check::quorum::{Bounds, QuorumModel};
use sixfold_model::check::region::{self, RegionBounds, RegionModel};
use sixfold_model::check::symmetry;
use sixfold_model::protocol::config::{Config, Geometry, Mutant};
use sixfold_model::protocol::msg::Lsn;
use sixfold_model::trace::Line;
use stateright::{Checker, Expectation, HasDiscoveries, Model};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// The models `sixfold check` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// Quorum writes and reads under crashes, disk loss and reordering.
    Quorum,
    /// Gossip repair of gaps under lost Appends.
    Gossip,
    /// Writer failover: recovery, truncation and epoch fencing against a zombie writer.
    Failover,
    /// Regional asynchronous replication: switchover, failover, rejoin, RPO, write forwarding.
    Region,
}

impl ModelKind {
    /// Every model, in the order `check all` runs them.
    pub const ALL: [ModelKind; 4] = [
        ModelKind::Quorum,
        ModelKind::Gossip,
        ModelKind::Failover,
        ModelKind::Region,
    ];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Quorum => "quorum",
            ModelKind::Gossip => "gossip",
            ModelKind::Failover => "failover",
            ModelKind::Region => "region",
        }
    }

    /// The bounds `sixfold check` explores when none are given, or with `--deep`. A mutant may
    /// need more than the defaults to show its bug: `gossip-ignores-truncation` needs gossip and
    /// an old writer that leaves a record behind above a committed one (two writes);
    /// `no-repair` two failovers and a read between them, found by walks at the deep bounds
    /// ([`ModelKind::walk_bounds`]) in under a second (at two failovers and one write the walks
    /// take some 40 s). Every mutant found by walks is walked at its walk bounds.
    pub fn default_bounds(self, deep: bool, mutant: Option<Mutant>) -> Bounds {
        match (self, deep) {
            (ModelKind::Quorum, true) => Bounds::deep(),
            (ModelKind::Quorum | ModelKind::Gossip | ModelKind::Region, _) => Bounds::default(),
            (ModelKind::Failover, false) if mutant == Some(Mutant::GossipIgnoresTruncation) => {
                FailoverModel::gossip_bounds()
            }
            // A mutant found by walks is walked at the bounds walks use.
            (ModelKind::Failover, false)
                if mutant.is_some_and(|m| self.mutant_strategy(m) == Strategy::Simulation) =>
            {
                self.walk_bounds(mutant)
            }
            (ModelKind::Failover, false) => FailoverModel::default_bounds(),
            (ModelKind::Failover, true) => FailoverModel::deep_bounds(),
        }
    }

    /// The deep bounds `sixfold simulate` walks by default, far beyond what exhaustive search
    /// finishes: a dozen writes, every read and fault budget at its largest (an AZ plus one of
    /// disk losses), and for `failover` a chain of three promotions with two writes in flight
    /// and gossip on. Walks reach them because they keep no visited set; they prove nothing.
    /// One mutant is walked at its own bounds: `no-lease-wait` needs the zombie to stay
    /// unfenced until the new writer commits, which a dozen writes of its own (each Append to a
    /// fenced segment deposes it) all but rule out; at [`FailoverModel::lease_bounds`] walks find
    /// it at once.
    pub fn walk_bounds(self, mutant: Option<Mutant>) -> Bounds {
        if mutant == Some(Mutant::NoLeaseWait) {
            return FailoverModel::lease_bounds();
        }
        let quorum = Bounds {
            writes: 12,
            reads: 3,
            crashes: 4,
            losses: 3,
            ..Bounds::default()
        };
        match self {
            // The region model reads its own bounds ([`ModelCheck::region`]).
            ModelKind::Quorum | ModelKind::Region => quorum,
            // The gossip model reads only these: writes, and lost Appends (as `losses`).
            ModelKind::Gossip => Bounds {
                reads: 0,
                crashes: 0,
                ..quorum
            },
            ModelKind::Failover => Bounds {
                reads: 2,
                crashes: 2,
                gossip: true,
                failovers: 3,
                inflight: 2,
                ..quorum
            },
        }
    }

    /// How a mutant of this model is searched: breadth-first on one thread finds the shortest
    /// counterexample, which is what `quorum` and `gossip` do. `failover`'s state space is too
    /// wide for that to finish in seconds (minutes for `no-fencing`), so its mutants are searched
    /// depth-first with symmetry reduction, on one thread so the counterexample is the same in
    /// every run; the counterexample is then longer than it needs to be. `no-repair` lies deeper
    /// still (two promotions and a read between them): depth-first search had not reached it
    /// after minutes, so it is found by seeded random walks (in well under a second), and its
    /// walk is shrunk. So is `read-ignores-full`: depth-first search needs over a minute to
    /// find a commit on the three full segments alone followed by a recovery from the tails.
    pub fn mutant_strategy(self, mutant: Mutant) -> Strategy {
        match (self, mutant) {
            (ModelKind::Quorum | ModelKind::Gossip | ModelKind::Region, _) => Strategy::Bfs,
            (
                ModelKind::Failover,
                Mutant::NoRepair | Mutant::ReadIgnoresFull | Mutant::NoLeaseWait,
            ) => Strategy::Simulation,
            (ModelKind::Failover, _) => Strategy::Dfs,
        }
    }

    /// The model's properties (`sixfold_model::check::properties`): the one list its checker, replay
    /// and this runner use. Empty for `region`, whose states are not `QuorumState`s: its own
    /// list is `sixfold_model::check::region::PROPS`.
    pub fn props(self) -> &'static [Prop] {
        match self {
            ModelKind::Quorum => properties::QUORUM,
            ModelKind::Gossip => properties::GOSSIP,
            ModelKind::Failover => properties::FAILOVER,
            ModelKind::Region => &[],
        }
    }

    /// Whether its counterexamples are traces of the protocol's actors, which `sixfold replay`
    /// replays. The `region` model's are not yet: it has no runtime.
    pub fn replays(self) -> bool {
        self != ModelKind::Region
    }

    /// The mutants this model can run, each with the property it must break, in
    /// [`Mutant::ALL`] order: read off the properties' `catches` lists.
    pub fn mutants(self) -> Vec<(Mutant, &'static str)> {
        Mutant::ALL
            .into_iter()
            .filter_map(|m| self.expected_failure(m).map(|p| (m, p)))
            .collect()
    }

    /// The property `mutant` is expected to break in this model, if the model runs it.
    pub fn expected_failure(self, mutant: Mutant) -> Option<&'static str> {
        match self {
            ModelKind::Region => region::catching_mutant(mutant),
            _ => properties::catching_mutant(self.props(), mutant),
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Errors in what was asked of the runner: each message says what is valid instead.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// No model of that name.
    #[error("unknown model '{0}'; valid models: {valid}, or all", valid = ModelKind::ALL.map(|m| m.name()).join(", "))]
    UnknownModel(String),
    /// The model does not define that mutant.
    #[error("model '{model}' has no mutant '{mutant}'; its mutants: {valid}")]
    MutantNotInModel {
        /// The model asked for.
        model: ModelKind,
        /// The mutant asked for.
        mutant: Mutant,
        /// The mutants the model does define.
        valid: String,
    },
    /// A bound outside its range.
    #[error("--{name} {value} is out of range: must be between {min} and {max}{why}")]
    BadBound {
        /// The flag.
        name: &'static str,
        /// The value given.
        value: u64,
        /// Smallest valid value.
        min: u64,
        /// Largest valid value.
        max: u64,
        /// Why the range is what it is.
        why: &'static str,
    },
    /// The full/tail mutant asked for on six full segments, where it changes nothing.
    #[error("mutant read-ignores-full drops a full/tail rule: it needs --geometry full-tail")]
    MutantNeedsFullTail,
    /// `--deep` given to `simulate`, whose bounds are deeper already.
    #[error("--deep is check's preset; simulate walks its own deep bounds (see --help), and bound flags override them")]
    DeepWalks,
    /// A time budget that is not a positive number of seconds.
    #[error("--seconds {0} is not a time to walk for: give a positive number of seconds")]
    BadSeconds(f64),
    /// Symmetry reduction asked for with BFS, which stateright silently ignores.
    #[error("--symmetry works only with --dfs (stateright's BFS ignores symmetry reduction)")]
    SymmetryNeedsDfs,
    /// The counterexample could not be written.
    #[error("cannot write counterexample to {path}: {source}")]
    WriteTrace {
        /// Where it was being written.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
}

impl FromStr for ModelKind {
    type Err = CheckError;
    fn from_str(s: &str) -> Result<Self, CheckError> {
        ModelKind::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| CheckError::UnknownModel(s.to_string()))
    }
}

/// How to explore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Breadth-first: shortest counterexamples (with one thread), more memory.
    Bfs,
    /// Depth-first: fingerprints only, supports symmetry reduction.
    Dfs,
    /// Seeded random walks, every property checked on every state: for mutants whose bug lies
    /// deeper than an exhaustive search reaches in seconds. Not a proof; used only to show a
    /// mutant is caught. One thread and a fixed seed give the same walk in every run.
    Simulation,
}

/// The most writes a walk's app client issues: its script (a write and a read each) fits the
/// client's 32-request bitset.
pub const MAX_WALK_WRITES: u64 = 16;

/// The seed of the walks a simulation takes unless `--seed` names another.
pub const SIMULATION_SEED: u64 = 1;

/// Everything one run needs.
#[derive(Clone, Debug)]
pub struct ModelCheck {
    /// The model.
    pub model: ModelKind,
    /// The bounds explored.
    pub bounds: Bounds,
    /// The `region` model's bounds (the other models read `bounds`).
    pub region: RegionBounds,
    /// The mutant, if any.
    pub mutant: Option<Mutant>,
    /// Checker threads.
    pub threads: usize,
    /// BFS or DFS.
    pub strategy: Strategy,
    /// Symmetry reduction over segments (DFS only).
    pub symmetry: bool,
    /// Where counterexample traces are written.
    pub out_dir: PathBuf,
    /// Print progress to stderr while running.
    pub progress: bool,
    /// Explore everything even after an invariant fails (`--continue`).
    pub explore_on: bool,
    /// The protocol's LAL, if not the default (`--lal`).
    pub lal: Option<Lsn>,
    /// The geometry, if not the mutant's default (`--geometry`).
    pub geometry: Option<Geometry>,
    /// Which seeds a simulation walks and when it stops (`--seed`, `--seeds`, `--seconds`).
    pub plan: simulate::Plan,
}

impl ModelCheck {
    /// The default options for `model`: DFS with symmetry for the protocol, a single thread for
    /// a mutant (see [`ModelKind::mutant_strategy`]).
    pub fn new(model: ModelKind, mutant: Option<Mutant>) -> Self {
        let strategy = match mutant {
            Some(m) => model.mutant_strategy(m),
            None => Strategy::Dfs,
        };
        ModelCheck {
            model,
            bounds: model.default_bounds(false, mutant),
            region: RegionBounds::for_mutant(mutant),
            mutant,
            threads: if mutant.is_some() { 1 } else { 2 },
            strategy,
            // The region model's regions have roles: nothing to reduce.
            symmetry: strategy == Strategy::Dfs && model != ModelKind::Region,
            out_dir: PathBuf::from("counterexamples"),
            progress: false,
            explore_on: false,
            lal: None,
            geometry: None,
            plan: simulate::Plan {
                first: SIMULATION_SEED,
                last: None,
                time: None,
                states: Some(SIMULATION_STATES),
                stop_at_violation: true,
            },
        }
    }

    /// The protocol configuration explored: the mutant's, with the LAL asked for.
    pub fn config(&self) -> Config {
        let cfg = Config::new(self.mutant);
        Config {
            lal: self.lal.unwrap_or(cfg.lal),
            geometry: self.geometry.unwrap_or(cfg.geometry),
            ..cfg
        }
    }

    /// When the run stops: a mutant's once the property it must break is broken (others may
    /// break first); the protocol's at its first violated invariant, so a bug is reported at once
    /// rather than after the whole space, unless `--continue`; otherwise when the space is done.
    pub fn stop_rule(&self) -> Option<HasDiscoveries> {
        match self.mutant.and_then(|m| self.model.expected_failure(m)) {
            Some(expected) => Some(HasDiscoveries::AnyOf([expected].into())),
            None if self.explore_on => None,
            None => Some(HasDiscoveries::AnyFailures),
        }
    }

    /// Rejects bounds and combinations that make no sense, with a message saying what does.
    pub fn validate(&self) -> Result<(), CheckError> {
        if self.model == ModelKind::Region {
            self.validate_region()?;
            return self.validate_mutant();
        }
        let b = &self.bounds;
        let failovers = if self.model == ModelKind::Failover {
            (1, 3)
        } else {
            (0, 0)
        };
        // Walks keep no visited set, so they may go far deeper than an exhaustive search.
        let (writes, crashes) = match self.strategy {
            Strategy::Simulation => (MAX_WALK_WRITES, 16),
            _ => (6, 4),
        };
        let checks: [(&'static str, u64, u64, u64, &'static str); 8] = [
            (
                "writes",
                b.writes.into(),
                1,
                writes,
                " (more than 6 only with seeded walks)",
            ),
            (
                "failovers",
                b.failovers.into(),
                failovers.0,
                failovers.1,
                " (only the failover model promotes writers)",
            ),
            ("inflight", b.inflight.into(), 1, 4, ""),
            ("lal", self.config().lal, 1, 64, ""),
            ("reads", b.reads.into(), 0, 3, ""),
            (
                "crashes",
                b.crashes.into(),
                0,
                crashes,
                " (more than 4 only with seeded walks)",
            ),
            (
                "losses",
                b.losses.into(),
                0,
                3,
                " (the fault budget is an AZ plus one: 3 of 6 segments)",
            ),
            ("threads", self.threads as u64, 1, 64, ""),
        ];
        in_ranges(&checks)?;
        if b.inflight > b.writes {
            return Err(CheckError::BadBound {
                name: "inflight",
                value: b.inflight.into(),
                min: 1,
                max: b.writes.into(),
                why: " (a window wider than --writes pipelines nothing)",
            });
        }
        if self.symmetry && self.strategy == Strategy::Bfs {
            return Err(CheckError::SymmetryNeedsDfs);
        }
        if self.mutant == Some(Mutant::ReadIgnoresFull) && self.config().geometry == Geometry::Six {
            return Err(CheckError::MutantNeedsFullTail);
        }
        self.validate_mutant()
    }

    /// The `region` model's bounds, each in its range.
    fn validate_region(&self) -> Result<(), CheckError> {
        let b = &self.region;
        let checks: [(&'static str, u64, u64, u64, &'static str); 6] = [
            ("regions", b.regions.into(), 2, 3, ""),
            ("writes", b.writes.into(), 1, 4, ""),
            ("reads", b.reads.into(), 0, 3, ""),
            ("promotions", b.promotions.into(), 0, 3, ""),
            ("rpo", b.rpo.map_or(0, u64::from), 0, 8, ""),
            ("threads", self.threads as u64, 1, 64, ""),
        ];
        in_ranges(&checks)?;
        Ok(())
    }

    /// A mutant the model defines.
    fn validate_mutant(&self) -> Result<(), CheckError> {
        if let Some(mutant) = self.mutant {
            if self.model.expected_failure(mutant).is_none() {
                return Err(CheckError::MutantNotInModel {
                    model: self.model,
                    mutant,
                    valid: self
                        .model
                        .mutants()
                        .iter()
                        .map(|(m, _)| m.name())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        Ok(())
    }
}

/// Each bound as (name, value, min, max, why), refused with the first out of its range.
fn in_ranges(checks: &[(&'static str, u64, u64, u64, &'static str)]) -> Result<(), CheckError> {
    match checks
        .iter()
        .find(|&&(_, v, min, max, _)| v < min || v > max)
    {
        Some(&(name, value, min, max, why)) => Err(CheckError::BadBound {
            name,
            value,
            min,
            max,
            why,
        }),
        None => Ok(()),
    }
}

/// The verdict on one property.
#[derive(Clone, Debug)]
pub struct PropertyVerdict {
    /// The property's name.
    pub name: &'static str,
    /// `always` or `sometimes`.
    pub expectation: &'static str,
    /// Whether it holds: an `always` with no counterexample, a `sometimes` with an example.
    pub holds: bool,
    /// Where its counterexample trace was written, for a failing `always`.
    pub trace: Option<PathBuf>,
    /// The counterexample rendered as a numbered list of steps, for a failing `always`.
    pub rendered: Option<String>,
    /// Steps in the counterexample (0 when there is none).
    pub steps: usize,
}

/// The outcome of one model check.
#[derive(Clone, Debug)]
pub struct ModelReport {
    /// The model.
    pub model: ModelKind,
    /// The mutant, if any.
    pub mutant: Option<Mutant>,
    /// States generated.
    pub states: usize,
    /// Unique states (up to symmetry, when on).
    pub unique: usize,
    /// Greatest depth reached.
    pub depth: usize,
    /// Wall-clock time.
    pub elapsed: Duration,
    /// Whether the run explored everything (false when it stopped at a counterexample: a
    /// mutant's, or the protocol's first violated invariant without `--continue`).
    pub complete: bool,
    /// What a simulation's walks covered (`None` for an exhaustive search).
    pub walks: Option<WalkReport>,
    /// One verdict per property.
    pub verdicts: Vec<PropertyVerdict>,
}

impl ModelReport {
    /// Whether every property holds.
    pub fn passed(&self) -> bool {
        self.verdicts.iter().all(|v| v.holds)
    }

    /// The variant name: `protocol` or the mutant's name.
    pub fn variant(&self) -> &'static str {
        self.mutant.map_or("protocol", Mutant::name)
    }

    /// States generated per second.
    pub fn rate(&self) -> f64 {
        self.states as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Run one model check.
pub fn run(opts: &ModelCheck) -> Result<ModelReport, CheckError> {
    opts.validate()?;
    match opts.model {
        ModelKind::Quorum => {
            let model = QuorumModel::new(opts.config(), opts.bounds);
            run_model(opts, model)
        }
        ModelKind::Gossip => {
            let model = GossipModel::from_bounds(opts.config(), &opts.bounds);
            run_model(opts, model)
        }
        ModelKind::Failover => {
            let model = FailoverModel::new(opts.config(), opts.bounds);
            run_model(opts, model)
        }
        ModelKind::Region => run_model(opts, RegionModel::new(opts.config(), opts.region)),
    }
}

fn run_model<M>(opts: &ModelCheck, model: M) -> Result<ModelReport, CheckError>
where
    M: Model + Send + Sync + Clone + 'static,
    M::State: fmt::Debug + std::hash::Hash + Send + Sync + Clone + PartialEq + 'static,
    M::Action: fmt::Debug + Send + Sync + Clone + PartialEq + 'static,
    M: CheckedModel,
{
    let properties = model.properties();
    let mut builder = model.clone().checker().threads(opts.threads);
    if let Some(rule) = opts.stop_rule() {
        builder = builder.finish_when(rule);
    }
    if opts.symmetry {
        builder = builder.symmetry_fn(M::canonical);
    }
    let start = Instant::now();
    let checker = match opts.strategy {
        Strategy::Bfs => watch(opts, start, builder.spawn_bfs()),
        Strategy::Dfs => watch(opts, start, builder.spawn_dfs()),
        Strategy::Simulation => simulate(opts, &model, &properties),
    };
    let elapsed = start.elapsed();
    let discoveries = checker.discoveries;
    let mut verdicts = Vec::new();
    let mut any_failure = false;
    for p in &properties {
        let found = discoveries.get(p.name);
        let (expectation, holds) = match p.expectation {
            Expectation::Always => ("always", found.is_none()),
            Expectation::Sometimes => ("sometimes", found.is_some()),
            Expectation::Eventually => ("eventually", found.is_none()),
        };
        let mut verdict = PropertyVerdict {
            name: p.name,
            expectation,
            holds,
            trace: None,
            rendered: None,
            steps: 0,
        };
        if let (Some(path), false) = (found, p.expectation == Expectation::Sometimes) {
            any_failure = true;
            let lines = model.counterexample(path, p.name);
            let file = opts.out_dir.join(format!(
                "{}-{}-{}.ndjson",
                opts.model,
                opts.mutant.map_or("protocol", Mutant::name),
                p.name.replace(' ', "-")
            ));
            write_trace(&file, &lines)?;
            verdict.trace = Some(file);
            verdict.rendered = Some(render_path(&model, path));
            verdict.steps = path.clone().into_actions().len();
        }
        verdicts.push(verdict);
    }
    Ok(ModelReport {
        model: opts.model,
        mutant: opts.mutant,
        states: checker.states,
        unique: checker.unique,
        depth: checker.depth,
        elapsed,
        complete: !(any_failure && opts.stop_rule().is_some()),
        verdicts,
        walks: checker.walks,
    })
}

/// The most states `check --simulate` visits when neither a last seed nor a time is given.
const SIMULATION_STATES: usize = 20_000_000;

/// Runs seeded walks ([`crate::simulate`]) and shrinks each `always` violation found.
fn simulate<M>(opts: &ModelCheck, model: &M, properties: &[stateright::Property<M>]) -> Finished<M>
where
    M: CheckedModel + Sync,
    M::State: fmt::Debug + std::hash::Hash + Clone + PartialEq,
    M::Action: fmt::Debug + Clone + PartialEq + Send,
{
    let awaited = opts.mutant.and_then(|m| opts.model.expected_failure(m));
    let report = |t: &simulate::Totals, elapsed: Duration| {
        if opts.progress {
            let secs = elapsed.as_secs_f64().max(1e-9);
            eprintln!(
                "  {} [{}]: {} walks, {} states, depth {}, {:.0} s, {} walks/s, {} states/s",
                opts.model,
                opts.mutant.map_or("protocol", Mutant::name),
                group(t.walks as usize),
                group(t.states as usize),
                t.depth,
                secs,
                group((t.walks as f64 / secs) as usize),
                group((t.states as f64 / secs) as usize),
            );
        }
    };
    let outcome = simulate::run(
        model,
        properties,
        M::is_fault,
        &opts.plan,
        opts.threads,
        awaited,
        &report,
    );
    let init = model.init_states().swap_remove(0);
    let mut discoveries = std::collections::HashMap::new();
    let mut seeds = std::collections::HashMap::new();
    for (i, (p, found)) in properties.iter().zip(outcome.found).enumerate() {
        let Some(found) = found else { continue };
        let actions = match p.expectation {
            Expectation::Sometimes => found.actions.clone(),
            _ => simulate::shrink(model, properties, i, &found.actions),
        };
        seeds.insert(p.name, (found.seed, found.actions.len()));
        let path = stateright::Path::from_actions(model, init.clone(), &actions)
            .expect("a walk's steps replay from the initial state");
        discoveries.insert(p.name, path);
    }
    Finished {
        states: outcome.totals.states as usize,
        unique: 0,
        depth: outcome.totals.depth as usize,
        discoveries,
        walks: Some(WalkReport {
            totals: outcome.totals,
            seeds: outcome.seeds,
            found: seeds,
        }),
    }
}

/// What the walks of a simulation covered, beside the checker's usual numbers.
#[derive(Clone, Debug)]
pub struct WalkReport {
    /// Walks, states, depth and walks cut short.
    pub totals: simulate::Totals,
    /// The seeds walked, as inclusive ranges.
    pub seeds: Vec<(u64, u64)>,
    /// Per property discovered: the lowest seed that discovered it and that walk's steps up to
    /// the discovery, before shrinking.
    pub found: std::collections::HashMap<&'static str, (u64, usize)>,
}

/// What a finished checker found.
struct Finished<M: Model> {
    states: usize,
    unique: usize,
    depth: usize,
    discoveries: std::collections::HashMap<&'static str, stateright::Path<M::State, M::Action>>,
    walks: Option<WalkReport>,
}

/// Prints progress once a second until the checker is done, then joins it.
fn watch<M: Model, C: Checker<M>>(opts: &ModelCheck, start: Instant, checker: C) -> Finished<M>
where
    M::State: std::hash::Hash + Clone + PartialEq,
    M::Action: Clone + PartialEq,
{
    let mut last_report = Instant::now();
    while !checker.is_done() {
        std::thread::sleep(Duration::from_millis(50));
        if opts.progress && last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            let secs = start.elapsed().as_secs_f64();
            eprintln!(
                "  {} [{}]: {} states, {} unique, depth {}, {:.0} s, {}/s",
                opts.model,
                opts.mutant.map_or("protocol", Mutant::name),
                group(checker.state_count()),
                group(checker.unique_state_count()),
                checker.max_depth(),
                secs,
                group((checker.state_count() as f64 / secs) as usize),
            );
        }
    }
    let checker = checker.join();
    Finished {
        states: checker.state_count(),
        unique: checker.unique_state_count(),
        depth: checker.max_depth(),
        discoveries: checker.discoveries(),
        walks: None,
    }
}

/// What the runner needs of a model beyond `stateright::Model`.
pub trait CheckedModel: Model {
    /// The representative of a state's symmetry class.
    fn canonical(state: &Self::State) -> Self::State;
    /// Whether an action is a fault, which seeded walks take rarely.
    fn is_fault(action: &Self::Action) -> bool;
    /// A counterexample path to `property` as trace lines.
    fn counterexample(
        &self,
        path: &stateright::Path<Self::State, Self::Action>,
        property: &str,
    ) -> Vec<Line>;
}

impl CheckedModel for QuorumModel {
    fn canonical(state: &Self::State) -> Self::State {
        symmetry::canonical(state)
    }
    fn is_fault(action: &Self::Action) -> bool {
        action.is_fault()
    }
    fn counterexample(
        &self,
        path: &stateright::Path<Self::State, Self::Action>,
        property: &str,
    ) -> Vec<Line> {
        self.trace(path, Some(property))
    }
}

/// The models that wrap [`QuorumModel`] (field `quorum`) share its symmetry and its traces.
macro_rules! wraps_quorum {
    ($($model:ty),*) => {$(
        impl CheckedModel for $model {
            fn canonical(state: &Self::State) -> Self::State {
                symmetry::canonical(state)
            }
            fn is_fault(action: &Self::Action) -> bool {
                action.is_fault()
            }
            fn counterexample(
                &self,
                path: &stateright::Path<Self::State, Self::Action>,
                property: &str,
            ) -> Vec<Line> {
                self.quorum.trace(path, Some(property))
            }
        }
    )*};
}

wraps_quorum!(GossipModel, FailoverModel);

/// The `region` model has no symmetry (its regions have roles) and no fault actions, and its
/// counterexample trace is only a header naming the property: the steps are printed, but there
/// is no runtime to replay them against yet.
impl CheckedModel for RegionModel {
    fn canonical(state: &Self::State) -> Self::State {
        state.clone()
    }
    fn is_fault(_: &Self::Action) -> bool {
        false
    }
    fn counterexample(
        &self,
        _: &stateright::Path<Self::State, Self::Action>,
        property: &str,
    ) -> Vec<Line> {
        vec![Line::Header(sixfold_model::trace::Header {
            version: sixfold_model::trace::TRACE_VERSION,
            source: "model".to_string(),
            model: "region".to_string(),
            config: self.cfg,
            actors: Vec::new(),
            violates: Some(property.to_string()),
        })]
    }
}

fn write_trace(file: &Path, lines: &[Line]) -> Result<(), CheckError> {
    let err = |source| CheckError::WriteTrace {
        path: file.to_path_buf(),
        source,
    };
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(file).map_err(err)?);
    for line in lines {
        let json = serde_json::to_string(line).expect("trace lines always serialize");
        writeln!(out, "{json}").map_err(err)?;
    }
    out.flush().map_err(err)
}

/// A counterexample as a numbered list: each step's action, then what changed.
pub fn render_path<M: Model>(model: &M, path: &stateright::Path<M::State, M::Action>) -> String
where
    M::State: fmt::Debug + Clone,
    M::Action: fmt::Debug + Clone,
{
    let mut out = String::new();
    for (i, (state, action)) in path.clone().into_vec().into_iter().enumerate() {
        let Some(action) = action else { break };
        out.push_str(&format!("{:>3}. {}\n", i + 1, model.format_action(&action)));
        if let Some(step) = model.format_step(&state, action) {
            for line in step.lines() {
                out.push_str(&format!("       {line}\n"));
            }
        }
    }
    out
}

/// 1234567 → "1,234,567".
pub fn group(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The summary tables printed at the end of `sixfold check`.
pub fn summary(reports: &[ModelReport]) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:<8} {:<25} {:<10} {:<36} {}\n",
        "model", "variant", "kind", "property", "verdict"
    ));
    for r in reports {
        for v in &r.verdicts {
            let verdict = match (v.holds, v.expectation) {
                (true, "sometimes") => "reached",
                (true, _) => "holds",
                (false, "sometimes") if !r.complete => "not reached (stopped early)",
                (false, "sometimes") => "NOT REACHED",
                (false, _) => "VIOLATED",
            };
            out.push_str(&format!(
                "{:<8} {:<25} {:<10} {:<36} {}\n",
                r.model.name(),
                r.variant(),
                v.expectation,
                v.name,
                verdict
            ));
        }
    }
    out.push('\n');
    out.push_str(&format!(
        "{:<8} {:<25} {:>12} {:>12} {:>6} {:>9} {:>12}  {}\n",
        "model", "variant", "states", "unique", "depth", "seconds", "states/s", "explored"
    ));
    for r in reports {
        out.push_str(&format!(
            "{:<8} {:<25} {:>12} {:>12} {:>6} {:>9.2} {:>12}  {}\n",
            r.model.name(),
            r.variant(),
            group(r.states),
            group(r.unique),
            r.depth,
            r.elapsed.as_secs_f64(),
            group(r.rate() as usize),
            match (&r.walks, r.complete) {
                (Some(w), _) => format!(
                    "{} seeded walks (not a proof)",
                    group(w.totals.walks as usize)
                ),
                (None, true) => "all".to_string(),
                (None, false) => "until counterexample".to_string(),
            }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_runs_stop_at_the_first_violated_invariant_unless_continued() {
        let mut opts = ModelCheck::new(ModelKind::Failover, None);
        assert!(matches!(
            opts.stop_rule(),
            Some(HasDiscoveries::AnyFailures)
        ));
        opts.explore_on = true;
        assert!(opts.stop_rule().is_none());
        let m = ModelCheck::new(ModelKind::Failover, Some(Mutant::NoFencing));
        let Some(HasDiscoveries::AnyOf(names)) = m.stop_rule() else {
            panic!("a mutant stops at the property it must break");
        };
        assert_eq!(names.into_iter().collect::<Vec<_>>(), ["no stale commit"]);
    }
}
