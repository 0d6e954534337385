//! A loopback fake of GitHub's REST API for the repository `acme/app`. Every JSON body it serves
//! is validated first against GitHub's published contract (`@octokit/openapi`, pinned;
//! `.ci/test` extracts the schemas of the endpoints used), so the fake cannot drift from the
//! real shapes. Included by the tests that need it with `#[path]`; expects `mod support;`
//! beside it.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::support;

pub(crate) const TOKEN: &str = "ghp_test_token";

pub(crate) fn schemas() -> Value {
    let path = std::env::var_os("SYMPHONY_TEST_OCTOKIT_SCHEMAS").map_or_else(
        || {
            let home = std::env::var_os("HOME").unwrap_or_default();
            std::path::PathBuf::from(home)
                .join(".cache/symphony-rs/octokit-openapi-23.0.2/rest-schemas.json")
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
pub(crate) fn openapi_nullable(value: &mut Value) {
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

pub(crate) fn user() -> Value {
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

pub(crate) fn label(id: u64, name: &str) -> Value {
    json!({"id": id, "node_id": format!("L_{id}"), "url": format!("https://api.example.invalid/labels/{id}"),
           "name": name, "description": null, "color": "ededed", "default": false})
}

/// An issue in GitHub's `issue` shape.
pub(crate) fn gh_issue(number: u64, state: &str, labels: &[&str], pull: bool) -> Value {
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
pub(crate) struct Repo {
    /// Issues and pull requests, in GitHub's `issue` shape.
    pub(crate) issues: Vec<Value>,
    /// Requests served.
    pub(crate) requests: usize,
    /// Of those, answered 304.
    pub(crate) not_modified: usize,
    /// Comments posted: (issue number, body).
    pub(crate) comments: Vec<(u64, String)>,
    /// Answer everything 403 with rate-limit headers.
    pub(crate) rate_limited: bool,
    /// Labels defined in the repository besides those its issues carry.
    pub(crate) labels: Vec<String>,
}

/// The repository `acme/app` in GitHub's `full-repository` shape.
pub(crate) fn repository() -> Value {
    let base = "https://api.example.invalid/repos/acme/app";
    let mut repo = json!({
        "id": 42, "node_id": "R_42", "name": "app", "full_name": "acme/app", "owner": user(),
        "private": false, "html_url": "https://example.invalid/acme/app", "description": null,
        "fork": false, "url": base, "homepage": null, "language": "Rust", "forks": 0,
        "forks_count": 0, "stargazers_count": 0, "watchers_count": 0, "watchers": 0, "size": 1,
        "default_branch": "main", "open_issues_count": 1, "open_issues": 1, "has_issues": true,
        "has_projects": false, "has_wiki": false, "has_pages": false, "has_discussions": false,
        "archived": false, "disabled": false, "mirror_url": null, "license": null,
        "pushed_at": "2026-01-02T03:04:05Z", "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-02T03:04:05Z", "network_count": 0, "subscribers_count": 1,
        "git_url": "git://example.invalid/acme/app.git",
        "ssh_url": "git@example.invalid:acme/app.git",
        "clone_url": "https://example.invalid/acme/app.git",
        "svn_url": "https://example.invalid/acme/app"
    });
    for name in [
        "archive",
        "assignees",
        "blobs",
        "branches",
        "collaborators",
        "comments",
        "commits",
        "compare",
        "contents",
        "contributors",
        "deployments",
        "downloads",
        "events",
        "forks",
        "git_commits",
        "git_refs",
        "git_tags",
        "hooks",
        "issue_comment",
        "issue_events",
        "issues",
        "keys",
        "labels",
        "languages",
        "merges",
        "milestones",
        "notifications",
        "pulls",
        "releases",
        "stargazers",
        "statuses",
        "subscribers",
        "subscription",
        "tags",
        "teams",
        "trees",
    ] {
        repo[format!("{name}_url")] = json!(format!("{base}/{name}"));
    }
    repo
}

pub(crate) fn check(schema: &Value, body: &Value, what: &str) {
    let validator = jsonschema::validator_for(schema).unwrap();
    if let Err(e) = validator.validate(body) {
        panic!(
            "the fake's {what} does not follow GitHub's contract at {}: {e}",
            e.instance_path()
        );
    }
}

/// The fake; every JSON body it serves is checked against the published schema first.
pub(crate) fn fake(repo: Repo) -> (String, Arc<Mutex<Repo>>) {
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
            // The ETag changes whenever the issues do (state, labels, additions).
            let etag = {
                use std::hash::{Hash, Hasher};
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                Value::Array(repo.issues.clone())
                    .to_string()
                    .hash(&mut hasher);
                format!("\"v{:016x}\"", hasher.finish())
            };
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
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nETag: {etag}\r\nX-RateLimit-Limit: 5000\r\nX-RateLimit-Remaining: 4987\r\n{link}Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
                        text.len()
                    );
                }
                ("GET", "/repos/acme/app") => {
                    let body = repository();
                    check(&schemas["get_repo"], &body, "repository");
                    support::respond(stream, "200 OK", "application/json", &body.to_string());
                }
                ("GET", "/repos/acme/app/labels") => {
                    let mut names: Vec<String> = repo.labels.clone();
                    for issue in &repo.issues {
                        for l in issue["labels"].as_array().into_iter().flatten() {
                            let name = l["name"].as_str().unwrap_or_default().to_owned();
                            if !names.contains(&name) {
                                names.push(name);
                            }
                        }
                    }
                    let body = Value::Array(
                        names
                            .iter()
                            .enumerate()
                            .map(|(i, n)| label(900 + i as u64, n))
                            .collect(),
                    );
                    check(&schemas["list_labels"], &body, "label list");
                    support::respond(stream, "200 OK", "application/json", &body.to_string());
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
