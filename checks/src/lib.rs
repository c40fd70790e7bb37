//! The checking machinery behind the `sixfold` command: the model-check runner, the explorer
//! launcher and the command line of the linearizability checker for recorded histories (the
//! checker itself is the `sixfold-lincheck` crate).
pub mod check_cmd;
pub mod cluster;
pub mod lincheck_cmd;
pub mod replay;
pub mod runner;

/// The history-recording types of [`sixfold_lincheck`] under their old path and names, for
/// `cluster.rs`'s load generator until it imports `sixfold_lincheck::history` directly (then
/// this module goes). New code uses [`sixfold_lincheck`].
pub mod lincheck {
    /// Re-exports of [`sixfold_lincheck::history`]; `Record` is now
    /// [`HistoryLine`](sixfold_lincheck::history::HistoryLine).
    pub mod history {
        pub use sixfold_lincheck::history::HistoryLine as Record;
        pub use sixfold_lincheck::history::{HistoryWriter, OpKind, Outcome, Value};
    }
}
