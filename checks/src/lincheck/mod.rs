//! A fast linearizability checker for recorded histories.
//!
//! Stateright's `LinearizabilityTester` works inside a model but searches without memoization,
//! so it cannot check what a real cluster records. This module checks recorded histories with
//! the Wing–Gong / Lowe just-in-time linearization search, memoizing every visited
//! (set of linearized operations, model state) pair, splitting kv histories into independent
//! per-key partitions (P-compositionality) that are checked in parallel, and collapsing
//! interchangeable operations so that repeated identical writes do not multiply the search.
//!
//! The pieces:
//! - [`history`]: the operation type every format is parsed into, and sixfold's own NDJSON
//!   history format (with [`history::HistoryWriter`] for the runtime to record it).
//! - [`jepsen`]: parsers for the Jepsen etcd console logs and kv EDN histories.
//! - [`model`]: the sequential specifications (register, cas-register, kv).
//! - [`search`]: the search itself and the parallel partition driver.
//! - [`html`]: a self-contained HTML visualization of a verdict.
//! - [`cli`]: the `sixfold lincheck` subcommand.
//!
//! See `docs/lincheck.md` for the formats, the CLI and measured speed.

pub mod cli;
pub mod history;
pub mod html;
pub mod jepsen;
pub mod model;
pub mod search;

pub use history::{Action, History, Operation};
pub use model::ModelKind;
pub use search::{check, CheckOptions, Report, Verdict};

use std::path::PathBuf;

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
