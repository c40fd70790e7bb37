//! Helpers shared by the tests that run a real `sixfold cluster`: reading its start-up banner,
//! finding members' pids and restart commands in it, and never leaving a process behind.

#![allow(dead_code)] // each test crate uses its own subset

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The `sixfold` binary under test.
pub const EXE: &str = env!("CARGO_BIN_EXE_sixfold");

/// Kills (SIGKILL) and reaps every child it holds when dropped, so a failing assertion leaves no
/// process behind.
pub struct Killer(pub Vec<Child>);

impl Drop for Killer {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits up to `within` for `child` to exit and returns its exit code; `None` (after killing
/// it) if it did not.
pub fn wait_exit(child: &mut Child, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(s)) = child.try_wait() {
            return s.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    None
}

/// What `sixfold cluster` printed up to and including its "cluster ready" line.
pub struct Banner(pub Vec<String>);

impl Banner {
    /// Reads the cluster's stdout (on a thread, so a silent cluster fails after 15 s instead of
    /// hanging) until it says it is ready.
    pub fn read(stdout: ChildStdout) -> Banner {
        Banner::read_and_follow(stdout).0
    }

    /// [`Banner::read`], and a receiver of every line the cluster prints after it (its
    /// failover log).
    pub fn read_and_follow(stdout: ChildStdout) -> (Banner, mpsc::Receiver<String>) {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let mut printed = Vec::new();
        loop {
            let l = rx
                .recv_timeout(Duration::from_secs(15))
                .expect("cluster prints 'cluster ready'");
            let ready = l.contains("cluster ready");
            printed.push(l);
            if ready {
                return (Banner(printed), rx);
            }
        }
    }

    /// The pid of storage segment `seg`.
    pub fn pid_of(&self, seg: usize) -> i32 {
        let l = self
            .0
            .iter()
            .find(|l| l.trim_start().starts_with(&format!("segment {seg} ")))
            .unwrap();
        l.rsplit("pid ").next().unwrap().trim().parse().unwrap()
    }

    /// The command line that restarts member `id`, as printed.
    pub fn restart_of(&self, id: usize) -> Vec<String> {
        let l = self
            .0
            .iter()
            .find(|l| l.trim_start().starts_with(&format!("[{id}] ")))
            .unwrap();
        l.split_whitespace().skip(1).map(String::from).collect()
    }
}

impl Banner {
    /// The pid of the first writer (epoch 1).
    pub fn writer_pid(&self) -> i32 {
        let l = self
            .0
            .iter()
            .find(|l| l.trim_start().starts_with("writer (epoch"))
            .unwrap();
        l.rsplit("pid ").next().unwrap().trim().parse().unwrap()
    }
}

/// Polls `f` every 20 ms until it returns `Some`, for at most `within`; panics with `what`
/// otherwise.
pub fn wait_until<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
