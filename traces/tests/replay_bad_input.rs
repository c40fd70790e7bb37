//! Bad trace input gets a clear error naming the file and the line, never a panic, and an
//! edited output is caught as a mismatch at exactly that line.

use sixfold_checks::replay::{self, ReplayVerdict};
use sixfold_impl::trace_merge::{parse_text, TraceFileError};
use std::path::{Path, PathBuf};

fn run_trace() -> (PathBuf, String) {
    let f = sixfold_traces::root().join("runs/crash-restart.ndjson");
    let text = std::fs::read_to_string(&f).unwrap();
    (f, text)
}

fn bad_line(text: &str) -> (usize, String) {
    match parse_text(Path::new("edited.ndjson"), text) {
        Err(TraceFileError::BadLine { at, reason }) => {
            assert_eq!(at.file, Path::new("edited.ndjson"));
            (at.line, reason)
        }
        other => panic!("expected a bad line, got {other:?}"),
    }
}

#[test]
fn truncated_last_line_is_named() {
    let (_, text) = run_trace();
    let cut = &text[..text.len() - 20];
    let (line, reason) = bad_line(cut);
    assert_eq!(line, cut.lines().count());
    assert!(reason.contains("truncated"), "{reason}");
}

#[test]
fn unknown_actor_is_named() {
    let (_, text) = run_trace();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[4] = lines[4].replacen("\"actor\":", "\"actor\":4", 1);
    let (line, reason) = bad_line(&(lines.join("\n") + "\n"));
    assert_eq!(line, 5);
    assert!(reason.contains("unknown actor id"), "{reason}");
}

#[test]
fn unparsable_message_is_named() {
    let (_, text) = run_trace();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let i = lines.iter().position(|l| l.contains("\"Append\"")).unwrap();
    lines[i] = lines[i].replacen("\"Append\"", "\"Apend\"", 1);
    let (line, reason) = bad_line(&(lines.join("\n") + "\n"));
    assert_eq!(line, i + 1);
    assert!(reason.contains("message does not parse"), "{reason}");
    assert!(reason.contains("Apend"), "{reason}");
}

#[test]
fn missing_header_is_named() {
    let (_, text) = run_trace();
    let rest: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
    let (line, reason) = bad_line(&rest);
    assert_eq!(line, 1);
    assert!(reason.contains("missing header"), "{reason}");
}

#[test]
fn an_edited_output_is_reported_at_its_line() {
    let (_, text) = run_trace();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let i = lines
        .iter()
        .position(|l| l.contains("\"WriteOk\""))
        .expect("a commit");
    let ok = "\"WriteOk\":{\"epoch\":1,\"lsn\":";
    lines[i] = lines[i].replacen(ok, &format!("{ok}9"), 1);
    assert!(lines[i].contains(&format!("{ok}9")), "{}", lines[i]);
    let trace = parse_text(Path::new("edited.ndjson"), &(lines.join("\n") + "\n")).unwrap();
    match replay::replay(&trace).verdict {
        ReplayVerdict::Mismatch { at, detail } => {
            assert_eq!(at.line, i + 1);
            assert!(detail.contains("expected (model)"), "{detail}");
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

/// A restart must find on disk exactly what the actor last saved: a record that vanished from
/// the restart's storage is pointed at, at the `start` line.
#[test]
fn a_restart_from_storage_never_saved_is_reported_at_its_line() {
    let (_, text) = run_trace();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let i = lines
        .iter()
        .position(|l| l.contains("\"kind\":\"start\",\"storage\":{"))
        .expect("a restart from a saved log");
    let last = "{\"epoch\":1,\"key\":0,\"lsn\":3,\"value\":30}";
    assert!(lines[i].contains(last), "{}", lines[i]);
    lines[i] = lines[i].replacen(&format!(",{last}"), "", 1);
    let trace = parse_text(Path::new("edited.ndjson"), &(lines.join("\n") + "\n")).unwrap();
    match replay::replay(&trace).verdict {
        ReplayVerdict::Mismatch { at, detail } => {
            assert_eq!(at.line, i + 1);
            assert!(detail.contains("its last save in the trace"), "{detail}");
            assert!(
                detail.contains("log [1-3]") && detail.contains("log [1-2]"),
                "{detail}"
            );
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

fn failover_run(name: &str) -> String {
    std::fs::read_to_string(sixfold_traces::root().join(format!("runs/failover-{name}.ndjson")))
        .unwrap()
}

fn mismatch_at(lines: &[String]) -> (usize, String) {
    let trace = parse_text(Path::new("edited.ndjson"), &(lines.join("\n") + "\n")).unwrap();
    assert_eq!(trace.header.model, "failover");
    match replay::replay(&trace).verdict {
        ReplayVerdict::Mismatch { at, detail } => (at.line, detail),
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

/// In the recorded failover run, a commit of the promoted writer edited to another LSN is
/// pointed at, expected against actual.
#[test]
fn an_edited_commit_of_the_promoted_writer_is_reported_at_its_line() {
    let mut lines: Vec<String> = failover_run("kill").lines().map(String::from).collect();
    let ok = "\"WriteOk\":{\"epoch\":2,\"lsn\":";
    let i = lines
        .iter()
        .position(|l| l.contains(ok))
        .expect("a commit of epoch 2");
    lines[i] = lines[i].replacen(ok, &format!("{ok}9"), 1);
    let (line, detail) = mismatch_at(&lines);
    assert_eq!(line, i + 1, "{detail}");
    assert!(
        detail.contains("step of writer2") && detail.contains("expected (model)"),
        "{detail}"
    );
}

/// A segment restarted after the failover must come back in the epoch it saved: a restart
/// edited back to epoch 1 (what a disk that kept only records would give) is pointed at.
#[test]
fn a_restart_that_forgot_the_epoch_is_reported_at_its_line() {
    let mut lines: Vec<String> = failover_run("restart").lines().map(String::from).collect();
    let saved = "\"kind\":\"start\",\"storage\":{\"Segment\":{\"epoch\":2,";
    let i = lines
        .iter()
        .position(|l| l.contains(saved))
        .expect("a restart in epoch 2");
    lines[i] = lines[i].replacen(saved, &saved.replace(":2,", ":1,"), 1);
    let (line, detail) = mismatch_at(&lines);
    assert_eq!(line, i + 1, "{detail}");
    assert!(detail.contains("its last save in the trace"), "{detail}");
    assert!(detail.contains(" e2 "), "{detail}");
}
