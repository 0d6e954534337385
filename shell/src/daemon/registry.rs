//! Where running daemons say where they listen, so `symphony status` finds a local daemon
//! without being told its (often ephemeral) port.
//!
//! Each daemon with an HTTP server writes `<dir>/<pid>.json` (`pid`, `url`, `workflow`,
//! `started_at`) and removes it when it stops. `<dir>` is `$SYMPHONY_RUNTIME_DIR`, else
//! `$XDG_RUNTIME_DIR/symphony`, else `$XDG_STATE_HOME/symphony/daemons` (by default
//! `~/.local/state/symphony/daemons`). Files of processes that are gone (a daemon killed with
//! SIGKILL) are ignored and removed by the next reader.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One running daemon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Its process id.
    pub pid: u32,
    /// Its HTTP server, `http://host:port`.
    pub url: String,
    /// The workflow it runs.
    pub workflow: PathBuf,
    /// When it started (RFC 3339).
    pub started_at: String,
}

/// The directory daemons register in.
pub fn dir() -> Option<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("SYMPHONY_RUNTIME_DIR")
        .or_else(|| var("XDG_RUNTIME_DIR").map(|d| d.join("symphony")))
        .or_else(|| var("XDG_STATE_HOME").map(|d| d.join("symphony/daemons")))
        .or_else(|| var("HOME").map(|h| h.join(".local/state/symphony/daemons")))
}

/// This daemon's registration; dropping it removes the file.
#[derive(Debug)]
pub struct Registration {
    path: PathBuf,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Registers this process as a daemon serving `url` for `workflow`. Best effort: `None` (and
/// nothing else) when the directory cannot be written.
pub fn register(url: &str, workflow: &Path, started_at: String) -> Option<Registration> {
    use std::os::unix::fs::DirBuilderExt as _;
    let dir = dir()?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .ok()?;
    let entry = Entry {
        pid: std::process::id(),
        url: url.to_owned(),
        workflow: std::path::absolute(workflow).unwrap_or_else(|_| workflow.to_owned()),
        started_at,
    };
    let path = dir.join(format!("{}.json", entry.pid));
    let tmp = dir.join(format!(".{}.json.tmp", entry.pid));
    std::fs::write(&tmp, serde_json::to_vec(&entry).ok()?).ok()?;
    std::fs::rename(&tmp, &path).ok()?;
    Some(Registration { path })
}

/// The daemons running now, newest first; stale files are removed.
pub fn running() -> Vec<Entry> {
    let Some(dir) = dir() else {
        return Vec::new();
    };
    let Ok(read) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for file in read.flatten() {
        let path = file.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let entry: Option<Entry> = crate::workflow::read_regular_file(&path, 64 * 1024)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        match entry {
            Some(entry) if alive(entry.pid) => found.push(entry),
            _ => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    found.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.pid.cmp(&a.pid)));
    found
}

fn alive(pid: u32) -> bool {
    i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .is_some_and(|pid| rustix::process::test_kill_process(pid).is_ok())
}
