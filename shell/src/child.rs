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
