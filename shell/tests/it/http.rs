//! The HTTP server against hostile and careless clients: oversized heads and bodies, slow
//! clients, connection floods, DNS-rebinding pages, cross-site posts, weak credentials. The
//! server is the library's, with a stand-in for the daemon's task that answers every query;
//! the clients are raw TCP sockets on loopback. Waits are bounded socket reads.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use symphony::http::{Answer, HttpServer, Limits, Query, Submit, reply, start_with_limits};

const BOUND: Duration = Duration::from_secs(20);
const TOKEN: &str = "0123456789abcdef-token";

/// A server whose "daemon" answers `State` with the status fixture and everything else with
/// `{"ok": true}`, at once.
fn server(limits: Limits, token: Option<&str>) -> HttpServer {
    let state: serde_json::Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/status/state.json"
    )))
    .unwrap();
    let submit: Submit = Box::new(move |query, to| {
        let answer = match query {
            Query::State => Answer::json(200, &state),
            Query::Refresh => Answer::json(202, &serde_json::json!({"queued": true})),
            _ => Answer::json(200, &serde_json::json!({"ok": true})),
        };
        reply(to, answer);
        true
    });
    start_with_limits(
        "127.0.0.1",
        0,
        token.map(str::to_owned),
        submit,
        limits,
        None,
    )
    .unwrap()
}

fn connect(server: &HttpServer) -> TcpStream {
    let stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    stream
}

/// Sends `request` (the whole text) and reads to the end: status and full response.
fn exchange(server: &HttpServer, request: &str) -> (u16, String) {
    let mut stream = connect(server);
    stream.write_all(request.as_bytes()).unwrap();
    read_response(&mut stream)
}

fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn get(server: &HttpServer, path: &str, extra: &str) -> (u16, String) {
    exchange(
        server,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{extra}\r\n"),
    )
}

fn post(server: &HttpServer, path: &str, extra: &str) -> (u16, String) {
    exchange(
        server,
        &format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{extra}\r\n"),
    )
}

#[test]
fn oversized_heads_and_bodies_are_refused_without_being_read() {
    let server = server(Limits::default(), None);
    // A 1 MiB header: the server stops reading at 16 KiB and answers 431.
    let mut stream = connect(&server);
    let head = format!(
        "GET /api/v1/state HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = stream.write_all(head.as_bytes());
        })
    };
    let (status, text) = read_response(&mut stream);
    assert_eq!(status, 431, "{text}");
    let _ = writer.join();

    // 65 headers: too many.
    let many: String = (0..65).map(|i| format!("X-{i}: v\r\n")).collect();
    assert_eq!(get(&server, "/api/v1/state", &many).0, 431);

    // A declared 1 GiB body: 413 before a byte of it is read.
    let (status, text) = post(&server, "/api/v1/refresh", "Content-Length: 1073741824\r\n");
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("request body too large"), "{text}");
    // Chunked bodies are not taken at all.
    let (status, _) = post(&server, "/api/v1/refresh", "Transfer-Encoding: chunked\r\n");
    assert_eq!(status, 501);
    // A malformed head.
    assert_eq!(exchange(&server, "GARBAGE\r\n\r\n").0, 400);
    // And the server still answers.
    assert_eq!(get(&server, "/api/v1/state", "").0, 200);
}

#[test]
fn a_slow_client_is_cut_off_at_the_request_timeout() {
    let limits = Limits {
        request_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let server = server(limits, None);
    for partial in ["", "GET /api/v1/state HTTP/1.1\r\nHost: loc"] {
        let mut stream = connect(&server);
        stream.write_all(partial.as_bytes()).unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 64];
        let n = stream
            .read(&mut buf)
            .expect("closed by the server, not timed out here");
        assert_eq!(n, 0, "the server closes without answering");
        assert!(started.elapsed() < BOUND);
    }
    assert_eq!(get(&server, "/livez", "").0, 200);
}

#[test]
fn a_connection_flood_stays_bounded_and_the_api_keeps_answering() {
    let limits = Limits {
        max_connections: 16,
        ..Limits::default()
    };
    let server = server(limits, None);
    let threads_before = threads();
    // 400 idle connections: each newcomer past 16 closes the one idle longest.
    let mut idle: Vec<TcpStream> = (0..400).map(|_| connect(&server)).collect();
    // Fresh clients are still served while the flood is held open.
    for _ in 0..5 {
        assert_eq!(get(&server, "/livez", "").0, 200);
        let (status, body) = get(&server, "/api/v1/state", "");
        assert_eq!(status, 200, "{body}");
    }
    // At most 16 of the flood are still open (the server closed the others).
    let mut open = 0;
    for stream in &mut idle {
        stream
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let mut buf = [0u8; 1];
        match stream.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            _ => open += 1,
        }
    }
    assert!(open <= 16, "{open} connections of the flood are still open");
    // No thread per connection: 400 connections would have added 400 threads (the margin is
    // for the other tests of this binary, which run alongside).
    assert!(
        threads() < threads_before + 50,
        "{} threads, {threads_before} before",
        threads()
    );
    idle.clear();
    assert_eq!(get(&server, "/livez", "").0, 200);
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn keep_alive_serves_several_requests_and_pipelined_ones_in_order() {
    let server = server(Limits::default(), None);
    let mut stream = connect(&server);
    stream
        .write_all(
            b"GET /livez HTTP/1.1\r\nHost: localhost\r\n\r\nGET /api/v1/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    let (_, text) = read_response(&mut stream);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
    assert!(text.find("\"live\"").unwrap() < text.find("\"ok\"").unwrap());
}

#[test]
fn without_a_token_only_loopback_host_names_are_served() {
    let server = server(Limits::default(), None);
    for host in ["localhost", "localhost:9999", "127.0.0.1:8080", "[::1]:80"] {
        let (status, text) = exchange(
            &server,
            &format!("GET /api/v1/state HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(status, 200, "{host}: {text}");
    }
    // A DNS-rebinding page: its own name resolves to 127.0.0.1, the Host header says so.
    for host in [
        "rebind.attacker.example",
        "rebind.attacker.example:8080",
        "localhost.evil.example",
    ] {
        let (status, text) = exchange(
            &server,
            &format!("GET /api/v1/state HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(status, 403, "{host}: {text}");
        assert!(text.contains("forbidden_host"), "{text}");
        assert!(!text.contains("MT-649"), "no state leaks: {text}");
    }
    // The liveness probe says nothing and answers anyone.
    let (status, _) = exchange(
        &server,
        "GET /livez HTTP/1.1\r\nHost: rebind.attacker.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
}

#[test]
fn cross_site_posts_are_refused_and_plain_curl_posts_work() {
    let server = server(Limits::default(), None);
    // What `curl -X POST` sends: no body, no content type, no Origin.
    assert_eq!(post(&server, "/api/v1/refresh", "").0, 202);
    assert_eq!(
        post(&server, "/api/v1/refresh", "Origin: http://127.0.0.1\r\n").0,
        202,
        "the dashboard's own origin"
    );
    for extra in [
        "Origin: http://evil.example\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}",
        "Origin: null\r\n",
        "Origin: http://127.0.0.1:1\r\n",
        "Sec-Fetch-Site: cross-site\r\n",
    ] {
        let (status, text) = post(&server, "/api/v1/refresh", extra);
        assert_eq!(status, 403, "{extra}: {text}");
        assert!(text.contains("cross_site"), "{text}");
    }
}

#[test]
fn with_a_token_browsers_get_a_basic_challenge_and_scripts_use_bearer() {
    let server = server(Limits::default(), Some(TOKEN));
    let (status, text) = get(&server, "/api/v1/state", "");
    assert_eq!(status, 401, "{text}");
    assert!(
        text.contains("WWW-Authenticate: Basic realm=\"symphony\""),
        "{text}"
    );
    assert_eq!(
        get(
            &server,
            "/api/v1/state",
            &format!("Authorization: Bearer {TOKEN}\r\n")
        )
        .0,
        200
    );
    let basic = base64(&format!("anyone:{TOKEN}"));
    assert_eq!(
        get(&server, "/", &format!("Authorization: Basic {basic}\r\n")).0,
        200,
        "the dashboard opens with the token as the password"
    );
    for wrong in [
        "Authorization: Bearer \r\n".to_owned(),
        "Authorization: Bearer 0123456789abcdef-tokem\r\n".to_owned(),
        format!("Authorization: Basic {}\r\n", base64("anyone:nope")),
        format!("Authorization: Basic {}\r\n", base64(TOKEN)),
        "Authorization: Basic !!!\r\n".to_owned(),
    ] {
        assert_eq!(get(&server, "/api/v1/state", &wrong).0, 401, "{wrong}");
    }
    // With a token, any Host is fine (the token is the guard), and /livez needs none.
    assert_eq!(get(&server, "/livez", "").0, 200);
}

#[test]
fn issues_named_like_routes_are_reachable_under_issues() {
    let server = server(Limits::default(), None);
    for path in [
        "/api/v1/issues/state",
        "/api/v1/issues/refresh",
        "/api/v1/issues/MT-1",
    ] {
        let (status, text) = get(&server, path, "");
        assert_eq!(status, 200, "{path}: {text}");
        assert!(
            text.contains("\"ok\""),
            "{path} reached the issue query: {text}"
        );
    }
}

fn base64(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
