//! The built `symphony` binary as a user runs it, for black-box tests: start it, wait for log
//! lines (bounded, never sleeping), signal it, talk to its HTTP API. Declared by the tests that
//! use it with `#[path = "support/daemon.rs"] mod daemon_harness;`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// The longest any single wait lasts.
pub(crate) const BOUND: Duration = Duration::from_secs(60);

pub(crate) struct Daemon {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Daemon {
    pub(crate) fn start(dir: &Path, args: &[&str]) -> Self {
        Self::start_with_env(dir, args, &[])
    }

    pub(crate) fn start_with_env(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_symphony"));
        command.args(args);
        Self::spawn(command, dir, vars)
    }

    /// Starts the daemon with its open-file limit lowered to `nofile` (`ulimit -n`).
    pub(crate) fn start_with_nofile(dir: &Path, args: &[&str], nofile: u32) -> Self {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_symphony"))
            .args(args);
        Self::spawn(command, dir, &[])
    }

    fn spawn(mut command: Command, dir: &Path, vars: &[(&str, &str)]) -> Self {
        let mut child = command
            .current_dir(dir)
            .env("SYMPHONY_LOG", "info")
            .env("NO_COLOR", "1")
            // The state root (audit log, ...) inside the test's directory.
            .env("SYMPHONY_STATE_DIR", dir.join("state"))
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the symphony binary starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Returns the first log line, already seen or still to come, that satisfies `wanted`,
    /// failing after the bound.
    pub(crate) fn wait_for(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        if let Some(line) = self.seen.iter().find(|l| wanted(l)) {
            return line.clone();
        }
        let deadline = Instant::now() + BOUND;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no log line for {what} within {BOUND:?}; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    pub(crate) fn interrupt(&self) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    }

    pub(crate) fn terminate(&self) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    }

    /// SIGKILL, as a crash: the daemon gets no chance to stop anything. Waits for it to be
    /// gone and returns what it logged.
    pub(crate) fn kill(mut self) -> Vec<String> {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
        let _ = self.child.wait();
        let mut seen = self.seen;
        seen.extend(self.lines.try_iter());
        seen
    }

    pub(crate) fn wait_exit(mut self) -> (Option<i32>, Vec<String>) {
        let status = self.child.wait().unwrap();
        let mut seen = self.seen;
        seen.extend(self.lines.try_iter());
        (status.code(), seen)
    }
}

/// A minimal HTTP/1.1 exchange over loopback: status, headers, body.
pub(crate) fn http(
    addr: &str,
    method: &str,
    path: &str,
    auth: Option<&str>,
) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    let auth = auth
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_owned(), body.to_owned())
}

impl Daemon {
    /// The HTTP server's `host:port`, from its startup line.
    pub(crate) fn http_addr(&mut self) -> String {
        let listening = self.wait_for("the HTTP listener", |l| l.contains("HTTP server listening"));
        listening
            .split("http://")
            .nth(1)
            .unwrap()
            .trim_end_matches('/')
            .to_owned()
    }
}

/// `GET path` as JSON (no token), asserting a 200.
pub(crate) fn get_json(addr: &str, path: &str) -> serde_json::Value {
    let (status, _, body) = http(addr, "GET", path, None);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path} is not JSON ({e}): {body}"))
}

/// `symphony replay --check FILES...` in `dir`, asserting success; returns its stdout.
pub(crate) fn replay_check(dir: &Path, files: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_symphony"))
        .arg("replay")
        .arg("--check")
        .args(files)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "replay --check {files:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The pid a child wrote to `path`, waiting (bounded) for the file: the log line a test waits
/// on can come a moment before the write.
pub(crate) fn pid_in(path: &Path) -> u32 {
    let deadline = Instant::now() + BOUND;
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "{} never held a pid",
            path.display()
        );
        std::thread::yield_now();
    }
}
