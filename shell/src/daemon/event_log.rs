//! The event-log file: buffered NDJSON, flushed by the daemon after every batch of events,
//! cut into segments once it passes a size cap.
//!
//! `events.ndjson` is the current segment; `events.ndjson.1` the one before it, up to
//! `events.ndjson.<keep>`; older ones are deleted. Every segment after the first of a run
//! starts with a header that carries the core's state (see `symphony_core::log`), so each file
//! replays on its own and a chain of them replays as one. A file left by an earlier run is
//! moved aside to `.1` the same way instead of being overwritten.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// When to cut a segment and how many old ones to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// Cut once the current segment's records (its header not counted) pass this many bytes.
    pub max_bytes: u64,
    /// Rotated segments kept besides the current one.
    pub keep: u32,
}

impl Default for Rotation {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            keep: 4,
        }
    }
}

/// The open event log.
pub(crate) struct EventLog {
    path: PathBuf,
    file: BufWriter<File>,
    rotation: Rotation,
    /// Bytes of records in the current segment (its header not counted: a checkpoint header
    /// grows with the running issues and must not by itself cause cuts).
    written: u64,
}

/// `path` with `.n` appended.
fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Moves `path` to `path.1`, `path.1` to `path.2`, ... dropping what would pass `keep`.
fn shift(path: &Path, keep: u32) -> io::Result<()> {
    let ignore_missing = |result: io::Result<()>| match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    };
    if keep == 0 {
        return ignore_missing(std::fs::remove_file(path));
    }
    for n in (1..keep).rev() {
        ignore_missing(std::fs::rename(numbered(path, n), numbered(path, n + 1)))?;
    }
    ignore_missing(std::fs::rename(path, numbered(path, 1)))
}

impl EventLog {
    /// Opens a fresh log at `path` starting with `header`; an existing non-empty file is
    /// rotated aside first.
    pub(crate) fn create(path: &Path, header: &str, rotation: Rotation) -> io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        // A regular file (or a character device such as /dev/null); never a directory, which
        // rotation would otherwise move aside, nor a FIFO or socket.
        if let Ok(meta) = std::fs::metadata(path) {
            use std::os::unix::fs::FileTypeExt as _;
            let kind = meta.file_type();
            if !(kind.is_file() || kind.is_char_device()) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a regular file (a directory, FIFO, socket or block device is refused)",
                ));
            }
        }
        if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            shift(path, rotation.keep)?;
        }
        let mut file = BufWriter::new(File::create(path)?);
        writeln!(file, "{header}")?;
        // On disk at once: a segment is never empty, so a daemon killed before its first
        // record still leaves the checkpoint the next one restores from. A failure here (a
        // full disk) shows at the next flush, which pauses recording, not the daemon.
        let _ = file.flush();
        Ok(Self {
            path: path.to_owned(),
            file,
            rotation,
            written: 0,
        })
    }

    /// Appends one line (a record).
    pub(crate) fn line(&mut self, line: &str) -> io::Result<()> {
        writeln!(self.file, "{line}")?;
        self.written += line.len() as u64 + 1;
        Ok(())
    }

    /// Writes buffered lines to the file.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }

    /// Whether the current segment is due to be cut.
    pub(crate) fn full(&self) -> bool {
        self.written >= self.rotation.max_bytes
    }

    /// Closes the current segment and starts the next with `header`.
    pub(crate) fn rotate(&mut self, header: &str) -> io::Result<()> {
        self.flush()?;
        let next = Self::create(&self.path, header, self.rotation)?;
        *self = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_shifts_segments_and_keeps_only_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.ndjson");
        let rotation = Rotation {
            max_bytes: 10,
            keep: 2,
        };
        let long_header = "h".repeat(100);
        let mut log = EventLog::create(&path, &long_header, rotation).unwrap();
        assert!(!log.full(), "a header alone never fills a segment");
        for n in 1..=3 {
            log.line("a record line").unwrap();
            assert!(log.full());
            log.rotate(&format!("h{n}")).unwrap();
        }
        log.line("last").unwrap();
        log.flush().unwrap();
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(path.clone()), "h3\nlast\n");
        assert_eq!(read(numbered(&path, 1)), "h2\na record line\n");
        assert_eq!(read(numbered(&path, 2)), "h1\na record line\n");
        assert!(!numbered(&path, 3).exists(), "older than `keep`: deleted");
    }

    #[test]
    fn a_log_from_an_earlier_run_is_moved_aside_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.ndjson");
        std::fs::write(&path, "old\n").unwrap();
        let log = EventLog::create(&path, "new", Rotation::default()).unwrap();
        drop(log);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        assert_eq!(
            std::fs::read_to_string(numbered(&path, 1)).unwrap(),
            "old\n"
        );
    }
}
