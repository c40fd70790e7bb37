//! The `sixfold lincheck` command line: exit statuses, verdict output and error messages. The
//! checker's own tests (formats, verdicts, properties) are in `checks/lincheck/tests`.

/// Named `lincheck` so `cargo test lincheck` selects these tests.
mod lincheck {
    use std::path::PathBuf;
    use std::process::Command;

    fn scratch(name: &str, contents: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sixfold-lincheck-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(name);
        std::fs::write(&path, contents).expect("write scratch file");
        path
    }

    fn shared(rel: &str) -> PathBuf {
        let dir =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/histories/porcupine");
        assert!(
            dir.is_dir(),
            "the public histories are missing: expected {}",
            dir.display()
        );
        dir.join(rel)
    }

    /// Runs `sixfold lincheck ARGS`: (exit status, stdout, stderr).
    fn sixfold(args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_sixfold"))
            .arg("lincheck")
            .args(args)
            .output()
            .expect("run sixfold");
        (
            out.status.code().expect("exit status"),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// write 1, then a read of 1 that overlaps a write of 2, then a stale read of 1 (the
    /// lincheck crate's tests check that its history writer produces exactly this file).
    fn stale_read_history() -> String {
        include_str!("../lincheck/tests/data/stale-read.ndjson").to_string()
    }

    #[test]
    fn lincheck_exit_status_is_0_for_linearizable() {
        let path = scratch(
            "ok.ndjson",
            &stale_read_history()
                .lines()
                .take(3)
                .collect::<Vec<_>>()
                .join("\n"),
        );
        let (code, out, _) = sixfold(&[path.to_str().expect("utf8"), "--model", "register"]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("verdict: LINEARIZABLE"), "{out}");
    }

    #[test]
    fn lincheck_exit_status_is_1_with_prefix_and_unplaceable_ops() {
        let path = scratch("bad.ndjson", &stale_read_history());
        let (code, out, _) = sixfold(&[path.to_str().expect("utf8"), "--model", "register"]);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("verdict: NOT LINEARIZABLE"), "{out}");
        // Every written value is unique, so the read-from procedure decides it; its prefix is
        // where its one pass stopped (the search's own would be longer).
        assert!(out.contains("longest linearizable prefix found: "), "{out}");
        assert!(
            out.contains("cannot be placed: client 2: read -> 1 (line 4"),
            "{out}"
        );
    }

    #[test]
    fn lincheck_html_is_self_contained_and_marks_the_failure() {
        let out = scratch("bad.html", "");
        let path = scratch("bad2.ndjson", &stale_read_history());
        let args = [
            path.to_str().expect("utf8"),
            "--model",
            "register",
            "--html",
            out.to_str().expect("utf8"),
        ];
        let (code, stdout, _) = sixfold(&args);
        assert_eq!(code, 1, "{stdout}");
        let page = std::fs::read_to_string(&out).expect("html written");
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("NOT LINEARIZABLE") && page.contains("fails here"));
        assert_eq!(page.matches("<rect").count(), 4, "one bar per operation");
        assert!(page.contains("client 2: read -&gt; 1"));
        for external in ["<script src", "<link", "@import", "url("] {
            assert!(!page.contains(external), "fetches {external}");
        }
    }

    #[test]
    fn lincheck_exit_status_is_3_when_the_time_limit_runs_out() {
        let path = shared("kv/c50-ok.txt");
        let args = [
            path.to_str().expect("utf8"),
            "--model",
            "kv",
            "--time-limit",
            "0",
        ];
        let (code, out, _) = sixfold(&args);
        assert_eq!(code, 3, "{out}");
        assert!(out.contains("verdict: UNKNOWN"), "{out}");
    }

    #[test]
    fn lincheck_exit_status_is_2_for_bad_input_naming_file_and_line() {
        let path = scratch(
            "broken.log",
            "INFO  jepsen.util - 1\t:invoke\t:read\tnil\nINFO  jepsen.util - x\t:ok\t:read\t3\n",
        );
        let (code, _, err) = sixfold(&[path.to_str().expect("utf8"), "--model", "cas-register"]);
        assert_eq!(code, 2);
        assert!(err.contains("broken.log:2:"), "{err}");
        assert!(err.contains("process \"x\" is not a number"), "{err}");

        // A cas history under the plain register model is rejected, not misjudged.
        let etcd = shared("jepsen/etcd_002.log");
        let (code, _, err) = sixfold(&[etcd.to_str().expect("utf8"), "--model", "register"]);
        assert_eq!(code, 2);
        assert!(
            err.contains("etcd_002.log:") && err.contains("cas-register"),
            "{err}"
        );

        let (code, _, err) = sixfold(&["/nonexistent/h.ndjson", "--model", "kv"]);
        assert_eq!(code, 2);
        assert!(err.contains("/nonexistent/h.ndjson"), "{err}");
    }

    #[test]
    fn lincheck_exit_status_is_2_for_usage_errors() {
        let (code, _, err) = sixfold(&["somefile"]);
        assert_eq!(code, 2);
        assert!(err.contains("--model"), "{err}");
    }
}
