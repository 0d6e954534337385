//! Per-issue workspaces (SPEC 9, 15.2): keys, containment, creation and reuse, hooks, removal,
//! orphan and age reports, and the disk guard.
//!
//! Every path handed out is a direct child of the canonical root, checked without following a
//! symlink at the workspace path: a symlink or a non-directory there is refused, never
//! replaced or followed.
//!
//! The daemon marks each workspace it creates (an empty file named after the key under
//! `<root>/.symphony/created/`, outside the workspace so a clone into it still finds it
//! empty). A directory at a workspace path without that mark was not made here: it is neither
//! used nor removed, only reported. The default root (under the temporary directory, shared
//! with other users) is created with mode 0700 and refused when it is a symlink or belongs to
//! another user.

mod disk;
mod hooks;
mod key;

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use disk::DiskGuard;
pub use hooks::{HookContext, HookKind, HookOutcome, HookStatus, OUTPUT_LIMIT, hook_env, run_hook};
pub use key::workspace_key;

use crate::host::{EntryKind, Host, LocalHost};
use crate::workflow::HooksConfig;

/// Why a workspace could not be used.
#[derive(Debug)]
pub enum WorkspaceError {
    /// The root cannot be created or resolved.
    Root {
        /// The configured root.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The path is not a direct child of the root.
    OutsideRoot {
        /// The offending path.
        path: PathBuf,
    },
    /// A symlink sits at the workspace path.
    Symlink {
        /// The workspace path.
        path: PathBuf,
    },
    /// Something that is not a directory sits at the workspace path.
    NotADirectory {
        /// The workspace path.
        path: PathBuf,
    },
    /// A filesystem operation failed.
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// `after_create` or `before_run` failed or timed out: the attempt fails.
    Hook(Box<HookOutcome>),
    /// A directory at the workspace path that the daemon did not create.
    NotOurs {
        /// The workspace path.
        path: PathBuf,
        /// The mark that would say otherwise.
        marker: PathBuf,
    },
}

impl fmt::Display for WorkspaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Root { path, source } => {
                write!(f, "workspace root {} is unusable: {source}", path.display())
            }
            Self::OutsideRoot { path } => {
                write!(
                    f,
                    "workspace path {} is outside the workspace root",
                    path.display()
                )
            }
            Self::Symlink { path } => write!(
                f,
                "refusing workspace {}: it is a symlink (remove it by hand if it is meant to \
                 be there)",
                path.display()
            ),
            Self::NotADirectory { path } => write!(
                f,
                "refusing workspace {}: something that is not a directory is in the way",
                path.display()
            ),
            Self::Io {
                action,
                path,
                source,
            } => write!(f, "cannot {action} {}: {source}", path.display()),
            Self::Hook(outcome) => f.write_str(&outcome.describe()),
            Self::NotOurs { path, marker } => write!(
                f,
                "{} exists but symphony did not create it (no mark at {}): it is left alone; \
                 move it away, or create that mark to hand it over",
                path.display(),
                marker.display()
            ),
        }
    }
}

impl std::error::Error for WorkspaceError {}

/// A workspace ready for an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    /// The workspace directory: the agent's cwd.
    pub path: PathBuf,
    /// Whether this call created it (and ran `after_create`).
    pub created_now: bool,
}

/// What removing a workspace did.
#[derive(Debug)]
pub struct Removal {
    /// The path.
    pub path: PathBuf,
    /// Whether something was there to remove.
    pub existed: bool,
    /// The `before_remove` run, when there was one (its failure does not stop removal).
    pub hook: Option<HookOutcome>,
}

/// One issue, as the workspace manager needs it.
#[derive(Clone, Copy, Debug)]
pub struct IssueRef<'a> {
    /// Tracker id.
    pub id: &'a str,
    /// Human-readable key: names the directory.
    pub identifier: &'a str,
}

/// Workspaces under one root on one host, with the hooks of one workflow version.
#[derive(Clone, Debug)]
pub struct WorkspaceManager {
    root: PathBuf,
    hooks: HooksConfig,
    host: Arc<dyn Host>,
}

fn io_error<'p>(
    action: &'static str,
    path: &'p Path,
) -> impl FnOnce(io::Error) -> WorkspaceError + 'p {
    move |source| WorkspaceError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// The directory under the root that holds the marks (a key never starts with `.`).
const MARKS_DIR: &str = ".symphony";

impl WorkspaceManager {
    /// Creates the root if needed and resolves it once (symlinks in it are followed here, and
    /// only here), on this machine.
    pub fn new(root: &Path, hooks: HooksConfig) -> Result<Self, WorkspaceError> {
        Self::on(Arc::new(LocalHost), root, hooks)
    }

    /// [`Self::new`] on `host`.
    pub fn on(
        host: Arc<dyn Host>,
        root: &Path,
        hooks: HooksConfig,
    ) -> Result<Self, WorkspaceError> {
        let fail = |source| WorkspaceError::Root {
            path: root.to_owned(),
            source,
        };
        host.create_dir_all(root).map_err(fail)?;
        let root = host.canonicalize(root).map_err(fail)?;
        Ok(Self { root, hooks, host })
    }

    /// [`Self::new`] for a root in a directory other users can write to (the default, under
    /// `$TMPDIR`): the last component is created with mode 0700, and refused when it is a
    /// symlink, not a directory, or owned by another user (someone could have planted it).
    pub fn new_private(root: &Path, hooks: HooksConfig) -> Result<Self, WorkspaceError> {
        Self::private_on(Arc::new(LocalHost), root, hooks)
    }

    /// [`Self::new_private`] on `host`.
    pub fn private_on(
        host: Arc<dyn Host>,
        root: &Path,
        hooks: HooksConfig,
    ) -> Result<Self, WorkspaceError> {
        let fail = |source| WorkspaceError::Root {
            path: root.to_owned(),
            source,
        };
        let refuse = |why: String| fail(io::Error::new(io::ErrorKind::PermissionDenied, why));
        if let Some(parent) = root.parent() {
            host.create_dir_all(parent).map_err(fail)?;
        }
        match host.create_dir(root, true) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(fail(source)),
        }
        let entry = host
            .entry(root)
            .map_err(fail)?
            .ok_or_else(|| fail(io::ErrorKind::NotFound.into()))?;
        if entry.kind == EntryKind::Symlink {
            return Err(refuse(
                "the default workspace root is a symlink; remove it or set workspace.root".into(),
            ));
        }
        if entry.kind != EntryKind::Dir {
            return Err(refuse(
                "the default workspace root is not a directory".into(),
            ));
        }
        let me = rustix::process::geteuid().as_raw();
        if entry.uid != me {
            return Err(refuse(format!(
                "the default workspace root belongs to uid {}, not to this user (uid {me}); \
                 remove it or set workspace.root",
                entry.uid
            )));
        }
        Self::on(host, root, hooks)
    }

    /// The host the workspaces live on.
    pub fn host(&self) -> &Arc<dyn Host> {
        &self.host
    }

    /// Where the mark of the workspace with `key` lives.
    fn mark(&self, key: &str) -> PathBuf {
        self.root.join(MARKS_DIR).join("created").join(key)
    }

    fn set_mark(&self, key: &str, identifier: &str) -> Result<(), WorkspaceError> {
        let mark = self.mark(key);
        if let Some(dir) = mark.parent() {
            self.host
                .create_dir_all(dir)
                .map_err(io_error("create", dir))?;
        }
        let host = &self.host;
        host.write_file(&mark, identifier.as_bytes(), false)
            .map_err(io_error("mark", &mark))
    }

    /// Whether the daemon created the workspace with `key` (a regular file, not a symlink).
    fn is_ours(&self, key: &str) -> bool {
        let entry = self.host.entry(&self.mark(key));
        entry.is_ok_and(|e| e.is_some_and(|e| e.kind == EntryKind::File))
    }

    fn check_ours(&self, path: &Path) -> Result<(), WorkspaceError> {
        let key = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if self.is_ours(key) {
            Ok(())
        } else {
            Err(WorkspaceError::NotOurs {
                path: path.to_owned(),
                marker: self.mark(key),
            })
        }
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The hooks in force.
    pub fn hooks(&self) -> &HooksConfig {
        &self.hooks
    }

    /// The workspace path for an identifier: always a direct child of the root.
    pub fn path_for(&self, identifier: &str) -> PathBuf {
        self.root.join(workspace_key(identifier))
    }

    /// Free space on the filesystem holding the root, in MiB (the disk guard's reading).
    pub fn free_space_mb(&self) -> io::Result<u64> {
        self.host.free_space_mb(&self.root)
    }

    /// Checks that `path` is a direct child of the root and a real directory (not a symlink).
    /// Called before an agent is launched there (SPEC 9.5 invariants 1 and 2).
    pub fn verify(&self, path: &Path) -> Result<(), WorkspaceError> {
        if path.parent() != Some(self.root.as_path())
            || path
                .file_name()
                .is_none_or(|name| name == "." || name == "..")
        {
            return Err(WorkspaceError::OutsideRoot {
                path: path.to_owned(),
            });
        }
        let entry = self.host.entry(path).map_err(io_error("inspect", path))?;
        match entry.map(|e| e.kind) {
            None => Err(io_error("inspect", path)(io::ErrorKind::NotFound.into())),
            Some(EntryKind::Symlink) => Err(WorkspaceError::Symlink {
                path: path.to_owned(),
            }),
            Some(EntryKind::Dir) => Ok(()),
            Some(_) => Err(WorkspaceError::NotADirectory {
                path: path.to_owned(),
            }),
        }
    }

    fn hook_env(&self, context: &HookContext<'_>) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
        let mut env = hook_env(std::env::vars_os(), &self.hooks.env, context);
        env.extend((self.hooks.repo_env.iter()).map(|(name, value)| (name.into(), value.into())));
        env
    }

    fn run(&self, kind: HookKind, context: &HookContext<'_>) -> Option<HookOutcome> {
        let script = match kind {
            HookKind::AfterCreate => self.hooks.after_create.as_deref(),
            HookKind::BeforeRun => self.hooks.before_run.as_deref(),
            HookKind::AfterRun => self.hooks.after_run.as_deref(),
            HookKind::BeforeRemove => self.hooks.before_remove.as_deref(),
        }?;
        tracing::info!(
            issue_id = context.issue_id,
            issue_identifier = context.identifier,
            hook = kind.name(),
            "hook started"
        );
        let outcome = run_hook(
            self.host.as_ref(),
            kind,
            script,
            context,
            self.hook_env(context),
            Duration::from_millis(self.hooks.timeout_ms),
        );
        crate::audit::record(crate::audit::Entry {
            kind: "hook_run".into(),
            issue: Some(context.identifier.to_owned()),
            data: serde_json::json!({"hook": kind.name(), "ok": outcome.succeeded(),
                "result": outcome.describe(), "elapsed_ms": outcome.elapsed.as_millis() as u64}),
            ..crate::audit::Entry::default()
        });
        if outcome.succeeded() {
            tracing::info!(
                issue_id = context.issue_id,
                issue_identifier = context.identifier,
                hook = kind.name(),
                elapsed_ms = outcome.elapsed.as_millis() as u64,
                "hook succeeded"
            );
        } else {
            tracing::warn!(
                issue_id = context.issue_id,
                issue_identifier = context.identifier,
                hook = kind.name(),
                fatal = kind.is_fatal(),
                output = %outcome.output,
                dropped_bytes = outcome.dropped_bytes,
                "{}",
                outcome.describe()
            );
        }
        Some(outcome)
    }

    /// SPEC 9.2 plus the `after_create` and `before_run` hooks: the workspace for `issue`,
    /// created when missing. A failing `after_create` removes the half-made directory (so the
    /// next attempt runs it again); a failing `before_run` leaves the workspace as it is.
    pub fn prepare(
        &self,
        issue: IssueRef<'_>,
        attempt: Option<u32>,
    ) -> Result<Prepared, WorkspaceError> {
        let path = self.path_for(issue.identifier);
        let existing = self.host.entry(&path).map_err(io_error("inspect", &path))?;
        let created_now = if existing.is_some() {
            self.verify(&path)?;
            self.check_ours(&path)?;
            false
        } else {
            // `create_dir`, not `create_dir_all`: the parent is the root, which exists.
            let host = &self.host;
            host.create_dir(&path, false)
                .map_err(io_error("create", &path))?;
            self.verify(&path)?;
            let key = workspace_key(issue.identifier);
            if let Err(e) = self.set_mark(&key, issue.identifier) {
                let _ = self.host.remove_dir(&path);
                return Err(e);
            }
            true
        };
        let context = HookContext {
            issue_id: issue.id,
            identifier: issue.identifier,
            workspace: &path,
            attempt,
        };
        if created_now
            && let Some(outcome) = self.run(HookKind::AfterCreate, &context)
            && !outcome.succeeded()
        {
            match self.host.remove_dir_all(&path) {
                Ok(()) => {
                    let mark = self.mark(&workspace_key(issue.identifier));
                    let _ = self.host.remove_file(&mark);
                }
                Err(e) => tracing::warn!(
                    issue_identifier = issue.identifier,
                    "could not remove the half-created workspace {}: {e}",
                    path.display()
                ),
            }
            return Err(WorkspaceError::Hook(Box::new(outcome)));
        }
        if let Some(outcome) = self.run(HookKind::BeforeRun, &context)
            && !outcome.succeeded()
        {
            return Err(WorkspaceError::Hook(Box::new(outcome)));
        }
        Ok(Prepared { path, created_now })
    }

    /// The `after_run` hook; its failure is logged and ignored (SPEC 9.4).
    pub fn after_run(&self, issue: IssueRef<'_>, attempt: Option<u32>) -> Option<HookOutcome> {
        let path = self.path_for(issue.identifier);
        self.verify(&path).ok()?;
        let context = HookContext {
            issue_id: issue.id,
            identifier: issue.identifier,
            workspace: &path,
            attempt,
        };
        self.run(HookKind::AfterRun, &context)
    }

    /// Removes the workspace of `issue` after `before_remove` (whose failure is ignored). A
    /// symlink at the path is unlinked without being followed.
    pub fn remove(&self, issue: IssueRef<'_>) -> Result<Removal, WorkspaceError> {
        let path = self.path_for(issue.identifier);
        let entry = match self.host.entry(&path) {
            Ok(Some(entry)) => entry,
            Ok(None) => {
                return Ok(Removal {
                    path,
                    existed: false,
                    hook: None,
                });
            }
            Err(e) => return Err(io_error("inspect", &path)(e)),
        };
        let key = workspace_key(issue.identifier);
        if !self.is_ours(&key) {
            // Not made here (a directory, a file or a symlink someone else put there): leave
            // it, and say so.
            return Err(WorkspaceError::NotOurs {
                marker: self.mark(&key),
                path,
            });
        }
        if entry.kind != EntryKind::Dir {
            // A symlink or a file where our workspace was: remove the entry itself, never
            // what it points at.
            let host = &self.host;
            host.remove_file(&path).map_err(io_error("remove", &path))?;
            let _ = self.host.remove_file(&self.mark(&key));
            return Ok(Removal {
                path,
                existed: true,
                hook: None,
            });
        }
        let context = HookContext {
            issue_id: issue.id,
            identifier: issue.identifier,
            workspace: &path,
            attempt: None,
        };
        let hook = self.run(HookKind::BeforeRemove, &context);
        let host = &self.host;
        host.remove_dir_all(&path)
            .map_err(io_error("remove", &path))?;
        let _ = self.host.remove_file(&self.mark(&key));
        Ok(Removal {
            path,
            existed: true,
            hook,
        })
    }

    /// Directories under the root that belong to none of `known` identifiers: reported at
    /// startup, never deleted automatically.
    pub fn orphans<'a>(
        &self,
        known: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<PathBuf>, WorkspaceError> {
        let keys: BTreeSet<String> = known.into_iter().map(workspace_key).collect();
        let mut orphans: Vec<PathBuf> = self
            .entries()?
            .into_iter()
            .filter(|(name, _)| !keys.contains(name))
            .map(|(_, path)| path)
            .collect();
        orphans.sort();
        Ok(orphans)
    }

    /// Workspaces untouched for `max_age` whose identifier is not in `keep` (the issues still
    /// active): the candidates for `workspace.max_age_days` cleanup.
    pub fn expired<'a>(
        &self,
        max_age: Duration,
        now: SystemTime,
        keep: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<PathBuf>, WorkspaceError> {
        let keep: BTreeSet<String> = keep.into_iter().map(workspace_key).collect();
        let mut expired = Vec::new();
        for (name, path) in self.entries()? {
            // Only what the daemon made is ever a candidate for removal.
            if keep.contains(&name) || !self.is_ours(&name) {
                continue;
            }
            let entry = self.host.entry(&path).map_err(io_error("inspect", &path))?;
            let Some(modified) = entry.map(|e| e.modified) else {
                continue; // gone meanwhile
            };
            if now.duration_since(modified).is_ok_and(|age| age > max_age) {
                expired.push(path);
            }
        }
        expired.sort();
        Ok(expired)
    }

    /// Directory entries of the root: (name, path), directories only, no symlinks.
    fn entries(&self) -> Result<Vec<(String, PathBuf)>, WorkspaceError> {
        let names = self.host.list_dirs(&self.root);
        let names = names.map_err(io_error("list", &self.root))?;
        Ok(names
            .into_iter()
            .filter(|name| name != MARKS_DIR)
            .map(|name| {
                let path = self.root.join(&name);
                (name, path)
            })
            .collect())
    }
}
