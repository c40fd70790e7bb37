//! The processes a campaign drives: one `sixfold cluster` (the control plane, which starts the
//! six segments and every writer), and the segments the campaign restarted itself after killing
//! them, each with its stderr in `DIR/logs`.
//!
//! A segment the cluster started is the cluster's child; once killed it is restarted with the
//! command the cluster printed for it (the campaign's child from then on), as an operator would.
//! The writer is always the cluster's: the campaign only signals it, and reads `DIR/writer.json`
//! to know which process it is. Every wait here is for an event: a printed line, a process
//! gone, a line in a member's stderr; each is bounded and fails with what it waited for.

use sixfold_impl::layout::{Layout, WriterInfo};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// How long the campaign waits for any one thing the cluster should do (start, recover, stop).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Why the campaign could not drive the cluster: something it waited for did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    /// A process could not be started, signalled, or a file could not be touched.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// An awaited event did not happen in time.
    #[error("timed out after {} s waiting for {what}", PATIENCE.as_secs())]
    Timeout {
        /// The event.
        what: String,
    },
    /// The cluster's files could not be read.
    #[error(transparent)]
    Layout(#[from] sixfold_impl::layout::LayoutError),
}

/// A wrapper for an I/O error with what was being done.
pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DriveError {
    let what = what.into();
    move |source| DriveError::Io { what, source }
}

/// Sends `sig` to `pid`.
pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: signalling a member process of the cluster this campaign runs.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Whether process `pid` is gone: no `/proc/PID`, or only a zombie waiting to be reaped.
pub fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

/// Waits until `addr` can be listened on. A killed process can look gone (its main thread a
/// zombie) while its other threads still hold its sockets; its port is what a restart needs.
pub fn await_free(addr: std::net::SocketAddr) -> Result<(), DriveError> {
    await_event(&format!("{addr} to be free"), || {
        std::net::TcpListener::bind(addr).ok().map(drop)
    })
}

/// Polls `f` every 10 ms until it is `Some`, for at most [`PATIENCE`].
pub fn await_event<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> Result<T, DriveError> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(DriveError::Timeout { what: what.into() });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The first of nine consecutive free ports below the kernel's ephemeral range (so no outgoing
/// connection is ever given one of them as its source port), tried from a place that depends on
/// this process, so concurrent campaigns do not collide.
fn port_base() -> Result<u16, DriveError> {
    let low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let (first, slots) = (10_000u16, (low.saturating_sub(10_000) / 16).max(1));
    let start = std::process::id() as u16 % slots;
    (0..slots)
        .map(|k| first + ((start + k) % slots) * 16)
        .find(|&base| {
            (base..base + 9)
                .map(|p| std::net::TcpListener::bind(("127.0.0.1", p)))
                .collect::<Result<Vec<_>, _>>()
                .is_ok()
        })
        .ok_or_else(|| DriveError::Timeout {
            what: "nine free ports below the ephemeral range".into(),
        })
}

/// How every cluster of a campaign is started: the `sixfold` binary, and the protocol variant
/// its members run (a mutant, to see the campaign's checks fail).
pub struct Launch {
    /// The `sixfold` binary.
    pub exe: PathBuf,
    /// `--mutant NAME` for every cluster, if any.
    pub mutant: Option<String>,
}

/// One storage segment: its process, and the command that restarts it.
pub struct Segment {
    /// Its process id.
    pub pid: u32,
    /// The process, if the campaign started it (otherwise the cluster did).
    child: Option<Child>,
    /// The command the cluster printed for it.
    command: Vec<String>,
}

/// The running `sixfold cluster` and its segments.
pub struct Cluster {
    dir: PathBuf,
    child: Child,
    lines: Receiver<String>,
    /// Every line the cluster printed after its banner, in order (and the banners).
    pub log: Vec<String>,
    /// The six segments.
    pub segments: Vec<Segment>,
    /// The addresses.
    pub layout: Layout,
    /// How many processes this campaign has started (names their stderr files).
    started: usize,
    /// Every writer process seen in `writer.json`, by epoch: to stop zombies.
    pub writers: Vec<WriterInfo>,
    /// The epoch of the first writer this control plane appointed.
    pub first_epoch: u32,
}

impl Cluster {
    /// Starts `sixfold cluster --dir DIR --trace DIR/run.ndjson` (with `--keep-trace` if
    /// `keep_trace`, and the first writer's fault spec if any) and waits for its banner and its
    /// first writer to be open.
    pub fn start(
        dir: &Path,
        launch: &Launch,
        keep_trace: bool,
        writer_faults: Option<&str>,
        started: usize,
    ) -> Result<Cluster, DriveError> {
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(io(format!("create {}", logs.display())))?;
        let err_path = logs.join(format!("cluster-{started}.stderr"));
        let err = std::fs::File::create(&err_path).map_err(io(err_path.display().to_string()))?;
        let mut cmd = Command::new(&launch.exe);
        cmd.arg("cluster").arg("--dir").arg(dir);
        if let Some(m) = &launch.mutant {
            cmd.args(["--mutant", m]);
        }
        cmd.arg("--trace").arg(dir.join("run.ndjson"));
        if keep_trace {
            cmd.arg("--keep-trace");
        } else {
            // Members restart on their ports many times over: ports outside the ephemeral
            // range, which an outgoing connection's source port may take while one is down.
            cmd.args(["--port-base", &port_base()?.to_string()]);
        }
        if let Some(f) = writer_faults {
            cmd.args(["--writer-faults", f]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .map_err(io("start sixfold cluster"))?;
        let out = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let mut c = Cluster {
            dir: dir.to_path_buf(),
            child,
            lines,
            log: Vec::new(),
            segments: Vec::new(),
            layout: Layout::load(dir).unwrap_or_else(|_| {
                Layout::local(sixfold_model::protocol::config::Config::new(None), 0)
                    .expect("a layout")
            }),
            started: started + 1,
            writers: Vec::new(),
            first_epoch: 0,
        };
        c.read_banner()?;
        c.layout = Layout::load(dir)?;
        c.await_open(c.first_epoch)?;
        c.writer()?;
        Ok(c)
    }

    /// Reads the banner: each segment's pid and restart command.
    fn read_banner(&mut self) -> Result<(), DriveError> {
        let first = self.log.len();
        self.await_line("cluster ready")?;
        let banner = &self.log[first..];
        let field = |prefix: &str| -> Option<&String> {
            banner.iter().find(|l| l.trim_start().starts_with(prefix))
        };
        let mut segments = Vec::new();
        for id in 0..crate::campaign::SEGMENTS {
            let line = field(&format!("segment {id} ")).ok_or_else(|| DriveError::Timeout {
                what: format!("segment {id} in the banner"),
            })?;
            let pid = line
                .rsplit("pid ")
                .next()
                .and_then(|p| p.trim().parse().ok());
            let cmd = field(&format!("[{id}] ")).map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .map(String::from)
                    .collect::<Vec<_>>()
            });
            match (pid, cmd) {
                (Some(pid), Some(command)) => segments.push(Segment {
                    pid,
                    child: None,
                    command,
                }),
                _ => {
                    return Err(DriveError::Timeout {
                        what: format!("segment {id}'s pid and command in the banner"),
                    })
                }
            }
        }
        self.segments = segments;
        // "  writer (epoch N)  peers …": the first writer, whatever writer.json says by now.
        self.first_epoch = field("writer (epoch")
            .and_then(|l| l.split("(epoch ").nth(1)?.split(')').next()?.parse().ok())
            .ok_or_else(|| DriveError::Timeout {
                what: "the first writer's epoch in the banner".into(),
            })?;
        Ok(())
    }

    /// Waits for the cluster to print a line containing `what` (from now on); returns it.
    pub fn await_line(&mut self, what: &str) -> Result<String, DriveError> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.log.push(l.clone());
                    if l.contains(what) {
                        return Ok(l);
                    }
                }
                Err(_) => {
                    return Err(DriveError::Timeout {
                        what: format!("the cluster to print {what:?}"),
                    })
                }
            }
        }
    }

    /// Waits until the writer of `epoch` has reported itself open (including a line already
    /// printed).
    pub fn await_open(&mut self, epoch: u32) -> Result<String, DriveError> {
        let what = format!("writer (epoch {epoch}) recovered VDL=");
        if let Some(l) = self.log.iter().find(|l| l.contains(&what)) {
            return Ok(l.clone());
        }
        self.await_line(&what)
    }

    /// The current writer, as `DIR/writer.json` names it.
    pub fn writer(&mut self) -> Result<WriterInfo, DriveError> {
        let w = WriterInfo::load(&self.dir)?.ok_or_else(|| DriveError::Timeout {
            what: "DIR/writer.json".into(),
        })?;
        if !self.writers.iter().any(|x| x.epoch == w.epoch) {
            self.writers.push(w.clone());
        }
        Ok(w)
    }

    /// SIGKILLs (or with `clean`, SIGTERMs) segment `id` and waits until it is gone.
    pub fn stop_segment(&mut self, id: usize, clean: bool) -> Result<(), DriveError> {
        let s = &mut self.segments[id];
        signal(s.pid, if clean { libc::SIGTERM } else { libc::SIGKILL });
        match &mut s.child {
            Some(c) => {
                c.wait().map_err(io(format!("wait for segment {id}")))?;
            }
            None => {
                let pid = s.pid;
                await_event(&format!("segment {id} (pid {pid}) to exit"), || {
                    gone(pid).then_some(())
                })?;
            }
        }
        Ok(())
    }

    /// Starts segment `id` again with its printed command and `extra` options; waits until it
    /// says it runs. Returns what it printed by then (its recovery lines).
    pub fn start_segment(&mut self, id: usize, extra: &[String]) -> Result<String, DriveError> {
        await_free(self.layout.peers[id])?;
        let path = self
            .dir
            .join("logs")
            .join(format!("segment-{id}-{}.stderr", self.started));
        self.started += 1;
        let err = std::fs::File::create(&path).map_err(io(path.display().to_string()))?;
        let s = &mut self.segments[id];
        let child = Command::new(&s.command[0])
            .args(&s.command[1..])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .map_err(io(format!("restart segment {id}")))?;
        s.pid = child.id();
        s.child = Some(child);
        await_event(&format!("segment {id} to run again"), || {
            std::fs::read_to_string(&path)
                .ok()
                .filter(|t| t.contains(" running"))
        })
    }

    /// Stops the segments the campaign started (SIGTERM) and waits for them.
    pub fn stop_own_segments(&mut self) -> Result<(), DriveError> {
        for id in 0..self.segments.len() {
            if self.segments[id].child.is_some() {
                self.stop_segment(id, true)?;
                self.segments[id].child = None;
            }
        }
        Ok(())
    }

    /// kill -9 of the control plane: its members stop with it (they are told to when their
    /// supervisor dies). Waits until every member, and every writer seen, is gone.
    pub fn crash(mut self) -> Result<usize, DriveError> {
        self.stop_own_segments()?;
        let _ = self.child.kill();
        let _ = self.child.wait();
        let pids: Vec<u32> = self
            .segments
            .iter()
            .map(|s| s.pid)
            .chain(self.writers.iter().filter_map(|w| w.pid))
            .collect();
        await_event("the crashed control plane's members to exit", || {
            pids.iter().all(|&p| gone(p)).then_some(())
        })?;
        for &addr in self.layout.peers[..crate::campaign::SEGMENTS]
            .iter()
            .chain(&self.layout.control)
        {
            await_free(addr)?;
        }
        Ok(self.started)
    }

    /// Stops everything cleanly: the campaign's segments, then the cluster (Ctrl-C), which stops
    /// its members and merges the trace. Returns whether it exited 0.
    pub fn stop(mut self) -> Result<bool, DriveError> {
        self.stop_own_segments()?;
        signal(self.child.id(), libc::SIGINT);
        let status = self.child.wait().map_err(io("wait for the cluster"))?;
        for l in self.lines.try_iter() {
            self.log.push(l);
        }
        Ok(status.success())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for s in &mut self.segments {
            if let Some(c) = &mut s.child {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
