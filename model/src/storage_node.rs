//! The storage node (segment): persist, then ack with SCL; serve single-node reads within SCL.
//!
//! Segments have no vote. They never wait for one another and never refuse a record: they make it
//! durable (`Out::save`), then acknowledge it with their SCL so the writer can advance PGCL.

use crate::actor::{Node, NodeStorage};
use crate::config::{Config, Mutant};
use crate::log::Log;
use crate::msg::Msg;
use stateright::actor::{Id, Out};
use std::borrow::Cow;

/// A segment's step functions. The volatile state and the durable storage are both a [`Log`]:
/// after a crash the segment restarts from what it saved, nothing more.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StorageNode {
    /// The protocol configuration.
    pub cfg: Config,
}

impl StorageNode {
    /// Restart from the durable log, or start empty on a fresh disk.
    pub fn on_start(&self, storage: &Option<Log>) -> Log {
        storage.clone().unwrap_or_default()
    }

    /// Handle one message; `o` collects the sends and the save.
    pub fn on_msg(&self, state: &mut Cow<Log>, src: Id, msg: Msg, o: &mut Out<Node>) {
        match msg {
            Msg::Append { record } => {
                if !state.contains(record.lsn) {
                    let log = state.to_mut();
                    if self.cfg.is(Mutant::AckBeforePersist) {
                        // The write-back lags: what reaches disk is the log before this record.
                        o.save(NodeStorage::Segment(log.clone()));
                        log.insert(record);
                    } else {
                        log.insert(record);
                        o.save(NodeStorage::Segment(log.clone()));
                    }
                }
                o.send(
                    src,
                    Msg::Ack {
                        lsn: record.lsn,
                        scl: state.scl(),
                    },
                );
            }
            Msg::ReadAt {
                client,
                req,
                key,
                point,
            } => {
                let scl = state.scl();
                let version = if self.cfg.is(Mutant::ReadUnbounded) {
                    Some(state.read_at(key, u64::MAX))
                } else if point <= scl || self.cfg.is(Mutant::ReadAnyNode) {
                    Some(state.read_at(key, point))
                } else {
                    None
                };
                o.send(
                    src,
                    Msg::ReadReply {
                        client,
                        req,
                        key,
                        version,
                        scl,
                    },
                );
            }
            Msg::OpenQuery => o.send(src, Msg::SclReport { scl: state.scl() }),
            _ => {}
        }
    }
}
