//! The sixfold protocol core: Aurora's quorum storage protocol as sans-IO step functions.
//!
//! Every process (segment, writer, client) is a [`actor::Node`], a `stateright` actor whose
//! `on_start`/`on_msg` take an input and return the state change and effects (sends, saves).
//! Two drivers run the same code: the Stateright models in [`quorum`] and the runtime in
//! `sixfold-impl`. No protocol decision lives anywhere else.

pub mod actor;
pub mod client;
pub mod config;
pub mod failover;
pub mod gossip;
pub mod log;
pub mod msg;
pub mod properties;
pub mod quorum;
pub mod storage_node;
pub mod symmetry;
pub mod topology;
pub mod trace;
pub mod writer;
