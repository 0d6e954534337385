//! The audit log: appending chained records and verifying the chain. Targets: append >= 50,000
//! records/s, verify >= 200,000 records/s. Figures in `docs/performance.md`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use symphony::audit::{AuditLog, Entry, day_files, verify};

/// A typical record: a tool call with a short outcome.
fn entry(i: u64) -> Entry {
    Entry {
        kind: "tool_call".into(),
        issue: Some("MT-649".into()),
        run: Some(i),
        session: Some("7383a02d-6c62-4c86-8ee4-6a34a8c62773-turn-3".into()),
        data: json!({"tool": "comment_on_issue", "ok": true,
            "result": "comment added to MT-649", "duration_ms": 182}),
    }
}

fn audit(c: &mut Criterion) {
    let mut group = c.benchmark_group("audit");
    const BATCH: u64 = 1_000;
    group.throughput(Throughput::Elements(BATCH));
    let dir = tempfile::tempdir().unwrap();
    let mut log = AuditLog::open(dir.path(), vec!["sk-not-in-any-record".into()]).unwrap();
    let mut n = 0;
    group.bench_function("append", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                n += 1;
                black_box(log.append("2026-12-01T10:00:00Z", &entry(n)).unwrap());
            }
        });
    });

    const RECORDS: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let mut log = AuditLog::open(dir.path(), Vec::new()).unwrap();
    for i in 0..RECORDS {
        log.append("2026-12-01T10:00:00Z", &entry(i)).unwrap();
    }
    let files = day_files(dir.path()).unwrap();
    group.throughput(Throughput::Elements(RECORDS));
    group.sample_size(20);
    group.bench_function("verify", |b| {
        b.iter(|| black_box(verify(&files).unwrap().unwrap()));
    });
    group.finish();
}

criterion_group!(benches, audit);
criterion_main!(benches);
