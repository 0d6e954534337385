//! WORKFLOW.md: loading, the typed config, the prompt template and reload (SPEC 5, 6, 12).
//!
//! [`load`] reads a file; [`parse`] is the same on text already in memory (used by tests,
//! fuzzing and benches), resolving `$VAR` and `~` against an [`Env`] it is given.

mod config;
mod duration;
mod env;
mod error;
pub(crate) mod front_matter;
mod template;
mod untrusted;
mod watch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use config::{
    AgentConfig, ApprovalDecision, ClaudeConfig, CodexConfig, HandoffConfig, HooksConfig,
    Overrides, PolicyMode, PollingConfig, RepoConfig, Secret, SectionKeys, ServerConfig,
    ServiceConfig, Source, TrackerConfig, WorkspaceConfig,
};
pub use env::{Env, MapEnv, ProcessEnv};
pub use error::{ErrorClass, Position, Warning, WorkflowError};
pub use template::{DEFAULT_PROMPT, PromptTemplate, sample_issue};
pub use untrusted::PREAMBLE as UNTRUSTED_PREAMBLE;
pub use watch::{DEFAULT_INTERVAL, WatchEvent, Watcher};

/// A loaded workflow: everything the daemon needs from WORKFLOW.md.
#[derive(Debug)]
pub struct Workflow {
    /// The file it came from.
    pub path: PathBuf,
    /// The effective config.
    pub config: ServiceConfig,
    /// Where each config value came from, by key path.
    pub sources: BTreeMap<String, Source>,
    /// Problems that did not stop loading.
    pub warnings: Vec<Warning>,
    /// The prompt template (which may hold a parse error that fails each attempt).
    pub prompt: PromptTemplate,
    /// The file's text as read: the reload watcher compares new reads with it.
    pub source: String,
}

/// The default workflow path: `WORKFLOW.md` in the current directory (SPEC 5.1).
pub fn default_path() -> PathBuf {
    PathBuf::from("WORKFLOW.md")
}

/// Largest WORKFLOW.md accepted. Real ones are a few kilobytes; the cap keeps a runaway file
/// from being read (and re-read on every reload check) whole.
pub const MAX_WORKFLOW_BYTES: u64 = 1024 * 1024;

/// Reads a file that the daemon is told to trust as configuration: only a regular file (a
/// FIFO or device would block the reader or never end), at most `max` bytes. The file is
/// opened without blocking and checked on the open descriptor, so nothing can be swapped in
/// between the check and the read.
pub fn read_regular_file(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (a FIFO, device or directory is refused)",
        ));
    }
    if metadata.len() > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!(
                "{} bytes, more than the {max} bytes allowed",
                metadata.len()
            ),
        ));
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("grew past the {max} bytes allowed while being read"),
        ));
    }
    Ok(bytes)
}

/// Reads and parses the workflow at `path`. The secrets it configures join the process's
/// masked set ([`crate::redact`]).
pub fn load(path: &Path, env: &dyn Env, overrides: &Overrides) -> Result<Workflow, WorkflowError> {
    let text = read_regular_file(path, MAX_WORKFLOW_BYTES).map_err(|e| {
        WorkflowError::new(
            ErrorClass::MissingWorkflowFile,
            path,
            format!("cannot read the workflow file: {e}"),
        )
    })?;
    let text = String::from_utf8(text).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let line = bytes[..offset].iter().filter(|b| **b == b'\n').count() + 1;
        WorkflowError::new(
            ErrorClass::WorkflowParseError,
            path,
            format!("the file is not valid UTF-8 (at byte {offset})"),
        )
        .at(Some(Position { line, col: 1 }))
    })?;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let base_dir = absolute.parent().unwrap_or(Path::new("/"));
    let workflow = parse_in(&text, path, base_dir, env, overrides)?;
    crate::redact::register(workflow.config.secret_values());
    Ok(workflow)
}

/// Parses workflow text as if read from `path`; relative paths in it resolve against the
/// directory of `path`.
pub fn parse(
    text: &str,
    path: &Path,
    env: &dyn Env,
    overrides: &Overrides,
) -> Result<Workflow, WorkflowError> {
    let base_dir = path.parent().unwrap_or(Path::new(""));
    parse_in(text, path, base_dir, env, overrides)
}

fn parse_in(
    text: &str,
    path: &Path,
    base_dir: &Path,
    env: &dyn Env,
    overrides: &Overrides,
) -> Result<Workflow, WorkflowError> {
    let parts = front_matter::split(text).map_err(|front_matter::Unclosed| {
        WorkflowError::new(
            ErrorClass::WorkflowParseError,
            path,
            "the front matter opened by `---` on line 1 is never closed by a `---` line",
        )
        .at(Some(Position { line: 1, col: 1 }))
    })?;
    let yaml = parts.yaml.unwrap_or("");
    let root = match parts.yaml {
        None => prompt_only_defaults(),
        Some(yaml) => parse_front_matter(yaml, parts.yaml_line, path)?,
    };
    let mut resolved =
        config::resolve(&root, path, base_dir, yaml, parts.yaml_line, env, overrides)?;
    if parts.yaml.is_none() {
        for key in ["tracker.kind", "agent.kind"] {
            resolved.sources.insert(key.to_owned(), Source::Default);
        }
        resolved.warnings.insert(
            0,
            Warning {
                file: path.to_owned(),
                at: Some(Position { line: 1, col: 1 }),
                key: "tracker.kind".to_owned(),
                message: "no front matter: the whole file is the prompt, run with the defaults \
                          (the local tracker reading ./issues, the demo agent); add front \
                          matter to choose a tracker and an agent"
                    .to_owned(),
            },
        );
    }
    let prompt = PromptTemplate::new(parts.body, path, parts.body_at)
        .with_repo(&resolved.config.repo)
        .with_handoff(&resolved.config.handoff);
    Ok(Workflow {
        path: path.to_owned(),
        config: resolved.config,
        sources: resolved.sources,
        warnings: resolved.warnings,
        prompt,
        source: text.to_owned(),
    })
}

/// The settings of a file without front matter (aiops-platform reads such a file as a prompt
/// with its defaults; SPEC 5.2 as a prompt with an empty config, which has no tracker): the
/// local tracker and the demo agent, which need no account and touch nothing outside.
fn prompt_only_defaults() -> serde_yaml::Mapping {
    let mut root = serde_yaml::Mapping::new();
    for (section, kind) in [("tracker", "local"), ("agent", "demo")] {
        let mut map = serde_yaml::Mapping::new();
        map.insert("kind".into(), kind.into());
        root.insert(section.into(), map.into());
    }
    root
}

fn parse_front_matter(
    yaml: &str,
    first_line: usize,
    path: &Path,
) -> Result<serde_yaml::Mapping, WorkflowError> {
    if let Err(why) = front_matter::check_flow_depth(yaml, front_matter::MAX_FLOW_DEPTH) {
        return Err(WorkflowError::new(
            ErrorClass::WorkflowParseError,
            path,
            why,
        ));
    }
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).map_err(|e| {
        let at = e.location().map(|l| Position {
            line: first_line + l.line() - 1,
            col: l.column(),
        });
        // serde_yaml states positions in front matter terms: the first is the error's own
        // (reported as `at` instead), later ones ("while parsing ... at line N") are moved
        // to file terms.
        let mut message = e.to_string();
        if at.is_some()
            && let Some(cut) = message.find(" at line ")
        {
            let tail = &message[cut + " at line ".len()..];
            let rest = tail.find(", ").map_or("", |comma| &tail[comma..]);
            message = format!("{}{}", &message[..cut], shift_lines(rest, first_line - 1));
        }
        WorkflowError::new(
            ErrorClass::WorkflowParseError,
            path,
            format!("invalid YAML front matter: {message}"),
        )
        .at(at)
    })?;
    match value {
        serde_yaml::Value::Mapping(map) => Ok(map),
        serde_yaml::Value::Null => Ok(serde_yaml::Mapping::new()),
        other => {
            let found = match other {
                serde_yaml::Value::Sequence(_) => "a list",
                serde_yaml::Value::String(_) => "a string",
                serde_yaml::Value::Number(_) => "a number",
                serde_yaml::Value::Bool(_) => "a boolean",
                _ => "a tagged value",
            };
            Err(WorkflowError::new(
                ErrorClass::WorkflowFrontMatterNotAMap,
                path,
                format!("the front matter must be a map of settings, found {found}"),
            )
            .at(Some(Position {
                line: first_line,
                col: 1,
            })))
        }
    }
}

/// Adds `offset` to every "line N" in `text`.
fn shift_lines(text: &str, offset: usize) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(cut) = rest.find("line ") {
        let (head, tail) = rest.split_at(cut + "line ".len());
        out.push_str(head);
        let digits = tail
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(tail.len());
        match tail[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + offset).to_string()),
            Err(_) => out.push_str(&tail[..digits]),
        }
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out
}
