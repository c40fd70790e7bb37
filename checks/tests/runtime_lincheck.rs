//! The runtime's recorded history, checked for linearizability: `sixfold cluster` as real
//! processes, `sixfold client load --history` with six concurrent clients reading and writing a
//! handful of keys, and during the load both storage nodes of AZ b SIGKILLed; segment 3 comes
//! back with its disk, segment 2 as a replaced node with an empty disk. `sixfold lincheck
//! --model kv` must accept the history of the real protocol, and reject the history of the
//! `read-any-node` mutant (a read served by the replaced segment, which lacks committed records,
//! returns a stale value), pointing at the violation in its HTML page.

mod common;

use common::{wait_exit, Banner, Killer, EXE};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Operations per load: enough that it outlasts the faults (1.5 to 3 s on a 2-core VM).
const OPS: u64 = 4000;
const CLIENTS: u64 = 6;

/// What one run produced.
struct Run {
    history: PathBuf,
    html: PathBuf,
    /// `sixfold lincheck` exit status and stdout.
    code: i32,
    out: String,
    /// Operations the load recorded as ok, as (reads, writes).
    ok: (usize, usize),
    /// Ok operations whose call came after both AZ b segments were restarted (load clock).
    ok_after_restart: usize,
}

/// Starts a cluster, runs the load with the AZ b faults, stops everything, checks the history.
fn run(name: &str, mutant: Option<&str>, keys: u32, read_ratio: &str) -> Run {
    let dir = std::env::temp_dir().join(format!("sixfold-lin-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap().to_string();
    let mut args = vec!["cluster", "--dir", &d];
    if let Some(m) = mutant {
        args.extend(["--mutant", m]);
    }
    let mut guard = Killer(vec![]);
    let mut cluster = Command::new(EXE)
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = cluster.stdout.take().unwrap();
    guard.0.push(cluster);
    let banner = Banner::read(stdout);

    let history = dir.join("history.ndjson");
    let load_started = Instant::now();
    let mut load = Command::new(EXE)
        .args(["client", "--dir", &d, "--timeout-ms", "3000", "load"])
        .args(["--ops", &OPS.to_string(), "--clients", &CLIENTS.to_string()])
        .args(["--keys", &keys.to_string(), "--read-ratio", read_ratio])
        .arg("--history")
        .arg(&history)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    az_b_faults(&dir, &banner, &mut guard);
    let restarted = load_started.elapsed();
    assert!(
        load.try_wait().unwrap().is_none(),
        "the load ended before the faults; raise OPS"
    );
    let code = wait_exit(&mut load, Duration::from_secs(20));
    let mut load_out = String::new();
    let _ = std::io::Read::read_to_string(load.stdout.as_mut().unwrap(), &mut load_out);
    guard.0.push(load);
    assert!(code.is_some(), "the load did not finish in 20 s");

    stop(&mut guard);

    let text = std::fs::read_to_string(&history)
        .unwrap_or_else(|e| panic!("history {}: {e}; load said {load_out}", history.display()));
    let (reads, writes, after) = count_ok(&text, restarted);
    let html = dir.join("history.html");
    let (code, out) = lincheck_with_html(&history, &html);
    eprintln!(
        "{name}: load {}; ok reads {reads}, writes {writes}, {after} after the restarts at \
         {restarted:?}; lincheck exit {code}",
        load_out.trim().replace('\n', "; ")
    );
    Run {
        history,
        html,
        code,
        out,
        ok: (reads, writes),
        ok_after_restart: after,
    }
}

/// The faults, mid-load: SIGKILL both storage nodes of AZ b (segments 2 and 3) and keep going
/// without them; then segment 2 comes back as a replaced node with an empty disk and segment 3
/// restarts from its log (both into the guard).
fn az_b_faults(dir: &Path, banner: &Banner, guard: &mut Killer) {
    std::thread::sleep(Duration::from_millis(200));
    for seg in [2, 3] {
        // SAFETY: the pid is a member the cluster started for this test.
        unsafe {
            libc::kill(banner.pid_of(seg), libc::SIGKILL);
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    std::fs::remove_dir_all(dir.join("node-2")).unwrap();
    for seg in [2, 3] {
        let argv = banner.restart_of(seg);
        let c = Command::new(&argv[0])
            .args(&argv[1..])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        guard.0.push(c);
    }
}

/// Stops the restarted members, then the cluster (which stops the rest); the cluster must stop
/// cleanly.
fn stop(guard: &mut Killer) {
    for c in guard.0.iter_mut().skip(2) {
        let _ = c.kill();
        let _ = c.wait();
    }
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

/// Counts a history's ok operations as (reads, writes, calls after `restarted` on the load's
/// clock), so a run can show the load kept going through the faults.
fn count_ok(history: &str, restarted: Duration) -> (usize, usize, usize) {
    let (mut reads, mut writes, mut after) = (0, 0, 0);
    let load_clock = restarted.as_nanos() as u64;
    for line in history.lines() {
        let rec: serde_json::Value = serde_json::from_str(line).unwrap();
        if rec["outcome"] != "ok" {
            continue;
        }
        match rec["op"].as_str().unwrap() {
            "read" => reads += 1,
            "write" => writes += 1,
            other => panic!("unexpected op {other}"),
        }
        // The load's clock starts after it connects, so this undercounts, never overcounts.
        if rec["call"].as_u64().unwrap() > load_clock {
            after += 1;
        }
    }
    (reads, writes, after)
}

/// `sixfold lincheck HISTORY --model kv --html HTML`: exit status and stdout.
fn lincheck_with_html(history: &Path, html: &Path) -> (i32, String) {
    let out = Command::new(EXE)
        .arg("lincheck")
        .arg(history)
        .args(["--model", "kv", "--time-limit", "20", "--html"])
        .arg(html)
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    (code, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn cleanup(history: &Path) {
    if let Some(dir) = history.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn cluster_history_with_az_loss_is_linearizable() {
    let r = run("ok", None, 4, "0.6");
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(r.out.contains("verdict: LINEARIZABLE"), "{}", r.out);
    let (reads, writes) = r.ok;
    assert!(
        reads >= 500 && writes >= 500,
        "ok reads {reads}, writes {writes}"
    );
    assert!(
        r.ok_after_restart >= 100,
        "only {} ok operations after the restarts",
        r.ok_after_restart
    );
    let page = std::fs::read_to_string(&r.html).unwrap();
    assert!(page.contains("<svg"), "the HTML page has a timeline");
    cleanup(&r.history);
}

#[test]
fn read_any_node_mutant_history_is_rejected_with_html() {
    // The replaced segment serves reads of records it never received; a few attempts make a
    // run where no read happens to reach it (never seen so far) not fail the test.
    let mut runs: Vec<PathBuf> = Vec::new();
    for attempt in 0..3 {
        let r = run(
            &format!("mutant-{attempt}"),
            Some("read-any-node"),
            8,
            "0.8",
        );
        if r.code == 1 {
            assert!(r.out.contains("verdict: NOT LINEARIZABLE"), "{}", r.out);
            assert!(r.out.contains("cannot be placed:"), "{}", r.out);
            let page = std::fs::read_to_string(&r.html).unwrap();
            assert!(
                page.contains("NOT LINEARIZABLE"),
                "the HTML names the verdict"
            );
            assert!(page.contains("<svg"), "the HTML has a timeline");
            assert!(
                page.contains("fails here"),
                "the HTML marks where the linearization fails"
            );
            cleanup(&r.history);
            for h in runs {
                cleanup(&h);
            }
            return;
        }
        assert_eq!(r.code, 0, "{}", r.out);
        runs.push(r.history);
    }
    panic!("three read-any-node runs were all linearizable: {runs:?}");
}
