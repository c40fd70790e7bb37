//! A client: runs a fixed script of writes and reads against the writer.
//!
//! Scripted clients keep the model's history small and make "acknowledged before the read was
//! issued" a real-time fact the checker can see: a client's read after its own acknowledged
//! write must return that write or a newer one. Writes are pipelined: up to `window` of them
//! may be outstanding at once (the writer's commit queue then holds several, and LAL can bind).
//! A read is a barrier: it is issued only when nothing is outstanding, and nothing is issued
//! while it is, so every read still follows every earlier write's acknowledgement.

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
    /// The operations to run, in order; request number = index in the script (at most 32).
    pub script: Vec<Op>,
    /// How many writes may be outstanding at once (at least 1).
    pub window: u8,
}

/// A client's state: which operations of its script it has issued and which have completed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ClientState {
    /// Operations issued so far: `script[..issued]`.
    pub issued: ReqId,
    /// The completed ones, as a bitset over request numbers.
    pub done: u32,
}

impl ClientState {
    /// Operations issued and not yet completed.
    fn outstanding(&self) -> u32 {
        self.issued - self.done.count_ones()
    }
}

/// Short on purpose: the explorer prints states with `{:?}`: `done=2` when nothing is
/// outstanding, `issued=3 done=[0, 2]` otherwise.
impl std::fmt::Debug for ClientState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.outstanding() == 0 {
            return write!(f, "done={}", self.issued);
        }
        let done: Vec<u32> = (0..self.issued)
            .filter(|r| self.done & 1 << r != 0)
            .collect();
        write!(f, "issued={} done={done:?}", self.issued)
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

    /// Whether the next operation may be issued now: a read only when nothing is
    /// outstanding, a write while the window has room and no read is outstanding.
    fn may_issue(&self, st: &ClientState) -> bool {
        let outstanding = st.outstanding();
        match self.script.get(st.issued as usize) {
            None => false,
            Some(Op::Read(_)) => outstanding == 0,
            Some(Op::Write(..)) => {
                outstanding < u32::from(self.window.max(1))
                    && (0..st.issued)
                        .filter(|&r| st.done & 1 << r == 0)
                        .all(|r| matches!(self.script[r as usize], Op::Write(..)))
            }
        }
    }

    /// Issue operations while the script and the window allow.
    fn fill(&self, st: &mut ClientState, o: &mut Out<impl Proto>) {
        while self.may_issue(st) {
            self.issue(st.issued, o);
            st.issued += 1;
        }
    }

    /// Issue the first operations.
    pub fn on_start(&self, o: &mut Out<impl Proto>) -> ClientState {
        let mut st = ClientState { issued: 0, done: 0 };
        self.fill(&mut st, o);
        st
    }

    /// A reply completes its operation and issues what may follow it.
    pub fn on_msg(&self, state: &mut Cow<ClientState>, msg: Msg, o: &mut Out<impl Proto>) {
        let req = match msg {
            Msg::WriteOk { req, .. } | Msg::ReadOk { req, .. } => req,
            _ => return,
        };
        if req >= state.issued || state.done & 1 << req != 0 {
            return;
        }
        let st = state.to_mut();
        st.done |= 1 << req;
        self.fill(st, o);
    }
}
