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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::actor::Node;
    use crate::protocol::msg::Version;
    use stateright::actor::Command;

    const WRITER: usize = 6;

    fn client(script: Vec<Op>, window: u8) -> Client {
        Client {
            writer: Id::from(WRITER),
            script,
            window,
        }
    }

    /// The messages a step sent, all of them to the writer.
    fn sent(o: Out<Node>) -> Vec<Msg> {
        o.into_iter()
            .map(|c| match c {
                Command::Send(dst, msg) => {
                    assert_eq!(dst, Id::from(WRITER));
                    msg
                }
                other => panic!("a client only sends, not {other:?}"),
            })
            .collect()
    }

    fn start(c: &Client) -> (ClientState, Vec<Msg>) {
        let mut o = Out::new();
        let st = c.on_start(&mut o);
        (st, sent(o))
    }

    /// Delivers `msg`; returns what the client sent and whether its state changed.
    fn deliver(c: &Client, st: &mut ClientState, msg: Msg) -> (Vec<Msg>, bool) {
        let mut o = Out::new();
        let mut state = Cow::Borrowed(&*st);
        c.on_msg(&mut state, msg, &mut o);
        let changed = matches!(state, Cow::Owned(_));
        *st = state.into_owned();
        (sent(o), changed)
    }

    fn write_ok(req: ReqId) -> Msg {
        Msg::WriteOk {
            req,
            lsn: 1,
            epoch: 1,
        }
    }

    #[test]
    fn one_at_a_time_each_reply_issues_the_next_operation() {
        let c = client(vec![Op::Write(0, 10), Op::Read(0)], 1);
        let (mut st, out) = start(&c);
        assert_eq!(
            out,
            vec![Msg::Write {
                req: 0,
                key: 0,
                value: 10
            }]
        );
        assert_eq!(st, ClientState { issued: 1, done: 0 });
        let (out, changed) = deliver(&c, &mut st, write_ok(0));
        assert!(changed);
        assert_eq!(out, vec![Msg::Read { req: 1, key: 0 }]);
        assert_eq!(st, ClientState { issued: 2, done: 1 });
        let read_ok = Msg::ReadOk {
            req: 1,
            version: Version::default(),
        };
        let (out, changed) = deliver(&c, &mut st, read_ok);
        assert!(changed && out.is_empty(), "the script is done");
        assert_eq!(st, ClientState { issued: 2, done: 3 });
        assert_eq!(st.outstanding(), 0);
    }

    #[test]
    fn pipelined_writes_fill_the_window_and_the_read_waits_for_all_of_them() {
        let c = client(
            vec![
                Op::Write(0, 10),
                Op::Write(0, 20),
                Op::Write(0, 30),
                Op::Read(0),
            ],
            2,
        );
        let (mut st, out) = start(&c);
        assert_eq!(out.len(), 2, "two writes fill the window");
        assert_eq!(st.outstanding(), 2);
        let (out, _) = deliver(&c, &mut st, write_ok(1));
        assert_eq!(
            out,
            vec![Msg::Write {
                req: 2,
                key: 0,
                value: 30
            }],
            "a completed write makes room for the next"
        );
        assert_eq!(st.outstanding(), 2);
        let (out, _) = deliver(&c, &mut st, write_ok(2));
        assert!(out.is_empty(), "the read waits for write 0");
        assert_eq!(st.outstanding(), 1);
        let (out, _) = deliver(&c, &mut st, write_ok(0));
        assert_eq!(out, vec![Msg::Read { req: 3, key: 0 }]);
        assert_eq!(
            st,
            ClientState {
                issued: 4,
                done: 0b111
            }
        );
    }

    #[test]
    fn nothing_is_issued_while_a_read_is_outstanding() {
        let c = client(vec![Op::Read(0), Op::Write(0, 10)], 2);
        let (mut st, out) = start(&c);
        assert_eq!(out, vec![Msg::Read { req: 0, key: 0 }]);
        let read_ok = Msg::ReadOk {
            req: 0,
            version: Version::default(),
        };
        let (out, _) = deliver(&c, &mut st, read_ok);
        assert_eq!(out.len(), 1, "the write follows the read's reply");
        assert_eq!(st.issued, 2);
    }

    /// A window of 0 is taken as 1.
    #[test]
    fn a_zero_window_still_issues_one_write() {
        let c = client(vec![Op::Write(0, 10), Op::Write(0, 20)], 0);
        let (st, out) = start(&c);
        assert_eq!(out.len(), 1);
        assert_eq!(st.issued, 1);
    }

    #[test]
    fn duplicate_unknown_and_other_replies_change_nothing() {
        let c = client(vec![Op::Write(0, 10), Op::Write(0, 20), Op::Read(0)], 1);
        let (mut st, _) = start(&c);
        deliver(&c, &mut st, write_ok(0));
        let before = st;
        for msg in [
            write_ok(0),
            write_ok(2),
            write_ok(31),
            Msg::NotWriter { req: 1 },
        ] {
            let (out, changed) = deliver(&c, &mut st, msg.clone());
            assert!(out.is_empty() && !changed, "{msg:?}");
            assert_eq!(st, before);
        }
        let (out, changed) = deliver(&c, &mut st, write_ok(1));
        assert!(changed);
        assert_eq!(out, vec![Msg::Read { req: 2, key: 0 }]);
        let before = st;
        let (out, changed) = deliver(&c, &mut st, write_ok(1));
        assert!(out.is_empty() && !changed, "a second reply to request 1");
        assert_eq!(st, before);
    }
}
