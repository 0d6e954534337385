//! Rendering `/metrics` with 100 running issues. Target: under 1 ms. Figures in
//! `docs/performance.md`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use symphony::metrics::{LogSizes, Metrics};
use symphony_core::{
    AgentUpdate, Command, Event, Issue, IssueId, Orchestrator, SchedulerConfig, Timestamp,
};

/// A core with `n` running issues, each with some tokens and a live session.
fn running(n: usize) -> Orchestrator {
    let mut core = Orchestrator::new(SchedulerConfig {
        active_states: vec!["Todo".into()],
        terminal_states: vec!["Done".into()],
        max_concurrent_agents: n as u32,
        ..SchedulerConfig::default()
    });
    let at = Timestamp(1_800_000_000_000);
    let commands = core.handle(at, &Event::Startup);
    let request = |commands: &[Command], want_candidates: bool| {
        commands.iter().find_map(|c| match c {
            Command::FetchCandidates { request, .. } if want_candidates => Some(*request),
            Command::ListTerminalIssues { request, .. } if !want_candidates => Some(*request),
            _ => None,
        })
    };
    let terminal = request(&commands, false).unwrap();
    let candidates = request(&commands, true).unwrap();
    core.handle(
        at,
        &Event::TerminalIssuesListed {
            request: terminal,
            issues: vec![],
        },
    );
    let issues: Vec<Issue> = (0..n)
        .map(|i| Issue {
            id: IssueId(format!("id-{i}")),
            identifier: format!("MT-{i}"),
            title: format!("Issue {i}"),
            state: "Todo".into(),
            dispatchable: true,
            ..Issue::default()
        })
        .collect();
    let commands = core.handle(
        at,
        &Event::CandidatesFetched {
            request: candidates,
            issues,
        },
    );
    for command in commands {
        if let Command::Dispatch { issue, run, .. } = command {
            core.handle(
                at,
                &Event::WorkerStarted {
                    issue_id: issue.id.clone(),
                    run,
                    workspace_path: Some(format!("/ws/{}", issue.identifier)),
                },
            );
            core.handle(
                at,
                &Event::AgentUpdate {
                    issue_id: issue.id.clone(),
                    run,
                    update: AgentUpdate::TokenUsage {
                        input_tokens: 1_000,
                        output_tokens: 200,
                        total_tokens: 1_200,
                    },
                },
            );
        }
    }
    core
}

fn bench(c: &mut Criterion) {
    let core = running(100);
    let snapshot = core.snapshot(core.now());
    assert_eq!(snapshot.counts.running, 100);
    let metrics = Metrics::new();
    for _ in 0..100 {
        metrics.dispatched();
        metrics.tracker_request("candidates", true, 0.01);
        metrics.http_request("/api/v1/state", 200);
    }
    let sizes = LogSizes {
        event_log: Some(1 << 20),
        audit_log: Some(1 << 16),
        tracker_rate: None,
    };
    c.bench_function("metrics/render_100_running", |b| {
        b.iter(|| black_box(metrics.render(&snapshot, sizes)));
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
