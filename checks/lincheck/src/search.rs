//! The linearizability search: Wing–Gong / Lowe just-in-time linearization with memoization,
//! run per partition in parallel.
//!
//! Per partition, call and return events are sorted by time into a doubly linked list. The
//! search walks the list: at a call it tries to linearize that operation now (the model must
//! accept its observed result, and the resulting (linearized set, state) pair must be new);
//! reaching the return of an operation that is not linearized yet means the current partial
//! linearization is a dead end, so it backtracks. Linearized operations are unlinked from the
//! list, so the walk always restarts from the earliest pending event.
//!
//! Refinements over the textbook algorithm:
//! - The linearized set is a bitset with an incrementally maintained Zobrist hash, so the memo
//!   lookup costs O(1) hashing plus one bitset comparison.
//! - Operations with unknown outcome have no return event: they never force a backtrack, and
//!   the search succeeds as soon as every operation with a known outcome is linearized (the
//!   rest "never took effect").
//! - Interchangeable operations (same compiled step, intervals that do not nest) are
//!   linearized in call order only. Swapping two such operations in any linearization gives
//!   another valid one, so this loses no linearization, but it turns 2^k subsets of k identical
//!   pending writes into k + 1.

use crate::history::{History, Operation};
use crate::readfrom::{unique_writes, ReadFrom};
use crate::spec::{Partition, Spec, Step, Stepper, INITIAL};
use rayon::prelude::*;
use std::collections::HashMap;
use std::collections::VecDeque;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How to check a history.
#[derive(Clone, Copy, Debug)]
pub struct CheckOptions {
    /// The sequential specification.
    pub spec: Spec,
    /// Give up with [`Verdict::Unknown`] after this long (never a wrong answer).
    pub time_limit: Option<Duration>,
}

/// The overall answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Some linearization exists for every partition.
    Linearizable,
    /// Some partition has no linearization.
    NotLinearizable,
    /// The time limit ran out before an answer.
    Unknown,
}

/// Evidence of a violation in one partition. Operation references are indices into the
/// history's operations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The longest linearizable prefix found, in linearization order.
    pub prefix: Vec<usize>,
    /// The model state after that prefix, described.
    pub state: String,
    /// The operation whose return the search reached without being able to place it: the
    /// point where the history stops being linearizable.
    pub blocked: usize,
    /// The operations that could come next after the prefix (invoked before `blocked`
    /// returned), each with whether the model even accepts it in `state`. None of them leads to
    /// a complete linearization.
    pub candidates: Vec<(usize, bool)>,
}

/// What the search found for one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartitionOutcome {
    /// Linearizable; the linearization (indices into the history), which leaves out unknown
    /// operations that never took effect.
    Linearizable(Vec<usize>),
    /// Not linearizable.
    Violation(Violation),
    /// Out of time.
    TimedOut,
    /// Abandoned because another partition already found a violation.
    Cancelled,
}

/// The result for one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionReport {
    /// The partition (key and operations).
    pub partition: Partition,
    /// What was found.
    pub outcome: PartitionOutcome,
}

/// The checker's full answer: the verdict and the per-partition evidence behind it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The verdict.
    pub verdict: Verdict,
    /// Per partition, in key order.
    pub partitions: Vec<PartitionReport>,
}

impl Report {
    /// The first violating partition, if any: the evidence to show for a failed check.
    pub fn violation(&self) -> Option<(&PartitionReport, &Violation)> {
        self.partitions.iter().find_map(|p| match &p.outcome {
            PartitionOutcome::Violation(v) => Some((p, v)),
            _ => None,
        })
    }
}

/// How a partition is decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// The read-from procedure ([`crate::readfrom`]) where every written value is unique, the
    /// search elsewhere: what [`check`] does.
    Auto,
    /// Always the search, so that the read-from procedure can be tested and timed against it.
    Search,
}

/// Checks `history` for linearizability against `options.spec`. Partitions are checked in
/// parallel in fair slices (see `schedule`); the first violation cancels the others.
pub fn check(history: &History, options: &CheckOptions) -> Report {
    check_using(history, options, Method::Auto)
}

/// [`check`] with the choice of procedure made explicit.
pub fn check_using(history: &History, options: &CheckOptions, method: Method) -> Report {
    let deadline = options.time_limit.map(|d| Instant::now() + d);
    let partitions = options.spec.partition(history);
    let outcomes = schedule(options.spec, method, history, &partitions, deadline);
    let partitions: Vec<PartitionReport> = partitions
        .into_iter()
        .zip(outcomes)
        .map(|(partition, outcome)| PartitionReport {
            outcome: globalize(outcome, &partition.ops),
            partition,
        })
        .collect();
    let any = |f: fn(&PartitionOutcome) -> bool| partitions.iter().any(|p| f(&p.outcome));
    let verdict = if any(|o| matches!(o, PartitionOutcome::Violation(_))) {
        Verdict::NotLinearizable
    } else if any(|o| matches!(o, PartitionOutcome::TimedOut | PartitionOutcome::Cancelled)) {
        Verdict::Unknown
    } else {
        Verdict::Linearizable
    };
    Report {
        verdict,
        partitions,
    }
}

/// First slice of iterations a partition gets; each later turn gets twice the previous one.
const FIRST_SLICE: u64 = 4096;

/// Runs all partitions on the rayon pool. Workers take turns on partitions in slices of
/// doubling length, so that a partition with a quickly found violation is reached early even
/// when other partitions need long searches (as Go's scheduler does for porcupine's
/// goroutines); the first violation stops everything. Returns local outcomes by partition.
fn schedule(
    spec: Spec,
    method: Method,
    history: &History,
    partitions: &[Partition],
    deadline: Option<Instant>,
) -> Vec<PartitionOutcome> {
    let cancel = AtomicBool::new(false);
    let results: Mutex<Vec<Option<PartitionOutcome>>> = Mutex::new(vec![None; partitions.len()]);
    // The queue holds (partition, its search if started, next slice).
    type Turn<'h> = (usize, Option<Engine<'h>>, u64);
    let queue: Mutex<VecDeque<Turn<'_>>> = Mutex::new(
        (0..partitions.len())
            .map(|i| (i, None, FIRST_SLICE))
            .collect(),
    );
    let workers = rayon::current_num_threads().min(partitions.len()).max(1);
    (0..workers).into_par_iter().for_each(|_| loop {
        if cancel.load(Ordering::Relaxed) {
            return;
        }
        let Some((i, search, slice)) = queue.lock().ok().and_then(|mut q| q.pop_front()) else {
            return;
        };
        let mut search = search.unwrap_or_else(|| {
            let ops = partitions[i].ops.iter().map(|&j| &history.ops[j]).collect();
            Engine::new(spec, method, ops)
        });
        match search.run(slice, deadline) {
            Some(outcome) => {
                if matches!(outcome, PartitionOutcome::Violation(_)) {
                    cancel.store(true, Ordering::Relaxed);
                }
                if let Ok(mut r) = results.lock() {
                    r[i] = Some(outcome);
                }
            }
            None => {
                if let Ok(mut q) = queue.lock() {
                    q.push_back((i, Some(search), slice.saturating_mul(2)));
                }
            }
        }
    });
    let results = results.into_inner().unwrap_or_default();
    results
        .into_iter()
        .map(|o| o.unwrap_or(PartitionOutcome::Cancelled))
        .collect()
}

/// The procedure deciding one partition.
enum Engine<'a> {
    Search(Box<Search<'a>>),
    ReadFrom(Box<ReadFrom<'a>>),
}

impl<'a> Engine<'a> {
    /// Compiles the partition once and picks the read-from procedure when it applies.
    fn new(spec: Spec, method: Method, ops: Vec<&'a Operation>) -> Engine<'a> {
        let stepper = Stepper::compile(spec, &ops);
        if method == Method::Auto && unique_writes(&stepper, ops.len()) {
            Engine::ReadFrom(Box::new(ReadFrom::new(ops, stepper)))
        } else {
            Engine::Search(Box::new(Search::new(ops, stepper)))
        }
    }

    fn run(&mut self, budget: u64, deadline: Option<Instant>) -> Option<PartitionOutcome> {
        match self {
            Engine::Search(s) => s.run(budget, deadline),
            Engine::ReadFrom(r) => r.run(budget, deadline),
        }
    }
}

/// Maps partition-local operation indices to history indices.
fn globalize(outcome: PartitionOutcome, ops: &[usize]) -> PartitionOutcome {
    match outcome {
        PartitionOutcome::Linearizable(order) => {
            PartitionOutcome::Linearizable(order.into_iter().map(|i| ops[i]).collect())
        }
        PartitionOutcome::Violation(v) => PartitionOutcome::Violation(Violation {
            prefix: v.prefix.into_iter().map(|i| ops[i]).collect(),
            state: v.state,
            blocked: ops[v.blocked],
            candidates: v
                .candidates
                .into_iter()
                .map(|(i, ok)| (ops[i], ok))
                .collect(),
        }),
        other => other,
    }
}

/// A hasher that passes already well-mixed 64-bit hashes through.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The memo of visited (linearized set, state) pairs: chained entries in flat arenas.
struct Memo {
    words: usize,
    heads: HashMap<u64, u32, BuildHasherDefault<PassThrough>>,
    next: Vec<u32>,
    states: Vec<u32>,
    bits: Vec<u64>,
}

const NONE: u32 = u32::MAX;

impl Memo {
    fn new(words: usize) -> Memo {
        Memo {
            words,
            heads: HashMap::default(),
            next: Vec::new(),
            states: Vec::new(),
            bits: Vec::new(),
        }
    }

    /// Records the pair; false if it was already there.
    fn insert(&mut self, hash: u64, bits: &[u64], state: u32) -> bool {
        let fresh = self.states.len() as u32;
        let head = self.heads.entry(hash).or_insert(NONE);
        let mut at = *head;
        while at != NONE {
            let i = at as usize;
            if self.states[i] == state && &self.bits[i * self.words..(i + 1) * self.words] == bits {
                return false;
            }
            at = self.next[i];
        }
        self.next.push(*head);
        *head = fresh;
        self.states.push(state);
        self.bits.extend_from_slice(bits);
        true
    }
}

/// SplitMix64: the per-operation Zobrist keys and the state mixer.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Sort key of an event: time, calls before returns at equal times (touching intervals are
/// concurrent), then operation.
type EventKey = (u64, u8, usize);

fn call_key(op: &Operation, i: usize) -> EventKey {
    (op.call, 0, i)
}

fn ret_key(op: &Operation, i: usize) -> Option<EventKey> {
    op.ret.map(|r| (r, 1, i))
}

/// For each operation, the interchangeable operation that must be linearized before it.
fn twins(ops: &[&Operation], stepper: &Stepper) -> Vec<u32> {
    let mut twin = vec![NONE; ops.len()];
    let mut classes: HashMap<(Step, bool), Vec<usize>> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        classes
            .entry((stepper.step_of(i), op.ret.is_some()))
            .or_default()
            .push(i);
    }
    for (_, mut members) in classes {
        if members.len() < 2 {
            continue;
        }
        members.sort_by_key(|&i| (ops[i].call, ops[i].ret.unwrap_or(u64::MAX), i));
        // Greedy chain cover: each chain's calls and returns are both non-decreasing.
        let mut chains: Vec<(u64, usize)> = Vec::new(); // (last return, last op)
        for i in members {
            let r = ops[i].ret.unwrap_or(u64::MAX);
            let best = chains
                .iter_mut()
                .filter(|(last, _)| *last <= r)
                .max_by_key(|(last, _)| *last);
            match best {
                Some(chain) => {
                    twin[i] = chain.1 as u32;
                    *chain = (r, i);
                }
                None => chains.push((r, i)),
            }
        }
    }
    twin
}

/// The resumable search state of one partition; indices are local to `ops`.
struct Search<'a> {
    ops: Vec<&'a Operation>,
    stepper: Stepper,
    twin: Vec<u32>,
    required: usize,
    head: usize,
    next: Vec<usize>,
    prev: Vec<usize>,
    call_at: Vec<usize>,
    ret_at: Vec<usize>,
    is_call: Vec<bool>,
    op_at: Vec<usize>,
    zobrist: Vec<u64>,
    bits: Vec<u64>,
    memo: Memo,
    zob: u64,
    state: u32,
    done: usize,
    stack: Vec<(usize, u32)>,
    best: Option<(Vec<usize>, usize)>,
    cursor: usize,
}

impl<'a> Search<'a> {
    fn new(ops: Vec<&'a Operation>, stepper: Stepper) -> Search<'a> {
        let n = ops.len();
        let twin = twins(&ops, &stepper);
        let required = ops.iter().filter(|o| o.ret.is_some()).count();
        // Events sorted by time; the list is circular through the sentinel `head`.
        let mut events: Vec<EventKey> = Vec::with_capacity(2 * n);
        for (i, op) in ops.iter().enumerate() {
            events.push(call_key(op, i));
            events.extend(ret_key(op, i));
        }
        events.sort_unstable();
        let e = events.len();
        let next: Vec<usize> = (1..=e).chain([0]).collect();
        let prev: Vec<usize> = [e].into_iter().chain(0..e).collect();
        let mut call_at = vec![0usize; n];
        let mut ret_at = vec![usize::MAX; n];
        let mut is_call = vec![false; e];
        let mut op_at = vec![0usize; e];
        for (at, &(_, kind, i)) in events.iter().enumerate() {
            op_at[at] = i;
            if kind == 0 {
                is_call[at] = true;
                call_at[i] = at;
            } else {
                ret_at[i] = at;
            }
        }
        let words = n.div_ceil(64);
        Search {
            zobrist: (0..n as u64).map(mix).collect(),
            bits: vec![0u64; words],
            memo: Memo::new(words),
            zob: 0,
            state: INITIAL,
            done: 0,
            stack: Vec::new(),
            best: None,
            cursor: next[e],
            head: e,
            next,
            prev,
            call_at,
            ret_at,
            is_call,
            op_at,
            ops,
            stepper,
            twin,
            required,
        }
    }

    fn unlink(&mut self, at: usize) {
        let (p, n) = (self.prev[at], self.next[at]);
        self.next[p] = n;
        self.prev[n] = p;
    }

    fn relink(&mut self, at: usize) {
        let (p, n) = (self.prev[at], self.next[at]);
        self.next[p] = at;
        self.prev[n] = at;
    }

    fn linearized(&self, i: usize) -> bool {
        self.bits[i / 64] >> (i % 64) & 1 == 1
    }

    /// Runs at most `budget` iterations (or until `deadline`): `Some` with the answer, or
    /// `None` to be resumed later.
    fn run(&mut self, budget: u64, deadline: Option<Instant>) -> Option<PartitionOutcome> {
        if self.required == 0 {
            return Some(PartitionOutcome::Linearizable(Vec::new()));
        }
        for iteration in 0..budget {
            if iteration & 1023 == 1023 && deadline.is_some_and(|d| Instant::now() >= d) {
                return Some(PartitionOutcome::TimedOut);
            }
            let cursor = self.cursor;
            if cursor != self.head && self.is_call[cursor] {
                let i = self.op_at[cursor];
                let t = self.twin[i];
                if t == NONE || self.linearized(t as usize) {
                    if let Some(s) = self.stepper.step(self.state, i) {
                        self.bits[i / 64] |= 1 << (i % 64);
                        let z = self.zob ^ self.zobrist[i];
                        if self
                            .memo
                            .insert(z ^ mix(u64::from(s) ^ 0x5bd1_e995), &self.bits, s)
                        {
                            self.stack.push((i, self.state));
                            self.state = s;
                            self.zob = z;
                            self.unlink(self.call_at[i]);
                            if self.ret_at[i] != usize::MAX {
                                self.unlink(self.ret_at[i]);
                                self.done += 1;
                                if self.done == self.required {
                                    let order = self.stack.iter().map(|&(i, _)| i).collect();
                                    return Some(PartitionOutcome::Linearizable(order));
                                }
                            }
                            self.cursor = self.next[self.head];
                            continue;
                        }
                        self.bits[i / 64] &= !(1 << (i % 64));
                    }
                }
                self.cursor = self.next[cursor];
                continue;
            }
            // The return of an unplaced operation (or, defensively, the end of the list): a
            // dead end. Remember the deepest one as evidence, then backtrack.
            let deeper = self
                .best
                .as_ref()
                .is_none_or(|(p, _)| self.stack.len() > p.len());
            if deeper && cursor != self.head {
                let prefix = self.stack.iter().map(|&(i, _)| i).collect();
                self.best = Some((prefix, self.op_at[cursor]));
            }
            let Some((i, before)) = self.stack.pop() else {
                let (prefix, blocked) = self.best.take().unwrap_or((Vec::new(), 0));
                let v = explain(&self.ops, &mut self.stepper, prefix, blocked);
                return Some(PartitionOutcome::Violation(v));
            };
            self.state = before;
            self.zob ^= self.zobrist[i];
            self.bits[i / 64] &= !(1 << (i % 64));
            if self.ret_at[i] != usize::MAX {
                self.relink(self.ret_at[i]);
                self.done -= 1;
            }
            self.relink(self.call_at[i]);
            self.cursor = self.next[self.call_at[i]];
        }
        None
    }
}

/// Builds the violation evidence for the deepest dead end: the state after the prefix and the
/// operations that could have come next.
pub(crate) fn explain(
    ops: &[&Operation],
    stepper: &mut Stepper,
    prefix: Vec<usize>,
    blocked: usize,
) -> Violation {
    let mut state = INITIAL;
    let mut placed = vec![false; ops.len()];
    for &i in &prefix {
        placed[i] = true;
        // The prefix was accepted by the search, so every step succeeds.
        state = stepper.step(state, i).unwrap_or(state);
    }
    let limit = ret_key(ops[blocked], blocked);
    let mut candidates: Vec<(usize, bool)> = (0..ops.len())
        .filter(|&i| !placed[i] && Some(call_key(ops[i], i)) < limit)
        .map(|i| (i, false))
        .collect();
    for c in &mut candidates {
        c.1 = stepper.step(state, c.0).is_some();
    }
    Violation {
        prefix,
        state: stepper.describe(state),
        blocked,
        candidates,
    }
}
