//! Regenerates the checked-in traces:
//! - `counterexamples/<mutant>.ndjson`: the counterexample `sixfold check --mutant` finds;
//! - `runs/crash-restart.ndjson`: a recorded run of a real cluster (in-process members over
//!   loopback TCP, real files) in which segment 2 stops and restarts from its log mid-run.
//!
//! `cargo run --release -p sixfold-traces --example regen`; then review the snapshot diffs with
//! `cargo insta review` (or `INSTA_UPDATE=always cargo test -p sixfold-traces`).
//!
//! The failover runs (`runs/failover-*.ndjson`: a kill -9 failover, a partitioned zombie, segment
//! restarts after a failover) need real processes (`sixfold cluster --trace`); the
//! `record_failover` example records them.

use sixfold_impl::client::Client;
use sixfold_impl::host::{self, NodeSpec, ACTORS};
use sixfold_impl::layout::Layout;
use sixfold_model::protocol::config::Config;
use std::path::Path;
use std::time::Duration;

fn main() {
    let root = sixfold_traces::root();
    for m in sixfold_traces::replayed_mutants() {
        let lines = sixfold_traces::counterexample(m).expect("every mutant has a counterexample");
        let file = root
            .join("counterexamples")
            .join(format!("{}.ndjson", m.name()));
        sixfold_traces::write_lines(&file, &lines).expect("write counterexample");
        println!("{}: {} lines", file.display(), lines.len());
    }
    let out = root.join("runs").join("crash-restart.ndjson");
    record_run(&out);
    println!("{}", out.display());
}

fn spec(layout: &Layout, dir: &Path, id: usize) -> NodeSpec {
    NodeSpec {
        id,
        cfg: layout.config,
        peers: layout.peers.clone(),
        client_addr: Some(layout.client),
        dir: dir.join(format!("node-{id}")),
        trace: Some(dir.join("trace").join(format!("node-{id}.ndjson"))),
        delay: Duration::ZERO,
    }
}

fn record_run(out: &Path) {
    let dir = std::env::temp_dir().join(format!("sixfold-regen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let layout = Layout::local(Config::default(), 0).expect("free ports");
    let mut nodes: Vec<_> = (0..ACTORS)
        .map(|id| Some(host::spawn(spec(&layout, &dir, id)).expect("start member")))
        .collect();
    let mut c = Client::connect(layout.client, Duration::from_secs(5)).expect("connect");
    // Let every segment answer the open query and settle, so the run is easy to read.
    std::thread::sleep(Duration::from_millis(300));
    for v in 1..=3 {
        c.write(0, 10 * v).expect("write");
    }
    std::thread::sleep(Duration::from_millis(100));
    nodes[2].take().expect("running").stop().expect("stop seg2");
    for v in 4..=5 {
        c.write(0, 10 * v).expect("write with seg2 down");
    }
    nodes[2] = Some(host::spawn(spec(&layout, &dir, 2)).expect("restart seg2"));
    c.write(0, 60).expect("write after restart");
    let v = c.read(0).expect("read");
    assert_eq!(v.value, 60);
    std::thread::sleep(Duration::from_millis(300));
    for n in nodes.into_iter().flatten() {
        n.stop().expect("stop");
    }
    sixfold_impl::trace_merge::merge_dir(&dir.join("trace"), out).expect("merge");
    let _ = std::fs::remove_dir_all(&dir);
}
