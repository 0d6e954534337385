//! Fixtures shared by the benches: realistic issues and an orchestrator driven to a known state.

#![allow(dead_code)] // each bench uses a different part

use symphony_core::{
    Command, Event, Issue, IssueId, Orchestrator, RunId, SchedulerConfig, Timestamp,
};

/// 2026-01-01T00:00:00Z.
pub(crate) const T0: Timestamp = Timestamp(1_767_225_600_000);

pub(crate) fn config(max_agents: u32) -> SchedulerConfig {
    SchedulerConfig {
        max_concurrent_agents: max_agents,
        max_concurrent_agents_by_state: [("in progress".to_owned(), i64::from(max_agents))]
            .into_iter()
            .collect(),
        ..SchedulerConfig::default()
    }
}

/// Issue `n` with the field sizes of a typical tracker issue: a short title, a 1 KiB body, two
/// labels, one blocker, priorities and creation times spread so that sorting has real work.
pub(crate) fn issue(n: usize) -> Issue {
    let n32 = n as u64;
    Issue {
        id: IssueId(format!("{:08x}-0000-4000-8000-{:012x}", n32 * 7919, n32)),
        identifier: format!("ENG-{n}"),
        title: format!("Fix the flaky retry path in module {n}"),
        description: Some("Steps to reproduce and context. ".repeat(32)),
        priority: [Some(1), Some(2), Some(3), Some(4), None][n % 5],
        state: ["In Progress", "Todo", "Todo"][n % 3].to_owned(),
        branch_name: Some(format!("eng-{n}-fix-flaky-retry")),
        url: Some(format!("https://tracker.example/ENG-{n}")),
        labels: vec!["backend".to_owned(), "agent".to_owned()],
        created_at: Some(T0.plus_millis((n32 * 104_729) % 86_400_000)),
        updated_at: Some(T0),
        dispatchable: true,
        ..Issue::default()
    }
}

pub(crate) fn issues(count: usize) -> Vec<Issue> {
    (0..count).map(issue).collect()
}

/// Feeds `event` and answers every request command from `board` (candidates and refreshes;
/// the startup terminal listing gets an empty answer) until none is open. Returns the runs
/// dispatched on the way.
pub(crate) fn drive(
    orch: &mut Orchestrator,
    at: Timestamp,
    event: Event,
    board: &[Issue],
) -> Vec<(IssueId, RunId)> {
    let mut dispatched = Vec::new();
    let mut queue = vec![event];
    while let Some(event) = queue.pop() {
        for command in orch.handle(at, &event) {
            match command {
                Command::FetchCandidates { request, .. } => queue.push(Event::CandidatesFetched {
                    request,
                    issues: board.to_vec(),
                }),
                Command::RefreshIssues { request, ids } => queue.push(Event::IssuesRefreshed {
                    request,
                    issues: board
                        .iter()
                        .filter(|i| ids.contains(&i.id))
                        .cloned()
                        .collect(),
                }),
                Command::ListTerminalIssues { request, .. } => {
                    queue.push(Event::TerminalIssuesListed {
                        request,
                        issues: Vec::new(),
                    });
                }
                Command::Dispatch { issue_id, run, .. } => dispatched.push((issue_id, run)),
                _ => {}
            }
        }
    }
    dispatched
}

/// An orchestrator limited to `max_agents` that has started and dispatched `running` of the
/// issues `0..running`, between ticks, with those runs.
pub(crate) fn with_running(
    running: usize,
    max_agents: u32,
) -> (Orchestrator, Vec<(IssueId, RunId)>) {
    with_running_on(running, max_agents, &[])
}

/// [`with_running`] with the runs spread over worker `hosts` (none: local), no per-host cap.
pub(crate) fn with_running_on(
    running: usize,
    max_agents: u32,
    hosts: &[String],
) -> (Orchestrator, Vec<(IssueId, RunId)>) {
    let on = |max| SchedulerConfig {
        worker_hosts: hosts.to_vec(),
        ..config(max)
    };
    let mut orch = Orchestrator::new(on(running as u32));
    let runs = drive(&mut orch, T0, Event::Startup, &issues(running));
    assert_eq!(runs.len(), running);
    drive(
        &mut orch,
        T0,
        Event::WorkflowReloaded {
            config: on(max_agents),
        },
        &[],
    );
    (orch, runs)
}
