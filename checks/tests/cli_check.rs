//! The `sixfold check`, `explore` and `mutants` commands as a user runs them: exit statuses,
//! messages on bad input, the summary table and the counterexample file.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn sixfold(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sixfold"))
        .args(args)
        .output()
        .expect("sixfold runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn unknown_model_lists_the_valid_ones() {
    let o = sixfold(&["check", "raft"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("unknown model 'raft'; valid models: quorum"));
}

#[test]
fn unknown_mutant_lists_the_valid_ones() {
    let o = sixfold(&["check", "quorum", "--mutant", "write-quorum-2"]);
    assert_eq!(o.status.code(), Some(2));
    let t = text(&o);
    assert!(
        t.contains("write-quorum-3") && t.contains("read-any-node"),
        "{t}"
    );
}

#[test]
fn zero_and_absurd_bounds_are_refused() {
    let o = sixfold(&["check", "quorum", "--writes", "0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("--writes 0 is out of range: must be between 1 and 6"));
    let o = sixfold(&["check", "quorum", "--losses", "4"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("AZ plus one"));
    let o = sixfold(&["check", "quorum", "--writes", "99999999999999999999"]);
    assert_eq!(o.status.code(), Some(2));
    let o = sixfold(&["check", "quorum", "--bfs", "--symmetry"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("only with --dfs"));
    let o = sixfold(&["check", "quorum", "--geometry", "five"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("valid geometries: six, full-tail"));
    let o = sixfold(&[
        "check",
        "failover",
        "--mutant",
        "read-ignores-full",
        "--geometry",
        "six",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("needs --geometry full-tail"));
}

#[test]
fn a_passing_check_prints_the_table_and_exits_0() {
    let o = sixfold(&[
        "check",
        "all",
        "--writes",
        "1",
        "--reads",
        "0",
        "--crashes",
        "0",
        "--losses",
        "0",
    ]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    for column in ["states", "unique", "depth", "seconds", "states/s"] {
        assert!(t.contains(column), "missing column {column}: {t}");
    }
    assert!(t.contains("durability") && t.contains("holds"));
}

#[test]
fn a_caught_mutant_exits_1_with_a_readable_trace_and_a_json_file() {
    let dir = std::env::temp_dir().join(format!("sixfold-cli-{}", std::process::id()));
    let o = sixfold(&[
        "check",
        "quorum",
        "--mutant",
        "write-quorum-3",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("property \"durability\" is VIOLATED"));
    assert!(t.contains("writer → seg"), "steps name their actors: {t}");
    let file = dir.join("quorum-write-quorum-3-durability.ndjson");
    assert!(t.contains(&file.display().to_string()));
    let trace = std::fs::read_to_string(&file).unwrap();
    for line in trace.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("every line is JSON");
        assert!(v.get("type").is_some());
    }
}

#[test]
fn mutants_lists_each_with_its_property() {
    let t = text(&sixfold(&["mutants"]));
    assert!(t.contains("write-quorum-3") && t.contains("durability"));
    assert!(t.contains("read-any-node") && t.contains("no stale read"));
    for line in [
        "no-fencing",
        "no-truncation",
        "gossip-ignores-truncation",
        "recover-with-2",
        "read-ignores-full",
    ] {
        let row = t.lines().find(|l| l.starts_with(line)).expect(line);
        assert!(row.contains("failover"), "{row}");
    }
}

#[test]
fn explore_refuses_a_busy_port() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let o = sixfold(&["explore", "quorum", "--port", &port]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("cannot listen"));
}

#[test]
fn explore_serves_the_mutant_counterexample() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_sixfold"))
        .args([
            "explore",
            "quorum",
            "--mutant",
            "write-quorum-3",
            "--port",
            &port.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut link = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match lines.next() {
            Some(Ok(line)) if line.starts_with("serving") => break,
            Some(Ok(line)) if line.contains("counterexample") => link = Some(line),
            Some(Ok(_)) => {}
            _ => break,
        }
    }
    let link = link.expect("a counterexample link");
    assert!(link.contains(&format!("http://127.0.0.1:{port}/#/steps/0/")));
    // The explorer answers with the step the link points at.
    let steps = link.split("#/steps/").nth(1).unwrap().to_string();
    let mut body = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            write!(
                s,
                "GET /.states/{steps} HTTP/1.0\r\nHost: localhost\r\n\r\n"
            )
            .unwrap();
            s.read_to_string(&mut body).unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        body.starts_with("HTTP/1.1 200") || body.starts_with("HTTP/1.0 200"),
        "{body}"
    );
}
