//! The daemon as a user runs it against remote trackers: the built binary, a loopback fake of
//! GitHub's REST API or Linear's GraphQL API (`fakes/`), and the Codex agent played by the
//! scripted app-server (`symphony-fake-app-server`), one script per issue. Everything is
//! asserted from outside: the HTTP API, the fake tracker's records, the file system and the
//! process table. Waits are bounded reads of the daemon's log lines, never sleeps.

use crate::daemon_harness;
use crate::gitea_fake;
use crate::github_fake;
use crate::gitlab_fake;
use crate::jira_fake;
use crate::linear_fake;
use crate::support;

use std::path::Path;

use daemon_harness::{Daemon, get_json, http, pid_in, replay_check};
use serde_json::{Value, json};

const FAKE_APP_SERVER: &str = env!("CARGO_BIN_EXE_symphony-fake-app-server");

/// `initialize`, `initialized`, `thread/start` (thread `thr_1`).
fn handshake() -> Vec<Value> {
    vec![
        json!({"expect": "initialize", "reply": {"userAgent": "fake-app-server", "codexHome": "/tmp",
            "platformFamily": "unix", "platformOs": "linux"}}),
        json!({"expect": "initialized"}),
        json!({"expect": "thread/start", "reply": {"thread": {"id": "thr_1"}}}),
    ]
}

fn turn_start(n: u32) -> Value {
    json!({"expect": "turn/start", "reply": {"turn": {"id": format!("turn_{n}"), "status": "inProgress", "items": []}}})
}

fn turn_done(n: u32, status: &str) -> Value {
    let error = if status == "failed" {
        json!({"message": "model exploded"})
    } else {
        Value::Null
    };
    json!({"send": {"method": "turn/completed", "params": {"threadId": "thr_1",
        "turn": {"id": format!("turn_{n}"), "status": status, "items": [], "error": error}}}})
}

fn usage(n: u32, total: u64) -> Value {
    let counts = json!({"inputTokens": total - 10, "outputTokens": 10, "totalTokens": total,
        "cachedInputTokens": 0, "reasoningOutputTokens": 0});
    json!({"send": {"method": "thread/tokenUsage/updated", "params": {"threadId": "thr_1",
        "turnId": format!("turn_{n}"), "tokenUsage": {"total": counts, "last": counts,
        "modelContextWindow": 258400}}}})
}

fn tool(n: u32, call: &str, name: &str, arguments: Value) -> Value {
    json!({"request": {"method": "item/tool/call", "params": {"threadId": "thr_1",
        "turnId": format!("turn_{n}"), "callId": call, "namespace": null, "tool": name,
        "arguments": arguments}}})
}

/// A turn that starts a `sleep` in the background (pid in `sleep.pid`) and never ends.
fn hanging_turn() -> Vec<Value> {
    vec![
        turn_start(1),
        json!({"grandchild": "sleep.pid"}),
        json!({"send": {"method": "turn/started", "params": {"threadId": "thr_1", "turn": {"id": "turn_1"}}}}),
        json!({"hang": true}),
    ]
}

/// Writes the scripts, one per workspace name, and returns the `codex.command` that picks
/// the script of the workspace it runs in. Each app-server logs what it received to
/// `agent-logs/<workspace>.log` (outside the workspace, which cleanup removes).
fn scripts(dir: &Path, scripts: &[(&str, Vec<Value>)]) -> String {
    let scripts_dir = dir.join("scripts");
    std::fs::create_dir_all(&scripts_dir).unwrap();
    std::fs::create_dir_all(dir.join("agent-logs")).unwrap();
    for (name, steps) in scripts {
        std::fs::write(
            scripts_dir.join(format!("{name}.json")),
            Value::Array(steps.clone()).to_string(),
        )
        .unwrap();
    }
    format!(
        "{FAKE_APP_SERVER} {}/$(basename \"$PWD\").json {}/$(basename \"$PWD\").log",
        scripts_dir.display(),
        dir.join("agent-logs").display()
    )
}

fn workflow(dir: &Path, tracker: &str, command: &str) {
    std::fs::write(
        dir.join("WORKFLOW.md"),
        format!(
            "---\ntracker:\n{tracker}polling:\n  interval_ms: 250\nworkspace:\n  root: ./ws\nagent:\n  kind: codex\n  max_concurrent_agents: 4\n  max_turns: 3\ncodex:\n  command: '{command}'\n  turn_timeout_ms: 60000\nserver:\n  port: 0\n---\nWork on {{{{ issue.identifier }}}}.\n"
        ),
    )
    .unwrap();
}

fn line_for(id: &str, what: &str) -> impl Fn(&str) -> bool {
    let id = format!("issue_id=\"{id}\"");
    let what = what.to_owned();
    move |l: &str| l.contains(&what) && l.contains(&id)
}

#[test]
fn github_and_codex_dispatch_continue_fail_back_off_stop_on_refresh_and_shut_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut repo = github_fake::Repo::default();
    for n in 1..=4 {
        repo.issues
            .push(github_fake::gh_issue(n, "open", &["state:Todo"], false));
    }
    let (api, repo) = github_fake::fake(repo);
    let env_file = dir.path().join("agent-logs/GH-1.env");
    let mut finishing = handshake();
    finishing.extend([
        json!({"dump_env": env_file}),
        turn_start(1),
        usage(1, 150),
        turn_done(1, "completed"),
        turn_start(2),
        json!({"request": {"method": "item/commandExecution/requestApproval", "params": {
            "threadId": "thr_1", "turnId": "turn_2", "itemId": "i9", "command": "ls", "cwd": "/tmp"}}}),
        tool(
            2,
            "c1",
            "comment_on_issue",
            json!({"body": "Done, see the branch."}),
        ),
        tool(2, "c2", "update_issue_state", json!({"state": "Closed"})),
        usage(2, 400),
        turn_done(2, "completed"),
    ]);
    let mut failing = handshake();
    failing.extend([turn_start(1), turn_done(1, "failed")]);
    let mut hanging = handshake();
    hanging.extend(hanging_turn());
    let command = scripts(
        dir.path(),
        &[
            ("GH-1", finishing),
            ("GH-2", failing),
            ("GH-3", hanging.clone()),
            ("GH-4", hanging),
        ],
    );
    workflow(
        dir.path(),
        &format!(
            "  kind: github\n  active_states: [Todo]\n  terminal_states: [Closed]\n  provider:\n    repo: acme/app\n    api_url: {api}\n"
        ),
        &command,
    );
    let mut daemon = Daemon::start_with_env(
        dir.path(),
        &["--event-log", "events.ndjson"],
        &[
            ("GITHUB_TOKEN", github_fake::TOKEN),
            ("UNRELATED_SECRET", "s3cr3t-value"),
        ],
    );
    let addr = daemon.http_addr();

    // GH-1: two turns on one thread (a continuation: the issue was still active after the
    // first), its tools reached GitHub, and the terminal state ended the run and cleaned up.
    daemon.wait_for("GH-1 released", line_for("1", "released"));
    daemon.wait_for("GH-1 workspace removed", line_for("1", "workspace removed"));
    {
        let repo = repo.lock().unwrap();
        let gh1 = repo.issues.iter().find(|i| i["number"] == 1).unwrap();
        assert_eq!(gh1["state"], "closed");
        assert_eq!(repo.comments, [(1, "Done, see the branch.".to_owned())]);
    }
    assert!(!dir.path().join("ws/GH-1").exists());
    // The agent's environment is the allowlist: no tracker token, nothing unrelated.
    let env = std::fs::read_to_string(&env_file).unwrap();
    assert!(env.lines().any(|l| l.starts_with("PATH=")), "{env}");
    assert!(
        !env.contains("GITHUB_TOKEN")
            && !env.contains(github_fake::TOKEN)
            && !env.contains("s3cr3t-value"),
        "{env}"
    );
    let session_lines = daemon.wait_for("GH-1's second turn", |l| {
        l.contains("turn completed") && l.contains("session_id=\"thr_1-turn_2\"")
    });
    assert!(session_lines.contains("issue_identifier=\"GH-1\""));

    // GH-2: a failed turn becomes a retry with backoff, visible in the API.
    daemon.wait_for("GH-2 retry", line_for("2", "retry scheduled"));
    let detail = get_json(&addr, "/api/v1/GH-2");
    assert_eq!(detail["status"], "retrying", "{detail:#}");
    assert_eq!(detail["retry"]["attempt"], 1);
    assert!(
        detail["retry"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("model exploded")),
        "{detail:#}"
    );

    // GH-3 and GH-4 run; each agent left a `sleep` running in its process group.
    for n in ["3", "4"] {
        daemon.wait_for("a hanging turn", |l| {
            l.contains("turn started") && l.contains(&format!("issue_id=\"{n}\""))
        });
    }
    let state = get_json(&addr, "/api/v1/state");
    assert_eq!(state["counts"]["running"], 2, "{state:#}");
    assert_eq!(
        state["codex_totals"]["total_tokens"], 400,
        "GH-1's absolute totals, counted once: {state:#}"
    );
    let row = |n: &str| {
        state["running"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["issue_identifier"] == format!("GH-{n}"))
            .unwrap_or_else(|| panic!("GH-{n} is not running: {state:#}"))
            .clone()
    };
    let gh3 = row("3");
    assert_eq!(gh3["session_id"], "thr_1-turn_1");
    assert_eq!(gh3["turn_count"], 1);
    assert_eq!(gh3["phase"], "streaming_turn");
    let agent3 = gh3["pid"].as_u64().unwrap() as u32;
    let agent4 = row("4")["pid"].as_u64().unwrap() as u32;
    let sleep3 = pid_in(&dir.path().join("ws/GH-3/sleep.pid"));
    let sleep4 = pid_in(&dir.path().join("ws/GH-4/sleep.pid"));

    // GH-3 is closed on GitHub; a refresh through the API reconciles at once: the worker is
    // stopped, its processes are gone and the workspace is removed.
    {
        let mut repo = repo.lock().unwrap();
        let gh3 = repo.issues.iter_mut().find(|i| i["number"] == 3).unwrap();
        gh3["state"] = json!("closed");
    }
    let (status, _, body) = http(&addr, "POST", "/api/v1/refresh", None);
    assert_eq!(status, 202, "{body}");
    daemon.wait_for("GH-3 stopped", line_for("3", "stopping worker"));
    daemon.wait_for("GH-3 workspace removed", line_for("3", "workspace removed"));
    assert!(support::process_is_gone(agent3), "GH-3's app-server");
    assert!(support::process_is_gone(sleep3), "GH-3's agent's child");
    assert!(!dir.path().join("ws/GH-3").exists());

    // Shutdown with GH-4's agent (and its child) still running: nothing is left behind.
    daemon.interrupt();
    let (code, lines) = daemon.wait_exit();
    assert_eq!(code, Some(0), "{}", lines.join("\n"));
    assert!(support::process_is_gone(agent4), "GH-4's app-server");
    assert!(support::process_is_gone(sleep4), "GH-4's agent's child");
    assert!(
        !lines.iter().any(|l| l.contains(github_fake::TOKEN)),
        "the token is never logged"
    );

    // The whole session replays to the same decisions.
    replay_check(dir.path(), &["events.ndjson"]);
    // The approval the runner gave, and the tracker writes, are on the record.
    let audit: String = (std::fs::read_dir(dir.path().join("state/audit"))
        .unwrap()
        .flatten())
    .map(|f| std::fs::read_to_string(f.path()).unwrap())
    .collect();
    assert!(
        audit.contains("\"type\":\"approval\"")
            && audit.contains("item/commandExecution/requestApproval: acceptForSession"),
        "{audit}"
    );
    assert!(audit.contains("\"type\":\"tracker_write\""), "{audit}");
}

#[test]
fn linear_and_codex_run_host_side_tools_clean_up_and_follow_workflow_edits() {
    let dir = tempfile::tempdir().unwrap();
    let board = linear_fake::Board {
        issues: vec![
            linear_fake::node(1, "Todo", "proj-1"),
            linear_fake::node(2, "In Progress", "proj-1"),
        ],
        ..linear_fake::Board::default()
    };
    let (endpoint, board) = linear_fake::fake(linear_fake::Fault::None, board);
    let mut eng1 = handshake();
    eng1.extend([
        turn_start(1),
        tool(
            1,
            "c1",
            "linear_graphql",
            json!({"query": "query Viewer { viewer { id } }"}),
        ),
        tool(1, "c2", "update_issue_state", json!({"state": "Done"})),
        usage(1, 90),
        turn_done(1, "completed"),
    ]);
    let mut eng2 = handshake();
    eng2.extend(hanging_turn());
    let command = scripts(dir.path(), &[("ENG-1", eng1), ("ENG-2", eng2)]);
    let tracker = |active: &str| {
        format!(
            "  kind: linear\n  active_states: [{active}]\n  terminal_states: [Done]\n  provider:\n    endpoint: {endpoint}\n    project_slug: proj-1\n"
        )
    };
    workflow(dir.path(), &tracker("Todo"), &command);
    let mut daemon =
        Daemon::start_with_env(dir.path(), &[], &[("LINEAR_API_KEY", linear_fake::KEY)]);
    let addr = daemon.http_addr();

    // ENG-1: its tools ran host-side with the daemon's key; moving it to Done ended the run.
    daemon.wait_for("ENG-1 released", line_for("uuid-1", "released"));
    daemon.wait_for(
        "ENG-1 workspace removed",
        line_for("uuid-1", "workspace removed"),
    );
    assert!(!dir.path().join("ws/ENG-1").exists());
    let issue1 = board.lock().unwrap().issues[0].clone();
    assert_eq!(issue1["state"]["name"], "Done");
    let agent_log = std::fs::read_to_string(dir.path().join("agent-logs/ENG-1.log")).unwrap();
    let answers: Vec<Value> = agent_log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m.get("result").is_some_and(|r| r.get("success").is_some()))
        .map(|m| m["result"].clone())
        .collect();
    assert_eq!(answers.len(), 2, "{agent_log}");
    assert!(
        answers.iter().all(|a| a["success"] == true),
        "both tools succeeded: {answers:?}"
    );
    assert!(agent_log.contains("ENG-1 moved to Done"), "{agent_log}");
    assert!(
        board
            .lock()
            .unwrap()
            .auth_seen
            .iter()
            .all(|a| a == linear_fake::KEY),
        "every request, the agent's tool call included, carried the key"
    );
    assert!(
        !agent_log.contains(linear_fake::KEY),
        "the key never reaches the agent"
    );
    // ENG-2 is In Progress, not an active state yet.
    assert_eq!(get_json(&addr, "/api/v1/state")["counts"]["running"], 0);
    let (status, _, _) = http(&addr, "GET", "/api/v1/ENG-2", None);
    assert_eq!(status, 404);

    // A broken edit is kept out; the next good one is applied and ENG-2 starts.
    let path = dir.path().join("WORKFLOW.md");
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(dir.path().join("WORKFLOW.tmp"), "---\ntracker: [\n---\n").unwrap();
    std::fs::rename(dir.path().join("WORKFLOW.tmp"), &path).unwrap();
    daemon.wait_for("the broken edit", |l| {
        l.contains("keeping the last good workflow")
    });
    let edited = good.replace(
        "active_states: [Todo]",
        "active_states: [Todo, In Progress]",
    );
    std::fs::write(dir.path().join("WORKFLOW.tmp"), edited).unwrap();
    std::fs::rename(dir.path().join("WORKFLOW.tmp"), &path).unwrap();
    daemon.wait_for("the reload", |l| l.contains("workflow reloaded"));
    daemon.wait_for("ENG-2 running", |l| {
        l.contains("turn started") && l.contains("issue_id=\"uuid-2\"")
    });
    let detail = get_json(&addr, "/api/v1/ENG-2");
    assert_eq!(detail["status"], "running", "{detail:#}");
    let agent = detail["running"]["pid"].as_u64().unwrap() as u32;
    let child = pid_in(&dir.path().join("ws/ENG-2/sleep.pid"));

    daemon.interrupt();
    let (code, lines) = daemon.wait_exit();
    assert_eq!(code, Some(0), "{}", lines.join("\n"));
    assert!(support::process_is_gone(agent), "ENG-2's app-server");
    assert!(support::process_is_gone(child), "ENG-2's agent's child");
    assert!(!lines.iter().any(|l| l.contains(linear_fake::KEY)));
}

/// A tracker that echoes the API key in every error: the key must appear in no output at all.
#[test]
fn a_key_echoed_by_the_tracker_is_masked_in_every_output() {
    let dir = tempfile::tempdir().unwrap();
    let (endpoint, _board) =
        linear_fake::fake(linear_fake::Fault::EchoKey, linear_fake::Board::default());
    let tracker = format!(
        "  kind: linear\n  active_states: [Todo]\n  terminal_states: [Done]\n  provider:\n    endpoint: {endpoint}\n    project_slug: proj-1\n"
    );
    workflow(dir.path(), &tracker, "unused");
    let key = linear_fake::KEY;
    let mut daemon = Daemon::start_with_env(
        dir.path(),
        &[
            "--logs-root",
            "logs",
            "--log-format",
            "json",
            "--event-log",
            "events.ndjson",
        ],
        &[("LINEAR_API_KEY", key)],
    );
    let addr = daemon.http_addr();
    let failed = daemon.wait_for("the failing fetch", |l| {
        l.contains("candidate fetch failed")
    });
    assert!(failed.contains("Authorization: ****"), "{failed}");
    // That line is logged by the fetch task before its event reaches the daemon's loop; a
    // second failing fetch means the first event was handled (the next poll waits for the
    // tick it ends), so it is in the event log before the shutdown below.
    let seen = std::cell::Cell::new(0);
    daemon.wait_for("a second failing fetch", |l| {
        if l.contains("candidate fetch failed") {
            seen.set(seen.get() + 1);
        }
        seen.get() >= 2
    });
    let (_, _, state) = http(&addr, "GET", "/api/v1/state", None);
    let (_, _, dashboard) = http(&addr, "GET", "/", None);
    daemon.interrupt();
    let (code, lines) = daemon.wait_exit();
    assert_eq!(code, Some(0));

    let mut outputs = vec![
        ("stderr", lines.join("\n")),
        ("state", state),
        ("dashboard", dashboard),
        (
            "json log",
            std::fs::read_to_string(dir.path().join("logs/symphony.log")).unwrap(),
        ),
        (
            "event log",
            std::fs::read_to_string(dir.path().join("events.ndjson")).unwrap(),
        ),
    ];
    assert!(
        outputs[4].1.contains("Authorization: ****"),
        "the error is recorded, masked"
    );
    for args in [
        &["doctor"][..],
        &["check"],
        &["config"],
        &["replay", "events.ndjson"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_symphony"))
            .args(args)
            .current_dir(dir.path())
            .env("LINEAR_API_KEY", key)
            .output()
            .unwrap();
        outputs.push((
            args[0],
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ));
    }
    assert!(
        outputs
            .iter()
            .any(|(what, text)| *what == "doctor" && text.contains("****")),
        "doctor met the echoing tracker: {outputs:?}"
    );
    for (what, text) in &outputs {
        assert!(!text.contains(key), "{what} shows the key:\n{text}");
    }
}

#[test]
fn gitea_and_codex_move_labels_close_with_the_tool_and_clean_up() {
    let dir = tempfile::tempdir().unwrap();
    let repo = gitea_fake::Repo::with(&[(1, true, &["aiops/todo"]), (2, true, &["aiops/todo"])]);
    let (base, repo) = gitea_fake::fake(repo);
    // GT-1 comments, then hands over with a terminal label that closes the issue.
    let mut closing = handshake();
    closing.extend([
        turn_start(1),
        tool(
            1,
            "c1",
            "comment_on_issue",
            json!({"body": "Ready for review."}),
        ),
        tool(
            1,
            "c2",
            "gitea_issue_labels",
            json!({"issue_number": 1, "labels": ["aiops/done"], "close_issue": true}),
        ),
        turn_done(1, "completed"),
    ]);
    // GT-2 tries to relabel GT-1, then moves itself to Human Review (not active: it stops).
    let mut straying = handshake();
    straying.extend([
        turn_start(1),
        tool(
            1,
            "c1",
            "gitea_issue_labels",
            json!({"issue_number": 1, "labels": ["aiops/rework"]}),
        ),
        tool(
            1,
            "c2",
            "gitea_issue_labels",
            json!({"issue_number": 2, "labels": ["aiops/human-review"]}),
        ),
        turn_done(1, "completed"),
    ]);
    let command = scripts(dir.path(), &[("GT-1", closing), ("GT-2", straying)]);
    workflow(
        dir.path(),
        &format!("  kind: gitea\n  provider:\n    endpoint: {base}\n    repo: acme/app\n"),
        &command,
    );
    let mut daemon = Daemon::start_with_env(dir.path(), &[], &[("GITEA_TOKEN", gitea_fake::TOKEN)]);
    daemon.wait_for("GT-1 released", line_for("1", "released"));
    daemon.wait_for("GT-1 workspace removed", line_for("1", "workspace removed"));
    daemon.wait_for("GT-2 released", line_for("2", "released"));
    {
        let repo = repo.lock().unwrap();
        let gt1 = repo.issues.iter().find(|i| i.0 == 1).unwrap();
        assert!(!gt1.1, "GT-1 is closed");
        assert_eq!(gt1.2, ["aiops/done"]);
        let gt2 = repo.issues.iter().find(|i| i.0 == 2).unwrap();
        assert_eq!(gt2.2, ["aiops/human-review"], "GT-2 moved itself, not GT-1");
        assert_eq!(repo.comments, [(1, "Ready for review.".to_owned())]);
    }
    assert!(!dir.path().join("ws/GT-1").exists());
    let log = std::fs::read_to_string(dir.path().join("agent-logs/GT-2.log")).unwrap();
    assert!(
        log.contains("acts on this session's issue #2 only, not #1"),
        "the refusal reached the agent: {log}"
    );
    assert!(!log.contains(gitea_fake::TOKEN));
    daemon.interrupt();
    let (code, lines) = daemon.wait_exit();
    assert_eq!(code, Some(0));
    assert!(
        !lines.iter().any(|l| l.contains(gitea_fake::TOKEN)),
        "{}",
        lines.join("\n")
    );
}

/// A Gitea label problem the adapter will not fix is shown where an operator looks at the
/// issue: in its API detail (and logged once).
#[test]
fn a_gitea_label_problem_shows_in_the_issue_detail() {
    let dir = tempfile::tempdir().unwrap();
    // GT-5 is read by the startup listing of terminal issues, never claimed.
    let repo = gitea_fake::Repo::with(&[
        (3, true, &["aiops/todo", "aiops/in-progress"]),
        (5, true, &["aiops/done", "aiops/canceled"]),
    ]);
    let (base, _repo) = gitea_fake::fake(repo);
    std::fs::write(
        dir.path().join("WORKFLOW.md"),
        format!(
            "---\ntracker:\n  kind: gitea\n  provider:\n    endpoint: {base}\n    repo: acme/app\npolling:\n  interval_ms: 250\nworkspace:\n  root: ./ws\nagent:\n  kind: demo\n  demo_turn_ms: 600000\nserver:\n  port: 0\n---\nWork on {{{{ issue.identifier }}}}.\n"
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start_with_env(dir.path(), &[], &[("GITEA_TOKEN", gitea_fake::TOKEN)]);
    let logged = daemon.wait_for("the label problem", |l| l.contains("Gitea issue GT-3"));
    assert!(logged.contains("several state labels"), "{logged}");
    daemon.wait_for("GT-3 running", line_for("3", "turn started"));
    let addr = daemon.http_addr();
    let detail = get_json(&addr, "/api/v1/issues/GT-3");
    assert_eq!(detail["status"], "running", "{detail:#}");
    assert_eq!(
        detail["running"]["state"], "In Progress",
        "the higher-priority label wins"
    );
    let remark = detail["tracker_remark"].as_str().unwrap_or_default();
    assert!(remark.contains("several state labels"), "{detail:#}");
    daemon.wait_for("GT-5's problem", |l| l.contains("Gitea issue GT-5"));
    let (status, _, body) = http(&addr, "GET", "/api/v1/issues/GT-5", None);
    assert_eq!(status, 404);
    assert!(
        body.contains("the tracker says: state labels: several state labels"),
        "{body}"
    );
    let (status, _, body) = http(&addr, "GET", "/api/v1/issues/GT-9", None);
    assert_eq!(status, 404);
    assert!(
        !body.contains("tracker says"),
        "no remark for an issue never read: {body}"
    );
    daemon.interrupt();
    assert_eq!(daemon.wait_exit().0, Some(0));
}

#[test]
fn jira_and_codex_move_by_transition_comment_in_adf_and_stay_in_the_project() {
    let dir = tempfile::tempdir().unwrap();
    let mut site = jira_fake::Site::with(2);
    site.issues.push(jira_fake::JiraIssue {
        number: 3,
        status: "To Do".to_owned(),
        project: "OPS".to_owned(),
        blocked_by: Vec::new(),
    });
    let (base, site) = jira_fake::fake(site);
    // ENG-1 comments and moves itself to Done (terminal: released, workspace removed).
    let mut finishing = handshake();
    finishing.extend([
        turn_start(1),
        tool(
            1,
            "c1",
            "comment_on_issue",
            json!({"body": "Ready.\n\nAll tests pass."}),
        ),
        tool(1, "c2", "update_issue_state", json!({"state": "Done"})),
        turn_done(1, "completed"),
    ]);
    // ENG-2 reads itself through the REST tool, tries another project, then hands over to
    // review (not active: the run stops, the workspace stays).
    let mut straying = handshake();
    straying.extend([
        turn_start(1),
        tool(
            1,
            "c1",
            "jira_rest",
            json!({"method": "GET", "path": "/rest/api/3/issue/ENG-2"}),
        ),
        tool(
            1,
            "c2",
            "jira_rest",
            json!({"method": "GET", "path": "/rest/api/3/issue/OPS-3"}),
        ),
        tool(1, "c3", "update_issue_state", json!({"state": "In Review"})),
        turn_done(1, "completed"),
    ]);
    let command = scripts(dir.path(), &[("ENG-1", finishing), ("ENG-2", straying)]);
    workflow(
        dir.path(),
        &format!(
            "  kind: jira\n  active_states: [To Do, In Progress]\n  provider:\n    base_url: {base}\n    \
             email: {}\n    project_key: ENG\n",
            jira_fake::EMAIL
        ),
        &command,
    );
    let mut daemon =
        Daemon::start_with_env(dir.path(), &[], &[("JIRA_API_TOKEN", jira_fake::TOKEN)]);
    daemon.wait_for(
        "ENG-1 workspace removed",
        line_for("10001", "workspace removed"),
    );
    daemon.wait_for("ENG-2 released", line_for("10002", "released"));
    {
        let site = site.lock().unwrap();
        assert_eq!(site.issues[0].status, "Done");
        assert_eq!(site.issues[1].status, "In Review");
        assert_eq!(site.issues[2].status, "To Do", "OPS-3 is untouched");
        let (key, body) = &site.comments[0];
        assert_eq!(key, "ENG-1");
        assert_eq!(
            symphony::tracker::jira::adf_text(body),
            "Ready.\nAll tests pass."
        );
    }
    assert!(!dir.path().join("ws/ENG-1").exists());
    assert!(dir.path().join("ws/ENG-2").exists());
    let log = std::fs::read_to_string(dir.path().join("agent-logs/ENG-2.log")).unwrap();
    assert!(
        log.contains(r#"\"key\":\"ENG-2\""#),
        "the tool's answer reached the agent: {log}"
    );
    assert!(
        log.contains("not an issue key of the project"),
        "the refusal reached the agent: {log}"
    );
    assert!(!log.contains(jira_fake::TOKEN));
    daemon.interrupt();
    let (code, lines) = daemon.wait_exit();
    assert_eq!(code, Some(0));
    let all = lines.join("\n");
    assert!(!all.contains(jira_fake::TOKEN), "{all}");
    assert!(
        !all.contains("Ym90QGV4YW1wbGUuaW52YWxpZDpqaXJhX3Rlc3RfdG9rZW5fMDEyMw"),
        "{all}"
    );
}

#[test]
fn gitlab_and_codex_move_labels_write_notes_and_stay_in_the_project() {
    let dir = tempfile::tempdir().unwrap();
    let (api, project) = gitlab_fake::fake(gitlab_fake::Project::with(&[
        (1, &["Todo"]),
        (2, &["Todo"]),
    ]));
    // GL-1 writes a note and moves itself to Done (terminal: released, workspace removed).
    let mut finishing = handshake();
    finishing.extend([
        turn_start(1),
        tool(
            1,
            "c1",
            "comment_on_issue",
            json!({"body": "Ready for review."}),
        ),
        tool(1, "c2", "update_issue_state", json!({"state": "Done"})),
        turn_done(1, "completed"),
    ]);
    // GL-2 reads itself through the API tool, tries to leave the project, then hands over.
    let mut straying = handshake();
    straying.extend([
        turn_start(1),
        tool(
            1,
            "c1",
            "gitlab_api",
            json!({"method": "GET", "path": "/issues/2"}),
        ),
        tool(
            1,
            "c2",
            "gitlab_api",
            json!({"method": "GET", "path": "/../8/issues"}),
        ),
        tool(
            1,
            "c3",
            "update_issue_state",
            json!({"state": "Human Review"}),
        ),
        turn_done(1, "completed"),
    ]);
    let command = scripts(dir.path(), &[("GL-1", finishing), ("GL-2", straying)]);
    workflow(
        dir.path(),
        &format!(
            "  kind: gitlab\n  inactive_states: [Human Review]\n  provider:\n    endpoint: {api}\n    \
             project: acme/platform/app\n"
        ),
        &command,
    );
    let mut daemon =
        Daemon::start_with_env(dir.path(), &[], &[("GITLAB_TOKEN", gitlab_fake::TOKEN)]);
    daemon.wait_for("GL-1 workspace removed", line_for("1", "workspace removed"));
    daemon.wait_for("GL-2 released", line_for("2", "released"));
    {
        let project = project.lock().unwrap();
        assert_eq!(project.issues[0].labels, ["Done"]);
        assert_eq!(project.issues[1].labels, ["Human Review"]);
        assert_eq!(project.notes, [(1, "Ready for review.".to_owned())]);
    }
    assert!(!dir.path().join("ws/GL-1").exists());
    let log = std::fs::read_to_string(dir.path().join("agent-logs/GL-2.log")).unwrap();
    assert!(
        log.contains(r#"\"iid\":2"#),
        "the tool's answer reached the agent: {log}"
    );
    assert!(
        log.contains("refused"),
        "the refusal reached the agent: {log}"
    );
    assert!(!log.contains(gitlab_fake::TOKEN));
    daemon.interrupt();
    let (code, lines) = daemon.wait_exit();
    assert_eq!(code, Some(0));
    assert!(!lines.join("\n").contains(gitlab_fake::TOKEN));
}
