//! An agent's child process (Codex's app-server, a Claude turn): launched with `bash -lc` in
//! the workspace, in its own process group, with an allowlisted environment; stdout framed into
//! lines, stderr drained apart.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin};
use std::sync::mpsc::Sender;
use std::thread;
use std::time::Duration;

use crate::host::{Host, Launch};

/// Longest protocol line accepted; a longer one is a protocol error that ends the attempt.
pub const MAX_LINE: usize = 10 * 1024 * 1024;

/// Host variables the agent gets when set (plus any `LC_*`), SPEC 10.5 / 15.3.
const ALLOWLIST: [&str; 11] = [
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "TERM",
    "TMPDIR",
    "SHELL",
    "TZ",
    "SSL_CERT_FILE",
    "CODEX_HOME",
];

/// What the stdout reader saw.
#[derive(Debug)]
pub enum Line {
    /// One complete line (without the newline).
    Text(String),
    /// A line longer than [`MAX_LINE`], or not UTF-8.
    TooLong,
    /// A line that is not valid UTF-8.
    NotUtf8,
    /// stdout closed: the process is gone or closing.
    Eof,
}

/// The agent's environment: the allowlist and `LC_*` from `host`, plus `named`, never the
/// adapter's `secrets` unless named explicitly.
pub fn agent_env(
    host: impl IntoIterator<Item = (OsString, OsString)>,
    named: &[String],
    secrets: &[&str],
) -> Vec<(OsString, OsString)> {
    crate::child::allowlisted_env(host, &ALLOWLIST, named, secrets)
}

/// A running app-server.
pub struct AgentProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    pgid: u32,
}

/// Where an agent process runs: the host, its working directory (the workspace), and the
/// directories its runtime writes besides (kept writable by a sandbox).
#[derive(Clone, Copy)]
pub struct Place<'a> {
    /// The host.
    pub host: &'a dyn Host,
    /// The workspace.
    pub cwd: &'a Path,
    /// The runtime's own writable directories (Codex home, Claude config dir).
    pub writable: &'a [PathBuf],
}

impl AgentProcess {
    /// Starts `bash -lc <command>` at `place`. stdout lines go to `lines` (ending with
    /// [`Line::Eof`]); stderr is drained and logged, never parsed.
    pub fn spawn<T: From<Line> + Send + 'static>(
        place: Place<'_>,
        command: &str,
        env: Vec<(OsString, OsString)>,
        lines: Sender<T>,
        identifier: &str,
    ) -> std::io::Result<Self> {
        Self::spawn_with_args(place, command, &[], env, lines, identifier)
    }

    /// [`Self::spawn`] with `args` after the command, passed as `bash`'s positional parameters
    /// (`bash -lc '<command> "$@"' <command> <args>...`), so no argument is ever re-parsed by a
    /// shell, whatever it contains.
    pub fn spawn_with_args<T: From<Line> + Send + 'static>(
        place: Place<'_>,
        command: &str,
        args: &[String],
        env: Vec<(OsString, OsString)>,
        lines: Sender<T>,
        identifier: &str,
    ) -> std::io::Result<Self> {
        let script = if args.is_empty() {
            command.to_owned()
        } else {
            format!("{command} \"$@\"")
        };
        let mut argv: Vec<&str> = vec!["-lc", &script];
        if !args.is_empty() {
            argv.push(command);
            argv.extend(args.iter().map(String::as_str));
        }
        let mut child = place.host.launch(&Launch {
            program: "bash",
            args: &argv,
            cwd: place.cwd,
            env,
            stdin: true,
            writable: place.writable,
        })?;
        let pgid = child.id();
        let stdin = child.stdin.take();
        if let Some(stdout) = child.stdout.take() {
            thread::Builder::new()
                .name(format!("agent-out-{identifier}"))
                .spawn(move || read_lines(stdout, &lines))?;
        }
        if let Some(stderr) = child.stderr.take() {
            let identifier = identifier.to_owned();
            thread::Builder::new()
                .name(format!("agent-err-{identifier}"))
                .spawn(move || drain_stderr(stderr, &identifier))?;
        }
        Ok(Self { child, stdin, pgid })
    }

    /// The exit code, if the process has exited.
    pub fn exit_code(&mut self) -> Option<i32> {
        let _ = wait_for_exit(&mut self.child, Duration::from_millis(200));
        self.child.try_wait().ok().flatten().and_then(|s| s.code())
    }

    /// The process id (also the process group id).
    pub fn pid(&self) -> u32 {
        self.pgid
    }

    /// Writes one line. An error means the process is gone.
    pub fn send(&mut self, line: &str) -> std::io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| std::io::Error::other("stdin already closed"))?;
        stdin.write_all(line.as_bytes())?;
        stdin.write_all(b"\n")?;
        stdin.flush()
    }

    /// Writes `text` whole to stdin, then closes it (a prompt read to its end). A thread
    /// writes, so a process that does not read cannot block the caller; the write ends when the
    /// process exits or is stopped.
    pub fn send_all_and_close(&mut self, text: String) -> std::io::Result<()> {
        let mut stdin =
            (self.stdin.take()).ok_or_else(|| std::io::Error::other("stdin already closed"))?;
        thread::Builder::new()
            .name("agent-in".into())
            .spawn(move || {
                let _ = stdin.write_all(text.as_bytes());
            })
            .map(drop)
    }

    /// Ends the process: close stdin (app-server exits on EOF), SIGTERM the group if it is
    /// still there after `grace`, SIGKILL after another `grace`. Everything in the group dies.
    pub fn stop(&mut self, grace: Duration) {
        drop(self.stdin.take());
        if !wait_for_exit(&mut self.child, grace) {
            crate::child::signal_group(self.pgid, rustix::process::Signal::TERM);
            if !wait_for_exit(&mut self.child, grace) {
                crate::child::signal_group(self.pgid, rustix::process::Signal::KILL);
                let _ = self.child.wait();
            }
        }
        // Whatever the agent left in its group (a backgrounded command) goes too.
        crate::child::signal_group(self.pgid, rustix::process::Signal::KILL);
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        crate::child::signal_group(self.pgid, rustix::process::Signal::KILL);
        let _ = self.child.wait();
    }
}

/// Waits up to `limit` for the child to exit, blocking on a pidfd (readable once the process
/// has exited); returns whether it exited.
fn wait_for_exit(child: &mut Child, limit: Duration) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    use rustix::process::{Pid, PidfdFlags, pidfd_open};
    if !matches!(child.try_wait(), Ok(None)) {
        return true;
    }
    if let Some(pid) = i32::try_from(child.id()).ok().and_then(Pid::from_raw)
        && let Ok(fd) = pidfd_open(pid, PidfdFlags::empty())
    {
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        let bound = Timespec {
            tv_sec: i64::try_from(limit.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(limit.subsec_nanos()),
        };
        let _ = poll(&mut fds, Some(&bound));
    }
    !matches!(child.try_wait(), Ok(None))
}

/// Splits stdout into lines, buffering partial lines across reads, refusing lines over
/// [`MAX_LINE`].
fn read_lines<T: From<Line>>(mut stdout: impl Read, lines: &Sender<T>) {
    let mut buffer: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut scanned = 0;
    loop {
        let n = match stdout.read(&mut chunk) {
            Ok(0) | Err(_) => {
                let _ = lines.send(Line::Eof.into());
                return;
            }
            Ok(n) => n,
        };
        buffer.extend_from_slice(&chunk[..n]);
        let mut start = 0;
        while let Some(pos) = buffer[scanned..].iter().position(|b| *b == b'\n') {
            let end = scanned + pos;
            let line = &buffer[start..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let message = match std::str::from_utf8(line) {
                Ok(text) => Line::Text(text.to_owned()),
                Err(_) => Line::NotUtf8,
            };
            if lines.send(message.into()).is_err() {
                return;
            }
            start = end + 1;
            scanned = start;
        }
        buffer.drain(..start);
        scanned = buffer.len();
        if buffer.len() > MAX_LINE {
            let _ = lines.send(Line::TooLong.into());
            return;
        }
    }
}

/// Reads stderr to the end, logging it in bounded pieces.
fn drain_stderr(mut stderr: impl Read, identifier: &str) {
    const KEEP: usize = 4096;
    let mut chunk = [0u8; 8192];
    let mut logged = 0usize;
    let mut dropped = 0u64;
    loop {
        match stderr.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if logged < 64 * KEEP {
                    let text = String::from_utf8_lossy(&chunk[..n.min(KEEP)]);
                    tracing::debug!(
                        issue_identifier = identifier,
                        "agent stderr: {}",
                        text.trim_end()
                    );
                    logged += n.min(KEEP);
                } else {
                    dropped += n as u64;
                }
            }
        }
    }
    if dropped > 0 {
        tracing::debug!(
            issue_identifier = identifier,
            dropped,
            "agent stderr beyond the log cap was dropped"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_gets_the_allowlist_and_named_variables_never_unnamed_secrets() {
        let host: Vec<(OsString, OsString)> = [
            ("PATH", "/bin"),
            ("HOME", "/home/op"),
            ("LC_ALL", "C"),
            ("CODEX_HOME", "/srv/codex"),
            ("LINEAR_API_KEY", "lin_secret"),
            ("GITHUB_TOKEN", "ghp_secret"),
            ("OPENAI_API_KEY", "sk-named"),
            ("RANDOM", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
        let env = agent_env(
            host,
            &["OPENAI_API_KEY".to_owned(), "GITHUB_TOKEN".to_owned()],
            &["LINEAR_API_KEY", "GITHUB_TOKEN"],
        );
        let names: Vec<&str> = env.iter().filter_map(|(k, _)| k.to_str()).collect();
        assert_eq!(
            names,
            [
                "PATH",
                "HOME",
                "LC_ALL",
                "CODEX_HOME",
                "GITHUB_TOKEN",
                "OPENAI_API_KEY"
            ]
        );
        let plain = agent_env(
            [("LINEAR_API_KEY".into(), "s".into())],
            &[],
            &["LINEAR_API_KEY"],
        );
        assert!(
            plain.is_empty(),
            "an adapter secret is never passed unless named"
        );
    }
}
