//! Runtime benchmark: commit throughput and p50/p99 commit latency on loopback with fsync on,
//! in three setups, plus bytes sent per committed write (redo only) against shipping 8 KiB pages.
//!
//! `cargo bench -p sixfold-checks --bench runtime` (options: `-- --ops N --clients C`).
//! - healthy: six segments, write quorum 4/6;
//! - slow: segments 4 and 5 (AZ c) hold every message 50 ms; 4/6 does not wait for them;
//! - slow, wait-all: the same, but the writer needs all six acks (write quorum 6/6).
//!
//! Members run in this process (one thread set each) over real TCP sockets and real files.

use sixfold_checks::cluster::{run_load, LoadArgs};
use sixfold_impl::host::{self, NodeHandle, NodeSpec, ACTORS, WRITER_ID};
use sixfold_impl::layout::Layout;
use sixfold_model::protocol::config::{Config, SEGMENTS};
use std::sync::atomic::Ordering;
use std::time::Duration;

const PAGE: f64 = 8192.0;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn setup(name: &str, cfg: Config, slow: &[usize], ops: u64, clients: u64) {
    let slug: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let dir = std::env::temp_dir().join(format!("sixfold-bench-{}-{slug}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let layout = Layout::local(cfg, 0).expect("free ports");
    let nodes: Vec<NodeHandle> = (0..ACTORS)
        .map(|id| {
            host::spawn(NodeSpec {
                id,
                cfg,
                peers: layout.peers.clone(),
                client_addr: Some(layout.client),
                dir: dir.join(format!("node-{id}")),
                trace: None,
                delay: if slow.contains(&id) {
                    Duration::from_millis(50)
                } else {
                    Duration::ZERO
                },
            })
            .expect("start member")
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let args = LoadArgs {
        ops,
        clients,
        keys: 64,
        acked: None,
    };
    let before = nodes[WRITER_ID].stats.peer_bytes.load(Ordering::Relaxed);
    let r = run_load(layout.client, Duration::from_secs(30), &args).expect("load");
    let redo = nodes[WRITER_ID].stats.peer_bytes.load(Ordering::Relaxed) - before;
    let per_write = redo as f64 / r.ok.max(1) as f64;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "| {name:<22} | {:>8.0} | {:>7.2} | {:>7.2} | {:>5} | {:>8.0} | {:>9.0} |",
        r.throughput(),
        ms(r.percentile(0.5)),
        ms(r.percentile(0.99)),
        r.unknown,
        per_write,
        SEGMENTS as f64 * PAGE,
    );
    for n in nodes {
        let _ = n.stop();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let ops = arg("--ops", 3000);
    let clients = arg("--clients", 8);
    println!("{ops} writes, {clients} clients, 64 keys, fsync on, loopback\n");
    println!("| setup                  | writes/s | p50 ms  | p99 ms  | unkn. | redo B/w | 8K pages B/w |");
    println!(
        "|------------------------|----------|---------|---------|-------|----------|-----------|"
    );
    let wait_all = Config {
        write_quorum: SEGMENTS,
        ..Config::default()
    };
    setup("healthy (4/6)", Config::default(), &[], ops, clients);
    setup(
        "2 slow +50ms (4/6)",
        Config::default(),
        &[4, 5],
        ops,
        clients,
    );
    setup(
        "2 slow +50ms, wait-all",
        wait_all,
        &[4, 5],
        ops / 4,
        clients,
    );
}
