//! Workspace hooks (SPEC 9.4, 15.4): `sh -lc <script>` in the workspace, in its own process
//! group, with an allowlisted environment, bounded output and a timeout that kills the group.

use std::ffi::OsString;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::host::{Host, Launch};

/// Output kept per hook run; the rest is counted and dropped.
pub const OUTPUT_LIMIT: usize = 64 * 1024;

/// Host variables every hook gets when set (plus any `LC_*`).
const ALLOWLIST: [&str; 8] = [
    "PATH", "HOME", "USER", "LANG", "TERM", "TMPDIR", "SHELL", "TZ",
];

/// The four hooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookKind {
    /// After a workspace is created.
    AfterCreate,
    /// Before each attempt.
    BeforeRun,
    /// After each attempt.
    AfterRun,
    /// Before a workspace is removed.
    BeforeRemove,
}

impl HookKind {
    /// The config key name.
    pub fn name(self) -> &'static str {
        match self {
            Self::AfterCreate => "after_create",
            Self::BeforeRun => "before_run",
            Self::AfterRun => "after_run",
            Self::BeforeRemove => "before_remove",
        }
    }

    /// Whether a failure fails the attempt (SPEC 9.4); otherwise it is logged and ignored.
    pub fn is_fatal(self) -> bool {
        matches!(self, Self::AfterCreate | Self::BeforeRun)
    }
}

/// Which issue a hook runs for.
#[derive(Clone, Copy, Debug)]
pub struct HookContext<'a> {
    /// Tracker id.
    pub issue_id: &'a str,
    /// Human-readable key.
    pub identifier: &'a str,
    /// The workspace (the hook's cwd).
    pub workspace: &'a Path,
    /// `None` on the first run.
    pub attempt: Option<u32>,
}

/// How a hook run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookStatus {
    /// Exit status 0.
    Succeeded,
    /// Non-zero exit, or killed by a signal (`code` is `None`).
    Failed {
        /// The exit code.
        code: Option<i32>,
    },
    /// Still running at the timeout; its process group was killed.
    TimedOut,
    /// `sh` could not be started.
    SpawnFailed(String),
}

/// One hook run.
#[derive(Clone, Debug)]
pub struct HookOutcome {
    /// Which hook.
    pub kind: HookKind,
    /// How it ended.
    pub status: HookStatus,
    /// stdout and stderr interleaved, at most [`OUTPUT_LIMIT`] bytes, lossily decoded.
    pub output: String,
    /// Bytes of output beyond the limit, dropped.
    pub dropped_bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl HookOutcome {
    /// Whether it exited 0.
    pub fn succeeded(&self) -> bool {
        self.status == HookStatus::Succeeded
    }

    /// One line for errors and logs.
    pub fn describe(&self) -> String {
        let how = match &self.status {
            HookStatus::Succeeded => "succeeded".to_owned(),
            HookStatus::Failed { code: Some(code) } => format!("failed with exit code {code}"),
            HookStatus::Failed { code: None } => "was killed by a signal".to_owned(),
            HookStatus::TimedOut => format!("timed out after {} ms", self.elapsed.as_millis()),
            HookStatus::SpawnFailed(e) => format!("could not start: {e}"),
        };
        format!("hook {} {how}", self.kind.name())
    }
}

/// The environment a hook gets: the allowlist and `LC_*` from `host`, the variables the
/// workflow names in `hooks.env`, and the issue's `SYMPHONY_*` variables. Nothing else: tracker
/// tokens reach a hook only when named.
pub fn hook_env(
    host: impl IntoIterator<Item = (OsString, OsString)>,
    named: &[String],
    context: &HookContext<'_>,
) -> Vec<(OsString, OsString)> {
    let mut env = crate::child::allowlisted_env(host, &ALLOWLIST, named, &[]);
    let mut set = |name: &str, value: OsString| {
        env.retain(|(n, _)| n != name);
        env.push((name.into(), value));
    };
    set("SYMPHONY_ISSUE_ID", context.issue_id.into());
    set("SYMPHONY_ISSUE_IDENTIFIER", context.identifier.into());
    set(
        "SYMPHONY_WORKSPACE",
        context.workspace.as_os_str().to_owned(),
    );
    if let Some(attempt) = context.attempt {
        set("SYMPHONY_ATTEMPT", attempt.to_string().into());
    }
    env
}

/// Output collected from both pipes, capped.
#[derive(Default)]
struct Capture {
    kept: Vec<u8>,
    dropped: u64,
}

impl Capture {
    fn add(&mut self, bytes: &[u8]) {
        let room = OUTPUT_LIMIT
            .saturating_sub(self.kept.len())
            .min(bytes.len());
        self.kept.extend_from_slice(&bytes[..room]);
        self.dropped += (bytes.len() - room) as u64;
    }
}

/// How long output is still read after the hook's shell has exited: a child that left the
/// process group (`setsid cmd &`) may hold the pipes open forever, and must not hold the run.
const OUTPUT_GRACE: Duration = Duration::from_millis(500);

/// Between TERM and KILL when the daemon stops while a hook runs.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Runs `script` with `sh -lc` in `context.workspace`, in a new process group, and returns by
/// `timeout` whatever the script and its children do. On timeout the group is killed; after
/// the shell exits, anything it left running in the group (a background `sleep &`) is killed
/// too, so no hook outlives its run; output is read until both pipes close or for
/// `OUTPUT_GRACE` after the exit, whichever is first. When the daemon stops
/// (`child::stop_all_groups`) the group gets TERM, then KILL after two seconds.
/// One thread does it all: it waits on the pipes and a pidfd together. The process starts on
/// `host`.
pub fn run_hook(
    host: &dyn Host,
    kind: HookKind,
    script: &str,
    context: &HookContext<'_>,
    env: Vec<(OsString, OsString)>,
    timeout: Duration,
) -> HookOutcome {
    let started = Instant::now();
    let outcome = |status, capture: &Capture| HookOutcome {
        kind,
        status,
        output: String::from_utf8_lossy(&capture.kept).into_owned(),
        dropped_bytes: capture.dropped,
        elapsed: started.elapsed(),
    };
    let spawned = host.launch(&Launch {
        program: "sh",
        args: &["-lc", script],
        cwd: context.workspace,
        env,
        stdin: false,
        writable: &[],
    });
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => return outcome(HookStatus::SpawnFailed(e.to_string()), &Capture::default()),
    };
    let pgid = child.id();
    let _live = crate::child::LiveGroup::register(pgid);
    let pidfd = rustix::process::Pid::from_raw(pgid as i32).and_then(|pid| {
        rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
    });
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let mut capture = Capture::default();
    let deadline = started + timeout;
    let mut status: Option<HookStatus> = None;
    let mut ended_at: Option<Instant> = None;
    let mut termed_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if status.is_none() {
            let exited = match child.try_wait() {
                Ok(Some(exit)) if exit.success() => Some(HookStatus::Succeeded),
                Ok(Some(exit)) => Some(HookStatus::Failed { code: exit.code() }),
                Ok(None) => None,
                Err(e) => Some(HookStatus::SpawnFailed(e.to_string())),
            };
            let exited = exited.or_else(|| {
                (now >= deadline).then(|| {
                    crate::child::signal_group(pgid, rustix::process::Signal::KILL);
                    let _ = child.wait();
                    HookStatus::TimedOut
                })
            });
            if let Some(exited) = exited {
                // Whatever happened, nothing of the hook may survive it.
                crate::child::signal_group(pgid, rustix::process::Signal::KILL);
                status = Some(exited);
                ended_at = Some(now);
            } else if crate::child::stopping() {
                match termed_at {
                    None => {
                        crate::child::signal_group(pgid, rustix::process::Signal::TERM);
                        termed_at = Some(now);
                    }
                    Some(at) if now >= at + STOP_GRACE => {
                        crate::child::signal_group(pgid, rustix::process::Signal::KILL);
                    }
                    Some(_) => {}
                }
            }
        }
        let open = stdout.is_some() || stderr.is_some();
        match ended_at {
            Some(_) if !open => break,
            Some(end) if now >= end + OUTPUT_GRACE => break,
            _ => {}
        }
        // Sleep until output, the exit, or the next thing to check (at most 100 ms).
        let until = ended_at.map_or(deadline, |end| end + OUTPUT_GRACE);
        let wait = until
            .saturating_duration_since(now)
            .min(Duration::from_millis(100));
        let (out_ready, err_ready) = wait_readable(
            stdout.as_ref(),
            stderr.as_ref(),
            pidfd.as_ref().filter(|_| status.is_none()),
            wait,
        );
        let mut chunk = [0u8; 8192];
        if out_ready && let Some(pipe) = stdout.as_mut() {
            match pipe.read(&mut chunk) {
                Ok(0) | Err(_) => stdout = None,
                Ok(n) => capture.add(&chunk[..n]),
            }
        }
        if err_ready && let Some(pipe) = stderr.as_mut() {
            match pipe.read(&mut chunk) {
                Ok(0) | Err(_) => stderr = None,
                Ok(n) => capture.add(&chunk[..n]),
            }
        }
    }
    let status = status.unwrap_or(HookStatus::TimedOut);
    outcome(status, &capture)
}

/// Polls the pipes (and the pidfd, to wake at the exit) for up to `wait`; which pipes have
/// something to read (data, or the end).
fn wait_readable(
    stdout: Option<&std::process::ChildStdout>,
    stderr: Option<&std::process::ChildStderr>,
    pidfd: Option<&rustix::fd::OwnedFd>,
    wait: Duration,
) -> (bool, bool) {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    use rustix::fd::AsFd as _;
    let flags = PollFlags::IN | PollFlags::HUP | PollFlags::ERR;
    let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(3);
    let out_at = stdout.map(|p| {
        fds.push(PollFd::new(p, flags));
        fds.len() - 1
    });
    let err_at = stderr.map(|p| {
        fds.push(PollFd::new(p, flags));
        fds.len() - 1
    });
    if let Some(fd) = pidfd {
        fds.push(PollFd::from_borrowed_fd(fd.as_fd(), PollFlags::IN));
    }
    let bound = Timespec {
        tv_sec: wait.as_secs() as i64,
        tv_nsec: i64::from(wait.subsec_nanos()),
    };
    let _ = poll(&mut fds, Some(&bound));
    let ready = |at: Option<usize>| at.is_some_and(|i| !fds[i].revents().is_empty());
    (ready(out_at), ready(err_at))
}
