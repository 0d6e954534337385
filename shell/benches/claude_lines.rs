//! Decode and dispatch of typical Claude Code stream-json lines (the per-line work of a Claude
//! turn): parse, then turn into the orchestrator's updates. Target: >= 200,000 lines/s.
//! Figures in `docs/performance.md`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use symphony::agent::claude::stream::{Translator, decode};

/// One turn's worth of lines in the proportions the real CLI writes them: init, then assistant
/// messages with text and tool calls, their tool results, and the result.
fn lines() -> Vec<String> {
    let usage = json!({"input_tokens": 14_000, "cache_creation_input_tokens": 1_200,
        "cache_read_input_tokens": 9_000, "output_tokens": 1_234});
    [
        json!({"type": "system", "subtype": "init", "session_id": "7383a02d-6c62-4c86-8ee4-6a34a8c62773",
            "cwd": "/ws/MT-1", "model": "claude-sonnet", "tools": ["Bash", "Edit", "Read"],
            "mcp_servers": [{"name": "symphony", "status": "connected"}], "permissionMode": "default"}),
        json!({"type": "assistant", "session_id": "s", "parent_tool_use_id": null, "message": {
            "id": "msg_1", "role": "assistant", "content": [
                {"type": "text", "text": "I'll run the tests first to see what fails."},
                {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "cargo test", "description": "Run tests"}}],
            "usage": {"input_tokens": 14_000, "output_tokens": 1}}}),
        json!({"type": "user", "session_id": "s", "message": {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "running 212 tests\ntest result: FAILED. 211 passed; 1 failed", "is_error": false}]},
            "tool_use_result": {"stdout": "running 212 tests", "stderr": "", "interrupted": false}}),
        json!({"type": "assistant", "session_id": "s", "message": {"id": "msg_2", "role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_2", "name": "Edit", "input": {"file_path": "/ws/MT-1/src/retry.rs", "old_string": "a", "new_string": "b"}}]}}),
        json!({"type": "user", "session_id": "s", "message": {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "The file has been updated."}]}}),
        json!({"type": "assistant", "session_id": "s", "message": {"id": "msg_3", "role": "assistant", "content": [
            {"type": "text", "text": "All 212 tests pass; the retry path now keeps the workspace."}]}}),
        json!({"type": "result", "subtype": "success", "is_error": false, "num_turns": 3,
            "result": "All 212 tests pass.", "session_id": "s", "total_cost_usd": 0.0834,
            "usage": usage, "permission_denials": [], "duration_ms": 5321}),
    ]
    .iter()
    .map(ToString::to_string)
    .collect()
}

fn decode_and_dispatch(c: &mut Criterion) {
    let lines = lines();
    let mut group = c.benchmark_group("claude_lines");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("decode_and_dispatch", |b| {
        let mut translator = Translator::default();
        b.iter(|| {
            for line in &lines {
                let message = decode(black_box(line)).expect("stream-json");
                black_box(translator.feed(message, 42, "turn-1"));
            }
        });
    });
    group.finish();
}

criterion_group!(benches, decode_and_dispatch);
criterion_main!(benches);
