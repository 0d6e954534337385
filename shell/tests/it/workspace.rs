//! Workspaces and hooks against the real filesystem, real `sh`, real git (SPEC 9, 15; 17.2).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use crate::support;

use support::process_is_gone;
use symphony::host::LocalHost;
use symphony::workflow::HooksConfig;
use symphony::workspace::{
    HookContext, HookKind, HookStatus, IssueRef, OUTPUT_LIMIT, WorkspaceError, WorkspaceManager,
    hook_env, run_hook, workspace_key,
};

fn hooks() -> HooksConfig {
    HooksConfig {
        after_create: None,
        before_run: None,
        after_run: None,
        before_remove: None,
        timeout_ms: 60_000,
        env: Vec::new(),
        repo_env: Vec::new(),
    }
}

fn issue(identifier: &str) -> IssueRef<'_> {
    IssueRef {
        id: "issue-id",
        identifier,
    }
}

fn manager(root: &Path, hooks: HooksConfig) -> WorkspaceManager {
    WorkspaceManager::new(root, hooks).expect("root is usable")
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Symphony Test",
            "-c",
            "user.email=test@localhost",
        ])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "protocol.file.allow=always",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// --- SPEC 17.2 -------------------------------------------------------------------------------

#[test]
fn paths_are_deterministic_created_when_missing_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(&dir.path().join("ws"), hooks());
    let first = m.prepare(issue("MT-1"), None).unwrap();
    assert!(first.created_now);
    assert_eq!(first.path, m.root().join("MT-1"));
    assert_eq!(first.path, m.path_for("MT-1"));
    std::fs::write(first.path.join("notes.txt"), "kept").unwrap();
    let second = m.prepare(issue("MT-1"), Some(1)).unwrap();
    assert!(!second.created_now);
    assert_eq!(second.path, first.path);
    assert_eq!(
        std::fs::read_to_string(second.path.join("notes.txt")).unwrap(),
        "kept"
    );
}

#[test]
fn a_non_directory_or_a_symlink_at_the_workspace_path_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("precious"), "do not touch").unwrap();
    let m = manager(&dir.path().join("ws"), hooks());

    std::fs::write(m.path_for("MT-2"), "a file").unwrap();
    assert!(matches!(
        m.prepare(issue("MT-2"), None),
        Err(WorkspaceError::NotADirectory { .. })
    ));

    std::os::unix::fs::symlink(&outside, m.path_for("MT-3")).unwrap();
    let err = m.prepare(issue("MT-3"), None).unwrap_err();
    assert!(matches!(err, WorkspaceError::Symlink { .. }), "{err}");
    assert!(matches!(
        m.verify(&m.path_for("MT-3")),
        Err(WorkspaceError::Symlink { .. })
    ));
    // The symlink was not made here: removal leaves it (and what it points at) alone.
    let err = m.remove(issue("MT-3")).unwrap_err();
    assert!(matches!(err, WorkspaceError::NotOurs { .. }), "{err}");
    assert!(std::fs::symlink_metadata(m.path_for("MT-3")).is_ok());
    assert_eq!(
        std::fs::read_to_string(outside.join("precious")).unwrap(),
        "do not touch"
    );
}

#[test]
fn hostile_identifiers_stay_inside_the_root_and_never_collide() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(&dir.path().join("ws"), hooks());
    let long = "y".repeat(300);
    let hostile = [
        "../../etc/passwd",
        "/abs/path",
        "a/../../b",
        "..",
        ".",
        "",
        long.as_str(),
        "Ünïcode-1",
        "nul\0byte",
        "A/B",
        "A_B",
        "A:B",
        "-rf",
    ];
    let mut keys = BTreeSet::new();
    for identifier in hostile {
        let prepared = m
            .prepare(issue(identifier), None)
            .unwrap_or_else(|e| panic!("{identifier:?}: {e}"));
        assert_eq!(prepared.path.parent(), Some(m.root()), "{identifier:?}");
        let canonical = std::fs::canonicalize(&prepared.path).unwrap();
        assert_eq!(canonical.parent(), Some(m.root()), "{identifier:?}");
        m.verify(&prepared.path).unwrap();
        assert!(
            keys.insert(workspace_key(identifier)),
            "{identifier:?} collides"
        );
    }
    // Every workspace is a separate directory directly under the root, nothing escaped it
    // (besides them, only the directory of marks).
    assert_eq!(
        std::fs::read_dir(m.root()).unwrap().count(),
        hostile.len() + 1
    );
    assert!(m.root().join(".symphony/created").is_dir());
    assert!(!dir.path().join("b").exists() && !dir.path().join("etc").exists());
}

#[test]
fn agent_cwd_checks_reject_paths_outside_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(&dir.path().join("ws"), hooks());
    let inside = m.prepare(issue("MT-4"), None).unwrap().path;
    m.verify(&inside).unwrap();
    for path in [
        dir.path().to_path_buf(),
        m.root().to_path_buf(),
        m.root().join("MT-4/nested"),
        m.root().join(".."),
        PathBuf::from("/tmp"),
    ] {
        assert!(
            matches!(m.verify(&path), Err(WorkspaceError::OutsideRoot { .. })),
            "{}",
            path.display()
        );
    }
}

#[test]
fn after_create_runs_only_for_new_workspaces_and_its_failure_removes_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hook.log");
    let fail_flag = dir.path().join("fail");
    std::fs::write(&fail_flag, "").unwrap();
    let m = manager(
        &dir.path().join("ws"),
        HooksConfig {
            after_create: Some(format!(
                "echo created >> {log}; touch marker; test ! -e {flag}",
                log = log.display(),
                flag = fail_flag.display()
            )),
            ..hooks()
        },
    );
    // First attempt: after_create fails, the half-made workspace goes away.
    let err = m.prepare(issue("MT-5"), None).unwrap_err();
    let WorkspaceError::Hook(outcome) = err else {
        panic!("expected a hook failure, got {err}");
    };
    assert_eq!(outcome.kind, HookKind::AfterCreate);
    assert_eq!(outcome.status, HookStatus::Failed { code: Some(1) });
    assert!(!m.path_for("MT-5").exists());
    // Next attempt runs after_create again and succeeds; the one after reuses without it.
    std::fs::remove_file(&fail_flag).unwrap();
    assert!(m.prepare(issue("MT-5"), Some(1)).unwrap().created_now);
    assert!(m.path_for("MT-5").join("marker").exists());
    assert!(!m.prepare(issue("MT-5"), Some(2)).unwrap().created_now);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "created\ncreated\n");
}

#[test]
fn before_run_runs_every_attempt_and_its_failure_aborts_the_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(
        &dir.path().join("ws"),
        HooksConfig {
            before_run: Some(
                "echo \"run $SYMPHONY_ATTEMPT\" >> runs.log; [ \"$SYMPHONY_ATTEMPT\" != 2 ]".into(),
            ),
            timeout_ms: 5_000,
            ..hooks()
        },
    );
    m.prepare(issue("MT-6"), None).unwrap();
    m.prepare(issue("MT-6"), Some(1)).unwrap();
    let err = m.prepare(issue("MT-6"), Some(2)).unwrap_err();
    assert!(
        matches!(err, WorkspaceError::Hook(ref o) if o.kind == HookKind::BeforeRun),
        "{err}"
    );
    assert_eq!(err.to_string(), "hook before_run failed with exit code 1");
    // The workspace is kept: only the attempt failed.
    let runs = std::fs::read_to_string(m.path_for("MT-6").join("runs.log")).unwrap();
    assert_eq!(runs, "run \nrun 1\nrun 2\n");
}

#[test]
fn after_run_and_before_remove_failures_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(
        &dir.path().join("ws"),
        HooksConfig {
            after_run: Some("echo after; exit 3".into()),
            before_remove: Some("exit 4".into()),
            ..hooks()
        },
    );
    m.prepare(issue("MT-7"), None).unwrap();
    let after = m.after_run(issue("MT-7"), None).expect("after_run ran");
    assert_eq!(after.status, HookStatus::Failed { code: Some(3) });
    assert_eq!(after.output, "after\n");
    let removal = m.remove(issue("MT-7")).unwrap();
    assert_eq!(
        removal.hook.map(|h| h.status),
        Some(HookStatus::Failed { code: Some(4) })
    );
    assert!(removal.existed && !m.path_for("MT-7").exists());
    // Removing what is not there is fine.
    assert!(!m.remove(issue("MT-7")).unwrap().existed);
}

// --- Hooks: processes, output, environment -------------------------------------------------

fn context(dir: &Path) -> HookContext<'_> {
    HookContext {
        issue_id: "id-8",
        identifier: "MT-8",
        workspace: dir,
        attempt: Some(3),
    }
}

fn path_env() -> Vec<(OsString, OsString)> {
    vec![("PATH".into(), std::env::var_os("PATH").unwrap_or_default())]
}

#[test]
fn a_timed_out_hook_leaves_no_process_behind() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = run_hook(
        &LocalHost,
        HookKind::BeforeRun,
        "sleep 1000 & echo $! > bg.pid; echo $$ > sh.pid; sleep 1000",
        &context(dir.path()),
        path_env(),
        Duration::from_millis(500),
    );
    assert_eq!(outcome.status, HookStatus::TimedOut);
    assert!(outcome.elapsed >= Duration::from_millis(500));
    for file in ["bg.pid", "sh.pid"] {
        let pid: u32 = std::fs::read_to_string(dir.path().join(file))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            process_is_gone(pid),
            "{file}: process {pid} survived the hook"
        );
    }
}

#[test]
fn a_hook_that_exits_does_not_leave_its_background_children_running() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = run_hook(
        &LocalHost,
        HookKind::AfterCreate,
        "sleep 1000 & echo $! > bg.pid; exit 0",
        &context(dir.path()),
        path_env(),
        Duration::from_secs(30),
    );
    assert_eq!(outcome.status, HookStatus::Succeeded);
    let pid: u32 = std::fs::read_to_string(dir.path().join("bg.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(process_is_gone(pid));
    assert!(outcome.elapsed < Duration::from_secs(30));
}

/// Kills the process whose pid a hook wrote to `detached.pid`: it left the hook's group with
/// `setsid` (that is what the test is about), so the hook could not end it.
fn kill_detached(dir: &Path) {
    let pid: u32 = std::fs::read_to_string(dir.join("detached.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).unwrap(),
        rustix::process::Signal::KILL,
    );
}

/// A child that leaves the process group (`setsid`) keeps the output pipes open; the hook
/// still returns at once when its shell exits, and by its timeout when it does not.
#[test]
fn a_detached_child_holding_the_pipes_cannot_hold_the_hook() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = run_hook(
        &LocalHost,
        HookKind::AfterCreate,
        "setsid sh -c 'echo $$ > detached.pid; exec sleep 40' & echo started; sleep 0.2",
        &context(dir.path()),
        path_env(),
        Duration::from_secs(5),
    );
    kill_detached(dir.path());
    assert_eq!(outcome.status, HookStatus::Succeeded);
    assert!(outcome.output.contains("started"), "{}", outcome.output);
    assert!(
        outcome.elapsed < Duration::from_secs(5),
        "the hook waited for the detached child: {:?}",
        outcome.elapsed
    );

    // Still running at the timeout, with a detached child: back by the timeout plus the
    // output grace, not when the child ends.
    let outcome = run_hook(
        &LocalHost,
        HookKind::BeforeRun,
        "setsid sh -c 'echo $$ > detached.pid; exec sleep 40' & sleep 30",
        &context(dir.path()),
        path_env(),
        Duration::from_millis(500),
    );
    kill_detached(dir.path());
    assert_eq!(outcome.status, HookStatus::TimedOut);
    assert!(
        outcome.elapsed < Duration::from_secs(5),
        "{:?}",
        outcome.elapsed
    );
}

#[test]
fn hook_output_is_capped() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = run_hook(
        &LocalHost,
        HookKind::AfterRun,
        "head -c 100000000 /dev/zero | tr '\\0' x; echo done >&2",
        &context(dir.path()),
        path_env(),
        Duration::from_secs(60),
    );
    assert_eq!(outcome.status, HookStatus::Succeeded);
    assert_eq!(outcome.output.len(), OUTPUT_LIMIT);
    assert!(outcome.output.bytes().all(|b| b == b'x'
        || b == b'd'
        || b == b'o'
        || b == b'n'
        || b == b'e'
        || b == b'\n'));
    assert_eq!(
        outcome.dropped_bytes + OUTPUT_LIMIT as u64,
        100_000_000 + "done\n".len() as u64
    );
}

#[test]
fn hooks_see_only_the_allowlist_named_variables_and_the_issue() {
    let host: Vec<(OsString, OsString)> = [
        ("PATH", "/usr/bin:/bin"),
        ("HOME", "/home/op"),
        ("LC_ALL", "C.UTF-8"),
        ("LINEAR_API_KEY", "lin_api_secret"),
        ("GITHUB_TOKEN", "ghp_secret"),
        ("NPM_TOKEN", "npm_named"),
        ("RANDOM_THING", "x"),
    ]
    .into_iter()
    .map(|(k, v)| (k.into(), v.into()))
    .collect();
    let dir = tempfile::tempdir().unwrap();
    let env = hook_env(host, &["NPM_TOKEN".to_owned()], &context(dir.path()));
    let outcome = run_hook(
        &LocalHost,
        HookKind::BeforeRun,
        "env | sort",
        &context(dir.path()),
        env,
        Duration::from_secs(30),
    );
    let seen: BTreeSet<&str> = outcome
        .output
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    for expected in [
        "PATH",
        "HOME",
        "LC_ALL",
        "NPM_TOKEN",
        "SYMPHONY_ISSUE_ID",
        "SYMPHONY_ISSUE_IDENTIFIER",
        "SYMPHONY_WORKSPACE",
        "SYMPHONY_ATTEMPT",
    ] {
        assert!(
            seen.contains(expected),
            "{expected} missing from\n{}",
            outcome.output
        );
    }
    for secret in ["LINEAR_API_KEY", "GITHUB_TOKEN", "RANDOM_THING"] {
        assert!(!seen.contains(secret), "{secret} leaked into the hook");
    }
    assert!(outcome.output.contains("SYMPHONY_ATTEMPT=3\n"));
    assert!(outcome.output.contains("SYMPHONY_ISSUE_IDENTIFIER=MT-8\n"));
}

// --- Real git ----------------------------------------------------------------------------------

#[test]
fn after_create_clones_a_repository_and_a_reused_workspace_keeps_local_commits() {
    let dir = tempfile::tempdir().unwrap();
    // A bare repository with one commit, served over file://.
    let seed = dir.path().join("seed");
    std::fs::create_dir(&seed).unwrap();
    git(&seed, &["init", "-q"]);
    std::fs::write(seed.join("README.md"), "hello\n").unwrap();
    git(&seed, &["add", "README.md"]);
    git(&seed, &["commit", "-qm", "initial"]);
    let bare = dir.path().join("origin.git");
    git(
        dir.path(),
        &[
            "clone",
            "-q",
            "--bare",
            seed.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );

    let m = manager(
        &dir.path().join("ws"),
        HooksConfig {
            after_create: Some(format!("git clone -q file://{} .", bare.display())),
            ..hooks()
        },
    );
    let first = m.prepare(issue("MT-9"), None).unwrap();
    assert!(first.created_now);
    assert_eq!(
        std::fs::read_to_string(first.path.join("README.md")).unwrap(),
        "hello\n"
    );

    // The agent commits locally during the first attempt.
    std::fs::write(first.path.join("fix.txt"), "fixed\n").unwrap();
    git(&first.path, &["add", "fix.txt"]);
    git(&first.path, &["commit", "-qm", "local fix"]);

    let second = m.prepare(issue("MT-9"), Some(1)).unwrap();
    assert!(
        !second.created_now,
        "the workspace is reused, not cloned again"
    );
    let log = git(&second.path, &["log", "--format=%s"]);
    assert_eq!(log, "local fix\ninitial\n");
}

// --- Reports ---------------------------------------------------------------------------------

#[test]
fn orphans_are_reported_and_old_inactive_workspaces_listed() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(&dir.path().join("ws"), hooks());
    for id in ["MT-10", "MT-11", "MT-12"] {
        m.prepare(issue(id), None).unwrap();
    }
    std::fs::write(m.root().join("stray-file"), "").unwrap();
    let orphans = m.orphans(["MT-10", "MT-11"]).unwrap();
    assert_eq!(orphans, [m.root().join("MT-12")]);
    assert!(m.path_for("MT-12").exists(), "reported, never deleted");

    // MT-10 untouched for 10 days, MT-11 fresh, MT-12 old but still active.
    let ten_days_ago = SystemTime::now() - Duration::from_secs(10 * 86_400);
    for id in ["MT-10", "MT-12"] {
        std::fs::File::open(m.path_for(id))
            .unwrap()
            .set_modified(ten_days_ago)
            .unwrap();
    }
    let expired = m
        .expired(
            Duration::from_secs(7 * 86_400),
            SystemTime::now(),
            ["MT-12"],
        )
        .unwrap();
    assert_eq!(expired, [m.root().join("MT-10")]);
}

#[test]
fn the_default_root_is_private_and_refused_when_planted() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("symphony_workspaces");
    WorkspaceManager::new_private(&root, hooks()).unwrap();
    assert_eq!(
        std::fs::metadata(&root).unwrap().permissions().mode() & 0o777,
        0o700
    );

    // A symlink planted where the default root goes (to another user's directory, say).
    let planted = tmp.path().join("planted_root");
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &planted).unwrap();
    let err = WorkspaceManager::new_private(&planted, hooks()).unwrap_err();
    assert!(err.to_string().contains("is a symlink"), "{err}");

    // A directory owned by someone else (only root can make one to test with).
    if rustix::process::geteuid().is_root() {
        let theirs = tmp.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        rustix::fs::chown(
            &theirs,
            Some(rustix::fs::Uid::from_raw(65534)),
            Some(rustix::fs::Gid::from_raw(65534)),
        )
        .unwrap();
        assert_eq!(std::fs::metadata(&theirs).unwrap().uid(), 65534);
        let err = WorkspaceManager::new_private(&theirs, hooks()).unwrap_err();
        assert!(err.to_string().contains("belongs to uid 65534"), "{err}");
    }
}

#[test]
fn a_directory_symphony_did_not_create_is_neither_used_nor_removed() {
    let root = tempfile::tempdir().unwrap();
    let manager = manager(root.path(), hooks());
    let theirs = root.path().join("projects");
    std::fs::create_dir_all(theirs.join("important")).unwrap();
    std::fs::write(theirs.join("important/thesis.txt"), "years of work").unwrap();
    let err = manager.prepare(issue("projects"), None).unwrap_err();
    assert!(
        err.to_string().contains("symphony did not create it"),
        "{err}"
    );
    let err = manager.remove(issue("projects")).unwrap_err();
    assert!(
        err.to_string().contains("symphony did not create it"),
        "{err}"
    );
    assert!(theirs.join("important/thesis.txt").exists());
    // What the manager creates, it may remove.
    let prepared = manager.prepare(issue("MT-1"), None).unwrap();
    assert!(prepared.created_now);
    assert!(manager.remove(issue("MT-1")).unwrap().existed);
    assert!(!prepared.path.exists());
}

/// A host that does what [`LocalHost`] does and writes down each call: the seam SSH and
/// sandbox hosts plug into.
#[derive(Debug, Default)]
struct Recording {
    calls: std::sync::Mutex<Vec<String>>,
}

impl Recording {
    fn note(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }
}

impl symphony::host::Host for Recording {
    fn name(&self) -> &str {
        "recording"
    }
    fn launch(&self, launch: &symphony::host::Launch<'_>) -> std::io::Result<std::process::Child> {
        self.note(format!("launch {} {}", launch.program, launch.args[0]));
        LocalHost.launch(launch)
    }
    fn entry(&self, path: &Path) -> std::io::Result<Option<symphony::host::Entry>> {
        LocalHost.entry(path)
    }
    fn create_dir(&self, path: &Path, private: bool) -> std::io::Result<()> {
        self.note(format!(
            "create_dir {}",
            path.file_name().unwrap().to_string_lossy()
        ));
        LocalHost.create_dir(path, private)
    }
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        LocalHost.create_dir_all(path)
    }
    fn canonicalize(&self, path: &Path) -> std::io::Result<PathBuf> {
        LocalHost.canonicalize(path)
    }
    fn write_file(&self, path: &Path, bytes: &[u8], append: bool) -> std::io::Result<()> {
        self.note(format!(
            "write {}",
            path.file_name().unwrap().to_string_lossy()
        ));
        LocalHost.write_file(path, bytes, append)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        LocalHost.remove_file(path)
    }
    fn remove_dir(&self, path: &Path) -> std::io::Result<()> {
        LocalHost.remove_dir(path)
    }
    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.note(format!(
            "remove_dir_all {}",
            path.file_name().unwrap().to_string_lossy()
        ));
        LocalHost.remove_dir_all(path)
    }
    fn list_dirs(&self, path: &Path) -> std::io::Result<Vec<String>> {
        self.note("list_dirs".into());
        LocalHost.list_dirs(path)
    }
    fn free_space_mb(&self, path: &Path) -> std::io::Result<u64> {
        self.note("free_space_mb".into());
        LocalHost.free_space_mb(path)
    }
}

#[test]
fn every_workspace_operation_and_hook_goes_through_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let host = std::sync::Arc::new(Recording::default());
    let hooks = HooksConfig {
        after_create: Some("true".into()),
        before_remove: Some("true".into()),
        ..hooks()
    };
    let manager = WorkspaceManager::on(host.clone(), dir.path(), hooks).unwrap();
    assert_eq!(manager.host().name(), "recording");
    manager.prepare(issue("SEAM-1"), None).unwrap();
    assert!(manager.free_space_mb().unwrap() > 0);
    manager.orphans(["SEAM-1"]).unwrap();
    manager.remove(issue("SEAM-1")).unwrap();
    assert_eq!(
        *host.calls.lock().unwrap(),
        [
            "create_dir SEAM-1",
            "write SEAM-1", // the mark
            "launch sh -lc",
            "free_space_mb",
            "list_dirs",
            "launch sh -lc",
            "remove_dir_all SEAM-1",
        ]
    );
    assert!(!dir.path().join("SEAM-1").exists());
}

#[test]
fn hooks_see_the_repo_block_as_symphony_repo_variables() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("env.txt");
    let hooks = HooksConfig {
        after_create: Some(format!("env > {}", out.display())),
        repo_env: vec![
            ("SYMPHONY_REPO_OWNER".into(), "acme".into()),
            ("SYMPHONY_REPO_NAME".into(), "app".into()),
        ],
        ..hooks()
    };
    manager(&dir.path().join("ws"), hooks)
        .prepare(issue("REPO-1"), None)
        .unwrap();
    let env = std::fs::read_to_string(&out).unwrap();
    assert!(
        env.lines().any(|l| l == "SYMPHONY_REPO_OWNER=acme"),
        "{env}"
    );
    assert!(env.lines().any(|l| l == "SYMPHONY_REPO_NAME=app"), "{env}");
}
