//! Decode and dispatch of typical app-server notification lines (the per-line work of a Codex
//! session). Target: >= 200,000 lines/s, under 50 µs added per message. Figures in
//! `docs/performance.md`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use symphony::agent::codex::decode_line;

/// One turn's worth of notifications in the proportions the real CLI sends them.
fn lines() -> Vec<String> {
    let usage = json!({"totalTokens": 15_234, "inputTokens": 14_000, "cachedInputTokens": 9_000,
        "cacheWriteInputTokens": 0, "outputTokens": 1_234, "reasoningOutputTokens": 400});
    [
        json!({"method": "thread/status/changed", "params": {"threadId": "thr_1", "status": {"type": "active"}}}),
        json!({"method": "turn/started", "params": {"threadId": "thr_1", "turn": {"id": "turn_1", "status": "inProgress", "items": []}}}),
        json!({"method": "item/started", "params": {"threadId": "thr_1", "turnId": "turn_1", "item": {"type": "commandExecution", "id": "c1", "command": "cargo test", "cwd": "/ws/MT-1", "status": "inProgress"}}}),
        json!({"method": "item/completed", "params": {"threadId": "thr_1", "turnId": "turn_1", "item": {"type": "commandExecution", "id": "c1", "command": "cargo test", "cwd": "/ws/MT-1", "status": "completed", "exitCode": 0, "aggregatedOutput": "running 212 tests\ntest result: ok. 212 passed"}}}),
        json!({"method": "thread/tokenUsage/updated", "params": {"threadId": "thr_1", "turnId": "turn_1", "tokenUsage": {"total": usage, "last": usage, "modelContextWindow": 258_400}}}),
        json!({"method": "account/rateLimits/updated", "params": {"rateLimits": {"primary": {"usedPercent": 12.5, "windowDurationMins": 300}, "secondary": null}}}),
        json!({"method": "item/completed", "params": {"threadId": "thr_1", "turnId": "turn_1", "item": {"type": "agentMessage", "id": "m1", "text": "All 212 tests pass; the retry path now keeps the workspace."}}}),
        json!({"method": "turn/completed", "params": {"threadId": "thr_1", "turn": {"id": "turn_1", "status": "completed", "items": [], "error": null, "durationMs": 5321}}}),
    ]
    .iter()
    .map(ToString::to_string)
    .collect()
}

fn decode(c: &mut Criterion) {
    let lines = lines();
    let mut group = c.benchmark_group("codex_lines");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("decode_and_dispatch", |b| {
        b.iter(|| {
            for line in &lines {
                black_box(decode_line(black_box(line)));
            }
        });
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
