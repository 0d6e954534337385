//! The local file tracker (SPEC 11 for `kind: local`): real files in a temp directory.

use std::path::Path;

use symphony::tracker::{LocalTracker, Tracker};
use symphony_core::{IssueId, TrackerErrorCategory};

fn write(dir: &Path, id: &str, text: &str) {
    std::fs::write(dir.join(format!("{id}.md")), text).unwrap();
}

fn tracker(dir: &Path) -> LocalTracker {
    LocalTracker::new(dir.to_owned(), vec!["Done".into(), "Cancelled".into()])
}

fn states(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn issues_are_read_normalised_and_filtered_by_state() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "L-1",
        "---\ntitle: First\nstate: todo\npriority: 2\nlabels: [Backend, ' UI ']\ncreated_at: 2026-01-02T03:04:05Z\n---\nThe body.\n",
    );
    write(dir.path(), "L-2", "---\nstate: In Progress\n---\n");
    write(dir.path(), "L-3", "---\nstate: Done\n---\n");
    std::fs::write(dir.path().join("notes.txt"), "not an issue").unwrap();
    let t = tracker(dir.path());

    let active = t
        .fetch_by_states(&states(&["Todo", "In Progress"]))
        .await
        .unwrap();
    let ids: Vec<&str> = active.iter().map(|i| i.identifier.as_str()).collect();
    assert_eq!(ids, ["L-1", "L-2"]);
    let first = &active[0];
    assert_eq!(first.id, IssueId("L-1".into()));
    assert_eq!(first.title, "First");
    assert_eq!(first.state, "todo", "provider spelling is kept");
    assert_eq!(first.priority, Some(2));
    assert_eq!(first.labels, ["backend", "ui"]);
    assert_eq!(first.description.as_deref(), Some("The body."));
    assert_eq!(
        first.created_at.map(|t| t.to_rfc3339()).as_deref(),
        Some("2026-01-02T03:04:05Z")
    );
    assert!(first.updated_at.is_some());
    assert_eq!(active[1].title, "L-2", "title defaults to the identifier");
}

#[tokio::test]
async fn empty_requests_touch_nothing() {
    // The directory does not even exist: an empty request must not look at it.
    let t = tracker(Path::new("/nonexistent/issues"));
    assert!(t.fetch_by_states(&[]).await.unwrap().is_empty());
    assert!(t.fetch_by_ids(&[]).await.unwrap().is_empty());
    let err = t.fetch_by_states(&states(&["Todo"])).await.unwrap_err();
    assert_eq!(err.category, TrackerErrorCategory::TrackerRequest);
    assert!(err.message.contains("/nonexistent/issues"));
}

#[tokio::test]
async fn malformed_files_are_skipped_when_listing_but_fail_a_refresh() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "L-1", "---\nstate: Todo\n---\n");
    write(dir.path(), "L-2", "---\ntitle: no state\n---\n");
    write(dir.path(), "L-3", "no front matter at all");
    let t = tracker(dir.path());
    let listed = t.fetch_by_states(&states(&["Todo"])).await.unwrap();
    assert_eq!(listed.len(), 1);
    let err = t
        .fetch_by_ids(&[IssueId("L-1".into()), IssueId("L-2".into())])
        .await
        .unwrap_err();
    assert_eq!(err.category, TrackerErrorCategory::TrackerResponse);
    assert!(err.message.contains("L-2.md"), "{}", err.message);
    // Ids that are gone are omitted, not an error.
    let refreshed = t
        .fetch_by_ids(&[IssueId("L-1".into()), IssueId("L-9".into())])
        .await
        .unwrap();
    assert_eq!(refreshed.len(), 1);
}

#[tokio::test]
async fn todo_issues_wait_for_their_blockers() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "B-1", "---\nstate: In Progress\n---\n");
    write(
        dir.path(),
        "B-2",
        "---\nstate: Todo\nblocked_by: [B-1]\n---\n",
    );
    write(
        dir.path(),
        "B-3",
        "---\nstate: In Progress\nblocked_by: [B-1]\n---\n",
    );
    let t = tracker(dir.path());
    let find = |issues: &[symphony_core::Issue], id: &str| {
        issues.iter().find(|i| i.identifier == id).unwrap().clone()
    };
    let issues = t
        .fetch_by_states(&states(&["Todo", "In Progress"]))
        .await
        .unwrap();
    let b2 = find(&issues, "B-2");
    assert!(!b2.dispatchable);
    assert_eq!(b2.blocked_by[0].state.as_deref(), Some("In Progress"));
    assert!(
        find(&issues, "B-3").dispatchable,
        "the rule applies to Todo only"
    );

    t.set_state("B-1", "Done").await.unwrap();
    let issues = t.fetch_by_states(&states(&["Todo"])).await.unwrap();
    assert!(find(&issues, "B-2").dispatchable);
}

#[tokio::test]
async fn writes_change_state_and_append_comments_keeping_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "W-1",
        "---\ntitle: Keep me\nstate: Todo\nlabels: [a]\n---\nOriginal body.\n",
    );
    let t = tracker(dir.path());
    t.set_state("W-1", "In Progress").await.unwrap();
    t.add_comment("W-1", "Started work.").await.unwrap();
    t.add_comment("W-1", "Done with it.").await.unwrap();
    let issue = &t.fetch_by_ids(&[IssueId("W-1".into())]).await.unwrap()[0];
    assert_eq!(issue.state, "In Progress");
    assert_eq!(issue.title, "Keep me");
    assert_eq!(issue.labels, ["a"]);
    assert_eq!(
        issue.description.as_deref(),
        Some("Original body.\n\n## Comments\n\nStarted work.\n\nDone with it.")
    );
    // No temp files are left behind, and paths outside the directory are refused.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    assert!(t.set_state("../W-1", "Done").await.is_err());
    assert!(t.set_state("W-404", "Done").await.is_err());
}

#[tokio::test]
async fn oversized_files_deep_front_matter_and_bad_names_are_skipped_not_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "OK-1", "---\nstate: Todo\n---\n");
    // 2 MiB: over the 1 MiB cap (the daemon once read a 300 MB file whole).
    write(
        dir.path(),
        "BIG-1",
        &format!("---\nstate: Todo\n---\n{}", "x".repeat(2 << 20)),
    );
    // 120 KB of nesting in the front matter: over the 64 KiB cap, refused before parsing.
    write(
        dir.path(),
        "DEEP-1",
        &format!("---\nstate: Todo\nx: {}\n---\n", "[".repeat(120_000)),
    );
    // Deep nesting under the size cap: refused before the YAML parser sees it (60,000 `[`
    // took it 7.5 s).
    write(
        dir.path(),
        "DEEP-2",
        &format!("---\nstate: Todo\nx: {}\n---\n", "[".repeat(60_000)),
    );
    // A FIFO named like an issue is not a regular file: never opened for a blocking read.
    let fifo = dir.path().join("PIPE-1.md");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    write(dir.path(), "sp ace", "---\nstate: Todo\n---\n");
    let t = tracker(dir.path());
    let listed = t.fetch_by_states(&states(&["Todo"])).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|i| i.identifier.as_str()).collect();
    assert_eq!(ids, ["OK-1"]);
    for (id, why) in [
        ("BIG-1", "more than the 1048576 bytes allowed"),
        ("DEEP-1", "more than the 65536 allowed"),
        ("DEEP-2", "nest deeper than 64"),
    ] {
        let err = t.fetch_by_ids(&[IssueId(id.into())]).await.unwrap_err();
        assert!(err.message.contains(why), "{id}: {}", err.message);
    }
    // The writer refuses what the reader skips.
    let err = t.set_state("sp ace", "Done").await.unwrap_err();
    assert!(
        err.message.contains("not a local issue identifier"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn a_state_change_keeps_the_file_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let text = "---\ntitle: Keep me  # a comment\nstate: Todo\nlabels: [backend]\n---\nBody.\n";
    write(dir.path(), "K-1", text);
    tracker(dir.path()).set_state("K-1", "Done").await.unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("K-1.md")).unwrap(),
        text.replace("state: Todo", "state: Done")
    );
}

/// A listing reparses only what changed since the last one, so every change must show: an
/// in-place write of the same size, a file renamed over another, a new file, a removed one.
#[tokio::test]
async fn every_kind_of_change_shows_through_the_parse_cache() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "A-1", "---\ntitle: One\nstate: Todo\n---\n");
    write(dir.path(), "A-2", "---\ntitle: Two\nstate: Todo\n---\n");
    let t = tracker(dir.path());
    let listed = |issues: Vec<symphony_core::Issue>| -> Vec<(String, String)> {
        issues
            .into_iter()
            .map(|i| (i.identifier, i.state))
            .collect()
    };
    let all = states(&["Todo", "Done"]);
    assert_eq!(
        listed(t.fetch_by_states(&all).await.unwrap()),
        [("A-1".into(), "Todo".into()), ("A-2".into(), "Todo".into())]
    );
    // In place, same length: only the stamps' nanoseconds (or the inode's ctime) differ.
    let path = dir.path().join("A-1.md");
    {
        use std::io::{Seek, Write};
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.seek(std::io::SeekFrom::Start(0)).unwrap();
        file.write_all(b"---\ntitle: One\nstate: Done\n---\n")
            .unwrap();
    }
    // Renamed over: a new inode.
    let temp = dir.path().join(".A-2.tmp");
    std::fs::write(&temp, "---\ntitle: Two again\nstate: Done\n---\n").unwrap();
    std::fs::rename(&temp, dir.path().join("A-2.md")).unwrap();
    write(dir.path(), "A-3", "---\ntitle: Three\nstate: Todo\n---\n");
    assert_eq!(
        listed(t.fetch_by_states(&all).await.unwrap()),
        [
            ("A-1".into(), "Done".into()),
            ("A-2".into(), "Done".into()),
            ("A-3".into(), "Todo".into())
        ]
    );
    std::fs::remove_file(dir.path().join("A-3.md")).unwrap();
    let refreshed = t.fetch_by_ids(&[IssueId("A-3".into())]).await.unwrap();
    assert!(refreshed.is_empty(), "a removed file is gone");
    assert_eq!(t.fetch_by_states(&all).await.unwrap().len(), 2);
}
