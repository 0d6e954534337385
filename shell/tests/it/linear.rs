//! The Linear adapter against a loopback fake of Linear's GraphQL API (`fakes/linear.rs`).

use crate::linear_fake;

use std::net::TcpListener;

use linear_fake::{Board, Fault, KEY, fake, node};
use serde_json::{Value, json};
use symphony::tracker::linear::{LinearSettings, MutationPolicy};
use symphony::tracker::{LinearTracker, Tracker};
use symphony::workflow::Secret;
use symphony_core::{IssueId, TrackerErrorCategory};

fn tracker(endpoint: &str, key: &str) -> LinearTracker {
    let provider = LinearSettings {
        endpoint: endpoint.to_owned(),
        api_key: secret(key),
        project_slug: "proj-1".into(),
        team_key: None,
        assignee: None,
        mutations: MutationPolicy::Any,
        timeout_ms: 2_000,
    };
    LinearTracker::new(&provider, &["Done".into(), "Cancelled".into()]).unwrap()
}

/// `Secret` has no public constructor outside config loading: go through a workflow.
fn secret(value: &str) -> Secret {
    let env = symphony::workflow::MapEnv::new([("LINEAR_API_KEY", value)]);
    let text = "---\ntracker:\n  kind: linear\n  provider:\n    project_slug: p\n---\n";
    let workflow = parse_with(text, &env).unwrap();
    let settings = workflow.config.tracker.provider.get::<LinearSettings>();
    settings.expect("linear settings").api_key.clone()
}

/// A workflow parsed from `text` with `env`, as if at `/w/WORKFLOW.md`.
fn parse_with(
    text: &str,
    env: &symphony::workflow::MapEnv,
) -> Result<symphony::workflow::Workflow, symphony::workflow::WorkflowError> {
    symphony::workflow::parse(
        text,
        std::path::Path::new("/w/WORKFLOW.md"),
        env,
        &symphony::workflow::Overrides::default(),
    )
}

fn board(count: usize) -> Board {
    let mut issues: Vec<Value> = (1..=count)
        .map(|n| node(n, if n % 3 == 0 { "In Progress" } else { "Todo" }, "proj-1"))
        .collect();
    issues.push(node(9_001, "Todo", "other-project"));
    issues.push(node(9_002, "Done", "proj-1"));
    Board {
        issues,
        ..Board::default()
    }
}

fn states() -> Vec<String> {
    vec!["Todo".into(), "In Progress".into()]
}

#[tokio::test]
async fn candidates_come_normalised_across_pages_and_scoped_to_the_project() {
    let (endpoint, board) = fake(Fault::None, board(120));
    let t = tracker(&endpoint, KEY);
    let issues = t.fetch_by_states(&states()).await.unwrap();
    assert_eq!(issues.len(), 120, "three pages of 50, 50, 20");
    assert_eq!(board.lock().unwrap().requests, 3);
    assert!(
        board.lock().unwrap().auth_seen.iter().all(|a| a == KEY),
        "raw key, no Bearer"
    );
    let first = &issues[0];
    assert_eq!(first.id, IssueId("uuid-1".into()));
    assert_eq!(first.identifier, "ENG-1");
    assert_eq!(first.priority, Some(1));
    assert_eq!(first.labels, ["backend"]);
    assert_eq!(
        first.created_at.unwrap().to_rfc3339(),
        "2026-01-02T03:04:05Z"
    );
    assert_eq!(first.native_ref.as_ref().unwrap()["team_key"], "ENG");
    let no_priority = issues.iter().find(|i| i.identifier == "ENG-5").unwrap();
    assert_eq!(no_priority.priority, None, "Linear's 0 means no priority");
    assert!(
        issues.iter().all(|i| i.identifier != "ENG-9001"),
        "other project excluded"
    );
}

#[tokio::test]
async fn empty_requests_make_no_request() {
    let (endpoint, board) = fake(Fault::None, board(3));
    let t = tracker(&endpoint, KEY);
    assert!(t.fetch_by_states(&[]).await.unwrap().is_empty());
    assert!(t.fetch_by_ids(&[]).await.unwrap().is_empty());
    assert_eq!(board.lock().unwrap().requests, 0);
}

#[tokio::test]
async fn refresh_by_id_omits_what_is_gone_and_blockers_gate_todo() {
    let mut b = board(3);
    b.issues[1]["inverseRelations"] = json!({"nodes": [
        {"type": "blocks", "issue": {"id": "uuid-1", "identifier": "ENG-1", "state": {"name": "Todo"}}},
        {"type": "related", "issue": {"id": "uuid-3", "identifier": "ENG-3", "state": {"name": "Todo"}}}
    ]});
    let (endpoint, _) = fake(Fault::None, b);
    let t = tracker(&endpoint, KEY);
    let issues = t
        .fetch_by_ids(&[IssueId("uuid-2".into()), IssueId("uuid-404".into())])
        .await
        .unwrap();
    assert_eq!(issues.len(), 1);
    let blocked = &issues[0];
    assert_eq!(
        blocked.blocked_by.len(),
        1,
        "only `blocks` relations are blockers"
    );
    assert_eq!(blocked.blocked_by[0].identifier.as_deref(), Some("ENG-1"));
    assert!(
        !blocked.dispatchable,
        "a Todo issue with an open blocker waits"
    );
}

#[tokio::test]
async fn state_changes_and_comments_go_through_the_api() {
    let (endpoint, board) = fake(Fault::None, board(2));
    let t = tracker(&endpoint, KEY);
    t.set_state("ENG-1", "done").await.unwrap();
    t.add_comment("ENG-1", "Finished.").await.unwrap();
    {
        let board = board.lock().unwrap();
        assert_eq!(board.issues[0]["state"]["name"], "Done");
        assert_eq!(
            board.comments,
            [("ENG-1".to_owned(), "Finished.".to_owned())]
        );
    }
    assert!(t.set_state("ENG-2", "Nowhere").await.is_err());
}

#[tokio::test]
async fn every_failure_is_a_typed_error() {
    let cases = [
        (
            Fault::Status500,
            TrackerErrorCategory::TrackerStatus,
            "HTTP 500",
        ),
        (
            Fault::BadGatewayHtml,
            TrackerErrorCategory::TrackerStatus,
            "HTTP 502",
        ),
        (
            Fault::Truncated,
            TrackerErrorCategory::TrackerResponse,
            "not JSON",
        ),
        (
            Fault::GraphqlErrors,
            TrackerErrorCategory::TrackerResponse,
            "Argument Validation Error",
        ),
        (
            Fault::RateLimited,
            TrackerErrorCategory::TrackerRateLimited,
            "HTTP 429",
        ),
        (
            Fault::RepeatCursor,
            TrackerErrorCategory::TrackerPagination,
            "cursor",
        ),
    ];
    for (fault, category, text) in cases {
        let (endpoint, _) = fake(fault, board(3));
        let err = tracker(&endpoint, KEY)
            .fetch_by_states(&states())
            .await
            .unwrap_err();
        assert_eq!(err.category, category, "{fault:?}: {}", err.message);
        assert!(err.message.contains(text), "{fault:?}: {}", err.message);
    }
    // A wrong key: 401 with a hint naming where the key comes from.
    let (endpoint, _) = fake(Fault::None, board(3));
    let err = tracker(&endpoint, "wrong")
        .fetch_by_states(&states())
        .await
        .unwrap_err();
    assert_eq!(err.category, TrackerErrorCategory::TrackerAuth);
    assert!(
        err.message.contains("401") && err.message.contains("LINEAR_API_KEY"),
        "{}",
        err.message
    );
    // Nothing listening: a request error.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}/graphql", closed.local_addr().unwrap());
    drop(closed);
    let err = tracker(&endpoint, KEY)
        .fetch_by_states(&states())
        .await
        .unwrap_err();
    assert_eq!(err.category, TrackerErrorCategory::TrackerRequest);
}

#[tokio::test]
async fn records_missing_required_fields_are_skipped_when_listing_and_fail_a_refresh() {
    let (endpoint, _) = fake(Fault::MissingFields, board(3));
    let t = tracker(&endpoint, KEY);
    assert!(t.fetch_by_states(&states()).await.unwrap().is_empty());
    let err = t
        .fetch_by_ids(&[IssueId("uuid-1".into())])
        .await
        .unwrap_err();
    assert_eq!(err.category, TrackerErrorCategory::TrackerResponse);
}

#[tokio::test]
async fn the_linear_graphql_tool_runs_one_operation_with_the_adapters_key() {
    let (endpoint, shared) = fake(Fault::None, board(2));
    let t = tracker(&endpoint, KEY);
    let specs = t.tool_specs();
    assert_eq!(specs[0]["name"], "linear_graphql");
    let ok = t
        .call_tool(
            "linear_graphql",
            &json!({"query": "query SymphonyIssueTeam($id: String!) { issue(id: $id) { id } }", "variables": {"id": "ENG-1"}}),
        )
        .expect("the adapter has this tool")
        .await
        .unwrap();
    assert!(ok.contains("uuid-1"), "{ok}");
    assert!(shared.lock().unwrap().auth_seen.iter().all(|a| a == KEY));
    let two = t
        .call_tool("linear_graphql", &json!({"query": "{ a } { b }"}))
        .unwrap()
        .await
        .unwrap_err();
    assert!(two.contains("exactly one"), "{two}");
    assert!(t.call_tool("github_api", &json!({})).is_none());

    let (endpoint, _) = fake(Fault::GraphqlErrors, board(1));
    let err = tracker(&endpoint, KEY)
        .call_tool(
            "linear_graphql",
            &json!({"query": "query { viewer { id } }"}),
        )
        .unwrap()
        .await
        .unwrap_err();
    assert!(err.contains("Argument Validation Error"), "{err}");
}

#[tokio::test]
async fn a_hung_endpoint_times_out_as_a_request_error() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}/graphql", listener.local_addr().unwrap());
    let held = std::thread::spawn(move || {
        let connections: Vec<_> = listener.incoming().take(1).collect();
        std::thread::park_timeout(std::time::Duration::from_secs(10));
        drop(connections);
    });
    let provider = LinearSettings {
        endpoint,
        api_key: secret(KEY),
        project_slug: "proj-1".into(),
        team_key: None,
        assignee: None,
        mutations: MutationPolicy::Any,
        timeout_ms: 300,
    };
    let t = LinearTracker::new(&provider, &["Done".into()]).unwrap();
    let started = std::time::Instant::now();
    let err = t.fetch_by_states(&states()).await.unwrap_err();
    assert_eq!(err.category, TrackerErrorCategory::TrackerRequest);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "bounded by timeout_ms"
    );
    held.thread().unpark();
}

/// aiops-platform's `tracker.team_key`: the listing asks Linear for the team's issues only
/// (`IssueFilter.team.key.eq`, in Linear's published schema), read flat or under `provider`.
#[tokio::test]
async fn a_team_key_narrows_the_listing_to_that_team() {
    let mut b = board(4);
    b.issues[1]["team"] = json!({"key": "OPS"});
    let (endpoint, _) = fake(Fault::None, b);
    let env = symphony::workflow::MapEnv::new([("LINEAR_API_KEY", KEY)]);
    let text = format!(
        "---\ntracker:\n  kind: linear\n  endpoint: {endpoint}\n  project_slug: proj-1\n  team_key: ENG\n---\n"
    );
    let workflow = parse_with(&text, &env).unwrap();
    let settings = (workflow.config.tracker.provider.get::<LinearSettings>()).unwrap();
    assert_eq!(settings.team_key.as_deref(), Some("ENG"));
    let t = LinearTracker::new(settings, &["Done".into()]).unwrap();
    let issues = t.fetch_by_states(&states()).await.unwrap();
    let ids: Vec<&str> = issues.iter().map(|i| i.identifier.as_str()).collect();
    assert_eq!(ids, ["ENG-1", "ENG-3", "ENG-4"], "ENG-2 is OPS's");
    // Without it, every team of the project.
    let all = tracker(&endpoint, KEY).fetch_by_states(&states()).await;
    assert_eq!(all.unwrap().len(), 4);
}

fn settings_with(extra: &str, endpoint: &str) -> (LinearSettings, symphony::workflow::Workflow) {
    let env = symphony::workflow::MapEnv::new([("LINEAR_API_KEY", KEY)]);
    let text = format!(
        "---\ntracker:\n  kind: linear\n  provider:\n    endpoint: {endpoint}\n    project_slug: proj-1\n{extra}---\n"
    );
    let workflow = parse_with(&text, &env).unwrap_or_else(|e| panic!("{e}"));
    let settings = workflow.config.tracker.provider.get::<LinearSettings>();
    (settings.unwrap().clone(), workflow)
}

async fn graphql(t: &LinearTracker, query: &str) -> Result<String, String> {
    let arguments = json!({"query": query, "variables": {"issueId": "uuid-1", "body": "hi"}});
    t.call_tool("linear_graphql", &arguments).unwrap().await
}

/// aiops-platform's `codex.linear_graphql` narrowing: with the block written, a mutation is sent
/// only when `allow_mutations: true` and, if `allowed_mutations` is written, only when every
/// top-level field is listed. A refused one never leaves the daemon.
#[tokio::test]
async fn linear_graphql_mutations_are_gated_before_any_request_leaves() {
    let (endpoint, shared) = fake(Fault::None, board(2));
    let requests = || shared.lock().unwrap().requests;
    let comment = "mutation SymphonyComment($issueId: String!, $body: String!) { \
                   commentCreate(input: {issueId: $issueId, body: $body}) { success } }";
    let update = "mutation { issueUpdate(id: \"uuid-1\", input: {}) { success } }";
    let aliased = "mutation { note: commentCreate(input: {}) { success } \
                   gone: issueDelete(id: \"uuid-1\") { success } }";

    // The block written with no allow_mutations: queries only.
    let (none, _) = settings_with("codex:\n  linear_graphql: {}\n", &endpoint);
    assert_eq!(none.mutations, MutationPolicy::None);
    let t = LinearTracker::new(&none, &["Done".into()]).unwrap();
    let before = requests();
    let err = graphql(&t, comment).await.unwrap_err();
    assert!(err.contains("mutations are turned off"), "{err}");
    assert_eq!(requests(), before, "refused before sending");
    assert!(graphql(&t, "{ viewer { id } }").await.is_ok());
    assert_eq!(requests(), before + 1, "queries go through");
    let spec = &t.tool_specs()[0]["description"];
    assert!(spec.as_str().unwrap().contains("queries only"), "{spec}");

    // An allow-list: listed mutations go, others and aliased extras do not.
    let (only, workflow) = settings_with(
        "codex:\n  linear_graphql:\n    allow_mutations: true\n    allowed_mutations: [commentCreate]\n",
        &endpoint,
    );
    assert_eq!(
        only.mutations,
        MutationPolicy::Only(vec!["commentCreate".into()])
    );
    assert_eq!(
        workflow.sources["tracker.provider.allowed_mutations"],
        symphony::workflow::Source::Workflow("codex.linear_graphql.allowed_mutations".into())
    );
    let t = LinearTracker::new(&only, &["Done".into()]).unwrap();
    graphql(&t, comment).await.unwrap();
    assert_eq!(
        shared.lock().unwrap().comments.len(),
        1,
        "the listed mutation ran"
    );
    let before = requests();
    let err = graphql(&t, update).await.unwrap_err();
    assert!(err.contains("mutation issueUpdate is not allowed"), "{err}");
    let err = graphql(&t, aliased).await.unwrap_err();
    assert!(err.contains("mutation issueDelete is not allowed"), "{err}");
    assert_eq!(requests(), before, "nothing refused was sent");

    // Our own spelling, and none at all: any mutation, as SPEC 10.5 has it.
    let (ours, _) = settings_with("    allow_mutations: false\n", &endpoint);
    assert_eq!(ours.mutations, MutationPolicy::None);
    let (open, _) = settings_with("", &endpoint);
    assert_eq!(open.mutations, MutationPolicy::Any);
    let t = LinearTracker::new(&open, &["Done".into()]).unwrap();
    graphql(&t, update).await.unwrap();
}

#[test]
fn allowed_mutations_must_be_graphql_names_once_each_and_need_allow_mutations() {
    let env = symphony::workflow::MapEnv::new([("LINEAR_API_KEY", KEY)]);
    for (block, says) in [
        (
            "    allowed_mutations: [\" issueUpdate\"]\n",
            "GraphQL field names",
        ),
        (
            "    allowed_mutations: [issueUpdate, issueUpdate]\n",
            "each name once",
        ),
        (
            "    allow_mutations: false\n    allowed_mutations: [issueUpdate]\n",
            "needs allow_mutations: true",
        ),
    ] {
        let text = format!(
            "---\ntracker:\n  kind: linear\n  provider:\n    project_slug: p\n{block}---\n"
        );
        let e = parse_with(&text, &env).unwrap_err();
        assert!(e.message.contains(says), "{block}: {e}");
        assert_eq!(
            e.key.as_deref(),
            Some("tracker.provider.allowed_mutations"),
            "{e}"
        );
    }
    // aiops-platform's block with a list and no allow_mutations: true is refused there too.
    let text = "---\ntracker:\n  kind: linear\n  provider:\n    project_slug: p\ncodex:\n  linear_graphql:\n    allowed_mutations: [issueUpdate]\n---\n";
    let e = parse_with(text, &env).unwrap_err();
    assert_eq!(
        e.key.as_deref(),
        Some("codex.linear_graphql.allowed_mutations"),
        "{e}"
    );
}

#[test]
fn a_linear_graphql_block_without_the_linear_tracker_is_said_to_be_ignored() {
    let text =
        "---\ntracker:\n  kind: local\ncodex:\n  linear_graphql:\n    allow_mutations: true\n---\n";
    let workflow = parse_with(text, &symphony::workflow::MapEnv::new([])).unwrap();
    let warning = (workflow.warnings.iter())
        .find(|w| w.key == "codex.linear_graphql")
        .expect("a warning");
    assert!(
        warning.message.contains("only with tracker.kind linear"),
        "{warning}"
    );
}
