//! Recording a process's actor steps as NDJSON in the model's trace format.
//!
//! Each process writes its own file: the model's [`Header`] line, then one [`Line::Step`] per step
//! with extra fields: `clock`, the actor's Lamport clock after the step, and on a step that took
//! a peer's message, `sent`, the clock of the sender's step that sent it. Clocks travel with
//! every message ([`crate::wire::Frame::Data`]), so sorting the steps of all files by
//! `(clock, actor)` gives an order in which every receive comes after its send and every ack after
//! the save it acknowledges; `sent` names the very step a receive follows, so the merge can also
//! order what clocks cannot see (a promoted writer starts after its predecessor's lease ended)
//! without breaking any receive. Reading the files back and merging them is
//! [`crate::trace_merge`]'s job. The model's `Step` ignores unknown fields, so a line with
//! `clock` and `sent` is still a valid model line.
//!
//! When a process restarts onto an existing trace file it appends [`Input::Crash`] and then the
//! `Start` with the storage it recovered, exactly as the model writes a restart. The file's last
//! `Save` ([`Previous::last_save`]) is what that storage must be: replay checks it.

use serde_json::Value;
use sixfold_model::protocol::effects::NodeStorage;
use sixfold_model::trace::{Header, Input, Line, Output, Step};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The name of the extra per-line field holding the Lamport clock.
pub const CLOCK_FIELD: &str = "clock";

/// The name of the extra field of a step that took a peer's message: the clock of the sender's
/// step that sent it (the step of that actor whose `clock` it is).
pub const SENT_FIELD: &str = "sent";

/// Why a trace file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum TraceLogError {
    /// The file could not be opened, read or written.
    #[error("trace file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The existing file belongs to a different cluster configuration.
    #[error("trace file {path}: its header does not match this node's configuration")]
    HeaderMismatch {
        /// The file.
        path: PathBuf,
    },
}

/// An open per-process trace file.
pub struct TraceLog {
    path: PathBuf,
    out: BufWriter<File>,
}

/// What an existing trace file said about the previous run of this process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Previous {
    /// Whether the file already held steps (so this start is a restart).
    pub had_steps: bool,
    /// The highest clock recorded, in this file or in the other trace files of its directory
    /// (the cluster's other members): a process (re)starts after every step already recorded
    /// anywhere, and its clock says so. Otherwise a restart, which no message orders, could be
    /// merged before steps that really came first: a segment's lost disk before the gossip
    /// that had already repaired another one, where replay then sees too few copies.
    pub last_clock: u64,
    /// The storage of the last recorded `Save` (`None` if none, or if the disk was lost since):
    /// what the restart must find on disk for replay to accept it.
    pub last_save: Option<NodeStorage>,
}

impl Previous {
    /// Takes one recorded line into account.
    fn observe(&mut self, line: &str) {
        self.had_steps = true;
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            return;
        };
        if let Some(c) = v.get(CLOCK_FIELD).and_then(Value::as_u64) {
            self.last_clock = self.last_clock.max(c);
        }
        if let Ok(Line::Step(step)) = serde_json::from_value::<Line>(v) {
            if step.input == Input::LoseDisk {
                self.last_save = None;
            }
            for o in step.outputs {
                if let Output::Save { storage } = o {
                    self.last_save = Some(storage);
                }
            }
        }
    }
}

impl TraceLog {
    /// Opens `path` for appending. A new or empty file gets `header`; an existing one must carry
    /// the same header, and a torn last line (a process killed mid-write) is cut off.
    pub fn open(path: &Path, header: &Header) -> Result<(TraceLog, Previous), TraceLogError> {
        let io = |source| TraceLogError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(io)?;
        let complete = text.rfind('\n').map_or(0, |i| i + 1);
        if complete < text.len() {
            eprintln!(
                "sixfold: {}: dropping a torn last line ({} bytes)",
                path.display(),
                text.len() - complete
            );
            file.set_len(complete as u64).map_err(io)?;
        }
        let mut prev = Previous::default();
        let mut lines = text[..complete].lines();
        let mut out = BufWriter::new(file);
        match lines.next() {
            None => {
                let h = serde_json::to_string(&Line::Header(header.clone())).expect("serialize");
                writeln!(out, "{h}").map_err(io)?;
                out.flush().map_err(io)?;
            }
            Some(first) => {
                let same = serde_json::from_str::<Line>(first)
                    .is_ok_and(|l| l == Line::Header(header.clone()));
                if !same {
                    return Err(TraceLogError::HeaderMismatch {
                        path: path.to_path_buf(),
                    });
                }
            }
        }
        for l in lines {
            prev.observe(l);
        }
        prev.last_clock = prev.last_clock.max(siblings_clock(path));
        Ok((
            TraceLog {
                path: path.to_path_buf(),
                out,
            },
            prev,
        ))
    }

    /// Appends one step with its clock and, for a peer's message, the sender's clock when it
    /// sent it (buffered; see [`TraceLog::flush`]).
    pub fn write(
        &mut self,
        step: &Step,
        clock: u64,
        sent: Option<u64>,
    ) -> Result<(), TraceLogError> {
        let mut v = serde_json::to_value(Line::Step(step.clone())).expect("steps serialize");
        if let Value::Object(m) = &mut v {
            m.insert(CLOCK_FIELD.into(), Value::from(clock));
            if let Some(s) = sent {
                m.insert(SENT_FIELD.into(), Value::from(s));
            }
        }
        writeln!(self.out, "{v}").map_err(|source| TraceLogError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Hands the buffered lines to the OS (they survive a process kill from then on).
    pub fn flush(&mut self) -> Result<(), TraceLogError> {
        self.out.flush().map_err(|source| TraceLogError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// The highest clock on the last complete line of the other `.ndjson` files next to `path`.
fn siblings_clock(path: &Path) -> u64 {
    let Some(dir) = path.parent() else { return 0 };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p != path && p.extension().is_some_and(|x| x == "ndjson"))
        .filter_map(|p| last_line_clock(&p))
        .max()
        .unwrap_or(0)
}

/// The `clock` of the last complete line of the trace file at `path`. Lines are JSON objects
/// with sorted keys, so `clock` comes second, after `actor`: only the line's start is read,
/// however long the line (a save holds a whole log).
fn last_line_clock(path: &Path) -> Option<u64> {
    let mut f = File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let mut chunk = 4096u64;
    loop {
        let from = len.saturating_sub(chunk);
        f.seek(SeekFrom::Start(from)).ok()?;
        let mut buf = Vec::new();
        Read::by_ref(&mut f)
            .take(chunk)
            .read_to_end(&mut buf)
            .ok()?;
        let end = buf.iter().rposition(|&b| b == b'\n')?;
        match buf[..end].iter().rposition(|&b| b == b'\n') {
            Some(start) => return clock_of(&buf[start + 1..end]),
            None if from == 0 => return clock_of(&buf[..end]),
            None => chunk *= 4,
        }
    }
}

/// The number after `"clock":` near the start of one line.
fn clock_of(line: &[u8]) -> Option<u64> {
    let head = String::from_utf8_lossy(&line[..line.len().min(200)]);
    let rest = head.split(&format!("\"{CLOCK_FIELD}\":")).nth(1)?;
    rest.chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sixfold_model::protocol::config::Config;

    #[test]
    fn a_start_takes_a_clock_past_every_step_its_siblings_recorded() {
        let dir = std::env::temp_dir().join(format!("sixfold-tracelog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let header = crate::host::header(Config::new(None));
        // A sibling whose last line is long (a save of a whole log) and has clock 500.
        let long = "x".repeat(20_000);
        std::fs::write(
            dir.join("node-1.ndjson"),
            format!(
                "{{\"type\":\"header\"}}\n{{\"actor\":1,\"clock\":7}}\n\
                 {{\"actor\":1,\"clock\":500,\"pad\":\"{long}\"}}\n{{\"actor\":1,\"clo"
            ),
        )
        .unwrap();
        std::fs::write(dir.join("notes.txt"), "{\"actor\":1,\"clock\":9999}\n").unwrap();
        let (_, prev) = TraceLog::open(&dir.join("node-0.ndjson"), &header).unwrap();
        assert_eq!(
            prev.last_clock, 500,
            "a torn last line and other files are ignored"
        );
        assert!(!prev.had_steps);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
