//! The Codex runner against the real `codex app-server` (npm `@openai/codex`, pinned), talking
//! to a fake Responses API on 127.0.0.1 (SPEC 10, 13.5, 17.5). `.ci/test` installs the CLI into
//! `~/.cache/symphony-rs/codex-<version>` and exports `SYMPHONY_TEST_CODEX`.
//!
//! The fake model, per turn: first it calls `exec_command` to write a file, then the host-side
//! dynamic tool `comment_on_issue`, then it answers with a message. Every response reports a
//! known usage, so the test can check that token totals are neither lost nor double counted.

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support;
use serde_json::{Value, json};

use support::codex_binary;
use symphony::agent::Control;
use symphony::agent::codex::{ApprovalDecision, CodexAgent};
use symphony::workflow::CodexConfig;
use symphony_core::{AgentUpdate, ExitOutcome};

/// Usage the fake reports for every model response.
const USAGE: (u64, u64) = (1_000, 50);

fn sse(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap_or("")))
        .collect()
}

/// The shell command the fake model asks `exec_command` to run.
const WRITE_RESULT: &str = "echo written-by-codex > result.txt";

/// What the fake model answers, from the items after the latest user message.
fn model_reply(request: &Value, n: usize, exec: &str) -> String {
    let input = request["input"].as_array().cloned().unwrap_or_default();
    let last_user = input
        .iter()
        .rposition(|item| item["role"] == "user")
        .unwrap_or(0);
    let outputs = input[last_user..]
        .iter()
        .filter(|item| item["type"] == "function_call_output")
        .count();
    let item = match outputs {
        0 => json!({
            "type": "function_call", "id": format!("fc_{n}"), "call_id": format!("call_{n}"),
            "name": "exec_command",
            "arguments": json!({"cmd": exec}).to_string()
        }),
        1 => json!({
            "type": "function_call", "id": format!("fc_{n}"), "call_id": format!("call_{n}"),
            "name": "comment_on_issue",
            "arguments": json!({"body": "Wrote result.txt"}).to_string()
        }),
        _ => json!({
            "type": "message", "id": format!("msg_{n}"), "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": "Done: result.txt is written.", "annotations": []}]
        }),
    };
    let (input_tokens, output_tokens) = USAGE;
    sse(&[
        json!({"type": "response.created", "response": {"id": format!("resp_{n}")}}),
        json!({"type": "response.output_item.added", "output_index": 0, "item": item}),
        json!({"type": "response.output_item.done", "output_index": 0, "item": item}),
        json!({"type": "response.completed", "response": {
            "id": format!("resp_{n}"),
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + output_tokens
            }
        }}),
    ])
}

/// Serves the fake Responses API, whose shell call runs `exec`; returns its port and the
/// count of model calls.
fn fake_model(exec: &'static str) -> (u16, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let calls = Arc::new(Mutex::new(0usize));
    let counter = Arc::clone(&calls);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let Some(support::HttpRequest { path, body, .. }) = support::read_request(&stream)
            else {
                continue;
            };
            let response = if path.starts_with("/v1/responses") {
                let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let n = {
                    let mut calls = counter.lock().unwrap();
                    *calls += 1;
                    *calls
                };
                let events = model_reply(&request, n, exec);
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n{events}"
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into()
            };
            let _ = stream.write_all(response.as_bytes());
        }
    });
    (port, calls)
}

fn codex_command(binary: &Path, home: &Path, port: u16) -> String {
    let provider = format!(
        "model_providers.fake={{name=\"fake\", base_url=\"http://127.0.0.1:{port}/v1\", wire_api=\"responses\", env_key=\"FAKE_API_KEY\", request_max_retries=0, stream_max_retries=0}}"
    );
    format!(
        "env CODEX_HOME={home} TMPDIR={home}/tmp FAKE_API_KEY=dummy {bin} app-server -c 'model_provider=\"fake\"' -c 'model=\"fake-model\"' -c '{provider}' -c analytics.enabled=false --disable plugins --disable remote_plugin --disable apps 2>>{home}/app-server.stderr",
        home = home.display(),
        bin = binary.display(),
    )
}

/// A directory for a run under the target dir, and the `CODEX_HOME` in it. With bubblewrap
/// installed, codex refuses to create its sandbox helper under the temporary directory
/// ("Refusing to create helper binaries under temporary dir"), and the turn's command never
/// runs. So its TMPDIR is a directory inside CODEX_HOME: the home is then never under it,
/// wherever the checkout (and so this directory) lives, /tmp included.
fn codex_dirs(prefix: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let home = dir.path().join("codex-home");
    std::fs::create_dir_all(home.join("tmp")).unwrap();
    (dir, home)
}

#[test]
fn one_attempt_through_the_real_codex_app_server() {
    let binary = codex_binary();
    let (port, calls) = fake_model(WRITE_RESULT);
    let (dir, home) = codex_dirs("codex-real-");
    let bed = support::SessionBed::new(dir.path(), "CX-1");
    let (workspace, issues) = (bed.workspace.clone(), bed.issues.clone());

    let agent = CodexAgent {
        config: CodexConfig {
            command: codex_command(&binary, &home, port),
            approval_policy: json!("never"),
            thread_sandbox: json!("workspace-write"),
            turn_sandbox_policy: None,
            turn_timeout_ms: 120_000,
            read_timeout_ms: 5_000,
            env: Vec::new(),
            approval_decision: ApprovalDecision::AcceptForSession,
        },
        env_names: Vec::new(),
        secret_names: &[],
    };
    let context = bed.context("CX-1", "Write result.txt, then comment on the issue.");
    let (control, updates, session) = support::spawn_session(agent, context);

    // Collect updates until the first turn completes, then stop the session.
    let mut seen = Vec::new();
    loop {
        let update = updates
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("no turn completion; updates so far: {seen:#?}"));
        let done = matches!(update, AgentUpdate::TurnCompleted { .. });
        seen.push(update);
        if done {
            break;
        }
    }
    control.send(Control::Stop).unwrap();
    let outcome = session.join().unwrap();
    assert!(
        matches!(outcome, ExitOutcome::Cancelled { .. }),
        "{outcome:?}"
    );

    // The model's shell call ran in the workspace; if it did not, say why.
    let result = std::fs::read_to_string(workspace.join("result.txt"))
        .unwrap_or_else(|e| panic!("result.txt: {e}\n{}", diagnostics(&home, &seen)));
    assert_eq!(result, "written-by-codex\n");
    // The dynamic tool ran host-side against the tracker.
    let issue_file = std::fs::read_to_string(issues.join("CX-1.md")).unwrap();
    assert!(issue_file.contains("Wrote result.txt"), "{issue_file}");
    // Tokens: the last absolute total equals the sum of what the fake reported.
    let calls = *calls.lock().unwrap();
    assert_eq!(calls, 3, "exec, tool, final message");
    let last_total = support::last_tokens(&seen);
    let n = calls as u64;
    assert_eq!(
        last_total,
        (USAGE.0 * n, USAGE.1 * n, (USAGE.0 + USAGE.1) * n)
    );
    assert!(
        seen.iter()
            .any(|u| matches!(u, AgentUpdate::SessionStarted { pid: Some(_), .. }))
    );
    assert!(
        seen.iter()
            .any(|u| matches!(u, AgentUpdate::TurnStarted { .. }))
    );
}

/// What the agent left behind, for a failure message: its stderr, codex's own log files, and
/// the updates the session reported.
fn diagnostics(home: &Path, seen: &[AgentUpdate]) -> String {
    let mut out = String::new();
    let mut files = vec![home.join("app-server.stderr")];
    if let Ok(entries) = std::fs::read_dir(home.join("log")) {
        files.extend(entries.flatten().map(|e| e.path()));
    }
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| format!("({e})"));
        let tail: String = text
            .lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        out.push_str(&format!("--- {} (last 60 lines)\n{tail}\n", file.display()));
    }
    out.push_str(&format!("--- updates\n{seen:#?}\n"));
    out
}

/// The daemon runs the real Codex CLI inside bubblewrap (`sandbox.backend: bubblewrap`): the
/// turn completes, Codex's own sandboxed shell call writes in the workspace, the host tool
/// comments on the issue, and from inside, a file beside the operator's SSH key is readable
/// while the key is not. The home lives under `/var/tmp` so the private `/tmp` inside cannot
/// be what hides the key.
#[test]
fn the_daemon_runs_codex_inside_bubblewrap() {
    codex_in_sandbox(|_| "  backend: bubblewrap\n".to_owned(), "");
}

/// The same inside srt, whose proxy lets Codex reach only the listed model API
/// (`127.0.0.1:<port>`; `NO_PROXY` is emptied so that even a loopback address goes through
/// the proxy, as a remote API would). Codex is told it runs in an external sandbox, so its
/// shell call runs under srt's rules rather than a nested sandbox of its own.
#[test]
fn the_daemon_runs_codex_inside_srt_with_only_the_model_api_reachable() {
    let srt = support::srt_binary();
    codex_in_sandbox(
        |port| {
            format!(
                "  backend: srt\n  srt_command: {}\n  network: ['127.0.0.1:{port}']\n",
                srt.display()
            )
        },
        "NO_PROXY= no_proxy= ",
    );
}

/// One Codex run through the daemon with the `sandbox` section `sandbox(port)`, the command
/// prefixed with `env_prefix` (environment assignments for `env`).
fn codex_in_sandbox(sandbox: impl Fn(u16) -> String, env_prefix: &str) {
    const EXEC: &str = "{ echo written-by-codex; cat \"$HOME/notes.txt\"; cat \"$HOME/.ssh/id_ed25519\"; } > result.txt 2>/dev/null; true";
    let binary = codex_binary();
    let (port, calls) = fake_model(EXEC);
    let (dir, home) = codex_dirs("codex-sandboxed-");
    std::fs::create_dir_all(dir.path().join("issues")).unwrap();
    let operator = support::operator_home();
    std::fs::write(
        dir.path().join("issues/CX-1.md"),
        "---\ntitle: Write the file\nstate: Todo\n---\nWrite result.txt.\n",
    )
    .unwrap();
    let command =
        codex_command(&binary, &home, port).replacen("env ", &format!("env {env_prefix}"), 1);
    let workflow = format!(
        "---\ntracker:\n  kind: local\npolling:\n  interval_ms: 3600000\nworkspace:\n  root: ./ws\nagent:\n  max_turns: 1\n  max_turns_per_issue: 1\ncodex:\n  command: '{}'\n  read_timeout_ms: 60000\nsandbox:\n{}server:\n  port: 0\n---\nWork on {{{{ issue.identifier }}}}.\n",
        // A single-quoted YAML string: its quotes doubled.
        command.replace('\'', "''"),
        sandbox(port),
    );
    std::fs::write(dir.path().join("WORKFLOW.md"), workflow).unwrap();
    let operator_home = operator.path().to_str().unwrap();
    let codex_home = home.to_str().unwrap();
    let mut daemon = crate::daemon_harness::Daemon::start_with_env(
        dir.path(),
        &[],
        &[("HOME", operator_home), ("CODEX_HOME", codex_home)],
    );
    let held = daemon.wait_for("the hold after one turn, or a failed run", |l| {
        (l.contains("held:") || l.contains("worker exited"))
            && l.contains("issue_identifier=\"CX-1\"")
    });
    assert!(
        held.contains("turn budget used: 1 of 1"),
        "{held}\n{}",
        diagnostics(&home, &[])
    );
    let result = std::fs::read_to_string(dir.path().join("ws/CX-1/result.txt"))
        .unwrap_or_else(|e| panic!("result.txt: {e}\n{}", diagnostics(&home, &[])));
    assert_eq!(result, "written-by-codex\noperator notes\n");
    let issue = std::fs::read_to_string(dir.path().join("issues/CX-1.md")).unwrap();
    assert!(issue.contains("Wrote result.txt"), "{issue}");
    assert_eq!(*calls.lock().unwrap(), 3, "exec, tool, final message");
    daemon.interrupt();
    let (code, lines) = daemon.wait_exit();
    assert_eq!(code, Some(0), "{lines:#?}");
}
