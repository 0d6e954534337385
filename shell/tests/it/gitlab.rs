//! The GitLab adapter against the documented-shape fake (`fakes/gitlab.rs`): states from
//! GitLab's own state and labels (whole names or a scoped prefix), one listing per state
//! label, pages by `x-next-page` when there is no `Link`, refresh by iid, blockers from
//! `is_blocked_by` links, the open-merge-request claim skip, moves, notes, the project-scoped
//! tool, the probe and the config. The contract checks
//! (`contract::gitlab_passes_the_tracker_contract`) cover errors, scope and pagination loops.

use serde_json::json;
use symphony::tracker::Tracker;
use symphony::workflow::ErrorClass;
use symphony_core::{IssueId, TrackerErrorCategory};

use crate::gitlab_fake::{self, Project, TOKEN};
use crate::support;

fn tracker(api: &str, extra: &str) -> Box<dyn Tracker> {
    let text = format!(
        "---\ntracker:\n  kind: gitlab\n  active_states: [Todo, In Progress]\n  \
         inactive_states: [Human Review]\n  provider:\n    endpoint: {api}\n    \
         project: acme/platform/app\n{extra}---\n"
    );
    let env = [("GITLAB_TOKEN", TOKEN)];
    support::tracker_from(&text, &env)
}

fn states(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

fn ids(numbers: &[u64]) -> Vec<IssueId> {
    numbers.iter().map(|n| IssueId(n.to_string())).collect()
}

#[tokio::test]
async fn each_state_label_is_its_own_listing_and_pages_follow_x_next_page() {
    let mut project = Project::with(&[
        (1, &["Todo", "bug"]),
        (2, &["In Progress"]),
        (3, &["bug"]),
        (4, &["Todo", "In Progress"]),
    ]);
    project.issues[3].open = false;
    // 150 more in Todo: two pages of 100, found by `x-next-page` alone.
    for iid in 10..160 {
        project.issues.push(gitlab_fake::GlIssue {
            iid,
            open: true,
            labels: vec!["Todo".into()],
            blocked_by: Vec::new(),
        });
    }
    project.link_header = false;
    let (api, project) = gitlab_fake::fake(project);
    let t = tracker(&api, "");
    let issues = t
        .fetch_by_states(&states(&["Todo", "In Progress", "Opened"]))
        .await
        .unwrap();
    assert_eq!(issues.len(), 153);
    let first: Vec<(&str, &str)> = (issues.iter().take(3))
        .map(|i| (i.identifier.as_str(), i.state.as_str()))
        .collect();
    // GL-3 has no state label: `Opened`. GL-4 is closed: not in these states.
    assert_eq!(
        first,
        [
            ("GL-1", "Todo"),
            ("GL-2", "In Progress"),
            ("GL-3", "Opened")
        ]
    );
    assert_eq!(issues[0].labels, ["todo", "bug"]);
    assert_eq!(
        issues[0].url.as_deref(),
        Some("https://gitlab.example.com/acme/platform/app/-/issues/1")
    );
    let listings = project.lock().unwrap().listings.clone();
    assert_eq!(
        listings,
        [
            "state=opened&per_page=100&page=1",
            "state=opened&per_page=100&page=2",
            "state=opened&labels=In%20Progress&per_page=100&page=1",
            "state=opened&labels=Todo&per_page=100&page=1",
            "state=opened&labels=Todo&per_page=100&page=2",
        ]
    );
    let closed = t.fetch_by_states(&states(&["Closed"])).await.unwrap();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].identifier, "GL-4");
}

#[tokio::test]
async fn the_page_limit_fails_the_listing() {
    let issues: Vec<(u64, &[&str])> = (1..=250).map(|n| (n, &["Todo"][..])).collect();
    let (api, _) = gitlab_fake::fake(Project::with(&issues));
    let err = tracker(&api, "    pagination_max_pages: 2\n")
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
async fn refresh_is_by_iid_and_a_missing_issue_is_gone() {
    let (api, _) = gitlab_fake::fake(Project::with(&[(1, &["Todo"]), (2, &["Done"])]));
    let t = tracker(&api, "");
    let refreshed = t.fetch_by_ids(&ids(&[2, 9, 1])).await.unwrap();
    let got: Vec<(&str, &str)> = (refreshed.iter())
        .map(|i| (i.identifier.as_str(), i.state.as_str()))
        .collect();
    assert_eq!(got, [("GL-2", "Done"), ("GL-1", "Todo")]);
    assert!(
        t.fetch_by_ids(&[IssueId("GH-1".into())])
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_todo_issue_waits_for_its_blockers_and_a_failed_read_holds_it() {
    let mut project = Project::with(&[(1, &["Todo"]), (2, &["Todo"])]);
    project.issues[1].blocked_by = vec![1];
    let (api, project) = gitlab_fake::fake(project);
    let t = tracker(&api, "");
    let issues = t.fetch_by_states(&states(&["Todo"])).await.unwrap();
    assert!(issues[0].dispatchable);
    assert!(!issues[1].dispatchable, "GL-2 waits for GL-1");
    assert_eq!(issues[1].blocked_by[0].identifier.as_deref(), Some("GL-1"));
    assert_eq!(issues[1].blocked_by[0].id.as_deref(), Some("1"));
    // Closed is finished, whatever the workflow's terminal states.
    project.lock().unwrap().issues[0].open = false;
    let refreshed = t.fetch_by_ids(&ids(&[2])).await.unwrap();
    assert!(refreshed[0].dispatchable);
    assert_eq!(refreshed[0].blocked_by[0].state.as_deref(), Some("Closed"));
    project.lock().unwrap().links_fail = true;
    let refreshed = t.fetch_by_ids(&ids(&[2])).await.unwrap();
    assert!(
        !refreshed[0].dispatchable,
        "an unread link list holds the issue"
    );
}

#[tokio::test]
async fn open_merge_requests_that_close_an_issue_claim_it() {
    let mut project = Project::with(&[(1, &["Todo"]), (2, &["Todo"]), (3, &["Todo"])]);
    project.merge_requests = vec![
        (20, "Closes #1".into(), String::new()),
        (
            21,
            "Refactor".into(),
            "Implements https://gitlab.example.com/acme/platform/app/-/issues/2".into(),
        ),
        (
            22,
            "Mentions #3".into(),
            "fixes acme/platform/other#3".into(),
        ),
    ];
    let (api, _) = gitlab_fake::fake(project);
    // By numeric id: the project's path is read once for qualified references.
    let text = "    skip_issues_with_open_merge_requests: true\n";
    let t = tracker(&api, text);
    let issues = t.fetch_by_states(&states(&["Todo"])).await.unwrap();
    let dispatchable: Vec<bool> = issues.iter().map(|i| i.dispatchable).collect();
    assert_eq!(dispatchable, [false, false, true]);
    let by_id = {
        let text = format!(
            "---\ntracker:\n  kind: gitlab\n  provider:\n    endpoint: {api}\n    project: 7\n{text}---\n"
        );
        let env = [("GITLAB_TOKEN", TOKEN)];
        support::tracker_from(&text, &env)
    };
    let issues = by_id.fetch_by_states(&states(&["Todo"])).await.unwrap();
    let dispatchable: Vec<bool> = issues.iter().map(|i| i.dispatchable).collect();
    assert_eq!(dispatchable, [false, false, true]);
}

#[tokio::test]
async fn moves_swap_state_labels_close_and_reopen() {
    let (api, project) = gitlab_fake::fake(Project::with(&[(1, &["Todo", "bug"])]));
    let t = tracker(&api, "");
    let labels = |p: &std::sync::Arc<std::sync::Mutex<Project>>| {
        let p = p.lock().unwrap();
        (p.issues[0].open, p.issues[0].labels.clone())
    };
    t.set_state("GL-1", "In Progress").await.unwrap();
    assert_eq!(
        labels(&project),
        (true, vec!["bug".into(), "In Progress".into()])
    );
    t.set_state("GL-1", "Closed").await.unwrap();
    assert_eq!(labels(&project), (false, vec!["bug".into()]));
    t.set_state("GL-1", "todo").await.unwrap();
    assert_eq!(labels(&project), (true, vec!["bug".into(), "Todo".into()]));
    let err = t.set_state("GL-1", "Shipped").await.unwrap_err();
    assert!(
        err.message.contains("not one of the states"),
        "{}",
        err.message
    );
    assert!(t.set_state("GH-1", "Todo").await.is_err());
    t.add_comment("GL-1", "Ready for review.").await.unwrap();
    assert_eq!(
        project.lock().unwrap().notes,
        [(1, "Ready for review.".to_owned())]
    );
}

#[tokio::test]
async fn scoped_labels_carry_states_by_prefix() {
    let (api, project) =
        gitlab_fake::fake(Project::with(&[(1, &["symphony::Todo"]), (2, &["Todo"])]));
    let t = tracker(&api, "    state_label_prefix: \"symphony::\"\n");
    let issues = t.fetch_by_states(&states(&["Todo"])).await.unwrap();
    let found: Vec<&str> = issues.iter().map(|i| i.identifier.as_str()).collect();
    assert_eq!(found, ["GL-1"]);
    t.set_state("GL-1", "In Progress").await.unwrap();
    assert_eq!(
        project.lock().unwrap().issues[0].labels,
        ["symphony::In Progress"]
    );
}

#[tokio::test]
async fn the_api_tool_stays_in_the_project() {
    let (api, _) = gitlab_fake::fake(Project::with(&[(1, &["Todo"])]));
    let t = tracker(&api, "");
    let answer = t
        .call_session_tool(
            "gitlab_api",
            &json!({"method": "GET", "path": "/issues/1"}),
            "GL-1",
        )
        .unwrap()
        .await
        .unwrap();
    let issue: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(issue["iid"], 1);
    let err = t
        .call_session_tool(
            "gitlab_api",
            &json!({"method": "GET", "path": "/../8"}),
            "GL-1",
        )
        .unwrap()
        .await
        .unwrap_err();
    assert!(err.contains("refused"), "{err}");
    let spec = &t.tool_specs()[0];
    assert!(
        spec["description"]
            .as_str()
            .unwrap()
            .contains("acme/platform/app")
    );
}

#[tokio::test]
async fn the_probe_lists_states_and_missing_state_labels() {
    let (api, project) = gitlab_fake::fake(Project::with(&[]));
    project
        .lock()
        .unwrap()
        .labels
        .retain(|l| l != "Human Review");
    let probe = tracker(&api, "").probe().await.unwrap();
    assert_eq!(probe.scope, "project acme/platform/app");
    assert_eq!(
        probe.states.unwrap(),
        ["Opened", "Closed", "Todo", "In Progress", "Done"]
    );
    assert_eq!(probe.remarks.len(), 1, "{:?}", probe.remarks);
    assert!(
        probe.remarks[0].contains("Human Review"),
        "{:?}",
        probe.remarks
    );
    let text = format!(
        "---\ntracker:\n  kind: gitlab\n  provider:\n    endpoint: {api}\n    project: acme/other\n---\n"
    );
    let env = [("GITLAB_TOKEN", TOKEN)];
    let err = support::tracker_from(&text, &env)
        .probe()
        .await
        .unwrap_err();
    assert!(
        err.message.contains("no project acme/other"),
        "{}",
        err.message
    );
    let env = [("GITLAB_TOKEN", "wrong")];
    let text = text.replace("acme/other", "acme/platform/app");
    let t = support::tracker_from(&text, &env);
    let err = t.probe().await.unwrap_err();
    assert_eq!(err.category, TrackerErrorCategory::TrackerAuth);
    assert!(err.message.contains("GITLAB_TOKEN"), "{}", err.message);
    // The headroom GitLab reports reaches /metrics.
    let t = tracker(&api, "");
    assert_eq!(t.rate_limit(), None);
    t.probe().await.unwrap();
    assert_eq!(t.rate_limit().map(|r| r.remaining), Some(1999));
}

#[test]
fn settings_default_to_gitlab_com_and_bad_values_are_named() {
    let env = [("GITLAB_TOKEN", TOKEN)];
    let text = "---\ntracker:\n  kind: gitlab\n  provider:\n    project: acme/app\n---\n";
    let workflow = support::parse_workflow(text, &env).unwrap();
    let settings = (workflow.config.tracker.provider)
        .get::<symphony::tracker::gitlab::GitlabSettings>()
        .unwrap();
    assert_eq!(settings.endpoint, "https://gitlab.com/api/v4");
    assert_eq!(workflow.config.tracker.terminal_states, ["Done", "Closed"]);
    let text = "---\ntracker:\n  kind: gitlab\n  provider:\n    endpoint: https://git.example.com/\n    project: acme/app\n---\n";
    let workflow = support::parse_workflow(text, &env).unwrap();
    let settings = (workflow.config.tracker.provider)
        .get::<symphony::tracker::gitlab::GitlabSettings>()
        .unwrap();
    assert_eq!(settings.endpoint, "https://git.example.com/api/v4");
    for (yaml, class, named) in [
        (
            "    project: app\n",
            ErrorClass::InvalidConfigValue,
            "project",
        ),
        (
            "    project: acme/../x\n",
            ErrorClass::InvalidConfigValue,
            "project",
        ),
        (
            "    endpoint: ftp://x\n    project: acme/app\n",
            ErrorClass::InvalidConfigValue,
            "endpoint",
        ),
        (
            "    endpoint: https://x\n",
            ErrorClass::MissingTrackerProject,
            "project",
        ),
    ] {
        let text = format!("---\ntracker:\n  kind: gitlab\n  provider:\n{yaml}---\n");
        let err = support::parse_workflow(&text, &env).unwrap_err();
        assert_eq!(err.class, class, "{yaml}: {err}");
        assert!(err.to_string().contains(named), "{yaml}: {err}");
    }
    let bare = [("HOME", "/nowhere")];
    let err = support::parse_workflow(text, &bare).unwrap_err();
    assert_eq!(err.class, ErrorClass::MissingTrackerApiKey);
    assert!(err.to_string().contains("GITLAB_TOKEN"), "{err}");
}
