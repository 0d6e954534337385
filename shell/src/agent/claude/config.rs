//! The `claude` section: how Claude Code is started for each turn.

use serde::Serialize;

use crate::workflow::{ErrorClass, SectionKeys, WorkflowError};

/// `--permission-mode` values the CLI accepts (2.1.332).
const PERMISSION_MODES: [&str; 7] = [
    "default",
    "acceptEdits",
    "auto",
    "bypassPermissions",
    "manual",
    "dontAsk",
    "plan",
];

/// The tools an unattended turn may use without asking: enough to read and edit files and run
/// the workflow's commands. Claude asks for anything else, and unattended nobody answers: the
/// call is refused and listed in the run's permission denials.
pub const DEFAULT_ALLOWED_TOOLS: [&str; 7] =
    ["Bash", "Edit", "MultiEdit", "Write", "Read", "Glob", "Grep"];

/// About 31 years: larger millisecond values are surely typos.
const MAX_MS: i64 = 1 << 40;

/// `claude.*` settings.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClaudeConfig {
    /// Run by `bash -lc` in the workspace, with the runner's flags after it.
    pub command: String,
    /// `--model`, when set.
    pub model: Option<String>,
    /// `--allowedTools`.
    pub allowed_tools: Vec<String>,
    /// `--disallowedTools`.
    pub disallowed_tools: Vec<String>,
    /// `--permission-mode`, when set.
    pub permission_mode: Option<String>,
    /// `--max-turns`: the CLI's own cap on model turns in one invocation (one of our turns).
    pub max_turns_per_run: Option<u32>,
    /// `--max-budget-usd`.
    pub max_budget_usd: Option<f64>,
    /// Host environment variables passed by name (`ANTHROPIC_API_KEY`, ...).
    pub env: Vec<String>,
    /// Extra settings JSON, passed as `--settings`.
    pub settings: Option<serde_json::Value>,
    /// Longest silence between two output lines of a turn.
    pub read_timeout_ms: u64,
    /// Longest a turn (one invocation) may take.
    pub turn_timeout_ms: u64,
}

/// Why `command` cannot run as the runner's turns, if it cannot: it sets what the runner sets
/// (`-p`, `--output-format`), or bypasses permissions with no sandbox around the agent
/// (aiops-platform's examples write `claude -p --permission-mode bypassPermissions ...`).
pub fn command_problem(command: &str, sandboxed: bool) -> Option<String> {
    let words: Vec<&str> = command.split_whitespace().collect();
    if !sandboxed
        && words.iter().any(|w| {
            *w == "bypassPermissions"
                || w.starts_with("--permission-mode=bypassPermissions")
                || *w == "--dangerously-skip-permissions"
        })
    {
        return Some(
            "claude.command bypasses permissions with no sandbox to confine the agent; turn \
             the sandbox on (sandbox.backend: bubblewrap), or remove it and list what the agent \
             may run in claude.allowed_tools"
                .to_owned(),
        );
    }
    let owned = [
        "-p",
        "--print",
        "--output-format",
        "--input-format",
        "--resume",
    ];
    (words
        .iter()
        .find(|w| owned.iter().any(|o| w.split('=').next() == Some(*o))))
    .map(|w| {
        format!(
            "claude.command sets {w}, which the runner sets itself (each turn is `-p \
             --output-format stream-json`); leave only the program and flags of your own"
        )
    })
}

/// Reads the `claude` section. `bypassPermissions` is refused unless the sandbox wraps the
/// agent (`sandboxed`): without one it would run every command the model writes unasked and
/// unconfined.
pub fn read_config(
    keys: &mut SectionKeys<'_, '_>,
    sandboxed: bool,
) -> Result<ClaudeConfig, WorkflowError> {
    keys.check_keys(&[
        "command",
        "model",
        "allowed_tools",
        "disallowed_tools",
        "permission_mode",
        "max_turns_per_run",
        "max_budget_usd",
        "env",
        "settings",
        "read_timeout_ms",
        "turn_timeout_ms",
    ]);
    let command = match keys.verbatim("command")? {
        Some(c) if c.trim().is_empty() => {
            return Err(keys.error(
                ErrorClass::InvalidConfigValue,
                "command",
                "claude.command is empty; remove it for the default `claude`",
            ));
        }
        Some(command) => command,
        None => {
            keys.defaulted("command");
            "claude".to_owned()
        }
    };
    let permission_mode = keys.verbatim("permission_mode")?;
    if let Some(mode) = &permission_mode {
        if !PERMISSION_MODES.contains(&mode.as_str()) {
            let expected = format!("one of {}", PERMISSION_MODES.join(", "));
            return Err(keys.invalid("permission_mode", &expected, mode));
        }
        if mode == "bypassPermissions" && !sandboxed {
            return Err(keys.error(
                ErrorClass::InvalidConfigValue,
                "permission_mode",
                "claude.permission_mode: bypassPermissions would let the agent run anything \
                 unasked with no sandbox to confine it; turn the sandbox on (sandbox.backend: \
                 bubblewrap), or list what it may run in claude.allowed_tools instead",
            ));
        }
    }
    let allowed_tools = match keys.strings("allowed_tools")? {
        Some(tools) => tools,
        None => DEFAULT_ALLOWED_TOOLS.map(String::from).to_vec(),
    };
    let disallowed_tools = keys.strings("disallowed_tools")?.unwrap_or_default();
    let max_turns_per_run = match keys.verbatim("max_turns_per_run")? {
        None => None,
        Some(_) => Some(keys.int("max_turns_per_run", 1, 1..=10_000)? as u32),
    };
    let max_budget_usd = match keys.verbatim("max_budget_usd")? {
        None => None,
        Some(raw) => match raw.trim().parse::<f64>() {
            Ok(usd) if usd.is_finite() && usd > 0.0 => Some(usd),
            _ => return Err(keys.invalid("max_budget_usd", "a positive number of dollars", &raw)),
        },
    };
    let settings = keys.raw("settings", None);
    if let Some(settings) = &settings
        && !settings.is_object()
    {
        return Err(keys.invalid(
            "settings",
            "a map (Claude Code settings)",
            &settings.to_string(),
        ));
    }
    Ok(ClaudeConfig {
        command,
        model: keys.verbatim("model")?,
        allowed_tools,
        disallowed_tools,
        permission_mode,
        max_turns_per_run,
        max_budget_usd,
        env: keys.var_names("env")?,
        settings,
        read_timeout_ms: keys.int("read_timeout_ms", 600_000, 1..=MAX_MS)? as u64,
        turn_timeout_ms: keys.int("turn_timeout_ms", 3_600_000, 1..=MAX_MS)? as u64,
    })
}
