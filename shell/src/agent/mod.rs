//! Coding agents. A session runs in a worker thread: the first turn with the rendered prompt,
//! then one turn per [`Control::Turn`] the core asks for, until [`Control::Stop`]. The turn
//! loop, the continuation prompt and the host-side tools are runner-independent
//! ([`session`]); a runner (`codex`, `claude`, the demo agent) implements [`Runner`] only.

pub mod claude;
pub mod codex;
mod demo;
pub mod kinds;
pub mod process;
pub mod session;

use std::path::PathBuf;
use std::sync::Arc;

use symphony_core::{Issue, RunId};

pub use demo::DemoAgent;
pub use session::{Runner, RunnerSession, SessionIo, ToolResult, TurnEnd, Waker, run};

use crate::host::Host;
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
    /// Where the agent process runs and the workspace lives.
    pub host: Arc<dyn Host>,
}
