//! The `sixfold check` and `sixfold explore` commands: flags, validation and output.

use crate::runner::{self, CheckError, ModelCheck, ModelKind, ModelReport, Strategy};
use clap::Args;
use sixfold_model::check::failover::FailoverModel;
use sixfold_model::check::gossip::GossipModel;
use sixfold_model::check::quorum::{Bounds, QuorumModel};
use sixfold_model::check::region::{RegionBounds, RegionModel};
use sixfold_model::protocol::config::{Geometry, Mutant};
use sixfold_model::protocol::region::Consistency;
use stateright::{Checker, HasDiscoveries};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;

/// Bounds shared by `check` and `explore`; unset ones take the model's defaults.
#[derive(Args, Debug, Clone)]
pub struct BoundArgs {
    /// Writes the app client issues, one after another, each followed by a read
    /// [default: 1, or 2 with --deep; 1..=6].
    #[arg(long)]
    pub writes: Option<u64>,
    /// Reads a second client issues concurrently with the writes [default: 1; 0..=3].
    #[arg(long)]
    pub reads: Option<u64>,
    /// Segment crash-restarts [default: 1; 0..=4].
    #[arg(long)]
    pub crashes: Option<u64>,
    /// Permanent segment disk losses [default: 1; 0..=3, the AZ+1 budget].
    #[arg(long)]
    pub losses: Option<u64>,
    /// Let the network lose messages too (by default it delays and reorders them).
    #[arg(long)]
    pub lossy: bool,
    /// Let timers fire spuriously, not only when a peer is really gone.
    #[arg(long)]
    pub spurious_timeouts: bool,
    /// Let segments repair gaps by gossip in the `failover` model (the `gossip` model always
    /// does).
    #[arg(long)]
    pub gossip: bool,
    /// Writer promotions in the `failover` model, one after another, each leaving the old
    /// writer alive as a zombie [default: 1; 1..=3].
    #[arg(long)]
    pub failovers: Option<u64>,
    /// Writes the app client may have outstanding at once [default: 1; 1..=4].
    #[arg(long)]
    pub inflight: Option<u64>,
    /// How far the writer may allocate LSNs ahead of VDL, and the width of a recovery's
    /// truncation [default: 8; 1..=64].
    #[arg(long)]
    pub lal: Option<u64>,
    /// Six full segments, or three full and three tail ones (writes 4/6 or 3/3 full, reads
    /// 3/6 with a full one) [default: six; full-tail for `read-ignores-full`].
    #[arg(long, value_name = "six|full-tail")]
    pub geometry: Option<Geometry>,
    /// A deliberately broken protocol variant (see `sixfold mutants`).
    #[arg(long, value_name = "NAME")]
    pub mutant: Option<Mutant>,
    /// Larger preset bounds (2 writes); explicit bounds still override it.
    #[arg(long)]
    pub deep: bool,
    /// Regions in the `region` model, the first one the primary [default: 2; 2..=3].
    #[arg(long)]
    pub regions: Option<u64>,
    /// Switchovers and failovers in the `region` model, each at any moment [default: 1; 0..=3].
    #[arg(long)]
    pub promotions: Option<u64>,
    /// Managed RPO in the `region` model: commits block while every secondary lags by more than
    /// K records [default: none; 1 for `rpo-ignored`; 0..=8].
    #[arg(long, value_name = "K")]
    pub rpo: Option<u64>,
    /// Read consistency of the `region` model's write-forwarding session [default: session].
    #[arg(long, value_name = "eventual|session|global")]
    pub consistency: Option<Consistency>,
}

impl BoundArgs {
    fn bounds(&self, model: ModelKind) -> Result<Bounds, CheckError> {
        self.bounds_over(model.default_bounds(self.deep, self.mutant))
    }

    /// The `region` model's bounds asked for, each unset one taken from the mutant's defaults.
    fn region_bounds(&self) -> Result<RegionBounds, CheckError> {
        self.region_bounds_over(RegionBounds::for_mutant(self.mutant))
    }

    /// The `region` model's bounds asked for (`--writes` and `--reads` are read too), each unset
    /// one taken from `d`.
    pub(crate) fn region_bounds_over(&self, d: RegionBounds) -> Result<RegionBounds, CheckError> {
        let narrow = |name: &'static str, v: Option<u64>, default: u8| -> Result<u8, CheckError> {
            v.map_or(Ok(default), |v| {
                u8::try_from(v).map_err(|_| CheckError::BadBound {
                    name,
                    value: v,
                    min: 0,
                    max: u8::MAX.into(),
                    why: "",
                })
            })
        };
        let rpo = match self.rpo {
            None => d.rpo,
            Some(k) => Some(narrow("rpo", Some(k), 0)?),
        };
        Ok(RegionBounds {
            regions: narrow("regions", self.regions, d.regions)?,
            writes: narrow("writes", self.writes, d.writes)?,
            reads: narrow("reads", self.reads, d.reads)?,
            promotions: narrow("promotions", self.promotions, d.promotions)?,
            rpo,
            consistency: self.consistency.unwrap_or(d.consistency),
        })
    }

    /// The bounds asked for, each unset one taken from `d`.
    pub(crate) fn bounds_over(&self, d: Bounds) -> Result<Bounds, CheckError> {
        let narrow = |name: &'static str, v: Option<u64>, default: u8| -> Result<u8, CheckError> {
            match v {
                None => Ok(default),
                Some(v) => u8::try_from(v).map_err(|_| CheckError::BadBound {
                    name,
                    value: v,
                    min: 0,
                    max: u8::MAX.into(),
                    why: "",
                }),
            }
        };
        Ok(Bounds {
            writes: narrow("writes", self.writes, d.writes)?,
            reads: narrow("reads", self.reads, d.reads)?,
            crashes: narrow("crashes", self.crashes, d.crashes)?,
            losses: narrow("losses", self.losses, d.losses)?,
            lossy: self.lossy,
            spurious_timeouts: self.spurious_timeouts,
            gossip: self.gossip || d.gossip,
            failovers: narrow("failovers", self.failovers, d.failovers)?,
            inflight: narrow("inflight", self.inflight, d.inflight)?,
        })
    }
}

/// `sixfold check`: explore models exhaustively and report each property's verdict.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The model to check, or `all`.
    #[arg(default_value = "all")]
    pub model: String,
    #[command(flatten)]
    pub bounds: BoundArgs,
    /// Checker threads [default: 2, or 1 with --bfs so counterexamples are shortest].
    #[arg(long)]
    pub threads: Option<u64>,
    /// Breadth-first search: shortest counterexamples (the default with --mutant).
    #[arg(long, conflicts_with = "dfs")]
    pub bfs: bool,
    /// Depth-first search: less memory, symmetry reduction (the default without --mutant).
    #[arg(long)]
    pub dfs: bool,
    /// Seeded random walks instead of an exhaustive search (not a proof: it looks for a
    /// counterexample deeper than exhaustive search reaches, up to 20 M states).
    #[arg(long, conflicts_with_all = ["dfs", "bfs"])]
    pub simulate: bool,
    /// The seed of the simulation's walks: one seed names one run [default: 1].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Symmetry reduction over interchangeable segments (DFS only; on by default with DFS).
    #[arg(long, conflicts_with = "no_symmetry")]
    pub symmetry: bool,
    /// Turn symmetry reduction off.
    #[arg(long)]
    pub no_symmetry: bool,
    /// Directory counterexample traces are written to.
    #[arg(long, default_value = "counterexamples", value_name = "DIR")]
    pub out: PathBuf,
    /// Don't print progress while running.
    #[arg(long, short)]
    pub quiet: bool,
    /// Explore on after an `always` property fails (by default a model stops at its first
    /// violated invariant and prints the counterexample, as TLC does).
    #[arg(long = "continue")]
    pub explore_on: bool,
    /// Also draw each counterexample as a web page (see `sixfold show`), next to its trace.
    #[arg(long)]
    pub html: bool,
}

fn models(name: &str) -> Result<Vec<ModelKind>, CheckError> {
    if name == "all" {
        Ok(ModelKind::ALL.to_vec())
    } else {
        Ok(vec![name.parse()?])
    }
}

fn options(args: &CheckArgs, model: ModelKind) -> Result<ModelCheck, CheckError> {
    let mut opts = ModelCheck::new(model, args.bounds.mutant);
    opts.bounds = args.bounds.bounds(model)?;
    opts.region = args.bounds.region_bounds()?;
    opts.lal = args.bounds.lal;
    opts.geometry = args.bounds.geometry;
    if args.bfs {
        opts.strategy = Strategy::Bfs;
        opts.symmetry = false;
        opts.threads = 1;
    }
    if args.dfs {
        opts.strategy = Strategy::Dfs;
        opts.symmetry = model != ModelKind::Region;
        opts.threads = 2;
    }
    if let Some(seed) = args.seed {
        opts.plan.first = seed;
    }
    if args.simulate {
        opts.strategy = Strategy::Simulation;
        opts.symmetry = false;
        opts.threads = 1;
    }
    if args.symmetry {
        opts.symmetry = true;
    }
    if args.no_symmetry {
        opts.symmetry = false;
    }
    if let Some(t) = args.threads {
        opts.threads = usize::try_from(t).unwrap_or(usize::MAX);
    }
    opts.out_dir = args.out.clone();
    opts.progress = !args.quiet;
    opts.explore_on = args.explore_on;
    opts.plan.stop_at_violation = !args.explore_on;
    opts.validate()?;
    Ok(opts)
}

/// Run `sixfold check`. Exit 0 when every property holds, 1 when one does not, 2 on bad input.
pub fn run_check(args: &CheckArgs) -> ExitCode {
    let plan: Result<Vec<ModelCheck>, CheckError> = models(&args.model).and_then(|ms| {
        let ms: Vec<ModelKind> = match args.bounds.mutant {
            // `all` with a mutant: the models that define it.
            Some(m) if args.model == "all" => ms
                .into_iter()
                .filter(|k| k.expected_failure(m).is_some())
                .collect(),
            _ => ms,
        };
        ms.into_iter().map(|m| options(args, m)).collect()
    });
    let plan = match plan {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sixfold check: {e}");
            return ExitCode::from(2);
        }
    };
    let mut reports: Vec<ModelReport> = Vec::new();
    for opts in &plan {
        eprintln!(
            "checking {} [{}] with {:?}, {}{} thread(s): {}",
            opts.model,
            opts.mutant.map_or("protocol", Mutant::name),
            opts.strategy,
            if opts.symmetry { "symmetry, " } else { "" },
            opts.threads,
            BoundsShown(opts)
        );
        match runner::run(opts) {
            Ok(report) => {
                for v in &report.verdicts {
                    if let (Some(text), Some(file)) = (&v.rendered, &v.trace) {
                        println!(
                            "\n{} [{}]: property \"{}\" is VIOLATED. Counterexample ({} steps):\n{}",
                            report.model,
                            report.variant(),
                            v.name,
                            v.steps,
                            text
                        );
                        println!("counterexample trace written to {}", file.display());
                        if args.html {
                            crate::show::page_beside(file);
                        }
                    }
                }
                reports.push(report);
            }
            Err(e) => {
                eprintln!("sixfold check: {e}");
                return ExitCode::from(2);
            }
        }
    }
    println!("\n{}", runner::summary(&reports));
    if reports.iter().all(ModelReport::passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The bounds a run explores, as printed before it starts: the region model's own, or the
/// others' shared ones.
pub(crate) struct BoundsShown<'a>(pub(crate) &'a ModelCheck);

impl std::fmt::Display for BoundsShown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.model {
            ModelKind::Region => write!(f, "{:?}", self.0.region),
            _ => write!(f, "{:?}", self.0.bounds),
        }
    }
}

/// `sixfold explore`: serve Stateright's explorer on a model.
#[derive(Args, Debug)]
pub struct ExploreArgs {
    /// The model to explore.
    pub model: String,
    #[command(flatten)]
    pub bounds: BoundArgs,
    /// Port on 127.0.0.1 to serve on.
    #[arg(long, default_value_t = 3000)]
    pub port: u16,
}

/// Run `sixfold explore`: find the mutant's counterexample first (so its link can be printed),
/// then serve the explorer until interrupted.
pub fn run_explore(args: &ExploreArgs) -> ExitCode {
    let model = match args.model.parse::<ModelKind>() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("sixfold explore: {e}");
            return ExitCode::from(2);
        }
    };
    let mut opts = ModelCheck::new(model, args.bounds.mutant);
    match args.bounds.bounds(model) {
        Ok(b) => {
            (opts.bounds, opts.lal, opts.geometry) = (b, args.bounds.lal, args.bounds.geometry)
        }
        Err(e) => {
            eprintln!("sixfold explore: {e}");
            return ExitCode::from(2);
        }
    }
    match args.bounds.region_bounds() {
        Ok(b) => opts.region = b,
        Err(e) => {
            eprintln!("sixfold explore: {e}");
            return ExitCode::from(2);
        }
    }
    if let Err(e) = opts.validate() {
        eprintln!("sixfold explore: {e}");
        return ExitCode::from(2);
    }
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    if let Err(e) = TcpListener::bind(addr) {
        eprintln!("sixfold explore: cannot listen on {addr}: {e}; pick another --port");
        return ExitCode::from(2);
    }
    let cfg = opts.config();
    match model {
        ModelKind::Quorum => serve(QuorumModel::new(cfg, opts.bounds), model, &opts, addr),
        ModelKind::Gossip => serve(
            GossipModel::from_bounds(cfg, &opts.bounds),
            model,
            &opts,
            addr,
        ),
        ModelKind::Failover => serve(FailoverModel::new(cfg, opts.bounds), model, &opts, addr),
        ModelKind::Region => serve(RegionModel::new(cfg, opts.region), model, &opts, addr),
    }
}

/// Serves the explorer for `m`, after printing the link to the mutant's counterexample if any.
fn serve<M>(m: M, model: ModelKind, opts: &ModelCheck, addr: SocketAddr) -> ExitCode
where
    M: stateright::Model + runner::CheckedModel + Send + Sync + Clone + 'static,
    M::State: std::fmt::Debug + std::hash::Hash + Send + Sync + Clone + PartialEq + 'static,
    M::Action: std::fmt::Debug + Send + Sync + Clone + PartialEq + 'static,
{
    println!("explorer: http://{addr}/");
    if let Some(mutant) = opts.mutant {
        let property = model.expected_failure(mutant).unwrap_or("durability");
        let builder = m
            .clone()
            .checker()
            .finish_when(HasDiscoveries::AnyOf([property].into()));
        let found = match model.mutant_strategy(mutant) {
            Strategy::Bfs => builder.spawn_bfs().join().discovery(property),
            // The explorer cannot replay a walk's discoveries: search exhaustively instead.
            Strategy::Simulation => builder.spawn_dfs().join().discovery(property),
            Strategy::Dfs => builder
                .symmetry_fn(M::canonical)
                .spawn_dfs()
                .join()
                .discovery(property),
        };
        match found {
            Some(path) => {
                println!(
                    "counterexample to \"{property}\" ({} steps): http://{addr}/#/steps/{}",
                    path.clone().into_actions().len(),
                    path.encode(&m)
                );
                println!("{EXPLORER_NOTE}");
                let trace = std::env::temp_dir().join(format!(
                    "sixfold-explore-{}-{}.ndjson",
                    model.name(),
                    mutant.name()
                ));
                let lines = m.counterexample(&path, property);
                match crate::show::write_trace_and_page(&lines, &trace) {
                    Ok(page) => println!(
                        "the same path drawn as a page, \"{property}\" marked where it breaks: {}",
                        page.display()
                    ),
                    Err(e) => eprintln!("sixfold explore: no page for the counterexample: {e}"),
                }
            }
            None => println!("no counterexample to \"{property}\" within these bounds"),
        }
    }
    println!("serving until interrupted (Ctrl-C)");
    stateright::Model::checker(Named::new(m)).serve(addr);
    ExitCode::SUCCESS
}

/// What the explorer link shows, and why its properties read "Searching" there.
const EXPLORER_NOTE: &str = "  The link opens on the violating state: the last step of its \
\"Path of Actions\", whose outcome (under the sequence diagram) ends VIOLATES \"<property>\" \
here. Stateright's explorer judges its Properties list only on states its own checker has \
explored, so they read \"Searching\" until you press \"Run to completion\" (which explores the \
whole model).";

/// A model as the explorer shows it: the model itself, with the lanes of its sequence diagram
/// named as everywhere else (`seg3/az1`, `writer2`, `client0`) instead of Stateright's
/// `3 segment`. Its properties are the model's, through `conditions` (a Stateright property is a
/// plain `fn`, so each wrapped one reads its own slot: [`named_condition`]).
#[derive(Clone)]
struct Named<M: stateright::Model> {
    inner: M,
    conditions: Vec<fn(&M, &M::State) -> bool>,
}

impl<M: stateright::Model> Named<M> {
    fn new(inner: M) -> Self {
        let conditions = inner.properties().iter().map(|p| p.condition).collect();
        Named { inner, conditions }
    }
}

/// Property `I` of the wrapped model.
fn named_condition<M: stateright::Model, const I: usize>(n: &Named<M>, s: &M::State) -> bool {
    (n.conditions[I])(&n.inner, s)
}

impl<M: stateright::Model> Named<M>
where
    M::Action: Clone,
{
    /// The invariants the state after `action` violates, one line each (empty if none): the
    /// explorer shows it under the step, so the violating state says what it violates even
    /// while the explorer's own checker has not judged it.
    fn broken_by(&self, last: &M::State, action: M::Action) -> String {
        let Some(next) = self.inner.next_state(last, action) else {
            return String::new();
        };
        self.inner
            .properties()
            .iter()
            .filter(|p| p.expectation == stateright::Expectation::Always)
            .filter(|p| !(p.condition)(&self.inner, &next))
            .map(|p| format!("VIOLATES \"{}\" here", p.name))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl<M: stateright::Model> stateright::Model for Named<M>
where
    M::Action: Clone,
{
    type State = M::State;
    type Action = M::Action;

    fn init_states(&self) -> Vec<M::State> {
        self.inner.init_states()
    }
    fn actions(&self, state: &M::State, actions: &mut Vec<M::Action>) {
        self.inner.actions(state, actions)
    }
    fn next_state(&self, last: &M::State, action: M::Action) -> Option<M::State> {
        self.inner.next_state(last, action)
    }
    fn format_action(&self, action: &M::Action) -> String
    where
        M::Action: std::fmt::Debug,
    {
        self.inner.format_action(action)
    }
    fn format_step(&self, last: &M::State, action: M::Action) -> Option<String>
    where
        M::State: std::fmt::Debug,
    {
        let outcome = self.inner.format_step(last, action.clone());
        let broken = self.broken_by(last, action);
        match (outcome, broken.is_empty()) {
            (outcome, true) => outcome,
            (outcome, false) => Some(format!(
                "{}\n{broken}",
                outcome.unwrap_or_default().trim_end()
            )),
        }
    }
    fn as_svg(&self, path: stateright::Path<M::State, M::Action>) -> Option<String> {
        self.inner.as_svg(path).map(|svg| name_lanes(&svg))
    }
    fn within_boundary(&self, state: &M::State) -> bool {
        self.inner.within_boundary(state)
    }
    fn properties(&self) -> Vec<stateright::Property<Self>> {
        let conditions: [fn(&Self, &M::State) -> bool; 8] = [
            named_condition::<M, 0>,
            named_condition::<M, 1>,
            named_condition::<M, 2>,
            named_condition::<M, 3>,
            named_condition::<M, 4>,
            named_condition::<M, 5>,
            named_condition::<M, 6>,
            named_condition::<M, 7>,
        ];
        assert!(
            self.conditions.len() <= conditions.len(),
            "at most 8 properties"
        );
        self.inner
            .properties()
            .into_iter()
            .zip(conditions)
            .map(|(p, condition)| stateright::Property {
                expectation: p.expectation,
                name: p.name,
                condition,
            })
            .collect()
    }
}

/// Renames the lane labels of Stateright's sequence diagram (`<text class='svg-actor-label'>3
/// segment</text>`) with [`Topology::name`], the layout read off the labels themselves.
fn name_lanes(svg: &str) -> String {
    const LABEL: &str = "class='svg-actor-label'>";
    let labels: Vec<(usize, &str)> = svg
        .split(LABEL)
        .skip(1)
        .filter_map(|rest| {
            let (id, role) = rest.split('<').next()?.split_once(' ')?;
            Some((id.parse().ok()?, role))
        })
        .collect();
    let count = |role: &str| labels.iter().filter(|(_, r)| *r == role).count();
    let topology = sixfold_model::protocol::topology::Topology {
        writers: count("writer") as sixfold_model::protocol::msg::Epoch,
        clients: count("client"),
    };
    let mut out = svg.to_string();
    for (id, role) in &labels {
        out = out.replace(
            &format!("{LABEL}{id} {role}<"),
            &format!("{LABEL}{}<", topology.name(*id)),
        );
    }
    out
}

/// `sixfold mutants`: list the mutants and the property each must break.
pub fn run_mutants() -> ExitCode {
    println!(
        "{:<26} {:<9} {:<27} what it breaks",
        "mutant", "model", "caught by"
    );
    for model in ModelKind::ALL {
        for (m, prop) in model.mutants() {
            println!(
                "{:<26} {:<9} {:<27} {}",
                m.name(),
                model.name(),
                prop,
                m.describe()
            );
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explorer_lanes_are_named_like_everywhere_else() {
        let label = |text: &str| format!("<text x='0' y='0' class='svg-actor-label'>{text}</text>");
        let svg: String = ["0 segment", "3 segment", "6 writer", "7 writer", "8 client"]
            .map(label)
            .concat();
        let named = name_lanes(&svg);
        for name in ["seg0/az0", "seg3/az1", "writer", "writer2", "client0"] {
            assert!(named.contains(&label(name)), "{name} missing in {named}");
        }
        assert!(!named.contains("segment"), "{named}");
    }
}
