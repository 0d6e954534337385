//! The HTTP extension (SPEC 13.7) on tiny_http: dashboard, JSON API, health probes.
//!
//! Request threads never touch the orchestrator: they send a [`Query`] to the daemon's task
//! and wait for its answer for at most [`ANSWER_TIMEOUT`], answering 503 otherwise (SPEC 17.4
//! "timeout/unavailable"). Secrets the daemon knows are masked in every body it serves.

mod dashboard;

use std::io::Cursor;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde_json::{Value, json};
use tiny_http::{Header, Method, Request, Response, Server};
use tokio::sync::mpsc::UnboundedSender;

use crate::daemon::Input;

/// How long a request waits for the daemon's task.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// What a request asks the daemon.
#[derive(Debug)]
pub enum Query {
    /// `GET /api/v1/state` and the dashboard.
    State,
    /// `GET /api/v1/<identifier>`.
    Issue(String),
    /// `POST /api/v1/refresh`.
    Refresh,
    /// `GET /readyz`.
    Ready,
}

/// The daemon's answer: a status and a JSON body (already serialised, secrets masked).
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The JSON text.
    pub body: String,
}

impl Answer {
    /// `value` as compact JSON, with every secret in `secrets` replaced by `****`.
    pub fn json(status: u16, value: &impl serde::Serialize, secrets: &[String]) -> Self {
        let text = serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned());
        Self {
            status,
            body: mask(&text, secrets),
        }
    }

    /// `{"error":{"code","message"}}` with `status`.
    pub fn error(status: u16, code: &str, message: impl Into<String>) -> Self {
        let body = json!({ "error": { "code": code, "message": message.into() } });
        Self::json(status, &body, &[])
    }
}

/// A running server. Dropping it stops the request threads.
pub struct HttpServer {
    server: Arc<Server>,
    threads: Vec<JoinHandle<()>>,
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        // Each unblock wakes one thread waiting in `incoming_requests`.
        for _ in &self.threads {
            self.server.unblock();
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

struct Shared {
    tx: UnboundedSender<Input>,
    token: Option<String>,
}

/// Binds `bind:port` and serves with two request threads.
pub fn start(
    bind: &str,
    port: u16,
    token: Option<String>,
    tx: UnboundedSender<Input>,
) -> Result<HttpServer, String> {
    let host = bind.trim_start_matches('[').trim_end_matches(']');
    let address = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let server = Server::http(&address).map_err(|e| format!("cannot listen on {address}: {e}"))?;
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| format!("{address} is not an IP address"))?;
    let server = Arc::new(server);
    let shared = Arc::new(Shared { tx, token });
    let threads = (0..2)
        .map(|i| {
            let (server, shared) = (Arc::clone(&server), Arc::clone(&shared));
            thread::Builder::new()
                .name(format!("http-{i}"))
                .spawn(move || {
                    for request in server.incoming_requests() {
                        handle(request, &shared);
                    }
                })
                .map_err(|e| format!("cannot start an HTTP thread: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpServer {
        server,
        threads,
        addr,
    })
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("static header is valid")
}

fn respond(request: Request, status: u16, content_type: &str, body: Vec<u8>, extra: &[Header]) {
    let length = body.len();
    let response = Response::new(
        status.into(),
        vec![header("Content-Type", content_type)],
        Cursor::new(body),
        Some(length),
        None,
    );
    // The length is known: send Content-Length rather than chunked encoding, whatever the size.
    let mut response = response.with_chunked_threshold(usize::MAX);
    response.add_header(header("Cache-Control", "no-store"));
    for h in extra {
        response.add_header(h.clone());
    }
    let _ = request.respond(response);
}

fn respond_json(request: Request, answer: Answer, extra: &[Header]) {
    respond(
        request,
        answer.status,
        "application/json",
        answer.body.into_bytes(),
        extra,
    );
}

/// Asks the daemon's task and waits, bounded.
fn ask(shared: &Shared, query: Query) -> Answer {
    let (reply, answer) = sync_channel(1);
    if shared.tx.send(Input::Query(query, reply)).is_err() {
        return Answer::error(503, "unavailable", "the orchestrator is shutting down");
    }
    answer.recv_timeout(ANSWER_TIMEOUT).unwrap_or_else(|_| {
        Answer::error(
            503,
            "orchestrator_timeout",
            format!(
                "the orchestrator did not answer within {} ms",
                ANSWER_TIMEOUT.as_millis()
            ),
        )
    })
}

/// Constant-time comparison of the presented bearer token.
fn authorized(request: &Request, token: &str) -> bool {
    let presented = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .and_then(|h| h.value.as_str().strip_prefix("Bearer "))
        .unwrap_or("");
    let (a, b) = (presented.as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn handle(request: Request, shared: &Shared) {
    let path = request.url().split('?').next().unwrap_or("/").to_owned();
    let method = request.method().clone();
    if path == "/livez" {
        return match method {
            Method::Get | Method::Head => {
                respond_json(request, Answer::json(200, &json!({"live": true}), &[]), &[]);
            }
            _ => not_allowed(request, "GET, HEAD"),
        };
    }
    if let Some(token) = &shared.token
        && !authorized(&request, token)
    {
        let challenge = header("WWW-Authenticate", "Bearer");
        return respond_json(
            request,
            Answer::error(401, "unauthorized", "missing or wrong bearer token"),
            &[challenge],
        );
    }
    let (allow, query) = match path.as_str() {
        "/" => ("GET, HEAD", Some(Query::State)),
        "/readyz" => ("GET, HEAD", Some(Query::Ready)),
        "/api/v1/state" => ("GET, HEAD", Some(Query::State)),
        "/api/v1/refresh" => ("POST", Some(Query::Refresh)),
        other => match other.strip_prefix("/api/v1/") {
            Some(identifier) if !identifier.is_empty() && !identifier.contains('/') => {
                ("GET, HEAD", Some(Query::Issue(percent_decode(identifier))))
            }
            _ => ("", None),
        },
    };
    let Some(query) = query else {
        return respond_json(
            request,
            Answer::error(404, "not_found", format!("no route for {path}")),
            &[],
        );
    };
    let method_ok = match query {
        Query::Refresh => method == Method::Post,
        _ => matches!(method, Method::Get | Method::Head),
    };
    if !method_ok {
        return not_allowed(request, allow);
    }
    let dashboard = path == "/";
    let answer = ask(shared, query);
    if dashboard && answer.status == 200 {
        let state: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
        let html = dashboard::render(&state);
        respond(
            request,
            200,
            "text/html; charset=utf-8",
            html.into_bytes(),
            &[],
        );
    } else {
        respond_json(request, answer, &[]);
    }
}

fn not_allowed(request: Request, allow: &str) {
    let method = request.method().to_string();
    respond_json(
        request,
        Answer::error(
            405,
            "method_not_allowed",
            format!("{method} is not allowed here"),
        ),
        &[header("Allow", allow)],
    );
}

/// `%XX` decoding for identifiers in paths.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied(),
            bytes.get(i + 2).copied(),
        ) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Seconds between two RFC 3339 times, as `1h 02m`, `3m 04s` or `5s`.
pub fn elapsed(from: Option<&str>, to: Option<&str>) -> String {
    let parse = |t: Option<&str>| t.and_then(|t| symphony_core::Timestamp::parse_rfc3339(t).ok());
    let (Some(from), Some(to)) = (parse(from), parse(to)) else {
        return String::new();
    };
    let secs = to.millis_since(from) / 1000;
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {:02}s", secs / 60, secs % 60),
        _ => format!("{}h {:02}m", secs / 3600, secs % 3600 / 60),
    }
}

/// Replaces every occurrence of each secret in `text` with `****`.
pub fn mask(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|s| s.len() >= 4)
        .fold(text.to_owned(), |text, secret| {
            if text.contains(secret.as_str()) {
                text.replace(secret.as_str(), "****")
            } else {
                text
            }
        })
}

/// Sends `answer` back to a waiting request thread (which may have given up).
pub fn reply(to: &SyncSender<Answer>, answer: Answer) {
    let _ = to.try_send(answer);
}
