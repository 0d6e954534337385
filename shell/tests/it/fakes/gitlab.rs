//! A loopback fake of GitLab's REST API v4 for the project `acme/platform/app` (id 7), with
//! the shapes and headers GitLab's documentation gives (REST API: authentication,
//! pagination, rate limits; Issues API; Issue links API; Notes API; Merge requests API;
//! Labels API; Projects API). There is no machine-readable description of GitLab's API to
//! check against, so the fake checks what the documentation states: the `PRIVATE-TOKEN`
//! header, the project addressed by id or by URL-encoded path, only documented query
//! parameters and update attributes per endpoint, and `state_event` values. It answers with
//! the documented pagination headers (`x-page`, `x-per-page`, `x-next-page`, `x-prev-page`,
//! and `Link` unless switched off) and never with totals, as gitlab.com leaves them out of
//! large listings.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::support;

pub(crate) const TOKEN: &str = "glpat-test-token-0123";
const WEB: &str = "https://gitlab.example.com/acme/platform/app";

/// One issue: iid, open, labels.
#[derive(Clone)]
pub(crate) struct GlIssue {
    pub(crate) iid: u64,
    pub(crate) open: bool,
    pub(crate) labels: Vec<String>,
    /// Iids of the issues that block this one.
    pub(crate) blocked_by: Vec<u64>,
}

/// The fake's state.
pub(crate) struct Project {
    pub(crate) issues: Vec<GlIssue>,
    /// Labels defined in the project.
    pub(crate) labels: Vec<String>,
    /// Notes: (iid, body).
    pub(crate) notes: Vec<(u64, String)>,
    /// Open merge requests: (iid, title, description).
    pub(crate) merge_requests: Vec<(u64, String, String)>,
    /// Send `Link` headers (else only `x-next-page`).
    pub(crate) link_header: bool,
    /// Answer every issue-links listing with 500.
    pub(crate) links_fail: bool,
    /// Next pages point back at page 1 (a broken server).
    pub(crate) loop_pages: bool,
    /// Requests served.
    pub(crate) requests: usize,
    /// Issue listing queries received.
    pub(crate) listings: Vec<String>,
}

impl Project {
    /// Open issues with `labels` each, and the labels `Todo`, `In Progress`, `Human Review`,
    /// `Done`, `bug`.
    pub(crate) fn with(issues: &[(u64, &[&str])]) -> Self {
        Self {
            issues: (issues.iter())
                .map(|(iid, labels)| GlIssue {
                    iid: *iid,
                    open: true,
                    labels: labels.iter().map(|l| (*l).to_owned()).collect(),
                    blocked_by: Vec::new(),
                })
                .collect(),
            labels: ["Todo", "In Progress", "Human Review", "Done", "bug"]
                .map(String::from)
                .to_vec(),
            notes: Vec::new(),
            merge_requests: Vec::new(),
            link_header: true,
            links_fail: false,
            loop_pages: false,
            requests: 0,
            listings: Vec::new(),
        }
    }

    fn issue_json(&self, issue: &GlIssue) -> Value {
        let iid = issue.iid;
        json!({
            "id": 9000 + iid, "iid": iid, "project_id": 7, "title": format!("Issue {iid}"),
            "description": format!("Body of issue {iid}."),
            "state": if issue.open { "opened" } else { "closed" },
            "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-02T00:00:00.000Z",
            "closed_at": if issue.open { Value::Null } else { json!("2026-01-03T00:00:00.000Z") },
            "labels": issue.labels, "milestone": null, "assignees": [], "assignee": null,
            "author": {"id": 1, "username": "ann", "name": "Ann", "state": "active"},
            "type": "ISSUE", "issue_type": "issue", "user_notes_count": 0, "confidential": false,
            "discussion_locked": null, "web_url": format!("{WEB}/-/issues/{iid}"),
            "references": {"short": format!("#{iid}"), "relative": format!("#{iid}"),
                "full": format!("acme/platform/app#{iid}")},
            "_links": {"self": format!("https://gitlab.example.com/api/v4/projects/7/issues/{iid}")}
        })
    }
}

/// The documented query parameters the fake accepts per route (a subset of each list).
fn documented(route: &str) -> &'static [&'static str] {
    match route {
        "issues" => &[
            "state", "labels", "per_page", "page", "order_by", "sort", "search",
        ],
        "merge_requests" => &["state", "per_page", "page"],
        "labels" => &["per_page", "page", "with_counts"],
        _ => &[],
    }
}

/// The documented attributes of `PUT /projects/:id/issues/:issue_iid` the adapter may send.
const UPDATE_ATTRIBUTES: [&str; 6] = [
    "add_labels",
    "remove_labels",
    "labels",
    "state_event",
    "title",
    "description",
];

fn decode(text: &str) -> String {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// Starts the fake: the API base (`.../api/v4`) and its state.
pub(crate) fn fake(project: Project) -> (String, Arc<Mutex<Project>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let api = format!("{base}/api/v4");
    let project = Arc::new(Mutex::new(project));
    let shared = Arc::clone(&project);
    let link_base = base.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let Some(request) = support::read_request(&stream) else {
                continue;
            };
            let mut p = shared.lock().unwrap();
            p.requests += 1;
            let (path, query) = request.path.split_once('?').unwrap_or((&request.path, ""));
            let params: Vec<(String, String)> = (query.split('&'))
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (k.to_owned(), decode(v))
                })
                .collect();
            let param = |name: &str| {
                params
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            };
            if request.header("private-token") != Some(TOKEN) {
                support::respond(
                    stream,
                    "401 Unauthorized",
                    "application/json",
                    r#"{"message":"401 Unauthorized"}"#,
                );
                continue;
            }
            let rest = path
                .strip_prefix("/api/v4/projects/")
                .expect("requests go to /api/v4/projects/");
            let (id, rest) = rest.split_once('/').unwrap_or((rest, ""));
            if id != "7" && id != "acme%2Fplatform%2Fapp" {
                support::respond(
                    stream,
                    "404 Not Found",
                    "application/json",
                    r#"{"message":"404 Project Not Found"}"#,
                );
                continue;
            }
            let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
            let route = segments.first().copied().unwrap_or("");
            for (name, _) in &params {
                assert!(
                    documented(route).contains(&name.as_str()),
                    "query parameter {name} is not documented for /projects/:id/{route}"
                );
            }
            let page: usize = param("page").and_then(|p| p.parse().ok()).unwrap_or(1);
            let per_page: usize = param("per_page").and_then(|p| p.parse().ok()).unwrap_or(20);
            let paged = |items: Vec<Value>, p: &Project| -> (Value, String) {
                let total = items.len();
                let body: Vec<Value> = items
                    .into_iter()
                    .skip((page - 1) * per_page)
                    .take(per_page)
                    .collect();
                let more = page * per_page < total;
                let next = if p.loop_pages { 1 } else { page + 1 };
                let mut headers = format!(
                    "x-page: {page}\r\nx-per-page: {per_page}\r\nx-prev-page: {}\r\nx-next-page: {}\r\n",
                    if page > 1 {
                        (page - 1).to_string()
                    } else {
                        String::new()
                    },
                    if more {
                        next.to_string()
                    } else {
                        String::new()
                    }
                );
                if more && p.link_header {
                    let next_query: Vec<String> = (query.split('&'))
                        .map(|kv| {
                            if kv.starts_with("page=") {
                                format!("page={next}")
                            } else {
                                kv.to_owned()
                            }
                        })
                        .collect();
                    let next_query = next_query.join("&");
                    headers.push_str(&format!(
                        "Link: <{link_base}{path}?{next_query}>; rel=\"next\"\r\n"
                    ));
                }
                (Value::Array(body), headers)
            };
            let body: Value = if request.body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&request.body).expect("a JSON body")
            };
            let (status, answer, headers): (u16, Value, String) = match (
                request.method.as_str(),
                segments.as_slice(),
            ) {
                ("GET", []) => (
                    200,
                    json!({"id": 7, "name": "app", "path": "app",
                    "path_with_namespace": "acme/platform/app", "name_with_namespace": "Acme / Platform / app",
                    "web_url": WEB, "default_branch": "main", "issues_enabled": true, "visibility": "private"}),
                    String::new(),
                ),
                ("GET", ["labels"]) => {
                    let labels: Vec<Value> = (p.labels.iter().enumerate())
                        .map(|(i, name)| json!({"id": i + 1, "name": name, "color": "#428BCA",
                            "text_color": "#FFFFFF", "description": null, "priority": null, "is_project_label": true}))
                        .collect();
                    let (body, headers) = paged(labels, &p);
                    (200, body, headers)
                }
                ("GET", ["issues"]) => {
                    p.listings.push(query.to_owned());
                    let state = param("state").unwrap_or_else(|| "all".into());
                    // GitLab's `labels` wants every label listed.
                    let wanted: Vec<String> = (param("labels").into_iter())
                        .flat_map(|l| l.split(',').map(str::to_owned).collect::<Vec<_>>())
                        .collect();
                    let items: Vec<Value> = (p.issues.iter())
                        .filter(|i| state == "all" || (state == "opened") == i.open)
                        .filter(|i| {
                            wanted
                                .iter()
                                .all(|w| i.labels.iter().any(|l| l.eq_ignore_ascii_case(w)))
                        })
                        .map(|i| p.issue_json(i))
                        .collect();
                    let (body, headers) = paged(items, &p);
                    (200, body, headers)
                }
                ("GET", ["merge_requests"]) => {
                    assert_eq!(param("state").as_deref(), Some("opened"));
                    let items: Vec<Value> = (p.merge_requests.iter())
                        .map(|(iid, title, description)| json!({"id": 7000 + iid, "iid": iid, "project_id": 7,
                            "title": title, "description": description, "state": "opened",
                            "source_branch": format!("fix-{iid}"), "target_branch": "main", "draft": false,
                            "web_url": format!("{WEB}/-/merge_requests/{iid}")}))
                        .collect();
                    let (body, headers) = paged(items, &p);
                    (200, body, headers)
                }
                ("GET", ["issues", iid, "links"]) if p.links_fail => {
                    let _ = iid;
                    (
                        500,
                        json!({"message": "500 Internal Server Error"}),
                        String::new(),
                    )
                }
                ("GET", ["issues", iid, "links"]) => {
                    let iid: u64 = iid.parse().unwrap();
                    let blockers = (p.issues.iter())
                        .find(|i| i.iid == iid)
                        .map(|i| i.blocked_by.clone())
                        .unwrap_or_default();
                    let links: Vec<Value> = (p.issues.iter())
                        .filter(|i| blockers.contains(&i.iid))
                        .map(|i| {
                            let mut item = p.issue_json(i);
                            item["issue_link_id"] = json!(100 + i.iid);
                            item["link_type"] = json!("is_blocked_by");
                            item["link_created_at"] = json!("2026-01-01T00:00:00.000Z");
                            item
                        })
                        .collect();
                    (200, Value::Array(links), String::new())
                }
                ("GET", ["issues", iid]) => {
                    let iid: u64 = iid.parse().unwrap();
                    match p.issues.iter().find(|i| i.iid == iid) {
                        Some(issue) => (200, p.issue_json(issue), String::new()),
                        None => (404, json!({"message": "404 Not found"}), String::new()),
                    }
                }
                ("PUT", ["issues", iid]) => {
                    let iid: u64 = iid.parse().unwrap();
                    for key in body.as_object().unwrap().keys() {
                        assert!(
                            UPDATE_ATTRIBUTES.contains(&key.as_str()),
                            "{key} is not an issue attribute"
                        );
                    }
                    let split = |v: &Value| -> Vec<String> {
                        v.as_str()
                            .map(|s| s.split(',').map(str::to_owned).collect())
                            .unwrap_or_default()
                    };
                    match p.issues.iter_mut().find(|i| i.iid == iid) {
                        Some(issue) => {
                            match body["state_event"].as_str() {
                                Some("close") => issue.open = false,
                                Some("reopen") => issue.open = true,
                                Some(other) => panic!("state_event {other} is not close or reopen"),
                                None => {}
                            }
                            let remove = split(&body["remove_labels"]);
                            issue.labels.retain(|l| !remove.contains(l));
                            for label in split(&body["add_labels"]) {
                                if !issue.labels.contains(&label) {
                                    issue.labels.push(label);
                                }
                            }
                            let issue = issue.clone();
                            (200, p.issue_json(&issue), String::new())
                        }
                        None => (404, json!({"message": "404 Not found"}), String::new()),
                    }
                }
                ("POST", ["issues", iid, "notes"]) => {
                    let iid: u64 = iid.parse().unwrap();
                    let text = body["body"].as_str().expect("a note body").to_owned();
                    p.notes.push((iid, text.clone()));
                    (
                        201,
                        json!({"id": p.notes.len(), "body": text, "system": false, "noteable_type": "Issue",
                        "noteable_iid": iid, "author": {"id": 1, "username": "symphony-bot"},
                        "created_at": "2026-01-03T00:00:00.000Z", "updated_at": "2026-01-03T00:00:00.000Z"}),
                        String::new(),
                    )
                }
                _ => (404, json!({"message": "404 Not Found"}), String::new()),
            };
            let text = answer.to_string();
            let reason = match status {
                200 => "OK",
                201 => "Created",
                404 => "Not Found",
                _ => "Error",
            };
            use std::io::Write;
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nratelimit-limit: 2000\r\nratelimit-remaining: 1999\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    (api, project)
}
