//! The operation type all history formats are parsed into, and sixfold's own NDJSON history
//! format, which the runtime's clients record.
//!
//! # The NDJSON format
//!
//! One JSON object per line, one line per client operation, written when the operation ends
//! (returns, fails or is given up on). Blank lines are ignored. Fields:
//!
//! | field     | type                      | meaning                                                    |
//! |-----------|---------------------------|------------------------------------------------------------|
//! | `client`  | integer                   | the client (process) that issued the operation             |
//! | `call`    | integer                   | invocation time, in ns on a clock shared by all clients    |
//! | `return`  | integer, optional         | return time; required unless `outcome` is `unknown`        |
//! | `outcome` | `ok` / `fail` / `unknown` | `fail`: definitely no effect; `unknown`: e.g. a timeout    |
//! | `op`      | string                    | `read`/`get`, `write`/`put`, `cas`, `append`               |
//! | `key`     | string, optional          | the key (kv model only)                                    |
//! | `value`   | scalar or null            | read: the value returned (null = none); write/append: the value written |
//! | `from`,`to` | scalar                  | cas: expected and new value                                |
//!
//! Scalars are integers or strings. Operation `a` precedes `b` iff `a.return < b.call`; equal
//! times count as concurrent. An `unknown` operation may take effect at any time after its
//! call, or never (its `return`, if present, is kept for display only). A `fail`ed cas is an
//! observation (the value differed from `from`); other `fail`ed operations are dropped.

use crate::LincheckError;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// A value stored in a register or under a key. Histories mix integer registers (Jepsen etcd)
/// and string values (kv), so both are first-class.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// An integer value.
    Int(i64),
    /// A string value.
    Str(String),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// What an operation did, with what it observed. Unknown-outcome reads are dropped at parse
/// time (they constrain nothing), so every read here has an observed value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Read (kv: get); `value` is what it returned, `None` for nil / absent.
    Read {
        /// The value returned.
        value: Option<Value>,
    },
    /// Write (kv: put) of `value`.
    Write {
        /// The value written.
        value: Value,
    },
    /// Compare-and-set: set to `to` iff the current value is `from`. `succeeded` is `None` when
    /// the outcome is unknown.
    Cas {
        /// The value expected.
        from: Value,
        /// The value set on success.
        to: Value,
        /// Whether it succeeded, if known.
        succeeded: Option<bool>,
    },
    /// Append `value` to the key's string value.
    Append {
        /// The suffix appended.
        value: Value,
    },
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Read { value: Some(v) } => write!(f, "read -> {v}"),
            Action::Read { value: None } => write!(f, "read -> nil"),
            Action::Write { value } => write!(f, "write {value}"),
            Action::Cas {
                from,
                to,
                succeeded,
            } => {
                let how = match succeeded {
                    Some(true) => "ok",
                    Some(false) => "failed",
                    None => "unknown",
                };
                write!(f, "cas {from} -> {to} ({how})")
            }
            Action::Append { value } => write!(f, "append {value}"),
        }
    }
}

/// One operation of a history: who issued it, when, what it did, and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The issuing client (Jepsen process).
    pub client: u64,
    /// Invocation time.
    pub call: u64,
    /// Return time; `None` when the outcome is unknown (it may take effect at any time after
    /// `call`, or never).
    pub ret: Option<u64>,
    /// The key, for kv histories.
    pub key: Option<String>,
    /// What it did and observed.
    pub action: Action,
    /// 1-based source line of the invocation (or of the history line), for messages.
    pub line: usize,
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "client {}: ", self.client)?;
        if let Some(k) = &self.key {
            write!(f, "[{k:?}] ")?;
        }
        write!(f, "{} (line {}", self.action, self.line)?;
        match self.ret {
            Some(r) => write!(f, ", t {}..{r})", self.call),
            None => write!(f, ", t {}.., outcome unknown)", self.call),
        }
    }
}

/// A parsed history: its operations in input order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// The operations.
    pub ops: Vec<Operation>,
}

/// Outcome of one recorded operation in the NDJSON format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It took effect and returned.
    Ok,
    /// It definitely did not take effect (a failed cas still observed a different value).
    Fail,
    /// It may or may not have taken effect (timeout, lost connection).
    Unknown,
}

/// Operation kind in the NDJSON format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    /// Read / get.
    #[serde(alias = "get")]
    Read,
    /// Write / put.
    #[serde(alias = "put")]
    Write,
    /// Compare-and-set.
    Cas,
    /// String append.
    Append,
}

/// One line of sixfold's NDJSON history format, as recorded by a client. This is the type the
/// runtime serializes (through [`HistoryWriter`]) and the checker deserializes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryLine {
    /// The issuing client.
    pub client: u64,
    /// Invocation time (ns on a clock shared by all clients).
    pub call: u64,
    /// Return time; may be omitted when `outcome` is `unknown`.
    #[serde(rename = "return", default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<u64>,
    /// How it ended.
    pub outcome: Outcome,
    /// What it was.
    pub op: OpKind,
    /// The key (kv only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Read: value returned (null = none). Write/append: value written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// Cas: expected value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Value>,
    /// Cas: new value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Value>,
}

impl HistoryLine {
    /// Converts a history line into an operation; `Ok(None)` when it is dropped because it cannot
    /// have had an effect or an observation (a failed or unknown read, a failed write).
    pub fn into_operation(self, line: usize) -> Result<Option<Operation>, String> {
        let ret = match (self.outcome, self.ret) {
            (Outcome::Unknown, _) => None,
            (_, None) => return Err("`return` is required unless outcome is unknown".into()),
            (_, Some(r)) if r < self.call => {
                return Err(format!("return time {r} is before call time {}", self.call))
            }
            (_, Some(r)) => Some(r),
        };
        let need = |v: Option<Value>, name: &str| v.ok_or(format!("{:?} needs `{name}`", self.op));
        let action = match (self.op, self.outcome) {
            (OpKind::Read, Outcome::Ok) => Action::Read { value: self.value },
            (OpKind::Read, _) => return Ok(None),
            (OpKind::Write | OpKind::Append, Outcome::Fail) => return Ok(None),
            (OpKind::Write, _) => Action::Write {
                value: need(self.value, "value")?,
            },
            (OpKind::Append, _) => Action::Append {
                value: need(self.value, "value")?,
            },
            (OpKind::Cas, outcome) => Action::Cas {
                from: need(self.from, "from")?,
                to: need(self.to, "to")?,
                succeeded: match outcome {
                    Outcome::Ok => Some(true),
                    Outcome::Fail => Some(false),
                    Outcome::Unknown => None,
                },
            },
        };
        Ok(Some(Operation {
            client: self.client,
            call: self.call,
            ret,
            key: self.key,
            action,
            line,
        }))
    }
}

/// Writes sixfold NDJSON histories, one [`HistoryLine`] per line, so the runtime's clients record
/// exactly what the checker reads.
pub struct HistoryWriter<W: Write> {
    out: W,
}

impl<W: Write> HistoryWriter<W> {
    /// Wraps a sink (a file, a buffer).
    pub fn new(out: W) -> Self {
        HistoryWriter { out }
    }

    /// Appends one history line.
    pub fn record(&mut self, line: &HistoryLine) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, line)?;
        self.out.write_all(b"\n")
    }

    /// Flushes and returns the sink.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Parses sixfold NDJSON history text; `path` is only used in error messages.
pub fn parse_ndjson(path: &Path, text: &str) -> Result<History, LincheckError> {
    let mut ops = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let err = |message: String| LincheckError::Parse {
            path: path.to_path_buf(),
            line,
            message,
        };
        let parsed: HistoryLine =
            serde_json::from_str(raw).map_err(|e| err(format!("bad history record: {e}")))?;
        if let Some(op) = parsed.into_operation(line).map_err(err)? {
            ops.push(op);
        }
    }
    Ok(History { ops })
}

/// The input formats the checker reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Format {
    /// Guess from the first non-blank line.
    Auto,
    /// sixfold NDJSON.
    Ndjson,
    /// Jepsen console log (`INFO jepsen.util - P :invoke :read nil`).
    JepsenLog,
    /// Jepsen EDN maps, one per line (`{:process 0, :type :invoke, ...}`).
    JepsenEdn,
}

/// Reads and parses a history file in the given (or detected) format.
pub fn load(path: &Path, format: Format) -> Result<History, LincheckError> {
    let text = std::fs::read_to_string(path).map_err(|source| LincheckError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text, format)
}

/// Parses history text in the given (or detected) format; `path` names it in errors.
pub fn parse(path: &Path, text: &str, format: Format) -> Result<History, LincheckError> {
    let format = if format == Format::Auto {
        detect(path, text)?
    } else {
        format
    };
    match format {
        Format::JepsenLog => crate::jepsen::parse_log(path, text),
        Format::JepsenEdn => crate::jepsen::parse_edn(path, text),
        // `detect` never answers Auto.
        Format::Ndjson | Format::Auto => parse_ndjson(path, text),
    }
}

fn detect(path: &Path, text: &str) -> Result<Format, LincheckError> {
    let Some(first) = text.lines().map(str::trim).find(|l| !l.is_empty()) else {
        // An empty history is trivially linearizable in any format.
        return Ok(Format::Ndjson);
    };
    if first.starts_with("{:") {
        Ok(Format::JepsenEdn)
    } else if first.starts_with('{') {
        Ok(Format::Ndjson)
    } else if first.contains("jepsen.util") {
        Ok(Format::JepsenLog)
    } else {
        Err(LincheckError::Format {
            path: path.to_path_buf(),
            message: "cannot tell the format from line 1 (expected sixfold NDJSON, a Jepsen \
                      console log or Jepsen EDN); pass --format"
                .into(),
        })
    }
}
