//! The checking: the Stateright models built from the protocol's actors (`quorum`, `gossip`,
//! `failover`), the ghost history they keep, the properties judged on it (one list per model,
//! also used by replay) and the symmetry reduction. Nothing here is run by the runtime.

pub mod failover;
pub mod gossip;
pub mod properties;
pub mod quorum;
pub mod region;
pub mod symmetry;
