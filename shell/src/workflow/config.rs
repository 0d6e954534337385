//! The typed service config (SPEC 5.3, 6.1, 6.4): front matter in, validated settings out, with
//! where each value came from and what was worth a warning.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;
use serde_yaml::{Mapping, Value};
use sha2::Digest as _;
use symphony_core::SchedulerConfig;
use symphony_core::issue::normalize;

use super::env::{Env, var_reference};
use super::error::{ErrorClass, Position, Warning, WorkflowError};
use super::front_matter::key_positions;
pub use crate::agent::claude::ClaudeConfig;
pub use crate::agent::codex::{ApprovalDecision, CodexConfig};
use crate::agent::kinds::{self as runners, RunnerKind};
use crate::tracker::kinds::{self, Kind, ProviderSettings};

/// A credential. Printed, logged and serialised as `****`; [`Secret::expose`] is the only way
/// to the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that sends it (an HTTP header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("****")
    }
}

/// Where an effective value came from (`symphony config` shows it per key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Built-in default.
    Default,
    /// Written in the workflow file at this key (differs from the value's own key for
    /// deprecated spellings).
    Workflow(String),
    /// Read from this environment variable (`$VAR` in the file, or an adapter fallback).
    Env(String),
    /// Given on the command line.
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::Workflow(key) => write!(f, "workflow file ({key})"),
            Self::Env(var) => write!(f, "environment variable {var}"),
            Self::Flag(flag) => write!(f, "command-line flag {flag}"),
        }
    }
}

/// `tracker`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TrackerConfig {
    /// The adapter's row in the kinds table.
    pub kind: &'static Kind,
    /// Its settings, as its room defines them.
    pub provider: ProviderSettings,
    /// Provider keys this build does not know, kept as written (SPEC 5.3.1), values masked
    /// when they look like secrets.
    pub provider_extra: BTreeMap<String, serde_json::Value>,
    /// Labels an issue must all carry.
    pub required_labels: Vec<String>,
    /// States eligible for work.
    pub active_states: Vec<String>,
    /// States that end work.
    pub terminal_states: Vec<String>,
    /// aiops-platform's `tracker.inactive_states`: states that are neither. Scheduling needs
    /// no list of them (any other state stops a run); a tracker whose labels carry states by
    /// name uses it to know which labels are states.
    pub inactive_states: Vec<String>,
}

impl TrackerConfig {
    /// Every state the workflow names: active, terminal, then inactive (a tracker whose labels
    /// carry states by name reads its state labels from them).
    pub fn state_names(&self) -> Vec<String> {
        (self.active_states.iter())
            .chain(&self.terminal_states)
            .chain(&self.inactive_states)
            .cloned()
            .collect()
    }
}

/// `polling`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PollingConfig {
    /// Milliseconds between polls.
    pub interval_ms: u64,
}

/// `workspace`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkspaceConfig {
    /// Absolute root under which each issue gets a directory.
    pub root: PathBuf,
    /// Remove workspaces of issues no longer active after this many days untouched.
    pub max_age_days: Option<u32>,
    /// Pause dispatch while the root's filesystem has less free space; `0` disables.
    pub min_free_disk_mb: u64,
    /// The root is the default one under the temporary directory, which other users can
    /// write to: it is created private and checked for ownership.
    #[serde(skip)]
    pub default_root: bool,
}

/// `hooks`: shell scripts run in the workspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HooksConfig {
    /// After a workspace is created.
    pub after_create: Option<String>,
    /// Before each attempt.
    pub before_run: Option<String>,
    /// After each attempt.
    pub after_run: Option<String>,
    /// Before a workspace is removed.
    pub before_remove: Option<String>,
    /// Per hook.
    pub timeout_ms: u64,
    /// Host environment variables passed to hooks by name, beyond the built-in allowlist.
    pub env: Vec<String>,
    /// The `repo` block as `SYMPHONY_REPO_*` variables for every hook (owner, name, clone URL,
    /// default branch, the ones written). The clone URL may carry a credential: not shown.
    #[serde(skip)]
    pub repo_env: Vec<(String, String)>,
}

/// `repo` (aiops-platform's key): the repository the work is on. Offered to the prompt as
/// `repo.owner`, `repo.name`, `repo.branch` (the default branch), `repo.clone_url`; `owner` and
/// `name` also give `tracker.provider.repo` when that is not written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RepoConfig {
    /// Owner (user or organisation).
    pub owner: Option<String>,
    /// Repository name.
    pub name: Option<String>,
    /// Clone URL, as written (it may carry credentials: shown masked).
    #[serde(skip)]
    pub clone_url: Option<String>,
    /// The default branch.
    pub default_branch: Option<String>,
}

impl RepoConfig {
    /// `SYMPHONY_REPO_OWNER`, `_NAME`, `_CLONE_URL`, `_DEFAULT_BRANCH`, for the ones written.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        [
            ("SYMPHONY_REPO_OWNER", &self.owner),
            ("SYMPHONY_REPO_NAME", &self.name),
            ("SYMPHONY_REPO_CLONE_URL", &self.clone_url),
            ("SYMPHONY_REPO_DEFAULT_BRANCH", &self.default_branch),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name.to_owned(), value.clone()?)))
        .collect()
    }

    /// The credential in the clone URL, if any, to mask: the password of
    /// `https://user:token@host/...`, or a token given as the user (`https://token@host/...`).
    /// An scp-like `git@host:owner/name` carries none.
    fn clone_url_secret(&self) -> Option<String> {
        let (_, rest) = self.clone_url.as_deref()?.split_once("://")?;
        let authority = rest.split('/').next()?;
        let (userinfo, _) = authority.rsplit_once('@')?;
        let secret = userinfo
            .split_once(':')
            .map_or(userinfo, |(_, password)| password);
        (!secret.is_empty()).then(|| secret.to_owned())
    }
}

/// What the run may do (aiops-platform's `policy.mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyMode {
    /// Change the code and hand it over as a draft pull request (the default).
    DraftPr,
    /// Read and report only: no change, no push, no pull request.
    AnalysisOnly,
}

/// `policy` and `verify` (aiops-platform's keys): directives appended to the rendered prompt
/// as the agent's own contract before it hands off.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HandoffConfig {
    /// `policy.mode`.
    pub mode: PolicyMode,
    /// `verify.commands`: to run, and pass, before handing off.
    pub verify_commands: Vec<String>,
    /// `prompt.untrusted_input`: `bounded` (default) puts tracker text in marked blocks and
    /// prepends the managed preamble; `raw` renders it as written.
    pub bounded_tracker_text: bool,
}

/// `agent`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AgentConfig {
    /// The runner's row in the kinds table: `codex` (default) or `demo`.
    pub kind: &'static RunnerKind,
    /// Inactivity before a run counts as stalled; `<= 0` disables. Written
    /// `agent.stall_timeout_ms`, or `codex.stall_timeout_ms` as SPEC 5.3 spells it.
    pub stall_timeout_ms: i64,
    /// Demo agent only: how long each scripted turn takes.
    pub demo_turn_ms: u64,
    /// Global limit; `0` pauses new dispatch.
    pub max_concurrent_agents: u32,
    /// Turns per worker run.
    pub max_turns: u32,
    /// Cap of the failure backoff.
    pub max_retry_backoff_ms: u64,
    /// Per-state limits, keys normalised.
    pub max_concurrent_agents_by_state: BTreeMap<String, u32>,
    /// Tokens one issue may use across the runs of a claim; `None`: no limit.
    pub max_tokens_per_issue: Option<u64>,
    /// Completed turns one issue may use across the runs of a claim; `None`: no limit.
    pub max_turns_per_issue: Option<u32>,
    /// Wall-clock milliseconds the runs of a claim may take together; `None`: no limit.
    pub max_runtime_ms_per_issue: Option<u64>,
    /// Wall-clock milliseconds one run may take before it is stopped and retried.
    pub run_timeout_ms: Option<u64>,
    /// Tokens all runs may use in one UTC day; `None`: no limit.
    pub max_tokens_per_day: Option<u64>,
}

/// `server` (HTTP extension, SPEC 13.7).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServerConfig {
    /// `None`: no server. `Some(0)`: an ephemeral port.
    pub port: Option<u16>,
    /// Address to bind.
    pub bind: String,
    /// Required for a non-loopback bind; then every route but `/livez` needs it.
    pub auth_token: Option<Secret>,
}

/// The whole effective config.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServiceConfig {
    /// `tracker`.
    pub tracker: TrackerConfig,
    /// `polling`.
    pub polling: PollingConfig,
    /// `workspace`.
    pub workspace: WorkspaceConfig,
    /// `hooks`.
    pub hooks: HooksConfig,
    /// `agent`.
    pub agent: AgentConfig,
    /// `codex`.
    pub codex: CodexConfig,
    /// `claude`.
    pub claude: ClaudeConfig,
    /// `server`.
    pub server: ServerConfig,
    /// `repo` (aiops-platform's key).
    pub repo: RepoConfig,
    /// `policy` and `verify` (aiops-platform's keys).
    pub handoff: HandoffConfig,
    /// `sandbox`: what wraps the agent process.
    pub sandbox: crate::host::sandbox::SandboxConfig,
    /// `notifications`: webhooks and Slack channels told what needs a human.
    pub notifications: crate::notify::NotifyConfig,
    /// `state.root`: where what must survive a restart lives (the audit log, ...).
    pub state_root: PathBuf,
}

impl ServiceConfig {
    /// Every secret value in the config, so output surfaces can mask them wherever they
    /// appear (an agent message quoting a token, say).
    pub fn secret_values(&self) -> Vec<String> {
        let mut secrets = self.tracker.provider.secret_values();
        if let Some(token) = &self.server.auth_token {
            secrets.push(token.expose().to_owned());
        }
        secrets.extend(self.repo.clone_url_secret());
        secrets.extend(self.notifications.secret_values());
        secrets
    }

    /// The part of the config the orchestrator core decides with.
    pub fn scheduler(&self) -> SchedulerConfig {
        SchedulerConfig {
            active_states: self.tracker.active_states.clone(),
            terminal_states: self.tracker.terminal_states.clone(),
            required_labels: self.tracker.required_labels.clone(),
            poll_interval_ms: self.polling.interval_ms,
            max_concurrent_agents: self.agent.max_concurrent_agents,
            max_concurrent_agents_by_state: self
                .agent
                .max_concurrent_agents_by_state
                .iter()
                .map(|(k, v)| (k.clone(), i64::from(*v)))
                .collect(),
            max_retry_backoff_ms: self.agent.max_retry_backoff_ms,
            max_turns: self.agent.max_turns,
            max_tokens_per_issue: self.agent.max_tokens_per_issue,
            max_turns_per_issue: self.agent.max_turns_per_issue,
            max_runtime_ms_per_issue: self.agent.max_runtime_ms_per_issue,
            run_timeout_ms: self.agent.run_timeout_ms,
            max_tokens_per_day: self.agent.max_tokens_per_day,
            workspace_max_age_days: self.workspace.max_age_days,
            stall_timeout_ms: self.agent.stall_timeout_ms,
            // `worker.ssh_hosts` is not read yet (issue 19): every run is local.
            worker_hosts: Vec::new(),
            max_concurrent_agents_per_host: None,
            host_backoff_ms: None,
        }
    }
}

/// Values given on the command line, which win over the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--port`.
    pub port: Option<i64>,
    /// `--bind`.
    pub bind: Option<String>,
    /// `--state-dir`.
    pub state_dir: Option<PathBuf>,
}

/// A resolved config with the source of every value and the warnings found on the way.
#[derive(Clone, Debug)]
pub(crate) struct Resolved {
    /// The config.
    pub(crate) config: ServiceConfig,
    /// Source per key path.
    pub(crate) sources: BTreeMap<String, Source>,
    /// Unknown keys, deprecated spellings, ignored entries.
    pub(crate) warnings: Vec<Warning>,
}

const TOP_LEVEL: &[&str] = &[
    "tracker",
    "polling",
    "workspace",
    "hooks",
    "agent",
    "codex",
    "claude",
    "server",
    "repo",
    "policy",
    "verify",
    "prompt",
    "state",
    "sandbox",
    "notifications",
];
const TRACKER_KEYS: &[&str] = &[
    "kind",
    // aiops-platform's: accepted; a state neither active nor terminal stops a run here anyway.
    "inactive_states",
    "provider",
    "required_labels",
    "active_states",
    "terminal_states",
];
const HOOK_SCRIPTS: [&str; 4] = ["after_create", "before_run", "after_run", "before_remove"];

/// Resolves the front matter `root` of the workflow at `file` into the typed config. Relative
/// paths resolve against `base_dir`, the absolute directory of the file.
pub(crate) fn resolve(
    root: &Mapping,
    file: &Path,
    base_dir: &Path,
    yaml: &str,
    yaml_line: usize,
    env: &dyn Env,
    overrides: &Overrides,
) -> Result<Resolved, WorkflowError> {
    let mut r = Reader {
        file,
        base_dir,
        env,
        sources: BTreeMap::new(),
        warnings: Vec::new(),
        positions: key_positions(yaml, yaml_line),
        unshown_warnings: 0,
        aliased: BTreeMap::new(),
    };
    r.check_keys(root, "", TOP_LEVEL);
    let repo = r.repo(root)?;
    let handoff = r.handoff(root)?;
    let tracker = r.tracker(root, &repo)?;
    let polling = r.section(root, "polling")?;
    r.check_keys(&polling, "polling", &["interval_ms"]);
    let polling = PollingConfig {
        interval_ms: r.int(&polling, "polling.interval_ms", 30_000, 1..=MAX_MS)? as u64,
    };
    let workspace = r.workspace(root)?;
    let mut hooks = r.hooks(root)?;
    hooks.repo_env = repo.env_vars();
    let agent = r.agent(root)?;
    let codex = r.read_section(root, "codex", crate::agent::codex::read_config)?;
    let sandbox = r.read_section(root, "sandbox", crate::host::sandbox::read_config)?;
    let notifications = r.read_section(root, "notifications", crate::notify::read_config)?;
    let sandboxed = sandbox.enabled();
    let claude = r.read_section(root, "claude", |keys| {
        crate::agent::claude::read_config(keys, sandboxed)
    })?;
    if agent.kind.name == "claude"
        && let Some(problem) =
            crate::agent::claude::command_problem(&claude.command, sandbox.enabled())
    {
        return Err(r.error(ErrorClass::InvalidConfigValue, "claude.command", problem));
    }
    let server = r.server(root, overrides)?;
    let state_root = r.state_root(root, overrides)?;
    let mut sandbox = sandbox;
    sandbox.state_root = Some(state_root.clone());
    // aiops-platform's sandbox.env_allowlist names variables the agent gets, whichever runs.
    let (mut codex, mut claude) = (codex, claude);
    // Inside srt, srt enforces the agent's commands: Codex is told it runs in an external
    // sandbox rather than nesting its own (srt forbids nested user namespaces), unless the
    // workflow sets a turn policy itself.
    if sandbox.backend == crate::host::sandbox::Backend::Srt && codex.turn_sandbox_policy.is_none()
    {
        codex.turn_sandbox_policy =
            Some(serde_json::json!({"type": "externalSandbox", "networkAccess": "restricted"}));
    }
    for name in &sandbox.env_allowlist {
        for env in [&mut codex.env, &mut claude.env] {
            if !env.contains(name) {
                env.push(name.clone());
            }
        }
    }
    // In file order, so a reader can walk down the file; position-less ones last.
    r.warnings
        .sort_by_key(|w| w.at.map_or((usize::MAX, 0), |at| (at.line, at.col)));
    if r.unshown_warnings > 0 {
        r.warnings.push(Warning {
            file: file.to_owned(),
            at: None,
            key: String::new(),
            message: format!(
                "{} more warnings not shown (only the first {MAX_WARNINGS} are)",
                r.unshown_warnings
            ),
        });
    }
    Ok(Resolved {
        config: ServiceConfig {
            tracker,
            polling,
            workspace,
            hooks,
            agent,
            codex,
            claude,
            server,
            repo,
            handoff,
            sandbox,
            notifications,
            state_root,
        },
        sources: r.sources,
        warnings: r.warnings,
    })
}

/// aiops-platform's spellings of settings we name otherwise: (section, theirs, ours). Read as
/// ours (sources show theirs); when both are written, ours wins and theirs is warned about.
const ALIASES: &[(&str, &str, &str)] = &[
    ("agent", "max_tokens_per_claim", "max_tokens_per_issue"),
    ("agent", "max_continuation_turns", "max_turns_per_issue"),
    ("codex", "env_passthrough", "env"),
    ("claude", "env_passthrough", "env"),
    ("hooks", "env_passthrough", "env"),
    ("server", "host", "bind"),
];

/// Warnings kept per load; the rest are counted in a last one.
const MAX_WARNINGS: usize = 50;

/// About 31 years: larger millisecond values are surely typos.
const MAX_MS: i64 = 1 << 40;

struct Reader<'a> {
    file: &'a Path,
    base_dir: &'a Path,
    env: &'a dyn Env,
    sources: BTreeMap<String, Source>,
    warnings: Vec<Warning>,
    /// Where each key is written, by dotted path (one pass over the YAML).
    positions: BTreeMap<String, Position>,
    /// Warnings past [`MAX_WARNINGS`], counted only.
    unshown_warnings: usize,
    /// Keys read from another implementation's spelling: ours to theirs (dotted paths).
    aliased: BTreeMap<String, String>,
}

/// A YAML value for messages: short, one line.
fn show(value: &Value) -> String {
    let text = match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Sequence(_) => "a list".to_owned(),
        Value::Mapping(_) => "a map".to_owned(),
        Value::Tagged(t) => format!("a value tagged {}", t.tag),
    };
    if text.chars().count() > 60 {
        format!("{}...", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

/// An integer written as a number or a numeric string (a float is not one).
fn as_integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

fn key_name(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => show(other),
    }
}

/// The known key closest to `unknown`, when one is close enough to be a likely typo.
fn did_you_mean<'k>(unknown: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(unknown, k), *k))
        .filter(|(distance, k)| *distance <= (k.len() / 3).max(1))
        .min()
        .map(|(_, k)| k)
}

impl<'a> Reader<'a> {
    /// Reads the section `prefix` (a map, or nothing) with a room's reader.
    fn read_section<T>(
        &mut self,
        root: &Mapping,
        prefix: &'static str,
        read: impl FnOnce(&mut SectionKeys<'_, 'a>) -> Result<T, WorkflowError>,
    ) -> Result<T, WorkflowError> {
        let map = self.section(root, prefix)?;
        let mut keys = SectionKeys {
            reader: self,
            map,
            prefix,
            spelled: BTreeMap::new(),
        };
        read(&mut keys)
    }

    fn pos(&self, key: &str) -> Option<Position> {
        self.positions.get(key).copied()
    }

    fn error(&self, class: ErrorClass, key: &str, message: impl Into<String>) -> WorkflowError {
        let at = self
            .pos(key)
            .or_else(|| self.pos(key.rsplit_once('.').map_or(key, |(parent, _)| parent)));
        WorkflowError::new(class, self.file, message)
            .at(at)
            .key(key)
    }

    fn invalid(&self, key: &str, expected: &str, found: &Value) -> WorkflowError {
        self.error(
            ErrorClass::InvalidConfigValue,
            key,
            format!("{key}: expected {expected}, found {}", show(found)),
        )
    }

    fn warn(&mut self, key: &str, message: impl Into<String>) {
        if self.warnings.len() >= MAX_WARNINGS {
            self.unshown_warnings += 1;
            return;
        }
        self.warnings.push(Warning {
            file: self.file.to_owned(),
            at: self.pos(key),
            key: key.to_owned(),
            message: message.into(),
        });
    }

    fn source(&mut self, key: &str, source: Source) {
        self.sources.insert(key.to_owned(), source);
    }

    fn written(&mut self, key: &str) {
        let spelled = self.aliased.get(key).cloned();
        self.source(
            key,
            Source::Workflow(spelled.unwrap_or_else(|| key.to_owned())),
        );
    }

    /// Warns about keys of `map` outside `known`, with a suggestion when one is close.
    fn check_keys(&mut self, map: &Mapping, prefix: &str, known: &[&str]) {
        for key in map.keys() {
            let name = key_name(key);
            if known.contains(&name.as_str()) {
                continue;
            }
            let full = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            let hint = match did_you_mean(&name, known) {
                Some(k) => format!("unknown key, ignored; did you mean `{k}`?"),
                None => format!("unknown key, ignored (known here: {})", known.join(", ")),
            };
            self.warn(&full, hint);
        }
    }

    /// A present, non-null value.
    fn get<'m>(map: &'m Mapping, key: &str) -> Option<&'m Value> {
        map.get(key).filter(|v| !v.is_null())
    }

    /// A section map; absent or null is empty.
    /// Other implementations' spellings are folded into ours first ([`ALIASES`]).
    fn section(&mut self, root: &Mapping, name: &str) -> Result<Mapping, WorkflowError> {
        let mut map = match Self::get(root, name) {
            None => return Ok(Mapping::new()),
            Some(Value::Mapping(m)) => m.clone(),
            Some(other) => return Err(self.invalid(name, "a map", other)),
        };
        for (section, theirs, ours) in ALIASES {
            if *section != name {
                continue;
            }
            let Some(value) = map.remove(*theirs) else {
                continue;
            };
            let (key, alias) = (format!("{name}.{ours}"), format!("{name}.{theirs}"));
            if map.contains_key(*ours) {
                self.warn(
                    &alias,
                    format!("ignored: {key} is also set and takes precedence"),
                );
            } else {
                map.insert(Value::String((*ours).to_owned()), value);
                self.aliased.insert(key, alias);
            }
        }
        Ok(map)
    }

    /// An integer given as a number or a numeric string, within `range`.
    fn int(
        &mut self,
        map: &Mapping,
        key: &str,
        default: i64,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<i64, WorkflowError> {
        let leaf = key.rsplit('.').next().unwrap_or(key);
        let Some(value) = Self::get(map, leaf) else {
            self.source(key, Source::Default);
            return Ok(default);
        };
        let expected = match (*range.start(), *range.end()) {
            (1, _) => "a positive integer".to_owned(),
            (0, _) => "a non-negative integer".to_owned(),
            (lo, hi) if hi < MAX_MS => format!("an integer from {lo} to {hi}"),
            _ => "an integer".to_owned(),
        };
        match as_integer(value) {
            Some(n) if range.contains(&n) => {
                self.written(key);
                Ok(n)
            }
            _ => Err(self.invalid(key, &expected, value)),
        }
    }

    /// A string scalar (numbers and booleans are taken as written).
    fn string(&mut self, map: &Mapping, key: &str) -> Result<Option<String>, WorkflowError> {
        let leaf = key.rsplit('.').next().unwrap_or(key);
        match Self::get(map, leaf) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(other) => Err(self.invalid(key, "a string", other)),
        }
    }

    fn string_list(
        &mut self,
        map: &Mapping,
        key: &str,
    ) -> Result<Option<Vec<String>>, WorkflowError> {
        let leaf = key.rsplit('.').next().unwrap_or(key);
        let Some(value) = Self::get(map, leaf) else {
            return Ok(None);
        };
        let Value::Sequence(items) = value else {
            return Err(self.invalid(key, "a list of strings", value));
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Value::String(s) => out.push(s.clone()),
                Value::Number(n) => out.push(n.to_string()),
                other => return Err(self.invalid(key, "a list of strings", other)),
            }
        }
        self.written(key);
        Ok(Some(out))
    }

    /// A list of environment variable names (`hooks.env`, ...), each checked for shape.
    fn var_names(&mut self, map: &Mapping, key: &str) -> Result<Vec<String>, WorkflowError> {
        let names = self.string_list(map, key)?;
        let Some(names) = names else {
            self.source(key, Source::Default);
            return Ok(Vec::new());
        };
        for name in &names {
            let valid = var_reference(&format!("${name}")) == Some(name.as_str());
            if !valid {
                return Err(self.invalid(
                    key,
                    "a list of environment variable names",
                    &Value::String(name.clone()),
                ));
            }
        }
        Ok(names)
    }

    /// Resolves a whole-value `$VAR` reference. `Ok(None)` when the value is not one.
    fn resolve_var(&mut self, key: &str, value: &str) -> Option<Result<String, String>> {
        let name = var_reference(value)?;
        Some(match self.env.var(name).filter(|v| !v.is_empty()) {
            Some(resolved) => {
                self.source(key, Source::Env(name.to_owned()));
                Ok(resolved)
            }
            None => Err(name.to_owned()),
        })
    }

    /// `~`, a leading `$VAR`, and relative-to-the-workflow resolution, then lexical
    /// normalisation to an absolute path.
    fn path(&mut self, key: &str, raw: &str) -> Result<PathBuf, WorkflowError> {
        let raw = raw.trim();
        let expanded: PathBuf = if raw == "~" || raw.starts_with("~/") {
            let Some(home) = self.env.home() else {
                return Err(self.error(
                    ErrorClass::InvalidConfigValue,
                    key,
                    format!("{key}: `~` used but HOME is not set"),
                ));
            };
            home.join(raw.trim_start_matches('~').trim_start_matches('/'))
        } else if let Some(rest) = raw.strip_prefix('$') {
            let (name, tail) = match rest.strip_prefix('{') {
                Some(braced) => match braced.split_once('}') {
                    Some((name, tail)) => (name, tail),
                    None => (braced, ""),
                },
                None => {
                    let end = rest
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(rest.len());
                    rest.split_at(end)
                }
            };
            let Some(value) = self.env.var(name).filter(|v| !v.is_empty()) else {
                return Err(self.error(
                    ErrorClass::InvalidConfigValue,
                    key,
                    format!("{key}: ${name} is not set or empty"),
                ));
            };
            self.source(key, Source::Env(name.to_owned()));
            PathBuf::from(format!("{value}{tail}"))
        } else {
            PathBuf::from(raw)
        };
        let absolute = if expanded.is_absolute() {
            expanded
        } else {
            self.base_dir.join(expanded)
        };
        Ok(normalize_path(&absolute))
    }

    /// `policy.mode` and `verify.commands`.
    fn handoff(&mut self, root: &Mapping) -> Result<HandoffConfig, WorkflowError> {
        let policy = self.section(root, "policy")?;
        self.check_keys(&policy, "policy", &["mode"]);
        let mode = match self.string(&policy, "policy.mode")? {
            None => {
                self.source("policy.mode", Source::Default);
                PolicyMode::DraftPr
            }
            Some(raw) => {
                let mode = match normalize(&raw).as_str() {
                    "draft_pr" => PolicyMode::DraftPr,
                    "analysis_only" => PolicyMode::AnalysisOnly,
                    _ => {
                        return Err(self.invalid(
                            "policy.mode",
                            "draft_pr or analysis_only",
                            &Value::String(raw),
                        ));
                    }
                };
                self.written("policy.mode");
                mode
            }
        };
        let verify = self.section(root, "verify")?;
        self.check_keys(&verify, "verify", &["commands"]);
        let verify_commands = (self.string_list(&verify, "verify.commands")?)
            .unwrap_or_default()
            .into_iter()
            .filter(|c| !c.trim().is_empty())
            .collect();
        let prompt = self.section(root, "prompt")?;
        self.check_keys(&prompt, "prompt", &["untrusted_input"]);
        let bounded_tracker_text = match self.string(&prompt, "prompt.untrusted_input")? {
            None => {
                self.source("prompt.untrusted_input", Source::Default);
                true
            }
            Some(raw) => {
                let bounded = match normalize(&raw).as_str() {
                    "bounded" => true,
                    "raw" => false,
                    _ => {
                        return Err(self.invalid(
                            "prompt.untrusted_input",
                            "bounded or raw",
                            &Value::String(raw),
                        ));
                    }
                };
                self.written("prompt.untrusted_input");
                bounded
            }
        };
        Ok(HandoffConfig {
            mode,
            verify_commands,
            bounded_tracker_text,
        })
    }

    /// `repo`: owner, name, clone URL and default branch, all optional strings.
    fn repo(&mut self, root: &Mapping) -> Result<RepoConfig, WorkflowError> {
        let section = self.section(root, "repo")?;
        self.check_keys(
            &section,
            "repo",
            &["owner", "name", "clone_url", "default_branch"],
        );
        let mut get = |key: &str| -> Result<Option<String>, WorkflowError> {
            let full = format!("repo.{key}");
            let Some(value) = self.string(&section, &full)? else {
                return Ok(None);
            };
            // `clone_url: $MAKER_CLONE_URL` and the like: a whole-value `$VAR` is read.
            let value = match self.resolve_var(&full, &value) {
                None => {
                    self.written(&full);
                    value
                }
                Some(Ok(resolved)) => resolved,
                Some(Err(var)) => {
                    return Err(self.error(
                        ErrorClass::InvalidConfigValue,
                        &full,
                        format!("{full}: ${var} is not set or empty"),
                    ));
                }
            };
            Ok(Some(value).filter(|v| !v.trim().is_empty()))
        };
        Ok(RepoConfig {
            owner: get("owner")?,
            name: get("name")?,
            clone_url: get("clone_url")?,
            default_branch: get("default_branch")?,
        })
    }

    /// The state root: `--state-dir`, else `$SYMPHONY_STATE_DIR`, else `state.root`, else a
    /// directory for this workflow under the XDG state directory
    /// (`$XDG_STATE_HOME` or `~/.local/state`, then `symphony/<file stem>-<hash of its path>`).
    /// Only resolved here; the daemon creates and checks it (0700, not a symlink, ours).
    fn state_root(
        &mut self,
        root: &Mapping,
        overrides: &Overrides,
    ) -> Result<PathBuf, WorkflowError> {
        let key = "state.root";
        let section = self.section(root, "state")?;
        self.check_keys(&section, "state", &["root"]);
        if let Some(dir) = &overrides.state_dir {
            self.source(key, Source::Flag("--state-dir".into()));
            let raw = dir.to_string_lossy().into_owned();
            return self.path(key, &raw);
        }
        if let Some(dir) = self.env.var("SYMPHONY_STATE_DIR").filter(|v| !v.is_empty()) {
            self.source(key, Source::Env("SYMPHONY_STATE_DIR".into()));
            return self.path(key, &dir);
        }
        if let Some(raw) = self.string(&section, key)? {
            self.written(key);
            return self.path(key, &raw);
        }
        self.source(key, Source::Default);
        let base = match self
            .env
            .var("XDG_STATE_HOME")
            .filter(|v| v.starts_with('/'))
        {
            Some(xdg) => PathBuf::from(xdg),
            None => match self.env.home() {
                Some(home) => home.join(".local/state"),
                None => self.env.temp_dir(),
            },
        };
        let absolute = self
            .base_dir
            .join(self.file.file_name().unwrap_or_default());
        let stem = (self.file.file_stem())
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "workflow".to_owned());
        let digest = sha2::Sha256::digest(absolute.to_string_lossy().as_bytes());
        let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        Ok(base.join("symphony").join(format!("{stem}-{hash}")))
    }

    /// aiops-platform narrows the `linear_graphql` tool under `codex.linear_graphql`
    /// (`allow_mutations`, `allowed_mutations`); here those are the Linear provider's own keys.
    /// The block's presence turns the gate on: without `allow_mutations: true`, no mutation.
    fn fold_linear_graphql(
        &mut self,
        root: &Mapping,
        kind: &Kind,
        provider: &mut Mapping,
        spelled: &mut BTreeMap<String, String>,
    ) {
        let Some(Value::Mapping(codex)) = Self::get(root, "codex") else {
            return;
        };
        let Some(block) = Self::get(codex, "linear_graphql") else {
            return;
        };
        let path = "codex.linear_graphql";
        if !kind.provider_keys.contains(&"allow_mutations") {
            self.warn(
                path,
                format!("ignored: the linear_graphql tool exists only with tracker.kind linear, not {kind}"),
            );
            return;
        }
        let Value::Mapping(block) = block else {
            self.warn(
                path,
                "ignored: expected a map (allow_mutations, allowed_mutations)",
            );
            return;
        };
        self.check_keys(block, path, &["allow_mutations", "allowed_mutations"]);
        for (name, fallback) in [
            ("allow_mutations", Some(Value::Bool(false))),
            ("allowed_mutations", None),
        ] {
            let theirs = format!("{path}.{name}");
            let value = Self::get(block, name).cloned().or(fallback);
            let Some(value) = value else { continue };
            if provider.contains_key(name) {
                self.warn(
                    &theirs,
                    format!("ignored: tracker.provider.{name} is also set and takes precedence"),
                );
                continue;
            }
            provider.insert(Value::String(name.to_owned()), value);
            spelled.insert(name.to_owned(), theirs);
        }
    }

    fn tracker(
        &mut self,
        root: &Mapping,
        repo: &RepoConfig,
    ) -> Result<TrackerConfig, WorkflowError> {
        let section = self.section(root, "tracker")?;
        let names = kinds::names();
        let Some(raw_kind) = self.string(&section, "tracker.kind")? else {
            return Err(self.error(
                ErrorClass::MissingTrackerKind,
                "tracker.kind",
                format!("tracker.kind is required; one of: {}", names.join(", ")),
            ));
        };
        let Some(kind) = kinds::find(&normalize(&raw_kind)) else {
            let hint = did_you_mean(&normalize(&raw_kind), &names)
                .map(|k| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default();
            return Err(self.error(
                ErrorClass::UnsupportedTrackerKind,
                "tracker.kind",
                format!(
                    "tracker.kind: {raw_kind:?} is not supported{hint}; one of: {}",
                    names.join(", ")
                ),
            ));
        };
        self.written("tracker.kind");

        // Provider keys, with the older flat spellings folded in.
        let mut provider = match Self::get(&section, "provider") {
            None => Mapping::new(),
            Some(Value::Mapping(m)) => m.clone(),
            Some(other) => return Err(self.invalid("tracker.provider", "a map", other)),
        };
        let mut spelled: BTreeMap<String, String> = BTreeMap::new();
        let mut flat_keys: Vec<String> = Vec::new();
        for (key, value) in &section {
            let name = key_name(key);
            let Some(target) = kind.provider_key_for(&name) else {
                continue;
            };
            flat_keys.push(name.clone());
            let flat = format!("tracker.{name}");
            if provider.contains_key(target) {
                self.warn(
                    &flat,
                    format!("ignored: tracker.provider.{target} is also set and takes precedence"),
                );
            } else {
                self.warn(
                    &flat,
                    format!("deprecated spelling; move it to tracker.provider.{target}"),
                );
                provider.insert(Value::String(target.to_owned()), value.clone());
                spelled.insert(target.to_owned(), flat);
            }
        }
        // aiops-platform names the repository in the top-level `repo` block.
        if kind.provider_keys.contains(&"repo")
            && !provider.contains_key("repo")
            && let (Some(owner), Some(name)) = (&repo.owner, &repo.name)
        {
            provider.insert(
                Value::String("repo".into()),
                Value::String(format!("{owner}/{name}")),
            );
            spelled.insert("repo".into(), "repo.owner and repo.name".into());
            // aiops-platform's GitHub states are whole label names (`aiops:ready`), not a
            // prefix and a name: with their repo block, that is the default here too.
            if kind.provider_keys.contains(&"state_label_prefix")
                && !provider.contains_key("state_label_prefix")
            {
                provider.insert("state_label_prefix".into(), "".into());
                let why = "repo (an aiops-platform workflow: label names are states)";
                spelled.insert("state_label_prefix".into(), why.into());
                self.warn(
                    "tracker.kind",
                    "aiops-platform's repo block: GitHub label names are the states, as there \
                     (write tracker.provider.state_label_prefix to choose a prefix instead)",
                );
            }
        }
        self.fold_linear_graphql(root, kind, &mut provider, &mut spelled);
        let known: Vec<&str> = TRACKER_KEYS
            .iter()
            .copied()
            .chain(flat_keys.iter().map(String::as_str))
            .collect();
        self.check_keys(&section, "tracker", &known);

        let mut keys = SectionKeys {
            reader: self,
            map: provider,
            prefix: "tracker.provider",
            spelled,
        };
        let provider = (kind.read)(&mut keys)?;
        let map = keys.map;
        let mut provider_extra = BTreeMap::new();
        for (key, value) in &map {
            let name = key_name(key);
            if kind.provider_keys.contains(&name.as_str()) {
                continue;
            }
            let hint = did_you_mean(&name, kind.provider_keys)
                .map(|k| format!("; did you mean `{k}`?"))
                .unwrap_or_default();
            self.warn(
                &format!("tracker.provider.{name}"),
                format!("not a {kind} setting, kept but unused{hint}"),
            );
            let looks_secret = ["key", "token", "secret", "password"]
                .iter()
                .any(|s| name.to_lowercase().contains(s));
            let shown = if looks_secret {
                serde_json::Value::String("****".into())
            } else {
                serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
            };
            provider_extra.insert(name, shown);
        }

        let required_labels = self
            .string_list(&section, "tracker.required_labels")?
            .unwrap_or_default();
        for label in &required_labels {
            if label.trim().is_empty() {
                self.warn(
                    "tracker.required_labels",
                    "a blank label matches no issue, so nothing will be dispatched",
                );
            }
        }
        let states = |r: &mut Self, key: &str, default: Vec<String>| {
            r.string_list(&section, key).map(|v| {
                v.unwrap_or_else(|| {
                    r.source(key, Source::Default);
                    default
                })
            })
        };
        let default_active = ["Todo", "In Progress"].map(String::from).to_vec();
        let active_states = states(self, "tracker.active_states", default_active)?;
        let default_terminal = kind.default_terminal_states.iter();
        let default_terminal = default_terminal.map(|s| (*s).to_owned()).collect();
        let terminal_states = states(self, "tracker.terminal_states", default_terminal)?;
        if active_states.iter().all(|s| s.trim().is_empty()) {
            return Err(self.error(
                ErrorClass::InvalidConfigValue,
                "tracker.active_states",
                "tracker.active_states: expected at least one state name",
            ));
        }
        for state in &active_states {
            if terminal_states
                .iter()
                .any(|t| normalize(t) == normalize(state))
            {
                return Err(self.error(
                    ErrorClass::InvalidConfigValue,
                    "tracker.active_states",
                    format!("tracker.active_states: {state:?} is also a terminal state"),
                ));
            }
        }
        let inactive_states =
            (self.string_list(&section, "tracker.inactive_states")?).unwrap_or_default();
        Ok(TrackerConfig {
            kind,
            provider,
            provider_extra,
            required_labels,
            active_states,
            terminal_states,
            inactive_states,
        })
    }

    fn workspace(&mut self, root: &Mapping) -> Result<WorkspaceConfig, WorkflowError> {
        let section = self.section(root, "workspace")?;
        self.check_keys(
            &section,
            "workspace",
            &["root", "max_age_days", "min_free_disk_mb"],
        );
        let (root, default_root) = match self.string(&section, "workspace.root")? {
            Some(raw) => {
                self.written("workspace.root");
                (self.path("workspace.root", &raw)?, false)
            }
            None => {
                self.source("workspace.root", Source::Default);
                let root = normalize_path(&self.env.temp_dir().join("symphony_workspaces"));
                (root, true)
            }
        };
        if let Some(why) = unfit_root(&root, self.env.home().as_deref()) {
            return Err(self.error(
                ErrorClass::InvalidConfigValue,
                "workspace.root",
                format!(
                    "workspace.root: {} is {why}; workspaces (and their removal) need a \
                     directory of their own, such as ~/symphony-workspaces",
                    root.display()
                ),
            ));
        }
        let max_age_days = match Self::get(&section, "max_age_days") {
            None => {
                self.source("workspace.max_age_days", Source::Default);
                None
            }
            Some(_) => Some(self.int(&section, "workspace.max_age_days", 0, 1..=36_500)? as u32),
        };
        let min_free_disk_mb =
            self.int(&section, "workspace.min_free_disk_mb", 256, 0..=MAX_MS)? as u64;
        Ok(WorkspaceConfig {
            root,
            max_age_days,
            min_free_disk_mb,
            default_root,
        })
    }

    fn hooks(&mut self, root: &Mapping) -> Result<HooksConfig, WorkflowError> {
        let section = self.section(root, "hooks")?;
        let mut known = HOOK_SCRIPTS.to_vec();
        known.extend(["timeout_ms", "env"]);
        self.check_keys(&section, "hooks", &known);
        let mut scripts = Vec::with_capacity(4);
        for name in HOOK_SCRIPTS {
            let key = format!("hooks.{name}");
            let script = self
                .string(&section, &key)?
                .filter(|s| !s.trim().is_empty());
            if script.is_some() {
                self.written(&key);
            } else {
                self.source(&key, Source::Default);
            }
            scripts.push(script);
        }
        let timeout_ms = self.int(&section, "hooks.timeout_ms", 60_000, 1..=MAX_MS)? as u64;
        let env = self.var_names(&section, "hooks.env")?;
        let mut scripts = scripts.into_iter();
        Ok(HooksConfig {
            repo_env: Vec::new(),
            after_create: scripts.next().flatten(),
            before_run: scripts.next().flatten(),
            after_run: scripts.next().flatten(),
            before_remove: scripts.next().flatten(),
            timeout_ms,
            env,
        })
    }

    fn agent(&mut self, root: &Mapping) -> Result<AgentConfig, WorkflowError> {
        let mut section = self.section(root, "agent")?;
        self.check_keys(
            &section,
            "agent",
            &[
                "max_concurrent_agents",
                "max_turns",
                "max_retry_backoff_ms",
                "max_concurrent_agents_by_state",
                "kind",
                "demo_turn_ms",
                "max_tokens_per_issue",
                "max_turns_per_issue",
                "max_runtime_ms_per_issue",
                "max_runtime_seconds_per_claim",
                "run_timeout_ms",
                "timeout",
                "max_tokens_per_day",
                "stall_timeout_ms",
                "default",
            ],
        );
        let stall_timeout_ms = self.stall_timeout(root, &section)?;
        let kind = match self.string(&section, "agent.kind")? {
            None if Self::get(&section, "default").is_some() => self.agent_default(&section)?,
            None => {
                self.source("agent.kind", Source::Default);
                runners::default_kind()
            }
            Some(raw) => {
                let Some(kind) = runners::find(&normalize(&raw)) else {
                    let names = runners::names().join(", ");
                    return Err(self.invalid(
                        "agent.kind",
                        &format!("one of: {names}"),
                        &Value::String(raw),
                    ));
                };
                self.written("agent.kind");
                kind
            }
        };
        let demo_turn_ms = self.int(&section, "agent.demo_turn_ms", 2_000, 0..=MAX_MS)? as u64;
        let max_concurrent_agents =
            self.int(&section, "agent.max_concurrent_agents", 10, 0..=10_000)? as u32;
        let max_turns = self.int(&section, "agent.max_turns", 20, 1..=10_000)? as u32;
        let max_retry_backoff_ms =
            self.int(&section, "agent.max_retry_backoff_ms", 300_000, 1..=MAX_MS)? as u64;
        // aiops-platform's `max_tokens_per_claim: 0` means no limit; ours must be positive.
        let key = "agent.max_tokens_per_issue";
        let theirs_zero = self.aliased.contains_key(key)
            && Self::get(&section, "max_tokens_per_issue").and_then(as_integer) == Some(0);
        let max_tokens_per_issue = if theirs_zero {
            None
        } else {
            (self.optional_int(&section, key, 1..=i64::MAX)?).map(|n| n as u64)
        };
        let max_turns_per_issue =
            (self.optional_int(&section, "agent.max_turns_per_issue", 1..=1_000_000)?)
                .map(|n| n as u32);
        let max_runtime_ms_per_issue = self.runtime_budget(&mut section)?;
        let run_timeout_ms = self.run_timeout(&mut section)?;
        let max_tokens_per_day =
            (self.optional_int(&section, "agent.max_tokens_per_day", 1..=i64::MAX)?)
                .map(|n| n as u64);
        let key = "agent.max_concurrent_agents_by_state";
        let mut by_state = BTreeMap::new();
        match Self::get(&section, "max_concurrent_agents_by_state") {
            None => self.source(key, Source::Default),
            Some(Value::Mapping(map)) => {
                self.written(key);
                for (state, limit) in map {
                    let state_name = normalize(&key_name(state));
                    match as_integer(limit)
                        .and_then(|n| u32::try_from(n).ok())
                        .filter(|n| *n > 0)
                    {
                        Some(n) if !state_name.is_empty() => {
                            let slot = by_state.entry(state_name.clone()).or_insert(n);
                            if *slot != n {
                                self.warn(
                                    key,
                                    format!(
                                        "{state_name:?} is listed twice after normalising; \
                                         the lower limit applies"
                                    ),
                                );
                                *slot = (*slot).min(n);
                            }
                        }
                        _ => self.warn(
                            key,
                            format!(
                                "entry {} = {} ignored: expected a state name and a positive \
                                 integer",
                                key_name(state),
                                show(limit)
                            ),
                        ),
                    }
                }
            }
            Some(other) => return Err(self.invalid(key, "a map of state name to limit", other)),
        }
        Ok(AgentConfig {
            kind,
            stall_timeout_ms,
            demo_turn_ms,
            max_concurrent_agents,
            max_turns,
            max_retry_backoff_ms,
            max_concurrent_agents_by_state: by_state,
            max_tokens_per_issue,
            max_turns_per_issue,
            max_runtime_ms_per_issue,
            run_timeout_ms,
            max_tokens_per_day,
        })
    }

    /// An integer within `range` when written; `None` (and the default source) when not.
    fn optional_int(
        &mut self,
        map: &Mapping,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Option<i64>, WorkflowError> {
        let leaf = key.rsplit('.').next().unwrap_or(key);
        if Self::get(map, leaf).is_none() {
            self.source(key, Source::Default);
            return Ok(None);
        }
        let start = *range.start();
        self.int(map, key, start, range).map(Some)
    }

    /// aiops-platform's spelling `theirs` of `agent.<ours>`, written in other units, taken out
    /// of `section`: its value when ours is not written (sources then show theirs); `None`
    /// when it is absent, or when ours is written too (theirs is then warned about).
    fn converted_alias(
        &mut self,
        section: &mut Mapping,
        ours: &str,
        theirs: &str,
    ) -> Option<Value> {
        let value = section.remove(theirs)?;
        let alias = format!("agent.{theirs}");
        if Self::get(section, ours).is_some() {
            self.warn(
                &alias,
                format!("ignored: agent.{ours} is also set and takes precedence"),
            );
            return None;
        }
        self.aliased.insert(format!("agent.{ours}"), alias);
        Some(value).filter(|v| !v.is_null())
    }

    /// `agent.max_runtime_ms_per_issue`, or aiops-platform's `max_runtime_seconds_per_claim`.
    fn runtime_budget(&mut self, section: &mut Mapping) -> Result<Option<u64>, WorkflowError> {
        let key = "agent.max_runtime_ms_per_issue";
        let Some(seconds) = self.converted_alias(
            section,
            "max_runtime_ms_per_issue",
            "max_runtime_seconds_per_claim",
        ) else {
            return Ok(self
                .optional_int(section, key, 1..=MAX_MS)?
                .map(|n| n as u64));
        };
        // 0 is aiops-platform's "no limit".
        match as_integer(&seconds).filter(|s| (0..=MAX_MS / 1000).contains(s)) {
            Some(0) => {
                self.written(key);
                Ok(None)
            }
            Some(s) => {
                self.written(key);
                Ok(Some(s as u64 * 1000))
            }
            None => Err(self.invalid(
                "agent.max_runtime_seconds_per_claim",
                "a non-negative number of seconds (0: no limit)",
                &seconds,
            )),
        }
    }

    /// `agent.run_timeout_ms`, or aiops-platform's `agent.timeout`: a Go duration such as
    /// `30m` or `1h30m`, where `0` means aiops-platform's default of 30 minutes.
    fn run_timeout(&mut self, section: &mut Mapping) -> Result<Option<u64>, WorkflowError> {
        let key = "agent.run_timeout_ms";
        let Some(written) = self.converted_alias(section, "run_timeout_ms", "timeout") else {
            return Ok(self
                .optional_int(section, key, 1..=MAX_MS)?
                .map(|n| n as u64));
        };
        let text = match &written {
            Value::String(s) => Some(s.as_str()),
            _ => None,
        };
        let nanos = text.and_then(super::duration::parse_go_duration);
        let ms = nanos.map(|n| if n == 0 { 30 * 60_000 } else { n / 1_000_000 });
        match ms.filter(|ms| (1..=MAX_MS as u128).contains(ms)) {
            Some(ms) => {
                self.written(key);
                Ok(Some(ms as u64))
            }
            None => Err(self.invalid(
                "agent.timeout",
                "a duration with its unit, such as 30m, 2h or 1h30m (or agent.run_timeout_ms \
                 in milliseconds)",
                &written,
            )),
        }
    }

    /// aiops-platform's `agent.default` (read when `agent.kind` is not written): `mock` is the
    /// demo agent, `codex-app-server` is Codex, `claude` is Claude Code.
    fn agent_default(&mut self, agent: &Mapping) -> Result<&'static RunnerKind, WorkflowError> {
        let raw = self.string(agent, "agent.default")?.unwrap_or_default();
        let name = match normalize(&raw).as_str() {
            "mock" | "demo" => "demo",
            "codex-app-server" | "codex" => "codex",
            "claude" => "claude",
            _ => {
                return Err(self.invalid(
                    "agent.default",
                    "mock, codex-app-server or claude",
                    &Value::String(raw),
                ));
            }
        };
        self.source("agent.kind", Source::Workflow("agent.default".to_owned()));
        runners::find(name).ok_or_else(|| {
            self.error(
                ErrorClass::InvalidConfigValue,
                "agent.default",
                format!("agent.default: no {name} runner in this build"),
            )
        })
    }

    /// `agent.stall_timeout_ms`, a scheduler setting for every runner; SPEC 5.3's spelling
    /// `codex.stall_timeout_ms` is read when the agent section does not set it.
    fn stall_timeout(&mut self, root: &Mapping, agent: &Mapping) -> Result<i64, WorkflowError> {
        const KEY: &str = "agent.stall_timeout_ms";
        const CODEX_KEY: &str = "codex.stall_timeout_ms";
        const DEFAULT: i64 = 300_000;
        // Read directly (the `codex` section is read in full, aliases folded, elsewhere).
        let codex = match Self::get(root, "codex") {
            Some(Value::Mapping(m)) => m.clone(),
            _ => Mapping::new(),
        };
        let in_codex = Self::get(&codex, "stall_timeout_ms").is_some();
        if Self::get(agent, "stall_timeout_ms").is_some() {
            if in_codex {
                self.warn(
                    CODEX_KEY,
                    format!("ignored: {KEY} is also set and takes precedence"),
                );
            }
            return self.int(agent, KEY, DEFAULT, -MAX_MS..=MAX_MS);
        }
        if !in_codex {
            self.source(KEY, Source::Default);
            return Ok(DEFAULT);
        }
        let value = self.int(&codex, CODEX_KEY, DEFAULT, -MAX_MS..=MAX_MS)?;
        self.sources.remove(CODEX_KEY);
        self.source(KEY, Source::Workflow(CODEX_KEY.to_owned()));
        Ok(value)
    }

    fn server(
        &mut self,
        root: &Mapping,
        overrides: &Overrides,
    ) -> Result<ServerConfig, WorkflowError> {
        let section = self.section(root, "server")?;
        self.check_keys(&section, "server", &["port", "bind", "auth_token"]);
        let mut port = self.int(&section, "server.port", -1, -1..=65_535)?;
        if let Some(flag) = overrides.port {
            if !(-1..=65_535).contains(&flag) {
                return Err(WorkflowError::new(
                    ErrorClass::InvalidConfigValue,
                    self.file,
                    format!("--port: expected an integer from -1 to 65535, found {flag}"),
                )
                .key("server.port"));
            }
            port = flag;
            self.source("server.port", Source::Flag("--port".into()));
        }
        let mut bind = match self.string(&section, "server.bind")? {
            Some(b) => {
                self.written("server.bind");
                b.trim().to_owned()
            }
            None => {
                self.source("server.bind", Source::Default);
                "127.0.0.1".to_owned()
            }
        };
        if let Some(flag) = &overrides.bind {
            bind = flag.trim().to_owned();
            self.source("server.bind", Source::Flag("--bind".into()));
        }
        let auth_token = match Self::get(&section, "auth_token") {
            None => None,
            Some(Value::String(text)) => match self.resolve_var("server.auth_token", text) {
                Some(Ok(token)) => Some(Secret(token)),
                Some(Err(var)) => {
                    return Err(self.error(
                        ErrorClass::InvalidConfigValue,
                        "server.auth_token",
                        format!("server.auth_token: ${var} is not set or empty"),
                    ));
                }
                None => {
                    self.written("server.auth_token");
                    Some(Secret(text.clone()))
                }
            },
            // Never echo the value: a token written as a number is still a token.
            Some(_) => {
                return Err(self.error(
                    ErrorClass::InvalidConfigValue,
                    "server.auth_token",
                    "server.auth_token: expected a string or $VAR (the value is not shown)",
                ));
            }
        };
        if let Some(token) = &auth_token
            && let Err(why) = check_auth_token(token.expose())
        {
            return Err(self.error(
                ErrorClass::InvalidConfigValue,
                "server.auth_token",
                format!("server.auth_token refused: {why} (the value is not shown)"),
            ));
        }
        let loopback = bind == "localhost"
            || bind
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if port >= 0 && !loopback && auth_token.is_none() {
            return Err(self.error(
                ErrorClass::InvalidConfigValue,
                "server.bind",
                format!(
                    "server.bind: {bind:?} is not a loopback address; set server.auth_token \
                     (e.g. `auth_token: $SYMPHONY_TOKEN`) to serve on it"
                ),
            ));
        }
        Ok(ServerConfig {
            port: u16::try_from(port).ok(),
            bind,
            auth_token,
        })
    }
}

/// Shortest bearer token the HTTP server accepts.
pub(crate) const MIN_AUTH_TOKEN_CHARS: usize = 16;

/// Why `token` cannot guard the HTTP server: empty, containing whitespace (a padded or
/// two-word value is almost always a mistake, and an all-blank one would equal a blank
/// header), or shorter than [`MIN_AUTH_TOKEN_CHARS`]. The reason never includes the value.
pub(crate) fn check_auth_token(token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err("it is empty".to_owned());
    }
    if token.chars().any(char::is_whitespace) {
        return Err("it contains whitespace".to_owned());
    }
    if token.chars().any(char::is_control) {
        return Err("it contains control characters".to_owned());
    }
    let chars = token.chars().count();
    if chars < MIN_AUTH_TOKEN_CHARS {
        return Err(format!(
            "it has {chars} characters, fewer than {MIN_AUTH_TOKEN_CHARS}"
        ));
    }
    Ok(())
}

/// One section of the front matter while a room reads it: `tracker.provider` for a tracker
/// kind (older flat spellings folded in), `codex` for the Codex runner. Every value is read
/// through here, so sources, `$VAR` resolution, error positions and messages are the same for
/// every room.
pub struct SectionKeys<'r, 'a> {
    reader: &'r mut Reader<'a>,
    map: Mapping,
    /// The section's dotted path: `tracker.provider`, `codex`.
    prefix: &'static str,
    /// Which flat key each folded-in value was written at.
    spelled: BTreeMap<String, String>,
}

impl SectionKeys<'_, '_> {
    /// `<prefix>.<name>`.
    fn key(&self, name: &str) -> String {
        format!("{}.{name}", self.prefix)
    }

    /// The key as the file spells it (a deprecated flat spelling when that was used).
    fn written(&self, name: &str) -> String {
        self.spelled
            .get(name)
            .cloned()
            .unwrap_or_else(|| self.key(name))
    }

    /// Warns about keys outside `known`, with a suggestion when one is close.
    pub fn check_keys(&mut self, known: &[&str]) {
        let map = self.map.clone();
        self.reader.check_keys(&map, self.prefix, known);
    }

    /// A list of environment variable names, each checked for shape; empty when absent.
    pub fn var_names(&mut self, name: &str) -> Result<Vec<String>, WorkflowError> {
        let key = self.key(name);
        self.reader.var_names(&self.map, &key)
    }

    /// The value as written, for settings passed through to an agent unchanged; `default`
    /// when absent.
    pub fn raw(
        &mut self,
        name: &str,
        default: Option<serde_json::Value>,
    ) -> Option<serde_json::Value> {
        let key = self.key(name);
        match Reader::get(&self.map, name) {
            Some(value) => {
                self.reader.written(&key);
                serde_json::to_value(value).ok()
            }
            None => {
                self.reader.source(&key, Source::Default);
                default
            }
        }
    }

    /// A string as written (numbers and booleans as text), no `$VAR` resolution: for values
    /// that a shell or an agent reads itself. `None` when absent (no source recorded).
    pub fn verbatim(&mut self, name: &str) -> Result<Option<String>, WorkflowError> {
        let key = self.key(name);
        let value = self.reader.string(&self.map, &key)?;
        if value.is_some() {
            self.reader.written(&key);
        }
        Ok(value)
    }

    /// The value of environment variable `var` as `name`'s fallback, source recorded; `None`
    /// when it is unset or empty.
    pub fn from_env(&mut self, name: &str, var: &str) -> Option<String> {
        let value = self.reader.env.var(var).filter(|v| !v.is_empty())?;
        let key = self.key(name);
        self.reader.source(&key, Source::Env(var.to_owned()));
        Some(value)
    }

    /// A map of strings to strings, in the order written; `None` when absent.
    pub fn string_map(
        &mut self,
        name: &str,
    ) -> Result<Option<Vec<(String, String)>>, WorkflowError> {
        let key = self.key(name);
        let Some(value) = Reader::get(&self.map, name) else {
            self.reader.source(&key, Source::Default);
            return Ok(None);
        };
        let Value::Mapping(map) = value else {
            return Err(self
                .reader
                .invalid(&self.written(name), "a map of strings", value));
        };
        let mut out = Vec::with_capacity(map.len());
        for (k, v) in map {
            match (k, v) {
                (Value::String(k), Value::String(v)) => out.push((k.clone(), v.clone())),
                (_, other) => {
                    let written = self.written(name);
                    return Err(self.reader.invalid(&written, "a map of strings", other));
                }
            }
        }
        self.reader.written(&key);
        Ok(Some(out))
    }

    /// Records that `name` took its default (for a value read with [`Self::string`] and
    /// `None` as default, then defaulted by the room).
    pub fn defaulted(&mut self, name: &str) {
        let key = self.key(name);
        self.reader.source(&key, Source::Default);
    }

    /// An error of `class` about `name`.
    pub fn error(
        &self,
        class: ErrorClass,
        name: &str,
        message: impl Into<String>,
    ) -> WorkflowError {
        self.reader.error(class, &self.written(name), message)
    }

    /// A string: `$VAR` resolved, source recorded, `default` when absent.
    pub fn string(
        &mut self,
        name: &str,
        default: Option<&str>,
    ) -> Result<Option<String>, WorkflowError> {
        let key = self.key(name);
        let written = self.written(name);
        let value = match Reader::get(&self.map, name) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(other) => return Err(self.reader.invalid(&written, "a string", other)),
        };
        let Some(value) = value else {
            return Ok(default.map(|d| {
                self.reader.source(&key, Source::Default);
                d.to_owned()
            }));
        };
        match self.reader.resolve_var(&key, &value) {
            None => {
                self.reader.source(&key, Source::Workflow(written));
                Ok(Some(value))
            }
            Some(Ok(resolved)) => Ok(Some(resolved)),
            Some(Err(var)) => Err(self.reader.error(
                ErrorClass::InvalidConfigValue,
                &written,
                format!("{written}: ${var} is not set or empty"),
            )),
        }
    }

    /// A credential: written value or `$VAR`, else the kind's fallback variable.
    pub fn secret(&mut self, name: &str, fallback_var: &str) -> Result<Secret, WorkflowError> {
        let key = self.key(name);
        let written = self.written(name);
        let r = &mut *self.reader;
        if let Some(value) = Reader::get(&self.map, name) {
            let Value::String(text) = value else {
                // Never echo it: a credential written as a number is still a credential.
                return Err(r.error(
                    ErrorClass::InvalidConfigValue,
                    &written,
                    format!("{written}: expected a string or $VAR (the value is not shown)"),
                ));
            };
            return match r.resolve_var(&key, text) {
                Some(Ok(resolved)) => Ok(Secret(resolved)),
                Some(Err(var)) => Err(r.error(
                    ErrorClass::MissingTrackerApiKey,
                    &written,
                    format!("{written}: ${var} is not set or empty"),
                )),
                None if text.trim().is_empty() => Err(r.error(
                    ErrorClass::MissingTrackerApiKey,
                    &written,
                    format!("{written} is empty"),
                )),
                None => {
                    r.source(&key, Source::Workflow(written));
                    Ok(Secret(text.trim().to_owned()))
                }
            };
        }
        match r.env.var(fallback_var).filter(|v| !v.is_empty()) {
            Some(value) => {
                r.source(&key, Source::Env(fallback_var.to_owned()));
                Ok(Secret(value))
            }
            None => Err(r.error(
                ErrorClass::MissingTrackerApiKey,
                self.prefix,
                format!(
                    "{key} is missing: export {fallback_var} (read when the workflow names \
                     none), or write `{name}: $SOME_VAR` under tracker.provider to read \
                     another variable"
                ),
            )),
        }
    }

    /// A path (`~`, `$VAR`, relative to the workflow), `default` when absent.
    pub fn path(&mut self, name: &str, default: &str) -> Result<PathBuf, WorkflowError> {
        let raw = self.string(name, Some(default))?.unwrap_or_default();
        let key = self.key(name);
        self.reader.path(&key, &raw)
    }

    /// An integer within `range`, `default` when absent.
    pub fn int(
        &mut self,
        name: &str,
        default: i64,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<i64, WorkflowError> {
        let key = self.key(name);
        self.reader.int(&self.map, &key, default, range)
    }

    /// `true` or `false`, `default` when absent.
    pub fn flag(&mut self, name: &str, default: bool) -> Result<bool, WorkflowError> {
        let key = self.key(name);
        let written = self.written(name);
        match Reader::get(&self.map, name) {
            None => {
                self.reader.source(&key, Source::Default);
                Ok(default)
            }
            Some(Value::Bool(b)) => {
                self.reader.source(&key, Source::Workflow(written));
                Ok(*b)
            }
            Some(other) => Err(self.reader.invalid(&written, "true or false", other)),
        }
    }

    /// `value`, written inside `<prefix>.<at>`, as a secret: a whole-value `$VAR` resolved
    /// (an error naming the variable when it is unset), otherwise taken as written. The value
    /// is never shown in an error.
    pub fn secret_value(&mut self, at: &str, value: &str) -> Result<Secret, WorkflowError> {
        let key = self.key(at);
        match self.reader.resolve_var(&key, value) {
            Some(Ok(resolved)) => Ok(Secret(resolved)),
            Some(Err(var)) => Err(self.reader.error(
                ErrorClass::InvalidConfigValue,
                &key,
                format!("{key}: ${var} is not set or empty"),
            )),
            None if value.trim().is_empty() => Err(self.reader.error(
                ErrorClass::InvalidConfigValue,
                &key,
                format!("{key} is empty"),
            )),
            None => Ok(Secret(value.trim().to_owned())),
        }
    }

    /// A list of paths (`~`, `$VAR`, relative to the workflow), each normalised; empty when
    /// absent.
    pub fn paths(&mut self, name: &str) -> Result<Vec<PathBuf>, WorkflowError> {
        let items = self.strings(name)?.unwrap_or_default();
        let key = self.key(name);
        (items.iter())
            .map(|raw| self.reader.path(&key, raw))
            .collect()
    }

    /// A list of strings as written; `None` when absent.
    pub fn strings(&mut self, name: &str) -> Result<Option<Vec<String>>, WorkflowError> {
        let key = self.key(name);
        let written = self.written(name);
        let Some(value) = Reader::get(&self.map, name) else {
            self.reader.source(&key, Source::Default);
            return Ok(None);
        };
        let items = match value {
            Value::Sequence(items) => (items.iter())
                .map(|item| item.as_str().map(str::to_owned))
                .collect::<Option<Vec<String>>>(),
            _ => None,
        };
        let Some(items) = items else {
            return Err(self.reader.invalid(&written, "a list of strings", value));
        };
        self.reader.source(&key, Source::Workflow(written));
        Ok(Some(items))
    }

    /// A required setting is missing (`class` says which kind of setting).
    pub fn missing(&self, class: ErrorClass, message: impl Into<String>) -> WorkflowError {
        self.reader.error(class, self.prefix, message)
    }

    /// The value of `name` is not what the kind accepts.
    pub fn invalid(&self, name: &str, expected: &str, found: &str) -> WorkflowError {
        let found = Value::String(found.to_owned());
        self.reader.invalid(&self.written(name), expected, &found)
    }
}

/// Why `root` cannot hold workspaces: the file system root, a system directory or one inside
/// one, a directory every user shares, or the home directory itself. `None` when it can.
fn unfit_root(root: &Path, home: Option<&Path>) -> Option<&'static str> {
    const SYSTEM: [&str; 14] = [
        "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run",
        "/sbin", "/sys", "/usr", "/snap",
    ];
    const SHARED: [&str; 7] = ["/tmp", "/var", "/var/tmp", "/home", "/opt", "/srv", "/mnt"];
    let root = normalize_path(root);
    if root == Path::new("/") {
        return Some("the file system root");
    }
    if SYSTEM.iter().any(|dir| root.starts_with(dir)) {
        return Some("a system directory");
    }
    if SHARED.iter().any(|dir| root == Path::new(dir)) || root == Path::new("/root") {
        return Some("a directory shared with everything else on the machine");
    }
    if home.is_some_and(|home| normalize_path(home) == root) {
        return Some("the home directory itself");
    }
    None
}

/// Removes `.` and resolves `..` without touching the filesystem.
fn normalize_path(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}
