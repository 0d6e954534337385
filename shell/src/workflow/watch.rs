//! Reload (SPEC 6.2): a thread that re-reads WORKFLOW.md on an interval and reports content
//! changes. Content is compared byte for byte (not by mtime), so editors that rewrite a file
//! without changing it, or change it within one mtime tick, are handled alike; the read is
//! skipped only while the file's metadata is unchanged and its timestamps are over two seconds
//! old. Only a regular file of at most [`super::MAX_WORKFLOW_BYTES`] is read. A change is acted on once two
//! consecutive reads agree, so a file caught half-written is not reported as broken; with
//! [`DEFAULT_INTERVAL`] an edit is applied within about half a second.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::error::ErrorClass;
use super::{Env, Overrides, Workflow, WorkflowError, parse};

/// How often the file is read by default.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(250);

/// What the watcher saw.
#[derive(Debug)]
pub enum WatchEvent {
    /// The file changed and loads: apply it to future decisions.
    Reloaded(Box<Workflow>),
    /// The file changed (or vanished) and does not load: keep the last good config.
    Invalid(WorkflowError),
}

impl WatchEvent {
    /// The event the orchestrator core gets for this: a reload carries the new scheduling
    /// config; an invalid file pauses dispatch and keeps the last good config (SPEC 6.2, 6.3).
    pub fn core_event(&self) -> symphony_core::Event {
        match self {
            Self::Reloaded(workflow) => symphony_core::Event::WorkflowReloaded {
                config: workflow.config.scheduler(),
            },
            Self::Invalid(error) => symphony_core::Event::WorkflowInvalid {
                error: error.to_core(),
            },
        }
    }
}

/// A running watcher. Dropping it stops the thread.
#[derive(Debug)]
pub struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Signalled when the thread ends.
    done: std::sync::mpsc::Receiver<()>,
}

impl Watcher {
    /// Watches `path`, checking every `interval`. `known` is the text of the workflow
    /// already in force ([`Workflow::source`]), so an unchanged file reports nothing.
    pub fn spawn(
        path: PathBuf,
        env: Arc<dyn Env + Send + Sync>,
        overrides: Overrides,
        interval: Duration,
        known: Option<String>,
        mut on_change: impl FnMut(WatchEvent) + Send + 'static,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let (done_tx, done) = std::sync::mpsc::channel();
        let thread = thread::Builder::new()
            .name("workflow-watch".into())
            .spawn(move || {
                let mut last: Option<Vec<u8>> = known.map(String::into_bytes);
                let mut pending = None;
                let mut missing_reported = false;
                let mut seen: Option<Fingerprint> = None;
                while !stopping.load(Ordering::Acquire) {
                    thread::park_timeout(interval);
                    if stopping.load(Ordering::Acquire) {
                        break;
                    }
                    // Unchanged metadata, and old enough that a later write would have moved
                    // the timestamps: the content is what was read last time.
                    let now = Fingerprint::of(&path);
                    if now.is_some()
                        && now == seen
                        && now.as_ref().is_some_and(Fingerprint::settled)
                    {
                        continue;
                    }
                    seen = now;
                    let bytes = match super::read_regular_file(&path, super::MAX_WORKFLOW_BYTES) {
                        Ok(bytes) => bytes,
                        Err(e) => {
                            // Report an unreadable file once; reload when it is back.
                            if !missing_reported {
                                missing_reported = true;
                                last = None;
                                pending = None;
                                on_change(WatchEvent::Invalid(WorkflowError::new(
                                    ErrorClass::MissingWorkflowFile,
                                    &path,
                                    format!("cannot read the workflow file: {e}"),
                                )));
                            }
                            continue;
                        }
                    };
                    missing_reported = false;
                    if last.as_ref() == Some(&bytes) {
                        pending = None;
                        continue;
                    }
                    if pending.as_ref() != Some(&bytes) {
                        pending = Some(bytes); // confirm on the next read
                        continue;
                    }
                    pending = None;
                    last = Some(bytes.clone());
                    let event = match String::from_utf8(bytes) {
                        Ok(text) => match parse(&text, &path, env.as_ref(), &overrides) {
                            // The same validation as at startup and in `check`.
                            Ok(workflow) => match workflow.prompt.validate() {
                                Ok(_) => WatchEvent::Reloaded(Box::new(workflow)),
                                Err(error) => WatchEvent::Invalid(error),
                            },
                            Err(error) => WatchEvent::Invalid(error),
                        },
                        Err(_) => WatchEvent::Invalid(WorkflowError::new(
                            ErrorClass::WorkflowParseError,
                            &path,
                            "the file is not valid UTF-8",
                        )),
                    };
                    on_change(event);
                }
                let _ = done_tx.send(());
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
            done,
        })
    }
}

/// What identifies a version of the file without reading it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Fingerprint {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Fingerprint {
    fn of(path: &std::path::Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt as _;
        let m = std::fs::metadata(path).ok()?;
        Some(Self {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }

    /// Changed more than two seconds ago: file-system timestamps are coarser than a
    /// nanosecond, so a write soon after a read could leave them equal; later ones cannot.
    fn settled(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        now - self.mtime.0.max(self.ctime.0) > 2
    }
}

impl Drop for Watcher {
    /// Stops the thread and waits for it, at most two seconds: a read blocked in the kernel
    /// (a hung network file system) must not hold up shutdown.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            if self.done.recv_timeout(Duration::from_secs(2)).is_ok() {
                let _ = thread.join();
            }
        }
    }
}
