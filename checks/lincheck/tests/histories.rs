//! Correctness gate: the checker's verdicts on the public Jepsen histories (porcupine's test
//! data in `../shared/histories/porcupine`) must match the expected ones from its README.

/// Named `lincheck` so `cargo test lincheck` selects these tests.
mod lincheck {
    use sixfold_lincheck::{
        check, load_checked, CheckOptions, Format, PartitionOutcome, Spec, Verdict,
    };
    use std::path::{Path, PathBuf};

    fn histories() -> PathBuf {
        let dir =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/histories/porcupine");
        assert!(
            dir.join("README.md").is_file(),
            "the public histories are missing: expected {} (clone the shared data beside the repo)",
            dir.display()
        );
        dir
    }

    fn verdict(path: &Path, spec: Spec) -> Verdict {
        let history = load_checked(path, Format::Auto, spec)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
        let options = CheckOptions {
            spec,
            time_limit: None,
        };
        check(&history, &options).verdict
    }

    /// The expected etcd verdicts, from the README's table.
    fn expected_etcd() -> Vec<(u32, bool)> {
        let readme =
            std::fs::read_to_string(histories().join("README.md")).expect("README readable");
        readme
            .lines()
            .filter_map(|l| {
                let (n, v) = l.trim().split_once(' ')?;
                Some((n.parse().ok()?, v.parse().ok()?))
            })
            .collect()
    }

    #[test]
    fn all_etcd_histories_get_the_expected_verdict() {
        let expected = expected_etcd();
        assert_eq!(expected.len(), 102, "the README lists 102 etcd verdicts");
        assert_eq!(expected.iter().filter(|(_, ok)| *ok).count(), 23);
        let mut wrong = Vec::new();
        for (n, linearizable) in expected {
            let path = histories().join(format!("jepsen/etcd_{n:03}.log"));
            let want = if linearizable {
                Verdict::Linearizable
            } else {
                Verdict::NotLinearizable
            };
            let got = verdict(&path, Spec::CasRegister);
            if got != want {
                wrong.push(format!("etcd_{n:03}: expected {want:?}, got {got:?}"));
            }
        }
        assert!(wrong.is_empty(), "wrong verdicts:\n{}", wrong.join("\n"));
    }

    #[test]
    fn empty_etcd_history_is_linearizable() {
        let path = histories().join("jepsen/etcd_095.log");
        assert_eq!(verdict(&path, Spec::CasRegister), Verdict::Linearizable);
    }

    #[test]
    fn all_kv_histories_get_the_expected_verdict() {
        for clients in ["01", "10", "50"] {
            for (suffix, want) in [
                ("ok", Verdict::Linearizable),
                ("bad", Verdict::NotLinearizable),
            ] {
                let path = histories().join(format!("kv/c{clients}-{suffix}.txt"));
                assert_eq!(verdict(&path, Spec::Kv), want, "{}", path.display());
            }
        }
    }

    #[test]
    fn kv_is_checked_per_key_and_violations_carry_evidence() {
        let path = histories().join("kv/c10-bad.txt");
        let history = load_checked(&path, Format::Auto, Spec::Kv).expect("parses");
        let report = check(
            &history,
            &CheckOptions {
                spec: Spec::Kv,
                time_limit: None,
            },
        );
        assert_eq!(report.partitions.len(), 10);
        let (part, v) = report.violation().expect("a violation");
        assert!(part.partition.key.is_some());
        // The blocked operation is in the violating partition and not in the prefix.
        assert!(part.partition.ops.contains(&v.blocked));
        assert!(!v.prefix.contains(&v.blocked));
        assert!(v.candidates.iter().any(|&(i, _)| i == v.blocked));
        // Every linearizable partition's order covers all its known-outcome operations.
        for p in &report.partitions {
            if let PartitionOutcome::Linearizable(order) = &p.outcome {
                let known = p
                    .partition
                    .ops
                    .iter()
                    .filter(|&&i| history.ops[i].ret.is_some());
                assert!(known.count() <= order.len());
            }
        }
    }
}
