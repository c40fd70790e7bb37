//! The decision procedure for partitions whose written values are all unique, built on the
//! read-from relation that uniqueness makes known.
//!
//! When no two writes (plain writes and the new values of compare-and-sets) store the same
//! value, and none stores the initial value, every read and every successful cas names the one
//! write it follows. A linearization is then a sequence of *blocks*, one per value that takes
//! effect: the write of the value, then what observes it. A successful `cas x -> y` is the
//! write of `y` and must come right after block `x`, so such cas operations chain blocks into
//! *segments* laid out contiguously. Following Gibbons & Korach (1997), real time constrains the
//! order of segments only through two numbers each: `f`, the earliest return among its
//! operations, and `s`, the latest call. Segment `D` must precede `G` exactly when
//! `f(D) < s(G)`, so `G` may come next exactly when `s(G) <= f(D)` for every other pending `D`;
//! with the pending segments in two ordered sets (by `f` and by `s`) that test costs O(log n).
//! By Kahn's argument, when only reads, writes and successful cas constrain the order, *any*
//! segment passing the test extends to a linearization if one exists, so the walk commits to
//! one and never backtracks.
//!
//! The walk places operations in the manner of the Wing–Gong search: an operation may be placed
//! once every operation that returned before its call is placed. Reads of the current value and
//! failed cas expecting another value are placed as soon as they may be (placing a
//! state-preserving operation early never removes a linearization). A block is left only once
//! every read of its value is placed, since the value never comes back, and a read whose value
//! is gone is a dead end at once.
//!
//! A failed cas expecting `x` that is not placed before block `x` begins must be placed after
//! it, so the block after `x` must begin before the cas returns. That constrains *which* block
//! follows which, and the order of blocks becomes a real choice. So is an unknown-outcome write
//! or cas that no one observes: it may take effect just to let such a cas see another value.
//! While such failed cas are pending, the walk tries every admissible next block, depth first,
//! and memoizes the states (current value, placed set) it has left, exactly. It still keeps the
//! pruning above: forced successors, the `f`/`s` test, block closure, greedy placement.
//!
//! With failed cas present, the relaxation without them (reads, writes and successful cas, for
//! which the walk never branches) is decided first: it is a necessary condition, so when it
//! fails the history is not linearizable, and a walk of the whole partition that follows the
//! relaxation's block order yields the evidence. Stale reads are caught this way in one pass.
//!
//! # Complexity, honestly
//!
//! - Reads, writes and successful cas, with unknown outcomes (observed or not) and with failed
//!   cas that run before their expected value is written: O(n log n) time (sorting, then one
//!   pass with ordered-set updates) and O(n) memory. Any violation that shows without the
//!   failed cas (a stale read, a read of a value never written or written too late, a cas
//!   succeeding on an overwritten value) is found in the same bound.
//! - Failed cas waiting on a block: every admissible order is tried, so there is no polynomial
//!   bound; the worst case is exponential, like the search's. In practice the choices are
//!   local: on linearizable 100,000-operation histories of [`crate::generate`] (about a fifth
//!   of the operations failed cas), the walk made a choice point at about one block in four
//!   and never backtracked. A violation caused only by failed cas can make it
//!   backtrack far; the time limit then gives the verdict unknown, never a wrong one.
//!
//! The answer has the same shape as the search's: the linearization found, or the deepest
//! prefix reached with the operation that cannot be placed after it.

mod plan;
mod walk;

use crate::history::{History, Operation};
use crate::search::{explain, PartitionOutcome};
use crate::spec::{FxMap, Spec, Step, Stepper, INITIAL};
use plan::NONE;
use std::time::Instant;
use walk::{Walk, Walked};

/// Whether every partition of `history` is in the class this module decides: no appends, every
/// written value unique and different from the initial value. Tests use it to make sure the
/// histories they generate exercise this procedure rather than the search.
pub fn applies(spec: Spec, history: &History) -> bool {
    spec.partition(history).iter().all(|p| {
        let ops: Vec<&Operation> = p.ops.iter().map(|&i| &history.ops[i]).collect();
        unique_writes(&Stepper::compile(spec, &ops), ops.len())
    })
}

/// Whether a compiled partition of `n` operations is in the class (see [`applies`]).
pub(crate) fn unique_writes(stepper: &Stepper, n: usize) -> bool {
    let mut seen = FxMap::default();
    (0..n).all(|i| match stepper.step_of(i) {
        Step::Append(_) => false,
        Step::Write(v) | Step::CasOk(_, v) | Step::CasMaybe(_, v) => {
            v != INITIAL && seen.insert(v, ()).is_none()
        }
        Step::Read(_) | Step::CasFail(_) => true,
    })
}

/// The resumable decision of one partition; indices are local to `ops`.
///
/// With failed cas present it first walks the relaxation without them (which has no choices,
/// so it takes one pass): if even that has no linearization, neither has the history, and a
/// walk of the whole partition guided by the relaxation's block order finds the evidence.
/// Otherwise (and directly, without failed cas) it walks the whole partition.
pub(crate) struct ReadFrom<'a> {
    ops: Vec<&'a Operation>,
    stepper: Stepper,
    phase: Phase,
}

enum Phase {
    Relaxed(Box<Walk>),
    Full(Box<Walk>),
    /// The guided walk, with the operation the relaxation could not place.
    Guided(Box<Walk>, u32),
}

impl<'a> ReadFrom<'a> {
    /// Prepares the decision; `stepper` must be the compiled `ops` and pass [`unique_writes`].
    pub(crate) fn new(ops: Vec<&'a Operation>, stepper: Stepper) -> ReadFrom<'a> {
        let fails = (0..ops.len()).any(|i| matches!(stepper.step_of(i), Step::CasFail(_)));
        let phase = if fails {
            Phase::Relaxed(Box::new(Walk::new(&ops, &stepper, true)))
        } else {
            Phase::Full(Box::new(Walk::new(&ops, &stepper, false)))
        };
        ReadFrom {
            ops,
            stepper,
            phase,
        }
    }

    /// Runs at most `budget` steps (or until `deadline`): `Some` with the answer, or `None` to be
    /// resumed later.
    pub(crate) fn run(
        &mut self,
        budget: u64,
        deadline: Option<Instant>,
    ) -> Option<PartitionOutcome> {
        loop {
            let walk = match &mut self.phase {
                Phase::Relaxed(w) | Phase::Full(w) | Phase::Guided(w, _) => w,
            };
            let walked = walk.run(budget, deadline)?;
            let outcome = match (&self.phase, walked) {
                (_, Walked::TimedOut) => PartitionOutcome::TimedOut,
                (Phase::Relaxed(_), Walked::Linearizable(_)) => {
                    self.phase = Phase::Full(Box::new(Walk::new(&self.ops, &self.stepper, false)));
                    continue;
                }
                (Phase::Relaxed(w), Walked::Stuck(_, blocked)) => {
                    let mut guided = Walk::new(&self.ops, &self.stepper, false);
                    guided.guide = Some((w.heads(), 0));
                    self.phase = Phase::Guided(Box::new(guided), blocked);
                    continue;
                }
                (_, Walked::Linearizable(order)) => {
                    PartitionOutcome::Linearizable(order.into_iter().map(|i| i as usize).collect())
                }
                (Phase::Guided(w, relaxed), Walked::Stuck(prefix, blocked)) => {
                    // Blame what the relaxation could not place if the guide was followed to its
                    // end, else what stopped the guided walk first.
                    let done = w.guide.as_ref().is_some_and(|(g, k)| *k >= g.len());
                    let blocked = if done && *relaxed != NONE {
                        *relaxed
                    } else {
                        blocked
                    };
                    self.violation(prefix, blocked)
                }
                (Phase::Full(_), Walked::Stuck(prefix, blocked)) => self.violation(prefix, blocked),
            };
            return Some(outcome);
        }
    }

    fn violation(&mut self, prefix: Vec<u32>, blocked: u32) -> PartitionOutcome {
        let prefix: Vec<usize> = prefix.into_iter().map(|i| i as usize).collect();
        // Every dead end names an operation; should none have, blame the first one left out.
        let blocked = match blocked {
            NONE => (0..self.ops.len())
                .find(|i| self.ops[*i].ret.is_some() && !prefix.contains(i))
                .unwrap_or(0) as u32,
            b => b,
        };
        PartitionOutcome::Violation(explain(
            &self.ops,
            &mut self.stepper,
            prefix,
            blocked as usize,
        ))
    }
}
