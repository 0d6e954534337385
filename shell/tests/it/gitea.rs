//! The Gitea adapter against the Swagger-checked fake (`fakes/gitea.rs`): state by `aiops/*`
//! label, moves that keep exactly one state label, the page limit that fails a listing, the
//! repository probe, comments, and the config's fallbacks. The contract checks
//! (`contract::gitea_passes_the_tracker_contract`) cover errors, scope and pagination loops.

use std::path::Path;

use symphony::tracker::Tracker;
use symphony::workflow::{ErrorClass, MapEnv, Overrides, parse};
use symphony_core::{IssueId, TrackerErrorCategory};

use crate::gitea_fake::{self, Repo, TOKEN};

fn tracker(base: &str, extra: &str) -> Box<dyn Tracker> {
    let text = format!(
        "---\ntracker:\n  kind: gitea\n  provider:\n    endpoint: {base}\n    repo: acme/app\n{extra}---\n"
    );
    let env = MapEnv::new([("GITEA_TOKEN", TOKEN)]);
    let workflow = parse(
        &text,
        Path::new("/w/WORKFLOW.md"),
        &env,
        &Overrides::default(),
    )
    .unwrap();
    symphony::tracker::build(&workflow.config.tracker).unwrap()
}

fn states(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn the_state_is_the_one_aiops_label_and_closed_issues_are_terminal() {
    let (base, _) = gitea_fake::fake(Repo::with(&[
        (1, true, &["aiops/todo", "bug"]),
        (2, true, &["aiops/in-progress"]),
        (3, true, &["bug"]),
        (4, false, &["aiops/todo"]),
        (5, true, &["aiops/todo", "aiops/rework"]),
    ]));
    let t = tracker(&base, "");
    let issues = t
        .fetch_by_states(&states(&["Todo", "In Progress", "Rework"]))
        .await
        .unwrap();
    let got: Vec<(&str, &str)> = issues
        .iter()
        .map(|i| (i.identifier.as_str(), i.state.as_str()))
        .collect();
    // #4 is closed; #5 carries two state labels and the higher-priority one wins.
    assert_eq!(
        got,
        [
            ("GT-1", "Todo"),
            ("GT-2", "In Progress"),
            ("GT-5", "Rework")
        ]
    );
    assert_eq!(issues[0].labels, ["aiops/todo", "bug"]);
    assert_eq!(issues[0].description.as_deref(), Some("Body of issue 1."));
    let refreshed = t
        .fetch_by_ids(&[
            IssueId("4".into()),
            IssueId("3".into()),
            IssueId("99".into()),
        ])
        .await
        .unwrap();
    let got: Vec<(&str, &str)> = refreshed
        .iter()
        .map(|i| (i.identifier.as_str(), i.state.as_str()))
        .collect();
    assert_eq!(
        got,
        [("GT-4", "Done"), ("GT-3", "")],
        "closed is terminal; no label, no state"
    );
    // Terminal listings include closed issues carrying the label.
    let done = t.fetch_by_states(&states(&["Done"])).await.unwrap();
    assert!(done.is_empty());
}

#[tokio::test]
async fn a_move_adds_the_new_state_label_and_removes_the_old_ones() {
    let (base, repo) = gitea_fake::fake(Repo::with(&[(
        1,
        true,
        &["aiops/todo", "bug", "aiops/rework"],
    )]));
    let t = tracker(&base, "");
    t.set_state("GT-1", "Human Review").await.unwrap();
    let labels = repo.lock().unwrap().issues[0].2.clone();
    assert_eq!(labels, ["bug", "aiops/human-review"]);
    let issue = &t.fetch_by_ids(&[IssueId("1".into())]).await.unwrap()[0];
    assert_eq!(issue.state, "Human Review");
    let err = t.set_state("GT-1", "Nowhere").await.unwrap_err();
    assert!(err.message.contains("state_labels"), "{}", err.message);
    let err = t.set_state("GH-1", "Done").await.unwrap_err();
    assert!(err.message.contains("GT-<number>"), "{}", err.message);
    t.add_comment("GT-1", "handed over").await.unwrap();
    assert_eq!(
        repo.lock().unwrap().comments,
        [(1, "handed over".to_owned())]
    );
}

#[tokio::test]
async fn more_pages_than_allowed_fail_the_listing_instead_of_cutting_it() {
    let issues: Vec<(u64, bool, &[&str])> =
        (1..=120).map(|n| (n, true, &["aiops/todo"][..])).collect();
    let (base, _) = gitea_fake::fake(Repo::with(&issues));
    let all = tracker(&base, "")
        .fetch_by_states(&states(&["Todo"]))
        .await
        .unwrap();
    assert_eq!(all.len(), 120, "three pages of 50, within the default 20");
    let capped = tracker(&base, "    pagination_max_pages: 2\n");
    let err = capped
        .fetch_by_states(&states(&["Todo"]))
        .await
        .unwrap_err();
    assert_eq!(err.category, TrackerErrorCategory::TrackerPagination);
    assert!(
        err.message.contains("pagination_max_pages"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn the_probe_names_the_repository_and_the_states_whose_labels_exist() {
    let mut repo = Repo::with(&[]);
    repo.labels.retain(|(_, name)| name != "aiops/merging");
    let (base, _) = gitea_fake::fake(repo);
    let probe = tracker(&base, "").probe().await.unwrap();
    assert_eq!(probe.scope, "acme/app");
    let known = probe.states.unwrap();
    assert!(known.contains(&"Todo".to_owned()) && !known.contains(&"Merging".to_owned()));
    assert_eq!(probe.remarks.len(), 1);
    assert!(
        probe.remarks[0].contains("missing in acme/app: aiops/merging"),
        "{:?}",
        probe.remarks
    );
}

#[test]
fn the_endpoint_falls_back_to_gitea_base_url_and_is_required() {
    let text = "---\ntracker:\n  kind: gitea\n  provider:\n    repo: acme/app\n---\n";
    let env = MapEnv::new([
        ("GITEA_TOKEN", "t0k3n"),
        ("GITEA_BASE_URL", "https://git.example.invalid/"),
    ]);
    let w = parse(
        text,
        Path::new("/w/WORKFLOW.md"),
        &env,
        &Overrides::default(),
    )
    .unwrap();
    let settings = w
        .config
        .tracker
        .provider
        .get::<symphony::tracker::gitea::GiteaSettings>()
        .unwrap();
    assert_eq!(settings.endpoint, "https://git.example.invalid");
    assert_eq!(
        settings.state_labels[0],
        ("Rework".to_owned(), "aiops/rework".to_owned())
    );
    assert_eq!(w.config.tracker.terminal_states, ["Done", "Canceled"]);
    let env = MapEnv::new([("GITEA_TOKEN", "t0k3n")]);
    let e = parse(
        text,
        Path::new("/w/WORKFLOW.md"),
        &env,
        &Overrides::default(),
    )
    .unwrap_err();
    assert_eq!(e.class, ErrorClass::MissingTrackerProject);
    assert!(e.message.contains("GITEA_BASE_URL"), "{e}");
}

#[tokio::test]
async fn the_labels_tool_sets_one_state_label_on_the_sessions_issue_only() {
    use serde_json::json;
    let (base, repo) = gitea_fake::fake(Repo::with(&[
        (1, true, &["aiops/in-progress", "bug"]),
        (2, true, &["aiops/todo"]),
    ]));
    let t = tracker(&base, "");
    let specs = t.tool_specs();
    assert_eq!(specs[0]["name"], "gitea_issue_labels");
    let call = |arguments: serde_json::Value| {
        let t = &t;
        async move {
            t.call_session_tool("gitea_issue_labels", &arguments, "GT-1")
                .unwrap()
                .await
        }
    };
    let answer = call(json!({"issue_number": 1, "labels": ["aiops/human-review"]})).await;
    assert!(answer.unwrap().contains("aiops/human-review"));
    assert_eq!(
        repo.lock().unwrap().issues[0].2,
        ["bug", "aiops/human-review"]
    );

    // Refused before any request: another issue, two labels, an unknown one, closing
    // with a label that is not terminal.
    let before = repo.lock().unwrap().requests;
    for (arguments, why) in [
        (json!({"issue_number": 2, "labels": ["aiops/done"]}), "only"),
        (
            json!({"issue_number": 1, "labels": ["aiops/done", "aiops/todo"]}),
            "exactly one",
        ),
        (
            json!({"issue_number": 1, "labels": ["aiops/blocked"]}),
            "not a state label",
        ),
        (
            json!({"issue_number": 1, "labels": ["aiops/todo"], "close_issue": true}),
            "terminal",
        ),
    ] {
        let err = call(arguments).await.unwrap_err();
        assert!(err.contains(why), "{why}: {err}");
    }
    assert_eq!(repo.lock().unwrap().requests, before);

    // A failed close puts the labels back.
    repo.lock().unwrap().refuse_close = true;
    let err = call(json!({"issue_number": 1, "labels": ["aiops/done"], "close_issue": true}))
        .await
        .unwrap_err();
    assert!(err.contains("restored"), "{err}");
    let labels = repo.lock().unwrap().issues[0].2.clone();
    assert_eq!(labels, ["bug", "aiops/human-review"], "exactly as before");
    assert!(repo.lock().unwrap().issues[0].1, "still open");

    // A terminal label with close_issue closes it; the refresh then sees it terminal.
    repo.lock().unwrap().refuse_close = false;
    let answer =
        call(json!({"issue_number": 1, "labels": ["aiops/done"], "close_issue": true})).await;
    assert!(answer.unwrap().contains("closed"));
    assert!(!repo.lock().unwrap().issues[0].1);
    let issue = &t.fetch_by_ids(&[IssueId("1".into())]).await.unwrap()[0];
    assert_eq!(issue.state, "Done");
}

#[tokio::test]
async fn issues_that_an_open_pull_request_closes_are_not_dispatchable_when_asked() {
    let mut repo = Repo::with(&[
        (1, true, &["aiops/todo"]),
        (2, true, &["aiops/todo"]),
        (3, true, &["aiops/todo"]),
        (4, true, &["aiops/todo"]),
    ]);
    repo.pulls = vec![
        (10, true, "Fix the thing".into(), "Fixes #1".into()),
        (11, true, "closes acme/app#2".into(), String::new()),
        (12, false, "Closed PR".into(), "fixes #3".into()),
        (13, true, "Other repo".into(), "fixes other/app#4".into()),
    ];
    let (base, _) = gitea_fake::fake(repo);
    let dispatchable = |issues: Vec<symphony_core::Issue>| -> Vec<(String, bool)> {
        issues
            .into_iter()
            .map(|i| (i.identifier, i.dispatchable))
            .collect()
    };
    let skipping = tracker(&base, "    skip_issues_with_open_pull_requests: true\n");
    let got = dispatchable(skipping.fetch_by_states(&states(&["Todo"])).await.unwrap());
    let want = [
        ("GT-1", false),
        ("GT-2", false),
        ("GT-3", true),
        ("GT-4", true),
    ];
    assert_eq!(got, want.map(|(i, d)| (i.to_owned(), d)));
    // Off by default: everything dispatchable.
    let plain = tracker(&base, "");
    let got = dispatchable(plain.fetch_by_states(&states(&["Todo"])).await.unwrap());
    assert!(got.iter().all(|(_, d)| *d), "{got:?}");
}

#[tokio::test]
async fn a_todo_issue_waits_for_its_dependencies_to_be_terminal() {
    let mut repo = Repo::with(&[
        (1, true, &["aiops/todo"]),
        (2, true, &["aiops/in-progress"]),
        (3, true, &["aiops/todo"]),
        (4, false, &[]),
        (5, true, &["aiops/todo"]),
        (6, true, &["aiops/in-progress"]),
    ]);
    // 1 waits on 2 (active); 3 on 4 (closed: terminal); 6 is not in Todo, so its
    // dependency does not matter.
    repo.dependencies = vec![(1, 2), (3, 4), (6, 2)];
    let (base, _) = gitea_fake::fake(repo);
    let t = tracker(&base, "");
    let issues = t
        .fetch_by_states(&states(&["Todo", "In Progress"]))
        .await
        .unwrap();
    let got: Vec<(&str, bool)> = issues
        .iter()
        .map(|i| (i.identifier.as_str(), i.dispatchable))
        .collect();
    assert_eq!(
        got,
        [
            ("GT-1", false),
            ("GT-2", true),
            ("GT-3", true),
            ("GT-5", true),
            ("GT-6", true)
        ]
    );
    let blocker = &issues[0].blocked_by[0];
    assert_eq!(blocker.identifier.as_deref(), Some("GT-2"));
    assert_eq!(blocker.state.as_deref(), Some("In Progress"));
    assert_eq!(issues[2].blocked_by[0].state.as_deref(), Some("Done"));
    // The refresh by id applies the same rule.
    let refreshed = t.fetch_by_ids(&[IssueId("1".into())]).await.unwrap();
    assert!(!refreshed[0].dispatchable);

    // Dependencies that cannot be read hold a Todo issue back (fail closed).
    let mut repo = Repo::with(&[(5, true, &["aiops/todo"])]);
    repo.dependencies_fail = true;
    let (base, _) = gitea_fake::fake(repo);
    let issues = tracker(&base, "")
        .fetch_by_states(&states(&["Todo"]))
        .await
        .unwrap();
    assert!(!issues[0].dispatchable);
    assert_eq!(
        issues[0].blocked_by[0].identifier.as_deref(),
        Some("(dependencies unread)")
    );
}
