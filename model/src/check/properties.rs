//! Every property of every model, in one place, as values.
//!
//! A [`Prop`] names a property, says whether it must hold always or be witnessed sometimes, says
//! what it reads, judges a [`View`], and lists the mutants it must catch. The models turn these
//! lists into Stateright properties ([`stateright_properties`]), `sixfold replay` judges recorded
//! runs with the same functions, and the runner's mutant table is read off the `catches` lists.
//! Adding a model means adding one list here.
//!
//! A [`View`] is what every property may read: the ghost history, the segments' logs in memory
//! and on disk, and the writer's VCL. The model builds it from a `QuorumState`; replay builds it
//! from the state it reconstructs. The one difference: a runtime run writes many keys, so replay
//! judges stale reads per key and passes that verdict in [`View::stale_read`].

use crate::check::quorum::{Bounds, Ghost, QuorumState, WRITER};
use crate::protocol::actor::NodeState;
use crate::protocol::config::{Mutant, SEGMENTS};
use crate::protocol::effects::NodeStorage;
use crate::protocol::log::Log;
use crate::protocol::msg::Lsn;
use stateright::{Expectation, Model, Property};

/// What a property may read.
pub struct View<'a> {
    /// The history of the run.
    pub ghost: &'a Ghost,
    /// Whether some read returned a version older than a commit acknowledged before it was
    /// issued (the ghost's flag in the models; per key in replay).
    pub stale_read: bool,
    /// Each segment's log in memory, `None` while it is down.
    pub memory: [Option<&'a Log>; SEGMENTS],
    /// Each segment's durable storage, by segment index.
    pub storages: &'a [Option<NodeStorage>],
    /// The first writer's VCL (0 if it is down).
    pub vcl: Lsn,
}

impl<'a> View<'a> {
    /// The view of a model state. A segment's state stays in place while it is down (only a
    /// lost disk keeps it down), so `memory` holds every segment's last state.
    pub fn of(state: &'a QuorumState) -> View<'a> {
        View {
            ghost: &state.history,
            stale_read: state.history.stale_read,
            memory: std::array::from_fn(|i| state.actor_states[i].as_segment()),
            storages: &state.actor_storages,
            vcl: state.actor_states[WRITER].as_writer().map_or(0, |w| w.vdl),
        }
    }

    /// The view of a reconstructed run: actor states (`None` while down) and storages by id.
    pub fn of_run(
        ghost: &'a Ghost,
        stale_read: bool,
        states: &'a [Option<NodeState>],
        storages: &'a [Option<NodeStorage>],
    ) -> View<'a> {
        View {
            ghost,
            stale_read,
            memory: std::array::from_fn(|i| states[i].as_ref().and_then(NodeState::as_segment)),
            storages,
            vcl: states
                .get(WRITER)
                .and_then(|s| s.as_ref()?.as_writer().map(|w| w.vdl))
                .unwrap_or(0),
        }
    }

    /// Every segment log, in memory and on disk.
    fn logs(&self) -> impl Iterator<Item = &Log> {
        let disk = self.storages.iter().take(SEGMENTS).flatten();
        let disk = disk.map(|NodeStorage::Segment(l)| l);
        self.memory.iter().flatten().copied().chain(disk)
    }

    /// Whether every acknowledged commit is in the saved log of enough surviving segments that
    /// every read quorum of surviving segments holds it.
    fn durable(&self) -> bool {
        self.ghost.durable(self.storages)
    }
}

/// Whether a property must hold in every state or be witnessed in some state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An invariant.
    Always,
    /// A witness that the invariants are not vacuous.
    Sometimes,
}

/// One property.
pub struct Prop {
    /// Its name, as printed in verdict tables and trace headers.
    pub name: &'static str,
    /// Invariant or witness.
    pub kind: Kind,
    /// What it reads, for people.
    pub judges: &'static str,
    /// The condition: for `Always` it must hold, for `Sometimes` some state must satisfy it.
    pub holds: fn(&View) -> bool,
    /// The mutants it must catch (each breaks this property first).
    pub catches: &'static [Mutant],
    /// Judged only in states with no successor (only the model checker knows which they are;
    /// replay skips it).
    pub at_quiescence: bool,
    /// Whether the property applies at these bounds (a witness that needs a fault the bounds do
    /// not allow would never be seen).
    pub applies: fn(&Bounds) -> bool,
}

fn always_applies(_: &Bounds) -> bool {
    true
}

const fn prop(
    name: &'static str,
    kind: Kind,
    judges: &'static str,
    holds: fn(&View) -> bool,
) -> Prop {
    Prop {
        name,
        kind,
        judges,
        holds,
        catches: &[],
        at_quiescence: false,
        applies: always_applies,
    }
}

const fn catching(p: Prop, catches: &'static [Mutant]) -> Prop {
    Prop { catches, ..p }
}

/// The `quorum` model's properties.
pub const QUORUM: &[Prop] = &[
    catching(
        prop("durability", Kind::Always, "storages, ghost", |v| {
            v.durable()
        }),
        &[Mutant::WriteQuorum3, Mutant::AckBeforePersist],
    ),
    catching(
        prop(
            "no stale read",
            Kind::Always,
            "ghost (per key in replay)",
            |v| !v.stale_read,
        ),
        &[Mutant::ReadAnyNode],
    ),
    catching(
        prop("no uncommitted read", Kind::Always, "ghost", |v| {
            !v.ghost.uncommitted_read
        }),
        &[Mutant::ReadUnbounded],
    ),
    prop("a commit is acknowledged", Kind::Sometimes, "ghost", |v| {
        v.ghost.committed > 0
    }),
    prop(
        "a read returns a committed value",
        Kind::Sometimes,
        "ghost",
        |v| v.ghost.committed_read,
    ),
    Prop {
        applies: |b| b.losses > 0,
        ..prop(
            "a disk is lost after a commit",
            Kind::Sometimes,
            "ghost, storages",
            |v| v.ghost.lost != 0 && v.ghost.committed > 0 && v.durable(),
        )
    },
];

/// Whether a log holds no record that a truncation it knows of voids.
pub fn clean(log: &Log) -> bool {
    !log.records().iter().any(|r| log.voided(r))
}

/// The `failover` model's properties.
pub const FAILOVER: &[Prop] = &[
    catching(
        prop(
            "durability across failover",
            Kind::Always,
            "ghost, storages",
            |v| !v.ghost.lost_commit && v.durable(),
        ),
        &[Mutant::RecoverWith2, Mutant::ReadIgnoresFull],
    ),
    catching(
        prop(
            "no stale commit",
            Kind::Always,
            "ghost (stale reads per key in replay)",
            |v| !v.ghost.stale_commit && !v.stale_read,
        ),
        &[Mutant::NoFencing, Mutant::NoLeaseWait],
    ),
    catching(
        prop(
            "no resurrection",
            Kind::Always,
            "ghost, logs in memory and on disk",
            |v| !v.ghost.resurrected_read && v.logs().all(clean),
        ),
        &[Mutant::NoTruncation, Mutant::GossipIgnoresTruncation],
    ),
    catching(
        prop("no voided read", Kind::Always, "ghost", |v| {
            !v.ghost.voided_read
        }),
        &[Mutant::NoRepair],
    ),
    prop("no uncommitted read", Kind::Always, "ghost", |v| {
        !v.ghost.uncommitted_read
    }),
    prop("a failover completes", Kind::Sometimes, "ghost", |v| {
        v.ghost.failover_commit
    }),
    prop("a zombie write is refused", Kind::Sometimes, "ghost", |v| {
        v.ghost.zombie_refused
    }),
    prop("a truncation happens", Kind::Sometimes, "ghost", |v| {
        v.ghost.truncated
    }),
];

/// Whether every record in `log` is one the writer issued, in a sorted, duplicate-free log.
fn genuine(log: &Log, issued: &[crate::protocol::msg::Record]) -> bool {
    log.records().windows(2).all(|w| w[0].lsn < w[1].lsn)
        && log
            .records()
            .iter()
            .all(|r| issued.binary_search(r).is_ok())
}

/// The `gossip` model's properties.
pub const GOSSIP: &[Prop] = &[
    prop(
        "no fabrication",
        Kind::Always,
        "logs in memory and on disk, ghost",
        |v| v.logs().all(|l| genuine(l, &v.ghost.issued)),
    ),
    Prop {
        at_quiescence: true,
        ..prop(
            "convergence at quiescence",
            Kind::Always,
            "logs in memory, writer",
            |v| v.memory.iter().flatten().all(|l| l.scl() >= v.vcl),
        )
    },
    prop("gossip fills a gap", Kind::Sometimes, "ghost", |v| {
        v.ghost.gossip_filled
    }),
    prop("a commit is acknowledged", Kind::Sometimes, "ghost", |v| {
        v.ghost.committed > 0
    }),
];

/// The properties of the model named `model` (a trace header's model), if it has any.
pub fn of_model(model: &str) -> Option<&'static [Prop]> {
    match model {
        "quorum" => Some(QUORUM),
        "failover" => Some(FAILOVER),
        "gossip" => Some(GOSSIP),
        _ => None,
    }
}

/// The first invariant of `props` that `view` breaks, skipping those only the model checker can
/// judge (at quiescence).
pub fn first_broken(props: &[Prop], view: &View) -> Option<&'static str> {
    props
        .iter()
        .filter(|p| p.kind == Kind::Always && !p.at_quiescence)
        .find(|p| !(p.holds)(view))
        .map(|p| p.name)
}

/// A model whose states are `QuorumState`s and whose properties are one of the lists above.
pub trait Judged: Model<State = QuorumState> + Sized {
    /// The model's property list.
    const PROPS: &'static [Prop];
    /// The bounds it explores.
    fn bounds(&self) -> &Bounds;
    /// Whether `state` has no successor at all.
    fn quiescent(&self, state: &QuorumState) -> bool {
        let mut actions = Vec::new();
        self.actions(state, &mut actions);
        actions
            .into_iter()
            .all(|a| self.next_state(state, a).is_none())
    }
}

/// Judges property `I` of `M::PROPS` on a state: a plain `fn`, as Stateright's `Property` needs
/// (one monomorphized function per index, since a function pointer cannot capture the index).
fn condition<M: Judged, const I: usize>(m: &M, s: &QuorumState) -> bool {
    let p = &M::PROPS[I];
    let holds = (p.holds)(&View::of(s));
    if p.at_quiescence {
        holds || !m.quiescent(s)
    } else {
        holds
    }
}

/// The Stateright properties of `m`: its list, filtered by its bounds.
pub fn stateright_properties<M: Judged>(m: &M) -> Vec<Property<M>> {
    let conditions: [fn(&M, &QuorumState) -> bool; 8] = [
        condition::<M, 0>,
        condition::<M, 1>,
        condition::<M, 2>,
        condition::<M, 3>,
        condition::<M, 4>,
        condition::<M, 5>,
        condition::<M, 6>,
        condition::<M, 7>,
    ];
    assert!(
        M::PROPS.len() <= conditions.len(),
        "at most 8 properties per model"
    );
    M::PROPS
        .iter()
        .zip(conditions)
        .filter(|(p, _)| (p.applies)(m.bounds()))
        .map(|(p, condition)| Property {
            expectation: match p.kind {
                Kind::Always => Expectation::Always,
                Kind::Sometimes => Expectation::Sometimes,
            },
            name: p.name,
            condition,
        })
        .collect()
}

/// The property `mutant` must break, and the list it is in, if any list catches it.
pub fn catching_mutant(props: &'static [Prop], mutant: Mutant) -> Option<&'static str> {
    props
        .iter()
        .find(|p| p.catches.contains(&mutant))
        .map(|p| p.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mutant_is_caught_by_exactly_one_invariant() {
        for m in Mutant::ALL {
            let mut catchers: Vec<&str> = [QUORUM, FAILOVER, GOSSIP]
                .iter()
                .flat_map(|props| props.iter())
                .filter(|p| p.catches.contains(&m))
                .inspect(|p| assert_eq!(p.kind, Kind::Always, "{} is a witness", p.name))
                .map(|p| p.name)
                .collect();
            // The region model keeps its own list, of the same shape.
            let region = crate::check::region::PROPS.iter();
            catchers.extend(
                region
                    .filter(|p| p.catches.contains(&m))
                    .inspect(|p| assert_eq!(p.kind, Kind::Always, "{} is a witness", p.name))
                    .map(|p| p.name),
            );
            assert_eq!(catchers.len(), 1, "{m}: {catchers:?}");
        }
    }

    #[test]
    fn lists_fit_the_condition_table_and_names_are_unique() {
        for props in [QUORUM, FAILOVER, GOSSIP] {
            assert!(props.len() <= 8);
            let mut names: Vec<&str> = props.iter().map(|p| p.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), props.len());
        }
        assert_eq!(
            of_model("failover").map(<[Prop]>::len),
            Some(FAILOVER.len())
        );
        assert!(of_model("nope").is_none());
    }
}
