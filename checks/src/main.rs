//! `sixfold`: run model checks, open the explorer, check recorded histories.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Aurora's quorum storage protocol, model-checked and run for real.
#[derive(Parser)]
#[command(name = "sixfold", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    // SUBCOMMANDS (each subcommand is one variant; keep one per line block)
    /// Check a recorded history for linearizability (exit 0 yes, 1 no, 3 unknown, 2 bad input).
    Lincheck(sixfold_checks::lincheck::cli::LincheckArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        // DISPATCH
        Command::Lincheck(args) => sixfold_checks::lincheck::cli::run(&args),
    }
}
