//! A loopback fake of Linear's GraphQL API. It answers in the shapes of Linear's published
//! schema (`Issue`, `IssueConnection`, `PageInfo`, `IssuePayload`, `CommentPayload`) for the
//! operations the adapter sends, and can be told to fail in the ways a real network does.
//! Included by the tests that need it with `#[path]`; expects `mod support;` beside it.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::support;

pub(crate) const KEY: &str = "lin_api_test_key";

/// How the fake misbehaves, if at all.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Fault {
    None,
    Status500,
    BadGatewayHtml,
    Truncated,
    GraphqlErrors,
    MissingFields,
    RateLimited,
    RepeatCursor,
    /// Every answer is a GraphQL error that repeats the `Authorization` header back.
    EchoKey,
}

#[derive(Default)]
pub(crate) struct Board {
    /// Issue nodes; `_project` (removed before serving) is the project slug they belong to.
    pub(crate) issues: Vec<Value>,
    /// Comments created: (issue id or identifier, body).
    pub(crate) comments: Vec<(String, String)>,
    /// Requests served.
    pub(crate) requests: usize,
    /// Every `Authorization` header received.
    pub(crate) auth_seen: Vec<String>,
    /// Projects that exist besides those the issues name: (slug, name).
    pub(crate) projects: Vec<(String, String)>,
}

/// The workflow states of the one team every project belongs to.
pub(crate) const TEAM_STATES: [&str; 5] = ["Backlog", "Todo", "In Progress", "Done", "Canceled"];

/// The fake's id for a team state.
fn state_id(name: &str) -> String {
    format!("st-{}", name.to_lowercase().replace(' ', "-"))
}

pub(crate) fn node(n: usize, state: &str, project: &str) -> Value {
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
pub(crate) fn fake(fault: Fault, board: Board) -> (String, Arc<Mutex<Board>>) {
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
                Fault::EchoKey => {
                    let body = json!({"errors": [{"message": format!("cannot run this query for Authorization: {auth}")}], "data": null});
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
                let team = filter["team"]["key"]["eq"].as_str();
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
                    .filter(|i| team.is_none_or(|team| i["team"]["key"] == team))
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
                let states: Vec<Value> = TEAM_STATES
                    .iter()
                    .map(|name| json!({"id": state_id(name), "name": name}))
                    .collect();
                json!({"issue": {"id": uuid, "team": {"states": {"nodes": states}}}})
            } else if query.contains("SymphonyProbe") {
                let slug = vars["slug"].as_str().unwrap_or("");
                let name = board
                    .projects
                    .iter()
                    .find(|(s, _)| s == slug)
                    .map(|(_, name)| name.clone())
                    .or_else(|| {
                        board
                            .issues
                            .iter()
                            .any(|i| i["_project"] == slug)
                            .then(|| slug.to_owned())
                    });
                let states: Vec<Value> = TEAM_STATES.iter().map(|n| json!({"name": n})).collect();
                let nodes: Vec<Value> = name
                    .map(|name| {
                        json!({"name": name, "teams": {"nodes": [
                        {"key": "ENG", "states": {"nodes": states}}]}})
                    })
                    .into_iter()
                    .collect();
                json!({"projects": {"nodes": nodes}})
            } else if query.contains("SymphonyMoveIssue") {
                let (id, state) = (
                    vars["id"].clone(),
                    vars["stateId"].as_str().unwrap_or("").to_owned(),
                );
                let name = TEAM_STATES
                    .iter()
                    .find(|name| state_id(name) == state)
                    .copied()
                    .unwrap_or("Todo");
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
