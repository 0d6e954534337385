//! Limits on what one run and one claim may use (extensions; SPEC 7.1 leaves continuation
//! unbounded).
//!
//! * `agent.run_timeout_ms`: wall-clock time of one worker run. Past it the worker is stopped
//!   and a failure retry follows, with the usual backoff.
//! * The per-claim budgets, counted across every run of a claim (first run, continuations,
//!   retries) until the claim ends: tokens (`max_tokens_per_issue`), completed turns
//!   (`max_turns_per_issue`) and wall-clock runtime (`max_runtime_ms_per_issue`). One used
//!   up stops the worker and holds the issue until it changes in the tracker, so an issue the
//!   agent cannot finish does not loop forever.
//!
//! Time limits are deadlines the core owns: [`Orchestrator::next_deadline`] includes them, so
//! the shell's timer fires exactly when one is due.

use serde::{Deserialize, Serialize};

use crate::command::{Command, Reason};
use crate::config::SchedulerConfig;
use crate::issue::IssueId;
use crate::orchestrator::Orchestrator;
use crate::state::{AfterStop, Claim, PendingStop, RunningEntry};
use crate::time::Timestamp;

/// What a claim has used across its runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "SpentRepr")]
pub(crate) struct Spent {
    /// Tokens (total).
    pub(crate) tokens: u64,
    /// Turns that completed.
    pub(crate) turns: u32,
    /// Wall-clock time of the runs, in milliseconds.
    pub(crate) runtime_ms: u64,
}

/// Encodings read: a bare number (tokens only, as states written before the other counts
/// existed) or the struct.
#[derive(Deserialize)]
#[serde(untagged)]
enum SpentRepr {
    Tokens(u64),
    Full {
        #[serde(default)]
        tokens: u64,
        #[serde(default)]
        turns: u32,
        #[serde(default)]
        runtime_ms: u64,
    },
}

impl From<SpentRepr> for Spent {
    fn from(repr: SpentRepr) -> Self {
        match repr {
            SpentRepr::Tokens(tokens) => Self {
                tokens,
                ..Self::default()
            },
            SpentRepr::Full {
                tokens,
                turns,
                runtime_ms,
            } => Self {
                tokens,
                turns,
                runtime_ms,
            },
        }
    }
}

/// Milliseconds in a day.
const DAY_MS: u64 = 86_400_000;

/// Tokens used in one UTC day.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DayUse {
    /// Days since the epoch.
    pub(crate) day: u64,
    /// Tokens used that day.
    pub(crate) tokens: u64,
}

impl DayUse {
    /// Counts `tokens` used at `now`, starting over on a new day.
    pub(crate) fn add(&mut self, now: Timestamp, tokens: u64) {
        let day = now.0 / DAY_MS;
        if day != self.day {
            *self = Self { day, tokens: 0 };
        }
        self.tokens = self.tokens.saturating_add(tokens);
    }

    /// The UTC day of `now`, in days since the epoch.
    pub(crate) fn day_of(now: Timestamp) -> u64 {
        now.0 / DAY_MS
    }

    /// Tokens used on `now`'s day.
    pub(crate) fn used(&self, now: Timestamp) -> u64 {
        if now.0 / DAY_MS == self.day {
            self.tokens
        } else {
            0
        }
    }

    /// The next UTC midnight after `now`.
    pub(crate) fn resets_at(now: Timestamp) -> Timestamp {
        Timestamp((now.0 / DAY_MS + 1) * DAY_MS)
    }
}

impl SchedulerConfig {
    /// The first per-claim budget `spent` has used up, as the reason to hold the issue.
    pub(crate) fn budget_used(&self, spent: &Spent) -> Option<Reason> {
        if let Some(limit) = self.max_tokens_per_issue
            && spent.tokens >= limit
        {
            return Some(Reason::TokenBudget {
                used: spent.tokens,
                limit,
            });
        }
        if let Some(limit) = self.max_turns_per_issue
            && spent.turns >= limit
        {
            return Some(Reason::TurnBudget {
                used: spent.turns,
                limit,
            });
        }
        if let Some(limit) = self.max_runtime_ms_per_issue
            && spent.runtime_ms >= limit
        {
            return Some(Reason::RuntimeBudget {
                used_ms: spent.runtime_ms,
                limit_ms: limit,
            });
        }
        None
    }

    /// When `entry` reaches its run timeout or its claim's runtime budget, whichever is first.
    fn run_deadline(&self, entry: &RunningEntry) -> Option<Timestamp> {
        let timeout = (self.run_timeout_ms).map(|ms| entry.started_at.plus_millis(ms));
        let budget = (self.max_runtime_ms_per_issue).map(|limit| {
            let left = limit.saturating_sub(entry.spent_before.runtime_ms);
            entry.started_at.plus_millis(left)
        });
        match (timeout, budget) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl Orchestrator {
    /// Why nothing new is dispatched today, when the day's token budget is used up.
    pub(crate) fn daily_budget_used(&self) -> Option<String> {
        let limit = self.config.max_tokens_per_day?;
        let used = self.today.used(self.now);
        (used >= limit).then(|| {
            format!(
                "the daily token budget is used ({used} of {limit} tokens, \
                 agent.max_tokens_per_day); it resets at {}",
                DayUse::resets_at(self.now).to_rfc3339()
            )
        })
    }

    /// The earliest run-limit deadline of a live run, if any limit is set.
    pub(crate) fn next_run_limit(&self) -> Option<Timestamp> {
        if self.config.run_timeout_ms.is_none() && self.config.max_runtime_ms_per_issue.is_none() {
            return None;
        }
        (self.claims.values())
            .filter_map(|claim| match claim {
                Claim::Running(entry) => self.config.run_deadline(entry),
                _ => None,
            })
            .min()
    }

    /// Stops every live run past a time limit: a used-up runtime budget holds the issue, a
    /// run timeout retries it after the failure backoff.
    pub(crate) fn enforce_run_limits(&mut self, out: &mut Vec<Command>) {
        if self.next_run_limit().is_none_or(|due| due > self.now) {
            return;
        }
        let now = self.now;
        let over: Vec<(IssueId, PendingStop)> = (self.claims.iter())
            .filter_map(|(id, claim)| {
                let Claim::Running(entry) = claim else {
                    return None;
                };
                let used_ms = entry.spent(now).runtime_ms;
                if let Some(limit_ms) = self.config.max_runtime_ms_per_issue
                    && used_ms >= limit_ms
                {
                    let reason = Reason::RuntimeBudget { used_ms, limit_ms };
                    let then = AfterStop::Hold;
                    return Some((id.clone(), PendingStop { reason, then }));
                }
                let limit_ms = self.config.run_timeout_ms?;
                if now.millis_since(entry.started_at) < limit_ms {
                    return None;
                }
                let reason = Reason::RunTimeout { limit_ms };
                let then = AfterStop::RetryFailure {
                    attempt: entry.next_attempt(),
                    error: reason.to_string(),
                };
                Some((id.clone(), PendingStop { reason, then }))
            })
            .collect();
        for (id, stop) in over {
            self.stop_worker(&id, stop, false, out);
        }
    }
}
