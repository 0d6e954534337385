//! Coding agents. A session runs in a worker thread: the first turn with the rendered prompt,
//! then one turn per [`Control::Turn`] the core asks for, until [`Control::Stop`].

pub mod codex;
mod demo;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use symphony_core::{AgentUpdate, ExitOutcome, Issue, RunId};

pub use demo::DemoAgent;

use crate::tracker::Tracker;

/// What the orchestrator tells a live session.
#[derive(Clone, Debug)]
pub enum Control {
    /// Run turn `turn` (1-based) on the same thread; `issue` is the refreshed snapshot.
    Turn {
        /// Turn number.
        turn: u32,
        /// The issue as refreshed.
        issue: Box<Issue>,
    },
    /// End the session now.
    Stop,
}

/// Everything a session is bound to: one issue, one run, one workflow snapshot.
pub struct SessionContext {
    /// The issue as dispatched.
    pub issue: Issue,
    /// The run.
    pub run: RunId,
    /// `None` on the first run.
    pub attempt: Option<u32>,
    /// The workspace: the agent's cwd.
    pub workspace: PathBuf,
    /// The rendered prompt for the first turn.
    pub prompt: String,
    /// The tracker of this workflow snapshot, for host-side tools.
    pub tracker: Arc<dyn Tracker>,
    /// The state an agent moves an issue to when it is done (the first terminal state).
    pub done_state: String,
    /// For host-side tool calls from the worker thread.
    pub runtime: tokio::runtime::Handle,
}

/// How a session ends when the orchestrator stops it.
pub(crate) fn stopped_by_orchestrator() -> ExitOutcome {
    ExitOutcome::Cancelled {
        reason: "stopped by orchestrator".into(),
    }
}

/// A coding agent.
pub trait Agent: Send + Sync {
    /// Runs a session to its end and says how it ended. `update` reports progress.
    fn run(
        &self,
        context: SessionContext,
        control: Receiver<Control>,
        update: &mut dyn FnMut(AgentUpdate),
    ) -> ExitOutcome;
}
