//! sixfold's NDJSON history format end to end: what [`HistoryWriter`] writes reads back and
//! checks, unknown outcomes, and parse errors that name the file and line.
//!
//! [`HistoryWriter`]: sixfold_lincheck::HistoryWriter

/// Named `lincheck` so `cargo test lincheck` selects these tests.
mod lincheck {
    use sixfold_lincheck::history::{
        parse, Format, HistoryLine, HistoryWriter, OpKind, Outcome, Value,
    };
    use sixfold_lincheck::{check, CheckOptions, LincheckError, Spec, Verdict};
    use std::path::Path;

    fn rec(client: u64, call: u64, ret: u64, op: OpKind, value: Option<i64>) -> HistoryLine {
        HistoryLine {
            client,
            call,
            ret: Some(ret),
            outcome: Outcome::Ok,
            op,
            key: None,
            value: value.map(Value::Int),
            from: None,
            to: None,
        }
    }

    /// write 1, then a read of 1 that overlaps a write of 2, then a stale read of 1.
    fn stale_read_history() -> String {
        let mut w = HistoryWriter::new(Vec::new());
        for r in [
            rec(0, 0, 10, OpKind::Write, Some(1)),
            rec(1, 20, 30, OpKind::Write, Some(2)),
            rec(0, 25, 28, OpKind::Read, Some(1)),
            rec(2, 40, 50, OpKind::Read, Some(1)),
        ] {
            w.record(&r).expect("write history line");
        }
        String::from_utf8(w.finish().expect("finish")).expect("utf8")
    }

    #[test]
    fn ndjson_written_by_the_writer_reads_back_and_checks() {
        let text = stale_read_history();
        // The same history is the CLI tests' fixture: the writer's format is pinned.
        let fixture = include_str!("data/stale-read.ndjson");
        assert_eq!(text, fixture);
        let history = parse(Path::new("mem"), &text, Format::Auto).expect("parses");
        assert_eq!(history.ops.len(), 4);
        let options = CheckOptions {
            spec: Spec::Register,
            time_limit: None,
        };
        assert_eq!(check(&history, &options).verdict, Verdict::NotLinearizable);
        // Without the stale read the rest is linearizable.
        let fine: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
        let history = parse(Path::new("mem"), &fine, Format::Ndjson).expect("parses");
        assert_eq!(check(&history, &options).verdict, Verdict::Linearizable);
    }

    #[test]
    fn unknown_outcomes_may_take_effect_late_or_never() {
        let text = r#"{"client":0,"call":0,"outcome":"unknown","op":"write","value":7}
{"client":1,"call":5,"return":6,"outcome":"ok","op":"read","value":null}
{"client":1,"call":100,"return":101,"outcome":"ok","op":"read","value":7}
{"client":1,"call":200,"return":201,"outcome":"ok","op":"read","value":7}
"#;
        let history = parse(Path::new("mem"), text, Format::Auto).expect("parses");
        let options = CheckOptions {
            spec: Spec::Register,
            time_limit: None,
        };
        assert_eq!(check(&history, &options).verdict, Verdict::Linearizable);
        // But once seen, it cannot be undone.
        let undone = format!(
            "{text}{}\n",
            r#"{"client":1,"call":300,"return":301,"outcome":"ok","op":"read","value":null}"#
        );
        let history = parse(Path::new("mem"), &undone, Format::Auto).expect("parses");
        assert_eq!(check(&history, &options).verdict, Verdict::NotLinearizable);
    }

    #[test]
    fn bad_ndjson_names_file_and_line() {
        let text = "{\"client\":0,\"call\":0,\"return\":1,\"outcome\":\"ok\",\"op\":\"read\"}\n\
                    {\"client\":0,\"call\":5,\"return\":1,\"outcome\":\"ok\",\"op\":\"read\"}\n";
        match parse(Path::new("h.ndjson"), text, Format::Auto) {
            Err(LincheckError::Parse { line, message, .. }) => {
                assert_eq!(line, 2);
                assert!(message.contains("before call"), "{message}");
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }
}
