//! The walk: places operations block by block, commits where the order of blocks cannot matter
//! and tries every admissible block, depth first with an exact memo, where it can.

use super::plan::{Kind, Plan, NEVER, NONE};
use crate::history::Operation;
use crate::spec::{Stepper, INITIAL};
use std::collections::BTreeSet;
use std::time::Instant;

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

/// How a walk ended.
pub(super) enum Walked {
    /// Every operation with a known outcome is placed, in this order.
    Linearizable(Vec<u32>),
    /// No way on: the deepest prefix reached and the operation that could not follow it.
    Stuck(Vec<u32>, u32),
    /// Out of time.
    TimedOut,
}

/// The walk over one partition's operations, depth first over block choices.
pub(super) struct Walk {
    plan: Plan,
    placed: Vec<bool>,
    /// The placed operations in placement order: the linearization so far.
    order: Vec<u32>,
    /// Per value, whether its block has begun.
    started: Vec<bool>,
    unplaced_reads: Vec<u32>,
    unplaced_fails: Vec<u32>,
    /// The segments not begun, by `f` and by `s`.
    by_f: BTreeSet<(u64, u32)>,
    by_s: BTreeSet<(u64, u32)>,
    /// The released, unplaced operations with a known outcome, and where each sits in it.
    pending: Vec<u32>,
    pending_at: Vec<u32>,
    /// The placed writes no one observes, in placement order.
    placed_optional: Vec<u32>,
    /// The current value.
    cur: u32,
    /// How many operations (in call order) are released.
    ptr_call: usize,
    /// How many operations (in return order) are known to be placed.
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
    pub(super) guide: Option<(Vec<u32>, usize)>,
}

impl Walk {
    /// Prepares a walk of `ops`; `relaxed` leaves out the failed cas.
    pub(super) fn new(ops: &[&Operation], stepper: &Stepper, relaxed: bool) -> Walk {
        let plan = Plan::new(ops, stepper, relaxed);
        let unplaced_reads = plan.count(|k| match k {
            Kind::Read(x) => Some(x),
            _ => None,
        });
        let unplaced_fails = plan.count(|k| match k {
            Kind::Fail(f) => Some(f),
            _ => None,
        });
        let active = (0..plan.width())
            .filter(|&x| plan.values.tracked(x))
            .map(|x| unplaced_fails[x] as usize)
            .sum();
        let mut started = vec![false; plan.width()];
        started[INITIAL as usize] = true;
        let n = plan.kind.len();
        Walk {
            guide: None,
            unplaced_known: plan.known.iter().filter(|&&k| k).count(),
            placed: vec![false; n],
            order: Vec::with_capacity(n),
            started,
            unplaced_reads,
            unplaced_fails,
            by_f: plan.pending_by(|g| g.f),
            by_s: plan.pending_by(|g| g.s),
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
            plan,
        }
    }

    /// The heads placed so far, in order: the block order of the walk.
    pub(super) fn heads(&self) -> Vec<u32> {
        self.order
            .iter()
            .copied()
            .filter(|&i| matches!(self.plan.kind[i as usize], Kind::Head(..)))
            .collect()
    }

    /// Runs at most `budget` steps (or until `deadline`): `Some` when it ends, `None` to be
    /// resumed later.
    pub(super) fn run(&mut self, budget: u64, deadline: Option<Instant>) -> Option<Walked> {
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
        while self.ptr_ret < self.plan.by_ret.len()
            && self.placed[self.plan.by_ret[self.ptr_ret] as usize]
        {
            self.ptr_ret += 1;
        }
        self.plan
            .by_ret
            .get(self.ptr_ret)
            .map_or(NEVER, |&i| self.plan.ret[i as usize])
    }

    /// The unplaced operation with the earliest return: where the walk is held up.
    fn horizon_op(&mut self) -> u32 {
        self.horizon();
        self.plan.by_ret.get(self.ptr_ret).copied().unwrap_or(NONE)
    }

    fn released(&self, i: u32) -> bool {
        (self.plan.rank[i as usize] as usize) < self.ptr_call && !self.placed[i as usize]
    }

    /// Releases operations as the horizon moves and places every state-preserving one that fits
    /// the current value; `Err` with a read whose value is gone for good.
    fn advance(&mut self) -> Result<(), u32> {
        loop {
            let m = self.horizon();
            let Some(&i) = self.plan.by_call.get(self.ptr_call) else {
                return Ok(());
            };
            if self.plan.call[i as usize] > m {
                return Ok(());
            }
            self.ptr_call += 1;
            if self.plan.known[i as usize] {
                self.pending_at[i as usize] = self.pending.len() as u32;
                self.pending.push(i);
            }
            self.trail.push(Undo::Release(i));
            match self.plan.kind[i as usize] {
                Kind::Read(x) if x == self.cur => self.place(i),
                Kind::Read(x) if self.started[x as usize] => return Err(i),
                Kind::Read(x) if self.plan.values.head[x as usize] == NONE => return Err(i),
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
        if self.plan.known[iu] {
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
        match self.plan.kind[iu] {
            Kind::Read(x) => self.unplaced_reads[x as usize] -= 1,
            Kind::Fail(f) => {
                let f = f as usize;
                self.unplaced_fails[f] -= 1;
                if self.plan.values.tracked(f) && (!self.started[f] || f == self.cur as usize) {
                    self.active -= 1;
                }
            }
            Kind::Head(..) | Kind::Ignore => {}
        }
        self.trail.push(Undo::Place(i, at));
    }

    /// Starts the block of the value written by head `h`, then places what it releases.
    fn take(&mut self, h: u32) {
        let Kind::Head(x, _) = self.plan.kind[h as usize] else {
            return;
        };
        let prev = self.cur;
        self.place(h);
        let g = self.plan.values.starts[x as usize];
        if g != NONE {
            let seg = &self.plan.segments[g as usize];
            self.by_f.remove(&(seg.f, g));
            self.by_s.remove(&(seg.s, g));
            self.trail.push(Undo::Taken(g));
        }
        self.started[x as usize] = true;
        self.trail.push(Undo::Start(x));
        if self.plan.values.tracked(prev as usize) {
            self.active -= self.unplaced_fails[prev as usize] as usize;
        }
        self.cur = x;
        for k in 0..self.plan.values.reads_of[x as usize].len() {
            let r = self.plan.values.reads_of[x as usize][k];
            if self.plan.rank[r as usize] as usize >= self.ptr_call {
                break;
            }
            if !self.placed[r as usize] {
                self.place(r);
            }
        }
        for k in 0..self.plan.values.fails_of[prev as usize].len() {
            let c = self.plan.values.fails_of[prev as usize][k];
            if self.plan.rank[c as usize] as usize >= self.ptr_call {
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
            let stuck = self.plan.values.reads_of[cur]
                .iter()
                .copied()
                .find(|&r| !self.placed[r as usize]);
            return Next::Stuck(stuck.unwrap_or(NONE));
        }
        if let Some((guide, k)) = &mut self.guide {
            let h = guide.get(*k).copied().unwrap_or(NONE);
            *k += 1;
            return match self.plan.kind.get(h as usize) {
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
        let link = self.plan.values.link[cur];
        if link != NONE {
            let h = self.plan.values.head[link as usize];
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
        let head = |g: u32| self.plan.values.head[self.plan.segments[g as usize].start as usize];
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
            let s = self.plan.segments[g1 as usize].s;
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
            let seg = &self.plan.segments[g1 as usize];
            if seg.s > f2 && seg.late != NONE && self.plan.known[seg.late as usize] {
                return seg.late;
            }
        }
        self.horizon_op()
    }

    /// Released unknown-outcome writes (and cas from the current value) that no one observes:
    /// they may take effect to let a failed cas see another value.
    fn optional_heads(&self) -> Vec<u32> {
        self.plan
            .optional
            .iter()
            .copied()
            .take_while(|&i| (self.plan.rank[i as usize] as usize) < self.ptr_call)
            .filter(|&i| !self.placed[i as usize])
            .filter(|&i| match self.plan.kind[i as usize] {
                Kind::Head(_, from) => from == NONE || from == self.cur,
                _ => false,
            })
            .collect()
    }

    /// Whether `i` writes a value no one observes (an unknown-outcome write or cas that may
    /// never have taken effect).
    fn optional_head(&self, i: u32) -> bool {
        matches!(self.plan.kind[i as usize], Kind::Head(x, _) if !self.plan.values.required[x as usize])
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
            Some(Undo::Release(i)) if self.plan.known[i as usize] => {
                self.pending.pop();
                self.pending_at[i as usize] = NONE;
            }
            Some(Undo::Place(i, at)) => self.unplace(i, at),
            Some(Undo::Start(x)) => self.started[x as usize] = false,
            Some(Undo::Taken(g)) => {
                let seg = &self.plan.segments[g as usize];
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
        if self.plan.known[iu] {
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
        match self.plan.kind[iu] {
            Kind::Read(x) => self.unplaced_reads[x as usize] += 1,
            Kind::Fail(f) => {
                self.unplaced_fails[f as usize] += 1;
            }
            Kind::Head(..) | Kind::Ignore => {}
        }
    }
}
