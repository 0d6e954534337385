//! Restart recovery through the daemon binary: a daemon killed with SIGKILL and started again on
//! the same state root carries on from its event log (retry queue, holds, tokens), kills what
//! the dead one left running before dispatching anything, refuses a second daemon on the same
//! state root, and refuses a log it cannot read unless told `--fresh`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use symphony_core::log::{read_log_tolerating_torn_tail, replay};
use symphony_core::{Command as CoreCommand, Event, RetryKind};

use crate::daemon_harness::{Daemon, replay_check};
use crate::support;

fn workflow(dir: &Path, hooks: &str) {
    std::fs::create_dir_all(dir.join("issues")).unwrap();
    std::fs::write(
        dir.join("WORKFLOW.md"),
        format!(
            "---\ntracker:\n  kind: local\n  terminal_states: [Done]\npolling:\n  interval_ms: 200\nworkspace:\n  root: ./ws\nhooks:\n  timeout_ms: 120000\n{hooks}agent:\n  kind: demo\n  demo_turn_ms: 150\n  max_concurrent_agents: 3\n---\nWork on {{{{ issue.identifier }}}}.\n"
        ),
    )
    .unwrap();
}

fn issue(dir: &Path, id: &str) {
    std::fs::write(
        dir.join(format!("issues/{id}.md")),
        format!("---\ntitle: {id}\nstate: Todo\n---\nBody.\n"),
    )
    .unwrap();
}

/// Waits (bounded) for `path` to hold a pid.
fn pid_file(path: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "no pid in {}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

/// A hook that runs for a minute (`exec sleep`), its pid written first.
const SLOW_HOOK: &str =
    "  before_run: echo $$ > ../../hook-$SYMPHONY_ISSUE_IDENTIFIER.pid; exec sleep 60\n";

#[test]
fn a_killed_daemon_leaves_nothing_running_after_its_restart_and_its_run_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    workflow(dir.path(), SLOW_HOOK);
    issue(dir.path(), "A-1");
    let daemon = Daemon::start(dir.path(), &["--port", "-1"]);
    let hook = pid_file(&dir.path().join("hook-A-1.pid"));
    let lines = daemon.kill();
    assert!(
        alive(hook),
        "the dead daemon's hook survives it: {lines:#?}"
    );
    std::fs::remove_file(dir.path().join("hook-A-1.pid")).unwrap();

    let mut daemon = Daemon::start(dir.path(), &["--port", "-1"]);
    let killed = daemon.wait_for("the leftover killed", |l| l.contains("left running"));
    assert!(killed.contains("killed 1 process group"), "{killed}");
    assert!(support::process_is_gone(hook), "the leftover hook");
    // A-1's run was live: it is retried, and its hook starts again.
    let restored = daemon.wait_for("the restore", |l| l.contains("restored from"));
    assert!(restored.contains("running=1"), "{restored}");
    let again = pid_file(&dir.path().join("hook-A-1.pid"));
    assert_ne!(again, hook);
    // One daemon per state root.
    let second = Command::new(env!("CARGO_BIN_EXE_symphony"))
        .current_dir(dir.path())
        .env("SYMPHONY_STATE_DIR", dir.path().join("state"))
        .args(["--port", "-1"])
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&second.stderr)
            .contains("another symphony runs with the state root"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(alive(again), "the second daemon killed nothing");
    daemon.interrupt();
    assert_eq!(daemon.wait_exit().0, Some(0));
    assert!(support::process_is_gone(again));
    // The two processes' logs replay as one chain.
    replay_check(
        &dir.path().join("state"),
        &["events.ndjson.1", "events.ndjson"],
    );
}

/// The crash loop: a busy daemon (agents running, one issue failing and retrying, an issue added
/// while it is down) killed at a different moment each round and started again.
/// After every restart: the restored state is exactly where the dead process's log ended (no
/// retry lost, no token counted twice), each run that was live becomes one restart retry (no
/// issue runs twice), and the whole chain replays with `--check`.
#[test]
fn killed_at_random_moments_the_daemon_carries_on_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    workflow(dir.path(), "");
    for id in ["A-1", "B-2", "C-3", "D-4"] {
        issue(dir.path(), id);
    }
    // C-3 fails every run: a file stands where its workspace would be (refused, never used).
    // No shell is involved, so no kill lands in the middle of a login shell's start.
    std::fs::create_dir_all(dir.path().join("ws")).unwrap();
    std::fs::write(dir.path().join("ws/C-3"), "not a directory").unwrap();
    let rounds = 5;
    for round in 0..rounds {
        let mut daemon = Daemon::start(dir.path(), &["--port", "-1", "--event-log-keep", "20"]);
        // An agent at work (its dispatch is on disk by then: a later loop turn), then a moment
        // that differs per round: after this many more log lines.
        daemon.wait_for("an agent at work", |l| l.contains("agent session started"));
        for _ in 0..round {
            daemon.wait_for("more work", |_| true);
        }
        if round == 2 {
            // The tracker changes while the daemon is down.
            issue(dir.path(), "E-5");
        }
        daemon.kill();
    }
    let mut daemon = Daemon::start(dir.path(), &["--port", "-1", "--event-log-keep", "20"]);
    daemon.wait_for("the last restore", |l| l.contains("restored from"));
    daemon.wait_for("a dispatch", |l| l.contains("dispatching"));
    daemon.interrupt();
    assert_eq!(daemon.wait_exit().0, Some(0));

    let state = dir.path().join("state");
    // Oldest first: events.ndjson.N ... .1, then the current one.
    let mut chain: Vec<String> = (1..=rounds)
        .rev()
        .map(|n| format!("events.ndjson.{n}"))
        .collect();
    chain.push("events.ndjson".to_owned());
    let (mut converted, mut kept_retries) = (0, 0);
    for pair in chain.windows(2) {
        let read = |name: &str| {
            let text = std::fs::read_to_string(state.join(name)).unwrap();
            read_log_tolerating_torn_tail(&text).unwrap()
        };
        let (old_header, old_records, _) = read(&pair[0]);
        let (new_header, new_records, _) = read(&pair[1]);
        let ended = replay(&old_header, &old_records, None).orchestrator;
        let resume = new_header
            .resume
            .as_ref()
            .expect("a restored segment")
            .state
            .clone();
        // Exactly where the dead process's log ended.
        assert_eq!(
            serde_json::to_value(&ended).unwrap(),
            serde_json::to_value(&resume).unwrap(),
            "{} resumes from the end of {}",
            pair[1],
            pair[0]
        );
        let before = ended.snapshot(ended.now());
        kept_retries += before.counts.retrying;
        // Killed before its first records reached the disk: the next one resumed from the
        // same checkpoint, which the equality above proves.
        let Some(first) = new_records.first() else {
            continue;
        };
        assert_eq!(first.event, Event::Restarted, "{}", pair[1]);
        let restart_retries = (first.commands.iter())
            .filter(|c| {
                matches!(
                    c,
                    CoreCommand::ScheduleRetry {
                        kind: RetryKind::Restart,
                        ..
                    }
                )
            })
            .count();
        let live = before
            .running
            .iter()
            .filter(|r| r.stopping.is_none())
            .count();
        assert_eq!(restart_retries, live, "each live run becomes one retry");
        converted += restart_retries;
        let after = replay(&new_header, &new_records[..1], None).orchestrator;
        let after = after.snapshot(after.now());
        assert_eq!(after.counts.running, 0, "nothing runs before startup");
        assert_eq!(
            after.codex_totals.total_tokens, before.codex_totals.total_tokens,
            "no token lost or counted twice"
        );
        for retry in &before.retrying {
            assert!(
                after
                    .retrying
                    .iter()
                    .any(|r| r.issue_identifier == retry.issue_identifier),
                "the retry of {} is kept",
                retry.issue_identifier
            );
        }
    }
    assert!(
        converted > 0,
        "some kill found runs live (the loop tests what it claims to)"
    );
    assert!(kept_retries > 0, "some kill found retries queued");
    let names: Vec<&str> = chain.iter().map(String::as_str).collect();
    replay_check(&state, &names);
}

#[test]
fn a_log_this_build_cannot_read_is_refused_unless_started_fresh() {
    let dir = tempfile::tempdir().unwrap();
    workflow(dir.path(), "");
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(
        dir.path().join("state"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("state/events.ndjson"),
        "{\"format\":\"symphony-event-log\",\"version\":1}\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_symphony"))
            .current_dir(dir.path())
            .env("SYMPHONY_STATE_DIR", dir.path().join("state"))
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let out = run(&["--port", "-1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("start fresh with --fresh"), "{stderr}");
    let mut daemon = Daemon::start(dir.path(), &["--port", "-1", "--fresh"]);
    daemon.wait_for("started", |l| l.contains("symphony started"));
    daemon.interrupt();
    assert_eq!(daemon.wait_exit().0, Some(0));
    let kept = std::fs::read_to_string(dir.path().join("state/events.ndjson.1")).unwrap();
    assert!(kept.contains("\"version\":1"), "the old log is kept aside");
}
