//! Model `failover`: the writer is replaced mid-stream, perhaps several times; each old one may
//! live on as a zombie.
//!
//! # The system
//! Six segments; the first writer (epoch 1) with the *app* client, which writes `writes` values
//! (up to `inflight` at once); `failovers` standby writers (epochs 2, 3, …), each with its own
//! client. With one failover that client writes one value and reads it back; with a chain, it
//! reads first and then writes: a read served right after a recovery, which a later recovery
//! must not void. With `reads`, a reader client of the first writer starts at any moment (before
//! or after commits, before or after promotions) and reads. With `gossip`, segments that
//! recovery leaves behind fill their gaps from peers (a segment pulls only when no Append or
//! push is on its way to it: here gossip repairs what recovery left, the `gossip` model covers
//! the races with late Appends).
//!
//! **The control plane** promotes the standbys one after another ([`QuorumAction::Promote`], at
//! any moment, `failovers` times). Its rule ([`crate::protocol::control::may_promote`], the one
//! the runtime's control plane asks too) makes it wait out the current writer's lease: the old
//! writer's `Lease` timer fires, then the new writer starts recovery
//! ([`crate::protocol::writer`]): a 3/6 quorum read that fences as it goes (which three
//! segments is a choice, explored in full), then it declares (VDL, VDL + LAL] void and opens;
//! the new epoch and the truncation ride on its Appends. **[choice]** The lease runs out in the
//! same step as the promotion, not as a step of its own at an earlier moment: an earlier expiry
//! only turns reads the old writer would have served into `NotWriter` refusals, which change no
//! history, so every violation an early expiry allows is also reached with the latest one, and
//! the separate step would only multiply the states. Mutant `no-lease-wait` promotes without
//! waiting, and the zombie keeps its lease: with a reader of the old writer ([`lease_bounds`]),
//! a read issued after the new writer's commit is served by a segment that has not seen the new
//! epoch, and returns the older value ("no stale commit" breaks). The reader starts only at the
//! beginning or right after a commit is acknowledged (the other moments are the same
//! behaviours, see `QuorumModel::reader_may_start`), and seeded walks find the stale read in a
//! fraction of a second; an exhaustive search with a reader is beyond the defaults (over 8 M
//! unique states unfinished after 300 s), so this mutant is found by walks, not by a proof.
//!
//! [`lease_bounds`]: FailoverModel::lease_bounds
//!
//! **The zombie.** The old writer is not stopped. It keeps accepting and shipping writes (a writer
//! that has not noticed, or a paused process that resumes: nothing but fencing stops those) and
//! its Appends, reads and queries already in flight are delivered in any order with everything
//! else. A writer that *crashes* mid-stream is the special case where the zombie never takes
//! another step, which the unordered network already contains (any delivery may be delayed past
//! the end of the run), so crashes of the writer need no action of their own. Reads are the one
//! thing the lease guards: once its lease has run out, the old writer answers `NotWriter` to new
//! reads.
//!
//! Faults and bounds are those of the `quorum` model (segment crash-restarts, disk losses within
//! AZ+1, optionally a lossy network and spurious timers): every property below is proven for all
//! behaviours with up to `writes` writes on the old writer, one on each new one, `failovers`
//! promotions, and the crash and loss budgets given.
//!
//! # Properties
//! - **durability across failover** (always): every acknowledged commit is in the recovered volume
//!   (the VDL each new writer keeps is at least the newest commit acknowledged before it declared
//!   it), and, as in `quorum`, every acknowledged commit is on enough surviving segments;
//! - **no stale commit** (always): no writer acknowledges a record above the VDL a newer epoch's
//!   recovery kept, and no read returns a version older than a commit acknowledged before the read
//!   was issued. A superseded writer *may* still acknowledge a record whose fourth ack was in
//!   flight when it was fenced: that record was on a write quorum before the fence, so the
//!   recovery kept it, and the property allows it;
//! - **no resurrection** (always): no read returns a record a recovery voided (written by an older
//!   epoch above the VDL it kept), and no segment holds, in memory or on disk, a record voided by a
//!   truncation it knows of (so it cannot serve, acknowledge or gossip it);
//! - **no voided read** (always): no recovery keeps less than the highest LSN a read has
//!   returned: a value a client saw is never voided later (mutant `no-repair` breaks it with
//!   two failovers; see the writer's repair rule);
//! - **no uncommitted read** (always): as in `quorum`, with "committed" including what recovery
//!   kept;
//! - `sometimes`: **a failover completes** (a new writer acknowledges a commit), **a zombie write
//!   is refused** (a segment answers an old-epoch Append with `Fenced`), **a truncation happens**
//!   (a segment drops a record because a truncation voids it).

use crate::check::properties::{self, Judged};
use crate::check::quorum::{Bounds, QuorumAction, QuorumModel, QuorumState};
use crate::protocol::config::{Config, SEGMENTS};
use crate::protocol::msg::{Epoch, FIRST_EPOCH};
use crate::protocol::topology::writer_id;
use crate::protocol::writer::WriterState;
use stateright::{Model, Path, Property};

/// The state of the writer of `epoch`, `None` until it is promoted.
fn writer(s: &QuorumState, epoch: Epoch) -> Option<&WriterState> {
    let id = writer_id(epoch);
    if s.crashed[id] {
        return None;
    }
    s.actor_states[id].as_writer()
}

/// The failover model: the quorum model's actors plus a standby writer.
#[derive(Clone)]
pub struct FailoverModel {
    /// The actor system and its step rendering.
    pub quorum: QuorumModel,
}

impl FailoverModel {
    /// The model of `cfg` within `bounds` (see the module docs for what they bound).
    pub fn new(cfg: Config, bounds: Bounds) -> Self {
        FailoverModel {
            quorum: QuorumModel::with_failover(cfg, bounds),
        }
    }

    /// The bounds `sixfold check` uses by default: the old writer writes one value, the new
    /// one writes and reads one, no concurrent reader, no segment faults beyond the failover
    /// itself, no gossip.
    pub fn default_bounds() -> Bounds {
        Bounds {
            writes: 1,
            reads: 0,
            crashes: 0,
            losses: 0,
            lossy: false,
            spurious_timeouts: false,
            gossip: false,
            failovers: 1,
            inflight: 1,
        }
    }

    /// The bounds under which gossip can spread a record a truncation voided: gossip on, and an
    /// old writer that writes twice (so that a committed record lies below a voided one: a
    /// segment missing the first pulls both).
    pub fn gossip_bounds() -> Bounds {
        Bounds {
            writes: 2,
            gossip: true,
            ..Self::default_bounds()
        }
    }

    /// The bounds under which a zombie that keeps its lease serves a stale read
    /// (`no-lease-wait`): the defaults plus a reader of the first writer, which starts at the
    /// beginning or right after a commit (the new writer's, for the stale read).
    pub fn lease_bounds() -> Bounds {
        Bounds {
            reads: 1,
            ..Self::default_bounds()
        }
    }

    /// The `--deep` preset: one segment crash-restart and one disk loss on top of the defaults.
    pub fn deep_bounds() -> Bounds {
        Bounds {
            crashes: 1,
            losses: 1,
            ..Self::default_bounds()
        }
    }
}

impl Model for FailoverModel {
    type State = QuorumState;
    type Action = QuorumAction;

    fn init_states(&self) -> Vec<QuorumState> {
        self.quorum.init_states()
    }

    fn actions(&self, state: &QuorumState, actions: &mut Vec<QuorumAction>) {
        self.quorum.actions(state, actions);
    }

    fn next_state(&self, last: &QuorumState, action: QuorumAction) -> Option<QuorumState> {
        let mut next = self.quorum.next_state(last, action)?;
        let mut history = std::mem::take(&mut next.history);
        for epoch in FIRST_EPOCH + 1..FIRST_EPOCH + self.quorum.topology.writers {
            history.observe_writer_step(epoch, writer(last, epoch), writer(&next, epoch));
        }
        next.history = history;
        if !next.history.truncated {
            let dropped = (0..SEGMENTS).any(|i| {
                match (
                    last.actor_states[i].as_segment(),
                    next.actor_states[i].as_segment(),
                ) {
                    (Some(before), Some(after)) => before
                        .records()
                        .iter()
                        .any(|r| !after.contains(r.lsn) && after.voided(r)),
                    _ => false,
                }
            });
            next.history.truncated = dropped;
        }
        Some(next)
    }

    fn format_action(&self, action: &QuorumAction) -> String {
        self.quorum.format_action(action)
    }

    fn format_step(&self, last: &QuorumState, action: QuorumAction) -> Option<String> {
        self.quorum.format_step(last, action)
    }

    fn as_svg(&self, path: Path<QuorumState, QuorumAction>) -> Option<String> {
        self.quorum.as_svg(path)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        properties::stateright_properties(self)
    }
}

impl Judged for FailoverModel {
    const PROPS: &'static [properties::Prop] = properties::FAILOVER;

    fn bounds(&self) -> &Bounds {
        &self.quorum.bounds
    }
}
