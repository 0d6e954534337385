//! Everything that can happen to the orchestrator (SPEC 7.3 transition triggers).
//!
//! Events are facts, named for what happened. Each one arrives with the time it happened, as
//! the `at` argument of [`crate::Orchestrator::handle`]. Every SPEC 7.3 trigger maps to one
//! variant:
//!
//! | SPEC trigger            | Event                                                         |
//! |-------------------------|---------------------------------------------------------------|
//! | poll tick               | [`Event::TimerFired`] once the poll deadline has passed       |
//! | retry timer fired       | [`Event::TimerFired`] once a retry's due time has passed      |
//! | worker exit             | [`Event::WorkerExited`]                                       |
//! | codex update event      | [`Event::AgentUpdate`]                                        |
//! | reconciliation refresh  | [`Event::IssuesRefreshed`] / [`Event::IssuesRefreshFailed`]   |
//! | stall timeout           | detected on the poll tick (SPEC 8.5 part A)                   |
//!
//! Responses to requests carry the [`RequestId`] of the command that asked for them; a
//! response nobody is waiting for (late, duplicated, invented) is ignored.

use serde::{Deserialize, Serialize};

use crate::command::{RequestId, RunId};
use crate::config::SchedulerConfig;
use crate::issue::{Issue, IssueId};

/// An input to the orchestrator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The service started with the config given to [`crate::Orchestrator::new`]: list
    /// terminal issues for cleanup and run the first tick at once (SPEC 16.1).
    Startup,
    /// The shell's sleep until [`crate::Orchestrator::next_deadline`] ended. Fires every
    /// deadline that has passed: the poll tick and due retries. Early or repeated firings are
    /// harmless.
    TimerFired,
    /// Answer to [`crate::Command::FetchCandidates`].
    CandidatesFetched {
        /// The request being answered.
        request: RequestId,
        /// Issues in the active states, dispatchable or not (SPEC 11.1).
        issues: Vec<Issue>,
    },
    /// [`crate::Command::FetchCandidates`] failed: dispatch is skipped this tick (SPEC 11.4).
    CandidatesFetchFailed {
        /// The request being answered.
        request: RequestId,
        /// What went wrong.
        error: TrackerError,
    },
    /// Answer to [`crate::Command::RefreshIssues`]: the current snapshot of every requested
    /// issue still visible; omitted ids are no longer visible (SPEC 11.1).
    IssuesRefreshed {
        /// The request being answered.
        request: RequestId,
        /// Fresh snapshots.
        issues: Vec<Issue>,
    },
    /// [`crate::Command::RefreshIssues`] failed.
    IssuesRefreshFailed {
        /// The request being answered.
        request: RequestId,
        /// What went wrong.
        error: TrackerError,
    },
    /// Answer to [`crate::Command::ListTerminalIssues`] (SPEC 8.6).
    TerminalIssuesListed {
        /// The request being answered.
        request: RequestId,
        /// Issues currently in terminal states.
        issues: Vec<Issue>,
    },
    /// [`crate::Command::ListTerminalIssues`] failed; startup goes on (SPEC 8.6).
    TerminalIssuesListFailed {
        /// The request being answered.
        request: RequestId,
        /// What went wrong.
        error: TrackerError,
    },
    /// A dispatched worker is up and has its workspace.
    WorkerStarted {
        /// The issue it works on.
        issue_id: IssueId,
        /// The run named in [`crate::Command::Dispatch`].
        run: RunId,
        /// Absolute workspace path, for status surfaces.
        workspace_path: Option<String>,
    },
    /// Something the coding agent reported (SPEC 10.4).
    AgentUpdate {
        /// The issue it works on.
        issue_id: IssueId,
        /// The run it belongs to.
        run: RunId,
        /// What it reported.
        update: AgentUpdate,
    },
    /// A worker ended, on its own or because it was told to stop.
    WorkerExited {
        /// The issue it worked on.
        issue_id: IssueId,
        /// The run it belonged to.
        run: RunId,
        /// How it ended.
        outcome: ExitOutcome,
    },
    /// WORKFLOW.md changed and the new version is valid (SPEC 6.2): future decisions use it and
    /// the dispatch preflight passes again.
    WorkflowReloaded {
        /// The new settings.
        config: SchedulerConfig,
    },
    /// WORKFLOW.md changed (or the per-tick re-check found it) and it does not load or validate
    /// (SPEC 6.3). The last good config stays in force for everything but new dispatch, which
    /// is skipped until a valid reload (SPEC 5.5).
    WorkflowInvalid {
        /// Why it failed.
        error: ConfigError,
    },
    /// Free space on the workspace root's filesystem fell below `workspace.min_free_disk_mb`:
    /// new dispatch pauses, like a failed preflight; running workers are not touched.
    DiskSpaceLow {
        /// Free megabytes measured.
        free_mb: u64,
        /// The configured minimum.
        min_mb: u64,
    },
    /// Free space is back above the minimum: dispatch resumes.
    DiskSpaceRecovered {
        /// Free megabytes measured.
        free_mb: u64,
    },
    /// An operator asked for an immediate poll and reconciliation (SPEC 13.7.2 refresh).
    RefreshRequested,
    /// An operator paused dispatch (extension): nothing new starts until
    /// [`Event::ResumeRequested`]; running agents go on.
    PauseRequested {
        /// Why, as the operator said it (may be empty).
        reason: String,
    },
    /// An operator resumed dispatch; a poll follows at once.
    ResumeRequested,
    /// An operator asked to end the live run of one issue now; the issue is then held until it
    /// changes in the tracker.
    StopRequested {
        /// The issue's human-readable key.
        identifier: String,
    },
    /// The orchestrator was restored from the event log of a process that is gone: its live
    /// runs become retries, requests in flight are forgotten, and [`Event::Startup`] follows
    /// (`crate::restart`).
    Restarted,
    /// At start, what the previous process kept (the pause, the day's token use).
    StateRestored {
        /// The kept state.
        durable: crate::operator::Durable,
    },
    /// SIGINT/SIGTERM: stop dispatching, stop every worker, then report
    /// [`crate::Command::ShutdownComplete`].
    ShutdownRequested,
}

/// A tracker failure, by SPEC 11.4 category. The core only needs success versus failure; the
/// category and message are for logs and status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackerError {
    /// Portable category.
    pub category: TrackerErrorCategory,
    /// Human-readable detail, secrets already removed.
    pub message: String,
}

/// SPEC 11.4 portable tracker error categories.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackerErrorCategory {
    /// `tracker.kind` names no adapter this build has.
    UnsupportedTrackerKind,
    /// The adapter rejected `tracker.provider`.
    InvalidTrackerConfig,
    /// A documented secret resolved to nothing.
    MissingTrackerSecret,
    /// Transport failure: connect, TLS, timeout.
    TrackerRequest,
    /// The provider answered with a non-success status (other than the two below).
    TrackerStatus,
    /// The provider refused the credential: HTTP 401, or 403 that is not a rate limit.
    TrackerAuth,
    /// The payload was malformed or semantically invalid.
    TrackerResponse,
    /// Pagination lost its integrity (cursor loop, missing page).
    TrackerPagination,
    /// The provider is rate limiting us.
    TrackerRateLimited,
}

/// A workflow that failed to load or validate (SPEC 5.5 error classes and 6.3 checks).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigError {
    /// Error class, e.g. `workflow_parse_error`.
    pub class: ConfigErrorClass,
    /// Human-readable detail naming the file and field.
    pub message: String,
}

/// The error classes of SPEC 5.5, plus the validation classes of SPEC 6.3 and the ones this
/// implementation adds. Encoded as the snake_case name, which is also what logs and the API
/// show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigErrorClass {
    /// The file cannot be read.
    MissingWorkflowFile,
    /// The front matter is not valid YAML, or is never closed.
    WorkflowParseError,
    /// The front matter is valid YAML but not a map.
    WorkflowFrontMatterNotAMap,
    /// The prompt body is not a valid template.
    TemplateParseError,
    /// Rendering failed: unknown variable or field, bad interpolation.
    TemplateRenderError,
    /// `tracker.kind` is absent.
    MissingTrackerKind,
    /// `tracker.kind` names no adapter this build has.
    UnsupportedTrackerKind,
    /// The adapter's credential is absent or empty after `$VAR` resolution.
    MissingTrackerApiKey,
    /// The adapter's project or repository selector is absent.
    MissingTrackerProject,
    /// `codex.command` is empty.
    MissingCodexCommand,
    /// A value has the wrong type or range.
    InvalidConfigValue,
    /// The config is valid but the parts it names cannot be set up (the workspace root
    /// cannot be created, the tracker's HTTP client cannot be built).
    ConfigSetupFailed,
}

impl ConfigErrorClass {
    /// Every class, in declaration order (docs and tests list them).
    pub const ALL: [Self; 12] = [
        Self::MissingWorkflowFile,
        Self::WorkflowParseError,
        Self::WorkflowFrontMatterNotAMap,
        Self::TemplateParseError,
        Self::TemplateRenderError,
        Self::MissingTrackerKind,
        Self::UnsupportedTrackerKind,
        Self::MissingTrackerApiKey,
        Self::MissingTrackerProject,
        Self::MissingCodexCommand,
        Self::InvalidConfigValue,
        Self::ConfigSetupFailed,
    ];

    /// The snake_case name used in messages, logs and the event log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingWorkflowFile => "missing_workflow_file",
            Self::WorkflowParseError => "workflow_parse_error",
            Self::WorkflowFrontMatterNotAMap => "workflow_front_matter_not_a_map",
            Self::TemplateParseError => "template_parse_error",
            Self::TemplateRenderError => "template_render_error",
            Self::MissingTrackerKind => "missing_tracker_kind",
            Self::UnsupportedTrackerKind => "unsupported_tracker_kind",
            Self::MissingTrackerApiKey => "missing_tracker_api_key",
            Self::MissingTrackerProject => "missing_tracker_project",
            Self::MissingCodexCommand => "missing_codex_command",
            Self::InvalidConfigValue => "invalid_config_value",
            Self::ConfigSetupFailed => "config_setup_failed",
        }
    }

    /// Whether this error blocks dispatch (file and config errors) rather than failing only
    /// the run attempt that rendered the prompt (template errors, SPEC 5.5).
    pub fn blocks_dispatch(self) -> bool {
        !matches!(self, Self::TemplateRenderError)
    }
}

impl std::fmt::Display for ConfigErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A coding-agent report, already decoded from the agent's protocol by the shell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AgentUpdate {
    /// The agent process is up and a thread exists.
    SessionStarted {
        /// Thread identity.
        thread_id: String,
        /// Agent process id, when known.
        pid: Option<u32>,
    },
    /// A turn began; counts toward `agent.max_turns`.
    TurnStarted {
        /// Turn identity; with the thread id it forms the session id (SPEC 4.2).
        turn_id: String,
    },
    /// A turn completed successfully: the core decides between another turn and ending the run.
    TurnCompleted {
        /// The turn that completed.
        turn_id: String,
    },
    /// Absolute token totals for the thread so far (SPEC 13.5). Never deltas.
    TokenUsage {
        /// Input tokens.
        input_tokens: u64,
        /// Output tokens.
        output_tokens: u64,
        /// Total tokens as the agent reported it.
        total_tokens: u64,
    },
    /// The latest rate-limit payload, kept as the agent sent it.
    RateLimits {
        /// Opaque payload.
        snapshot: serde_json::Value,
    },
    /// The session's cost so far, as the agent reports it (Claude Code's `total_cost_usd`),
    /// in millionths of a dollar; absolute for the thread, never a delta.
    Cost {
        /// Total for the thread.
        total_usd_micros: u64,
    },
    /// Tools the agent was refused for want of permission in its last turn.
    PermissionDenied {
        /// Tool names.
        tools: Vec<String>,
    },
    /// Any other agent event worth showing: its name and a short summary.
    Message {
        /// Event name, e.g. `notification` or `approval_auto_approved`.
        event: String,
        /// Redacted summary; the core keeps at most 256 characters.
        message: Option<String>,
    },
}

/// How a worker run ended, as seen by the shell (SPEC 7.2 terminal reasons, 10.6 categories).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ExitOutcome {
    /// The worker finished its turn loop normally.
    Normal,
    /// The attempt failed (hook, prompt, startup, turn failure, process exit, ...).
    Failed {
        /// Category and detail, e.g. `turn_failed: model returned 500`.
        reason: String,
    },
    /// A read or turn timeout fired in the runner.
    TimedOut {
        /// Which timeout, e.g. `turn_timeout`.
        reason: String,
    },
    /// The turn or process was cancelled.
    Cancelled {
        /// Detail.
        reason: String,
    },
    /// The agent asked for user input, which an unattended run cannot give (SPEC 10.5).
    InputRequired {
        /// What it asked for, summarised.
        reason: String,
    },
    /// The run's worker host could not be used before the agent started: connection refused,
    /// authentication or host key failure, the workspace not created there (Appendix A).
    HostUnavailable {
        /// What failed.
        reason: String,
    },
}

impl ExitOutcome {
    /// The text stored as a retry entry's error.
    pub fn describe(&self) -> String {
        match self {
            Self::Normal => "normal exit".into(),
            Self::Failed { reason } => format!("worker failed: {reason}"),
            Self::TimedOut { reason } => format!("worker timed out: {reason}"),
            Self::Cancelled { reason } => format!("worker cancelled: {reason}"),
            Self::InputRequired { reason } => format!("input required: {reason}"),
            Self::HostUnavailable { reason } => format!("worker host unavailable: {reason}"),
        }
    }
}

#[cfg(test)]
mod config_error_class_tests {
    use super::ConfigErrorClass;

    /// The event log and the API carry the class as its name: the encoding must be exactly
    /// `as_str`, and read back to the same class.
    #[test]
    fn every_class_encodes_as_its_name_and_reads_back() {
        for class in ConfigErrorClass::ALL {
            let encoded = serde_json::to_string(&class).unwrap();
            assert_eq!(encoded, format!("\"{}\"", class.as_str()));
            let decoded: ConfigErrorClass = serde_json::from_str(&encoded).unwrap();
            assert_eq!(decoded, class);
        }
        let blocking = ConfigErrorClass::ALL
            .iter()
            .filter(|c| !c.blocks_dispatch());
        assert_eq!(
            blocking.collect::<Vec<_>>(),
            [&ConfigErrorClass::TemplateRenderError]
        );
    }
}
