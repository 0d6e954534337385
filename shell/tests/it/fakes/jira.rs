//! A loopback fake of Jira Cloud's REST API v3 for the project `ENG`. Every request is
//! checked against Atlassian's OpenAPI description (`fixtures/jira/search-subset.json`): its
//! method and path must match a declared operation, each query parameter must be declared,
//! and every request body and every JSON body served is validated against the declared
//! schema; comment bodies must also be well-formed ADF. A violation panics the fake's thread,
//! so the request fails and the test with it.
//!
//! The search reads the JQL the adapter sends (`project = "ENG" AND status in (...)`) with a
//! small parser of JQL string literals; a status the site does not know is refused with a
//! 400, as Jira refuses it.

use std::net::TcpListener;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Value, json};

use crate::support;

pub(crate) const EMAIL: &str = "bot@example.invalid";
pub(crate) const TOKEN: &str = "jira_test_token_0123";
/// `Basic base64(EMAIL:TOKEN)`, worked out once by hand.
const BASIC: &str = "Basic Ym90QGV4YW1wbGUuaW52YWxpZDpqaXJhX3Rlc3RfdG9rZW5fMDEyMw==";
const SITE: &str = "https://acme.atlassian.net";

fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/jira/search-subset.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    })
}

/// The operation declared for `method` on `path`.
fn operation(method: &str, path: &str) -> &'static Value {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    for (template, operations) in spec()["paths"].as_object().unwrap() {
        let parts: Vec<&str> = template.trim_start_matches('/').split('/').collect();
        let matches = parts.len() == segments.len()
            && (parts.iter().zip(&segments)).all(|(t, s)| t.starts_with('{') || t == s);
        if matches && let Some(op) = operations.get(method.to_lowercase()) {
            return op;
        }
    }
    panic!("Jira declares no operation {method} {path}");
}

/// Validates `body` against `schema`, whose `$ref`s point into the description's components.
fn check(schema: &Value, body: &Value, what: &str) {
    let root = json!({"allOf": [schema], "components": spec()["components"]});
    let validator = jsonschema::validator_for(&root).unwrap();
    if let Err(e) = validator.validate(body) {
        panic!(
            "the fake's {what} does not follow Jira's OpenAPI description at {}: {e}",
            e.instance_path()
        );
    }
}

/// Checks that `node` is an ADF document: `doc` version 1, known block and inline nodes, no
/// empty text node.
fn check_adf(node: &Value) {
    assert_eq!(node["type"], "doc", "ADF: {node}");
    assert_eq!(node["version"], 1, "ADF: {node}");
    fn walk(node: &Value) {
        let kind = node["type"].as_str().expect("ADF node without a type");
        match kind {
            "text" => {
                let text = node["text"].as_str().expect("ADF text without text");
                assert!(!text.is_empty(), "ADF forbids empty text nodes");
            }
            "hardBreak" => {}
            "paragraph" | "codeBlock" | "doc" => {
                for child in node["content"].as_array().into_iter().flatten() {
                    walk(child);
                }
            }
            other => panic!("ADF node {other} is not one the adapter should write"),
        }
    }
    walk(node);
}

/// A status: name, category key, id.
#[derive(Clone)]
pub(crate) struct Status {
    pub(crate) name: String,
    pub(crate) category: String,
}

fn status_json(status: &Status) -> Value {
    let id = status.name.len();
    json!({"id": id.to_string(), "name": status.name, "self": format!("{SITE}/rest/api/3/status/{id}"),
        "statusCategory": {"key": status.category, "name": status.category, "id": 2}})
}

/// One issue of the fake.
#[derive(Clone)]
pub(crate) struct JiraIssue {
    /// `ENG-<number>`, id `10000 + number`.
    pub(crate) number: u64,
    pub(crate) status: String,
    pub(crate) project: String,
    /// Numbers of the issues that block this one.
    pub(crate) blocked_by: Vec<u64>,
}

/// The fake's state.
pub(crate) struct Site {
    pub(crate) statuses: Vec<Status>,
    pub(crate) issues: Vec<JiraIssue>,
    /// Comments: (key, ADF body).
    pub(crate) comments: Vec<(String, Value)>,
    /// Transitions made: (key, transition id).
    pub(crate) transitions: Vec<(String, String)>,
    /// Ids the bulk fetch reports in `issueErrors`.
    pub(crate) bulk_errors: Vec<String>,
    /// Search pages that repeat their token (a broken server).
    pub(crate) repeat_token: bool,
    /// Requests served.
    pub(crate) requests: usize,
    /// JQL queries received.
    pub(crate) queries: Vec<String>,
}

impl Site {
    /// `count` issues of project ENG in `To Do`, and the statuses of Jira's default workflow.
    pub(crate) fn with(count: u64) -> Self {
        let status = |name: &str, category: &str| Status {
            name: name.to_owned(),
            category: category.to_owned(),
        };
        Self {
            statuses: vec![
                status("To Do", "new"),
                status("In Progress", "indeterminate"),
                status("In Review", "indeterminate"),
                status("Done", "done"),
            ],
            issues: (1..=count)
                .map(|number| JiraIssue {
                    number,
                    status: "To Do".to_owned(),
                    project: "ENG".to_owned(),
                    blocked_by: Vec::new(),
                })
                .collect(),
            comments: Vec::new(),
            transitions: Vec::new(),
            bulk_errors: Vec::new(),
            repeat_token: false,
            requests: 0,
            queries: Vec::new(),
        }
    }

    fn status(&self, name: &str) -> Status {
        (self.statuses.iter())
            .find(|s| s.name.eq_ignore_ascii_case(name))
            .cloned()
            .unwrap_or_else(|| panic!("no status {name}"))
    }

    fn issue(&self, key_or_id: &str) -> Option<&JiraIssue> {
        self.issues.iter().find(|i| {
            key_or_id == format!("{}-{}", i.project, i.number)
                || key_or_id == (10_000 + i.number).to_string()
                // An old key still answers after a move, as Jira's does.
                || key_or_id == format!("ENG-{}", i.number)
        })
    }

    fn issue_json(&self, issue: &JiraIssue) -> Value {
        let key = format!("{}-{}", issue.project, issue.number);
        let links: Vec<Value> = (issue.blocked_by.iter())
            .filter_map(|n| self.issues.iter().find(|i| i.number == *n))
            .map(|blocker| {
                json!({"id": format!("5{}", blocker.number), "type": {"id": "10000", "name": "Blocks",
                    "inward": "is blocked by", "outward": "blocks"},
                    "inwardIssue": {"id": (10_000 + blocker.number).to_string(),
                        "key": format!("{}-{}", blocker.project, blocker.number),
                        "self": format!("{SITE}/rest/api/3/issue/{}", 10_000 + blocker.number),
                        "fields": {"summary": format!("Issue {}", blocker.number),
                            "status": status_json(&self.status(&blocker.status))}}})
            })
            .collect();
        json!({
            "id": (10_000 + issue.number).to_string(), "key": key, "expand": "",
            "self": format!("{SITE}/rest/api/3/issue/{}", 10_000 + issue.number),
            "fields": {
                "summary": format!("Issue {}", issue.number),
                "description": {"type": "doc", "version": 1, "content": [{"type": "paragraph",
                    "content": [{"type": "text", "text": format!("Body of issue {}.", issue.number)}]}]},
                "status": status_json(&self.status(&issue.status)),
                "priority": {"name": "Medium", "id": "3"},
                "labels": ["backend"],
                "assignee": null,
                "created": "2026-01-01T00:00:00.000+0000",
                "updated": "2026-01-02T00:00:00.000+0000",
                "issuelinks": links,
                "project": {"id": "10000", "key": issue.project, "name": "Engineering"}
            }
        })
    }
}

/// The string literals of a JQL query, in order (`"a\"b"` reads `a"b`).
fn jql_literals(jql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = jql.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut text = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => text.push('\n'),
                    Some(other) => text.push(other),
                    None => break,
                },
                '"' => break,
                c => text.push(c),
            }
        }
        out.push(text);
    }
    out
}

/// Starts the fake: the site URL (give it as `tracker.provider.base_url`) and its state.
pub(crate) fn fake(site: Site) -> (String, Arc<Mutex<Site>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let site = Arc::new(Mutex::new(site));
    let shared = Arc::clone(&site);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let Some(request) = support::read_request(&stream) else {
                continue;
            };
            let mut site = shared.lock().unwrap();
            site.requests += 1;
            let (path, query) = request.path.split_once('?').unwrap_or((&request.path, ""));
            let op = operation(&request.method, path);
            for kv in query.split('&').filter(|kv| !kv.is_empty()) {
                let name = kv.split_once('=').map_or(kv, |(k, _)| k);
                let declared = (op["parameters"].as_array().into_iter().flatten())
                    .any(|p| p["in"] == "query" && p["name"] == name);
                assert!(
                    declared,
                    "query parameter {name} is not declared for {path}"
                );
            }
            let body: Value = if request.body.is_empty() {
                Value::Null
            } else {
                let body = serde_json::from_slice(&request.body).expect("a JSON body");
                let schema = &op["requestBody"]["content"]["application/json"]["schema"];
                assert!(!schema.is_null(), "{path} takes no body");
                check(schema, &body, "request body");
                body
            };
            if request.header("authorization") != Some(BASIC) {
                support::respond(
                    stream,
                    "401 Unauthorized",
                    "application/json",
                    r#"{"errorMessages":["You are not authenticated."],"errors":{}}"#,
                );
                continue;
            }
            let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            let (status, answer): (u16, Option<Value>) = match (
                request.method.as_str(),
                &segments[3..],
            ) {
                ("GET", ["myself"]) => (
                    200,
                    Some(
                        json!({"accountId": "5b10a2844c20165700ede21g", "accountType": "atlassian",
                        "active": true, "displayName": "Symphony Bot", "emailAddress": EMAIL,
                        "self": format!("{SITE}/rest/api/3/user?accountId=5b10a2844c20165700ede21g")}),
                    ),
                ),
                ("GET", ["project", "ENG"]) => (
                    200,
                    Some(json!({"id": "10000", "key": "ENG", "name": "Engineering",
                        "self": format!("{SITE}/rest/api/3/project/10000"), "projectTypeKey": "software"})),
                ),
                ("GET", ["project", "ENG", "statuses"]) => (
                    200,
                    Some(json!([{"id": "3", "name": "Task", "subtask": false,
                        "self": format!("{SITE}/rest/api/3/issueType/3"),
                        "statuses": site.statuses.iter().map(status_json).collect::<Vec<_>>()}])),
                ),
                ("GET", ["project", _]) | ("GET", ["project", _, "statuses"]) => (404, None),
                ("POST", ["search", "jql"]) => {
                    let jql = body["jql"].as_str().unwrap().to_owned();
                    site.queries.push(jql.clone());
                    assert!(jql.starts_with("project = \""), "JQL: {jql}");
                    assert!(jql.ends_with(" ORDER BY created ASC"), "JQL: {jql}");
                    let literals = jql_literals(&jql);
                    let (project, states) = literals.split_first().unwrap();
                    let unknown = (states.iter())
                        .find(|s| !site.statuses.iter().any(|k| k.name.eq_ignore_ascii_case(s)));
                    if let Some(unknown) = unknown {
                        let message =
                            format!("The value '{unknown}' does not exist for the field 'status'.");
                        (400, Some(json!({"errorMessages": [message], "errors": {}})))
                    } else {
                        let size = body["maxResults"].as_u64().unwrap_or(50) as usize;
                        let start: usize = (body["nextPageToken"].as_str())
                            .map(|t| t.trim_start_matches("offset-").parse().unwrap())
                            .unwrap_or(0);
                        let matching: Vec<Value> = (site.issues.iter())
                            .filter(|i| &i.project == project)
                            .filter(|i| states.iter().any(|s| s.eq_ignore_ascii_case(&i.status)))
                            .map(|i| site.issue_json(i))
                            .collect();
                        let page: Vec<Value> =
                            matching.iter().skip(start).take(size).cloned().collect();
                        let more = start + size < matching.len();
                        let mut answer = json!({"issues": page, "isLast": !more});
                        if more {
                            let next = if site.repeat_token {
                                start
                            } else {
                                start + size
                            };
                            answer["nextPageToken"] = json!(format!("offset-{next}"));
                        }
                        (200, Some(answer))
                    }
                }
                ("POST", ["issue", "bulkfetch"]) => {
                    let wanted = body["issueIdsOrKeys"].as_array().unwrap();
                    assert!(wanted.len() <= 100, "bulk fetch takes at most 100 ids");
                    let mut issues = Vec::new();
                    let mut errors = Vec::new();
                    for id in wanted.iter().filter_map(Value::as_str) {
                        if site.bulk_errors.iter().any(|e| e == id) {
                            errors.push(json!({"id": id, "errorMessage": "Request timed out"}));
                        } else if let Some(issue) = site.issue(id) {
                            issues.push(site.issue_json(issue));
                        }
                    }
                    (200, Some(json!({"issues": issues, "issueErrors": errors})))
                }
                ("GET", ["issue", key]) => match site.issue(key) {
                    Some(issue) => (200, Some(site.issue_json(issue))),
                    None => (404, None),
                },
                ("GET", ["issue", key, "transitions"]) => match site.issue(key) {
                    Some(issue) => {
                        // Jira's default workflow: every status reachable from every other.
                        let transitions: Vec<Value> = (site.statuses.iter())
                            .enumerate()
                            .filter(|(_, s)| s.name != issue.status)
                            .map(|(i, s)| json!({"id": format!("{}1", i + 1), "name": format!("Move to {}", s.name),
                                "to": status_json(s), "hasScreen": false, "isAvailable": true}))
                            .collect();
                        (200, Some(json!({"transitions": transitions})))
                    }
                    None => (404, None),
                },
                ("POST", ["issue", key, "transitions"]) => {
                    let id = body["transition"]["id"].as_str().unwrap().to_owned();
                    let index: usize = id.trim_end_matches('1').parse().unwrap();
                    let target = site.statuses[index - 1].name.clone();
                    let key = (*key).to_owned();
                    match site
                        .issues
                        .iter_mut()
                        .find(|i| key == format!("{}-{}", i.project, i.number))
                    {
                        Some(issue) => {
                            issue.status = target;
                            site.transitions.push((key, id));
                            (204, None)
                        }
                        None => (404, None),
                    }
                }
                ("POST", ["issue", key, "comment"]) => {
                    check_adf(&body["body"]);
                    if site.issue(key).is_none() {
                        (404, None)
                    } else {
                        site.comments
                            .push(((*key).to_owned(), body["body"].clone()));
                        let id = site.comments.len();
                        (
                            201,
                            Some(json!({"id": id.to_string(), "body": body["body"],
                            "self": format!("{SITE}/rest/api/3/issue/{key}/comment/{id}"),
                            "created": "2026-01-03T00:00:00.000+0000"})),
                        )
                    }
                }
                _ => panic!("the fake has no answer for {} {path}", request.method),
            };
            let declared = &op["responses"][status.to_string()];
            assert!(
                !declared.is_null(),
                "{path}: status {status} is not declared"
            );
            let text = match &answer {
                Some(answer) if status < 300 => {
                    let schema = &declared["content"]["application/json"]["schema"];
                    check(schema, answer, &format!("{} {path} answer", request.method));
                    answer.to_string()
                }
                Some(answer) => answer.to_string(),
                None => String::new(),
            };
            let reason = match status {
                200 => "OK",
                201 => "Created",
                204 => "No Content",
                400 => "Bad Request",
                _ => "Not Found",
            };
            use std::io::Write;
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    (base, site)
}
