//! Parsers for the Jepsen history formats of the public porcupine test data: etcd console
//! logs (a single cas register) and kv EDN maps. Jepsen records invocations and completions as
//! separate events per process; these parsers pair them up into [`Operation`]s, using the line
//! number as the clock.
//!
//! Completion types: `:ok` took effect; `:fail` did not (a failed cas still observed that the
//! value differed from the expected one, so it is kept; other failed operations are dropped);
//! `:info` is unknown (the operation may take effect at any time after its invocation, or
//! never). Invocations still open at the end of the history are unknown too.

use crate::history::{Action, History, Operation, Value};
use crate::LincheckError;
use std::collections::HashMap;
use std::path::Path;

/// A completion event type.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Completion {
    Ok,
    Fail,
    Info,
}

/// Pairs invocations with completions per process.
struct Pairer<'a> {
    path: &'a Path,
    open: HashMap<u64, Operation>,
    ops: Vec<Operation>,
}

impl<'a> Pairer<'a> {
    fn new(path: &'a Path) -> Self {
        Pairer {
            path,
            open: HashMap::new(),
            ops: Vec::new(),
        }
    }

    fn err(&self, line: usize, message: String) -> LincheckError {
        LincheckError::Parse {
            path: self.path.to_path_buf(),
            line,
            message,
        }
    }

    fn invoke(&mut self, line: usize, op: Operation) -> Result<(), LincheckError> {
        if let Some(prev) = self.open.get(&op.client) {
            let msg = format!(
                "process {} invokes again while its operation from line {} is still open",
                op.client, prev.line
            );
            return Err(self.err(line, msg));
        }
        self.open.insert(op.client, op);
        Ok(())
    }

    /// Completes the open operation of `client`. `observed` is what the completion reports:
    /// the read value for reads (`None` = nil); ignored otherwise. `same` checks the completion
    /// describes the same operation as the invocation.
    fn complete(
        &mut self,
        line: usize,
        client: u64,
        kind: Completion,
        same: impl FnOnce(&Operation) -> bool,
        observed: Option<Value>,
    ) -> Result<(), LincheckError> {
        let Some(mut op) = self.open.remove(&client) else {
            let msg = format!("process {client} completes an operation it never invoked");
            return Err(self.err(line, msg));
        };
        if !same(&op) {
            let msg = format!(
                "completion does not match the invocation on line {} ({})",
                op.line, op.action
            );
            return Err(self.err(line, msg));
        }
        match kind {
            Completion::Info => {
                if matches!(op.action, Action::Read { .. }) {
                    return Ok(()); // an unknown read constrains nothing
                }
                if let Action::Cas { succeeded, .. } = &mut op.action {
                    *succeeded = None;
                }
                op.ret = None;
            }
            Completion::Fail => match &mut op.action {
                Action::Cas { succeeded, .. } => {
                    *succeeded = Some(false);
                    op.ret = Some(line as u64);
                }
                _ => return Ok(()), // did not take effect, observed nothing
            },
            Completion::Ok => {
                match &mut op.action {
                    Action::Read { value } => *value = observed,
                    Action::Cas { succeeded, .. } => *succeeded = Some(true),
                    _ => {}
                }
                op.ret = Some(line as u64);
            }
        }
        self.ops.push(op);
        Ok(())
    }

    fn finish(mut self) -> History {
        // Still open at the end: unknown outcome.
        let mut open: Vec<Operation> = self.open.into_values().collect();
        open.sort_by_key(|o| o.line);
        for mut op in open {
            match &mut op.action {
                Action::Read { .. } => continue,
                Action::Cas { succeeded, .. } => *succeeded = None,
                _ => {}
            }
            op.ret = None;
            self.ops.push(op);
        }
        self.ops.sort_by_key(|o| o.line);
        History { ops: self.ops }
    }
}

fn completion(word: &str) -> Option<Completion> {
    match word {
        ":ok" => Some(Completion::Ok),
        ":fail" => Some(Completion::Fail),
        ":info" => Some(Completion::Info),
        _ => None,
    }
}

/// Parses a Jepsen etcd console log: lines `INFO jepsen.util - P :type :f VALUE` where `:f` is
/// `:read`, `:write` or `:cas`, VALUE is `nil`, an integer, `[from to]` or a keyword such as
/// `:timed-out`.
pub fn parse_log(path: &Path, text: &str) -> Result<History, LincheckError> {
    let mut pairer = Pairer::new(path);
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let event = LogEvent::parse(raw).map_err(|m| pairer.err(line, m))?;
        if event.ty == ":invoke" {
            let action = log_invocation(event.f, &event.value).map_err(|m| pairer.err(line, m))?;
            let op = Operation {
                client: event.client,
                call: line as u64,
                ret: None,
                key: None,
                action,
                line,
            };
            pairer.invoke(line, op)?;
            continue;
        }
        let Some(kind) = completion(event.ty) else {
            return Err(pairer.err(
                line,
                format!(
                    "unknown event type {:?} (expected :invoke, :ok, :fail or :info)",
                    event.ty
                ),
            ));
        };
        let (same, observed) =
            log_completion(event.f, kind, &event.value).map_err(|m| pairer.err(line, m))?;
        pairer.complete(line, event.client, kind, same, observed)?;
    }
    Ok(pairer.finish())
}

/// One line of an etcd console log, split into its words but not yet interpreted, so that
/// invocations and completions can each read the VALUE their own way.
struct LogEvent<'a> {
    client: u64,
    /// The event type: `:invoke` or a completion.
    ty: &'a str,
    /// The operation: `:read`, `:write` or `:cas`.
    f: &'a str,
    /// The rest of the line, its words joined by single spaces.
    value: String,
}

impl<'a> LogEvent<'a> {
    /// Splits `raw`; the error says which part of the line is malformed.
    fn parse(raw: &'a str) -> Result<Self, String> {
        let Some((_, rest)) = raw.split_once("jepsen.util - ") else {
            return Err("expected `INFO jepsen.util - PROCESS :TYPE :F VALUE`".to_string());
        };
        let mut words = rest.split_whitespace();
        let (Some(p), Some(ty), Some(f)) = (words.next(), words.next(), words.next()) else {
            return Err("expected `PROCESS :TYPE :F VALUE` after `jepsen.util -`".to_string());
        };
        let value: Vec<&str> = words.collect();
        let value = value.join(" ");
        let client = p
            .parse()
            .map_err(|_| format!("process {p:?} is not a number"))?;
        Ok(LogEvent {
            client,
            ty,
            f,
            value,
        })
    }
}

/// A log VALUE that must be an integer.
fn log_int(s: &str) -> Result<i64, String> {
    s.parse()
        .map_err(|_| format!("expected an integer, found {s:?}"))
}

/// A log VALUE that must be a cas argument `[FROM TO]`.
fn log_pair(s: &str) -> Result<(i64, i64), String> {
    let inner = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or_else(|| format!("expected [FROM TO], found {s:?}"))?;
    let mut it = inner.split_whitespace();
    match (it.next(), it.next(), it.next()) {
        (Some(a), Some(b), None) => Ok((log_int(a)?, log_int(b)?)),
        _ => Err(format!("expected [FROM TO], found {s:?}")),
    }
}

/// The action an `:invoke` of operation `f` with `value` starts, outcome not yet known.
fn log_invocation(f: &str, value: &str) -> Result<Action, String> {
    Ok(match f {
        ":read" => Action::Read { value: None },
        ":write" => Action::Write {
            value: Value::Int(log_int(value)?),
        },
        ":cas" => {
            let (a, b) = log_pair(value)?;
            Action::Cas {
                from: Value::Int(a),
                to: Value::Int(b),
                succeeded: None,
            }
        }
        other => return Err(format!("unknown operation {other:?}")),
    })
}

/// Whether a completion describes the same operation as the open invocation it completes.
type Matches = Box<dyn FnOnce(&Operation) -> bool>;

/// Reads a completion of operation `f` of type `kind` with `value`: the check that it matches
/// its invocation (an `:info` completion carries no argument to compare), and what it observed
/// (the value an `:ok` read returned; `None` for nil and for everything else).
fn log_completion(
    f: &str,
    kind: Completion,
    value: &str,
) -> Result<(Matches, Option<Value>), String> {
    let mut observed = None;
    let same: Matches = match f {
        ":read" => {
            if kind == Completion::Ok && value != "nil" {
                observed = Some(Value::Int(log_int(value)?));
            }
            Box::new(|o| matches!(o.action, Action::Read { .. }))
        }
        ":write" => {
            let v = (kind != Completion::Info)
                .then(|| log_int(value))
                .transpose()?;
            Box::new(move |o| match &o.action {
                Action::Write {
                    value: Value::Int(w),
                } => v.is_none_or(|v| v == *w),
                _ => false,
            })
        }
        ":cas" => {
            let v = (kind != Completion::Info)
                .then(|| log_pair(value))
                .transpose()?;
            Box::new(move |o| match &o.action {
                Action::Cas {
                    from: Value::Int(x),
                    to: Value::Int(y),
                    ..
                } => v.is_none_or(|v| v == (*x, *y)),
                _ => false,
            })
        }
        other => return Err(format!("unknown operation {other:?}")),
    };
    Ok((same, observed))
}

/// One scalar of an EDN map.
#[derive(Clone, Debug, PartialEq)]
enum Edn {
    Nil,
    Int(i64),
    Keyword(String),
    Str(String),
}

/// Parses one flat EDN map `{:k v, :k v}` with nil, integer, keyword and string values.
fn parse_edn_map(s: &str) -> Result<Vec<(String, Edn)>, String> {
    let s = s.trim();
    let body = s
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or("expected an EDN map `{...}`")?;
    let chars: Vec<char> = body.chars().collect();
    let mut i = 0;
    let mut tokens = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() || c == ',' {
            i += 1;
        } else if c == '"' {
            let mut out = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unterminated string".into()),
                    Some('"') => break,
                    Some('\\') => {
                        let esc = chars.get(i + 1).ok_or("unterminated string")?;
                        out.push(match esc {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            other => *other,
                        });
                        i += 2;
                    }
                    Some(c) => {
                        out.push(*c);
                        i += 1;
                    }
                }
            }
            i += 1;
            tokens.push(Edn::Str(out));
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && chars[i] != ',' {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            tokens.push(if word == "nil" {
                Edn::Nil
            } else if let Some(k) = word.strip_prefix(':') {
                Edn::Keyword(k.to_string())
            } else if let Ok(n) = word.parse() {
                Edn::Int(n)
            } else {
                return Err(format!("unsupported EDN value {word:?}"));
            });
        }
    }
    if tokens.len() % 2 != 0 {
        return Err("EDN map has a key without a value".into());
    }
    let mut out = Vec::new();
    let mut it = tokens.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        match k {
            Edn::Keyword(k) => out.push((k, v)),
            other => return Err(format!("EDN map key {other:?} is not a keyword")),
        }
    }
    Ok(out)
}

/// Parses Jepsen kv EDN: one map per line with `:process`, `:type` (`:invoke`/`:ok`/`:fail`/
/// `:info`), `:f` (`:get`/`:put`/`:append`), `:key` and `:value`. A get on an absent key
/// returns `""`.
pub fn parse_edn(path: &Path, text: &str) -> Result<History, LincheckError> {
    let mut pairer = Pairer::new(path);
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let err = |m: String| pairer.err(line, m);
        let map = parse_edn_map(raw).map_err(&err)?;
        let get = |k: &str| map.iter().find(|(key, _)| key == k).map(|(_, v)| v);
        let client = match get("process") {
            Some(Edn::Int(p)) if *p >= 0 => *p as u64,
            other => return Err(err(format!(":process must be a number, found {other:?}"))),
        };
        let ty = match get("type") {
            Some(Edn::Keyword(t)) => t.clone(),
            other => return Err(err(format!(":type must be a keyword, found {other:?}"))),
        };
        let f = match get("f") {
            Some(Edn::Keyword(f)) => f.clone(),
            other => return Err(err(format!(":f must be a keyword, found {other:?}"))),
        };
        let key = match get("key") {
            Some(Edn::Str(k)) => k.clone(),
            Some(Edn::Int(k)) => k.to_string(),
            other => return Err(err(format!(":key must be a string, found {other:?}"))),
        };
        let value = match get("value") {
            None | Some(Edn::Nil) => None,
            Some(Edn::Str(s)) => Some(Value::Str(s.clone())),
            Some(Edn::Int(n)) => Some(Value::Str(n.to_string())),
            Some(other) => return Err(err(format!(":value must be a string, found {other:?}"))),
        };
        if ty == "invoke" {
            let need = |v: Option<Value>| v.ok_or_else(|| err(format!(":{f} needs a :value")));
            let action = match f.as_str() {
                "get" => Action::Read { value: None },
                "put" => Action::Write {
                    value: need(value)?,
                },
                "append" => Action::Append {
                    value: need(value)?,
                },
                other => return Err(err(format!("unknown :f :{other}"))),
            };
            let op = Operation {
                client,
                call: line as u64,
                ret: None,
                key: Some(key),
                action,
                line,
            };
            pairer.invoke(line, op)?;
            continue;
        }
        let Some(kind) = completion(&format!(":{ty}")) else {
            return Err(err(format!(
                "unknown :type :{ty} (expected :invoke, :ok, :fail or :info)"
            )));
        };
        let observed = match (&f[..], kind) {
            ("get", Completion::Ok) => Some(value.unwrap_or(Value::Str(String::new()))),
            _ => None,
        };
        let same = move |o: &Operation| {
            o.key.as_deref() == Some(key.as_str())
                && matches!(
                    (f.as_str(), &o.action),
                    ("get", Action::Read { .. })
                        | ("put", Action::Write { .. })
                        | ("append", Action::Append { .. })
                )
        };
        pairer.complete(line, client, kind, same, observed)?;
    }
    Ok(pairer.finish())
}
