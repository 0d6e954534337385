//! The sandbox around the agent (`sandbox.backend: bubblewrap`): a [`Host`] that starts every
//! agent process inside `bwrap` and leaves everything else (workspace files, hooks) to the host
//! it wraps. Hooks are the operator's own code and stay outside.
//!
//! Inside, the agent sees the system read-only, its issue's workspace and the runtime's own
//! home (Codex home, Claude config dir) writable, a private `/tmp`, new PID/IPC/UTS/user
//! namespaces, and dies with its parent. Credential stores are masked: a directory becomes an
//! empty tmpfs, a file an empty one, so reading `~/.ssh/id_ed25519` fails. A repository's
//! `.git/config` and `.git/hooks` are read-only, so the agent cannot plant code that a hook
//! running outside the sandbox would execute; `.git` itself is a mount point inside, which
//! cannot be renamed away, and its objects stay writable so commits work. With
//! `network: none` the agent has only a private loopback.
//!
//! As root, the agent runs as uid 1000 in a user namespace (mapped to root outside) with no
//! capabilities: it cannot unmount a mask or remount the system writable, and the agent's own
//! sandbox (Codex's `bwrap`) still works nested inside.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;

use super::{Entry, Host, Launch};

/// Which sandbox wraps the agent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// None: the agent runs as the daemon's user, confined only by its own policy.
    #[default]
    None,
    /// bubblewrap (`bwrap`, Debian `bubblewrap`).
    Bubblewrap,
    /// Anthropic's sandbox runtime (`srt`, npm `@anthropic-ai/sandbox-runtime`): bubblewrap
    /// underneath, plus a proxy that lets the agent reach only allowlisted domains.
    Srt,
}

/// What the agent may reach on the network.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// The host's network (the agent must reach its model API). bubblewrap only.
    #[default]
    Open,
    /// A private loopback only (`--unshare-net`).
    None,
    /// Only these domains (`api.openai.com`, `*.github.com`, `127.0.0.1:8080`), through srt's
    /// proxy; the model API's domain must be among them. srt only.
    Allow(Vec<String>),
}

/// The `sandbox` section.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SandboxConfig {
    /// `sandbox.backend` (or aiops-platform's `enabled: true`).
    pub backend: Backend,
    /// `sandbox.network`.
    pub network: Network,
    /// `sandbox.allow_read_paths` (and aiops-platform's `credential_files`): exceptions to the
    /// read-deny list, mounted read-only.
    pub allow_read_paths: Vec<PathBuf>,
    /// `sandbox.deny_read_paths`: masked besides the built-in list.
    pub deny_read_paths: Vec<PathBuf>,
    /// `sandbox.env_allowlist` (aiops-platform's): host variables the agent gets by name.
    pub env_allowlist: Vec<String>,
    /// `sandbox.srt_command`: the `srt` program (default `srt` on `PATH`).
    pub srt_command: String,
    /// Masked too: the daemon's state root (audit and event logs); srt's settings files are
    /// written under it.
    #[serde(skip)]
    pub state_root: Option<PathBuf>,
}

impl SandboxConfig {
    /// Whether an agent runs inside a sandbox.
    pub fn enabled(&self) -> bool {
        self.backend != Backend::None
    }

    /// The `srt` program to start.
    pub fn srt_program(&self) -> &str {
        if self.srt_command.is_empty() {
            "srt"
        } else {
            &self.srt_command
        }
    }
}

/// Credential stores under the home directory, masked inside: SSH, cloud and container CLIs,
/// package registries, git credential files, password stores, browsers' profiles (cookies),
/// and the agent runtimes' own homes (mounted back when the runner needs its own).
pub const HOME_DENY: &[&str] = &[
    ".ssh",
    ".aws",
    ".azure",
    ".config/gcloud",
    ".config/gh",
    ".config/hub",
    ".config/op",
    ".config/rclone",
    ".config/git/credentials",
    ".git-credentials",
    ".netrc",
    ".docker",
    ".kube",
    ".gnupg",
    ".password-store",
    ".local/share/keyrings",
    ".terraform.d",
    ".npmrc",
    ".yarnrc",
    ".pypirc",
    ".gem/credentials",
    ".cargo/credentials",
    ".cargo/credentials.toml",
    ".m2/settings.xml",
    ".gradle/gradle.properties",
    ".vault-token",
    ".pgpass",
    ".my.cnf",
    ".s3cfg",
    ".boto",
    ".oci",
    ".codex",
    ".claude",
    ".claude.json",
    ".config/claude",
    ".mozilla",
    ".config/google-chrome",
    ".config/chromium",
];

/// System paths masked inside: password hashes and host keys (readable to a mapped root), and
/// the sockets of container engines (root on the host to whoever can talk to them).
pub const SYSTEM_DENY: &[&str] = &[
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/ssh/ssh_host_rsa_key",
    "/etc/ssh/ssh_host_ecdsa_key",
    "/etc/ssh/ssh_host_ed25519_key",
    "/run/docker.sock",
    "/var/run/docker.sock",
    "/run/containerd",
    "/run/podman",
];

/// Key files looked for under the home directory besides [`HOME_DENY`].
const KEY_SUFFIXES: [&str; 2] = [".pem", ".key"];
/// The search for key files stops after this many entries or at this depth (it runs before each
/// agent launch); what it did not reach is named in `doctor`.
const SCAN_MAX_ENTRIES: usize = 20_000;
const SCAN_MAX_DEPTH: usize = 6;
/// Directories the key search does not enter: caches and build output, large and keyless.
const SCAN_SKIP: [&str; 8] = [
    ".cache",
    "node_modules",
    ".npm",
    ".rustup",
    ".cargo",
    "target",
    ".git",
    ".local",
];

/// The uid and gid an agent has inside when the daemon runs as root.
const ROOT_INNER_ID: &str = "1000";

/// One mount instruction for `bwrap`, in order (later ones cover earlier ones).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mount {
    /// An empty tmpfs over a directory.
    MaskDir(PathBuf),
    /// An empty file over a file.
    MaskFile(PathBuf),
    /// Writable, at the same path.
    Writable(PathBuf),
    /// Read-only, at the same path.
    ReadOnly(PathBuf),
    /// Read-only inside a writable place: git metadata that could run code.
    Frozen(PathBuf),
}

/// What a launch inside the sandbox is made of: the mounts in order, and what was left out
/// (the key search's limit).
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Mounts after the read-only root, `/dev`, `/proc` and the private `/tmp`.
    pub mounts: Vec<Mount>,
    /// Whether the key-file search stopped at its limit.
    pub scan_truncated: bool,
}

/// Whether `path` is `base` or lies under it (whole components).
fn within(path: &Path, base: &Path) -> bool {
    path.starts_with(base)
}

/// Plans the mounts for an agent in `workspace` that writes `writable` (its runtime's home),
/// with `home` as the home directory whose credential stores are masked.
pub fn plan(
    config: &SandboxConfig,
    workspace: &Path,
    writable: &[PathBuf],
    home: Option<&Path>,
    runtime_dir: Option<&Path>,
) -> io::Result<Plan> {
    let workspace = fs::canonicalize(workspace)?;
    let writable: Vec<PathBuf> = (writable.iter())
        .map(|dir| {
            if !dir.exists() {
                fs::DirBuilder::new().recursive(true).create(dir)?;
            }
            fs::canonicalize(dir)
        })
        .collect::<io::Result<_>>()?;
    let allowed: Vec<PathBuf> = (config.allow_read_paths.iter())
        .filter_map(|p| fs::canonicalize(p).ok())
        .collect();
    // What stays reachable: a deny entry at or under one of these is not masked.
    let kept = |path: &Path| {
        within(path, &workspace)
            || writable.iter().any(|w| within(path, w))
            || allowed.iter().any(|a| within(path, a))
    };
    let mut candidates: Vec<PathBuf> = SYSTEM_DENY.iter().map(PathBuf::from).collect();
    candidates.extend(config.deny_read_paths.iter().cloned());
    candidates.extend(config.state_root.iter().cloned());
    candidates.extend(runtime_dir.map(Path::to_path_buf));
    let mut scan_truncated = false;
    if let Some(home) = home {
        candidates.extend(HOME_DENY.iter().map(|rel| home.join(rel)));
        let mut budget = SCAN_MAX_ENTRIES;
        let mut found = Vec::new();
        scan_keys(home, 0, &mut budget, &mut found, &|p: &Path| kept(p));
        scan_truncated = budget == 0;
        candidates.extend(found);
    }
    let mut mounts = Vec::new();
    let mut masked: Vec<PathBuf> = Vec::new();
    for candidate in candidates {
        // The real place (a symlinked ~/.ssh is masked where it points); nothing to mask
        // where nothing is.
        let Ok(real) = fs::canonicalize(&candidate) else {
            continue;
        };
        if kept(&real) || masked.iter().any(|m| within(&real, m)) {
            continue;
        }
        let Ok(meta) = fs::metadata(&real) else {
            continue;
        };
        masked.push(real.clone());
        mounts.push(if meta.is_dir() {
            Mount::MaskDir(real)
        } else {
            Mount::MaskFile(real)
        });
    }
    // Exceptions inside masked directories come back read-only, then the writable places.
    for path in &allowed {
        mounts.push(Mount::ReadOnly(path.clone()));
    }
    mounts.push(Mount::Writable(workspace.clone()));
    for dir in &writable {
        mounts.push(Mount::Writable(dir.clone()));
    }
    mounts.extend(git_metadata(&workspace)?);
    Ok(Plan {
        mounts,
        scan_truncated,
    })
}

/// `.git` as a mount point of its own (so it cannot be renamed away), with `config` and
/// `hooks` read-only over it; `hooks` is created empty first when missing, so none can be added.
fn git_metadata(workspace: &Path) -> io::Result<Vec<Mount>> {
    let git = workspace.join(".git");
    let is_dir = fs::symlink_metadata(&git).is_ok_and(|m| m.is_dir());
    if !is_dir {
        return Ok(Vec::new());
    }
    let hooks = git.join("hooks");
    if fs::symlink_metadata(&hooks).is_err() {
        fs::create_dir(&hooks)?;
    }
    let mut mounts = vec![Mount::Writable(git.clone())];
    for name in ["config", "hooks"] {
        let path = git.join(name);
        // A symlink here could point anywhere: refuse the launch rather than guess.
        let meta = fs::symlink_metadata(&path);
        if meta.as_ref().is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(io::Error::other(format!(
                "{} is a symlink; the sandbox will not mount it",
                path.display()
            )));
        }
        if meta.is_ok() {
            mounts.push(Mount::Frozen(path));
        }
    }
    Ok(mounts)
}

/// Looks for `*.pem` and `*.key` files under `dir`, within the entry budget and depth.
fn scan_keys(
    dir: &Path,
    depth: usize,
    budget: &mut usize,
    found: &mut Vec<PathBuf>,
    kept: &dyn Fn(&Path) -> bool,
) {
    if depth > SCAN_MAX_DEPTH {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if kind.is_dir() {
            if !SCAN_SKIP.contains(&name.as_ref()) && !kept(&path) {
                scan_keys(&path, depth + 1, budget, found, kept);
            }
        } else if kind.is_file() && KEY_SUFFIXES.iter().any(|s| name.ends_with(s)) {
            found.push(path);
        }
    }
}

/// The `bwrap` arguments for `plan`, ending with `--` before the program.
pub fn bwrap_args(config: &SandboxConfig, plan: &Plan, cwd: &Path, as_root: bool) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    push(&[
        "--die-with-parent",
        "--new-session",
        "--unshare-user",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
    ]);
    if as_root {
        push(&["--uid", ROOT_INNER_ID, "--gid", ROOT_INNER_ID]);
    }
    if config.network == Network::None {
        push(&["--unshare-net"]);
    }
    push(&[
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
    ]);
    for mount in &plan.mounts {
        let parts: [&OsStr; 3] = match mount {
            Mount::MaskDir(p) => ["--tmpfs".as_ref(), p.as_os_str(), OsStr::new("")],
            Mount::MaskFile(p) => ["--ro-bind".as_ref(), "/dev/null".as_ref(), p.as_os_str()],
            Mount::Writable(p) => ["--bind".as_ref(), p.as_os_str(), p.as_os_str()],
            Mount::ReadOnly(p) | Mount::Frozen(p) => {
                ["--ro-bind".as_ref(), p.as_os_str(), p.as_os_str()]
            }
        };
        args.extend(
            parts
                .into_iter()
                .filter(|a| !a.is_empty())
                .map(OsString::from),
        );
    }
    args.push("--chdir".into());
    args.push(cwd.into());
    args.push("--".into());
    args
}

/// The private directory of `workspace`'s srt launches: `<state root>/sandbox/<hash>/` with
/// `tmp/` in it, created 0700.
fn srt_dir(config: &SandboxConfig, workspace: &Path) -> io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt as _;
    let base = (config.state_root.clone()).unwrap_or_else(std::env::temp_dir);
    let key = crate::audit::sha256(&workspace.to_string_lossy());
    let dir = base.join("sandbox").join(key.get(..16).unwrap_or(&key));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir.join("tmp"))?;
    Ok(dir)
}

/// srt's settings for `plan`: masked paths denied, exceptions allowed, the writable places
/// writable but git metadata, and the network allowlist (nothing for `none`).
pub fn srt_settings(config: &SandboxConfig, plan: &Plan) -> serde_json::Value {
    let mut deny_read = Vec::new();
    let mut allow_read = Vec::new();
    let mut allow_write = Vec::new();
    let mut deny_write = Vec::new();
    for mount in &plan.mounts {
        let (list, path) = match mount {
            Mount::MaskDir(p) | Mount::MaskFile(p) => (&mut deny_read, p),
            Mount::ReadOnly(p) => (&mut allow_read, p),
            Mount::Writable(p) => (&mut allow_write, p),
            Mount::Frozen(p) => (&mut deny_write, p),
        };
        list.push(serde_json::json!({"path": path, "literal": true}));
    }
    let domains = match &config.network {
        Network::Allow(domains) => domains.clone(),
        Network::Open | Network::None => Vec::new(),
    };
    serde_json::json!({
        "network": {"allowedDomains": domains, "deniedDomains": []},
        "filesystem": {
            "denyRead": deny_read,
            "allowRead": allow_read,
            "allowWrite": allow_write,
            "denyWrite": deny_write,
        },
        "allowNestedUserNamespaces": false,
    })
}

/// A host whose agent launches run inside the sandbox; everything else goes to `inner`.
#[derive(Debug)]
pub struct Sandboxed {
    inner: Arc<dyn Host>,
    config: SandboxConfig,
    /// `bwrap`, or the path to it.
    program: String,
}

impl Sandboxed {
    /// Wraps `inner`'s agent launches in `config`'s sandbox.
    pub fn new(inner: Arc<dyn Host>, config: SandboxConfig) -> Self {
        Self {
            inner,
            config,
            program: "bwrap".to_owned(),
        }
    }

    /// The environment inside: as given, with `TMPDIR` set to the private `/tmp` unless it
    /// already names a writable place.
    fn inner_env(env: &[(OsString, OsString)], writable: &[&Path]) -> Vec<(OsString, OsString)> {
        let mut env: Vec<(OsString, OsString)> = env.to_vec();
        let usable = |dir: &OsString| {
            let dir = Path::new(dir);
            writable.iter().any(|w| within(dir, w))
        };
        env.retain(|(k, v)| k != "TMPDIR" || usable(v));
        if !env.iter().any(|(k, _)| k == "TMPDIR") {
            env.push(("TMPDIR".into(), "/tmp".into()));
        }
        env
    }
}

/// The value of `name` in an environment given as pairs.
pub fn env_value<'e>(env: &'e [(OsString, OsString)], name: &str) -> Option<&'e OsString> {
    env.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

impl Host for Sandboxed {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn launch(&self, launch: &Launch<'_>) -> io::Result<Child> {
        let home = env_value(&launch.env, "HOME").map(PathBuf::from);
        let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
        let mut writable: Vec<PathBuf> = launch.writable.to_vec();
        let mut env = launch.env.clone();
        // srt: its settings, and a private temporary directory (srt has no private /tmp), in
        // a directory of this workspace's own under the state root.
        let srt_dir = (self.config.backend == Backend::Srt)
            .then(|| srt_dir(&self.config, launch.cwd))
            .transpose()?;
        // srt itself keeps its proxy's sockets in its temporary directory: the system's
        // (`/tmp`; a socket path has at most 107 bytes, and the host's TMPDIR may be long or
        // gone). The agent gets the private one, set inside.
        if let Some(dir) = &srt_dir {
            writable.push(dir.join("tmp"));
            env.retain(|(k, _)| k != "TMPDIR");
        }
        // The daemon's own binary stays readable wherever it lives (under /tmp, say): agents
        // start it as their bridge back to the daemon (Claude's `symphony mcp-bridge`).
        let mut config = self.config.clone();
        config.allow_read_paths.extend(std::env::current_exe().ok());
        let plan = plan(
            &config,
            launch.cwd,
            &writable,
            home.as_deref(),
            runtime_dir.as_deref(),
        )?;
        let (program, mut args) = match &srt_dir {
            Some(dir) => {
                let settings = dir.join("srt-settings.json");
                let text = serde_json::to_vec_pretty(&srt_settings(&self.config, &plan))
                    .map_err(io::Error::other)?;
                fs::write(&settings, text)?;
                // srt points TMPDIR at a directory of its own choosing (`/tmp/claude`); `env`
                // inside puts ours back.
                let mut tmpdir = OsString::from("TMPDIR=");
                tmpdir.push(dir.join("tmp"));
                let args: Vec<OsString> = vec![
                    "--settings".into(),
                    settings.into_os_string(),
                    "--".into(),
                    "env".into(),
                    tmpdir,
                ];
                (self.config.srt_program().to_owned(), args)
            }
            None => {
                let as_root = rustix::process::geteuid().is_root();
                let args = bwrap_args(&self.config, &plan, launch.cwd, as_root);
                (self.program.clone(), args)
            }
        };
        args.push(launch.program.into());
        args.extend(launch.args.iter().map(OsString::from));
        let strings: Vec<String> = (args.into_iter())
            .map(|a| {
                a.into_string().map_err(|a| {
                    io::Error::other(format!(
                        "a sandbox path is not UTF-8: {}",
                        a.to_string_lossy()
                    ))
                })
            })
            .collect::<io::Result<_>>()?;
        let argv: Vec<&str> = strings.iter().map(String::as_str).collect();
        let env = if srt_dir.is_some() {
            env
        } else {
            let mut places: Vec<&Path> = vec![launch.cwd];
            places.extend(writable.iter().map(PathBuf::as_path));
            Self::inner_env(&env, &places)
        };
        self.inner.launch(&Launch {
            program: &program,
            args: &argv,
            cwd: launch.cwd,
            env,
            stdin: launch.stdin,
            writable: &[],
        })
    }

    fn entry(&self, path: &Path) -> io::Result<Option<Entry>> {
        self.inner.entry(path)
    }

    fn create_dir(&self, path: &Path, private: bool) -> io::Result<()> {
        self.inner.create_dir(path, private)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }

    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        self.inner.canonicalize(path)
    }

    fn write_file(&self, path: &Path, bytes: &[u8], append: bool) -> io::Result<()> {
        self.inner.write_file(path, bytes, append)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_dir(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_dir_all(path)
    }

    fn list_dirs(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dirs(path)
    }

    fn free_space_mb(&self, path: &Path) -> io::Result<u64> {
        self.inner.free_space_mb(path)
    }
}

/// Reads the `sandbox` section: ours (`backend`, `network`, `allow_read_paths`,
/// `deny_read_paths`) and aiops-platform's (`enabled`, `credential_files` as paths the agent may
/// read, `env_allowlist`).
pub fn read_config(
    keys: &mut crate::workflow::SectionKeys<'_, '_>,
) -> Result<SandboxConfig, crate::workflow::WorkflowError> {
    use crate::workflow::ErrorClass;
    keys.check_keys(&[
        "backend",
        "enabled",
        "network",
        "allow_read_paths",
        "deny_read_paths",
        "credential_files",
        "env_allowlist",
        "srt_command",
    ]);
    let enabled = keys.raw("enabled", None);
    let backend = match keys.verbatim("backend")?.as_deref() {
        None => {
            keys.defaulted("backend");
            match enabled {
                Some(serde_json::Value::Bool(true)) => Backend::Bubblewrap,
                _ => Backend::None,
            }
        }
        Some("none") => Backend::None,
        Some("bubblewrap" | "bwrap") => Backend::Bubblewrap,
        Some("srt") => Backend::Srt,
        Some("firejail") => {
            return Err(keys.error(
                ErrorClass::InvalidConfigValue,
                "backend",
                "sandbox.backend: firejail is not built in this version; bubblewrap or srt is",
            ));
        }
        Some(other) => return Err(keys.invalid("backend", "none, bubblewrap or srt", other)),
    };
    // aiops-platform's `enabled: false` turns a configured backend off.
    let backend = match enabled {
        Some(serde_json::Value::Bool(false)) => Backend::None,
        Some(serde_json::Value::Bool(true)) | None => backend,
        Some(other) => {
            return Err(keys.invalid("enabled", "true or false", &other.to_string()));
        }
    };
    let network = match keys.raw("network", None) {
        None if backend == Backend::Srt => Network::None,
        None => Network::Open,
        Some(serde_json::Value::Bool(true)) => Network::Open,
        Some(serde_json::Value::Bool(false)) => Network::None,
        Some(serde_json::Value::String(s)) if s == "open" => Network::Open,
        Some(serde_json::Value::String(s)) if ["none", "off", "block"].contains(&s.as_str()) => {
            Network::None
        }
        Some(serde_json::Value::Array(items)) => {
            let domains: Option<Vec<String>> = (items.iter())
                .map(|item| {
                    let domain = item.as_str()?.trim();
                    let shaped = !domain.is_empty()
                        && domain.len() <= 253
                        && (domain.chars())
                            .all(|c| c.is_ascii_alphanumeric() || "-.*:[]".contains(c));
                    shaped.then(|| domain.to_owned())
                })
                .collect();
            match domains {
                Some(domains) => Network::Allow(domains),
                None => {
                    return Err(keys.invalid(
                        "network",
                        "open, none, or a list of domains (`api.openai.com`, `*.github.com`, `host:port`)",
                        &serde_json::Value::Array(items).to_string(),
                    ));
                }
            }
        }
        Some(other) => {
            let found = match &other {
                serde_json::Value::String(text) => text.clone(),
                value => value.to_string(),
            };
            return Err(keys.invalid("network", "open, none, or a list of domains", &found));
        }
    };
    match (backend, &network) {
        (Backend::Bubblewrap, Network::Allow(_)) => {
            return Err(keys.error(
                ErrorClass::InvalidConfigValue,
                "network",
                "sandbox.network: a list of allowed domains needs a filtering proxy, which \
                 bubblewrap does not have (it can only cut the network off); use \
                 sandbox.backend: srt for an allowlist, or open or none",
            ));
        }
        (Backend::Srt, Network::Open) => {
            return Err(keys.error(
                ErrorClass::InvalidConfigValue,
                "network",
                "sandbox.network: srt allows only listed domains; list them (the agent's model \
                 API among them), or use sandbox.backend: bubblewrap for an open network",
            ));
        }
        _ => {}
    }
    let mut allow_read_paths = keys.paths("allow_read_paths")?;
    allow_read_paths.extend(keys.paths("credential_files")?);
    let deny_read_paths = keys.paths("deny_read_paths")?;
    let env_allowlist = keys.var_names("env_allowlist")?;
    let srt_command = keys.verbatim("srt_command")?.unwrap_or_else(|| {
        keys.defaulted("srt_command");
        "srt".to_owned()
    });
    Ok(SandboxConfig {
        srt_command,
        backend,
        network,
        allow_read_paths,
        deny_read_paths,
        env_allowlist,
        state_root: None,
    })
}

/// Whether the sandbox works on this host, for `doctor`: the `bwrap` version and a trial run
/// of `true` inside, in a scratch directory under `scratch_parent`, with the plan the agent
/// would get; a description of what it confines, or why it does not work.
pub fn probe(config: &SandboxConfig, scratch_parent: &Path) -> Result<String, String> {
    let (program, name, install) = match config.backend {
        Backend::Srt => (
            config.srt_program(),
            "srt",
            "npm install -g @anthropic-ai/sandbox-runtime (it needs bubblewrap, socat and ripgrep)",
        ),
        _ => ("bwrap", "bubblewrap", "install bubblewrap"),
    };
    if !super::on_path(program) {
        return Err(format!("{program} is not on PATH; {install}"));
    }
    let version = super::version(program).unwrap_or_else(|| "version unknown".to_owned());
    let scratch = scratch_parent.join(format!(".symphony-sandbox-probe-{}", std::process::id()));
    fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let trial = (|| {
        let plan = plan(config, &scratch, &[], home.as_deref(), None)?;
        let host = Sandboxed::new(Arc::new(super::LocalHost), config.clone());
        let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
        let mut env = vec![("PATH".into(), path)];
        env.extend(home.clone().map(|h| ("HOME".into(), h.into_os_string())));
        let output = host
            .launch(&Launch {
                program: "true",
                args: &[],
                cwd: &scratch,
                env,
                stdin: false,
                writable: &[],
            })?
            .wait_with_output()?;
        io::Result::Ok((plan, output))
    })();
    if config.backend == Backend::Srt
        && let Ok(dir) = srt_dir(config, &scratch)
    {
        let _ = fs::remove_dir_all(dir);
    }
    let _ = fs::remove_dir_all(&scratch);
    let (plan, output) = trial.map_err(|e| format!("{version}: cannot plan a sandbox: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr: String = stderr.trim().chars().take(500).collect();
        return Err(format!(
            "{name} ({version}) cannot make a sandbox on this host: {stderr} (unprivileged user \
             namespaces may be off: kernel.unprivileged_userns_clone, or an AppArmor profile \
             for bwrap)"
        ));
    }
    let masked = (plan.mounts.iter())
        .filter(|m| matches!(m, Mount::MaskDir(_) | Mount::MaskFile(_)))
        .count();
    let network = match &config.network {
        Network::Open => "network open".to_owned(),
        Network::None => "no network but a private loopback".to_owned(),
        Network::Allow(domains) => format!("network only to {}", domains.join(", ")),
    };
    let scan = if plan.scan_truncated {
        format!(
            "; the search for *.pem and *.key under the home stopped at {SCAN_MAX_ENTRIES} \
             entries: list other key files in sandbox.deny_read_paths"
        )
    } else {
        String::new()
    };
    Ok(format!(
        "{name} ({version}) works here: system read-only, the workspace writable, \
         {masked} credential paths masked, {network}{scan}"
    ))
}
