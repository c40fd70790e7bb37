//! A restarted control plane: `sixfold cluster` started again on the directory of one that was
//! SIGKILLed must not promote a writer before the lease the dead one may have granted has
//! certainly run out (`sixfold_impl::promotion`): `GRANT_WINDOW + LEASE + margin` after it
//! started, measured on its own clock. Then it promotes the next epoch, whose recovery finds the
//! acknowledged write. After a clean stop (Ctrl-C) it promotes at once.
//!
//! The wait is checked twice: from the cluster's own log (the instant it announces and the stamp
//! of its promotion line), and from the test's clock, which is sound on its own: the test notes
//! the instant before it spawns the cluster, the cluster's start is later, so the first moment
//! the test sees `DIR/epoch` change (the epoch is stored just before the writer starts) must be
//! at least the wait after the spawn.

mod common;

use common::{scratch_dir, wait_exit, wait_line, wait_until, Banner, Killer, EXE};
use sixfold_impl::client::{ClusterClient, Discovery};
use sixfold_impl::control::{Timing, RUN_FILE};
use sixfold_impl::host::GRANT_WINDOW;
use sixfold_impl::layout::{WriterInfo, EPOCH_FILE};
use sixfold_model::protocol::writer::LEASE;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// The wait a restarted control plane owes the previous one's leases.
fn restart_wait() -> Duration {
    GRANT_WINDOW + LEASE.end + Timing::default().margin
}

/// Spawns `sixfold cluster --dir DIR` (into the guard); returns its stdout, line by line.
fn spawn_cluster(dir: &Path, guard: &mut Killer) -> Receiver<String> {
    let mut c = Command::new(EXE)
        .arg("cluster")
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = c.stdout.take().unwrap();
    guard.0.push(c);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    rx
}

/// The seconds of a log line's `[  1.234 s]` stamp.
fn stamp(line: &str) -> f64 {
    let inner = line.trim_start().strip_prefix('[').unwrap();
    inner.split(" s]").next().unwrap().trim().parse().unwrap()
}

/// The `X` of "... until X s (in ...": the instant, in the cluster's seconds, it waits for.
fn until(line: &str) -> f64 {
    let rest = line.split(" until ").nth(1).unwrap();
    rest.split(" s ").next().unwrap().trim().parse().unwrap()
}

fn epoch_file(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(EPOCH_FILE))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn run_record(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(RUN_FILE))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Whether process `pid` is gone: no `/proc/PID`, or only a zombie (its parent died, and a
/// container's init may never reap it).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(") ")
            .next()
            .is_some_and(|rest| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

/// The pids of the six segments and the writer, from a banner.
fn member_pids(banner: &Banner) -> Vec<i32> {
    let mut pids: Vec<i32> = (0..6).map(|s| banner.pid_of(s)).collect();
    pids.push(banner.writer_pid());
    pids
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: signalling a cluster process this test started.
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

/// Ctrl-C to the cluster at `guard.0[i]`; it must stop cleanly.
fn stop(guard: &mut Killer, i: usize) {
    signal(&guard.0[i], libc::SIGINT);
    assert_eq!(
        wait_exit(&mut guard.0[i], Duration::from_secs(15)),
        Some(0),
        "cluster stops cleanly"
    );
}

/// Reads `key` through the current writer; it must be `value`, at `lsn` or later.
fn assert_reads(dir: &Path, key: u32, value: u64, lsn: u64) {
    let mut c = ClusterClient::new(Discovery::Dir(dir.to_path_buf()), Duration::from_secs(5));
    let v = c.read(key).unwrap();
    assert_eq!(v.value, value, "key {key}");
    assert!(
        v.lsn >= lsn,
        "key {key}: lsn {} before the ack {lsn}",
        v.lsn
    );
}

/// Starts a cluster on `dir`, writes key 7 = 42 through it and returns the write's LSN, the
/// banner and the log.
fn first_run(dir: &Path, guard: &mut Killer) -> (u64, Banner) {
    let log = spawn_cluster(dir, guard);
    let mut seen = Vec::new();
    wait_line(&log, "cluster ready", Duration::from_secs(15), &mut seen);
    let banner = Banner(seen);
    assert!(
        !banner.0.iter().any(|l| l.contains("may hold a lease")),
        "a fresh directory has no lease to wait for: {:#?}",
        banner.0
    );
    assert_eq!(epoch_file(dir), "1");
    assert_eq!(run_record(dir), "running");
    let mut c = ClusterClient::new(Discovery::Dir(dir.to_path_buf()), Duration::from_secs(5));
    let ack = c.write(7, 42).expect("epoch 1 acknowledges the write");
    assert_eq!(ack.epoch, 1);
    (ack.lsn, banner)
}

/// One script, kept whole: crash, an interrupted restart, the real restart and its two checks of
/// the wait, read top to bottom; the helpers above already hold every step that stands alone.
#[test]
fn a_restarted_control_plane_waits_out_the_old_lease_before_promoting() {
    let dir = scratch_dir("cr", "crash");
    let mut guard = Killer(vec![]);
    let (lsn, banner) = first_run(&dir, &mut guard);

    // kill -9 of the control plane. Its members follow it (SIGTERM on the parent's death);
    // wait until they are gone, so the restarted cluster gets their ports.
    guard.0[0].kill().unwrap();
    guard.0[0].wait().unwrap();
    let pids = member_pids(&banner);
    wait_until(Duration::from_secs(10), "the old members exit", || {
        pids.iter().all(|&p| gone(p)).then_some(())
    });
    assert_eq!(run_record(&dir), "running", "a crash records no clean stop");
    assert_eq!(epoch_file(&dir), "1");

    // A restart that is stopped during its wait promotes nothing and records no clean stop.
    let log = spawn_cluster(&dir, &mut guard);
    let mut seen = Vec::new();
    wait_line(&log, "may hold a lease", Duration::from_secs(15), &mut seen);
    stop(&mut guard, 1);
    wait_line(
        &log,
        "no clean stop recorded",
        Duration::from_secs(5),
        &mut seen,
    );
    assert_eq!(epoch_file(&dir), "1", "nothing promoted: {seen:#?}");
    assert_eq!(run_record(&dir), "running");

    // The real restart: watch DIR/epoch from just before the spawn.
    let spawned = Instant::now();
    let log = spawn_cluster(&dir, &mut guard);
    let mut seen = Vec::new();
    let mut promoted_at = None;
    let deadline = spawned + Duration::from_secs(15);
    while !seen.iter().any(|l: &String| l.contains("cluster ready")) {
        assert!(Instant::now() < deadline, "no 'cluster ready': {seen:#?}");
        if promoted_at.is_none() && epoch_file(&dir) != "1" {
            promoted_at = Some(Instant::now());
        }
        if let Ok(l) = log.recv_timeout(Duration::from_millis(2)) {
            seen.push(l);
        }
    }
    let promoted_at = promoted_at.unwrap_or_else(Instant::now);
    let waited = promoted_at - spawned;
    eprintln!("epoch 2 stored {waited:?} after the spawn; log {seen:#?}");
    assert!(
        waited >= restart_wait(),
        "epoch 2 was handed out {waited:?} after the restart, before the old lease \
         ({:?}) had certainly ended",
        restart_wait()
    );

    // The cluster's own account: what it waited for, and when it promoted.
    let wait = seen
        .iter()
        .find(|l| l.contains("control plane restarted"))
        .unwrap_or_else(|| panic!("no restart line: {seen:#?}"));
    assert!(
        wait.contains("writer (epoch 1) may hold a lease")
            && wait.contains("promoting writer epoch 2 after that"),
        "{wait}"
    );
    let promote = seen
        .iter()
        .find(|l| l.contains("promoting writer epoch 2:"))
        .unwrap_or_else(|| panic!("no promotion line: {seen:#?}"));
    let (announced, target, promoted) = (stamp(wait), until(wait), stamp(promote));
    assert!(
        target >= restart_wait().as_secs_f64(),
        "waits from its own start: {wait}"
    );
    assert!(
        announced <= target && target <= promoted,
        "{wait} / {promote}"
    );
    let w = WriterInfo::load(&dir).unwrap().unwrap();
    assert_eq!(w.epoch, 2, "the restarted cluster promoted the next epoch");

    // Epoch 2 recovers the volume: the acknowledged write reads back.
    wait_line(
        &log,
        "writer (epoch 2) recovered VDL=",
        Duration::from_secs(10),
        &mut seen,
    );
    assert_reads(&dir, 7, 42, lsn);
    stop(&mut guard, 2);
    assert_eq!(run_record(&dir), "stopped 2", "a clean stop is recorded");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn after_a_clean_stop_the_next_control_plane_promotes_at_once() {
    let dir = scratch_dir("cr", "clean");
    let mut guard = Killer(vec![]);
    let (lsn, _) = first_run(&dir, &mut guard);
    stop(&mut guard, 0);
    assert_eq!(run_record(&dir), "stopped 1");

    let log = spawn_cluster(&dir, &mut guard);
    let mut seen = Vec::new();
    wait_line(&log, "cluster ready", Duration::from_secs(15), &mut seen);
    assert!(
        !seen.iter().any(|l| l.contains("may hold a lease")),
        "no lease is outstanding after a clean stop: {seen:#?}"
    );
    assert!(
        seen.iter().any(|l| l.contains("promoting writer epoch 2:")),
        "a new epoch, never the old one: {seen:#?}"
    );
    assert_eq!(run_record(&dir), "running", "recorded before the promotion");
    wait_line(
        &log,
        "writer (epoch 2) recovered VDL=",
        Duration::from_secs(10),
        &mut seen,
    );
    assert_reads(&dir, 7, 42, lsn);
    stop(&mut guard, 1);
    assert_eq!(run_record(&dir), "stopped 2");
    let _ = std::fs::remove_dir_all(&dir);
}
