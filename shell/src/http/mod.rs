//! The HTTP extension (SPEC 13.7): dashboard, JSON API, health probes, on the small bounded
//! server in [`server`], which runs on a thread of its own (a current-thread tokio runtime),
//! so no client load can slow the orchestrator's task.
//!
//! Request tasks never touch the orchestrator: they send a [`Query`] to the daemon's task
//! and wait for its answer for at most [`ANSWER_TIMEOUT`], answering 503 otherwise (SPEC 17.4
//! "timeout/unavailable"). Secrets the daemon knows are masked in every body it serves.
//!
//! Who may ask:
//! - `/livez` answers anyone (it says nothing but "alive").
//! - Without `server.auth_token`, only requests whose `Host` is a loopback name or address
//!   (any port): a DNS-rebinding page, whose `Host` is its own domain, is refused.
//! - With a token, a bearer token (scripts) or HTTP Basic with the token as the password
//!   (browsers: a 401 carries a Basic challenge). Tokens compare in constant time.
//! - A `POST` that a browser marks as cross-site (`Sec-Fetch-Site: cross-site`, or an
//!   `Origin` other than the server's own) is refused; `curl -X POST` sends neither and works.

mod dashboard;
pub mod server;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::{oneshot, watch};

pub use server::Limits;
use server::{Request, Response};

/// How long a request waits for the daemon's task.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// What a request asks the daemon.
#[derive(Debug)]
pub enum Query {
    /// `GET /api/v1/state` and the dashboard.
    State,
    /// `GET /api/v1/<identifier>` and `GET /api/v1/issues/<identifier>`.
    Issue(String),
    /// `POST /api/v1/refresh`.
    Refresh,
    /// `POST /api/v1/pause`, with the operator's reason (maybe empty).
    Pause(String),
    /// `POST /api/v1/resume`.
    Resume,
    /// `POST /api/v1/<identifier>/stop` and `POST /api/v1/issues/<identifier>/stop`.
    Stop(String),
    /// `GET /readyz`.
    Ready,
    /// `GET /metrics`: the Prometheus text, rendered by the daemon.
    Metrics,
}

/// Where the daemon sends a [`Query`]'s answer.
pub type Reply = oneshot::Sender<Answer>;

/// The daemon's answer: a status and a JSON body (already serialised, secrets masked).
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The JSON text.
    pub body: String,
}

impl Answer {
    /// `value` as compact JSON, with every secret the process knows ([`crate::redact`]: the
    /// loaded workflow's and the conventional variables') replaced by `****`.
    pub fn json(status: u16, value: &impl serde::Serialize) -> Self {
        let text = serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned());
        Self {
            status,
            body: crate::redact::mask(&text).into_owned(),
        }
    }

    /// `{"error":{"code","message"}}` with `status`.
    pub fn error(status: u16, code: &str, message: impl Into<String>) -> Self {
        let body = json!({ "error": { "code": code, "message": message.into() } });
        Self::json(status, &body)
    }
}

/// A running server. Dropping it stops accepting, closes every connection and joins the
/// server's thread.
pub struct HttpServer {
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Hands a query to whoever answers it (the daemon's task); false when nobody listens any more.
pub type Submit = Box<dyn Fn(Query, Reply) -> bool + Send + Sync>;

struct Shared {
    submit: Submit,
    /// Where HTTP requests are counted, when the daemon keeps metrics.
    metrics: Option<Arc<crate::metrics::Metrics>>,
    /// SHA-256 of the token: compared in constant time, whatever the presented length.
    token: Option<[u8; 32]>,
}

/// Binds `bind:port` and serves with the default [`Limits`].
pub fn start(
    bind: &str,
    port: u16,
    token: Option<String>,
    submit: Submit,
    metrics: Option<Arc<crate::metrics::Metrics>>,
) -> Result<HttpServer, String> {
    start_with_limits(bind, port, token, submit, Limits::default(), metrics)
}

/// Binds `bind:port` and serves within `limits`.
pub fn start_with_limits(
    bind: &str,
    port: u16,
    token: Option<String>,
    submit: Submit,
    limits: Limits,
    metrics: Option<Arc<crate::metrics::Metrics>>,
) -> Result<HttpServer, String> {
    let host = bind.trim_start_matches('[').trim_end_matches(']');
    let address = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let listener = std::net::TcpListener::bind(&address)
        .map_err(|e| format!("cannot listen on {address}: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot listen on {address}: {e}"))?;
    // A deeper accept queue than std's 128: a burst of connections waits there instead of
    // having SYNs dropped (a dropped SYN costs the client a 1 s retransmit).
    let _ = rustix::net::listen(&listener, 1024);
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on {address}: {e}"))?;
    let shared = Arc::new(Shared {
        submit,
        metrics,
        token: token.map(|t| digest(t.as_bytes())),
    });
    let (stop, stopped) = watch::channel(false);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the HTTP runtime: {e}"))?;
    let thread = thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => listener,
                    Err(e) => return tracing::error!("HTTP server cannot start: {e}"),
                };
                let handler: server::Handler = Arc::new(move |request| {
                    let shared = Arc::clone(&shared);
                    Box::pin(async move {
                        let route = route_name(&request.target);
                        let response = handle(request, &shared).await;
                        if let Some(metrics) = &shared.metrics {
                            metrics.http_request(route, response.status);
                        }
                        response
                    })
                });
                server::serve(listener, limits, handler, stopped).await;
            });
        })
        .map_err(|e| format!("cannot start the HTTP thread: {e}"))?;
    Ok(HttpServer {
        stop,
        thread: Some(thread),
        addr,
    })
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn response(
    status: u16,
    content_type: &str,
    body: Vec<u8>,
    extra: Vec<(String, String)>,
) -> Response {
    let mut headers = vec![
        ("Content-Type".to_owned(), content_type.to_owned()),
        ("Cache-Control".to_owned(), "no-store".to_owned()),
        ("X-Content-Type-Options".to_owned(), "nosniff".to_owned()),
    ];
    headers.extend(extra);
    Response {
        status,
        headers,
        body,
    }
}

fn json_response(answer: Answer, extra: Vec<(String, String)>) -> Response {
    response(
        answer.status,
        "application/json",
        answer.body.into_bytes(),
        extra,
    )
}

/// Asks the daemon's task and waits, bounded.
async fn ask(shared: &Shared, query: Query) -> Answer {
    let (reply, answer) = oneshot::channel();
    if !(shared.submit)(query, reply) {
        return Answer::error(503, "unavailable", "the orchestrator is shutting down");
    }
    match tokio::time::timeout(ANSWER_TIMEOUT, answer).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(_)) => Answer::error(503, "unavailable", "the orchestrator is shutting down"),
        Err(_) => Answer::error(
            503,
            "orchestrator_timeout",
            format!(
                "the orchestrator did not answer within {} ms",
                ANSWER_TIMEOUT.as_millis()
            ),
        ),
    }
}

/// The bearer token, or the password of HTTP Basic credentials, equals the configured token.
/// Both sides are hashed first, so the comparison takes the same time whatever was presented.
fn authorized(request: &Request, token: &[u8; 32]) -> bool {
    let Some(value) = request.header("authorization") else {
        return false;
    };
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let presented: Vec<u8> = if scheme.eq_ignore_ascii_case("bearer") {
        rest.trim().as_bytes().to_vec()
    } else if scheme.eq_ignore_ascii_case("basic") {
        let Some(decoded) = base64_decode(rest.trim()) else {
            return false;
        };
        match decoded.iter().position(|b| *b == b':') {
            Some(colon) => decoded[colon + 1..].to_vec(),
            None => return false,
        }
    } else {
        return false;
    };
    if presented.is_empty() {
        return false;
    }
    digest(&presented)
        .iter()
        .zip(token)
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Standard base64 (padding optional); `None` for anything else.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(
            match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                _ => return None,
            }
            .into(),
        )
    };
    let text = text.trim_end_matches('=').as_bytes();
    if text.len() % 4 == 1 || text.len() > 4096 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= value(*c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// The host part of a `Host` (or `Origin` authority) value: `[::1]:80` -> `::1`,
/// `localhost:8080` -> `localhost`.
fn host_name(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// A `Host` naming this machine's loopback: `localhost` or a loopback address, any port. A
/// request without `Host` (HTTP/1.0) is not from a browser and passes.
fn loopback_host(host: Option<&str>) -> bool {
    let Some(host) = host else {
        return true;
    };
    let name = host_name(host.trim());
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The route a request target falls under, as a metrics label: one of a fixed set.
fn route_name(target: &str) -> &'static str {
    let path = target.split('?').next().unwrap_or("/");
    match path {
        "/" => "/",
        "/livez" => "/livez",
        "/readyz" => "/readyz",
        "/metrics" => "/metrics",
        "/api/v1/state" => "/api/v1/state",
        "/api/v1/refresh" => "/api/v1/refresh",
        "/api/v1/pause" => "/api/v1/pause",
        "/api/v1/resume" => "/api/v1/resume",
        p if p.starts_with("/api/v1/") && p.ends_with("/stop") => "/api/v1/<id>/stop",
        p if p.starts_with("/api/v1/") => "/api/v1/<id>",
        _ => "other",
    }
}

/// A browser says this request comes from another site's page.
fn cross_site(request: &Request) -> bool {
    if request
        .header("sec-fetch-site")
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"))
    {
        return true;
    }
    let Some(origin) = request.header("origin") else {
        return false;
    };
    let authority = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'))
        .unwrap_or("");
    match request.header("host") {
        Some(host) => authority.is_empty() || !authority.eq_ignore_ascii_case(host.trim()),
        None => true,
    }
}

async fn handle(request: Request, shared: &Shared) -> Response {
    let path = request.target.split('?').next().unwrap_or("/").to_owned();
    let method = request.method.as_str();
    if path == "/livez" {
        return match method {
            "GET" | "HEAD" => json_response(Answer::json(200, &json!({"live": true})), vec![]),
            _ => not_allowed(method, "GET, HEAD"),
        };
    }
    match &shared.token {
        None if !loopback_host(request.header("host")) => {
            return json_response(
                Answer::error(
                    403,
                    "forbidden_host",
                    "without server.auth_token only loopback Host names are served",
                ),
                vec![],
            );
        }
        Some(token) if !authorized(&request, token) => {
            return json_response(
                Answer::error(401, "unauthorized", "missing or wrong token"),
                vec![
                    (
                        "WWW-Authenticate".into(),
                        "Bearer realm=\"symphony\"".into(),
                    ),
                    (
                        "WWW-Authenticate".into(),
                        "Basic realm=\"symphony\", charset=\"UTF-8\"".into(),
                    ),
                ],
            );
        }
        _ => {}
    }
    if !matches!(method, "GET" | "HEAD") && cross_site(&request) {
        return json_response(
            Answer::error(
                403,
                "cross_site",
                "cross-site requests may not change anything",
            ),
            vec![],
        );
    }
    let (allow, query) = match path.as_str() {
        "/" => ("GET, HEAD", Some(Query::State)),
        "/readyz" => ("GET, HEAD", Some(Query::Ready)),
        "/api/v1/state" => ("GET, HEAD", Some(Query::State)),
        "/metrics" => ("GET, HEAD", Some(Query::Metrics)),
        "/api/v1/refresh" => ("POST", Some(Query::Refresh)),
        "/api/v1/pause" => ("POST", Some(Query::Pause(pause_reason(&request)))),
        "/api/v1/resume" => ("POST", Some(Query::Resume)),
        other => {
            // `/api/v1/issues/<identifier>` always reaches an issue, even one named `state`.
            let identifier = other
                .strip_prefix("/api/v1/issues/")
                .or_else(|| other.strip_prefix("/api/v1/"));
            let (identifier, stop) = match identifier.and_then(|i| i.strip_suffix("/stop")) {
                Some(identifier) => (Some(identifier), true),
                None => (identifier, false),
            };
            match identifier {
                Some(identifier) if !identifier.is_empty() && !identifier.contains('/') => {
                    let identifier = percent_decode(identifier);
                    if stop {
                        ("POST", Some(Query::Stop(identifier)))
                    } else {
                        ("GET, HEAD", Some(Query::Issue(identifier)))
                    }
                }
                _ => ("", None),
            }
        }
    };
    let Some(query) = query else {
        let shown: String = path.chars().take(200).collect();
        return json_response(
            Answer::error(404, "not_found", format!("no route for {shown}")),
            vec![],
        );
    };
    let method_ok = match query {
        Query::Refresh | Query::Pause(_) | Query::Resume | Query::Stop(_) => method == "POST",
        _ => matches!(method, "GET" | "HEAD"),
    };
    if !method_ok {
        return not_allowed(method, allow);
    }
    let dashboard = path == "/";
    // The dashboard's own forms post urlencoded bodies: back to the page after a change.
    let from_form = request
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let answer = ask(shared, query).await;
    if from_form && (200..300).contains(&answer.status) {
        return response(
            303,
            "text/plain; charset=utf-8",
            Vec::new(),
            vec![("Location".into(), "/".into())],
        );
    }
    if path == "/metrics" && answer.status == 200 {
        return response(
            200,
            crate::metrics::CONTENT_TYPE,
            answer.body.into_bytes(),
            vec![],
        );
    }
    if dashboard && answer.status == 200 {
        let state: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
        let html = dashboard::render(&state);
        response(200, "text/html; charset=utf-8", html.into_bytes(), vec![])
    } else {
        json_response(answer, vec![])
    }
}

fn not_allowed(method: &str, allow: &str) -> Response {
    let shown: String = method.chars().take(20).collect();
    json_response(
        Answer::error(
            405,
            "method_not_allowed",
            format!("{shown} is not allowed here"),
        ),
        vec![("Allow".into(), allow.into())],
    )
}

/// The reason in a pause request: `{"reason": "..."}` as JSON, `reason=...` from a form, or
/// none.
fn pause_reason(request: &Request) -> String {
    let body = String::from_utf8_lossy(&request.body);
    let body = body.trim();
    if body.starts_with('{') {
        let value: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        return value["reason"].as_str().unwrap_or_default().to_owned();
    }
    (body.split('&'))
        .find_map(|pair| pair.strip_prefix("reason="))
        .map(|value| percent_decode(&value.replace('+', " ")))
        .unwrap_or_default()
}

/// `text` as one path segment: every byte but unreserved ones percent-encoded.
pub fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = std::fmt::Write::write_fmt(&mut out, format_args!("%{byte:02X}"));
        }
    }
    out
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

/// Sends `answer` back to a waiting request (which may have given up).
pub fn reply(to: Reply, answer: Answer) {
    let _ = to.send(answer);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_basic_credentials() {
        assert_eq!(
            base64_decode("dTpwYXNzd29yZA==").as_deref(),
            Some(&b"u:password"[..])
        );
        assert_eq!(
            base64_decode("dTpwYXNzd29yZA").as_deref(),
            Some(&b"u:password"[..])
        );
        assert_eq!(base64_decode("YQ").as_deref(), Some(&b"a"[..]));
        assert_eq!(base64_decode("Y"), None);
        assert_eq!(base64_decode("a b="), None);
    }

    #[test]
    fn only_loopback_host_names_pass() {
        for ok in [
            None,
            Some("localhost"),
            Some("LOCALHOST:8080"),
            Some("127.0.0.1:1"),
            Some("[::1]:80"),
            Some("127.9.9.9"),
        ] {
            assert!(loopback_host(ok), "{ok:?}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "[::2]:80",
            "10.0.0.1",
            "",
        ] {
            assert!(!loopback_host(Some(bad)), "{bad}");
        }
    }
}
