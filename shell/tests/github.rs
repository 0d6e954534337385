//! The GitHub adapter against a loopback fake of GitHub's REST API. Every body the fake sends
//! validates against GitHub's published contract (`@octokit/openapi`, pinned; `.ci/test`
//! extracts the schemas of the endpoints used), so the fake cannot drift from the real shapes.

mod support;

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use symphony::tracker::{GithubTracker, Tracker};
use symphony::workflow::{MapEnv, Overrides, Provider, parse};
use symphony_core::{IssueId, TrackerErrorCategory};

const TOKEN: &str = "ghp_test_token";

fn schemas() -> Value {
    let path = std::env::var_os("SYMPHONY_TEST_OCTOKIT_SCHEMAS").map_or_else(
        || {
            let home = std::env::var_os("HOME").unwrap_or_default();
            std::path::PathBuf::from(home)
                .join(".cache/symphony-rs/octokit-openapi-23.0.2/issues-schemas.json")
        },
        std::path::PathBuf::from,
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "{} is missing: run ./.ci/test (it installs @octokit/openapi)",
            path.display()
        )
    });
    let mut schemas: Value = serde_json::from_str(&text).unwrap();
    openapi_nullable(&mut schemas);
    schemas
}

/// OpenAPI 3.0 says `nullable: true` where JSON Schema says "or null": rewrite it so a JSON
/// Schema validator reads GitHub's contract as written.
fn openapi_nullable(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.values_mut().for_each(openapi_nullable);
            if map.remove("nullable") == Some(Value::Bool(true)) {
                if let Some(Value::Array(values)) = map.get_mut("enum") {
                    values.push(Value::Null);
                }
                match map.get("type").cloned() {
                    Some(Value::String(kind)) => {
                        map.insert("type".into(), json!([kind, "null"]));
                    }
                    _ => {
                        let inner = Value::Object(std::mem::take(map));
                        map.insert("anyOf".into(), json!([inner, {"type": "null"}]));
                    }
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(openapi_nullable),
        _ => {}
    }
}

fn user() -> Value {
    json!({
        "login": "octo", "id": 1, "node_id": "U_1", "avatar_url": "https://example.invalid/a.png",
        "gravatar_id": "", "url": "https://api.example.invalid/users/octo",
        "html_url": "https://example.invalid/octo",
        "followers_url": "https://api.example.invalid/users/octo/followers",
        "following_url": "https://api.example.invalid/users/octo/following{/other_user}",
        "gists_url": "https://api.example.invalid/users/octo/gists{/gist_id}",
        "starred_url": "https://api.example.invalid/users/octo/starred{/owner}{/repo}",
        "subscriptions_url": "https://api.example.invalid/users/octo/subscriptions",
        "organizations_url": "https://api.example.invalid/users/octo/orgs",
        "repos_url": "https://api.example.invalid/users/octo/repos",
        "events_url": "https://api.example.invalid/users/octo/events{/privacy}",
        "received_events_url": "https://api.example.invalid/users/octo/received_events",
        "type": "User", "site_admin": false
    })
}

fn label(id: u64, name: &str) -> Value {
    json!({"id": id, "node_id": format!("L_{id}"), "url": format!("https://api.example.invalid/labels/{id}"),
           "name": name, "description": null, "color": "ededed", "default": false})
}

/// An issue in GitHub's `issue` shape.
fn gh_issue(number: u64, state: &str, labels: &[&str], pull: bool) -> Value {
    let base = "https://api.example.invalid/repos/acme/app";
    let mut issue = json!({
        "id": 1000 + number, "node_id": format!("I_{number}"),
        "url": format!("{base}/issues/{number}"),
        "repository_url": base,
        "labels_url": format!("{base}/issues/{number}/labels{{/name}}"),
        "comments_url": format!("{base}/issues/{number}/comments"),
        "events_url": format!("{base}/issues/{number}/events"),
        "html_url": format!("https://example.invalid/acme/app/issues/{number}"),
        "number": number, "state": state, "title": format!("Issue {number}"),
        "body": format!("Body of {number}"), "user": user(),
        "labels": labels.iter().enumerate().map(|(i, l)| label(number * 10 + i as u64, l)).collect::<Vec<_>>(),
        "assignee": null, "assignees": [], "milestone": null, "locked": false, "comments": 0,
        "closed_at": if state == "closed" { json!("2026-01-04T00:00:00Z") } else { Value::Null },
        "created_at": "2026-01-02T03:04:05Z", "updated_at": "2026-01-03T03:04:05Z",
        "author_association": "OWNER", "state_reason": null
    });
    if pull {
        issue["pull_request"] = json!({"url": format!("{base}/pulls/{number}"),
            "html_url": format!("https://example.invalid/acme/app/pull/{number}"),
            "diff_url": null, "patch_url": null});
    }
    issue
}

#[derive(Default)]
struct Repo {
    issues: Vec<Value>,
    requests: usize,
    not_modified: usize,
    comments: Vec<(u64, String)>,
    rate_limited: bool,
}

fn check(schema: &Value, body: &Value, what: &str) {
    let validator = jsonschema::validator_for(schema).unwrap();
    if let Err(e) = validator.validate(body) {
        panic!(
            "the fake's {what} does not follow GitHub's contract at {}: {e}",
            e.instance_path()
        );
    }
}

/// The fake; every JSON body it serves is checked against the published schema first.
fn fake(repo: Repo) -> (String, Arc<Mutex<Repo>>) {
    let schemas = Arc::new(schemas());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let repo = Arc::new(Mutex::new(repo));
    let shared = Arc::clone(&repo);
    let url_base = base.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let Some(request) = support::read_request(&stream) else {
                continue;
            };
            let mut repo = shared.lock().unwrap();
            repo.requests += 1;
            if request.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
                support::respond(
                    stream,
                    "401 Unauthorized",
                    "application/json",
                    r#"{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest"}"#,
                );
                continue;
            }
            if repo.rate_limited {
                use std::io::Write;
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nX-RateLimit-Remaining: 0\r\nX-RateLimit-Reset: 1767225600\r\nRetry-After: 60\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
                );
                continue;
            }
            let (path, query) = request.path.split_once('?').unwrap_or((&request.path, ""));
            let param = |name: &str| {
                query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                    .map(str::to_owned)
            };
            let etag = format!("\"v{}\"", repo.issues.len() * 1000 + repo.comments.len());
            match (request.method.as_str(), path) {
                ("GET", "/repos/acme/app/issues") => {
                    if request.header("if-none-match") == Some(etag.as_str()) {
                        repo.not_modified += 1;
                        use std::io::Write;
                        let mut stream = stream;
                        let _ = write!(
                            stream,
                            "HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nConnection: close\r\n\r\n"
                        );
                        continue;
                    }
                    let state = param("state").unwrap_or_else(|| "open".into());
                    let page: usize = param("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                    let per_page: usize =
                        param("per_page").and_then(|p| p.parse().ok()).unwrap_or(30);
                    let matching: Vec<Value> = repo
                        .issues
                        .iter()
                        .filter(|i| state == "all" || i["state"] == state.as_str())
                        .cloned()
                        .collect();
                    let body: Vec<Value> = matching
                        .iter()
                        .skip((page - 1) * per_page)
                        .take(per_page)
                        .cloned()
                        .collect();
                    let body = Value::Array(body);
                    check(&schemas["list_issues"], &body, "issue list");
                    let link = if page * per_page < matching.len() {
                        format!(
                            "Link: <{url_base}/repos/acme/app/issues?state={state}&per_page={per_page}&page={}>; rel=\"next\", <{url_base}/repos/acme/app/issues?state={state}&per_page={per_page}&page=1>; rel=\"first\"\r\n",
                            page + 1
                        )
                    } else {
                        String::new()
                    };
                    let text = body.to_string();
                    use std::io::Write;
                    let mut stream = stream;
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nETag: {etag}\r\n{link}Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
                        text.len()
                    );
                }
                (method, p) if p.starts_with("/repos/acme/app/issues/") => {
                    let rest = &p["/repos/acme/app/issues/".len()..];
                    let (number, tail) = rest.split_once('/').unwrap_or((rest, ""));
                    let number: u64 = number.parse().unwrap_or(0);
                    let Some(index) = repo.issues.iter().position(|i| i["number"] == number) else {
                        support::respond(
                            stream,
                            "404 Not Found",
                            "application/json",
                            r#"{"message":"Not Found"}"#,
                        );
                        continue;
                    };
                    let payload: Value =
                        serde_json::from_slice(&request.body).unwrap_or(Value::Null);
                    match (method, tail) {
                        ("GET", "") => {
                            let body = repo.issues[index].clone();
                            check(&schemas["get_issue"], &body, "issue");
                            support::respond(
                                stream,
                                "200 OK",
                                "application/json",
                                &body.to_string(),
                            );
                        }
                        ("PATCH", "") => {
                            if let Some(labels) = payload["labels"].as_array() {
                                let names: Vec<&str> =
                                    labels.iter().filter_map(Value::as_str).collect();
                                repo.issues[index]["labels"] = json!(
                                    names
                                        .iter()
                                        .enumerate()
                                        .map(|(i, l)| label(number * 10 + i as u64, l))
                                        .collect::<Vec<_>>()
                                );
                            }
                            if let Some(state) = payload["state"].as_str() {
                                repo.issues[index]["state"] = json!(state);
                            }
                            let body = repo.issues[index].clone();
                            check(&schemas["update_issue"], &body, "updated issue");
                            support::respond(
                                stream,
                                "200 OK",
                                "application/json",
                                &body.to_string(),
                            );
                        }
                        ("POST", "comments") => {
                            let text = payload["body"].as_str().unwrap_or("").to_owned();
                            repo.comments.push((number, text.clone()));
                            let body = json!({
                                "id": 5, "node_id": "C_5", "url": "https://api.example.invalid/comments/5",
                                "html_url": "https://example.invalid/acme/app/issues/1#issuecomment-5",
                                "body": text, "user": user(), "created_at": "2026-01-05T00:00:00Z",
                                "updated_at": "2026-01-05T00:00:00Z",
                                "issue_url": format!("https://api.example.invalid/repos/acme/app/issues/{number}"),
                                "author_association": "OWNER"
                            });
                            check(&schemas["create_comment"], &body, "comment");
                            support::respond(
                                stream,
                                "201 Created",
                                "application/json",
                                &body.to_string(),
                            );
                        }
                        _ => support::respond(
                            stream,
                            "404 Not Found",
                            "application/json",
                            r#"{"message":"Not Found"}"#,
                        ),
                    }
                }
                _ => support::respond(
                    stream,
                    "404 Not Found",
                    "application/json",
                    r#"{"message":"Not Found"}"#,
                ),
            }
        }
    });
    (base, repo)
}

fn tracker(api_url: &str, token: &str) -> GithubTracker {
    let env = MapEnv::new([("GITHUB_TOKEN", token)]);
    let text = format!(
        "---\ntracker:\n  kind: github\n  provider:\n    repo: acme/app\n    api_url: {api_url}\n---\n"
    );
    let workflow = parse(
        &text,
        std::path::Path::new("/w/WORKFLOW.md"),
        &env,
        &Overrides::default(),
    )
    .unwrap();
    match &workflow.config.tracker.provider {
        Provider::Github(p) => GithubTracker::new(p).unwrap(),
        _ => unreachable!(),
    }
}

fn repo_with(count: u64) -> Repo {
    let mut issues: Vec<Value> = (1..=count)
        .map(|n| gh_issue(n, "open", &["state:Todo", "priority:2", "Backend"], false))
        .collect();
    issues.push(gh_issue(count + 1, "open", &["state:In Progress"], false));
    issues.push(gh_issue(count + 2, "open", &[], false));
    issues.push(gh_issue(count + 3, "open", &["state:Todo"], true));
    issues.push(gh_issue(count + 4, "closed", &["state:Todo"], false));
    Repo {
        issues,
        ..Repo::default()
    }
}

fn states(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn issues_are_paged_filtered_and_normalised() {
    let (api, repo) = fake(repo_with(150));
    let t = tracker(&api, TOKEN);
    let issues = t
        .fetch_by_states(&states(&["Todo", "In Progress"]))
        .await
        .unwrap();
    assert_eq!(
        issues.len(),
        151,
        "150 Todo + 1 In Progress; no PR, no unlabelled, no closed"
    );
    assert_eq!(repo.lock().unwrap().requests, 2, "two pages of 100");
    let first = &issues[0];
    assert_eq!(first.id, IssueId("1".into()));
    assert_eq!(first.identifier, "GH-1");
    assert_eq!(first.state, "Todo");
    assert_eq!(first.priority, Some(2));
    assert!(first.labels.contains(&"backend".to_owned()));
    assert_eq!(
        first.url.as_deref(),
        Some("https://example.invalid/acme/app/issues/1")
    );
    assert_eq!(first.native_ref.as_ref().unwrap()["number"], 1);
    let closed = t.fetch_by_states(&states(&["Closed"])).await.unwrap();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].identifier, "GH-154");
}

#[tokio::test]
async fn an_unchanged_poll_is_answered_304_from_the_cache() {
    let (api, repo) = fake(repo_with(3));
    let t = tracker(&api, TOKEN);
    let first = t.fetch_by_states(&states(&["Todo"])).await.unwrap();
    let second = t.fetch_by_states(&states(&["Todo"])).await.unwrap();
    assert_eq!(first, second);
    let repo = repo.lock().unwrap();
    assert_eq!(repo.requests, 2);
    assert_eq!(
        repo.not_modified, 1,
        "the second poll was one request answered 304"
    );
}

#[tokio::test]
async fn refresh_by_id_and_empty_requests() {
    let (api, repo) = fake(repo_with(3));
    let t = tracker(&api, TOKEN);
    assert!(t.fetch_by_states(&[]).await.unwrap().is_empty());
    assert!(t.fetch_by_ids(&[]).await.unwrap().is_empty());
    assert_eq!(repo.lock().unwrap().requests, 0);
    let refreshed = t
        .fetch_by_ids(&[
            IssueId("2".into()),
            IssueId("404".into()),
            IssueId("6".into()),
        ])
        .await
        .unwrap();
    let ids: Vec<&str> = refreshed.iter().map(|i| i.identifier.as_str()).collect();
    assert_eq!(
        ids,
        ["GH-2"],
        "missing issues and pull requests are omitted"
    );
}

#[tokio::test]
async fn state_moves_relabel_and_comments_post() {
    let (api, repo) = fake(repo_with(2));
    let t = tracker(&api, TOKEN);
    t.set_state("GH-1", "In Progress").await.unwrap();
    t.add_comment("GH-1", "Working on it.").await.unwrap();
    let issue = &t.fetch_by_ids(&[IssueId("1".into())]).await.unwrap()[0];
    assert_eq!(issue.state, "In Progress");
    assert!(
        issue.labels.contains(&"priority:2".to_owned()),
        "other labels kept"
    );
    assert!(
        !issue.labels.contains(&"state:todo".to_owned()),
        "old state label removed"
    );
    t.set_state("GH-1", "Closed").await.unwrap();
    let issue = &t.fetch_by_ids(&[IssueId("1".into())]).await.unwrap()[0];
    assert_eq!(issue.state, "Closed");
    assert_eq!(
        repo.lock().unwrap().comments,
        [(1, "Working on it.".to_owned())]
    );
}

#[tokio::test]
async fn failures_are_typed_with_hints() {
    let (api, _) = fake(repo_with(1));
    let err = tracker(&api, "wrong")
        .fetch_by_states(&states(&["Todo"]))
        .await
        .unwrap_err();
    assert_eq!(err.category, TrackerErrorCategory::TrackerStatus);
    assert!(
        err.message.contains("401") && err.message.contains("GITHUB_TOKEN"),
        "{}",
        err.message
    );

    let (api, repo) = fake(repo_with(1));
    repo.lock().unwrap().rate_limited = true;
    let err = tracker(&api, TOKEN)
        .fetch_by_states(&states(&["Todo"]))
        .await
        .unwrap_err();
    assert_eq!(err.category, TrackerErrorCategory::TrackerRateLimited);
    assert!(err.message.contains("retry after 60 s"), "{}", err.message);
}

#[test]
fn the_contract_check_rejects_shapes_github_does_not_send() {
    let schemas = schemas();
    let validator = jsonschema::validator_for(&schemas["get_issue"]).unwrap();
    let good = gh_issue(7, "open", &["state:Todo"], false);
    assert!(validator.is_valid(&good));
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("number");
    assert!(!validator.is_valid(&missing));
    let mut wrong = good;
    wrong["state"] = json!(42);
    assert!(!validator.is_valid(&wrong));
}

#[tokio::test]
async fn the_github_api_tool_is_scoped_to_the_repository() {
    let (api, _) = fake(repo_with(2));
    let t = tracker(&api, TOKEN);
    assert_eq!(t.tool_specs()[0]["name"], "github_api");
    let body = t
        .call_tool(
            "github_api",
            &json!({"method": "GET", "path": "/repos/acme/app/issues/1"}),
        )
        .expect("the adapter has this tool")
        .await
        .unwrap();
    let issue: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(issue["number"], 1);
    for path in [
        "/repos/other/repo/issues",
        "/user",
        "/repos/acme/app/../other",
        "/repos/acme/application",
    ] {
        let err = t
            .call_tool("github_api", &json!({"method": "GET", "path": path}))
            .unwrap()
            .await
            .unwrap_err();
        assert!(
            err.contains("only paths under /repos/acme/app"),
            "{path}: {err}"
        );
    }
    let err = t
        .call_tool(
            "github_api",
            &json!({"method": "GET", "path": "/repos/acme/app/issues/999"}),
        )
        .unwrap()
        .await
        .unwrap_err();
    assert!(err.contains("404"), "{err}");
}
