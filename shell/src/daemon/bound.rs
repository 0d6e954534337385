//! What a worker run is bound to: the pieces built from one workflow version. A reload builds
//! a new [`Bound`] for future runs; running workers keep theirs (SPEC 6.2, 10.5).

use std::sync::Arc;

use crate::agent::Runner;
use crate::host::{Host, Sandboxed};
use crate::tracker::{self, Tracker};
use crate::workflow::{PromptTemplate, Workflow};
use crate::workspace::{IssueRef, WorkspaceManager};

/// One workflow version's working parts.
pub(crate) struct Bound {
    pub(crate) workspace: WorkspaceManager,
    pub(crate) tracker: Arc<dyn Tracker>,
    pub(crate) agent: Arc<dyn Runner>,
    /// Where the agent runs: the workspace's host, inside the sandbox when one is configured.
    pub(crate) agent_host: Arc<dyn Host>,
    pub(crate) prompt: PromptTemplate,
    pub(crate) done_state: String,
}

impl Bound {
    /// Removes an issue's workspace (after `before_remove`) and logs what happened; a failure
    /// is logged, never fatal.
    pub(crate) fn clean(&self, issue: IssueRef<'_>) {
        match self.workspace.remove(issue) {
            Ok(removal) if removal.existed => {
                crate::audit::record(crate::audit::Entry {
                    kind: "workspace_removed".into(),
                    issue: Some(issue.identifier.to_owned()),
                    data: serde_json::json!({"path": removal.path}),
                    ..crate::audit::Entry::default()
                });
                tracing::info!(
                    issue_id = issue.id,
                    issue_identifier = issue.identifier,
                    "workspace removed: {}",
                    removal.path.display()
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(
                issue_id = issue.id,
                issue_identifier = issue.identifier,
                "workspace cleanup failed: {e}"
            ),
        }
    }

    /// Builds the parts for `workflow`; the prompt template moves out of it.
    pub(crate) fn new(workflow: Workflow) -> Result<Self, String> {
        let config = &workflow.config;
        let tracker: Arc<dyn Tracker> = Arc::from(tracker::build(&config.tracker)?);
        let workspace = if config.workspace.default_root {
            WorkspaceManager::new_private(&config.workspace.root, config.hooks.clone())
        } else {
            WorkspaceManager::new(&config.workspace.root, config.hooks.clone())
        }
        .map_err(|e| e.to_string())?;
        let agent = (config.agent.kind.build)(config);
        let agent_host: Arc<dyn Host> = if config.sandbox.enabled() {
            Arc::new(Sandboxed::new(
                Arc::clone(workspace.host()),
                config.sandbox.clone(),
            ))
        } else {
            Arc::clone(workspace.host())
        };
        let done_state = config
            .tracker
            .terminal_states
            .first()
            .cloned()
            .unwrap_or_else(|| "Done".to_owned());
        Ok(Self {
            workspace,
            tracker,
            agent,
            agent_host,
            prompt: workflow.prompt,
            done_state,
        })
    }
}
