//! The runner-independent half of an agent session: the turn loop, the continuation prompt,
//! the orchestrator's controls and the host-side tools. A runner (Codex, the demo agent, the
//! next ones) implements only [`Runner`] and [`RunnerSession`]: start, run one turn, wait
//! between turns, stop.
//!
//! Controls from the core arrive on a channel the driver owns. A thread forwards them into a
//! shared slot and calls the session's [`Waker`], so a runner blocked on its own input (a
//! process's output, a timer) sees them without knowing where they come from: a stop ends a
//! turn early; a next turn ends the wait between turns.

use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Value, json};
use symphony_core::{AgentUpdate, ExitOutcome, Issue};

use super::{Control, SessionContext};

/// Wakes a session blocked in [`RunnerSession::turn`] or [`RunnerSession::idle`]; callable
/// from any thread, any number of times.
pub type Waker = Box<dyn Fn() + Send>;

/// How a turn ended, when the session can go on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TurnEnd {
    /// The agent finished the turn.
    Completed {
        /// The runner's id for it.
        turn_id: String,
    },
    /// The agent reported the turn failed (the session fails with this reason).
    Failed(String),
    /// The turn was interrupted from the agent's side.
    Interrupted,
}

/// A coding agent: starts sessions. One value per workflow version; sessions run in worker
/// threads.
pub trait Runner: Send + Sync {
    /// Starts the agent for `io`'s issue and workspace and opens a session, advertising
    /// `tools` (dynamic tool specs). Reports `SessionStarted` through `io`.
    fn start(
        &self,
        tools: &[Value],
        io: &mut SessionIo<'_>,
    ) -> Result<Box<dyn RunnerSession>, ExitOutcome>;
}

/// One live session of a runner.
pub trait RunnerSession {
    /// A waker for this session (taken once, before the first turn).
    fn waker(&self) -> Waker;

    /// Runs one turn with `text` as its input, to its end. Reports `TurnStarted` and what
    /// happens; tool calls go to [`SessionIo::call_tool`]. When woken, checks
    /// [`SessionIo::stop_requested`] and, if so, interrupts the turn and returns
    /// `Err(`[`stopped_by_orchestrator`]`)`. Any other `Err` ends the session with that
    /// outcome (process gone, timeout, input required).
    fn turn(&mut self, text: &str, io: &mut SessionIo<'_>) -> Result<TurnEnd, ExitOutcome>;

    /// Between turns: keeps serving the agent until woken, then returns `Ok`.
    fn idle(&mut self, io: &mut SessionIo<'_>) -> Result<(), ExitOutcome>;

    /// Ends the session and stops what it started. Called once, last.
    fn stop(&mut self);
}

/// How a session ends when the orchestrator stops it.
pub fn stopped_by_orchestrator() -> ExitOutcome {
    ExitOutcome::Cancelled {
        reason: "stopped by orchestrator".into(),
    }
}

/// The text of a continuation turn: guidance, not the whole prompt again (SPEC 7.1).
pub fn continuation(issue: &Issue, turn: u32) -> String {
    format!(
        "Continue working on {} ({}). The issue is still in state {:?}. This is turn {turn} on \
         the same thread: pick up where you left off; the original instructions still apply. \
         When the work is done, move the issue out of its active state.",
        issue.identifier, issue.title, issue.state
    )
}

/// Controls that arrived and have not been taken yet.
#[derive(Default)]
struct Inbox {
    next: Option<Control>,
    /// Sticky: a stop, or the control channel closed.
    stop: bool,
}

/// What a runner session sees of the world: its context, the orchestrator's controls, the
/// update channel and the host-side tools.
pub struct SessionIo<'a> {
    context: &'a SessionContext,
    update: &'a mut dyn FnMut(AgentUpdate),
    inbox: Arc<Mutex<Inbox>>,
}

/// The result of a host-side tool call, as the agent gets it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolResult {
    /// Whether the tool did what was asked.
    pub success: bool,
    /// What to tell the agent.
    pub text: String,
}

impl SessionIo<'_> {
    /// The issue, run, workspace and prompt the session is bound to.
    pub fn context(&self) -> &SessionContext {
        self.context
    }

    /// Reports progress to the orchestrator.
    pub fn report(&mut self, update: AgentUpdate) {
        (self.update)(update);
    }

    /// Whether the orchestrator asked the session to stop.
    pub fn stop_requested(&self) -> bool {
        self.inbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stop
    }

    fn take_control(&self) -> Option<Control> {
        let mut inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        if inbox.stop {
            return Some(Control::Stop);
        }
        inbox.next.take()
    }

    /// Runs a tool host-side, with the adapter's credentials, on this session's issue only
    /// (SPEC 10.5, 15.3): the generic `update_issue_state` and `comment_on_issue`, then the
    /// tracker's own tools. Unknown tools fail; the turn goes on. Reports the call.
    pub fn call_tool(&mut self, tool: &str, arguments: &Value) -> ToolResult {
        let context = self.context;
        let identifier = context.issue.identifier.as_str();
        let runtime = &context.runtime;
        let outcome = match tool {
            "update_issue_state" => match arguments["state"].as_str() {
                Some(state) => runtime
                    .block_on(context.tracker.set_state(identifier, state))
                    .map(|()| format!("{identifier} moved to {state}"))
                    .map_err(|e| e.message),
                None => Err("missing `state`".to_owned()),
            },
            "comment_on_issue" => match arguments["body"].as_str() {
                Some(body) => runtime
                    .block_on(context.tracker.add_comment(identifier, body))
                    .map(|()| format!("comment added to {identifier}"))
                    .map_err(|e| e.message),
                None => Err("missing `body`".to_owned()),
            },
            other => match context.tracker.call_tool(other, arguments) {
                Some(call) => runtime.block_on(call),
                None => Err(format!("unknown tool {other:?}")),
            },
        };
        self.report(AgentUpdate::Message {
            event: "tool_call".into(),
            message: Some(match &outcome {
                Ok(text) => format!("{tool}: {text}"),
                Err(e) => format!("{tool} failed: {e}"),
            }),
        });
        match outcome {
            Ok(text) => ToolResult {
                success: true,
                text,
            },
            Err(text) => ToolResult {
                success: false,
                text,
            },
        }
    }
}

/// The host-side tools every session advertises, then the tracker's (SPEC 10.5).
pub fn tool_specs(context: &SessionContext) -> Vec<Value> {
    let mut tools = vec![
        json!({
            "type": "function",
            "name": "update_issue_state",
            "description": "Move the issue you are working on to another tracker state (for example the done state when the work is finished).",
            "inputSchema": {
                "type": "object",
                "properties": {"state": {"type": "string", "description": "Target state name"}},
                "required": ["state"],
                "additionalProperties": false
            }
        }),
        json!({
            "type": "function",
            "name": "comment_on_issue",
            "description": "Add a comment to the issue you are working on.",
            "inputSchema": {
                "type": "object",
                "properties": {"body": {"type": "string", "description": "Comment text (Markdown)"}},
                "required": ["body"],
                "additionalProperties": false
            }
        }),
    ];
    tools.extend(context.tracker.tool_specs());
    tools
}

/// Runs a session of `runner` to its end: the first turn with the rendered prompt, then one
/// continuation turn per [`Control::Turn`], until [`Control::Stop`] or an outcome from the
/// runner. `update` reports progress.
pub fn run(
    runner: &dyn Runner,
    context: &SessionContext,
    control: Receiver<Control>,
    update: &mut dyn FnMut(AgentUpdate),
) -> ExitOutcome {
    let inbox = Arc::new(Mutex::new(Inbox::default()));
    let mut io = SessionIo {
        context,
        update,
        inbox: Arc::clone(&inbox),
    };
    let tools = tool_specs(context);
    let mut session = match runner.start(&tools, &mut io) {
        Ok(session) => session,
        Err(outcome) => return outcome,
    };
    let wake = session.waker();
    let forward = std::thread::Builder::new()
        .name(format!("agent-ctl-{}", context.issue.identifier))
        .spawn(move || {
            for control in control {
                {
                    let mut slot = inbox.lock().unwrap_or_else(PoisonError::into_inner);
                    match control {
                        Control::Stop => slot.stop = true,
                        turn @ Control::Turn { .. } => slot.next = Some(turn),
                    }
                }
                wake();
            }
            // The orchestrator is gone: nothing will ask for another turn.
            inbox.lock().unwrap_or_else(PoisonError::into_inner).stop = true;
            wake();
        });
    let outcome = match forward {
        Ok(_) => turns(session.as_mut(), &mut io),
        Err(e) => ExitOutcome::Failed {
            reason: format!("port_exit: cannot start a control thread: {e}"),
        },
    };
    session.stop();
    outcome
}

/// The turn loop.
fn turns(session: &mut dyn RunnerSession, io: &mut SessionIo<'_>) -> ExitOutcome {
    let mut text = io.context.prompt.clone();
    loop {
        match session.turn(&text, io) {
            Ok(TurnEnd::Completed { turn_id }) => io.report(AgentUpdate::TurnCompleted { turn_id }),
            Ok(TurnEnd::Failed(message)) => {
                return ExitOutcome::Failed {
                    reason: format!("turn_failed: {message}"),
                };
            }
            Ok(TurnEnd::Interrupted) => {
                return ExitOutcome::Cancelled {
                    reason: "turn_cancelled: the turn was interrupted".into(),
                };
            }
            Err(outcome) => return outcome,
        }
        let control = loop {
            if let Some(control) = io.take_control() {
                break control;
            }
            if let Err(outcome) = session.idle(io) {
                return outcome;
            }
        };
        match control {
            Control::Turn { turn, issue } => text = continuation(&issue, turn),
            Control::Stop => return stopped_by_orchestrator(),
        }
    }
}
