//! The checking machinery behind the `sixfold` command: the model-check runner, the explorer
//! launcher and the command line of the linearizability checker for recorded histories (the
//! checker itself is the `sixfold-lincheck` crate).
pub mod campaign;
pub mod check_cmd;
pub mod cluster;
pub mod lincheck_cmd;
pub mod replay;
pub mod runner;
pub mod show;
pub mod simulate;
pub mod simulate_cmd;
