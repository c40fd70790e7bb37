//! One round of a campaign: a fresh cluster in `DIR/round-R`, its load, its share of the
//! schedule, and its checks.

use super::inject::{Effect, Target};
use super::processes::{Cluster, DriveError, Launch};
use super::verdict::{self, Check, Done};
use super::{workload, CampaignArgs, SEGMENTS};
use sixfold_impl::schedule::Fault;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long lincheck may take on one round's history before its verdict is "unknown".
const LINCHECK_LIMIT: Duration = Duration::from_secs(120);

/// What a round did and found.
pub struct Round {
    /// Its directory.
    pub dir: PathBuf,
    /// The faults injected and healed.
    pub done: Vec<Done>,
    /// The fault that did not heal, if one did not.
    pub stuck: Option<String>,
    /// The checks at its end.
    pub checks: Vec<Check>,
}

impl Round {
    /// Whether every fault healed and every check holds.
    pub fn passed(&self) -> bool {
        self.stuck.is_none() && self.checks.iter().all(|c| c.ok)
    }
}

/// Runs round `r` with `faults` (numbered in the whole schedule) for at most `budget`. A round
/// that passes keeps its history, fault log and stderr logs and deletes its trace and disks;
/// one that fails keeps everything.
pub fn run(
    args: &CampaignArgs,
    r: usize,
    faults: &[(usize, Fault)],
    budget: Option<Duration>,
) -> Result<Round, DriveError> {
    let dir = args.dir.join(format!("round-{r}"));
    let launch = Launch {
        exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("sixfold")),
        mutant: args.mutant.map(|m| m.name().to_string()),
    };
    let cluster = Cluster::start(&dir, &launch, false, None, 0)?;
    let load = workload::Workload::start(&dir, args.clients, args.keys, args.seed ^ r as u64);
    let mut target = Target {
        cluster: Some(cluster),
        dir: dir.clone(),
        launch,
        shared: load.shared.clone(),
        disks: (0..SEGMENTS).map(|_| Default::default()).collect(),
        seed: args.seed,
    };
    let (done, stuck) = inject_all(&mut target, faults, budget);
    let checks = finish(&mut target, load, args, &done, stuck.is_some());
    let round = Round {
        dir,
        done,
        stuck,
        checks,
    };
    println!("round {r}: {}", one_line(&round));
    if round.passed() {
        clean_up(&round.dir);
    }
    Ok(round)
}

/// Deletes what a passed round no longer needs and is large: the trace and the disks.
fn clean_up(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir.join("trace"));
    let _ = std::fs::remove_file(dir.join("run.ndjson"));
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().starts_with("node-") {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A round's verdicts on one line.
fn one_line(round: &Round) -> String {
    let v: Vec<String> = round
        .checks
        .iter()
        .map(|c| format!("{} {}", if c.ok { "ok" } else { "FAIL" }, c.what))
        .collect();
    let stuck = if round.stuck.is_some() {
        "; a fault did not heal"
    } else {
        ""
    };
    format!("{} faults{stuck}; {}", round.done.len(), v.join(", "))
}

/// Injects the faults in order, healing after each, until all are done, the time is up, or one
/// does not heal (its message).
fn inject_all(
    t: &mut Target,
    faults: &[(usize, Fault)],
    budget: Option<Duration>,
) -> (Vec<Done>, Option<String>) {
    let start = Instant::now();
    let mut done = Vec::new();
    for (n, fault) in faults {
        if budget.is_some_and(|b| start.elapsed() >= b) {
            break;
        }
        let began = t.shared.now();
        let healed = t
            .inject(*n, fault)
            .and_then(|(effect, after)| t.heal(after).map(|h| (effect, h)));
        match healed {
            Ok((effect, healed)) => {
                log_detail(&t.dir, *n, fault, &effect);
                println!(
                    "#{n:<4} {:>7.3} s  {fault}: {} (healed in {} ms)",
                    began as f64 / 1e9,
                    effect.class,
                    healed.as_millis()
                );
                done.push(Done {
                    n: *n,
                    fault: fault.clone(),
                    began,
                    effect,
                    healed,
                });
            }
            Err(e) => {
                return (
                    done,
                    Some(format!("fault #{n} ({fault}) did not heal: {e}")),
                )
            }
        }
    }
    (done, None)
}

/// Appends what fault `n` did, in the cluster's and the members' words, to `DIR/faults.log`.
fn log_detail(dir: &Path, n: usize, fault: &Fault, effect: &Effect) {
    use std::io::Write as _;
    let path = dir.join("faults.log");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "#{n} {fault}: {} | {}", effect.class, effect.detail);
    }
}

/// Stops the load, reads every key back, stops the cluster (which merges the trace) and runs
/// every check.
fn finish(
    t: &mut Target,
    load: workload::Workload,
    args: &CampaignArgs,
    done: &[Done],
    stuck: bool,
) -> Vec<Check> {
    let shared = load.stop();
    let last = if stuck {
        vec![None; args.keys as usize]
    } else {
        workload::read_back(&shared, &t.dir, args.keys)
    };
    let history = t.dir.join("history.ndjson");
    if let Err(e) = shared.save_history(&history) {
        eprintln!("sixfold campaign: {}: {e}", history.display());
    }
    let stopped = t.cluster.take().map(Cluster::stop);
    let trace = t.dir.join("run.ndjson");
    if !matches!(stopped, Some(Ok(true))) || !trace.exists() {
        // The cluster could not merge (or never stopped cleanly): merge what the members left.
        let _ = sixfold_impl::trace_merge::merge_dir(&t.dir.join("trace"), &trace);
    }
    let mut checks = vec![
        verdict::acked_read_back(&shared.acked(), &last),
        verdict::linearizable(&history, LINCHECK_LIMIT),
        verdict::replays(&trace),
        verdict::no_panics(&t.dir.join("logs")),
        verdict::faults_held(done),
    ];
    for c in checks.iter_mut().filter(|c| !c.ok) {
        c.detail = format!("{}\n      {}", c.detail, preceding(args.seed, done, c.at));
    }
    checks
}

/// "seed S; the fault before it: #n …" for a failure at `at` (ns on the round's clock), or the
/// round's last fault if the failure has no time.
fn preceding(seed: u64, done: &[Done], at: Option<u64>) -> String {
    let before = match at {
        Some(t) => done.iter().rev().find(|d| d.began <= t),
        None => done.last(),
    };
    match before {
        Some(d) => format!(
            "seed {seed}; the fault before it: #{} {} (at {:.3} s)",
            d.n,
            d.fault,
            d.began as f64 / 1e9
        ),
        None => format!("seed {seed}; before the round's first fault"),
    }
}
