//! The static facts the walk works from: what each operation is to it, the values with their
//! writes, observers and forced successors, and the segments with their `f` and `s`.

use crate::history::Operation;
use crate::spec::{Step, Stepper, INITIAL};

/// No operation, value or segment.
pub(super) const NONE: u32 = u32::MAX;
/// The return time of an operation that never returns, and the minimum of nothing.
pub(super) const NEVER: u64 = u64::MAX;

/// What an operation is to the procedure.
#[derive(Clone, Copy, Debug)]
pub(super) enum Kind {
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
pub(super) struct Segment {
    /// Its first value (written by a plain write, or the initial value).
    pub(super) start: u32,
    /// The earliest return among its operations.
    pub(super) f: u64,
    /// The latest call among its operations.
    pub(super) s: u64,
    /// The operation with that call (the last to be called).
    pub(super) late: u32,
}

/// The static facts about the values of a partition.
pub(super) struct Values {
    /// The operation writing each value (`NONE`: never written, or the initial value).
    pub(super) head: Vec<u32>,
    pub(super) reads_of: Vec<Vec<u32>>,
    pub(super) fails_of: Vec<Vec<u32>>,
    /// The value that must immediately follow each value (a known or observed cas from it).
    pub(super) link: Vec<u32>,
    /// Whether the value must take effect in any linearization.
    pub(super) required: Vec<bool>,
    /// The segment each value starts, if it starts one.
    pub(super) starts: Vec<u32>,
}

/// Everything about a partition that the walk does not change; indices are local to it.
pub(super) struct Plan {
    pub(super) kind: Vec<Kind>,
    /// Whether the operation has a known outcome and must be placed.
    pub(super) known: Vec<bool>,
    pub(super) call: Vec<u64>,
    /// The return time (`NEVER` for an unknown outcome).
    pub(super) ret: Vec<u64>,
    /// The operations by call time, and each one's place in that order.
    pub(super) by_call: Vec<u32>,
    pub(super) rank: Vec<u32>,
    /// The operations with a known outcome, by return time.
    pub(super) by_ret: Vec<u32>,
    pub(super) values: Values,
    pub(super) segments: Vec<Segment>,
    /// The writes no one observes, by call time.
    pub(super) optional: Vec<u32>,
}

impl Plan {
    /// Works out the facts about `ops`; `relaxed` leaves out the failed cas.
    pub(super) fn new(ops: &[&Operation], stepper: &Stepper, relaxed: bool) -> Plan {
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
        let mut values = Values::build(&kind, &by_call, &known, value_count(&kind));
        let early = early_fails(&kind, &values, &call, &ret);
        let segments = segments(&kind, &values, &early, &call, &ret);
        for (g, seg) in segments.iter().enumerate() {
            values.starts[seg.start as usize] = g as u32;
        }
        let optional = by_call
            .iter()
            .copied()
            .filter(
                |&i| matches!(kind[i as usize], Kind::Head(x, _) if !values.required[x as usize]),
            )
            .collect();
        Plan {
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

    /// The number of values (ids are below it).
    pub(super) fn width(&self) -> usize {
        self.values.head.len()
    }

    /// Per value, how many operations `pick` assigns to it.
    pub(super) fn count(&self, pick: fn(Kind) -> Option<u32>) -> Vec<u32> {
        let mut c = vec![0u32; self.width()];
        for &k in &self.kind {
            if let Some(x) = pick(k) {
                c[x as usize] += 1;
            }
        }
        c
    }

    /// The pending segments (all but the initial one's) keyed by `key`, for the ordered sets.
    pub(super) fn pending_by(
        &self,
        key: fn(&Segment) -> u64,
    ) -> std::collections::BTreeSet<(u64, u32)> {
        self.segments
            .iter()
            .enumerate()
            .filter(|(_, g)| g.start != INITIAL)
            .map(|(i, g)| (key(g), i as u32))
            .collect()
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
    pub(super) fn tracked(&self, x: usize) -> bool {
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
