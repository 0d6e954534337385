//! Typed workflow errors (SPEC 5.5) and warnings, each naming the file, the place and the key.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// The error classes of SPEC 5.5, plus the validation classes of SPEC 6.3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The file cannot be read.
    MissingWorkflowFile,
    /// The front matter is not valid YAML, or is never closed.
    WorkflowParseError,
    /// The front matter is valid YAML but not a map.
    WorkflowFrontMatterNotAMap,
    /// The prompt body is not a valid template.
    TemplateParseError,
    /// Rendering failed: unknown variable or field, bad interpolation.
    TemplateRenderError,
    /// `tracker.kind` is absent.
    MissingTrackerKind,
    /// `tracker.kind` names no adapter this build has.
    UnsupportedTrackerKind,
    /// The adapter's credential is absent or empty after `$VAR` resolution.
    MissingTrackerApiKey,
    /// The adapter's project or repository selector is absent.
    MissingTrackerProject,
    /// `codex.command` is empty.
    MissingCodexCommand,
    /// A value has the wrong type or range.
    InvalidConfigValue,
}

impl ErrorClass {
    /// The snake_case name used in messages and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingWorkflowFile => "missing_workflow_file",
            Self::WorkflowParseError => "workflow_parse_error",
            Self::WorkflowFrontMatterNotAMap => "workflow_front_matter_not_a_map",
            Self::TemplateParseError => "template_parse_error",
            Self::TemplateRenderError => "template_render_error",
            Self::MissingTrackerKind => "missing_tracker_kind",
            Self::UnsupportedTrackerKind => "unsupported_tracker_kind",
            Self::MissingTrackerApiKey => "missing_tracker_api_key",
            Self::MissingTrackerProject => "missing_tracker_project",
            Self::MissingCodexCommand => "missing_codex_command",
            Self::InvalidConfigValue => "invalid_config_value",
        }
    }

    /// Whether this error blocks dispatch (file and config errors) rather than failing only
    /// the run attempt that rendered the prompt (template errors, SPEC 5.5).
    pub fn blocks_dispatch(self) -> bool {
        !matches!(self, Self::TemplateRenderError)
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A 1-based line and column in the workflow file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub col: usize,
}

/// Why a workflow could not be used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkflowError {
    /// What kind of failure.
    pub class: ErrorClass,
    /// The workflow file.
    pub file: PathBuf,
    /// Where in it, when known.
    pub at: Option<Position>,
    /// The config key path (`agent.max_turns`), when the error is about one.
    pub key: Option<String>,
    /// What is wrong and, where possible, what was expected.
    pub message: String,
}

impl WorkflowError {
    pub(crate) fn new(class: ErrorClass, file: &Path, message: impl Into<String>) -> Self {
        Self {
            class,
            file: file.to_owned(),
            at: None,
            key: None,
            message: message.into(),
        }
    }

    pub(crate) fn at(mut self, at: Option<Position>) -> Self {
        self.at = at;
        self
    }

    pub(crate) fn key(mut self, key: &str) -> Self {
        self.key = Some(key.to_owned());
        self
    }

    /// The core's view of this error, for `Event::WorkflowInvalid`.
    pub fn to_core(&self) -> symphony_core::ConfigError {
        let mut message = self.to_string();
        if let Some(rest) = message.strip_prefix(&format!("error[{}]: ", self.class)) {
            message = rest.to_owned();
        }
        symphony_core::ConfigError {
            class: self.class.as_str().to_owned(),
            message,
        }
    }
}

/// `error[<class>]: <file>:<line>:<col>: <message>`; without a position, `<file>: <message>`.
impl fmt::Display for WorkflowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error[{}]: {}", self.class, self.file.display())?;
        if let Some(at) = self.at {
            write!(f, ":{}:{}", at.line, at.col)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for WorkflowError {}

/// Something worth fixing that does not stop the workflow from loading.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// The workflow file.
    pub file: PathBuf,
    /// Where in it, when known.
    pub at: Option<Position>,
    /// The key path concerned.
    pub key: String,
    /// What and what to do instead.
    pub message: String,
}

/// `warning: <file>:<line>:<col>: <key>: <message>`.
impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "warning: {}", self.file.display())?;
        if let Some(at) = self.at {
            write!(f, ":{}:{}", at.line, at.col)?;
        }
        write!(f, ": {}: {}", self.key, self.message)
    }
}
