//! The Jira adapter against the OpenAPI-checked fake (`fakes/jira.rs`): JQL search paged by
//! token, states the project does not use left out of the query, refresh by bulk fetch
//! (moved issues gone, retriable errors not), blockers, moves through transitions, ADF
//! comments, the REST tool's project scope, the probe, and the config's fallbacks. The
//! contract checks (`contract::jira_passes_the_tracker_contract`) cover errors, credential
//! masking and pagination loops.

use serde_json::json;
use symphony::tracker::Tracker;
use symphony::workflow::ErrorClass;
use symphony_core::{IssueId, TrackerErrorCategory};

use crate::jira_fake::{self, EMAIL, Site, TOKEN};
use crate::support;

fn workflow_text(base: &str, extra: &str) -> String {
    format!(
        "---\ntracker:\n  kind: jira\n  provider:\n    base_url: {base}\n    email: {EMAIL}\n    \
         project_key: ENG\n{extra}---\n"
    )
}

fn tracker(base: &str, extra: &str) -> Box<dyn Tracker> {
    let env = [("JIRA_API_TOKEN", TOKEN)];
    let text = workflow_text(base, extra);
    support::tracker_from(&text, &env)
}

fn states(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

fn id(n: u64) -> IssueId {
    IssueId((10_000 + n).to_string())
}

#[tokio::test]
async fn candidates_come_page_by_page_and_unknown_states_stay_out_of_the_jql() {
    let mut site = Site::with(5);
    site.issues[3].status = "In Progress".to_owned();
    site.issues[4].status = "Done".to_owned();
    let (base, site) = jira_fake::fake(site);
    let t = tracker(&base, "    page_size: 2\n");
    // `Todo` is SPEC's default spelling; this project says `To Do`. Jira would refuse the
    // whole query for it, so it is left out.
    let issues = t
        .fetch_by_states(&states(&["Todo", "to do", "In Progress"]))
        .await
        .unwrap();
    let got: Vec<(&str, &str)> = (issues.iter())
        .map(|i| (i.identifier.as_str(), i.state.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("ENG-1", "To Do"),
            ("ENG-2", "To Do"),
            ("ENG-3", "To Do"),
            ("ENG-4", "In Progress")
        ]
    );
    assert_eq!(issues[0].id, id(1));
    assert_eq!(issues[0].description.as_deref(), Some("Body of issue 1."));
    assert_eq!(issues[0].priority, Some(3));
    let browse = format!("{base}/browse/ENG-1");
    assert_eq!(issues[0].url.as_deref(), Some(browse.as_str()));
    let site = site.lock().unwrap();
    assert_eq!(site.queries.len(), 2, "two pages of two, then isLast");
    assert_eq!(
        site.queries[0],
        r#"project = "ENG" AND status in ("To Do", "In Progress") ORDER BY created ASC"#
    );
}

#[tokio::test]
async fn states_the_project_does_not_use_make_no_search_and_a_refused_query_says_why() {
    let (base, site) = jira_fake::fake(Site::with(2));
    let t = tracker(&base, "");
    assert!(
        t.fetch_by_states(&states(&["Todo", "Backlog"]))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(site.lock().unwrap().queries.is_empty());
    // The project loses a status the adapter still believes in: Jira's 400 says which.
    t.fetch_by_states(&states(&["In Review"])).await.unwrap();
    site.lock()
        .unwrap()
        .statuses
        .retain(|s| s.name != "In Review");
    let err = t
        .fetch_by_states(&states(&["In Review"]))
        .await
        .unwrap_err();
    assert_eq!(err.category, TrackerErrorCategory::TrackerStatus);
    assert!(err.message.contains("400"), "{}", err.message);
    assert!(
        err.message.contains("The value 'In Review' does not exist"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn refresh_keeps_order_drops_moved_issues_and_fails_on_retriable_errors() {
    let mut site = Site::with(4);
    site.issues[2].project = "OPS".to_owned(); // ENG-3 moved to OPS-3
    let (base, site) = jira_fake::fake(site);
    let t = tracker(&base, "");
    let ids = [id(4), id(3), id(1), IssueId("99999".into())];
    let refreshed = t.fetch_by_ids(&ids).await.unwrap();
    let keys: Vec<&str> = refreshed.iter().map(|i| i.identifier.as_str()).collect();
    assert_eq!(keys, ["ENG-4", "ENG-1"]);
    // More than one request's worth of ids: split at 100.
    let many: Vec<IssueId> = (1..=250).map(id).collect();
    assert_eq!(t.fetch_by_ids(&many).await.unwrap().len(), 3);
    // Jira could not answer for ENG-1 this time: that is an error, not a disappearance.
    site.lock().unwrap().bulk_errors.push(id(1).0);
    let err = t.fetch_by_ids(&ids).await.unwrap_err();
    assert_eq!(err.category, TrackerErrorCategory::TrackerResponse);
    assert!(
        err.message.contains("10001: Request timed out"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn a_to_do_issue_waits_until_its_blockers_are_done() {
    let mut site = Site::with(2);
    site.issues[1].blocked_by = vec![1];
    let (base, site) = jira_fake::fake(site);
    let t = tracker(&base, "");
    let issues = t.fetch_by_states(&states(&["To Do"])).await.unwrap();
    assert!(issues[0].dispatchable);
    assert!(!issues[1].dispatchable, "ENG-2 waits for ENG-1");
    assert_eq!(issues[1].blocked_by[0].identifier.as_deref(), Some("ENG-1"));
    site.lock().unwrap().issues[0].status = "Done".to_owned();
    let refreshed = t.fetch_by_ids(&[id(2)]).await.unwrap();
    assert!(refreshed[0].dispatchable);
    assert_eq!(refreshed[0].blocked_by[0].state.as_deref(), Some("Done"));
}

#[tokio::test]
async fn states_move_by_transition_and_comments_are_adf() {
    let (base, site) = jira_fake::fake(Site::with(2));
    let t = tracker(&base, "");
    t.set_state("ENG-1", "in progress").await.unwrap();
    // Already there: nothing to do, no error.
    t.set_state("ENG-1", "In Progress").await.unwrap();
    let err = t.set_state("ENG-1", "Shipped").await.unwrap_err();
    assert!(
        err.message.contains("no transition to \"Shipped\"")
            && err.message.contains("To Do, In Review, Done"),
        "{}",
        err.message
    );
    let err = t.set_state("OPS-1", "Done").await.unwrap_err();
    assert!(
        err.message.contains("not an issue key of project ENG"),
        "{}",
        err.message
    );
    t.add_comment("ENG-2", "Done here.\n\n```sh\ncargo test\n```")
        .await
        .unwrap();
    assert!(t.add_comment("ENG-2", "  ").await.is_err());
    let site = site.lock().unwrap();
    assert_eq!(site.issues[0].status, "In Progress");
    assert_eq!(site.transitions, [("ENG-1".to_owned(), "21".to_owned())]);
    let (key, body) = &site.comments[0];
    assert_eq!(key, "ENG-2");
    assert_eq!(
        symphony::tracker::jira::adf_text(body),
        "Done here.\n```\ncargo test\n```"
    );
    assert_eq!(body["content"][1]["attrs"]["language"], "sh");
}

#[tokio::test]
async fn the_rest_tool_reaches_this_projects_issues_only() {
    let mut site = Site::with(3);
    site.issues[2].project = "OPS".to_owned();
    let (base, _site) = jira_fake::fake(site);
    let t = tracker(&base, "");
    let call = |path: &str| json!({"method": "GET", "path": path});
    let answer = t
        .call_session_tool("jira_rest", &call("/rest/api/3/issue/ENG-1"), "ENG-1")
        .unwrap()
        .await
        .unwrap();
    let issue: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(issue["key"], "ENG-1");
    let statuses = t
        .call_session_tool(
            "jira_rest",
            &call("/rest/api/3/project/ENG/statuses"),
            "ENG-1",
        )
        .unwrap()
        .await
        .unwrap();
    assert!(statuses.contains("In Review"));
    // ENG-3 was moved to OPS: its old key still answers in Jira, but not through the tool.
    let err = t
        .call_session_tool(
            "jira_rest",
            &call("/rest/api/3/issue/ENG-3/comment"),
            "ENG-1",
        )
        .unwrap()
        .await
        .unwrap_err();
    assert!(err.contains("now OPS-3 in project OPS"), "{err}");
    let spec = &t.tool_specs()[0];
    assert_eq!(spec["name"], "jira_rest");
    assert!(
        spec["description"]
            .as_str()
            .unwrap()
            .contains("/rest/api/3/issue/ENG-<number>")
    );
}

#[tokio::test]
async fn the_probe_names_the_project_and_its_statuses() {
    let (base, _) = jira_fake::fake(Site::with(1));
    let probe = tracker(&base, "").probe().await.unwrap();
    assert_eq!(probe.scope, "project ENG (Engineering)");
    assert_eq!(
        probe.states.unwrap(),
        ["To Do", "In Progress", "In Review", "Done"]
    );
    let other = workflow_text(&base, "").replace("project_key: ENG", "project_key: OPS");
    let env = [("JIRA_API_TOKEN", TOKEN)];
    let t = support::tracker_from(&other, &env);
    let err = t.probe().await.unwrap_err();
    assert!(err.message.contains("no project OPS"), "{}", err.message);
    let env = [("JIRA_API_TOKEN", "wrong")];
    let text = workflow_text(&base, "");
    let t = support::tracker_from(&text, &env);
    let err = t.probe().await.unwrap_err();
    assert_eq!(err.category, TrackerErrorCategory::TrackerAuth);
    assert!(err.message.contains("JIRA_API_TOKEN"), "{}", err.message);
}

#[test]
fn settings_fall_back_to_the_environment_and_bad_values_are_named() {
    let text = "---\ntracker:\n  kind: jira\n  provider:\n    project_key: eng\n---\n";
    let env = [
        ("JIRA_BASE_URL", "https://acme.atlassian.net/"),
        ("JIRA_EMAIL", EMAIL),
        ("JIRA_API_TOKEN", TOKEN),
    ];
    let workflow = support::parse_workflow(text, &env).unwrap();
    let settings = (workflow.config.tracker.provider)
        .get::<symphony::tracker::jira::JiraSettings>()
        .unwrap();
    assert_eq!(settings.base_url, "https://acme.atlassian.net");
    assert_eq!(settings.project_key, "ENG");
    assert_eq!(settings.email, EMAIL);
    assert_eq!(workflow.config.tracker.terminal_states, ["Done"]);
    // Both the token and its Basic form are masked.
    let secrets = workflow.config.secret_values();
    assert!(secrets.iter().any(|s| s == TOKEN));
    assert!(
        secrets
            .iter()
            .any(|s| s == "Ym90QGV4YW1wbGUuaW52YWxpZDpqaXJhX3Rlc3RfdG9rZW5fMDEyMw==")
    );
    for (yaml, class, named) in [
        (
            "    project_key: \"ENG\\\" OR x\"\n",
            ErrorClass::InvalidConfigValue,
            "project_key",
        ),
        (
            "    base_url: ftp://x\n    project_key: ENG\n",
            ErrorClass::InvalidConfigValue,
            "base_url",
        ),
        (
            "    email: \"a:b\"\n    project_key: ENG\n",
            ErrorClass::InvalidConfigValue,
            "email",
        ),
        (
            "    base_url: https://x\n",
            ErrorClass::MissingTrackerProject,
            "project_key",
        ),
    ] {
        let text = format!("---\ntracker:\n  kind: jira\n  provider:\n{yaml}---\n");
        let err = support::parse_workflow(&text, &env).unwrap_err();
        assert_eq!(err.class, class, "{yaml}: {err}");
        assert!(err.to_string().contains(named), "{yaml}: {err}");
    }
    let bare = [("JIRA_BASE_URL", "https://x"), ("JIRA_EMAIL", EMAIL)];
    let text = "---\ntracker:\n  kind: jira\n  provider:\n    project_key: ENG\n---\n";
    let err = support::parse_workflow(text, &bare).unwrap_err();
    assert_eq!(err.class, ErrorClass::MissingTrackerApiKey);
    assert!(err.to_string().contains("JIRA_API_TOKEN"), "{err}");
}
