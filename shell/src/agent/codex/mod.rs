//! The Codex app-server runner (SPEC 10): JSON lines over stdio with one `bash -lc` child per
//! session, a thread per issue, turns on that thread as the core asks for them.
//!
//! Wire facts follow the pinned schema (`../shared/reference/codex-app-server-schema`, 0.169.0)
//! and `real-agents-offline.md`: no `jsonrpc` member, request ids from 0, many messages per
//! read, unknown notifications ignored.

mod config;

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use symphony_core::{AgentUpdate, ExitOutcome};

pub use super::process::{AgentProcess, Line, MAX_LINE, Place, agent_env};

use super::session::{Runner, RunnerSession, SessionIo, TurnEnd, Waker, stopped_by_orchestrator};
pub use config::{ApprovalDecision, CodexConfig, read_config};

use std::sync::Arc;

use super::kinds::{Preflight, RunnerKind, cli_preflight};
use crate::workflow::ServiceConfig;

/// The kinds-table row.
pub(crate) static KIND: RunnerKind = RunnerKind {
    name: "codex",
    build,
    preflight,
};

fn build(config: &ServiceConfig) -> Arc<dyn Runner> {
    Arc::new(CodexAgent {
        config: config.codex.clone(),
        env_names: config.codex.env.clone(),
        secret_names: config.tracker.kind.secret_vars,
    })
}

/// The program `codex.command` starts, and its version.
fn preflight(config: &ServiceConfig) -> Preflight {
    cli_preflight(
        &config.codex.command,
        "codex",
        "npm install -g @openai/codex",
    )
}

/// Startup requests (`initialize`, `thread/start`) may take this long at least: a cold start
/// with MCP servers has needed far more than the 5 s default read timeout in the field.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopping app-server gets after stdin closes, then after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// The Codex app-server agent.
#[derive(Clone, Debug)]
pub struct CodexAgent {
    /// `codex.*` settings of the workflow version the session is bound to.
    pub config: CodexConfig,
    /// Environment variables the workflow passes to the agent by name (`codex.env`).
    pub env_names: Vec<String>,
    /// The tracker adapter's secret variable names: never passed unless named.
    pub secret_names: &'static [&'static str],
}

/// What the session thread waits on: lines from the agent, and wake-ups when the
/// orchestrator sent a control.
enum Incoming {
    Line(Line),
    Wake,
}

impl From<Line> for Incoming {
    fn from(line: Line) -> Self {
        Self::Line(line)
    }
}

/// Why a session ended early.
struct End(ExitOutcome);

fn failed(category: &str, detail: impl std::fmt::Display) -> End {
    End(ExitOutcome::Failed {
        reason: format!("{category}: {detail}"),
    })
}

/// One app-server session: the process, its lines, the thread it opened.
struct Session {
    process: AgentProcess,
    rx: Receiver<Incoming>,
    tx: Sender<Incoming>,
    next_id: u64,
    config: CodexConfig,
    approval: ApprovalDecision,
    thread_id: String,
}

/// A short one-line summary of an item for the status surfaces.
fn summarize_item(item: &Value) -> Option<(String, String)> {
    let kind = item["type"].as_str()?;
    let text = match kind {
        "agentMessage" => item["text"].as_str()?.to_owned(),
        "commandExecution" => format!(
            "{} (exit {})",
            item["command"].as_str().unwrap_or("?"),
            item["exitCode"]
        ),
        "dynamicToolCall" => format!("tool {}", item["tool"].as_str().unwrap_or("?")),
        "fileChange" => "file change".to_owned(),
        _ => return None,
    };
    Some((kind.to_owned(), text))
}

/// The update a notification carries for the orchestrator, if any (SPEC 10.4, 13.5). Token
/// counts are the thread's absolute totals; the core turns them into deltas.
pub fn notification_update(method: &str, params: &Value) -> Option<AgentUpdate> {
    match method {
        "thread/tokenUsage/updated" => {
            let total = &params["tokenUsage"]["total"];
            Some(AgentUpdate::TokenUsage {
                input_tokens: total["inputTokens"].as_u64()?,
                output_tokens: total["outputTokens"].as_u64()?,
                total_tokens: total["totalTokens"].as_u64()?,
            })
        }
        "account/rateLimits/updated" => Some(AgentUpdate::RateLimits {
            snapshot: params.get("rateLimits").unwrap_or(params).clone(),
        }),
        "item/completed" => {
            summarize_item(&params["item"]).map(|(event, text)| AgentUpdate::Message {
                event,
                message: Some(text),
            })
        }
        "error" => Some(AgentUpdate::Message {
            event: "error".into(),
            message: params["error"]["message"].as_str().map(str::to_owned),
        }),
        _ => None,
    }
}

/// Decodes one protocol line and, for a notification, its update: the per-line work of a
/// session, exposed for the bench.
pub fn decode_line(line: &str) -> Option<(Value, Option<AgentUpdate>)> {
    let value: Value = serde_json::from_str(line).ok()?;
    if !value.is_object() {
        return None;
    }
    let update = match (value["method"].as_str(), value.get("id")) {
        (Some(method), None) => notification_update(method, &value["params"]),
        _ => None,
    };
    Some((value, update))
}

impl Session {
    fn send(&mut self, message: &Value) -> Result<(), End> {
        self.process
            .send(&message.to_string())
            .map_err(|e| failed("port_exit", format!("cannot write to the app-server: {e}")))
    }

    fn request(&mut self, method: &str, params: Value) -> Result<u64, End> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"id": id, "method": method, "params": params}))?;
        Ok(id)
    }

    /// Waits for the response to `id`, handling everything else that arrives meanwhile.
    fn response(
        &mut self,
        io: &mut SessionIo<'_>,
        id: u64,
        method: &str,
        timeout: Duration,
    ) -> Result<Value, End> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = self.next(io, left).map_err(|e| match e {
                Wait::Timeout => End(ExitOutcome::TimedOut {
                    reason: format!(
                        "response_timeout: {method} got no answer within {} ms",
                        timeout.as_millis()
                    ),
                }),
                Wait::End(end) => end,
            })?;
            if message.get("method").is_none() && message["id"].as_u64() == Some(id) {
                if let Some(error) = message.get("error") {
                    return Err(failed(
                        "response_error",
                        format!("{method}: {}", error["message"].as_str().unwrap_or("error")),
                    ));
                }
                return Ok(message["result"].clone());
            }
            self.handle(io, &message)?;
        }
    }

    /// Next message that is not handled on the spot, within `timeout`.
    fn next(&mut self, io: &SessionIo<'_>, timeout: Duration) -> Result<Value, Wait> {
        loop {
            let incoming = match self.rx.recv_timeout(timeout) {
                Ok(incoming) => incoming,
                Err(RecvTimeoutError::Timeout) => return Err(Wait::Timeout),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Wait::End(failed(
                        "port_exit",
                        "the app-server output closed",
                    )));
                }
            };
            match incoming {
                // A next turn is only taken between turns; a stop ends this wait.
                Incoming::Wake if io.stop_requested() => {
                    return Err(Wait::End(End(stopped_by_orchestrator())));
                }
                Incoming::Wake => {}
                Incoming::Line(Line::Eof) => {
                    return Err(Wait::End(failed("port_exit", "the app-server exited")));
                }
                Incoming::Line(Line::TooLong) => {
                    return Err(Wait::End(failed(
                        "protocol_error",
                        format!("a line longer than {MAX_LINE} bytes"),
                    )));
                }
                Incoming::Line(Line::NotUtf8) => {
                    tracing::warn!(issue_identifier = %io.context().issue.identifier, "agent wrote a line that is not UTF-8; ignored");
                }
                Incoming::Line(Line::Text(text)) => match serde_json::from_str::<Value>(&text) {
                    Ok(value) if value.is_object() => return Ok(value),
                    _ => tracing::warn!(
                        issue_identifier = %io.context().issue.identifier,
                        "agent wrote a line that is not a JSON object; ignored: {}",
                        text.chars().take(200).collect::<String>()
                    ),
                },
            }
        }
    }

    /// Notifications become updates; server requests are answered (SPEC 10.5).
    fn handle(&mut self, io: &mut SessionIo<'_>, message: &Value) -> Result<(), End> {
        let Some(method) = message["method"].as_str() else {
            return Ok(()); // a response nobody waits for
        };
        let params = &message["params"];
        match message.get("id") {
            Some(id) => self.server_request(io, id.clone(), method, params),
            None => {
                if let Some(update) = notification_update(method, params) {
                    io.report(update);
                }
                Ok(())
            }
        }
    }

    fn answer(&mut self, id: Value, result: Value) -> Result<(), End> {
        self.send(&json!({"id": id, "result": result}))
    }

    fn refuse(&mut self, id: Value, code: i64, message: &str) -> Result<(), End> {
        self.send(&json!({"id": id, "error": {"code": code, "message": message}}))
    }

    fn server_request(
        &mut self,
        io: &mut SessionIo<'_>,
        id: Value,
        method: &str,
        params: &Value,
    ) -> Result<(), End> {
        let (v2, legacy) = match self.approval {
            ApprovalDecision::AcceptForSession => ("acceptForSession", "approved_for_session"),
            ApprovalDecision::Accept => ("accept", "approved"),
            ApprovalDecision::Decline => ("decline", "denied"),
        };
        match method {
            "item/commandExecution/requestApproval" | "item/fileChange/requestApproval" => {
                io.report(AgentUpdate::Message {
                    event: "approval".into(),
                    message: Some(format!("{method}: {v2}")),
                });
                self.answer(id, json!({"decision": v2}))
            }
            "execCommandApproval" | "applyPatchApproval" => {
                io.report(AgentUpdate::Message {
                    event: "approval".into(),
                    message: Some(format!("{method}: {legacy}")),
                });
                self.answer(id, json!({"decision": legacy}))
            }
            "item/tool/call" => {
                let tool = params["tool"].as_str().unwrap_or("");
                let result = io.call_tool(tool, &params["arguments"]);
                let text = json!([{"type": "inputText", "text": result.text}]);
                self.answer(id, json!({"success": result.success, "contentItems": text}))
            }
            "item/tool/requestUserInput"
            | "mcpServer/elicitation/request"
            | "item/permissions/requestApproval" => {
                if method == "mcpServer/elicitation/request" {
                    self.answer(id, json!({"action": "decline"}))?;
                } else {
                    self.refuse(id, -32000, "unattended run: no user is available to answer")?;
                }
                let summary = params["questions"][0]["question"]
                    .as_str()
                    .or_else(|| params["message"].as_str())
                    .unwrap_or("")
                    .to_owned();
                Err(End(ExitOutcome::InputRequired {
                    reason: format!("turn_input_required: {method} {summary}")
                        .trim_end()
                        .to_owned(),
                }))
            }
            _ => self.refuse(
                id,
                -32601,
                &format!("{method} is not supported by symphony"),
            ),
        }
    }

    fn start(&mut self, tools: &[Value], io: &mut SessionIo<'_>) -> Result<(), End> {
        let startup = STARTUP_TIMEOUT.max(Duration::from_millis(self.config.read_timeout_ms));
        let id = self.request(
            "initialize",
            json!({
                "clientInfo": {"name": "symphony", "version": env!("CARGO_PKG_VERSION")},
                "capabilities": {"experimentalApi": true}
            }),
        )?;
        self.response(io, id, "initialize", startup)
            .map_err(|end| {
                // bash exits 127 when the command is not found.
                match self.process.exit_code() {
                    Some(127) => failed(
                        "codex_not_found",
                        format!("`{}` was not found (exit 127)", self.config.command),
                    ),
                    _ => end,
                }
            })?;
        self.send(&json!({"method": "initialized"}))?;
        let cwd = io.context().workspace.display().to_string();
        let id = self.request(
            "thread/start",
            json!({
                "cwd": cwd,
                "approvalPolicy": self.config.approval_policy,
                "sandbox": self.config.thread_sandbox,
                "dynamicTools": tools,
            }),
        )?;
        let result = self.response(io, id, "thread/start", startup)?;
        self.thread_id = result["thread"]["id"]
            .as_str()
            .ok_or_else(|| failed("response_error", "thread/start returned no thread id"))?
            .to_owned();
        io.report(AgentUpdate::SessionStarted {
            thread_id: self.thread_id.clone(),
            pid: Some(self.process.pid()),
        });
        Ok(())
    }

    fn run_turn(&mut self, text: &str, io: &mut SessionIo<'_>) -> Result<TurnEnd, End> {
        let mut params = json!({
            "threadId": self.thread_id,
            "input": [{"type": "text", "text": text}],
            "cwd": io.context().workspace.display().to_string(),
            "approvalPolicy": self.config.approval_policy,
        });
        if let Some(policy) = &self.config.turn_sandbox_policy {
            params["sandboxPolicy"] = policy.clone();
        }
        let read = Duration::from_millis(self.config.read_timeout_ms);
        let id = self.request("turn/start", params)?;
        let result = self.response(io, id, "turn/start", read)?;
        let turn_id = result["turn"]["id"].as_str().unwrap_or_default().to_owned();
        io.report(AgentUpdate::TurnStarted {
            turn_id: turn_id.clone(),
        });
        // `turn_timeout_ms` is a silence interval: every message restarts it.
        let silence = Duration::from_millis(self.config.turn_timeout_ms);
        loop {
            let message = match self.next(io, silence) {
                Ok(message) => message,
                Err(Wait::Timeout) => {
                    self.interrupt(&turn_id);
                    return Err(End(ExitOutcome::TimedOut {
                        reason: format!(
                            "turn_timeout: no output for {} ms",
                            self.config.turn_timeout_ms
                        ),
                    }));
                }
                Err(Wait::End(end)) => {
                    if matches!(end.0, ExitOutcome::Cancelled { .. }) {
                        self.interrupt(&turn_id);
                    }
                    return Err(end);
                }
            };
            if message["method"] == "turn/completed" && message.get("id").is_none() {
                let turn = &message["params"]["turn"];
                return Ok(match turn["status"].as_str() {
                    Some("completed") => TurnEnd::Completed { turn_id },
                    Some("interrupted") => TurnEnd::Interrupted,
                    _ => TurnEnd::Failed(
                        turn["error"]["message"]
                            .as_str()
                            .unwrap_or("the turn failed")
                            .to_owned(),
                    ),
                });
            }
            if let Err(end) = self.handle(io, &message) {
                if matches!(end.0, ExitOutcome::InputRequired { .. }) {
                    self.interrupt(&turn_id);
                }
                return Err(end);
            }
        }
    }

    /// Best effort: ask the app-server to stop the running turn.
    fn interrupt(&mut self, turn_id: &str) {
        if !turn_id.is_empty() {
            let params = json!({"threadId": self.thread_id, "turnId": turn_id});
            let _ = self.request("turn/interrupt", params);
        }
    }

    /// Between turns: serves the app-server until woken.
    fn wait(&mut self, io: &mut SessionIo<'_>) -> Result<(), End> {
        loop {
            match self.rx.recv() {
                Ok(Incoming::Wake) => return Ok(()),
                Ok(Incoming::Line(Line::Eof)) | Err(_) => {
                    return Err(failed("port_exit", "the app-server exited between turns"));
                }
                Ok(Incoming::Line(Line::Text(text))) => {
                    if let Ok(value) = serde_json::from_str::<Value>(&text) {
                        self.handle(io, &value)?;
                    }
                }
                Ok(Incoming::Line(_)) => {}
            }
        }
    }
}

impl RunnerSession for Session {
    fn waker(&self) -> Waker {
        let tx = self.tx.clone();
        Box::new(move || {
            let _ = tx.send(Incoming::Wake);
        })
    }

    fn turn(&mut self, text: &str, io: &mut SessionIo<'_>) -> Result<TurnEnd, ExitOutcome> {
        self.run_turn(text, io).map_err(|End(outcome)| outcome)
    }

    fn idle(&mut self, io: &mut SessionIo<'_>) -> Result<(), ExitOutcome> {
        self.wait(io).map_err(|End(outcome)| outcome)
    }

    fn stop(&mut self) {
        self.process.stop(STOP_GRACE);
    }
}

/// How waiting for a message ended without one.
enum Wait {
    Timeout,
    End(End),
}

impl Runner for CodexAgent {
    fn start(
        &self,
        tools: &[Value],
        io: &mut SessionIo<'_>,
    ) -> Result<Box<dyn RunnerSession>, ExitOutcome> {
        let (tx, rx): (Sender<Incoming>, Receiver<Incoming>) = channel();
        let env = agent_env(std::env::vars_os(), &self.env_names, self.secret_names);
        let context = io.context();
        // Codex keeps its auth, sessions and helper binaries in its home: a sandbox keeps it
        // writable.
        let var = |name: &str| crate::host::sandbox::env_value(&env, name).map(PathBuf::from);
        let codex_home = var("CODEX_HOME").or_else(|| var("HOME").map(|h| h.join(".codex")));
        let place = Place {
            host: context.host.as_ref(),
            cwd: &context.workspace,
            writable: codex_home.as_slice(),
        };
        let process = AgentProcess::spawn(
            place,
            &self.config.command,
            env,
            tx.clone(),
            &context.issue.identifier,
        )
        .map_err(|e| failed("codex_not_found", format!("cannot start bash: {e}")).0)?;
        let mut session = Session {
            process,
            rx,
            tx,
            next_id: 0,
            config: self.config.clone(),
            approval: self.config.approval_decision,
            thread_id: String::new(),
        };
        match session.start(tools, io) {
            Ok(()) => Ok(Box::new(session)),
            Err(End(outcome)) => {
                session.process.stop(STOP_GRACE);
                Err(outcome)
            }
        }
    }
}
