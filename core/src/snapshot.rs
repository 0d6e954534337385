//! Read-only views of the runtime state for status surfaces (SPEC 13.3, 13.7.2).
//!
//! Field names follow the SPEC's suggested JSON so the HTTP layer can serialise these as they
//! are. Timestamps serialise as RFC 3339 strings.

use serde::{Deserialize, Serialize};

use crate::event::ConfigError;
use crate::orchestrator::Orchestrator;
use crate::state::{BlockedEntry, Claim, RetryEntry, RunningEntry, Tokens, WaitingEntry};
use crate::time::{Timestamp, rfc3339};

/// The whole runtime state at one instant (`GET /api/v1/state`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When this view was taken.
    #[serde(with = "rfc3339")]
    pub generated_at: Timestamp,
    /// Row counts.
    pub counts: Counts,
    /// Live workers, including ones being stopped.
    pub running: Vec<RunningRow>,
    /// Queued retries, earliest first.
    pub retrying: Vec<RetryRow>,
    /// Issues held because their agent needed user input.
    pub blocked: Vec<BlockedRow>,
    /// Issues in an active state that do not run now, and why (a blocker, a missing label, a
    /// full slot, paused dispatch), as of the last candidate fetch.
    #[serde(default)]
    pub waiting: Vec<WaitingRow>,
    /// Candidates beyond the listed waiting ones (the list keeps at most 100 per poll: those
    /// with a reason of their own first, then the next in line for a slot). The count can
    /// include issues claimed since the poll.
    #[serde(default)]
    pub waiting_unlisted: usize,
    /// Aggregate tokens and runtime (SPEC 13.5).
    pub codex_totals: CodexTotals,
    /// Latest rate-limit payload from any agent.
    pub rate_limits: Option<serde_json::Value>,
    /// Scheduler health.
    pub dispatch: DispatchStatus,
    /// The worker hosts (`worker.ssh_hosts`), in list order; empty (and left out) when every
    /// run is local.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostRow>,
}

/// One worker host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRow {
    /// As configured.
    pub host: String,
    /// Runs on it now (stopping ones included).
    pub running: u32,
    /// Held out of choice until then, after a run failed there before its agent started.
    #[serde(
        default,
        with = "rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub held_until: Option<Timestamp>,
    /// What failed there, while held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_because: Option<String>,
}

/// Row counts of a [`Snapshot`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Live workers.
    pub running: usize,
    /// Queued retries.
    pub retrying: usize,
    /// Blocked issues.
    pub blocked: usize,
    /// Waiting issues.
    #[serde(default)]
    pub waiting: usize,
}

/// One live worker (SPEC 13.7.2 `running[]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningRow {
    /// Dispatch id.
    pub issue_id: String,
    /// Human-readable key.
    pub issue_identifier: String,
    /// Tracker link.
    pub issue_url: Option<String>,
    /// Tracker state as last refreshed.
    pub state: String,
    /// `<thread_id>-<turn_id>` once known.
    pub session_id: Option<String>,
    /// SPEC 7.2 phase, as the worker's events so far show it: `preparing_workspace`,
    /// `launching_agent_process` (prompt and process), `initializing_session`,
    /// `streaming_turn`, or `finishing` (between turns while the issue is re-checked, and
    /// while a stop is in progress).
    #[serde(default)]
    pub phase: String,
    /// Turns started in this run.
    pub turn_count: u32,
    /// Name of the last agent event.
    pub last_event: Option<String>,
    /// Last agent message summary (at most 256 characters).
    pub last_message: Option<String>,
    /// When the run was dispatched.
    #[serde(with = "rfc3339")]
    pub started_at: Timestamp,
    /// When the agent was last heard from.
    #[serde(with = "rfc3339::option")]
    pub last_event_at: Option<Timestamp>,
    /// Tokens used by this run.
    pub tokens: Tokens,
    /// `None` on a first run, else the retry/continuation count.
    pub attempt: Option<u32>,
    /// Workspace path, once the worker reported it.
    pub workspace_path: Option<String>,
    /// Agent process id, when known.
    pub pid: Option<u32>,
    /// Set while the worker is being stopped: why.
    pub stopping: Option<String>,
    /// Cost of this run as the agent reports it, in millionths of a dollar (Claude Code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd_micros: Option<u64>,
    /// Tools the agent was refused for want of permission in this run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permission_denials: Vec<String>,
    /// The worker host it runs on; absent: this machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// One queued retry (SPEC 13.7.2 `retrying[]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryRow {
    /// Dispatch id.
    pub issue_id: String,
    /// Human-readable key.
    pub issue_identifier: String,
    /// Tracker link.
    pub issue_url: Option<String>,
    /// Attempt the retry will run as.
    pub attempt: u32,
    /// When it fires.
    #[serde(with = "rfc3339")]
    pub due_at: Timestamp,
    /// The failure behind it, if any.
    pub error: Option<String>,
    /// The host of the run before, which the retry prefers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// One blocked issue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedRow {
    /// Dispatch id.
    pub issue_id: String,
    /// Human-readable key.
    pub issue_identifier: String,
    /// Tracker link.
    pub issue_url: Option<String>,
    /// Tracker state when it was blocked.
    pub state: String,
    /// What the agent asked for.
    pub reason: String,
    /// The attempt that ended blocked (`None` for a first run).
    pub attempt: Option<u32>,
    /// Since when.
    #[serde(with = "rfc3339")]
    pub since: Timestamp,
}

/// One issue that is eligible by state but does not run now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingRow {
    /// Dispatch id.
    pub issue_id: String,
    /// Human-readable key.
    pub issue_identifier: String,
    /// Tracker link.
    pub issue_url: Option<String>,
    /// Tracker state.
    pub state: String,
    /// Why it does not run now.
    pub reason: String,
    /// Since when it has waited for this reason.
    #[serde(with = "rfc3339")]
    pub since: Timestamp,
}

/// Aggregate tokens and runtime (SPEC 13.3 `codex_totals`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CodexTotals {
    /// Input tokens over every run.
    pub input_tokens: u64,
    /// Output tokens over every run.
    pub output_tokens: u64,
    /// Total tokens over every run.
    pub total_tokens: u64,
    /// Runtime of ended runs plus live runs so far.
    pub seconds_running: f64,
}

/// Scheduler health for dashboards and `/readyz`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DispatchStatus {
    /// Startup done and a tick completed.
    pub ready: bool,
    /// Set while the workflow fails validation: new dispatch is paused.
    pub preflight_error: Option<ConfigError>,
    /// Set while the workspace filesystem is short of space: new dispatch is paused.
    pub disk_low: Option<String>,
    /// Ticks completed since startup.
    pub ticks_completed: u64,
    /// When the next poll is due, if one is scheduled.
    #[serde(with = "rfc3339::option")]
    pub next_poll_at: Option<Timestamp>,
    /// Normal worker exits since startup.
    pub completed_runs: u64,
    /// The daily token budget, when `agent.max_tokens_per_day` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_tokens: Option<DailyTokens>,
    /// Set while an operator has paused dispatch.
    #[serde(default)]
    pub paused: Option<crate::operator::Pause>,
}

/// The day's token use against `agent.max_tokens_per_day`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyTokens {
    /// Tokens used this UTC day.
    pub used: u64,
    /// The limit.
    pub limit: u64,
    /// The next UTC midnight, when the count starts over.
    #[serde(with = "rfc3339")]
    pub resets_at: Timestamp,
}

/// Everything known about one issue (`GET /api/v1/<identifier>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueDetail {
    /// Human-readable key.
    pub issue_identifier: String,
    /// Dispatch id.
    pub issue_id: String,
    /// `running`, `stopping`, `retrying`, `blocked` or `waiting`.
    pub status: String,
    /// The live run, when there is one.
    pub running: Option<RunningRow>,
    /// The queued retry, when there is one.
    pub retry: Option<RetryRow>,
    /// The block, when there is one.
    pub blocked: Option<BlockedRow>,
    /// Why it waits, when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<WaitingRow>,
}

impl Orchestrator {
    /// The state at `now` (which only affects live runtime; decisions are not changed).
    pub fn snapshot(&self, now: Timestamp) -> Snapshot {
        let mut running = Vec::new();
        let mut retrying = Vec::new();
        let mut blocked = Vec::new();
        let mut live_ms = 0u64;
        for (id, claim) in &self.claims {
            match claim {
                Claim::Running(entry) => running.push(running_row(entry, None)),
                Claim::Stopping(entry, stop) => {
                    running.push(running_row(entry, Some(stop.reason.to_string())));
                }
                Claim::Retrying(entry) => retrying.push(retry_row(id.as_str(), entry)),
                Claim::Blocked(entry) => blocked.push(blocked_row(id.as_str(), entry)),
            }
            if let Claim::Running(entry) | Claim::Stopping(entry, _) = claim {
                live_ms += now.millis_since(entry.started_at);
            }
        }
        retrying.sort_by(|a, b| (a.due_at, &a.issue_id).cmp(&(b.due_at, &b.issue_id)));
        // Claimed since the last fetch: shown in its own row already.
        let waiting: Vec<WaitingRow> = self
            .waiting
            .iter()
            .filter(|(id, _)| !self.claims.contains_key(*id))
            .map(|(id, entry)| waiting_row(id.as_str(), entry))
            .collect();
        #[allow(clippy::cast_precision_loss)]
        let seconds_running = (self.ended_runtime_ms + live_ms) as f64 / 1000.0;
        Snapshot {
            generated_at: now,
            counts: Counts {
                running: running.len(),
                retrying: retrying.len(),
                blocked: blocked.len(),
                waiting: waiting.len(),
            },
            running,
            retrying,
            blocked,
            waiting,
            waiting_unlisted: self.waiting_unlisted,
            codex_totals: CodexTotals {
                input_tokens: self.totals.input_tokens,
                output_tokens: self.totals.output_tokens,
                total_tokens: self.totals.total_tokens,
                seconds_running,
            },
            rate_limits: self.rate_limits.clone(),
            dispatch: DispatchStatus {
                ready: self.is_ready(),
                preflight_error: self.preflight_error.clone(),
                disk_low: self.disk_low.clone(),
                ticks_completed: self.ticks_completed,
                next_poll_at: self.next_poll,
                completed_runs: self.completed_runs,
                daily_tokens: self.config.max_tokens_per_day.map(|limit| DailyTokens {
                    used: self.today.used(now),
                    limit,
                    resets_at: crate::budget::DayUse::resets_at(now),
                }),
                paused: self.operator_pause.clone(),
            },
            hosts: self.host_rows(),
        }
    }

    /// The configured worker hosts, their load and holds.
    fn host_rows(&self) -> Vec<HostRow> {
        let slots = self.slots();
        (self.config.worker_hosts.iter())
            .map(|host| {
                let hold = (self.host_holds.get(host)).filter(|hold| hold.until > self.now);
                HostRow {
                    host: host.clone(),
                    running: slots.on_host(host),
                    held_until: hold.map(|h| h.until),
                    held_because: hold.map(|h| h.reason.clone()),
                }
            })
            .collect()
    }

    /// Details of the claimed or waiting issue with this human-readable key, if any.
    pub fn issue_detail(&self, identifier: &str) -> Option<IssueDetail> {
        self.claimed_detail(identifier).or_else(|| {
            self.waiting.iter().find_map(|(id, entry)| {
                (entry.identifier == identifier).then(|| IssueDetail {
                    issue_identifier: identifier.to_owned(),
                    issue_id: id.0.clone(),
                    status: "waiting".to_owned(),
                    running: None,
                    retry: None,
                    blocked: None,
                    waiting: Some(waiting_row(id.as_str(), entry)),
                })
            })
        })
    }

    fn claimed_detail(&self, identifier: &str) -> Option<IssueDetail> {
        self.claims.iter().find_map(|(id, claim)| {
            let (status, running, retry, blocked) = match claim {
                Claim::Running(e) if e.issue.identifier == identifier => {
                    ("running", Some(running_row(e, None)), None, None)
                }
                Claim::Stopping(e, stop) if e.issue.identifier == identifier => (
                    "stopping",
                    Some(running_row(e, Some(stop.reason.to_string()))),
                    None,
                    None,
                ),
                Claim::Retrying(e) if e.identifier == identifier => {
                    ("retrying", None, Some(retry_row(id.as_str(), e)), None)
                }
                Claim::Blocked(e) if e.identifier == identifier => {
                    ("blocked", None, None, Some(blocked_row(id.as_str(), e)))
                }
                _ => return None,
            };
            Some(IssueDetail {
                issue_identifier: identifier.to_owned(),
                issue_id: id.0.clone(),
                status: status.to_owned(),
                running,
                retry,
                blocked,
                waiting: None,
            })
        })
    }
}

fn running_row(entry: &RunningEntry, stopping: Option<String>) -> RunningRow {
    RunningRow {
        issue_id: entry.issue.id.0.clone(),
        issue_identifier: entry.issue.identifier.clone(),
        issue_url: entry.issue.url.clone(),
        state: entry.issue.state.clone(),
        session_id: entry.session_id(),
        phase: entry.phase(stopping.is_some()).to_owned(),
        turn_count: entry.turn_count,
        last_event: entry.last_event.as_deref().map(str::to_owned),
        last_message: entry.last_message.clone(),
        started_at: entry.started_at,
        last_event_at: entry.last_event_at,
        tokens: entry.tokens,
        attempt: entry.attempt,
        workspace_path: entry.workspace_path.clone(),
        pid: entry.pid,
        stopping,
        cost_usd_micros: (entry.cost_usd_micros > 0).then_some(entry.cost_usd_micros),
        permission_denials: entry.denied.clone(),
        host: entry.host.clone(),
    }
}

fn retry_row(id: &str, entry: &RetryEntry) -> RetryRow {
    RetryRow {
        issue_id: id.to_owned(),
        issue_identifier: entry.identifier.clone(),
        issue_url: entry.url.clone(),
        attempt: entry.attempt,
        due_at: entry.due_at,
        error: entry.error.clone(),
        host: entry.host.clone(),
    }
}

fn blocked_row(id: &str, entry: &BlockedEntry) -> BlockedRow {
    BlockedRow {
        issue_id: id.to_owned(),
        issue_identifier: entry.identifier.clone(),
        issue_url: entry.url.clone(),
        state: entry.state.clone(),
        reason: entry.reason.clone(),
        attempt: entry.attempt,
        since: entry.since,
    }
}

fn waiting_row(id: &str, entry: &WaitingEntry) -> WaitingRow {
    WaitingRow {
        issue_id: id.to_owned(),
        issue_identifier: entry.identifier.clone(),
        issue_url: entry.url.clone(),
        state: entry.state.clone(),
        reason: entry.reason.clone(),
        since: entry.since,
    }
}
