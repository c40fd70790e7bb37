//! A client: runs a fixed script of writes and reads against the writer, one at a time.
//!
//! Scripted, sequential clients keep the model's history small and make "acknowledged before the
//! read was issued" a real-time fact the checker can see: a client's read after its own
//! acknowledged write must return that write or a newer one.

use crate::protocol::effects::Proto;
use crate::protocol::msg::{Key, Msg, ReqId, Value};
use serde::{Deserialize, Serialize};
use stateright::actor::{Id, Out};
use std::borrow::Cow;

/// One client operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    /// Write a value to a key.
    Write(Key, Value),
    /// Read a key.
    Read(Key),
}

/// A client's step functions: its script and the writer it talks to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Client {
    /// The writer instance.
    pub writer: Id,
    /// The operations to run, in order; request number = index in the script.
    pub script: Vec<Op>,
}

/// A client's state: how many operations of its script have completed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ClientState {
    /// Completed operations; the one in flight, if any, is `script[done]`.
    pub done: ReqId,
}

/// Short on purpose: the explorer prints states with `{:?}`.
impl std::fmt::Debug for ClientState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "done={}", self.done)
    }
}

impl Client {
    fn issue(&self, req: ReqId, o: &mut Out<impl Proto>) {
        match self.script.get(req as usize) {
            Some(Op::Write(key, value)) => o.send(
                self.writer,
                Msg::Write {
                    req,
                    key: *key,
                    value: *value,
                },
            ),
            Some(Op::Read(key)) => o.send(self.writer, Msg::Read { req, key: *key }),
            None => {}
        }
    }

    /// Issue the first operation.
    pub fn on_start(&self, o: &mut Out<impl Proto>) -> ClientState {
        self.issue(0, o);
        ClientState { done: 0 }
    }

    /// A reply completes the operation in flight and issues the next one.
    pub fn on_msg(&self, state: &mut Cow<ClientState>, msg: Msg, o: &mut Out<impl Proto>) {
        let req = match msg {
            Msg::WriteOk { req, .. } | Msg::ReadOk { req, .. } => req,
            _ => return,
        };
        if req != state.done {
            return;
        }
        state.to_mut().done += 1;
        self.issue(req + 1, o);
    }
}
