//! The GitHub adapter against a loopback fake of GitHub's REST API (`fakes/github.rs`), whose
//! every body validates against GitHub's published contract.

use crate::github_fake;
use crate::support;

use github_fake::{Repo, TOKEN, fake, gh_issue, schemas};
use serde_json::{Value, json};
use symphony::tracker::github::GithubSettings;
use symphony::tracker::{GithubTracker, Probe, Tracker};
use symphony::workflow::{MapEnv, Overrides, parse};
use symphony_core::{IssueId, TrackerErrorCategory};

fn tracker(api_url: &str, token: &str) -> GithubTracker {
    tracker_with(api_url, token, "repo: acme/app")
}

/// A tracker for the fake at `api_url`; `extra` is more `tracker.provider` YAML.
fn tracker_with(api_url: &str, token: &str, extra: &str) -> GithubTracker {
    let env = MapEnv::new([("GITHUB_TOKEN", token)]);
    let text = format!(
        "---\ntracker:\n  kind: github\n  provider:\n    api_url: {api_url}\n    {extra}\n---\n"
    );
    let workflow = parse(
        &text,
        std::path::Path::new("/w/WORKFLOW.md"),
        &env,
        &Overrides::default(),
    )
    .unwrap();
    tracker_of(&workflow)
}

/// The tracker a loaded workflow builds.
fn tracker_of(workflow: &symphony::workflow::Workflow) -> GithubTracker {
    let tracker = &workflow.config.tracker;
    let settings = tracker.provider.get::<GithubSettings>();
    let states: Vec<String> = (tracker.active_states.iter())
        .chain(&tracker.terminal_states)
        .chain(&tracker.inactive_states)
        .cloned()
        .collect();
    GithubTracker::new(settings.expect("github settings"), &states).unwrap()
}

/// The `Todo` issues, read by a tracker with the open-PR claim skip on.
async fn todo_with_claim_skip(api: &str) -> Vec<symphony_core::Issue> {
    tracker_with(
        api,
        TOKEN,
        "repo: acme/app\n    skip_issues_with_open_pull_requests: true",
    )
    .fetch_by_states(&states(&["Todo"]))
    .await
    .unwrap()
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
    assert_eq!(t.rate_limit(), None, "nothing known before an answer");
    let issues = t
        .fetch_by_states(&states(&["Todo", "In Progress"]))
        .await
        .unwrap();
    // The headroom GitHub reports with every answer is kept, for /metrics.
    assert_eq!(
        t.rate_limit(),
        Some(symphony::tracker::RateLimit {
            remaining: 4987,
            limit: Some(5000)
        })
    );
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
    assert_eq!(err.category, TrackerErrorCategory::TrackerAuth);
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
    let (api, fake_repo) = fake(repo_with(2));
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
        // The URL library decodes these and normalises afterwards: they must never leave.
        "/repos/acme/app/%2e%2e/%2e%2e/%2e%2e/user/repos",
        "/repos/acme/app/%2E%2E/other-repo/contents/secret.txt",
        "/repos/acme/app/%2e%2e%2fother/x",
        "/repos/acme/app\\..\\other",
    ] {
        let before = fake_repo.lock().unwrap().requests;
        let err = t
            .call_tool("github_api", &json!({"method": "GET", "path": path}))
            .unwrap()
            .await
            .unwrap_err();
        assert!(
            err.contains("only paths under /repos/acme/app"),
            "{path}: {err}"
        );
        assert_eq!(
            fake_repo.lock().unwrap().requests,
            before,
            "{path}: nothing may reach the API"
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

#[tokio::test]
async fn open_pull_requests_that_close_an_issue_make_it_undispatchable() {
    let mut repo = repo_with(3);
    let mut pull = gh_issue(40, "open", &[], true);
    pull["title"] = json!("Add the thing");
    pull["body"] = json!("Implements the thing.\n\nCloses #2");
    repo.issues.push(pull);
    let mut merged = gh_issue(41, "closed", &[], true);
    merged["body"] = json!("Fixes #3");
    repo.issues.push(merged);
    let (api, fake_repo) = fake(repo);

    let issues = todo_with_claim_skip(&api).await;
    let dispatchable: Vec<(&str, bool)> = issues
        .iter()
        .map(|i| (i.identifier.as_str(), i.dispatchable))
        .collect();
    assert_eq!(
        dispatchable,
        [("GH-1", true), ("GH-2", false), ("GH-3", true)],
        "only the open PR's claim counts; a closed PR claims nothing"
    );
    assert_eq!(
        fake_repo.lock().unwrap().requests,
        1,
        "pull requests come in the same listing: no extra request"
    );

    let plain = tracker(&api, TOKEN);
    let issues = plain.fetch_by_states(&states(&["Todo"])).await.unwrap();
    assert!(
        issues.iter().all(|i| i.dispatchable),
        "off by default: the claim is ignored"
    );
}

#[tokio::test]
async fn hostile_pull_request_text_is_parsed_without_a_panic() {
    let mut repo = repo_with(2);
    let mut pull = gh_issue(50, "open", &[], true);
    // A cut at the repository's length from the end fell inside a multi-byte character.
    pull["body"] = json!("fixes https://€€€€€/issues/1 and closes https://x/ééacme/app/issues/2");
    pull["title"] = json!("RESOLVES KKKK#1");
    repo.issues.push(pull);
    let (api, _) = fake(repo);
    let issues = todo_with_claim_skip(&api).await;
    assert!(
        issues.iter().all(|i| i.dispatchable),
        "none of those texts names an issue of acme/app"
    );
}

#[tokio::test]
async fn the_probe_finds_the_repository_and_its_state_labels() {
    let mut repo = repo_with(2);
    repo.labels.push("state:Review".into());
    let (api, _) = fake(repo);
    let probe = tracker(&api, TOKEN).probe().await.unwrap();
    assert_eq!(
        probe,
        Probe {
            scope: "repository acme/app".into(),
            states: Some(states(&["Open", "Closed", "Review", "Todo", "In Progress"])),
            remarks: Vec::new(),
        }
    );

    let err = tracker_with(&api, TOKEN, "repo: acme/nope")
        .probe()
        .await
        .unwrap_err();
    assert!(
        err.message.contains("no repository acme/nope")
            && err.message.contains("tracker.provider.repo"),
        "{}",
        err.message
    );
    let err = tracker(&api, "wrong").probe().await.unwrap_err();
    assert!(err.message.contains("401"), "{}", err.message);
}

/// A server that answers every request with a 200 carrying `body` as JSON.
fn canned_json(body: &str) -> String {
    canned(Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_boxed_str(),
    ))
}

/// A server that answers every request with the same raw HTTP response.
fn canned(response: &'static str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            if support::read_request(&stream).is_some() {
                use std::io::Write;
                let _ = stream.write_all(response.as_bytes());
            }
        }
    });
    base
}

#[tokio::test]
async fn every_failure_is_a_typed_error_and_none_panics() {
    let cases: [(&str, &'static str, TrackerErrorCategory, &str); 7] = [
        (
            "500",
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
            TrackerErrorCategory::TrackerStatus,
            "HTTP 500",
        ),
        (
            "502 with HTML",
            "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: 37\r\nConnection: close\r\n\r\n<html><body>bad gateway</body></html>",
            TrackerErrorCategory::TrackerStatus,
            "HTTP 502",
        ),
        (
            "truncated JSON",
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 14\r\nConnection: close\r\n\r\n[{\"number\": 1,",
            TrackerErrorCategory::TrackerResponse,
            "not JSON",
        ),
        (
            "an object where a list belongs",
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
            TrackerErrorCategory::TrackerResponse,
            "not an array",
        ),
        (
            "429 with Retry-After",
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 30\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
            TrackerErrorCategory::TrackerRateLimited,
            "retry after 30 s",
        ),
        (
            "403 with the rate limit used up",
            "HTTP/1.1 403 Forbidden\r\nX-RateLimit-Remaining: 0\r\nX-RateLimit-Reset: 1767225600\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
            TrackerErrorCategory::TrackerRateLimited,
            "resets at epoch 1767225600",
        ),
        (
            "403 for a token without access",
            "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
            TrackerErrorCategory::TrackerAuth,
            "HTTP 403",
        ),
    ];
    for (what, response, category, text) in cases {
        let api = canned(response);
        let err = tracker(&api, TOKEN)
            .fetch_by_states(&states(&["Todo"]))
            .await
            .unwrap_err();
        assert_eq!(err.category, category, "{what}: {}", err.message);
        assert!(err.message.contains(text), "{what}: {}", err.message);
    }

    // Nothing listening: a request error.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let api = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let err = tracker(&api, TOKEN)
        .fetch_by_states(&states(&["Todo"]))
        .await
        .unwrap_err();
    assert_eq!(err.category, TrackerErrorCategory::TrackerRequest);
}

#[tokio::test]
async fn a_hung_endpoint_times_out_as_a_request_error() {
    // Accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let held = std::thread::spawn(move || {
        let connections: Vec<_> = listener.incoming().take(1).collect();
        std::thread::park_timeout(std::time::Duration::from_secs(10));
        drop(connections);
    });
    let t = tracker_with(&api, TOKEN, "repo: acme/app\n    timeout_ms: 300");
    let started = std::time::Instant::now();
    let err = t.fetch_by_states(&states(&["Todo"])).await.unwrap_err();
    assert_eq!(err.category, TrackerErrorCategory::TrackerRequest);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "bounded by timeout_ms"
    );
    held.thread().unpark();
}

#[tokio::test]
async fn records_missing_required_fields_are_skipped_when_listing_and_fail_a_refresh() {
    let mut broken = gh_issue(2, "open", &["state:Todo"], false);
    broken.as_object_mut().unwrap().remove("title");
    let good = gh_issue(1, "open", &["state:Todo"], false);
    let api = canned_json(&Value::Array(vec![good, broken.clone()]).to_string());
    let issues = tracker(&api, TOKEN)
        .fetch_by_states(&states(&["Todo"]))
        .await
        .unwrap();
    let ids: Vec<&str> = issues.iter().map(|i| i.identifier.as_str()).collect();
    assert_eq!(ids, ["GH-1"], "the record without a title is left out");

    let api = canned_json(&broken.to_string());
    let err = tracker(&api, TOKEN)
        .fetch_by_ids(&[IssueId("2".into())])
        .await
        .unwrap_err();
    assert_eq!(err.category, TrackerErrorCategory::TrackerResponse);
    assert!(err.message.contains("issue 2"), "{}", err.message);
}

/// A server that answers with an endless JSON body (no length, closed never): the adapter
/// stops reading at its cap. Another declares 1 GiB up front: refused before reading.
#[tokio::test]
async fn oversized_response_bodies_are_refused_not_read_whole() {
    let endless = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                if support::read_request(&stream).is_some() {
                    use std::io::Write;
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n[",
                    );
                    let chunk = vec![b' '; 1 << 20];
                    while stream.write_all(&chunk).is_ok() {}
                }
            }
        });
        base
    };
    let err = tracker(&endless, TOKEN)
        .fetch_by_states(&states(&["Todo"]))
        .await
        .unwrap_err();
    assert_eq!(err.category, TrackerErrorCategory::TrackerResponse);
    assert!(
        err.message.contains("more than the 16777216 read"),
        "{}",
        err.message
    );

    let declared = canned(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\nConnection: close\r\n\r\n[",
    );
    let err = tracker(&declared, TOKEN)
        .fetch_by_states(&states(&["Todo"]))
        .await
        .unwrap_err();
    assert!(
        err.message.contains("a body of 1073741824 bytes"),
        "{}",
        err.message
    );
}

/// aiops-platform's GitHub workflows name labels as states (`aiops:ready`), and with their
/// top-level `repo` block that is what they mean here: the first configured state an issue
/// carries as a label is its state; a closed issue is `Closed` whatever its labels; a move
/// swaps state labels and refuses a state the workflow does not name.
#[tokio::test]
async fn aiops_workflows_read_whole_label_names_as_states() {
    let (api, repo) = fake(Repo {
        issues: vec![
            gh_issue(1, "open", &["bug", "aiops:ready"], false),
            gh_issue(2, "open", &["AIOPS:Human-Review", "aiops:ready"], false),
            gh_issue(3, "open", &["bug"], false),
            gh_issue(4, "closed", &["aiops:ready"], false),
        ],
        ..Repo::default()
    });
    let text = format!(
        "---\nrepo:\n  owner: acme\n  name: app\ntracker:\n  kind: github\n  api_key: $GITHUB_TOKEN\n  endpoint: {api}\n  active_states: [aiops:ready]\n  terminal_states: [closed]\n  inactive_states: [aiops:human-review]\n---\n"
    );
    let env = MapEnv::new([("GITHUB_TOKEN", TOKEN)]);
    let workflow = parse(
        &text,
        std::path::Path::new("/w/WORKFLOW.md"),
        &env,
        &Overrides::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        (workflow.warnings.iter()).any(|w| w.message.contains("label names are the states")),
        "{:?}",
        workflow.warnings
    );
    let t = tracker_of(&workflow);
    let ready = t.fetch_by_states(&states(&["aiops:ready"])).await.unwrap();
    let ids: Vec<&str> = ready.iter().map(|i| i.identifier.as_str()).collect();
    assert_eq!(
        ids,
        ["GH-1", "GH-2"],
        "GH-2 carries two state labels: the first configured (active) one counts"
    );
    let all = t
        .fetch_by_ids(&["1", "2", "3", "4"].map(|n| IssueId(n.into())))
        .await
        .unwrap();
    let seen: Vec<(&str, &str)> = all
        .iter()
        .map(|i| (i.identifier.as_str(), i.state.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("GH-1", "aiops:ready"),
            ("GH-2", "aiops:ready"),
            ("GH-3", "Open"),
            ("GH-4", "Closed")
        ]
    );
    t.set_state("GH-1", "AIOPS:HUMAN-REVIEW").await.unwrap();
    let moved = &t.fetch_by_ids(&[IssueId("1".into())]).await.unwrap()[0];
    assert_eq!(moved.state, "aiops:human-review");
    assert_eq!(
        moved.labels,
        ["bug", "aiops:human-review"],
        "the state label swapped, others kept"
    );
    let err = t.set_state("GH-1", "aiops:done").await.unwrap_err();
    assert!(
        err.message.contains("not one of the states"),
        "{}",
        err.message
    );
    assert_eq!(
        repo.lock().unwrap().issues[0]["labels"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}
