//! The tracker contract: one checklist every remote adapter passes against its loopback fake,
//! built the way the daemon builds it (`tracker::build` from a parsed workflow). A new
//! adapter adds a [`Subject`] here and passes the same checks:
//!
//! - empty states or ids make no request;
//! - ids no longer visible are left out;
//! - pagination ends: a repeated cursor or page is an error, never a loop;
//! - 401 and 403 are `tracker_auth`, 429 is `tracker_rate_limited` with its retry time,
//!   5xx is `tracker_status`, a malformed body is `tracker_response`;
//! - provider tools act only inside their scope;
//! - no credential appears in any error or tool result, even when the server echoes it.
//!
//! Faults are injected by a small proxy in front of the fake, the same for every adapter.
//! The subjects: Linear, GitHub, Gitea, GitLab, Jira.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use symphony::tracker::Tracker;
use symphony::workflow::{MapEnv, Overrides, parse};
use symphony_core::{IssueId, TrackerErrorCategory};

use crate::{gitea_fake, github_fake, gitlab_fake, jira_fake, linear_fake, support};

/// What the proxy does with the next requests.
#[derive(Clone, Debug)]
enum Fault {
    /// Answer with this status and a JSON body.
    Status(u16),
    /// 429 with `Retry-After: 30`.
    RateLimited,
    /// 200 with a body cut off in the middle.
    Truncated,
    /// 200 with an error body that repeats the `Authorization` header it got.
    EchoCredential,
}

#[derive(Default)]
struct ProxyState {
    fault: Option<Fault>,
    /// Requests that reached the proxy.
    requests: usize,
}

/// A loopback HTTP proxy in front of a fake: forwards requests, or answers with a fault.
struct Proxy {
    base: String,
    state: Arc<Mutex<ProxyState>>,
}

impl Proxy {
    fn start(upstream: &str) -> Self {
        let upstream = upstream
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let Some(request) = support::read_request(&stream) else {
                    continue;
                };
                let fault = {
                    let mut state = shared.lock().unwrap();
                    state.requests += 1;
                    state.fault.clone()
                };
                match fault {
                    Some(fault) => answer_fault(stream, &fault, &request),
                    None => forward(stream, &upstream, &request),
                }
            }
        });
        Self { base, state }
    }

    fn fail_with(&self, fault: Option<Fault>) {
        self.state.lock().unwrap().fault = fault;
    }

    fn requests(&self) -> usize {
        self.state.lock().unwrap().requests
    }
}

fn answer_fault(mut stream: TcpStream, fault: &Fault, request: &support::HttpRequest) {
    let (status, extra, body) = match fault {
        Fault::Status(code) => (format!("{code} Fault"), String::new(), "{}".to_owned()),
        Fault::RateLimited => (
            "429 Too Many Requests".to_owned(),
            "Retry-After: 30\r\n".to_owned(),
            "{}".to_owned(),
        ),
        Fault::Truncated => (
            "200 OK".to_owned(),
            String::new(),
            "{\"data\": {\"issues\": [".to_owned(),
        ),
        Fault::EchoCredential => {
            let sent = request.header("authorization").unwrap_or_default();
            let text = format!("bad credentials: {sent}");
            let body = json!({"errors": [{"message": text}], "message": text, "data": null});
            ("200 OK".to_owned(), String::new(), body.to_string())
        }
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
}

fn forward(mut stream: TcpStream, upstream: &str, request: &support::HttpRequest) {
    let Ok(mut out) = TcpStream::connect(upstream) else {
        return;
    };
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {upstream}\r\n",
        request.method, request.path
    );
    for (name, value) in &request.headers {
        let skip = ["host", "content-length", "transfer-encoding", "connection"];
        if !skip.iter().any(|s| name.eq_ignore_ascii_case(s)) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        request.body.len()
    ));
    let _ = out.write_all(head.as_bytes());
    let _ = out.write_all(&request.body);
    let mut answer = Vec::new();
    let _ = out.read_to_end(&mut answer);
    let _ = stream.write_all(&answer);
}

/// A tracker over a fake behind a proxy, and what the checks need to know about it.
struct Started {
    tracker: Box<dyn Tracker>,
    proxy: Proxy,
    /// Requests the fake itself served.
    served: Box<dyn Fn() -> usize>,
    /// Ids of the issues created, in order.
    ids: Vec<IssueId>,
    /// Removes issue `n` (1-based) from the fake.
    remove: Box<dyn Fn(usize)>,
}

/// One adapter under the contract.
trait Subject {
    /// The credential the fake accepts.
    const SECRET: &'static str;
    /// The credential as it travels, when that is not [`Self::SECRET`] verbatim (Jira's
    /// Basic header carries it in base64).
    const WIRE: &'static str = Self::SECRET;
    /// The name of the state the fake's issues are in.
    const TODO: &'static str = "Todo";
    /// The identifier of issue 1, as a session working on it names it.
    const SESSION: &'static str;
    /// A tracker over a fake holding `count` issues in `Todo`.
    fn start(count: usize) -> Started;
    /// A tracker over a fake whose pages lead back to a page already read.
    fn looping() -> Box<dyn Tracker>;
    /// Provider tool calls that try to leave the tracker's scope, if the tool has a scope to
    /// leave (a tool with one fixed endpoint has none).
    fn escapes() -> Vec<(&'static str, Value)>;
}

/// Builds the tracker the daemon would from `tracker_yaml` (a `tracker:` section).
fn build(tracker_yaml: &str, env: &[(&str, &str)]) -> Box<dyn Tracker> {
    let text = format!("---\n{tracker_yaml}---\n");
    let env = MapEnv::new(env.iter().copied());
    let workflow = parse(
        &text,
        std::path::Path::new("/w/WORKFLOW.md"),
        &env,
        &Overrides::default(),
    )
    .unwrap();
    symphony::tracker::build(&workflow.config.tracker).unwrap()
}

struct Linear;

impl Subject for Linear {
    const SECRET: &'static str = linear_fake::KEY;
    const SESSION: &'static str = "ENG-1";

    fn start(count: usize) -> Started {
        let board = linear_fake::Board {
            issues: (1..=count)
                .map(|n| linear_fake::node(n, "Todo", "proj-1"))
                .collect(),
            ..linear_fake::Board::default()
        };
        let (endpoint, board) = linear_fake::fake(linear_fake::Fault::None, board);
        let proxy = Proxy::start(&endpoint);
        let tracker = build(
            &format!(
                "tracker:\n  kind: linear\n  provider:\n    endpoint: {}/graphql\n    \
                 project_slug: proj-1\n    timeout_ms: 5000\n",
                proxy.base
            ),
            &[("LINEAR_API_KEY", Self::SECRET)],
        );
        let served = Arc::clone(&board);
        Started {
            tracker,
            proxy,
            served: Box::new(move || served.lock().unwrap().requests),
            ids: (1..=count).map(|n| IssueId(format!("uuid-{n}"))).collect(),
            remove: Box::new(move |n| {
                let id = format!("uuid-{n}");
                board.lock().unwrap().issues.retain(|i| i["id"] != id);
            }),
        }
    }

    fn looping() -> Box<dyn Tracker> {
        let board = linear_fake::Board {
            issues: (1..=3)
                .map(|n| linear_fake::node(n, "Todo", "proj-1"))
                .collect(),
            ..linear_fake::Board::default()
        };
        let (endpoint, _) = linear_fake::fake(linear_fake::Fault::RepeatCursor, board);
        build(
            &format!(
                "tracker:\n  kind: linear\n  provider:\n    endpoint: {endpoint}\n    \
                 project_slug: proj-1\n"
            ),
            &[("LINEAR_API_KEY", Self::SECRET)],
        )
    }

    fn escapes() -> Vec<(&'static str, Value)> {
        // `linear_graphql` posts to the configured endpoint only; it takes no URL or path.
        Vec::new()
    }
}

struct Github;

impl Subject for Github {
    const SECRET: &'static str = github_fake::TOKEN;
    const SESSION: &'static str = "GH-1";

    fn start(count: usize) -> Started {
        let repo = github_fake::Repo {
            issues: (1..=count as u64)
                .map(|n| github_fake::gh_issue(n, "open", &["state:Todo"], false))
                .collect(),
            ..github_fake::Repo::default()
        };
        let (api, repo) = github_fake::fake(repo);
        let proxy = Proxy::start(&api);
        let tracker = build(
            &format!(
                "tracker:\n  kind: github\n  provider:\n    api_url: {}\n    repo: acme/app\n    \
                 timeout_ms: 5000\n",
                proxy.base
            ),
            &[("GITHUB_TOKEN", Self::SECRET)],
        );
        let served = Arc::clone(&repo);
        Started {
            tracker,
            proxy,
            served: Box::new(move || served.lock().unwrap().requests),
            ids: (1..=count).map(|n| IssueId(n.to_string())).collect(),
            remove: Box::new(move |n| {
                // Deleted, or moved out of the repository: the API no longer returns it.
                let number = n as u64;
                repo.lock()
                    .unwrap()
                    .issues
                    .retain(|i| i["number"] != number);
            }),
        }
    }

    fn looping() -> Box<dyn Tracker> {
        let base = looping_pages(|base, _, other| {
            format!("{base}/repos/acme/app/issues?state=open&per_page=100&page={other}")
        });
        build(
            &format!(
                "tracker:\n  kind: github\n  provider:\n    api_url: {base}\n    repo: acme/app\n"
            ),
            &[("GITHUB_TOKEN", Self::SECRET)],
        )
    }

    fn escapes() -> Vec<(&'static str, Value)> {
        vec![
            (
                "github_api",
                json!({"method": "GET", "path": "/repos/acme/other/issues"}),
            ),
            (
                "github_api",
                json!({"method": "GET", "path": "/repos/acme/app/%2e%2e/other"}),
            ),
            (
                "github_api",
                json!({"method": "GET", "path": "/user/repos"}),
            ),
        ]
    }
}

struct Gitea;

impl Subject for Gitea {
    const SECRET: &'static str = gitea_fake::TOKEN;
    const SESSION: &'static str = "GT-1";

    fn start(count: usize) -> Started {
        let issues: Vec<(u64, bool, &[&str])> = (1..=count as u64)
            .map(|n| (n, true, &["aiops/todo"][..]))
            .collect();
        let (base, repo) = gitea_fake::fake(gitea_fake::Repo::with(&issues));
        let proxy = Proxy::start(&base);
        let tracker = build(
            &format!(
                "tracker:\n  kind: gitea\n  provider:\n    endpoint: {}\n    repo: acme/app\n    \
                 timeout_ms: 5000\n",
                proxy.base
            ),
            &[("GITEA_TOKEN", Self::SECRET)],
        );
        let served = Arc::clone(&repo);
        Started {
            tracker,
            proxy,
            served: Box::new(move || served.lock().unwrap().requests),
            ids: (1..=count).map(|n| IssueId(n.to_string())).collect(),
            remove: Box::new(move |n| {
                let number = n as u64;
                repo.lock().unwrap().issues.retain(|(i, ..)| *i != number);
            }),
        }
    }

    fn looping() -> Box<dyn Tracker> {
        let base = looping_pages(|base, path, other| {
            format!("{base}{path}?state=open&type=issues&labels=aiops%2Ftodo&page={other}&limit=50")
        });
        build(
            &format!(
                "tracker:\n  kind: gitea\n  provider:\n    endpoint: {base}\n    repo: acme/app\n"
            ),
            &[("GITEA_TOKEN", Self::SECRET)],
        )
    }

    fn escapes() -> Vec<(&'static str, Value)> {
        // Another issue than the session's, in or out of the state set.
        vec![
            (
                "gitea_issue_labels",
                json!({"issue_number": 2, "labels": ["aiops/todo"]}),
            ),
            (
                "gitea_issue_labels",
                json!({"issue_number": 2, "labels": ["aiops/done"], "close_issue": true}),
            ),
        ]
    }
}

struct Gitlab;

impl Subject for Gitlab {
    const SECRET: &'static str = gitlab_fake::TOKEN;
    const SESSION: &'static str = "GL-1";

    fn start(count: usize) -> Started {
        let issues: Vec<(u64, &[&str])> = (1..=count as u64).map(|n| (n, &["Todo"][..])).collect();
        let (api, project) = gitlab_fake::fake(gitlab_fake::Project::with(&issues));
        let proxy = Proxy::start(&api);
        let tracker = build(
            &format!(
                "tracker:\n  kind: gitlab\n  provider:\n    endpoint: {}/api/v4\n    \
                 project: acme/platform/app\n    timeout_ms: 5000\n",
                proxy.base
            ),
            &[("GITLAB_TOKEN", Self::SECRET)],
        );
        let served = Arc::clone(&project);
        Started {
            tracker,
            proxy,
            served: Box::new(move || served.lock().unwrap().requests),
            ids: (1..=count).map(|n| IssueId(n.to_string())).collect(),
            remove: Box::new(move |n| {
                let iid = n as u64;
                project.lock().unwrap().issues.retain(|i| i.iid != iid);
            }),
        }
    }

    fn looping() -> Box<dyn Tracker> {
        let base = looping_pages(|base, path, other| {
            format!("{base}{path}?state=opened&labels=Todo&per_page=100&page={other}")
        });
        build(
            &format!(
                "tracker:\n  kind: gitlab\n  provider:\n    endpoint: {base}\n    project: acme/app\n"
            ),
            &[("GITLAB_TOKEN", Self::SECRET)],
        )
    }

    fn escapes() -> Vec<(&'static str, Value)> {
        [
            "/../8/issues",
            "/%2e%2e/8/issues",
            "/issues/1/../../../8",
            "//evil.example/x",
            "issues/1",
            "/issues/1%2f..%2f..%2f8",
        ]
        .into_iter()
        .map(|path| ("gitlab_api", json!({"method": "GET", "path": path})))
        .collect()
    }
}

struct Jira;

impl Subject for Jira {
    const SECRET: &'static str = jira_fake::TOKEN;
    const WIRE: &'static str = "Ym90QGV4YW1wbGUuaW52YWxpZDpqaXJhX3Rlc3RfdG9rZW5fMDEyMw==";
    const SESSION: &'static str = "ENG-1";
    const TODO: &'static str = "To Do";

    fn start(count: usize) -> Started {
        let (base, site) = jira_fake::fake(jira_fake::Site::with(count as u64));
        let proxy = Proxy::start(&base);
        let tracker = jira(&proxy.base, 50);
        let served = Arc::clone(&site);
        Started {
            tracker,
            proxy,
            served: Box::new(move || served.lock().unwrap().requests),
            ids: (1..=count)
                .map(|n| IssueId((10_000 + n).to_string()))
                .collect(),
            remove: Box::new(move |n| {
                let number = n as u64;
                site.lock().unwrap().issues.retain(|i| i.number != number);
            }),
        }
    }

    fn looping() -> Box<dyn Tracker> {
        let mut site = jira_fake::Site::with(3);
        site.repeat_token = true;
        let (base, _) = jira_fake::fake(site);
        jira(&base, 1)
    }

    fn escapes() -> Vec<(&'static str, Value)> {
        [
            "/rest/api/3/project/OPS",
            "/rest/api/3/issue/OPS-1",
            "/rest/api/3/issue/10001",
            "/rest/api/3/issue/bulkfetch",
            "/rest/api/3/search/jql",
            "/rest/api/3/myself",
            "/rest/api/3/issue/ENG-1/%2e%2e/%2e%2e/project/OPS",
            "/rest/api/3/issue/ENG-1/../../project/OPS",
            "/rest/api/2/issue/ENG-1",
        ]
        .into_iter()
        .map(|path| ("jira_rest", json!({"method": "GET", "path": path})))
        .collect()
    }
}

/// A Jira tracker on `base` for project ENG, `page_size` issues a search page.
fn jira(base: &str, page_size: u32) -> Box<dyn Tracker> {
    build(
        &format!(
            "tracker:\n  kind: jira\n  active_states: [To Do]\n  provider:\n    base_url: {base}\n    \
             email: {}\n    project_key: eng\n    page_size: {page_size}\n    timeout_ms: 5000\n",
            jira_fake::EMAIL
        ),
        &[("JIRA_API_TOKEN", jira_fake::TOKEN)],
    )
}

fn todo<S: Subject>() -> Vec<String> {
    vec![S::TODO.to_owned()]
}

/// The whole checklist for one subject.
async fn contract<S: Subject>() {
    let started = S::start(3);
    let tracker = &started.tracker;

    // Empty states or ids: no request at all.
    assert!(tracker.fetch_by_states(&[]).await.unwrap().is_empty());
    assert!(tracker.fetch_by_ids(&[]).await.unwrap().is_empty());
    assert_eq!(started.proxy.requests(), 0, "empty inputs made a request");

    // All three are visible; an id no longer visible is left out.
    let all = tracker.fetch_by_states(&todo::<S>()).await.unwrap();
    assert_eq!(all.len(), 3);
    (started.remove)(2);
    let refreshed = tracker.fetch_by_ids(&started.ids).await.unwrap();
    let ids: Vec<&IssueId> = refreshed.iter().map(|i| &i.id).collect();
    assert_eq!(ids, [&started.ids[0], &started.ids[2]]);

    // Failures are typed, and none carries the credential.
    let cases = [
        (Fault::Status(401), TrackerErrorCategory::TrackerAuth, "401"),
        (Fault::Status(403), TrackerErrorCategory::TrackerAuth, "403"),
        (
            Fault::RateLimited,
            TrackerErrorCategory::TrackerRateLimited,
            "30",
        ),
        (
            Fault::Status(500),
            TrackerErrorCategory::TrackerStatus,
            "500",
        ),
        (
            Fault::Status(503),
            TrackerErrorCategory::TrackerStatus,
            "503",
        ),
        (Fault::Truncated, TrackerErrorCategory::TrackerResponse, ""),
    ];
    for (fault, category, text) in cases {
        started.proxy.fail_with(Some(fault.clone()));
        let err = tracker.fetch_by_states(&todo::<S>()).await.unwrap_err();
        assert_eq!(err.category, category, "{fault:?}: {}", err.message);
        assert!(err.message.contains(text), "{fault:?}: {}", err.message);
        assert!(
            !err.message.contains(S::SECRET),
            "{fault:?}: {}",
            err.message
        );
    }
    started.proxy.fail_with(Some(Fault::EchoCredential));
    let err = tracker.fetch_by_states(&todo::<S>()).await.unwrap_err();
    assert!(!err.message.contains(S::SECRET), "echoed: {}", err.message);
    assert!(!err.message.contains(S::WIRE), "echoed: {}", err.message);
    for spec in tracker.tool_specs() {
        let name = spec["name"].as_str().unwrap();
        let arguments = json!({"method": "GET", "path": "/repos/acme/app/issues",
            "query": "{ viewer { id } }", "issue_number": 1, "labels": ["aiops/todo"]});
        let answer = tracker
            .call_session_tool(name, &arguments, S::SESSION)
            .unwrap()
            .await;
        let text = answer.unwrap_or_else(|e| e);
        assert!(!text.contains(S::SECRET), "{name} echoed: {text}");
        assert!(!text.contains(S::WIRE), "{name} echoed: {text}");
    }
    started.proxy.fail_with(None);

    // Tools stay inside their scope: refused before any request.
    for (name, arguments) in S::escapes() {
        let before = (started.served)();
        let answer = tracker
            .call_session_tool(name, &arguments, S::SESSION)
            .unwrap()
            .await;
        assert!(answer.is_err(), "{name} {arguments}: {answer:?}");
        assert_eq!(
            (started.served)(),
            before,
            "{name} {arguments} reached the server"
        );
    }

    // Pagination that leads back ends with an error.
    let err = S::looping()
        .fetch_by_states(&todo::<S>())
        .await
        .unwrap_err();
    assert_eq!(
        err.category,
        TrackerErrorCategory::TrackerPagination,
        "{}",
        err.message
    );
}

#[tokio::test]
async fn linear_passes_the_tracker_contract() {
    contract::<Linear>().await;
}

#[tokio::test]
async fn github_passes_the_tracker_contract() {
    contract::<Github>().await;
}

#[tokio::test]
async fn gitea_passes_the_tracker_contract() {
    contract::<Gitea>().await;
}

#[tokio::test]
async fn gitlab_passes_the_tracker_contract() {
    contract::<Gitlab>().await;
}

#[tokio::test]
async fn jira_passes_the_tracker_contract() {
    contract::<Jira>().await;
}

/// A loopback server whose list pages name each other as next (page 1 links to 2, 2 to 1):
/// `next(base, path, other)` is the `Link` target. Returns the base URL.
fn looping_pages(next: fn(&str, &str, u32) -> String) -> String {
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
            let other = if query.contains("page=2") { 1 } else { 2 };
            let body = "[]";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLink: <{}>; \
                 rel=\"next\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                next(&link_base, path, other),
                body.len()
            );
        }
    });
    base
}
