//! The step loop: the driver of one actor, as quinn's connection driver is of a quinn-proto
//! connection.
//!
//! The actor is a sans-IO state machine; this loop is all of its I/O, and it adds nothing to the
//! protocol. Each turn it
//! 1. takes a batch of inputs ([`Event`]s from the connection threads and the heartbeat client,
//!    or nothing once the earliest deadline has passed), firing a due lease timer first;
//! 2. steps each of them through [`sixfold_model::trace::apply`], then the timers that are due;
//!    every step's commands are carried out at once ([`Host::carry_out`]): `SetTimer` and
//!    `CancelTimer` change the loop's deadlines, `Save` appends to the segment log (not yet
//!    synced), `Send` goes to the [`Outbox`], and an open choice is remembered;
//! 3. settles: makes the open choices, and offers parked client requests again, until neither
//!    changes anything;
//! 4. commits the batch as a group ([`Host::group_commit`]): one fsync for all of its saves,
//!    then the outbox releases the batch's sends and confirmations, so nothing leaves before the
//!    save it follows is durable.
//!
//! Every random decision (a timer's duration within its range, which open option to take) comes
//! from one generator seeded by [`crate::faults::runtime_seed`], so the node's fault seed and
//! actor id name the sequence; timers due together fire in a fixed order (by timer), not in a
//! hash map's.

use super::heartbeat::{LeaseStatus, GRANT_WINDOW};
use super::outbox::Outbox;
use super::{start, HostError, CLIENT_ID_BASE, CONTROL_ID, PARK_TTL};
use crate::storage::SegmentStore;
use crate::trace_log::{Previous, TraceLog};
use crate::transport::ConfirmLink;
use sixfold_model::protocol::actor::{Node, NodeState};
use sixfold_model::protocol::effects::{NodeStorage, NodeTimer};
use sixfold_model::protocol::msg::Msg;
use sixfold_model::trace::{self, Input, Step};
use stateright::actor::{Actor, Command, Id, Out};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most inputs processed between two fsyncs.
const BATCH: usize = 512;
/// The longest the loop sleeps with nothing due (it re-checks `stop`).
const IDLE: Duration = Duration::from_millis(50);

/// An input of the step loop, from a connection thread or the heartbeat client.
pub(super) enum Event {
    /// A message from a peer (with the link to confirm it on, and its frame's number) or a client.
    Msg {
        src: usize,
        msg: Msg,
        /// The Lamport clock of the sender's step (0 from clients).
        clock: u64,
        confirm: Option<(ConfirmLink, u64)>,
    },
    /// A peer said where it listens.
    Peer { src: usize, addr: SocketAddr },
    /// The control plane renewed the lease in answer to the heartbeat sent at `sent`.
    Grant { sent: Instant },
}

/// The xorshift generator behind the loop's random decisions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A duration in `r`, to the microsecond (`r.start` if it is empty).
    fn within(&mut self, r: &Range<Duration>) -> Duration {
        let x = self.next();
        let span = r.end.saturating_sub(r.start).as_micros() as u64;
        r.start + Duration::from_micros(if span == 0 { 0 } else { x % span })
    }
}

/// How the step loop runs beyond its actor, disk, trace and outbox.
pub(super) struct Wiring {
    /// What the heartbeat client reports (writers with a control plane).
    pub(super) status: Arc<LeaseStatus>,
    /// No control plane: the writer renews its own lease (a static cluster).
    pub(super) local_lease: bool,
    /// Hold every inbound message this long before stepping it.
    pub(super) delay: Duration,
    /// The generator's seed.
    pub(super) seed: u64,
    /// The node's name in logs.
    pub(super) tag: String,
}

/// One actor, its state, its disk and trace, its deadlines and its outbox.
pub(super) struct Host {
    id: usize,
    node: Node,
    state: Option<NodeState>,
    store: Option<SegmentStore>,
    trace: Option<TraceLog>,
    /// Armed timers and when each is due (timers due together fire in timer order).
    timers: BTreeMap<NodeTimer, Instant>,
    /// Choices the actor left open, by key.
    choices: BTreeMap<String, Vec<<Node as Actor>::Random>>,
    outbox: Outbox,
    status: Arc<LeaseStatus>,
    local_lease: bool,
    /// The actor's Lamport clock.
    clock: u64,
    delay: Duration,
    /// Inbound events held back by `delay`, with when each is due.
    delayed: VecDeque<(Instant, Event)>,
    /// Client requests whose step changed nothing yet, with when they arrived.
    parked: VecDeque<(Instant, usize, Msg)>,
    rng: Rng,
    pub(super) tag: String,
}

impl Host {
    /// Actor `node` (id `id`) recovered from its disk and trace, after its first steps (a
    /// restart as the model writes one, then `Start`), committed.
    pub(super) fn new(
        id: usize,
        node: Node,
        disk: (Option<SegmentStore>, start::Recovered),
        trace: (Option<TraceLog>, Previous),
        outbox: Outbox,
        w: Wiring,
    ) -> Result<Host, HostError> {
        let ((store, recovered), (trace, prev)) = (disk, trace);
        let mut host = Host {
            id,
            node,
            state: None,
            store,
            trace,
            timers: BTreeMap::new(),
            choices: BTreeMap::new(),
            outbox,
            status: w.status,
            local_lease: w.local_lease,
            clock: prev.last_clock,
            delay: w.delay,
            delayed: VecDeque::new(),
            parked: VecDeque::new(),
            rng: Rng(w.seed),
            tag: w.tag,
        };
        let mut storage = recovered.storage;
        if prev.had_steps {
            let store = host.store.as_mut();
            let (restart, s) =
                start::reconcile(store, storage, &prev.last_save, recovered.fresh, &host.tag)?;
            storage = s;
            host.step(restart, 0)?;
        }
        host.step(Input::Start { storage }, 0)?;
        host.settle(true)?;
        host.group_commit()?;
        Ok(host)
    }

    /// The loop, until `stop` or every sender of `rx` is gone.
    pub(super) fn run(&mut self, rx: Receiver<Event>, stop: &AtomicBool) -> Result<(), HostError> {
        while !stop.load(Ordering::SeqCst) {
            let Some(batch) = self.take_batch(&rx) else {
                return Ok(());
            };
            let mut changed = self.lease_check()?;
            let now = Instant::now();
            for ev in self.hold_back(batch, now) {
                changed |= self.handle(ev)?;
            }
            changed |= self.fire_timers(now)?;
            self.settle(changed)?;
            self.group_commit()?;
            self.outbox.release_held();
        }
        Ok(())
    }

    /// Waits for an input until the earliest deadline (a timer, a delayed input, a held-back
    /// message, or [`IDLE`]), then takes whatever else has arrived, up to [`BATCH`]. `None`
    /// when every sender is gone.
    fn take_batch(&self, rx: &Receiver<Event>) -> Option<Vec<Event>> {
        let now = Instant::now();
        let wake = [
            self.timers.values().min().copied(),
            self.delayed.front().map(|(t, _)| *t),
            self.outbox.next_due(),
        ]
        .into_iter()
        .flatten()
        .fold(now + IDLE, Instant::min);
        let mut batch = Vec::new();
        match rx.recv_timeout(wake.saturating_duration_since(now)) {
            Ok(ev) => batch.push(ev),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return None,
        }
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(ev) => batch.push(ev),
                Err(_) => break,
            }
        }
        Some(batch)
    }

    /// The inputs to step now: the batch itself, or with a `delay`, those held back long enough.
    fn hold_back(&mut self, batch: Vec<Event>, now: Instant) -> Vec<Event> {
        if self.delay.is_zero() {
            return batch;
        }
        for ev in batch {
            self.delayed.push_back((now + self.delay, ev));
        }
        let mut ready = Vec::new();
        while self.delayed.front().is_some_and(|(t, _)| *t <= now) {
            ready.push(self.delayed.pop_front().expect("front").1);
        }
        ready
    }

    /// Steps one input; returns whether the state or the outputs changed.
    fn handle(&mut self, ev: Event) -> Result<bool, HostError> {
        let (src, msg, clock, confirm) = match ev {
            Event::Msg {
                src,
                msg,
                clock,
                confirm,
            } => (src, msg, clock, confirm),
            Event::Peer { src, addr } => {
                self.outbox.peer_at(src, addr);
                return Ok(false);
            }
            Event::Grant { sent } => {
                if sent.elapsed() > GRANT_WINDOW {
                    return Ok(false); // too late: the control plane no longer counts on it
                }
                let grant = Input::Msg {
                    src: CONTROL_ID,
                    msg: Msg::LeaseGrant,
                };
                return self.step(grant, 0);
            }
        };
        // Confirmed even if a fault drops it: the sender need not resend what the net lost.
        if let Some((link, seq)) = confirm {
            self.outbox.confirm(link, seq);
        }
        if self.outbox.cut_off_from(src) {
            return Ok(false);
        }
        let mut changed = self.lease_check()?;
        let input = Input::Msg {
            src,
            msg: msg.clone(),
        };
        let did = self.step(input, clock)?;
        if !did && src >= CLIENT_ID_BASE {
            self.parked.push_back((Instant::now(), src, msg));
        }
        changed |= did;
        Ok(changed)
    }

    /// Fires the timers due at `now` (the lease timer through [`Host::lease_check`]).
    fn fire_timers(&mut self, now: Instant) -> Result<bool, HostError> {
        let due: Vec<NodeTimer> = self
            .timers
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let mut changed = false;
        for timer in due {
            if timer == NodeTimer::Lease {
                changed |= self.lease_check()?;
                continue;
            }
            self.timers.remove(&timer);
            changed |= self.step(Input::Timer { timer }, 0)?;
        }
        Ok(changed)
    }

    /// Fires the lease timer if it is due (before any message is stepped, so a read is never
    /// served on a lease that has run out while the loop was busy). In a static cluster the
    /// host renews the lease instead.
    fn lease_check(&mut self) -> Result<bool, HostError> {
        let due = self
            .timers
            .get(&NodeTimer::Lease)
            .is_some_and(|t| *t <= Instant::now());
        if !due {
            return Ok(false);
        }
        self.timers.remove(&NodeTimer::Lease);
        if self.local_lease {
            let grant = Input::Msg {
                src: self.id,
                msg: Msg::LeaseGrant,
            };
            return self.step(grant, 0);
        }
        self.step(
            Input::Timer {
                timer: NodeTimer::Lease,
            },
            0,
        )
    }

    /// One step; returns whether it did anything (a message step that changes nothing is not a
    /// step, as in the model).
    fn step(&mut self, input: Input, in_clock: u64) -> Result<bool, HostError> {
        let (next, out) = trace::apply(&self.node, Id::from(self.id), self.state.as_ref(), &input);
        if matches!(input, Input::Msg { .. }) && out.is_empty() && next == self.state {
            return Ok(false);
        }
        if matches!(input, Input::Start { .. } | Input::Crash) {
            self.timers.clear();
            self.choices.clear();
        }
        self.clock = self.clock.max(in_clock) + 1;
        self.carry_out(&out)?;
        self.record(input, in_clock, out, &next)?;
        self.state = next;
        if let Some(w) = self.state.as_ref().and_then(NodeState::as_writer) {
            self.status.publish(w.lease, w.is_open(), w.vdl);
        }
        Ok(true)
    }

    /// Carries out a step's commands (sends wait in the outbox, saves for the fsync).
    fn carry_out(&mut self, out: &Out<Node>) -> Result<(), HostError> {
        let now = Instant::now();
        for c in out.iter() {
            match c {
                Command::Send(dst, msg) => {
                    self.outbox.send(usize::from(*dst), msg.clone(), self.clock)
                }
                Command::SetTimer(t, range) => {
                    let at = now + self.rng.within(range);
                    self.timers.insert(t.clone(), at);
                }
                Command::CancelTimer(t) => {
                    self.timers.remove(t);
                }
                Command::Save(NodeStorage::Segment(log)) => match &mut self.store {
                    Some(s) => s.save(log)?,
                    None => {
                        return Err(HostError::Spec(format!(
                            "{} saved a segment log but has no segment store",
                            self.tag
                        )))
                    }
                },
                Command::ChooseRandom(key, options) => {
                    if options.is_empty() {
                        self.choices.remove(key);
                    } else {
                        self.choices.insert(key.clone(), options.clone());
                    }
                }
            }
        }
        Ok(())
    }

    /// Appends the step to the trace file, if the node records one.
    fn record(
        &mut self,
        input: Input,
        in_clock: u64,
        out: Out<Node>,
        next: &Option<NodeState>,
    ) -> Result<(), HostError> {
        let Some(t) = &mut self.trace else {
            return Ok(());
        };
        // A peer's message carries the clock of the step that sent it (clients, the control
        // plane and the host's own lease renewal send 0): replay matches the two steps.
        let sent = match input {
            Input::Msg { .. } if in_clock > 0 => Some(in_clock),
            _ => None,
        };
        let step = Step {
            actor: self.id,
            input,
            outputs: trace::outputs(out),
            digest: next.as_ref().map(trace::digest),
        };
        t.write(&step, self.clock, sent)?;
        Ok(())
    }

    /// Makes the batch's saves durable, then releases its sends and confirmations.
    fn group_commit(&mut self) -> Result<(), HostError> {
        if let Some(s) = &mut self.store {
            s.sync()?;
        }
        if let Some(t) = &mut self.trace {
            t.flush()?;
        }
        self.outbox.release();
        Ok(())
    }

    /// After a batch: make open choices and offer parked requests again until neither changes
    /// anything.
    fn settle(&mut self, mut changed: bool) -> Result<(), HostError> {
        for _ in 0..64 {
            changed |= self.resolve_choices()?;
            if !changed || self.parked.is_empty() {
                return Ok(());
            }
            changed = self.retry_parked()?;
        }
        Ok(())
    }

    /// Makes the choices the actor left open (`Out::choose_random`): one option, picked at
    /// random, is fed back as an `Input::Choice` step, as the model's `SelectRandom` does.
    /// Returns whether any was made.
    fn resolve_choices(&mut self) -> Result<bool, HostError> {
        let mut any = false;
        // Bounded: a choice step may open new choices, but never unboundedly many.
        for _ in 0..1024 {
            let Some(key) = self.choices.keys().next().cloned() else {
                break;
            };
            let mut options = self.choices.remove(&key).unwrap_or_default();
            if options.is_empty() {
                continue;
            }
            let pick = (self.rng.next() % options.len() as u64) as usize;
            let choice = options.swap_remove(pick);
            self.step(Input::Choice { choice }, 0)?;
            any = true;
        }
        Ok(any)
    }

    /// Offers the parked client requests again (forgetting those older than [`PARK_TTL`]), as
    /// long as some step takes one; returns whether any did.
    fn retry_parked(&mut self) -> Result<bool, HostError> {
        let now = Instant::now();
        self.parked
            .retain(|(t, ..)| now.duration_since(*t) < PARK_TTL);
        let mut any = false;
        loop {
            let mut progressed = false;
            let mut still = VecDeque::new();
            while let Some((t, src, msg)) = self.parked.pop_front() {
                let input = Input::Msg {
                    src,
                    msg: msg.clone(),
                };
                if self.step(input, 0)? {
                    progressed = true;
                } else {
                    still.push_back((t, src, msg));
                }
            }
            self.parked = still;
            any |= progressed;
            if !progressed || self.parked.is_empty() {
                return Ok(any);
            }
        }
    }
}
