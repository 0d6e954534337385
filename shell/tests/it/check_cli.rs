//! `symphony check`, `config`, `doctor` and friends through the real binary, in temp
//! directories.

use crate::gitea_fake;
use crate::github_fake;
use crate::gitlab_fake;
use crate::jira_fake;
use crate::linear_fake;

use std::path::Path;
use std::process::{Command, Output};

fn symphony(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_symphony"));
    command
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir);
    for (k, v) in vars {
        command.env(k, v);
    }
    command.output().expect("the symphony binary runs")
}

fn text(bytes: &[u8], dir: &Path) -> String {
    String::from_utf8_lossy(bytes).replace(&dir.display().to_string(), "[DIR]")
}

const LOCAL: &str = "---\ntracker:\n  kind: local\n---\nWork on {{ issue.identifier }}: {{ issue.title }}\n{% if attempt %}Attempt {{ attempt }}.{% endif %}\n";

#[test]
fn check_uses_workflow_md_in_the_current_directory_by_default() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("WORKFLOW.md"), LOCAL).unwrap();
    let out = symphony(dir.path(), &["check"], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        text(&out.stderr, dir.path())
    );
    let stdout = text(&out.stdout, dir.path());
    assert!(stdout.starts_with("ok: WORKFLOW.md\n"), "{stdout}");
    assert!(
        stdout.contains("tracker local (issues in [DIR]/issues)"),
        "{stdout}"
    );
}

#[test]
fn check_takes_an_explicit_path_and_reports_errors_with_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows/broken.md");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        "---\ntracker:\n  kind: local\n  active_states: [Todo\n---\nbody\n",
    )
    .unwrap();
    let out = symphony(dir.path(), &["check", "flows/broken.md"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr, dir.path());
    assert!(
        stderr.starts_with("error[workflow_parse_error]: flows/broken.md:5:1: "),
        "{stderr}"
    );

    let out = symphony(dir.path(), &["check", "missing.md"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr, dir.path()).starts_with("error[missing_workflow_file]: missing.md: ")
    );
}

#[test]
fn check_renders_the_prompt_so_unknown_variables_fail() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("WORKFLOW.md"),
        "---\ntracker:\n  kind: local\nagnet: {}\n---\nHello {{ issue.titel }}\n",
    )
    .unwrap();
    let out = symphony(dir.path(), &["check"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr, dir.path());
    insta::assert_snapshot!("check_render_error", stderr);
}

#[test]
fn config_shows_values_sources_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("WORKFLOW.md"),
        "---\ntracker:\n  kind: linear\n  provider:\n    project_slug: demo\nworkspace:\n  root: ~/ws\nagent:\n  max_turns: \"7\"\nserver:\n  port: 8080\n  auth_token: $DASH_TOKEN\n---\nprompt\n",
    )
    .unwrap();
    let secrets = [
        ("LINEAR_API_KEY", "lin_api_do_not_print"),
        ("DASH_TOKEN", "dash_do_not_print_0123"),
    ];
    let out = symphony(
        dir.path(),
        &[
            "config",
            "--port",
            "0",
            "--bind",
            "::1",
            "--state-dir",
            "state",
        ],
        &secrets,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        text(&out.stderr, dir.path())
    );
    let stdout = text(&out.stdout, dir.path());
    for (_, secret) in secrets {
        assert!(!stdout.contains(secret), "secret printed:\n{stdout}");
    }
    insta::assert_snapshot!("config_yaml", stdout);

    let out = symphony(dir.path(), &["config", "--format", "json"], &secrets);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(json["config"]["agent"]["max_turns"], 7);
    assert_eq!(json["config"]["tracker"]["provider"]["api_key"], "****");
    assert_eq!(
        json["sources"]["tracker.provider.api_key"],
        "environment variable LINEAR_API_KEY"
    );
    assert_eq!(
        json["sources"]["server.auth_token"],
        "environment variable DASH_TOKEN"
    );
    assert_eq!(json["sources"]["server.port"], "workflow file");
    assert_eq!(json["sources"]["polling.interval_ms"], "default");
}

#[test]
fn completions_and_the_man_page_come_from_the_cli_definition() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let out = symphony(dir.path(), &["completions", shell], &[]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        for word in ["demo", "check", "config", "replay", "--logs-root"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let out = symphony(dir.path(), &["man"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains(".TH symphony 1"), "{page}");
    assert!(
        page.contains(".SH NAME") && page.contains("logs\\-root"),
        "{page}"
    );
    assert_eq!(
        symphony(dir.path(), &["completions", "tcsh"], &[])
            .status
            .code(),
        Some(2)
    );
}

/// The shared fake Linear with one project, `proj` ("Project"), and no issue; its key is
/// `linear_fake::KEY`, any other gets a 401.
fn fake_linear() -> String {
    let board = linear_fake::Board {
        projects: vec![("proj".into(), "Project".into())],
        ..linear_fake::Board::default()
    };
    linear_fake::fake(linear_fake::Fault::None, board).0
}

fn line<'a>(out: &'a str, check: &str) -> &'a str {
    out.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(check))
        .unwrap_or_else(|| panic!("no {check} line in\n{out}"))
}

#[test]
fn doctor_passes_a_healthy_local_setup() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("issues")).unwrap();
    std::fs::write(
        dir.path().join("WORKFLOW.md"),
        "---\ntracker:\n  kind: local\nworkspace:\n  root: ./ws\n  min_free_disk_mb: 1\nagent:\n  kind: demo\n---\nWork.\n",
    )
    .unwrap();
    let out = symphony(dir.path(), &["doctor"], &[]);
    let stdout = text(&out.stdout, dir.path());
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    for check in [
        "workflow",
        "tracker",
        "states",
        "agent",
        "git",
        "bash",
        "workspace",
        "sandbox",
        "http",
    ] {
        assert!(line(&stdout, check).starts_with("ok"), "{stdout}");
    }
    assert!(line(&stdout, "workspace").contains("[DIR]/ws writable"));
    assert!(
        line(&stdout, "sandbox").contains("none: agents run as"),
        "{stdout}"
    );
}

/// `doctor` tries the configured sandbox on this host: bubblewrap works here (`.ci/test`
/// installs it); a `bwrap` that cannot start is a failure naming the package.
#[test]
fn doctor_reports_the_sandbox_backend_and_whether_it_works_here() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("issues")).unwrap();
    // `doctor` on a local demo workflow with this `sandbox` section: its sandbox line and
    // whether doctor passed.
    let doctor = |sandbox: &str, vars: &[(&str, &str)]| {
        std::fs::write(
            dir.path().join("WORKFLOW.md"),
            format!(
                "---\ntracker:\n  kind: local\nworkspace:\n  root: ./ws\nagent:\n  kind: demo\nsandbox:\n{sandbox}---\nWork.\n"
            ),
        )
        .unwrap();
        let out = symphony(dir.path(), &["doctor"], vars);
        let stdout = text(&out.stdout, dir.path());
        (line(&stdout, "sandbox").to_owned(), out.status.success())
    };
    let (sandbox, _) = doctor("  backend: bubblewrap\n  network: none\n", &[]);
    assert!(
        sandbox.starts_with("ok")
            && sandbox.contains("bubblewrap (bubblewrap 0.")
            && sandbox.contains("no network but a private loopback"),
        "{sandbox}"
    );
    // srt, with its allowlist.
    let srt = crate::support::srt_binary();
    let (sandbox, _) = doctor(
        &format!(
            "  backend: srt\n  srt_command: {}\n  network: [api.openai.com]\n",
            srt.display()
        ),
        &[],
    );
    assert!(
        sandbox.starts_with("ok")
            && sandbox.contains("srt (")
            && sandbox.contains("network only to api.openai.com"),
        "{sandbox}"
    );
    // No bwrap on PATH: the sandbox cannot work, and doctor says so.
    let (sandbox, passed) = doctor("  backend: bubblewrap\n", &[("PATH", "/nonexistent")]);
    assert!(
        sandbox.starts_with("fail") && sandbox.contains("install bubblewrap"),
        "{sandbox}"
    );
    assert!(!passed);
}

#[test]
fn doctor_names_a_wrong_key_an_empty_project_a_missing_agent_and_a_busy_port() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = fake_linear();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    std::fs::write(
        dir.path().join("WORKFLOW.md"),
        format!(
            "---\ntracker:\n  kind: linear\n  provider:\n    endpoint: {endpoint}\n    project_slug: nope\nworkspace:\n  root: ./ws\n  min_free_disk_mb: 1\ncodex:\n  command: no-such-codex-9f2 app-server\nserver:\n  port: {port}\n---\nWork.\n"
        ),
    )
    .unwrap();
    let out = symphony(dir.path(), &["doctor"], &[("LINEAR_API_KEY", "bad-key")]);
    let stdout = text(&out.stdout, dir.path());
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let tracker = line(&stdout, "tracker");
    assert!(
        tracker.starts_with("fail")
            && tracker.contains("401")
            && tracker.contains("LINEAR_API_KEY"),
        "{tracker}"
    );
    assert!(!stdout.contains("bad-key"), "the key is never printed");
    let agent = line(&stdout, "agent");
    assert!(
        agent.starts_with("fail") && agent.contains("no-such-codex-9f2"),
        "{agent}"
    );
    let http = line(&stdout, "http");
    assert!(
        http.starts_with("fail") && http.contains(&port.to_string()),
        "{http}"
    );

    let out = symphony(
        dir.path(),
        &["doctor"],
        &[("LINEAR_API_KEY", linear_fake::KEY)],
    );
    let stdout = text(&out.stdout, dir.path());
    let tracker = line(&stdout, "tracker");
    assert!(
        tracker.starts_with("fail")
            && tracker.contains("no project with slug \"nope\"")
            && tracker.contains("project_slug"),
        "{tracker}"
    );
    drop(busy);
}

#[test]
fn doctor_checks_linear_states_against_the_project_teams() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = fake_linear();
    let doctor = |states: &str| {
        std::fs::write(
            dir.path().join("WORKFLOW.md"),
            format!(
                "---\ntracker:\n  kind: linear\n  provider:\n    endpoint: {endpoint}\n    project_slug: proj\n{states}workspace:\n  root: ./ws\n  min_free_disk_mb: 1\nagent:\n  kind: demo\n---\nWork.\n"
            ),
        )
        .unwrap();
        let out = symphony(
            dir.path(),
            &["doctor"],
            &[("LINEAR_API_KEY", linear_fake::KEY)],
        );
        (out.status.code(), text(&out.stdout, dir.path()))
    };

    let (code, stdout) = doctor("");
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        line(&stdout, "tracker").starts_with("warn"),
        "found, but no issue in the active states: {stdout}"
    );
    let states = line(&stdout, "states");
    assert!(
        states.starts_with("ok")
            && states.contains("every configured state exists in project \"Project\"")
            && states
                .contains("default terminal states it does not use: Closed, Cancelled, Duplicate"),
        "{states}"
    );

    let (code, stdout) =
        doctor("  active_states: [Todo, In Progres]\n  terminal_states: [Done, Cancelled]\n");
    assert_eq!(code, Some(0), "a partial mismatch warns: {stdout}");
    let states = line(&stdout, "states");
    assert!(
        states.starts_with("warn")
            && states.contains("active In Progres; terminal Cancelled")
            && states.contains("it has: Backlog, Todo, In Progress, Done, Canceled"),
        "{states}"
    );

    let (code, stdout) = doctor("  active_states: [Ready]\n");
    assert_eq!(code, Some(1), "{stdout}");
    let states = line(&stdout, "states");
    assert!(
        states.starts_with("fail") && states.contains("nothing would be dispatched: Ready"),
        "{states}"
    );
}

#[test]
fn doctor_against_github_names_a_wrong_token_an_unknown_repository_and_missing_state_labels() {
    let dir = tempfile::tempdir().unwrap();
    let mut repo = github_fake::Repo::default();
    repo.issues
        .push(github_fake::gh_issue(1, "open", &["state:Todo"], false));
    repo.labels.push("state:Done".into());
    let (api, _) = github_fake::fake(repo);
    let doctor = |repo: &str, token: &str| {
        std::fs::write(
            dir.path().join("WORKFLOW.md"),
            format!(
                "---\ntracker:\n  kind: github\n  provider:\n    api_url: {api}\n    repo: {repo}\nworkspace:\n  root: ./ws\n  min_free_disk_mb: 1\nagent:\n  kind: demo\n---\nWork.\n"
            ),
        )
        .unwrap();
        let out = symphony(dir.path(), &["doctor"], &[("GITHUB_TOKEN", token)]);
        (out.status.code(), text(&out.stdout, dir.path()))
    };

    let (code, stdout) = doctor("acme/app", "ghp_wrong");
    assert_eq!(code, Some(1), "{stdout}");
    let tracker = line(&stdout, "tracker");
    assert!(
        tracker.starts_with("fail") && tracker.contains("401") && tracker.contains("GITHUB_TOKEN"),
        "{tracker}"
    );
    assert!(!stdout.contains("ghp_wrong"), "the token is never printed");

    let (code, stdout) = doctor("acme/nope", github_fake::TOKEN);
    assert_eq!(code, Some(1), "{stdout}");
    let tracker = line(&stdout, "tracker");
    assert!(
        tracker.starts_with("fail") && tracker.contains("no repository acme/nope"),
        "{tracker}"
    );

    let (code, stdout) = doctor("acme/app", github_fake::TOKEN);
    assert_eq!(code, Some(0), "{stdout}");
    let tracker = line(&stdout, "tracker");
    assert!(
        tracker.starts_with("ok") && tracker.contains("repository acme/app: 1 issue(s)"),
        "{tracker}"
    );
    let states = line(&stdout, "states");
    assert!(
        states.starts_with("warn")
            && states.contains("active In Progress")
            && states.contains("it has: Open, Closed, Done, Todo"),
        "no `state:In Progress` label yet: {states}"
    );
}

/// A closed stdout is a normal end for every printing subcommand: each writes into a pipe
/// whose reading end is already closed, so every write fails with EPIPE.
#[test]
fn printing_into_a_closed_pipe_is_a_normal_end() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("WORKFLOW.md"), LOCAL).unwrap();
    for args in [
        &["man"][..],
        &["completions", "bash"],
        &["config"],
        &["check"],
    ] {
        let (reader, writer) = rustix::pipe::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_symphony"))
            .args(args)
            .current_dir(dir.path())
            .stdout(std::process::Stdio::from(writer))
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
    }
}

#[test]
fn a_mistyped_subcommand_gets_a_suggestion_not_a_missing_file_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = symphony(dir.path(), &["stauts"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("did you mean `symphony status`?"),
        "{stderr}"
    );
    // A path that names no file and is not close to a command keeps the file error.
    let out = symphony(dir.path(), &["flows/WORKFLOW.md"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing_workflow_file"));
}

/// doctor applies the same template validation as check and daemon startup.
#[test]
fn doctor_fails_a_template_that_cannot_render() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("WORKFLOW.md"),
        LOCAL.replace("{{ issue.title }}", "{{ issue.titel }}"),
    )
    .unwrap();
    let out = symphony(dir.path(), &["doctor"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("template_render_error"), "{stdout}");
}

#[test]
fn doctor_names_the_gitea_state_labels_the_repository_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let mut repo = gitea_fake::Repo::with(&[(1, true, &["aiops/todo"])]);
    repo.labels.retain(|(_, name)| name != "aiops/merging");
    let (base, _) = gitea_fake::fake(repo);
    std::fs::write(
        dir.path().join("WORKFLOW.md"),
        format!(
            "---\ntracker:\n  kind: gitea\n  provider:\n    endpoint: {base}\n    repo: acme/app\nworkspace:\n  root: ./ws\n  min_free_disk_mb: 1\nagent:\n  kind: demo\n---\nWork.\n"
        ),
    )
    .unwrap();
    let out = symphony(
        dir.path(),
        &["doctor"],
        &[("GITEA_TOKEN", gitea_fake::TOKEN)],
    );
    let stdout = text(&out.stdout, dir.path());
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(line(&stdout, "tracker").starts_with("ok"), "{stdout}");
    let remark = stdout
        .lines()
        .find(|l| l.contains("state labels missing"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        remark.starts_with("warn") && remark.contains("aiops/merging"),
        "{remark}"
    );
    assert!(!stdout.contains(gitea_fake::TOKEN), "{stdout}");
}

/// `doctor` against Jira: the project and its statuses; SPEC's default `Todo` is not a
/// status of Jira's default workflow, and doctor says so, naming what the project has.
#[test]
fn doctor_checks_jira_statuses_against_the_project() {
    let dir = tempfile::tempdir().unwrap();
    let (base, _) = jira_fake::fake(jira_fake::Site::with(1));
    let doctor = |states: &str| {
        std::fs::write(
            dir.path().join("WORKFLOW.md"),
            format!(
                "---\ntracker:\n  kind: jira\n{states}  provider:\n    base_url: {base}\n    email: {}\n    project_key: ENG\nworkspace:\n  root: ./ws\n  min_free_disk_mb: 1\nagent:\n  kind: demo\n---\nWork.\n",
                jira_fake::EMAIL
            ),
        )
        .unwrap();
        let out = symphony(
            dir.path(),
            &["doctor"],
            &[("JIRA_API_TOKEN", jira_fake::TOKEN)],
        );
        (out.status.code(), text(&out.stdout, dir.path()))
    };
    let (code, stdout) = doctor("");
    assert_eq!(code, Some(0), "{stdout}");
    let states = line(&stdout, "states");
    assert!(
        states.starts_with("warn")
            && states.contains("active Todo")
            && states.contains("it has: To Do, In Progress, In Review, Done"),
        "{states}"
    );
    let (code, stdout) = doctor("  active_states: [To Do, In Progress]\n");
    assert_eq!(code, Some(0), "{stdout}");
    assert!(line(&stdout, "tracker").starts_with("ok"), "{stdout}");
    assert!(
        line(&stdout, "tracker").contains("project ENG (Engineering)"),
        "{stdout}"
    );
    assert!(line(&stdout, "states").starts_with("ok"), "{stdout}");
    assert!(!stdout.contains(jira_fake::TOKEN), "{stdout}");
}

/// `doctor` against GitLab: the project, the states its labels can carry, and the state
/// labels it lacks.
#[test]
fn doctor_names_the_gitlab_state_labels_the_project_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let mut project = gitlab_fake::Project::with(&[(1, &["Todo"])]);
    project.labels.retain(|l| l != "In Progress");
    let (api, _) = gitlab_fake::fake(project);
    std::fs::write(
        dir.path().join("WORKFLOW.md"),
        format!(
            "---\ntracker:\n  kind: gitlab\n  provider:\n    endpoint: {api}\n    project: acme/platform/app\nworkspace:\n  root: ./ws\n  min_free_disk_mb: 1\nagent:\n  kind: demo\n---\nWork.\n"
        ),
    )
    .unwrap();
    let out = symphony(
        dir.path(),
        &["doctor"],
        &[("GITLAB_TOKEN", gitlab_fake::TOKEN)],
    );
    let stdout = text(&out.stdout, dir.path());
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        line(&stdout, "tracker").contains("project acme/platform/app"),
        "{stdout}"
    );
    let remark = (stdout.lines())
        .find(|l| l.contains("state labels missing"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        remark.starts_with("warn") && remark.contains("In Progress"),
        "{remark}"
    );
    assert!(!stdout.contains(gitlab_fake::TOKEN), "{stdout}");
}

/// `doctor` with `agent.kind: claude`: the CLI found with its version, and, as root with no
/// sandbox, a warning in the same line; a missing CLI fails with the install hint.
#[test]
fn doctor_finds_the_claude_cli_and_its_version() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("issues")).unwrap();
    let doctor = |command: &str| {
        std::fs::write(
            dir.path().join("WORKFLOW.md"),
            format!(
                "---\ntracker:\n  kind: local\nworkspace:\n  root: ./ws\n  min_free_disk_mb: 1\nagent:\n  kind: claude\nclaude:\n  command: '{command}'\nserver:\n  port: -1\n---\nWork.\n"
            ),
        )
        .unwrap();
        let out = symphony(dir.path(), &["doctor"], &[]);
        line(&text(&out.stdout, dir.path()), "agent").to_owned()
    };
    let binary = crate::support::claude_binary();
    let agent = doctor(&binary.display().to_string());
    assert!(
        agent.starts_with("ok") && agent.contains("(Claude Code)"),
        "{agent}"
    );
    if rustix::process::geteuid().is_root() {
        assert!(agent.contains("running as root with no sandbox"), "{agent}");
    }
    let agent = doctor("no-such-claude-7c1");
    assert!(
        agent.starts_with("fail") && agent.contains("@anthropic-ai/claude-code"),
        "{agent}"
    );
}
