//! The sixfold protocol core: Aurora's quorum storage protocol as sans-IO step functions.
//!
//! Every process (segment, writer, client) is a [`protocol::actor::Node`], a `stateright` actor whose
//! `on_start`/`on_msg` take an input and return the state change and effects (sends, saves).
//! The crate is split in two: the [`protocol`] (actors, messages, log) and its [`check`]ing
//! (models, ghost history, properties, symmetry). Two drivers run the same protocol code: the
//! Stateright models in [`check::quorum`] and the runtime in
//! `sixfold-impl`. No protocol decision lives anywhere else.

pub mod check;
pub mod protocol;
pub mod trace;
