//! Typed workflow errors (SPEC 5.5) and warnings, each naming the file, the place and the key.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// The config error classes (SPEC 5.5, 6.3), shared with the core's `WorkflowInvalid` event.
pub use symphony_core::ConfigErrorClass as ErrorClass;

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
            class: self.class,
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
