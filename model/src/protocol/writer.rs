//! The writer: allocates LSNs, ships each record to all six segments, computes PGCL/VCL/VDL from
//! their acks, acknowledges commits at or below VDL, and routes reads to one segment.
//!
//! Decisions made here, named in the code:
//! - **[choice] one record per mini-transaction.** Every client write is one redo record that ends
//!   its MTR, so every LSN is a consistency point and VDL = VCL. The commit queue is still drained
//!   only as VDL advances.
//! - **[choice] single protection group.** The models use one PG, so VCL = PGCL.
//! - **Read routing.** A read gets read point = VDL and goes to *one* segment whose SCL, as last
//!   reported to the writer, is at least that point. Which one is left open as a [`Choice`]
//!   (`Out::choose_random`): the model checker explores every eligible segment, so what it proves
//!   holds for any routing policy; the runtime picks one. A refusal (the segment lost its disk and
//!   came back with less) corrects the bookkeeping and the read is offered again.
//! - **Volume open** is a 3/6 quorum read of SCLs. **[choice]** The writer asks exactly a read
//!   quorum (the first three segments) and arms [`OPEN_RETRY`]; each time that fires before a
//!   quorum has answered, it asks one more segment (which one is again a [`Choice`]). Asking all six at once would be just as
//!   correct, but the three answers nobody waits for would race with everything after open and
//!   multiply the model's state space by two orders of magnitude (measured: 26 k against 4.2 M
//!   unique states) for no extra behaviour worth checking. The
//!   writer accepts no client request until a read quorum has answered; it then starts
//!   allocating above the highest SCL it heard of.
//! - **Recovery** (any epoch after the first) is that same quorum read followed by a truncation.
//!   The query carries the new epoch and segments adopt it before they answer, so once a read
//!   quorum has answered, at most three segments still accept the old writer and it can never
//!   again reach a write quorum. **[choice]** Fencing at the query, not after the truncation as
//!   the papers order it: otherwise the old writer could commit a record between the read and the
//!   bump, and the truncation would then void an acknowledged commit. The recovered VDL is the
//!   highest SCL of the quorum (every commit was on four segments, so on at least one of any
//!   three, with its whole prefix). The writer declares the range (VDL, VDL + LAL] void, which
//!   covers every LSN the old writer may have allocated; new LSNs start above it.
//!   **[choice]** The new epoch and the truncation ride on every Append of the new writer (a
//!   segment adopts both, durably, before it acks), instead of a separate round to all six
//!   segments first: no commit of the new epoch can be acknowledged before both are on a write
//!   quorum together with the whole recovered prefix (an ack's SCL covers it), and until then the
//!   writer serves reads at the recovered VDL only, where nothing was truncated. It saves a round
//!   trip on failover and a fan-out of messages that multiplied the `failover` model's states.
//! - **Repair before reads.** The recovered VDL is the highest SCL of three segments, and the
//!   record there may sit on that one segment only (an old writer's record that reached one
//!   segment before the failover). A read served at that VDL, followed by a second recovery
//!   whose quorum misses that segment, would return a value the volume then voids: found by the
//!   `failover` model with two failovers (mutant `no-repair`). So a writer serves reads only
//!   once a write quorum's SCL, in its bookkeeping, covers its VDL ([`Writer::read_ready`]).
//!   A read that comes earlier is held, and the writer repairs the range itself: it asks every
//!   segment whose SCL covers the VDL for its records (`GossipPull`), and ships the first
//!   answer's records up to VDL again, in its own epoch, to every segment not known to hold
//!   them. Their acks raise the bookkeeping, and the held reads are then offered at VDL.
//!   Writes need no such rule: a commit's acks already cover its whole prefix, and once one is
//!   acknowledged reads are ready too. **[choice]** The repair starts with the first read that
//!   must wait, not on opening (Aurora repairs before it opens): reads are what it protects,
//!   and a writer whose first commit comes before any read never needs it, which keeps the
//!   single-failover model at its old size.
//!   **[choice]** The pull asks from LSN 1 in the models (whose logs hold a few records); see
//!   [`REPAIR_SPAN`] for the runtime's bound.
//! - **Fenced.** A segment that has seen a newer epoch answers `Fenced`; the writer is then
//!   deposed: it refuses new requests with `NotWriter`.
//! - **Lease.** Epochs fence writes, not reads: a single segment cannot tell that a newer writer
//!   exists. So a writer serves reads only while it holds a lease (the [`NodeTimer::Lease`] timer,
//!   re-armed by the control plane's `LeaseGrant`), and the control plane promotes a new writer
//!   only after the old lease has run out. **[choice]** Writes do not check the lease: a writer
//!   that has not noticed, or a paused process that resumes, may still send them, and fencing
//!   alone must stop them; the models' zombie writer does exactly that.

use crate::protocol::config::{Config, Geometry, Mutant, SEGMENTS};
use crate::protocol::effects::{Choice, NodeTimer, Proto};
use crate::protocol::msg::{
    Epoch, Key, Lsn, Msg, Record, ReqId, Truncation, Value, VolumeEpoch, FIRST_EPOCH,
};
use stateright::actor::{Id, Out};
use std::borrow::Cow;
use std::ops::Range;
use std::time::Duration;

/// How long the writer waits for the first read quorum before asking the other segments.
pub const OPEN_RETRY: Range<Duration> = Duration::from_millis(200)..Duration::from_millis(400);

/// How long a lease lasts without a `LeaseGrant`; the control plane renews it well before.
pub const LEASE: Range<Duration> = Duration::from_millis(600)..Duration::from_millis(601);

impl Choice {
    /// The one segment the choice is about (`None` for a quorum).
    pub fn segment(&self) -> Option<usize> {
        match self {
            Choice::ReadFrom { segment, .. }
            | Choice::Ask { segment }
            | Choice::PullFrom { segment } => Some(*segment),
            Choice::Quorum { .. } => None,
        }
    }

    /// The same choice with segment `i` renamed `perm[i]` (for symmetry reduction).
    pub fn relabel(mut self, perm: &[usize; SEGMENTS]) -> Self {
        match &mut self {
            Choice::ReadFrom { segment, .. }
            | Choice::Ask { segment }
            | Choice::PullFrom { segment } => *segment = perm[*segment],
            Choice::Quorum { segments } => {
                *segments = (0..SEGMENTS)
                    .filter(|&i| *segments & (1 << i) != 0)
                    .fold(0, |acc, i| acc | 1 << perm[i]);
            }
        }
        self
    }
}

/// How far below the recovered VDL, in multiples of LAL, the repair asks for records. Every
/// record more than LAL below an old writer's last LSN was on a write quorum when it allocated
/// that LSN (its VDL ran at most LAL behind), so a recovery after one clean term needs at most
/// LAL; a chain of recoveries that each died before repairing adds up to 2·LAL per link, and
/// four links are covered. A span too short never breaks safety (reads wait for the range to
/// be on a write quorum), only the liveness of reads. In the models, VDL never exceeds it, so
/// the repair asks from LSN 1.
pub const REPAIR_SPAN: Lsn = 8;

/// The `choose_random` key of the open-widening choice.
const OPEN_CHOICE: &str = "open";

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
    /// Every truncation range declared up to this writer's epoch, its own included.
    pub truncations: Vec<Truncation>,
    /// Whether the lease is still held (reads are served only then).
    pub lease: bool,
    /// Whether a segment has answered `Fenced`: a newer writer exists.
    pub deposed: bool,
    /// The highest LSN allocated so far.
    pub last_lsn: Lsn,
    /// Each segment's SCL as last reported to the writer (its read-routing bookkeeping).
    pub scl: [Lsn; SEGMENTS],
    /// Volume durable LSN: every record at or below it is on a write quorum.
    pub vdl: Lsn,
    /// Commits not yet acknowledged, in LSN order.
    pub commit_queue: Vec<Pending>,
    /// Whether the writer still waits for the records of its recovered range, to ship them
    /// again (see [`Writer::repair`]).
    pub repairing: bool,
    /// Reads that came before the writer's VDL was on a write quorum, in arrival order.
    pub held: Vec<HeldRead>,
}

/// A client read the writer holds until it may serve reads ([`Writer::read_ready`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct HeldRead {
    /// The client to answer.
    pub client: Id,
    /// The client's request number.
    pub req: ReqId,
    /// The key read.
    pub key: Key,
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
        if self.repairing {
            write!(f, " repairing")?;
        }
        if !self.held.is_empty() {
            write!(f, " held={}", self.held.len())?;
        }
        if self.deposed {
            write!(f, " deposed")?;
        } else if !self.lease {
            write!(f, " lease-expired")?;
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
    /// The epoch this writer opens the volume in (from the control plane).
    pub epoch: Epoch,
}

impl WriterState {
    /// Whether the writer accepts client requests: opened, not deposed.
    pub fn is_open(&self) -> bool {
        self.opening.is_none() && !self.deposed
    }
}

impl Writer {
    /// Start opening the volume in this writer's epoch: ask a read quorum for its SCL. The
    /// volume's first writer asks the first three segments (they are all alike then); a
    /// recovering writer leaves which three open as a [`Choice::Quorum`], since by then the
    /// segments differ and the choice matters.
    pub fn on_start(&self, o: &mut Out<impl Proto>) -> WriterState {
        let quorum = self.cfg.read_quorum;
        let queried = if self.epoch == FIRST_EPOCH {
            let first = (1u8 << quorum) - 1;
            self.query(first, o);
            first
        } else {
            let choices = (0u8..1 << SEGMENTS)
                .filter(|&b| b.count_ones() as usize == quorum && self.cfg.opens_on(b))
                .map(|segments| Choice::Quorum { segments })
                .collect();
            o.choose_random(OPEN_CHOICE, choices);
            0
        };
        o.set_timer(NodeTimer::Lease, LEASE);
        WriterState {
            opening: Some(0),
            queried,
            truncations: Vec::new(),
            lease: true,
            deposed: false,
            last_lsn: 0,
            scl: [0; SEGMENTS],
            vdl: 0,
            commit_queue: Vec::new(),
            repairing: false,
            held: Vec::new(),
        }
    }

    /// Ask these segments (a bitset) for their SCL and arm the retry.
    fn query(&self, segments: u8, o: &mut Out<impl Proto>) {
        for i in (0..SEGMENTS).filter(|i| segments & (1 << i) != 0) {
            o.send(self.segments[i], Msg::OpenQuery { epoch: self.epoch });
        }
        o.set_timer(NodeTimer::OpenRetry, OPEN_RETRY);
    }

    /// The writer's view of the volume, sent with every write.
    fn volume(&self, state: &WriterState) -> VolumeEpoch {
        VolumeEpoch {
            number: self.epoch,
            truncations: state.truncations.clone(),
        }
    }

    /// A read quorum has answered: recompute VDL and open; after the first epoch, declare the
    /// truncation above it.
    fn recover(&self, st: &mut WriterState, o: &mut Out<impl Proto>) {
        st.opening = None;
        o.cancel_timer(NodeTimer::OpenRetry);
        o.remove_random(OPEN_CHOICE);
        // A segment that did not know a truncation may report an SCL inside it: what it holds
        // there is void, so its volume ends where the range starts.
        for scl in st.scl.iter_mut() {
            if let Some(t) = st.truncations.iter().find(|t| t.covers(*scl)) {
                *scl = t.after;
            }
        }
        let vdl = st.scl.iter().copied().max().unwrap_or(0);
        st.vdl = vdl;
        st.last_lsn = vdl;
        if self.epoch != FIRST_EPOCH && !self.cfg.is(Mutant::NoTruncation) {
            let t = Truncation {
                epoch: self.epoch,
                after: vdl,
                upto: vdl + self.cfg.lal,
            };
            st.truncations.push(t);
            st.last_lsn = t.upto;
        }
    }

    /// Start repairing the range up to VDL: ask every segment whose SCL covers it for its
    /// records, to ship them again to the others (see the module doc).
    fn repair(&self, st: &mut WriterState, o: &mut Out<impl Proto>) {
        st.repairing = true;
        for i in (0..SEGMENTS).filter(|&i| st.scl[i] >= st.vdl) {
            let from = st.vdl.saturating_sub(REPAIR_SPAN * self.cfg.lal).max(1);
            o.send(self.segments[i], Msg::GossipPull { from });
        }
    }

    /// The first answer to the repair: ship every record of the recovered range to all six
    /// segments again, in this writer's epoch; their acks raise the SCL bookkeeping until the
    /// range is on a write quorum. Later answers change nothing.
    fn on_repair_records(
        &self,
        state: &mut Cow<WriterState>,
        records: Vec<Record>,
        o: &mut Out<impl Proto>,
    ) {
        if !state.repairing {
            return;
        }
        let st = state.to_mut();
        st.repairing = false;
        let volume = self.volume(st);
        // Segments whose SCL already covers the range hold all of it.
        let lacking: Vec<Id> = (0..SEGMENTS)
            .filter(|&i| st.scl[i] < st.vdl)
            .map(|i| self.segments[i])
            .collect();
        for record in records.into_iter().filter(|r| r.lsn <= st.vdl) {
            o.broadcast(
                &lacking,
                &Msg::Append {
                    record,
                    volume: volume.clone(),
                },
            );
        }
    }

    /// A read that must wait for the range up to VDL to reach a write quorum: hold it, and
    /// start the repair unless one is under way.
    fn hold_read(
        &self,
        state: &mut Cow<WriterState>,
        client: Id,
        req: ReqId,
        key: Key,
        o: &mut Out<impl Proto>,
    ) {
        let st = state.to_mut();
        st.held.push(HeldRead { client, req, key });
        if !st.repairing {
            self.repair(st, o);
        }
    }

    /// Whether reads may be served at VDL: only once a write quorum's SCL covers it. After a
    /// recovery, VDL is the highest SCL of three segments, and the record there may sit on one
    /// of them only; a read of it, followed by a second recovery whose quorum misses that
    /// segment, would return a value the volume then voids. (Under `no-repair`, at once.)
    pub fn read_ready(&self, st: &WriterState) -> bool {
        self.cfg.is(Mutant::NoRepair) || self.pgcl(&st.scl) >= st.vdl
    }

    /// The LSN allocation may run LAL ahead of: VDL, or the end of this writer's own truncation
    /// (which holds no record) until VDL passes it.
    fn lal_floor(&self, st: &WriterState) -> Lsn {
        let own = st
            .truncations
            .iter()
            .filter(|t| t.epoch == self.epoch)
            .map(|t| t.upto)
            .max()
            .unwrap_or(0);
        st.vdl.max(own)
    }

    fn segment_index(&self, id: Id) -> Option<usize> {
        self.segments.iter().position(|s| *s == id)
    }

    /// PGCL: the highest L that a write quorum of segments report SCL ≥ L for: `write_quorum`
    /// of them, or (full/tail) every full segment.
    pub fn pgcl(&self, scl: &[Lsn; SEGMENTS]) -> Lsn {
        let mut sorted = *scl;
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        let any = sorted[self.cfg.write_quorum - 1];
        match self.cfg.geometry {
            Geometry::Six => any,
            Geometry::FullTail => (0..SEGMENTS)
                .filter(|&i| self.cfg.geometry.is_full(i))
                .map(|i| scl[i])
                .min()
                .map_or(any, |full| any.max(full)),
        }
    }

    /// Offer the segments a single-node read at `point` may go to: those whose SCL, in the
    /// writer's bookkeeping, covers the point (every segment, under `read-any-node`), and that
    /// keep pages (only full segments, in the full/tail geometry).
    fn offer_read(
        &self,
        scl: &[Lsn; SEGMENTS],
        client: Id,
        req: ReqId,
        key: Key,
        point: Lsn,
        o: &mut Out<impl Proto>,
    ) {
        let any = self.cfg.is(Mutant::ReadAnyNode);
        let choices: Vec<Choice> = (0..SEGMENTS)
            .filter(|&i| any || scl[i] >= point)
            .filter(|&i| self.cfg.geometry.is_full(i))
            .map(|segment| Choice::ReadFrom {
                segment,
                client,
                req,
                key,
                point,
            })
            .collect();
        if !choices.is_empty() {
            o.choose_random(format!("read {}/{req}", usize::from(client)), choices);
        }
    }

    /// The open retry fired: offer to widen the quorum read by one segment not asked yet. The
    /// lease ran out: stop serving reads.
    pub fn on_timeout(
        &self,
        state: &mut Cow<WriterState>,
        timer: &NodeTimer,
        o: &mut Out<impl Proto>,
    ) {
        if *timer == NodeTimer::Lease {
            if state.lease {
                state.to_mut().lease = false;
            }
            return;
        }
        if *timer != NodeTimer::OpenRetry {
            return;
        }
        if state.opening.is_none() || state.queried == 0 {
            return;
        }
        let choices: Vec<Choice> = (0..SEGMENTS)
            .filter(|i| state.queried & (1 << i) == 0)
            .map(|segment| Choice::Ask { segment })
            .collect();
        if !choices.is_empty() {
            o.choose_random(OPEN_CHOICE, choices);
        }
    }

    /// A choice was made: carry it out.
    pub fn on_random(
        &self,
        state: &mut Cow<WriterState>,
        choice: &Choice,
        o: &mut Out<impl Proto>,
    ) {
        match *choice {
            Choice::ReadFrom {
                segment,
                client,
                req,
                key,
                point,
            } => o.send(
                self.segments[segment],
                Msg::ReadAt {
                    client,
                    req,
                    key,
                    point,
                    epoch: self.epoch,
                },
            ),
            Choice::PullFrom { .. } => {}
            Choice::Quorum { segments } => {
                if state.opening.is_none() || state.queried != 0 {
                    return;
                }
                state.to_mut().queried = segments;
                self.query(segments, o);
            }
            Choice::Ask { segment } => {
                if state.opening.is_none() || state.queried & (1 << segment) != 0 {
                    return;
                }
                o.send(self.segments[segment], Msg::OpenQuery { epoch: self.epoch });
                let st = state.to_mut();
                st.queried |= 1 << segment;
                if st.queried.count_ones() < SEGMENTS as u32 {
                    o.set_timer(NodeTimer::OpenRetry, OPEN_RETRY);
                }
            }
        }
    }

    /// Handle one message; `o` collects the sends.
    pub fn on_msg(&self, state: &mut Cow<WriterState>, src: Id, msg: Msg, o: &mut Out<impl Proto>) {
        match msg {
            Msg::SclReport { scl, truncations } => {
                self.on_scl_report(state, src, scl, truncations, o)
            }
            Msg::Fenced { epoch, .. } if epoch > self.epoch && !state.deposed => {
                state.to_mut().deposed = true;
            }
            Msg::LeaseGrant if state.lease && !state.deposed => {
                o.set_timer(NodeTimer::Lease, LEASE);
            }
            Msg::Write { req, key, value } => self.on_write(state, src, req, key, value, o),
            Msg::Ack { scl, .. } => self.on_ack(state, src, scl, o),
            Msg::GossipPush { records } => self.on_repair_records(state, records, o),
            Msg::Read { req, key } => {
                if state.deposed || !state.lease {
                    o.send(src, Msg::NotWriter { req });
                } else if state.is_open() && self.read_ready(state) {
                    self.offer_read(&state.scl, src, req, key, state.vdl, o);
                } else if state.is_open() {
                    self.hold_read(state, src, req, key, o);
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
                    // The refused read is offered again at the current VDL.
                    self.offer_read(&st.scl, client, req, key, st.vdl, o);
                }
            },
            _ => {}
        }
    }

    /// One answer to the open (or recovery) quorum read: note the segment's SCL and the
    /// truncations it knows; recover once a read quorum has answered.
    fn on_scl_report(
        &self,
        state: &mut Cow<WriterState>,
        src: Id,
        scl: Lsn,
        truncations: Vec<Truncation>,
        o: &mut Out<impl Proto>,
    ) {
        let (Some(seg), Some(seen)) = (self.segment_index(src), state.opening) else {
            return;
        };
        let st = state.to_mut();
        st.scl[seg] = st.scl[seg].max(scl);
        for t in truncations {
            if !st.truncations.contains(&t) {
                st.truncations.push(t);
                st.truncations.sort();
            }
        }
        let seen = seen | 1 << seg;
        if self.cfg.opens_on(seen) {
            self.recover(st, o);
        } else {
            st.opening = Some(seen);
        }
    }

    /// A client's write: refused once deposed, held while opening or under LAL back-pressure,
    /// otherwise given the next LSN, queued for its commit and shipped to all six segments.
    fn on_write(
        &self,
        state: &mut Cow<WriterState>,
        src: Id,
        req: ReqId,
        key: Key,
        value: Value,
        o: &mut Out<impl Proto>,
    ) {
        if state.deposed {
            o.send(src, Msg::NotWriter { req });
            return;
        }
        if !state.is_open() || state.last_lsn + 1 > self.lal_floor(state) + self.cfg.lal {
            return; // not open yet, or back-pressure: the request waits
        }
        let st = state.to_mut();
        st.last_lsn += 1;
        let record = Record {
            lsn: st.last_lsn,
            key,
            value,
            epoch: self.epoch,
        };
        st.commit_queue.push(Pending {
            lsn: record.lsn,
            client: src,
            req,
        });
        let volume = self.volume(st);
        o.broadcast(&self.segments, &Msg::Append { record, volume });
    }

    /// A segment's ack: advance its SCL, recompute VDL, and acknowledge every queued write at or
    /// below it, in LSN order.
    fn on_ack(&self, state: &mut Cow<WriterState>, src: Id, scl: Lsn, o: &mut Out<impl Proto>) {
        let Some(seg) = self.segment_index(src) else {
            return;
        };
        if scl <= state.scl[seg] {
            return;
        }
        let st = state.to_mut();
        st.scl[seg] = scl;
        if !st.held.is_empty() && self.read_ready(st) {
            for r in std::mem::take(&mut st.held) {
                self.offer_read(&st.scl, r.client, r.req, r.key, st.vdl, o);
            }
        }
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
                        epoch: self.epoch,
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::actor::Node;
    use stateright::actor::Command;

    type Commands = Vec<Command<Msg, NodeTimer, Choice, crate::protocol::effects::NodeStorage>>;

    const CLIENT: usize = 9;

    fn writer(epoch: Epoch) -> Writer {
        Writer {
            cfg: Config::new(None),
            segments: std::array::from_fn(Id::from),
            epoch,
        }
    }

    /// An open writer with these SCLs in its bookkeeping, at this VDL, allocated up to `last`.
    fn open(scl: [Lsn; SEGMENTS], vdl: Lsn, last: Lsn) -> WriterState {
        WriterState {
            opening: None,
            queried: 0b111,
            truncations: Vec::new(),
            lease: true,
            deposed: false,
            last_lsn: last,
            scl,
            vdl,
            commit_queue: Vec::new(),
            repairing: false,
            held: Vec::new(),
        }
    }

    fn record(lsn: Lsn) -> Record {
        Record {
            lsn,
            key: 0,
            value: 10 * lsn,
            epoch: FIRST_EPOCH,
        }
    }

    /// Delivers `msg` from `src`; returns the commands and whether the state was written to.
    fn deliver(w: &Writer, st: &mut WriterState, src: usize, msg: Msg) -> (Commands, bool) {
        let mut o: Out<Node> = Out::new();
        let mut state = Cow::Borrowed(&*st);
        w.on_msg(&mut state, Id::from(src), msg, &mut o);
        let written = matches!(state, Cow::Owned(_));
        *st = state.into_owned();
        (o.into_iter().collect(), written)
    }

    fn timeout(w: &Writer, st: &mut WriterState, timer: NodeTimer) -> Commands {
        let mut o: Out<Node> = Out::new();
        let mut state = Cow::Borrowed(&*st);
        w.on_timeout(&mut state, &timer, &mut o);
        *st = state.into_owned();
        o.into_iter().collect()
    }

    fn random(w: &Writer, st: &mut WriterState, choice: Choice) -> Commands {
        let mut o: Out<Node> = Out::new();
        let mut state = Cow::Borrowed(&*st);
        w.on_random(&mut state, &choice, &mut o);
        *st = state.into_owned();
        o.into_iter().collect()
    }

    /// The (destination, message) pairs among the commands.
    fn sends(commands: &Commands) -> Vec<(usize, Msg)> {
        commands
            .iter()
            .filter_map(|c| match c {
                Command::Send(dst, msg) => Some((usize::from(*dst), msg.clone())),
                _ => None,
            })
            .collect()
    }

    /// The segments offered to serve a read, and at which point.
    fn read_offers(commands: &Commands) -> Vec<(usize, Lsn)> {
        commands
            .iter()
            .filter_map(|c| match c {
                Command::ChooseRandom(_, choices) => Some(choices),
                _ => None,
            })
            .flatten()
            .filter_map(|c| match *c {
                Choice::ReadFrom { segment, point, .. } => Some((segment, point)),
                _ => None,
            })
            .collect()
    }

    fn read(req: ReqId) -> Msg {
        Msg::Read { req, key: 0 }
    }

    /// A recovered writer whose VDL sits on two segments only holds reads, pulls the records
    /// from the two, ships the first answer's records up to VDL to the four others, and serves
    /// the held reads once a write quorum's SCL covers the VDL.
    #[test]
    fn reads_wait_for_the_repair_of_the_recovered_range() {
        let w = writer(2);
        let mut st = open([3, 3, 0, 0, 0, 0], 3, 11);
        assert!(!w.read_ready(&st), "PGCL 0 is below VDL 3");
        let (out, _) = deliver(&w, &mut st, CLIENT, read(0));
        assert_eq!(read_offers(&out), []);
        assert_eq!(
            sends(&out),
            [
                (0, Msg::GossipPull { from: 1 }),
                (1, Msg::GossipPull { from: 1 })
            ],
            "the segments that hold the range are asked for it"
        );
        assert!(st.repairing);
        let (out, _) = deliver(&w, &mut st, CLIENT, read(1));
        assert!(out.is_empty(), "one repair at a time");
        assert_eq!(st.held.len(), 2);

        let records = vec![record(1), record(2), record(3), record(4)];
        let (out, _) = deliver(&w, &mut st, 0, Msg::GossipPush { records });
        assert!(!st.repairing);
        let shipped = sends(&out);
        let to: Vec<usize> = shipped.iter().map(|(d, _)| *d).collect();
        assert_eq!(to, [2, 3, 4, 5, 2, 3, 4, 5, 2, 3, 4, 5]);
        let lsns: Vec<Lsn> = shipped
            .iter()
            .map(|(_, m)| match m {
                Msg::Append { record, volume } => {
                    assert_eq!(volume.number, 2, "shipped again in the writer's epoch");
                    record.lsn
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            lsns,
            [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3],
            "nothing above VDL"
        );
        let (out, _) = deliver(
            &w,
            &mut st,
            1,
            Msg::GossipPush {
                records: vec![record(1)],
            },
        );
        assert!(out.is_empty(), "a later answer changes nothing");

        let ack = |scl| Msg::Ack { lsn: 3, scl };
        let (out, _) = deliver(&w, &mut st, 2, ack(3));
        assert!(out.is_empty(), "three segments are not a write quorum");
        assert_eq!(st.held.len(), 2);
        let (out, _) = deliver(&w, &mut st, 3, ack(3));
        assert_eq!(
            read_offers(&out),
            [
                (0, 3),
                (1, 3),
                (2, 3),
                (3, 3),
                (0, 3),
                (1, 3),
                (2, 3),
                (3, 3)
            ],
            "both held reads, at VDL, to the four segments that hold it"
        );
        assert!(st.held.is_empty());
        assert_eq!(st.vdl, 3);
        let (out, _) = deliver(&w, &mut st, CLIENT, read(2));
        assert_eq!(read_offers(&out).len(), 4, "now served at once");
    }

    /// The repair asks from `REPAIR_SPAN` LALs below VDL (from LSN 1 when VDL is lower).
    #[test]
    fn the_repair_asks_from_repair_span_lals_below_vdl() {
        let w = writer(2);
        let vdl = REPAIR_SPAN * w.cfg.lal + 5;
        let mut st = open([vdl, 0, 0, 0, 0, 0], vdl, vdl + 8);
        let (out, _) = deliver(&w, &mut st, CLIENT, read(0));
        assert_eq!(sends(&out), [(0, Msg::GossipPull { from: 5 })]);
        let mut low = open([20, 0, 0, 0, 0, 0], 20, 28);
        let (out, _) = deliver(&w, &mut low, CLIENT, read(0));
        assert_eq!(sends(&out), [(0, Msg::GossipPull { from: 1 })]);
    }

    #[test]
    fn reads_are_refused_without_a_lease_and_ignored_while_opening() {
        let w = writer(1);
        let mut st = open([0; SEGMENTS], 0, 0);
        st.lease = false;
        let (out, _) = deliver(&w, &mut st, CLIENT, read(4));
        assert_eq!(sends(&out), [(CLIENT, Msg::NotWriter { req: 4 })]);
        let mut opening = w.on_start(&mut Out::<Node>::new());
        let (out, written) = deliver(&w, &mut opening, CLIENT, read(0));
        assert!(out.is_empty() && !written, "the read waits for the open");
        let mut deposed = open([0; SEGMENTS], 0, 0);
        deposed.deposed = true;
        let (out, _) = deliver(&w, &mut deposed, CLIENT, read(1));
        assert_eq!(sends(&out), [(CLIENT, Msg::NotWriter { req: 1 })]);
    }

    /// Only a Fenced naming a newer epoch deposes the writer, once.
    #[test]
    fn a_newer_epoch_deposes_the_writer() {
        let w = writer(2);
        let fenced = |epoch| Msg::Fenced {
            epoch,
            lsn: Some(1),
        };
        let mut st = open([0; SEGMENTS], 0, 0);
        for epoch in [1, 2] {
            let (out, written) = deliver(&w, &mut st, 0, fenced(epoch));
            assert!(out.is_empty() && !written, "epoch {epoch}");
        }
        let (_, written) = deliver(&w, &mut st, 0, fenced(3));
        assert!(written && st.deposed);
        let (_, written) = deliver(&w, &mut st, 0, fenced(3));
        assert!(!written, "already deposed");
        let (out, _) = deliver(
            &w,
            &mut st,
            CLIENT,
            Msg::Write {
                req: 0,
                key: 0,
                value: 1,
            },
        );
        assert_eq!(sends(&out), [(CLIENT, Msg::NotWriter { req: 0 })]);
    }

    /// A grant renews a lease still held; it cannot revive an expired one or a deposed writer.
    #[test]
    fn a_lease_grant_renews_only_a_live_lease() {
        let w = writer(1);
        let renews = |st: &mut WriterState| {
            let (out, _) = deliver(&w, st, 7, Msg::LeaseGrant);
            matches!(out.as_slice(), [Command::SetTimer(NodeTimer::Lease, _)])
        };
        let mut st = open([0; SEGMENTS], 0, 0);
        assert!(renews(&mut st));
        let mut deposed = st.clone();
        deposed.deposed = true;
        assert!(!renews(&mut deposed));
        assert!(timeout(&w, &mut st, NodeTimer::Lease).is_empty());
        assert!(!st.lease);
        assert!(!renews(&mut st));
    }

    /// The open retry offers the segments not asked yet, only while opening; the recovering
    /// writer's first query waits for its quorum choice.
    #[test]
    fn the_open_retry_widens_only_an_opening_query() {
        let w = writer(1);
        let mut st = w.on_start(&mut Out::<Node>::new());
        assert_eq!(st.queried, 0b111);
        assert!(timeout(&w, &mut st, NodeTimer::Gossip).is_empty());
        let out = timeout(&w, &mut st, NodeTimer::OpenRetry);
        let [Command::ChooseRandom(_, asks)] = out.as_slice() else {
            panic!("{out:?}");
        };
        assert_eq!(
            asks,
            &[3, 4, 5].map(|segment| Choice::Ask { segment }).to_vec()
        );
        let out = random(&w, &mut st, Choice::Ask { segment: 4 });
        assert_eq!(sends(&out), [(4, Msg::OpenQuery { epoch: 1 })]);
        assert_eq!(st.queried, 0b1_0111);
        assert!(matches!(
            out.last(),
            Some(Command::SetTimer(NodeTimer::OpenRetry, _))
        ));
        assert!(
            random(&w, &mut st, Choice::Ask { segment: 4 }).is_empty(),
            "asked already"
        );
        random(&w, &mut st, Choice::Ask { segment: 3 });
        let out = random(&w, &mut st, Choice::Ask { segment: 5 });
        assert_eq!(out.len(), 1, "all six asked: no retry left");
        assert_eq!(st.queried, 0b11_1111);
        assert!(timeout(&w, &mut st, NodeTimer::OpenRetry).is_empty());
        assert!(
            random(&w, &mut st, Choice::Quorum { segments: 0b111 }).is_empty(),
            "the first writer's quorum is fixed"
        );

        let mut opened = open([0; SEGMENTS], 0, 0);
        assert!(timeout(&w, &mut opened, NodeTimer::OpenRetry).is_empty());
        assert!(random(&w, &mut opened, Choice::Ask { segment: 5 }).is_empty());
        assert!(random(&w, &mut opened, Choice::PullFrom { segment: 5 }).is_empty());

        let r = writer(2);
        let mut rec = r.on_start(&mut Out::<Node>::new());
        assert_eq!(rec.queried, 0);
        assert!(timeout(&r, &mut rec, NodeTimer::OpenRetry).is_empty());
        let out = random(
            &r,
            &mut rec,
            Choice::Quorum {
                segments: 0b10_1010,
            },
        );
        let asked: Vec<usize> = sends(&out).iter().map(|(d, _)| *d).collect();
        assert_eq!(asked, [1, 3, 5]);
        assert!(random(&r, &mut rec, Choice::Quorum { segments: 0b111 }).is_empty());
    }

    /// Truncations reported during the quorum read are merged, sorted and without duplicates;
    /// an SCL inside one counts only up to where it starts; recovery declares its own above.
    #[test]
    fn recovery_merges_reported_truncations() {
        let w = writer(3);
        let mut st = w.on_start(&mut Out::<Node>::new());
        random(&w, &mut st, Choice::Quorum { segments: 0b111 });
        let older = Truncation {
            epoch: 2,
            after: 1,
            upto: 9,
        };
        let report = |scl, truncations: &[Truncation]| Msg::SclReport {
            scl,
            truncations: truncations.to_vec(),
        };
        deliver(&w, &mut st, 0, report(5, &[older]));
        deliver(&w, &mut st, 1, report(1, &[older]));
        assert_eq!(st.truncations, [older]);
        assert!(st.opening.is_some());
        deliver(&w, &mut st, 9, report(7, &[]));
        assert!(st.opening.is_some(), "not a segment");
        let (out, _) = deliver(&w, &mut st, 2, report(0, &[]));
        assert!(st.opening.is_none());
        assert!(out
            .iter()
            .any(|c| matches!(c, Command::CancelTimer(NodeTimer::OpenRetry))));
        assert_eq!(st.vdl, 1, "SCL 5 lies in the older truncation");
        let own = Truncation {
            epoch: 3,
            after: 1,
            upto: 1 + w.cfg.lal,
        };
        assert_eq!(st.truncations, [older, own]);
        assert_eq!(st.last_lsn, own.upto);
        let (out, written) = deliver(&w, &mut st, 3, report(9, &[]));
        assert!(out.is_empty() && !written, "late reports are ignored");
    }

    /// A segment's report counts once towards the read quorum, however often it arrives: the
    /// runtime's links deliver at least once (`impl/src/transport.rs`), while the models'
    /// network never duplicates, so only this test sees it. Two reports from one segment and
    /// one from another are not a quorum; a third segment's makes one.
    #[test]
    fn a_repeated_report_counts_once() {
        let w = writer(1);
        let mut st = w.on_start(&mut Out::<Node>::new());
        let report = Msg::SclReport {
            scl: 0,
            truncations: Vec::new(),
        };
        for seg in [0, 0, 1] {
            deliver(&w, &mut st, seg, report.clone());
        }
        assert_eq!(st.opening, Some(0b11));
        deliver(&w, &mut st, 2, report);
        assert!(st.is_open());
    }

    #[test]
    fn relabelling_a_choice_moves_only_its_segments() {
        let perm = [5, 4, 3, 2, 1, 0];
        assert_eq!(
            Choice::Quorum { segments: 0b1011 }.relabel(&perm),
            Choice::Quorum {
                segments: 0b11_0100
            }
        );
        assert_eq!(Choice::Quorum { segments: 0 }.segment(), None);
        for c in [
            Choice::Ask { segment: 1 },
            Choice::PullFrom { segment: 1 },
            Choice::ReadFrom {
                segment: 1,
                client: Id::from(CLIENT),
                req: 0,
                key: 0,
                point: 0,
            },
        ] {
            assert_eq!(c.segment(), Some(1));
            assert_eq!(c.relabel(&perm).segment(), Some(4));
        }
    }

    /// Acks raise VDL to PGCL, never past the last LSN allocated, and answer the commits at or
    /// below it in LSN order; a stale ack changes nothing.
    #[test]
    fn acks_commit_in_lsn_order_up_to_pgcl() {
        let w = writer(1);
        let mut st = open([0; SEGMENTS], 0, 0);
        for req in 0..2 {
            let write = Msg::Write {
                req,
                key: 0,
                value: 10,
            };
            let (out, _) = deliver(&w, &mut st, CLIENT, write);
            assert_eq!(sends(&out).len(), SEGMENTS);
        }
        assert_eq!(st.last_lsn, 2);
        for seg in 0..3 {
            deliver(&w, &mut st, seg, Msg::Ack { lsn: 2, scl: 2 });
        }
        assert_eq!(st.vdl, 0);
        let (out, _) = deliver(&w, &mut st, 3, Msg::Ack { lsn: 1, scl: 1 });
        assert_eq!(
            sends(&out),
            [(
                CLIENT,
                Msg::WriteOk {
                    req: 0,
                    lsn: 1,
                    epoch: 1
                }
            )]
        );
        let (out, written) = deliver(&w, &mut st, 3, Msg::Ack { lsn: 1, scl: 1 });
        assert!(out.is_empty() && !written, "no news");
        let (out, _) = deliver(&w, &mut st, 3, Msg::Ack { lsn: 2, scl: 9 });
        assert_eq!(st.vdl, 2, "capped at the last LSN");
        assert_eq!(sends(&out).len(), 1);
        assert!(st.commit_queue.is_empty());
    }
}
