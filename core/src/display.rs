//! One-line renderings of events and commands, for logs, `symphony replay` and the scenario
//! snapshots a reviewer reads. Not parsed back: the JSON encoding is the stable format.

use std::fmt::{self, Display, Formatter, Write as _};

use crate::command::{Command, RetryKind};
use crate::event::{AgentUpdate, Event, ExitOutcome};
use crate::issue::{Issue, IssueId};

/// Lists at most this many issues or ids per line.
const MAX_LISTED: usize = 8;

struct Issues<'a>(&'a [Issue]);

impl Display for Issues<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_char('[')?;
        for (i, issue) in self.0.iter().take(MAX_LISTED).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{} {:?}", issue.identifier, issue.state)?;
            if let Some(p) = issue.priority {
                write!(f, " p{p}")?;
            }
            if !issue.dispatchable {
                f.write_str(" !dispatchable")?;
            }
            if !issue.labels.is_empty() {
                write!(f, " {:?}", issue.labels)?;
            }
        }
        more(f, self.0.len())?;
        f.write_char(']')
    }
}

struct Ids<'a>(&'a [IssueId]);

impl Display for Ids<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_char('[')?;
        for (i, id) in self.0.iter().take(MAX_LISTED).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(id.as_str())?;
        }
        more(f, self.0.len())?;
        f.write_char(']')
    }
}

fn more(f: &mut Formatter<'_>, len: usize) -> fmt::Result {
    if len > MAX_LISTED {
        write!(f, ", ... {} more", len - MAX_LISTED)?;
    }
    Ok(())
}

fn attempt(attempt: Option<u32>) -> String {
    attempt.map_or_else(|| "first".to_owned(), |a| format!("attempt {a}"))
}

impl Display for Event {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Self::Startup => f.write_str("startup"),
            Self::TimerFired => f.write_str("timer fired"),
            Self::CandidatesFetched { request, issues } => {
                write!(f, "candidates {request}: {}", Issues(issues))
            }
            Self::CandidatesFetchFailed { request, error }
            | Self::IssuesRefreshFailed { request, error }
            | Self::TerminalIssuesListFailed { request, error } => write!(
                f,
                "tracker {request} failed: {:?}: {}",
                error.category, error.message
            ),
            Self::IssuesRefreshed { request, issues } => {
                write!(f, "refreshed {request}: {}", Issues(issues))
            }
            Self::TerminalIssuesListed { request, issues } => {
                write!(f, "terminal issues {request}: {}", Issues(issues))
            }
            Self::WorkerStarted {
                issue_id,
                run,
                workspace_path,
            } => {
                write!(f, "worker started {issue_id} {run}")?;
                if let Some(path) = workspace_path {
                    write!(f, " in {path}")?;
                }
                Ok(())
            }
            Self::AgentUpdate {
                issue_id,
                run,
                update,
            } => write!(f, "agent {issue_id} {run}: {update}"),
            Self::WorkerExited {
                issue_id,
                run,
                outcome,
            } => write!(f, "worker exited {issue_id} {run}: {outcome}"),
            Self::WorkflowReloaded { config } => {
                write!(f, "workflow reloaded ({})", config.digest())
            }
            Self::WorkflowInvalid { error } => {
                write!(f, "workflow invalid [{}]: {}", error.class, error.message)
            }
            Self::DiskSpaceLow { free_mb, min_mb } => {
                write!(f, "disk space low: {free_mb} MB free, {min_mb} MB required")
            }
            Self::DiskSpaceRecovered { free_mb } => {
                write!(f, "disk space recovered: {free_mb} MB free")
            }
            Self::RefreshRequested => f.write_str("operator refresh requested"),
            Self::PauseRequested { reason } => write!(f, "operator paused dispatch: {reason}"),
            Self::ResumeRequested => f.write_str("operator resumed dispatch"),
            Self::Restarted => f.write_str("restarted from the event log"),
            Self::StopRequested { identifier } => write!(f, "operator stop of {identifier}"),
            Self::StateRestored { durable } => write!(
                f,
                "state restored: {}, {} tokens on day {}",
                if durable.paused.is_some() {
                    "paused"
                } else {
                    "not paused"
                },
                durable.day_tokens,
                durable.day
            ),
            Self::ShutdownRequested => f.write_str("shutdown requested"),
        }
    }
}

impl Display for AgentUpdate {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Self::SessionStarted { thread_id, pid } => {
                write!(f, "session started thread={thread_id}")?;
                if let Some(pid) = pid {
                    write!(f, " pid={pid}")?;
                }
                Ok(())
            }
            Self::TurnStarted { turn_id } => write!(f, "turn started {turn_id}"),
            Self::TurnCompleted { turn_id } => write!(f, "turn completed {turn_id}"),
            Self::TokenUsage {
                input_tokens,
                output_tokens,
                total_tokens,
            } => write!(
                f,
                "tokens in={input_tokens} out={output_tokens} total={total_tokens}"
            ),
            Self::RateLimits { snapshot } => write!(f, "rate limits {snapshot}"),
            Self::Cost { total_usd_micros } => write!(f, "cost {total_usd_micros} micro-USD"),
            Self::PermissionDenied { tools } => {
                write!(f, "permission denied: {}", tools.join(", "))
            }
            Self::Message { event, message } => {
                write!(f, "{event}")?;
                if let Some(message) = message {
                    write!(f, " {message:?}")?;
                }
                Ok(())
            }
        }
    }
}

impl Display for ExitOutcome {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Display for Command {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Self::ListTerminalIssues { request, states } => {
                write!(f, "list-terminal-issues {request} {states:?}")
            }
            Self::FetchCandidates { request, states } => {
                write!(f, "fetch-candidates {request} {states:?}")
            }
            Self::RefreshIssues { request, ids } => write!(f, "refresh {request} {}", Ids(ids)),
            Self::Dispatch {
                issue_id,
                run,
                attempt: a,
                issue,
                host,
            } => {
                write!(
                    f,
                    "dispatch {} ({issue_id}) {run} {} state={:?}",
                    issue.identifier,
                    attempt(*a),
                    issue.state
                )?;
                if let Some(host) = host {
                    write!(f, " on {host}")?;
                }
                Ok(())
            }
            Self::StartTurn {
                issue_id,
                run,
                turn,
                ..
            } => write!(f, "start-turn {issue_id} {run} turn {turn}"),
            Self::StopWorker {
                issue_id,
                run,
                reason,
                cleanup_workspace,
            } => {
                write!(f, "stop-worker {issue_id} {run}: {reason}")?;
                if *cleanup_workspace {
                    f.write_str(" +clean-workspace")?;
                }
                Ok(())
            }
            Self::ScheduleRetry {
                issue_id,
                identifier,
                attempt,
                due_at,
                delay_ms,
                kind,
                error,
            } => {
                let kind = match kind {
                    RetryKind::Continuation => "continuation",
                    RetryKind::Failure => "failure",
                    RetryKind::Restart => "restart",
                    RetryKind::Host => "host",
                };
                write!(
                    f,
                    "schedule-retry {identifier} ({issue_id}) attempt {attempt} {kind} \
                     in {delay_ms} ms at {due_at}"
                )?;
                if let Some(error) = error {
                    write!(f, ": {error}")?;
                }
                Ok(())
            }
            Self::CancelRetry { issue_id } => write!(f, "cancel-retry {issue_id}"),
            Self::ReleaseClaim { issue_id, reason } => write!(f, "release {issue_id}: {reason}"),
            Self::HoldIssue {
                issue_id,
                identifier,
                reason,
            } => write!(f, "hold {identifier} ({issue_id}): {reason}"),
            Self::IssueWaiting {
                issue_id,
                identifier,
                reason,
            } => write!(f, "waiting {identifier} ({issue_id}): {reason}"),
            Self::CleanWorkspace {
                issue_id,
                identifier,
                host,
            } => {
                write!(f, "clean-workspace {identifier} ({issue_id})")?;
                if let Some(host) = host {
                    write!(f, " on {host}")?;
                }
                Ok(())
            }
            Self::HoldHost {
                host,
                until,
                reason,
            } => write!(f, "hold-host {host} until {until}: {reason}"),
            Self::SweepWorkspaces { max_age_days, keep } => {
                write!(f, "sweep-workspaces older than {max_age_days} d")?;
                if !keep.is_empty() {
                    write!(f, ", keeping {}", keep.join(" "))?;
                }
                Ok(())
            }
            Self::SchedulePoll { due_at } => write!(f, "schedule-poll at {due_at}"),
            Self::RefreshQueued { queued, coalesced } => {
                write!(f, "refresh-queued queued={queued} coalesced={coalesced}")
            }
            Self::ShutdownComplete => f.write_str("shutdown-complete"),
        }
    }
}
