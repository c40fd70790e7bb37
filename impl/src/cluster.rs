//! A cluster of member processes and its control plane: what `sixfold cluster` runs between
//! parsing its arguments and printing.
//!
//! [`run`] writes the layout to `DIR/cluster.json`, starts one `sixfold node` process per
//! storage node ([`crate::supervise`], so any member can be SIGKILLed and restarted on its own),
//! and is the **control plane**: it hands out epochs (persisted in `DIR/epoch`, so a restarted
//! cluster never reuses one), grants the writer's lease in answer to its heartbeats
//! ([`crate::control::ControlPlane`]), and when the writer fails (missed heartbeats, lost lease,
//! never started) it stops granting, waits until the old lease has certainly run out, and starts
//! a writer in the next epoch, which recovers the volume; `DIR/writer.json` tells clients where
//! it is. When told to stop it stops every member and, if it may, records a clean stop.
//!
//! Started on an existing `DIR` it is a restarted control plane: it takes `DIR`'s lock, and
//! unless `DIR/control-plane` records that the previous one stopped cleanly it waits
//! `GRANT_WINDOW + LEASE + margin` from its own start before it appoints a writer, since the
//! previous one may have granted a lease just before it died; then it promotes the next epoch,
//! which fences the old one. What to do when is [`crate::promotion::decide`]; this module
//! gathers the facts and carries the decisions out.
//!
//! It prints nothing: what happens is reported as [`Event`]s, and the command line words them.

use crate::control::{ControlError, ControlPlane, DirLock, Failure, Health, LastRun, Revoked};
use crate::control::{Timing, RUN_FILE};
use crate::faults::{FaultSpecError, Faults};
use crate::host::{self, WRITER_ID};
use crate::layout::{self, free_ports, local_addr, Layout, LayoutError, WriterInfo};
use crate::promotion::{self, Decision, Facts, Incumbent, Previous};
use crate::supervise::{self, Member, MemberCommand};
use sixfold_model::protocol::config::{Config, Mutant, SEGMENTS};
use sixfold_model::protocol::msg::{Epoch, Lsn, FIRST_EPOCH};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The directory inside `DIR` where members write their per-process traces.
pub const TRACE_DIR: &str = "trace";
/// How long the first writer has to open its client port before the cluster gives up.
pub const WRITER_START: Duration = Duration::from_secs(10);
/// The control loop's period when there is nothing to wait for.
const TICK: Duration = Duration::from_millis(10);

/// Protocol options every member of a cluster must agree on; the supervisor passes them on each
/// member's command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Protocol {
    /// Run a deliberately broken protocol variant (see `sixfold mutants`).
    pub mutant: Option<Mutant>,
    /// Benchmark variant: the writer counts a record durable only once all six segments acked
    /// (write quorum 6 instead of 4).
    pub wait_all: bool,
}

impl Protocol {
    /// The configuration the members run.
    pub fn config(self) -> Config {
        let cfg = Config::new(self.mutant);
        if self.wait_all {
            cfg.wait_all()
        } else {
            cfg
        }
    }
}

/// What cluster to run.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// Directory for the layout, every member's files and traces (reused if it exists).
    pub dir: PathBuf,
    /// First of nine consecutive ports on 127.0.0.1; 0 picks free ports (or reuses the ports in
    /// `DIR/cluster.json` if present).
    pub port_base: u16,
    /// The `sixfold` binary, which each member runs as `sixfold node`.
    pub exe: PathBuf,
    /// What every member runs.
    pub protocol: Protocol,
    /// Record every step: members write per-process traces under `DIR/trace`, to be merged into
    /// this file after the run. Both are removed at the start (a fresh recording).
    pub trace: Option<PathBuf>,
    /// With `trace`: keep the per-member traces an earlier control plane left under `DIR/trace`
    /// and let the members append to them, instead of a fresh recording (a control plane
    /// restarted in the middle of a recorded run, as `sixfold campaign` does).
    pub keep_trace: bool,
    /// Storage nodes that hold every inbound message for `slow_ms`.
    pub slow: Vec<usize>,
    /// The delay of the `slow` nodes, in ms.
    pub slow_ms: u64,
    /// Faults for the first writer this cluster starts ([`crate::faults`] form).
    pub writer_faults: Option<String>,
    /// Faults for every storage node.
    pub segment_faults: Option<String>,
}

/// Why the cluster could not start (or, for [`Event::PromotionFailed`] and
/// [`Event::CleanStopFailed`], what went wrong while it ran).
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A segment to slow down does not exist.
    #[error("segment {0} does not exist (segments are 0..=5)")]
    NoSuchSegment(usize),
    /// A fault spec does not parse.
    #[error(transparent)]
    Faults(#[from] FaultSpecError),
    /// The directory could not be created or locked (another control plane holds it), or the
    /// clean stop could not be recorded in it.
    #[error(transparent)]
    Dir(std::io::Error),
    /// The layout or the epoch file could not be read or written.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The layout names no control-plane port.
    #[error("no control-plane port")]
    NoControlPort,
    /// The control plane could not listen.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// `DIR/control-plane` could not be read or written.
    #[error("{}: {source}", path.display())]
    RunRecord {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A storage node's process could not be started.
    #[error("cannot start member {id}: {source}")]
    StartMember {
        /// Its actor id.
        id: usize,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Every epoch the runtime's id layout has room for was handed out.
    #[error("epoch {0} exceeds {max}", max = host::MAX_EPOCH)]
    EpochsExhausted(Epoch),
    /// No free ports for a promoted writer.
    #[error(transparent)]
    Ports(std::io::Error),
    /// The writer's process could not be started.
    #[error("cannot start the writer: {0}")]
    StartWriter(#[source] std::io::Error),
    /// The first writer did not open its client port in time.
    #[error("the writer did not open {addr} in {} s", within.as_secs())]
    WriterSilent {
        /// Its client address.
        addr: SocketAddr,
        /// How long the cluster waited.
        within: Duration,
    },
}

/// Something the cluster did or saw, for the command line to report.
#[derive(Debug)]
pub enum Event<'a> {
    /// Before its first writer: a lease of a writer this control plane did not appoint may run
    /// until `until` (computed at `at`), so the promotion waits (see [`crate::promotion`]).
    RestartWait {
        /// When the wait was computed.
        at: Instant,
        /// When the promotion may happen.
        until: Instant,
        /// What the previous control plane left.
        previous: Previous,
    },
    /// A writer was started in an epoch after the first: it recovers the volume.
    Promoted {
        /// Where it runs.
        writer: &'a WriterInfo,
        /// Its process id.
        pid: u32,
    },
    /// The first writer is up and the cluster serves clients.
    Ready(Ready<'a>),
    /// A storage node exited; it stays down until restarted by hand.
    MemberExited {
        /// Its actor id.
        id: usize,
        /// How it ended.
        status: ExitStatus,
    },
    /// The current writer's process exited.
    WriterExited {
        /// Its epoch.
        epoch: Epoch,
        /// How it ended.
        status: ExitStatus,
    },
    /// The current writer reported it is open (recovery, if any, is done).
    WriterOpen {
        /// Its epoch.
        epoch: Epoch,
        /// Its VDL when it opened.
        vdl: Lsn,
        /// Since the failure that led to its promotion was detected, if it was promoted.
        since_failure: Option<Duration>,
    },
    /// The appointed writer failed and was revoked.
    WriterFailed {
        /// Its epoch.
        epoch: Epoch,
        /// Why.
        why: Failure,
        /// When it was detected.
        detected: Instant,
        /// When its successor may be promoted; `None` if its lease is unknown (it was never
        /// heard from), so it is killed first.
        promote_after: Option<Instant>,
    },
    /// A promoted writer could not be started: the cluster stops.
    PromotionFailed(&'a ClusterError),
    /// The cluster was told to stop (or cannot go on) and is stopping its members.
    Stopping,
    /// No clean stop is recorded, since an earlier writer's lease may still be running.
    NoCleanStop,
    /// The clean stop could not be recorded.
    CleanStopFailed(&'a ClusterError),
}

/// A cluster that has come up: what an operator needs to use it and restart its members.
#[derive(Debug)]
pub struct Ready<'a> {
    /// The addresses.
    pub layout: &'a Layout,
    /// The storage nodes, by id, each with the command that restarts it.
    pub storage: &'a [Member],
    /// The writer.
    pub writer: &'a WriterInfo,
    /// Its process id.
    pub writer_pid: u32,
    /// The control plane's heartbeat address.
    pub control: SocketAddr,
}

/// A cluster that has stopped. It holds `DIR`'s lock until dropped, so the caller can finish
/// with the directory (merge the members' traces) before another control plane takes it.
#[derive(Debug)]
pub struct Stopped {
    /// Whether a writer was started, so the members' traces are a run worth merging (`false`
    /// if it was stopped while waiting out an earlier lease).
    pub served: bool,
    _lock: DirLock,
}

/// Runs the cluster `spec` until `stop` is set (or a writer cannot be promoted): starts the
/// members, supervises them and the writer's lease, then stops them all. Everything that
/// happens goes to `report`. An error means the cluster could not start; members already
/// started are stopped.
pub fn run(
    spec: &ClusterSpec,
    stop: &AtomicBool,
    report: &mut dyn FnMut(Event<'_>),
) -> Result<Stopped, ClusterError> {
    spec.check()?;
    // One control plane per directory, held until the caller is done (see `promotion`).
    let lock = std::fs::create_dir_all(&spec.dir)
        .and_then(|()| DirLock::acquire(&spec.dir))
        .map_err(ClusterError::Dir)?;
    let mut cluster = Cluster::start(spec)?;
    if !cluster.wait_for_first_promotion(stop, report) {
        report(Event::Stopping);
        cluster.stop(None, report);
        return Ok(Stopped {
            served: false,
            _lock: lock,
        });
    }
    let mut writers = cluster.start_first_writer(report)?;
    while !stop.load(Ordering::SeqCst) {
        match cluster.tick(&mut writers, report) {
            Ok(Some(nap)) => std::thread::sleep(nap),
            Ok(None) => {}
            Err(e) => {
                report(Event::PromotionFailed(&e));
                break;
            }
        }
    }
    report(Event::Stopping);
    cluster.stop(Some(writers), report);
    Ok(Stopped {
        served: true,
        _lock: lock,
    })
}

impl ClusterSpec {
    /// Rejects what no member could run: a slow segment that does not exist, a bad fault spec.
    fn check(&self) -> Result<(), ClusterError> {
        if let Some(&bad) = self.slow.iter().find(|&&s| s >= SEGMENTS) {
            return Err(ClusterError::NoSuchSegment(bad));
        }
        for spec in [&self.writer_faults, &self.segment_faults]
            .into_iter()
            .flatten()
        {
            spec.parse::<Faults>()?;
        }
        Ok(())
    }

    /// The `sixfold node` command line of member `id`: a storage node, or with `writer` the
    /// writer there with its faults.
    fn member_command(
        &self,
        layout: &Layout,
        id: usize,
        writer: Option<(&WriterInfo, Option<&str>)>,
    ) -> MemberCommand {
        let role = if writer.is_some() {
            "writer"
        } else {
            "storage"
        };
        let dir = &self.dir;
        let mut v = vec![
            "node".to_string(),
            "--role".into(),
            role.into(),
            "--id".into(),
            id.to_string(),
            "--dir".into(),
            dir.join(format!("node-{id}")).display().to_string(),
            "--peers".into(),
            layout.peers_arg(),
        ];
        if let Some((w, faults)) = writer {
            v.extend(["--client-addr".into(), w.client.to_string()]);
            v.extend(["--epoch".into(), w.epoch.to_string()]);
            if w.id != WRITER_ID {
                v.extend(["--listen".into(), w.peer.to_string()]);
            }
            if let Some(c) = layout.control {
                v.extend(["--control".into(), c.to_string()]);
            }
            if let Some(f) = faults {
                v.extend(["--faults".into(), f.to_string()]);
            }
        } else if let Some(f) = &self.segment_faults {
            v.extend(["--faults".into(), f.clone()]);
        }
        if let Some(m) = self.protocol.mutant {
            v.extend(["--mutant".into(), m.name().into()]);
        }
        if self.protocol.wait_all {
            v.push("--wait-all".into());
        }
        if self.trace.is_some() {
            let trace = dir.join(TRACE_DIR).join(format!("node-{id}.ndjson"));
            v.extend(["--trace".into(), trace.display().to_string()]);
        }
        if self.slow.contains(&id) {
            v.extend(["--delay-ms".into(), self.slow_ms.to_string()]);
        }
        MemberCommand {
            exe: self.exe.clone(),
            argv: v,
        }
    }

    /// `DIR/cluster.json` if present and no ports were asked for (with this run's protocol,
    /// and a control-plane port if it predates one), else a fresh layout; saved.
    fn layout(&self) -> Result<Layout, ClusterError> {
        let cfg = self.protocol.config();
        let layout = match Layout::load(&self.dir) {
            Ok(mut l) if self.port_base == 0 => {
                l.config = cfg;
                if l.control.is_none() {
                    l.control = free_ports(1).ok().map(|p| local_addr(p[0]));
                }
                l
            }
            _ => Layout::local(cfg, self.port_base)?,
        };
        layout.save(&self.dir)?;
        Ok(layout)
    }
}

/// What the previous control plane left in `dir`: the last epoch and how its run ended.
fn read_previous(dir: &std::path::Path) -> Result<Previous, ClusterError> {
    let epoch = layout::last_epoch(dir)?;
    let run = LastRun::load(dir).map_err(|source| ClusterError::RunRecord {
        path: dir.join(RUN_FILE),
        source,
    })?;
    Ok(Previous::from_disk(epoch, run))
}

/// Where the writer of `epoch` runs. The first epoch uses the layout's writer addresses; a later
/// one gets fresh ports, since its predecessor may still be alive (partitioned, not dead) and
/// holding its ports.
fn writer_slot(layout: &Layout, epoch: Epoch) -> Result<WriterInfo, ClusterError> {
    let (peer, client) = if epoch == FIRST_EPOCH {
        (layout.peers[WRITER_ID], layout.client)
    } else {
        let p = free_ports(2).map_err(ClusterError::Ports)?;
        (local_addr(p[0]), local_addr(p[1]))
    };
    Ok(WriterInfo {
        epoch,
        id: host::writer_id(epoch),
        peer,
        client,
        pid: None,
    })
}

/// The running parts that do not change while the cluster runs: its control plane and its
/// storage nodes.
struct Cluster<'s> {
    spec: &'s ClusterSpec,
    layout: Layout,
    control: ControlPlane,
    control_addr: SocketAddr,
    previous: Previous,
    storage: Vec<Member>,
}

/// The writers: the current one, its predecessors still running, and the revoked one's lease.
struct Writers {
    current: Writer,
    /// Earlier writers whose processes have not exited yet (a zombie may still run).
    old: Vec<Member>,
    /// The appointed writer once revoked (until its successor is promoted).
    revoked: Option<Revoked>,
    /// When the last failure was detected.
    detected: Instant,
}

/// The current writer's process and what has been reported about it.
struct Writer {
    info: WriterInfo,
    process: Member,
    /// When the failover that started it began (the failed writer was detected).
    failover_from: Option<Instant>,
    reported_open: bool,
}

impl<'s> Cluster<'s> {
    /// Lays the directory out, starts the control plane, records that it runs, and starts the
    /// storage nodes.
    fn start(spec: &'s ClusterSpec) -> Result<Cluster<'s>, ClusterError> {
        let layout = spec.layout()?;
        let control_addr = layout.control.ok_or(ClusterError::NoControlPort)?;
        let control = ControlPlane::start(control_addr, Timing::default())?;
        // What the previous control plane left, read once it can do nothing more; then,
        // durably and before any writer is appointed, that this one runs (a crash from here on
        // must make the next one wait out our leases).
        let previous = read_previous(&spec.dir)?;
        LastRun::Running
            .store(&spec.dir)
            .map_err(|source| ClusterError::RunRecord {
                path: spec.dir.join(RUN_FILE),
                source,
            })?;
        if let (Some(t), false) = (&spec.trace, spec.keep_trace) {
            // A fresh recording: per-member traces from an earlier run would not merge with it.
            let _ = std::fs::remove_dir_all(spec.dir.join(TRACE_DIR));
            let _ = std::fs::remove_file(t);
        }
        let mut storage = Vec::new();
        for id in 0..SEGMENTS {
            match Member::start(id, spec.member_command(&layout, id, None)) {
                Ok(m) => storage.push(m),
                Err(source) => {
                    supervise::stop_all(&mut storage);
                    return Err(ClusterError::StartMember { id, source });
                }
            }
        }
        Ok(Cluster {
            spec,
            layout,
            control,
            control_addr,
            previous,
            storage,
        })
    }

    /// What [`promotion::decide`] needs, now.
    fn facts(&self, incumbent: Incumbent) -> Facts {
        Facts {
            now: Instant::now(),
            started: self.control.started(),
            previous: self.previous,
            incumbent,
            strays: self.control.strays(),
            timing: self.control.timing(),
            protocol: self.spec.protocol.config(),
        }
    }

    /// Before the first writer: waits (reporting why) until the promotion rule allows one.
    /// `false` if the cluster was told to stop meanwhile.
    fn wait_for_first_promotion(
        &self,
        stop: &AtomicBool,
        report: &mut dyn FnMut(Event<'_>),
    ) -> bool {
        let mut announced = None;
        loop {
            if stop.load(Ordering::SeqCst) {
                return false;
            }
            let until = match promotion::decide(&self.facts(Incumbent::None)) {
                Decision::WaitUntil(t) => t,
                _ => return true,
            };
            if announced != Some(until) {
                announced = Some(until);
                report(Event::RestartWait {
                    at: Instant::now(),
                    until,
                    previous: self.previous,
                });
            }
            std::thread::sleep(until.saturating_duration_since(Instant::now()).min(TICK));
        }
    }

    /// Hands out the next epoch (durably, before anything runs in it), starts its writer and
    /// names it in `DIR/writer.json`.
    fn start_writer(&self, faults: Option<&str>) -> Result<Writer, ClusterError> {
        let dir = &self.spec.dir;
        let epoch = layout::last_epoch(dir)? + 1;
        if epoch > host::MAX_EPOCH {
            return Err(ClusterError::EpochsExhausted(epoch));
        }
        layout::store_epoch(dir, epoch)?;
        let mut info = writer_slot(&self.layout, epoch)?;
        let command = self
            .spec
            .member_command(&self.layout, info.id, Some((&info, faults)));
        let mut process = Member::start(info.id, command).map_err(ClusterError::StartWriter)?;
        info.pid = Some(process.pid());
        if let Err(e) = info.save(dir) {
            // Not appointed, but it holds its first lease: reap it, so that a clean stop is one.
            process.kill();
            return Err(e.into());
        }
        Ok(Writer {
            info,
            process,
            failover_from: None,
            reported_open: false,
        })
    }

    /// Starts and appoints the first writer and waits for its client port; reports the cluster
    /// ready. On an error every member is stopped.
    fn start_first_writer(
        &mut self,
        report: &mut dyn FnMut(Event<'_>),
    ) -> Result<Writers, ClusterError> {
        let mut current = match self.start_writer(self.spec.writer_faults.as_deref()) {
            Ok(w) => w,
            Err(e) => {
                supervise::stop_all(&mut self.storage);
                return Err(e);
            }
        };
        self.control.appoint(current.info.epoch);
        // In a fresh directory the banner announces the first writer; a later epoch recovers.
        if current.info.epoch > FIRST_EPOCH {
            report(Event::Promoted {
                writer: &current.info,
                pid: current.process.pid(),
            });
        }
        if !supervise::wait_for_port(current.info.client, WRITER_START) {
            supervise::stop_all(&mut self.storage);
            current.process.kill();
            return Err(ClusterError::WriterSilent {
                addr: current.info.client,
                within: WRITER_START,
            });
        }
        report(Event::Ready(Ready {
            layout: &self.layout,
            storage: &self.storage,
            writer: &current.info,
            writer_pid: current.process.pid(),
            control: self.control_addr,
        }));
        Ok(Writers {
            current,
            old: Vec::new(),
            revoked: None,
            detected: Instant::now(),
        })
    }

    /// One round of the control loop: notes exits and the writer opening, then carries out the
    /// promotion rule's decision. `Some(nap)` to sleep before the next round, `None` to go on at
    /// once; an error if a writer could not be promoted.
    fn tick(
        &mut self,
        w: &mut Writers,
        report: &mut dyn FnMut(Event<'_>),
    ) -> Result<Option<Duration>, ClusterError> {
        self.watch(w, report);
        let health = self.control.health();
        let incumbent = match (health, &w.revoked) {
            (Some((_, h)), _) => Incumbent::Appointed(h),
            (None, Some(r)) => Incumbent::revoked(r, !w.current.process.is_running()),
            (None, None) => Incumbent::None,
        };
        match promotion::decide(&self.facts(incumbent)) {
            Decision::Keep => Ok(Some(TICK)),
            Decision::Revoke => {
                self.revoke(w, health, report);
                Ok(None)
            }
            Decision::Kill => {
                w.current.process.kill();
                Ok(None)
            }
            Decision::WaitUntil(t) => {
                Ok(Some(TICK.min(t.saturating_duration_since(Instant::now()))))
            }
            Decision::Promote => {
                self.promote(w, report)?;
                Ok(Some(TICK))
            }
        }
    }

    /// Reports members and the current writer that exited (reaping earlier writers quietly),
    /// and the current writer once it is open.
    fn watch(&mut self, w: &mut Writers, report: &mut dyn FnMut(Event<'_>)) {
        for m in &mut self.storage {
            if let Some(status) = m.poll_exit() {
                report(Event::MemberExited { id: m.id, status });
            }
        }
        w.old.retain_mut(|m| m.poll_exit().is_none());
        let cur = &mut w.current;
        if let Some(status) = cur.process.poll_exit() {
            report(Event::WriterExited {
                epoch: cur.info.epoch,
                status,
            });
        }
        let book = self.control.writer(cur.info.epoch);
        if book.open && !cur.reported_open {
            cur.reported_open = true;
            report(Event::WriterOpen {
                epoch: cur.info.epoch,
                vdl: book.vdl,
                since_failure: cur.failover_from.map(|t| t.elapsed()),
            });
        }
    }

    /// Stops granting the failed writer and reports when its successor may be promoted.
    fn revoke(
        &self,
        w: &mut Writers,
        health: Option<(Epoch, Health)>,
        report: &mut dyn FnMut(Event<'_>),
    ) {
        w.detected = Instant::now();
        w.revoked = self.control.revoke();
        if let (Some((epoch, Health::Failed(why))), Some(r)) = (health, &w.revoked) {
            let promote_after = match promotion::decide(&self.facts(Incumbent::revoked(r, false))) {
                Decision::WaitUntil(t) => r.lease_ends_by.map(|e| t.max(e)),
                _ => r.lease_ends_by,
            };
            report(Event::WriterFailed {
                epoch,
                why,
                detected: w.detected,
                promote_after,
            });
        }
    }

    /// Starts and appoints the writer of the next epoch; its predecessor, if still running, is
    /// kept to be stopped with the rest.
    fn promote(
        &self,
        w: &mut Writers,
        report: &mut dyn FnMut(Event<'_>),
    ) -> Result<(), ClusterError> {
        let mut next = self.start_writer(None)?;
        next.failover_from = Some(w.detected);
        self.control.appoint(next.info.epoch);
        w.revoked = None;
        report(Event::Promoted {
            writer: &next.info,
            pid: next.process.pid(),
        });
        let old = std::mem::replace(&mut w.current, next);
        if old.process.is_running() {
            w.old.push(old.process);
        }
        Ok(())
    }

    /// Stops every member (storage nodes, then the writers), then records a clean stop if it
    /// may; the control plane stops with it.
    fn stop(mut self, writers: Option<Writers>, report: &mut dyn FnMut(Event<'_>)) {
        let mut all = std::mem::take(&mut self.storage);
        if let Some(w) = writers {
            if w.current.process.is_running() {
                all.push(w.current.process);
            }
            all.extend(w.old);
        }
        supervise::stop_all(&mut all);
        self.record_stop(report);
    }

    /// After every writer this control plane started has been killed and reaped: stops
    /// granting and, if no lease of another writer can still be running, records a clean stop,
    /// so that the next control plane in `DIR` may promote at once ([`promotion`]).
    fn record_stop(&self, report: &mut dyn FnMut(Event<'_>)) {
        let _ = self.control.revoke();
        if !promotion::no_lease_outstanding(&self.facts(Incumbent::None)) {
            report(Event::NoCleanStop);
            return;
        }
        let dir = &self.spec.dir;
        let recorded = layout::last_epoch(dir)
            .map_err(ClusterError::from)
            .and_then(|epoch| {
                LastRun::Stopped { epoch }
                    .store(dir)
                    .map_err(ClusterError::Dir)
            });
        if let Err(e) = recorded {
            report(Event::CleanStopFailed(&e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ClusterSpec {
        ClusterSpec {
            dir: PathBuf::from("/c"),
            port_base: 0,
            exe: PathBuf::from("/bin/sixfold"),
            protocol: Protocol::default(),
            trace: None,
            keep_trace: false,
            slow: Vec::new(),
            slow_ms: 50,
            writer_faults: None,
            segment_faults: None,
        }
    }

    fn layout() -> Layout {
        Layout::local(Config::new(None), 7000).unwrap()
    }

    #[test]
    fn a_spec_no_member_could_run_is_rejected() {
        assert!(spec().check().is_ok());
        let slow = ClusterSpec {
            slow: vec![5, 6],
            ..spec()
        };
        assert!(matches!(slow.check(), Err(ClusterError::NoSuchSegment(6))));
        let faults = ClusterSpec {
            segment_faults: Some("bogus".into()),
            ..spec()
        };
        assert!(matches!(faults.check(), Err(ClusterError::Faults(_))));
    }

    #[test]
    fn a_storage_node_runs_sixfold_node_with_the_cluster_options() {
        let s = ClusterSpec {
            protocol: Protocol {
                mutant: Some(Mutant::WriteQuorum3),
                wait_all: true,
            },
            trace: Some(PathBuf::from("/t.ndjson")),
            slow: vec![4],
            segment_faults: Some("drop=0.1".into()),
            ..spec()
        };
        let l = layout();
        let cmd = s.member_command(&l, 4, None);
        assert_eq!(
            cmd.to_string(),
            format!(
                "/bin/sixfold node --role storage --id 4 --dir /c/node-4 --peers {} \
                 --faults drop=0.1 --mutant write-quorum-3 --wait-all \
                 --trace /c/trace/node-4.ndjson --delay-ms 50",
                l.peers_arg()
            )
        );
        let plain = spec().member_command(&l, 0, None);
        assert_eq!(
            plain.argv.join(" "),
            format!(
                "node --role storage --id 0 --dir /c/node-0 --peers {}",
                l.peers_arg()
            )
        );
    }

    #[test]
    fn a_promoted_writer_gets_its_own_ports_and_the_control_plane() {
        let l = layout();
        let first = writer_slot(&l, FIRST_EPOCH).unwrap();
        assert_eq!(
            (first.id, first.peer, first.client),
            (WRITER_ID, l.peers[WRITER_ID], l.client)
        );
        let cmd = spec().member_command(&l, first.id, Some((&first, Some("seed=7"))));
        let control = l.control.unwrap();
        assert!(
            cmd.argv.join(" ").ends_with(&format!(
                "--client-addr {} --epoch 1 --control {control} --faults seed=7",
                l.client
            )),
            "{cmd}"
        );
        let next = writer_slot(&l, FIRST_EPOCH + 1).unwrap();
        assert_eq!(next.id, host::writer_id(FIRST_EPOCH + 1));
        assert_ne!(
            next.client, l.client,
            "fresh ports: the old writer may hold its own"
        );
        let cmd = spec().member_command(&l, next.id, Some((&next, None)));
        let argv = cmd.argv.join(" ");
        assert!(argv.starts_with("node --role writer --id 7 "), "{argv}");
        assert!(
            argv.ends_with(&format!(
                "--epoch 2 --listen {} --control {control}",
                next.peer
            )),
            "{argv}"
        );
    }
}
