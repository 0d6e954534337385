//! The SSH worker-host primitives (`host::ssh`) against two real OpenSSH servers on loopback
//! (`support::Sshd`): commands on each host over one multiplexed connection, a launch with
//! exactly its environment and its remote process group, the remote process that outlives a
//! killed client until its group is killed there, and failures that name their cause. Not yet
//! the daemon over SSH (issue 19).

use std::time::Duration;

use symphony::host::ssh::{Ssh, SshTarget, shell_quote};

use crate::support::Sshd;

const TIMEOUT: Duration = Duration::from_secs(30);

/// An `Ssh` to `server`, its control socket in a private directory under `home`.
fn connect(server: &Sshd, home: &std::path::Path) -> Ssh {
    let control = home.join(format!("ctl-{}", server.port));
    std::fs::create_dir_all(&control).unwrap();
    std::fs::set_permissions(
        &control,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    Ssh::new(
        SshTarget::parse(&server.target()).unwrap(),
        &control,
        Some(&server.client_config),
    )
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn commands_run_on_each_host_over_one_multiplexed_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        Sshd::start(&dir.path().join("a")),
        Sshd::start(&dir.path().join("b")),
    );
    for server in [&a, &b] {
        let ssh = connect(server, dir.path());
        // The server's port, as the remote side sees the connection: each host is itself.
        let first = ssh.run("echo \"$SSH_CONNECTION\"", TIMEOUT).unwrap();
        assert!(first.status.success(), "{first:?}");
        assert!(
            stdout(&first).ends_with(&format!(" {}", server.port)),
            "{first:?}"
        );
        // One master connection, kept: its socket is there, and `-O check` finds it.
        let sockets: Vec<_> = std::fs::read_dir(dir.path().join(format!("ctl-{}", server.port)))
            .unwrap()
            .collect();
        assert_eq!(sockets.len(), 1, "one control socket per host");
        let again = ssh.run("exit 7", TIMEOUT).unwrap();
        assert_eq!(
            again.status.code(),
            Some(7),
            "the remote exit code comes back"
        );
        let check = std::process::Command::new("ssh")
            .arg("-F")
            .arg(&server.client_config)
            .args(["-p", &server.port.to_string(), "-O", "check", "-o"])
            .arg(format!(
                "ControlPath={}/%C",
                dir.path().join(format!("ctl-{}", server.port)).display()
            ))
            .arg("127.0.0.1")
            .output()
            .unwrap();
        assert!(check.status.success(), "{check:?}");
        // Closed: the master is gone, and a check finds none.
        ssh.close();
        let gone = std::process::Command::new("ssh")
            .arg("-F")
            .arg(&server.client_config)
            .args(["-p", &server.port.to_string(), "-O", "check", "-o"])
            .arg(format!(
                "ControlPath={}/%C",
                dir.path().join(format!("ctl-{}", server.port)).display()
            ))
            .arg("127.0.0.1")
            .output()
            .unwrap();
        assert!(
            !gone.status.success(),
            "the master outlived close: {gone:?}"
        );
    }
}

#[test]
fn a_launch_gets_exactly_its_environment_its_directory_and_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let server = Sshd::start(&dir.path().join("a"));
    let ssh = connect(&server, dir.path());
    let workspace = dir.path().join("it's a workspace");
    std::fs::create_dir_all(&workspace).unwrap();
    // This process holds a secret the launch must not carry.
    let env = vec![
        (
            "GREETING".to_owned(),
            "it's $HOME; `no` expansion".to_owned(),
        ),
        ("PATH".to_owned(), "/usr/bin:/bin".to_owned()),
    ];
    let mut launched = ssh
        .launch(
            "sh",
            &[
                "-c",
                "pwd; env | sort; echo \"pgid $(ps -o pgid= -p $$ | tr -d ' ')\"",
            ],
            workspace.to_str().unwrap(),
            &env,
            false,
        )
        .unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(launched.child.stdout.as_mut().unwrap(), &mut text).unwrap();
    launched.child.wait().unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], workspace.to_str().unwrap());
    let vars: Vec<&str> = lines[1..lines.len() - 1].to_vec();
    // `sh` adds PWD (and may add SHLVL); nothing else comes from anywhere.
    let extra: Vec<&&str> = (vars.iter())
        .filter(|v| !v.starts_with("PWD=") && !v.starts_with("SHLVL=") && !v.starts_with("_="))
        .collect();
    assert_eq!(
        extra,
        [
            &"GREETING=it's $HOME; `no` expansion",
            &"PATH=/usr/bin:/bin"
        ],
        "{text}"
    );
    assert_eq!(
        lines[lines.len() - 1],
        format!("pgid {}", launched.pgid),
        "the reported group is the launched process's own: {text}"
    );
    ssh.close();
}

/// The fact this module exists for: with `ssh -T`, a remote command that does not read stdin
/// survives its killed client. The group the launch reported is how it is found and ended.
#[test]
fn a_remote_process_that_ignores_stdin_outlives_its_client_until_its_group_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Sshd::start(&dir.path().join("a"));
    let ssh = connect(&server, dir.path());
    let mut launched = ssh
        .launch("sh", &["-c", "sleep 600 & sleep 600"], "/", &[], true)
        .unwrap();
    launched.child.kill().unwrap();
    launched.child.wait().unwrap();
    assert!(
        ssh.group_alive(launched.pgid).unwrap(),
        "killing the client left the remote group running"
    );
    ssh.kill_group(launched.pgid).unwrap();
    assert!(
        !ssh.group_alive(launched.pgid).unwrap(),
        "nothing of the group survives"
    );
    // Checked apart from the group test: no process of the group is in the host's table.
    let ours = ssh
        .run(
            &format!("ps -eo pgid= | grep -c '^ *{}$' || true", launched.pgid),
            TIMEOUT,
        )
        .unwrap();
    assert_eq!(
        stdout(&ours),
        "0",
        "a process of group {} is left",
        launched.pgid
    );
    ssh.close();
}

#[test]
fn an_unreachable_host_and_an_unknown_host_key_fail_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let server = Sshd::start(&dir.path().join("a"));
    // Nothing listens on this port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let control = dir.path().join("ctl-closed");
    std::fs::create_dir_all(&control).unwrap();
    let target = SshTarget::parse(&format!("127.0.0.1:{closed}")).unwrap();
    let refused = Ssh::new(target, &control, Some(&server.client_config));
    let output = refused.run("true", TIMEOUT).unwrap();
    assert_eq!(output.status.code(), Some(255));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("Connection refused"),
        "{output:?}"
    );
    let err = refused.launch("true", &[], "/", &[], false).unwrap_err();
    assert!(
        err.to_string().contains("the launch did not start"),
        "{err}"
    );
    assert!(err.to_string().contains("Connection refused"), "{err}");
    // The host presents a key the known-hosts file does not hold.
    std::fs::write(server.dir.join("known_hosts"), "").unwrap();
    let ssh = connect(&server, dir.path());
    let output = ssh.run("true", TIMEOUT).unwrap();
    assert_eq!(output.status.code(), Some(255));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("Host key verification failed"),
        "{output:?}"
    );
}

#[test]
fn quoting_carries_any_text_through_the_remote_shell_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let server = Sshd::start(&dir.path().join("a"));
    let ssh = connect(&server, dir.path());
    for text in [
        "plain",
        "it's",
        "$(id) `id` $HOME",
        "a\nb",
        "'\"\\",
        "--help",
        "*",
    ] {
        let output = ssh
            .run(&format!("printf %s {}", shell_quote(text)), TIMEOUT)
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&output.stdout), text, "{output:?}");
    }
    ssh.close();
}

#[test]
fn a_command_that_outlasts_its_time_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = Sshd::start(&dir.path().join("a"));
    let ssh = connect(&server, dir.path());
    let started = std::time::Instant::now();
    let err = ssh.run("sleep 30", Duration::from_secs(2)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    assert!(started.elapsed() < Duration::from_secs(20));
    ssh.close();
}
