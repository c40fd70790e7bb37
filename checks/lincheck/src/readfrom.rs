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

use crate::history::{History, Operation};
use crate::search::{explain, PartitionOutcome};
use crate::spec::{FxMap, Spec, Step, Stepper, INITIAL};
use std::collections::BTreeSet;
use std::time::Instant;

const NONE: u32 = u32::MAX;
/// The return time of an operation that never returns, and the minimum of nothing.
const NEVER: u64 = u64::MAX;

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

/// What an operation is to the procedure.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Observed this value.
    Read(u32),
    /// Wrote this value; the second field is the value a cas needed (`NONE` for a write).
    Head(u32, u32),
    /// A failed cas: the value was not this one.
    Fail(u32),
    /// An unknown-outcome read or failed cas: constrains nothing and is never placed.
    Ignore,
}

/// A chain of blocks linked by successful (or observed unknown) cas, laid out contiguously.
struct Segment {
    /// Its first value (written by a plain write, or the initial value).
    start: u32,
    /// The earliest return among its operations.
    f: u64,
    /// The latest call among its operations.
    s: u64,
    /// The operation with that call (the last to be called).
    late: u32,
}

/// One change to undo on backtracking.
enum Undo {
    /// An operation was released (became placeable in time).
    Release(u32),
    /// An operation was placed; the second field is where it sat in `pending`.
    Place(u32, u32),
    /// A value's block started.
    Start(u32),
    /// A segment left the pending sets.
    Taken(u32),
}

/// A choice point: the scalar state to restore and the heads still to try.
struct Frame {
    trail: usize,
    cur: u32,
    ptr_call: usize,
    ptr_ret: usize,
    active: usize,
    unplaced_known: usize,
    heads: Vec<u32>,
    next: usize,
}

/// What the walk does at a block boundary.
enum Next {
    /// Start this block.
    One(u32),
    /// Try these blocks in turn.
    Many(Vec<u32>),
    /// Nothing can come next: a dead end, blamed on this operation.
    Stuck(u32),
    /// This state was explored before.
    Seen,
}

/// The static facts about the values of a partition.
struct Values {
    /// The operation writing each value (`NONE`: never written, or the initial value).
    head: Vec<u32>,
    reads_of: Vec<Vec<u32>>,
    fails_of: Vec<Vec<u32>>,
    /// The value that must immediately follow each value (a known or observed cas from it).
    link: Vec<u32>,
    /// Whether the value must take effect in any linearization.
    required: Vec<bool>,
    /// The segment each value starts, if it starts one.
    starts: Vec<u32>,
}

/// How a walk ended.
enum Walked {
    /// Every operation with a known outcome is placed, in this order.
    Linearizable(Vec<u32>),
    /// No way on: the deepest prefix reached and the operation that could not follow it.
    Stuck(Vec<u32>, u32),
    /// Out of time.
    TimedOut,
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

/// The walk over one partition's operations, depth first over block choices.
struct Walk {
    kind: Vec<Kind>,
    known: Vec<bool>,
    call: Vec<u64>,
    ret: Vec<u64>,
    by_call: Vec<u32>,
    rank: Vec<u32>,
    by_ret: Vec<u32>,
    values: Values,
    segments: Vec<Segment>,
    optional: Vec<u32>,
    // The walk.
    placed: Vec<bool>,
    order: Vec<u32>,
    started: Vec<bool>,
    unplaced_reads: Vec<u32>,
    unplaced_fails: Vec<u32>,
    by_f: BTreeSet<(u64, u32)>,
    by_s: BTreeSet<(u64, u32)>,
    pending: Vec<u32>,
    pending_at: Vec<u32>,
    placed_optional: Vec<u32>,
    cur: u32,
    ptr_call: usize,
    ptr_ret: usize,
    /// Unplaced failed cas on values still to come or current: while there are any, the
    /// choice of the next block matters.
    active: usize,
    unplaced_known: usize,
    trail: Vec<Undo>,
    frames: Vec<Frame>,
    memo: rustc_hash::FxHashSet<Vec<u32>>,
    backtracking: bool,
    best: Option<(Vec<u32>, u32)>,
    /// For the guided walk: the heads to take, in order, and how many are taken.
    guide: Option<(Vec<u32>, usize)>,
}

impl Walk {
    /// Prepares a walk of `ops`; `relaxed` leaves out the failed cas.
    fn new(ops: &[&Operation], stepper: &Stepper, relaxed: bool) -> Walk {
        let n = ops.len();
        let kind: Vec<Kind> = (0..n)
            .map(|i| kind_of(stepper.step_of(i), ops[i].ret.is_some(), relaxed))
            .collect();
        let known: Vec<bool> = (0..n)
            .map(|i| ops[i].ret.is_some() && !matches!(kind[i], Kind::Ignore))
            .collect();
        let call: Vec<u64> = ops.iter().map(|o| o.call).collect();
        let ret: Vec<u64> = ops.iter().map(|o| o.ret.unwrap_or(NEVER)).collect();
        let mut by_call: Vec<u32> = (0..n as u32).collect();
        by_call.sort_unstable_by_key(|&i| (call[i as usize], i));
        let mut rank = vec![0u32; n];
        for (r, &i) in by_call.iter().enumerate() {
            rank[i as usize] = r as u32;
        }
        let mut by_ret: Vec<u32> = (0..n as u32).filter(|&i| known[i as usize]).collect();
        by_ret.sort_unstable_by_key(|&i| (ret[i as usize], i));
        let width = value_count(&kind);
        let values = Values::build(&kind, &by_call, &known, width);
        let early = early_fails(&kind, &values, &call, &ret);
        let mut values = values;
        let segments = segments(&kind, &values, &early, &call, &ret);
        for (g, seg) in segments.iter().enumerate() {
            values.starts[seg.start as usize] = g as u32;
        }
        let optional: Vec<u32> = by_call
            .iter()
            .copied()
            .filter(|&i| match kind[i as usize] {
                Kind::Head(x, _) => !values.required[x as usize],
                _ => false,
            })
            .collect();
        let count = |pick: fn(Kind) -> Option<u32>| {
            let mut c = vec![0u32; width];
            for &k in &kind {
                if let Some(x) = pick(k) {
                    c[x as usize] += 1;
                }
            }
            c
        };
        let unplaced_reads = count(|k| match k {
            Kind::Read(x) => Some(x),
            _ => None,
        });
        let unplaced_fails = count(|k| match k {
            Kind::Fail(f) => Some(f),
            _ => None,
        });
        let active = (0..width)
            .filter(|&x| values.tracked(x))
            .map(|x| unplaced_fails[x] as usize)
            .sum();
        let by_f = segments
            .iter()
            .enumerate()
            .filter(|(_, g)| g.start != INITIAL)
            .map(|(i, g)| (g.f, i as u32))
            .collect();
        let by_s = segments
            .iter()
            .enumerate()
            .filter(|(_, g)| g.start != INITIAL)
            .map(|(i, g)| (g.s, i as u32))
            .collect();
        let mut started = vec![false; width];
        started[INITIAL as usize] = true;
        Walk {
            guide: None,
            unplaced_known: known.iter().filter(|&&k| k).count(),
            placed: vec![false; n],
            order: Vec::with_capacity(n),
            started,
            unplaced_reads,
            unplaced_fails,
            by_f,
            by_s,
            pending: Vec::new(),
            pending_at: vec![NONE; n],
            placed_optional: Vec::new(),
            cur: INITIAL,
            ptr_call: 0,
            ptr_ret: 0,
            active,
            trail: Vec::new(),
            frames: Vec::new(),
            memo: Default::default(),
            backtracking: false,
            best: None,
            kind,
            known,
            call,
            ret,
            by_call,
            rank,
            by_ret,
            values,
            segments,
            optional,
        }
    }

    /// The heads placed so far, in order: the block order of the walk.
    fn heads(&self) -> Vec<u32> {
        self.order
            .iter()
            .copied()
            .filter(|&i| matches!(self.kind[i as usize], Kind::Head(..)))
            .collect()
    }

    /// Runs at most `budget` steps (or until `deadline`): `Some` when it ends, `None` to be
    /// resumed later.
    fn run(&mut self, budget: u64, deadline: Option<Instant>) -> Option<Walked> {
        for step in 0..budget {
            if step & 255 == 255 && deadline.is_some_and(|d| Instant::now() >= d) {
                return Some(Walked::TimedOut);
            }
            if self.backtracking {
                if !self.backtrack() {
                    let (prefix, blocked) = self.best.take().unwrap_or((Vec::new(), NONE));
                    return Some(Walked::Stuck(prefix, blocked));
                }
                continue;
            }
            if let Err(blocked) = self.advance() {
                self.dead_end(blocked);
                continue;
            }
            if self.unplaced_known == 0 {
                return Some(Walked::Linearizable(std::mem::take(&mut self.order)));
            }
            match self.next() {
                Next::One(h) => self.take(h),
                Next::Many(heads) => {
                    self.frames.push(Frame {
                        trail: self.trail.len(),
                        cur: self.cur,
                        ptr_call: self.ptr_call,
                        ptr_ret: self.ptr_ret,
                        active: self.active,
                        unplaced_known: self.unplaced_known,
                        next: 1,
                        heads,
                    });
                    let first = self.frames.last().map_or(NONE, |f| f.heads[0]);
                    self.take(first);
                }
                Next::Stuck(blocked) => self.dead_end(blocked),
                Next::Seen => self.backtracking = true,
            }
        }
        None
    }

    /// The earliest return among unplaced operations with a known outcome: every operation
    /// called no later than this may be placed.
    fn horizon(&mut self) -> u64 {
        while self.ptr_ret < self.by_ret.len() && self.placed[self.by_ret[self.ptr_ret] as usize] {
            self.ptr_ret += 1;
        }
        self.by_ret
            .get(self.ptr_ret)
            .map_or(NEVER, |&i| self.ret[i as usize])
    }

    /// The unplaced operation with the earliest return: where the walk is held up.
    fn horizon_op(&mut self) -> u32 {
        self.horizon();
        self.by_ret.get(self.ptr_ret).copied().unwrap_or(NONE)
    }

    fn released(&self, i: u32) -> bool {
        (self.rank[i as usize] as usize) < self.ptr_call && !self.placed[i as usize]
    }

    /// Releases operations as the horizon moves and places every state-preserving one that fits
    /// the current value; `Err` with a read whose value is gone for good.
    fn advance(&mut self) -> Result<(), u32> {
        loop {
            let m = self.horizon();
            let Some(&i) = self.by_call.get(self.ptr_call) else {
                return Ok(());
            };
            if self.call[i as usize] > m {
                return Ok(());
            }
            self.ptr_call += 1;
            if self.known[i as usize] {
                self.pending_at[i as usize] = self.pending.len() as u32;
                self.pending.push(i);
            }
            self.trail.push(Undo::Release(i));
            match self.kind[i as usize] {
                Kind::Read(x) if x == self.cur => self.place(i),
                Kind::Read(x) if self.started[x as usize] => return Err(i),
                Kind::Read(x) if self.values.head[x as usize] == NONE => return Err(i),
                Kind::Fail(f) if f != self.cur => self.place(i),
                _ => {}
            }
        }
    }

    fn place(&mut self, i: u32) {
        let iu = i as usize;
        self.placed[iu] = true;
        self.order.push(i);
        let at = self.pending_at[iu];
        if self.known[iu] {
            self.unplaced_known -= 1;
            let last = self.pending.pop().unwrap_or(i);
            if last != i {
                self.pending[at as usize] = last;
                self.pending_at[last as usize] = at;
            }
            self.pending_at[iu] = NONE;
        } else if self.optional_head(i) {
            self.placed_optional.push(i);
        }
        match self.kind[iu] {
            Kind::Read(x) => self.unplaced_reads[x as usize] -= 1,
            Kind::Fail(f) => {
                let f = f as usize;
                self.unplaced_fails[f] -= 1;
                if self.values.tracked(f) && (!self.started[f] || f == self.cur as usize) {
                    self.active -= 1;
                }
            }
            Kind::Head(..) | Kind::Ignore => {}
        }
        self.trail.push(Undo::Place(i, at));
    }

    /// Starts the block of the value written by head `h`, then places what it releases.
    fn take(&mut self, h: u32) {
        let Kind::Head(x, _) = self.kind[h as usize] else {
            return;
        };
        let prev = self.cur;
        self.place(h);
        let g = self.values.starts[x as usize];
        if g != NONE {
            let seg = &self.segments[g as usize];
            self.by_f.remove(&(seg.f, g));
            self.by_s.remove(&(seg.s, g));
            self.trail.push(Undo::Taken(g));
        }
        self.started[x as usize] = true;
        self.trail.push(Undo::Start(x));
        if self.values.tracked(prev as usize) {
            self.active -= self.unplaced_fails[prev as usize] as usize;
        }
        self.cur = x;
        for k in 0..self.values.reads_of[x as usize].len() {
            let r = self.values.reads_of[x as usize][k];
            if self.rank[r as usize] as usize >= self.ptr_call {
                break;
            }
            if !self.placed[r as usize] {
                self.place(r);
            }
        }
        for k in 0..self.values.fails_of[prev as usize].len() {
            let c = self.values.fails_of[prev as usize][k];
            if self.rank[c as usize] as usize >= self.ptr_call {
                break;
            }
            if !self.placed[c as usize] {
                self.place(c);
            }
        }
    }

    /// Decides what can follow the current block.
    fn next(&mut self) -> Next {
        let cur = self.cur as usize;
        if self.unplaced_reads[cur] > 0 {
            // A read of the current value that cannot be placed yet can never be placed.
            let stuck = self.values.reads_of[cur]
                .iter()
                .copied()
                .find(|&r| !self.placed[r as usize]);
            return Next::Stuck(stuck.unwrap_or(NONE));
        }
        if let Some((guide, k)) = &mut self.guide {
            let h = guide.get(*k).copied().unwrap_or(NONE);
            *k += 1;
            return match self.kind.get(h as usize) {
                Some(Kind::Head(_, from))
                    if self.released(h) && (*from == NONE || *from == self.cur) =>
                {
                    Next::One(h)
                }
                _ => Next::Stuck(self.horizon_op()),
            };
        }
        // (A failed cas on the current value still unplaced must go after this block, so the
        // next block has to begin before it returns: a released head always does.)
        let link = self.values.link[cur];
        if link != NONE {
            let h = self.values.head[link as usize];
            return if self.released(h) {
                Next::One(h)
            } else {
                Next::Stuck(self.horizon_op())
            };
        }
        // With no failed cas pending on values to come, any admissible segment extends to a
        // linearization if one exists (Kahn), so take the first; otherwise try them all.
        let choose = self.active > 0;
        let mut heads = self.sources(!choose);
        if self.unplaced_fails[cur] > 0 {
            heads.extend(self.optional_heads());
        }
        match heads.len() {
            0 => Next::Stuck(self.blame()),
            1 => Next::One(heads[0]),
            _ if !self.memo.insert(self.memo_key()) => Next::Seen,
            _ => Next::Many(heads),
        }
    }

    /// The released heads of the pending segments that may come next (`s(G) <= f(D)` for every
    /// other pending `D`), in order of `s`; only the first one if `first`.
    fn sources(&self, first: bool) -> Vec<u32> {
        let mut by_f = self.by_f.iter();
        let (f1, g1) = by_f.next().copied().unwrap_or((NEVER, NONE));
        let f2 = by_f.next().map_or(NEVER, |&(f, _)| f);
        let mut out = Vec::new();
        let head = |g: u32| self.values.head[self.segments[g as usize].start as usize];
        for &(s, g) in &self.by_s {
            if s > f1 {
                break;
            }
            if self.released(head(g)) {
                out.push(head(g));
                if first {
                    return out;
                }
            }
        }
        if g1 != NONE {
            let s = self.segments[g1 as usize].s;
            if s > f1 && s <= f2 && self.released(head(g1)) {
                out.push(head(g1));
            }
        }
        out
    }

    /// The operation to blame when no block can come next. If the pending segment `G` with
    /// the earliest return must go first but also after another one (its latest call comes
    /// after that one's earliest return), it is the late operation of `G`: typically a stale
    /// read. Otherwise the operation with the earliest return, where the walk is held up.
    fn blame(&mut self) -> u32 {
        let mut by_f = self.by_f.iter();
        if let (Some(&(_, g1)), Some(&(f2, _))) = (by_f.next(), by_f.next()) {
            let seg = &self.segments[g1 as usize];
            if seg.s > f2 && seg.late != NONE && self.known[seg.late as usize] {
                return seg.late;
            }
        }
        self.horizon_op()
    }

    /// Released unknown-outcome writes (and cas from the current value) that no one observes:
    /// they may take effect to let a failed cas see another value.
    fn optional_heads(&self) -> Vec<u32> {
        self.optional
            .iter()
            .copied()
            .take_while(|&i| (self.rank[i as usize] as usize) < self.ptr_call)
            .filter(|&i| !self.placed[i as usize])
            .filter(|&i| match self.kind[i as usize] {
                Kind::Head(_, from) => from == NONE || from == self.cur,
                _ => false,
            })
            .collect()
    }

    /// Whether `i` writes a value no one observes (an unknown-outcome write or cas that may
    /// never have taken effect).
    fn optional_head(&self, i: u32) -> bool {
        matches!(self.kind[i as usize], Kind::Head(x, _) if !self.values.required[x as usize])
    }

    /// The exact state at a block boundary: the current value and the placed set. That set is
    /// the released operations minus the pending known ones, minus the unknown-outcome ones not
    /// placed. Of those, an observed one is placed exactly when its value has started, which the
    /// rest of the key already tells (its observers are placed, or pending, or its block is
    /// current), so only the unobserved ones are listed.
    fn memo_key(&self) -> Vec<u32> {
        let mut pending = self.pending.clone();
        pending.sort_unstable();
        let mut unknown = self.placed_optional.clone();
        unknown.sort_unstable();
        let mut key = Vec::with_capacity(3 + pending.len() + unknown.len());
        key.extend([self.cur, self.ptr_call as u32]);
        key.extend(pending);
        key.push(NONE);
        key.extend(unknown);
        key
    }

    fn dead_end(&mut self, blocked: u32) {
        let deeper = self
            .best
            .as_ref()
            .is_none_or(|(p, _)| self.order.len() > p.len());
        if deeper && blocked != NONE {
            self.best = Some((self.order.clone(), blocked));
        }
        self.backtracking = true;
    }

    /// Returns to the latest choice point with a head left to try and takes it; false when
    /// there is none.
    fn backtrack(&mut self) -> bool {
        let Some(frame) = self.frames.last_mut() else {
            return false;
        };
        let h = frame.heads[frame.next];
        frame.next += 1;
        let exhausted = frame.next == frame.heads.len();
        let (trail, cur, ptr_call, ptr_ret, active, unplaced_known) = (
            frame.trail,
            frame.cur,
            frame.ptr_call,
            frame.ptr_ret,
            frame.active,
            frame.unplaced_known,
        );
        if exhausted {
            self.frames.pop();
        }
        while self.trail.len() > trail {
            self.undo();
        }
        self.cur = cur;
        self.ptr_call = ptr_call;
        self.ptr_ret = ptr_ret;
        self.active = active;
        self.unplaced_known = unplaced_known;
        self.backtracking = false;
        self.take(h);
        true
    }

    fn undo(&mut self) {
        match self.trail.pop() {
            Some(Undo::Release(i)) if self.known[i as usize] => {
                self.pending.pop();
                self.pending_at[i as usize] = NONE;
            }
            Some(Undo::Place(i, at)) => self.unplace(i, at),
            Some(Undo::Start(x)) => self.started[x as usize] = false,
            Some(Undo::Taken(g)) => {
                let seg = &self.segments[g as usize];
                self.by_f.insert((seg.f, g));
                self.by_s.insert((seg.s, g));
            }
            Some(Undo::Release(_)) | None => {}
        }
    }

    fn unplace(&mut self, i: u32, at: u32) {
        let iu = i as usize;
        self.placed[iu] = false;
        self.order.pop();
        if self.known[iu] {
            if at as usize == self.pending.len() {
                self.pending.push(i);
            } else {
                let moved = self.pending[at as usize];
                self.pending_at[moved as usize] = self.pending.len() as u32;
                self.pending.push(moved);
                self.pending[at as usize] = i;
            }
            self.pending_at[iu] = at;
        } else if self.optional_head(i) {
            self.placed_optional.pop();
        }
        match self.kind[iu] {
            Kind::Read(x) => self.unplaced_reads[x as usize] += 1,
            Kind::Fail(f) => {
                self.unplaced_fails[f as usize] += 1;
            }
            Kind::Head(..) | Kind::Ignore => {}
        }
    }
}

fn kind_of(step: Step, known: bool, relaxed: bool) -> Kind {
    match step {
        Step::Read(x) if known => Kind::Read(x),
        Step::CasFail(f) if known && !relaxed => Kind::Fail(f),
        Step::Read(_) | Step::CasFail(_) => Kind::Ignore,
        Step::Write(x) | Step::Append(x) => Kind::Head(x, NONE),
        Step::CasOk(p, x) | Step::CasMaybe(p, x) => Kind::Head(x, p),
    }
}

fn value_count(kind: &[Kind]) -> usize {
    let top = kind
        .iter()
        .map(|k| match *k {
            Kind::Read(x) | Kind::Fail(x) => x,
            Kind::Head(x, p) if p != NONE => x.max(p),
            Kind::Head(x, _) => x,
            Kind::Ignore => INITIAL,
        })
        .max()
        .unwrap_or(INITIAL);
    top as usize + 1
}

impl Values {
    /// Whether failed cas on value `x` can constrain the order of blocks: it must take effect,
    /// and is written (or is the initial value).
    fn tracked(&self, x: usize) -> bool {
        self.required[x] && (self.head[x] != NONE || x == INITIAL as usize)
    }

    fn build(kind: &[Kind], by_call: &[u32], known: &[bool], width: usize) -> Values {
        let mut v = Values {
            head: vec![NONE; width],
            reads_of: vec![Vec::new(); width],
            fails_of: vec![Vec::new(); width],
            link: vec![NONE; width],
            required: vec![false; width],
            starts: vec![NONE; width],
        };
        for &i in by_call {
            match kind[i as usize] {
                Kind::Read(x) => v.reads_of[x as usize].push(i),
                Kind::Fail(f) => v.fails_of[f as usize].push(i),
                Kind::Head(x, _) => v.head[x as usize] = i,
                Kind::Ignore => {}
            }
        }
        // A value must take effect if it is observed, or written by an operation that
        // returned; then so must the value a cas writing it needed.
        let mut work: Vec<u32> = (0..width as u32)
            .filter(|&x| {
                let h = v.head[x as usize];
                !v.reads_of[x as usize].is_empty() || (h != NONE && known[h as usize])
            })
            .collect();
        for &x in &work {
            v.required[x as usize] = true;
        }
        v.required[INITIAL as usize] = true;
        while let Some(x) = work.pop() {
            let h = v.head[x as usize];
            if h == NONE {
                continue;
            }
            if let Kind::Head(_, p) = kind[h as usize] {
                if p != NONE && !v.required[p as usize] {
                    v.required[p as usize] = true;
                    work.push(p);
                }
            }
        }
        for x in 0..width {
            let h = v.head[x];
            if h == NONE || !v.required[x] {
                continue;
            }
            if let Kind::Head(_, p) = kind[h as usize] {
                // Of two cas that both need `p`, only one can follow it; the other is never
                // reached, and the walk gets stuck on it.
                if p != NONE && v.link[p as usize] == NONE {
                    v.link[p as usize] = x as u32;
                }
            }
        }
        v
    }
}

/// Marks the failed cas that may have run before their expected value was written (its write
/// may have an unknown outcome or overlap them).
fn early_fails(kind: &[Kind], values: &Values, call: &[u64], ret: &[u64]) -> Vec<bool> {
    kind.iter()
        .enumerate()
        .map(|(i, k)| match *k {
            Kind::Fail(f) => {
                let h = values.head[f as usize];
                f != INITIAL && h != NONE && call[i] <= ret[h as usize]
            }
            _ => false,
        })
        .collect()
}

/// Builds the segments from every value a plain write (or the initial state) starts, and
/// records which value starts which.
fn segments(
    kind: &[Kind],
    values: &Values,
    early: &[bool],
    call: &[u64],
    ret: &[u64],
) -> Vec<Segment> {
    let width = values.head.len();
    let starts = (0..width as u32).filter(|&x| {
        let h = values.head[x as usize];
        x == INITIAL
            || (h != NONE
                && values.required[x as usize]
                && matches!(kind[h as usize], Kind::Head(_, NONE)))
    });
    let mut out = Vec::new();
    for start in starts.collect::<Vec<_>>() {
        let mut seg = Segment {
            start,
            f: NEVER,
            s: 0,
            late: NONE,
        };
        let mut x = start;
        let mut steps = 0;
        while x != NONE && steps <= width {
            let h = values.head[x as usize];
            let members = values.reads_of[x as usize].iter().chain(
                values.fails_of[x as usize]
                    .iter()
                    .filter(|&&c| !early[c as usize]),
            );
            for &i in members.chain((h != NONE).then_some(&h)) {
                seg.f = seg.f.min(ret[i as usize]);
                if !matches!(kind[i as usize], Kind::Fail(_)) && call[i as usize] >= seg.s {
                    seg.s = call[i as usize];
                    seg.late = i;
                }
            }
            x = values.link[x as usize];
            steps += 1;
        }
        out.push(seg);
    }
    out
}
