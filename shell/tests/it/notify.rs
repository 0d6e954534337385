//! Notifications through a running daemon to loopback receivers: the webhook's JSON and
//! Slack's incoming-webhook shape, the header secret resolved from the environment and never in
//! a payload, retries after a failing answer, and a hung receiver that delays nothing else.

use std::io::Write as _;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::daemon_harness::{Daemon, http};
use crate::support::{self, HttpRequest};

/// How a receiver answers.
#[derive(Clone, Copy)]
enum Answer {
    /// 200 to everything.
    Ok,
    /// 500 to the first `n` requests, then 200.
    FailFirst(usize),
    /// Reads the request and never answers.
    Hang,
}

/// A receiver on 127.0.0.1: its URL and what it was sent.
fn receiver(answer: Answer) -> (String, Arc<Mutex<Vec<HttpRequest>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let Some(request) = support::read_request(&stream) else {
                continue;
            };
            let n = {
                let mut log = log.lock().unwrap();
                log.push(request);
                log.len()
            };
            let status = match answer {
                Answer::Hang => {
                    held.push(stream);
                    continue;
                }
                Answer::FailFirst(fails) if n <= fails => "500 Internal Server Error",
                _ => "200 OK",
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            );
        }
    });
    (url, seen)
}

fn bodies(seen: &Mutex<Vec<HttpRequest>>) -> Vec<Value> {
    (seen.lock().unwrap().iter())
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

/// Waits (bounded) until `seen` holds `n` requests.
fn wait_for_requests(seen: &Mutex<Vec<HttpRequest>>, n: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.lock().unwrap().len() < n {
        assert!(
            Instant::now() < deadline,
            "{what}: {} requests",
            seen.lock().unwrap().len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn channels_get_their_events_in_their_shapes_with_retries_and_a_hung_one_delays_nothing() {
    let (webhook, webhook_seen) = receiver(Answer::FailFirst(1));
    let (slack, slack_seen) = receiver(Answer::Ok);
    let (hung, hung_seen) = receiver(Answer::Hang);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("issues")).unwrap();
    for (id, title) in [("A-1", "Add the login page"), ("B-1", "Fails in its hook")] {
        std::fs::write(
            dir.path().join(format!("issues/{id}.md")),
            format!("---\ntitle: {title}\nstate: Todo\n---\nBody.\n"),
        )
        .unwrap();
    }
    let workflow = format!(
        "---\ntracker:\n  kind: local\n  terminal_states: [Done]\npolling:\n  interval_ms: 3600000\nworkspace:\n  root: ./ws\nhooks:\n  before_run: test \"$SYMPHONY_ISSUE_IDENTIFIER\" != B-1\nagent:\n  kind: demo\n  demo_turn_ms: 50\nserver:\n  port: 0\nnotifications:\n  redact_titles: false\n  channels:\n    - kind: webhook\n      url: {webhook}\n      headers:\n        Authorization: $HOOK_AUTH\n    - kind: slack\n      url: $SLACK_URL\n      events: [issue_completed, paused]\n    - kind: webhook\n      url: {hung}\n---\nWork on {{{{ issue.identifier }}}}.\n"
    );
    std::fs::write(dir.path().join("WORKFLOW.md"), workflow).unwrap();
    let auth = "Bearer hook-secret-0123456789";
    let mut daemon = Daemon::start_with_env(
        dir.path(),
        &[],
        &[("HOOK_AUTH", auth), ("SLACK_URL", slack.as_str())],
    );
    let addr = daemon.http_addr();
    daemon.wait_for("A-1 released", |l| {
        l.contains("released") && l.contains("issue_id=\"A-1\"")
    });
    let (status, _, _) = http(&addr, "POST", "/api/v1/pause", None);
    assert_eq!(status, 200);
    // Slack: A-1 completed, then the pause; nothing else (its event list).
    wait_for_requests(&slack_seen, 2, "slack");
    let slack_bodies = bodies(&slack_seen);
    let texts: Vec<&str> = slack_bodies
        .iter()
        .map(|b| b["text"].as_str().unwrap())
        .collect();
    assert!(
        texts[0].starts_with("symphony: issue completed - A-1 (Add the login page): run completed"),
        "{texts:?}"
    );
    assert_eq!(texts[1], "symphony: paused: paused by the operator");
    assert_eq!(slack_bodies[0].as_object().unwrap().len(), 1, "only text");
    // The webhook: B-1's failure (its hook refuses it), A-1's completion and the pause, in
    // our JSON, each once delivered although the first answer was a 500.
    wait_for_requests(&webhook_seen, 4, "webhook");
    let sent = bodies(&webhook_seen);
    let events: Vec<&str> = (sent.iter().skip(1))
        .map(|b| b["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        sent[0], sent[1],
        "the first send (500) was retried with the same body"
    );
    for event in ["run_failed", "issue_completed", "paused"] {
        assert!(events.contains(&event), "{event}: {sent:#?}");
    }
    let failed = sent.iter().find(|b| b["event"] == "run_failed").unwrap();
    assert_eq!(failed["issue"], "B-1");
    assert_eq!(failed["title"], "Fails in its hook");
    assert!(
        failed["detail"].as_str().unwrap().starts_with("attempt 1:"),
        "{failed}"
    );
    let requests = webhook_seen.lock().unwrap();
    assert!(
        requests
            .iter()
            .all(|r| r.header("authorization") == Some(auth))
    );
    assert!(requests.iter().all(|r| r.path == "/hook"));
    drop(requests);
    // The hung receiver got its first notice and holds it; the API still answers at once.
    wait_for_requests(&hung_seen, 1, "hung");
    let started = Instant::now();
    let (status, _, _) = http(&addr, "GET", "/api/v1/state", None);
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(2));
    daemon.interrupt();
    let (code, lines) = daemon.wait_exit();
    assert_eq!(code, Some(0));
    // No secret anywhere: not in a payload, not in the log.
    let all = format!("{slack_bodies:?}{sent:?}{lines:?}");
    assert!(
        !all.contains("hook-secret") && !all.contains(&slack),
        "{all}"
    );
}
