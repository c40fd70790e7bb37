//! A load generator for a running cluster: many client connections issue writes and reads,
//! and the run yields throughput, latency percentiles and, optionally, a history for the
//! linearizability checker.
//!
//! It is how the runtime is measured (`sixfold client load`, the runtime benchmark) and how a
//! failover is shown to be safe: with a history file, every operation is recorded in
//! `sixfold-lincheck`'s NDJSON format (kv: keys and values as strings) with its call and
//! return times, and `sixfold lincheck FILE --model kv` judges it. An operation whose outcome is
//! unknown (timeout, connection lost after sending) is recorded `unknown`, never `fail`, so the
//! checker is never told an effect did not happen when it may have.
//!
//! Each connection is a [`ClusterClient`] on its own thread with one operation in flight, and
//! follows the writer across failovers. Which operations are reads is a fixed function of the
//! operation's number, so a run's mix does not depend on timing.

use crate::client::{ClientError, ClusterClient, Discovery};
use sixfold_lincheck::history::{HistoryLine, HistoryWriter, OpKind, Outcome, Value as HValue};
use sixfold_model::protocol::msg::{Epoch, Lsn};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a load issues.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadSpec {
    /// Total operations.
    pub ops: u64,
    /// Concurrent connections (at least one), one operation in flight each.
    pub clients: u64,
    /// Keys used, round robin by operation number (at least one).
    pub keys: u32,
    /// Fraction (0..=1) of the operations that read their key instead of writing it.
    pub read_ratio: f64,
    /// Write the acknowledged writes as `key value lsn epoch` lines to this file, by LSN.
    pub acked: Option<PathBuf>,
    /// Record every operation to this file in sixfold's NDJSON history format.
    pub history: Option<PathBuf>,
}

/// How far a load has got, reported about once a second so a long run shows it is alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Operations finished (whatever their outcome).
    pub done: u64,
    /// Since the load started.
    pub elapsed: Duration,
}

/// Why a load could not run or could not save what it recorded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The writer could not be found before the load started.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The acknowledged writes or the history could not be written.
    #[error("{}: {source}", path.display())]
    Save {
        /// The file.
        path: PathBuf,
        /// The writer the load started on.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// The outcome of a load run.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Operations (writes, and reads if any) answered.
    pub ok: u64,
    /// Operations that timed out or lost their connection (outcome unknown).
    pub unknown: u64,
    /// Operations that certainly had no effect (no writer reachable, or refused by one that is
    /// no longer the writer) within the timeout.
    pub failed: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Latencies of the answered operations, sorted.
    pub latencies: Vec<Duration>,
}

impl LoadReport {
    /// The latency at quantile `q` (0..=1) of answered operations.
    pub fn percentile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        self.latencies[i]
    }

    /// Answered operations per second.
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// An acknowledged write: key, value, commit LSN, and the epoch of the writer that acked it.
type Acked = (u32, u64, Lsn, Epoch);

/// What one connection did.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    acked: Vec<Acked>,
    unknown: u64,
    failed: u64,
    history: Vec<HistoryLine>,
}

/// Runs a load of `spec.ops` operations (a `spec.read_ratio` share of them reads) from
/// `spec.clients` connections, calling `progress` about once a second. With `spec.history` it
/// records every operation for `sixfold lincheck --model kv`. Times are ns since the load
/// started, on one clock shared by all clients (they are threads of this process). After an
/// operation with an unknown outcome a connection continues as a new history client
/// (`worker + clients * n`), since that operation may still be in flight.
///
/// Each client follows the writer across failovers ([`ClusterClient`]): an operation that
/// certainly had no effect (no writer reachable, `NotWriter`) is retried on the current writer
/// within the timeout and, if that runs out, recorded as `fail`; one whose outcome is unknown
/// (timeout, connection lost after sending) is recorded as `unknown`, never as failed.
pub fn run(
    disc: Discovery,
    timeout: Duration,
    spec: &LoadSpec,
    progress: &mut dyn FnMut(Progress),
) -> Result<LoadReport, LoadError> {
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let addr = disc.writer()?;
    let n_clients = spec.clients.max(1);
    let conns: Vec<_> = (0..n_clients)
        .map(|_| ClusterClient::new(disc.clone(), timeout))
        .collect();
    let workers: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(w, c)| {
            let (next, done, spec) = (next.clone(), done.clone(), spec.clone());
            std::thread::spawn(move || worker(c, w as u64, n_clients, &spec, start, &next, &done))
        })
        .collect();
    let mut last = Instant::now();
    while workers.iter().any(|w| !w.is_finished()) {
        std::thread::sleep(Duration::from_millis(20));
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            progress(Progress {
                done: done.load(Ordering::Relaxed),
                elapsed: start.elapsed(),
            });
        }
    }
    let tallies = workers.into_iter().map(|w| w.join().unwrap_or_default());
    let (report, acked, history) = merge(tallies, start);
    if let Some(p) = &spec.acked {
        save_acked(p, acked).map_err(|source| save_error(p, addr, source))?;
    }
    if let Some(p) = &spec.history {
        save_history(p, history).map_err(|source| save_error(p, addr, source))?;
    }
    Ok(report)
}

/// One connection's share of a load: takes operation numbers from `next` until `spec.ops` are
/// taken, runs each and tallies its outcome.
fn worker(
    mut c: ClusterClient,
    w: u64,
    n_clients: u64,
    spec: &LoadSpec,
    start: Instant,
    next: &AtomicU64,
    done: &AtomicU64,
) -> Tally {
    let ns = |t: Instant| t.duration_since(start).as_nanos() as u64;
    let keys = spec.keys.max(1);
    let mut tally = Tally::default();
    let mut client = w;
    loop {
        let i = next.fetch_add(1, Ordering::SeqCst);
        if i >= spec.ops {
            break;
        }
        let (key, value) = ((i % keys as u64) as u32, i + 1);
        let t = Instant::now();
        let (op, result) = operation(&mut c, is_read(i, spec.read_ratio), key, value, &mut tally);
        let end = Instant::now();
        let outcome = match &result {
            Ok(_) => Outcome::Ok,
            Err(e) if e.definitely_not_applied() => Outcome::Fail,
            Err(_) => Outcome::Unknown,
        };
        let written = (op == OpKind::Write).then(|| HValue::Str(value.to_string()));
        tally.history.push(HistoryLine {
            client,
            call: ns(t),
            ret: Some(ns(end)),
            outcome,
            op,
            key: Some(key.to_string()),
            value: result.unwrap_or(written),
            from: None,
            to: None,
        });
        match outcome {
            Outcome::Ok => tally.latencies.push(end - t),
            Outcome::Fail => tally.failed += 1,
            Outcome::Unknown => {
                tally.unknown += 1;
                client += n_clients;
            }
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
    tally
}

/// Reads `key`, or writes `value` to it (noting an acknowledged write in `tally`); returns the
/// operation's kind and the value it read or wrote, as the history records it.
fn operation(
    c: &mut ClusterClient,
    read: bool,
    key: u32,
    value: u64,
    tally: &mut Tally,
) -> (OpKind, Result<Option<HValue>, ClientError>) {
    if read {
        // The initial version (lsn 0) is the absent key: null, which kv reads as "".
        let r = c
            .read(key)
            .map(|v| (v.lsn > 0).then(|| HValue::Str(v.value.to_string())));
        (OpKind::Read, r)
    } else {
        let r = c.write(key, value).map(|a| {
            tally.acked.push((key, value, a.lsn, a.epoch));
            Some(HValue::Str(value.to_string()))
        });
        (OpKind::Write, r)
    }
}

/// Adds up the connections' tallies: the report, every acknowledged write and every history
/// line.
fn merge(
    tallies: impl Iterator<Item = Tally>,
    start: Instant,
) -> (LoadReport, Vec<Acked>, Vec<HistoryLine>) {
    let mut report = LoadReport {
        ok: 0,
        unknown: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    let mut acked = Vec::new();
    let mut history = Vec::new();
    for t in tallies {
        report.ok += t.latencies.len() as u64;
        report.unknown += t.unknown;
        report.failed += t.failed;
        report.latencies.extend(t.latencies);
        acked.extend(t.acked);
        history.extend(t.history);
    }
    report.elapsed = start.elapsed();
    report.latencies.sort();
    (report, acked, history)
}

fn save_error(path: &Path, addr: SocketAddr, source: std::io::Error) -> LoadError {
    LoadError::Save {
        path: path.to_path_buf(),
        addr,
        source,
    }
}

/// Writes the acknowledged writes as `key value lsn epoch` lines, by LSN.
fn save_acked(path: &Path, mut acked: Vec<Acked>) -> std::io::Result<()> {
    acked.sort_by_key(|a| a.2);
    let text: String = acked
        .iter()
        .map(|(k, v, l, e)| format!("{k} {v} {l} {e}\n"))
        .collect();
    std::fs::write(path, text)
}

/// Writes the history, by call time.
fn save_history(path: &Path, mut history: Vec<HistoryLine>) -> std::io::Result<()> {
    history.sort_by_key(|r| r.call);
    let mut w = HistoryWriter::new(std::io::BufWriter::new(std::fs::File::create(path)?));
    for r in &history {
        w.record(r)?;
    }
    w.finish().map(drop)
}

/// Whether operation `i` of a load is a read: a fixed hash of `i` (splitmix64) against the
/// ratio, so a run's mix does not depend on timing.
fn is_read(i: u64, ratio: f64) -> bool {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    ((z >> 11) as f64 / (1u64 << 53) as f64) < ratio
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_mix_is_fixed_by_the_ratio() {
        assert!((0..1000).all(|i| !is_read(i, 0.0)));
        assert!((0..1000).all(|i| is_read(i, 1.0)));
        let reads = (0..10_000).filter(|&i| is_read(i, 0.3)).count();
        assert!((2_700..3_300).contains(&reads), "{reads} reads of 10000");
        let again = (0..10_000).filter(|&i| is_read(i, 0.3)).count();
        assert_eq!(reads, again, "no randomness: the same operations read");
    }

    #[test]
    fn percentiles_pick_from_the_sorted_latencies() {
        let ms = Duration::from_millis;
        let mut r = LoadReport {
            ok: 4,
            unknown: 0,
            failed: 0,
            elapsed: Duration::from_secs(2),
            latencies: vec![ms(1), ms(2), ms(3), ms(10)],
        };
        assert_eq!(r.percentile(0.0), ms(1));
        assert_eq!(r.percentile(0.5), ms(3), "index round(1.5) = 2");
        assert_eq!(r.percentile(1.0), ms(10));
        assert_eq!(r.throughput(), 2.0);
        r.latencies.clear();
        assert_eq!(r.percentile(0.99), Duration::ZERO);
    }
}
