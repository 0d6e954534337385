//! The reload watcher against a real file (SPEC 6.2, 17.1). Waits are bounded receives on the
//! watcher's channel, never sleeps.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use symphony::workflow::{ErrorClass, MapEnv, Overrides, WatchEvent, Watcher, load};
use symphony_core::{Event, Orchestrator, Timestamp};

const WAIT: Duration = Duration::from_secs(10);

fn workflow(interval_ms: u64) -> String {
    format!(
        "---\ntracker:\n  kind: local\npolling:\n  interval_ms: {interval_ms}\n---\nDo {{{{ issue.identifier }}}}\n"
    )
}

/// A watcher on `path` whose events arrive on the returned channel.
fn watch(
    path: &Path,
    env: MapEnv,
    interval: Duration,
    known: Option<String>,
) -> (Watcher, Receiver<WatchEvent>) {
    let (tx, rx) = channel();
    let watcher = Watcher::spawn(
        path.to_owned(),
        Arc::new(env),
        Overrides::default(),
        interval,
        known,
        move |event| {
            let _ = tx.send(event);
        },
    )
    .unwrap();
    (watcher, rx)
}

fn next(rx: &Receiver<WatchEvent>) -> WatchEvent {
    rx.recv_timeout(WAIT)
        .expect("the watcher reports within the bound")
}

fn expect_reload(rx: &Receiver<WatchEvent>) -> u64 {
    match next(rx) {
        WatchEvent::Reloaded(w) => w.config.polling.interval_ms,
        WatchEvent::Invalid(e) => panic!("expected a reload, got {e}"),
    }
}

fn expect_invalid(rx: &Receiver<WatchEvent>) -> ErrorClass {
    match next(rx) {
        WatchEvent::Invalid(e) => e.class,
        WatchEvent::Reloaded(_) => panic!("expected an error"),
    }
}

/// Replaces the file atomically, as editors do: the watcher never sees a half-written file
/// here (its two-read confirmation covers that case at its production interval, but at the
/// 10 ms these tests use, a loaded machine could stall a plain write between truncate and
/// write for longer than two reads).
fn write(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn edits_reload_invalid_edits_report_and_unchanged_content_is_silent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("WORKFLOW.md");
    write(&path, &workflow(1_000));
    let env = MapEnv::new([]);
    let first = load(&path, &env, &Overrides::default()).unwrap();
    let (_watcher, rx) = watch(
        &path,
        env,
        Duration::from_millis(10),
        Some(first.source.clone()),
    );

    write(&path, &workflow(2_000));
    assert_eq!(expect_reload(&rx), 2_000);

    // A broken edit is reported with its class; the caller keeps its last good config.
    write(&path, "---\ntracker: [\n---\n");
    assert_eq!(expect_invalid(&rx), ErrorClass::WorkflowParseError);

    // Rewriting the same bytes reports nothing: the next event is the following real change.
    write(&path, "---\ntracker: [\n---\n");
    write(&path, &workflow(3_000));
    assert_eq!(expect_reload(&rx), 3_000);

    // A vanished file is reported once; when it is back, it loads again, even unchanged.
    std::fs::remove_file(&path).unwrap();
    assert_eq!(expect_invalid(&rx), ErrorClass::MissingWorkflowFile);
    write(&path, &workflow(3_000));
    assert_eq!(expect_reload(&rx), 3_000);
}

#[test]
fn dropping_the_watcher_stops_its_thread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("WORKFLOW.md");
    write(&path, &workflow(1_000));
    let (watcher, rx) = watch(&path, MapEnv::new([]), Duration::from_secs(3600), None);
    // Drop joins the thread even though it is parked for an hour; then the sender is gone.
    drop(watcher);
    assert!(matches!(
        rx.recv_timeout(WAIT),
        Err(RecvTimeoutError::Disconnected)
    ));
}

/// What the daemon does with watcher events: a broken edit pauses dispatch and leaves the
/// config in force untouched; the next good edit applies and resumes (SPEC 6.2, 6.3, 17.1).
#[test]
fn an_invalid_reload_keeps_the_last_good_config_in_the_core() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("WORKFLOW.md");
    write(&path, &workflow(1_000));
    let env = MapEnv::new([]);
    let first = load(&path, &env, &Overrides::default()).unwrap();
    let mut core = Orchestrator::new(first.config.scheduler());
    let at = Timestamp(1_767_225_600_000);
    core.handle(at, &Event::Startup);

    let (_watcher, rx) = watch(
        &path,
        env,
        Duration::from_millis(10),
        Some(first.source.clone()),
    );

    write(&path, "---\ntracker:\n  kind: asana\n---\n");
    let invalid = next(&rx);
    core.handle(at, &invalid.core_event());
    assert_eq!(core.config().poll_interval_ms, 1_000);
    let snapshot = core.snapshot(at);
    let error = snapshot
        .dispatch
        .preflight_error
        .expect("dispatch is paused");
    assert_eq!(error.class, ErrorClass::UnsupportedTrackerKind);
    assert!(
        error.message.contains("WORKFLOW.md:3:3"),
        "{}",
        error.message
    );

    write(&path, &workflow(2_000));
    let reloaded = next(&rx);
    core.handle(at, &reloaded.core_event());
    assert_eq!(core.config().poll_interval_ms, 2_000);
    assert!(core.snapshot(at).dispatch.preflight_error.is_none());
}
