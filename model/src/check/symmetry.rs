//! Symmetry reduction for the quorum model: segments are interchangeable.
//!
//! Nothing in the quorum protocol depends on *which* segment holds what: the writer counts acks,
//! the fault budget counts segments down, and no rule looks at AZs (AZ+1 is "any three"). So two
//! states that differ only by a relabelling of the six segments have the same futures up to that
//! relabelling, and the checker needs to visit one of them. `stateright`'s built-in
//! `representative` sorts *all* actors as if identical, which is wrong with a writer and clients in
//! the mix, so this module computes its own canonical form: segments are sorted by a hash of
//! everything that is observably theirs (state, saved log, crash and loss flags, the writer's
//! bookkeeping about them, and the messages in flight to and from them), and every segment id in
//! the state is rewritten accordingly.
//!
//! For this to be exact, no step may depend on a segment's *number*. The writer's choices (which
//! segment serves a read, which segment to ask next on open) are therefore left open as
//! `Choice`s that the checker explores in full, rather than "the lowest-numbered eligible
//! segment"; the test below checks that relabelling never changes the canonical form. Without
//! gossip, segments never address one another, so segments with equal signatures are identical
//! in every respect and their relative order does not matter; two different signatures
//! colliding in 64 bits would only make the reduction less effective.
//!
//! Gossip (segments pulling from one another, in the `gossip` model) is the one place segments
//! address each other: the peer at the other end of a gossip message is hashed as "a segment"
//! and relabelled by the permutation, and a segment's pending gossip choice (always every peer)
//! counts only by its presence, so two segments may tie on signature while differing in whom
//! they talk to; the canonical form is then one of a few relabellings (less reduction, never
//! unsound: every representative is a relabelling of the state).
//!
//! In the full/tail geometry only full segments are interchangeable among themselves, and tails
//! among themselves (a full segment serves reads and counts toward the 3/3 write quorum, a tail
//! does not): segments are sorted within their class ([`sorted_within_classes`]), read off the
//! ghost's geometry, and the theorem below is tested with class-preserving relabellings.
//!
//! **The representative is a fingerprint.** Stateright uses a representative only to fingerprint
//! it and goes on exploring the real state, so [`canonical`] does not build the relabelled state:
//! it hashes the state *as relabelled* (segments in canonical order, segment numbers in the
//! writers' bookkeeping, choices and messages rewritten on the fly, messages as an order-free
//! sum) and returns an empty state carrying that hash ([`Ghost::class`]). The risk of a collision
//! is that of stateright's own 64-bit fingerprints; building and rehashing the relabelled state
//! was two fifths of the checker's time. The test below checks that hashing while relabelling
//! gives the same value as relabelling and then hashing.
//!
//! Symmetry is only sound for DFS and simulation in stateright; BFS ignores it.

use crate::check::quorum::{in_flight, Ghost, QuorumState};
#[cfg(test)]
use crate::protocol::actor::NodeState;
use crate::protocol::config::SEGMENTS;
use crate::protocol::effects::Choice;
use crate::protocol::writer::WriterState;
#[cfg(test)]
use stateright::actor::Envelope;
use stateright::actor::{Id, Network, RandomChoices};
use std::hash::{Hash, Hasher};
#[cfg(test)]
use std::sync::Arc;

fn relabel(id: Id, perm: &[usize; SEGMENTS]) -> Id {
    let i = usize::from(id);
    if i < SEGMENTS {
        Id::from(perm[i])
    } else {
        id
    }
}

fn permute_bits(bits: u8, perm: &[usize; SEGMENTS]) -> u8 {
    (0..SEGMENTS)
        .filter(|&i| bits & (1 << i) != 0)
        .fold(0, |acc, i| acc | 1 << perm[i])
}

/// The actors (by index) that are writers: their bookkeeping names segments by number.
fn writers(state: &QuorumState) -> Vec<usize> {
    (SEGMENTS..state.actor_states.len())
        .filter(|&i| state.actor_states[i].as_writer().is_some())
        .collect()
}

/// The canonical representative of `state` under relabelling of the six segments.
pub fn canonical(state: &QuorumState) -> QuorumState {
    let writers = writers(state);
    // Each segment's signature: a hash of everything observably its own. Messages are folded in
    // with a commutative sum of per-message hashes, so their order in the network is irrelevant.
    // A segment at the other end of a gossip message is hashed as "a segment", not by number.
    let mut flows = [0u64; SEGMENTS];
    let peer = |id: Id| {
        if usize::from(id) < SEGMENTS {
            None
        } else {
            Some(id)
        }
    };
    for env in in_flight(&state.network) {
        let (src, dst) = (usize::from(env.src), usize::from(env.dst));
        if src < SEGMENTS {
            flows[src] = flows[src].wrapping_add(hash_of(&(true, peer(env.dst), env.msg)));
        }
        if dst < SEGMENTS {
            flows[dst] = flows[dst].wrapping_add(hash_of(&(false, peer(env.src), env.msg)));
        }
    }
    // Options a writer has offered about one segment (read routes, segments to ask) belong to
    // that segment too; a recovering writer's quorum offer is always every quorum, so it names
    // no segment in particular.
    let mut offers = [0u64; SEGMENTS];
    let mut books = [0u64; SEGMENTS];
    for &w in &writers {
        for (key, choices) in state.random_choices[w].map.iter() {
            for c in choices {
                if let Some(i) = c.segment() {
                    let me = c.relabel(&[0; SEGMENTS]);
                    offers[i] = offers[i].wrapping_add(hash_of(&(w, key, me)));
                }
            }
        }
        let writer = state.actor_states[w].as_writer().expect("a writer");
        for (i, book) in books.iter_mut().enumerate() {
            *book = book.wrapping_add(hash_of(&(
                w,
                writer.scl[i],
                writer.opening.map(|b| b & (1 << i) != 0),
                writer.queried & (1 << i) != 0,
            )));
        }
    }
    // A segment's own pending gossip choice always offers every peer: only its presence counts.
    let pulling: [bool; SEGMENTS] =
        std::array::from_fn(|i| !state.random_choices[i].map.is_empty());
    let sigs: [u64; SEGMENTS] = std::array::from_fn(|i| {
        hash_of(&(
            &*state.actor_states[i],
            &state.actor_storages[i],
            state.crashed[i],
            state.history.lost & (1 << i) != 0,
            books[i],
            flows[i],
            offers[i],
            &state.timers_set[i],
            pulling[i],
        ))
    });
    let order = sorted_within_classes(state.history.geometry.full(), &sigs);
    representative(class_hash(state, &writers, &order))
}

/// The representative of the class whose fingerprint is `class`: an empty state carrying it.
/// Stateright uses a representative only to fingerprint it (it explores the real state), so
/// this saves building the relabelled state and hashing it again, with no more risk of a
/// collision than stateright's own 64-bit fingerprints.
fn representative(class: u64) -> QuorumState {
    QuorumState {
        actor_states: Vec::new(),
        network: Network::new_unordered_nonduplicating([]),
        timers_set: Vec::new(),
        random_choices: Vec::new(),
        crashed: Vec::new(),
        history: Ghost {
            class,
            ..Ghost::default()
        },
        actor_storages: Vec::new(),
    }
}

/// A hash of `state` with its segments relabelled by `order` (segment `order[new]` becomes
/// segment `new`): the same value as hashing [`permute`]`(state, order)` this way with the
/// identity order, computed without building it (tested below).
fn class_hash(state: &QuorumState, writers: &[usize], order: &[usize; SEGMENTS]) -> u64 {
    let perm = inverse(order);
    let mut h = rustc_hash::FxHasher::default();
    let actors = (0..state.actor_states.len()).map(|i| if i < SEGMENTS { order[i] } else { i });
    for i in actors {
        match state.actor_states[i].as_writer() {
            Some(w) if writers.contains(&i) => relabelled_writer(w, order, &perm).hash(&mut h),
            _ => state.actor_states[i].hash(&mut h),
        }
        state.actor_storages[i].hash(&mut h);
        state.crashed[i].hash(&mut h);
        state.timers_set[i].hash(&mut h);
        h.write_u64(choices_hash(&state.random_choices[i], &perm));
    }
    let mut ghost = state.history.clone();
    ghost.lost = permute_bits(state.history.lost, &perm);
    ghost.hash(&mut h);
    let flights = in_flight(&state.network);
    let network = flights.iter().fold(0u64, |sum, e| {
        let moved = (relabel(e.src, &perm), relabel(e.dst, &perm), e.msg);
        sum.wrapping_add(mix(hash_of(&moved)))
    });
    h.write_usize(flights.len());
    h.write_u64(network);
    mix(h.finish())
}

/// A writer's bookkeeping with its segment numbers relabelled.
fn relabelled_writer(
    writer: &WriterState,
    order: &[usize; SEGMENTS],
    perm: &[usize; SEGMENTS],
) -> WriterState {
    let mut moved = writer.clone();
    for (new, &old) in order.iter().enumerate() {
        moved.scl[new] = writer.scl[old];
    }
    moved.opening = writer.opening.map(|b| permute_bits(b, perm));
    moved.queried = permute_bits(writer.queried, perm);
    moved
}

/// An order-free hash of a set of random choices with the segments they name relabelled.
fn choices_hash(choices: &RandomChoices<Choice>, perm: &[usize; SEGMENTS]) -> u64 {
    choices.map.iter().fold(0u64, |sum, (key, options)| {
        let mut moved: Vec<Choice> = options.iter().map(|c| c.relabel(perm)).collect();
        moved.sort();
        sum.wrapping_add(mix(hash_of(&(key, moved))))
    })
}

/// splitmix64's finalizer: spreads a hash's bits so that sums of hashes (multisets) collide no
/// more than the hashes do.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The segments ordered by signature within their class: full segments fill the full
/// positions in signature order, tails the tail positions. With six full segments that is one
/// sort of all six; in the full/tail geometry a full segment is never relabelled as a tail.
fn sorted_within_classes(full: u8, sigs: &[u64; SEGMENTS]) -> [usize; SEGMENTS] {
    // Full segments first, each class in signature order (with six full ones: one sort).
    let mut by_class: [usize; SEGMENTS] = std::array::from_fn(|i| i);
    by_class.sort_by_key(|&i| (full & (1 << i) == 0, sigs[i]));
    if full.count_ones() as usize == SEGMENTS {
        return by_class;
    }
    let (mut fulls, mut tails) = (0, full.count_ones() as usize);
    std::array::from_fn(|pos| {
        let next = if full & (1 << pos) != 0 {
            &mut fulls
        } else {
            &mut tails
        };
        *next += 1;
        by_class[*next - 1]
    })
}

/// Relabel the segments named in a set of random choices.
#[cfg(test)]
fn relabel_choices(
    choices: &RandomChoices<Choice>,
    perm: &[usize; SEGMENTS],
) -> RandomChoices<Choice> {
    let mut out = RandomChoices::default();
    for (key, options) in choices.map.iter() {
        let mut moved: Vec<Choice> = options.iter().map(|c| c.relabel(perm)).collect();
        moved.sort();
        out.insert(key.clone(), moved);
    }
    out
}

/// `perm[old] = new` for the relabelling in which segment `order[new]` becomes segment `new`.
fn inverse(order: &[usize; SEGMENTS]) -> [usize; SEGMENTS] {
    let mut perm = [0usize; SEGMENTS];
    for (new, &old) in order.iter().enumerate() {
        perm[old] = new;
    }
    perm
}

/// The same state with its segments relabelled: segment `order[new]` becomes segment `new`.
/// The tests relabel states with it; the checker only hashes the relabelling ([`class_hash`]).
#[cfg(test)]
pub fn permute(state: &QuorumState, order: &[usize; SEGMENTS]) -> QuorumState {
    let perm = inverse(order);
    let mut next = state.clone();
    for (new, &old) in order.iter().enumerate() {
        next.actor_states[new] = Arc::clone(&state.actor_states[old]);
        next.actor_storages[new] = state.actor_storages[old].clone();
        next.crashed[new] = state.crashed[old];
        next.timers_set[new] = state.timers_set[old].clone();
        next.random_choices[new] = relabel_choices(&state.random_choices[old], &perm);
    }
    for w in writers(state) {
        let writer = state.actor_states[w].as_writer().expect("a writer");
        let moved = relabelled_writer(writer, order, &perm);
        next.actor_states[w] = Arc::new(NodeState::Writer(moved));
        next.random_choices[w] = relabel_choices(&state.random_choices[w], &perm);
    }
    next.history.lost = permute_bits(state.history.lost, &perm);
    next.network =
        Network::new_unordered_nonduplicating(in_flight(&state.network).into_iter().map(|e| {
            Envelope {
                src: relabel(e.src, &perm),
                dst: relabel(e.dst, &perm),
                msg: e.msg.clone(),
            }
        }));
    next
}

/// A fast hash that is the same in every run (no random seed), so canonical forms are
/// reproducible.
fn hash_of<T: Hash>(value: &T) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    value.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::failover::FailoverModel;
    use crate::check::gossip::GossipModel;
    use crate::check::quorum::{Bounds, QuorumAction, QuorumModel};
    use crate::protocol::config::{Config, Geometry};
    use stateright::Model;

    /// A seeded generator of indices below `n`: one seed names one walk.
    fn xorshift(mut seed: u64) -> impl FnMut(usize) -> usize {
        move |n| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        }
    }

    /// A random relabelling that keeps each segment in its class (any, with six full ones).
    fn shuffle(geometry: Geometry, next: &mut impl FnMut(usize) -> usize) -> [usize; SEGMENTS] {
        let full = geometry.full();
        let mut order: [usize; SEGMENTS] = std::array::from_fn(|i| i);
        for class in [true, false] {
            let slots: Vec<usize> = (0..SEGMENTS)
                .filter(|&i| (full & (1 << i) != 0) == class)
                .collect();
            for k in (1..slots.len()).rev() {
                order.swap(slots[k], slots[next(k + 1)]);
            }
        }
        order
    }

    fn full_tail() -> Config {
        Config {
            geometry: Geometry::FullTail,
            ..Config::default()
        }
    }

    /// Walks random paths and checks, at every state, that relabelling the segments any way
    /// leads to the same canonical form: the reduction merges exactly the symmetric states.
    #[test]
    fn canonical_form_ignores_segment_labels() {
        for cfg in [Config::default(), full_tail()] {
            canonical_form_ignores_labels_in(cfg);
        }
    }

    fn canonical_form_ignores_labels_in(cfg: Config) {
        let model = QuorumModel::new(cfg, Bounds::default());
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        let mut checked = 0;
        for _ in 0..300 {
            let mut state = model.init_states().remove(0);
            for _ in 0..60 {
                let order = shuffle(cfg.geometry, &mut next);
                let relabelled = permute(&state, &order);
                assert_eq!(
                    canonical(&relabelled),
                    canonical(&state),
                    "{state:#?}\n{order:?}"
                );
                // The class hash relabels as it hashes, exactly as `permute` relabels.
                let identity: [usize; SEGMENTS] = std::array::from_fn(|i| i);
                let writers = writers(&state);
                assert_eq!(
                    class_hash(&relabelled, &writers, &identity),
                    class_hash(&state, &writers, &order),
                    "{state:#?}\n{order:?}"
                );
                checked += 1;
                let steps = model.next_steps(&state);
                if steps.is_empty() {
                    break;
                }
                state = steps[next(steps.len())].1.clone();
            }
        }
        assert!(checked > 5_000);
    }

    /// The theorem the reduction rests on, tested on random walks of every model: the step
    /// relation commutes with relabelling. The successors of a relabelled state are exactly the
    /// relabelled successors, so a representative (a relabelling of the real state) has the
    /// same futures up to that relabelling, whether or not the canonical form is exact.
    fn steps_commute_with_relabelling<M: Model<State = QuorumState, Action = QuorumAction>>(
        model: &M,
        walks: usize,
    ) {
        use std::collections::HashSet;
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        let mut checked = 0;
        for _ in 0..walks {
            let mut state = model.init_states().remove(0);
            for _ in 0..80 {
                let order = shuffle(state.history.geometry, &mut next);
                let steps = model.next_steps(&state);
                let moved: HashSet<QuorumState> =
                    steps.iter().map(|(_, t)| permute(t, &order)).collect();
                let of_moved: HashSet<QuorumState> = model
                    .next_steps(&permute(&state, &order))
                    .into_iter()
                    .map(|(_, t)| t)
                    .collect();
                assert!(moved == of_moved, "{state:#?}\n{order:?}");
                checked += 1;
                if steps.is_empty() {
                    break;
                }
                state = steps[next(steps.len())].1.clone();
            }
        }
        assert!(checked > walks * 10, "walks too short: {checked}");
    }

    #[test]
    fn quorum_steps_commute_with_relabelling() {
        let bounds = Bounds {
            reads: 1,
            ..Bounds::deep()
        };
        steps_commute_with_relabelling(&QuorumModel::new(Config::default(), bounds), 150);
    }

    #[test]
    fn gossip_steps_commute_with_relabelling() {
        let model = GossipModel::from_bounds(Config::default(), &Bounds::default());
        steps_commute_with_relabelling(&model, 150);
    }

    #[test]
    fn failover_steps_commute_with_relabelling() {
        let bounds = Bounds {
            crashes: 1,
            losses: 1,
            gossip: true,
            ..FailoverModel::default_bounds()
        };
        let model = FailoverModel::new(Config::default(), bounds);
        steps_commute_with_relabelling(&model, 150);
    }

    /// Full/tail: relabellings within a class commute with steps, in `quorum` and `failover`.
    #[test]
    fn full_tail_steps_commute_with_relabelling_within_classes() {
        let quorum = QuorumModel::new(full_tail(), Bounds::deep());
        steps_commute_with_relabelling(&quorum, 100);
        let failover = FailoverModel::new(full_tail(), FailoverModel::default_bounds());
        steps_commute_with_relabelling(&failover, 100);
    }

    /// A relabelling that moves a full segment into a tail's place does not commute: the
    /// classes are real, which is why the reduction keeps them apart.
    #[test]
    fn full_tail_classes_are_not_interchangeable() {
        let model = QuorumModel::new(full_tail(), Bounds::default());
        let swap_full_and_tail = [1, 0, 2, 3, 4, 5];
        let mut next = xorshift(7);
        let mut differs = false;
        for _ in 0..50 {
            let mut state = model.init_states().remove(0);
            for _ in 0..40 {
                let steps = model.next_steps(&state);
                let moved: std::collections::HashSet<QuorumState> = steps
                    .iter()
                    .map(|(_, t)| permute(t, &swap_full_and_tail))
                    .collect();
                let of_moved: std::collections::HashSet<QuorumState> = model
                    .next_steps(&permute(&state, &swap_full_and_tail))
                    .into_iter()
                    .map(|(_, t)| t)
                    .collect();
                differs |= moved != of_moved;
                if steps.is_empty() {
                    break;
                }
                state = steps[next(steps.len())].1.clone();
            }
        }
        assert!(differs, "some step tells a full segment from a tail");
    }
}
