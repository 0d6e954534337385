//! The daemon's housekeeping beside the loop: the workspace age sweep the core orders, the
//! disk guard's readings, and the startup report of workspaces that match no issue. Each
//! looks at the disk off the loop's task; none decides when it runs on its own clock.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use symphony_core::Event;

use super::Daemon;
use crate::workspace::IssueRef;

/// Identifiers from the startup terminal listing and the first candidate fetch.
pub(super) struct OrphanReport {
    pub(super) terminal: Option<Vec<String>>,
    pub(super) active: Option<Vec<String>>,
}

impl Daemon {
    /// [`symphony_core::Command::SweepWorkspaces`]: removes the daemon's workspaces untouched for more than
    /// `days` except those of `keep` and any a live run uses. The core decided when and what
    /// to keep; the age is read from the disk here.
    pub(super) fn sweep_old_workspaces(&self, days: u32, keep: &[String]) {
        let bound = Arc::clone(&self.bound);
        let mut keep = keep.to_vec();
        keep.extend(self.workers.values().map(|w| w.identifier.clone()));
        tokio::task::spawn_blocking(move || {
            let max_age = Duration::from_secs(u64::from(days) * 86_400);
            let expired = match bound.workspace.expired(
                max_age,
                SystemTime::now(),
                keep.iter().map(String::as_str),
            ) {
                Ok(expired) => expired,
                Err(e) => return tracing::warn!("age sweep skipped: {e}"),
            };
            for path in expired {
                let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                // The directory name is the key; for removal the key stands in for the
                // identifier (a key maps to itself when it needs no sanitising).
                let issue = IssueRef {
                    id: name,
                    identifier: name,
                };
                if bound.workspace.path_for(name) != path {
                    tracing::warn!(
                        "age sweep: {} left in place (not a plain key)",
                        path.display()
                    );
                    continue;
                }
                match bound.workspace.remove(issue) {
                    Ok(_) => tracing::info!(
                        "age sweep: removed {} (untouched for more than {days} days)",
                        path.display()
                    ),
                    Err(e) => tracing::warn!("age sweep: {e}"),
                }
            }
        });
    }

    /// Reads the free space of the workspace filesystem; a change of state becomes an event.
    pub(super) fn check_disk(&mut self) {
        match self.bound.workspace.free_space_mb() {
            Ok(free) => {
                if let Some(event) = self.disk.observe(free) {
                    tracing::warn!("{event}");
                    self.feed(event);
                }
            }
            Err(e) => tracing::warn!("cannot read free disk space: {e}"),
        }
    }

    /// Collects what the startup requests return, then logs once the workspace directories
    /// that belong to no issue the tracker knows (never deletes them). The terminal listing
    /// and the first candidate fetch together cover every issue in a configured state, so no
    /// extra tracker request is made for this.
    pub(super) fn note_for_orphans(&mut self, event: &Event) {
        let Some(report) = &mut self.orphan_report else {
            return;
        };
        let names = |issues: &[symphony_core::Issue]| -> Vec<String> {
            issues.iter().map(|i| i.identifier.clone()).collect()
        };
        match event {
            Event::TerminalIssuesListed { issues, .. } if report.terminal.is_none() => {
                report.terminal = Some(names(issues));
            }
            Event::CandidatesFetched { issues, .. } if report.active.is_none() => {
                report.active = Some(names(issues));
            }
            Event::TerminalIssuesListFailed { .. } => {
                self.orphan_report = None; // unknown terminal issues: no report
                return;
            }
            _ => return,
        }
        let (Some(terminal), Some(active)) = (&report.terminal, &report.active) else {
            return;
        };
        let known: Vec<String> = terminal.iter().chain(active).cloned().collect();
        self.orphan_report = None;
        let bound = Arc::clone(&self.bound);
        tokio::task::spawn_blocking(move || {
            if let Ok(orphans) = bound.workspace.orphans(known.iter().map(String::as_str)) {
                for orphan in orphans {
                    tracing::warn!(
                        "workspace {} matches no issue in the tracker (left in place)",
                        orphan.display()
                    );
                }
            }
        });
    }
}
