//! `symphony status --once` against a fixture state served on 127.0.0.1.

use crate::support;

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

/// Runs tmux on a private server socket, returning stdout.
fn tmux(socket: &str, args: &[&str]) -> std::process::Output {
    Command::new("tmux")
        .arg("-L")
        .arg(socket)
        .args(args)
        .output()
        .expect("tmux runs (./.ci/test installs it)")
}

#[test]
fn the_live_view_redraws_in_a_real_terminal_and_q_quits() {
    let url = serve();
    let socket = format!("symphony-status-{}", std::process::id());
    // After the view ends, the pane shows its exit status and stays open to be read.
    let command = format!(
        "env SYMPHONY_TOKEN=status-token COLUMNS=100 {} status --url {url} --interval 0.2; echo EXIT=$?; sleep 30",
        env!("CARGO_BIN_EXE_symphony")
    );
    let started = tmux(
        &socket,
        &[
            "new-session",
            "-d",
            "-s",
            "s",
            "-x",
            "100",
            "-y",
            "30",
            &command,
        ],
    );
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    // Bounded wait for the first frame in the pane.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let screen = loop {
        let pane = tmux(&socket, &["capture-pane", "-p", "-t", "s"]);
        let text = String::from_utf8_lossy(&pane.stdout).into_owned();
        if text.contains("MT-649") && text.contains("(q quits)") {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no frame; pane:\n{text}"
        );
    };
    assert!(
        screen.contains("RUNNING") && screen.contains("RETRY QUEUE"),
        "{screen}"
    );
    tmux(&socket, &["send-keys", "-t", "s", "q"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let pane = tmux(&socket, &["capture-pane", "-p", "-t", "s"]);
        let text = String::from_utf8_lossy(&pane.stdout).into_owned();
        if text.contains("EXIT=") {
            assert!(text.contains("EXIT=0"), "{text}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "q did not quit; pane:\n{text}"
        );
    }
    let _ = tmux(&socket, &["kill-server"]);
}

/// For scripts: with stdout a pipe and no `$COLUMNS`, rows are not cut to any width.
#[test]
fn once_into_a_pipe_does_not_cut_lines() {
    let url = serve();
    let out = Command::new(env!("CARGO_BIN_EXE_symphony"))
        .args(["status", "--once", "--url", &url])
        .env_remove("COLUMNS")
        .env("SYMPHONY_TOKEN", "status-token")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains('…'), "{text}");
    assert!(
        text.contains("waiting for its blockers: MT-649 (In Progress)"),
        "{text}"
    );
}
