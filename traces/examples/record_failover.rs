//! Records the failover runs of `runs/` with real processes: each is a `sixfold cluster --trace`
//! (six storage-node processes, the writers, the control plane), driven through its client port,
//! stopped with SIGINT, which merges the members' traces into one file:
//! - `runs/failover-kill.ndjson`: the writer is SIGKILLed after three writes; the control plane
//!   promotes epoch 2, which recovers the volume and takes two more writes;
//! - `runs/failover-zombie.ndjson`: the writer is cut off from the control plane
//!   (`--writer-faults partition=control@700`) and keeps writing: its write before the promotion
//!   is acknowledged, its write after it is refused by the segments (`Fenced`), after which it
//!   answers `NotWriter`, and it serves no read once its lease is gone;
//! - `runs/failover-restart.ndjson`: the same zombie, then, after epoch 2 has written, all six
//!   storage nodes are SIGKILLed and restarted from their disks: they come back in epoch 2 and
//!   fence the zombie's write; the epoch-2 write reads back.
//!
//! Each run must replay (`sixfold replay`, judged with the failover properties) before it is
//! written. Needs the `sixfold` binary next to this example's directory (`cargo build --release
//! -p sixfold-checks`), or its path in `SIXFOLD`:
//!
//! ```sh
//! cargo build --release -p sixfold-checks
//! cargo run --release -p sixfold-traces --example record_failover [kill|zombie|restart]...
//! ```
//!
//! Then review the snapshot diffs (`cargo insta review`, or `INSTA_UPDATE=always cargo test -p
//! sixfold-traces`). Runs are short (a handful of writes, a second or two of leases) so that
//! their timelines stay reviewable.

use sixfold_checks::replay::{self, ReplayVerdict};
use sixfold_impl::client::{Client, ClientError, ClusterClient, Discovery};
use sixfold_impl::layout::WriterInfo;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(5);

/// Records one run into the file it is given.
type Record = fn(&Path);

fn main() {
    let wanted: Vec<String> = std::env::args().skip(1).collect();
    let runs: [(&str, Record); 3] = [
        ("kill", kill_9_failover),
        ("zombie", partitioned_zombie),
        ("restart", segment_restarts_after_failover),
    ];
    for (name, record) in runs {
        if wanted.is_empty() || wanted.iter().any(|w| w == name) {
            let out = sixfold_traces::root()
                .join("runs")
                .join(format!("failover-{name}.ndjson"));
            record(&out);
        }
    }
}

/// The `sixfold` binary: `$SIXFOLD`, or the one built next to this example.
fn sixfold_exe() -> PathBuf {
    if let Some(p) = std::env::var_os("SIXFOLD") {
        return PathBuf::from(p);
    }
    let me = std::env::current_exe().expect("own path");
    let exe = me
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("sixfold"))
        .expect("target directory");
    assert!(
        exe.is_file(),
        "{} not found: cargo build --release -p sixfold-checks (or set SIXFOLD)",
        exe.display()
    );
    exe
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill {sig} {pid}");
}

fn wait_exit(c: &mut Child, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(s)) = c.try_wait() {
            return s.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// A `sixfold cluster --trace` being recorded, with the members restarted by hand.
struct Run {
    dir: PathBuf,
    cluster: Child,
    log: Receiver<String>,
    seen: Vec<String>,
    restarted: Vec<Child>,
}

impl Run {
    fn start(name: &str, extra: &[&str]) -> Run {
        let exe = sixfold_exe();
        let dir =
            std::env::temp_dir().join(format!("sixfold-record-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut cluster = Command::new(&exe)
            .arg("cluster")
            .arg("--dir")
            .arg(&dir)
            .arg("--trace")
            .arg(dir.join("run.ndjson"))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sixfold cluster");
        let out = cluster.stdout.take().expect("stdout");
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let mut run = Run {
            dir,
            cluster,
            log,
            seen: Vec::new(),
            restarted: Vec::new(),
        };
        run.wait("cluster ready");
        run
    }

    /// Waits (at most 15 s) for the cluster to print a line containing `what`, or finds it
    /// among the lines already printed; returns it.
    fn wait(&mut self, what: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(what)) {
            return l.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match self
                .log
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(what) {
                        return l;
                    }
                }
                Err(_) => panic!("the cluster never printed {what:?}: {:#?}", self.seen),
            }
        }
    }

    /// The pid printed at the end of the banner line starting with `prefix`.
    fn pid(&self, prefix: &str) -> u32 {
        let l = self
            .seen
            .iter()
            .find(|l| l.trim_start().starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line"));
        l.rsplit("pid ").next().unwrap().trim().parse().unwrap()
    }

    fn cluster_client(&self) -> ClusterClient {
        ClusterClient::new(Discovery::Dir(self.dir.clone()), TIMEOUT)
    }

    /// SIGKILLs storage node `seg` and waits until the cluster has reaped it.
    fn kill_segment(&mut self, seg: usize) {
        signal(self.pid(&format!("segment {seg} ")), "-KILL");
        self.wait(&format!("member {seg} exited"));
    }

    /// Restarts member `id` with the command the cluster printed; returns once it runs.
    fn restart(&mut self, id: usize) {
        let prefix = format!("[{id}] ");
        let line = self
            .seen
            .iter()
            .find_map(|l| l.trim_start().strip_prefix(&prefix).map(String::from))
            .expect("restart command");
        let argv: Vec<&str> = line.split_whitespace().collect();
        let err = self.dir.join(format!("restart-{id}.stderr"));
        let c = Command::new(argv[0])
            .args(&argv[1..])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).expect("stderr file"))
            .spawn()
            .expect("restart member");
        self.restarted.push(c);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(&err).is_ok_and(|t| t.contains(" running")) {
            assert!(Instant::now() < deadline, "member {id} did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the restarted members, then the cluster (which merges the trace); checks that the
    /// merged trace replays, judged with the failover properties, and writes it to `out`.
    fn finish(mut self, out: &Path) {
        for c in &self.restarted {
            signal(c.id(), "-TERM");
        }
        for c in &mut self.restarted {
            assert_eq!(
                wait_exit(c, Duration::from_secs(10)),
                Some(0),
                "member stops"
            );
        }
        signal(self.cluster.id(), "-INT");
        let code = wait_exit(&mut self.cluster, Duration::from_secs(15));
        assert_eq!(code, Some(0), "the cluster stops and merges its trace");
        let merged = self.dir.join("run.ndjson");
        let trace = sixfold_impl::trace_merge::load(&merged).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(trace.header.model, "failover", "a run with two writers");
        let verdict = replay::replay(&trace).verdict;
        assert_eq!(verdict, ReplayVerdict::Pass, "{}", merged.display());
        std::fs::copy(&merged, out).expect("write the run");
        println!(
            "{}: {} lines, replays",
            out.display(),
            trace.steps.len() + 1
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        for c in self
            .restarted
            .iter_mut()
            .chain(std::iter::once(&mut self.cluster))
        {
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// (a) kill -9 of the writer; epoch 2 takes over.
fn kill_9_failover(out: &Path) {
    let mut run = Run::start("kill", &[]);
    let mut c = run.cluster_client();
    for v in 1..=3 {
        c.write(0, 10 * v).expect("epoch 1 write");
    }
    assert_eq!(c.read(0).expect("read").value, 30);
    signal(run.pid("writer (epoch 1)"), "-KILL");
    run.wait("writer (epoch 2) recovered VDL=");
    // A fresh client: the old one's connection went with the killed writer.
    let mut c = run.cluster_client();
    let a = c.write(0, 40).expect("epoch 2 write");
    assert_eq!(a.epoch, 2);
    c.write(1, 50).expect("epoch 2 write");
    assert_eq!(c.read(0).expect("read").value, 40);
    run.finish(out);
}

/// The first writer's client port, and a connection to it that stays with it.
fn zombie(run: &Run) -> (WriterInfo, Client) {
    let first = WriterInfo::load(&run.dir)
        .expect("writer.json")
        .expect("a writer");
    assert_eq!(first.epoch, 1);
    let z = Client::connect(first.client, Duration::from_millis(1500)).expect("connect");
    (first, z)
}

/// Writes through the zombie until it answers `NotWriter`; its first write after the fence is
/// never acknowledged (the client times out), every later one is refused.
fn zombie_is_refused(first: &WriterInfo, mut z: Client, key: u32) {
    for v in 666..676 {
        match z.write(key, v) {
            Ok(lsn) => panic!("the zombie acknowledged {key}={v} at lsn {lsn}"),
            Err(ClientError::NotWriter { .. }) => return,
            Err(ClientError::Timeout { .. }) => {
                z = Client::connect(first.client, Duration::from_millis(1500)).expect("connect")
            }
            Err(e) => panic!("unexpected answer from the zombie: {e}"),
        }
    }
    panic!("the zombie never learned it was fenced");
}

/// (b) the writer is partitioned from the control plane and keeps writing.
fn partitioned_zombie(out: &Path) {
    let mut run = Run::start("zombie", &["--writer-faults", "partition=control@700"]);
    let mut c = run.cluster_client();
    c.write(0, 10).expect("epoch 1 write");
    c.write(0, 20).expect("epoch 1 write");
    assert_eq!(c.read(0).expect("read under the lease").value, 20);
    let (first, mut z) = zombie(&run);
    run.wait("writer (epoch 1) missed heartbeats");
    // Cut off, not yet fenced: the zombie's write is acknowledged (recovery will keep it).
    z.write(1, 30)
        .expect("the zombie writes before the promotion");
    run.wait("writer (epoch 2) recovered VDL=");
    match z.read(0) {
        Err(ClientError::NotWriter { .. }) => {}
        other => panic!("the zombie served a read after the promotion: {other:?}"),
    }
    zombie_is_refused(&first, z, 0);
    let mut c = run.cluster_client();
    assert_eq!(c.write(0, 40).expect("epoch 2 write").epoch, 2);
    assert_eq!(c.read(1).expect("read").value, 30);
    run.finish(out);
}

/// (c) after the failover, all six storage nodes are SIGKILLed and restarted from their disks.
fn segment_restarts_after_failover(out: &Path) {
    let mut run = Run::start("restart", &["--writer-faults", "partition=control@700"]);
    let mut c = run.cluster_client();
    for v in 1..=3 {
        c.write(1, v).expect("epoch 1 write");
    }
    let (first, z) = zombie(&run);
    run.wait("writer (epoch 2) recovered VDL=");
    let mut c = run.cluster_client();
    assert_eq!(c.write(1, 100).expect("epoch 2 write").epoch, 2);
    for seg in 0..6 {
        run.kill_segment(seg);
    }
    for seg in 0..6 {
        run.restart(seg);
    }
    zombie_is_refused(&first, z, 1);
    let mut c = run.cluster_client();
    assert_eq!(c.read(1).expect("read after the restarts").value, 100);
    assert_eq!(c.write(2, 7).expect("epoch 2 write").epoch, 2);
    run.finish(out);
}
