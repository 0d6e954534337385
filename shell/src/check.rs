//! `symphony check` and `symphony config`: offline looks at a workflow.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::ser::Error as _;
use symphony::workflow::{
    self, Overrides, ProcessEnv, ServiceConfig, Source, Workflow, WorkflowError,
};

use crate::Outcome;
use crate::cli::{CheckArgs, ConfigArgs, Format, ServerFlags};

fn overrides(flags: &ServerFlags) -> Overrides {
    Overrides {
        port: flags.port,
        bind: flags.bind.clone(),
        state_dir: flags.state_dir.clone(),
    }
}

fn path_or_default(path: Option<&PathBuf>) -> PathBuf {
    path.cloned().unwrap_or_else(workflow::default_path)
}

fn warnings(workflow: &Workflow) -> String {
    workflow.warnings.iter().map(|w| format!("{w}\n")).collect()
}

fn failed(error: &WorkflowError, stderr: String) -> Outcome {
    Outcome {
        stdout: String::new(),
        stderr: format!("{stderr}{error}\n"),
        success: false,
    }
}

fn describe_tracker(config: &ServiceConfig) -> String {
    let tracker = &config.tracker;
    let target = tracker.provider.target();
    format!(
        "tracker {} ({target}), active: {}, terminal: {}",
        tracker.kind,
        tracker.active_states.join(", "),
        tracker.terminal_states.join(", ")
    )
}

pub(crate) fn check(args: &CheckArgs) -> Outcome {
    let path = path_or_default(args.workflow.as_ref());
    let workflow = match workflow::load(&path, &ProcessEnv, &Overrides::default()) {
        Ok(w) => w,
        Err(error) => return failed(&error, String::new()),
    };
    let stderr = warnings(&workflow);
    let lines = match workflow.prompt.validate() {
        Ok(lines) => lines,
        Err(error) => return failed(&error, stderr),
    };
    let c = &workflow.config;
    let mut stdout = String::new();
    let _ = writeln!(stdout, "ok: {}", path.display());
    let _ = writeln!(stdout, "  {}", describe_tracker(c));
    let _ = writeln!(
        stdout,
        "  agents: up to {} at once, {} turns each; polling every {} ms",
        c.agent.max_concurrent_agents, c.agent.max_turns, c.polling.interval_ms
    );
    let _ = writeln!(stdout, "  workspaces under {}", c.workspace.root.display());
    let prompt = if workflow.prompt.is_default {
        "the default prompt (the workflow body is empty)".to_owned()
    } else {
        format!("renders for a sample issue ({lines} lines)")
    };
    let _ = writeln!(stdout, "  prompt: {prompt}");
    if !workflow.warnings.is_empty() {
        let _ = writeln!(
            stdout,
            "  {} warning(s), see above",
            workflow.warnings.len()
        );
    }
    Outcome {
        stdout,
        stderr,
        success: true,
    }
}

#[derive(Serialize)]
struct Effective<'a> {
    workflow: &'a Path,
    config: &'a ServiceConfig,
    sources: std::collections::BTreeMap<&'a str, String>,
}

pub(crate) fn config(args: &ConfigArgs) -> Outcome {
    let path = path_or_default(args.workflow.as_ref());
    let workflow = match workflow::load(&path, &ProcessEnv, &overrides(&args.server)) {
        Ok(w) => w,
        Err(error) => return failed(&error, String::new()),
    };
    let effective = Effective {
        workflow: &workflow.path,
        config: &workflow.config,
        sources: workflow
            .sources
            .iter()
            .map(|(key, source)| {
                let shown = match source {
                    Source::Workflow(written) if written == key => "workflow file".to_owned(),
                    other => other.to_string(),
                };
                (key.as_str(), shown)
            })
            .collect(),
    };
    let stdout = match args.format {
        Format::Json => serde_json::to_string_pretty(&effective).map(|s| s + "\n"),
        Format::Yaml => serde_yaml::to_string(&effective).map_err(serde_json::Error::custom),
    };
    match stdout {
        Ok(stdout) => Outcome {
            stdout,
            stderr: warnings(&workflow),
            success: true,
        },
        Err(e) => Outcome {
            stdout: String::new(),
            stderr: format!("error: cannot encode the config: {e}\n"),
            success: false,
        },
    }
}
