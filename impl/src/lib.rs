//! The runtime: hosts the protocol actors of `sixfold-model` on real sockets and disks, and adds
//! nothing to the protocol.
//!
//! Every step goes through [`sixfold_model::trace::apply`]; the runtime only interprets the
//! commands it returns: `Send` becomes a frame on a TCP connection ([`transport`], [`wire`]),
//! `SetTimer`/`CancelTimer` a deadline in the step loop ([`host`]), `Save` an incremental,
//! checksummed, fsynced append to the segment's log file ([`storage`]). Steps can be recorded as
//! NDJSON in the model's trace format ([`trace_log`]); the per-process files of a run are read back
//! and merged into one causal order ([`trace_merge`]) to be replayed against the model.
//!
//! # Threads, not tokio
//! A node talks to at most six peers and a handful of clients, and its step loop is sequential by
//! nature (one actor, one state). Plain threads fit that shape: one step-loop thread that owns the
//! actor, its disk and its timers; one thread per inbound connection that only decodes frames
//! into a channel; one thread per outbound peer link that owns the connection, its reconnects and
//! its resend queue. Blocking I/O with timeouts keeps every loop bounded and the code free of an
//! executor, pinning or cancellation-safety concerns, and fsync, which blocks anyway, sits in the
//! step loop where the ordering rule (fsync before the sends that follow a save) is a plain
//! sequence of statements. Thread count stays around twenty per process, which is nothing for
//! the OS.

pub mod client;
pub mod cluster;
pub mod control;
pub mod faults;
pub mod host;
pub mod layout;
pub mod load;
pub mod promotion;
pub mod schedule;
pub mod storage;
pub mod stranger;
pub mod supervise;
pub mod trace_log;
pub mod trace_merge;
pub mod transport;
pub mod wire;
