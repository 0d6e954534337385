//! README's promises, run as written: the run command (read out of README.md, not copied
//! here), `symphony status` finding the demo without flags, and the demo starting fresh on
//! every run. Waits are bounded reads of log lines and of the HTTP API.

use crate::daemon_harness;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The first line of the first `sh` block under `## Run` in README.md.
fn readme_run_command() -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let run = readme
        .split("\n## Run\n")
        .nth(1)
        .expect("README has a `## Run` section");
    let block = run
        .split("```sh\n")
        .nth(1)
        .expect("the Run section starts with an sh block");
    block.lines().next().unwrap().trim().to_owned()
}

/// Runs `command` with `sh -c` in `dir` (under the repository, so cargo finds the workspace)
/// until the daemon it starts answers `/readyz`; returns the daemon's URL and its log lines.
fn run_until_ready(command: &str, dir: &Path, runtime_dir: &Path) -> (String, Vec<String>) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("exec {command}"))
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("SYMPHONY_RUNTIME_DIR", runtime_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let (tx, lines) = channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The first run builds the release binary: allow for that.
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut seen = Vec::new();
    let url = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no HTTP server line; saw:\n{}", seen.join("\n")));
        seen.push(line.clone());
        if let Some(rest) = line.split("HTTP server listening on ").nth(1) {
            break rest.trim().trim_end_matches('/').to_owned();
        }
    };
    let addr = url.trim_start_matches("http://").to_owned();
    let ready_by = Instant::now() + daemon_harness::BOUND;
    while daemon_harness::http(&addr, "GET", "/readyz", None).0 != 200 {
        assert!(Instant::now() < ready_by, "/readyz never answered 200");
        std::thread::yield_now();
    }
    // `symphony status` finds it without flags (the daemon registered its address).
    let status = Command::new(env!("CARGO_BIN_EXE_symphony"))
        .args(["status", "--once"])
        .env("SYMPHONY_RUNTIME_DIR", runtime_dir)
        .env_remove("COLUMNS")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(text.starts_with(&format!("Symphony at {url}")), "{text}");

    let group = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    let _ = rustix::process::kill_process_group(group, rustix::process::Signal::INT);
    let status = child.wait().unwrap();
    seen.extend(lines.try_iter());
    assert!(status.success(), "{}", seen.join("\n"));
    (url, seen)
}

use std::os::unix::process::CommandExt as _;

#[test]
fn the_readme_run_command_starts_the_demo_and_status_finds_it() {
    let command = readme_run_command();
    assert!(command.contains(" demo"), "README's run command: {command}");
    // Under the repository wherever the target directory is (CARGO_TARGET_DIR may point
    // outside it), so that cargo finds the workspace; `target/` is ignored by git.
    let scratch = repo().join("target/readme-test");
    std::fs::create_dir_all(&scratch).unwrap();
    let dir = tempfile::tempdir_in(&scratch).unwrap();
    let runtime = tempfile::tempdir().unwrap();
    let (_, lines) = run_until_ready(&command, dir.path(), runtime.path());
    assert!(
        lines.iter().any(|l| l.contains("`symphony status`")),
        "the demo says how to watch it: {}",
        lines.join("\n")
    );
    // The registration is gone with the daemon.
    assert_eq!(std::fs::read_dir(runtime.path()).unwrap().count(), 0);
}

#[test]
fn the_demo_starts_fresh_every_time_and_leaves_other_directories_alone() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let symphony = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_symphony"))
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    // Pretend an earlier run finished DEMO-1 and left a workspace behind.
    std::fs::create_dir_all(demo.join("issues")).unwrap();
    std::fs::create_dir_all(demo.join("workspaces/DEMO-1/stale")).unwrap();
    std::fs::write(demo.join("WORKFLOW.md"), "old").unwrap();
    std::fs::write(demo.join("issues/DEMO-1.md"), "---\nstate: Done\n---\n").unwrap();
    // `symphony demo` in a directory that is not a demo: refused, untouched.
    std::fs::create_dir_all(dir.path().join("mine")).unwrap();
    std::fs::write(dir.path().join("mine/notes.txt"), "keep").unwrap();
    let out = symphony(&["demo", "mine"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a symphony demo"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("mine/notes.txt")).unwrap(),
        "keep"
    );
    // The demo resets its own directory before it starts.
    let runtime = tempfile::tempdir().unwrap();
    let runtime_dir = runtime.path().to_str().unwrap();
    let mut daemon = daemon_harness::Daemon::start_with_env(
        dir.path(),
        &["demo", "demo"],
        &[("SYMPHONY_RUNTIME_DIR", runtime_dir)],
    );
    daemon.wait_for("the demo", |l| l.contains("symphony started"));
    let issue = std::fs::read_to_string(demo.join("issues/DEMO-1.md")).unwrap();
    daemon.interrupt();
    let (code, _) = daemon.wait_exit();
    assert_eq!(code, Some(0));
    assert!(issue.contains("state: Todo"), "{issue}");
    assert!(
        !demo.join("workspaces/DEMO-1/stale").exists(),
        "the old workspaces are gone"
    );
    assert!(demo.join(".symphony-demo").is_file());
}
