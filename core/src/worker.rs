//! Worker and agent triggers (SPEC 7.3 worker exit and codex update, 13.5 accounting, 16.6).

use std::borrow::Cow;

use crate::command::{Command, Reason, RunId};
use crate::event::{AgentUpdate, ExitOutcome};
use crate::issue::{Issue, IssueId};
use crate::orchestrator::{Lifecycle, Orchestrator, Pending};
use crate::retry::RetryTarget;
use crate::state::{
    AfterStop, BlockedEntry, Claim, HostHold, MAX_DENIED, PendingStop, RunningEntry, Tokens,
    summarize,
};

impl Orchestrator {
    pub(crate) fn on_worker_started(
        &mut self,
        id: &IssueId,
        run: RunId,
        workspace_path: Option<&str>,
    ) {
        if let Some(entry) = self.live_entry(id, run) {
            entry.workspace_path = workspace_path.map(str::to_owned);
        }
    }

    /// The entry of `run`, if it is the issue's current run (running or stopping).
    fn live_entry(&mut self, id: &IssueId, run: RunId) -> Option<&mut RunningEntry> {
        match self.claims.get_mut(id) {
            Some(Claim::Running(entry) | Claim::Stopping(entry, _)) if entry.run == run => {
                Some(entry)
            }
            _ => None,
        }
    }

    /// SPEC 7.3 codex update: live session fields, tokens, rate limits. A completed turn asks
    /// for the refresh that decides the next turn.
    pub(crate) fn on_agent_update(
        &mut self,
        id: &IssueId,
        run: RunId,
        update: &AgentUpdate,
        out: &mut Vec<Command>,
    ) {
        let now = self.now;
        let (entry, stopping) = match self.claims.get_mut(id) {
            Some(Claim::Running(entry)) if entry.run == run => (entry, false),
            Some(Claim::Stopping(entry, _)) if entry.run == run => (entry, true),
            _ => return,
        };
        entry.last_event_at = Some(now);
        let mut turn_completed = false;
        let mut over_budget = None;
        entry.last_event = Some(match update {
            AgentUpdate::SessionStarted { thread_id, pid } => {
                entry.thread_id = Some(thread_id.clone());
                entry.turn_id = None;
                entry.pid = *pid;
                // A new thread reports totals from zero.
                entry.reported = Tokens::default();
                entry.reported_cost = 0;
                Cow::Borrowed("session_started")
            }
            AgentUpdate::TurnStarted { turn_id } => {
                entry.turn_id = Some(turn_id.clone());
                entry.turn_count = entry.turn_count.saturating_add(1);
                Cow::Borrowed("turn_started")
            }
            AgentUpdate::TurnCompleted { .. } => {
                entry.turns_completed = entry.turns_completed.saturating_add(1);
                turn_completed = !stopping && entry.awaiting_refresh.is_none();
                Cow::Borrowed("turn_completed")
            }
            AgentUpdate::TokenUsage {
                input_tokens,
                output_tokens,
                total_tokens,
            } => {
                let latest = Tokens {
                    input_tokens: *input_tokens,
                    output_tokens: *output_tokens,
                    total_tokens: *total_tokens,
                };
                let delta = absorb_totals(&mut entry.reported, latest);
                add_tokens(&mut entry.tokens, delta);
                add_tokens(&mut self.totals, delta);
                self.today.add(now, delta.total_tokens);
                let used = entry.spent(now).tokens;
                if let Some(limit) = self.config.max_tokens_per_issue
                    && !stopping
                    && used >= limit
                {
                    over_budget = Some(Reason::TokenBudget { used, limit });
                }
                Cow::Borrowed("token_usage")
            }
            AgentUpdate::Cost { total_usd_micros } => {
                let delta = total_usd_micros.saturating_sub(entry.reported_cost);
                entry.reported_cost = entry.reported_cost.max(*total_usd_micros);
                entry.cost_usd_micros = entry.cost_usd_micros.saturating_add(delta);
                Cow::Borrowed("cost")
            }
            AgentUpdate::PermissionDenied { tools } => {
                for tool in tools {
                    if entry.denied.len() < MAX_DENIED && !entry.denied.contains(tool) {
                        entry.denied.push(summarize(tool));
                    }
                }
                Cow::Borrowed("permission_denied")
            }
            AgentUpdate::RateLimits { snapshot } => {
                self.rate_limits = Some(snapshot.clone());
                Cow::Borrowed("rate_limits")
            }
            AgentUpdate::Message { event, message } => {
                if let Some(message) = message {
                    entry.last_message = Some(summarize(message));
                }
                Cow::Owned(summarize(event))
            }
        });
        if let Some(reason) = over_budget {
            let stop = PendingStop {
                reason,
                then: AfterStop::Hold,
            };
            self.stop_worker(id, stop, false, out);
            return;
        }
        if turn_completed && self.lifecycle == Lifecycle::Running {
            let request = self.new_request(Pending::AfterTurn {
                issue_id: id.clone(),
                run,
            });
            if let Some(entry) = self.live_entry(id, run) {
                entry.awaiting_refresh = Some(request);
            }
            out.push(Command::RefreshIssues {
                request,
                ids: vec![id.clone()],
            });
        }
    }

    /// SPEC 7.3 worker exit and 16.6. Exits of stale runs are ignored, so a duplicate exit
    /// changes nothing.
    pub(crate) fn on_worker_exited(
        &mut self,
        id: &IssueId,
        run: RunId,
        outcome: &ExitOutcome,
        out: &mut Vec<Command>,
    ) {
        if self.live_entry(id, run).is_none() {
            return;
        }
        let Some(claim) = self.remove_claim(id) else {
            return;
        };
        let (entry, stop) = match claim {
            Claim::Running(entry) => (entry, None),
            Claim::Stopping(entry, stop) => (entry, Some(stop)),
            Claim::Retrying(_) | Claim::Blocked(_) => return,
        };
        self.ended_runtime_ms += self.now.millis_since(entry.started_at);
        let target = RetryTarget {
            identifier: entry.issue.identifier.clone(),
            url: entry.issue.url.clone(),
            spent: entry.spent(self.now),
            host: entry.host.clone(),
        };
        use crate::command::RetryKind::{Continuation, Failure, Host};
        match (stop, outcome) {
            // Told to stop: what happens next was decided when the stop was.
            (Some(stop), _) => match stop.then {
                AfterStop::Release => {
                    if matches!(stop.reason, Reason::Completed { .. }) {
                        self.completed_runs += 1;
                    }
                    out.push(Command::ReleaseClaim {
                        issue_id: id.clone(),
                        reason: stop.reason,
                    });
                }
                AfterStop::RetryFailure { attempt, error } => {
                    self.schedule_retry(id, target, attempt, Failure, Some(error), out);
                }
                AfterStop::Continue => {
                    self.completed_runs += 1;
                    self.schedule_retry(id, target, 1, Continuation, None, out);
                }
                AfterStop::Hold if self.lifecycle == Lifecycle::Running => {
                    let reason = stop.reason.to_string();
                    let host = entry.host.clone();
                    self.hold(id, &entry.issue, entry.attempt, &reason, host, out);
                }
                AfterStop::Hold => self.release(id, Reason::Shutdown, out),
            },
            (None, ExitOutcome::Normal) => {
                self.completed_runs += 1;
                self.schedule_retry(id, target, 1, Continuation, None, out);
            }
            (None, ExitOutcome::InputRequired { reason })
                if self.lifecycle == Lifecycle::Running =>
            {
                let host = entry.host.clone();
                self.hold(id, &entry.issue, entry.attempt, reason, host, out);
            }
            // Nothing ran on the host: hold it out and run the same attempt elsewhere.
            (None, ExitOutcome::HostUnavailable { reason }) if entry.host.is_some() => {
                let host = entry.host.clone().unwrap_or_default();
                self.hold_host(&host, reason, out);
                let attempt = entry.attempt.unwrap_or(0).max(1);
                let error = Some(outcome.describe());
                self.schedule_retry(id, target, attempt, Host, error, out);
            }
            (None, outcome) => {
                let attempt = entry.next_attempt();
                let error = Some(outcome.describe());
                self.schedule_retry(id, target, attempt, Failure, error, out);
            }
        }
        self.finish_shutdown_if_idle(out);
    }

    /// Holds the issue instead of retrying it until it changes in the tracker: after an input
    /// request (documented policy, SPEC 10.5) or a used-up token budget.
    pub(crate) fn hold(
        &mut self,
        id: &IssueId,
        issue: &Issue,
        attempt: Option<u32>,
        reason: &str,
        host: Option<String>,
        out: &mut Vec<Command>,
    ) {
        let reason = summarize(reason);
        let blocked = BlockedEntry {
            identifier: issue.identifier.clone(),
            url: issue.url.clone(),
            state: issue.state.clone(),
            attempt,
            reason: reason.clone(),
            since: self.now,
            baseline: None,
            host,
        };
        self.set_claim(id, Claim::Blocked(blocked));
        out.push(Command::HoldIssue {
            issue_id: id.clone(),
            identifier: issue.identifier.clone(),
            reason,
        });
    }

    /// Leaves `host` out of choice for `worker.host_backoff_ms`: a run there failed before its
    /// agent started.
    pub(crate) fn hold_host(&mut self, host: &str, reason: &str, out: &mut Vec<Command>) {
        let backoff = (self.config.host_backoff_ms).unwrap_or(crate::config::HOST_BACKOFF_MS);
        let until = self.now.plus_millis(backoff);
        let reason = summarize(reason);
        self.host_holds.insert(
            host.to_owned(),
            HostHold {
                until,
                reason: reason.clone(),
            },
        );
        out.push(Command::HoldHost {
            host: host.to_owned(),
            until,
            reason,
        });
    }

    /// Tells the shell to end a running worker; the claim and slot stay held until it exits.
    pub(crate) fn stop_worker(
        &mut self,
        id: &IssueId,
        stop: PendingStop,
        cleanup_workspace: bool,
        out: &mut Vec<Command>,
    ) {
        // Callers only stop running issues; anything else is left exactly as it was.
        let entry = match self.claims.remove(id) {
            Some(Claim::Running(entry)) => entry,
            Some(other) => {
                self.claims.insert(id.clone(), other);
                return;
            }
            None => return,
        };
        out.push(Command::StopWorker {
            issue_id: id.clone(),
            run: entry.run,
            reason: stop.reason.clone(),
            cleanup_workspace,
        });
        self.claims.insert(id.clone(), Claim::Stopping(entry, stop));
    }
}

/// Folds a new absolute report into the last one and returns what it adds (SPEC 13.5): each
/// counter only grows, so a late or repeated report adds nothing.
fn absorb_totals(reported: &mut Tokens, latest: Tokens) -> Tokens {
    let delta = Tokens {
        input_tokens: latest.input_tokens.saturating_sub(reported.input_tokens),
        output_tokens: latest.output_tokens.saturating_sub(reported.output_tokens),
        total_tokens: latest.total_tokens.saturating_sub(reported.total_tokens),
    };
    add_tokens(reported, delta);
    delta
}

fn add_tokens(sum: &mut Tokens, delta: Tokens) {
    sum.input_tokens = sum.input_tokens.saturating_add(delta.input_tokens);
    sum.output_tokens = sum.output_tokens.saturating_add(delta.output_tokens);
    sum.total_tokens = sum.total_tokens.saturating_add(delta.total_tokens);
}
