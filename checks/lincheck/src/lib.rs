//! A fast linearizability checker for recorded histories.
//!
//! Stateright's `LinearizabilityTester` works inside a model but searches without memoization,
//! so it cannot check what a real cluster records. This crate checks recorded histories with
//! the Wing–Gong / Lowe just-in-time linearization search, memoizing every visited
//! (set of linearized operations, model state) pair, splitting kv histories into independent
//! per-key partitions (P-compositionality) that are checked in parallel, and collapsing
//! interchangeable operations so that repeated identical writes do not multiply the search.
//! Partitions whose written values are all unique (so every read names its write) are decided
//! instead by [`readfrom`], which is O(n log n) on reads, writes and successful cas, and falls
//! back to a pruned choice of block order only around failed cas.
//!
//! The pieces:
//! - [`history`]: the operation type every format is parsed into, and sixfold's own NDJSON
//!   history format (with [`history::HistoryWriter`] for the runtime to record it).
//! - [`jepsen`]: parsers for the Jepsen etcd console logs and kv EDN histories.
//! - [`spec`]: the sequential specifications (register, cas-register, kv).
//! - [`search`]: the search itself and the parallel partition driver.
//! - [`readfrom`]: the much faster decision for partitions whose written values are unique.
//! - [`html`]: a self-contained HTML visualization of a verdict.
//! - [`generate`]: generated histories of the unique-value class, for tests and benchmarks.
//!
//! The `sixfold lincheck` subcommand (in the `sixfold-checks` crate) is a thin command line
//! over [`load_checked`], [`check`] and [`html::render`]. With the `clap` feature, [`Spec`] and
//! [`history::Format`] derive `clap::ValueEnum` so a command line can take them as flags.
//!
//! See `docs/lincheck.md` for the formats, the CLI and measured speed.

#![warn(missing_docs)]

pub mod generate;
pub mod history;
pub mod html;
pub mod jepsen;
pub mod readfrom;
pub mod search;
pub mod spec;

pub use history::{Action, Format, History, HistoryLine, HistoryWriter, Operation};
pub use search::{
    check, check_using, CheckOptions, Method, PartitionOutcome, PartitionReport, Report, Verdict,
};
pub use spec::Spec;

use std::path::{Path, PathBuf};

/// Loads a history and checks every operation fits `spec`, so bad input is reported with its
/// file and line before any search starts.
pub fn load_checked(path: &Path, format: Format, spec: Spec) -> Result<History, LincheckError> {
    let history = history::load(path, format)?;
    for op in &history.ops {
        spec.validate(op).map_err(|message| LincheckError::Parse {
            path: path.to_path_buf(),
            line: op.line,
            message,
        })?;
    }
    Ok(history)
}

/// Everything that can go wrong before a verdict exists: unreadable files and malformed or
/// unsupported input. Each variant names the file (and line) so the user can fix the input.
#[derive(Debug, thiserror::Error)]
pub enum LincheckError {
    /// The history file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file that failed.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A line of the history is malformed or inconsistent with the rest of the history.
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        /// The file containing the bad line.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The file's format could not be recognised.
    #[error("{}: {message}", path.display())]
    Format {
        /// The file whose format is unknown.
        path: PathBuf,
        /// Why detection failed.
        message: String,
    },
}
