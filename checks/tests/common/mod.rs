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

/// A fresh, empty scratch directory for test `name` of the test crate tagged `tag`.
pub fn scratch_dir(tag: &str, name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sixfold-{tag}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts `sixfold cluster --dir DIR EXTRA…` (into `guard`); returns its banner and, line by
/// line, what it prints after it.
pub fn start_cluster(
    dir: &std::path::Path,
    extra: &[&str],
    guard: &mut Killer,
) -> (Banner, mpsc::Receiver<String>) {
    let mut c = std::process::Command::new(EXE)
        .arg("cluster")
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start sixfold cluster");
    let out = c.stdout.take().expect("piped stdout");
    guard.0.push(c);
    Banner::read_and_follow(out)
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

/// Runs `sixfold ARGS…` to completion; returns its exit code, stdout and stderr.
pub fn sixfold(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(EXE)
        .args(args)
        .output()
        .expect("run sixfold");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits up to `within` for `log` (a cluster's output, see [`Banner::read_and_follow`]) to
/// print a line containing `what`; returns it. Every line read goes to `seen`, which the panic
/// shows.
pub fn wait_line(
    log: &mpsc::Receiver<String>,
    what: &str,
    within: Duration,
    seen: &mut Vec<String>,
) -> String {
    let deadline = Instant::now() + within;
    loop {
        match log.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) => {
                seen.push(l.clone());
                if l.contains(what) {
                    return l;
                }
            }
            Err(_) => panic!("the cluster never printed {what:?}; it printed {seen:#?}"),
        }
    }
}

/// Starts member `id` again with the command the cluster printed for it (into `guard`), its
/// stderr going to `stderr`; returns once the member says it is running.
pub fn restart_member(banner: &Banner, id: usize, stderr: &std::path::Path, guard: &mut Killer) {
    let argv = banner.restart_of(id);
    let err = std::fs::File::create(stderr).expect("stderr file");
    let c = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdout(std::process::Stdio::null())
        .stderr(err)
        .spawn()
        .expect("restart the member");
    guard.0.push(c);
    wait_until(Duration::from_secs(10), "the restarted member runs", || {
        std::fs::read_to_string(stderr)
            .ok()
            .filter(|t| t.contains(" running"))
    });
}

/// `sixfold lincheck HISTORY --model kv`: exit status and stdout.
pub fn lincheck_kv(history: &std::path::Path) -> (i32, String) {
    let out = std::process::Command::new(EXE)
        .arg("lincheck")
        .arg(history)
        .args(["--model", "kv", "--time-limit", "20"])
        .output()
        .expect("run sixfold lincheck");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// How one `sixfold client` command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A write acknowledged at this LSN by the writer of this epoch.
    Written { lsn: u64, epoch: u64 },
    /// A read's version: its value and LSN.
    Read { value: u64, lsn: u64 },
    /// The writer refused (`NotWriter`) or could not be reached: certainly no effect.
    Refused(String),
    /// No answer in time, or the connection broke: the outcome is unknown.
    Unknown(String),
}

/// Runs single `sixfold client` commands and records each as one operation of a history in
/// sixfold's NDJSON format (`sixfold lincheck --model kv` reads it): each command is its own
/// client, its call and return taken around the process on this test's clock.
pub struct CliHistory {
    t0: Instant,
    lines: Vec<String>,
}

impl Default for CliHistory {
    fn default() -> Self {
        CliHistory {
            t0: Instant::now(),
            lines: Vec::new(),
        }
    }
}

impl CliHistory {
    /// `sixfold client TARGET… write KEY VALUE`, where TARGET is `--dir D` or `--addr A`, and
    /// any client options.
    pub fn write(&mut self, target: &[&str], key: u32, value: u64) -> Answer {
        self.run(target, "write", key, Some(value))
    }

    /// `sixfold client TARGET… read KEY`.
    pub fn read(&mut self, target: &[&str], key: u32) -> Answer {
        self.run(target, "read", key, None)
    }

    fn run(&mut self, target: &[&str], op: &str, key: u32, value: Option<u64>) -> Answer {
        let (k, v) = (key.to_string(), value.map(|v| v.to_string()));
        let mut args = vec!["client"];
        args.extend_from_slice(target);
        args.extend([op, k.as_str()]);
        args.extend(v.as_deref());
        let call = self.t0.elapsed().as_nanos() as u64;
        let (code, out, err) = sixfold(&args);
        let ret = self.t0.elapsed().as_nanos() as u64;
        let field = |text: &str, after: &str| -> Option<u64> {
            let rest = text.split(after).nth(1)?;
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        };
        let answer = if code == 0 && op == "write" {
            match (field(&out, " at lsn "), field(&out, "(writer epoch ")) {
                (Some(lsn), Some(epoch)) => Answer::Written { lsn, epoch },
                _ => panic!("unexpected answer to {args:?}: {out}"),
            }
        } else if code == 0 {
            match (field(&out, " = "), field(&out, " at lsn ")) {
                (Some(value), Some(lsn)) => Answer::Read { value, lsn },
                _ => panic!("unexpected answer to {args:?}: {out}"),
            }
        } else if err.contains("is not the writer") || err.contains("cannot connect") {
            Answer::Refused(err.trim().to_string())
        } else {
            Answer::Unknown(err.trim().to_string())
        };
        let (outcome, seen) = match &answer {
            Answer::Written { .. } => ("ok", v.clone().map(serde_json::Value::from)),
            Answer::Read { value, lsn } => {
                ("ok", Some((*lsn > 0).then(|| value.to_string()).into()))
            }
            Answer::Refused(_) => ("fail", v.clone().map(serde_json::Value::from)),
            Answer::Unknown(_) => ("unknown", v.clone().map(serde_json::Value::from)),
        };
        let mut rec = serde_json::json!({
            "client": self.lines.len(),
            "call": call,
            "return": ret,
            "outcome": outcome,
            "op": op,
            "key": k,
        });
        if let Some(s) = seen {
            rec["value"] = s;
        }
        self.lines.push(rec.to_string());
        answer
    }

    /// Writes the history to `path`.
    pub fn save(&self, path: &std::path::Path) {
        let text: String = self.lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(path, text).expect("write the history");
    }
}
