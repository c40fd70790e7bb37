//! The protocol: the actors (segment, writer, client), their messages, the segment's log, the
//! configuration and the actor-id layout. Everything here is a step function or a value a step
//! function reads; nothing here checks anything. Both drivers, the model checker
//! ([`crate::check`]) and the runtime (`sixfold-impl`), run exactly this code.

pub mod actor;
pub mod client;
pub mod config;
pub mod control;
pub mod effects;
pub mod log;
pub mod msg;
pub mod region;
pub mod storage_node;
pub mod topology;
pub mod writer;
