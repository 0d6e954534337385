//! Reconciliation of claimed issues against the tracker (SPEC 8.5, 8.6, 16.3), and the
//! between-turns decision of a live run (SPEC 7.1, 16.5).

use std::collections::BTreeMap;

use crate::command::{Command, Reason, RequestId, RunId};
use crate::issue::{Issue, IssueId, matches_normalized, normalize};
use crate::orchestrator::Orchestrator;
use crate::select::Standing;
use crate::state::{AfterStop, Claim, PendingStop};

/// What reconciliation decided for one running issue.
enum Verdict {
    Keep(Box<Issue>),
    Stop(PendingStop, bool),
}

impl Orchestrator {
    /// SPEC 8.5 part A: stop runs with no agent activity for longer than the stall timeout and
    /// queue a failure retry. A timeout `<= 0` disables this.
    pub(crate) fn detect_stalls(&mut self, out: &mut Vec<Command>) {
        let Ok(limit) = u64::try_from(self.config.stall_timeout_ms) else {
            return;
        };
        if limit == 0 {
            return;
        }
        let stalled: Vec<(IssueId, u64, u32)> = self
            .claims
            .iter()
            .filter_map(|(id, claim)| match claim {
                Claim::Running(entry) => {
                    let idle = self.now.millis_since(entry.last_activity());
                    (idle > limit).then(|| (id.clone(), idle, entry.next_attempt()))
                }
                _ => None,
            })
            .collect();
        for (id, idle_ms, attempt) in stalled {
            let reason = Reason::Stalled { idle_ms };
            let error = reason.to_string();
            let stop = PendingStop {
                reason,
                then: AfterStop::RetryFailure { attempt, error },
            };
            self.stop_worker(&id, stop, false, out);
        }
    }

    /// What SPEC 8.5 part B does with a refreshed (or missing) running issue.
    fn verdict(&self, refreshed: Option<&Issue>) -> Verdict {
        let Some(issue) = refreshed else {
            return Verdict::Stop(stop_then_release(Reason::Missing), false);
        };
        match self.standing(issue) {
            Standing::Terminal => Verdict::Stop(
                stop_then_release(Reason::Terminal {
                    state: issue.state.clone(),
                }),
                true,
            ),
            Standing::Inactive => Verdict::Stop(
                stop_then_release(Reason::Inactive {
                    state: issue.state.clone(),
                }),
                false,
            ),
            Standing::Unroutable => Verdict::Stop(stop_then_release(Reason::Unroutable), false),
            Standing::Active => Verdict::Keep(Box::new(issue.clone())),
        }
    }

    /// SPEC 8.5 part B for the runs the reconcile request covered.
    pub(crate) fn reconcile_running(
        &mut self,
        requested: &[(IssueId, RunId)],
        refreshed: &[Issue],
        out: &mut Vec<Command>,
    ) {
        let by_id = index(refreshed);
        for (id, run) in requested {
            // Only the run that was refreshed: it may have exited, or been replaced, since.
            let still_running =
                matches!(self.claims.get(id), Some(Claim::Running(e)) if e.run == *run);
            if !still_running {
                continue;
            }
            match self.verdict(by_id.get(id).copied()) {
                Verdict::Keep(issue) => {
                    if let Some(Claim::Running(entry)) = self.claims.get_mut(id) {
                        entry.issue = *issue;
                    }
                }
                Verdict::Stop(stop, cleanup) => self.stop_worker(id, stop, cleanup, out),
            }
        }
    }

    /// Reconciliation of blocked issues: release them when they leave the active states or
    /// change in the tracker. The first refresh after blocking only records the baseline, so
    /// the agent's own last edits (a question posted as a comment) do not count as a change.
    pub(crate) fn reconcile_blocked(
        &mut self,
        requested: &[IssueId],
        refreshed: &[Issue],
        out: &mut Vec<Command>,
    ) {
        let by_id = index(refreshed);
        for id in requested {
            let Some(Claim::Blocked(blocked)) = self.claims.get_mut(id) else {
                continue;
            };
            let Some(issue) = by_id.get(id).copied() else {
                self.release(id, Reason::Missing, out);
                continue;
            };
            let changed = match &blocked.baseline {
                None => {
                    blocked.baseline = Some((normalize(&issue.state), issue.updated_at));
                    false
                }
                Some((state, updated_at)) => {
                    *updated_at != issue.updated_at || !matches_normalized(&issue.state, state)
                }
            };
            let host = blocked.host.clone();
            match self.standing(issue) {
                Standing::Terminal => {
                    out.push(Command::CleanWorkspace {
                        issue_id: id.clone(),
                        identifier: issue.identifier.clone(),
                        host,
                    });
                    let state = issue.state.clone();
                    self.release(id, Reason::Terminal { state }, out);
                }
                Standing::Inactive => {
                    let state = issue.state.clone();
                    self.release(id, Reason::Inactive { state }, out);
                }
                Standing::Unroutable => self.release(id, Reason::Unroutable, out),
                Standing::Active if changed => self.release(id, Reason::Unblocked, out),
                Standing::Active => {}
            }
        }
    }

    /// After a completed turn: start the next turn on the same thread while the refreshed
    /// issue is active and routable and turns remain, else end the run (SPEC 7.1, 16.5).
    pub(crate) fn after_turn(
        &mut self,
        request: RequestId,
        id: &IssueId,
        run: RunId,
        refreshed: Option<&[Issue]>,
        out: &mut Vec<Command>,
    ) {
        let now = self.now;
        let (turns, attempt, spent) = match self.claims.get_mut(id) {
            Some(Claim::Running(entry))
                if entry.run == run && entry.awaiting_refresh == Some(request) =>
            {
                entry.awaiting_refresh = None;
                (entry.turn_count, entry.next_attempt(), entry.spent(now))
            }
            _ => return,
        };
        let budget_used = self.config.budget_used(&spent);
        let Some(refreshed) = refreshed else {
            let reason = Reason::RefreshFailed;
            let error = reason.to_string();
            let stop = PendingStop {
                reason,
                then: AfterStop::RetryFailure { attempt, error },
            };
            self.stop_worker(id, stop, false, out);
            return;
        };
        let verdict = self.verdict(refreshed.iter().find(|issue| issue.id == *id));
        match verdict {
            // The turn's work took the issue out of the active states: a success.
            Verdict::Stop(
                PendingStop {
                    reason: Reason::Terminal { state } | Reason::Inactive { state },
                    then,
                },
                cleanup,
            ) => {
                let stop = PendingStop {
                    reason: Reason::Completed { state },
                    then,
                };
                self.stop_worker(id, stop, cleanup, out);
            }
            Verdict::Stop(stop, cleanup) => self.stop_worker(id, stop, cleanup, out),
            // Still active, but the claim's budget is used up: hold rather than go on.
            Verdict::Keep(_) if let Some(reason) = budget_used => {
                let stop = PendingStop {
                    reason,
                    then: AfterStop::Hold,
                };
                self.stop_worker(id, stop, false, out);
            }
            Verdict::Keep(_) if turns >= self.config.max_turns => {
                let stop = PendingStop {
                    reason: Reason::MaxTurns { turns },
                    then: AfterStop::Continue,
                };
                self.stop_worker(id, stop, false, out);
            }
            Verdict::Keep(issue) => {
                if let Some(Claim::Running(entry)) = self.claims.get_mut(id) {
                    entry.issue = (*issue).clone();
                }
                out.push(Command::StartTurn {
                    issue_id: id.clone(),
                    run,
                    turn: turns.saturating_add(1),
                    issue: *issue,
                });
            }
        }
    }

    /// SPEC 8.6: remove the workspaces of issues already terminal at startup. Issues claimed
    /// since are left to reconciliation.
    pub(crate) fn clean_terminal_workspaces(&mut self, issues: &[Issue], out: &mut Vec<Command>) {
        let mut seen = std::collections::BTreeSet::new();
        for issue in issues {
            let fresh = seen.insert(&issue.id);
            if fresh
                && !issue.identifier.is_empty()
                && self.policy.terminal.contains(&issue.state)
                && !self.claims.contains_key(&issue.id)
            {
                out.push(Command::CleanWorkspace {
                    issue_id: issue.id.clone(),
                    identifier: issue.identifier.clone(),
                    host: None,
                });
            }
        }
    }
}

fn stop_then_release(reason: Reason) -> PendingStop {
    PendingStop {
        reason,
        then: AfterStop::Release,
    }
}

fn index(issues: &[Issue]) -> BTreeMap<&IssueId, &Issue> {
    issues.iter().map(|issue| (&issue.id, issue)).collect()
}
