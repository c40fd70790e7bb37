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
//! the state is rewritten accordingly. Segments with equal signatures are identical in every
//! respect (segments never address one another), so their relative order does not matter; two
//! different signatures colliding in 64 bits would only make the reduction less effective.
//!
//! One rule is index-based: the writer routes a read to the *lowest-numbered* eligible segment.
//! Under symmetry that becomes "some eligible segment, chosen by canonical order", which is just as
//! valid an implementation of the protocol's "any segment whose SCL covers the read point".
//! Symmetry is only sound for DFS and simulation in stateright; BFS ignores it.

use crate::actor::NodeState;
use crate::config::SEGMENTS;
use crate::quorum::{QuorumState, WRITER};
use stateright::actor::{Envelope, Id, Network};
use std::hash::{Hash, Hasher};
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

/// The canonical representative of `state` under relabelling of the six segments.
pub fn canonical(state: &QuorumState) -> QuorumState {
    let writer = match &*state.actor_states[WRITER] {
        NodeState::Writer(w) => w,
        _ => return state.clone(),
    };
    // Each segment's signature: a hash of everything observably its own. Messages are folded in
    // with a commutative sum of per-message hashes, so their order in the network is irrelevant.
    let mut flows = [0u64; SEGMENTS];
    for env in state.network.iter_all() {
        let (src, dst) = (usize::from(env.src), usize::from(env.dst));
        if src < SEGMENTS {
            flows[src] = flows[src].wrapping_add(hash_of(&(true, env.dst, env.msg)));
        }
        if dst < SEGMENTS {
            flows[dst] = flows[dst].wrapping_add(hash_of(&(false, env.src, env.msg)));
        }
    }
    let sigs: [u64; SEGMENTS] = std::array::from_fn(|i| {
        hash_of(&(
            &*state.actor_states[i],
            &state.actor_storages[i],
            state.crashed[i],
            state.history.lost & (1 << i) != 0,
            writer.scl[i],
            writer.opening.map(|b| b & (1 << i) != 0),
            writer.queried & (1 << i) != 0,
            flows[i],
        ))
    });
    let mut order: [usize; SEGMENTS] = std::array::from_fn(|i| i);
    order.sort_by_key(|&i| sigs[i]);
    // order[new] = old; perm[old] = new.
    let mut perm = [0usize; SEGMENTS];
    for (new, &old) in order.iter().enumerate() {
        perm[old] = new;
    }
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return state.clone();
    }

    let mut next = state.clone();
    for (new, &old) in order.iter().enumerate() {
        next.actor_states[new] = Arc::clone(&state.actor_states[old]);
        next.actor_storages[new] = state.actor_storages[old].clone();
        next.crashed[new] = state.crashed[old];
        next.timers_set[new] = state.timers_set[old].clone();
    }
    let mut w = writer.clone();
    for (new, &old) in order.iter().enumerate() {
        w.scl[new] = writer.scl[old];
    }
    w.opening = writer.opening.map(|b| permute_bits(b, &perm));
    w.queried = permute_bits(writer.queried, &perm);
    next.actor_states[WRITER] = Arc::new(NodeState::Writer(w));
    next.history.lost = permute_bits(state.history.lost, &perm);
    next.network =
        Network::new_unordered_nonduplicating(state.network.iter_all().map(|e| Envelope {
            src: relabel(e.src, &perm),
            dst: relabel(e.dst, &perm),
            msg: e.msg.clone(),
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
