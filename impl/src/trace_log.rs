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
use std::io::{BufWriter, Read, Write};
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
    /// The highest clock recorded.
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
