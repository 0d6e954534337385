//! The Claude runner against the real `claude` CLI (npm `@anthropic-ai/claude-code`, pinned),
//! talking to a fake Messages API on 127.0.0.1 (`fakes/anthropic.rs`). `.ci/test` installs the
//! CLI into `~/.cache/symphony-rs/claude-code-<version>` and exports `SYMPHONY_TEST_CLAUDE`.

use std::path::Path;
use std::sync::mpsc::{Receiver, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::anthropic_fake::{self, Script, USAGE};
use crate::support::{self, claude_binary};
use symphony::agent::Control;
use symphony::agent::claude::{ClaudeAgent, ClaudeConfig, DEFAULT_ALLOWED_TOOLS};
use symphony_core::{AgentUpdate, ExitOutcome, Issue};

/// The CLI pointed at the fake, offline (the variables `real-agents-offline.md` names).
fn command(binary: &Path, base: &str) -> String {
    format!(
        "env ANTHROPIC_BASE_URL={base} ANTHROPIC_API_KEY=dummy \
         CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_TELEMETRY=1 DISABLE_AUTOUPDATER=1 \
         DISABLE_ERROR_REPORTING=1 {}",
        binary.display()
    )
}

fn config(base: &str) -> ClaudeConfig {
    ClaudeConfig {
        command: command(&claude_binary(), base),
        model: None,
        allowed_tools: DEFAULT_ALLOWED_TOOLS.map(String::from).to_vec(),
        disallowed_tools: Vec::new(),
        permission_mode: None,
        max_turns_per_run: None,
        max_budget_usd: None,
        env: Vec::new(),
        settings: None,
        read_timeout_ms: 60_000,
        turn_timeout_ms: 120_000,
    }
}

/// A running session and its ends.
struct Running {
    control: Sender<Control>,
    updates: Receiver<AgentUpdate>,
    session: JoinHandle<ExitOutcome>,
    seen: Vec<AgentUpdate>,
    workspace: std::path::PathBuf,
    issues: std::path::PathBuf,
    _dir: tempfile::TempDir,
    _runtime: tokio::runtime::Runtime,
}

impl Running {
    fn start(config: ClaudeConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bed = support::SessionBed::new(dir.path(), "CL-1");
        let context = bed.context("CL-1", "Write result.txt.");
        let agent = ClaudeAgent {
            config,
            secret_names: &[],
            bridge: env!("CARGO_BIN_EXE_symphony").into(),
            sandboxed: false,
        };
        let (control, updates, session) = support::spawn_session(agent, context);
        Self {
            control,
            updates,
            session,
            seen: Vec::new(),
            workspace: bed.workspace,
            issues: bed.issues,
            _dir: dir,
            _runtime: bed.runtime,
        }
    }

    /// Collects updates until one satisfies `done`, within a bound.
    fn until(&mut self, what: &str, done: impl Fn(&AgentUpdate) -> bool) {
        loop {
            let update = (self.updates.recv_timeout(Duration::from_secs(90)))
                .unwrap_or_else(|_| panic!("no {what}; updates so far: {:#?}", self.seen));
            let hit = done(&update);
            self.seen.push(update);
            if hit {
                return;
            }
        }
    }

    /// Waits for the session to end by itself (the control channel stays open).
    fn outcome(self) -> ExitOutcome {
        let _control = self.control;
        self.session.join().unwrap()
    }

    fn finish(self) -> (ExitOutcome, Vec<AgentUpdate>) {
        drop(self.control);
        let outcome = self.session.join().unwrap();
        let mut seen = self.seen;
        seen.extend(self.updates.try_iter());
        (outcome, seen)
    }

    fn pid(&self) -> u32 {
        (self.seen.iter())
            .find_map(|u| match u {
                AgentUpdate::SessionStarted { pid: Some(pid), .. } => Some(*pid),
                _ => None,
            })
            .expect("a session with a pid")
    }
}

fn completed(u: &AgentUpdate) -> bool {
    matches!(u, AgentUpdate::TurnCompleted { .. })
}

/// Two turns on one Claude session: the first runs a Bash call that writes a file in the
/// workspace; the second continues the same session with `--resume` (its request carries the
/// first turn). Token totals are the fake's usage, summed once per model call.
#[test]
fn two_turns_on_one_session_with_resume_and_exact_tokens() {
    let (base, fake) = anthropic_fake::fake(Script::Work);
    let mut run = Running::start(config(&base));
    run.until("first turn completion", completed);
    let written = std::fs::read_to_string(run.workspace.join("result.txt"));
    assert_eq!(written.unwrap(), "written-by-claude\n", "{:#?}", run.seen);
    let turn = Control::Turn {
        turn: 2,
        issue: Box::new(Issue {
            identifier: "CL-1".into(),
            title: "Write the file".into(),
            state: "In Progress".into(),
            ..Issue::default()
        }),
    };
    run.control.send(turn).unwrap();
    run.until("second turn completion", completed);
    let pid = run.pid();
    run.control.send(Control::Stop).unwrap();
    let (outcome, seen) = run.finish();
    assert!(
        matches!(outcome, ExitOutcome::Cancelled { .. }),
        "{outcome:?}"
    );
    assert!(support::process_is_gone(pid), "claude {pid} is gone");

    let sessions: Vec<&str> = (seen.iter())
        .filter_map(|u| match u {
            AgentUpdate::SessionStarted { thread_id, .. } => Some(thread_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(sessions.len(), 1, "one session for both turns: {seen:#?}");
    let requests = fake.lock().unwrap().requests.clone();
    assert_eq!(requests.len(), 4, "two model calls per turn");
    let resumed = requests[2]["messages"].to_string();
    assert!(
        resumed.contains("written-by-claude") && resumed.contains("Continue working on CL-1"),
        "the resumed turn carries the first and the continuation prompt: {resumed}"
    );
    let (input, cache_creation, cache_read, output) = USAGE;
    let calls = 4;
    let prompt = (input + cache_creation + cache_read) * calls;
    assert_eq!(
        support::last_tokens(&seen),
        (prompt, output * calls, prompt + output * calls)
    );
    // The session's cost, cumulative, reported after each turn (the CLI prices the fake model
    // at its default rates).
    let costs: Vec<u64> = (seen.iter())
        .filter_map(|u| match u {
            AgentUpdate::Cost { total_usd_micros } => Some(*total_usd_micros),
            _ => None,
        })
        .collect();
    assert_eq!(costs.len(), 2, "{seen:#?}");
    assert!(costs[0] > 0 && costs[1] > costs[0], "{costs:?}");
}

/// A tool the workflow does not allow is refused by the CLI; the refusal is reported (and so
/// shown in the issue's API detail) and the turn still completes.
#[test]
fn a_refused_tool_is_reported_as_a_permission_denial() {
    let (base, _fake) = anthropic_fake::fake(Script::Work);
    let mut run = Running::start(ClaudeConfig {
        allowed_tools: vec!["Read".into()],
        ..config(&base)
    });
    run.until("turn completion", completed);
    assert!(
        !run.workspace.join("result.txt").exists(),
        "Bash did not run"
    );
    run.control.send(Control::Stop).unwrap();
    let (_, seen) = run.finish();
    assert!(
        seen.iter()
            .any(|u| matches!(u, AgentUpdate::PermissionDenied { tools } if tools == &["Bash"])),
        "{seen:#?}"
    );
}

/// `--max-turns` reached is a typed failure of the turn, with the CLI's own words.
#[test]
fn the_clis_turn_cap_fails_the_turn_with_its_reason() {
    let (base, _fake) = anthropic_fake::fake(Script::Loop);
    let run = Running::start(ClaudeConfig {
        max_turns_per_run: Some(1),
        ..config(&base)
    });
    let outcome = run.outcome();
    let ExitOutcome::Failed { reason } = &outcome else {
        panic!("{outcome:?}");
    };
    assert!(
        reason.contains("error_max_turns") && reason.contains("maximum number of turns"),
        "{reason}"
    );
}

/// A stop while the model has not answered ends the turn at once and leaves no process.
#[test]
fn a_stop_mid_turn_leaves_no_process() {
    let (base, _fake) = anthropic_fake::fake(Script::Hang);
    let mut run = Running::start(config(&base));
    run.until("the turn start", |u| {
        matches!(u, AgentUpdate::TurnStarted { .. })
    });
    let pid = run.pid();
    // The turn has started (its init came); the model will never answer it.
    run.control.send(Control::Stop).unwrap();
    let (outcome, _) = run.finish();
    assert!(
        matches!(outcome, ExitOutcome::Cancelled { .. }),
        "{outcome:?}"
    );
    assert!(support::process_is_gone(pid), "claude {pid} is gone");
}

/// A directory for a daemon run: `issues/CL-1.md`, in Todo, asking for `result.txt`.
fn issue_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("issues")).unwrap();
    std::fs::write(
        dir.path().join("issues/CL-1.md"),
        "---\ntitle: Write the file\nstate: Todo\n---\nWrite result.txt.\n",
    )
    .unwrap();
    dir
}

/// The daemon binary with `agent.kind: claude` against the local tracker and the fake model:
/// the first turn writes the file, the continuation resumes the session, the claim's turn budget
/// then holds the issue; the API's token totals are the fake's, summed once per model call.
#[test]
fn the_daemon_runs_claude_end_to_end() {
    let (base, fake) = anthropic_fake::fake(Script::Work);
    let dir = issue_dir();
    let workflow = format!(
        "---\ntracker:\n  kind: local\npolling:\n  interval_ms: 3600000\nworkspace:\n  root: ./ws\nagent:\n  kind: claude\n  max_turns: 5\n  max_turns_per_issue: 2\nclaude:\n  command: '{}'\n  read_timeout_ms: 60000\nserver:\n  port: 0\n---\nWork on {{{{ issue.identifier }}}}: {{{{ issue.title }}}}.\n",
        command(&claude_binary(), &base)
    );
    std::fs::write(dir.path().join("WORKFLOW.md"), workflow).unwrap();
    let mut daemon = crate::daemon_harness::Daemon::start(dir.path(), &[]);
    let held = daemon.wait_for("the hold", |l| {
        l.contains("held:") && l.contains("issue_identifier=\"CL-1\"")
    });
    assert!(held.contains("turn budget used: 2 of 2"), "{held}");
    let written = std::fs::read_to_string(dir.path().join("ws/CL-1/result.txt")).unwrap();
    assert_eq!(written, "written-by-claude\n");
    let addr = daemon.http_addr();
    let state = crate::daemon_harness::get_json(&addr, "/api/v1/state");
    let calls = fake.lock().unwrap().requests.len() as u64;
    assert_eq!(calls, 4, "two turns of two model calls");
    let (input, cache_creation, cache_read, output) = USAGE;
    let prompt = (input + cache_creation + cache_read) * calls;
    assert_eq!(state["codex_totals"]["input_tokens"], prompt, "{state:#}");
    assert_eq!(
        state["codex_totals"]["output_tokens"],
        output * calls,
        "{state:#}"
    );
    daemon.interrupt();
    let (code, lines) = daemon.wait_exit();
    assert_eq!(code, Some(0), "{lines:#?}");
    let sessions = (lines.iter())
        .filter(|l| l.contains("agent session started"))
        .count();
    assert_eq!(sessions, 1, "both turns on one session: {lines:#?}");
}

/// The host tools reach Claude over MCP: the model calls `mcp__symphony__comment_on_issue`, the
/// session runs it with the tracker (here the local one) on its own issue, and the result goes
/// back to the model.
#[test]
fn host_tools_reach_claude_over_mcp() {
    let (base, fake) = anthropic_fake::fake(Script::Tools);
    let mut run = Running::start(config(&base));
    run.until("turn completion", completed);
    let issue = std::fs::read_to_string(run.issues.join("CL-1.md")).unwrap();
    assert!(
        issue.contains("Wrote result.txt"),
        "the comment is on the issue: {issue}"
    );
    run.control.send(Control::Stop).unwrap();
    let (outcome, seen) = run.finish();
    assert!(
        matches!(outcome, ExitOutcome::Cancelled { .. }),
        "{outcome:?}"
    );
    let requests = fake.lock().unwrap().requests.clone();
    // This CLI defers MCP tools: they are named in a system message and loaded on use.
    let offered = requests[0].to_string();
    assert!(
        offered.contains("mcp__symphony__comment_on_issue")
            && offered.contains("mcp__symphony__update_issue_state"),
        "the host tools are offered to the model"
    );
    let answered = requests.last().unwrap()["messages"].to_string();
    assert!(
        answered.contains("comment added to CL-1"),
        "the tool's result went back to the model: {answered}"
    );
    assert!(
        seen.iter().any(
            |u| matches!(u, AgentUpdate::Message { event, message: Some(m) }
            if event == "tool_call" && m.contains("comment_on_issue"))
        ),
        "{seen:#?}"
    );
}

/// With a real tracker credential in the daemon's environment (GitHub's, against its fake), a
/// Claude agent comments through the host tool over MCP and the comment lands; the agent's own
/// environment, which it dumps with Bash, holds no tracker secret.
#[test]
fn the_tracker_credential_stays_in_the_daemon_while_claude_comments() {
    let (base, _fake) = anthropic_fake::fake(Script::Tools);
    let mut repo = crate::github_fake::Repo::default();
    repo.issues.push(crate::github_fake::gh_issue(
        1,
        "open",
        &["state:Todo"],
        false,
    ));
    let (api, repo) = crate::github_fake::fake(repo);
    let dir = tempfile::tempdir().unwrap();
    let workflow = format!(
        "---\ntracker:\n  kind: github\n  provider:\n    api_url: {api}\n    repo: acme/app\npolling:\n  interval_ms: 3600000\nworkspace:\n  root: ./ws\nagent:\n  kind: claude\n  max_turns_per_issue: 1\nclaude:\n  command: '{}'\n---\nWork on {{{{ issue.identifier }}}}.\n",
        command(&claude_binary(), &base)
    );
    std::fs::write(dir.path().join("WORKFLOW.md"), workflow).unwrap();
    let token = crate::github_fake::TOKEN;
    let mut daemon =
        crate::daemon_harness::Daemon::start_with_env(dir.path(), &[], &[("GITHUB_TOKEN", token)]);
    daemon.wait_for("the hold after one turn", |l| {
        l.contains("held:") && l.contains("issue_identifier=\"GH-1\"")
    });
    assert_eq!(
        repo.lock().unwrap().comments,
        [(1, "Wrote result.txt".to_owned())],
        "the comment went through the daemon"
    );
    let env = std::fs::read_to_string(dir.path().join("ws/GH-1/agent-env.txt")).unwrap();
    assert!(
        !env.contains("GITHUB_TOKEN") && !env.contains(token),
        "{env}"
    );
    assert!(env.contains("CLAUDE_CONFIG_DIR="), "{env}");
    daemon.interrupt();
    assert_eq!(daemon.wait_exit().0, Some(0));
}

/// Claude inside bubblewrap, with `bypassPermissions` (allowed only inside a sandbox): its Bash
/// call writes in the workspace, the host tool reaches the daemon over MCP from inside (the
/// bridge's socket is in the private config dir, bound in), the CLI is told it is sandboxed,
/// and of the operator's home it reads a plain file but not the SSH key. The home lives under
/// `/var/tmp` so the private `/tmp` inside cannot be what hides the key.
#[test]
fn claude_runs_inside_bubblewrap_with_its_host_tools() {
    let (base, _fake) = anthropic_fake::fake(Script::Tools);
    let dir = issue_dir();
    let operator = support::operator_home();
    let workflow = format!(
        "---\ntracker:\n  kind: local\npolling:\n  interval_ms: 3600000\nworkspace:\n  root: ./ws\nagent:\n  kind: claude\n  max_turns_per_issue: 1\nclaude:\n  command: '{}'\n  permission_mode: bypassPermissions\nsandbox:\n  backend: bubblewrap\n---\nWork on {{{{ issue.identifier }}}}.\n",
        command(&claude_binary(), &base)
    );
    std::fs::write(dir.path().join("WORKFLOW.md"), workflow).unwrap();
    let home = operator.path().to_str().unwrap();
    let mut daemon =
        crate::daemon_harness::Daemon::start_with_env(dir.path(), &[], &[("HOME", home)]);
    let held = daemon.wait_for("the hold after one turn, or a failed run", |l| {
        (l.contains("held:") || l.contains("worker exited")) && l.contains("\"CL-1\"")
    });
    assert!(held.contains("turn budget used: 1 of 1"), "{held}");
    let issue = std::fs::read_to_string(dir.path().join("issues/CL-1.md")).unwrap();
    assert!(
        issue.contains("Wrote result.txt"),
        "the comment over MCP: {issue}"
    );
    let written = std::fs::read_to_string(dir.path().join("ws/CL-1/result.txt")).unwrap();
    assert_eq!(written, "written-by-claude\n");
    let seen = std::fs::read_to_string(dir.path().join("ws/CL-1/agent-env.txt")).unwrap();
    assert!(seen.contains("IS_SANDBOX=1"), "{seen}");
    assert!(seen.contains("operator notes"), "the control file: {seen}");
    assert!(!seen.contains("PRIVATE-SSH-KEY"), "{seen}");
    daemon.interrupt();
    assert_eq!(daemon.wait_exit().0, Some(0));
}

/// A continuation whose session the CLI no longer has (its transcript gone) starts a fresh
/// session once, logged, instead of failing or looping.
#[test]
fn a_lost_session_is_replaced_by_a_fresh_one() {
    let (base, _fake) = anthropic_fake::fake(Script::Work);
    let mut run = Running::start(config(&base));
    run.until("first turn completion", completed);
    let first = (run.seen.iter())
        .find_map(|u| match u {
            AgentUpdate::SessionStarted { thread_id, .. } => Some(thread_id.clone()),
            _ => None,
        })
        .unwrap();
    // The transcript lives in the session's private config dir, under the temporary directory.
    let prefix = format!("symphony-claude-{}-", std::process::id());
    let mut removed = 0;
    for dir in std::fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
        if !dir.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        for project in std::fs::read_dir(dir.path().join("projects"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let transcript = project.path().join(format!("{first}.jsonl"));
            if std::fs::remove_file(&transcript).is_ok() {
                removed += 1;
            }
        }
    }
    assert_eq!(removed, 1, "the first session's transcript");
    let turn = Control::Turn {
        turn: 2,
        issue: Box::new(Issue {
            identifier: "CL-1".into(),
            state: "Todo".into(),
            ..Issue::default()
        }),
    };
    run.control.send(turn).unwrap();
    run.until("second turn completion", completed);
    run.control.send(Control::Stop).unwrap();
    let (outcome, seen) = run.finish();
    assert!(
        matches!(outcome, ExitOutcome::Cancelled { .. }),
        "{outcome:?}"
    );
    let sessions: Vec<&str> = (seen.iter())
        .filter_map(|u| match u {
            AgentUpdate::SessionStarted { thread_id, .. } => Some(thread_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(sessions.len(), 2, "{seen:#?}");
    assert_ne!(sessions[0], sessions[1], "a fresh session");
}
