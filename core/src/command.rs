//! Everything the orchestrator asks the shell to do.
//!
//! Commands are imperatives. The shell executes them in the order returned and answers every
//! request command ([`Command::FetchCandidates`], [`Command::RefreshIssues`],
//! [`Command::ListTerminalIssues`]) with exactly one response event carrying the same
//! [`RequestId`]. Informational commands ([`Command::ScheduleRetry`], [`Command::SchedulePoll`],
//! [`Command::CancelRetry`], [`Command::ReleaseClaim`]) need no action beyond logging: the core
//! owns every deadline and the shell only sleeps until [`crate::Orchestrator::next_deadline`].

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::issue::{Issue, IssueId};
use crate::time::Timestamp;

/// Correlates a tracker request with its response event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(pub u64);

/// Names one worker run. Events from an older run of the same issue are recognised as stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "req#{}", self.0)
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "run#{}", self.0)
    }
}

/// An output of the orchestrator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    /// Fetch issues in these (terminal) states for startup cleanup (SPEC 8.6).
    ListTerminalIssues {
        /// Answer with [`crate::Event::TerminalIssuesListed`] or `...ListFailed`.
        request: RequestId,
        /// Terminal state names, as configured.
        states: Vec<String>,
    },
    /// Fetch candidate issues in these (active) states (SPEC 8.1 step 3).
    FetchCandidates {
        /// Answer with [`crate::Event::CandidatesFetched`] or `...FetchFailed`.
        request: RequestId,
        /// Active state names, as configured.
        states: Vec<String>,
    },
    /// Fetch current snapshots of these issues (reconciliation, retry checks, between turns).
    RefreshIssues {
        /// Answer with [`crate::Event::IssuesRefreshed`] or `...RefreshFailed`.
        request: RequestId,
        /// Ids to refresh, never empty.
        ids: Vec<IssueId>,
    },
    /// Start a worker: prepare the workspace, render the prompt, run the agent (SPEC 16.5).
    Dispatch {
        /// The issue.
        issue_id: IssueId,
        /// Name of this run; every event about it must carry it.
        run: RunId,
        /// `None` on the first run, else the 1-based retry/continuation count (SPEC 12.3).
        attempt: Option<u32>,
        /// The snapshot the decision was made on.
        issue: Issue,
        /// The worker host to run on (`worker.ssh_hosts`); absent: this machine.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host: Option<String>,
    },
    /// Continue the live session with another turn on the same thread (SPEC 7.1).
    StartTurn {
        /// The issue.
        issue_id: IssueId,
        /// The run to continue.
        run: RunId,
        /// 1-based number of the turn to start.
        turn: u32,
        /// The refreshed snapshot.
        issue: Issue,
    },
    /// End a worker run: interrupt any turn, stop the agent, run `after_run`, and then, when
    /// asked, run `before_remove` and delete the workspace. Report
    /// [`crate::Event::WorkerExited`] when done.
    StopWorker {
        /// The issue.
        issue_id: IssueId,
        /// The run to stop.
        run: RunId,
        /// Why.
        reason: Reason,
        /// Delete the workspace once the agent is gone.
        cleanup_workspace: bool,
    },
    /// A retry is queued (SPEC 8.4). Informational: the deadline is the core's.
    ScheduleRetry {
        /// The issue.
        issue_id: IssueId,
        /// Its human-readable key.
        identifier: String,
        /// 1-based attempt the retry will run as.
        attempt: u32,
        /// When it fires.
        due_at: Timestamp,
        /// `due_at - now`.
        delay_ms: u64,
        /// Continuation after a normal exit, or backoff after a failure.
        kind: RetryKind,
        /// The failure that caused it, if any.
        error: Option<String>,
    },
    /// A queued retry was dropped without firing. Informational.
    CancelRetry {
        /// The issue.
        issue_id: IssueId,
    },
    /// The issue is no longer claimed (SPEC 7.1 `Released`). Informational.
    ReleaseClaim {
        /// The issue.
        issue_id: IssueId,
        /// Why.
        reason: Reason,
    },
    /// The agent needed user input (documented policy, SPEC 10.5), or the issue used its token
    /// budget: the issue is held, not retried, until it changes in the tracker. Informational.
    HoldIssue {
        /// The issue.
        issue_id: IssueId,
        /// Its human-readable key.
        identifier: String,
        /// Why: what the agent asked for, or the used-up token budget; summarised.
        reason: String,
    },
    /// An issue in an active state is held back, or held back for another reason than
    /// before: a blocker, a missing label, a full slot, paused dispatch. Emitted when the
    /// reason is new or changed, not on every tick. Informational.
    IssueWaiting {
        /// The issue.
        issue_id: IssueId,
        /// Its human-readable key.
        identifier: String,
        /// Why it does not run now.
        reason: String,
    },
    /// Run `before_remove` and delete the workspace of an issue no worker runs on.
    CleanWorkspace {
        /// The issue.
        issue_id: IssueId,
        /// Its human-readable key, from which the workspace path derives.
        identifier: String,
        /// The worker host its last run was on. Absent: this machine, or, with worker hosts
        /// configured and the host unknown (startup cleanup), every one of them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host: Option<String>,
    },
    /// A worker host is left out of choice until `until`: a run on it failed before its
    /// agent started (Appendix A). Informational.
    HoldHost {
        /// The host, as configured.
        host: String,
        /// When it may be chosen again.
        until: Timestamp,
        /// What failed there.
        reason: String,
    },
    /// `workspace.max_age_days`: remove the workspaces (made by the daemon) untouched for
    /// more than `max_age_days`, except those of the issues in `keep` (identifiers of active
    /// and claimed issues). Decided after a candidate fetch, at most every 6 h.
    SweepWorkspaces {
        /// The age limit in days.
        max_age_days: u32,
        /// Identifiers whose workspaces stay whatever their age, sorted.
        keep: Vec<String>,
    },
    /// The next poll tick is due at this time. Informational.
    SchedulePoll {
        /// When.
        due_at: Timestamp,
    },
    /// The verdict on a [`crate::Event::RefreshRequested`], for the HTTP answer.
    RefreshQueued {
        /// Whether a poll will run (false only while shutting down).
        queued: bool,
        /// Whether it joined a tick already in flight instead of starting one.
        coalesced: bool,
    },
    /// Every worker has exited after [`crate::Event::ShutdownRequested`]; the shell may exit.
    ShutdownComplete,
}

/// Whether a retry continues finished work or backs off from a failure (SPEC 8.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryKind {
    /// After a normal exit: fixed 1 s.
    Continuation,
    /// After a failure: exponential backoff, capped.
    Failure,
    /// A run that was live when the daemon died (`crate::restart`): due at once.
    Restart,
    /// A run that failed before its agent started because its worker host could not be
    /// used: the same attempt again after 1 s, on another host.
    Host,
}

/// Why a worker is stopped or a claim released.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// The tracker state is terminal (SPEC 8.5).
    Terminal {
        /// The state seen.
        state: String,
    },
    /// The tracker state is neither active nor terminal (SPEC 8.5).
    Inactive {
        /// The state seen.
        state: String,
    },
    /// Still active, but no longer `dispatchable` or missing a required label (SPEC 8.2).
    Unroutable,
    /// The tracker no longer returns the issue (SPEC 11.1 omission).
    Missing,
    /// No agent activity for longer than `codex.stall_timeout_ms` (SPEC 8.5 part A).
    Stalled {
        /// Milliseconds since the last activity.
        idle_ms: u64,
    },
    /// The run used `agent.max_turns` turns; a continuation retry follows.
    MaxTurns {
        /// Turns used.
        turns: u32,
    },
    /// The between-turn issue refresh failed (SPEC 16.5 "issue state refresh error").
    RefreshFailed,
    /// A blocked issue changed in the tracker, so it may run again.
    Unblocked,
    /// The issue used `agent.max_tokens_per_issue` (extension).
    TokenBudget {
        /// Tokens used across the claim's runs.
        used: u64,
        /// The limit.
        limit: u64,
    },
    /// The issue used `agent.max_turns_per_issue` completed turns (extension).
    TurnBudget {
        /// Turns completed across the claim's runs.
        used: u32,
        /// The limit.
        limit: u32,
    },
    /// The issue's runs took `agent.max_runtime_ms_per_issue` together (extension).
    RuntimeBudget {
        /// Milliseconds the claim's runs took.
        used_ms: u64,
        /// The limit.
        limit_ms: u64,
    },
    /// The run took longer than `agent.run_timeout_ms` (extension); a failure retry follows.
    RunTimeout {
        /// The limit.
        limit_ms: u64,
    },
    /// The service is shutting down.
    Shutdown,
    /// An operator stopped the run (extension); the issue is held until it changes.
    OperatorStop,
    /// After a turn the issue was no longer active: the run's work moved it (to this state).
    /// A successful end, counted in `completed_runs`.
    Completed {
        /// The state it moved to.
        state: String,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Terminal { state } => write!(f, "terminal state {state:?}"),
            Self::Inactive { state } => write!(f, "inactive state {state:?}"),
            Self::Unroutable => f.write_str("no longer routable"),
            Self::Missing => f.write_str("no longer visible in tracker"),
            Self::Stalled { idle_ms } => write!(f, "stalled: no agent activity for {idle_ms} ms"),
            Self::MaxTurns { turns } => write!(f, "reached max_turns ({turns})"),
            Self::RefreshFailed => f.write_str("issue state refresh error"),
            Self::Unblocked => f.write_str("issue changed while blocked"),
            Self::TokenBudget { used, limit } => {
                write!(f, "token budget used: {used} of {limit} tokens")
            }
            Self::TurnBudget { used, limit } => {
                write!(f, "turn budget used: {used} of {limit} turns")
            }
            Self::RuntimeBudget { used_ms, limit_ms } => {
                write!(f, "runtime budget used: {used_ms} of {limit_ms} ms")
            }
            Self::RunTimeout { limit_ms } => write!(f, "run timed out after {limit_ms} ms"),
            Self::Shutdown => f.write_str("shutdown"),
            Self::OperatorStop => f.write_str("stopped by the operator"),
            Self::Completed { state } => write!(f, "run completed: the issue moved to {state:?}"),
        }
    }
}
