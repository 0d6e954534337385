//! Workspace hooks (SPEC 9.4, 15.4): `sh -lc <script>` in the workspace, in its own process
//! group, with an allowlisted environment, bounded output and a timeout that kills the group.

use std::ffi::OsString;
use std::io::Read;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt as _;

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

fn drain(mut pipe: impl Read, capture: Arc<Mutex<Capture>>) {
    let mut chunk = [0u8; 8192];
    loop {
        match pipe.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let Ok(mut c) = capture.lock() else { return };
                let room = OUTPUT_LIMIT.saturating_sub(c.kept.len()).min(n);
                c.kept.extend_from_slice(&chunk[..room]);
                c.dropped += (n - room) as u64;
            }
        }
    }
}

/// Runs `script` with `sh -lc` in `context.workspace`, in a new process group. On timeout the
/// group is killed; after the shell exits, anything it left running in the group (a
/// background `sleep &`) is killed too, so no hook outlives its run.
pub fn run_hook(
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
    let spawned = Command::new("sh")
        .arg("-lc")
        .arg(script)
        .current_dir(context.workspace)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => return outcome(HookStatus::SpawnFailed(e.to_string()), &Capture::default()),
    };
    let pgid = child.id();
    let capture = Arc::new(Mutex::new(Capture::default()));
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|pipe| {
        let capture = Arc::clone(&capture);
        thread::spawn(move || drain(pipe, capture))
    })
    .collect();

    let (done_tx, done_rx) = mpsc::channel::<std::io::Result<ExitStatus>>();
    let waiter = thread::spawn(move || {
        let _ = done_tx.send(child.wait());
    });
    let status = match done_rx.recv_timeout(timeout) {
        Ok(Ok(status)) if status.success() => HookStatus::Succeeded,
        Ok(Ok(status)) => HookStatus::Failed {
            code: status.code(),
        },
        Ok(Err(e)) => HookStatus::SpawnFailed(e.to_string()),
        Err(_) => HookStatus::TimedOut,
    };
    // Whatever happened, nothing of the hook may survive it; then the pipes close.
    crate::child::signal_group(pgid, rustix::process::Signal::KILL);
    let _ = waiter.join();
    for reader in readers {
        let _ = reader.join();
    }
    let capture = capture.lock().map(|c| Capture {
        kept: c.kept.clone(),
        dropped: c.dropped,
    });
    outcome(status, &capture.unwrap_or_default())
}
