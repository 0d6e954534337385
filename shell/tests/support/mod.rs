//! Helpers shared by the integration tests.

#![allow(dead_code)] // each test binary uses a different part

use std::path::PathBuf;

/// The pinned version of `@openai/codex` that `.ci/test` installs.
pub(crate) const CODEX_VERSION: &str = "0.169.0";

/// The real codex CLI: `$SYMPHONY_TEST_CODEX`, else where `.ci/test` caches it.
pub(crate) fn codex_binary() -> PathBuf {
    let path = std::env::var_os("SYMPHONY_TEST_CODEX").map_or_else(
        || {
            let home = std::env::var_os("HOME").unwrap_or_default();
            PathBuf::from(home).join(format!(
                ".cache/symphony-rs/codex-{CODEX_VERSION}/node_modules/.bin/codex"
            ))
        },
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "the real codex CLI is not installed at {}: run ./.ci/test (it installs it)",
        path.display()
    );
    path
}

/// Whether process `pid` has terminated, waiting up to 5 s on a pidfd (readable once the
/// process has exited; SIGKILL is delivered at once but the kernel finishes the exit a moment
/// later). An id that no longer exists was reaped already.
pub(crate) fn process_is_gone(pid: u32) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    use rustix::process::{Pid, PidfdFlags, pidfd_open};
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return true;
    };
    let Ok(fd) = pidfd_open(pid, PidfdFlags::empty()) else {
        return true;
    };
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let bound = Timespec {
        tv_sec: 5,
        tv_nsec: 0,
    };
    poll(&mut fds, Some(&bound)).is_ok_and(|ready| ready == 1)
}
