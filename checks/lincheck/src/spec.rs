//! The sequential specifications histories are checked against, and their compilation into a
//! compact form the search can step quickly.
//!
//! Every model state is interned to a `u32`, so the search hashes and compares states in
//! constant time whatever the values are (kv values grow with every append).

use crate::history::{Action, History, Operation, Value};
use std::collections::HashMap;

/// The sequential specifications (data types) a history can be checked against: the
/// `--model` of `sixfold lincheck`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Spec {
    /// A single read/write register, initially nil.
    Register,
    /// A single register with compare-and-set, initially nil (Jepsen etcd).
    CasRegister,
    /// A key-value map with get, put and append; absent keys read as "". Keys are independent,
    /// so the history is checked per key.
    Kv,
}

impl std::fmt::Display for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Spec::Register => "register",
            Spec::CasRegister => "cas-register",
            Spec::Kv => "kv",
        })
    }
}

impl Spec {
    /// Checks that `op` is meaningful for this model, so that a history recorded for another
    /// data type is rejected with a clear message instead of a bogus verdict.
    pub fn validate(self, op: &Operation) -> Result<(), String> {
        let register = |op: &Operation| {
            if op.key.is_some() {
                return Err("the register models have no keys (use --model kv)".to_string());
            }
            Ok(())
        };
        match (self, &op.action) {
            (Spec::Register, Action::Cas { .. }) => Err(
                "cas is not an operation of the register model (use --model cas-register)".into(),
            ),
            (Spec::Register | Spec::CasRegister, Action::Append { .. }) => Err(format!(
                "append is not an operation of the {self} model (use --model kv)"
            )),
            (Spec::Register | Spec::CasRegister, _) => register(op),
            (Spec::Kv, Action::Cas { .. }) => Err("cas is not an operation of the kv model".into()),
            (Spec::Kv, action) => {
                if op.key.is_none() {
                    return Err("kv operations need a key".into());
                }
                let value = match action {
                    Action::Read { value } => value.as_ref(),
                    Action::Write { value } | Action::Append { value } => Some(value),
                    Action::Cas { .. } => None,
                };
                match value {
                    Some(Value::Int(_)) => Err("kv values must be strings".into()),
                    _ => Ok(()),
                }
            }
        }
    }

    /// Splits a history into independently checkable partitions (P-compositionality): one per
    /// key for kv, a single one for the registers. Partitions keep input order.
    pub fn partition(self, history: &History) -> Vec<Partition> {
        if self != Spec::Kv {
            return vec![Partition {
                key: None,
                ops: (0..history.ops.len()).collect(),
            }];
        }
        let mut by_key: HashMap<&str, usize> = HashMap::new();
        let mut parts: Vec<Partition> = Vec::new();
        for (i, op) in history.ops.iter().enumerate() {
            let key = op.key.as_deref().unwrap_or("");
            let slot = *by_key.entry(key).or_insert_with(|| {
                parts.push(Partition {
                    key: Some(key.to_string()),
                    ops: Vec::new(),
                });
                parts.len() - 1
            });
            parts[slot].ops.push(i);
        }
        parts.sort_by(|a, b| a.key.cmp(&b.key));
        parts
    }
}

/// A set of operations that can be checked on its own (one key of a kv history).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// The key, for kv.
    pub key: Option<String>,
    /// Indices into the history's operations, in input order.
    pub ops: Vec<usize>,
}

/// One operation compiled against interned values. Equal steps are interchangeable, which the
/// search uses to collapse identical operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Step {
    /// Observed this value.
    Read(u32),
    /// Set this value.
    Write(u32),
    /// Succeeded: the value was `.0` and became `.1`.
    CasOk(u32, u32),
    /// Failed: the value was not `.0`.
    CasFail(u32),
    /// Unknown outcome: if the value is `.0` it becomes `.1`.
    CasMaybe(u32, u32),
    /// Appended this value.
    Append(u32),
}

/// The search's hot maps have small integer keys: rustc's Fx hash is the fast choice.
pub(crate) type FxMap<K, V> = rustc_hash::FxHashMap<K, V>;

/// Base of the polynomial string fingerprint (odd, so powers never vanish mod 2^64).
const BASE: u64 = 0x0000_0100_0000_01b3;

/// How a kv string is built: a literal, or an earlier string with a literal appended.
enum Piece {
    Leaf(String),
    Concat(u32, u32),
}

/// One interned kv string, never materialized unless needed: its fingerprint, length and
/// BASE^length let concatenations be fingerprinted in O(1).
struct Rope {
    hash: u64,
    len: usize,
    pow: u64,
    piece: Piece,
}

/// Interned kv strings. Appends only build a node, so a state costs O(1) memory and time
/// however long its string is; equal fingerprints are verified by comparing the contents, so
/// a fingerprint collision can never make two different strings equal.
#[derive(Default)]
struct Ropes {
    nodes: Vec<Rope>,
    by_fingerprint: FxMap<(u64, usize), Vec<u32>>,
    scratch: (String, String),
}

impl Ropes {
    fn write(&self, id: u32, out: &mut String) {
        let mut tail = Vec::new();
        let mut at = id;
        loop {
            match &self.nodes[at as usize].piece {
                Piece::Leaf(s) => {
                    out.push_str(s);
                    break;
                }
                Piece::Concat(a, b) => {
                    tail.push(*b);
                    at = *a;
                }
            }
        }
        for b in tail.into_iter().rev() {
            if let Piece::Leaf(s) = &self.nodes[b as usize].piece {
                out.push_str(s);
            }
        }
    }

    fn string(&self, id: u32) -> String {
        let mut s = String::new();
        self.write(id, &mut s);
        s
    }

    /// Interns `rope`, returning an existing node with the same contents if there is one.
    fn intern(&mut self, rope: Rope) -> u32 {
        let key = (rope.hash, rope.len);
        let fresh = self.nodes.len() as u32;
        let candidates = self.by_fingerprint.get(&key).cloned().unwrap_or_default();
        if !candidates.is_empty() {
            let mut mine = std::mem::take(&mut self.scratch.0);
            mine.clear();
            match &rope.piece {
                Piece::Leaf(s) => mine.push_str(s),
                Piece::Concat(a, b) => {
                    self.write(*a, &mut mine);
                    self.write(*b, &mut mine);
                }
            }
            let mut theirs = std::mem::take(&mut self.scratch.1);
            let mut found = None;
            for c in candidates {
                theirs.clear();
                self.write(c, &mut theirs);
                if theirs == mine {
                    found = Some(c);
                    break;
                }
            }
            self.scratch = (mine, theirs);
            if let Some(c) = found {
                return c;
            }
        }
        self.nodes.push(rope);
        self.by_fingerprint.entry(key).or_default().push(fresh);
        fresh
    }

    fn leaf(&mut self, s: &str) -> u32 {
        let (mut hash, mut pow) = (0u64, 1u64);
        for &b in s.as_bytes() {
            hash = hash.wrapping_mul(BASE).wrapping_add(u64::from(b));
            pow = pow.wrapping_mul(BASE);
        }
        self.intern(Rope {
            hash,
            len: s.len(),
            pow,
            piece: Piece::Leaf(s.to_string()),
        })
    }

    fn concat(&mut self, a: u32, b: u32) -> u32 {
        let (x, y) = (&self.nodes[a as usize], &self.nodes[b as usize]);
        let rope = Rope {
            hash: x.hash.wrapping_mul(y.pow).wrapping_add(y.hash),
            len: x.len + y.len,
            pow: x.pow.wrapping_mul(y.pow),
            piece: Piece::Concat(a, b),
        };
        self.intern(rope)
    }
}

/// A partition compiled for the search: interned values and a transition function on `u32`
/// states. Register states index `values` (0 = nil); kv states index the interned strings
/// (0 = "").
pub(crate) struct Stepper {
    steps: Vec<Step>,
    values: Vec<Value>,
    ids: HashMap<Value, u32>,
    ropes: Option<Ropes>,
    appended: FxMap<(u32, u32), u32>,
}

/// The interned id of nil in the register models and of "" in kv: the initial state.
pub(crate) const INITIAL: u32 = 0;

impl Stepper {
    /// Compiles the operations of one partition, in the order given.
    pub(crate) fn compile(spec: Spec, ops: &[&Operation]) -> Stepper {
        let mut s = Stepper {
            steps: Vec::with_capacity(ops.len()),
            // Id 0 is nil; "nil" is never a stored Value, so this placeholder is never looked up.
            values: vec![Value::Str(String::new())],
            ids: HashMap::new(),
            ropes: None,
            appended: FxMap::default(),
        };
        if spec == Spec::Kv {
            let mut ropes = Ropes::default();
            ropes.leaf(""); // INITIAL
            s.ropes = Some(ropes);
        }
        for op in ops {
            let step = match &op.action {
                Action::Read { value: None } => Step::Read(INITIAL),
                Action::Read { value: Some(v) } => Step::Read(s.intern(v)),
                Action::Write { value } => Step::Write(s.intern(value)),
                Action::Append { value } => Step::Append(s.intern(value)),
                Action::Cas {
                    from,
                    to,
                    succeeded,
                } => {
                    let (f, t) = (s.intern(from), s.intern(to));
                    match succeeded {
                        Some(true) => Step::CasOk(f, t),
                        Some(false) => Step::CasFail(f),
                        None => Step::CasMaybe(f, t),
                    }
                }
            };
            s.steps.push(step);
        }
        s
    }

    fn intern(&mut self, v: &Value) -> u32 {
        if let Some(ropes) = &mut self.ropes {
            return match v {
                Value::Str(s) => ropes.leaf(s),
                Value::Int(i) => ropes.leaf(&i.to_string()),
            };
        }
        if let Some(&id) = self.ids.get(v) {
            return id;
        }
        let id = self.values.len() as u32;
        self.values.push(v.clone());
        self.ids.insert(v.clone(), id);
        id
    }

    /// The compiled form of operation `i`.
    pub(crate) fn step_of(&self, i: usize) -> Step {
        self.steps[i]
    }

    /// Applies operation `i` in `state`: the next state, or `None` if the operation's observed
    /// result is impossible there.
    #[inline]
    pub(crate) fn step(&mut self, state: u32, i: usize) -> Option<u32> {
        match self.steps[i] {
            Step::Read(v) => (state == v).then_some(state),
            Step::Write(v) => Some(v),
            Step::CasOk(f, t) => (state == f).then_some(t),
            Step::CasFail(f) => (state != f).then_some(state),
            Step::CasMaybe(f, t) => Some(if state == f { t } else { state }),
            Step::Append(v) => Some(self.append(state, v)),
        }
    }

    fn append(&mut self, state: u32, v: u32) -> u32 {
        if let Some(&next) = self.appended.get(&(state, v)) {
            return next;
        }
        let next = match &mut self.ropes {
            Some(ropes) => ropes.concat(state, v),
            // Registers have no append (validation rejects it); treat it as a write.
            None => v,
        };
        self.appended.insert((state, v), next);
        next
    }

    /// A human description of a state, for reports.
    pub(crate) fn describe(&self, state: u32) -> String {
        match &self.ropes {
            Some(ropes) => format!("{:?}", ropes.string(state)),
            None if state == INITIAL => "nil".into(),
            None => self.values[state as usize].to_string(),
        }
    }
}
