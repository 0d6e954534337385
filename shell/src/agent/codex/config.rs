//! The `codex` section (SPEC 5.3): the Codex runner's settings, read by its room.

use serde::Serialize;
use symphony_core::issue::normalize;

use crate::workflow::{ErrorClass, SectionKeys, WorkflowError};

/// How approval requests are answered (`codex.approval_decision`), parsed once at load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalDecision {
    /// Approve, and do not ask again this session (SPEC 10.5's high-trust example).
    AcceptForSession,
    /// Approve this one request.
    Accept,
    /// Refuse.
    Decline,
}

/// `codex`. Policy values pass through to the app-server unchanged.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CodexConfig {
    /// Launched with `bash -lc` in the workspace.
    pub command: String,
    /// `AskForApproval`.
    pub approval_policy: serde_json::Value,
    /// `SandboxMode` for `thread/start`.
    pub thread_sandbox: serde_json::Value,
    /// `SandboxPolicy` for `turn/start`; omitted when `None`.
    pub turn_sandbox_policy: Option<serde_json::Value>,
    /// Silence allowed within a turn.
    pub turn_timeout_ms: u64,
    /// Wait for a response to a request.
    pub read_timeout_ms: u64,
    /// Host environment variables passed to the agent by name, beyond the built-in allowlist.
    pub env: Vec<String>,
    /// How approval requests are answered: `accept_for_session` (default), `accept` or
    /// `decline`.
    pub approval_decision: ApprovalDecision,
}

/// About 31 years: larger millisecond values are surely typos.
const MAX_MS: i64 = 1 << 40;

/// Reads the `codex` section. `stall_timeout_ms` is known here but read as an agent setting
/// (`agent.stall_timeout_ms`).
pub fn read_config(keys: &mut SectionKeys<'_, '_>) -> Result<CodexConfig, WorkflowError> {
    keys.check_keys(&[
        "command",
        "approval_policy",
        "thread_sandbox",
        "turn_sandbox_policy",
        "turn_timeout_ms",
        "read_timeout_ms",
        "stall_timeout_ms",
        "env",
        "approval_decision",
        // aiops-platform's narrowing of the Linear tool, read by the Linear tracker.
        "linear_graphql",
    ]);
    let env = keys.var_names("env")?;
    let approval_decision = match keys.verbatim("approval_decision")? {
        None => {
            keys.defaulted("approval_decision");
            ApprovalDecision::AcceptForSession
        }
        Some(raw) => match normalize(&raw).as_str() {
            "accept_for_session" => ApprovalDecision::AcceptForSession,
            "accept" => ApprovalDecision::Accept,
            "decline" => ApprovalDecision::Decline,
            _ => {
                return Err(keys.invalid(
                    "approval_decision",
                    "`accept_for_session`, `accept` or `decline`",
                    &raw,
                ));
            }
        },
    };
    // Run by `bash -lc`, which expands what it contains itself.
    let command = match keys.verbatim("command")? {
        Some(c) if c.trim().is_empty() => {
            return Err(keys.error(
                ErrorClass::MissingCodexCommand,
                "command",
                "codex.command is empty; remove it for the default `codex app-server`",
            ));
        }
        Some(command) => command,
        None => {
            keys.defaulted("command");
            "codex app-server".to_owned()
        }
    };
    let approval_policy = keys.raw("approval_policy", Some("never".into()));
    let thread_sandbox = keys.raw("thread_sandbox", Some("workspace-write".into()));
    let turn_sandbox_policy = keys.raw("turn_sandbox_policy", None);
    Ok(CodexConfig {
        command,
        approval_policy: approval_policy.unwrap_or(serde_json::Value::Null),
        thread_sandbox: thread_sandbox.unwrap_or(serde_json::Value::Null),
        turn_sandbox_policy,
        turn_timeout_ms: keys.int("turn_timeout_ms", 3_600_000, 1..=MAX_MS)? as u64,
        read_timeout_ms: keys.int("read_timeout_ms", 5_000, 1..=MAX_MS)? as u64,
        env,
        approval_decision,
    })
}
