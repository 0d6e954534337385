//! The execution seam: every process the daemon starts for an issue (hooks, agents, `doctor`'s
//! version probes) and every workspace filesystem operation goes through a [`Host`].
//! [`LocalHost`] is this machine; [`Sandboxed`] wraps a host's agent launches in a sandbox.
//! Remote hosts (SSH) plug in here too; the workspace manager, the hook runner and the agent
//! runners do not change for them.
//!
//! `.ci/run` keeps the seam whole: no `Command::new` outside `host/`, and no `std::fs` in the
//! workspace manager, the agent runners or the worker.

mod local;
pub mod sandbox;
pub mod ssh;

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::SystemTime;

pub use local::{INSTANCE_VAR, LocalHost, kill_leftovers, on_path, set_instance_marker, version};
pub use sandbox::Sandboxed;

/// A process to start: `program` with `args` in `cwd`, with exactly `env` as its environment
/// (the caller has already filtered it), stdout and stderr piped, in a process group of its
/// own so that it and everything it starts can be signalled together.
#[derive(Clone, Debug)]
pub struct Launch<'a> {
    /// The program (`sh`, `bash`, an agent CLI), looked up on `PATH` when it has no `/`.
    pub program: &'a str,
    /// Its arguments.
    pub args: &'a [&'a str],
    /// Working directory.
    pub cwd: &'a Path,
    /// The whole environment.
    pub env: Vec<(OsString, OsString)>,
    /// Whether stdin is a pipe (agents) or `/dev/null` (hooks, probes).
    pub stdin: bool,
    /// Directories the process writes besides `cwd` (an agent runtime's own home): a sandbox
    /// keeps them writable.
    pub writable: &'a [PathBuf],
}

/// What is at a path, without following a symlink there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link (never followed).
    Symlink,
    /// Anything else (socket, device, fifo).
    Other,
}

/// An entry's kind, owner and modification time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// What it is.
    pub kind: EntryKind,
    /// Owner's user id.
    pub uid: u32,
    /// Last modification.
    pub modified: SystemTime,
}

/// Where processes run and workspaces live.
pub trait Host: Send + Sync + fmt::Debug {
    /// A short name for logs and errors (`local`).
    fn name(&self) -> &str;

    /// Starts `launch` (see [`Launch`]).
    fn launch(&self, launch: &Launch<'_>) -> io::Result<Child>;

    /// What is at `path`, not following a symlink; `None` when nothing is.
    fn entry(&self, path: &Path) -> io::Result<Option<Entry>>;

    /// Creates one directory (its parent must exist); with `private`, mode 0700.
    fn create_dir(&self, path: &Path, private: bool) -> io::Result<()>;

    /// Creates a directory and its missing parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;

    /// The absolute path with every symlink resolved.
    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf>;

    /// Writes `bytes` to `path`, replacing what was there; `append` adds at the end instead
    /// (creating the file when missing).
    fn write_file(&self, path: &Path, bytes: &[u8], append: bool) -> io::Result<()>;

    /// Removes a file or a symlink (never what it points at).
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Removes an empty directory.
    fn remove_dir(&self, path: &Path) -> io::Result<()>;

    /// Removes a directory and everything in it, not following symlinks inside.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;

    /// Names of the directories (not symlinks to them) directly in `path`, in no order;
    /// names that are not UTF-8 are left out.
    fn list_dirs(&self, path: &Path) -> io::Result<Vec<String>>;

    /// Free space for unprivileged users on the filesystem holding `path`, in MiB.
    fn free_space_mb(&self, path: &Path) -> io::Result<u64>;
}
