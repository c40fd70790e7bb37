//! Writer failover for real: `sixfold cluster` is the control plane, and these tests take its
//! writer away in the two ways that matter.
//!
//! - **kill -9**: a load with a recorded history runs while the writer process is SIGKILLed; the
//!   control plane notices the missed heartbeats, waits out the lease, promotes epoch 2, which
//!   recovers the volume; the load's clients follow it. The history must be linearizable and
//!   every acknowledged write readable through the new writer.
//! - **partition**: the writer is cut off from the control plane (fault injection) but stays
//!   alive and connected to the segments and its clients: a zombie. After the promotion, the
//!   zombie must not serve reads (its lease ran out before the promotion: `NotWriter`) and its
//!   writes must never be acknowledged (the segments fence its epoch; once fenced it answers
//!   `NotWriter`). No acknowledged write is lost, and the load's history across the partition is
//!   linearizable.

mod common;

use common::{scratch_dir, start_cluster, wait_exit, wait_line, wait_until, Killer, EXE};
use sixfold_impl::client::{Client, ClientError, ClusterClient, Discovery};
use sixfold_impl::layout::WriterInfo;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn start_load(dir: &Path, ops: u64, history: &Path, acked: &Path) -> Child {
    Command::new(EXE)
        .arg("client")
        .arg("--dir")
        .arg(dir)
        .args(["--timeout-ms", "2500", "load", "--ops", &ops.to_string()])
        .args(["--clients", "4", "--keys", "4", "--read-ratio", "0.5"])
        .arg("--history")
        .arg(history)
        .arg("--acked")
        .arg(acked)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// `sixfold lincheck HISTORY --model kv`: exit status and stdout.
fn lincheck(history: &Path) -> (i32, String) {
    let out = Command::new(EXE)
        .arg("lincheck")
        .arg(history)
        .args(["--model", "kv", "--time-limit", "20"])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Acknowledged writes from the load's `--acked` file: per key, the highest LSN acknowledged;
/// and how many writes each epoch acknowledged.
fn newest_acked(acked: &Path) -> (HashMap<u32, u64>, HashMap<u64, usize>) {
    let (mut newest, mut by_epoch) = (HashMap::new(), HashMap::new());
    for l in std::fs::read_to_string(acked).unwrap().lines() {
        let f: Vec<u64> = l.split_whitespace().map(|x| x.parse().unwrap()).collect();
        let e = newest.entry(f[0] as u32).or_insert(0);
        *e = (*e).max(f[2]);
        *by_epoch.entry(f[3]).or_insert(0) += 1;
    }
    (newest, by_epoch)
}

/// Every acknowledged write is still there: reading each key through the current writer
/// returns a version at least as new as the newest write acknowledged for it.
fn assert_acked_readable(dir: &Path, newest: &HashMap<u32, u64>, epoch: u32) {
    let mut c = ClusterClient::new(Discovery::Dir(dir.to_path_buf()), Duration::from_secs(5));
    for (key, lsn) in newest {
        let v = c.read(*key).unwrap();
        assert!(
            v.lsn >= *lsn,
            "key {key}: read lsn {} older than acknowledged lsn {lsn}",
            v.lsn
        );
    }
    let w = WriterInfo::load(dir).unwrap().unwrap();
    assert_eq!(w.epoch, epoch, "the writer that served the reads");
}

/// Counts a history's operations by outcome.
fn outcomes(history: &Path) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for l in std::fs::read_to_string(history).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        *n.entry(v["outcome"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    n
}

fn stop(guard: &mut Killer) {
    // SAFETY: signalling the cluster process this test started.
    unsafe {
        libc::kill(guard.0[0].id() as libc::pid_t, libc::SIGINT);
    }
    assert_eq!(
        wait_exit(&mut guard.0[0], Duration::from_secs(15)),
        Some(0),
        "cluster stops cleanly"
    );
}

#[test]
fn kill_9_of_the_writer_fails_over_and_the_history_stays_linearizable() {
    let dir = scratch_dir("fo", "kill");
    let mut guard = Killer(vec![]);
    let (banner, log) = start_cluster(&dir, &[], &mut guard);
    let mut seen = Vec::new();
    let (history, acked) = (dir.join("history.ndjson"), dir.join("acked.txt"));
    let mut load = start_load(&dir, 8000, &history, &acked);
    // Let the load get going on epoch 1, then kill -9 the writer.
    wait_until(Duration::from_secs(10), "the load writes", || {
        std::fs::metadata(dir.join("node-0/segment.log"))
            .ok()
            .filter(|m| m.len() > 20_000)
    });
    // SAFETY: the pid is the writer the cluster started for this test.
    unsafe {
        libc::kill(banner.writer_pid(), libc::SIGKILL);
    }
    let killed = Instant::now();
    let missed = wait_line(&log, "missed heartbeats", Duration::from_secs(5), &mut seen);
    assert!(missed.contains("writer (epoch 1)") && missed.contains("lease expires at"));
    wait_line(
        &log,
        "promoting writer epoch 2:",
        Duration::from_secs(5),
        &mut seen,
    );
    let open = wait_line(
        &log,
        "writer (epoch 2) recovered VDL=",
        Duration::from_secs(5),
        &mut seen,
    );
    assert!(open.contains("open"), "{open}");
    let failover = killed.elapsed();
    assert!(
        load.try_wait().unwrap().is_none(),
        "the load ended before the failover; raise its ops"
    );
    let code = wait_exit(&mut load, Duration::from_secs(20));
    let mut out = String::new();
    let _ = std::io::Read::read_to_string(load.stdout.as_mut().unwrap(), &mut out);
    guard.0.push(load);
    assert!(code.is_some(), "the load finished: {out}");

    // Writes acknowledged by both writers, and by epoch 2 after the kill.
    let n = outcomes(&history);
    eprintln!(
        "failover in {failover:?}; load: {}; outcomes {n:?}",
        out.trim()
    );
    assert!(n.get("ok").copied().unwrap_or(0) >= 1000, "{n:?}");
    let (code, verdict) = lincheck(&history);
    assert_eq!(code, 0, "{verdict}");
    assert!(verdict.contains("verdict: LINEARIZABLE"), "{verdict}");
    let (newest, by_epoch) = newest_acked(&acked);
    assert!(
        by_epoch.get(&1) >= Some(&100) && by_epoch.get(&2) >= Some(&100),
        "both writers acknowledged writes: {by_epoch:?}"
    );
    assert_acked_readable(&dir, &newest, 2);
    stop(&mut guard);
    let _ = std::fs::remove_dir_all(&dir);
}

/// One script, kept whole: the zombie connection is threaded through partition, promotion,
/// fencing and the final checks, and the scenario reads top to bottom as the module doc tells it.
#[test]
fn a_partitioned_writer_is_fenced_and_serves_no_stale_reads() {
    let dir = scratch_dir("fo", "partition");
    let mut guard = Killer(vec![]);
    // The first writer loses the control plane 1.5 s after it starts, and only the control
    // plane: it keeps its segments and its clients.
    let (_banner, log) = start_cluster(
        &dir,
        &["--writer-faults", "partition=control@1500"],
        &mut guard,
    );
    let mut seen = Vec::new();
    let first = WriterInfo::load(&dir).unwrap().unwrap();
    assert_eq!(first.epoch, 1);
    let (history, acked) = (dir.join("history.ndjson"), dir.join("acked.txt"));
    let mut load = start_load(&dir, 8000, &history, &acked);
    // A connection that stays with the old writer, whatever the control plane does.
    let mut zombie = Client::connect(first.client, Duration::from_millis(800)).unwrap();
    let z_lsn = zombie
        .write(100, 1)
        .expect("epoch 1 serves before the partition");

    let missed = wait_line(&log, "missed heartbeats", Duration::from_secs(8), &mut seen);
    assert!(missed.contains("writer (epoch 1)"), "{missed}");
    wait_line(
        &log,
        "promoting writer epoch 2:",
        Duration::from_secs(5),
        &mut seen,
    );
    // The promotion came after the old lease ran out, so the zombie no longer serves reads.
    match zombie.read(100) {
        Err(ClientError::NotWriter { .. }) => {}
        other => panic!("the zombie served a read after the promotion: {other:?}"),
    }
    wait_line(
        &log,
        "writer (epoch 2) recovered",
        Duration::from_secs(5),
        &mut seen,
    );
    // Its writes are never acknowledged: the segments fence epoch 1, after which it refuses.
    let mut refused = false;
    for v in 2..40 {
        match zombie.write(100, v) {
            Ok(lsn) => panic!("the zombie acknowledged a write (lsn {lsn}) after the promotion"),
            Err(ClientError::NotWriter { .. }) => {
                refused = true;
                break;
            }
            Err(ClientError::Timeout { .. }) => {
                zombie = Client::connect(first.client, Duration::from_millis(800)).unwrap()
            }
            Err(e) => panic!("unexpected answer from the zombie: {e}"),
        }
    }
    assert!(refused, "the zombie never learned it was fenced");
    let code = wait_exit(&mut load, Duration::from_secs(20));
    let mut out = String::new();
    let _ = std::io::Read::read_to_string(load.stdout.as_mut().unwrap(), &mut out);
    guard.0.push(load);
    assert!(code.is_some(), "the load finished: {out}");
    let n = outcomes(&history);
    eprintln!("load: {}; outcomes {n:?}", out.trim());
    let (code, verdict) = lincheck(&history);
    assert_eq!(code, 0, "{verdict}");
    assert!(verdict.contains("verdict: LINEARIZABLE"), "{verdict}");
    let (mut newest, by_epoch) = newest_acked(&acked);
    assert!(
        by_epoch.get(&1) >= Some(&100) && by_epoch.get(&2) >= Some(&100),
        "both writers acknowledged writes: {by_epoch:?}"
    );
    newest.insert(100, z_lsn);
    assert_acked_readable(&dir, &newest, 2);
    let zombie_read = Client::connect(first.client, Duration::from_millis(800))
        .unwrap()
        .read(0);
    assert!(
        matches!(zombie_read, Err(ClientError::NotWriter { .. })),
        "{zombie_read:?}"
    );
    stop(&mut guard);
    let _ = std::fs::remove_dir_all(&dir);
}
