//! The control plane's lease book: which writer is appointed, what it last said, and when the
//! lease of a writer it stops granting has certainly run out.
//!
//! The protocol leaves "which instance is the writer" to a control plane, with one rule from the
//! core (`sixfold_model::protocol::writer`): a new writer may be promoted only once the old writer's lease
//! has certainly expired, because the lease is what stops an old writer serving reads (fencing
//! alone stops its writes). This module is that control plane's runtime half: a TCP server that
//! answers the appointed writer's heartbeats ([`crate::wire::Frame::Heartbeat`]) with grants and
//! keeps the timings; [`crate::cluster`] decides what to do with them (start a process, kill one).
//!
//! # Timing
//! The writer's host steps a grant only within [`GRANT_WINDOW`] of sending the heartbeat it
//! answers, and the control plane records each grant at a time after it received that heartbeat.
//! So a lease renewed by a grant recorded at `g` ends by `g + GRANT_WINDOW + LEASE`. A writer's
//! first lease (armed when it starts, before any heartbeat) ends by `h + LEASE`, `h` the first
//! heartbeat received. [`ControlPlane::revoke`] stops granting first and then computes
//! `max(h, g + GRANT_WINDOW) + LEASE + margin`; the margin covers clock-rate differences between
//! the two processes. A writer never heard from has an unknown lease: the caller must kill it
//! (and reap it) before promoting another ([`Revoked::lease_ends_by`] is `None`).
//!
//! # Restarts
//! The lease book lives in memory, so a control plane restarted on an existing cluster directory
//! knows nothing of the leases its previous incarnation granted. It knows when it bound its port
//! ([`ControlPlane::started`]), after which that incarnation can grant nothing, and it hears
//! heartbeats from writers it never appointed ([`ControlPlane::strays`]); `DIR/control-plane`
//! ([`LastRun`]) says whether the previous one stopped cleanly. [`crate::promotion`] turns these
//! into the decision when a writer may be promoted.

use crate::host::{GRANT_WINDOW, HEARTBEAT_EVERY};
use crate::wire::{self, Frame};
use sixfold_model::protocol::msg::{Epoch, Lsn};
use sixfold_model::protocol::writer::LEASE;
use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// When the control plane gives up on a writer, and how much slack it adds to the lease.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// No heartbeat for this long: the writer is considered failed.
    pub heartbeat_timeout: Duration,
    /// A new writer that has not sent its first heartbeat after this long has failed to start.
    pub startup_timeout: Duration,
    /// Added to every lease bound (clock-rate differences, scheduling).
    pub margin: Duration,
}

impl Default for Timing {
    /// 6 missed heartbeats; 5 s to start; 50 ms of margin.
    fn default() -> Self {
        Timing {
            heartbeat_timeout: HEARTBEAT_EVERY * 6,
            startup_timeout: Duration::from_secs(5),
            margin: Duration::from_millis(50),
        }
    }
}

/// What the control plane knows about one writer.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriterBook {
    /// When it was appointed.
    pub appointed: Option<Instant>,
    /// Its first heartbeat.
    pub first_heartbeat: Option<Instant>,
    /// Its last heartbeat.
    pub last_heartbeat: Option<Instant>,
    /// The last grant sent to it.
    pub last_grant: Option<Instant>,
    /// Whether it said it holds its lease, in its last heartbeat.
    pub lease: bool,
    /// Whether it said it is open, in its last heartbeat.
    pub open: bool,
    /// Its VDL, in its last heartbeat.
    pub vdl: Lsn,
}

/// The appointed writer's health, as the control plane sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Appointed, no heartbeat yet, still within the start-up time.
    Starting,
    /// Heartbeating and holding its lease.
    Healthy,
    /// It must be replaced.
    Failed(Failure),
}

/// Why the appointed writer must be replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No heartbeat for this long.
    Silent(Duration),
    /// It never sent a heartbeat within the start-up time.
    NeverStarted,
    /// It reported that its lease ran out (it no longer serves reads).
    LostLease,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Silent(d) => write!(f, "missed heartbeats for {} ms", d.as_millis()),
            Failure::NeverStarted => write!(f, "never sent a heartbeat"),
            Failure::LostLease => write!(f, "reported its lease expired"),
        }
    }
}

/// The result of [`ControlPlane::revoke`].
#[derive(Clone, Copy, Debug)]
pub struct Revoked {
    /// The epoch no longer granted.
    pub epoch: Epoch,
    /// When its lease has certainly ended; `None` if it was never heard from, in which case
    /// its lease is unknown and the process must be killed before another writer is promoted.
    pub lease_ends_by: Option<Instant>,
}

/// The file in a cluster directory in which the control plane records how its last run ended
/// ([`LastRun`]).
pub const RUN_FILE: &str = "control-plane";

/// What `DIR/control-plane` says about the last control plane that ran in a directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LastRun {
    /// No record: no control plane ran here, or only one from before the record existed.
    Unrecorded,
    /// A control plane ran and recorded no clean stop: it may have died while a writer it
    /// started held a lease. Also what an unreadable record means.
    Running,
    /// It stopped cleanly after handing out `epoch`: it had stopped granting, killed and reaped
    /// every writer it started, and no lease an earlier one granted could still be running.
    Stopped {
        /// `DIR/epoch` at the time.
        epoch: Epoch,
    },
}

impl LastRun {
    /// Reads `DIR/control-plane`.
    pub fn load(dir: &Path) -> std::io::Result<LastRun> {
        match std::fs::read_to_string(dir.join(RUN_FILE)) {
            Ok(t) => Ok(Self::parse(&t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LastRun::Unrecorded),
            Err(e) => Err(e),
        }
    }

    fn parse(text: &str) -> LastRun {
        let mut w = text.split_whitespace();
        match (w.next(), w.next().map(str::parse), w.next()) {
            (Some("stopped"), Some(Ok(epoch)), None) => LastRun::Stopped { epoch },
            _ => LastRun::Running,
        }
    }

    /// Writes `DIR/control-plane` so that a crash leaves the old or the new record, never a
    /// mix, and the new one survives it (temporary file, fsync, rename, fsync of the
    /// directory). Recording [`LastRun::Unrecorded`] removes the file.
    pub fn store(self, dir: &Path) -> std::io::Result<()> {
        let path = dir.join(RUN_FILE);
        let text = match self {
            LastRun::Unrecorded => {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(e),
                }
                return std::fs::File::open(dir)?.sync_all();
            }
            LastRun::Running => "running\n".to_string(),
            LastRun::Stopped { epoch } => format!("stopped {epoch}\n"),
        };
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    }
}

/// The file a control plane holds locked (`flock`, exclusive) for as long as it runs in a
/// cluster directory.
pub const LOCK_FILE: &str = "control-plane.lock";

/// The exclusive right to be the control plane of a cluster directory, held until this process
/// exits or drops it. The kernel releases it when the holder dies, so once a control plane holds
/// it, the previous one in that directory is dead or has stopped (and can grant nothing more).
/// The file is opened close-on-exec: the members a control plane starts do not hold it.
#[derive(Debug)]
pub struct DirLock {
    _file: std::fs::File,
}

impl DirLock {
    /// Takes `DIR/control-plane.lock` without waiting; an error names the directory if another
    /// control plane holds it.
    pub fn acquire(dir: &Path) -> std::io::Result<DirLock> {
        let path = dir.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                format!(
                    "{}: another control plane runs in {}",
                    path.display(),
                    dir.display()
                ),
            )),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

#[derive(Default)]
struct Book {
    /// The epoch granted leases, if any.
    appointed: Option<Epoch>,
    writers: HashMap<Epoch, WriterBook>,
}

/// Why the control plane could not start.
#[derive(Debug, thiserror::Error)]
#[error("control plane cannot listen on {addr}: {source}")]
pub struct ControlError {
    /// The address.
    pub addr: SocketAddr,
    /// The error.
    #[source]
    pub source: std::io::Error,
}

/// A running control plane: a heartbeat server and its lease book. Dropping it stops it.
pub struct ControlPlane {
    book: Arc<Mutex<Book>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    timing: Timing,
    started: Instant,
}

impl ControlPlane {
    /// Listens for heartbeats on `addr`.
    pub fn start(addr: SocketAddr, timing: Timing) -> Result<ControlPlane, ControlError> {
        let l = TcpListener::bind(addr).map_err(|source| ControlError { addr, source })?;
        // Taken once the port is ours: an earlier control plane on this address has stopped
        // listening by now, so every grant it sent was recorded before this instant.
        let started = Instant::now();
        l.set_nonblocking(true)
            .map_err(|source| ControlError { addr, source })?;
        let book: Arc<Mutex<Book>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (b, st) = (book.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((s, _)) => {
                        let (b, st) = (b.clone(), st.clone());
                        std::thread::spawn(move || serve(s, &b, &st));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(ControlPlane {
            book,
            stop,
            thread: Some(thread),
            timing,
            started,
        })
    }

    /// When this control plane bound its heartbeat port (see [`crate::promotion`]: a lease
    /// granted by an earlier incarnation on the same address was granted before this).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The timing it was started with.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// The latest first heartbeat among writers that sent heartbeats but were never appointed
    /// by this control plane (strays: e.g. a writer an earlier incarnation started, still
    /// running). Such a writer is never granted a lease here; its own first lease ends within
    /// [`LEASE`] of its first heartbeat ([`crate::promotion`]).
    pub fn strays(&self) -> Option<Instant> {
        let b = self.book.lock().expect("book lock");
        b.writers
            .values()
            .filter(|w| w.appointed.is_none())
            .filter_map(|w| w.first_heartbeat)
            .max()
    }

    /// Appoints the writer of `epoch`: from now on its heartbeats, and only its, get grants.
    pub fn appoint(&self, epoch: Epoch) {
        let mut b = self.book.lock().expect("book lock");
        b.appointed = Some(epoch);
        b.writers.entry(epoch).or_default().appointed = Some(Instant::now());
    }

    /// What is known about the writer of `epoch`.
    pub fn writer(&self, epoch: Epoch) -> WriterBook {
        let b = self.book.lock().expect("book lock");
        b.writers.get(&epoch).copied().unwrap_or_default()
    }

    /// The appointed writer's epoch and health, if one is appointed.
    pub fn health(&self) -> Option<(Epoch, Health)> {
        let b = self.book.lock().expect("book lock");
        let e = b.appointed?;
        let w = b.writers.get(&e).copied().unwrap_or_default();
        let now = Instant::now();
        let h = match (w.last_heartbeat, w.appointed) {
            (Some(t), _) if now.duration_since(t) > self.timing.heartbeat_timeout => {
                Health::Failed(Failure::Silent(now.duration_since(t)))
            }
            (Some(_), _) if !w.lease => Health::Failed(Failure::LostLease),
            (Some(_), _) => Health::Healthy,
            (None, Some(a)) if now.duration_since(a) > self.timing.startup_timeout => {
                Health::Failed(Failure::NeverStarted)
            }
            (None, _) => Health::Starting,
        };
        Some((e, h))
    }

    /// Stops granting leases to the appointed writer and says when its lease has certainly
    /// ended (see the module docs). `None` if no writer is appointed.
    pub fn revoke(&self) -> Option<Revoked> {
        let mut b = self.book.lock().expect("book lock");
        let epoch = b.appointed.take()?;
        let w = b.writers.get(&epoch).copied().unwrap_or_default();
        let lease_ends_by = w.first_heartbeat.map(|first| {
            let renewed = w
                .last_grant
                .map_or(first, |g| (g + GRANT_WINDOW).max(first));
            renewed + LEASE.end + self.timing.margin
        });
        Some(Revoked {
            epoch,
            lease_ends_by,
        })
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answers one writer connection's heartbeats until it closes.
fn serve(mut s: TcpStream, book: &Mutex<Book>, stop: &AtomicBool) {
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
    let Ok(r) = s.try_clone() else { return };
    let mut r = std::io::BufReader::new(r);
    while !stop.load(Ordering::SeqCst) {
        let f = match wire::read_frame(&mut r) {
            Ok(f) => f,
            Err(wire::WireError::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return,
        };
        let Frame::Heartbeat {
            epoch,
            seq,
            lease,
            open,
            vdl,
        } = f
        else {
            let _ = wire::write_frame(
                &mut s,
                &Frame::Error {
                    reason: "the control plane takes only heartbeats".into(),
                },
            );
            return;
        };
        let grant = {
            let mut b = book.lock().expect("book lock");
            let now = Instant::now();
            let appointed = b.appointed == Some(epoch);
            let w = b.writers.entry(epoch).or_default();
            w.first_heartbeat.get_or_insert(now);
            w.last_heartbeat = Some(now);
            w.lease = lease;
            w.open = open;
            w.vdl = vdl;
            // Recorded before it is sent, under the lock `revoke` takes: no grant goes out
            // that a revocation did not count.
            if appointed && lease {
                w.last_grant = Some(now);
            }
            appointed && lease
        };
        if grant && wire::write_frame(&mut s, &Frame::Grant { seq }).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heartbeat(s: &mut TcpStream, epoch: Epoch, seq: u64) -> Option<u64> {
        let hb = Frame::Heartbeat {
            epoch,
            seq,
            lease: true,
            open: true,
            vdl: 0,
        };
        wire::write_frame(s, &hb).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        match wire::read_frame(s) {
            Ok(Frame::Grant { seq }) => Some(seq),
            _ => None,
        }
    }

    #[test]
    fn only_the_appointed_writer_is_granted_and_revoking_bounds_its_lease() {
        let addr = crate::layout::local_addr(crate::layout::free_ports(1).unwrap()[0]);
        let cp = ControlPlane::start(addr, Timing::default()).unwrap();
        cp.appoint(1);
        assert_eq!(cp.health(), Some((1, Health::Starting)));
        let mut s = TcpStream::connect(addr).unwrap();
        assert_eq!(heartbeat(&mut s, 1, 7), Some(7));
        let granted = Instant::now();
        assert_eq!(cp.health(), Some((1, Health::Healthy)));
        assert_eq!(heartbeat(&mut s, 2, 8), None, "epoch 2 is not appointed");
        let r = cp.revoke().unwrap();
        assert_eq!(r.epoch, 1);
        let ends = r.lease_ends_by.unwrap();
        let latest = granted + GRANT_WINDOW + LEASE.end + Timing::default().margin;
        assert!(ends <= latest, "bounded by the last grant");
        assert!(
            ends > granted + GRANT_WINDOW + LEASE.end,
            "the grant window, the lease and a margin"
        );
        assert_eq!(heartbeat(&mut s, 1, 9), None, "revoked: no more grants");
        cp.appoint(2);
        assert_eq!(heartbeat(&mut s, 2, 10), Some(10));
        std::thread::sleep(Timing::default().heartbeat_timeout + Duration::from_millis(50));
        assert!(matches!(
            cp.health(),
            Some((2, Health::Failed(Failure::Silent(_))))
        ));
    }

    #[test]
    fn writers_never_appointed_here_are_strays() {
        let addr = crate::layout::local_addr(crate::layout::free_ports(1).unwrap()[0]);
        let before = Instant::now();
        let cp = ControlPlane::start(addr, Timing::default()).unwrap();
        assert!(cp.started() >= before && cp.started() <= Instant::now());
        assert_eq!(cp.strays(), None);
        cp.appoint(3);
        let mut s = TcpStream::connect(addr).unwrap();
        assert_eq!(heartbeat(&mut s, 3, 1), Some(1));
        assert_eq!(cp.strays(), None, "appointed here");
        let heard = Instant::now();
        assert_eq!(heartbeat(&mut s, 2, 2), None, "a stray gets no grant");
        let first = cp.strays().expect("epoch 2 is a stray");
        assert!(first >= heard && first <= Instant::now());
        assert_eq!(heartbeat(&mut s, 2, 3), None);
        assert_eq!(cp.strays(), Some(first), "its first heartbeat counts");
    }

    #[test]
    fn one_control_plane_per_directory() {
        let dir = std::env::temp_dir().join(format!("sixfold-dir-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let first = DirLock::acquire(&dir).unwrap();
        let second = DirLock::acquire(&dir).unwrap_err();
        assert_eq!(second.kind(), std::io::ErrorKind::WouldBlock, "{second}");
        drop(first);
        DirLock::acquire(&dir).expect("released when dropped");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_run_record_survives_a_round_trip_and_garbage_reads_as_running() {
        let dir = std::env::temp_dir().join(format!("sixfold-run-record-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(LastRun::load(&dir).unwrap(), LastRun::Unrecorded);
        LastRun::Running.store(&dir).unwrap();
        assert_eq!(LastRun::load(&dir).unwrap(), LastRun::Running);
        LastRun::Stopped { epoch: 7 }.store(&dir).unwrap();
        assert_eq!(LastRun::load(&dir).unwrap(), LastRun::Stopped { epoch: 7 });
        for garbage in ["", "stopped", "stopped x", "stopped 7 8", "halted 7"] {
            std::fs::write(dir.join(RUN_FILE), garbage).unwrap();
            assert_eq!(
                LastRun::load(&dir).unwrap(),
                LastRun::Running,
                "{garbage:?}"
            );
        }
        LastRun::Unrecorded.store(&dir).unwrap();
        assert_eq!(LastRun::load(&dir).unwrap(), LastRun::Unrecorded);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
