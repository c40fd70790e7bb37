//! The writer: allocates LSNs, ships each record to all six segments, computes PGCL/VCL/VDL from
//! their acks, acknowledges commits at or below VDL, and routes reads to one segment.
//!
//! Decisions made here, named in the code:
//! - **[choice] one record per mini-transaction.** Every client write is one redo record that ends
//!   its MTR, so every LSN is a consistency point and VDL = VCL. The commit queue is still drained
//!   only as VDL advances.
//! - **[choice] single protection group.** The models use one PG, so VCL = PGCL.
//! - **Read routing.** A read gets read point = VDL and goes to the lowest-numbered segment whose
//!   SCL, as last reported to the writer, is at least that point. A refusal (the segment lost its
//!   disk and came back with less) corrects the bookkeeping and the read moves on.
//! - **Volume open** is a 3/6 quorum read of SCLs. **[choice]** The writer asks exactly a read
//!   quorum (the first three segments) and arms [`OPEN_RETRY`]; each time that fires before a
//!   quorum has answered, it asks one more segment. Asking all six at once would be just as
//!   correct, but the three answers nobody waits for would race with everything after open and
//!   multiply the model's state space by two orders of magnitude (measured: 26 k against 4.2 M
//!   unique states) for no extra behaviour worth checking. The
//!   writer accepts no client request until a read quorum has answered; it then starts
//!   allocating above the highest SCL it heard of.

use crate::actor::{Node, NodeTimer};
use crate::config::{Config, Mutant, SEGMENTS};
use crate::msg::{Lsn, Msg, Record, ReqId};
use stateright::actor::{Id, Out};
use std::borrow::Cow;
use std::ops::Range;
use std::time::Duration;

/// How long the writer waits for the first read quorum before asking the other segments.
pub const OPEN_RETRY: Range<Duration> = Duration::from_millis(200)..Duration::from_millis(400);

/// How far LSN allocation may run ahead of VDL (Aurora's LAL), in records.
pub const LAL: Lsn = 8;

/// A commit waiting for VDL to reach its LSN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Pending {
    /// LSN of the write.
    pub lsn: Lsn,
    /// The client to answer.
    pub client: Id,
    /// The client's request number.
    pub req: ReqId,
}

/// The writer's volatile state. It is rebuilt from the segments on open, so it saves nothing.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct WriterState {
    /// Segments that answered the open quorum read, as a bitset; `None` once the volume is open.
    pub opening: Option<u8>,
    /// Segments asked for their SCL so far, as a bitset.
    pub queried: u8,
    /// The highest LSN allocated so far.
    pub last_lsn: Lsn,
    /// Each segment's SCL as last reported to the writer (its read-routing bookkeeping).
    pub scl: [Lsn; SEGMENTS],
    /// Volume durable LSN: every record at or below it is on a write quorum.
    pub vdl: Lsn,
    /// Commits not yet acknowledged, in LSN order.
    pub commit_queue: Vec<Pending>,
}

/// Short on purpose (the explorer prints states with `{:?}`):
/// `opening asked=[0, 1, 2] answered=[1] scl=[..]` or `open vdl=1 last=2 scl=[1,1,0,1,1,0] queue=[2]`.
impl std::fmt::Debug for WriterState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.opening {
            Some(answered) => write!(
                f,
                "opening asked={:?} answered={:?}",
                segments_in(self.queried),
                segments_in(answered)
            )?,
            None => write!(f, "open vdl={} last={}", self.vdl, self.last_lsn)?,
        }
        write!(f, " scl={:?}", self.scl)?;
        if !self.commit_queue.is_empty() {
            let q: Vec<Lsn> = self.commit_queue.iter().map(|p| p.lsn).collect();
            write!(f, " queue={q:?}")?;
        }
        Ok(())
    }
}

/// The segment indexes in a bitset, for display.
fn segments_in(bits: u8) -> Vec<usize> {
    (0..SEGMENTS).filter(|i| bits & (1 << i) != 0).collect()
}

/// The writer's step functions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Writer {
    /// The protocol configuration.
    pub cfg: Config,
    /// The segments of the protection group, by segment index.
    pub segments: [Id; SEGMENTS],
}

impl Writer {
    /// Start opening the volume: ask every segment for its SCL.
    pub fn on_start(&self, o: &mut Out<Node>) -> WriterState {
        let first = self.cfg.read_quorum;
        o.broadcast(&self.segments[..first], &Msg::OpenQuery);
        o.set_timer(NodeTimer::OpenRetry, OPEN_RETRY);
        WriterState {
            opening: Some(0),
            queried: (1u8 << first) - 1,
            last_lsn: 0,
            scl: [0; SEGMENTS],
            vdl: 0,
            commit_queue: Vec::new(),
        }
    }

    fn segment_index(&self, id: Id) -> Option<usize> {
        self.segments.iter().position(|s| *s == id)
    }

    /// PGCL: the highest L that at least a write quorum of segments report SCL ≥ L for.
    pub fn pgcl(&self, scl: &[Lsn; SEGMENTS]) -> Lsn {
        let mut sorted = *scl;
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        sorted[self.cfg.write_quorum - 1]
    }

    /// The segment a single-node read at `point` goes to, from the writer's bookkeeping.
    pub fn route_read(&self, scl: &[Lsn; SEGMENTS], point: Lsn) -> Option<usize> {
        if self.cfg.is(Mutant::ReadAnyNode) {
            return Some(0);
        }
        (0..SEGMENTS).find(|&i| scl[i] >= point)
    }

    /// The open retry fired: widen the quorum read by one segment, and re-arm while any segment
    /// is still unasked.
    pub fn on_timeout(&self, state: &mut Cow<WriterState>, timer: &NodeTimer, o: &mut Out<Node>) {
        let NodeTimer::OpenRetry = timer;
        if state.opening.is_none() {
            return;
        }
        let Some(next) = (0..SEGMENTS).find(|i| state.queried & (1 << i) == 0) else {
            return;
        };
        o.send(self.segments[next], Msg::OpenQuery);
        let st = state.to_mut();
        st.queried |= 1 << next;
        if st.queried.count_ones() < SEGMENTS as u32 {
            o.set_timer(NodeTimer::OpenRetry, OPEN_RETRY);
        }
    }

    /// Handle one message; `o` collects the sends.
    pub fn on_msg(&self, state: &mut Cow<WriterState>, src: Id, msg: Msg, o: &mut Out<Node>) {
        match msg {
            Msg::SclReport { scl } => {
                let (Some(seg), Some(seen)) = (self.segment_index(src), state.opening) else {
                    return;
                };
                let st = state.to_mut();
                st.scl[seg] = st.scl[seg].max(scl);
                let seen = seen | 1 << seg;
                if seen.count_ones() as usize >= self.cfg.read_quorum {
                    st.opening = None;
                    o.cancel_timer(NodeTimer::OpenRetry);
                    st.last_lsn = st.scl.iter().copied().max().unwrap_or(0);
                    st.vdl = st.last_lsn;
                } else {
                    st.opening = Some(seen);
                }
            }
            Msg::Write { req, key, value } => {
                if state.opening.is_some() || state.last_lsn + 1 > state.vdl + LAL {
                    return; // not open yet, or back-pressure: the request waits
                }
                let st = state.to_mut();
                st.last_lsn += 1;
                let record = Record {
                    lsn: st.last_lsn,
                    key,
                    value,
                };
                st.commit_queue.push(Pending {
                    lsn: record.lsn,
                    client: src,
                    req,
                });
                o.broadcast(&self.segments, &Msg::Append { record });
            }
            Msg::Ack { scl, .. } => {
                let Some(seg) = self.segment_index(src) else {
                    return;
                };
                if scl <= state.scl[seg] {
                    return;
                }
                let st = state.to_mut();
                st.scl[seg] = scl;
                let vdl = self.pgcl(&st.scl).min(st.last_lsn);
                if vdl > st.vdl {
                    st.vdl = vdl;
                    let done = st.commit_queue.iter().take_while(|p| p.lsn <= vdl).count();
                    for p in st.commit_queue.drain(..done) {
                        o.send(
                            p.client,
                            Msg::WriteOk {
                                req: p.req,
                                lsn: p.lsn,
                            },
                        );
                    }
                }
            }
            Msg::Read { req, key } => {
                if state.opening.is_some() {
                    return;
                }
                let point = state.vdl;
                if let Some(seg) = self.route_read(&state.scl, point) {
                    o.send(
                        self.segments[seg],
                        Msg::ReadAt {
                            client: src,
                            req,
                            key,
                            point,
                        },
                    );
                }
            }
            Msg::ReadReply {
                client,
                req,
                key,
                version,
                scl,
            } => match version {
                Some(version) => o.send(client, Msg::ReadOk { req, version }),
                None => {
                    let Some(seg) = self.segment_index(src) else {
                        return;
                    };
                    let st = state.to_mut();
                    st.scl[seg] = scl;
                    // The refused read is retried at the current VDL on another segment.
                    let point = st.vdl;
                    if let Some(next) = self.route_read(&st.scl, point) {
                        o.send(
                            self.segments[next],
                            Msg::ReadAt {
                                client,
                                req,
                                key,
                                point,
                            },
                        );
                    }
                }
            },
            _ => {}
        }
    }
}
