//! `sixfold campaign --dir D --seed S --faults N [--seconds T]`: a seeded fault campaign against
//! real clusters.
//!
//! The faults [`sixfold_impl::schedule::schedule`] draws from the seed are injected in rounds
//! ([`round`]): each round starts `sixfold cluster` in `D/round-R` (recording its trace), runs a
//! load that records its history ([`workload`]), and injects its share of the faults one at a
//! time ([`inject`]): each is carried out, healed (stopped members restarted), and the campaign
//! waits until the cluster serves again and every segment holds what was acknowledged before it
//! goes on. At the end of a round it stops everything and checks ([`verdict`]) that every
//! acknowledged write reads back, that the history is linearizable, that the merged trace replays
//! against the model, that no process panicked, and that every bad frame and bad tail was
//! refused. It prints a line per fault, the table of faults by kind over all rounds, and the
//! verdicts; exit 0 only if all hold, 1 if one does not (with the seed and the fault that
//! preceded the failure; that round's history, trace and member logs stay in its directory, and
//! the campaign stops there), 2 if a cluster could not start.
//!
//! Why rounds: a segment's every save is recorded whole in the trace (the model's saved `Log`),
//! so a trace grows with the square of a cluster's life; a fresh cluster every `--round` faults
//! keeps each trace to a size replay checks in seconds.

mod disk;
mod inject;
mod processes;
mod round;
mod verdict;
mod workload;

use clap::Args;
use round::Round;
use sixfold_impl::schedule::{schedule, Fault};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use verdict::{Check, Done};

/// Storage segments of a cluster.
const SEGMENTS: usize = sixfold_impl::schedule::SEGMENTS;

/// `sixfold campaign`.
#[derive(Args, Debug, Clone)]
pub struct CampaignArgs {
    /// Directory for the rounds' clusters, histories, traces and logs (emptied first).
    #[arg(long)]
    pub dir: PathBuf,
    /// The seed: the same seed gives the same schedule of faults.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How many faults to inject.
    #[arg(long, default_value_t = 1000)]
    pub faults: usize,
    /// Start at this fault of the seed's schedule (to rerun the faults around a failure:
    /// `--first K --faults 2` runs faults K and K + 1).
    #[arg(long, default_value_t = 0)]
    pub first: usize,
    /// Stop drawing faults after this many seconds, even if fewer than --faults were injected
    /// (the summary says how many were).
    #[arg(long)]
    pub seconds: Option<u64>,
    /// Faults per round: each round is a fresh cluster with its own load, history and trace,
    /// checked when the round ends.
    #[arg(long, default_value_t = 25)]
    pub round: usize,
    /// Concurrent load clients.
    #[arg(long, default_value_t = 3)]
    pub clients: usize,
    /// Keys the load writes and reads.
    #[arg(long, default_value_t = 6)]
    pub keys: u32,
    /// Run a deliberately broken protocol variant (see `sixfold mutants`): the checks should
    /// then fail.
    #[arg(long, value_name = "NAME")]
    pub mutant: Option<sixfold_model::protocol::config::Mutant>,
    /// Print the schedule and exit, without starting a cluster.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs `sixfold campaign`.
pub fn run(args: &CampaignArgs) -> ExitCode {
    let numbered: Vec<(usize, Fault)> = schedule(args.seed, args.first + args.faults)
        .into_iter()
        .enumerate()
        .skip(args.first)
        .collect();
    if args.dry_run {
        for (n, f) in &numbered {
            println!("#{n:<4} {:<24} {f}", f.kind().name());
        }
        return ExitCode::SUCCESS;
    }
    let _ = std::fs::remove_dir_all(&args.dir);
    println!(
        "campaign seed {} in {}: {} faults in rounds of {}, {} clients on {} keys",
        args.seed,
        args.dir.display(),
        numbered.len(),
        args.round.max(1),
        args.clients,
        args.keys
    );
    let t0 = Instant::now();
    let budget = args.seconds.map(Duration::from_secs);
    let mut rounds = Vec::new();
    for (r, chunk) in numbered.chunks(args.round.max(1)).enumerate() {
        let left = budget.map(|b| b.saturating_sub(t0.elapsed()));
        if left.is_some_and(|l| l.is_zero()) {
            break;
        }
        match round::run(args, r, chunk, left) {
            Ok(round) => {
                let failed = !round.passed();
                rounds.push(round);
                if failed {
                    break;
                }
            }
            Err(e) => {
                eprintln!("sixfold campaign: round {r}: cannot start the cluster: {e}");
                return ExitCode::from(2);
            }
        }
    }
    report(args, numbered.len(), &rounds, t0.elapsed())
}

/// Prints the table and the verdicts over every round; the exit status.
fn report(args: &CampaignArgs, scheduled: usize, rounds: &[Round], elapsed: Duration) -> ExitCode {
    let done: Vec<&Done> = rounds.iter().flat_map(|r| &r.done).collect();
    println!(
        "\n{} of {} faults injected and healed in {:.1} s, {} round(s) (seed {})\n",
        done.len(),
        scheduled,
        elapsed.as_secs_f64(),
        rounds.len(),
        args.seed
    );
    print!("{}", verdict::table(&done));
    println!();
    let mut ok = true;
    for r in rounds {
        if let Some(s) = &r.stuck {
            println!("FAIL  every fault heals: {s}");
            ok = false;
        }
    }
    let checks: Vec<&Check> = rounds.iter().flat_map(|r| &r.checks).collect();
    let kinds: BTreeSet<&str> = checks.iter().map(|c| c.what).collect();
    for what in kinds {
        let these: Vec<&Check> = checks.iter().copied().filter(|c| c.what == what).collect();
        match these.iter().find(|c| !c.ok) {
            None => println!("ok    {what}: {}", verdict::summed(&these)),
            Some(c) => {
                println!("FAIL  {what}: {}", c.detail);
                ok = false;
            }
        }
    }
    if ok {
        println!("\nverdict: PASS");
        ExitCode::SUCCESS
    } else {
        let kept = rounds.last().map_or(args.dir.clone(), |r| r.dir.clone());
        println!(
            "\nverdict: FAIL (seed {}; history, trace and logs kept in {})",
            args.seed,
            kept.display()
        );
        if let Some(r) = rounds.last() {
            let from = r.done.first().map_or(args.first, |d| d.n);
            let n = r.done.len() + usize::from(r.stuck.is_some());
            println!(
                "rerun that round: sixfold campaign --dir DIR --seed {} --first {from} --faults {n}",
                args.seed
            );
        }
        ExitCode::from(1)
    }
}
