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
            other => match context
                .tracker
                .call_session_tool(other, arguments, identifier)
            {
                Some(call) => runtime.block_on(call),
                None => Err(format!("unknown tool {other:?}")),
            },
        };
        let writes = matches!(tool, "update_issue_state" | "comment_on_issue");
        let (ok, said) = match &outcome {
            Ok(text) | Err(text) => (outcome.is_ok(), text.chars().take(200).collect::<String>()),
        };
        crate::audit::record(crate::audit::Entry {
            kind: if writes { "tracker_write" } else { "tool_call" }.to_owned(),
            issue: Some(identifier.to_owned()),
            run: Some(context.run.0),
            session: None,
            data: serde_json::json!({"tool": tool, "arguments": arguments, "ok": ok,
                "result": crate::redact::mask(&said)}),
        });
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

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{Sender, channel};

    use symphony_core::RunId;

    use super::*;
    use crate::tracker::LocalTracker;

    /// What the scripted runner saw.
    #[derive(Default)]
    struct Seen {
        texts: Vec<String>,
        stopped: bool,
    }

    /// A runner that announces each turn on `started`; its turns complete at once, or, with
    /// `block`, wait until woken by a stop.
    struct Scripted {
        seen: Arc<Mutex<Seen>>,
        started: Sender<()>,
        block: bool,
    }

    struct ScriptedSession {
        seen: Arc<Mutex<Seen>>,
        started: Sender<()>,
        block: bool,
        wake: Sender<()>,
        woken: Receiver<()>,
    }

    impl Runner for Scripted {
        fn start(
            &self,
            tools: &[Value],
            io: &mut SessionIo<'_>,
        ) -> Result<Box<dyn RunnerSession>, ExitOutcome> {
            assert_eq!(tools[0]["name"], "update_issue_state");
            io.report(AgentUpdate::SessionStarted {
                thread_id: "t".into(),
                pid: None,
            });
            let (wake, woken) = channel();
            Ok(Box::new(ScriptedSession {
                seen: Arc::clone(&self.seen),
                started: self.started.clone(),
                block: self.block,
                wake,
                woken,
            }))
        }
    }

    impl RunnerSession for ScriptedSession {
        fn waker(&self) -> Waker {
            let wake = self.wake.clone();
            Box::new(move || {
                let _ = wake.send(());
            })
        }

        fn turn(&mut self, text: &str, io: &mut SessionIo<'_>) -> Result<TurnEnd, ExitOutcome> {
            self.seen.lock().unwrap().texts.push(text.to_owned());
            let _ = self.started.send(());
            if self.block {
                while self.woken.recv().is_ok() {
                    if io.stop_requested() {
                        return Err(stopped_by_orchestrator());
                    }
                }
            }
            Ok(TurnEnd::Completed {
                turn_id: format!("turn-{}", self.seen.lock().unwrap().texts.len()),
            })
        }

        fn idle(&mut self, _io: &mut SessionIo<'_>) -> Result<(), ExitOutcome> {
            let _ = self.woken.recv();
            Ok(())
        }

        fn stop(&mut self) {
            self.seen.lock().unwrap().stopped = true;
        }
    }

    fn context(runtime: &tokio::runtime::Runtime, dir: &std::path::Path) -> SessionContext {
        SessionContext {
            issue: crate::workflow::sample_issue(),
            run: RunId(1),
            attempt: None,
            workspace: dir.to_owned(),
            prompt: "the prompt".into(),
            tracker: Arc::new(LocalTracker::new(dir.to_owned(), vec!["Done".into()])),
            done_state: "Done".into(),
            runtime: runtime.handle().clone(),
            host: Arc::new(crate::host::LocalHost),
        }
    }

    fn turns_completed(updates: &[AgentUpdate]) -> usize {
        let completed = |u: &&AgentUpdate| matches!(u, AgentUpdate::TurnCompleted { .. });
        updates.iter().filter(completed).count()
    }

    #[test]
    fn turns_follow_the_controls_with_the_continuation_prompt_and_end_on_stop() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let context = context(&runtime, dir.path());
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (started, turn_started) = channel();
        let runner = Scripted {
            seen: Arc::clone(&seen),
            started,
            block: false,
        };
        let (control, controls) = channel();
        let mut issue = context.issue.clone();
        issue.state = "In Progress".into();
        let next = issue.clone();
        // The core's part: a second turn after the first, a stop after the second.
        let core = std::thread::spawn(move || {
            turn_started.recv().unwrap();
            let turn = Control::Turn {
                turn: 2,
                issue: Box::new(next),
            };
            control.send(turn).unwrap();
            turn_started.recv().unwrap();
            control.send(Control::Stop).unwrap();
        });
        let mut updates = Vec::new();
        let outcome = run(&runner, &context, controls, &mut |u| updates.push(u));
        core.join().unwrap();
        assert_eq!(outcome, stopped_by_orchestrator());
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen.texts,
            ["the prompt".to_owned(), continuation(&issue, 2)]
        );
        assert!(seen.stopped, "the session is stopped at the end");
        assert_eq!(turns_completed(&updates), 2);
    }

    #[test]
    fn a_stop_reaches_a_turn_in_progress_and_a_closed_channel_counts_as_one() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let context = context(&runtime, dir.path());
        for close in [false, true] {
            let seen = Arc::new(Mutex::new(Seen::default()));
            let (started, turn_started) = channel();
            let runner = Scripted {
                seen: Arc::clone(&seen),
                started,
                block: true,
            };
            let (control, controls) = channel();
            let stopper = std::thread::spawn(move || {
                turn_started.recv().unwrap();
                if close {
                    drop(control);
                } else {
                    control.send(Control::Stop).unwrap();
                }
            });
            let mut updates = Vec::new();
            let outcome = run(&runner, &context, controls, &mut |u| updates.push(u));
            stopper.join().unwrap();
            assert_eq!(outcome, stopped_by_orchestrator(), "close={close}");
            assert_eq!(turns_completed(&updates), 0);
            assert!(seen.lock().unwrap().stopped);
        }
    }

    #[test]
    fn host_tools_act_on_the_sessions_issue_and_unknown_tools_fail() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let context = context(&runtime, dir.path());
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let mut updates = Vec::new();
        let mut update = |u| updates.push(u);
        let mut io = SessionIo {
            context: &context,
            update: &mut update,
            inbox,
        };
        let result = io.call_tool("no_such_tool", &json!({}));
        assert!(!result.success);
        assert!(result.text.contains("unknown tool"), "{}", result.text);
        let result = io.call_tool("update_issue_state", &json!({}));
        assert_eq!(result.text, "missing `state`");
        drop(io);
        assert_eq!(updates.len(), 2, "every call is reported");
    }
}
