//! The runtime as real `sixfold node` processes on 127.0.0.1 with real files: an AZ lost while
//! writing, SIGKILL in the middle of a load, a corrupted log byte, and garbage on the ports.

use sixfold_impl::client::Client;
use sixfold_impl::host::{ACTORS, WRITER_ID};
use sixfold_impl::layout::Layout;
use sixfold_impl::storage::{self, SegmentStore};
use sixfold_impl::wire::{self, Frame};
use sixfold_model::protocol::config::Config;
use sixfold_model::protocol::msg::Msg;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct TestCluster {
    layout: Layout,
    dir: PathBuf,
    nodes: Vec<Option<Child>>,
}

impl TestCluster {
    fn start(name: &str) -> TestCluster {
        let dir = std::env::temp_dir().join(format!("sixfold-rt-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let layout = Layout::local(Config::default(), 0).unwrap();
        let mut c = TestCluster {
            layout,
            dir,
            nodes: (0..ACTORS).map(|_| None).collect(),
        };
        for id in 0..ACTORS {
            c.spawn(id);
        }
        c
    }

    fn stderr_path(&self, id: usize) -> PathBuf {
        self.dir.join(format!("node-{id}.stderr"))
    }

    fn spawn(&mut self, id: usize) {
        let role = if id == WRITER_ID { "writer" } else { "storage" };
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.stderr_path(id))
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sixfold"));
        cmd.args(["node", "--role", role, "--id", &id.to_string(), "--dir"])
            .arg(self.dir.join(format!("node-{id}")))
            .args(["--peers", &self.layout.peers_arg()])
            .args(["--client-addr", &self.layout.client.to_string()])
            .stdout(Stdio::null())
            .stderr(err);
        self.nodes[id] = Some(cmd.spawn().expect("spawn sixfold node"));
    }

    fn kill9(&mut self, id: usize) {
        let mut c = self.nodes[id].take().expect("node running");
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
    }

    fn client(&self) -> Client {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Client::connect(self.layout.client, Duration::from_secs(5)) {
                Ok(c) => return c,
                Err(e) if Instant::now() > deadline => panic!("writer unreachable: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    fn log_file(&self, id: usize) -> PathBuf {
        self.dir.join(format!("node-{id}/segment.log"))
    }

    /// The SCL of a segment's log file as it is now on disk (read from a copy, so the live
    /// process's file is never touched).
    fn disk_scl(&self, id: usize) -> u64 {
        let copy = self.dir.join(format!("copy-{id}.log"));
        let _ = std::fs::remove_file(&copy);
        if std::fs::copy(self.log_file(id), &copy).is_err() {
            return 0;
        }
        let (_, rec) = SegmentStore::open(&copy).unwrap();
        rec.log.map_or(0, |l| l.scl())
    }

    fn wait_disk_scl(&self, id: usize, want: u64) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let scl = self.disk_scl(id);
            if scl >= want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "segment {id} stuck at SCL {scl} < {want}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for c in self.nodes.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn writes_keep_committing_while_both_nodes_of_one_az_are_killed() {
    let mut cl = TestCluster::start("az");
    let mut c = cl.client();
    let mut acked = Vec::new();
    for v in 1..=10u64 {
        acked.push((
            v as u32 % 4,
            v,
            c.write(v as u32 % 4, v).expect("healthy write"),
        ));
    }
    cl.kill9(2);
    cl.kill9(3); // AZ b is gone
    for v in 11..=40u64 {
        let lsn = c.write(v as u32 % 4, v).expect("write with one AZ down");
        acked.push((v as u32 % 4, v, lsn));
    }
    cl.spawn(2);
    cl.spawn(3);
    for v in 41..=45u64 {
        acked.push((v as u32 % 4, v, c.write(v as u32 % 4, v).unwrap()));
    }
    let last = acked.last().unwrap().2;
    cl.wait_disk_scl(2, last);
    cl.wait_disk_scl(3, last);
    // Every acknowledged write is read back: the newest value of each key.
    for key in 0..4u32 {
        let want = acked
            .iter()
            .filter(|a| a.0 == key)
            .max_by_key(|a| a.2)
            .unwrap();
        let got = c.read(key).unwrap();
        assert_eq!((got.value, got.lsn), (want.1, want.2), "key {key}");
    }
}

#[test]
fn a_segment_sigkilled_mid_load_restarts_from_its_files_and_catches_up() {
    let mut cl = TestCluster::start("sigkill");
    let mut c = cl.client();
    let load = std::thread::spawn(move || {
        let mut lsns = Vec::new();
        let t = Instant::now();
        let mut v = 0u64;
        while t.elapsed() < Duration::from_millis(1500) {
            v += 1;
            lsns.push(c.write(7, v).expect("write during the crash"));
        }
        (v, lsns)
    });
    std::thread::sleep(Duration::from_millis(400));
    let before = cl.disk_scl(4);
    cl.kill9(4);
    std::thread::sleep(Duration::from_millis(300));
    cl.spawn(4);
    let (v, lsns) = load.join().unwrap();
    assert!(before > 0, "segment 4 had written records before the kill");
    let last = *lsns.last().unwrap();
    assert!(
        last > before + 5,
        "the load went on while segment 4 was down"
    );
    cl.wait_disk_scl(4, last);
    let err = std::fs::read_to_string(cl.stderr_path(4)).unwrap();
    assert!(
        err.contains("recovered"),
        "restart read its files back: {err}"
    );
    assert_eq!(cl.client().read(7).unwrap().value, v);
}

/// Where the frame (one save) that added the record with this LSN ends in a segment log.
fn end_of_save_of(log: &[u8], lsn: u64) -> Option<usize> {
    storage::decode_frames(log)
        .0
        .into_iter()
        .find_map(|(e, end)| match e {
            storage::Entry::Delta(d) if d.records.iter().any(|r| r.lsn == lsn) => Some(end),
            _ => None,
        })
}

#[test]
fn a_corrupted_log_byte_is_caught_and_the_bad_record_is_never_served() {
    let mut cl = TestCluster::start("corrupt");
    let mut c = cl.client();
    for k in 1..=20u32 {
        c.write(k, 1000 + k as u64).unwrap();
    }
    cl.wait_disk_scl(0, 20);
    cl.kill9(0);
    // Corrupt the last byte of the frame (one save) that holds record 10: only the crc can tell.
    let path = cl.log_file(0);
    let mut bytes = std::fs::read(&path).unwrap();
    let end = end_of_save_of(&bytes, 10).expect("record 10 on disk");
    bytes[end - 1] ^= 0x08;
    std::fs::write(&path, &bytes).unwrap();
    let size = bytes.len();
    cl.spawn(0);
    // The node truncates the log at the bad frame and logs what it dropped.
    let deadline = Instant::now() + Duration::from_secs(10);
    let err = loop {
        let err = std::fs::read_to_string(cl.stderr_path(0)).unwrap();
        if err.contains("checksum mismatch") || Instant::now() > deadline {
            break err;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(err.contains("checksum mismatch"), "{err}");
    assert!((std::fs::metadata(&path).unwrap().len() as usize) < size);
    // Segment 0 is first in read routing; the writer still believes its SCL is 20, so reads
    // go to it first. It must refuse rather than serve, and no read returns the bad value.
    for k in 1..=20u32 {
        let got = c.read(k).unwrap();
        assert_eq!(got.value, 1000 + k as u64, "key {k}");
    }
    assert_ne!(c.read(10).unwrap().value, 1090);
    for k in 21..=25u32 {
        c.write(k, 1000 + k as u64).expect("writes go on");
    }
    assert!(
        cl.disk_scl(0) < 10,
        "segment 0 keeps only the prefix before the corrupt frame"
    );
}

/// Sends `junk` and expects either an error frame back and the connection closed, or the
/// connection closed right away.
fn garbage_gets_an_error_or_eof(addr: std::net::SocketAddr, junk: &[u8]) {
    // The client's first write needs only a quorum, so this node may still be starting.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut s = loop {
        match TcpStream::connect(addr) {
            Ok(s) => break s,
            Err(e) if Instant::now() > deadline => panic!("{addr} unreachable: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(junk).unwrap();
    let mut buf = Vec::new();
    let r = s.read_to_end(&mut buf);
    assert!(
        r.is_ok(),
        "{addr}: expected the connection closed, got {r:?}"
    );
    if buf.is_empty() {
        return;
    }
    let mut rest = &buf[..];
    let reply = wire::read_frame(&mut rest);
    assert!(
        matches!(reply, Ok(Frame::Error { .. })) && rest.is_empty(),
        "{addr}: expected one error frame, got {reply:?} then {} bytes",
        rest.len()
    );
}

#[test]
fn a_garbage_frame_gets_an_error_and_the_node_keeps_serving() {
    let cl = TestCluster::start("garbage");
    let mut c = cl.client();
    c.write(1, 1).unwrap();
    let bad_crc = {
        let mut v = wire::encode(&Frame::Request {
            msg: Msg::Read { req: 1, key: 1 },
        });
        *v.last_mut().unwrap() ^= 1;
        v
    };
    let undecodable = wire::frame_raw(&[wire::WIRE_VERSION, 0xff, 0xfe, b'{', b'{']);
    let wrong_version = wire::frame_raw(&[wire::WIRE_VERSION + 1, 0, 0]);
    let huge = u32::MAX.to_le_bytes();
    let old_json = {
        let f = br#"{"t":"reply","msg":"OpenQuery"}"#;
        let mut v = (f.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(f);
        v
    };
    let wrong_kind = wire::encode(&Frame::Reply {
        msg: Msg::OpenQuery { epoch: 1 },
    });
    for addr in [
        cl.layout.peers[3],
        cl.layout.peers[WRITER_ID],
        cl.layout.client,
    ] {
        for junk in [
            &bad_crc[..],
            &undecodable,
            &wrong_version,
            &huge,
            &old_json,
            &wrong_kind,
        ] {
            garbage_gets_an_error_or_eof(addr, junk);
        }
    }
    // Everyone else is still served: the same client connection and a new one.
    assert_eq!(c.write(1, 2).unwrap(), 2);
    assert_eq!(cl.client().read(1).unwrap().value, 2);
}
