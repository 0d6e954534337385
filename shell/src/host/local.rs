//! [`LocalHost`]: processes and files on this machine.

use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{Entry, EntryKind, Host, Launch};

/// This machine.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalHost;

/// Whether `program` is an executable on `$PATH` (or a path that exists).
pub fn on_path(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).exists();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// The first line of `program --version`, within a few seconds.
pub fn version(program: &str) -> Option<String> {
    let cwd = std::env::current_dir().ok()?;
    let mut child = LocalHost
        .launch(&Launch {
            program,
            args: &["--version"],
            cwd: &cwd,
            env: std::env::vars_os().collect(),
            stdin: false,
            writable: &[],
        })
        .ok()?;
    drop(child.stderr.take()); // not read: closed, so it cannot fill and block
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take()?;
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = io::Read::read_to_string(&mut io::BufReader::new(stdout), &mut text);
        let _ = tx.send(text);
    });
    let text = rx.recv_timeout(Duration::from_secs(10)).ok();
    let _ = child.kill();
    let _ = child.wait();
    text.and_then(|t| t.lines().next().map(str::to_owned))
}

/// The variable every process this daemon starts carries, naming the daemon's state root, so a
/// later daemon on the same state root can find what a killed one left running.
pub const INSTANCE_VAR: &str = "SYMPHONY_INSTANCE";

static INSTANCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Marks every process started from now on with `marker` (once per process).
pub fn set_instance_marker(marker: String) {
    let _ = INSTANCE.set(marker);
}

/// Kills the process group of every process (but this one) whose environment carries
/// `marker`: what a daemon on the same state root that died without stopping them left behind.
/// Returns the groups killed. Processes of other users cannot be read and are left alone.
pub fn kill_leftovers(marker: &str) -> Vec<u32> {
    let needle = format!("{INSTANCE_VAR}={marker}");
    let me = std::process::id();
    let mut groups = std::collections::BTreeSet::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let marked = (environ.split(|b| *b == 0)).any(|var| var == needle.as_bytes());
        let group = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .and_then(|pid| rustix::process::getpgid(Some(pid)).ok());
        if let (true, Some(group)) = (marked, group) {
            // Never our own group: a daemon started by hand shares its shell's.
            if rustix::process::getpgid(None).ok() != Some(group) {
                groups.insert(group.as_raw_pid());
            }
        }
    }
    (groups.into_iter())
        .filter(|raw| {
            rustix::process::Pid::from_raw(*raw).is_some_and(|group| {
                rustix::process::kill_process_group(group, rustix::process::Signal::KILL).is_ok()
            })
        })
        .map(|raw| raw.unsigned_abs())
        .collect()
}

impl Host for LocalHost {
    fn name(&self) -> &str {
        "local"
    }

    fn launch(&self, launch: &Launch<'_>) -> io::Result<Child> {
        let mut command = Command::new(launch.program);
        command
            .args(launch.args)
            .current_dir(launch.cwd)
            .env_clear()
            .envs(launch.env.iter().map(|(k, v)| (k, v)));
        if let Some(marker) = INSTANCE.get() {
            command.env(INSTANCE_VAR, marker);
        }
        command
            .stdin(if launch.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
    }

    fn entry(&self, path: &Path) -> io::Result<Option<Entry>> {
        let meta = match std::fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let file_type = meta.file_type();
        let kind = if file_type.is_symlink() {
            EntryKind::Symlink
        } else if file_type.is_dir() {
            EntryKind::Dir
        } else if file_type.is_file() {
            EntryKind::File
        } else {
            EntryKind::Other
        };
        Ok(Some(Entry {
            kind,
            uid: meta.uid(),
            modified: meta.modified()?,
        }))
    }

    fn create_dir(&self, path: &Path, private: bool) -> io::Result<()> {
        let mut builder = std::fs::DirBuilder::new();
        if private {
            builder.mode(0o700);
        }
        builder.create(path)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        std::fs::canonicalize(path)
    }

    fn write_file(&self, path: &Path, bytes: &[u8], append: bool) -> io::Result<()> {
        if !append {
            return std::fs::write(path, bytes);
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?
            .write_all(bytes)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(path)
    }

    fn list_dirs(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if let (true, Some(name)) = (is_dir, entry.file_name().to_str()) {
                out.push(name.to_owned());
            }
        }
        Ok(out)
    }

    fn free_space_mb(&self, path: &Path) -> io::Result<u64> {
        let stats = rustix::fs::statvfs(path)?;
        Ok(stats.f_bavail.saturating_mul(stats.f_frsize) / (1024 * 1024))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_read_without_following_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let host = LocalHost;
        let sub = dir.path().join("sub");
        host.create_dir(&sub, true).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&sub, &link).unwrap();
        let file = dir.path().join("file");
        host.write_file(&file, b"a", false).unwrap();
        host.write_file(&file, b"b", true).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"ab");
        assert_eq!(host.entry(&sub).unwrap().unwrap().kind, EntryKind::Dir);
        assert_eq!(host.entry(&link).unwrap().unwrap().kind, EntryKind::Symlink);
        assert_eq!(host.entry(&file).unwrap().unwrap().kind, EntryKind::File);
        assert_eq!(host.entry(&dir.path().join("none")).unwrap(), None);
        let mode = std::fs::metadata(&sub).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // Directories only, and a symlink to one is not one.
        assert_eq!(host.list_dirs(dir.path()).unwrap(), ["sub"]);
        assert!(host.free_space_mb(dir.path()).unwrap() > 0);
    }

    #[test]
    fn a_launch_gets_exactly_its_environment_and_its_own_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let launch = Launch {
            program: "sh",
            // Field 5 of /proc/<pid>/stat is the process group.
            args: &["-c", "echo \"$ONLY:$HOME\"; cut -d' ' -f5 /proc/$$/stat"],
            cwd: dir.path(),
            env: vec![
                ("ONLY".into(), "this".into()),
                ("PATH".into(), "/usr/bin:/bin".into()),
            ],
            stdin: false,
            writable: &[],
        };
        let child = LocalHost.launch(&launch).unwrap();
        let pid = child.id();
        let output = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("this:"), "{text}");
        assert_eq!(lines.next().map(str::trim), Some(pid.to_string().as_str()));
    }
}
