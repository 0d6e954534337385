//! The Claude Code runner (`agent.kind: claude`): one `claude -p --output-format stream-json`
//! process per turn, in the workspace and its own process group, the prompt on stdin. The first
//! turn's `system/init` names the session; every later turn of the run continues it with
//! `--resume`. Each session has its own private config dir (`CLAUDE_CONFIG_DIR`), so the
//! operator's `~/.claude` is never read or written, and it is removed when the session ends.
//!
//! Tokens: a `result` line's `usage` is the sum over that invocation, so the session's totals
//! are those sums added up (the `assistant` lines' usage is a start-of-message snapshot and is
//! never counted). Facts: `real-agents-offline.md`, `claude-code-facts.md`.

mod config;
pub mod stream;
pub mod tools;

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use symphony_core::ExitOutcome;

pub use config::{ClaudeConfig, DEFAULT_ALLOWED_TOOLS, command_problem, read_config};
use stream::Outcome;

use super::kinds::{Preflight, RunnerKind, cli_preflight};
use super::process::{AgentProcess, Line, Place, agent_env};
use super::session::{Runner, RunnerSession, SessionIo, TurnEnd, Waker, stopped_by_orchestrator};
use crate::host::Host;
use crate::workflow::ServiceConfig;

/// The kinds-table row.
pub(crate) static KIND: RunnerKind = RunnerKind {
    name: "claude",
    build,
    preflight,
};

fn build(config: &ServiceConfig) -> Arc<dyn Runner> {
    Arc::new(ClaudeAgent {
        config: config.claude.clone(),
        secret_names: config.tracker.kind.secret_vars,
        bridge: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("symphony")),
        sandboxed: config.sandbox.enabled(),
    })
}

/// The program `claude.command` starts (its first word that is not an `env` assignment), its
/// version, and a warning for root without a sandbox.
fn preflight(config: &ServiceConfig) -> Preflight {
    let install = "npm install -g @anthropic-ai/claude-code";
    match cli_preflight(&config.claude.command, "claude", install) {
        Preflight::Ready(found)
            if rustix::process::geteuid().is_root() && !config.sandbox.enabled() =>
        {
            Preflight::Ready(format!(
                "{found}; running as root with no sandbox around the agent: it can do anything root can"
            ))
        }
        other => other,
    }
}

/// How long a stopping turn's process gets after its stdin closed, then after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// How long the process may take to exit after its `result` line.
const EXIT_AFTER_RESULT: Duration = Duration::from_secs(10);

/// The Claude Code agent.
#[derive(Clone, Debug)]
pub struct ClaudeAgent {
    /// `claude.*` settings of the workflow version the session is bound to.
    pub config: ClaudeConfig,
    /// The tracker adapter's secret variable names: never passed unless named.
    pub secret_names: &'static [&'static str],
    /// The `symphony` binary, whose `mcp-bridge` Claude starts to reach the host tools.
    pub bridge: PathBuf,
    /// Whether the agent runs inside the workflow's sandbox: the CLI is told (`IS_SANDBOX=1`,
    /// which it requires before it bypasses permissions as root).
    pub sandboxed: bool,
}

enum Incoming {
    Line(Line),
    Wake,
    Tool(tools::Call),
}

impl From<Line> for Incoming {
    fn from(line: Line) -> Self {
        Self::Line(line)
    }
}

/// One session: the turns of one run on one Claude session.
struct ClaudeSession {
    config: ClaudeConfig,
    env: Vec<(OsString, OsString)>,
    /// The private `CLAUDE_CONFIG_DIR`.
    config_dir: PathBuf,
    rx: Receiver<Incoming>,
    tx: Sender<Incoming>,
    /// Turns run (invocations), for turn ids.
    turns: u32,
    /// The session id (known after the first turn's `system/init`) and its token sums.
    translator: stream::Translator,
    process: Option<AgentProcess>,
    host: Arc<dyn Host>,
    /// `--mcp-config` for the host tools; the server stops with the session.
    mcp_config: String,
    tools: Option<tools::ToolsServer>,
}

fn failed(category: &str, detail: impl std::fmt::Display) -> ExitOutcome {
    ExitOutcome::Failed {
        reason: format!("{category}: {detail}"),
    }
}

impl Runner for ClaudeAgent {
    fn start(
        &self,
        tools: &[serde_json::Value],
        io: &mut SessionIo<'_>,
    ) -> Result<Box<dyn RunnerSession>, ExitOutcome> {
        let context = io.context();
        let config_dir = private_dir(context.host.as_ref()).map_err(|e| {
            failed(
                "startup_failed",
                format!("cannot create the config dir: {e}"),
            )
        })?;
        let mut env = agent_env(std::env::vars_os(), &self.config.env, self.secret_names);
        env.push(("CLAUDE_CONFIG_DIR".into(), config_dir.clone().into()));
        if self.sandboxed {
            env.push(("IS_SANDBOX".into(), "1".into()));
        }
        let (tx, rx) = channel();
        let server = tools::ToolsServer::start(
            &config_dir.join("tools.sock"),
            tools,
            tx.clone(),
            Incoming::Tool,
        )
        .map_err(|e| failed("startup_failed", format!("cannot serve the tools: {e}")))?;
        let mcp_config = server.mcp_config(&self.bridge);
        Ok(Box::new(ClaudeSession {
            config: self.config.clone(),
            env,
            config_dir,
            rx,
            tx,
            turns: 0,
            translator: stream::Translator::default(),
            process: None,
            host: Arc::clone(&context.host),
            mcp_config,
            tools: Some(server),
        }))
    }
}

/// A new private (0700) directory under the system's temporary directory, for one session's
/// `CLAUDE_CONFIG_DIR`: never one that exists already.
fn private_dir(host: &dyn Host) -> std::io::Result<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut last = None;
    for _ in 0..100 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("symphony-claude-{}-{n}", std::process::id()));
        match host.create_dir(&dir, true) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free name")))
}

/// How an invocation ended.
enum Ended {
    /// With its `result`; whether its `system/init` came first.
    Result(Outcome, bool),
    /// The process ended without one (exit code, if known).
    NoResult(Option<i32>),
}

impl ClaudeSession {
    /// The CLI's arguments for a turn.
    fn args(&self, resume: Option<&str>) -> Vec<String> {
        let c = &self.config;
        let mut args: Vec<String> = ["-p", "--output-format", "stream-json", "--verbose"]
            .map(String::from)
            .to_vec();
        let mut flag = |name: &str, value: String| {
            args.push(name.to_owned());
            args.push(value);
        };
        // The host tools are always allowed: they act on this session's issue only.
        let mut allowed = c.allowed_tools.clone();
        allowed.push(format!("mcp__{}", tools::SERVER));
        flag("--allowedTools", allowed.join(","));
        flag("--mcp-config", self.mcp_config.clone());
        if !c.disallowed_tools.is_empty() {
            flag("--disallowedTools", c.disallowed_tools.join(","));
        }
        if let Some(model) = &c.model {
            flag("--model", model.clone());
        }
        if let Some(mode) = &c.permission_mode {
            flag("--permission-mode", mode.clone());
        }
        if let Some(turns) = c.max_turns_per_run {
            flag("--max-turns", turns.to_string());
        }
        if let Some(usd) = c.max_budget_usd {
            flag("--max-budget-usd", usd.to_string());
        }
        if let Some(settings) = &c.settings {
            flag("--settings", settings.to_string());
        }
        if let Some(id) = resume {
            flag("--resume", id.to_owned());
        }
        // Only our server: none from the operator's or the repository's settings.
        args.push("--strict-mcp-config".to_owned());
        args
    }

    /// Runs one invocation with `text` on stdin to its end, reporting what it says.
    fn invoke(&mut self, text: &str, io: &mut SessionIo<'_>) -> Result<Ended, ExitOutcome> {
        let resume = self.translator.session_id.clone();
        let args = self.args(resume.as_deref());
        let context = io.context();
        let identifier = context.issue.identifier.clone();
        let place = Place {
            host: context.host.as_ref(),
            cwd: &context.workspace,
            writable: std::slice::from_ref(&self.config_dir),
        };
        let mut process = AgentProcess::spawn_with_args(
            place,
            &self.config.command,
            &args,
            self.env.clone(),
            self.tx.clone(),
            &identifier,
        )
        .map_err(|e| failed("startup_failed", format!("cannot start claude: {e}")))?;
        let pid = process.pid();
        process
            .send_all_and_close(text.to_owned())
            .map_err(|e| failed("port_exit", format!("claude closed its input: {e}")))?;
        self.process = Some(process);
        let turn_id = format!("turn-{}", self.turns);
        let started = Instant::now();
        let turn_limit = Duration::from_millis(self.config.turn_timeout_ms);
        let read_limit = Duration::from_millis(self.config.read_timeout_ms);
        let mut init_seen = false;
        let mut result: Option<Outcome> = None;
        loop {
            let left = turn_limit.saturating_sub(started.elapsed());
            // After the result only the exit is awaited, briefly.
            let wait = match result {
                Some(_) => EXIT_AFTER_RESULT,
                None => read_limit.min(left),
            };
            let line = match self.rx.recv_timeout(wait) {
                Ok(Incoming::Wake) => {
                    if io.stop_requested() {
                        self.stop_process();
                        return Err(stopped_by_orchestrator());
                    }
                    continue;
                }
                Ok(Incoming::Tool(call)) => {
                    let result = io.call_tool(&call.name, &call.arguments);
                    let _ = call.reply.send(result);
                    continue;
                }
                Ok(Incoming::Line(Line::Text(line))) => line,
                Ok(Incoming::Line(Line::Eof)) => {
                    let code = self.process.as_mut().and_then(AgentProcess::exit_code);
                    self.stop_process();
                    return Ok(match result {
                        Some(outcome) => Ended::Result(outcome, init_seen),
                        None => Ended::NoResult(code),
                    });
                }
                Ok(Incoming::Line(Line::TooLong | Line::NotUtf8)) => {
                    self.stop_process();
                    return Err(failed("response_error", "claude wrote an unreadable line"));
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.stop_process();
                    if let Some(outcome) = result {
                        // Said what it had to say but did not exit: stopped, result kept.
                        return Ok(Ended::Result(outcome, init_seen));
                    }
                    let reason = if left <= read_limit {
                        format!(
                            "turn_timeout: the turn took over {} ms",
                            self.config.turn_timeout_ms
                        )
                    } else {
                        format!(
                            "read_timeout: no output for {} ms",
                            self.config.read_timeout_ms
                        )
                    };
                    return Err(ExitOutcome::TimedOut { reason });
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.stop_process();
                    return Err(failed("port_exit", "lost the agent's output"));
                }
            };
            let Some(message) = stream::decode(&line) else {
                self.stop_process();
                return Err(failed(
                    "response_error",
                    "claude wrote a line that is not stream-json",
                ));
            };
            let step = self.translator.feed(message, pid, &turn_id);
            for update in step.updates {
                io.report(update);
            }
            init_seen |= step.init;
            if step.outcome.is_some() {
                result = step.outcome;
            }
        }
    }

    fn stop_process(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop(STOP_GRACE);
        }
    }
}

impl RunnerSession for ClaudeSession {
    fn waker(&self) -> Waker {
        let tx = self.tx.clone();
        Box::new(move || {
            let _ = tx.send(Incoming::Wake);
        })
    }

    fn turn(&mut self, text: &str, io: &mut SessionIo<'_>) -> Result<TurnEnd, ExitOutcome> {
        self.turns += 1;
        let turn_id = format!("turn-{}", self.turns);
        let mut ended = self.invoke(text, io)?;
        // A resume of a session the CLI does not know (its files gone): a fresh session, once.
        if let Ended::Result(outcome, false) = &ended
            && self.translator.session_id.is_some()
            && outcome.subtype == "error_during_execution"
        {
            tracing::warn!(
                issue_identifier = %io.context().issue.identifier,
                "claude could not resume its session ({}); starting a fresh one",
                outcome.text
            );
            self.translator.forget_session();
            ended = self.invoke(text, io)?;
        }
        match ended {
            Ended::Result(outcome, _) if outcome.succeeded() => Ok(TurnEnd::Completed { turn_id }),
            Ended::Result(outcome, _) if outcome.rate_limited() => {
                Ok(TurnEnd::Failed(format!("rate_limited: {}", outcome.text)))
            }
            Ended::Result(outcome, _) => Ok(TurnEnd::Failed(format!(
                "{}: {}",
                outcome.subtype, outcome.text
            ))),
            Ended::NoResult(code) => Err(failed(
                "port_exit",
                format!(
                    "claude exited without a result (exit code {})",
                    code.map_or_else(|| "unknown".to_owned(), |c| c.to_string())
                ),
            )),
        }
    }

    fn idle(&mut self, _io: &mut SessionIo<'_>) -> Result<(), ExitOutcome> {
        // No process runs between turns: wait for the orchestrator.
        loop {
            match self.rx.recv() {
                Ok(Incoming::Wake) | Err(_) => return Ok(()),
                Ok(Incoming::Tool(call)) => {
                    let _ = call.reply.send(crate::agent::ToolResult {
                        success: false,
                        text: "no turn is running".to_owned(),
                    });
                }
                Ok(Incoming::Line(_)) => {}
            }
        }
    }

    fn stop(&mut self) {
        self.stop_process();
        // The tools go first (their listener wakes through the socket), then the dir.
        drop(self.tools.take());
        // The session's transcripts and settings; nothing else lives there.
        let _ = self.host.remove_dir_all(&self.config_dir);
    }
}
