//! Claim states and the entries they carry (SPEC 4.1.5-4.1.8, 7.1).
//!
//! An issue the orchestrator has reserved is in exactly one [`Claim`] state; an issue absent
//! from the claim map is `Unclaimed`/`Released`. Each state carries only the data valid in it.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::budget::Spent;
use crate::command::{Reason, RequestId, RunId};
use crate::issue::Issue;
use crate::time::Timestamp;

/// The longest last-message summary kept, in characters (SPEC 13.7 API guidance).
pub const MAX_MESSAGE_CHARS: usize = 256;
/// The most refused tool names kept per run.
pub(crate) const MAX_DENIED: usize = 20;

/// Token counts (SPEC 4.1.6, 13.5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Total tokens.
    pub total_tokens: u64,
}

/// Where a reserved issue stands.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Claim {
    /// A worker runs (SPEC 7.1 `Running`).
    Running(Box<RunningEntry>),
    /// A worker was told to stop and has not exited yet. It still holds its slot and its claim,
    /// so no second worker can start on the same workspace before it is gone.
    Stopping(Box<RunningEntry>, PendingStop),
    /// Waiting for a retry (SPEC 7.1 `RetryQueued`).
    Retrying(RetryEntry),
    /// The agent needed user input; held until the issue changes (documented policy).
    Blocked(BlockedEntry),
}

/// A live worker run (SPEC 4.1.5 run attempt + 4.1.6 live session).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RunningEntry {
    pub(crate) run: RunId,
    pub(crate) issue: Issue,
    pub(crate) attempt: Option<u32>,
    pub(crate) started_at: Timestamp,
    pub(crate) workspace_path: Option<String>,
    pub(crate) thread_id: Option<String>,
    pub(crate) turn_id: Option<String>,
    pub(crate) pid: Option<u32>,
    pub(crate) turn_count: u32,
    pub(crate) last_event: Option<Cow<'static, str>>,
    pub(crate) last_event_at: Option<Timestamp>,
    pub(crate) last_message: Option<String>,
    /// Tokens this run has used, summed over its threads.
    pub(crate) tokens: Tokens,
    /// The latest absolute totals the current thread reported (SPEC 13.5 baseline).
    pub(crate) reported: Tokens,
    /// Between turns, the refresh this run waits on before the next turn.
    pub(crate) awaiting_refresh: Option<RequestId>,
    /// Turns of this run that completed.
    #[serde(default)]
    pub(crate) turns_completed: u32,
    /// Cost of this run so far, summed over its threads, in millionths of a dollar.
    #[serde(default)]
    pub(crate) cost_usd_micros: u64,
    /// The latest absolute cost the current thread reported.
    #[serde(default)]
    pub(crate) reported_cost: u64,
    /// Tools refused for want of permission in this run, each once, at most
    /// [`MAX_DENIED`].
    #[serde(default)]
    pub(crate) denied: Vec<String>,
    /// What the earlier runs of this claim used (the per-claim budgets count them all).
    #[serde(default)]
    pub(crate) spent_before: Spent,
    /// The worker host the run is on (`worker.ssh_hosts`); `None`: local.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) host: Option<String>,
}

impl RunningEntry {
    pub(crate) fn new(run: RunId, issue: Issue, attempt: Option<u32>, now: Timestamp) -> Self {
        Self {
            run,
            issue,
            attempt,
            started_at: now,
            workspace_path: None,
            thread_id: None,
            turn_id: None,
            pid: None,
            turn_count: 0,
            last_event: None,
            last_event_at: None,
            last_message: None,
            tokens: Tokens::default(),
            reported: Tokens::default(),
            awaiting_refresh: None,
            turns_completed: 0,
            cost_usd_micros: 0,
            reported_cost: 0,
            denied: Vec::new(),
            spent_before: Spent::default(),
            host: None,
        }
    }

    /// What this claim has used by `now`: earlier runs and this one.
    pub(crate) fn spent(&self, now: Timestamp) -> Spent {
        let before = self.spent_before;
        Spent {
            tokens: before.tokens.saturating_add(self.tokens.total_tokens),
            turns: before.turns.saturating_add(self.turns_completed),
            runtime_ms: (before.runtime_ms).saturating_add(now.millis_since(self.started_at)),
        }
    }

    /// `<thread_id>-<turn_id>` once both are known (SPEC 4.2).
    pub(crate) fn session_id(&self) -> Option<String> {
        match (&self.thread_id, &self.turn_id) {
            (Some(thread), Some(turn)) => Some(format!("{thread}-{turn}")),
            _ => None,
        }
    }

    /// The SPEC 7.2 phase the events so far show (see `RunningRow::phase`).
    pub(crate) fn phase(&self, stopping: bool) -> &'static str {
        if stopping || self.awaiting_refresh.is_some() {
            "finishing"
        } else if self.turn_id.is_some() {
            "streaming_turn"
        } else if self.thread_id.is_some() {
            "initializing_session"
        } else if self.workspace_path.is_some() {
            "launching_agent_process"
        } else {
            "preparing_workspace"
        }
    }

    /// The attempt a failure retry of this run gets.
    pub(crate) fn next_attempt(&self) -> u32 {
        self.attempt.unwrap_or(0).saturating_add(1)
    }

    /// Last agent activity, or the start when there was none (SPEC 8.5 part A).
    pub(crate) fn last_activity(&self) -> Timestamp {
        self.last_event_at.unwrap_or(self.started_at)
    }
}

/// What happens once a stopping worker has exited.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingStop {
    pub(crate) reason: Reason,
    pub(crate) then: AfterStop,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum AfterStop {
    /// Drop the claim (the shell cleans the workspace first when the stop asked for it).
    Release,
    /// Queue a failure retry with this attempt and error.
    RetryFailure { attempt: u32, error: String },
    /// Queue the short continuation retry, as after a normal exit.
    Continue,
    /// Hold the issue until it changes, as after an input request (the token budget).
    Hold,
}

/// SPEC 4.1.7. `checking` is set while the due retry waits for its issue refresh.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RetryEntry {
    pub(crate) identifier: String,
    pub(crate) url: Option<String>,
    pub(crate) attempt: u32,
    pub(crate) due_at: Timestamp,
    pub(crate) error: Option<String>,
    pub(crate) checking: Option<RequestId>,
    /// What the claim's runs have used so far.
    #[serde(default)]
    pub(crate) spent: Spent,
    /// The host of the run before, which the retry prefers (its workspace is there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) host: Option<String>,
}

/// An issue whose agent asked for user input. It is not retried (that would loop, asking
/// again each time) until the tracker shows the issue changed: a new `updated_at`, or a
/// different state. Reconciliation refreshes it every tick.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct BlockedEntry {
    pub(crate) identifier: String,
    pub(crate) url: Option<String>,
    /// Tracker state when the run ended.
    pub(crate) state: String,
    pub(crate) attempt: Option<u32>,
    pub(crate) reason: String,
    pub(crate) since: Timestamp,
    /// Normalised state and `updated_at` from the first refresh after blocking; a later
    /// difference from it releases the issue.
    pub(crate) baseline: Option<(String, Option<Timestamp>)>,
    /// The host the last run was on, where its workspace is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) host: Option<String>,
}

/// A worker host left out of choice after a run on it failed before its agent started
/// (Appendix A).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HostHold {
    /// When it may be chosen again.
    pub(crate) until: Timestamp,
    /// What failed there.
    pub(crate) reason: String,
}

/// Truncates to [`MAX_MESSAGE_CHARS`] characters on a character boundary.
pub(crate) fn summarize(message: &str) -> String {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => message[..cut].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_is_bounded_in_characters_not_bytes() {
        let long = "é".repeat(300);
        let short = summarize(&long);
        assert_eq!(short.chars().count(), MAX_MESSAGE_CHARS);
        assert_eq!(summarize("fine"), "fine");
    }
}

/// An issue eligible by state that does not run now, and why (see
/// [`crate::Command::IssueWaiting`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WaitingEntry {
    pub(crate) identifier: String,
    pub(crate) url: Option<String>,
    pub(crate) state: String,
    pub(crate) reason: String,
    /// Since when it has waited for this reason.
    pub(crate) since: Timestamp,
}
