//! Throughput of the orchestrator's hot paths. Figures and the machine they were taken on are in
//! `docs/performance.md`.
//!
//! - `poll_tick/<n>`: one whole poll tick with 50 workers running and 10 free slots: the timer
//!   fires, the 50 running issues are refreshed, `n` candidates arrive and 10 are dispatched.
//!   Target: <= 2 ms at 10,000 candidates, growth no worse than n log n.
//! - `poll_tick_hosts/<n>`: the same tick with 100 runs spread over 10 worker hosts (90
//!   running, 10 free slots): the host choice's share of a tick (`docs/scaling.md`).
//! - `agent_updates`: agent updates for running workers through `handle`. Target: >= 1,000,000
//!   events/s.
//! - `log_rotation/<n>_running`: the checkpoint header a rotated event-log segment starts with
//!   (the whole state, serialised), and reading it back; the header's size is printed.

mod common;

use std::hint::black_box;

use common::{T0, issues, with_running, with_running_on};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use symphony_core::log::{
    LogHeader, Recorder, parse_header, read_log_tolerating_torn_tail, replay,
};
use symphony_core::{AgentUpdate, Command, Event, IssueId, Orchestrator, RunId};

const RUNNING: usize = 50;

/// The three events of one tick, built once so that the timed part is only `handle`.
struct Tick {
    base: Orchestrator,
    events: [Event; 3],
}

fn tick(candidates: usize) -> Tick {
    tick_on(candidates, RUNNING, &[])
}

/// [`tick`] with `running` runs spread over `hosts`.
fn tick_on(candidates: usize, running: usize, hosts: &[String]) -> Tick {
    let (base, _) = with_running_on(running, running as u32 + 10, hosts);
    let board = issues(candidates);
    let at = T0.plus_millis(base.config().poll_interval_ms);
    // Dry run on a copy to learn the request ids the tick will use (the core is deterministic,
    // so every clone of `base` uses the same ones).
    let mut probe = base.clone();
    let refresh = match probe.handle(at, &Event::TimerFired).as_slice() {
        [Command::RefreshIssues { request, ids }] => {
            assert_eq!(ids.len(), running);
            Event::IssuesRefreshed {
                request: *request,
                issues: board[..running].to_vec(),
            }
        }
        other => panic!("expected one refresh, got {other:?}"),
    };
    let fetched = match probe.handle(at, &refresh).as_slice() {
        [Command::FetchCandidates { request, .. }] => Event::CandidatesFetched {
            request: *request,
            issues: board,
        },
        other => panic!("expected one fetch, got {other:?}"),
    };
    let dispatched = probe
        .handle(at, &fetched)
        .iter()
        .filter(|c| matches!(c, Command::Dispatch { .. }))
        .count();
    assert_eq!(dispatched, 10, "the tick must fill the 10 free slots");
    Tick {
        base,
        events: [Event::TimerFired, refresh, fetched],
    }
}

fn poll_tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("poll_tick");
    group.sample_size(30);
    for candidates in [1_000, 10_000, 100_000] {
        let setup = tick(candidates);
        let at = T0.plus_millis(setup.base.config().poll_interval_ms);
        group.throughput(Throughput::Elements(candidates as u64));
        group.bench_function(candidates.to_string(), |b| {
            b.iter_batched(
                || setup.base.clone(),
                |mut orch| {
                    for event in &setup.events {
                        black_box(orch.handle(at, event));
                    }
                    orch
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
    let hosts: Vec<String> = (1..=10).map(|n| format!("worker-{n:02}")).collect();
    let mut group = c.benchmark_group("poll_tick_hosts");
    group.sample_size(30);
    for candidates in [1_000, 10_000] {
        let setup = tick_on(candidates, 90, &hosts);
        let at = T0.plus_millis(setup.base.config().poll_interval_ms);
        group.throughput(Throughput::Elements(candidates as u64));
        group.bench_function(candidates.to_string(), |b| {
            b.iter_batched(
                || setup.base.clone(),
                |mut orch| {
                    for event in &setup.events {
                        black_box(orch.handle(at, event));
                    }
                    orch
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

/// A stream of updates spread over the running workers: token totals that grow, messages, rate
/// limits and turn starts, in the proportions a Codex session produces them.
fn updates(runs: &[(IssueId, RunId)], count: usize) -> Vec<Event> {
    (0..count)
        .map(|k| {
            let (issue_id, run) = runs[k % RUNNING].clone();
            let tokens = (k / RUNNING) as u64 * 100;
            let update = match k % 10 {
                0..=5 => AgentUpdate::TokenUsage {
                    input_tokens: tokens,
                    output_tokens: tokens / 4,
                    total_tokens: tokens + tokens / 4,
                },
                6..=7 => AgentUpdate::Message {
                    event: "item/completed".to_owned(),
                    message: Some("ran cargo test: 212 passed".to_owned()),
                },
                8 => AgentUpdate::RateLimits {
                    snapshot: serde_json::json!({"primary": {"usedPercent": 12.5}}),
                },
                _ => AgentUpdate::TurnStarted {
                    turn_id: format!("turn-{}", k / RUNNING),
                },
            };
            Event::AgentUpdate {
                issue_id,
                run,
                update,
            }
        })
        .collect()
}

fn agent_updates(c: &mut Criterion) {
    const EVENTS: usize = 10_000;
    let (base, runs) = with_running(RUNNING, RUNNING as u32);
    let events = updates(&runs, EVENTS);
    let mut group = c.benchmark_group("agent_updates");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("mixed", |b| {
        b.iter_batched(
            || base.clone(),
            |mut orch| {
                for (k, event) in events.iter().enumerate() {
                    black_box(orch.handle(T0.plus_millis(k as u64), event));
                }
                orch
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn log_rotation(c: &mut Criterion) {
    let mut group = c.benchmark_group("log_rotation");
    for running in [10, 100] {
        let (orch, _) = with_running(running, running as u32);
        let line = LogHeader::resuming(&orch, 1_000).to_line();
        eprintln!(
            "log_rotation: checkpoint with {running} running is {} bytes",
            line.len()
        );
        group.bench_function(format!("{running}_running/write"), |b| {
            b.iter(|| black_box(LogHeader::resuming(&orch, 1_000).to_line()));
        });
        group.bench_function(format!("{running}_running/read"), |b| {
            b.iter(|| black_box(parse_header(&line).expect("reads back")));
        });
    }
    group.finish();
}

/// Restart recovery: reading a segment (its checkpoint with 50 running, then 100,000 records of
/// agent updates) and replaying it to the state a restarted daemon carries on from. Target:
/// under 200 ms.
fn restore(c: &mut Criterion) {
    const RECORDS: usize = 100_000;
    let (base, runs) = with_running(RUNNING, RUNNING as u32);
    let mut recorder = Recorder::resume(base, 1_000);
    let mut text = recorder.header().to_line();
    for (k, event) in updates(&runs, RECORDS).iter().enumerate() {
        let (_, line) = recorder.handle(T0.plus_millis(k as u64), event);
        text.push('\n');
        text.push_str(&line);
    }
    text.push('\n');
    eprintln!(
        "restore: a segment of {RECORDS} records is {} bytes",
        text.len()
    );
    let mut group = c.benchmark_group("restore");
    group.sample_size(10);
    group.bench_function("checkpoint_plus_100k_records", |b| {
        b.iter(|| {
            let (header, records, _) = read_log_tolerating_torn_tail(&text).expect("reads");
            let replayed = replay(&header, &records, None);
            assert!(replayed.divergence.is_none());
            black_box(replayed.orchestrator)
        });
    });
    group.finish();
}

criterion_group!(benches, poll_tick, agent_updates, log_rotation, restore);
criterion_main!(benches);
