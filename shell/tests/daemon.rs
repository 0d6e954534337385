//! The daemon as a user runs it: the built binary, the local tracker, the demo agent, signals.
//! Waits are bounded reads of the daemon's log lines, never sleeps.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

const BOUND: Duration = Duration::from_secs(60);

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

struct Daemon {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Daemon {
    fn start(dir: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_symphony"))
            .args(args)
            .current_dir(dir)
            .env("SYMPHONY_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the symphony binary starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Returns the first log line, already seen or still to come, that satisfies `wanted`,
    /// failing after the bound.
    fn wait_for(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        if let Some(line) = self.seen.iter().find(|l| wanted(l)) {
            return line.clone();
        }
        let deadline = Instant::now() + BOUND;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no log line for {what} within {BOUND:?}; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    fn interrupt(&self) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    }

    fn wait_exit(mut self) -> (Option<i32>, Vec<String>) {
        let status = self.child.wait().unwrap();
        let mut seen = self.seen;
        seen.extend(self.lines.try_iter());
        (status.code(), seen)
    }
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

    // The recorded log replays to the same decisions.
    let replay = Command::new(env!("CARGO_BIN_EXE_symphony"))
        .args(["replay", "--check", "events.ndjson"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let stdout = String::from_utf8_lossy(&replay.stdout);
    assert!(stdout.contains("shutdown-complete"));
}

#[test]
fn an_invalid_workflow_at_startup_exits_1_with_the_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("WORKFLOW.md"),
        "---\ntracker:\n  kind: jira\n---\n",
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

    std::fs::write(&path, "---\ntracker: [\n---\n").unwrap();
    daemon.wait_for("the broken edit", |l| {
        l.contains("workflow_parse_error") && l.contains("keeping the last good workflow")
    });
    // Dispatch is paused meanwhile: a new issue does not start.
    issue(dir.path(), "R-1", "Todo", "");
    std::fs::write(&path, workflow("  max_turns: 4\n")).unwrap();
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
