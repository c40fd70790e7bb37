//! Model `gossip`: segments find the gaps in their logs and fill them from their peers.
//!
//! # The system
//! Six segments, the writer and the *app* client, which writes `writes` values one after another
//! (reading after each). The network delays and reorders everything and loses up to `drops`
//! Appends, chosen by this wrapper; there are no crashes and no disk losses. A segment that holds
//! a record above SCL + 1 sees a gap, arms its gossip timer, and when it fires pulls from a peer
//! of its choosing every record from SCL + 1 on ([`crate::protocol::storage_node`]). The checker explores
//! every peer.
//!
//! **[choice]** Only Appends of records *before the last* are lost. A segment cannot tell that it
//! missed the newest record until a newer one arrives; in a running volume a newer one always
//! comes (the writer ships records continuously), while here the app client stops after
//! `writes`. Losing the last record would leave a gap nobody can see, which is a property of the
//! bounded script, not of gossip.
//!
//! The model reuses [`QuorumModel`] (its actions, step rendering and traces) with segments'
//! gossip timers enabled and adds the Append losses.
//!
//! # Properties
//! - **no fabrication** (always): every record in every segment's log (in memory and on disk) is
//!   exactly the record the writer shipped for that LSN (a ghost records every Append the writer
//!   sends), and every log is sorted by LSN without duplicates. Gossip only copies records a peer
//!   holds, so this is checked, not assumed.
//! - **convergence at quiescence** (always): in every state with no successor — nothing left to
//!   deliver that changes anything, no timer to fire, no choice pending — every segment's SCL is
//!   at least the writer's VCL (= VDL here). This is the bounded form of "once faults stop, every
//!   live node reaches the VCL". Stateright's `eventually` is unsound on cyclic state graphs, and
//!   this graph has cycles, so the liveness property is stated on terminal states instead: the
//!   search is exhaustive and finite; faults are a bounded budget, so every run ends in a
//!   fault-free suffix, and a fault-free suffix in which nothing new happens is a quiescent
//!   state. A segment with a visible gap always has an enabled step (its armed timer, its pending
//!   choice, or the pull/push in flight), so it cannot be quiescent while a peer could still help;
//!   the property fails exactly when gossip goes quiet with a segment behind. What it does not cover is a run that cycles forever pulling from
//!   useless peers: that is excluded by the runtime's random peer choice, not by the model.
//! - **gossip fills a gap** (sometimes) and **a commit is acknowledged** (sometimes): the
//!   properties above are not vacuous.

use crate::check::properties::{self, Judged};
use crate::check::quorum::{Bounds, Ghost, QuorumAction, QuorumModel, QuorumState};
use crate::protocol::config::Config;
use crate::protocol::msg::Msg;
use stateright::actor::{ActorModelAction, Envelope};
use stateright::{Model, Path, Property};

/// The gossip model: the quorum model's actors with gossip on and a budget of lost Appends.
#[derive(Clone)]
pub struct GossipModel {
    /// The actor system and its step rendering.
    pub quorum: QuorumModel,
    /// Writes the app client issues.
    pub writes: u8,
    /// Appends the network may lose.
    pub drops: u8,
}

/// Records every Append the writer ships (for "no fabrication"), then the quorum ghost rules.
fn record_out(_cfg: &Config, h: &Ghost, env: Envelope<&Msg>) -> Option<Ghost> {
    if let Msg::Append { record, .. } = env.msg {
        if h.issued.iter().any(|r| r.lsn == record.lsn) {
            return None;
        }
        let mut h = h.clone();
        h.issued.push(*record);
        h.issued.sort();
        return Some(h);
    }
    h.observe_send(env.src, env.dst, env.msg)
}

impl GossipModel {
    /// The model for `cfg` with the app client writing `writes` values and up to `drops` Appends
    /// lost.
    pub fn new(cfg: Config, writes: u8, drops: u8) -> Self {
        let bounds = Bounds {
            writes,
            reads: 0,
            crashes: 0,
            losses: 0,
            lossy: false,
            spurious_timeouts: false,
            gossip: true,
            failovers: 0,
            inflight: 1,
        };
        let mut quorum = QuorumModel::new(cfg, bounds);
        quorum.inner = quorum.inner.record_msg_out(record_out);
        quorum.gossip = true;
        quorum.name = "gossip";
        GossipModel {
            quorum,
            writes,
            drops,
        }
    }

    /// The model at `sixfold check` bounds: `writes` at least 2 (a gap needs a record after it)
    /// and one lost Append per disk-loss bound (default 1).
    pub fn from_bounds(cfg: Config, bounds: &Bounds) -> Self {
        GossipModel::new(cfg, bounds.writes.max(2), bounds.losses.max(1))
    }
}

impl Model for GossipModel {
    type State = QuorumState;
    type Action = QuorumAction;

    fn init_states(&self) -> Vec<QuorumState> {
        self.quorum.init_states()
    }

    fn actions(&self, state: &QuorumState, actions: &mut Vec<QuorumAction>) {
        self.quorum.actions(state, actions);
        if state.history.drops < self.drops {
            for env in state.network.iter_deliverable() {
                if let Msg::Append { record, .. } = env.msg {
                    if record.lsn < self.writes as u64 {
                        actions.push(QuorumAction::Actor(ActorModelAction::Drop(
                            env.to_cloned_msg(),
                        )));
                    }
                }
            }
        }
    }

    fn next_state(&self, last: &QuorumState, action: QuorumAction) -> Option<QuorumState> {
        let push_to = match &action {
            QuorumAction::Actor(ActorModelAction::Deliver {
                dst,
                msg: Msg::GossipPush { .. },
                ..
            }) => Some(usize::from(*dst)),
            _ => None,
        };
        let dropped = matches!(action, QuorumAction::Actor(ActorModelAction::Drop(_)));
        let mut next = self.quorum.next_state(last, action)?;
        if dropped {
            next.history.drops += 1;
        }
        if let Some(i) = push_to {
            let len = |s: &QuorumState| {
                s.actor_states[i]
                    .as_segment()
                    .map_or(0, |l| l.records().len())
            };
            if len(&next) > len(last) {
                next.history.gossip_filled = true;
            }
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

impl Judged for GossipModel {
    const PROPS: &'static [properties::Prop] = properties::GOSSIP;

    fn bounds(&self) -> &Bounds {
        &self.quorum.bounds
    }
}
