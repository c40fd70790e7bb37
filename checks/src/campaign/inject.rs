//! Carrying out one fault of the schedule against the running cluster, and healing it: every
//! member it stopped is running again, a write has been acknowledged after the fault ended, and
//! every segment's disk holds everything acknowledged by then.

use super::disk::{self, DiskWatch};
use super::processes::{await_event, gone, io, signal, Cluster, DriveError, Launch};
use super::workload::Shared;
use sixfold_impl::schedule::{Fault, Port, WriterCut};
use sixfold_impl::stranger;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What one fault did.
#[derive(Clone, Debug, Default)]
pub struct Effect {
    /// A short class of what happened, grouped in the table (e.g. "failover", "error frame").
    pub class: String,
    /// A figure worth a percentile, in ms (e.g. a failover's time to open).
    pub ms: Option<u64>,
    /// What the cluster said, for the per-fault line.
    pub detail: String,
    /// Set if the fault broke a promise on its own (a stranger's frame was accepted, a torn
    /// tail went unnoticed).
    pub violation: Option<String>,
}

impl Effect {
    fn new(class: &str, detail: impl Into<String>) -> Effect {
        Effect {
            class: class.into(),
            detail: detail.into(),
            ..Effect::default()
        }
    }
}

/// The cluster under faults: its processes, its directory, the load's shared state, and what
/// has been read of each segment's disk.
pub struct Target {
    /// The cluster (taken while the control plane restarts).
    pub cluster: Option<Cluster>,
    /// Its directory.
    pub dir: PathBuf,
    /// How its clusters are started.
    pub launch: Launch,
    /// The load.
    pub shared: std::sync::Arc<Shared>,
    /// What has been read of each segment's log.
    pub disks: Vec<DiskWatch>,
    /// Seeds the stranger's garbage.
    pub seed: u64,
}

impl Target {
    fn c(&mut self) -> &mut Cluster {
        self.cluster.as_mut().expect("a running cluster")
    }

    /// Carries out `fault` (number `n`); returns what it did and the instant (load clock, ns)
    /// after which a write must be acknowledged for it to count as healed: when it was carried
    /// out, or later if it heals by itself (a partition's end).
    pub fn inject(&mut self, n: usize, fault: &Fault) -> Result<(Effect, u64), DriveError> {
        let mut after = 0;
        let effect = match fault {
            Fault::Kill { segs, down_ms } => self.kill(segs, *down_ms)?,
            Fault::KillWriter => self.kill_writer(None)?,
            Fault::PauseWriter { ms } => self.kill_writer(Some(*ms))?,
            Fault::PauseSegment { seg, ms } => self.pause_segment(*seg, *ms),
            Fault::TearTail { seg, bytes } => self.tail(*seg, Some(*bytes), 0)?,
            Fault::CorruptTail { seg, len } => self.tail(*seg, None, *len)?,
            Fault::ReplaceDisk { seg } => self.replace_disk(*seg)?,
            Fault::RestartControlPlane { cut, at_ms, for_ms } => {
                let (e, until) = self.restart_control_plane(cut.as_ref(), *at_ms, *for_ms)?;
                after = after.max(until);
                e
            }
            Fault::PartitionSegments { segs, ms } => {
                let e = self.restart_segments_with(segs, |w| {
                    vec!["--faults".into(), format!("partition=seg{w}@0-{ms}")]
                })?;
                after = self.shared.now() + ms * 1_000_000;
                e
            }
            Fault::SlowSegments {
                segs,
                delay_ms,
                hold_ms,
            } => self.slow(segs, *delay_ms, *hold_ms)?,
            Fault::RestartAfterFailover { segs } => {
                let mut e = self.kill_writer(None)?;
                self.kill(segs, 0)?;
                e.class = format!("{}, {} restarted", e.class, segs.len());
                e
            }
            Fault::Stranger { port, frame } => {
                let w = self.c().writer()?;
                let layout = &self.c().layout;
                let addr = match port {
                    Port::Segment(i) => layout.peers[*i],
                    Port::WriterPeer => w.peer,
                    Port::WriterClient => w.client,
                    Port::ControlPlane => layout.control.expect("a control-plane port"),
                };
                let seed = self.seed ^ (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                let answer = stranger::send(addr, *port, *frame, w.epoch, seed)
                    .map_err(|e| io(e.to_string())(e.source))?;
                stranger_effect(&answer, *port, *frame)
            }
        };
        Ok((effect, after.max(self.shared.now())))
    }

    /// kill -9 of `segs`, down for `down_ms`, then restarted from their disks.
    fn kill(&mut self, segs: &[usize], down_ms: u64) -> Result<Effect, DriveError> {
        let before = self.shared.last_ack();
        for &s in segs {
            self.c().stop_segment(s, false)?;
        }
        std::thread::sleep(Duration::from_millis(down_ms));
        let acked_while_down = self.shared.last_ack() > before;
        for &s in segs {
            self.restart(s, &[])?;
        }
        let class = match (segs.len(), acked_while_down) {
            (n, _) if n >= 3 => "writes stalled with 3 of 6 up",
            (_, true) => "writes went on",
            (_, false) => "no write landed while down",
        };
        Ok(Effect::new(
            class,
            format!("{} segment(s) down {down_ms} ms", segs.len()),
        ))
    }

    /// Starts segment `s` with `extra` options; forgets what was read of its disk.
    fn restart(&mut self, s: usize, extra: &[String]) -> Result<String, DriveError> {
        self.disks[s].reset();
        self.c().start_segment(s, extra)
    }

    /// kill -9 (or, with `pause`, SIGSTOP for that long, then SIGCONT) of the writer; waits
    /// for its successor to open.
    fn kill_writer(&mut self, pause: Option<u64>) -> Result<Effect, DriveError> {
        let w = self.c().writer()?;
        let pid = w.pid.expect("the control plane names the writer's pid");
        let t = Instant::now();
        match pause {
            None => signal(pid, libc::SIGKILL),
            Some(ms) => {
                signal(pid, libc::SIGSTOP);
                std::thread::sleep(Duration::from_millis(ms));
                signal(pid, libc::SIGCONT);
            }
        }
        let line = self.c().await_open(w.epoch + 1)?;
        let took = t.elapsed().as_millis() as u64;
        self.c().writer()?;
        let mut e = Effect::new(
            if pause.is_some() {
                "replaced past its lease"
            } else {
                "failover"
            },
            format!("epoch {} -> {}: {line}", w.epoch, w.epoch + 1),
        );
        e.ms = Some(took);
        Ok(e)
    }

    /// SIGSTOP segment `s` for `ms`, then SIGCONT.
    fn pause_segment(&mut self, s: usize, ms: u64) -> Effect {
        let pid = self.c().segments[s].pid;
        signal(pid, libc::SIGSTOP);
        std::thread::sleep(Duration::from_millis(ms));
        signal(pid, libc::SIGCONT);
        Effect::new(
            "stopped and continued",
            format!("segment {s} stopped {ms} ms"),
        )
    }

    /// kill -9 of segment `s`, a torn (`Some(bytes)`) or corrupt (`len`-byte frame) tail added
    /// to its log, restart: recovery must drop exactly that tail.
    fn tail(&mut self, s: usize, torn: Option<usize>, len: usize) -> Result<Effect, DriveError> {
        self.c().stop_segment(s, false)?;
        let path = disk::log_path(&self.dir, s);
        let what = format!("add a tail to {}", path.display());
        match torn {
            Some(bytes) => disk::tear_tail(&path, bytes).map(drop),
            None => disk::corrupt_tail(&path, len),
        }
        .map_err(io(what))?;
        let said = self.restart(s, &[])?;
        let mut e = match said.lines().find(|l| l.contains("recovery dropped")) {
            Some(l) => Effect::new("tail dropped by recovery", l.trim()),
            None => Effect::new("tail NOT noticed", said.trim()),
        };
        if e.class.contains("NOT") {
            e.violation = Some(format!("segment {s} recovered without dropping the tail"));
        }
        Ok(e)
    }

    /// kill -9 of segment `s`, its disk deleted, restart empty.
    fn replace_disk(&mut self, s: usize) -> Result<Effect, DriveError> {
        self.c().stop_segment(s, false)?;
        let node = self.dir.join(format!("node-{s}"));
        std::fs::remove_dir_all(&node).map_err(io(format!("delete {}", node.display())))?;
        let said = self.restart(s, &[])?;
        let class = if said.contains("came back empty") {
            "restarted empty, repaired"
        } else {
            "restarted (no empty-disk line)"
        };
        Ok(Effect::new(class, format!("segment {s}: {}", said.trim())))
    }

    /// Restarts `segs` (clean stop) with the options `extra(writer id)`.
    fn restart_segments_with(
        &mut self,
        segs: &[usize],
        extra: impl Fn(usize) -> Vec<String>,
    ) -> Result<Effect, DriveError> {
        let w = self.c().writer()?;
        for &s in segs {
            self.c().stop_segment(s, true)?;
            self.restart(s, &extra(w.id))?;
        }
        Ok(Effect::new(
            "cut off, healed",
            format!("segments {segs:?} cut from writer {}", w.id),
        ))
    }

    /// Restarts `segs` slow, keeps them so for `hold_ms`, restarts them at full speed.
    fn slow(&mut self, segs: &[usize], delay_ms: u64, hold_ms: u64) -> Result<Effect, DriveError> {
        self.restart_segments_with(segs, |_| vec!["--delay-ms".into(), delay_ms.to_string()])?;
        std::thread::sleep(Duration::from_millis(hold_ms));
        self.restart_segments_with(segs, |_| Vec::new())?;
        Ok(Effect::new(
            "slowed, then restored",
            format!("segments {segs:?} +{delay_ms} ms for {hold_ms} ms"),
        ))
    }

    /// kill -9 of the control plane (its members stop with it), restarted on the same
    /// directory, its first writer with `cut`. Returns the effect and when the cut ends (ns).
    fn restart_control_plane(
        &mut self,
        cut: Option<&WriterCut>,
        at_ms: u64,
        for_ms: u64,
    ) -> Result<(Effect, u64), DriveError> {
        let old = self.cluster.take().expect("a running cluster");
        let t = Instant::now();
        let started = old.crash()?;
        let spec = cut.map(|c| writer_spec(c, at_ms, for_ms));
        for d in &mut self.disks {
            d.reset();
        }
        let mut c = Cluster::start(&self.dir, &self.launch, true, spec.as_deref(), started)?;
        let epoch = c.first_epoch;
        let mut until = self.shared.now();
        let class = match cut {
            None => "restarted, next epoch recovered".to_string(),
            Some(WriterCut::Control) => {
                c.await_open(epoch + 1)?;
                c.writer()?;
                "restarted; its writer cut off and replaced".into()
            }
            Some(_) => {
                until += (at_ms + for_ms) * 1_000_000;
                "restarted; its writer cut off for a while".into()
            }
        };
        let wait = c
            .log
            .iter()
            .find(|l| l.contains("may hold a lease"))
            .cloned()
            .unwrap_or_default();
        self.cluster = Some(c);
        let mut e = Effect::new(&class, format!("epoch {epoch}; {wait}"));
        e.ms = Some(t.elapsed().as_millis() as u64);
        Ok((e, until))
    }

    /// Heals after a fault: kills writers that were replaced (zombies, once fenced), then waits
    /// for a write acknowledged after `after` (ns) and for every segment's disk to hold all that
    /// was acknowledged by then. Returns how long it took.
    pub fn heal(&mut self, after: u64) -> Result<Duration, DriveError> {
        let t = Instant::now();
        let shared = self.shared.clone();
        await_event("a write acknowledged after the fault", || {
            (shared.last_ack() > after).then_some(())
        })?;
        self.stop_zombies()?;
        let target = shared.max_lsn();
        let dir = self.dir.clone();
        let disks = &mut self.disks;
        await_event(
            &format!("every segment's disk to reach LSN {target}"),
            || caught_up(&dir, disks, target).then_some(()),
        )?;
        Ok(t.elapsed())
    }

    /// SIGKILLs every writer older than the current one that still runs.
    fn stop_zombies(&mut self) -> Result<(), DriveError> {
        let c = self.c();
        let current = c.writer()?.epoch;
        for w in c.writers.iter().filter(|w| w.epoch < current) {
            if let Some(pid) = w.pid.filter(|&p| !gone(p)) {
                signal(pid, libc::SIGKILL);
            }
        }
        c.writers.retain(|w| w.epoch >= current);
        Ok(())
    }
}

/// Whether every segment's log in `dir` holds everything up to `lsn`.
fn caught_up(dir: &Path, disks: &mut [DiskWatch], lsn: u64) -> bool {
    disks
        .iter_mut()
        .enumerate()
        .all(|(i, d)| d.scl(&disk::log_path(dir, i)) >= lsn)
}

/// The fault spec of a restarted control plane's first writer.
fn writer_spec(cut: &WriterCut, at: u64, len: u64) -> String {
    match cut {
        WriterCut::Control => format!("partition=control@{at}"),
        WriterCut::Clients => format!("partition=clients@{at}-{}", at + len),
        WriterCut::Segments(s) => {
            let t: Vec<String> = s.iter().map(|i| format!("seg{i}")).collect();
            format!("partition={}@{at}-{}", t.join("+"), at + len)
        }
    }
}

/// How a stranger's frame was answered, as an effect.
fn stranger_effect(
    answer: &stranger::Answer,
    port: Port,
    frame: sixfold_impl::schedule::BadFrame,
) -> Effect {
    let (class, detail) = match answer {
        stranger::Answer::Error(r) => ("error frame", r.clone()),
        stranger::Answer::Closed => ("closed", String::new()),
        stranger::Answer::Silence => ("no grant", String::new()),
        stranger::Answer::Accepted(f) => ("ACCEPTED", f.clone()),
    };
    let mut e = Effect::new(class, format!("{frame:?} to {port:?}: {detail}"));
    if !answer.is_refusal(port, frame) {
        e.violation = Some(format!("{frame:?} to {port:?} was answered {answer:?}"));
    }
    e
}
