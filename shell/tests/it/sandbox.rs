//! The bubblewrap sandbox around the agent, with the real `bwrap` (`.ci/test` installs it):
//! what a process inside can read, write and reach. The home and workspace live under
//! `/var/tmp`, not `/tmp`, which is private inside: a credential there would be hidden by the
//! private `/tmp` alone, and the test would prove nothing. A control file beside each
//! credential must stay readable, so a test that sees nothing at all fails.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use symphony::host::sandbox::{Backend, Network, SandboxConfig};
use symphony::host::{Host, Launch, LocalHost, Sandboxed};

/// `bwrap` must be installed: the sandbox is tested, not skipped.
fn require_bwrap() {
    let found = std::process::Command::new("bwrap")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "bwrap is not installed: run ./.ci/test (it installs bubblewrap)"
    );
}

struct Bed {
    dir: tempfile::TempDir,
    home: PathBuf,
    workspace: PathBuf,
    outside: PathBuf,
    runtime: PathBuf,
}

fn bed() -> Bed {
    require_bwrap();
    let dir = tempfile::Builder::new()
        .prefix("symphony-sandbox-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let home = dir.path().join("home");
    let write = |path: &Path, text: &str| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(&home.join(".ssh/id_ed25519"), "PRIVATE-SSH-KEY");
    write(&home.join(".aws/credentials"), "AWS-SECRET");
    write(&home.join(".netrc"), "machine x password NETRC-SECRET");
    write(&home.join(".npmrc"), "//registry/:_authToken=NPM-SECRET");
    write(&home.join("certs/deep/server.pem"), "PEM-SECRET");
    write(&home.join("notes.txt"), "plain notes");
    let workspace = dir.path().join("workspaces/ISSUE-1");
    write(&workspace.join("README.md"), "the repository");
    let git = |args: &[&str]| {
        let status = std::process::Command::new("git")
            .args(args)
            .current_dir(&workspace)
            .env("HOME", &home)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    };
    git(&["init", "-q"]);
    let hooks = workspace.join(".git/hooks");
    if hooks.exists() {
        std::fs::remove_dir_all(&hooks).unwrap();
    }
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let runtime = dir.path().join("runtime-home");
    Bed {
        home,
        workspace,
        outside,
        runtime,
        dir,
    }
}

/// Runs `script` with `bash -c` in the sandbox; its stdout and exit code.
fn run(bed: &Bed, config: SandboxConfig, script: &str) -> (String, i32) {
    let host = Sandboxed::new(Arc::new(LocalHost), config);
    let env = vec![
        // srt is a node script: node must be on the agent's PATH, as on the daemon's.
        ("PATH".into(), std::env::var_os("PATH").unwrap_or_default()),
        ("HOME".into(), bed.home.clone().into_os_string()),
        ("TMPDIR".into(), "/somewhere/else".into()),
    ];
    let writable = [bed.runtime.clone()];
    let child = host
        .launch(&Launch {
            program: "bash",
            args: &["-c", script],
            cwd: &bed.workspace,
            env,
            stdin: false,
            writable: &writable,
        })
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("bwrap:"), "bwrap itself failed: {stderr}");
    if !output.status.success() {
        // Shown with a failing test's output: what the sandbox said.
        eprintln!("stderr of the sandboxed script:\n{stderr}");
    }

    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        output.status.code().unwrap_or(-1),
    )
}

fn bubblewrap() -> SandboxConfig {
    SandboxConfig {
        backend: Backend::Bubblewrap,
        ..SandboxConfig::default()
    }
}

/// srt, with its settings and private temporary directory under the bed's state root.
fn srt(bed: &Bed, network: Network) -> SandboxConfig {
    let state = bed.dir.path().join("state");
    SandboxConfig {
        backend: Backend::Srt,
        network,
        srt_command: crate::support::srt_binary().display().to_string(),
        state_root: Some(state),
        ..SandboxConfig::default()
    }
}

/// `label: ok` when `command` succeeds, `label: refused` when it fails.
fn probe(label: &str, command: &str) -> String {
    format!(
        "if {command} >/dev/null 2>&1; then echo '{label}: ok'; else echo '{label}: refused'; fi\n"
    )
}

/// What each backend must keep a process inside from doing, and what it must let it do.
fn confinement(bed: &Bed, config: SandboxConfig) {
    let h = bed.home.display();
    let o = bed.outside.display();
    let r = bed.runtime.display();
    let script = [
        probe("notes", &format!("grep -q plain {h}/notes.txt")),
        // The daemon's own binary (here the test binary), wherever the checkout is, /tmp too.
        probe("own binary", &format!("test -x {}", std::env::current_exe().unwrap().display())),
        probe("ssh key", &format!("cat {h}/.ssh/id_ed25519")),
        probe("aws", &format!("grep -q SECRET {h}/.aws/credentials")),
        probe("netrc", &format!("grep -q SECRET {h}/.netrc")),
        probe("npmrc", &format!("grep -q SECRET {h}/.npmrc")),
        probe("pem", &format!("grep -q SECRET {h}/certs/deep/server.pem")),
        probe("shadow", "grep -q root /etc/shadow"),
        probe("write workspace", "echo x > made-inside.txt"),
        probe("write runtime home", &format!("echo x > {r}/state.json")),
        probe("write home", &format!("echo x > {h}/planted")),
        probe("write outside", &format!("echo x > {o}/planted")),
        probe("write etc", "echo x > /etc/planted"),
        probe("write tmpdir", "echo x > \"$TMPDIR/private\""),
        probe("git commit", "git -c user.name=a -c user.email=a@b add README.md && git -c user.name=a -c user.email=a@b commit -qm first"),
        probe("plant hook", "printf '#!/bin/sh\\necho owned\\n' > .git/hooks/pre-commit"),
        probe("edit git config", "git config core.hooksPath /tmp"),
        probe("move .git away", "mv .git .git-moved"),
        probe("unmount a mask", &format!("umount {h}/.ssh")),
    ]
    .concat();
    let (out, code) = run(bed, config, &script);
    assert_eq!(code, 0, "{out}");
    let expected = "\
notes: ok
own binary: ok
ssh key: refused
aws: refused
netrc: refused
npmrc: refused
pem: refused
shadow: refused
write workspace: ok
write runtime home: ok
write home: refused
write outside: refused
write etc: refused
write tmpdir: ok
git commit: ok
plant hook: refused
edit git config: refused
move .git away: refused
unmount a mask: refused
";
    assert_eq!(out, expected);
    // What the sandbox wrote where it may, and nothing where it may not.
    assert!(bed.workspace.join("made-inside.txt").exists());
    assert!(bed.runtime.join("state.json").exists());
    assert!(!bed.home.join("planted").exists());
    assert!(!bed.outside.join("planted").exists());
    assert!(!bed.workspace.join(".git/hooks/pre-commit").exists());
    assert!(bed.workspace.join(".git").is_dir());
    assert!(
        std::fs::read_to_string(bed.home.join(".ssh/id_ed25519")).unwrap() == "PRIVATE-SSH-KEY",
        "the key itself is untouched"
    );
}

#[test]
fn bubblewrap_hides_credentials_and_only_the_workspace_is_writable() {
    confinement(&bed(), bubblewrap());
}

#[test]
fn srt_hides_credentials_and_only_the_workspace_is_writable() {
    let bed = bed();
    let config = srt(&bed, Network::None);
    confinement(&bed, config);
}

/// bubblewrap's `/tmp` is private: what the agent writes there is not the host's.
#[test]
fn bubblewrap_gives_a_private_tmp() {
    let bed = bed();
    let marker = format!("symphony-private-tmp-{}", std::process::id());
    let (out, _) = run(
        &bed,
        bubblewrap(),
        &format!("echo x > /tmp/{marker} && echo \"$TMPDIR\""),
    );
    assert_eq!(out.trim(), "/tmp");
    assert!(!Path::new("/tmp").join(&marker).exists());
}

#[test]
fn allowed_paths_are_readable_and_extra_denials_are_masked() {
    let bed = bed();
    let h = bed.home.display();
    let config = SandboxConfig {
        allow_read_paths: vec![bed.home.join(".npmrc")],
        deny_read_paths: vec![bed.home.join("notes.txt")],
        ..bubblewrap()
    };
    let script = [
        probe("npmrc", &format!("grep -q SECRET {h}/.npmrc")),
        probe("write npmrc", &format!("echo x >> {h}/.npmrc")),
        probe("notes", &format!("grep -q plain {h}/notes.txt")),
        probe("ssh key", &format!("cat {h}/.ssh/id_ed25519")),
    ]
    .concat();
    let (out, _) = run(&bed, config, &script);
    assert_eq!(
        out,
        "npmrc: ok\nwrite npmrc: refused\nnotes: refused\nssh key: refused\n"
    );
}

#[test]
fn network_none_leaves_only_a_private_loopback() {
    let bed = bed();
    // Interfaces the process sees, from /proc/net/dev (header lines skipped).
    let script = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ' '";
    let (closed, _) = run(
        &bed,
        SandboxConfig {
            network: Network::None,
            ..bubblewrap()
        },
        script,
    );
    assert_eq!(closed.trim(), "lo");
    let (open, _) = run(&bed, bubblewrap(), script);
    assert_ne!(
        open.trim(),
        "lo",
        "the open network shows the host's interfaces"
    );
}

/// Answers every connection with `200 OK` on 127.0.0.1; its port.
fn ok_server() -> u16 {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    port
}

/// srt lets the agent reach the listed destinations only, through its proxy: the listed
/// `127.0.0.1:<port>` answers, the same server under the unlisted name `localhost` does not
/// (nothing but loopback is ever dialed), and no direct connection leaves the sandbox.
#[test]
fn srt_reaches_only_allowlisted_destinations() {
    let bed = bed();
    let port = ok_server();
    let config = srt(&bed, Network::Allow(vec![format!("127.0.0.1:{port}")]));
    let curl = |url: &str, proxy: bool| {
        let noproxy = if proxy {
            "--noproxy ''"
        } else {
            "--noproxy '*'"
        };
        format!("curl -s -m 10 {noproxy} -o /dev/null -w '%{{http_code}}\\n' {url}; ")
    };
    let script = [
        curl(&format!("http://127.0.0.1:{port}/"), true),
        curl(&format!("http://localhost:{port}/"), true),
        curl(&format!("http://127.0.0.1:{port}/"), false),
    ]
    .concat();
    let (out, _) = run(&bed, config, &script);
    let codes: Vec<&str> = out.lines().collect();
    assert_eq!(codes, ["200", "403", "000"], "listed, unlisted, direct");
}
