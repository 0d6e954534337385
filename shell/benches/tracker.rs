//! Tracker adapters: 1,000 Linear candidates over pagination from a loopback fake (target
//! <= 200 ms end to end) and the normalisation rate (target >= 100,000 issues/s); 1,000 open
//! Gitea issues over 20 pages to candidates (target <= 200 ms), with and without the
//! dependency reads of issues in Todo; 1,000 Jira candidates over 20 search pages and 1,000
//! GitLab candidates over 10 pages (targets <= 200 ms). Figures in `docs/performance.md`.

// The bench serves its fake from the tests' HTTP helper and uses nothing else there.
#[allow(dead_code)]
#[path = "../tests/it/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::net::TcpListener;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use symphony::tracker::linear::LinearSettings;
use symphony::tracker::{LinearTracker, Tracker};
use symphony::workflow::{MapEnv, Overrides, parse};

fn node(n: usize) -> Value {
    json!({
        "id": format!("uuid-{n}"), "identifier": format!("ENG-{n}"), "title": format!("Issue {n}"),
        "description": "Steps to reproduce, expected and actual behaviour. ".repeat(8),
        "priority": (n % 5) as f64, "branchName": format!("eng-{n}"),
        "url": format!("https://linear.app/acme/issue/ENG-{n}"),
        "createdAt": "2026-01-02T03:04:05.000Z", "updatedAt": "2026-01-03T03:04:05.000Z",
        "state": {"name": "Todo"}, "assignee": {"id": "user-1"}, "team": {"key": "ENG"},
        "labels": {"nodes": [{"name": "Backend"}, {"name": "Bug"}]},
        "inverseRelations": {"nodes": [{"type": "blocks",
            "issue": {"id": "uuid-0", "identifier": "ENG-0", "state": {"name": "Done"}}}]}
    })
}

/// A fake Linear serving `count` issues in pages of 50 (cursor = offset).
fn fake(count: usize) -> String {
    let nodes: Vec<Value> = (1..=count).map(node).collect();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}/graphql", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let Some(request) = support::read_request(&stream) else {
                continue;
            };
            let payload: Value = serde_json::from_slice(&request.body).unwrap_or_default();
            let start: usize = payload["variables"]["after"]
                .as_str()
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            let page: Vec<&Value> = nodes.iter().skip(start).take(50).collect();
            let next = start + page.len();
            let body = json!({"data": {"issues": {"nodes": page,
                "pageInfo": {"hasNextPage": next < nodes.len(), "endCursor": next.to_string()}}}});
            support::respond(stream, "200 OK", "application/json", &body.to_string());
        }
    });
    endpoint
}

fn tracker(endpoint: &str) -> LinearTracker {
    let env = MapEnv::new([("LINEAR_API_KEY", "lin_api_bench")]);
    let text = format!(
        "---\ntracker:\n  kind: linear\n  provider:\n    endpoint: {endpoint}\n    project_slug: p\n---\n"
    );
    let workflow = parse(
        &text,
        std::path::Path::new("/w/WORKFLOW.md"),
        &env,
        &Overrides::default(),
    )
    .unwrap();
    let settings = workflow.config.tracker.provider.get::<LinearSettings>();
    let settings = settings.expect("linear settings");
    LinearTracker::new(settings, &workflow.config.tracker.terminal_states).unwrap()
}

fn linear(c: &mut Criterion) {
    let endpoint = fake(1_000);
    let t = tracker(&endpoint);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let states = vec!["Todo".to_owned(), "In Progress".to_owned()];
    assert_eq!(
        runtime.block_on(t.fetch_by_states(&states)).unwrap().len(),
        1_000
    );

    let mut group = c.benchmark_group("linear");
    group.sample_size(20);
    group.throughput(Throughput::Elements(1_000));
    group.bench_function("1000_candidates_20_pages", |b| {
        b.iter(|| black_box(runtime.block_on(t.fetch_by_states(&states)).unwrap()));
    });
    let nodes: Vec<Value> = (1..=10_000).map(node).collect();
    group.throughput(Throughput::Elements(nodes.len() as u64));
    group.bench_function("normalize_10000", |b| {
        b.iter(|| {
            for n in &nodes {
                black_box(t.normalize(n));
            }
        });
    });
    group.finish();
}

/// Gitea's issue shape, as much as the adapter reads.
fn gitea_issue(n: usize, label: &str) -> Value {
    json!({
        "id": 1000 + n, "number": n, "title": format!("Issue {n}"),
        "body": "Steps to reproduce, expected and actual behaviour. ".repeat(8),
        "state": "open", "labels": [{"id": 1, "name": label}, {"id": 9, "name": "bug"}],
        "html_url": format!("https://gitea.example.invalid/acme/app/issues/{n}"),
        "created_at": "2026-01-02T03:04:05Z", "updated_at": "2026-01-03T03:04:05Z",
        "user": {"id": 1, "login": "someone"}, "assignees": [],
        "repository": {"id": 1, "name": "app", "full_name": "acme/app", "owner": "acme"}
    })
}

/// A fake Gitea serving `count` open issues labelled `label`, 50 per page with `Link`
/// headers, and no dependencies.
fn gitea_fake(count: usize, label: &'static str) -> String {
    let pages: Vec<String> = (0..count.div_ceil(50))
        .map(|p| {
            let items: Vec<Value> = (p * 50 + 1..=((p + 1) * 50).min(count))
                .map(|n| gitea_issue(n, label))
                .collect();
            Value::Array(items).to_string()
        })
        .collect();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let link_base = base.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let Some(request) = support::read_request(&stream) else {
                continue;
            };
            let (path, query) = request.path.split_once('?').unwrap_or((&request.path, ""));
            let body = if path.ends_with("/dependencies") {
                "[]".to_owned()
            } else {
                let page: usize = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("page="))
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(1);
                pages
                    .get(page - 1)
                    .cloned()
                    .unwrap_or_else(|| "[]".to_owned())
            };
            let link = if !path.ends_with("/dependencies") && query.contains("page=") {
                let page: usize = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("page="))
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(1);
                if page < pages.len() {
                    let next =
                        query.replace(&format!("page={page}"), &format!("page={}", page + 1));
                    format!("Link: <{link_base}{path}?{next}>; rel=\"next\"\r\n")
                } else {
                    String::new()
                }
            } else {
                String::new()
            };
            use std::io::Write;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{link}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    base
}

fn gitea_tracker(base: &str) -> Box<dyn Tracker> {
    let env = MapEnv::new([("GITEA_TOKEN", "gitea_bench_token")]);
    let text = format!(
        "---\ntracker:\n  kind: gitea\n  provider:\n    endpoint: {base}\n    repo: acme/app\n---\n"
    );
    let workflow = parse(
        &text,
        std::path::Path::new("/w/WORKFLOW.md"),
        &env,
        &Overrides::default(),
    )
    .unwrap();
    symphony::tracker::build(&workflow.config.tracker).unwrap()
}

fn gitea(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("gitea");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1_000));
    // In Progress: no dependency reads (the blocker rule applies to Todo only).
    let in_progress = gitea_tracker(&gitea_fake(1_000, "aiops/in-progress"));
    let states = vec!["In Progress".to_owned()];
    assert_eq!(
        runtime
            .block_on(in_progress.fetch_by_states(&states))
            .unwrap()
            .len(),
        1_000
    );
    group.bench_function("1000_candidates_20_pages", |b| {
        b.iter(|| {
            black_box(
                runtime
                    .block_on(in_progress.fetch_by_states(&states))
                    .unwrap(),
            )
        });
    });
    // Todo: one dependency listing per issue on top.
    let todo = gitea_tracker(&gitea_fake(1_000, "aiops/todo"));
    let states = vec!["Todo".to_owned()];
    assert_eq!(
        runtime
            .block_on(todo.fetch_by_states(&states))
            .unwrap()
            .len(),
        1_000
    );
    group.bench_function("1000_todo_candidates_with_dependencies", |b| {
        b.iter(|| black_box(runtime.block_on(todo.fetch_by_states(&states)).unwrap()));
    });
    group.finish();
}

/// A loopback server answering every request with `answer(path, body)`: extra header lines
/// and the JSON body.
fn serve(answer: impl Fn(&str, &[u8]) -> (String, String) + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let Some(request) = support::read_request(&stream) else {
                continue;
            };
            let (headers, body) = answer(&request.path, &request.body);
            use std::io::Write;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    base
}

/// A built tracker for `tracker_yaml` (the `tracker:` section), `env` its credentials.
fn built(tracker_yaml: &str, env: &[(&str, &str)]) -> Box<dyn Tracker> {
    let env = MapEnv::new(env.iter().copied());
    let text = format!("---\n{tracker_yaml}---\n");
    let path = std::path::Path::new("/w/WORKFLOW.md");
    let workflow = parse(&text, path, &env, &Overrides::default()).unwrap();
    symphony::tracker::build(&workflow.config.tracker).unwrap()
}

/// Times `fetch_by_states(states)` on `tracker`, after checking it finds 1,000 issues.
fn thousand(c: &mut Criterion, group: &str, name: &str, tracker: &dyn Tracker, states: &[&str]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let states: Vec<String> = states.iter().map(|s| (*s).to_owned()).collect();
    let found = runtime.block_on(tracker.fetch_by_states(&states)).unwrap();
    assert_eq!(found.len(), 1_000);
    let mut group = c.benchmark_group(group);
    group.sample_size(10);
    group.throughput(Throughput::Elements(1_000));
    group.bench_function(name, |b| {
        b.iter(|| black_box(runtime.block_on(tracker.fetch_by_states(&states)).unwrap()));
    });
    group.finish();
}

/// Jira's issue shape as the adapter asks for it: an ADF description, a `Blocks` link.
fn jira_issue(n: usize) -> Value {
    let paragraph = "Steps to reproduce, expected and actual behaviour. ".repeat(8);
    json!({"id": (10_000 + n).to_string(), "key": format!("ENG-{n}"),
        "self": format!("https://acme.atlassian.net/rest/api/3/issue/{}", 10_000 + n),
        "fields": {"summary": format!("Issue {n}"),
            "description": {"type": "doc", "version": 1, "content": [{"type": "paragraph",
                "content": [{"type": "text", "text": paragraph}]}]},
            "status": {"name": "In Progress", "statusCategory": {"key": "indeterminate"}},
            "priority": {"name": "High"}, "labels": ["backend", "bug"],
            "assignee": {"accountId": "abc"}, "created": "2026-01-02T03:04:05.000+0000",
            "updated": "2026-01-03T03:04:05.000+0000", "project": {"key": "ENG"},
            "issuelinks": [{"type": {"name": "Blocks"}, "inwardIssue": {"id": "1", "key": "ENG-0",
                "fields": {"status": {"name": "Done", "statusCategory": {"key": "done"}}}}}]}})
}

fn jira(c: &mut Criterion) {
    let pages: Vec<String> = (0..20)
        .map(|p| {
            let issues: Vec<Value> = (p * 50 + 1..=(p + 1) * 50).map(jira_issue).collect();
            let mut page = json!({"issues": issues, "isLast": p == 19});
            if p < 19 {
                page["nextPageToken"] = json!(format!("t{}", p + 1));
            }
            page.to_string()
        })
        .collect();
    let base = serve(move |path, body| {
        if path.ends_with("/statuses") {
            let statuses = json!([{"id": "3", "name": "Task", "subtask": false, "self": "x",
                "statuses": [{"name": "To Do"}, {"name": "In Progress"}, {"name": "Done"}]}]);
            return (String::new(), statuses.to_string());
        }
        let request: Value = serde_json::from_slice(body).unwrap_or_default();
        let page: usize = (request["nextPageToken"].as_str())
            .and_then(|t| t.trim_start_matches('t').parse().ok())
            .unwrap_or(0);
        (String::new(), pages[page].clone())
    });
    let tracker = built(
        &format!(
            "tracker:\n  kind: jira\n  provider:\n    base_url: {base}\n    email: a@b.invalid\n    \
             project_key: ENG\n"
        ),
        &[("JIRA_API_TOKEN", "jira_bench_token")],
    );
    thousand(
        c,
        "jira",
        "1000_candidates_20_pages",
        tracker.as_ref(),
        &["In Progress"],
    );
}

/// GitLab's issue shape, as much as the adapter reads.
fn gitlab_issue(n: usize) -> Value {
    json!({"id": 9000 + n, "iid": n, "project_id": 7, "title": format!("Issue {n}"),
        "description": "Steps to reproduce, expected and actual behaviour. ".repeat(8),
        "state": "opened", "labels": ["In Progress", "bug"], "assignees": [{"username": "ann"}],
        "web_url": format!("https://gitlab.example.com/acme/app/-/issues/{n}"),
        "created_at": "2026-01-02T03:04:05.000Z", "updated_at": "2026-01-03T03:04:05.000Z",
        "references": {"full": format!("acme/app#{n}")}})
}

fn gitlab(c: &mut Criterion) {
    let pages: Vec<String> = (0..10)
        .map(|p| {
            let issues: Vec<Value> = (p * 100 + 1..=(p + 1) * 100).map(gitlab_issue).collect();
            Value::Array(issues).to_string()
        })
        .collect();
    // `x-next-page` only, no `Link`: the adapter builds the next URL itself.
    let base = serve(move |path, _| {
        let page: usize = (path.split(['?', '&']))
            .find_map(|kv| kv.strip_prefix("page="))
            .and_then(|p| p.parse().ok())
            .unwrap_or(1);
        let next = if page < 10 {
            (page + 1).to_string()
        } else {
            String::new()
        };
        (
            format!("x-page: {page}\r\nx-next-page: {next}\r\n"),
            pages[page - 1].clone(),
        )
    });
    let tracker = built(
        &format!(
            "tracker:\n  kind: gitlab\n  inactive_states: [In Progress]\n  provider:\n    \
             endpoint: {base}/api/v4\n    project: acme/app\n"
        ),
        &[("GITLAB_TOKEN", "glpat-bench")],
    );
    thousand(
        c,
        "gitlab",
        "1000_candidates_10_pages",
        tracker.as_ref(),
        &["In Progress"],
    );
}

/// The local tracker over 1,000 issue files: a listing and a refresh of all of them, as a
/// poll tick with 1,000 running makes, with the parse cache warm (no file changed).
fn local(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    for n in 0..1_000 {
        let text =
            format!("---\ntitle: Bench {n}\nstate: Todo\nlabels: [backend]\n---\nBody {n}.\n");
        std::fs::write(dir.path().join(format!("B-{n}.md")), text).unwrap();
    }
    let tracker = symphony::tracker::LocalTracker::new(dir.path().to_owned(), vec!["Done".into()]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let states = vec!["Todo".to_owned()];
    let all = runtime.block_on(tracker.fetch_by_states(&states)).unwrap();
    assert_eq!(all.len(), 1_000);
    let ids: Vec<symphony_core::IssueId> = all.iter().map(|i| i.id.clone()).collect();
    let mut group = c.benchmark_group("local");
    group.sample_size(20);
    group.throughput(Throughput::Elements(1_000));
    group.bench_function("1000_files_listing_cached", |b| {
        b.iter(|| black_box(runtime.block_on(tracker.fetch_by_states(&states)).unwrap()));
    });
    group.bench_function("1000_files_refresh_cached", |b| {
        b.iter(|| black_box(runtime.block_on(tracker.fetch_by_ids(&ids)).unwrap()));
    });
    group.finish();
}

criterion_group!(benches, linear, gitea, jira, gitlab, local);
criterion_main!(benches);
