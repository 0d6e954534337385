//! `symphony replay` through the real binary, on the fixture logs in `fixtures/logs/`.
//!
//! `fixtures/logs/basic.ndjson` is produced by the script below through `symphony_core::log::
//! Recorder`, the same encoder the daemon uses. The first test fails when the encoding or a
//! decision changes; if the change is intended, regenerate with
//! `SYMPHONY_BLESS=1 cargo test -p symphony --test it replay` and review the diff.
//! `basic-v3.ndjson` is the same log as version 3 wrote it, before worker hosts: kept as
//! written, it must still replay.

use std::path::{Path, PathBuf};
use std::process::{Command as Process, Output};

use symphony_core::log::Recorder;
use symphony_core::{
    AgentUpdate, Command, Event, ExitOutcome, Issue, IssueId, SchedulerConfig, Timestamp,
};

const T0: Timestamp = Timestamp(1_767_225_600_000);

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/logs")
        .join(name)
}

fn symphony(args: &[&str]) -> Output {
    Process::new(env!("CARGO_BIN_EXE_symphony"))
        .args(args)
        .output()
        .expect("the symphony binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Drives a recorder through a short day of work and collects the log text.
struct Script {
    recorder: Recorder,
    log: String,
    at: Timestamp,
    board: Vec<Issue>,
    open: Vec<Command>,
}

impl Script {
    fn feed(&mut self, event: Event) -> Vec<Command> {
        let (commands, line) = self.recorder.handle(self.at, &event);
        self.log.push_str(&line);
        self.log.push('\n');
        self.open.extend(
            commands
                .iter()
                .filter(|c| {
                    matches!(
                        c,
                        Command::FetchCandidates { .. }
                            | Command::RefreshIssues { .. }
                            | Command::ListTerminalIssues { .. }
                    )
                })
                .cloned(),
        );
        commands
    }

    fn answer_all(&mut self) {
        while !self.open.is_empty() {
            let request = self.open.remove(0);
            let in_states = |states: &[String]| -> Vec<Issue> {
                self.board
                    .iter()
                    .filter(|i| states.iter().any(|s| s.eq_ignore_ascii_case(&i.state)))
                    .cloned()
                    .collect()
            };
            let event = match request {
                Command::FetchCandidates { request, states } => Event::CandidatesFetched {
                    request,
                    issues: in_states(&states),
                },
                Command::ListTerminalIssues { request, states } => Event::TerminalIssuesListed {
                    request,
                    issues: in_states(&states),
                },
                Command::RefreshIssues { request, ids } => Event::IssuesRefreshed {
                    request,
                    issues: self
                        .board
                        .iter()
                        .filter(|i| ids.contains(&i.id))
                        .cloned()
                        .collect(),
                },
                _ => unreachable!("only requests are queued"),
            };
            self.feed(event);
        }
    }

    fn run_of(&self, n: u32) -> symphony_core::RunId {
        let id = IssueId(format!("i{n}"));
        self.log
            .lines()
            .skip(1)
            .filter_map(|line| serde_json::from_str::<symphony_core::log::LogRecord>(line).ok())
            .flat_map(|r| r.commands)
            .filter_map(|c| match c {
                Command::Dispatch { issue_id, run, .. } if issue_id == id => Some(run),
                _ => None,
            })
            .last()
            .expect("dispatched")
    }

    fn agent(&mut self, n: u32, update: AgentUpdate) {
        let run = self.run_of(n);
        self.feed(Event::AgentUpdate {
            issue_id: IssueId(format!("i{n}")),
            run,
            update,
        });
        self.answer_all();
    }

    fn exit(&mut self, n: u32, outcome: ExitOutcome) {
        let run = self.run_of(n);
        self.feed(Event::WorkerExited {
            issue_id: IssueId(format!("i{n}")),
            run,
            outcome,
        });
        self.answer_all();
    }

    fn timer(&mut self) {
        if let Some(due) = self.recorder.orchestrator().next_deadline() {
            self.at = self.at.max(due);
        }
        self.feed(Event::TimerFired);
        self.answer_all();
    }
}

fn issue(n: u32, state: &str, priority: i64) -> Issue {
    Issue {
        id: IssueId(format!("i{n}")),
        identifier: format!("MT-{n}"),
        title: format!("Issue {n}"),
        state: state.to_owned(),
        priority: Some(priority),
        dispatchable: true,
        created_at: Some(T0),
        ..Issue::default()
    }
}

fn basic_log() -> String {
    let config = SchedulerConfig {
        max_concurrent_agents: 2,
        ..SchedulerConfig::default()
    };
    let recorder = Recorder::new(config);
    let mut s = Script {
        log: format!("{}\n", recorder.header().to_line()),
        recorder,
        at: T0,
        board: vec![
            issue(1, "Todo", 1),
            issue(2, "In Progress", 2),
            issue(3, "Done", 3),
        ],
        open: Vec::new(),
    };
    s.feed(Event::Startup);
    s.answer_all();
    for n in [1, 2] {
        let run = s.run_of(n);
        s.at = s.at.plus_millis(400);
        s.feed(Event::WorkerStarted {
            issue_id: IssueId(format!("i{n}")),
            run,
            workspace_path: Some(format!("/srv/symphony/workspaces/MT-{n}")),
        });
    }
    s.at = s.at.plus_millis(2_000);
    s.agent(
        1,
        AgentUpdate::SessionStarted {
            thread_id: "thr-1".into(),
            pid: Some(4242),
        },
    );
    s.agent(
        1,
        AgentUpdate::TurnStarted {
            turn_id: "turn-1".into(),
        },
    );
    s.at = s.at.plus_millis(30_000);
    s.agent(
        1,
        AgentUpdate::TokenUsage {
            input_tokens: 1_200,
            output_tokens: 300,
            total_tokens: 1_500,
        },
    );
    s.agent(
        1,
        AgentUpdate::TurnCompleted {
            turn_id: "turn-1".into(),
        },
    );
    s.exit(
        2,
        ExitOutcome::Failed {
            reason: "turn_failed: model returned 500".into(),
        },
    );
    s.board[0].state = "Done".into();
    s.at = s.at.plus_millis(5_000);
    s.agent(
        1,
        AgentUpdate::TurnCompleted {
            turn_id: "turn-2".into(),
        },
    );
    s.exit(
        1,
        ExitOutcome::Cancelled {
            reason: "stopped by orchestrator".into(),
        },
    );
    // The poll that is due, then the retry of MT-2 (which dispatches it again).
    s.timer();
    s.timer();
    s.at = s.at.plus_millis(1_000);
    s.feed(Event::ShutdownRequested);
    s.exit(
        2,
        ExitOutcome::Cancelled {
            reason: "stopped by orchestrator".into(),
        },
    );
    s.log
}

#[test]
fn fixture_log_is_current() {
    let path = fixture("basic.ndjson");
    let fresh = basic_log();
    if std::env::var_os("SYMPHONY_BLESS").is_some() {
        // Atomic, so the other tests reading it in parallel see the old or the new file.
        let tmp = path.with_extension("ndjson.tmp");
        std::fs::write(&tmp, &fresh).expect("write the fixture");
        std::fs::rename(&tmp, &path).expect("replace the fixture");
    }
    let stored = std::fs::read_to_string(&path).expect("fixture exists");
    assert!(
        stored == fresh,
        "fixtures/logs/basic.ndjson is out of date with the core's encoding or decisions; \
         if that is intended, rerun with SYMPHONY_BLESS=1 and review the diff"
    );
}

/// A log written before worker hosts (version 3) still reads and replays decision for
/// decision: version 4 only added what such a log never holds.
#[test]
fn a_version_3_log_still_replays_exactly() {
    let path = fixture("basic-v3.ndjson");
    let stored = std::fs::read_to_string(&path).unwrap();
    assert!(stored.starts_with(r#"{"format":"symphony-event-log","version":3,"#));
    let out = symphony(&["replay", "--check", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "replay matches the recorded commands\n");
}

#[test]
fn replay_prints_the_command_stream_and_final_snapshot() {
    let path = fixture("basic.ndjson");
    let out = symphony(&["replay", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "replay matches the recorded commands\n");
    let stdout = text(&out.stdout);
    // The stream must show the scheduler's decisions: both issues dispatched, MT-2 retried
    // after its failure, MT-1 stopped with cleanup once Done, shutdown completed.
    for expected in [
        "dispatch MT-1 (i1) run#1 first",
        "schedule-retry MT-2 (i2) attempt 1 failure in 10000 ms",
        "dispatch MT-2 (i2) run#3 attempt 1",
        "run completed: the issue moved to \"Done\" +clean-workspace",
        "clean-workspace MT-3",
        "shutdown-complete",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in\n{stdout}"
        );
    }
    insta::assert_snapshot!("replay_basic", stdout);
}

#[test]
fn check_exits_1_at_the_first_divergence_with_a_diff() {
    let stored = std::fs::read_to_string(fixture("basic.ndjson")).unwrap();
    // Drop the second record's last command, as if an older build had decided differently.
    let mut lines: Vec<String> = stored.lines().map(str::to_owned).collect();
    let mut record: serde_json::Value = serde_json::from_str(&lines[2]).unwrap();
    let removed = record["commands"].as_array_mut().unwrap().pop().unwrap();
    assert!(!removed.is_null());
    lines[2] = record.to_string();
    let dir = tempfile::tempdir().unwrap();
    let edited = dir.path().join("edited.ndjson");
    std::fs::write(&edited, lines.join("\n")).unwrap();

    let out = symphony(&["replay", "--check", edited.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("divergence at seq 2:"), "{stderr}");
    assert!(stderr.lines().any(|l| l.starts_with("+ ")), "{stderr}");
    insta::assert_snapshot!("replay_check_divergence", stderr);
    // The stream stops at the divergent record.
    assert!(!text(&out.stdout).contains("[3]"));

    // Without --check the same log replays to the end and only warns.
    let out = symphony(&["replay", edited.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(text(&out.stderr).contains("decides differently from the log at seq 2"));
}

#[test]
fn a_torn_last_line_is_reported_and_everything_before_it_replays() {
    let stored = std::fs::read_to_string(fixture("basic.ndjson")).unwrap();
    let total = stored.lines().count() - 1;
    // A crash mid-write: the last record cut in half, no final newline.
    let last = stored.trim_end().rsplit_once('\n').unwrap().1;
    let torn = format!(
        "{}{}",
        &stored[..stored.trim_end().len() - last.len()],
        &last[..last.len() / 2]
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("torn.ndjson");
    std::fs::write(&path, &torn).unwrap();
    let out = symphony(&["replay", "--check", path.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("ends in a torn line"), "{stderr}");
    assert!(
        text(&out.stdout).contains(&format!(
            "final snapshot after {} of {} records",
            total - 1,
            total - 1
        )),
        "{}",
        text(&out.stdout)
    );
    // A malformed line that is not the last (or ends with a newline) is still an error.
    std::fs::write(&path, format!("{torn}\n")).unwrap();
    let out = symphony(&["replay", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn until_stops_after_that_record() {
    let path = fixture("basic.ndjson");
    let out = symphony(&["replay", "--until", "3", path.to_str().unwrap()]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("\n[3] ") && !stdout.contains("\n[4] "),
        "{stdout}"
    );
    assert!(stdout.contains("final snapshot after 3 of "), "{stdout}");
}

#[test]
fn unreadable_logs_fail_with_the_file_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.ndjson");
    let out = symphony(&["replay", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!("error: {}: cannot read it:", missing.display())),
        "{stderr}"
    );

    let garbage = dir.path().join("garbage.ndjson");
    std::fs::write(&garbage, "{\"format\":\"something-else\"}\n").unwrap();
    let out = symphony(&["replay", garbage.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("line 1:"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = symphony(&["replay"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("<FILE>"));
}

#[test]
fn the_daemon_without_a_workflow_file_exits_1_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = Process::new(env!("CARGO_BIN_EXE_symphony"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("error[missing_workflow_file]: WORKFLOW.md: "),
        "{}",
        text(&out.stderr)
    );
}
