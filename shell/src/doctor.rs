//! `symphony doctor`: the online preflight a first-time operator runs before starting the
//! daemon. One line per check, `ok` / `warn` / `fail` with a hint; exit 1 when any check fails.

use std::fmt::Write as _;

use symphony::agent::kinds::{Preflight, on_path};
use symphony::host::{Host, LocalHost};
use symphony::tracker::Probe;
use symphony::workflow::{self, Overrides, ProcessEnv, Source, Workflow};
use symphony_core::issue::normalize;

use crate::Outcome;
use crate::cli::CheckArgs;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    Warn,
    Fail,
}

struct Report {
    text: String,
    failed: bool,
}

impl Report {
    fn line(&mut self, level: Level, check: &str, message: impl AsRef<str>) {
        let tag = match level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "fail",
        };
        self.failed |= level == Level::Fail;
        let _ = writeln!(self.text, "{tag}  {check:<10} {}", message.as_ref());
    }
}

fn check_tracker(workflow: &Workflow, report: &mut Report) {
    let config = &workflow.config;
    let tracker = match symphony::tracker::build(&config.tracker) {
        Ok(tracker) => tracker,
        Err(e) => return report.line(Level::Fail, "tracker", e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return report.line(Level::Fail, "tracker", format!("no async runtime: {e}")),
    };
    let kind = &config.tracker.kind;
    let probe = match runtime.block_on(tracker.probe()) {
        Ok(probe) => probe,
        Err(e) => {
            return report.line(Level::Fail, "tracker", format!("{kind}: {}", e.message));
        }
    };
    let scope = &probe.scope;
    let states = config.tracker.active_states.clone();
    match runtime.block_on(tracker.fetch_by_states(&states)) {
        Ok(issues) if issues.is_empty() && probe.states.is_some() => report.line(
            Level::Warn,
            "tracker",
            format!(
                "{kind} answered, credential accepted, {scope} found, but no issue is in {}",
                states.join(", ")
            ),
        ),
        Ok(issues) => report.line(
            Level::Ok,
            "tracker",
            format!(
                "{kind} {}, {scope}: {} issue(s) in active states",
                if kind.remote {
                    "reachable, credential accepted"
                } else {
                    "readable"
                },
                issues.len()
            ),
        ),
        Err(e) => report.line(
            Level::Fail,
            "tracker",
            format!("{kind} ({scope}): {}", e.message),
        ),
    }
    for remark in &probe.remarks {
        report.line(Level::Warn, "tracker", format!("{kind}: {remark}"));
    }
    check_states(workflow, &probe, report);
}

/// Whether the configured active and terminal states exist where the tracker can tell.
fn check_states(workflow: &Workflow, probe: &Probe, report: &mut Report) {
    let tracker = &workflow.config.tracker;
    let Some(known) = &probe.states else {
        return report.line(
            Level::Ok,
            "states",
            format!("{} accepts any state name", tracker.kind),
        );
    };
    let exists = |state: &String| known.iter().any(|k| normalize(k) == normalize(state));
    let missing = |states: &[String]| -> Vec<String> {
        states.iter().filter(|s| !exists(s)).cloned().collect()
    };
    let (active, terminal) = (
        missing(&tracker.active_states),
        missing(&tracker.terminal_states),
    );
    let known_list = known.join(", ");
    let scope = &probe.scope;
    if active.len() == tracker.active_states.len() && !active.is_empty() {
        return report.line(
            Level::Fail,
            "states",
            format!(
                "no active state exists in {scope}, so nothing would be dispatched: {} \
                 (it has: {known_list}; hint: tracker.active_states)",
                active.join(", ")
            ),
        );
    }
    if terminal.len() == tracker.terminal_states.len() && !terminal.is_empty() {
        return report.line(
            Level::Fail,
            "states",
            format!(
                "no terminal state exists in {scope}, so finished work would never be cleaned \
                 up: {} (it has: {known_list}; hint: tracker.terminal_states)",
                terminal.join(", ")
            ),
        );
    }
    let written = |key: &str| {
        workflow
            .sources
            .get(key)
            .is_some_and(|source| *source != Source::Default)
    };
    let mut problems = Vec::new();
    if !active.is_empty() {
        problems.push(format!("active {}", active.join(", ")));
    }
    if !terminal.is_empty() && written("tracker.terminal_states") {
        problems.push(format!("terminal {}", terminal.join(", ")));
    }
    if problems.is_empty() {
        let unused = if terminal.is_empty() {
            String::new()
        } else {
            format!(
                " (default terminal states it does not use: {})",
                terminal.join(", ")
            )
        };
        report.line(
            Level::Ok,
            "states",
            format!("every configured state exists in {scope}{unused}"),
        );
    } else {
        report.line(
            Level::Warn,
            "states",
            format!(
                "not in {scope}: {} (it has: {known_list}; a typo here means those issues are \
                 never picked up or never cleaned up)",
                problems.join("; ")
            ),
        );
    }
}

fn check_agent(workflow: &Workflow, report: &mut Report) {
    let config = &workflow.config;
    match (config.agent.kind.preflight)(config) {
        Preflight::Ready(found) => report.line(Level::Ok, "agent", found),
        Preflight::Missing(why) => report.line(Level::Fail, "agent", why),
    }
}

fn check_sandbox(workflow: &Workflow, report: &mut Report) {
    let config = &workflow.config.sandbox;
    if !config.enabled() {
        let who = if rustix::process::geteuid().is_root() {
            "root"
        } else {
            "the daemon's user"
        };
        return report.line(
            Level::Ok,
            "sandbox",
            format!(
                "none: agents run as {who}, confined only by their own policy (sandbox.backend: \
                 bubblewrap adds one)"
            ),
        );
    }
    match symphony::host::sandbox::probe(config, &workflow.config.workspace.root) {
        Ok(found) => report.line(Level::Ok, "sandbox", found),
        Err(why) => report.line(Level::Fail, "sandbox", why),
    }
}

fn check_workspace(workflow: &Workflow, report: &mut Report) {
    let root = &workflow.config.workspace.root;
    let host = LocalHost;
    let writable = host.create_dir_all(root).and_then(|()| {
        let probe = root.join(format!(".symphony-doctor-{}", std::process::id()));
        host.write_file(&probe, b"ok", false)?;
        host.remove_file(&probe)
    });
    if let Err(e) = writable {
        return report.line(
            Level::Fail,
            "workspace",
            format!("{} is not writable: {e}", root.display()),
        );
    }
    let min = workflow.config.workspace.min_free_disk_mb;
    match host.free_space_mb(root) {
        Ok(free) if min > 0 && free < min => report.line(
            Level::Warn,
            "workspace",
            format!("{}: {free} MB free, below workspace.min_free_disk_mb ({min}): dispatch would pause", root.display()),
        ),
        Ok(free) => report.line(
            Level::Ok,
            "workspace",
            format!("{} writable, {free} MB free", root.display()),
        ),
        Err(e) => report.line(Level::Warn, "workspace", format!("free space unknown: {e}")),
    }
}

fn check_http(workflow: &Workflow, report: &mut Report) {
    let server = &workflow.config.server;
    match server.port {
        None => report.line(Level::Ok, "http", "no HTTP server configured"),
        Some(0) => report.line(
            Level::Ok,
            "http",
            format!("{}: an ephemeral port", server.bind),
        ),
        Some(port) => {
            let host = server.bind.trim_start_matches('[').trim_end_matches(']');
            let address = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            match std::net::TcpListener::bind(&address) {
                Ok(_) => report.line(Level::Ok, "http", format!("{address} is free")),
                Err(e) => report.line(
                    Level::Fail,
                    "http",
                    format!("cannot listen on {address}: {e} (hint: another process uses it; change server.port or --port)"),
                ),
            }
        }
    }
}

pub(crate) fn run(args: &CheckArgs) -> Outcome {
    let path = args.workflow.clone().unwrap_or_else(workflow::default_path);
    let mut report = Report {
        text: String::new(),
        failed: false,
    };
    match workflow::load(&path, &ProcessEnv, &Overrides::default()) {
        Err(error) => report.line(Level::Fail, "workflow", error.to_string()),
        Ok(workflow) => {
            let warnings = workflow.warnings.len();
            // The same validation as `check` and daemon startup: a template that cannot
            // render for a sample issue stops the daemon, so doctor fails on it too.
            let detail = match workflow.prompt.validate() {
                Err(e) => {
                    report.line(Level::Fail, "workflow", e.to_string());
                    None
                }
                Ok(_) if warnings > 0 => Some((
                    Level::Warn,
                    format!(
                        "{} loads with {warnings} warning(s): run `symphony check`",
                        path.display()
                    ),
                )),
                Ok(_) => Some((Level::Ok, format!("{} loads", path.display()))),
            };
            if let Some((level, message)) = detail {
                report.line(level, "workflow", message);
            }
            check_tracker(&workflow, &mut report);
            check_agent(&workflow, &mut report);
            for tool in ["git", "bash"] {
                if on_path(tool) {
                    report.line(Level::Ok, tool, "found");
                } else {
                    report.line(Level::Fail, tool, "not on PATH (hooks and agents need it)");
                }
            }
            check_workspace(&workflow, &mut report);
            check_sandbox(&workflow, &mut report);
            check_http(&workflow, &mut report);
        }
    }
    Outcome {
        stdout: report.text,
        stderr: String::new(),
        success: !report.failed,
    }
}
