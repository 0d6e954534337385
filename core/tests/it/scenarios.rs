//! Named scheduler scenarios, one per SPEC 17.4 bullet and per documented policy. Each keeps its
//! transcript (events, then the commands each produced) as an insta snapshot so a reviewer can
//! read the scheduler's decisions; each also asserts its key facts directly.

use symphony_core::{
    AgentUpdate, Command, ConfigErrorClass, Durable, Event, ExitOutcome, Issue, Reason,
    SchedulerConfig, StopVerdict, Timestamp,
};

use crate::sim::{Sim, T0, id, issue};

fn base() -> SchedulerConfig {
    SchedulerConfig {
        active_states: vec!["Todo".into(), "In Progress".into()],
        terminal_states: vec!["Done".into(), "Cancelled".into()],
        ..SchedulerConfig::default()
    }
}

/// Identifiers in `Dispatch` commands, in order, over the whole run.
fn dispatched(sim: &Sim) -> Vec<String> {
    sim.records
        .iter()
        .flat_map(|r| &r.commands)
        .filter_map(|c| match c {
            Command::Dispatch { issue, .. } => Some(issue.identifier.clone()),
            _ => None,
        })
        .collect()
}

fn retries(commands: &[Command]) -> Vec<(u32, u64, Option<String>)> {
    commands
        .iter()
        .filter_map(|c| match c {
            Command::ScheduleRetry {
                attempt,
                delay_ms,
                error,
                ..
            } => Some((*attempt, *delay_ms, error.clone())),
            _ => None,
        })
        .collect()
}

fn failed(reason: &str) -> ExitOutcome {
    ExitOutcome::Failed {
        reason: reason.into(),
    }
}

/// One full poll tick: fire the timer and answer every request it makes.
fn poll(sim: &mut Sim) {
    sim.fire();
    sim.respond_all();
}

/// SPEC 17.4: dispatch sort order is priority then oldest creation time.
#[test]
fn dispatch_order_is_priority_then_oldest() {
    let mut sim = Sim::new(SchedulerConfig {
        max_concurrent_agents: 3,
        ..base()
    });
    sim.put(issue(1, "Todo"));
    sim.put(Issue {
        priority: Some(3),
        ..issue(2, "Todo")
    });
    sim.put(Issue {
        priority: Some(1),
        ..issue(3, "In Progress")
    });
    sim.put(Issue {
        priority: Some(3),
        created_at: Some(Timestamp(T0.0 - 3_600_000)),
        ..issue(4, "Todo")
    });
    sim.put(Issue {
        priority: Some(9),
        ..issue(5, "Todo")
    });
    sim.boot();
    assert_eq!(dispatched(&sim), ["MT-3", "MT-4", "MT-2"]);
    insta::assert_snapshot!(sim.transcript);
}

/// SPEC 17.4: `dispatchable=false` issues are not eligible.
#[test]
fn not_dispatchable_issues_are_skipped() {
    let mut sim = Sim::new(base());
    sim.put(Issue {
        dispatchable: false,
        ..issue(1, "Todo")
    });
    sim.put(issue(2, "Todo"));
    sim.boot();
    assert_eq!(dispatched(&sim), ["MT-2"]);
    insta::assert_snapshot!(sim.transcript);
}

/// SPEC 17.4: required-label filtering is case-insensitive.
#[test]
fn required_labels_match_ignoring_case() {
    let mut sim = Sim::new(SchedulerConfig {
        required_labels: vec![" Agent-Ready ".into()],
        ..base()
    });
    sim.put(Issue {
        labels: vec!["AGENT-READY".into()],
        ..issue(1, "Todo")
    });
    sim.put(Issue {
        labels: vec!["backend".into()],
        ..issue(2, "Todo")
    });
    sim.put(issue(3, "Todo"));
    sim.boot();
    assert_eq!(dispatched(&sim), ["MT-1"]);
    insta::assert_snapshot!(sim.transcript);
}

/// SPEC 17.4: an active-state refresh updates the running entry's state.
#[test]
fn active_refresh_updates_running_state() {
    let mut sim = Sim::new(base());
    sim.put(issue(1, "Todo"));
    sim.boot();
    sim.started(1);
    sim.put(issue(1, "In Progress"));
    poll(&mut sim);
    let snapshot = sim.orch.snapshot(sim.now);
    assert_eq!(snapshot.running[0].state, "In Progress");
    assert!(sim.stopping.is_empty());
    insta::assert_snapshot!(sim.transcript);
}

/// SPEC 17.4: a non-active state stops the agent without cleaning the workspace.
#[test]
fn inactive_state_stops_without_cleanup() {
    let mut sim = Sim::new(base());
    sim.put(issue(1, "Todo"));
    sim.boot();
    sim.put(issue(1, "Human Review"));
    poll(&mut sim);
    sim.finish_stops();
    assert!(sim.cleaned.is_empty());
    assert!(sim.orch.snapshot(sim.now).running.is_empty());
    insta::assert_snapshot!(sim.transcript);
}

/// SPEC 17.4: a terminal state stops the agent and cleans the workspace.
#[test]
fn terminal_state_stops_and_cleans() {
    let mut sim = Sim::new(base());
    sim.put(issue(1, "Todo"));
    sim.boot();
    sim.put(issue(1, "Done"));
    let stop = {
        sim.fire();
        sim.respond()
    };
    assert!(matches!(
        &stop[0],
        Command::StopWorker {
            cleanup_workspace: true,
            ..
        }
    ));
    sim.respond_all();
    sim.finish_stops();
    assert!(sim.orch.snapshot(sim.now).running.is_empty());
    insta::assert_snapshot!(sim.transcript);
}

/// SPEC 17.4: reconciliation with no running issues is a no-op (straight to candidates).
#[test]
fn reconcile_without_running_issues_is_a_no_op() {
    let mut sim = Sim::new(base());
    sim.boot();
    let commands = sim.fire();
    assert!(matches!(
        commands.as_slice(),
        [Command::FetchCandidates { .. }]
    ));
    sim.respond_all();
    insta::assert_snapshot!(sim.transcript);
}

/// SPEC 17.4: a normal worker exit schedules a short continuation retry (attempt 1).
#[test]
fn normal_exit_schedules_continuation_retry() {
    let mut sim = Sim::new(base());
    sim.put(issue(1, "Todo"));
    sim.boot();
    let commands = sim.exit(1, ExitOutcome::Normal);
    assert_eq!(retries(&commands), [(1, 1000, None)]);
    sim.fire();
    sim.respond_all();
    assert_eq!(dispatched(&sim), ["MT-1", "MT-1"]);
    insta::assert_snapshot!(sim.transcript);
}

/// SPEC 17.4: abnormal exits retry with 10 s-based exponential backoff.
#[test]
fn failures_back_off_exponentially() {
    let mut sim = Sim::new(base());
    sim.put(issue(1, "Todo"));
    sim.boot();
    let mut delays = Vec::new();
    for round in 0..4 {
        let commands = sim.exit(1, failed(&format!("turn_failed: round {round}")));
        delays.extend(retries(&commands).into_iter().map(|(a, d, _)| (a, d)));
        sim.run_until(|sim| sim.live.contains_key(&id(1)));
    }
    assert_eq!(delays, [(1, 10_000), (2, 20_000), (3, 40_000), (4, 80_000)]);
    insta::assert_snapshot!(sim.transcript);
}

/// SPEC 17.4: the backoff cap is `agent.max_retry_backoff_ms`.
#[test]
fn backoff_is_capped_by_config() {
    let mut sim = Sim::new(SchedulerConfig {
        max_retry_backoff_ms: 25_000,
        ..base()
    });
    sim.put(issue(1, "Todo"));
    sim.boot();
    let mut delays = Vec::new();
    for _ in 0..4 {
        let commands = sim.exit(
            1,
            ExitOutcome::TimedOut {
                reason: "turn_timeout".into(),
            },
        );
        delays.extend(retries(&commands).into_iter().map(|(_, d, _)| d));
        sim.run_until(|sim| sim.live.contains_key(&id(1)));
    }
    assert_eq!(delays, [10_000, 20_000, 25_000, 25_000]);
    insta::assert_snapshot!(sim.transcript);
}

/// SPEC 17.4: retry queue entries carry attempt, due time, identifier and error.
#[test]
fn retry_rows_carry_attempt_due_identifier_and_error() {
    let mut sim = Sim::new(base());
    sim.put(issue(7, "Todo"));
    sim.boot();
    sim.advance(500);
    sim.exit(7, failed("port_exit: status 1"));
    let snapshot = sim.orch.snapshot(sim.now);
    let row = &snapshot.retrying[0];
    assert_eq!(row.issue_identifier, "MT-7");
    assert_eq!(row.attempt, 1);
    assert_eq!(row.due_at, T0.plus_millis(10_500));
    assert_eq!(
        row.error.as_deref(),
        Some("worker failed: port_exit: status 1")
    );
    let json = serde_json::to_string_pretty(&snapshot.retrying).unwrap();
    assert!(json.contains("\"due_at\": \"2026-01-01T00:00:10.500Z\""));
    insta::assert_snapshot!(json);
}

/// SPEC 17.4: stall detection stops stalled sessions and schedules a retry.
#[test]
fn stalled_session_is_stopped_and_retried() {
    let mut sim = Sim::new(SchedulerConfig {
        stall_timeout_ms: 60_000,
        ..base()
    });
    sim.put(issue(1, "Todo"));
    sim.boot();
    sim.started(1);
    sim.advance(10_000);
    sim.agent(
        1,
        AgentUpdate::SessionStarted {
            thread_id: "th".into(),
            pid: Some(4242),
        },
    );
    // Ticks at +30 s and +60 s see 20 s and 50 s of silence; +90 s sees 80 s.
    poll(&mut sim);
    poll(&mut sim);
    assert!(sim.stopping.is_empty());
    poll(&mut sim);
    assert_eq!(sim.stopping.len(), 1);
    sim.finish_stops();
    let snapshot = sim.orch.snapshot(sim.now);
    assert_eq!(snapshot.retrying[0].attempt, 1);
    assert!(
        snapshot.retrying[0]
            .error
            .as_deref()
            .unwrap()
            .contains("stalled")
    );
    insta::assert_snapshot!(sim.transcript);
}

/// SPEC 17.4: slot exhaustion requeues a due retry with an explicit reason.
#[test]
fn slot_exhaustion_requeues_retry_with_reason() {
    let mut sim = Sim::new(SchedulerConfig {
        max_concurrent_agents: 1,
        ..base()
    });
    sim.put(issue(1, "Todo"));
    sim.put(issue(2, "Todo"));
    sim.boot();
    sim.exit(1, ExitOutcome::Normal);
    // Before MT-1's continuation fires, an operator refresh gives the free slot to MT-2.
    sim.feed(Event::RefreshRequested);
    sim.respond_all();
    sim.fire();
    let commands = sim.respond();
    assert_eq!(
        retries(&commands),
        [(2, 20_000, Some("no available orchestrator slots".into()))]
    );
    insta::assert_snapshot!(sim.transcript);
}

/// SPEC 17.4 / 13.3: the snapshot has running rows, retry rows, token totals, rate limits.
#[test]
fn snapshot_has_rows_totals_and_rate_limits() {
    let mut sim = Sim::new(base());
    sim.put(issue(1, "Todo"));
    sim.put(issue(2, "Todo"));
    sim.boot();
    sim.started(1);
    sim.advance(2_000);
    sim.agent(
        1,
        AgentUpdate::SessionStarted {
            thread_id: "thread-1".into(),
            pid: Some(99),
        },
    );
    sim.turn(1, "turn-1", 1200);
    sim.agent(
        1,
        AgentUpdate::RateLimits {
            snapshot: serde_json::json!({"primary": {"used_percent": 12.5}}),
        },
    );
    sim.agent(
        1,
        AgentUpdate::Message {
            event: "notification".into(),
            message: Some("Working on tests".into()),
        },
    );
    sim.exit(2, failed("turn_failed"));
    sim.advance(3_000);
    let snapshot = sim.orch.snapshot(sim.now);
    assert_eq!(snapshot.running[0].turn_count, 1);
    assert_eq!(snapshot.running[0].tokens.total_tokens, 1800);
    assert_eq!(snapshot.codex_totals.total_tokens, 1800);
    assert_eq!(snapshot.retrying[0].issue_identifier, "MT-2");
    assert!(snapshot.rate_limits.is_some());
    insta::assert_snapshot!(serde_json::to_string_pretty(&snapshot).unwrap());
}

/// SPEC 7.2: a running row names the run attempt's phase from the events so far.
#[test]
fn running_rows_show_the_run_attempt_phase() {
    let mut sim = Sim::new(base());
    sim.put(issue(1, "Todo"));
    sim.boot();
    let phase = |sim: &Sim| sim.orch.snapshot(sim.now).running[0].phase.clone();
    assert_eq!(phase(&sim), "preparing_workspace");
    sim.started(1);
    assert_eq!(phase(&sim), "launching_agent_process");
    sim.agent(
        1,
        AgentUpdate::SessionStarted {
            thread_id: "thread-1".into(),
            pid: Some(7),
        },
    );
    assert_eq!(phase(&sim), "initializing_session");
    sim.agent(
        1,
        AgentUpdate::TurnStarted {
            turn_id: "turn-1".into(),
        },
    );
    assert_eq!(phase(&sim), "streaming_turn");
    sim.agent(
        1,
        AgentUpdate::TurnCompleted {
            turn_id: "turn-1".into(),
        },
    );
    assert_eq!(
        phase(&sim),
        "finishing",
        "the issue is re-checked between turns"
    );
    sim.respond_all();
    assert_eq!(phase(&sim), "streaming_turn", "still active: the next turn");
    sim.put(issue(1, "Done"));
    sim.advance(base().poll_interval_ms);
    sim.fire();
    sim.respond_all();
    let snapshot = sim.orch.snapshot(sim.now);
    assert_eq!(snapshot.running[0].phase, "finishing", "stopping");
    assert!(snapshot.running[0].stopping.is_some());
}

/// SPEC 8.3: the global limit caps dispatch.
#[test]
fn global_limit_caps_dispatch() {
    let mut sim = Sim::new(SchedulerConfig {
        max_concurrent_agents: 2,
        ..base()
    });
    for n in 1..=4 {
        sim.put(issue(n, "Todo"));
    }
    sim.boot();
    assert_eq!(dispatched(&sim), ["MT-1", "MT-2"]);
    insta::assert_snapshot!(sim.transcript);
}

/// SPEC 8.3: per-state limits cap dispatch per normalised state; others use the global limit.
#[test]
fn per_state_limit_caps_dispatch() {
    let mut sim = Sim::new(SchedulerConfig {
        max_concurrent_agents: 5,
        max_concurrent_agents_by_state: [("  TODO".to_owned(), 1), ("In Progress".to_owned(), 0)]
            .into_iter()
            .collect(),
        ..base()
    });
    sim.put(issue(1, "Todo"));
    sim.put(issue(2, "todo"));
    sim.put(issue(3, "In Progress"));
    sim.put(issue(4, "In Progress"));
    sim.boot();
    // Todo is capped at 1; the 0 for In Progress is invalid, so the global 5 applies there.
    assert_eq!(dispatched(&sim), ["MT-1", "MT-3", "MT-4"]);
    insta::assert_snapshot!(sim.transcript);
}

/// SPEC 8.4: a retry that finds its issue terminal cleans the workspace and releases.
#[test]
fn retry_of_terminal_issue_cleans_and_releases() {
    let mut sim = Sim::new(base());
    sim.put(issue(1, "Todo"));
    sim.boot();
    sim.exit(1, failed("turn_failed"));
    sim.put(issue(1, "Done"));
    poll(&mut sim);
    assert_eq!(sim.cleaned, ["MT-1"]);
    assert!(sim.orch.issue_detail("MT-1").is_none());
    insta::assert_snapshot!(sim.transcript);
}

/// SPEC 8.4: a retry that no longer finds its issue releases the claim; one that finds it
/// inactive releases without cleanup.
#[test]
fn retry_of_missing_or_inactive_issue_releases() {
    let mut sim = Sim::new(base());
    sim.put(issue(1, "Todo"));
    sim.put(issue(2, "Todo"));
    sim.boot();
    sim.exit(1, ExitOutcome::Normal);
    sim.exit(2, ExitOutcome::Normal);
    sim.remove(1);
    sim.put(issue(2, "Backlog"));
    poll(&mut sim);
    assert!(sim.cleaned.is_empty());
    let snapshot = sim.orch.snapshot(sim.now);
    assert!(snapshot.retrying.is_empty() && snapshot.running.is_empty());
    insta::assert_snapshot!(sim.transcript);
}

/// SPEC 11.4: a failed candidate fetch dispatches nothing and the next tick tries again.
#[test]
fn candidate_fetch_failure_skips_the_tick() {
    let mut sim = Sim::new(base());
    sim.put(issue(1, "Todo"));
    sim.feed(Event::Startup);
    sim.respond(); // terminal listing
    sim.fail("connection refused");
    assert!(dispatched(&sim).is_empty());
    poll(&mut sim);
    assert_eq!(dispatched(&sim), ["MT-1"]);
    insta::assert_snapshot!(sim.transcript);
}

/// SPEC 8.5: a failed reconciliation refresh keeps workers running and dispatch goes on.
#[test]
fn refresh_failure_keeps_workers() {
    let mut sim = Sim::new(SchedulerConfig {
        max_concurrent_agents: 2,
        ..base()
    });
    sim.put(issue(1, "Todo"));
    sim.boot();
    sim.put(issue(1, "Done"));
    sim.put(issue(2, "Todo"));
    sim.fire();
    sim.fail("502 bad gateway");
    sim.respond_all();
    assert!(
        sim.stopping.is_empty(),
        "workers must survive a failed refresh"
    );
    assert_eq!(dispatched(&sim), ["MT-1", "MT-2"]);
    insta::assert_snapshot!(sim.transcript);
}

/// SPEC 8.6: startup removes the workspaces of issues already terminal.
#[test]
fn startup_cleans_terminal_workspaces() {
    let mut sim = Sim::new(base());
    sim.put(issue(1, "Done"));
    sim.put(issue(2, "cancelled"));
    sim.put(issue(3, "Todo"));
    sim.boot();
    assert_eq!(sim.cleaned, ["MT-1", "MT-2"]);
    assert_eq!(dispatched(&sim), ["MT-3"]);
    insta::assert_snapshot!(sim.transcript);
}

/// SPEC 6.3 / 5.5: an invalid workflow pauses new dispatch while reconciliation goes on; a
/// valid reload resumes dispatch.
#[test]
fn invalid_workflow_pauses_dispatch_but_not_reconciliation() {
    let mut sim = Sim::new(base());
    sim.put(issue(1, "Todo"));
    sim.boot();
    sim.invalid(ConfigErrorClass::WorkflowParseError);
    sim.put(issue(1, "Done"));
    sim.put(issue(2, "Todo"));
    poll(&mut sim);
    sim.finish_stops();
    assert_eq!(dispatched(&sim), ["MT-1"]);
    assert!(
        sim.orch
            .snapshot(sim.now)
            .dispatch
            .preflight_error
            .is_some()
    );
    sim.reload(base());
    poll(&mut sim);
    assert_eq!(dispatched(&sim), ["MT-1", "MT-2"]);
    insta::assert_snapshot!(sim.transcript);
}

/// Low disk space pauses new dispatch (and requeues a due retry with the reason) while running
/// workers and reconciliation go on; recovery resumes dispatch.
#[test]
fn low_disk_space_pauses_dispatch_until_it_recovers() {
    let mut sim = Sim::new(base());
    sim.put(issue(1, "Todo"));
    sim.boot();
    sim.exit(1, failed("boom"));
    sim.feed(Event::DiskSpaceLow {
        free_mb: 100,
        min_mb: 256,
    });
    sim.put(issue(2, "Todo"));
    // The retry of MT-1 comes due while space is low: requeued with the reason.
    let mut requeued = Vec::new();
    sim.run_until(|s| {
        s.records.iter().any(|r| {
            r.commands
                .iter()
                .any(|c| matches!(c, Command::ScheduleRetry { attempt: 2, .. }))
        })
    });
    for record in &sim.records {
        requeued.extend(retries(&record.commands));
    }
    assert_eq!(
        requeued.last().and_then(|r| r.2.clone()).as_deref(),
        Some("dispatch paused: low disk space: 100 MB free, 256 MB required")
    );
    assert_eq!(dispatched(&sim), ["MT-1"]);
    assert!(sim.orch.snapshot(sim.now).dispatch.disk_low.is_some());
    sim.feed(Event::DiskSpaceRecovered { free_mb: 4_000 });
    sim.run_until(|s| dispatched(s).len() == 3);
    // MT-2 from the next poll and MT-1 from its retry, in whichever order their timers fire.
    let mut after = dispatched(&sim).split_off(1);
    after.sort();
    assert_eq!(after, ["MT-1", "MT-2"]);
    insta::assert_snapshot!(sim.transcript);
}

/// SPEC 6.2: a reload changes future decisions: the poll already scheduled moves to the new
/// interval and a larger limit lets more run on the next tick.
#[test]
fn reload_applies_to_future_decisions() {
    let mut sim = Sim::new(SchedulerConfig {
        max_concurrent_agents: 1,
        ..base()
    });
    sim.put(issue(1, "Todo"));
    sim.put(issue(2, "Todo"));
    sim.boot();
    sim.advance(1_000);
    let commands = sim.reload(SchedulerConfig {
        poll_interval_ms: 5_000,
        max_concurrent_agents: 2,
        ..base()
    });
    assert_eq!(
        commands,
        [Command::SchedulePoll {
            due_at: T0.plus_millis(5_000)
        }]
    );
    poll(&mut sim);
    assert_eq!(dispatched(&sim), ["MT-1", "MT-2"]);
    insta::assert_snapshot!(sim.transcript);
}

/// SPEC 7.1 / 16.5: continuation turns run on the same thread while the issue stays active,
/// up to `agent.max_turns`; then the worker ends and a continuation retry follows.
#[test]
fn turns_continue_until_max_turns() {
    let mut sim = Sim::new(SchedulerConfig {
        max_turns: 3,
        ..base()
    });
    sim.put(issue(1, "Todo"));
    sim.boot();
    sim.started(1);
    sim.agent(
        1,
        AgentUpdate::SessionStarted {
            thread_id: "th".into(),
            pid: None,
        },
    );
    for turn in 1..=3u32 {
        sim.turn(1, &format!("t{turn}"), 100 * u64::from(turn));
        sim.respond_all();
    }
    assert_eq!(sim.stopping.len(), 1, "the third turn is the last");
    sim.finish_stops();
    let starts = sim
        .records
        .iter()
        .flat_map(|r| &r.commands)
        .filter(|c| matches!(c, Command::StartTurn { .. }))
        .count();
    assert_eq!(starts, 2);
    assert_eq!(sim.orch.snapshot(sim.now).retrying[0].attempt, 1);
    insta::assert_snapshot!(sim.transcript);
}

/// SPEC 16.5: a turn that leaves the issue in a handoff (inactive) state ends the run.
#[test]
fn handoff_state_after_a_turn_ends_the_run() {
    let mut sim = Sim::new(base());
    sim.put(issue(1, "Todo"));
    sim.boot();
    sim.turn(1, "t1", 10);
    sim.put(issue(1, "Human Review"));
    sim.respond_all();
    sim.finish_stops();
    let snapshot = sim.orch.snapshot(sim.now);
    assert!(snapshot.running.is_empty() && snapshot.retrying.is_empty());
    assert_eq!(
        snapshot.dispatch.completed_runs, 1,
        "the turn's work moved the issue on: a success"
    );
    insta::assert_snapshot!(sim.transcript);
}

/// Issues eligible by state but held back are listed with the reason, which is announced once
/// per change (not every tick), and found by identifier.
#[test]
fn held_back_issues_are_listed_with_why_and_announced_once() {
    let mut sim = Sim::new(SchedulerConfig {
        max_concurrent_agents: 1,
        required_labels: vec!["agent".into()],
        ..base()
    });
    let labelled = |n: u32| Issue {
        labels: vec!["agent".into()],
        ..issue(n, "Todo")
    };
    sim.put(labelled(1));
    sim.put(Issue {
        dispatchable: false,
        blocked_by: vec![symphony_core::BlockerRef {
            id: Some("i1".into()),
            identifier: Some("MT-1".into()),
            state: Some("In Progress".into()),
        }],
        ..labelled(2)
    });
    sim.put(issue(3, "Todo"));
    sim.put(labelled(4));
    sim.boot();
    poll(&mut sim);
    poll(&mut sim);
    let snapshot = sim.orch.snapshot(sim.now);
    let reasons: Vec<(&str, &str)> = snapshot
        .waiting
        .iter()
        .map(|w| (w.issue_identifier.as_str(), w.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("MT-2", "waiting for its blockers: MT-1 (In Progress)"),
            (
                "MT-3",
                "missing required label(s): agent (tracker.required_labels)"
            ),
            (
                "MT-4",
                "all 1 agent slots are in use (agent.max_concurrent_agents)"
            ),
        ]
    );
    assert_eq!(snapshot.counts.waiting, 3);
    let announced = sim
        .records
        .iter()
        .flat_map(|r| &r.commands)
        .filter(|c| matches!(c, Command::IssueWaiting { .. }))
        .count();
    assert_eq!(
        announced, 2,
        "three polls, each issue-specific reason said once; a full slot is shown, not announced"
    );
    let detail = sim
        .orch
        .issue_detail("MT-2")
        .expect("a waiting issue is found");
    assert_eq!(detail.status, "waiting");
    assert!(detail.waiting.unwrap().reason.contains("MT-1"));
    // A changed reason is announced again.
    sim.put(Issue {
        dispatchable: false,
        blocked_by: vec![symphony_core::BlockerRef {
            id: Some("i1".into()),
            identifier: Some("MT-1".into()),
            state: Some("Review".into()),
        }],
        ..labelled(2)
    });
    let mark = sim.records.len();
    poll(&mut sim);
    let again: Vec<String> = sim.records[mark..]
        .iter()
        .flat_map(|r| &r.commands)
        .filter_map(|c| match c {
            Command::IssueWaiting {
                identifier, reason, ..
            } => Some(format!("{identifier}: {reason}")),
            _ => None,
        })
        .collect();
    assert_eq!(again, ["MT-2: waiting for its blockers: MT-1 (Review)"]);
}

/// Documented policy: input required holds the issue (no hot retry loop) until it changes.
#[test]
fn input_required_blocks_until_the_issue_changes() {
    let mut sim = Sim::new(base());
    sim.put(Issue {
        updated_at: Some(T0),
        ..issue(1, "Todo")
    });
    sim.boot();
    sim.put(Issue {
        updated_at: Some(T0.plus_millis(5)),
        ..issue(1, "Todo")
    });
    sim.note("the agent's question updated the issue before it exited");
    sim.exit(
        1,
        ExitOutcome::InputRequired {
            reason: "which database?".into(),
        },
    );
    poll(&mut sim);
    poll(&mut sim);
    assert_eq!(dispatched(&sim), ["MT-1"], "a blocked issue is not retried");
    assert_eq!(sim.orch.snapshot(sim.now).blocked.len(), 1);
    sim.put(Issue {
        updated_at: Some(T0.plus_millis(70_000)),
        ..issue(1, "Todo")
    });
    sim.note("a human answered on the ticket");
    poll(&mut sim);
    assert_eq!(dispatched(&sim), ["MT-1", "MT-1"]);
    insta::assert_snapshot!(sim.transcript);
}

fn usage(total: u64) -> AgentUpdate {
    AgentUpdate::TokenUsage {
        input_tokens: total - total / 4,
        output_tokens: total / 4,
        total_tokens: total,
    }
}

/// Extension `agent.max_tokens_per_issue`: the budget counts every run of a claim; crossing
/// it stops the worker and holds the issue until it changes, then it starts over.
#[test]
fn token_budget_counts_across_runs_stops_and_holds_until_the_issue_changes() {
    let mut sim = Sim::new(SchedulerConfig {
        max_tokens_per_issue: Some(1_000),
        ..base()
    });
    sim.put(Issue {
        updated_at: Some(T0),
        ..issue(1, "Todo")
    });
    sim.boot();
    sim.started(1);
    let session = |thread: &str| AgentUpdate::SessionStarted {
        thread_id: thread.into(),
        pid: None,
    };
    sim.agent(1, session("thread-1"));
    assert!(sim.agent(1, usage(600)).is_empty(), "600 of 1,000: go on");
    sim.exit(1, ExitOutcome::Normal);
    sim.advance(1_000);
    poll(&mut sim);
    assert_eq!(dispatched(&sim), ["MT-1", "MT-1"], "the continuation run");

    sim.started(1);
    sim.agent(1, session("thread-2"));
    assert!(sim.agent(1, usage(300)).is_empty(), "600 + 300: go on");
    let stop = sim.agent(1, usage(450));
    assert!(
        matches!(
            stop.as_slice(),
            [Command::StopWorker {
                reason: Reason::TokenBudget {
                    used: 1_050,
                    limit: 1_000
                },
                cleanup_workspace: false,
                ..
            }]
        ),
        "{stop:?}"
    );
    sim.finish_stops();
    let blocked = sim.orch.snapshot(sim.now).blocked;
    assert_eq!(blocked.len(), 1);
    assert!(
        blocked[0]
            .reason
            .contains("token budget used: 1050 of 1000"),
        "{}",
        blocked[0].reason
    );
    poll(&mut sim);
    poll(&mut sim);
    assert_eq!(dispatched(&sim).len(), 2, "held, not retried");

    sim.put(Issue {
        updated_at: Some(T0.plus_millis(90_000)),
        ..issue(1, "Todo")
    });
    sim.note("an operator looked at the ticket");
    poll(&mut sim);
    assert_eq!(
        dispatched(&sim).len(),
        3,
        "released by the change, run again"
    );
    sim.started(1);
    sim.agent(1, session("thread-3"));
    assert!(sim.agent(1, usage(900)).is_empty(), "a fresh budget");
    insta::assert_snapshot!(sim.transcript);
}

/// The single `StopWorker` among `commands`, with its reason.
fn stop_reason(commands: &[Command]) -> Reason {
    match commands {
        [Command::StopWorker { reason, .. }] => reason.clone(),
        other => panic!("expected one StopWorker, got {other:?}"),
    }
}

/// Extension `agent.max_turns_per_issue` (aiops-platform's `max_continuation_turns`): completed
/// turns count across the runs of a claim; when they reach the budget the issue is held, not
/// continued, until it changes; then it starts over with a fresh budget.
#[test]
fn turn_budget_counts_completed_turns_across_runs_and_holds() {
    let mut sim = Sim::new(SchedulerConfig {
        max_turns: 2,
        max_turns_per_issue: Some(3),
        ..base()
    });
    sim.put(Issue {
        updated_at: Some(T0),
        ..issue(1, "Todo")
    });
    sim.boot();
    sim.started(1);
    sim.turn(1, "t1", 10);
    sim.respond_all();
    sim.turn(1, "t2", 10);
    sim.respond_all();
    assert!(
        sim.records
            .iter()
            .flat_map(|r| &r.commands)
            .any(|c| matches!(
                c,
                Command::StopWorker {
                    reason: Reason::MaxTurns { turns: 2 },
                    ..
                }
            )),
        "the first run ends at max_turns"
    );
    sim.finish_stops();
    sim.advance(1_000);
    poll(&mut sim);
    assert_eq!(dispatched(&sim), ["MT-1", "MT-1"], "2 of 3 turns: continue");

    sim.started(1);
    sim.turn(1, "t3", 10);
    let stop = sim.respond();
    assert_eq!(stop_reason(&stop), Reason::TurnBudget { used: 3, limit: 3 });
    sim.finish_stops();
    let blocked = sim.orch.snapshot(sim.now).blocked;
    assert_eq!(blocked.len(), 1);
    assert!(
        blocked[0].reason.contains("turn budget used: 3 of 3"),
        "{}",
        blocked[0].reason
    );
    sim.advance(60_000);
    poll(&mut sim);
    assert_eq!(dispatched(&sim).len(), 2, "held, not continued");

    sim.put(Issue {
        updated_at: Some(T0.plus_millis(90_000)),
        ..issue(1, "Todo")
    });
    sim.note("an operator changed the ticket");
    poll(&mut sim);
    assert_eq!(dispatched(&sim).len(), 3, "released by the change");
    sim.started(1);
    sim.turn(1, "t4", 10);
    let next = sim.respond();
    assert!(
        matches!(next.as_slice(), [Command::StartTurn { turn: 2, .. }]),
        "a fresh budget: {next:?}"
    );
    insta::assert_snapshot!(sim.transcript);
}

/// Extension `agent.run_timeout_ms` (aiops-platform's `agent.timeout`): the run's deadline is
/// the core's next deadline; at it the worker is stopped and retried after the failure backoff.
#[test]
fn run_timeout_is_a_deadline_that_stops_the_run_and_retries_it() {
    let mut sim = Sim::new(SchedulerConfig {
        run_timeout_ms: Some(60_000),
        poll_interval_ms: 3_600_000,
        ..base()
    });
    sim.put(issue(1, "Todo"));
    sim.boot();
    sim.started(1);
    sim.advance(10_000);
    sim.turn(1, "t1", 10);
    sim.respond_all();
    assert_eq!(sim.orch.next_deadline(), Some(T0.plus_millis(60_000)));
    sim.advance(49_999);
    assert!(
        sim.feed(Event::TimerFired).is_empty(),
        "1 ms early: nothing"
    );
    let stop = sim.fire();
    assert_eq!(stop_reason(&stop), Reason::RunTimeout { limit_ms: 60_000 });
    sim.finish_stops();
    let queued = retries(&sim.records.last().unwrap().commands);
    assert_eq!(
        queued,
        [(1, 10_000, Some("run timed out after 60000 ms".to_owned()))]
    );
    sim.advance(10_000);
    poll(&mut sim);
    assert_eq!(dispatched(&sim), ["MT-1", "MT-1"], "retried");
    assert_eq!(
        sim.orch.next_deadline(),
        Some(T0.plus_millis(130_000)),
        "the retry has its own 60 s"
    );
    insta::assert_snapshot!(sim.transcript);
}

/// Extension `agent.max_runtime_ms_per_issue` (aiops-platform's
/// `max_runtime_seconds_per_claim`): run time adds up across the runs of a claim; the second
/// run's deadline is what the first left, and reaching it holds the issue.
#[test]
fn runtime_budget_adds_up_across_runs_and_holds_at_its_deadline() {
    let mut sim = Sim::new(SchedulerConfig {
        max_runtime_ms_per_issue: Some(100_000),
        poll_interval_ms: 3_600_000,
        ..base()
    });
    sim.put(issue(1, "Todo"));
    sim.boot();
    sim.started(1);
    sim.advance(70_000);
    sim.turn(1, "t1", 10);
    sim.respond_all();
    sim.exit(1, ExitOutcome::Normal);
    sim.advance(1_000);
    sim.fire();
    sim.respond_all();
    assert_eq!(dispatched(&sim), ["MT-1", "MT-1"], "70 of 100 s: continue");
    sim.started(1);
    assert_eq!(
        sim.orch.next_deadline(),
        Some(T0.plus_millis(71_000 + 30_000)),
        "30 s left"
    );
    let stop = sim.fire();
    assert_eq!(
        stop_reason(&stop),
        Reason::RuntimeBudget {
            used_ms: 100_000,
            limit_ms: 100_000
        }
    );
    sim.finish_stops();
    let blocked = sim.orch.snapshot(sim.now).blocked;
    assert_eq!(blocked.len(), 1, "held, not retried");
    assert!(retries(&sim.records.last().unwrap().commands).is_empty());
    insta::assert_snapshot!(sim.transcript);
}

/// SPEC 13.7.2: operator refreshes start a tick at once, and bursts coalesce into it.
#[test]
fn operator_refreshes_coalesce() {
    let mut sim = Sim::new(base());
    sim.boot();
    sim.advance(1_000);
    let first = sim.feed(Event::RefreshRequested);
    let second = sim.feed(Event::RefreshRequested);
    assert_eq!(
        first[0],
        Command::RefreshQueued {
            queued: true,
            coalesced: false
        }
    );
    assert_eq!(
        second,
        [Command::RefreshQueued {
            queued: true,
            coalesced: true
        }]
    );
    sim.respond_all();
    insta::assert_snapshot!(sim.transcript);
}

/// Shutdown stops every worker, drops retries, dispatches nothing more, and completes once
/// every worker has exited.
#[test]
fn shutdown_stops_workers_and_completes() {
    let mut sim = Sim::new(SchedulerConfig {
        max_concurrent_agents: 2,
        ..base()
    });
    sim.put(issue(1, "Todo"));
    sim.put(issue(2, "Todo"));
    sim.put(issue(3, "Todo"));
    sim.boot();
    sim.exit(2, failed("turn_failed"));
    sim.fire(); // MT-2's retry check is in flight when shutdown arrives
    sim.feed(Event::ShutdownRequested);
    sim.respond_all();
    assert!(!sim.shutdown_complete());
    sim.finish_stops();
    assert!(sim.shutdown_complete());
    // MT-2's retry check answered after shutdown, and MT-3 waited for a slot: neither starts.
    assert_eq!(dispatched(&sim), ["MT-1", "MT-2"]);
    assert_eq!(sim.orch.next_deadline(), None);
    insta::assert_snapshot!(sim.transcript);
}

/// Stale and duplicate events change nothing: a second exit, an old run's exit, updates for
/// unknown issues, responses nobody asked for.
#[test]
fn stale_and_duplicate_events_change_nothing() {
    let mut sim = Sim::new(base());
    sim.put(issue(1, "Todo"));
    sim.boot();
    let first_run = sim.run_of(1);
    sim.exit(1, ExitOutcome::Normal);
    let replays = [
        Event::WorkerExited {
            issue_id: id(1),
            run: first_run,
            outcome: failed("duplicate"),
        },
        Event::AgentUpdate {
            issue_id: id(99),
            run: first_run,
            update: AgentUpdate::TurnCompleted {
                turn_id: "x".into(),
            },
        },
    ];
    for event in replays.clone() {
        assert!(sim.feed(event).is_empty());
    }
    poll(&mut sim); // continuation fires and re-dispatches as a new run
    for event in replays {
        assert!(sim.feed(event).is_empty());
    }
    assert!(sim.stale_response().is_empty());
    assert_eq!(dispatched(&sim), ["MT-1", "MT-1"]);
    insta::assert_snapshot!(sim.transcript);
}

/// SPEC 13.5: absolute totals are counted once, whatever order and repetition they arrive in,
/// and a new run's thread starts its own totals.
#[test]
fn token_totals_never_double_count() {
    let mut sim = Sim::new(base());
    sim.put(issue(1, "Todo"));
    sim.boot();
    let usage = |total: u64| AgentUpdate::TokenUsage {
        input_tokens: total * 2 / 3,
        output_tokens: total / 3,
        total_tokens: total,
    };
    for total in [100, 250, 200, 250, 300] {
        sim.agent(1, usage(total));
    }
    assert_eq!(sim.orch.snapshot(sim.now).codex_totals.total_tokens, 300);
    sim.exit(1, ExitOutcome::Normal);
    poll(&mut sim);
    sim.agent(
        1,
        AgentUpdate::SessionStarted {
            thread_id: "second".into(),
            pid: None,
        },
    );
    sim.agent(1, usage(60));
    let snapshot = sim.orch.snapshot(sim.now);
    assert_eq!(snapshot.codex_totals.total_tokens, 360);
    assert_eq!(snapshot.running[0].tokens.total_tokens, 60);
    insta::assert_snapshot!(sim.transcript);
}

/// SPEC 8.5 / 16.3: a running issue the tracker no longer returns, or that lost a required
/// label, is stopped without cleanup and released.
#[test]
fn missing_or_unroutable_running_issues_are_stopped() {
    let mut sim = Sim::new(SchedulerConfig {
        required_labels: vec!["agent".into()],
        ..base()
    });
    let labelled = |n| Issue {
        labels: vec!["agent".into()],
        ..issue(n, "Todo")
    };
    sim.put(labelled(1));
    sim.put(labelled(2));
    sim.boot();
    sim.remove(1);
    sim.put(issue(2, "Todo"));
    poll(&mut sim);
    assert_eq!(sim.stopping.len(), 2);
    sim.finish_stops();
    assert!(sim.cleaned.is_empty());
    insta::assert_snapshot!(sim.transcript);
}

/// The sweeps decided so far: (max age in days, identifiers kept).
fn sweeps(sim: &Sim) -> Vec<(u32, Vec<String>)> {
    sim.records
        .iter()
        .flat_map(|r| &r.commands)
        .filter_map(|c| match c {
            Command::SweepWorkspaces { max_age_days, keep } => Some((*max_age_days, keep.clone())),
            _ => None,
        })
        .collect()
}

/// `workspace.max_age_days` (extension): the age sweep is decided here, after the first
/// candidate fetch and then at the first fetch 6 h or more after the last sweep. It keeps the
/// workspaces of active issues and of every claimed one; unset, it never runs.
#[test]
fn the_workspace_age_sweep_runs_after_the_first_fetch_then_every_six_hours() {
    let hour = 3_600_000;
    let mut sim = Sim::new(SchedulerConfig {
        workspace_max_age_days: Some(7),
        max_concurrent_agents: 1,
        poll_interval_ms: hour,
        stall_timeout_ms: 0,
        ..base()
    });
    sim.put(issue(1, "Todo"));
    sim.put(issue(2, "Todo"));
    sim.boot();
    let keep_both = vec!["MT-1".to_owned(), "MT-2".to_owned()];
    assert_eq!(sweeps(&sim), [(7, keep_both.clone())]);
    // Hourly polls: no second sweep within 6 h.
    sim.put(issue(2, "Backlog"));
    for _ in 0..5 {
        sim.advance(hour);
        poll(&mut sim);
    }
    assert_eq!(sweeps(&sim).len(), 1);
    // Six hours on: MT-2 is no longer active, MT-1 still runs.
    sim.advance(hour);
    poll(&mut sim);
    assert_eq!(sweeps(&sim), [(7, keep_both), (7, vec!["MT-1".to_owned()])]);
    insta::assert_snapshot!(sim.transcript);

    let mut off = Sim::new(base());
    off.put(issue(1, "Todo"));
    off.boot();
    off.advance(7 * hour);
    poll(&mut off);
    assert!(sweeps(&off).is_empty());
}

/// An agent's reported cost (Claude Code's, absolute per thread) adds up over the run's threads,
/// and refused tools are kept once each; both show in the running row.
#[test]
fn cost_adds_up_over_threads_and_denials_are_kept_once() {
    let mut sim = Sim::new(base());
    sim.put(issue(1, "Todo"));
    sim.boot();
    sim.started(1);
    let session = |thread: &str| AgentUpdate::SessionStarted {
        thread_id: thread.into(),
        pid: None,
    };
    let cost = |micros| AgentUpdate::Cost {
        total_usd_micros: micros,
    };
    let denied = |tools: &[&str]| AgentUpdate::PermissionDenied {
        tools: tools.iter().map(|t| (*t).to_owned()).collect(),
    };
    sim.agent(1, session("s-1"));
    sim.agent(1, cost(1_000));
    sim.agent(1, cost(2_500));
    sim.agent(1, denied(&["Bash", "WebFetch"]));
    sim.agent(1, session("s-2"));
    sim.agent(1, cost(400));
    sim.agent(1, denied(&["Bash"]));
    let row = &sim.orch.snapshot(sim.now).running[0];
    assert_eq!(
        row.cost_usd_micros,
        Some(2_900),
        "2,500 on s-1, then 400 on s-2"
    );
    assert_eq!(row.permission_denials, ["Bash", "WebFetch"]);
    assert_eq!(row.last_event.as_deref(), Some("permission_denied"));
}

/// Extension `agent.max_tokens_per_day` (issue 18): once the UTC day's tokens reach the budget,
/// nothing new starts (running agents finish; retries wait) until the next day.
#[test]
fn the_daily_token_budget_stops_new_dispatch_until_the_next_utc_day() {
    let mut sim = Sim::new(SchedulerConfig {
        max_tokens_per_day: Some(1_000),
        max_concurrent_agents: 1,
        ..base()
    });
    sim.put(issue(1, "Todo"));
    sim.boot();
    sim.started(1);
    sim.turn(1, "t1", 800); // 800 in, 400 out: 1,200 today
    sim.respond_all();
    sim.exit(1, ExitOutcome::Normal);
    sim.put(issue(2, "Todo"));
    sim.advance(40_000);
    poll(&mut sim);
    assert_eq!(dispatched(&sim), ["MT-1"], "nothing new today");
    let snapshot = sim.orch.snapshot(sim.now);
    let daily = snapshot.dispatch.daily_tokens.expect("shown");
    assert_eq!((daily.used, daily.limit), (1_200, 1_000));
    assert_eq!(daily.resets_at, T0.plus_millis(86_400_000));
    assert!(
        snapshot
            .waiting
            .iter()
            .any(|w| w.reason.contains("daily token budget is used")),
        "{:?}",
        snapshot.waiting
    );
    // The next day: work starts again.
    sim.advance(86_400_000);
    sim.run_until(|s| dispatched(s).len() >= 2);
    let day2 = sim.orch.snapshot(sim.now).dispatch.daily_tokens.unwrap();
    assert_eq!(day2.used, 0, "a new day counts from zero");
    insta::assert_snapshot!(sim.transcript);
}

/// An operator pause stops new dispatch (retries wait too) and lets running agents finish;
/// a resume polls at once and dispatch goes on.
#[test]
fn an_operator_pause_holds_new_dispatch_until_resumed() {
    let mut sim = Sim::new(SchedulerConfig {
        max_concurrent_agents: 2,
        ..base()
    });
    sim.put(issue(1, "Todo"));
    sim.boot();
    sim.started(1);
    sim.feed(Event::PauseRequested {
        reason: "deploy freeze".into(),
    });
    sim.put(issue(2, "Todo"));
    sim.advance(40_000);
    poll(&mut sim);
    assert_eq!(dispatched(&sim), ["MT-1"], "nothing new while paused");
    let snapshot = sim.orch.snapshot(sim.now);
    let paused = snapshot.dispatch.paused.clone().expect("shown");
    assert_eq!(paused.reason, "deploy freeze");
    assert!(
        (snapshot.waiting.iter()).any(|w| w.reason.contains("paused by the operator")),
        "{:?}",
        snapshot.waiting
    );
    assert!(sim.live.contains_key(&id(1)), "the running agent goes on");
    // The running one fails: its retry waits for the resume too.
    sim.exit(
        1,
        ExitOutcome::Failed {
            reason: "boom".into(),
        },
    );
    sim.advance(60_000);
    poll(&mut sim);
    poll(&mut sim);
    assert_eq!(
        dispatched(&sim),
        ["MT-1"],
        "a due retry does not start either"
    );
    let retrying = sim.orch.snapshot(sim.now).retrying;
    assert_eq!(retrying.len(), 1, "it still waits: {retrying:?}");
    assert_eq!(retrying[0].attempt, 1, "no attempt spent while paused");
    assert_eq!(
        sim.orch.next_deadline(),
        Some(sim.now.plus_millis(30_000)),
        "the poll only"
    );
    assert_eq!(sim.orch.durable().paused, Some(paused));
    let commands = sim.feed(Event::ResumeRequested);
    assert!(
        commands
            .iter()
            .any(|c| matches!(c, Command::FetchCandidates { .. })),
        "a poll at once: {commands:?}"
    );
    sim.respond_all();
    assert_eq!(
        dispatched(&sim),
        ["MT-1", "MT-2", "MT-1"],
        "the poll starts the new one, the retry its next attempt"
    );
    assert!(sim.orch.snapshot(sim.now).dispatch.paused.is_none());
    insta::assert_snapshot!(sim.transcript);
}

/// An operator stop ends one live run now and holds the issue until it changes in the
/// tracker; a stop of an issue with no live run changes nothing.
#[test]
fn an_operator_stop_ends_one_run_and_holds_the_issue() {
    let mut sim = Sim::new(base());
    sim.put(issue(1, "Todo"));
    sim.put(issue(2, "Todo"));
    sim.boot();
    sim.started(1);
    sim.started(2);
    assert_eq!(sim.orch.stop_verdict("MT-1"), StopVerdict::Stopping);
    assert_eq!(sim.orch.stop_verdict("MT-9"), StopVerdict::NotRunning);
    let commands = sim.feed(Event::StopRequested {
        identifier: "MT-1".into(),
    });
    assert!(
        matches!(
            commands.as_slice(),
            [Command::StopWorker {
                reason: Reason::OperatorStop,
                ..
            }]
        ),
        "{commands:?}"
    );
    assert!(
        sim.feed(Event::StopRequested {
            identifier: "MT-9".into()
        })
        .is_empty()
    );
    sim.finish_stops();
    let snapshot = sim.orch.snapshot(sim.now);
    assert_eq!(snapshot.running.len(), 1, "MT-2 goes on");
    assert!(
        (snapshot.blocked.iter())
            .any(|b| b.issue_identifier == "MT-1" && b.reason.contains("stopped by the operator")),
        "{:?}",
        snapshot.blocked
    );
    // Polls do not start it again while it is unchanged.
    sim.advance(40_000);
    poll(&mut sim);
    assert_eq!(dispatched(&sim), ["MT-1", "MT-2"]);
    insta::assert_snapshot!(sim.transcript);
}

/// What a previous process kept comes back: its pause, and its token use when the day is
/// still today (a stale day counts nothing).
#[test]
fn a_restart_keeps_the_pause_and_the_days_tokens() {
    let config = SchedulerConfig {
        max_tokens_per_day: Some(1_000),
        ..base()
    };
    let mut first = Sim::new(config.clone());
    first.put(issue(1, "Todo"));
    first.boot();
    first.started(1);
    first.turn(1, "t1", 300); // 300 in, 150 out
    first.feed(Event::PauseRequested {
        reason: String::new(),
    });
    let kept = first.orch.durable();
    assert_eq!(kept.day_tokens, 450);
    assert_eq!(
        kept.paused.as_ref().map(|p| p.reason.as_str()),
        Some("paused by the operator")
    );
    // Serialised as the shell keeps it, and read back.
    let kept: Durable = serde_json::from_str(&serde_json::to_string(&kept).unwrap()).unwrap();

    let mut second = Sim::new(config.clone());
    second.put(issue(2, "Todo"));
    second.feed(Event::StateRestored {
        durable: kept.clone(),
    });
    second.boot();
    assert!(
        dispatched(&second).is_empty(),
        "still paused after the restart"
    );
    let daily = second
        .orch
        .snapshot(second.now)
        .dispatch
        .daily_tokens
        .unwrap();
    assert_eq!(daily.used, 450);
    second.feed(Event::ResumeRequested);
    second.respond_all();
    assert_eq!(dispatched(&second), ["MT-2"]);

    // A day later, the kept count is yesterday's: nothing carries over.
    let mut third = Sim::new(config);
    third.advance(86_400_000);
    third.feed(Event::StateRestored {
        durable: Durable {
            paused: None,
            ..kept
        },
    });
    let daily = third
        .orch
        .snapshot(third.now)
        .dispatch
        .daily_tokens
        .unwrap();
    assert_eq!(daily.used, 0);
}

/// A restart from the event log: the restored state keeps the retry queue, holds and tokens;
/// the live run becomes a retry due at once with its attempt; a tracker request in flight is
/// forgotten; then startup works as after any start, and nothing runs twice.
#[test]
fn a_restart_turns_live_runs_into_retries_and_keeps_the_rest() {
    let mut sim = Sim::new(SchedulerConfig {
        max_concurrent_agents: 3,
        ..base()
    });
    for n in 1..=3 {
        sim.put(issue(n, "Todo"));
    }
    sim.boot();
    for n in 1..=3 {
        sim.started(n);
    }
    sim.turn(1, "t1", 500); // MT-1 runs on with 750 tokens
    sim.exit(
        2,
        ExitOutcome::Failed {
            reason: "boom".into(),
        },
    ); // MT-2 waits for a retry
    sim.exit(
        3,
        ExitOutcome::InputRequired {
            reason: "needs a decision".into(),
        },
    ); // MT-3 held
    sim.advance(5_000);
    sim.fire(); // a tick: its refresh stays unanswered when the process dies
    let before = sim.orch.snapshot(sim.now);
    assert_eq!(before.counts.running, 1);
    assert_eq!(before.counts.retrying, 1);
    assert_eq!(before.counts.blocked, 1);
    // The process dies here; the next one restores the state from the log.
    let restored: symphony_core::Orchestrator =
        serde_json::from_str(&serde_json::to_string(&sim.orch).unwrap()).unwrap();
    let mut next = Sim::new(base());
    next.orch = restored;
    for n in 1..=3 {
        next.put(issue(n, "Todo"));
    }
    next.now = sim.now.plus_millis(60_000);
    next.note("the daemon was killed and started again a minute later");
    let commands = next.feed(Event::Restarted);
    assert!(
        matches!(commands.as_slice(), [Command::ScheduleRetry { identifier, attempt: 1, delay_ms: 0, .. }] if identifier == "MT-1"),
        "{commands:?}"
    );
    let after = next.orch.snapshot(next.now);
    assert_eq!(after.counts.running, 0);
    assert_eq!(after.counts.retrying, 2, "MT-1 now, MT-2 as it was");
    assert_eq!(after.counts.blocked, 1, "MT-3 still held");
    let mt2 = after
        .retrying
        .iter()
        .find(|r| r.issue_identifier == "MT-2")
        .unwrap();
    let mt2_before = before
        .retrying
        .iter()
        .find(|r| r.issue_identifier == "MT-2")
        .unwrap();
    assert_eq!(
        (mt2.attempt, mt2.due_at),
        (mt2_before.attempt, mt2_before.due_at)
    );
    assert_eq!(
        after.codex_totals.total_tokens, before.codex_totals.total_tokens,
        "no token counted twice or lost"
    );
    assert!(next.orch.next_deadline().is_none(), "nothing until startup");
    next.boot();
    next.run_until(|s| dispatched(s).len() >= 2);
    let again = dispatched(&next);
    assert!(
        again.contains(&"MT-1".to_owned()) && again.contains(&"MT-2".to_owned()),
        "{again:?}"
    );
    assert!(
        !again.contains(&"MT-3".to_owned()),
        "a hold outlives the restart"
    );
    insta::assert_snapshot!(next.transcript);
}

/// A pause reason comes from an HTTP body: however long or multi-byte, what the core keeps is
/// capped on a character boundary, and a blank one says who paused.
#[test]
fn a_pause_reason_from_outside_is_capped() {
    let mut sim = Sim::new(base());
    sim.boot();
    sim.feed(Event::PauseRequested {
        reason: "é\u{202e}".repeat(10_000),
    });
    let kept = sim.orch.durable().paused.unwrap().reason;
    assert_eq!(kept.chars().count(), symphony_core::MAX_MESSAGE_CHARS);
    sim.feed(Event::ResumeRequested);
    sim.feed(Event::PauseRequested {
        reason: " \n ".into(),
    });
    assert_eq!(
        sim.orch.durable().paused.unwrap().reason,
        "paused by the operator"
    );
}

/// The host of each dispatch, in order.
fn hosts_of(commands: &[Command]) -> Vec<(String, Option<String>)> {
    commands
        .iter()
        .filter_map(|c| match c {
            Command::Dispatch { issue, host, .. } => Some((issue.identifier.clone(), host.clone())),
            _ => None,
        })
        .collect()
}

fn two_hosts(per_host: u32) -> SchedulerConfig {
    SchedulerConfig {
        max_concurrent_agents: 10,
        worker_hosts: vec!["alpha".into(), "beta".into()],
        max_concurrent_agents_per_host: Some(per_host),
        host_backoff_ms: Some(60_000),
        ..base()
    }
}

/// Appendix A: dispatch spreads over the hosts (least loaded, ties by list order) under the
/// per-host cap; with every host full the rest wait, never running on this machine.
#[test]
fn dispatch_spreads_over_hosts_under_their_cap_and_never_falls_back_to_local() {
    let mut sim = Sim::new(two_hosts(2));
    for n in 1..=5 {
        sim.put(issue(n, "Todo"));
    }
    sim.boot();
    let first: Vec<Command> = sim
        .records
        .iter()
        .flat_map(|r| r.commands.clone())
        .collect();
    let some = |h: &str| Some(h.to_owned());
    assert_eq!(
        hosts_of(&first),
        [
            ("MT-1".into(), some("alpha")),
            ("MT-2".into(), some("beta")),
            ("MT-3".into(), some("alpha")),
            ("MT-4".into(), some("beta")),
        ]
    );
    let snapshot = sim.orch.snapshot(sim.now);
    assert_eq!(
        snapshot.hosts.iter().map(|h| h.running).collect::<Vec<_>>(),
        [2, 2]
    );
    let waiting = &snapshot.waiting[0];
    assert_eq!(waiting.issue_identifier, "MT-5");
    assert!(
        waiting
            .reason
            .contains("every worker host runs its 2 agents"),
        "{}",
        waiting.reason
    );
    assert_eq!(snapshot.running[0].host.as_deref(), Some("alpha"));
    insta::assert_snapshot!(sim.transcript);
}

/// Appendix A: a retry goes back to its host when that host has room (its workspace is
/// there), else to the least loaded one.
#[test]
fn a_retry_prefers_the_host_of_its_run_before() {
    let mut sim = Sim::new(two_hosts(2));
    for n in 1..=3 {
        sim.put(issue(n, "Todo"));
    }
    sim.boot();
    // MT-1 on alpha, MT-2 on beta, MT-3 on alpha. MT-2 fails: its retry returns to beta,
    // although alpha is as loaded.
    let commands = sim.exit(2, failed("turn_failed"));
    assert_eq!(retries(&commands).len(), 1);
    sim.run_until(|sim| sim.live.contains_key(&id(2)));
    let all: Vec<Command> = sim
        .records
        .iter()
        .flat_map(|r| r.commands.clone())
        .collect();
    assert_eq!(
        hosts_of(&all).last().unwrap(),
        &("MT-2".to_owned(), Some("beta".to_owned()))
    );
    // MT-1 ends normally: its continuation goes back to alpha, where it has room again.
    let commands = sim.exit(1, ExitOutcome::Normal);
    assert_eq!(retries(&commands)[0].1, 1000);
    sim.run_until(|sim| sim.live.contains_key(&id(1)));
    let all: Vec<Command> = sim
        .records
        .iter()
        .flat_map(|r| r.commands.clone())
        .collect();
    assert_eq!(
        hosts_of(&all).last().unwrap(),
        &("MT-1".to_owned(), Some("alpha".to_owned()))
    );
}

/// Appendix A: a run that fails before its agent starts because the host cannot be used
/// holds that host out for the backoff and runs the same attempt on another host; the host
/// comes back when the backoff is over. Shown in the snapshot meanwhile.
#[test]
fn a_host_that_fails_before_the_agent_starts_is_held_out_and_the_run_moves() {
    let mut sim = Sim::new(two_hosts(3));
    sim.put(issue(1, "Todo"));
    sim.boot();
    let all: Vec<Command> = sim
        .records
        .iter()
        .flat_map(|r| r.commands.clone())
        .collect();
    assert_eq!(
        hosts_of(&all),
        [("MT-1".to_owned(), Some("alpha".to_owned()))]
    );
    let refused = ExitOutcome::HostUnavailable {
        reason: "ssh: connect to host alpha port 22: Connection refused".into(),
    };
    let commands = sim.exit(1, refused);
    assert!(
        commands
            .iter()
            .any(|c| matches!(c, Command::HoldHost { host, .. } if host == "alpha")),
        "{commands:?}"
    );
    assert_eq!(
        retries(&commands)[0].0,
        1,
        "the same attempt, not a new one"
    );
    assert_eq!(retries(&commands)[0].1, 1000);
    let snapshot = sim.orch.snapshot(sim.now);
    assert_eq!(
        snapshot.hosts[0].held_until,
        Some(sim.now.plus_millis(60_000))
    );
    assert!(
        snapshot.hosts[0]
            .held_because
            .as_deref()
            .unwrap()
            .contains("Connection refused")
    );
    assert_eq!(snapshot.retrying[0].host.as_deref(), Some("alpha"));
    sim.run_until(|sim| sim.live.contains_key(&id(1)));
    let all: Vec<Command> = sim
        .records
        .iter()
        .flat_map(|r| r.commands.clone())
        .collect();
    assert_eq!(hosts_of(&all).last().unwrap().1.as_deref(), Some("beta"));
    // After the backoff alpha is chosen again: a second issue goes there (least loaded).
    sim.advance(61_000);
    sim.put(issue(2, "Todo"));
    sim.run_until(|sim| sim.live.contains_key(&id(2)));
    let all: Vec<Command> = sim
        .records
        .iter()
        .flat_map(|r| r.commands.clone())
        .collect();
    assert_eq!(
        hosts_of(&all).last().unwrap(),
        &("MT-2".to_owned(), Some("alpha".to_owned()))
    );
    assert_eq!(sim.orch.snapshot(sim.now).hosts[0].held_until, None);
    insta::assert_snapshot!(sim.transcript);
}

/// With no worker hosts, a host failure (which only a remote host reports) is an ordinary
/// failure: a new attempt with backoff.
#[test]
fn without_hosts_a_host_failure_is_an_ordinary_failure() {
    let mut sim = Sim::new(base());
    sim.put(issue(1, "Todo"));
    sim.boot();
    let commands = sim.exit(1, ExitOutcome::HostUnavailable { reason: "x".into() });
    assert_eq!(retries(&commands)[0].0, 1);
    assert_eq!(retries(&commands)[0].1, 10_000);
    assert!(
        !commands
            .iter()
            .any(|c| matches!(c, Command::HoldHost { .. }))
    );
    assert!(sim.orch.snapshot(sim.now).hosts.is_empty());
}
