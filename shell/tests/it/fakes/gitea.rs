//! A loopback fake of Gitea's REST API (`/api/v1`) for the repository `acme/app`. Every
//! request is checked against Gitea's Swagger description (`fixtures/gitea/`): its method and
//! path must match a declared operation and each query parameter must be one the operation
//! declares; every request body and every JSON body served is validated against the declared
//! schema. A violation panics the fake's thread, so the request fails and the test with it.

use std::net::TcpListener;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Value, json};

use crate::support;

pub(crate) const TOKEN: &str = "gitea_test_token_0123";

/// Gitea's Swagger description (the subset kept in `fixtures/gitea/`).
fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/gitea/issues-subset.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    })
}

/// The operation declared for `method` on `path` (under `/api/v1`), and its path template.
fn operation(method: &str, path: &str) -> (&'static str, &'static Value) {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let paths = spec()["paths"].as_object().unwrap();
    for (template, operations) in paths {
        let parts: Vec<&str> = template.trim_start_matches('/').split('/').collect();
        let matches = parts.len() == segments.len()
            && parts
                .iter()
                .zip(&segments)
                .all(|(t, s)| t.starts_with('{') || t == s);
        if matches && let Some(op) = operations.get(method.to_lowercase()) {
            return (template.as_str(), op);
        }
    }
    panic!("Gitea declares no operation {method} {path}");
}

/// A JSON Schema validator for `schema`, whose `$ref`s point into the description.
fn check(schema: &Value, body: &Value, what: &str) {
    let mut root = schema.clone();
    if let Value::Object(map) = &mut root {
        map.insert("definitions".into(), spec()["definitions"].clone());
    }
    let validator = jsonschema::validator_for(&root).unwrap();
    if let Err(e) = validator.validate(body) {
        panic!(
            "the fake's {what} does not follow Gitea's Swagger description at {}: {e}",
            e.instance_path()
        );
    }
}

/// The response schema an operation declares for `status`, if it declares a body.
fn response_schema(op: &Value, status: u16) -> Option<Value> {
    let declared = &op["responses"][status.to_string()];
    assert!(!declared.is_null(), "status {status} is not declared: {op}");
    let declared = match declared["$ref"].as_str() {
        Some(r) => &spec()["responses"][r.trim_start_matches("#/responses/")],
        None => declared,
    };
    declared.get("schema").cloned()
}

pub(crate) fn user() -> Value {
    json!({"id": 1, "login": "symphony-bot", "full_name": "Symphony Bot", "email": "bot@example.invalid",
           "avatar_url": "https://gitea.example.invalid/avatars/1", "html_url": "https://gitea.example.invalid/symphony-bot",
           "is_admin": false, "active": true, "created": "2026-01-01T00:00:00Z"})
}

/// A repository label.
pub(crate) fn label(id: u64, name: &str) -> Value {
    json!({"id": id, "name": name, "color": "ededed", "description": "", "exclusive": false,
           "is_archived": false, "url": format!("https://gitea.example.invalid/api/v1/repos/acme/app/labels/{id}")})
}

/// The fake's state.
#[derive(Default)]
pub(crate) struct Repo {
    /// Issues: (number, open, label names, title).
    pub(crate) issues: Vec<(u64, bool, Vec<String>)>,
    /// Labels defined in the repository, by id.
    pub(crate) labels: Vec<(u64, String)>,
    /// Comments created: (issue number, body).
    pub(crate) comments: Vec<(u64, String)>,
    /// Requests served.
    pub(crate) requests: usize,
    /// Refuse to close issues (403), as for a token without that right.
    pub(crate) refuse_close: bool,
    /// Pull requests: (number, open, title, body).
    pub(crate) pulls: Vec<(u64, bool, String, String)>,
    /// Issue dependencies: (issue, the issue that blocks it).
    pub(crate) dependencies: Vec<(u64, u64)>,
    /// Answer dependency listings 404 (declared), as when the feature is off on the server.
    pub(crate) dependencies_fail: bool,
}

impl Repo {
    /// A repository with the default `aiops/*` labels and `issues` as (number, open, labels).
    pub(crate) fn with(issues: &[(u64, bool, &[&str])]) -> Self {
        let names = [
            "aiops/todo",
            "aiops/in-progress",
            "aiops/human-review",
            "aiops/merging",
            "aiops/rework",
            "aiops/done",
            "aiops/canceled",
            "bug",
        ];
        Self {
            issues: issues
                .iter()
                .map(|(n, open, labels)| {
                    (*n, *open, labels.iter().map(|l| (*l).to_owned()).collect())
                })
                .collect(),
            labels: (1..).zip(names.iter().map(|n| (*n).to_owned())).collect(),
            ..Self::default()
        }
    }

    fn label_json(&self, name: &str) -> Value {
        let id = self
            .labels
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map_or(999, |(id, _)| *id);
        label(id, name)
    }

    fn issue_json(&self, number: u64) -> Option<Value> {
        let (_, open, labels) = self.issues.iter().find(|(n, ..)| *n == number)?;
        Some(json!({
            "id": 1000 + number, "number": number, "title": format!("Issue {number}"),
            "body": format!("Body of issue {number}."), "state": if *open { "open" } else { "closed" },
            "labels": labels.iter().map(|l| self.label_json(l)).collect::<Vec<_>>(),
            "user": user(), "assignees": [], "comments": 0, "is_locked": false,
            "html_url": format!("https://gitea.example.invalid/acme/app/issues/{number}"),
            "url": format!("https://gitea.example.invalid/api/v1/repos/acme/app/issues/{number}"),
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-02T00:00:00Z",
            "repository": {"id": 1, "name": "app", "full_name": "acme/app", "owner": "acme"}
        }))
    }
}

/// Starts the fake: the base URL (give it as `tracker.provider.endpoint`) and its state.
pub(crate) fn fake(repo: Repo) -> (String, Arc<Mutex<Repo>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let repo = Arc::new(Mutex::new(repo));
    let shared = Arc::clone(&repo);
    let link_base = base.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let Some(request) = support::read_request(&stream) else {
                continue;
            };
            let mut repo = shared.lock().unwrap();
            repo.requests += 1;
            let (path, query) = request.path.split_once('?').unwrap_or((&request.path, ""));
            let api_path = path
                .strip_prefix("/api/v1")
                .expect("requests go to /api/v1");
            let (_, op) = operation(&request.method, api_path);
            let params: Vec<(&str, &str)> = query
                .split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
                .collect();
            for (name, _) in &params {
                let declared = op["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["in"] == "query" && p["name"] == *name);
                assert!(
                    declared,
                    "query parameter {name} is not declared for {} {api_path}",
                    request.method
                );
            }
            if !request.body.is_empty() {
                let body: Value = serde_json::from_slice(&request.body).expect("a JSON body");
                let param = op["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|p| p["in"] == "body");
                let schema = param.expect("the operation takes a body")["schema"].clone();
                check(&schema, &body, "request body");
            }
            if request.header("authorization") != Some(&format!("token {TOKEN}")) {
                support::respond(
                    stream,
                    "401 Unauthorized",
                    "application/json",
                    r#"{"message":"token is required","url":""}"#,
                );
                continue;
            }
            let param = |name: &str| {
                params
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.replace("%2F", "/").replace("%20", " "))
            };
            let segments: Vec<&str> = api_path.trim_start_matches('/').split('/').collect();
            let answer: (u16, Option<Value>, String) = match (
                request.method.as_str(),
                segments.as_slice(),
            ) {
                ("GET", ["repos", "acme", "app"]) => (
                    200,
                    Some(json!({
                        "id": 1, "name": "app", "full_name": "acme/app", "owner": user(), "private": true,
                        "html_url": "https://gitea.example.invalid/acme/app", "default_branch": "main",
                        "clone_url": "https://gitea.example.invalid/acme/app.git", "has_issues": true
                    })),
                    String::new(),
                ),
                ("GET", ["repos", "acme", "app", "labels"]) => (
                    200,
                    Some(Value::Array(
                        repo.labels
                            .iter()
                            .map(|(id, name)| label(*id, name))
                            .collect(),
                    )),
                    String::new(),
                ),
                ("GET", ["repos", "acme", "app", "issues"]) => {
                    let state = param("state").unwrap_or_else(|| "open".into());
                    let wanted: Vec<String> = param("labels")
                        .map(|l| l.split(',').map(str::to_owned).collect())
                        .unwrap_or_default();
                    let page: usize = param("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                    let limit: usize = param("limit").and_then(|p| p.parse().ok()).unwrap_or(30);
                    let matching: Vec<u64> = repo
                        .issues
                        .iter()
                        .filter(|(_, open, _)| state == "all" || (state == "open") == *open)
                        .filter(|(_, _, labels)| {
                            wanted
                                .iter()
                                .all(|w| labels.iter().any(|l| l.eq_ignore_ascii_case(w)))
                        })
                        .map(|(n, ..)| *n)
                        .collect();
                    let items: Vec<Value> = matching
                        .iter()
                        .skip((page - 1) * limit)
                        .take(limit)
                        .filter_map(|n| repo.issue_json(*n))
                        .collect();
                    let link = if page * limit < matching.len() {
                        let next =
                            query.replace(&format!("page={page}"), &format!("page={}", page + 1));
                        format!("Link: <{link_base}{path}?{next}>; rel=\"next\"\r\n")
                    } else {
                        String::new()
                    };
                    (200, Some(Value::Array(items)), link)
                }
                ("GET", ["repos", "acme", "app", "issues", _, "dependencies"])
                    if repo.dependencies_fail =>
                {
                    (404, None, String::new())
                }
                ("GET", ["repos", "acme", "app", "issues", n, "dependencies"]) => {
                    let number: u64 = n.parse().unwrap();
                    let items: Vec<Value> = repo
                        .dependencies
                        .iter()
                        .filter(|(issue, _)| *issue == number)
                        .filter_map(|(_, blocker)| repo.issue_json(*blocker))
                        .collect();
                    (200, Some(Value::Array(items)), String::new())
                }
                ("GET", ["repos", "acme", "app", "pulls"]) => {
                    let state = param("state").unwrap_or_else(|| "open".into());
                    let items: Vec<Value> = repo.pulls.iter()
                        .filter(|(_, open, ..)| state == "all" || (state == "open") == *open)
                        .map(|(number, open, title, body)| json!({
                            "id": 5000 + number, "number": number, "title": title, "body": body,
                            "state": if *open { "open" } else { "closed" }, "user": user(),
                            "draft": false, "merged": false, "mergeable": true,
                            "html_url": format!("https://gitea.example.invalid/acme/app/pulls/{number}"),
                            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-02T00:00:00Z"
                        }))
                        .collect();
                    (200, Some(Value::Array(items)), String::new())
                }
                ("GET", ["repos", "acme", "app", "issues", n]) => {
                    match n.parse().ok().and_then(|n| repo.issue_json(n)) {
                        Some(issue) => (200, Some(issue), String::new()),
                        None => (404, None, String::new()),
                    }
                }
                ("POST", ["repos", "acme", "app", "issues", n, "labels"]) => {
                    let number: u64 = n.parse().unwrap();
                    let body: Value = serde_json::from_slice(&request.body).unwrap();
                    let add: Vec<String> = body["labels"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter_map(|l| l.as_str().map(str::to_owned))
                        .collect();
                    match repo.issues.iter_mut().find(|(num, ..)| *num == number) {
                        Some((_, _, labels)) => {
                            for name in add {
                                if !labels.iter().any(|l| l.eq_ignore_ascii_case(&name)) {
                                    labels.push(name);
                                }
                            }
                            let now = labels.clone();
                            (
                                200,
                                Some(Value::Array(
                                    now.iter().map(|l| repo.label_json(l)).collect(),
                                )),
                                String::new(),
                            )
                        }
                        None => (404, None, String::new()),
                    }
                }
                ("DELETE", ["repos", "acme", "app", "issues", n, "labels", id]) => {
                    let (number, id): (u64, u64) = (n.parse().unwrap(), id.parse().unwrap());
                    let name = repo
                        .labels
                        .iter()
                        .find(|(i, _)| *i == id)
                        .map(|(_, n)| n.clone());
                    match (
                        repo.issues.iter_mut().find(|(num, ..)| *num == number),
                        name,
                    ) {
                        (Some((_, _, labels)), Some(name)) => {
                            labels.retain(|l| !l.eq_ignore_ascii_case(&name));
                            (204, None, String::new())
                        }
                        _ => (404, None, String::new()),
                    }
                }
                ("PATCH", ["repos", "acme", "app", "issues", n]) => {
                    let number: u64 = n.parse().unwrap();
                    let body: Value = serde_json::from_slice(&request.body).unwrap();
                    if repo.refuse_close {
                        (403, None, String::new())
                    } else {
                        if let Some(issue) = repo.issues.iter_mut().find(|(num, ..)| *num == number)
                        {
                            issue.1 = body["state"] != "closed";
                        }
                        match repo.issue_json(number) {
                            Some(issue) => (201, Some(issue), String::new()),
                            None => (404, None, String::new()),
                        }
                    }
                }
                ("POST", ["repos", "acme", "app", "issues", n, "comments"]) => {
                    let number: u64 = n.parse().unwrap();
                    let body: Value = serde_json::from_slice(&request.body).unwrap();
                    let text = body["body"].as_str().unwrap().to_owned();
                    repo.comments.push((number, text.clone()));
                    (
                        201,
                        Some(
                            json!({"id": repo.comments.len(), "body": text, "user": user(),
                        "html_url": format!("https://gitea.example.invalid/acme/app/issues/{number}#issuecomment-1"),
                        "issue_url": format!("https://gitea.example.invalid/acme/app/issues/{number}"),
                        "created_at": "2026-01-03T00:00:00Z", "updated_at": "2026-01-03T00:00:00Z"}),
                        ),
                        String::new(),
                    )
                }
                _ => (404, None, String::new()),
            };
            let (status, body, extra) = answer;
            let schema = response_schema(op, status);
            let text = match (&body, schema) {
                (Some(body), Some(schema)) => {
                    check(
                        &schema,
                        body,
                        &format!("{} {api_path} answer", request.method),
                    );
                    body.to_string()
                }
                (Some(_), None) => panic!(
                    "{} {api_path} declares no body for {status}",
                    request.method
                ),
                (None, _) => String::new(),
            };
            let reason = match status {
                200 => "OK",
                201 => "Created",
                204 => "No Content",
                403 => "Forbidden",
                _ => "Not Found",
            };
            use std::io::Write;
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    (base, repo)
}
