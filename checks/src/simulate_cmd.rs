//! `sixfold simulate`: seeded random walks at deep bounds, every property judged on every state.
//!
//! The walks themselves are [`crate::simulate`]'s; this is the command line around them: the
//! seeds (`--seed`, `--seeds A..B`, `--seconds`), the model's deep bounds by default
//! ([`ModelKind::walk_bounds`]), progress, the verdict table, shrunk counterexamples written as
//! NDJSON traces (replayable with `sixfold replay`), and `--json`/`--merge` so that disjoint seed
//! ranges run anywhere (a shell loop, a CI matrix, a batch scheduler) combine into one verdict.

use crate::check_cmd::{BoundArgs, BoundsShown};
use crate::runner::{self, group, CheckError, ModelCheck, ModelKind, ModelReport, Strategy};
use crate::simulate::{Summary, SummaryProperty};
use clap::Args;
use sixfold_model::check::region::RegionBounds;
use sixfold_model::protocol::config::Mutant;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// `sixfold simulate`: walk a model's seeds at deep bounds.
#[derive(Args, Debug)]
#[command(
    after_help = "Unset bounds take the model's deep walk bounds, not `check`'s defaults: \
quorum 12 writes, 3 reads, 4 crash-restarts, 3 disk losses; gossip 12 writes, 3 lost Appends; \
failover 12 writes (2 in flight), 3 promotions, gossip, 2 reads, 2 crash-restarts, 3 disk \
losses. With walks --writes goes up to 16 and --crashes up to 16; --deep does not apply."
)]
pub struct SimulateArgs {
    /// The model to walk: quorum, gossip or failover (not needed with --merge).
    #[arg(required_unless_present = "merge")]
    pub model: Option<String>,
    #[command(flatten)]
    pub bounds: BoundArgs,
    /// Walk for this long [default: 10, unless --seeds closes the range].
    #[arg(long, value_name = "S")]
    pub seconds: Option<f64>,
    /// The first seed; seeds after it follow in order [default: 1].
    #[arg(long, conflicts_with = "seeds")]
    pub seed: Option<u64>,
    /// An inclusive range of seeds, `A..B`: every one is walked (unless --seconds runs out).
    #[arg(long, value_name = "A..B", value_parser = parse_seeds)]
    pub seeds: Option<(u64, u64)>,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Walk every seed even after a violation (by default no seed above the first violating
    /// one is started).
    #[arg(long = "continue")]
    pub explore_on: bool,
    /// Directory shrunk counterexample traces are written to.
    #[arg(long, default_value = "counterexamples", value_name = "DIR")]
    pub out: PathBuf,
    /// Also write the run's summary (seeds, counts, verdicts) as JSON, for --merge.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Merge the summaries of disjoint seed ranges of one model and print one verdict.
    #[arg(long, value_name = "FILE", num_args = 1.., conflicts_with_all = ["model", "seeds", "seed", "seconds"])]
    pub merge: Vec<PathBuf>,
    /// Don't print progress while walking.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `A..B` (inclusive; `A..=B` is accepted too) as a pair.
fn parse_seeds(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("'{s}' is not a seed range: write A..B, e.g. 1..500"))?;
    let b = b.strip_prefix('=').unwrap_or(b);
    let num = |x: &str| {
        x.trim()
            .parse::<u64>()
            .map_err(|_| format!("'{x}' in '{s}' is not a seed (a whole number)"))
    };
    let (a, b) = (num(a)?, num(b)?);
    if a > b {
        return Err(format!(
            "seed range {a}..{b} is empty: the first seed is above the last"
        ));
    }
    Ok((a, b))
}

/// The run `args` ask for.
fn options(args: &SimulateArgs, model: ModelKind) -> Result<ModelCheck, CheckError> {
    if args.bounds.deep {
        return Err(CheckError::DeepWalks);
    }
    let mut opts = ModelCheck::new(model, args.bounds.mutant);
    opts.bounds = args
        .bounds
        .bounds_over(model.walk_bounds(args.bounds.mutant))?;
    opts.region = args
        .bounds
        .region_bounds_over(RegionBounds::walk(args.bounds.mutant))?;
    opts.lal = args.bounds.lal;
    opts.geometry = args.bounds.geometry;
    opts.strategy = Strategy::Simulation;
    opts.symmetry = false;
    opts.threads = args.threads;
    opts.out_dir = args.out.clone();
    opts.progress = !args.quiet;
    opts.explore_on = args.explore_on;
    let (first, last) = match (args.seeds, args.seed) {
        (Some((a, b)), _) => (a, Some(b)),
        (None, seed) => (seed.unwrap_or(1), None),
    };
    let seconds = match (args.seconds, last) {
        (Some(s), _) => Some(s),
        (None, None) => Some(10.0),
        (None, Some(_)) => None,
    };
    if let Some(s) = seconds {
        if !(s.is_finite() && s > 0.0) {
            return Err(CheckError::BadSeconds(s));
        }
    }
    opts.plan.first = first;
    opts.plan.last = last;
    opts.plan.time = seconds.map(Duration::from_secs_f64);
    opts.plan.states = None;
    opts.plan.stop_at_violation = !args.explore_on;
    opts.validate()?;
    Ok(opts)
}

/// The run's result as a [`Summary`].
fn summary_of(opts: &ModelCheck, report: &ModelReport) -> Summary {
    let walks = report
        .walks
        .as_ref()
        .expect("a simulation reports its walks");
    Summary {
        model: opts.model.name().to_string(),
        variant: report.variant().to_string(),
        bounds: format!("{}, lal {}", BoundsShown(opts), opts.config().lal),
        seeds: walks.seeds.clone(),
        totals: walks.totals,
        seconds: report.elapsed.as_secs_f64(),
        properties: report
            .verdicts
            .iter()
            .map(|v| SummaryProperty {
                name: v.name.to_string(),
                kind: v.expectation.to_string(),
                seed: walks.found.get(v.name).map(|&(seed, _)| seed),
            })
            .collect(),
    }
}

/// Prints a summary's verdicts and counts.
fn print_summary(s: &Summary) {
    println!("\n{} [{}], seeds {}", s.model, s.variant, s.seed_ranges());
    print!("{}", s.table());
    let rate = |n: u64| group((n as f64 / s.seconds.max(1e-9)) as usize);
    println!(
        "{} walks, {} states, depth {}, {:.1} s, {} walks/s, {} states/s{}",
        group(s.totals.walks as usize),
        group(s.totals.states as usize),
        s.totals.depth,
        s.seconds,
        rate(s.totals.walks),
        rate(s.totals.states),
        match s.totals.cut {
            0 => String::new(),
            n => format!(" ({n} walks cut at {} steps)", crate::simulate::MAX_DEPTH),
        }
    );
}

/// Whether a summary passes: every `always` holds (a mutant: its property is violated).
fn passed(s: &Summary) -> bool {
    s.properties
        .iter()
        .all(|p| p.kind != "always" || p.seed.is_none())
}

/// Run `sixfold simulate`. Exit 0 when no `always` property is violated, 1 when one is, 2 on
/// bad input.
pub fn run(args: &SimulateArgs) -> ExitCode {
    if !args.merge.is_empty() {
        return merge(&args.merge);
    }
    let model = args
        .model
        .as_deref()
        .expect("clap requires a model without --merge");
    let opts = match model.parse().and_then(|m| options(args, m)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("sixfold simulate: {e}");
            return ExitCode::from(2);
        }
    };
    eprintln!(
        "walking {} [{}] on {} thread(s) from seed {}: {}, lal {}",
        opts.model,
        opts.mutant.map_or("protocol", Mutant::name),
        opts.threads,
        opts.plan.first,
        BoundsShown(&opts),
        opts.config().lal
    );
    let report = match runner::run(&opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sixfold simulate: {e}");
            return ExitCode::from(2);
        }
    };
    let walks = report
        .walks
        .as_ref()
        .expect("a simulation reports its walks");
    for v in &report.verdicts {
        if let (Some(text), Some(file)) = (&v.rendered, &v.trace) {
            let (seed, unshrunk) = walks.found[v.name];
            println!(
                "\n{} [{}]: property \"{}\" is VIOLATED by the walk of seed {seed}. Shrunk \
                 from {unshrunk} to {} steps:\n{text}",
                report.model,
                report.variant(),
                v.name,
                v.steps,
            );
            println!(
                "counterexample trace written to {} (check it: sixfold replay {})",
                file.display(),
                file.display()
            );
        }
    }
    let summary = summary_of(&opts, &report);
    print_summary(&summary);
    if let Some(file) = &args.json {
        let json = serde_json::to_string_pretty(&summary).expect("a summary serializes");
        if let Err(e) = std::fs::write(file, json + "\n") {
            eprintln!("sixfold simulate: cannot write {}: {e}", file.display());
            return ExitCode::from(2);
        }
    }
    if passed(&summary) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `--merge`: read each summary, merge them, print the one verdict.
fn merge(files: &[PathBuf]) -> ExitCode {
    let mut parts = Vec::new();
    for file in files {
        let parsed = std::fs::read_to_string(file)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str::<Summary>(&text).map_err(|e| e.to_string()));
        match parsed {
            Ok(s) => parts.push(s),
            Err(e) => {
                eprintln!(
                    "sixfold simulate: {} is not a simulation summary (written by --json): {e}",
                    file.display()
                );
                return ExitCode::from(2);
            }
        }
    }
    match Summary::merge(&parts) {
        Ok(s) => {
            print_summary(&s);
            if passed(&s) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("sixfold simulate: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_ranges_parse_inclusively_and_bad_ones_say_why() {
        assert_eq!(parse_seeds("1..500"), Ok((1, 500)));
        assert_eq!(parse_seeds("7..=7"), Ok((7, 7)));
        assert!(parse_seeds("9..3").unwrap_err().contains("empty"));
        assert!(parse_seeds("x..3").unwrap_err().contains("not a seed"));
        assert!(parse_seeds("12").unwrap_err().contains("A..B"));
    }
}
