//! The campaign's load: a few clients writing and reading a few keys for as long as the faults
//! go on, each following the writer across failovers, every operation recorded for
//! `sixfold lincheck` and every acknowledged write kept to be read back at the end.
//!
//! It differs from `sixfold client load` (which runs a fixed number of operations as fast as it
//! can) in two ways: it runs until told to stop, and each client thinks a little between
//! operations, so that the trace a round records stays a size replay can check (a segment's
//! saves are recorded whole: the trace grows with the square of the writes). Two operations in
//! three are reads; which ones, and which keys they touch, is a fixed function of the seed and
//! the operation's number; every write writes a value no other write writes, so a read names the
//! write it saw.

use sixfold_impl::client::{ClientError, ClusterClient, Discovery};
use sixfold_lincheck::history::{HistoryLine, HistoryWriter, OpKind, Outcome, Value as HValue};
use sixfold_model::protocol::msg::Lsn;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a client waits for one operation before its outcome is unknown.
pub const OP_TIMEOUT: Duration = Duration::from_millis(1500);
/// A client's pause between two operations: the load's pace, not a synchronisation.
const THINK: Duration = Duration::from_millis(40);

/// An acknowledged write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acked {
    /// Its key.
    pub key: u32,
    /// Its value.
    pub value: u64,
    /// Its commit LSN.
    pub lsn: Lsn,
    /// When it was acknowledged (ns since the load started).
    pub at: u64,
}

/// What the clients share: the clock, the next value, and what has been acknowledged.
pub struct Shared {
    /// The load's clock: every time in the history and the fault log is ns since this.
    pub start: Instant,
    next_value: AtomicU64,
    last_ack: AtomicU64,
    max_lsn: AtomicU64,
    history: Mutex<Vec<HistoryLine>>,
    acked: Mutex<Vec<Acked>>,
    next_client: AtomicU64,
}

impl Shared {
    /// Ns since the load started.
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// When the last write was acknowledged (ns), 0 if none was.
    pub fn last_ack(&self) -> u64 {
        self.last_ack.load(Ordering::SeqCst)
    }

    /// The highest LSN acknowledged so far.
    pub fn max_lsn(&self) -> Lsn {
        self.max_lsn.load(Ordering::SeqCst)
    }

    /// Every acknowledged write so far.
    pub fn acked(&self) -> Vec<Acked> {
        self.acked.lock().expect("acked lock").clone()
    }

    /// A fresh history client id.
    fn client_id(&self) -> u64 {
        self.next_client.fetch_add(1, Ordering::SeqCst)
    }

    /// Runs one operation on `c` as history client `client` and records it; `Ok` with the
    /// version a read saw or a write committed, `(value, lsn)` (`None`: a read of a key never
    /// written), or the error.
    pub fn run_op(
        &self,
        c: &mut ClusterClient,
        client: u64,
        key: u32,
        read: bool,
    ) -> Result<Option<(u64, Lsn)>, ClientError> {
        let call = self.now();
        let value = self.next_value.fetch_add(1, Ordering::SeqCst);
        let result = if read {
            c.read(key).map(|v| (v.lsn > 0).then_some((v.value, v.lsn)))
        } else {
            c.write(key, value).map(|a| {
                let at = self.now();
                self.acked.lock().expect("acked lock").push(Acked {
                    key,
                    value,
                    lsn: a.lsn,
                    at,
                });
                self.max_lsn.fetch_max(a.lsn, Ordering::SeqCst);
                self.last_ack.fetch_max(at, Ordering::SeqCst);
                Some((value, a.lsn))
            })
        };
        let ret = self.now();
        let outcome = match &result {
            Ok(_) => Outcome::Ok,
            Err(e) if e.definitely_not_applied() => Outcome::Fail,
            Err(_) => Outcome::Unknown,
        };
        let seen = match (&result, read) {
            (Ok(v), _) => v.map(|(v, _)| HValue::Str(v.to_string())),
            (Err(_), false) => Some(HValue::Str(value.to_string())),
            (Err(_), true) => None,
        };
        self.history
            .lock()
            .expect("history lock")
            .push(HistoryLine {
                client,
                call,
                ret: Some(ret),
                outcome,
                op: if read { OpKind::Read } else { OpKind::Write },
                key: Some(key.to_string()),
                value: seen,
                from: None,
                to: None,
            });
        result
    }

    /// Writes the history, by call time, to `path`.
    pub fn save_history(&self, path: &Path) -> std::io::Result<usize> {
        let mut h = self.history.lock().expect("history lock").clone();
        h.sort_by_key(|r| r.call);
        let mut w = HistoryWriter::new(std::io::BufWriter::new(std::fs::File::create(path)?));
        for r in &h {
            w.record(r)?;
        }
        w.finish()?;
        Ok(h.len())
    }
}

/// The running load.
pub struct Workload {
    /// What its clients share.
    pub shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<()>>,
}

impl Workload {
    /// Starts `clients` clients of the cluster in `dir` on `keys` keys; `seed` fixes the mix.
    pub fn start(dir: &Path, clients: usize, keys: u32, seed: u64) -> Workload {
        let shared = Arc::new(Shared {
            start: Instant::now(),
            next_value: AtomicU64::new(1),
            last_ack: AtomicU64::new(0),
            max_lsn: AtomicU64::new(0),
            history: Mutex::new(Vec::new()),
            acked: Mutex::new(Vec::new()),
            next_client: AtomicU64::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..clients as u64)
            .map(|w| {
                let (shared, stop, dir) = (shared.clone(), stop.clone(), dir.to_path_buf());
                std::thread::spawn(move || client(&shared, &stop, dir, w, keys.max(1), seed))
            })
            .collect();
        Workload {
            shared,
            stop,
            clients,
        }
    }

    /// Stops the clients (each finishes its operation in flight).
    pub fn stop(self) -> Arc<Shared> {
        self.stop.store(true, Ordering::SeqCst);
        for c in self.clients {
            let _ = c.join();
        }
        self.shared
    }
}

/// One client: operations until `stop`, as a new history client after each unknown outcome
/// (that operation may still be in flight).
fn client(shared: &Shared, stop: &AtomicBool, dir: PathBuf, w: u64, keys: u32, seed: u64) {
    let mut c = ClusterClient::new(Discovery::Dir(dir), OP_TIMEOUT);
    let mut id = shared.client_id();
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let h = mix(seed, w, i);
        let (key, read) = ((h % keys as u64) as u32, !(h >> 32).is_multiple_of(3));
        if let Err(e) = shared.run_op(&mut c, id, key, read) {
            if !e.definitely_not_applied() {
                id = shared.client_id();
            }
        }
        i += 1;
        std::thread::sleep(THINK);
    }
}

/// splitmix64 of the seed, client and operation number.
fn mix(seed: u64, w: u64, i: u64) -> u64 {
    let mut z =
        seed ^ w.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i.wrapping_mul(0xd1b5_4a32_d192_ed03);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Reads every key back at the end (recorded in the history, tried again while no answer
/// comes) and returns, per key, what it read: `(value, lsn)` (`(0, 0)`: never written), or
/// `None` if no read was answered.
pub fn read_back(shared: &Shared, dir: &Path, keys: u32) -> Vec<Option<(u64, Lsn)>> {
    let mut c = ClusterClient::new(Discovery::Dir(dir.to_path_buf()), OP_TIMEOUT);
    (0..keys)
        .map(|key| {
            (0..10).find_map(|_| {
                let id = shared.client_id();
                shared
                    .run_op(&mut c, id, key, true)
                    .ok()
                    .map(|v| v.unwrap_or((0, 0)))
            })
        })
        .collect()
}
