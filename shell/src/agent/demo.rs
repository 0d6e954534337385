//! The demo agent (`agent.kind: demo`): deterministic scripted work, no model, no network.
//!
//! Turn by turn it writes `PROMPT.md` and appends to `DEMO_LOG.md` in the workspace, reports
//! tokens and messages like a real agent, and on its last scripted turn moves the issue to the
//! first terminal state through the tracker (as a real agent would with a tracker tool). The
//! orchestrator then sees the terminal state, stops the run and cleans the workspace.

use std::fmt::Write as _;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use symphony_core::{AgentUpdate, ExitOutcome};

use super::{Agent, Control, SessionContext};

/// What each scripted turn does.
const STEPS: [&str; 3] = [
    "read the issue and looked around the workspace",
    "made the change and ran the checks",
    "wrote the summary and moved the issue to done",
];

/// The built-in demo agent.
#[derive(Clone, Debug)]
pub struct DemoAgent {
    /// How long each turn takes.
    pub turn_time: Duration,
}

impl Agent for DemoAgent {
    fn run(
        &self,
        context: SessionContext,
        control: Receiver<Control>,
        update: &mut dyn FnMut(AgentUpdate),
    ) -> ExitOutcome {
        let identifier = context.issue.identifier.clone();
        update(AgentUpdate::SessionStarted {
            thread_id: format!("demo-{}", context.run.0),
            pid: None,
        });
        if let Err(e) = std::fs::write(context.workspace.join("PROMPT.md"), &context.prompt) {
            return ExitOutcome::Failed {
                reason: format!("cannot write PROMPT.md: {e}"),
            };
        }
        let mut turn: u32 = 1;
        let mut tokens = 0u64;
        loop {
            let turn_id = format!("turn-{turn}");
            update(AgentUpdate::TurnStarted {
                turn_id: turn_id.clone(),
            });
            // The "work": a pause the orchestrator can interrupt.
            match control.recv_timeout(self.turn_time) {
                Ok(Control::Stop) | Err(RecvTimeoutError::Disconnected) => {
                    return super::stopped_by_orchestrator();
                }
                Ok(Control::Turn { .. }) | Err(RecvTimeoutError::Timeout) => {}
            }
            let step = STEPS[(turn as usize - 1).min(STEPS.len() - 1)];
            let mut line = String::new();
            let _ = writeln!(line, "- {identifier} turn {turn}: {step}");
            let log = context.workspace.join("DEMO_LOG.md");
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
            if let Err(e) = written {
                return ExitOutcome::Failed {
                    reason: format!("cannot write {}: {e}", log.display()),
                };
            }
            tokens += 1_200 + u64::from(turn) * 300;
            update(AgentUpdate::TokenUsage {
                input_tokens: tokens,
                output_tokens: tokens / 4,
                total_tokens: tokens + tokens / 4,
            });
            update(AgentUpdate::Message {
                event: "demo/step".into(),
                message: Some(step.into()),
            });
            if turn as usize >= STEPS.len() {
                let moved = context
                    .runtime
                    .block_on(context.tracker.set_state(&identifier, &context.done_state));
                let message = match moved {
                    Ok(()) => format!("moved {identifier} to {}", context.done_state),
                    Err(e) => format!("could not move {identifier}: {}", e.message),
                };
                update(AgentUpdate::Message {
                    event: "demo/tracker".into(),
                    message: Some(message),
                });
            }
            update(AgentUpdate::TurnCompleted { turn_id });
            match control.recv() {
                Ok(Control::Turn { turn: next, .. }) => turn = next,
                Ok(Control::Stop) | Err(_) => return super::stopped_by_orchestrator(),
            }
        }
    }
}
