//! Supervision of member processes: start one from its command line, wait until it listens,
//! notice when it exits, and stop them all.
//!
//! A cluster runs each member (storage node or writer) as its own OS process, so that any one of
//! them can be SIGKILLed and restarted alone, as a real failure would. The supervisor
//! ([`crate::cluster`]) keeps each process as a [`Member`] and prints its [`MemberCommand`], the
//! exact command line that restarts it by hand. Nothing here knows the protocol: these are the
//! process-level chores that every supervisor needs, kept apart from the decisions about which
//! writer runs ([`crate::promotion`]).

use std::fmt;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// How long [`stop_all`] lets members exit after SIGTERM (flushing and closing their files)
/// before it SIGKILLs the rest.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// A member's command line: what the supervisor runs, and what it prints so that an operator
/// can restart that member by hand with the same arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberCommand {
    /// The program (the `sixfold` binary).
    pub exe: PathBuf,
    /// Its arguments.
    pub argv: Vec<String>,
}

impl MemberCommand {
    /// Starts it as a child process. On Linux the child is also told to get SIGTERM when the
    /// supervisor dies, so that members do not outlive their control plane (see "What is
    /// assumed" in [`crate::promotion`]).
    fn spawn(&self) -> std::io::Result<Child> {
        let mut cmd = std::process::Command::new(&self.exe);
        cmd.args(&self.argv);
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe; it makes the member die with the supervisor.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    Ok(())
                });
            }
        }
        cmd.spawn()
    }
}

impl fmt::Display for MemberCommand {
    /// The command as a shell line: program, then the arguments separated by spaces (none of
    /// the arguments a cluster passes contains a space or a shell metacharacter).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.exe.display(), self.argv.join(" "))
    }
}

/// A member process the supervisor started: its command (to print for a restart by hand) and
/// whether it has been seen to exit, so that each exit is reported once.
#[derive(Debug)]
pub struct Member {
    /// Its actor id.
    pub id: usize,
    command: MemberCommand,
    child: Child,
    running: bool,
}

impl Member {
    /// Starts actor `id`'s process with `command`.
    pub fn start(id: usize, command: MemberCommand) -> std::io::Result<Member> {
        let child = command.spawn()?;
        Ok(Member {
            id,
            command,
            child,
            running: true,
        })
    }

    /// The command that started it, which restarts it by hand.
    pub fn command(&self) -> &MemberCommand {
        &self.command
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has not been seen to exit yet.
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Its exit status, the first time it is seen to have exited (the process is then reaped);
    /// `None` while it runs and after its exit has been reported.
    pub fn poll_exit(&mut self) -> Option<ExitStatus> {
        if !self.running {
            return None;
        }
        let status = self.child.try_wait().ok().flatten()?;
        self.running = false;
        Some(status)
    }

    /// SIGKILLs it and reaps it: once this returns it is gone, and holds no lease.
    pub fn kill(&mut self) {
        if self.running {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.running = false;
        }
    }
}

/// Waits up to `within` for something to accept connections on `addr`: how the supervisor
/// knows a member has come up. `false` if nothing did.
pub fn wait_for_port(addr: SocketAddr, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Stops every member: SIGTERM to all, so each stops cleanly in parallel; then, after at most
/// [`STOP_GRACE`] in all, SIGKILL to those still running; every process is reaped before this
/// returns.
pub fn stop_all(members: &mut [Member]) {
    // A member already seen to exit has been reaped: its pid may belong to another process now.
    for m in members.iter().filter(|m| m.running) {
        // SAFETY: sending a signal to our own child's pid, not yet reaped.
        unsafe {
            libc::kill(m.child.id() as libc::pid_t, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + STOP_GRACE;
    for m in members.iter_mut() {
        while Instant::now() < deadline {
            if let Ok(Some(_)) = m.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = m.child.kill();
        let _ = m.child.wait();
        m.running = false;
    }
}
