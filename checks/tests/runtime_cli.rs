//! The README walk-through, end to end with the real binary: `sixfold cluster` with a trace,
//! `sixfold client` writes, SIGKILL of both storage nodes of one AZ, more writes, restart with
//! the printed commands, read back every acknowledged write, stop with SIGINT, `sixfold replay`
//! the merged trace (pass), then edit one recorded output and see replay name that line.

mod common;

use common::{wait_exit, Banner, Killer, EXE};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn sixfold(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(EXE).args(args).output().expect("run sixfold");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: signalling a child process this test started.
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

/// One script, kept whole: it is the README walk-through, read top to bottom in the order of the
/// module doc, each step using the cluster, directory and trace the steps before it left.
#[test]
fn cluster_survives_an_az_loss_and_its_trace_replays() {
    let dir = std::env::temp_dir().join(format!("sixfold-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap().to_string();
    let trace = dir.join("run.ndjson");
    let mut cluster = Command::new(EXE)
        .args(["cluster", "--dir", &d, "--trace", trace.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = cluster.stdout.take().unwrap();
    let mut guard = Killer(vec![]);
    let banner = Banner::read(stdout);
    let printed = &banner.0;
    assert!(printed.iter().any(|l| l.contains("az-b")), "{printed:?}");

    let mut acked = Vec::new();
    for v in 1..=5u32 {
        let (code, out, err) = sixfold(&[
            "client",
            "--dir",
            &d,
            "write",
            &(v % 2).to_string(),
            &v.to_string(),
        ]);
        assert_eq!(code, 0, "{out}{err}");
        acked.push((v % 2, v));
    }
    // SIGKILL both storage nodes of AZ b (segments 2 and 3) and keep writing.
    for seg in [2, 3] {
        // SAFETY: the pid is a member the cluster started for this test.
        unsafe {
            libc::kill(banner.pid_of(seg), libc::SIGKILL);
        }
    }
    for v in 6..=10u32 {
        let (code, out, err) = sixfold(&[
            "client",
            "--dir",
            &d,
            "write",
            &(v % 2).to_string(),
            &v.to_string(),
        ]);
        assert_eq!(code, 0, "write with AZ b down: {out}{err}");
        acked.push((v % 2, v));
    }
    // Restart them with the printed commands, then read back every key's newest write.
    for seg in [2, 3] {
        let argv = banner.restart_of(seg);
        let c = Command::new(&argv[0])
            .args(&argv[1..])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        guard.0.push(c);
    }
    let (code, _, err) = sixfold(&["client", "--dir", &d, "write", "0", "11"]);
    assert_eq!(code, 0, "{err}");
    acked.push((0, 11));
    for key in [0u32, 1] {
        let want = acked.iter().rev().find(|a| a.0 == key).unwrap().1;
        let (code, out, err) = sixfold(&["client", "--dir", &d, "read", &key.to_string()]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(&format!("key {key} = {want} ")), "{out}");
    }
    std::thread::sleep(Duration::from_millis(300));
    for c in &guard.0 {
        signal(c, libc::SIGTERM);
    }
    for c in &mut guard.0 {
        assert_eq!(wait_exit(c, Duration::from_secs(5)), Some(0));
    }
    signal(&cluster, libc::SIGINT);
    assert_eq!(wait_exit(&mut cluster, Duration::from_secs(15)), Some(0));

    // The merged trace shows both crashes and restarts and replays against the model.
    let text = std::fs::read_to_string(&trace).expect("merged trace");
    assert_eq!(text.matches("\"kind\":\"crash\"").count(), 2);
    let (code, out, err) = sixfold(&["replay", trace.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("PASS"), "{out}");

    // Edit one recorded output: replay names that line, expected against actual, exit 1.
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let i = lines
        .iter()
        .position(|l| l.contains("\"WriteOk\":{\"epoch\":1,\"lsn\":"))
        .unwrap();
    let ok = "\"WriteOk\":{\"epoch\":1,\"lsn\":";
    lines[i] = lines[i].replacen(ok, &format!("{ok}7"), 1);
    let edited = dir.join("edited.ndjson");
    std::fs::write(&edited, lines.join("\n") + "\n").unwrap();
    let (code, out, _) = sixfold(&["replay", edited.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("edited.ndjson:{}", i + 1)), "{out}");
    assert!(
        out.contains("expected (model)") && out.contains("actual (trace)"),
        "{out}"
    );

    // Bad input: exit 2 with the file and line.
    std::fs::write(
        &edited,
        format!("{}\n{{\"type\":\"step\",\"actor\":", lines[0]),
    )
    .unwrap();
    let (code, _, err) = sixfold(&["replay", edited.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("edited.ndjson:2") && err.contains("truncated"),
        "{err}"
    );
    let _ = Path::new(&d);
}
