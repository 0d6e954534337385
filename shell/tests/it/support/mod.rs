//! Helpers shared by the integration tests.

use std::path::PathBuf;

/// The pinned version of `@openai/codex` that `.ci/test` installs.
pub(crate) const CODEX_VERSION: &str = "0.169.0";

/// A CLI `.ci/test` installs: `$<var>` when set, else `~/.cache/symphony-rs/<relative>`;
/// asserted to exist, naming `name` and how to get it.
fn installed_cli(var: &str, relative: &str, name: &str) -> PathBuf {
    let path = std::env::var_os(var).map_or_else(
        || {
            let home = std::env::var_os("HOME").unwrap_or_default();
            PathBuf::from(home)
                .join(".cache/symphony-rs")
                .join(relative)
        },
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "the real {name} is not installed at {}: run ./.ci/test (it installs it)",
        path.display()
    );
    path
}

/// The real codex CLI: `$SYMPHONY_TEST_CODEX`, else where `.ci/test` caches it.
pub(crate) fn codex_binary() -> PathBuf {
    let relative = format!("codex-{CODEX_VERSION}/node_modules/.bin/codex");
    installed_cli("SYMPHONY_TEST_CODEX", &relative, "codex CLI")
}

/// The pinned Claude Code CLI `.ci/test` installs.
pub(crate) const CLAUDE_VERSION: &str = "2.1.332";

/// The real `claude` CLI: `$SYMPHONY_TEST_CLAUDE`, or where `.ci/test` installs it.
pub(crate) fn claude_binary() -> PathBuf {
    let relative = format!("claude-code-{CLAUDE_VERSION}/node_modules/.bin/claude");
    installed_cli("SYMPHONY_TEST_CLAUDE", &relative, "claude CLI")
}

/// The pinned `@anthropic-ai/sandbox-runtime` `.ci/test` installs.
pub(crate) const SRT_VERSION: &str = "0.0.83";

/// The real `srt`: `$SYMPHONY_TEST_SRT`, or where `.ci/test` installs it.
pub(crate) fn srt_binary() -> PathBuf {
    let relative = format!("srt-{SRT_VERSION}/node_modules/.bin/srt");
    installed_cli("SYMPHONY_TEST_SRT", &relative, "srt (sandbox runtime)")
}

/// Whether process `pid` has terminated, waiting up to 5 s on a pidfd (readable once the
/// process has exited; SIGKILL is delivered at once but the kernel finishes the exit a moment
/// later). An id that no longer exists was reaped already.
pub(crate) fn process_is_gone(pid: u32) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    use rustix::process::{Pid, PidfdFlags, pidfd_open};
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return true;
    };
    let Ok(fd) = pidfd_open(pid, PidfdFlags::empty()) else {
        return true;
    };
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let bound = Timespec {
        tv_sec: 5,
        tv_nsec: 0,
    };
    poll(&mut fds, Some(&bound)).is_ok_and(|ready| ready == 1)
}

/// One HTTP/1.1 request read from a test server's connection.
pub(crate) struct HttpRequest {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl HttpRequest {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one request (Content-Length or chunked body) from `stream`.
pub(crate) fn read_request(stream: &std::net::TcpStream) -> Option<HttpRequest> {
    use std::io::{BufRead, BufReader, Read};
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(length, 0);
        reader.read_exact(&mut body).ok()?;
    }
    Some(HttpRequest {
        method,
        path,
        headers,
        body,
    })
}

/// Writes a complete response and closes the connection.
pub(crate) fn respond(
    mut stream: std::net::TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) {
    use std::io::Write;
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// What a runner session runs against in a test: a local tracker holding one `Todo` issue, the
/// workspace, and a runtime for the host-side tool calls.
pub(crate) struct SessionBed {
    pub(crate) issues: PathBuf,
    pub(crate) workspace: PathBuf,
    pub(crate) runtime: tokio::runtime::Runtime,
}

impl SessionBed {
    /// Creates `root/ws` and `root/issues/<id>.md` titled "Write the file".
    pub(crate) fn new(root: &std::path::Path, id: &str) -> Self {
        let (workspace, issues) = (root.join("ws"), root.join("issues"));
        for dir in [&workspace, &issues] {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(
            issues.join(format!("{id}.md")),
            "---\ntitle: Write the file\nstate: Todo\n---\n",
        )
        .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Self {
            issues,
            workspace,
            runtime,
        }
    }

    /// A first-run session context for issue `id` with `prompt`.
    pub(crate) fn context(&self, id: &str, prompt: &str) -> symphony::agent::SessionContext {
        let tracker =
            symphony::tracker::LocalTracker::new(self.issues.clone(), vec!["Done".into()]);
        symphony::agent::SessionContext {
            issue: symphony_core::Issue {
                id: symphony_core::IssueId(id.into()),
                identifier: id.into(),
                title: "Write the file".into(),
                state: "Todo".into(),
                dispatchable: true,
                ..symphony_core::Issue::default()
            },
            run: symphony_core::RunId(1),
            attempt: None,
            workspace: self.workspace.clone(),
            prompt: prompt.into(),
            tracker: std::sync::Arc::new(tracker),
            done_state: "Done".into(),
            runtime: self.runtime.handle().clone(),
            host: std::sync::Arc::new(symphony::host::LocalHost),
        }
    }
}

/// Runs a session of `agent` in a thread: its control channel, its updates, its outcome.
pub(crate) fn spawn_session<A: symphony::agent::Runner + 'static>(
    agent: A,
    context: symphony::agent::SessionContext,
) -> (
    std::sync::mpsc::Sender<symphony::agent::Control>,
    std::sync::mpsc::Receiver<symphony_core::AgentUpdate>,
    std::thread::JoinHandle<symphony_core::ExitOutcome>,
) {
    let (control, control_rx) = std::sync::mpsc::channel();
    let (updates_tx, updates) = std::sync::mpsc::channel();
    let session = std::thread::spawn(move || {
        let mut update = |u| {
            let _ = updates_tx.send(u);
        };
        symphony::agent::run(&agent, &context, control_rx, &mut update)
    });
    (control, updates, session)
}

/// The last absolute token totals an agent reported: (input, output, total).
pub(crate) fn last_tokens(seen: &[symphony_core::AgentUpdate]) -> (u64, u64, u64) {
    (seen.iter().rev())
        .find_map(|u| match u {
            symphony_core::AgentUpdate::TokenUsage {
                input_tokens,
                output_tokens,
                total_tokens,
            } => Some((*input_tokens, *output_tokens, *total_tokens)),
            _ => None,
        })
        .expect("token usage reported")
}

/// A stand-in for the operator's home, under `/var/tmp` (not `/tmp`, which a sandbox makes
/// private: a key there would be hidden whatever the sandbox masks): an SSH key
/// (`PRIVATE-SSH-KEY`) and a plain `notes.txt` (`operator notes`) beside it.
pub(crate) fn operator_home() -> tempfile::TempDir {
    let home = tempfile::Builder::new()
        .prefix("symphony-operator-home-")
        .tempdir_in("/var/tmp")
        .unwrap();
    std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
    std::fs::write(home.path().join(".ssh/id_ed25519"), "PRIVATE-SSH-KEY\n").unwrap();
    std::fs::write(home.path().join("notes.txt"), "operator notes\n").unwrap();
    home
}

/// `promtool` from Debian's `prometheus` package, unpacked by `.ci/test`: `$SYMPHONY_TEST_PROMTOOL`
/// or its place in the cache.
pub(crate) fn promtool_binary() -> PathBuf {
    installed_cli(
        "SYMPHONY_TEST_PROMTOOL",
        "promtool/root/usr/bin/promtool",
        "promtool",
    )
}

/// `text` (a whole WORKFLOW.md) parsed as `/w/WORKFLOW.md` with only `env` set.
pub(crate) fn parse_workflow(
    text: &str,
    env: &[(&str, &str)],
) -> Result<symphony::workflow::Workflow, symphony::workflow::WorkflowError> {
    let env = symphony::workflow::MapEnv::new(env.iter().copied());
    let path = std::path::Path::new("/w/WORKFLOW.md");
    symphony::workflow::parse(text, path, &env, &symphony::workflow::Overrides::default())
}

/// The tracker the daemon would build from `text` (a whole WORKFLOW.md).
pub(crate) fn tracker_from(
    text: &str,
    env: &[(&str, &str)],
) -> Box<dyn symphony::tracker::Tracker> {
    let workflow = parse_workflow(text, env).unwrap();
    symphony::tracker::build(&workflow.config.tracker).unwrap()
}

/// A private OpenSSH server on a free loopback port, as a worker host for tests: its own host
/// key, one authorized client key, and an ssh client config that trusts exactly that host key
/// (`StrictHostKeyChecking yes`). Killed, with its connections, when dropped.
pub(crate) struct Sshd {
    pub(crate) port: u16,
    /// The client configuration (`ssh -F`).
    pub(crate) client_config: PathBuf,
    /// The directory holding keys, configs and the known-hosts file.
    pub(crate) dir: PathBuf,
    child: std::process::Child,
}

impl Sshd {
    /// Starts one under `dir` (created). Needs `/usr/sbin/sshd` (Debian's openssh-server,
    /// installed by `./.ci/test`) and its privilege-separation directory `/run/sshd`, made here
    /// when missing.
    pub(crate) fn start(dir: &std::path::Path) -> Self {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        let sshd = std::path::Path::new("/usr/sbin/sshd");
        assert!(
            sshd.exists(),
            "/usr/sbin/sshd is missing: run ./.ci/test (it installs openssh-server)"
        );
        let _ = std::fs::create_dir_all("/run/sshd");
        std::fs::create_dir_all(dir).unwrap();
        for key in ["host_key", "client_key"] {
            let status = std::process::Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(dir.join(key))
                .status()
                .unwrap();
            assert!(status.success(), "ssh-keygen {key}");
        }
        std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server_config = dir.join("sshd_config");
        std::fs::write(
            &server_config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile \
                 {d}/authorized_keys\nPubkeyAuthentication yes\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile {d}/sshd.pid\n",
                d = dir.display()
            ),
        )
        .unwrap();
        let host_key = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
        let mut fields = host_key.split_whitespace();
        let (kind, key) = (fields.next().unwrap(), fields.next().unwrap());
        std::fs::write(
            dir.join("known_hosts"),
            format!("[127.0.0.1]:{port} {kind} {key}\n"),
        )
        .unwrap();
        let user = std::env::var("USER").unwrap_or_else(|_| "root".to_owned());
        let client_config = dir.join("ssh_config");
        std::fs::write(
            &client_config,
            format!(
                "StrictHostKeyChecking yes\nUserKnownHostsFile {d}/known_hosts\nGlobalKnownHostsFile \
                 /dev/null\nIdentityFile {d}/client_key\nIdentitiesOnly yes\nUser {user}\n",
                d = dir.display()
            ),
        )
        .unwrap();
        let mut child = std::process::Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(&server_config)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("Server listening on") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(std::time::Duration::from_secs(20))
            .expect("sshd did not start listening");
        Self {
            port,
            client_config,
            dir: dir.to_owned(),
            child,
        }
    }

    /// The target string for this server (`127.0.0.1:<port>`).
    pub(crate) fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if let Some(group) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = self.child.wait();
    }
}
