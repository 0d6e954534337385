//! The tamper-evident audit log (issue 18): a chain written over two days verifies; each way of
//! tampering is caught at its line with its kind; a torn last line (a crash mid-write) is
//! reported and the chain before it still verifies; secrets never reach the file.

use std::path::{Path, PathBuf};

use serde_json::json;
use symphony::audit::{AuditLog, Break, Entry, Failure, GENESIS, day_files, verify};

/// Writes four records on 2026-12-01 and three on 2026-12-02 into `dir`.
fn chain(dir: &Path) -> Vec<PathBuf> {
    let mut log = AuditLog::open(dir, vec!["sk-secret-value-123".into()]).unwrap();
    for (i, ts) in [
        "2026-12-01T10:00:00Z",
        "2026-12-01T10:00:01Z",
        "2026-12-01T23:59:59Z",
        "2026-12-01T23:59:59.5Z",
        "2026-12-02T00:00:00Z",
        "2026-12-02T00:00:01Z",
        "2026-12-02T08:00:00Z",
    ]
    .iter()
    .enumerate()
    {
        let entry = Entry {
            kind: "tool_call".into(),
            issue: Some(format!("MT-{i}")),
            run: Some(i as u64),
            session: Some("thread-1".into()),
            data: json!({"tool": "comment_on_issue", "ok": true,
                "text": format!("call {i} with sk-secret-value-123")}),
        };
        log.append(ts, &entry).unwrap();
    }
    day_files(dir).unwrap()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(
        path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
}

fn broken(files: &[PathBuf]) -> Failure {
    verify(files)
        .unwrap()
        .expect_err("the chain must be broken")
}

#[test]
fn an_untouched_chain_verifies_across_days_and_holds_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let files = chain(dir.path());
    assert_eq!(files.len(), 2);
    let report = verify(&files).unwrap().unwrap();
    assert_eq!(report.records, 7);
    assert_eq!(report.torn, None);
    let day1 = lines(&files[0]);
    let day2 = lines(&files[1]);
    assert!(day1[0].contains(&format!("\"previous_hash\":\"{GENESIS}\"")));
    let last_of_day1: serde_json::Value = serde_json::from_str(&day1[3]).unwrap();
    let first_of_day2: serde_json::Value = serde_json::from_str(&day2[0]).unwrap();
    assert_eq!(
        first_of_day2["previous_hash"], last_of_day1["record_hash"],
        "linked across days"
    );
    for line in day1.iter().chain(&day2) {
        assert!(!line.contains("sk-secret-value-123"), "{line}");
        assert!(line.contains("with ****"), "{line}");
    }
    // Reopening continues the chain from the newest file's last record.
    let mut log = AuditLog::open(dir.path(), Vec::new()).unwrap();
    log.append(
        "2026-12-02T09:00:00Z",
        &Entry {
            kind: "pause".into(),
            ..Entry::default()
        },
    )
    .unwrap();
    assert_eq!(
        verify(&day_files(dir.path()).unwrap())
            .unwrap()
            .unwrap()
            .records,
        8
    );
}

#[test]
fn each_kind_of_tampering_is_caught_where_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let files = chain(dir.path());
    let original = lines(&files[0]);

    // An edited record: a field changed, its stated hash kept.
    let mut edited = original.clone();
    edited[1] = edited[1].replace("\"ok\":true", "\"ok\":false");
    write_lines(&files[0], &edited);
    assert_eq!(
        broken(&files),
        Failure {
            file: files[0].clone(),
            line: 2,
            kind: Break::Edited
        }
    );

    // A deleted line: the next record links to a hash that is gone.
    let mut deleted = original.clone();
    deleted.remove(1);
    write_lines(&files[0], &deleted);
    assert_eq!(
        broken(&files),
        Failure {
            file: files[0].clone(),
            line: 2,
            kind: Break::Deleted
        }
    );

    // Two lines swapped.
    let mut swapped = original.clone();
    swapped.swap(1, 2);
    write_lines(&files[0], &swapped);
    let failure = broken(&files);
    assert_eq!(
        (failure.line, failure.kind),
        (2, Break::InsertedOrReordered)
    );

    // A forged record inserted with a valid hash of its own, linked to the record before it:
    // the record after it still links to the one before.
    let mut inserted = original.clone();
    let before: serde_json::Value = serde_json::from_str(&original[0]).unwrap();
    let mut forged = serde_json::Map::new();
    forged.insert("ts".into(), json!("2026-12-01T10:00:00.5Z"));
    forged.insert("type".into(), json!("tool_call"));
    forged.insert("previous_hash".into(), before["record_hash"].clone());
    let hash = symphony::audit::record_hash(&forged);
    forged.insert("record_hash".into(), json!(hash));
    inserted.insert(
        1,
        symphony::audit::canonical(&serde_json::Value::Object(forged)),
    );
    write_lines(&files[0], &inserted);
    let failure = broken(&files);
    assert_eq!(
        (failure.line, failure.kind),
        (3, Break::InsertedOrReordered)
    );

    // Day 1 cut short by its last record: day 2 no longer continues it.
    write_lines(&files[0], &original[..3]);
    assert_eq!(
        broken(&files),
        Failure {
            file: files[1].clone(),
            line: 1,
            kind: Break::BrokenLinkAcrossDays
        }
    );

    // A torn line inside an older file is a cut, not a crash.
    let mut torn_inside = original.join("\n");
    torn_inside.push('\n');
    torn_inside.push_str(&original[0][..40]);
    std::fs::write(&files[0], &torn_inside).unwrap();
    let failure = broken(&files);
    assert_eq!((failure.line, failure.kind), (5, Break::Truncated));
    write_lines(&files[0], &original);
    assert!(verify(&files).unwrap().is_ok(), "restored, intact again");
}

#[test]
fn a_torn_last_line_is_reported_and_the_chain_before_it_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let files = chain(dir.path());
    // What a crash in the middle of the last write leaves: part of a line, no newline.
    let day2 = lines(&files[1]);
    let mut text = day2.join("\n");
    text.push('\n');
    text.push_str(&day2[2][..day2[2].len() / 2]);
    std::fs::write(&files[1], text).unwrap();
    let report = verify(&files).unwrap().unwrap();
    assert_eq!(report.records, 7);
    assert_eq!(report.torn, Some((files[1].clone(), 4)));
    // Writing goes on after it: the reopened log cuts the torn tail off and says so first.
    let mut log = AuditLog::open(dir.path(), Vec::new()).unwrap();
    log.append(
        "2026-12-03T00:00:00Z",
        &Entry {
            kind: "resume".into(),
            ..Entry::default()
        },
    )
    .unwrap();
    let files = day_files(dir.path()).unwrap();
    let report = verify(&files).unwrap().unwrap();
    assert_eq!((report.records, report.torn), (9, None));
    let repair = lines(&files[2])[0].clone();
    assert!(
        repair.contains("\"type\":\"torn_line_removed\"") && repair.contains("\"line\":4"),
        "{repair}"
    );
}

#[test]
fn the_cli_names_the_file_line_and_kind() {
    let dir = tempfile::tempdir().unwrap();
    let files = chain(dir.path());
    let run = |paths: &[&Path]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_symphony"))
            .arg("audit")
            .arg("verify")
            .args(paths)
            .output()
            .unwrap()
    };
    let out = run(&[dir.path()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok: 7 records in 2 files"));
    let mut edited = lines(&files[1]);
    edited[2] = edited[2].replace("MT-6", "MT-9");
    write_lines(&files[1], &edited);
    let out = run(&[dir.path()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:3: a record was edited", files[1].display())),
        "{err}"
    );
}

/// Set in the child process of [`a_sigkill_mid_write_leaves_a_chain_that_verifies`]: the
/// directory it appends to until it is killed.
const CRASH_DIR_VAR: &str = "SYMPHONY_TEST_AUDIT_CRASH_DIR";

/// Not a test: the writer that the crash test starts as a separate process (this test binary
/// run again with only this function selected) and kills with SIGKILL. It appends records
/// of a quarter MiB each, large enough that the kernel can cut a write short when the kill
/// arrives, forever. Ignored so that a normal run never starts it.
#[test]
#[ignore = "the writer process of the SIGKILL test, started by it"]
fn audit_crash_writer_child() {
    let Some(dir) = std::env::var_os(CRASH_DIR_VAR) else {
        return;
    };
    let mut log = AuditLog::open(Path::new(&dir), Vec::new()).unwrap();
    let payload = "x".repeat(256 * 1024);
    for n in 0u64.. {
        let entry = Entry {
            kind: "tool_call".into(),
            run: Some(n),
            data: json!({"padding": payload}),
            ..Entry::default()
        };
        log.append("2026-12-01T10:00:00Z", &entry).unwrap();
    }
}

/// A real crash: a process appending to the log is killed with SIGKILL at a moment that
/// varies from round to round. Every time, `verify` accepts what is on disk (a torn last line
/// is reported, never called tampering), and reopening the log cuts the torn line, records the
/// repair and continues the chain, which then verifies whole.
#[test]
fn a_sigkill_mid_write_leaves_a_chain_that_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let mut torn_seen = 0;
    for round in 0..6u64 {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "audit::audit_crash_writer_child",
                "--exact",
                "--ignored",
                "--quiet",
            ])
            .env(CRASH_DIR_VAR, dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Kill once the file has grown past a point that moves each round (bounded wait).
        let target = (round + 1) * 3 * 1024 * 1024 + round * 77_777;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let size: u64 = (day_files(dir.path()).unwrap().iter())
                .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
                .sum();
            if size >= target {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the writer wrote {size} bytes only"
            );
            assert!(
                child.try_wait().unwrap().is_none(),
                "the writer stopped by itself"
            );
            std::thread::yield_now();
        }
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&child),
            rustix::process::Signal::KILL,
        )
        .unwrap();
        child.wait().unwrap();
        let files = day_files(dir.path()).unwrap();
        let report = verify(&files)
            .unwrap()
            .unwrap_or_else(|f| panic!("round {round}: a crash is not tampering: {f:?}"));
        if report.torn.is_some() {
            torn_seen += 1;
        }
        // Reopening repairs and continues: the next record chains on, and all verifies.
        let mut log = AuditLog::open(dir.path(), Vec::new()).unwrap();
        log.append(
            "2026-12-01T10:00:01Z",
            &Entry {
                kind: "daemon_started".into(),
                ..Entry::default()
            },
        )
        .unwrap();
        let report = verify(&files).unwrap().unwrap();
        assert!(report.torn.is_none(), "round {round}: repaired");
    }
    let text: String = (day_files(dir.path()).unwrap().iter())
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let repairs = text.matches("\"type\":\"torn_line_removed\"").count();
    assert_eq!(
        repairs, torn_seen,
        "each torn line is on the record once repaired"
    );
    eprintln!("{torn_seen} of 6 kills tore a line");
}
