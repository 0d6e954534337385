//! The Codex app-server runner (SPEC 10): JSON lines over stdio with one `bash -lc` child per
//! session, a thread per issue, turns on that thread as the core asks for them.
//!
//! Wire facts follow the pinned schema (`../shared/reference/codex-app-server-schema`, 0.169.0)
//! and `real-agents-offline.md`: no `jsonrpc` member, request ids from 0, many messages per
//! read, unknown notifications ignored.

mod process;

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use symphony_core::{AgentUpdate, ExitOutcome, Issue};

pub use process::{AgentProcess, Line, MAX_LINE, agent_env};

use super::{Agent, Control, SessionContext};
use crate::workflow::CodexConfig;

/// Startup requests (`initialize`, `thread/start`) may take this long at least: a cold start
/// with MCP servers has needed far more than the 5 s default read timeout in the field.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopping app-server gets after stdin closes, then after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// How approval requests are answered (`codex.approval_decision`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApprovalDecision {
    /// Approve, and do not ask again this session (SPEC 10.5's high-trust example).
    AcceptForSession,
    /// Approve this one request.
    Accept,
    /// Refuse.
    Decline,
}

/// The Codex app-server agent.
#[derive(Clone, Debug)]
pub struct CodexAgent {
    /// `codex.*` settings of the workflow version the session is bound to.
    pub config: CodexConfig,
    /// Environment variables the workflow passes to the agent by name (`codex.env`).
    pub env_names: Vec<String>,
    /// The tracker adapter's secret variable names: never passed unless named.
    pub secret_names: &'static [&'static str],
    /// The approval policy.
    pub approval: ApprovalDecision,
}

/// What the session thread waits on: lines from the agent and the orchestrator's controls.
enum Incoming {
    Line(Line),
    Control(Control),
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

/// How a turn ended.
enum TurnEnd {
    Completed(String),
    Failed(String),
    Interrupted,
}

struct Session<'a> {
    process: AgentProcess,
    rx: Receiver<Incoming>,
    next_id: u64,
    update: &'a mut dyn FnMut(AgentUpdate),
    context: &'a SessionContext,
    agent: &'a CodexAgent,
    thread_id: String,
}

/// The host-side tools advertised to the agent: they act on this session's issue only, with
/// the adapter's credentials, in the host process (SPEC 10.5, 15.3).
fn tool_specs() -> Value {
    json!([
        {
            "type": "function",
            "name": "update_issue_state",
            "description": "Move the issue you are working on to another tracker state (for example the done state when the work is finished).",
            "inputSchema": {
                "type": "object",
                "properties": {"state": {"type": "string", "description": "Target state name"}},
                "required": ["state"],
                "additionalProperties": false
            }
        },
        {
            "type": "function",
            "name": "comment_on_issue",
            "description": "Add a comment to the issue you are working on.",
            "inputSchema": {
                "type": "object",
                "properties": {"body": {"type": "string", "description": "Comment text (Markdown)"}},
                "required": ["body"],
                "additionalProperties": false
            }
        }
    ])
}

/// The text of a continuation turn: guidance, not the whole prompt again (SPEC 7.1).
fn continuation(issue: &Issue, turn: u32) -> String {
    format!(
        "Continue working on {} ({}). The issue is still in state {:?}. This is turn {turn} on \
         the same thread: pick up where you left off; the original instructions still apply. \
         When the work is done, move the issue out of its active state.",
        issue.identifier, issue.title, issue.state
    )
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

impl Session<'_> {
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
    fn response(&mut self, id: u64, method: &str, timeout: Duration) -> Result<Value, End> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = self.next(left).map_err(|e| match e {
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
            self.handle(&message)?;
        }
    }

    /// Next message that is not handled on the spot, within `timeout`.
    fn next(&mut self, timeout: Duration) -> Result<Value, Wait> {
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
                Incoming::Control(Control::Stop) => {
                    return Err(Wait::End(End(super::stopped_by_orchestrator())));
                }
                Incoming::Control(Control::Turn { .. }) => {} // only valid between turns
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
                    tracing::warn!(issue_identifier = %self.context.issue.identifier, "agent wrote a line that is not UTF-8; ignored");
                }
                Incoming::Line(Line::Text(text)) => match serde_json::from_str::<Value>(&text) {
                    Ok(value) if value.is_object() => return Ok(value),
                    _ => tracing::warn!(
                        issue_identifier = %self.context.issue.identifier,
                        "agent wrote a line that is not a JSON object; ignored: {}",
                        text.chars().take(200).collect::<String>()
                    ),
                },
            }
        }
    }

    /// Notifications become updates; server requests are answered (SPEC 10.5).
    fn handle(&mut self, message: &Value) -> Result<(), End> {
        let Some(method) = message["method"].as_str() else {
            return Ok(()); // a response nobody waits for
        };
        let params = &message["params"];
        match message.get("id") {
            Some(id) => self.server_request(id.clone(), method, params),
            None => {
                self.notification(method, params);
                Ok(())
            }
        }
    }

    fn notification(&mut self, method: &str, params: &Value) {
        if let Some(update) = notification_update(method, params) {
            (self.update)(update);
        }
    }

    fn answer(&mut self, id: Value, result: Value) -> Result<(), End> {
        self.send(&json!({"id": id, "result": result}))
    }

    fn refuse(&mut self, id: Value, code: i64, message: &str) -> Result<(), End> {
        self.send(&json!({"id": id, "error": {"code": code, "message": message}}))
    }

    fn server_request(&mut self, id: Value, method: &str, params: &Value) -> Result<(), End> {
        let (v2, legacy) = match self.agent.approval {
            ApprovalDecision::AcceptForSession => ("acceptForSession", "approved_for_session"),
            ApprovalDecision::Accept => ("accept", "approved"),
            ApprovalDecision::Decline => ("decline", "denied"),
        };
        match method {
            "item/commandExecution/requestApproval" | "item/fileChange/requestApproval" => {
                (self.update)(AgentUpdate::Message {
                    event: "approval".into(),
                    message: Some(format!("{method}: {v2}")),
                });
                self.answer(id, json!({"decision": v2}))
            }
            "execCommandApproval" | "applyPatchApproval" => {
                self.answer(id, json!({"decision": legacy}))
            }
            "item/tool/call" => {
                let result = self.tool_call(params);
                self.answer(id, result)
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

    /// Runs a dynamic tool host-side; unknown tools fail and the turn goes on.
    fn tool_call(&mut self, params: &Value) -> Value {
        let tool = params["tool"].as_str().unwrap_or("");
        let arguments = &params["arguments"];
        let identifier = self.context.issue.identifier.clone();
        let outcome = match tool {
            "update_issue_state" => match arguments["state"].as_str() {
                Some(state) => self
                    .context
                    .runtime
                    .block_on(self.context.tracker.set_state(&identifier, state))
                    .map(|()| format!("{identifier} moved to {state}"))
                    .map_err(|e| e.message),
                None => Err("missing `state`".to_owned()),
            },
            "comment_on_issue" => match arguments["body"].as_str() {
                Some(body) => self
                    .context
                    .runtime
                    .block_on(self.context.tracker.add_comment(&identifier, body))
                    .map(|()| format!("comment added to {identifier}"))
                    .map_err(|e| e.message),
                None => Err("missing `body`".to_owned()),
            },
            other => match self.context.tracker.call_tool(other, arguments) {
                Some(call) => self.context.runtime.block_on(call),
                None => Err(format!("unknown tool {other:?}")),
            },
        };
        (self.update)(AgentUpdate::Message {
            event: "tool_call".into(),
            message: Some(match &outcome {
                Ok(text) => format!("{tool}: {text}"),
                Err(e) => format!("{tool} failed: {e}"),
            }),
        });
        let (success, text) = match outcome {
            Ok(text) => (true, text),
            Err(e) => (false, e),
        };
        json!({"success": success, "contentItems": [{"type": "inputText", "text": text}]})
    }

    fn start(&mut self) -> Result<(), End> {
        let startup = STARTUP_TIMEOUT.max(Duration::from_millis(self.agent.config.read_timeout_ms));
        let id = self.request(
            "initialize",
            json!({
                "clientInfo": {"name": "symphony", "version": env!("CARGO_PKG_VERSION")},
                "capabilities": {"experimentalApi": true}
            }),
        )?;
        self.response(id, "initialize", startup).map_err(|end| {
            // bash exits 127 when the command is not found.
            match self.process.exit_code() {
                Some(127) => failed(
                    "codex_not_found",
                    format!("`{}` was not found (exit 127)", self.agent.config.command),
                ),
                _ => end,
            }
        })?;
        self.send(&json!({"method": "initialized"}))?;
        let cwd = self.context.workspace.display().to_string();
        let mut tools = tool_specs();
        if let Some(list) = tools.as_array_mut() {
            list.extend(self.context.tracker.tool_specs());
        }
        let id = self.request(
            "thread/start",
            json!({
                "cwd": cwd,
                "approvalPolicy": self.agent.config.approval_policy,
                "sandbox": self.agent.config.thread_sandbox,
                "dynamicTools": tools,
            }),
        )?;
        let result = self.response(id, "thread/start", startup)?;
        self.thread_id = result["thread"]["id"]
            .as_str()
            .ok_or_else(|| failed("response_error", "thread/start returned no thread id"))?
            .to_owned();
        (self.update)(AgentUpdate::SessionStarted {
            thread_id: self.thread_id.clone(),
            pid: Some(self.process.pid()),
        });
        Ok(())
    }

    fn turn(&mut self, text: &str) -> Result<TurnEnd, End> {
        let mut params = json!({
            "threadId": self.thread_id,
            "input": [{"type": "text", "text": text}],
            "cwd": self.context.workspace.display().to_string(),
            "approvalPolicy": self.agent.config.approval_policy,
        });
        if let Some(policy) = &self.agent.config.turn_sandbox_policy {
            params["sandboxPolicy"] = policy.clone();
        }
        let read = Duration::from_millis(self.agent.config.read_timeout_ms);
        let id = self.request("turn/start", params)?;
        let result = self.response(id, "turn/start", read)?;
        let turn_id = result["turn"]["id"].as_str().unwrap_or_default().to_owned();
        (self.update)(AgentUpdate::TurnStarted {
            turn_id: turn_id.clone(),
        });
        // `turn_timeout_ms` is a silence interval: every message restarts it.
        let silence = Duration::from_millis(self.agent.config.turn_timeout_ms);
        loop {
            let message = match self.next(silence) {
                Ok(message) => message,
                Err(Wait::Timeout) => {
                    self.interrupt(&turn_id);
                    return Err(End(ExitOutcome::TimedOut {
                        reason: format!(
                            "turn_timeout: no output for {} ms",
                            self.agent.config.turn_timeout_ms
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
                    Some("completed") => TurnEnd::Completed(turn_id),
                    Some("interrupted") => TurnEnd::Interrupted,
                    _ => TurnEnd::Failed(
                        turn["error"]["message"]
                            .as_str()
                            .unwrap_or("the turn failed")
                            .to_owned(),
                    ),
                });
            }
            if let Err(end) = self.handle(&message) {
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

    /// Between turns: the core's next instruction.
    fn next_control(&mut self) -> Result<Control, End> {
        loop {
            match self.rx.recv() {
                Ok(Incoming::Control(control)) => return Ok(control),
                Ok(Incoming::Line(Line::Eof)) | Err(_) => {
                    return Err(failed("port_exit", "the app-server exited between turns"));
                }
                Ok(Incoming::Line(Line::Text(text))) => {
                    if let Ok(value) = serde_json::from_str::<Value>(&text) {
                        self.handle(&value)?;
                    }
                }
                Ok(Incoming::Line(_)) => {}
            }
        }
    }

    fn run(&mut self) -> ExitOutcome {
        let outcome = self.drive();
        match outcome {
            Ok(outcome) | Err(End(outcome)) => outcome,
        }
    }

    fn drive(&mut self) -> Result<ExitOutcome, End> {
        self.start()?;
        let mut text = self.context.prompt.clone();
        loop {
            match self.turn(&text)? {
                TurnEnd::Completed(turn_id) => {
                    (self.update)(AgentUpdate::TurnCompleted { turn_id });
                }
                TurnEnd::Failed(message) => return Err(failed("turn_failed", message)),
                TurnEnd::Interrupted => {
                    return Ok(ExitOutcome::Cancelled {
                        reason: "turn_cancelled: the turn was interrupted".into(),
                    });
                }
            }
            match self.next_control()? {
                Control::Turn { turn, issue } => text = continuation(&issue, turn),
                Control::Stop => return Ok(super::stopped_by_orchestrator()),
            }
        }
    }
}

/// How waiting for a message ended without one.
enum Wait {
    Timeout,
    End(End),
}

impl Agent for CodexAgent {
    fn run(
        &self,
        context: SessionContext,
        control: Receiver<Control>,
        update: &mut dyn FnMut(AgentUpdate),
    ) -> ExitOutcome {
        let (tx, rx): (Sender<Incoming>, Receiver<Incoming>) = channel();
        let env = agent_env(std::env::vars_os(), &self.env_names, self.secret_names);
        let identifier = context.issue.identifier.clone();
        let process = match AgentProcess::spawn(
            &self.config.command,
            &context.workspace,
            env,
            tx.clone(),
            &identifier,
        ) {
            Ok(process) => process,
            Err(e) => return failed("codex_not_found", format!("cannot start bash: {e}")).0,
        };
        let forward = thread::Builder::new()
            .name(format!("agent-ctl-{identifier}"))
            .spawn(move || {
                for c in control {
                    if tx.send(Incoming::Control(c)).is_err() {
                        break;
                    }
                }
            });
        if let Err(e) = forward {
            return failed("port_exit", format!("cannot start a control thread: {e}")).0;
        }
        let mut session = Session {
            process,
            rx,
            next_id: 0,
            update,
            context: &context,
            agent: self,
            thread_id: String::new(),
        };
        let outcome = session.run();
        session.process.stop(STOP_GRACE);
        outcome
    }
}
