//! Retry queue and backoff (SPEC 8.4, 16.6 `on_retry_timer`).

use crate::budget::Spent;
use crate::command::{Command, Reason, RequestId, RetryKind};
use crate::config::{CONTINUATION_DELAY_MS, FAILURE_BACKOFF_BASE_MS};
use crate::issue::{Issue, IssueId};
use crate::orchestrator::{Lifecycle, Orchestrator, Pending};
use crate::select::{Standing, dispatch_order};
use crate::state::{Claim, RetryEntry};

/// Failure backoff for a 1-based `attempt`: `min(10000 * 2^(attempt-1), cap_ms)`, saturating
/// instead of overflowing for huge attempts.
pub fn failure_backoff_ms(attempt: u32, cap_ms: u64) -> u64 {
    let doublings = attempt.saturating_sub(1);
    let delay = if doublings >= 64 {
        u64::MAX
    } else {
        FAILURE_BACKOFF_BASE_MS.saturating_mul(1u64 << doublings.min(63))
    };
    delay.min(cap_ms)
}

/// Who a retry is for, carried from the claim it replaces.
pub(crate) struct RetryTarget {
    pub(crate) identifier: String,
    pub(crate) url: Option<String>,
    /// What the claim has used so far (the per-claim budgets count across its runs).
    pub(crate) spent: Spent,
    /// The host of the run before, which the retry prefers.
    pub(crate) host: Option<String>,
}

impl Orchestrator {
    /// Queues a retry, replacing any claim the issue had (SPEC 8.4 "cancel any existing retry
    /// timer"). While shutting down, releases instead: nothing new starts.
    pub(crate) fn schedule_retry(
        &mut self,
        id: &IssueId,
        target: RetryTarget,
        attempt: u32,
        kind: RetryKind,
        error: Option<String>,
        out: &mut Vec<Command>,
    ) {
        if self.lifecycle != Lifecycle::Running {
            self.release(id, Reason::Shutdown, out);
            return;
        }
        let delay_ms = match kind {
            RetryKind::Continuation | RetryKind::Host => CONTINUATION_DELAY_MS,
            RetryKind::Failure => failure_backoff_ms(attempt, self.config.max_retry_backoff_ms),
            RetryKind::Restart => 0,
        };
        let due_at = self.now.plus_millis(delay_ms);
        let entry = RetryEntry {
            identifier: target.identifier.clone(),
            url: target.url,
            attempt,
            due_at,
            error: error.clone(),
            checking: None,
            spent: target.spent,
            host: target.host,
        };
        self.set_claim(id, Claim::Retrying(entry));
        out.push(Command::ScheduleRetry {
            issue_id: id.clone(),
            identifier: target.identifier,
            attempt,
            due_at,
            delay_ms,
            kind,
            error,
        });
    }

    /// Due retries re-check their issues with one batched refresh (SPEC 8.4 step 1).
    pub(crate) fn fire_due_retries(&mut self, out: &mut Vec<Command>) {
        let due: Vec<IssueId> = self
            .retry_queue
            .iter()
            .take_while(|(at, _)| *at <= self.now)
            .map(|(_, id)| id.clone())
            .collect();
        if due.is_empty() {
            return;
        }
        let request = self.new_request(Pending::RetryCheck(due.clone()));
        for id in &due {
            if let Some(Claim::Retrying(entry)) = self.claims.get_mut(id) {
                self.retry_queue.remove(&(entry.due_at, id.clone()));
                entry.checking = Some(request);
            }
        }
        out.push(Command::RefreshIssues { request, ids: due });
    }

    /// SPEC 8.4 steps 2-5 for every retry the refresh `request` checked.
    pub(crate) fn check_retries(
        &mut self,
        request: RequestId,
        ids: &[IssueId],
        refreshed: Option<&[Issue]>,
        out: &mut Vec<Command>,
    ) {
        let mut checked: Vec<(IssueId, RetryEntry)> = Vec::new();
        for id in ids {
            if let Some(Claim::Retrying(entry)) = self.claims.get(id)
                && entry.checking == Some(request)
            {
                checked.push((id.clone(), entry.clone()));
            }
        }
        if self.lifecycle != Lifecycle::Running {
            // Shutting down: the retries stay queued as they were, for a restart to take back.
            for (id, mut entry) in checked {
                entry.checking = None;
                self.set_claim(&id, Claim::Retrying(entry));
            }
            return;
        }
        let Some(refreshed) = refreshed else {
            for (id, entry) in checked {
                let attempt = entry.attempt.saturating_add(1);
                let target = RetryTarget {
                    identifier: entry.identifier,
                    url: entry.url,
                    spent: entry.spent,
                    host: entry.host,
                };
                let error = Some("retry refresh failed".to_owned());
                self.schedule_retry(&id, target, attempt, RetryKind::Failure, error, out);
            }
            return;
        };
        let mut ready: Vec<(&Issue, RetryEntry)> = Vec::new();
        for (id, entry) in checked {
            let Some(issue) = refreshed.iter().find(|issue| issue.id == id) else {
                self.release(&id, Reason::Missing, out);
                continue;
            };
            match self.standing(issue) {
                Standing::Terminal => {
                    out.push(Command::CleanWorkspace {
                        issue_id: id.clone(),
                        identifier: issue.identifier.clone(),
                        host: entry.host.clone(),
                    });
                    let state = issue.state.clone();
                    self.release(&id, Reason::Terminal { state }, out);
                }
                Standing::Inactive => {
                    let state = issue.state.clone();
                    self.release(&id, Reason::Inactive { state }, out);
                }
                Standing::Unroutable => self.release(&id, Reason::Unroutable, out),
                Standing::Active => ready.push((issue, entry)),
            }
        }
        ready.sort_by(|a, b| dispatch_order(a.0, b.0));
        let mut slots = self.slots();
        for (issue, entry) in ready {
            if let Some(reason) = self.config.budget_used(&entry.spent) {
                // A continuation after the run that used the budget up, or a stop for another
                // reason that overtook the budget's own.
                self.hold(
                    &issue.id,
                    issue,
                    Some(entry.attempt),
                    &reason.to_string(),
                    entry.host.clone(),
                    out,
                );
                continue;
            }
            match self.permit(issue, &slots, true, entry.host.as_deref()) {
                Ok(permit) => {
                    let attempt = Some(entry.attempt);
                    self.dispatch(permit, issue, attempt, entry.spent, &mut slots, out);
                }
                Err(why) => {
                    let target = RetryTarget {
                        identifier: issue.identifier.clone(),
                        url: issue.url.clone(),
                        spent: entry.spent,
                        host: entry.host.clone(),
                    };
                    let attempt = entry.attempt.saturating_add(1);
                    let error = Some(why.to_string());
                    self.schedule_retry(&issue.id, target, attempt, RetryKind::Failure, error, out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_ten_seconds_and_caps() {
        let cap = 300_000;
        let delays: Vec<u64> = (1..=7).map(|a| failure_backoff_ms(a, cap)).collect();
        assert_eq!(
            delays,
            [10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000]
        );
        assert_eq!(failure_backoff_ms(0, cap), 10_000);
        assert_eq!(failure_backoff_ms(u32::MAX, cap), cap);
        assert_eq!(failure_backoff_ms(64, u64::MAX), u64::MAX);
        assert_eq!(failure_backoff_ms(3, 5_000), 5_000);
    }
}
