//! Failover benchmark: from `kill -9` of the writer to the first write acknowledged by its
//! successor, over 20 failovers of one `sixfold cluster` (real processes, loopback, fsync on).
//!
//! `cargo bench -p sixfold-checks --bench failover` (option: `-- --runs N`).
//!
//! Each run: a write on the current writer succeeds (it is open and holds its lease), then the
//! writer process (its pid is in `DIR/writer.json`) is SIGKILLed and a client writes in a loop,
//! following the writer as the control plane promotes the next epoch; the time is taken when a
//! write is acknowledged by a writer of a newer epoch. It includes failure detection (missed
//! heartbeats), the wait for the old lease, starting the new process, recovery (quorum read,
//! truncation to a write quorum) and the client finding the new writer.

use sixfold_impl::client::{ClusterClient, Discovery};
use sixfold_impl::layout::WriterInfo;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let runs = arg("--runs", 20) as usize;
    let dir = std::env::temp_dir().join(format!("sixfold-bench-failover-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cluster = Command::new(env!("CARGO_BIN_EXE_sixfold"))
        .arg("cluster")
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sixfold cluster");
    let out = cluster.stdout.take().expect("stdout");
    let mut lines = BufReader::new(out).lines();
    for l in lines.by_ref() {
        if l.expect("cluster output").contains("cluster ready") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let mut c = ClusterClient::new(Discovery::Dir(dir.clone()), Duration::from_secs(3));
    let mut times = Vec::new();
    let mut value = 0u64;
    for run in 0..runs {
        let w = WriterInfo::load(&dir)
            .expect("writer.json")
            .expect("a writer");
        // The current writer serves, and has held its lease for a while.
        loop {
            value += 1;
            if c.write(0, value).is_ok_and(|a| a.epoch == w.epoch) {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
        let pid = w.pid.expect("the cluster started the writer") as i32;
        let killed = Instant::now();
        // SAFETY: SIGKILL to the writer process the cluster (our child) started.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
        loop {
            value += 1;
            if let Ok(a) = c.write(0, value) {
                if a.epoch > w.epoch {
                    break;
                }
            }
        }
        let t = killed.elapsed();
        eprintln!(
            "run {:>2}: epoch {} -> {}: {t:.2?}",
            run + 1,
            w.epoch,
            w.epoch + 1
        );
        times.push(t);
    }
    // SAFETY: SIGINT to the cluster process this benchmark started.
    unsafe {
        libc::kill(cluster.id() as libc::pid_t, libc::SIGINT);
    }
    let _ = cluster.wait();
    let _ = std::fs::remove_dir_all(&dir);
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "failover (kill -9 -> first acknowledged write on the new writer), {} runs: \
         p50 {:.0} ms, max {:.0} ms, min {:.0} ms",
        times.len(),
        ms(times[times.len() / 2]),
        ms(*times.last().expect("runs")),
        ms(times[0]),
    );
}
