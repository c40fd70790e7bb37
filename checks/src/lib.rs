//! The checking machinery behind the `sixfold` command: the model-check runner, the explorer
//! launcher and the linearizability checker for recorded histories.
pub mod check_cmd;
pub mod cluster;
pub mod lincheck;
pub mod replay;
pub mod runner;
