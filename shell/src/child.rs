//! What every child process symphony starts (hooks, agents) has in common: an environment built
//! from an allowlist, and a process group that can be signalled as a whole.

use std::ffi::OsString;

/// The host variables a child gets: those in `allowlist`, any `LC_*`, and the ones in `named`.
/// `secrets` are removed unless `named` asks for them explicitly.
pub(crate) fn allowlisted_env(
    host: impl IntoIterator<Item = (OsString, OsString)>,
    allowlist: &[&str],
    named: &[String],
    secrets: &[&str],
) -> Vec<(OsString, OsString)> {
    host.into_iter()
        .filter(|(name, _)| {
            name.to_str().is_some_and(|name| {
                named.iter().any(|n| n == name)
                    || ((allowlist.contains(&name) || name.starts_with("LC_"))
                        && !secrets.contains(&name))
            })
        })
        .collect()
}

/// Sends `signal` to every process in the group `pgid` (the group leader's pid). Errors mean
/// the group is already gone.
pub(crate) fn signal_group(pgid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(pgid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

/// Process groups of hooks still running, so that a stopping daemon can end them.
static LIVE_GROUPS: std::sync::Mutex<std::collections::BTreeSet<u32>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// Set once the daemon is stopping: running hooks are terminated, new ones too.
static STOPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A live process group, registered until dropped.
pub(crate) struct LiveGroup(u32);

impl LiveGroup {
    pub(crate) fn register(pgid: u32) -> Self {
        if let Ok(mut live) = LIVE_GROUPS.lock() {
            live.insert(pgid);
        }
        Self(pgid)
    }
}

impl Drop for LiveGroup {
    fn drop(&mut self) {
        if let Ok(mut live) = LIVE_GROUPS.lock() {
            live.remove(&self.0);
        }
    }
}

/// Whether the daemon is stopping.
pub(crate) fn stopping() -> bool {
    STOPPING.load(std::sync::atomic::Ordering::Acquire)
}

/// The daemon is stopping: every running hook's group gets TERM now (and KILL two seconds
/// later, from its own loop); hooks started from now on are ended the same way.
pub(crate) fn stop_all_groups() {
    STOPPING.store(true, std::sync::atomic::Ordering::Release);
    signal_live_groups(rustix::process::Signal::TERM);
}

/// Last resort on the way out: KILL every group still registered.
pub(crate) fn kill_all_groups() {
    signal_live_groups(rustix::process::Signal::KILL);
}

/// Sends `signal` to every registered group (a copy of the set is taken first, so a hook
/// ending meanwhile does not wait on the lock).
fn signal_live_groups(signal: rustix::process::Signal) {
    let live: Vec<u32> = LIVE_GROUPS
        .lock()
        .map(|live| live.iter().copied().collect())
        .unwrap_or_default();
    for pgid in live {
        signal_group(pgid, signal);
    }
}
