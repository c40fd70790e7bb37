//! A whole cluster hosted in one test process over real loopback sockets and real files:
//! writes commit, reads see them, a restarted segment recovers its log, and garbage on a port
//! does not disturb anyone else.

use sixfold_impl::client::Client;
use sixfold_impl::host::{self, NodeHandle, NodeSpec, ACTORS};
use sixfold_impl::layout::Layout;
use sixfold_impl::wire::{self, Frame};
use sixfold_model::protocol::config::Config;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sixfold-inproc-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
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

fn start(layout: &Layout, dir: &Path) -> Vec<Option<NodeHandle>> {
    (0..ACTORS)
        .map(|id| Some(host::spawn(spec(layout, dir, id)).expect("node starts")))
        .collect()
}

#[test]
fn writes_commit_and_a_restarted_segment_recovers() {
    let dir = scratch("basic");
    let layout = Layout::local(Config::default(), 0).unwrap();
    let mut nodes = start(&layout, &dir);
    let mut c = Client::connect(layout.client, Duration::from_secs(5)).unwrap();
    let mut last = 0;
    for v in 1..=20 {
        last = c.write(3, v).expect("write commits");
    }
    assert_eq!(last, 20);
    assert_eq!(c.read(3).unwrap().value, 20);
    // Stop segment 1 and restart it on the same files: it recovers all twenty records.
    nodes[1].take().unwrap().stop().unwrap();
    for v in 21..=25 {
        c.write(3, v).expect("writes go on with one segment down");
    }
    nodes[1] = Some(host::spawn(spec(&layout, &dir, 1)).unwrap());
    for v in 26..=30 {
        c.write(4, v).unwrap();
    }
    let text = std::fs::read_to_string(dir.join("trace/node-1.ndjson")).unwrap();
    assert!(text.contains("\"kind\":\"crash\""), "restart is recorded");
    // The restarted segment catches up: its log file ends up holding all thirty records.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, rec) =
            sixfold_impl::storage::SegmentStore::open(&dir.join("node-1/segment.log")).unwrap();
        let n = rec.log.map_or(0, |l| l.scl());
        if n == 30 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "segment 1 stuck at SCL {n}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for n in nodes.into_iter().flatten() {
        n.stop().unwrap();
    }
}

#[test]
fn garbage_on_a_port_closes_that_connection_only() {
    let dir = scratch("garbage");
    let layout = Layout::local(Config::default(), 0).unwrap();
    let nodes = start(&layout, &dir);
    let mut c = Client::connect(layout.client, Duration::from_secs(5)).unwrap();
    c.write(1, 1).unwrap();
    for addr in [layout.client, layout.peers[2]] {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // A one-byte body after a checksum it does not have.
        s.write_all(&[1, 0, 0, 0, b'{', b'x', 0xff, 1, 2]).unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        let reply = wire::read_frame(&mut &buf[..]);
        assert!(
            matches!(&reply, Ok(Frame::Error { reason }) if reason.contains("checksum")),
            "got {reply:?}"
        );
    }
    assert_eq!(c.write(1, 2).unwrap(), 2);
    assert_eq!(c.read(1).unwrap().value, 2);
    for n in nodes.into_iter().flatten() {
        n.stop().unwrap();
    }
}
