//! Fencing that survives a restart, for real (issue 9's scenario, step by step):
//!
//! 1. `sixfold cluster --dir D --writer-faults partition=control@2500`: the first writer loses
//!    the control plane 2.5 s after it starts, and nothing else: a zombie, still connected to
//!    its segments and clients. Three writes to key 1 through `client --dir D` (epoch 1), and one
//!    to key 2.
//! 2. The control plane promotes epoch 2, which recovers the volume (`writer (epoch 2) recovered
//!    VDL=…, open`); a write to key 1 through `--dir D` is acknowledged by epoch 2.
//! 3. kill -9 of all six storage nodes; each is restarted with the command the cluster printed
//!    (disks intact), or, in the second test, only four of them.
//! 4. `client --addr <the zombie's client port> write 1 666` is refused or never acknowledged:
//!    the restarted segments kept epoch 2 on disk, so they answer the zombie's Append with
//!    `Fenced`, after which the zombie answers `NotWriter`.
//! 5. `read 1` returns the epoch-2 write; every acknowledged write reads back (a write after the
//!    restarts too); the history of all these client commands is linearizable; and the
//!    cluster's merged trace (`--trace`) replays against the model, judged with the failover
//!    properties.
//!
//! Every wait is for an event (a printed line, a file's content), bounded; none is a sleep.

mod common;

use common::{
    lincheck_kv, restart_member, scratch_dir, sixfold, start_cluster, wait_exit, wait_line, Answer,
    CliHistory, Killer,
};
use sixfold_impl::layout::WriterInfo;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: signalling a process this test started (or one its cluster started).
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// A write through `--dir` must have been acknowledged by the writer of `epoch`; it becomes the
/// newest acknowledged write of its key.
fn ack(acked: &mut BTreeMap<u32, (u64, u64)>, key: u32, value: u64, a: &Answer, epoch: u64) {
    match a {
        Answer::Written { lsn, epoch: e } => {
            assert_eq!(*e, epoch, "write {key}={value} acknowledged by epoch {e}");
            acked.insert(key, (*lsn, value));
        }
        other => panic!("write {key}={value} through --dir: {other:?}"),
    }
}

/// Reads `key` through `--dir DIR`: it must be `value`, at `lsn` or later. A read the writer
/// sends to a segment that is down is never answered (the client times out: nothing is
/// known), so an unknown read is tried again, a bounded number of times.
fn assert_reads(h: &mut CliHistory, dir: &str, key: u32, value: u64, lsn: u64) {
    let target = ["--dir", dir, "--timeout-ms", "1500"];
    for _ in 0..10 {
        match h.read(&target, key) {
            Answer::Read { value: v, lsn: l } => {
                assert_eq!(v, value, "key {key}: read lsn {l}, acknowledged lsn {lsn}");
                assert!(
                    l >= lsn,
                    "key {key}: read lsn {l} before acknowledged lsn {lsn}"
                );
                return;
            }
            Answer::Unknown(_) => {}
            other => panic!("read {key}: {other:?}"),
        }
    }
    panic!("no read of key {key} was answered");
}

/// The scenario, with the segments in `restart` started again after the kill -9 of all six.
/// One script, kept whole: its numbered steps are the module doc's, read top to bottom, and they
/// share the cluster, the history and the acknowledged writes.
fn zombie_after_segment_restarts(name: &str, restart: &[usize]) {
    let dir = scratch_dir("zr", name);
    let d = dir.to_str().unwrap().to_string();
    let trace = dir.join("run.ndjson");
    let mut guard = Killer(vec![]);
    let trace_arg = trace.to_str().unwrap();
    let extra = [
        "--writer-faults",
        "partition=control@2500",
        "--trace",
        trace_arg,
    ];
    let (banner, log) = start_cluster(&dir, &extra, &mut guard);
    let mut seen = banner.0.clone();
    let zombie = WriterInfo::load(&dir).unwrap().unwrap();
    assert_eq!(zombie.epoch, 1);
    let za = zombie.client.to_string();
    let through_dir = ["--dir", d.as_str()];
    let mut h = CliHistory::default();
    // Per key, the newest acknowledged write: (lsn, value).
    let mut acked: BTreeMap<u32, (u64, u64)> = BTreeMap::new();

    // 1. Epoch 1 writes, before the partition.
    for v in 1..=3 {
        let a = h.write(&through_dir, 1, v);
        ack(&mut acked, 1, v, &a, 1);
    }
    let a = h.write(&through_dir, 2, 7);
    ack(&mut acked, 2, 7, &a, 1);

    // 2. The promotion, and a write acknowledged by epoch 2.
    let missed = wait_line(
        &log,
        "missed heartbeats",
        Duration::from_secs(10),
        &mut seen,
    );
    assert!(missed.contains("writer (epoch 1)"), "{missed}");
    let open = wait_line(
        &log,
        "writer (epoch 2) recovered VDL=",
        Duration::from_secs(10),
        &mut seen,
    );
    assert!(open.contains("open"), "{open}");
    let a = h.write(&through_dir, 1, 100);
    ack(&mut acked, 1, 100, &a, 2);

    // 3. kill -9 of all six storage nodes; the cluster reaps each. Then the restarts.
    for seg in 0..6 {
        signal(banner.pid_of(seg) as u32, libc::SIGKILL);
    }
    for seg in 0..6 {
        // In any order: a line read while waiting for another segment is in `seen`.
        let exited = format!("member {seg} exited");
        if !seen.iter().any(|l| l.contains(&exited)) {
            wait_line(&log, &exited, Duration::from_secs(10), &mut seen);
        }
    }
    let first_restarted = guard.0.len();
    for &seg in restart {
        restart_member(
            &banner,
            seg,
            &dir.join(format!("restart-{seg}.stderr")),
            &mut guard,
        );
    }
    // Recovery put epoch 2 on three segments and the epoch-2 write on four: at least four of
    // the six disks were in epoch 2 when they were killed.
    let in_epoch_2 = restart
        .iter()
        .filter(|seg| {
            let err = dir.join(format!("restart-{seg}.stderr"));
            std::fs::read_to_string(err).unwrap().contains(", epoch 2")
        })
        .count();
    assert!(
        in_epoch_2 + (6 - restart.len()) >= 4,
        "only {in_epoch_2} of the restarted segments {restart:?} recovered epoch 2 from disk"
    );

    // 4. The zombie's write: refused, or never acknowledged. Once a segment has answered it
    //    with Fenced, the zombie refuses every write.
    let zombie_target = ["--addr", za.as_str(), "--timeout-ms", "1500"];
    let first = h.write(&zombie_target, 1, 666);
    assert!(
        matches!(first, Answer::Refused(_) | Answer::Unknown(_)),
        "the zombie acknowledged write 1=666 after the restarts: {first:?}"
    );
    let mut refused = matches!(&first, Answer::Refused(e) if e.contains("is not the writer"));
    for v in 667..677 {
        if refused {
            break;
        }
        match h.write(&zombie_target, 1, v) {
            Answer::Refused(e) if e.contains("is not the writer") => refused = true,
            Answer::Unknown(_) => {}
            other => panic!("the zombie answered write 1={v} with {other:?}"),
        }
    }
    assert!(refused, "the zombie never learned it was fenced");

    // 5. The epoch-2 write reads back; then a write after the restarts; then every key.
    let (lsn, value) = acked[&1];
    assert_reads(&mut h, &d, 1, value, lsn);
    let a = h.write(&through_dir, 3, 9);
    ack(&mut acked, 3, 9, &a, 2);
    for (&key, &(lsn, value)) in &acked {
        assert_reads(&mut h, &d, key, value, lsn);
    }
    let history = dir.join("history.ndjson");
    h.save(&history);
    let (code, verdict) = lincheck_kv(&history);
    assert_eq!(code, 0, "{verdict}");
    assert!(verdict.contains("verdict: LINEARIZABLE"), "{verdict}");

    // Stop: the restarted members (they are not the cluster's children), then the cluster,
    // which merges every member's trace.
    for c in &guard.0[first_restarted..] {
        signal(c.id(), libc::SIGTERM);
    }
    for c in &mut guard.0[first_restarted..] {
        assert_eq!(
            wait_exit(c, Duration::from_secs(10)),
            Some(0),
            "member stops"
        );
    }
    signal(guard.0[0].id(), libc::SIGINT);
    assert_eq!(
        wait_exit(&mut guard.0[0], Duration::from_secs(15)),
        Some(0),
        "cluster stops cleanly and merges its trace"
    );
    assert_trace_replays(&trace, restart.len());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The merged trace is judged with the failover properties and passes; it holds a crash and a
/// restart for each segment restarted, the restarts from disks in epoch 2 (all but those that
/// had not heard of it), and a zombie Append refused.
fn assert_trace_replays(trace: &Path, restarts: usize) {
    let text = std::fs::read_to_string(trace).expect("merged trace");
    let header: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(header["model"], "failover", "{header}");
    assert_eq!(text.matches("\"kind\":\"crash\"").count(), restarts);
    let restarted_in_epoch_2 = text
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["input"]["kind"] == "start" && v["input"]["storage"]["Segment"]["epoch"] == 2)
        .count();
    assert!(
        restarted_in_epoch_2 + (6 - restarts) >= 4,
        "{restarted_in_epoch_2} restarts in epoch 2"
    );
    assert!(text.contains("\"Fenced\""), "a segment fenced the zombie");
    let (code, out, err) = sixfold(&["replay", trace.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("PASS"), "{out}");
}

#[test]
fn a_zombie_is_fenced_by_segments_restarted_from_disk() {
    zombie_after_segment_restarts("all", &[0, 1, 2, 3, 4, 5]);
}

#[test]
fn a_zombie_is_fenced_when_only_four_segments_restart() {
    zombie_after_segment_restarts("four", &[0, 1, 2, 3]);
}
