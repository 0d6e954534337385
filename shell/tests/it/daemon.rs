//! The daemon as a user runs it: the built binary, the local tracker, the demo agent, signals.
//! Waits are bounded reads of the daemon's log lines, never sleeps.

use crate::daemon_harness;
use crate::support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use daemon_harness::{Daemon, http, replay_check};

fn workflow(extra: &str) -> String {
    format!(
        "---\ntracker:\n  kind: local\n  terminal_states: [Done, Cancelled]\npolling:\n  interval_ms: 200\nworkspace:\n  root: ./ws\nagent:\n  kind: demo\n  demo_turn_ms: 50\n  max_concurrent_agents: 2\n{extra}---\nWork on {{{{ issue.identifier }}}}.\n"
    )
}

fn issue(dir: &Path, id: &str, state: &str, extra: &str) {
    std::fs::create_dir_all(dir.join("issues")).unwrap();
    std::fs::write(
        dir.join(format!("issues/{id}.md")),
        format!("---\ntitle: {id} title\nstate: {state}\n{extra}---\nBody of {id}.\n"),
    )
    .unwrap();
}

/// Replaces a file atomically, as editors do.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn state_of(dir: &Path, id: &str) -> String {
    let text = std::fs::read_to_string(dir.join(format!("issues/{id}.md"))).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("state: "))
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn the_demo_loop_runs_issues_to_done_respecting_blockers_and_shuts_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("WORKFLOW.md"), workflow("")).unwrap();
    issue(dir.path(), "T-1", "Todo", "priority: 1\n");
    issue(dir.path(), "T-2", "Todo", "priority: 2\n");
    issue(dir.path(), "T-3", "Todo", "blocked_by: [T-1]\n");
    issue(dir.path(), "T-4", "Backlog", "");
    let mut daemon = Daemon::start(dir.path(), &["WORKFLOW.md", "--event-log", "events.ndjson"]);

    for id in ["T-1", "T-2", "T-3"] {
        daemon.wait_for(&format!("{id} released"), |l| {
            l.contains("released") && l.contains(&format!("issue_id=\"{id}\""))
        });
    }
    daemon.interrupt();
    let (code, lines) = daemon.wait_exit();
    assert_eq!(code, Some(0), "{}", lines.join("\n"));

    for id in ["T-1", "T-2", "T-3"] {
        assert_eq!(state_of(dir.path(), id), "Done");
        assert!(
            !dir.path().join("ws").join(id).exists(),
            "{id} workspace cleaned"
        );
    }
    assert_eq!(state_of(dir.path(), "T-4"), "Backlog");
    // T-3 was blocked by T-1: it was dispatched only after T-1 was released.
    let position = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle}"))
    };
    assert!(
        position("released issue_id=\"T-1\"") < position("dispatching issue_id=\"T-3\""),
        "{}",
        lines.join("\n")
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("dispatching issue_id=\"T-4\""))
    );
    // Session lines carry the issue and the session id.
    assert!(
        lines.iter().any(|l| l.contains("turn completed")
            && l.contains("issue_id=\"T-1\"")
            && l.contains("issue_identifier=\"T-1\"")
            && l.contains("session_id=\"demo-")),
        "{}",
        lines.join("\n")
    );

    // The recorded log replays to the same decisions.
    let stdout = replay_check(dir.path(), &["events.ndjson"]);
    assert!(stdout.contains("shutdown-complete"));
}

#[test]
fn an_invalid_workflow_at_startup_exits_1_with_the_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("WORKFLOW.md"),
        "---\ntracker:\n  kind: asana\n---\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_symphony"))
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error[unsupported_tracker_kind]: WORKFLOW.md:3:3:"),
        "{stderr}"
    );
}

#[test]
fn edits_reload_and_a_broken_edit_keeps_the_last_good_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("WORKFLOW.md");
    std::fs::write(&path, workflow("")).unwrap();
    std::fs::create_dir_all(dir.path().join("issues")).unwrap();
    let mut daemon = Daemon::start(dir.path(), &[]);
    daemon.wait_for("startup", |l| l.contains("symphony started"));

    replace(&path, "---\ntracker: [\n---\n");
    daemon.wait_for("the broken edit", |l| {
        l.contains("workflow_parse_error") && l.contains("keeping the last good workflow")
    });
    // Dispatch is paused meanwhile: a new issue does not start.
    issue(dir.path(), "R-1", "Todo", "");
    replace(&path, &workflow("  max_turns: 4\n"));
    daemon.wait_for("the good edit", |l| l.contains("workflow reloaded"));
    daemon.wait_for("R-1 after the reload", |l| {
        l.contains("dispatching issue_id=\"R-1\"")
    });
    daemon.interrupt();
    let (code, lines) = daemon.wait_exit();
    assert_eq!(code, Some(0), "{}", lines.join("\n"));
    let broken = lines
        .iter()
        .position(|l| l.contains("workflow_parse_error"))
        .unwrap();
    let dispatched = lines
        .iter()
        .position(|l| l.contains("dispatching issue_id=\"R-1\""))
        .unwrap();
    let reloaded = lines
        .iter()
        .position(|l| l.contains("workflow reloaded"))
        .unwrap();
    assert!(broken < reloaded && reloaded < dispatched);
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

#[test]
fn a_fifo_or_an_oversized_file_as_the_workflow_is_refused_and_never_blocks() {
    let dir = tempfile::tempdir().unwrap();
    // `check` on a FIFO: refused at once (it used to wait for a writer forever).
    mkfifo(&dir.path().join("fifo.md"));
    let out = Command::new(env!("CARGO_BIN_EXE_symphony"))
        .args(["check", "fifo.md"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a regular file"), "{stderr}");
    // More than 1 MiB: refused with the size and the cap.
    let big = format!("{}\n{}", workflow(""), "x".repeat(1 << 20));
    std::fs::write(dir.path().join("big.md"), big).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_symphony"))
        .args(["check", "big.md"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("more than the 1048576 bytes allowed"),
        "{stderr}"
    );

    // A running daemon whose WORKFLOW.md becomes a FIFO keeps the last good workflow and
    // still shuts down at once.
    let path = dir.path().join("WORKFLOW.md");
    std::fs::write(&path, workflow("")).unwrap();
    std::fs::create_dir_all(dir.path().join("issues")).unwrap();
    let mut daemon = Daemon::start(dir.path(), &[]);
    daemon.wait_for("startup", |l| l.contains("symphony started"));
    let fifo = dir.path().join("next.fifo");
    mkfifo(&fifo);
    std::fs::rename(&fifo, &path).unwrap();
    daemon.wait_for("the refused FIFO", |l| {
        l.contains("not a regular file") && l.contains("keeping the last good workflow")
    });
    daemon.interrupt();
    let (code, lines) = daemon.wait_exit();
    assert_eq!(code, Some(0), "{}", lines.join("\n"));
}

#[test]
fn text_from_outside_cannot_forge_log_lines_or_reach_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let hooks = "hooks:\n  after_run: \"printf '\\\\033]0;pwned\\\\007\\\\033[2Jclear\\\\n2026-11-30T00:00:00Z  INFO hook forged\\\\n'; exit 3\"\n";
    std::fs::write(dir.path().join("WORKFLOW.md"), workflow(hooks)).unwrap();
    issue(dir.path(), "L-1", "Todo", "");
    // A file name carrying a newline and a fake log line.
    std::fs::write(
        dir.path()
            .join("issues/F-1\n2026-11-30T00:00:00Z  INFO name forged.md"),
        "---\nstate: Todo\n---\n",
    )
    .unwrap();
    let mut daemon = Daemon::start(dir.path(), &["--event-log", "events.ndjson"]);
    let skipped = daemon.wait_for("the skipped file", |l| l.contains("skipping issue file"));
    assert!(
        skipped.contains("F-1\\n2026"),
        "the newline is escaped: {skipped}"
    );
    let failed = daemon.wait_for("the failing hook", |l| {
        l.contains("hook") && l.contains("exit")
    });
    // A few more polls (200 ms apart) list the bad file again.
    daemon.wait_for("L-1 done", |l| l.contains("released") && l.contains("L-1"));
    let polls = || {
        std::fs::read_to_string(dir.path().join("events.ndjson"))
            .unwrap_or_default()
            .matches("\"candidates_fetched\"")
            .count()
    };
    let deadline = std::time::Instant::now() + daemon_harness::BOUND;
    while polls() < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "no 4 polls within the bound"
        );
        std::thread::yield_now();
    }
    daemon.interrupt();
    let (code, lines) = daemon.wait_exit();
    assert_eq!(code, Some(0), "{}", lines.join("\n"));
    assert!(failed.contains("\\u{1b}]0;pwned"), "{failed}");
    for line in &lines {
        assert!(
            !line.contains('\u{1b}') && !line.contains('\u{7}'),
            "raw control: {line:?}"
        );
        assert!(
            !line.starts_with("2026-11-30T00:00:00Z"),
            "forged line: {line}"
        );
    }
    // Said once, not on every poll.
    let warnings = lines
        .iter()
        .filter(|l| l.contains("skipping issue file"))
        .count();
    assert_eq!(warnings, 1, "{}", lines.join("\n"));
}

#[test]
fn a_running_hook_does_not_outlive_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("hook.pid");
    let hooks = format!(
        "hooks:\n  before_run: \"echo $$ > {}; sleep 1003\"\n  timeout_ms: 3600000\n",
        pid_file.display()
    );
    std::fs::write(dir.path().join("WORKFLOW.md"), workflow(&hooks)).unwrap();
    issue(dir.path(), "S-1", "Todo", "");
    let mut daemon = Daemon::start(dir.path(), &[]);
    daemon.wait_for("the hook", |l| l.contains("hook started"));
    let pid = daemon_harness::pid_in(&pid_file);
    let stopping = std::time::Instant::now();
    daemon.terminate();
    let (code, lines) = daemon.wait_exit();
    assert_eq!(code, Some(0), "{}", lines.join("\n"));
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        stopping.elapsed()
    );
    // The hook's shell and its sleep (same group) are gone.
    assert!(support::process_is_gone(pid), "the hook survived shutdown");
    // Its sleep is reaped by init a moment after the shell: wait for that, bounded.
    let group = rustix::process::Pid::from_raw(pid as i32).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while rustix::process::test_kill_process_group(group).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "a process of the hook's group survived"
        );
        std::thread::yield_now();
    }
}

#[test]
fn a_template_check_rejects_is_rejected_at_startup_and_on_reload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("WORKFLOW.md");
    std::fs::create_dir_all(dir.path().join("issues")).unwrap();
    let broken = workflow("").replace(
        "Work on {{ issue.identifier }}",
        "Work on {{ issue.titel }}",
    );
    std::fs::write(&path, &broken).unwrap();
    // Startup: refused, exit 1, the same error `check` gives.
    let out = Command::new(env!("CARGO_BIN_EXE_symphony"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error[template_render_error]"), "{stderr}");

    // Reload: the broken edit is refused and the last good workflow stays.
    std::fs::write(&path, workflow("")).unwrap();
    let mut daemon = Daemon::start(dir.path(), &[]);
    daemon.wait_for("startup", |l| l.contains("symphony started"));
    replace(&path, &broken);
    let refused = daemon.wait_for("the refused reload", |l| {
        l.contains("template_render_error") && l.contains("keeping the last good workflow")
    });
    assert!(refused.contains("ERROR"), "{refused}");
    daemon.interrupt();
    let (code, lines) = daemon.wait_exit();
    assert_eq!(code, Some(0));
    assert!(
        !lines.iter().any(|l| l.contains("workflow reloaded")),
        "{}",
        lines.join("\n")
    );
}

#[test]
fn held_back_issues_are_shown_with_why_and_finished_runs_count_as_completed() {
    let dir = tempfile::tempdir().unwrap();
    // The demo agent moves its issue to Done in its last turn. With a fast poll, a tick can
    // see Done before that turn ends and stop the worker as "terminal" (correct, but not the
    // path under test), so timed polls are off here: the start-up poll, the operator's
    // refresh below and the between-turn refreshes are the only reads, and that last one is
    // what counts a run as completed.
    let text = workflow("")
        .replace("interval_ms: 200", "interval_ms: 3600000")
        .replace("---\nWork", "server:\n  port: 0\n---\nWork");
    std::fs::write(dir.path().join("WORKFLOW.md"), text).unwrap();
    issue(dir.path(), "W-1", "Todo", "priority: 1\n");
    issue(dir.path(), "W-2", "Todo", "blocked_by: [W-1]\n");
    // Blocked by an issue that never finishes: waits for good.
    issue(dir.path(), "W-3", "Backlog", "");
    issue(dir.path(), "W-4", "Todo", "blocked_by: [W-3]\n");
    let mut daemon = Daemon::start(dir.path(), &[]);
    let addr = daemon.http_addr();
    let waiting = daemon.wait_for("W-4 waiting", |l| {
        l.contains("waiting:") && l.contains("issue_identifier=\"W-4\"")
    });
    assert!(waiting.contains("W-3 (Backlog)"), "{waiting}");
    for id in ["W-1", "W-2"] {
        daemon.wait_for(&format!("{id} released"), |l| {
            l.contains("released")
                && l.contains(&format!("issue_id=\"{id}\""))
                && l.contains("run completed")
        });
        if id == "W-1" {
            // W-2's blocker is done; a poll now finds W-2 ready.
            let (status, _, _) = http(&addr, "POST", "/api/v1/refresh", None);
            assert_eq!(status, 202);
        }
    }
    let detail = daemon_harness::get_json(&addr, "/api/v1/issues/W-4");
    assert_eq!(detail["status"], "waiting", "{detail:#}");
    assert!(
        detail["waiting"]["reason"]
            .as_str()
            .unwrap()
            .contains("waiting for its blockers: W-3 (Backlog)"),
        "{detail:#}"
    );
    let state = daemon_harness::get_json(&addr, "/api/v1/state");
    assert_eq!(state["counts"]["waiting"], 1, "{state:#}");
    assert_eq!(state["dispatch"]["completed_runs"], 2, "{state:#}");
    let (_, _, page) = http(&addr, "GET", "/", None);
    assert!(
        page.contains("class=\"waiting-row\" data-identifier=\"W-4\""),
        "{page}"
    );
    daemon.interrupt();
    let (code, lines) = daemon.wait_exit();
    assert_eq!(code, Some(0));
    let w2_waits = lines
        .iter()
        .filter(|l| l.contains("waiting:") && l.contains("issue_identifier=\"W-2\""))
        .count();
    assert_eq!(
        w2_waits,
        1,
        "said once, not every poll: {}",
        lines.join("\n")
    );
    let w4_waits = lines
        .iter()
        .filter(|l| l.contains("waiting:") && l.contains("issue_identifier=\"W-4\""))
        .count();
    assert_eq!(w4_waits, 1, "{}", lines.join("\n"));
    assert!(
        !lines.iter().any(|l| l.contains("worker cancelled")),
        "a finished run is not reported as cancelled"
    );
}

#[test]
fn the_http_api_serves_state_issue_refresh_and_the_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let text = workflow("")
        .replace("demo_turn_ms: 50", "demo_turn_ms: 600000")
        .replace(
            "---\nWork",
            "server:\n  port: 0\n  auth_token: $DASH_TOKEN\n---\nWork",
        );
    std::fs::write(dir.path().join("WORKFLOW.md"), text).unwrap();
    issue(dir.path(), "H-1", "Todo", "");
    let mut command_env =
        Daemon::start_with_env(dir.path(), &[], &[("DASH_TOKEN", "tok-1234-secret-abcdef")]);
    let listening = command_env.wait_for("the listener", |l| l.contains("HTTP server listening"));
    let addr = listening
        .split("http://")
        .nth(1)
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    command_env.wait_for("H-1 running", |l| {
        l.contains("dispatching issue_id=\"H-1\"")
    });
    let token = Some("tok-1234-secret-abcdef");

    assert_eq!(http(&addr, "GET", "/livez", None).0, 200);
    assert_eq!(http(&addr, "GET", "/api/v1/state", None).0, 401);
    assert_eq!(http(&addr, "GET", "/readyz", token).0, 200);

    let (status, _, body) = http(&addr, "GET", "/api/v1/state", token);
    assert_eq!(status, 200);
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(state["counts"]["running"], 1);
    assert_eq!(state["running"][0]["issue_identifier"], "H-1");
    assert!(!body.contains("tok-1234-secret-abcdef"));

    let (status, _, body) = http(&addr, "GET", "/api/v1/H-1", token);
    assert_eq!(status, 200);
    let detail: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(detail["status"], "running", "{body}");
    let (status, _, body) = http(&addr, "GET", "/api/v1/NOPE-1", token);
    assert_eq!(status, 404);
    assert!(body.contains("issue_not_found"));

    let (status, _, body) = http(&addr, "POST", "/api/v1/refresh", token);
    assert_eq!(status, 202);
    let refresh: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(refresh["queued"], true);
    assert_eq!(
        refresh["operations"],
        serde_json::json!(["poll", "reconcile"])
    );

    let (status, head, _) = http(&addr, "PUT", "/api/v1/state", token);
    assert_eq!(status, 405);
    assert!(
        head.to_ascii_lowercase().contains("allow: get, head"),
        "{head}"
    );
    let (status, head, _) = http(&addr, "GET", "/api/v1/refresh", token);
    assert_eq!(status, 405);
    assert!(head.to_ascii_lowercase().contains("allow: post"), "{head}");

    let (status, head, html) = http(&addr, "GET", "/", token);
    assert_eq!(status, 200);
    assert!(head.to_ascii_lowercase().contains("text/html"));
    assert!(html.contains("data-identifier=\"H-1\""), "{html}");

    command_env.interrupt();
    let (code, lines) = command_env.wait_exit();
    assert_eq!(code, Some(0), "{}", lines.join("\n"));
}

#[test]
fn running_out_of_file_descriptors_does_not_stop_the_http_server() {
    let dir = tempfile::tempdir().unwrap();
    let text = workflow("").replace("---\nWork", "server:\n  port: 0\n---\nWork");
    std::fs::write(dir.path().join("WORKFLOW.md"), text).unwrap();
    // 64 descriptors: the daemon needs about 20 of its own; 150 connections exhaust the rest.
    let mut daemon = Daemon::start_with_nofile(dir.path(), &[], 64);
    let addr = daemon.http_addr();
    let held: Vec<std::net::TcpStream> = (0..150)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    // accept fails with EMFILE; the server closes idle connections to make room and goes on.
    daemon.wait_for("the accept failure", |l| l.contains("HTTP accept failed"));
    assert_eq!(http(&addr, "GET", "/livez", None).0, 200);
    assert_eq!(http(&addr, "GET", "/api/v1/state", None).0, 200);
    drop(held);
    for _ in 0..20 {
        assert_eq!(http(&addr, "GET", "/livez", None).0, 200);
    }
    daemon.interrupt();
    let (code, lines) = daemon.wait_exit();
    assert_eq!(code, Some(0), "{}", lines.join("\n"));
    let warnings = lines
        .iter()
        .filter(|l| l.contains("HTTP accept failed"))
        .count();
    assert_eq!(warnings, 1, "logged at most once a minute");
}

#[test]
fn logs_root_holds_a_json_log_with_issue_fields_and_the_event_log() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("WORKFLOW.md"), workflow("")).unwrap();
    issue(dir.path(), "J-1", "Todo", "");
    let mut daemon = Daemon::start(dir.path(), &["--logs-root", "logs", "--log-format", "json"]);
    daemon.wait_for("J-1 released", |l| {
        l.contains("released") && l.contains("issue_id=\"J-1\"")
    });
    daemon.interrupt();
    let (code, _) = daemon.wait_exit();
    assert_eq!(code, Some(0));

    let log = std::fs::read_to_string(dir.path().join("logs/symphony.log")).unwrap();
    let records: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let dispatch = records
        .iter()
        .find(|r| r["message"] == "dispatching")
        .expect("a dispatch line");
    assert_eq!(dispatch["issue_id"], "J-1");
    assert_eq!(dispatch["issue_identifier"], "J-1");
    assert_eq!(dispatch["level"], "INFO");
    assert!(records.iter().any(|r| r["message"] == "symphony stopped"));

    replay_check(dir.path(), &["logs/events.ndjson"]);
}

#[test]
fn old_workspaces_of_inactive_issues_are_swept_fresh_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("WORKFLOW.md"),
        workflow("").replace(
            "workspace:\n  root: ./ws\n",
            "workspace:\n  root: ./ws\n  max_age_days: 7\n",
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("issues")).unwrap();
    for name in ["OLD-1", "FRESH-1"] {
        made_by_symphony(dir.path(), name);
    }
    // Old too, but not made by symphony: never swept.
    std::fs::create_dir_all(dir.path().join("ws/STRANGER-1")).unwrap();
    let ten_days_ago = std::time::SystemTime::now() - Duration::from_secs(10 * 86_400);
    for name in ["OLD-1", "STRANGER-1"] {
        std::fs::File::open(dir.path().join("ws").join(name))
            .unwrap()
            .set_modified(ten_days_ago)
            .unwrap();
    }
    let mut daemon = Daemon::start(dir.path(), &[]);
    daemon.wait_for("the sweep", |l| l.contains("age sweep: removed"));
    daemon.wait_for("the orphan report", |l| {
        l.contains("ws/FRESH-1 matches no issue")
    });
    daemon.interrupt();
    let (code, lines) = daemon.wait_exit();
    assert_eq!(code, Some(0), "{}", lines.join("\n"));
    assert!(!dir.path().join("ws/OLD-1").exists());
    assert!(dir.path().join("ws/FRESH-1").exists());
    assert!(dir.path().join("ws/STRANGER-1").exists());
    assert!(
        lines
            .iter()
            .any(|l| l.contains("ws/FRESH-1 matches no issue")),
        "orphans are reported, not deleted"
    );
}

/// A workspace as the daemon leaves it: the directory and its mark.
fn made_by_symphony(dir: &Path, name: &str) {
    std::fs::create_dir_all(dir.join("ws").join(name)).unwrap();
    std::fs::create_dir_all(dir.join("ws/.symphony/created")).unwrap();
    std::fs::write(dir.join("ws/.symphony/created").join(name), name).unwrap();
}

#[test]
fn a_size_capped_event_log_rotates_into_segments_that_replay_alone_and_as_a_chain() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("WORKFLOW.md"), workflow("")).unwrap();
    // Not a log this build can restore from: --fresh moves it aside, never overwrites it.
    std::fs::write(dir.path().join("events.ndjson"), "a previous run's log\n").unwrap();
    for n in 1..=4 {
        issue(dir.path(), &format!("R-{n}"), "Todo", "");
    }
    let mut daemon = Daemon::start(
        dir.path(),
        &[
            "--fresh",
            "--event-log",
            "events.ndjson",
            "--event-log-max-size",
            "4K",
            "--event-log-keep",
            "50",
        ],
    );
    for n in 1..=4 {
        daemon.wait_for(&format!("R-{n} released"), |l| {
            l.contains("released") && l.contains(&format!("issue_id=\"R-{n}\""))
        });
    }
    daemon.interrupt();
    let (code, lines) = daemon.wait_exit();
    assert_eq!(code, Some(0), "{}", lines.join("\n"));
    assert!(lines.iter().any(|l| l.contains("event log rotated")));

    // This run's segments, oldest first; the earlier run's file is the oldest of all.
    let mut segments: Vec<String> = (1..=50)
        .map(|n| format!("events.ndjson.{n}"))
        .filter(|name| dir.path().join(name).exists())
        .collect();
    let oldest = segments.pop().expect("at least the earlier run's log");
    assert_eq!(
        std::fs::read_to_string(dir.path().join(&oldest)).unwrap(),
        "a previous run's log\n",
        "the earlier log is moved aside, not overwritten"
    );
    segments.reverse();
    segments.push("events.ndjson".into());
    assert!(segments.len() >= 3, "4K segments: {segments:?}");
    for segment in &segments {
        let size = std::fs::metadata(dir.path().join(segment)).unwrap().len();
        let header = std::fs::read_to_string(dir.path().join(segment)).unwrap();
        let header = header.lines().next().unwrap().len() as u64;
        assert!(
            size < 4096 + header + 8192,
            "{segment} is {size} bytes: cut soon after the cap"
        );
    }
    let replay = |files: &[String]| {
        Command::new(env!("CARGO_BIN_EXE_symphony"))
            .arg("replay")
            .arg("--check")
            .args(files)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    for segment in &segments {
        let out = replay(std::slice::from_ref(segment));
        assert!(
            out.status.success(),
            "{segment} alone: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = replay(&segments);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the chain: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("resumes at seq"), "{stdout}");
    assert!(
        stdout.contains("\"completed_runs\""),
        "ends with the snapshot"
    );

    // A segment whose resume state was altered is caught by the chain check.
    let last = dir.path().join(segments.last().unwrap());
    let text = std::fs::read_to_string(&last).unwrap();
    let (header, rest) = text.split_once('\n').unwrap();
    let mut header: serde_json::Value = serde_json::from_str(header).unwrap();
    let completed = header["resume"]["state"]["completed_runs"]
        .as_u64()
        .unwrap();
    header["resume"]["state"]["completed_runs"] = (completed + 7).into();
    std::fs::write(&last, format!("{header}\n{rest}")).unwrap();
    let out = replay(&segments);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("divergence at seq") && stderr.contains("resumes from"),
        "{stderr}"
    );

    // A missing middle segment is named, not replayed over.
    let mut gap = segments.clone();
    gap.remove(1);
    let out = replay(&gap);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&gap[1]) && stderr.contains("a segment is missing"),
        "{stderr}"
    );
}

#[test]
fn startup_removes_the_workspaces_of_issues_already_terminal() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("WORKFLOW.md"), workflow("")).unwrap();
    issue(dir.path(), "OLD-1", "Done", "");
    issue(dir.path(), "KEEP-1", "Backlog", "");
    for name in ["OLD-1", "KEEP-1"] {
        made_by_symphony(dir.path(), name);
        std::fs::write(dir.path().join("ws").join(name).join("work.txt"), "x").unwrap();
    }
    // An issue named like a directory someone keeps under the root: not ours, never removed.
    issue(dir.path(), "projects", "Done", "");
    std::fs::create_dir_all(dir.path().join("ws/projects/important")).unwrap();
    std::fs::write(dir.path().join("ws/projects/important/thesis.txt"), "years").unwrap();
    let mut daemon = Daemon::start(dir.path(), &[]);
    daemon.wait_for("OLD-1's workspace removed", |l| {
        l.contains("workspace removed") && l.contains("issue_id=\"OLD-1\"")
    });
    daemon.wait_for("projects left alone", |l| {
        l.contains("issue_id=\"projects\"") && l.contains("symphony did not create it")
    });
    daemon.interrupt();
    let (code, lines) = daemon.wait_exit();
    assert_eq!(code, Some(0), "{}", lines.join("\n"));
    assert!(!dir.path().join("ws/OLD-1").exists());
    assert!(
        dir.path().join("ws/KEEP-1/work.txt").exists(),
        "a non-terminal issue's workspace is kept"
    );
    assert!(dir.path().join("ws/projects/important/thesis.txt").exists());
}

#[test]
fn a_failing_event_log_pauses_recording_not_the_daemon_and_recovers() {
    // Writes to /dev/full fail with ENOSPC: the sink breaks on its first flush. The log path
    // is a symlink to it; once the symlink is gone, the retry records into a new file.
    assert!(
        Path::new("/dev/full").exists(),
        "this test needs /dev/full (Linux)"
    );
    let dir = tempfile::tempdir().unwrap();
    let text = workflow("").replace("---\nWork", "server:\n  port: 0\n---\nWork");
    std::fs::write(dir.path().join("WORKFLOW.md"), text).unwrap();
    issue(dir.path(), "F-1", "Todo", "");
    let log = dir.path().join("events.ndjson");
    std::os::unix::fs::symlink("/dev/full", &log).unwrap();
    let mut daemon = Daemon::start(dir.path(), &["--event-log", "events.ndjson"]);
    let addr = daemon.http_addr();
    daemon.wait_for("the sink failure", |l| {
        l.contains("event log") && l.contains("recording pauses")
    });
    daemon.wait_for("F-1 released after it", |l| {
        l.contains("released") && l.contains("issue_id=\"F-1\"")
    });
    let state = daemon_harness::get_json(&addr, "/api/v1/state");
    assert_eq!(state["event_log"]["recording"], false, "{state:#}");
    assert!(
        state["event_log"]["error"]
            .as_str()
            .unwrap()
            .contains("No space"),
        "{state:#}"
    );
    assert!(state["event_log"]["lost_records"].as_u64().unwrap() > 0);

    std::fs::remove_file(&log).unwrap();
    daemon.wait_for("recording again", |l| {
        l.contains("event log recording again")
    });
    let state = daemon_harness::get_json(&addr, "/api/v1/state");
    assert_eq!(state["event_log"]["recording"], true, "{state:#}");
    daemon.interrupt();
    let (code, lines) = daemon.wait_exit();
    assert_eq!(code, Some(0), "{}", lines.join("\n"));
    assert_eq!(state_of(dir.path(), "F-1"), "Done", "work went on");
    // The new segment resumes from the state it started in, so it replays on its own.
    replay_check(dir.path(), &["events.ndjson"]);
}

#[test]
fn event_log_paths_and_counts_that_would_do_harm_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("WORKFLOW.md"), workflow("")).unwrap();
    std::fs::create_dir_all(dir.path().join("issues")).unwrap();
    std::fs::create_dir_all(dir.path().join("logs-dir/inside")).unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_symphony"))
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    // A directory as the event log: refused, not renamed to `.1`.
    let out = run(&["--event-log", "logs-dir"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a regular file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("logs-dir/inside").is_dir());
    assert!(!dir.path().join("logs-dir.1").exists());
    // Twenty million segments to shift at startup: a usage error at once.
    let out = run(&["--event-log", "e.ndjson", "--event-log-keep", "20000000"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("0..=1000"));
}

/// `agent.run_timeout_ms` end to end: the shell sleeps until the core's run deadline (polls
/// are an hour apart here, so nothing else wakes it), the run is stopped and a failure retry
/// is queued.
#[test]
fn a_run_past_its_timeout_is_stopped_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let text = workflow("  run_timeout_ms: 400\n")
        .replace("demo_turn_ms: 50", "demo_turn_ms: 600000")
        .replace("interval_ms: 200", "interval_ms: 3600000");
    std::fs::write(dir.path().join("WORKFLOW.md"), text).unwrap();
    issue(dir.path(), "T-1", "Todo", "");
    let mut daemon = Daemon::start(dir.path(), &[]);
    let stop = daemon.wait_for("the timeout stop", |l| {
        l.contains("stopping worker") && l.contains("issue_id=\"T-1\"")
    });
    assert!(stop.contains("run timed out after 400 ms"), "{stop}");
    let retry = daemon.wait_for("the retry", |l| {
        l.contains("retry scheduled") && l.contains("issue_identifier=\"T-1\"")
    });
    assert!(retry.contains("attempt=1"), "{retry}");
    assert!(retry.contains("run timed out after 400 ms"), "{retry}");
    daemon.interrupt();
    let (code, _) = daemon.wait_exit();
    assert_eq!(code, Some(0));
}

/// aiops-platform's `agent.max_continuation_turns` end to end: once the claim's completed turns
/// reach it, the still-active issue is held, not continued.
#[test]
fn a_claim_out_of_turns_is_held_not_continued() {
    let dir = tempfile::tempdir().unwrap();
    let text = workflow("  max_continuation_turns: 1\n")
        .replace("---\nWork", "server:\n  port: 0\n---\nWork");
    std::fs::write(dir.path().join("WORKFLOW.md"), text).unwrap();
    // The demo agent moves its issue to Done only in its third turn; after the first the issue
    // is still active.
    issue(dir.path(), "T-1", "Todo", "");
    let mut daemon = Daemon::start(dir.path(), &[]);
    let held = daemon.wait_for("the hold", |l| {
        l.contains("held:") && l.contains("issue_identifier=\"T-1\"")
    });
    assert!(held.contains("turn budget used: 1 of 1 turns"), "{held}");
    let addr = daemon.http_addr();
    let detail = daemon_harness::get_json(&addr, "/api/v1/issues/T-1");
    assert_eq!(detail["status"], "blocked", "{detail:#}");
    daemon.interrupt();
    let (code, lines) = daemon.wait_exit();
    assert_eq!(code, Some(0));
    let turns = lines.iter().filter(|l| l.contains("turn started")).count();
    assert_eq!(turns, 1, "no turn after the budget: {lines:#?}");
}

/// The daemon writes the tamper-evident audit log in its state root (issue 18): a demo run
/// leaves a chain that `symphony audit verify` accepts, with the prompt sent (its hash, not the
/// prompt), the workspace, the tracker write and the removal; a state root that is a symlink
/// is refused at start.
#[test]
fn a_run_leaves_a_verifiable_audit_trail_in_the_state_root() {
    let dir = tempfile::tempdir().unwrap();
    let hooks = workflow("").replace("polling:", "hooks:\n  before_run: echo ready\npolling:");
    std::fs::write(dir.path().join("WORKFLOW.md"), hooks).unwrap();
    issue(dir.path(), "A-1", "Todo", "");
    let mut daemon = Daemon::start(dir.path(), &[]);
    daemon.wait_for("A-1 released", |l| {
        l.contains("released") && l.contains("issue_id=\"A-1\"")
    });
    daemon.interrupt();
    assert_eq!(daemon.wait_exit().0, Some(0));
    let audit = dir.path().join("state/audit");
    let out = Command::new(env!("CARGO_BIN_EXE_symphony"))
        .args(["audit", "verify"])
        .arg(&audit)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text: String = (std::fs::read_dir(&audit).unwrap().flatten())
        .map(|f| std::fs::read_to_string(f.path()).unwrap())
        .collect();
    for kind in [
        "daemon_started",
        "workspace_ready",
        "prompt_sent",
        "tracker_write",
        "workspace_removed",
        "hook_run",
        "tokens",
    ] {
        assert!(
            text.contains(&format!("\"type\":\"{kind}\"")),
            "{kind}: {text}"
        );
    }
    assert!(text.contains("\"sha256\":"), "{text}");
    assert!(
        !text.contains("Work on A-1."),
        "never the whole prompt: {text}"
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(dir.path().join("state"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);

    // A planted symlink as the state root is refused.
    let elsewhere = tempfile::tempdir().unwrap();
    let planted = dir.path().join("planted");
    std::os::unix::fs::symlink(elsewhere.path(), &planted).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_symphony"))
        .current_dir(dir.path())
        .args(["--state-dir", "planted", "--port", "-1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is a symlink; refused"));
}

/// `symphony pause|stop|resume` against a running daemon: a pause keeps new issues waiting
/// while the running agent goes on, a stop ends one run and holds its issue, the pause
/// outlives a restart, a resume dispatches what waited, and each step is in the audit log.
#[test]
fn pause_stop_and_resume_from_the_command_line_and_the_pause_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let slow = workflow("  max_tokens_per_day: 1000000\n")
        .replace("demo_turn_ms: 50", "demo_turn_ms: 600000")
        .replace("interval_ms: 200", "interval_ms: 3600000");
    std::fs::write(dir.path().join("WORKFLOW.md"), slow).unwrap();
    issue(dir.path(), "A-1", "Todo", "");
    let cli = |args: &[&str], addr: &str| {
        let url = format!("http://{addr}");
        let out = Command::new(env!("CARGO_BIN_EXE_symphony"))
            .args(args)
            .args(["--url", &url])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let mut daemon = Daemon::start(dir.path(), &["--port", "0"]);
    let addr = daemon.http_addr();
    daemon.wait_for("A-1 running", |l| {
        l.contains("agent session started") && l.contains("\"A-1\"")
    });
    let (code, text) = cli(&["pause", "--reason", "deploy freeze"], &addr);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("deploy freeze"), "{text}");
    issue(dir.path(), "B-1", "Todo", "");
    let (status, _, _) = http(&addr, "POST", "/api/v1/refresh", None);
    assert_eq!(status, 202);
    let state = wait_state(&addr, |s| {
        s["waiting"].as_array().is_some_and(|w| !w.is_empty())
    });
    assert_eq!(state["dispatch"]["paused"]["reason"], "deploy freeze");
    assert!(
        state["waiting"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("paused by the operator"),
        "{state:#}"
    );
    assert_eq!(state["running"].as_array().unwrap().len(), 1, "A-1 goes on");
    let (code, text) = cli(&["stop", "NOPE-9"], &addr);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("has no live run"), "{text}");
    let (code, text) = cli(&["stop", "A-1"], &addr);
    assert_eq!(code, Some(0), "{text}");
    let held = daemon.wait_for("A-1 held", |l| l.contains("held:") && l.contains("\"A-1\""));
    assert!(held.contains("stopped by the operator"), "{held}");
    daemon.interrupt();
    assert_eq!(daemon.wait_exit().0, Some(0));
    let kept = std::fs::read_to_string(dir.path().join("state/state.json")).unwrap();
    assert!(kept.contains("deploy freeze"), "{kept}");

    // A restart keeps the pause; a resume dispatches what waited.
    let mut daemon = Daemon::start(dir.path(), &["--port", "0"]);
    let addr = daemon.http_addr();
    daemon.wait_for("the kept pause", |l| l.contains("dispatch stays paused"));
    let state = wait_state(&addr, |s| s["dispatch"]["ready"] == true);
    assert_eq!(state["dispatch"]["paused"]["reason"], "deploy freeze");
    assert!(state["running"].as_array().unwrap().is_empty(), "{state:#}");
    let (code, text) = cli(&["resume"], &addr);
    assert_eq!(code, Some(0), "{text}");
    daemon.wait_for("B-1 running", |l| {
        l.contains("agent session started") && l.contains("\"B-1\"")
    });
    // The dashboard's form: a urlencoded pause goes back to the page; another site's page
    // cannot post one.
    let form = |origin: &str| {
        use std::io::{Read as _, Write as _};
        let body = "reason=second+freeze%21";
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            stream,
            "POST /api/v1/pause HTTP/1.1\r\nHost: {addr}\r\nOrigin: {origin}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    };
    let evil = form("http://evil.example");
    assert!(evil.starts_with("HTTP/1.1 403"), "{evil}");
    let own = form(&format!("http://{addr}"));
    assert!(
        own.starts_with("HTTP/1.1 303") && own.contains("Location: /\r\n"),
        "{own}"
    );
    let state = daemon_harness::get_json(&addr, "/api/v1/state");
    assert_eq!(state["dispatch"]["paused"]["reason"], "second freeze!");
    daemon.interrupt();
    assert_eq!(daemon.wait_exit().0, Some(0));
    let audit: String = (std::fs::read_dir(dir.path().join("state/audit"))
        .unwrap()
        .flatten())
    .map(|f| std::fs::read_to_string(f.path()).unwrap())
    .collect();
    for kind in ["dispatch_paused", "run_stopped", "dispatch_resumed"] {
        assert!(
            audit.contains(&format!("\"type\":\"{kind}\"")),
            "{kind}: {audit}"
        );
    }
}

/// Polls `/api/v1/state` until `done` holds (bounded).
fn wait_state(addr: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let state = daemon_harness::get_json(addr, "/api/v1/state");
        if done(&state) {
            return state;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "state never got there: {state:#}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `GET /metrics` through a running daemon: the Prometheus text that `promtool check metrics`
/// accepts with no lint problem, with figures that follow what happened (a dispatch, an ended
/// run, tracker requests, HTTP requests by route, the pause), behind the API's token.
#[test]
fn metrics_pass_promtool_and_follow_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let token = "metrics-token-0123456789";
    std::fs::write(
        dir.path().join("WORKFLOW.md"),
        workflow(&format!("server:\n  auth_token: {token}\n")),
    )
    .unwrap();
    issue(dir.path(), "A-1", "Todo", "");
    let mut daemon = Daemon::start(dir.path(), &["--port", "0"]);
    let addr = daemon.http_addr();
    daemon.wait_for("A-1 released", |l| {
        l.contains("released") && l.contains("issue_id=\"A-1\"")
    });
    let (status, _, _) = http(&addr, "GET", "/metrics", None);
    assert_eq!(status, 401, "behind the token like the API");
    let (status, _, _) = http(&addr, "POST", "/api/v1/pause", Some(token));
    assert_eq!(status, 200);
    let (status, head, text) = http(&addr, "GET", "/metrics", Some(token));
    assert_eq!(status, 200, "{text}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    let value = |series: &str| -> f64 {
        (text.lines())
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    assert!(value("symphony_dispatches_total") >= 1.0);
    assert!(
        value("symphony_runs_ended_total{outcome=\"cancelled\"}") >= 1.0,
        "{text}"
    );
    assert!(value("symphony_run_duration_seconds_count") >= 1.0);
    assert!(
        value("symphony_tracker_requests_total{operation=\"candidates\",result=\"ok\"}") >= 1.0
    );
    assert!(value("symphony_poll_tick_duration_seconds_count") >= 1.0);
    assert!(value("symphony_agent_tokens_total{kind=\"total\"}") > 0.0);
    assert_eq!(value("symphony_dispatch_paused"), 1.0);
    assert_eq!(value("symphony_issues{status=\"running\"}"), 0.0);
    assert!(value("symphony_http_requests_total{route=\"/metrics\",status=\"401\"}") >= 1.0);
    assert!(value("symphony_log_bytes{log=\"audit\"}") > 0.0);
    assert!(!text.contains(token), "no secret on the page");
    // promtool: a clean parse and no lint problem (exit 0; 1 is a parse error, 3 a lint one).
    let mut check = Command::new(support::promtool_binary())
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut check.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    daemon.interrupt();
    assert_eq!(daemon.wait_exit().0, Some(0));
}
