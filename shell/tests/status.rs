//! `symphony status --once` against a fixture state served on 127.0.0.1.

mod support;

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

/// Serves the fixture state to requests carrying the bearer token.
fn serve() -> String {
    let state = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/status/state.json"),
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let Some(request) = support::read_request(&stream) else {
                continue;
            };
            if request.header("authorization") != Some("Bearer status-token") {
                support::respond(stream, "401 Unauthorized", "application/json", "{}");
            } else if request.path == "/api/v1/state" {
                support::respond(stream, "200 OK", "application/json", &state);
            } else {
                support::respond(stream, "404 Not Found", "application/json", "{}");
            }
        }
    });
    url
}

fn status(url: &str, columns: &str, token: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_symphony"))
        .args(["status", "--once", "--url", url])
        .env("COLUMNS", columns)
        .env("SYMPHONY_TOKEN", token)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn once_prints_one_snapshot_that_fits_the_terminal() {
    let url = serve();
    let wide = status(&url, "120", "status-token");
    assert!(
        wide.status.success(),
        "{}",
        String::from_utf8_lossy(&wide.stderr)
    );
    let text = String::from_utf8_lossy(&wide.stdout).replace(&url, "[URL]");
    assert!(!text.contains('\x1b'), "no escape codes in --once output");
    insta::assert_snapshot!("status_wide", text);

    let narrow = status(&url, "40", "status-token");
    let text = String::from_utf8_lossy(&narrow.stdout).replace(&url, "[URL]");
    assert!(text.lines().all(|l| l.chars().count() <= 40), "{text}");
    insta::assert_snapshot!("status_narrow", text);
}

#[test]
fn a_wrong_token_or_no_daemon_is_a_clear_error() {
    let url = serve();
    let out = status(&url, "100", "nope");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let out = status(&gone, "100", "status-token");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"));
}
