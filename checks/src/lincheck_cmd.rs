//! The `sixfold lincheck` subcommand: load a history, check it, print the verdict and its
//! evidence, optionally write the HTML visualization, and exit with a status scripts can use.
//! The checker itself is the `sixfold-lincheck` crate; this is only its command line.

use sixfold_lincheck::history::{Format, History};
use sixfold_lincheck::{html, load_checked, CheckOptions, PartitionOutcome, Report, Spec, Verdict};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Exit status: linearizable.
pub const EXIT_LINEARIZABLE: u8 = 0;
/// Exit status: not linearizable.
pub const EXIT_VIOLATION: u8 = 1;
/// Exit status: bad input or usage (clap uses 2 for usage errors too).
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit status: unknown (time limit reached).
pub const EXIT_UNKNOWN: u8 = 3;

/// How many prefix operations to print before eliding; the HTML shows all.
const PREFIX_SHOWN: usize = 12;

/// Check a recorded history for linearizability.
///
/// Exit status: 0 linearizable, 1 not linearizable, 3 unknown (time limit), 2 bad input or
/// usage.
#[derive(clap::Args, Debug, Clone)]
pub struct LincheckArgs {
    /// The history file (sixfold NDJSON, Jepsen console log or Jepsen EDN).
    pub file: PathBuf,
    /// The data type the history was recorded against.
    #[arg(long, value_enum)]
    pub model: Spec,
    /// The input format.
    #[arg(long, value_enum, default_value = "auto")]
    pub format: Format,
    /// Write a self-contained HTML visualization of the verdict to this file.
    #[arg(long, value_name = "OUT")]
    pub html: Option<PathBuf>,
    /// Give up after this many seconds with verdict unknown (exit status 3).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub time_limit: Option<Duration>,
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is not a valid time limit"))
}

/// Runs the subcommand and returns its exit status.
pub fn run(args: &LincheckArgs) -> ExitCode {
    let history = match load_checked(&args.file, args.format, args.model) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("sixfold lincheck: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let started = Instant::now();
    let options = CheckOptions {
        spec: args.model,
        time_limit: args.time_limit,
    };
    let report = sixfold_lincheck::check(&history, &options);
    let elapsed = started.elapsed();
    let name = args.file.display();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{name}: {} operations, {} partition(s), model {}, checked in {:.3} s",
        history.ops.len(),
        report.partitions.len(),
        args.model,
        elapsed.as_secs_f64()
    );
    let code = match report.verdict {
        Verdict::Linearizable => {
            let _ = writeln!(out, "verdict: LINEARIZABLE");
            EXIT_LINEARIZABLE
        }
        Verdict::Unknown => {
            let open = report
                .partitions
                .iter()
                .filter(|p| !matches!(p.outcome, PartitionOutcome::Linearizable(_)))
                .count();
            let _ = writeln!(
                out,
                "verdict: UNKNOWN (time limit reached; {open} partition(s) undecided, no violation found)"
            );
            EXIT_UNKNOWN
        }
        Verdict::NotLinearizable => {
            let _ = writeln!(out, "verdict: NOT LINEARIZABLE");
            let _ = describe_violation(&mut out, &history, &report);
            EXIT_VIOLATION
        }
    };
    if let Some(path) = &args.html {
        let page = html::render(&args.file, args.model, &history, &report);
        if let Err(e) = std::fs::write(path, page) {
            eprintln!("sixfold lincheck: {}: {e}", path.display());
            return ExitCode::from(EXIT_BAD_INPUT);
        }
        let _ = writeln!(out, "visualization written to {}", path.display());
    }
    // A closed pipe (`| head`) is not an error worth reporting.
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    ExitCode::from(code)
}

/// Writes the evidence of the first violation: the prefix, the state after it, the blocked
/// operation and the candidates that cannot be placed.
fn describe_violation(out: &mut String, history: &History, report: &Report) -> std::fmt::Result {
    let Some((part, v)) = report.violation() else {
        return Ok(());
    };
    if let Some(key) = &part.partition.key {
        writeln!(out, "violating key: {key:?}")?;
    }
    writeln!(
        out,
        "longest linearizable prefix found: {} of the {} operation(s){}:",
        v.prefix.len(),
        part.partition.ops.len(),
        if part.partition.key.is_some() {
            " on this key"
        } else {
            ""
        }
    )?;
    let skip = v.prefix.len().saturating_sub(PREFIX_SHOWN);
    if skip > 0 {
        writeln!(out, "  ... {skip} earlier operation(s) (--html shows all)")?;
    }
    for (n, &i) in v.prefix.iter().enumerate().skip(skip) {
        writeln!(out, "  {:>4}. {}", n + 1, history.ops[i])?;
    }
    writeln!(out, "state after the prefix: {}", v.state)?;
    writeln!(
        out,
        "cannot be placed: {} returns, but no remaining operation can be linearized next:",
        history.ops[v.blocked]
    )?;
    for &(i, accepted) in &v.candidates {
        let why = if accepted {
            "accepted here, but every continuation dead-ends"
        } else {
            "impossible in this state"
        };
        writeln!(out, "  - {}: {why}", history.ops[i])?;
    }
    Ok(())
}
