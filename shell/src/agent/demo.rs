//! The demo agent (`agent.kind: demo`): deterministic scripted work, no model, no network.
//!
//! Turn by turn it writes `PROMPT.md` and appends to `DEMO_LOG.md` in the workspace, reports
//! tokens and messages like a real agent, and on its last scripted turn moves the issue to the
//! first terminal state through the tracker (as a real agent would with a tracker tool). The
//! orchestrator then sees the terminal state, stops the run and cleans the workspace.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use symphony_core::{AgentUpdate, ExitOutcome};

use super::kinds::{Preflight, RunnerKind};
use super::session::{Runner, RunnerSession, SessionIo, TurnEnd, Waker, stopped_by_orchestrator};

/// What each scripted turn does.
const STEPS: [&str; 3] = [
    "read the issue and looked around the workspace",
    "made the change and ran the checks",
    "wrote the summary and moved the issue to done",
];

/// The kinds-table row.
pub(crate) static KIND: RunnerKind = RunnerKind {
    name: "demo",
    build: |config| {
        Arc::new(DemoAgent {
            turn_time: Duration::from_millis(config.agent.demo_turn_ms),
        })
    },
    preflight: |_| Preflight::Ready("built-in demo agent".to_owned()),
};

/// The built-in demo agent.
#[derive(Clone, Debug)]
pub struct DemoAgent {
    /// How long each turn takes.
    pub turn_time: Duration,
}

impl Runner for DemoAgent {
    fn start(
        &self,
        _tools: &[Value],
        io: &mut SessionIo<'_>,
    ) -> Result<Box<dyn RunnerSession>, ExitOutcome> {
        let context = io.context();
        let thread_id = format!("demo-{}", context.run.0);
        let prompt = context.workspace.join("PROMPT.md");
        (context
            .host
            .write_file(&prompt, context.prompt.as_bytes(), false))
        .map_err(|e| ExitOutcome::Failed {
            reason: format!("cannot write PROMPT.md: {e}"),
        })?;
        io.report(AgentUpdate::SessionStarted {
            thread_id,
            pid: None,
        });
        let (wake, woken) = channel();
        Ok(Box::new(DemoSession {
            turn_time: self.turn_time,
            turn: 0,
            tokens: 0,
            wake,
            woken,
        }))
    }
}

/// One scripted session.
struct DemoSession {
    turn_time: Duration,
    turn: u32,
    tokens: u64,
    wake: Sender<()>,
    woken: Receiver<()>,
}

impl RunnerSession for DemoSession {
    fn waker(&self) -> Waker {
        let wake = self.wake.clone();
        Box::new(move || {
            let _ = wake.send(());
        })
    }

    fn turn(&mut self, _text: &str, io: &mut SessionIo<'_>) -> Result<TurnEnd, ExitOutcome> {
        self.turn += 1;
        let turn = self.turn;
        let turn_id = format!("turn-{turn}");
        io.report(AgentUpdate::TurnStarted {
            turn_id: turn_id.clone(),
        });
        // The "work": a pause the orchestrator can interrupt.
        let done_at = Instant::now() + self.turn_time;
        loop {
            let left = done_at.saturating_duration_since(Instant::now());
            match self.woken.recv_timeout(left) {
                Err(RecvTimeoutError::Timeout) => break,
                Ok(()) | Err(RecvTimeoutError::Disconnected) if io.stop_requested() => {
                    return Err(stopped_by_orchestrator());
                }
                Ok(()) | Err(RecvTimeoutError::Disconnected) => {}
            }
        }
        let context = io.context();
        let identifier = context.issue.identifier.clone();
        let step = STEPS[(turn as usize - 1).min(STEPS.len() - 1)];
        let mut line = String::new();
        let _ = writeln!(line, "- {identifier} turn {turn}: {step}");
        let log = context.workspace.join("DEMO_LOG.md");
        let written = context.host.write_file(&log, line.as_bytes(), true);
        if let Err(e) = written {
            return Err(ExitOutcome::Failed {
                reason: format!("cannot write {}: {e}", log.display()),
            });
        }
        self.tokens += 1_200 + u64::from(turn) * 300;
        let tokens = self.tokens;
        io.report(AgentUpdate::TokenUsage {
            input_tokens: tokens,
            output_tokens: tokens / 4,
            total_tokens: tokens + tokens / 4,
        });
        io.report(AgentUpdate::Message {
            event: "demo/step".into(),
            message: Some(step.into()),
        });
        if turn as usize >= STEPS.len() {
            // Through the same host tool a real agent calls.
            let done = json!({"state": io.context().done_state});
            io.call_tool("update_issue_state", &done);
        }
        Ok(TurnEnd::Completed { turn_id })
    }

    fn idle(&mut self, _io: &mut SessionIo<'_>) -> Result<(), ExitOutcome> {
        // Nothing to serve between turns: wait to be woken.
        let _ = self.woken.recv();
        Ok(())
    }

    fn stop(&mut self) {}
}
