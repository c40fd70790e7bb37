//! Model `quorum`: 4/6 quorum writes and single-node reads under crashes, disk loss and an
//! unordered (optionally lossy) network.
//!
//! # The system
//! Six segments (two per AZ in three AZs), one writer and two scripted clients:
//! - the *app* client (`client0`) writes `writes` values one after another, reading after each: a read after
//!   its own acknowledged write, so a stale read is a real-time violation;
//! - the *reader* client (`client1`) starts at any moment (before or after a commit, so that its
//!   reads can be stale or see an uncommitted record) and issues `reads` reads concurrently with
//!   the writes. With `inflight` above 1 the app client pipelines its writes (a read still
//!   waits for every earlier write), so the writer's commit queue holds several and LAL can bind.
//!
//! The writer opens the volume with a 3/6 quorum read of SCLs, then ships every record to all six
//! segments, computes VDL from their acks and acknowledges commits at or below it. Reads go to one
//! segment chosen from the writer's SCL bookkeeping.
//!
//! # Faults
//! Layered over stateright's `ActorModel` by [`QuorumModel`], because `ActorModel` lets any actor
//! crash (clients too) and has no disk loss:
//! - messages are delayed and reordered (unordered network); with `lossy` they may also be lost;
//! - up to `crashes` crash-restarts of segments: the segment loses its volatile state and restarts
//!   from its saved log. **[choice]** Crash and recovery are one atomic step here. While a segment
//!   is down it takes no step and messages to it wait, which the unordered network already allows
//!   (any delivery can be delayed), so a crash at time c with recovery at time r is the same
//!   behaviour as a restart at r; splitting them would only multiply the states. A restart that
//!   changes nothing (a segment saves everything it holds) is skipped like a no-op delivery;
//! - up to `losses` permanent disk losses: the segment is gone for good, its storage with it, and
//!   messages to it are dropped (they could never be delivered);
//! - never more than three segments (an AZ plus one) lost.
//! - **[choice]** the writer's open-retry timer fires only when a segment it asked has lost its
//!   disk (a perfect failure detector), unless `spurious_timeouts` is set. A spurious retry only
//!   asks one more segment for its SCL, and the writer opens on any three answers, so it adds
//!   orderings but no new kind of behaviour; it costs over 5× the states.
//! - **[choice]** segments' gossip timers never fire here: this model checks quorums, not gap
//!   repair (the `gossip` model, [`crate::check::gossip`], does). A segment arms its timer exactly when
//!   it has a gap and cancels it when the gap closes, so the armed timer is a function of the log
//!   and adds no states.
//!
//! # Properties
//! The history is a ghost variable ([`Ghost`]) updated as messages are sent. It is cheaper than
//! stateright's `LinearizabilityTester` and, for this system, equivalent to linearizability of the
//! register: there is one writer, which orders all writes by LSN, so a read is linearizable iff it
//! returns a version no older than every write acknowledged before the read was issued and no
//! newer than what was committed when it was served.
//! - **durability** (always): every acknowledged commit is held in the durable storage of enough
//!   surviving segments that every read quorum of surviving segments contains it;
//! - **no stale read** (always): no read returns a version older than the newest commit the writer
//!   acknowledged before the read was issued;
//! - **no uncommitted read** (always): no segment serves a version above the VDL of the moment;
//! - paired `sometimes` properties show each is exercised: a commit is acknowledged, a read
//!   returns a committed value, a disk is lost after a commit (and durability still held).

use crate::check::properties::{self, Judged};
use crate::protocol::actor::{Node, NodeState};
use crate::protocol::client::{Client, Op};
use crate::protocol::config::{Config, Geometry, SEGMENTS};
use crate::protocol::control;
use crate::protocol::effects::Choice;
use crate::protocol::effects::{NodeStorage, NodeTimer};
use crate::protocol::msg::{Epoch, Lsn, Msg, Record, ReqId, FIRST_EPOCH};
use crate::protocol::storage_node::StorageNode;
use crate::protocol::topology::{writer_id, Topology};
use crate::protocol::writer::{Writer, WriterState};
use crate::trace::{self, apply, ActorSpec, Header, Input, Line, Output, Step, TRACE_VERSION};
use serde::{Deserialize, Serialize};
use stateright::actor::{
    ActorModel, ActorModelAction, ActorModelState, Envelope, Id, LossyNetwork, Network,
};
use stateright::{Model, Path, Property};

/// Id of the writer in the model (epoch 1): it follows the six segments.
pub const WRITER: usize = writer_id(FIRST_EPOCH);
/// Most segments whose disks may be lost: an AZ plus one.
pub const MAX_DOWN: usize = 3;
/// Id of the writer the `failover` model promotes (epoch 2), right after the first.
pub const NEW_WRITER: usize = writer_id(FIRST_EPOCH + 1);

/// Every message in flight, each as many times as it is in flight. Stateright 0.31's
/// `Network::iter_all` yields a message held `n > 1` times `n + 1` times (its iterator counts
/// down past the copy it has already yielded), so a network rebuilt from it gains a copy of
/// every duplicated message on every rebuild, and a model that rebuilds on every step (dead
/// letters, symmetry) grows without bound. Read the multiset itself instead.
pub fn in_flight(network: &Network<Msg>) -> Vec<Envelope<&Msg>> {
    match network {
        Network::UnorderedNonDuplicating(multiset) => multiset
            .iter()
            .flat_map(|(e, &n)| {
                let env = Envelope {
                    src: e.src,
                    dst: e.dst,
                    msg: &e.msg,
                };
                std::iter::repeat_n(env, n)
            })
            .collect(),
        other => other.iter_all().collect(),
    }
}

/// The network with only the messages `keep` accepts, duplicates counted right ([`in_flight`]).
pub fn rebuilt(network: &Network<Msg>, keep: impl Fn(&Envelope<&Msg>) -> bool) -> Network<Msg> {
    Network::new_unordered_nonduplicating(
        in_flight(network)
            .into_iter()
            .filter(|e| keep(e))
            .map(|e| e.to_cloned_msg()),
    )
}

/// `read from seg3/az1` or `ask seg4/az2`.
fn describe_choice(t: &Topology, choice: &Choice) -> String {
    match choice {
        Choice::ReadFrom { segment, .. } => format!("read from {}", t.name(*segment)),
        Choice::Ask { segment } => format!("ask {}", t.name(*segment)),
        Choice::PullFrom { segment } => format!("pull from {}", t.name(*segment)),
        Choice::Quorum { segments } => format!(
            "query {}",
            (0..SEGMENTS)
                .filter(|i| segments & (1 << i) != 0)
                .map(|i| t.name(i))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The bounds of an exhaustive run: every behaviour within them is explored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Bounds {
    /// Writes the app client issues: one at a time, each followed by a read (with `inflight`
    /// 1), or pipelined and followed by one read.
    pub writes: u8,
    /// Reads the reader client issues concurrently (the app client always reads once at the end).
    pub reads: u8,
    /// Crash-restarts of segments (each restarts from its saved log).
    pub crashes: u8,
    /// Permanent disk losses of segments.
    pub losses: u8,
    /// Whether the network may also lose messages.
    pub lossy: bool,
    /// Whether timers may fire spuriously, before the segment they wait for is really gone.
    pub spurious_timeouts: bool,
    /// Whether segments repair gaps by gossip (the `failover` model; `gossip` always does).
    pub gossip: bool,
    /// Promotions the control plane may make, each to a writer of the next epoch (the
    /// `failover` model: 1 to 3; 0 elsewhere).
    pub failovers: u8,
    /// Writes the app client may have outstanding at once (1 to `writes`). Above 1 the writes
    /// go out together and one read follows them all, so the commit queue holds several, a
    /// zombie can leave several records above VDL, and a small LAL (`Config::lal`) binds.
    pub inflight: u8,
}

impl Bounds {
    /// The `--deep` preset: two writes, so that gaps and SCL ordering come into play
    /// (2.6 M unique states, about a minute on two cores).
    pub fn deep() -> Self {
        Bounds {
            writes: 2,
            ..Bounds::default()
        }
    }
}

/// The defaults of `sixfold check`: every property, every `sometimes` and every mutant is
/// exercised (61 k unique states, seconds on two cores).
impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            writes: 1,
            reads: 1,
            crashes: 1,
            losses: 1,
            lossy: false,
            spurious_timeouts: false,
            gossip: false,
            failovers: 0,
            inflight: 1,
        }
    }
}

/// A pending read in the ghost history: who asked, and the newest commit acknowledged by then.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OpenRead {
    /// The client.
    pub client: Id,
    /// Its request number.
    pub req: ReqId,
    /// The newest LSN acknowledged as committed when the read was issued.
    pub floor: Lsn,
}

/// Auxiliary (ghost) state: what the properties need to know about the past, plus the fault
/// bookkeeping the wrapper adds. It is part of the model state, so keep it small.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ghost {
    /// Highest LSN the writer has acknowledged as committed (= its VDL).
    pub committed: Lsn,
    /// Reads issued and not yet answered.
    pub open_reads: Vec<OpenRead>,
    /// A read returned a version older than a commit acknowledged before it was issued.
    pub stale_read: bool,
    /// A segment served a version above the committed point.
    pub uncommitted_read: bool,
    /// A read returned a committed, non-initial value.
    pub committed_read: bool,
    /// Segments whose disk is permanently lost, as a bitset.
    pub lost: u8,
    /// Crash-restarts so far.
    pub crashes: u8,
    /// Every record the writer has shipped, in LSN order (for the `gossip` model's "no
    /// fabrication": a record is only ever one the writer issued).
    pub issued: Vec<Record>,
    /// Appends the `gossip` model's network has lost so far.
    pub drops: u8,
    /// A gossip push filled (part of) a gap.
    pub gossip_filled: bool,
    /// Every recovery so far, oldest first: its epoch and the VDL it kept (noted when the new
    /// writer opens).
    pub recoveries: Vec<(Epoch, Lsn)>,
    /// The epochs (as a bitset) whose writer has acknowledged a commit: their recovery is
    /// established, its truncation on a write quorum with that commit.
    pub established: u8,
    /// The highest LSN a read has returned.
    pub read_high: Lsn,
    /// A recovery voided a record a read had returned.
    pub voided_read: bool,
    /// A recovery kept less than what had been acknowledged (durability across failover).
    pub lost_commit: bool,
    /// A superseded writer acknowledged a record above what the recovery kept.
    pub stale_commit: bool,
    /// A read returned a record a recovery voided (an older epoch's record above its VDL).
    pub resurrected_read: bool,
    /// A writer of a later epoch than the first acknowledged a commit: a failover completed.
    pub failover_commit: bool,
    /// A segment refused an Append from a superseded epoch.
    pub zombie_refused: bool,
    /// A segment dropped a record because a truncation voided it.
    pub truncated: bool,
    /// Writers the control plane has promoted so far.
    pub promotions: u8,
    /// The geometry whose read quorums durability is judged against (a constant of the run).
    pub geometry: Geometry,
    /// In `failover` with a reader: the reader has not started, and this is the initial state
    /// or the last step acknowledged a commit, so starting it now is a new behaviour (see
    /// [`QuorumModel::reader_may_start`]). Always false elsewhere.
    pub reader_may_start: bool,
    /// Zero in every real state. A symmetry representative ([`crate::check::symmetry`]) is an
    /// otherwise empty state whose `class` is the fingerprint of its symmetry class.
    pub class: u64,
}

/// The state of the quorum model: stateright's actor-system state with our ghost history.
pub type QuorumState = ActorModelState<Node, Ghost>;

/// A step of the quorum model: an actor-system step, a segment restart, or a disk loss.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum QuorumAction {
    /// Deliver, drop or fire a timer, as in stateright's `ActorModel`.
    Actor(ActorModelAction<Msg, NodeTimer, Choice>),
    /// The segment crashes and restarts from its saved log.
    Restart(Id),
    /// The segment's disk is gone for good.
    LoseDisk(Id),
    /// The control plane promotes this standby writer, in the next epoch. Its rule
    /// ([`control::may_promote`]) makes it wait out the current writer's lease first: the old
    /// writer's `Lease` timer fires, then the new writer starts. Under `no-lease-wait` it does
    /// not wait, and the old writer keeps its lease.
    Promote(Id),
    /// The reader client starts and issues its first read (at any moment: before or after
    /// commits).
    StartReader(Id),
}

impl QuorumAction {
    /// Whether this step is a fault the environment injects (a crash, a disk loss, a lost
    /// message, a promotion) rather than the system's own progress. Seeded walks take faults
    /// rarely, so that a walk at deep bounds makes progress between them rather than spending its
    /// fault budget in its first steps.
    pub fn is_fault(&self) -> bool {
        matches!(
            self,
            QuorumAction::Restart(_)
                | QuorumAction::LoseDisk(_)
                | QuorumAction::Promote(_)
                | QuorumAction::Actor(ActorModelAction::Drop(_))
        )
    }
}

/// The quorum model: an `ActorModel` of the protocol wrapped to add disk loss and to confine
/// crashes to segments within the AZ+1 budget.
#[derive(Clone)]
pub struct QuorumModel {
    /// The actor system.
    pub inner: ActorModel<Node, Config, Ghost>,
    /// The bounds explored.
    pub bounds: Bounds,
    /// Whether segments' gossip timers may fire (set by the `gossip` model).
    pub gossip: bool,
    /// The model's name in trace headers.
    pub name: &'static str,
    /// Whether standby writers ([`NEW_WRITER`] and after) wait to be promoted (the `failover`
    /// model).
    pub failover: bool,
    /// The reader client's actor id, if it has reads to make (it is down until it starts).
    pub reader: Option<usize>,
    /// Who is who: the writers, then the clients (app, reader, and in `failover` the new app).
    pub topology: Topology,
}

impl Ghost {
    /// The ghost after `src` sent `msg` to `dst`, or `None` if the send changes nothing. Replay
    /// calls this too, so a recorded run is judged by the same history rules as the model.
    pub fn observe_send(&self, src: Id, dst: Id, msg: &Msg) -> Option<Ghost> {
        let mut h = self.clone();
        match msg {
            Msg::WriteOk { lsn, epoch, .. } => {
                h.committed = h.committed.max(*lsn);
                h.stale_commit |= h.voids(*epoch, *lsn, false);
                h.established |= 1 << (*epoch).min(7);
                h.failover_commit |= *epoch > FIRST_EPOCH;
            }
            Msg::Fenced { lsn: Some(_), .. } if !h.zombie_refused => h.zombie_refused = true,

            Msg::Read { req, .. } => h.open_reads.push(OpenRead {
                client: src,
                req: *req,
                floor: h.committed,
            }),
            Msg::ReadReply {
                version: Some(v), ..
            } => {
                let kept = h.recoveries.iter().max().map_or(0, |&(_, kept)| kept);
                let resurrected = h.voids(v.epoch, v.lsn, true);
                let uncommitted = v.lsn > h.committed.max(kept);
                if !resurrected && !uncommitted {
                    return None;
                }
                h.resurrected_read |= resurrected;
                h.uncommitted_read |= uncommitted;
            }
            Msg::ReadOk { req, version } => {
                let at = h
                    .open_reads
                    .iter()
                    .position(|r| r.client == dst && r.req == *req)?;
                let read = h.open_reads.remove(at);
                h.stale_read |= version.lsn < read.floor;
                h.read_high = h.read_high.max(version.lsn);
                h.committed_read |= version.lsn > 0 && version.lsn <= h.committed;
            }
            _ => return None,
        }
        Some(h)
    }

    /// A writer of `epoch` opened the volume after recovering up to `vdl`: from now on, nothing
    /// an older writer acknowledges above `vdl` is a real commit, and if something above it had
    /// already been acknowledged, the recovery lost it. The `failover` model and replay both call
    /// this when they see a writer of a later epoch than the first open.
    /// A recovery that completes after a newer epoch's is superseded: its writer has lost its
    /// lease and cannot commit, and newer writers' Appends make segments forget its truncation
    /// ([`crate::protocol::log::Log::adopt`]), so it decides nothing about what is kept.
    pub fn observe_recovery(&mut self, epoch: Epoch, vdl: Lsn) {
        let superseded = self.recoveries.iter().any(|&(e, _)| e > epoch);
        self.recoveries.push((epoch, vdl));
        if !superseded {
            self.lost_commit |= self.committed > vdl;
            self.voided_read |= self.read_high > vdl;
        }
    }

    /// Whether some recovery voided the LSN `lsn` as written in `epoch`: a later epoch's
    /// recovery kept less than `lsn` (with `established`, only a recovery whose writer has
    /// acknowledged a commit). A recovery whose writer dies before any commit may have left
    /// its truncation on no segment, and a later recovery that does not learn of it keeps what
    /// it finds: harmless, since that writer acknowledged nothing and served reads only at or
    /// below the VDL it kept, so no client saw anything that depends on the range being void.
    fn voids(&self, epoch: Epoch, lsn: Lsn, established: bool) -> bool {
        self.recoveries.iter().any(|&(e, kept)| {
            epoch < e && lsn > kept && (!established || self.established & 1 << e.min(7) != 0)
        })
    }

    /// Observes one step of the writer of `epoch`, from `before` to `after` (`None` while it is
    /// down): if a writer of a later epoch than the first finished opening, its recovery is
    /// observed. The one rule for "a recovery happened", used by the `failover` model and replay.
    pub fn observe_writer_step(
        &mut self,
        epoch: Epoch,
        before: Option<&WriterState>,
        after: Option<&WriterState>,
    ) {
        if let (Some(b), Some(a)) = (before, after) {
            if epoch > FIRST_EPOCH && b.opening.is_some() && a.opening.is_none() {
                self.observe_recovery(epoch, a.vdl);
            }
        }
    }

    /// Durability: every LSN up to `committed` (other than truncated ones, which hold no record)
    /// is held in the saved log of enough surviving
    /// segments (`storages` by segment index, `lost` a bitset) that every read quorum of
    /// surviving segments (the geometry's: three, one of them full, whatever quorum a mutant
    /// uses) contains it.
    pub fn durable(&self, storages: &[Option<NodeStorage>]) -> bool {
        let survivors = !self.lost & ((1 << SEGMENTS) - 1);
        (1..=self.committed).all(|lsn| {
            let missing = (0..SEGMENTS)
                .filter(|&i| survivors & (1 << i) != 0)
                .filter(|&i| match &storages[i] {
                    // A truncated LSN holds no record: knowing the range is holding it.
                    Some(NodeStorage::Segment(log)) => {
                        !(log.contains(lsn) || log.truncations().iter().any(|t| t.covers(lsn)))
                    }
                    None => true,
                })
                .fold(0u8, |set, i| set | 1 << i);
            !self.geometry.is_read_quorum(missing)
        })
    }
}

fn record_out(_cfg: &Config, h: &Ghost, env: Envelope<&Msg>) -> Option<Ghost> {
    h.observe_send(env.src, env.dst, env.msg)
}

impl QuorumModel {
    /// The model of the protocol configured by `cfg`, explored within `bounds`.
    pub fn new(cfg: Config, bounds: Bounds) -> Self {
        Self::build(cfg, bounds, false)
    }

    /// The same system with `bounds.failovers` standby writers ([`NEW_WRITER`], epoch 2, and
    /// after) that the control plane promotes one after another, each with its client, which
    /// reads, writes one value and reads it back. Superseded writers stay up as zombies (see
    /// [`crate::check::failover`]).
    pub fn with_failover(cfg: Config, bounds: Bounds) -> Self {
        Self::build(cfg, bounds, true)
    }

    fn build(cfg: Config, bounds: Bounds, failover: bool) -> Self {
        let segments: [Id; SEGMENTS] = std::array::from_fn(Id::from);
        let writer = Id::from(WRITER);
        // Sequential, each write is read back; pipelined (`inflight` > 1), the writes go out
        // together and one read follows them all (a read is a barrier, so reads between the
        // writes would leave nothing to pipeline).
        let writes = (1..=bounds.writes as u64).map(|v| Op::Write(0, 10 * v));
        let app_script: Vec<Op> = if bounds.inflight > 1 {
            writes.chain([Op::Read(0)]).collect()
        } else {
            writes.flat_map(|w| [w, Op::Read(0)]).collect()
        };
        // In `failover` the old writer's client only writes: after promotion its reads are
        // refused by the lease rule, and the reads that matter are the new client's.
        let app_script = app_script
            .into_iter()
            .filter(|o| !(failover && matches!(o, Op::Read(_))))
            .collect();
        let reader_script = vec![Op::Read(0); bounds.reads as usize];
        let writers = if failover {
            1 + bounds.failovers.max(1)
        } else {
            1
        };

        let ghost = Ghost {
            geometry: cfg.geometry,
            ..Ghost::default()
        };
        let mut inner = ActorModel::new(cfg, ghost)
            .actors((0..SEGMENTS).map(|_| Node::Segment(StorageNode::new(cfg))))
            .actors((0..writers).map(|n| {
                Node::Writer(Writer {
                    cfg,
                    segments,
                    epoch: FIRST_EPOCH + Epoch::from(n),
                })
            }));
        inner = inner.actor(Node::Client(Client {
            writer,
            script: app_script,
            window: bounds.inflight,
        }));
        let reader = (bounds.reads > 0 || failover).then_some(inner.actors.len());
        if reader.is_some() {
            inner = inner.actor(Node::Client(Client {
                writer,
                script: reader_script,
                window: 1,
            }));
        }
        for n in 1..writers {
            // With a chain of failovers, each new writer's client reads, then writes: a read
            // served right after recovery, which a later recovery must not void (the case the
            // repair rule exists for). With one failover nothing comes later to void it, and
            // the client writes, then reads its write back, as the runtime's clients do.
            let value = 10 * (u64::from(bounds.writes) + u64::from(n));
            let script = if writers > 2 {
                vec![Op::Read(0), Op::Write(0, value)]
            } else {
                vec![Op::Write(0, value), Op::Read(0)]
            };
            inner = inner.actor(Node::Client(Client {
                writer: Id::from(writer_id(FIRST_EPOCH + Epoch::from(n))),
                script,
                window: 1,
            }));
        }
        let writers = Epoch::from(writers);
        let topology = Topology {
            writers,
            clients: inner.actors.len() - writer_id(FIRST_EPOCH + writers),
        };
        let actor_count = inner.actors.len();
        let inner = inner
            .init_network(Network::new_unordered_nonduplicating([]))
            .lossy_network(if bounds.lossy {
                LossyNetwork::Yes
            } else {
                LossyNetwork::No
            })
            // Crashes are chosen by this wrapper; the inner limit only keeps `Crash` actions
            // available so that paths can be replayed on the inner model (for the SVG).
            .max_crashes(actor_count)
            .record_msg_out(record_out);
        QuorumModel {
            inner,
            bounds,
            gossip: failover && bounds.gossip,
            name: if failover { "failover" } else { "quorum" },
            failover,
            reader: reader.filter(|_| bounds.reads > 0),
            topology,
        }
    }

    /// The readable name of actor `id` (see [`Topology::name`]).
    pub fn name(&self, id: Id) -> String {
        self.topology.name(id.into())
    }

    /// The protocol configuration in force.
    pub fn cfg(&self) -> &Config {
        &self.inner.cfg
    }

    /// Messages to a segment whose disk is lost can never be delivered: drop them, so that states
    /// differing only in such dead letters are one state.
    fn forget_lost(mut state: QuorumState) -> QuorumState {
        let lost = state.history.lost;
        let dead = |e: &Envelope<&Msg>| {
            let d = usize::from(e.dst);
            d < SEGMENTS && lost & (1 << d) != 0
        };
        if lost != 0 && state.network.iter_all().any(|e| dead(&e)) {
            state.network = rebuilt(&state.network, |e| !dead(e));
        }
        state
    }

    /// Whether a message that may bring records (an Append or a gossip push) is on its way to
    /// the segment. In the `failover` model a segment pulls only when none is: gossip there
    /// repairs what recovery left behind, not Appends that are merely late (the `gossip` model
    /// covers those races).
    fn records_in_flight(state: &QuorumState, id: Id) -> bool {
        state
            .network
            .iter_all()
            .any(|e| e.dst == id && matches!(e.msg, Msg::Append { .. } | Msg::GossipPush { .. }))
    }

    /// Messages whose delivery can never change anything again: a late `SclReport` to a writer
    /// that has opened, a `Fenced` to a writer already deposed, a `NotWriter` (the scripted
    /// clients do not redirect), a repair answer the writer no longer waits for, an ack that
    /// reports no more than the writer already knows. Stateright leaves a message whose
    /// delivery is a no-op in the network, so without this, states would differ only in such dead
    /// letters.
    fn forget_dead_letters(mut state: QuorumState) -> QuorumState {
        let dead = |e: &Envelope<&Msg>| {
            let w = state
                .actor_states
                .get(usize::from(e.dst))
                .and_then(|s| s.as_writer());
            match (e.msg, w) {
                (Msg::NotWriter { .. }, _) => true,
                (Msg::SclReport { .. }, Some(w)) => w.opening.is_none(),
                (Msg::Fenced { .. }, Some(w)) => w.deposed,
                (Msg::GossipPush { .. }, Some(w)) => !w.repairing && w.opening.is_none(),
                // The writer's bookkeeping of a segment's SCL only grows here (segments never
                // lose what they acked but by losing their disk for good), so an ack at or
                // below it can never count again.
                (Msg::Ack { scl, .. }, Some(w)) => {
                    usize::from(e.src) < SEGMENTS
                        && w.opening.is_none()
                        && *scl <= w.scl[usize::from(e.src)]
                }
                _ => false,
            }
        };
        if state.network.iter_all().any(|e| dead(&e)) {
            state.network = rebuilt(&state.network, |e| !dead(e));
        }
        state
    }

    /// Whether a writer is still opening and some segment it asked will never answer.
    fn open_is_stuck(&self, state: &QuorumState, writer: usize) -> bool {
        state.actor_states[writer]
            .as_writer()
            .and_then(|w| w.opening.map(|answered| w.queried & !answered))
            .is_some_and(|waiting| waiting & state.history.lost != 0)
    }

    /// One step of the wrapper's actions, before the reader-start bookkeeping of
    /// [`Model::next_state`].
    fn step(&self, last: &QuorumState, action: QuorumAction) -> Option<QuorumState> {
        match action {
            QuorumAction::Restart(id) => {
                let crashed = self.inner.next_state(last, ActorModelAction::Crash(id))?;
                let mut next = self
                    .inner
                    .next_state(&crashed, ActorModelAction::Recover(id))?;
                // A restart that changes nothing (everything volatile was saved, no timer was
                // lost, nothing is sent) is not a new behaviour: skip it, as stateright skips
                // no-op deliveries.
                let i = usize::from(id);
                if next.actor_states[i] == last.actor_states[i]
                    && next.timers_set[i] == last.timers_set[i]
                    && next.network == last.network
                {
                    return None;
                }
                next.history.crashes += 1;
                Some(next)
            }
            QuorumAction::Actor(a) => {
                let next = self.inner.next_state(last, a)?;
                Some(Self::forget_dead_letters(Self::forget_lost(next)))
            }
            QuorumAction::Promote(id) => {
                let old = Id::from(usize::from(id) - 1);
                // The rule is asked whether it may promote before the lease has run out; if
                // not, the control plane waits it out: the old writer's lease timer fires.
                let at_once = control::may_promote(self.cfg(), false);
                let expired = if at_once {
                    last.clone()
                } else {
                    self.inner
                        .next_state(last, ActorModelAction::Timeout(old, NodeTimer::Lease))?
                };
                let mut next = self
                    .inner
                    .next_state(&expired, ActorModelAction::Recover(id))?;
                next.history.promotions += 1;
                Some(Self::forget_lost(next))
            }
            QuorumAction::StartReader(id) => {
                self.inner.next_state(last, ActorModelAction::Recover(id))
            }
            QuorumAction::LoseDisk(id) => {
                let i = usize::from(id);
                let mut next = last.clone();
                next.crashed[i] = true;
                next.timers_set[i].cancel_all();
                next.actor_storages[i] = None;
                next.history.lost |= 1 << i;
                Some(Self::forget_lost(next))
            }
        }
    }

    /// Whether the reader may start now. In `quorum`, at any moment while it is down. In
    /// `failover`, only at the start or right after a step that acknowledged a commit: starting
    /// does nothing but send one `Read` (whose judging floor is the commits acknowledged so
    /// far) and touches no other actor, so it commutes with every step that acknowledges
    /// nothing, and a start after such steps is the same behaviour as a start before them with
    /// its `Read` delivered later. This cuts the moments it may start from every state to one per
    /// commit, which is what lets walks reach `no-lease-wait`'s stale read in under a second.
    fn reader_may_start(&self, state: &QuorumState) -> bool {
        self.reader.is_some_and(|r| state.crashed[r])
            && (!self.failover || state.history.reader_may_start)
    }

    /// The control plane's move in the `failover` model: while standbys are left, promote the
    /// next one.
    fn control_actions(&self, state: &QuorumState, actions: &mut Vec<QuorumAction>) {
        let promoted = Epoch::from(state.history.promotions);
        if self.failover && promoted + 1 < self.topology.writers {
            let next = writer_id(FIRST_EPOCH + promoted + 1);
            actions.push(QuorumAction::Promote(Id::from(next)));
        }
    }

    /// Whether every committed LSN is on enough surviving segments (see [`Ghost::durable`]).
    pub fn durable(&self, state: &QuorumState) -> bool {
        state.history.durable(&state.actor_storages)
    }

    /// Replays `path` on the inner actor model, mapping disk loss to a crash, for drawing.
    fn inner_path(
        &self,
        path: &Path<QuorumState, QuorumAction>,
    ) -> Option<Path<QuorumState, ActorModelAction<Msg, NodeTimer, Choice>>> {
        // The inner model starts every actor; the standbys and the reader go down first.
        let init = self.inner.init_states().into_iter().next()?;
        let ours = self.init_states().into_iter().next()?;
        let down = (0..ours.crashed.len())
            .filter(|&i| ours.crashed[i])
            .map(|i| ActorModelAction::Crash(Id::from(i)));
        let actions: Vec<_> = down
            .chain(
                path.clone()
                    .into_actions()
                    .into_iter()
                    .flat_map(|a| match a {
                        QuorumAction::Actor(a) => vec![a],
                        QuorumAction::Restart(id) => {
                            vec![ActorModelAction::Crash(id), ActorModelAction::Recover(id)]
                        }
                        QuorumAction::LoseDisk(id) => vec![ActorModelAction::Crash(id)],
                        QuorumAction::Promote(id) if !control::may_promote(self.cfg(), false) => {
                            vec![
                                ActorModelAction::Timeout(
                                    Id::from(usize::from(id) - 1),
                                    NodeTimer::Lease,
                                ),
                                ActorModelAction::Recover(id),
                            ]
                        }
                        QuorumAction::Promote(id) | QuorumAction::StartReader(id) => {
                            vec![ActorModelAction::Recover(id)]
                        }
                    }),
            )
            .collect();
        Path::from_actions(&self.inner, init, &actions)
    }
}

impl Model for QuorumModel {
    type State = QuorumState;
    type Action = QuorumAction;

    fn init_states(&self) -> Vec<QuorumState> {
        let mut states = self.inner.init_states();
        // The standby writers are down until promoted, the reader until it starts: nothing of
        // their start survives.
        let standbys = writer_id(FIRST_EPOCH + 1)..writer_id(FIRST_EPOCH + self.topology.writers);
        for s in &mut states {
            for id in standbys.clone().chain(self.reader) {
                s.crashed[id] = true;
                s.timers_set[id].cancel_all();
                s.random_choices[id].map.clear();
                s.network = rebuilt(&s.network, |e| usize::from(e.src) != id);
                s.history.open_reads.retain(|r| usize::from(r.client) != id);
            }
            s.history.reader_may_start = self.failover && self.reader.is_some();
        }
        states
    }

    fn actions(&self, state: &QuorumState, actions: &mut Vec<QuorumAction>) {
        let mut inner = Vec::new();
        self.inner.actions(state, &mut inner);
        let lost = state.history.lost;
        actions.extend(
            inner
                .into_iter()
                .filter(|a| match a {
                    ActorModelAction::Crash(_) | ActorModelAction::Recover(_) => false,
                    ActorModelAction::Timeout(id, NodeTimer::Gossip) => {
                        self.gossip && (!self.failover || !Self::records_in_flight(state, *id))
                    }
                    ActorModelAction::Timeout(_, NodeTimer::Lease) => false,
                    ActorModelAction::Timeout(id, NodeTimer::OpenRetry) => {
                        self.bounds.spurious_timeouts || self.open_is_stuck(state, usize::from(*id))
                    }
                    _ => true,
                })
                .map(QuorumAction::Actor),
        );
        self.control_actions(state, actions);
        // The reader starts before a commit (so that it may see an uncommitted record) or
        // after one (so that a stale read is possible): see `reader_may_start` for when.
        if let Some(r) = self.reader.filter(|_| self.reader_may_start(state)) {
            actions.push(QuorumAction::StartReader(Id::from(r)));
        }
        for i in (0..SEGMENTS).filter(|i| lost & (1 << i) == 0) {
            if state.history.crashes < self.bounds.crashes {
                actions.push(QuorumAction::Restart(Id::from(i)));
            }
            if (lost.count_ones() as u8) < self.bounds.losses.min(MAX_DOWN as u8) {
                actions.push(QuorumAction::LoseDisk(Id::from(i)));
            }
        }
    }

    fn next_state(&self, last: &QuorumState, action: QuorumAction) -> Option<QuorumState> {
        let mut next = self.step(last, action)?;
        if self.failover {
            next.history.reader_may_start = self.reader.is_some_and(|r| next.crashed[r])
                && next.history.committed > last.history.committed;
        }
        Some(next)
    }

    fn format_action(&self, action: &QuorumAction) -> String {
        match action {
            QuorumAction::Actor(ActorModelAction::Deliver { src, dst, msg }) => {
                format!("{} → {} : {msg:?}", self.name(*src), self.name(*dst))
            }
            QuorumAction::Actor(ActorModelAction::Drop(env)) => format!(
                "network drops {} → {} : {:?}",
                self.name(env.src),
                self.name(env.dst),
                env.msg
            ),
            QuorumAction::Actor(ActorModelAction::Timeout(id, t)) => {
                format!("{} timer {t:?} fires", self.name(*id))
            }
            QuorumAction::Actor(ActorModelAction::SelectRandom { actor, random, .. }) => {
                format!(
                    "{} picks {}",
                    self.name(*actor),
                    describe_choice(&self.topology, random)
                )
            }
            QuorumAction::Actor(a) => self.inner.format_action(a),
            QuorumAction::Restart(id) => format!("{} crashes and restarts", self.name(*id)),
            QuorumAction::LoseDisk(id) => format!("{} loses its disk for good", self.name(*id)),
            QuorumAction::Promote(id) if control::may_promote(self.cfg(), false) => format!(
                "control plane promotes {} without waiting out {}'s lease",
                self.name(*id),
                self.name(Id::from(usize::from(*id) - 1))
            ),
            QuorumAction::Promote(id) => format!(
                "control plane: {}'s lease runs out, {} is promoted",
                self.name(Id::from(usize::from(*id) - 1)),
                self.name(*id)
            ),
            QuorumAction::StartReader(id) => format!("{} starts", self.name(*id)),
        }
    }

    /// What the acting actor did: one line per output, then its new state.
    fn format_step(&self, last: &QuorumState, action: QuorumAction) -> Option<String> {
        let (id, input) = match action {
            QuorumAction::Actor(ActorModelAction::Deliver { src, dst, msg }) => (
                dst,
                Input::Msg {
                    src: src.into(),
                    msg,
                },
            ),
            QuorumAction::Actor(ActorModelAction::Timeout(id, timer)) => {
                (id, Input::Timer { timer })
            }
            QuorumAction::Restart(id) => (
                id,
                Input::Start {
                    storage: last.actor_storages[usize::from(id)].clone(),
                },
            ),
            QuorumAction::Promote(id) | QuorumAction::StartReader(id) => {
                (id, Input::Start { storage: None })
            }
            QuorumAction::Actor(_) | QuorumAction::LoseDisk(_) => return None,
        };
        let i = usize::from(id);
        let (next, out) = apply(
            &self.inner.actors[i],
            id,
            Some(&last.actor_states[i]),
            &input,
        );
        let mut text = String::new();
        for o in trace::outputs(out) {
            let line = match o {
                Output::Send { dst, msg } => format!("sends {} : {msg:?}", self.name(dst.into())),
                Output::Save {
                    storage: NodeStorage::Segment(log),
                } => format!("saves {log:?}"),
                Output::SetTimer { timer } => format!("sets timer {timer:?}"),
                Output::CancelTimer { timer } => format!("cancels timer {timer:?}"),
                Output::Choose { key, choices } if choices.is_empty() => {
                    format!("withdraws choice {key:?}")
                }
                Output::Choose { key, choices } => format!(
                    "offers {key:?}: {}",
                    choices
                        .iter()
                        .map(|c| describe_choice(&self.topology, c))
                        .collect::<Vec<_>>()
                        .join(" | ")
                ),
            };
            text.push_str(&line);
            text.push('\n');
        }
        match next {
            Some(next) if next != *last.actor_states[i] => {
                text.push_str(&format!("becomes {next:?}\n"));
            }
            _ => {}
        }
        Some(text)
    }

    fn as_svg(&self, path: Path<QuorumState, QuorumAction>) -> Option<String> {
        self.inner.as_svg(self.inner_path(&path)?)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        properties::stateright_properties(self)
    }
}

impl Judged for QuorumModel {
    const PROPS: &'static [properties::Prop] = properties::QUORUM;

    fn bounds(&self) -> &Bounds {
        &self.bounds
    }
}

impl QuorumModel {
    /// The trace of a path through this model, in the format the runtime records: a header, the
    /// initial start of every actor, then one step per actor step (a restart is a crash and a
    /// start; a delivery to an actor that is down takes no step and is not in the path).
    pub fn trace(
        &self,
        path: &Path<QuorumState, QuorumAction>,
        violates: Option<&str>,
    ) -> Vec<Line> {
        let actors = &self.inner.actors;
        let lines = vec![Line::Header(Header {
            version: TRACE_VERSION,
            source: "model".into(),
            model: self.name.into(),
            config: *self.cfg(),
            actors: actors.iter().map(ActorSpec::of).collect(),
            violates: violates.map(str::to_string),
        })];
        let mut rec = Recorder {
            actors,
            states: vec![None; actors.len()],
            storages: vec![None; actors.len()],
            lines,
        };
        let init = &self.init_states()[0];
        for i in (0..actors.len()).filter(|&i| !init.crashed[i]) {
            rec.step(i, Input::Start { storage: None });
        }
        for action in path.clone().into_actions() {
            match action {
                QuorumAction::Actor(ActorModelAction::Deliver { src, dst, msg }) => rec.step(
                    dst.into(),
                    Input::Msg {
                        src: src.into(),
                        msg,
                    },
                ),
                QuorumAction::Actor(ActorModelAction::Timeout(id, timer)) => {
                    rec.step(id.into(), Input::Timer { timer })
                }
                QuorumAction::Actor(ActorModelAction::SelectRandom { actor, random, .. }) => {
                    rec.step(actor.into(), Input::Choice { choice: random })
                }
                QuorumAction::Actor(_) => {}
                QuorumAction::Restart(id) => {
                    let i = usize::from(id);
                    rec.step(i, Input::Crash);
                    let storage = rec.storages[i].clone();
                    rec.step(i, Input::Start { storage });
                }
                QuorumAction::LoseDisk(id) => rec.step(id.into(), Input::LoseDisk),
                QuorumAction::Promote(id) => {
                    if !control::may_promote(self.cfg(), false) {
                        let timer = NodeTimer::Lease;
                        rec.step(usize::from(id) - 1, Input::Timer { timer });
                    }
                    rec.step(id.into(), Input::Start { storage: None })
                }
                QuorumAction::StartReader(id) => {
                    rec.step(id.into(), Input::Start { storage: None })
                }
            }
        }
        rec.lines
    }
}

/// Replays actor steps to write them down as trace lines, tracking each actor's state and storage.
struct Recorder<'a> {
    actors: &'a [Node],
    states: Vec<Option<NodeState>>,
    storages: Vec<Option<NodeStorage>>,
    lines: Vec<Line>,
}

impl Recorder<'_> {
    fn step(&mut self, actor: usize, input: Input) {
        let (next, out) = apply(
            &self.actors[actor],
            Id::from(actor),
            self.states[actor].as_ref(),
            &input,
        );
        let outputs = trace::outputs(out);
        for o in &outputs {
            if let Output::Save { storage } = o {
                self.storages[actor] = Some(storage.clone());
            }
        }
        if let Input::LoseDisk = input {
            self.storages[actor] = None;
        }
        let digest = next.as_ref().map(trace::digest);
        self.states[actor] = next;
        self.lines.push(Line::Step(Step {
            actor,
            input,
            outputs,
            digest,
        }));
    }
}

#[cfg(test)]
mod network_tests {
    use super::*;

    #[test]
    fn in_flight_counts_each_duplicate_once() {
        let env = Envelope {
            src: Id::from(5),
            dst: Id::from(3),
            msg: Msg::GossipPull { from: 1 },
        };
        let net = Network::new_unordered_nonduplicating([env.clone(), env]);
        assert_eq!(net.len(), 2);
        assert_eq!(
            net.iter_all().count(),
            3,
            "stateright 0.31's iter_all over-counts"
        );
        assert_eq!(in_flight(&net).len(), 2);
        assert_eq!(rebuilt(&net, |_| true), net, "a rebuild keeps the multiset");
    }
}
