//! SSH worker hosts (SPEC Appendix A), the parts built so far (issue 19): the target a
//! `worker.ssh_hosts` entry names, and commands on it over one multiplexed OpenSSH connection
//! (ControlMaster, its socket in a private directory), with the remote process group of every
//! launch known so that a stop can kill it there. Not yet wired into the daemon: no workflow
//! setting reaches it.
//!
//! Why the process group: with `ssh -T`, killing the local client leaves a remote command that
//! does not read its stdin running. sshd starts each session's command as a session (and so
//! process-group) leader, and a launch keeps that pid by `exec`, so the group id is the pid the
//! remote shell reports first, on stderr.

use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The first line a launch writes on stderr: `symphony-pgid <pid>`.
const PGID_MARKER: &str = "symphony-pgid ";

/// A worker host as a `worker.ssh_hosts` entry names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshTarget {
    /// The entry as written: the host's name in the core, logs and the API.
    pub name: String,
    /// Host name or address (an IPv6 address without brackets).
    pub host: String,
    /// Port, when not ssh's default (or the ssh config's).
    pub port: Option<u16>,
    /// Login user, when not ssh's default.
    pub user: Option<String>,
    /// Private key to offer, alone.
    pub identity_file: Option<PathBuf>,
}

impl SshTarget {
    /// Reads `host`, `user@host`, `host:port`, `user@host:port`, `[::1]:2222` or a bare IPv6
    /// address. Refused: empty parts, spaces and control characters, anything starting with
    /// `-` (ssh would read it as an option), a port that is not 1 to 65535.
    pub fn parse(text: &str) -> Result<Self, String> {
        let written = text.trim();
        let bad = |why: &str| Err(format!("worker host {written:?}: {why}"));
        if written.is_empty() {
            return bad("empty");
        }
        let (user, rest) = match written.split_once('@') {
            Some((user, rest)) => (Some(user), rest),
            None => (None, written),
        };
        let (host, port) = if let Some(inside) = rest.strip_prefix('[') {
            let Some((host, after)) = inside.split_once(']') else {
                return bad("an opening `[` without its `]`");
            };
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return bad("only `:port` may follow `]`"),
                },
            }
        } else {
            match rest.matches(':').count() {
                0 => (rest, None),
                1 => {
                    let (host, port) = rest.split_once(':').unwrap_or((rest, ""));
                    (host, Some(port))
                }
                // A bare IPv6 address: no port (write `[addr]:port` for one).
                _ => (rest, None),
            }
        };
        let name_ok = |s: &str, extra: &[char]| {
            !s.is_empty()
                && !s.starts_with('-')
                && s.chars().all(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') || extra.contains(&c)
                })
        };
        if !name_ok(host, &[':', '%']) {
            return bad("the host must be a name or an address (letters, digits, `.`, `-`, `_`)");
        }
        if let Some(user) = user
            && !name_ok(user, &[])
        {
            return bad("the user must be letters, digits, `.`, `-` or `_`");
        }
        let port = match port {
            None => None,
            Some(port) => match port.parse::<u16>() {
                Ok(port) if port > 0 => Some(port),
                _ => return bad("the port must be 1 to 65535"),
            },
        };
        Ok(Self {
            name: written.to_owned(),
            host: host.to_owned(),
            port,
            user: user.map(str::to_owned),
            identity_file: None,
        })
    }
}

/// `text` quoted for a POSIX shell: in single quotes, each `'` written as `'\''`.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A process started on a worker host: the local `ssh` client carrying its stdio, and the
/// remote process group to kill.
#[derive(Debug)]
pub struct RemoteChild {
    /// The local client; its stdin, stdout and stderr are the remote process's (stderr after
    /// the group line, which [`Ssh::launch`] has read).
    pub child: Child,
    /// The remote process group (and the launched process's pid).
    pub pgid: u32,
}

/// Commands on one worker host over a multiplexed connection.
#[derive(Clone, Debug)]
pub struct Ssh {
    target: SshTarget,
    /// Where the ControlMaster socket lives: a directory only this user can enter.
    control_dir: PathBuf,
    /// `worker.ssh_config` (`-F`), when given.
    config_file: Option<PathBuf>,
    /// How long a connection may take to come up.
    connect_timeout: Duration,
}

impl Ssh {
    /// Commands on `target`, the control socket under `control_dir` (which must exist, mode
    /// 0700), with `config_file` as ssh's configuration when given.
    pub fn new(target: SshTarget, control_dir: &Path, config_file: Option<&Path>) -> Self {
        Self {
            target,
            control_dir: control_dir.to_owned(),
            config_file: config_file.map(Path::to_owned),
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// The target.
    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    /// `ssh` with every option, up to and including the destination; the remote command
    /// follows.
    fn ssh(&self) -> Command {
        let mut command = self.ssh_options();
        command.arg("--").arg(&self.target.host);
        command
    }

    /// `ssh` with every option and no destination. `-T`: no terminal (a pty would mangle a
    /// JSON-lines stream). BatchMode: never a prompt. The first command opens the master
    /// connection; the others ride on it for five minutes after the last.
    fn ssh_options(&self) -> Command {
        let mut command = Command::new("ssh");
        if let Some(config) = &self.config_file {
            command.arg("-F").arg(config);
        }
        command.arg("-T");
        let timeout = self.connect_timeout.as_secs().max(1);
        for option in [
            "BatchMode=yes".to_owned(),
            format!("ConnectTimeout={timeout}"),
            "ServerAliveInterval=15".to_owned(),
            "ServerAliveCountMax=3".to_owned(),
            "ControlMaster=auto".to_owned(),
            format!("ControlPath={}/%C", self.control_dir.display()),
            "ControlPersist=300".to_owned(),
            "LogLevel=ERROR".to_owned(),
        ] {
            command.arg("-o").arg(option);
        }
        if let Some(port) = self.target.port {
            command.arg("-p").arg(port.to_string());
        }
        if let Some(identity) = &self.target.identity_file {
            command
                .arg("-i")
                .arg(identity)
                .arg("-o")
                .arg("IdentitiesOnly=yes");
        }
        if let Some(user) = &self.target.user {
            command.arg("-l").arg(user);
        }
        command.env_clear();
        for var in ["PATH", "HOME", "USER", "LOGNAME", "SSH_AUTH_SOCK"] {
            if let Some(value) = std::env::var_os(var) {
                command.env(var, value);
            }
        }
        command
    }

    /// Runs the shell command `remote` on the host, stdin closed, and waits at most `timeout`
    /// for it (the connection's own time included); past that the client is killed and the
    /// answer is `TimedOut`. Output is kept up to 1 MiB per stream.
    pub fn run(&self, remote: &str, timeout: Duration) -> io::Result<Output> {
        let mut child = self
            .ssh()
            .arg(remote)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let read = |stream: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                if let Some(stream) = stream {
                    let _ = stream.take(1024 * 1024).read_to_end(&mut bytes);
                }
                bytes
            })
        };
        let stdout = read(
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        );
        let stderr = read(
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        );
        let status = wait_bounded(&mut child, timeout)?;
        Ok(Output {
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        })
    }

    /// Starts `program` with `args` in `cwd` on the host, with exactly `env` (nothing of this
    /// machine's environment travels), stdout and stderr piped, stdin piped when asked. Returns
    /// once the remote side has reported its process group, which is the launched process's
    /// pid; a host that does not answer within the connection timeout is an error.
    pub fn launch(
        &self,
        program: &str,
        args: &[&str],
        cwd: &str,
        env: &[(String, String)],
        stdin: bool,
    ) -> io::Result<RemoteChild> {
        let mut script = format!(
            "echo \"{PGID_MARKER}$$\" >&2 && cd -- {} && exec env -i",
            shell_quote(cwd)
        );
        for (key, value) in env {
            script.push(' ');
            script.push_str(&shell_quote(&format!("{key}={value}")));
        }
        script.push(' ');
        script.push_str(&shell_quote(program));
        for arg in args {
            script.push(' ');
            script.push_str(&shell_quote(arg));
        }
        let mut child = self
            .ssh()
            .arg(script)
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()?;
        let Some(stderr) = child.stderr.take() else {
            return Err(io::Error::other("ssh started without a stderr pipe"));
        };
        // The marker line, read byte by byte (so nothing after it is taken from the stream),
        // on a thread so that a host that never answers cannot hold the caller.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut stderr = stderr;
            let mut line = Vec::new();
            let mut byte = [0u8; 1];
            while line.len() < 256 {
                match stderr.read(&mut byte) {
                    Ok(1) if byte[0] == b'\n' => break,
                    Ok(1) => line.push(byte[0]),
                    _ => break,
                }
            }
            let _ = tx.send((line, stderr));
        });
        let wait = self.connect_timeout + Duration::from_secs(5);
        let found = rx.recv_timeout(wait).ok();
        let pgid = found.as_ref().and_then(|(line, _)| {
            let text = String::from_utf8_lossy(line);
            text.trim().strip_prefix(PGID_MARKER)?.parse::<u32>().ok()
        });
        match (pgid, found) {
            (Some(pgid), Some((_, stderr))) if pgid > 1 => {
                child.stderr = Some(stderr);
                Ok(RemoteChild { child, pgid })
            }
            (_, found) => {
                let _ = child.kill();
                let _ = child.wait();
                let said = found
                    .map(|(line, mut rest)| {
                        let mut more = Vec::new();
                        let _ = (&mut rest).take(4096).read_to_end(&mut more);
                        let mut all = line;
                        all.push(b' ');
                        all.extend(more);
                        String::from_utf8_lossy(&all).trim().to_owned()
                    })
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| format!("no answer within {} s", wait.as_secs()));
                Err(io::Error::other(format!(
                    "{}: the launch did not start: {said}",
                    self.target.name
                )))
            }
        }
    }

    /// Whether any process of the remote group `pgid` is alive.
    pub fn group_alive(&self, pgid: u32) -> io::Result<bool> {
        let output = self.run(
            &format!("kill -0 -- -{pgid} 2>/dev/null"),
            self.command_timeout(),
        )?;
        match output.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(io::Error::other(format!(
                "{}: cannot check process group {pgid}: {}",
                self.target.name,
                String::from_utf8_lossy(&output.stderr).trim()
            ))),
        }
    }

    /// Ends the remote group `pgid`: SIGTERM, then SIGKILL to what is left after 2 s. Returns
    /// once the group is gone (or the host does not answer).
    pub fn kill_group(&self, pgid: u32) -> io::Result<()> {
        let script = format!(
            "kill -TERM -- -{pgid} 2>/dev/null || exit 0; i=0; while [ $i -lt 20 ]; do \
             kill -0 -- -{pgid} 2>/dev/null || exit 0; sleep 0.1; i=$((i+1)); done; \
             kill -KILL -- -{pgid} 2>/dev/null; exit 0"
        );
        let output = self.run(&script, self.command_timeout())?;
        if output.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "{}: cannot kill process group {pgid}: {}",
                self.target.name,
                String::from_utf8_lossy(&output.stderr).trim()
            )))
        }
    }

    /// Closes the master connection, if one is up (`ssh -O exit`): at shutdown, so nothing
    /// of this daemon stays connected.
    pub fn close(&self) {
        let mut command = self.ssh_options();
        command.args(["-O", "exit", "--"]).arg(&self.target.host);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Ok(mut child) = command.spawn() {
            let _ = wait_bounded(&mut child, Duration::from_secs(5));
        }
    }

    fn command_timeout(&self) -> Duration {
        self.connect_timeout + Duration::from_secs(10)
    }
}

/// Waits for `child` at most `timeout`; past it, kills it and answers `TimedOut`.
fn wait_bounded(child: &mut Child, timeout: Duration) -> io::Result<std::process::ExitStatus> {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    // A watchdog that kills the client when the time is up; a finished wait tells it not to.
    let watchdog = std::thread::spawn(move || {
        if rx.recv_timeout(timeout).is_err()
            && let Some(pid) = rustix::process::Pid::from_raw(pid as i32)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            return true;
        }
        false
    });
    let status = child.wait();
    let _ = tx.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    if timed_out {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer within {} s", timeout.as_secs()),
        ));
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_host_user_and_port_in_every_written_form() {
        let t = |s: &str| SshTarget::parse(s).unwrap();
        assert_eq!(
            (t("build-1").host, t("build-1").port, t("build-1").user),
            ("build-1".into(), None, None)
        );
        let full = t("ci@build-1.example.com:2222");
        assert_eq!(
            (full.host.as_str(), full.port, full.user.as_deref()),
            ("build-1.example.com", Some(2222), Some("ci"))
        );
        assert_eq!(full.name, "ci@build-1.example.com:2222");
        let v6 = t("[::1]:2200");
        assert_eq!((v6.host.as_str(), v6.port), ("::1", Some(2200)));
        assert_eq!(t("[::1]").port, None);
        assert_eq!(t("fe80::1%eth0").host, "fe80::1%eth0");
        assert_eq!(t("root@[::1]:22").user.as_deref(), Some("root"));
        for bad in [
            "",
            " ",
            "-oProxyCommand=x",
            "a@-b",
            "host:0",
            "host:70000",
            "host:x",
            "[::1",
            "[::1]x",
            "a b",
            "h\nx",
            "@host",
            "user@",
            "ho$t",
        ] {
            assert!(SshTarget::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn shell_quoting_survives_quotes_and_metacharacters() {
        assert_eq!(shell_quote("plain"), "'plain'");
        assert_eq!(
            shell_quote("it's $HOME; rm -rf /"),
            r"'it'\''s $HOME; rm -rf /'"
        );
    }
}
