//! The dashboard in a real headless Chromium (installed by `.ci/test`): the page a person
//! opens shows the running issue. The screenshot is kept in `target/test-artifacts/`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::channel;
use std::time::Duration;

fn chromium() -> PathBuf {
    let found = ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.exists())
        })
    });
    found.expect("chromium is not installed: run ./.ci/test (it installs it)")
}

#[test]
fn the_dashboard_renders_the_running_issue_in_a_real_browser() {
    let browser = chromium();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("issues")).unwrap();
    std::fs::write(
        dir.path().join("WORKFLOW.md"),
        "---\ntracker:\n  kind: local\nworkspace:\n  root: ./ws\nserver:\n  port: 0\nagent:\n  kind: demo\n  demo_turn_ms: 600000\n---\nWork on {{ issue.identifier }}.\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("issues/UI-1.md"),
        "---\ntitle: Shown on the dashboard\nstate: Todo\n---\n",
    )
    .unwrap();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_symphony"))
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = channel();
    let stderr = daemon.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut addr = None;
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the daemon starts and dispatches");
        if let Some(rest) = line.split("http://").nth(1) {
            addr = Some(rest.trim_end_matches('/').to_owned());
        }
        if line.contains("dispatching issue_id=\"UI-1\"") {
            break;
        }
    }
    let url = format!("http://{}/", addr.expect("the server address is logged"));

    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let profile = dir.path().join("chromium-profile");
    let common = [
        "--headless".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--no-first-run".to_owned(),
        format!("--user-data-dir={}", profile.display()),
    ];
    let dom = Command::new(&browser)
        .args(&common)
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("data-identifier=\"UI-1\""), "DOM:\n{dom}");
    assert!(
        dom.contains("<table id=\"running\">") || dom.contains("id=\"running\""),
        "DOM:\n{dom}"
    );
    let shot = Command::new(&browser)
        .args(&common)
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg("--window-size=1280,800")
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let png = std::fs::read(&screenshot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 5_000,
        "a real screenshot"
    );

    let pid = rustix::process::Pid::from_raw(daemon.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    assert_eq!(daemon.wait().unwrap().code(), Some(0));
}
