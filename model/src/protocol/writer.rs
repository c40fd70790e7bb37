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
