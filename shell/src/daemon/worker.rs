//! One worker run (SPEC 16.5) on its own thread: workspace, hooks, prompt, agent session,
//! cleanup; every step reported to the orchestrator as an event.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::thread;

use symphony_core::{Event, ExitOutcome, Issue, RunId};
use tokio::sync::mpsc::UnboundedSender;

use super::Input;
use super::bound::Bound;
use crate::agent::{Control, SessionContext};
use crate::workspace::IssueRef;

/// The orchestrator's hold on a running worker.
#[derive(Debug)]
pub(crate) struct WorkerHandle {
    control: Sender<Control>,
    cleanup: Arc<AtomicBool>,
    /// The issue's human-readable key, for log lines.
    pub(crate) identifier: String,
    /// The agent's thread, once the session started: the first half of `session_id`.
    pub(crate) thread: Option<String>,
    /// The run's tokens as last written to the audit log.
    pub(crate) tokens_audited: symphony_core::Tokens,
    /// When the run was dispatched, for its duration.
    pub(crate) started: std::time::Instant,
}

impl WorkerHandle {
    /// Asks for another turn.
    pub(crate) fn turn(&self, turn: u32, issue: Issue) {
        let _ = self.control.send(Control::Turn {
            turn,
            issue: Box::new(issue),
        });
    }

    /// Asks the worker to end; with `cleanup`, its workspace is removed after `after_run`.
    pub(crate) fn stop(&self, cleanup: bool) {
        if cleanup {
            self.cleanup.store(true, Ordering::Release);
        }
        let _ = self.control.send(Control::Stop);
    }
}

/// Starts the worker thread for `issue`, bound to the workflow snapshot `bound`.
pub(crate) fn spawn(
    bound: Arc<Bound>,
    issue: Issue,
    run: RunId,
    attempt: Option<u32>,
    events: UnboundedSender<Input>,
    runtime: tokio::runtime::Handle,
) -> std::io::Result<WorkerHandle> {
    let (control, control_rx) = mpsc::channel();
    let cleanup = Arc::new(AtomicBool::new(false));
    let cleanup_flag = Arc::clone(&cleanup);
    let identifier = issue.identifier.clone();
    thread::Builder::new()
        .name(format!("worker-{}", issue.identifier))
        .spawn(move || {
            let issue_id = issue.id.clone();
            let send = |event: Event| {
                let _ = events.send(Input::Event(event));
            };
            let outcome = run_worker(
                &bound,
                issue.clone(),
                run,
                attempt,
                control_rx,
                &send,
                runtime,
            );
            let issue_ref = IssueRef {
                id: issue.id.as_str(),
                identifier: &issue.identifier,
            };
            if cleanup_flag.load(Ordering::Acquire) {
                bound.clean(issue_ref);
            }
            send(Event::WorkerExited {
                issue_id,
                run,
                outcome,
            });
        })?;
    Ok(WorkerHandle {
        control,
        cleanup,
        identifier,
        thread: None,
        tokens_audited: symphony_core::Tokens::default(),
        started: std::time::Instant::now(),
    })
}

fn run_worker(
    bound: &Bound,
    issue: Issue,
    run: RunId,
    attempt: Option<u32>,
    control: mpsc::Receiver<Control>,
    send: &dyn Fn(Event),
    runtime: tokio::runtime::Handle,
) -> ExitOutcome {
    let issue_ref = IssueRef {
        id: issue.id.as_str(),
        identifier: &issue.identifier,
    };
    let prepared = match bound.workspace.prepare(issue_ref, attempt) {
        Ok(prepared) => prepared,
        Err(e) => {
            return ExitOutcome::Failed {
                reason: format!("workspace: {e}"),
            };
        }
    };
    send(Event::WorkerStarted {
        issue_id: issue.id.clone(),
        run,
        workspace_path: Some(prepared.path.display().to_string()),
    });
    let audit = |kind: &str, data: serde_json::Value| {
        crate::audit::record(crate::audit::Entry {
            kind: kind.to_owned(),
            issue: Some(issue.identifier.clone()),
            run: Some(run.0),
            session: None,
            data,
        });
    };
    audit(
        "workspace_ready",
        serde_json::json!({"path": prepared.path, "created": prepared.created_now}),
    );
    let outcome = match bound.prompt.render(&issue, attempt) {
        Err(e) => ExitOutcome::Failed {
            reason: format!("{}: {}", e.class, e.message),
        },
        Ok(prompt) => match bound.workspace.verify(&prepared.path) {
            Err(e) => ExitOutcome::Failed {
                reason: format!("workspace: {e}"),
            },
            Ok(()) => {
                // Its hash and the start of it: never the whole prompt.
                let preview: String = prompt.chars().take(200).collect();
                audit(
                    "prompt_sent",
                    serde_json::json!({"sha256": crate::audit::sha256(&prompt),
                        "bytes": prompt.len(), "preview": crate::redact::mask(&preview)}),
                );
                let context = SessionContext {
                    issue: issue.clone(),
                    run,
                    attempt,
                    workspace: prepared.path.clone(),
                    prompt,
                    tracker: Arc::clone(&bound.tracker),
                    done_state: bound.done_state.clone(),
                    runtime,
                    host: Arc::clone(&bound.agent_host),
                };
                let issue_id = issue.id.clone();
                let mut update = |update| {
                    send(Event::AgentUpdate {
                        issue_id: issue_id.clone(),
                        run,
                        update,
                    });
                };
                crate::agent::run(bound.agent.as_ref(), &context, control, &mut update)
            }
        },
    };
    bound.workspace.after_run(issue_ref, attempt);
    outcome
}
