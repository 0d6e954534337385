//! Restart recovery (extension): the shell restores the orchestrator from its event log (the
//! last segment's checkpoint plus the records after it) and then hands it
//! [`crate::Event::Restarted`]: the previous process is gone, and with it every worker.
//!
//! What the previous process knew stays: the retry queue with its due times, held issues and
//! why, token totals per claim and for the day, the pause. What it was doing does not: a live
//! run becomes a retry due at once, keeping its attempt number (a first run becomes attempt 1);
//! a run that was being stopped ends the way its stop decided; a tracker request in flight is
//! forgotten, and a retry that was waiting for its check waits in the queue again. The
//! orchestrator is then fresh for [`crate::Event::Startup`].

use crate::command::{Command, RetryKind};
use crate::event::ExitOutcome;
use crate::issue::IssueId;
use crate::orchestrator::{Lifecycle, Orchestrator, TickPhase};
use crate::state::{Claim, RetryEntry};

/// The error a live run's retry carries.
pub const RESTART_ERROR: &str = "the daemon restarted while this run was live";

impl Orchestrator {
    pub(crate) fn on_restarted(&mut self, out: &mut Vec<Command>) {
        // Stopping workers end as their stop decided, as if they had exited now.
        let stopping: Vec<(IssueId, crate::command::RunId)> = (self.claims.iter())
            .filter_map(|(id, claim)| match claim {
                Claim::Stopping(entry, _) => Some((id.clone(), entry.run)),
                _ => None,
            })
            .collect();
        // Their follow-ups (a retry, a hold) need a running scheduler for a moment.
        self.lifecycle = Lifecycle::Running;
        for (id, run) in stopping {
            let outcome = ExitOutcome::Cancelled {
                reason: RESTART_ERROR.to_owned(),
            };
            self.on_worker_exited(&id, run, &outcome, out);
        }
        let ids: Vec<IssueId> = self.claims.keys().cloned().collect();
        for id in ids {
            match self.claims.get(&id) {
                Some(Claim::Running(entry)) => {
                    // The run's spend up to its last sign of life: the time the daemon was
                    // down is nobody's runtime.
                    let spent = entry.spent(entry.last_activity());
                    let retry = RetryEntry {
                        identifier: entry.issue.identifier.clone(),
                        url: entry.issue.url.clone(),
                        attempt: entry.attempt.unwrap_or(1).max(1),
                        due_at: self.now,
                        error: Some(RESTART_ERROR.to_owned()),
                        checking: None,
                        spent,
                        host: entry.host.clone(),
                    };
                    self.ended_runtime_ms += spent
                        .runtime_ms
                        .saturating_sub(entry.spent_before.runtime_ms);
                    out.push(Command::ScheduleRetry {
                        issue_id: id.clone(),
                        identifier: retry.identifier.clone(),
                        attempt: retry.attempt,
                        due_at: retry.due_at,
                        delay_ms: 0,
                        kind: RetryKind::Restart,
                        error: retry.error.clone(),
                    });
                    self.set_claim(&id, Claim::Retrying(retry));
                }
                Some(Claim::Retrying(entry)) if entry.checking.is_some() => {
                    let mut entry = entry.clone();
                    entry.checking = None;
                    self.set_claim(&id, Claim::Retrying(entry));
                }
                _ => {}
            }
        }
        self.pending.clear();
        self.tick = TickPhase::Idle;
        self.next_poll = None;
        self.lifecycle = Lifecycle::Created;
    }
}
