//! Speed benchmark of the linearizability checker on the public Jepsen histories, on a
//! generated 10,000-operation kv history, and on generated cas-register histories of the
//! unique-value class (issue 16). Prints a markdown table of per-run times (median and best of
//! several runs). Run with `cargo bench -p sixfold-lincheck --bench lincheck`.

use sixfold_lincheck::generate::{self, Params};
use sixfold_lincheck::history::{Action, Format, History, Operation, Value};
use sixfold_lincheck::readfrom::applies;
use sixfold_lincheck::{check, check_using, load_checked, CheckOptions, Method, Spec, Verdict};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const RUNS: usize = 15;

fn histories() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/histories/porcupine");
    assert!(dir.is_dir(), "missing {}", dir.display());
    dir
}

fn load(rel: &str, spec: Spec) -> History {
    let path = histories().join(rel);
    load_checked(&path, Format::Auto, spec).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `f` RUNS times (after one warm-up): (median, best).
fn time(mut f: impl FnMut()) -> (Duration, Duration) {
    f();
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    (times[RUNS / 2], times[0])
}

fn verdict(history: &History, spec: Spec) -> Verdict {
    let options = CheckOptions {
        spec,
        time_limit: None,
    };
    check(history, &options).verdict
}

/// Checks with the search alone, whatever the class.
fn search(history: &History, spec: Spec) {
    let options = CheckOptions {
        spec,
        time_limit: None,
    };
    check_using(history, &options, Method::Search);
}

/// A cas-register history of the unique-value class: `ops` operations over `clients` clients,
/// one in a hundred with its outcome lost, and `stale` stale reads.
fn unique(ops: usize, clients: u64, stale: usize, seed: u64) -> History {
    let mut p = Params::new(Spec::CasRegister, ops, clients);
    p.unknown = ops / 100;
    p.stale_reads = stale;
    p.seed = seed;
    generate::history(&p)
}

/// `count` such histories, every other one with one stale read, each with its verdict.
fn unique_set(count: u64, ops: usize, clients: u64) -> Vec<(History, Verdict)> {
    (1..=count)
        .map(|seed| {
            let stale = (seed % 2 == 0) as usize;
            let want = [Verdict::Linearizable, Verdict::NotLinearizable][stale];
            (unique(ops, clients, stale, seed), want)
        })
        .collect()
}

/// A kv history of `n` operations on `keys` keys from `clients` clients: a random sequential
/// execution (operation k takes effect at time 10k) with each operation's interval stretched
/// randomly around that point, so about `clients` operations overlap at any time. Each client's
/// operations are sequential. Linearizable by construction.
fn generated(n: usize, keys: u64, clients: u64) -> History {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move |bound: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % bound
    };
    let mut values = vec![String::new(); keys as usize];
    let span = 10 * clients / 2 - 1;
    let ops = (0..n)
        .map(|k| {
            let key = rand(keys);
            let current = &mut values[key as usize];
            let action = match rand(3) {
                0 => Action::Read {
                    value: Some(Value::Str(current.clone())),
                },
                1 => {
                    *current = format!("p{k};");
                    Action::Write {
                        value: Value::Str(current.clone()),
                    }
                }
                _ => {
                    let v = format!("a{k};");
                    current.push_str(&v);
                    Action::Append {
                        value: Value::Str(v),
                    }
                }
            };
            let point = 10 * k as u64 + 1000;
            Operation {
                client: k as u64 % clients,
                call: point - rand(span),
                ret: Some(point + rand(span)),
                key: Some(key.to_string()),
                action,
                line: k + 1,
            }
        })
        .collect();
    History { ops }
}

fn row(name: &str, reference: &str, (median, best): (Duration, Duration)) {
    println!(
        "| {name} | {:.4} s | {:.4} s | {reference} |",
        median.as_secs_f64(),
        best.as_secs_f64()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; accept and ignore arguments.
    let inputs = Inputs::load();
    inputs.assert_verdicts();
    inputs.print_table();
}

/// The etcd histories the porcupine README lists, each with the verdict it records.
fn etcd_with_verdicts() -> Vec<(History, Verdict)> {
    let readme = std::fs::read_to_string(histories().join("README.md")).expect("README");
    let etcd: Vec<(History, Verdict)> = readme
        .lines()
        .filter_map(|l| {
            let (n, v) = l.trim().split_once(' ')?;
            let (n, ok): (u32, bool) = (n.parse().ok()?, v.parse().ok()?);
            let history = load(&format!("jepsen/etcd_{n:03}.log"), Spec::CasRegister);
            let want = if ok {
                Verdict::Linearizable
            } else {
                Verdict::NotLinearizable
            };
            Some((history, want))
        })
        .collect();
    assert_eq!(etcd.len(), 102);
    etcd
}

/// The histories timed, parsed once up front so that the check-only rows exclude parsing.
struct Inputs {
    etcd: Vec<(History, Verdict)>,
    etcd_002: History,
    c50_ok: History,
    c50_bad: History,
    big: History,
    u1k_ok: History,
    u1k_bad: History,
    u1k_set: Vec<(History, Verdict)>,
    u500_set: Vec<(History, Verdict)>,
    u100k_ok: History,
    u100k_bad: History,
}

impl Inputs {
    fn load() -> Self {
        Inputs {
            etcd: etcd_with_verdicts(),
            etcd_002: load("jepsen/etcd_002.log", Spec::CasRegister),
            c50_ok: load("kv/c50-ok.txt", Spec::Kv),
            c50_bad: load("kv/c50-bad.txt", Spec::Kv),
            big: generated(10_000, 10, 10),
            u1k_ok: unique(1000, 16, 0, 1),
            u1k_bad: unique(1000, 16, 1, 1),
            u1k_set: unique_set(12, 1000, 16),
            u500_set: unique_set(8, 500, 10),
            u100k_ok: unique(100_000, 16, 0, 1),
            u100k_bad: unique(100_000, 16, 1, 1),
        }
    }

    /// Verdicts first: a fast wrong answer is worthless.
    fn assert_verdicts(&self) {
        for (h, want) in &self.etcd {
            assert_eq!(verdict(h, Spec::CasRegister), *want);
        }
        assert_eq!(verdict(&self.c50_ok, Spec::Kv), Verdict::Linearizable);
        assert_eq!(verdict(&self.c50_bad, Spec::Kv), Verdict::NotLinearizable);
        assert_eq!(verdict(&self.big, Spec::Kv), Verdict::Linearizable);
        let set = self.u1k_set.iter().chain(&self.u500_set);
        let pairs = [
            (&self.u1k_ok, Verdict::Linearizable),
            (&self.u1k_bad, Verdict::NotLinearizable),
            (&self.u100k_ok, Verdict::Linearizable),
            (&self.u100k_bad, Verdict::NotLinearizable),
        ];
        for (h, want) in set.map(|(h, v)| (h, *v)).chain(pairs) {
            assert!(applies(Spec::CasRegister, h), "in the unique-value class");
            assert_eq!(verdict(h, Spec::CasRegister), want);
        }
    }

    /// Times each row and prints the markdown table, porcupine's times beside ours.
    fn print_table(&self) {
        println!(
            "lincheck on {} thread(s), {RUNS} runs each (check only, parsing excluded)",
            rayon::current_num_threads()
        );
        println!();
        println!("| history | median | best | porcupine (Go) |");
        println!("|---|---|---|---|");
        row(
            "all 102 etcd histories, in total",
            "about 1.1 s",
            time(|| {
                for (h, _) in &self.etcd {
                    verdict(h, Spec::CasRegister);
                }
            }),
        );
        row(
            "etcd_002",
            "about 0.41 s",
            time(|| {
                verdict(&self.etcd_002, Spec::CasRegister);
            }),
        );
        row(
            "kv c50-ok",
            "about 0.28 s",
            time(|| {
                verdict(&self.c50_ok, Spec::Kv);
            }),
        );
        row(
            "kv c50-bad",
            "about 0.04 s",
            time(|| {
                verdict(&self.c50_bad, Spec::Kv);
            }),
        );
        row(
            "generated: 10,000 ops, 10 keys, 10 clients",
            "-",
            time(|| {
                verdict(&self.big, Spec::Kv);
            }),
        );
        self.print_search_rows();
        self.print_unique_rows();
        row(
            "parse + check, all 102 etcd files",
            "-",
            time(|| {
                for n in (0..=102).filter(|&n| n != 95) {
                    let h = load(&format!("jepsen/etcd_{n:03}.log"), Spec::CasRegister);
                    verdict(&h, Spec::CasRegister);
                }
            }),
        );
    }

    /// The rows of the unique-value class (issue 16); porcupine was not run on these.
    fn print_unique_rows(&self) {
        let cas = |h: &History| {
            verdict(h, Spec::CasRegister);
        };
        let set = |s: &[(History, Verdict)]| {
            for (h, _) in s {
                verdict(h, Spec::CasRegister);
            }
        };
        row(
            "unique values: 1,000 ops, 16 clients, 10 unknown, linearizable",
            "-",
            time(|| cas(&self.u1k_ok)),
        );
        row(
            "the same history with one stale read",
            "-",
            time(|| cas(&self.u1k_bad)),
        );
        row(
            "unique values: 12 histories of 1,000 ops, 16 clients (6 with a stale read), in total",
            "-",
            time(|| set(&self.u1k_set)),
        );
        row(
            "unique values: 8 histories of 500 ops, 10 clients (4 with a stale read), in total",
            "-",
            time(|| set(&self.u500_set)),
        );
        row(
            "unique values: 100,000 ops, 16 clients, 1,000 unknown, linearizable",
            "-",
            time(|| cas(&self.u100k_ok)),
        );
        row(
            "the same history with one stale read",
            "-",
            time(|| cas(&self.u100k_bad)),
        );
        row(
            "unique values, 1,000 ops, 16 clients, linearizable: the search alone",
            "-",
            time(|| search(&self.u1k_ok, Spec::CasRegister)),
        );
    }

    /// The public histories with the search alone (no class check, no dispatch), beside the
    /// rows above, to show what the dispatch costs them.
    fn print_search_rows(&self) {
        row(
            "all 102 etcd histories, the search alone",
            "about 1.1 s",
            time(|| {
                for (h, _) in &self.etcd {
                    search(h, Spec::CasRegister);
                }
            }),
        );
        row(
            "kv c50-ok, the search alone",
            "about 0.28 s",
            time(|| search(&self.c50_ok, Spec::Kv)),
        );
    }
}
