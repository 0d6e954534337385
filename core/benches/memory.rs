//! Heap bytes the orchestrator holds per tracked issue, measured with dhat's allocation
//! counters (no sampling: every allocation and free is counted). `cargo bench --bench memory`
//! prints a table; figures are in `docs/performance.md`.
//!
//! "Tracked" means claimed: running, queued for retry or blocked. Unclaimed candidates are not
//! kept between ticks, so they cost nothing once a tick ends.

mod common;

use common::{T0, config, drive, issues};
use symphony_core::{Event, ExitOutcome, Orchestrator};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn live_bytes() -> usize {
    dhat::HeapStats::get().curr_bytes
}

/// Bytes held by an orchestrator with `n` issues in one claim state, as produced by `exit`
/// (none: still running).
fn measure(n: usize, exit: Option<ExitOutcome>) -> usize {
    let board = issues(n);
    let before = live_bytes();
    let mut orch = Orchestrator::new(config(n as u32));
    let runs = drive(&mut orch, T0, Event::Startup, &board);
    assert_eq!(runs.len(), n, "every issue must be dispatched");
    if let Some(outcome) = exit {
        for (issue_id, run) in runs {
            let commands = orch.handle(
                T0,
                &Event::WorkerExited {
                    issue_id,
                    run,
                    outcome: outcome.clone(),
                },
            );
            drop(commands);
        }
    } else {
        drop(runs);
    }
    let held = live_bytes() - before;
    drop(orch);
    held
}

fn main() {
    let _profiler = dhat::Profiler::builder()
        .testing()
        .trim_backtraces(Some(4))
        .build();

    let before = live_bytes();
    let empty = Orchestrator::new(config(10));
    let fixed = live_bytes() - before;
    drop(empty);

    let sample = issues(1_000);
    let before = live_bytes();
    let copy = sample.clone();
    let per_issue = (live_bytes() - before) / sample.len();
    drop(copy);

    println!("empty orchestrator: {fixed} bytes");
    println!("one sample issue (heap only, 1 KiB body): {per_issue} bytes");
    println!("{:>8} {:>10} {:>18}", "issues", "state", "bytes per issue");
    for n in [1_000, 10_000] {
        let rows = [
            ("running", None),
            (
                "retrying",
                Some(ExitOutcome::Failed {
                    reason: "turn_failed: model returned 500".into(),
                }),
            ),
            (
                "blocked",
                Some(ExitOutcome::InputRequired {
                    reason: "item/tool/requestUserInput".into(),
                }),
            ),
        ];
        for (state, outcome) in rows {
            let held = measure(n, outcome);
            println!("{n:>8} {state:>10} {:>18}", (held - fixed) / n);
        }
    }
}
