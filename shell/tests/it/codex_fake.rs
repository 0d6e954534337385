//! The Codex runner against a scripted app-server (`shell/src/bin/fake_app_server.rs`, driven
//! by `fixtures/app-server/*.json`): every protocol path SPEC 10 and 17.5 name, including the
//! ones the real CLI will not produce on demand.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::Duration;

use crate::support;
use serde_json::{Value, json};

use support::process_is_gone;
use symphony::agent::codex::{ApprovalDecision, CodexAgent};
use symphony::agent::{Control, SessionContext};
use symphony::tracker::{LocalTracker, Tracker};
use symphony::workflow::CodexConfig;
use symphony_core::{AgentUpdate, ExitOutcome, Issue, IssueId, RunId};

const BOUND: Duration = Duration::from_secs(60);

fn fake_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_symphony-fake-app-server"))
}

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../fixtures/app-server/{name}.json"))
}

struct Run {
    outcome: ExitOutcome,
    updates: Vec<AgentUpdate>,
    /// Every line the runner sent, as the fake logged it.
    sent: Vec<Value>,
    workspace: PathBuf,
    issues: PathBuf,
    _dir: tempfile::TempDir,
}

/// Runs one session on `name`. `drive` sees each update and may answer with a control.
fn run(
    name: &str,
    tweak: impl FnOnce(&mut CodexAgent),
    mut drive: impl FnMut(&AgentUpdate) -> Option<Control>,
) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let (workspace, issues) = (dir.path().join("ws"), dir.path().join("issues"));
    std::fs::create_dir_all(&workspace).unwrap();
    std::fs::create_dir_all(&issues).unwrap();
    std::fs::write(
        issues.join("FK-1.md"),
        "---\ntitle: Fake\nstate: Todo\n---\nBody.\n",
    )
    .unwrap();
    let log = dir.path().join("sent.log");
    let config = CodexConfig {
        command: format!(
            "{} {} {}",
            fake_binary().display(),
            scenario(name).display(),
            log.display()
        ),
        approval_policy: json!("never"),
        thread_sandbox: json!("workspace-write"),
        turn_sandbox_policy: Some(json!({"type": "workspaceWrite"})),
        turn_timeout_ms: 30_000,
        read_timeout_ms: 5_000,
        env: Vec::new(),
        approval_decision: ApprovalDecision::AcceptForSession,
    };
    let mut agent = CodexAgent {
        config,
        env_names: Vec::new(),
        secret_names: &[],
    };
    tweak(&mut agent);
    let tracker: Arc<dyn Tracker> =
        Arc::new(LocalTracker::new(issues.clone(), vec!["Done".into()]));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let context = SessionContext {
        issue: Issue {
            id: IssueId("FK-1".into()),
            identifier: "FK-1".into(),
            title: "Fake".into(),
            state: "Todo".into(),
            dispatchable: true,
            ..Issue::default()
        },
        run: RunId(7),
        attempt: None,
        workspace: workspace.clone(),
        prompt: "Do the thing.".into(),
        tracker,
        done_state: "Done".into(),
        runtime: runtime.handle().clone(),
        host: Arc::new(symphony::host::LocalHost),
    };
    let (control, control_rx) = channel();
    let (updates_tx, updates_rx) = channel();
    let session = std::thread::spawn(move || {
        let mut update = |u: AgentUpdate| {
            let _ = updates_tx.send(u);
        };
        symphony::agent::run(&agent, &context, control_rx, &mut update)
    });
    let mut updates = Vec::new();
    loop {
        match updates_rx.recv_timeout(BOUND) {
            Ok(update) => {
                if let Some(c) = drive(&update) {
                    let _ = control.send(c);
                }
                updates.push(update);
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => panic!("session stuck; updates: {updates:#?}"),
        }
    }
    let outcome = session.join().unwrap();
    let sent = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    Run {
        outcome,
        updates,
        sent,
        workspace,
        issues,
        _dir: dir,
    }
}

/// Stops the session after its first completed turn.
fn stop_after_turn(update: &AgentUpdate) -> Option<Control> {
    matches!(update, AgentUpdate::TurnCompleted { .. }).then_some(Control::Stop)
}

fn never(_: &AgentUpdate) -> Option<Control> {
    None
}

fn reason(outcome: &ExitOutcome) -> String {
    outcome.describe()
}

fn sent_methods(run: &Run) -> Vec<String> {
    run.sent
        .iter()
        .filter_map(|m| m["method"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn one_turn_handshake_updates_and_stop() {
    let run = run("one_turn", |_| {}, stop_after_turn);
    assert!(
        matches!(run.outcome, ExitOutcome::Cancelled { .. }),
        "{:?}",
        run.outcome
    );
    assert_eq!(
        sent_methods(&run),
        ["initialize", "initialized", "thread/start", "turn/start"]
    );
    let init = &run.sent[0];
    assert_eq!(init["params"]["capabilities"]["experimentalApi"], true);
    assert!(init.get("jsonrpc").is_none());
    let thread = &run.sent[2]["params"];
    assert_eq!(thread["approvalPolicy"], "never");
    assert_eq!(thread["sandbox"], "workspace-write");
    let tools: Vec<&str> = thread["dynamicTools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["update_issue_state", "comment_on_issue"]);
    let turn = &run.sent[3]["params"];
    assert_eq!(turn["threadId"], "thr_1");
    assert_eq!(turn["input"][0]["text"], "Do the thing.");
    assert_eq!(turn["sandboxPolicy"]["type"], "workspaceWrite");
    assert!(turn.get("title").is_none(), "not in the pinned schema");

    let kinds: Vec<String> = run.updates.iter().map(|u| format!("{u}")).collect();
    assert!(
        matches!(run.updates[0], AgentUpdate::SessionStarted { ref thread_id, pid: Some(_) } if thread_id == "thr_1"),
        "{kinds:?}"
    );
    assert!(run.updates.contains(&AgentUpdate::TurnStarted {
        turn_id: "turn_1".into()
    }));
    assert!(run.updates.contains(&AgentUpdate::TokenUsage {
        input_tokens: 120,
        output_tokens: 30,
        total_tokens: 150
    }));
    assert!(run.updates.contains(&AgentUpdate::Message {
        event: "agentMessage".into(),
        message: Some("Looked at the code.".into())
    }));
    assert_eq!(
        run.updates.last(),
        Some(&AgentUpdate::TurnCompleted {
            turn_id: "turn_1".into()
        })
    );
}

#[test]
fn continuation_turns_run_on_the_same_thread() {
    let mut completed = 0;
    let run = run(
        "three_turns",
        |_| {},
        |update| {
            if !matches!(update, AgentUpdate::TurnCompleted { .. }) {
                return None;
            }
            completed += 1;
            Some(if completed < 3 {
                Control::Turn {
                    turn: completed + 1,
                    issue: Box::new(Issue {
                        identifier: "FK-1".into(),
                        title: "Fake".into(),
                        state: "In Progress".into(),
                        ..Issue::default()
                    }),
                }
            } else {
                Control::Stop
            })
        },
    );
    assert!(
        matches!(run.outcome, ExitOutcome::Cancelled { .. }),
        "{:?}",
        run.outcome
    );
    let turns: Vec<&Value> = run
        .sent
        .iter()
        .filter(|m| m["method"] == "turn/start")
        .collect();
    assert_eq!(turns.len(), 3);
    assert!(turns.iter().all(|t| t["params"]["threadId"] == "thr_1"));
    let second = turns[1]["params"]["input"][0]["text"].as_str().unwrap();
    assert!(second.starts_with("Continue working on FK-1"), "{second}");
    assert!(
        !second.contains("Do the thing."),
        "continuations carry guidance, not the prompt"
    );
    assert_eq!(
        sent_methods(&run)
            .iter()
            .filter(|m| *m == "thread/start")
            .count(),
        1
    );
    let completed: Vec<&AgentUpdate> = run
        .updates
        .iter()
        .filter(|u| matches!(u, AgentUpdate::TurnCompleted { .. }))
        .collect();
    assert_eq!(completed.len(), 3);
}

#[test]
fn a_failed_turn_fails_the_attempt_with_its_message() {
    let run = run("turn_failed", |_| {}, never);
    assert_eq!(
        reason(&run.outcome),
        "worker failed: turn_failed: model exploded"
    );
}

#[test]
fn an_app_server_exiting_mid_turn_is_port_exit() {
    let run = run("exit_mid_turn", |_| {}, never);
    assert!(
        reason(&run.outcome).contains("port_exit"),
        "{:?}",
        run.outcome
    );
}

#[test]
fn garbage_lines_are_skipped() {
    let run = run("garbage_line", |_| {}, stop_after_turn);
    assert!(
        matches!(run.outcome, ExitOutcome::Cancelled { .. }),
        "{:?}",
        run.outcome
    );
    assert!(
        run.updates
            .iter()
            .any(|u| matches!(u, AgentUpdate::TurnCompleted { .. }))
    );
}

#[test]
fn a_line_over_the_limit_ends_the_attempt() {
    let run = run("long_line", |_| {}, never);
    assert!(
        reason(&run.outcome).contains("protocol_error"),
        "{:?}",
        run.outcome
    );
}

#[test]
fn approvals_are_answered_by_policy_and_unknown_requests_refused() {
    let run = run("approvals", |_| {}, stop_after_turn);
    assert!(
        matches!(run.outcome, ExitOutcome::Cancelled { .. }),
        "{:?}",
        run.outcome
    );
    let answers: Vec<&Value> = run
        .sent
        .iter()
        .filter(|m| m.get("method").is_none())
        .collect();
    assert_eq!(answers[0]["result"]["decision"], "acceptForSession");
    assert_eq!(answers[1]["result"]["decision"], "acceptForSession");
    assert_eq!(answers[2]["result"]["decision"], "approved_for_session");
    assert_eq!(answers[3]["result"]["decision"], "approved_for_session");
    assert_eq!(answers[4]["error"]["code"], -32601);
}

#[test]
fn a_declining_policy_declines_every_approval() {
    let run = run(
        "approvals",
        |a| a.config.approval_decision = ApprovalDecision::Decline,
        stop_after_turn,
    );
    let answers: Vec<&Value> = run
        .sent
        .iter()
        .filter(|m| m.get("method").is_none())
        .collect();
    assert_eq!(answers[0]["result"]["decision"], "decline");
    assert_eq!(answers[1]["result"]["decision"], "decline");
    assert_eq!(answers[2]["result"]["decision"], "denied");
    assert_eq!(answers[3]["result"]["decision"], "denied");
}

#[test]
fn tool_calls_run_host_side_and_unknown_tools_fail_without_ending_the_turn() {
    let run = run("tools", |_| {}, stop_after_turn);
    assert!(
        matches!(run.outcome, ExitOutcome::Cancelled { .. }),
        "{:?}",
        run.outcome
    );
    let answers: Vec<&Value> = run
        .sent
        .iter()
        .filter(|m| m.get("method").is_none())
        .collect();
    assert_eq!(answers[0]["result"]["success"], true);
    assert_eq!(answers[0]["result"]["contentItems"][0]["type"], "inputText");
    assert_eq!(answers[1]["result"]["success"], false);
    let issue = std::fs::read_to_string(run.issues.join("FK-1.md")).unwrap();
    assert!(issue.contains("Progress from the agent."), "{issue}");
    assert!(
        run.updates
            .iter()
            .any(|u| matches!(u, AgentUpdate::TurnCompleted { .. }))
    );
}

#[test]
fn a_user_input_request_ends_the_run_as_input_required() {
    let run = run("user_input", |_| {}, never);
    assert_eq!(
        reason(&run.outcome),
        "input required: turn_input_required: item/tool/requestUserInput Which branch should I use?"
    );
    assert!(sent_methods(&run).contains(&"turn/interrupt".to_owned()));
}

#[test]
fn silence_past_the_turn_timeout_times_out() {
    let run = run("silence", |a| a.config.turn_timeout_ms = 300, never);
    assert_eq!(
        reason(&run.outcome),
        "worker timed out: turn_timeout: no output for 300 ms"
    );
    assert!(sent_methods(&run).contains(&"turn/interrupt".to_owned()));
}

#[test]
fn an_unanswered_request_times_out() {
    let run = run("no_turn_answer", |a| a.config.read_timeout_ms = 300, never);
    assert!(
        reason(&run.outcome).contains("response_timeout: turn/start got no answer within 300 ms"),
        "{:?}",
        run.outcome
    );
}

#[test]
fn a_stderr_flood_does_not_block_the_protocol() {
    let run = run("stderr_flood", |_| {}, stop_after_turn);
    assert!(
        matches!(run.outcome, ExitOutcome::Cancelled { .. }),
        "{:?}",
        run.outcome
    );
}

#[test]
fn a_missing_command_is_codex_not_found() {
    let run = run(
        "one_turn",
        |a| a.config.command = "definitely-not-codex-7f3a app-server".into(),
        never,
    );
    assert!(
        reason(&run.outcome).starts_with("worker failed: codex_not_found"),
        "{:?}",
        run.outcome
    );
}

#[test]
fn stopping_kills_what_the_agent_spawned() {
    let run = run(
        "grandchild",
        |_| {},
        |update| matches!(update, AgentUpdate::TurnStarted { .. }).then_some(Control::Stop),
    );
    assert!(
        matches!(run.outcome, ExitOutcome::Cancelled { .. }),
        "{:?}",
        run.outcome
    );
    let pid: u32 = std::fs::read_to_string(run.workspace.join("sleep.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(sent_methods(&run).contains(&"turn/interrupt".to_owned()));
    assert!(process_is_gone(pid), "grandchild {pid} survived");
}

// --- Schema conformance ------------------------------------------------------------------------

/// The pinned CLI's own schema (`codex app-server generate-json-schema --experimental`), made
/// strict: the server ignores unknown fields, so every object that lists its properties is
/// closed here to catch any field it does not define.
fn pinned_schema(name: &str) -> jsonschema::Validator {
    use std::sync::OnceLock;
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!(
            "symphony-codex-schema-{}-{}",
            support::CODEX_VERSION,
            std::process::id()
        ));
        let status = std::process::Command::new(support::codex_binary())
            .args([
                "app-server",
                "generate-json-schema",
                "--experimental",
                "--out",
            ])
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("codex runs");
        assert!(status.success(), "schema generation failed");
        dir
    });
    fn close(value: &mut Value) {
        match value {
            Value::Object(map) => {
                if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                    map.insert("additionalProperties".into(), Value::Bool(false));
                }
                map.values_mut().for_each(close);
            }
            Value::Array(items) => items.iter_mut().for_each(close),
            _ => {}
        }
    }
    let text = std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap();
    let mut schema: Value = serde_json::from_str(&text).unwrap();
    close(&mut schema);
    jsonschema::validator_for(&schema).unwrap()
}

/// A change to the agent before a run.
type Tweak = fn(&mut CodexAgent);

#[test]
fn every_message_we_send_conforms_to_the_pinned_schema() {
    let requests = pinned_schema("ClientRequest");
    let notifications = pinned_schema("ClientNotification");
    let errors = pinned_schema("JSONRPCError");
    let mut checked = 0;
    let scenarios: [(&str, Tweak); 5] = [
        ("one_turn", |_| {}),
        ("approvals", |_| {}),
        ("tools", |_| {}),
        ("user_input", |_| {}),
        ("silence", |a| a.config.turn_timeout_ms = 300),
    ];
    for (name, tweak) in scenarios {
        let run = run(name, tweak, stop_after_turn);
        // Which server request each answer belongs to: the fake numbers them from 1000.
        let script: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(scenario(name)).unwrap()).unwrap();
        let asked: Vec<String> = script
            .iter()
            .filter_map(|s| s["request"]["method"].as_str().map(str::to_owned))
            .collect();
        for message in &run.sent {
            let verdict = match (message.get("method"), message.get("id")) {
                (Some(_), Some(_)) => requests.validate(message).map_err(|e| e.to_string()),
                (Some(_), None) => notifications.validate(message).map_err(|e| e.to_string()),
                (None, Some(id)) if message.get("error").is_some() => {
                    let _ = id;
                    errors.validate(message).map_err(|e| e.to_string())
                }
                (None, Some(id)) => {
                    let index = id.as_u64().unwrap() as usize - 1000;
                    let response = match asked[index].as_str() {
                        "item/commandExecution/requestApproval" => {
                            "CommandExecutionRequestApprovalResponse"
                        }
                        "item/fileChange/requestApproval" => "FileChangeRequestApprovalResponse",
                        "execCommandApproval" => "ExecCommandApprovalResponse",
                        "applyPatchApproval" => "ApplyPatchApprovalResponse",
                        "item/tool/call" => "DynamicToolCallResponse",
                        "mcpServer/elicitation/request" => "McpServerElicitationRequestResponse",
                        other => panic!("no response schema mapped for {other}"),
                    };
                    pinned_schema(response)
                        .validate(&message["result"])
                        .map_err(|e| e.to_string())
                }
                (None, None) => Err("neither a request, a notification nor a response".into()),
            };
            if let Err(error) = verdict {
                panic!("{name}: {message} does not conform: {error}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} messages checked");
}

#[test]
fn the_strict_schema_catches_a_field_it_does_not_define() {
    let requests = pinned_schema("ClientRequest");
    let turn = json!({"id": 3, "method": "turn/start", "params": {
        "threadId": "thr_1", "input": [{"type": "text", "text": "hi"}], "title": "MT-1: x"
    }});
    assert!(!requests.is_valid(&turn), "title is not in TurnStartParams");
    let without: Value = json!({"id": 3, "method": "turn/start", "params": {
        "threadId": "thr_1", "input": [{"type": "text", "text": "hi"}]
    }});
    assert!(requests.is_valid(&without));
}

#[test]
fn elicitation_and_permission_requests_also_end_as_input_required() {
    for (name, method) in [
        ("elicitation", "mcpServer/elicitation/request"),
        ("permissions", "item/permissions/requestApproval"),
    ] {
        let run = run(name, |_| {}, never);
        let reason = reason(&run.outcome);
        assert!(
            reason.starts_with(&format!("input required: turn_input_required: {method}")),
            "{name}: {reason}"
        );
        let answer = run.sent.iter().find(|m| m["id"] == 1000).unwrap();
        if name == "elicitation" {
            assert_eq!(answer["result"]["action"], "decline");
        } else {
            assert!(answer.get("error").is_some());
        }
    }
}

#[test]
fn token_totals_pass_through_as_absolute_values_in_arrival_order() {
    // The runner does not reorder or sum: the core keeps the highest total per counter (see
    // core scenario token_totals_never_double_count), so a late, lower total changes nothing.
    let run = run("tokens_out_of_order", |_| {}, stop_after_turn);
    let totals: Vec<u64> = run
        .updates
        .iter()
        .filter_map(|u| match u {
            AgentUpdate::TokenUsage { total_tokens, .. } => Some(*total_tokens),
            _ => None,
        })
        .collect();
    assert_eq!(totals, [330, 110, 550]);
}
