//! `sixfold`: run model checks, open the explorer, check recorded histories.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Model checking clones and frees millions of small states; mimalloc is markedly faster at that
/// than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Aurora's quorum storage protocol, model-checked and run for real.
#[derive(Parser)]
#[command(name = "sixfold", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Explore models exhaustively; print each property's verdict and a summary table.
    Check(sixfold_checks::check_cmd::CheckArgs),
    /// Serve Stateright's explorer web UI on a model (and print a link to a mutant's counterexample).
    Explore(sixfold_checks::check_cmd::ExploreArgs),
    /// List the mutants: deliberately broken variants and the property each must break.
    Mutants,
    /// Check a recorded history for linearizability (exit 0 yes, 1 no, 3 unknown, 2 bad input).
    Lincheck(sixfold_checks::lincheck_cmd::LincheckArgs),
    /// Start a local cluster (6 storage nodes in 3 AZs, a writer, a client port) until Ctrl-C.
    Cluster(sixfold_checks::cluster::ClusterArgs),
    /// Run one cluster member (storage node or writer) as this process.
    Node(sixfold_checks::cluster::NodeArgs),
    /// Talk to a running cluster: write, read, or run a load.
    Client(sixfold_checks::cluster::ClientArgs),
    /// Replay a recorded trace against the model (exit 0 pass, 1 mismatch, 2 bad input).
    Replay(sixfold_checks::replay::ReplayArgs),
    /// Run a seeded fault campaign against a real cluster and check what its clients saw.
    Campaign(sixfold_checks::campaign::CampaignArgs),
    /// Seeded random walks at deep bounds, every property judged on every state (not a proof).
    Simulate(sixfold_checks::simulate_cmd::SimulateArgs),
    /// Draw a trace (counterexample or recorded run) as a self-contained web page.
    Show(sixfold_checks::show::ShowArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check(args) => sixfold_checks::check_cmd::run_check(&args),
        Command::Explore(args) => sixfold_checks::check_cmd::run_explore(&args),
        Command::Mutants => sixfold_checks::check_cmd::run_mutants(),
        Command::Lincheck(args) => sixfold_checks::lincheck_cmd::run(&args),
        Command::Cluster(args) => sixfold_checks::cluster::run_cluster(&args),
        Command::Node(args) => sixfold_checks::cluster::run_node(&args),
        Command::Client(args) => sixfold_checks::cluster::run_client(&args),
        Command::Replay(args) => sixfold_checks::replay::run(&args),
        Command::Campaign(args) => sixfold_checks::campaign::run(&args),
        Command::Show(args) => sixfold_checks::show::run(&args),
        Command::Simulate(args) => sixfold_checks::simulate_cmd::run(&args),
    }
}
