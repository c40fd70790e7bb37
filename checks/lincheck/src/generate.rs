//! Generated histories of the unique-value class, for tests and benchmarks: a run of concurrent
//! clients against a real register (or map), where every written value is fresh, some outcomes
//! are lost, and optionally some reads are made stale.
//!
//! Each client issues operations one after another; each operation takes effect at a random
//! point inside its interval, and the points, executed in order against a real register, give
//! every result. So with no stale reads the history is linearizable by construction (an
//! unknown-outcome operation took effect at its point, or, for half of them, never), and about
//! `clients` operations overlap at any time. A stale read is a read made to return the value of
//! a write `w` such that another write that surely took effect was called after `w` returned
//! and returned before the read was called: no linearization can place it, so each stale read
//! makes the history non-linearizable.

use crate::history::{Action, History, Operation, Value};
use crate::spec::Spec;

/// What to generate.
#[derive(Clone, Debug)]
pub struct Params {
    /// The data type: `Register` (read, write), `CasRegister` (read, write, cas) or `Kv` (get
    /// and put over `keys` keys; no appends, which would leave the class).
    pub spec: Spec,
    /// Number of operations.
    pub ops: usize,
    /// Number of concurrent clients.
    pub clients: u64,
    /// Number of keys (kv only).
    pub keys: u64,
    /// How many writes and cas lose their outcome (half of them never take effect).
    pub unknown: usize,
    /// How many reads are made stale (fewer if the history has too few candidates).
    pub stale_reads: usize,
    /// Seed of the pseudo-random choices; the same parameters give the same history.
    pub seed: u64,
}

impl Params {
    /// `ops` operations of `spec` over `clients` clients, one key, no unknown outcomes, no
    /// stale reads, seed 1.
    pub fn new(spec: Spec, ops: usize, clients: u64) -> Params {
        Params {
            spec,
            ops,
            clients,
            keys: 1,
            unknown: 0,
            stale_reads: 0,
            seed: 1,
        }
    }
}

/// SplitMix64: small, fast and good enough for test data.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % bound.max(1)
    }
}

/// A planned operation before execution decides what it observes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Plan {
    Read,
    Write,
    Cas,
}

/// One operation being generated.
struct Draft {
    plan: Plan,
    client: u64,
    key: u64,
    call: u64,
    ret: u64,
    point: u64,
    lost: bool,
    action: Action,
}

/// Generates a history as described in the module documentation.
pub fn history(params: &Params) -> History {
    let mut rng = Rng(params.seed);
    let mut drafts = timeline(params, &mut rng);
    lose_outcomes(params, &mut drafts, &mut rng);
    execute(params, &mut drafts, &mut rng);
    let mut ops: Vec<Operation> = drafts
        .into_iter()
        .map(|d| Operation {
            client: d.client,
            call: d.call,
            ret: (!d.lost).then_some(d.ret),
            key: (params.spec == Spec::Kv).then(|| format!("k{}", d.key)),
            action: d.action,
            line: 0,
        })
        .collect();
    ops.sort_by_key(|o| (o.call, o.client));
    for (i, op) in ops.iter_mut().enumerate() {
        op.line = i + 1;
    }
    let mut history = History { ops };
    make_stale(params, &mut history, &mut rng);
    history
}

/// Per client, back-to-back operations with random lengths and gaps, and their kinds.
fn timeline(params: &Params, rng: &mut Rng) -> Vec<Draft> {
    let clients = params.clients.max(1);
    let mut drafts = Vec::with_capacity(params.ops);
    for client in 0..clients {
        let count = params.ops / clients as usize
            + usize::from((client as usize) < params.ops % clients as usize);
        let mut t = rng.below(100);
        for _ in 0..count {
            let call = t + rng.below(20);
            let ret = call + 1 + rng.below(100);
            let point = call + rng.below(ret - call + 1);
            let plan = match (params.spec, rng.below(5)) {
                (_, 0 | 1) => Plan::Read,
                (Spec::CasRegister, 2 | 3) => Plan::Cas,
                (Spec::CasRegister, _) => Plan::Write,
                (_, _) if rng.below(3) == 0 => Plan::Read,
                _ => Plan::Write,
            };
            drafts.push(Draft {
                plan,
                client,
                key: rng.below(params.keys.max(1)),
                call,
                ret,
                point,
                lost: false,
                action: Action::Read { value: None },
            });
            t = ret + 1;
        }
    }
    drafts
}

/// Marks `params.unknown` random writes and cas as having lost their outcome.
fn lose_outcomes(params: &Params, drafts: &mut [Draft], rng: &mut Rng) {
    let mut candidates: Vec<usize> = (0..drafts.len())
        .filter(|&i| drafts[i].plan != Plan::Read)
        .collect();
    for _ in 0..params.unknown.min(candidates.len()) {
        let k = rng.below(candidates.len() as u64) as usize;
        drafts[candidates.swap_remove(k)].lost = true;
    }
}

/// Runs the operations in the order of their points against a real register per key, filling
/// in what each one observed.
fn execute(params: &Params, drafts: &mut [Draft], rng: &mut Rng) {
    let mut by_point: Vec<usize> = (0..drafts.len()).collect();
    by_point.sort_by_key(|&i| (drafts[i].point, drafts[i].client));
    // Per key, every value it has held, the current one last.
    let mut held: Vec<Vec<Value>> = vec![Vec::new(); params.keys.max(1) as usize];
    for (fresh, i) in by_point.into_iter().enumerate() {
        let d = &mut drafts[i];
        let values = &mut held[d.key as usize];
        let new = match params.spec {
            Spec::Kv => Value::Str(format!("v{fresh}")),
            _ => Value::Int(fresh as i64 + 1),
        };
        // A lost write or cas takes effect only half of the time.
        let effect = !d.lost || rng.below(2) == 0;
        d.action = match d.plan {
            Plan::Read => Action::Read {
                value: values.last().cloned(),
            },
            Plan::Write => {
                if effect {
                    values.push(new.clone());
                }
                Action::Write { value: new }
            }
            Plan::Cas => {
                let from = cas_from(values, fresh, rng);
                let hit = values.last() == Some(&from);
                if hit && effect {
                    values.push(new.clone());
                }
                Action::Cas {
                    from,
                    to: new,
                    succeeded: (!d.lost).then_some(hit),
                }
            }
        };
    }
}

/// The value a cas expects: the current one half of the time (so it succeeds), otherwise the
/// one just overwritten, an older one, or one never written.
fn cas_from(values: &[Value], fresh: usize, rng: &mut Rng) -> Value {
    let n = values.len();
    match rng.below(4) {
        0 | 1 if n > 0 => values[n - 1].clone(),
        2 if n > 1 => values[n - 2].clone(),
        3 if n > 2 => values[rng.below(n as u64 - 1) as usize].clone(),
        _ => Value::Int(-(fresh as i64) - 1),
    }
}

/// Makes up to `params.stale_reads` reads return a value surely overwritten before they
/// began: the value of a write `w` such that another write that surely took effect was called
/// after `w` returned and returned before the read's call.
fn make_stale(params: &Params, history: &mut History, rng: &mut Rng) {
    if params.stale_reads == 0 {
        return;
    }
    // Writes that surely took effect (returned writes and successful cas), per key by return.
    let mut effective: std::collections::HashMap<Option<String>, Vec<(u64, u64, Value)>> =
        Default::default();
    for op in &history.ops {
        let written = match &op.action {
            Action::Write { value } => Some(value),
            Action::Cas {
                to,
                succeeded: Some(true),
                ..
            } => Some(to),
            _ => None,
        };
        if let (Some(v), Some(r)) = (written, op.ret) {
            let list = effective.entry(op.key.clone()).or_default();
            list.push((r, op.call, v.clone()));
        }
    }
    for list in effective.values_mut() {
        list.sort_by_key(|w| w.0);
    }
    let mut reads: Vec<usize> = (0..history.ops.len())
        .filter(|&i| matches!(history.ops[i].action, Action::Read { .. }))
        .collect();
    let mut made = 0;
    while made < params.stale_reads && !reads.is_empty() {
        let i = reads.swap_remove(rng.below(reads.len() as u64) as usize);
        let op = &history.ops[i];
        let Some(list) = effective.get(&op.key) else {
            continue;
        };
        // The latest write returned before the read's call, then the latest returned before
        // that write's call.
        let before = |t: u64| list.partition_point(|w| w.0 < t).checked_sub(1);
        let Some(z) = before(op.call) else { continue };
        let Some(y) = before(list[z].1) else { continue };
        history.ops[i].action = Action::Read {
            value: Some(list[y].2.clone()),
        };
        made += 1;
    }
}
