//! The Linear adapter against a loopback fake of Linear's GraphQL API. The fake answers in the
//! shapes of Linear's published schema (`Issue`, `IssueConnection`, `PageInfo`,
//! `IssuePayload`, `CommentPayload`) for the operations the adapter sends, and can be told to
//! fail in the ways a real network does.

mod support;

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use symphony::tracker::{LinearTracker, Tracker};
use symphony::workflow::{LinearProvider, Secret};
use symphony_core::{IssueId, TrackerErrorCategory};

const KEY: &str = "lin_api_test_key";

/// How the fake misbehaves, if at all.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    None,
    Status500,
    BadGatewayHtml,
    Truncated,
    GraphqlErrors,
    MissingFields,
    RateLimited,
    RepeatCursor,
}

#[derive(Default)]
struct Board {
    issues: Vec<Value>,
    comments: Vec<(String, String)>,
    requests: usize,
    auth_seen: Vec<String>,
}

fn node(n: usize, state: &str, project: &str) -> Value {
    json!({
        "id": format!("uuid-{n}"),
        "identifier": format!("ENG-{n}"),
        "title": format!("Issue {n}"),
        "description": if n.is_multiple_of(2) { Value::Null } else { json!("Some text") },
        "priority": (n % 5) as f64,
        "branchName": format!("eng-{n}"),
        "url": format!("https://linear.app/acme/issue/ENG-{n}"),
        "createdAt": "2026-01-02T03:04:05.000Z",
        "updatedAt": "2026-01-03T03:04:05.000Z",
        "state": {"name": state},
        "assignee": null,
        "team": {"key": "ENG"},
        "labels": {"nodes": [{"name": "Backend"}]},
        "inverseRelations": {"nodes": []},
        "_project": project,
    })
}

/// Starts the fake; returns its endpoint and the shared board.
fn fake(fault: Fault, board: Board) -> (String, Arc<Mutex<Board>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}/graphql", listener.local_addr().unwrap());
    let board = Arc::new(Mutex::new(board));
    let shared = Arc::clone(&board);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let Some(request) = support::read_request(&stream) else {
                continue;
            };
            let mut board = shared.lock().unwrap();
            board.requests += 1;
            let auth = request.header("authorization").unwrap_or("").to_owned();
            board.auth_seen.push(auth.clone());
            if auth != KEY {
                let body = json!({"errors": [{"message": "Authentication required, not authenticated",
                    "extensions": {"code": "AUTHENTICATION_ERROR"}}]});
                support::respond(
                    stream,
                    "401 Unauthorized",
                    "application/json",
                    &body.to_string(),
                );
                continue;
            }
            match fault {
                Fault::Status500 => {
                    support::respond(
                        stream,
                        "500 Internal Server Error",
                        "application/json",
                        "{}",
                    );
                    continue;
                }
                Fault::BadGatewayHtml => {
                    support::respond(
                        stream,
                        "502 Bad Gateway",
                        "text/html",
                        "<html><body>bad gateway</body></html>",
                    );
                    continue;
                }
                Fault::Truncated => {
                    support::respond(
                        stream,
                        "200 OK",
                        "application/json",
                        "{\"data\": {\"issues\": {\"nodes\": [",
                    );
                    continue;
                }
                Fault::GraphqlErrors => {
                    let body =
                        json!({"errors": [{"message": "Argument Validation Error"}], "data": null});
                    support::respond(stream, "200 OK", "application/json", &body.to_string());
                    continue;
                }
                Fault::RateLimited => {
                    support::respond(stream, "429 Too Many Requests", "application/json", "{}");
                    continue;
                }
                _ => {}
            }
            let payload: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
            let query = payload["query"].as_str().unwrap_or("");
            let vars = &payload["variables"];
            let data = if query.contains("SymphonyIssues") {
                let filter = &vars["filter"];
                let slug = filter["project"]["slugId"]["eq"].as_str().unwrap_or("");
                let states: Vec<&str> = filter["state"]["name"]["in"]
                    .as_array()
                    .map(|s| s.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let ids: Vec<&str> = filter["id"]["in"]
                    .as_array()
                    .map(|s| s.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let matching: Vec<Value> = board
                    .issues
                    .iter()
                    .filter(|i| i["_project"] == slug)
                    .filter(|i| {
                        states.is_empty() || states.contains(&i["state"]["name"].as_str().unwrap())
                    })
                    .filter(|i| ids.is_empty() || ids.contains(&i["id"].as_str().unwrap()))
                    .cloned()
                    .collect();
                let start: usize = vars["after"]
                    .as_str()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                let page: Vec<Value> = matching
                    .iter()
                    .skip(start)
                    .take(50)
                    .map(|i| {
                        let mut i = i.clone();
                        i.as_object_mut().unwrap().remove("_project");
                        if fault == Fault::MissingFields {
                            i.as_object_mut().unwrap().remove("title");
                        }
                        i
                    })
                    .collect();
                let next = start + page.len();
                let has_next = next < matching.len();
                let cursor = if fault == Fault::RepeatCursor {
                    "0".to_owned()
                } else {
                    next.to_string()
                };
                json!({"issues": {"nodes": page, "pageInfo": {"hasNextPage": has_next || fault == Fault::RepeatCursor, "endCursor": cursor}}})
            } else if query.contains("SymphonyIssueTeam") {
                let id = vars["id"].as_str().unwrap_or("");
                let uuid = board
                    .issues
                    .iter()
                    .find(|i| i["identifier"] == id || i["id"] == id)
                    .map(|i| i["id"].clone())
                    .unwrap_or(Value::Null);
                json!({"issue": {"id": uuid, "team": {"states": {"nodes": [
                    {"id": "st-todo", "name": "Todo"}, {"id": "st-done", "name": "Done"}]}}}})
            } else if query.contains("SymphonyMoveIssue") {
                let (id, state) = (
                    vars["id"].clone(),
                    vars["stateId"].as_str().unwrap_or("").to_owned(),
                );
                let name = if state == "st-done" { "Done" } else { "Todo" };
                for issue in &mut board.issues {
                    if issue["id"] == id {
                        issue["state"] = json!({"name": name});
                    }
                }
                json!({"issueUpdate": {"success": true, "lastSyncId": 1.0}})
            } else if query.contains("SymphonyComment") {
                let entry = (
                    vars["issueId"].as_str().unwrap_or("").to_owned(),
                    vars["body"].as_str().unwrap_or("").to_owned(),
                );
                board.comments.push(entry);
                json!({"commentCreate": {"success": true, "lastSyncId": 1.0}})
            } else {
                json!({})
            };
            support::respond(
                stream,
                "200 OK",
                "application/json",
                &json!({"data": data}).to_string(),
            );
        }
    });
    (endpoint, board)
}

fn tracker(endpoint: &str, key: &str) -> LinearTracker {
    let provider = LinearProvider {
        endpoint: endpoint.to_owned(),
        api_key: secret(key),
        project_slug: "proj-1".into(),
        assignee: None,
        timeout_ms: 2_000,
    };
    LinearTracker::new(&provider, &["Done".into(), "Cancelled".into()]).unwrap()
}

/// `Secret` has no public constructor outside config loading: go through a workflow.
fn secret(value: &str) -> Secret {
    let env = symphony::workflow::MapEnv::new([("LINEAR_API_KEY", value)]);
    let text = "---\ntracker:\n  kind: linear\n  provider:\n    project_slug: p\n---\n";
    let workflow = symphony::workflow::parse(
        text,
        std::path::Path::new("/w/WORKFLOW.md"),
        &env,
        &symphony::workflow::Overrides::default(),
    )
    .unwrap();
    match workflow.config.tracker.provider {
        symphony::workflow::Provider::Linear(p) => p.api_key,
        _ => unreachable!(),
    }
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
    assert_eq!(err.category, TrackerErrorCategory::TrackerStatus);
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
    let provider = LinearProvider {
        endpoint,
        api_key: secret(KEY),
        project_slug: "proj-1".into(),
        assignee: None,
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
