//! The one table of runner kinds (`agent.kind`). A runner is registered here and nowhere
//! else: the config reader, `doctor` and the daemon read [`KINDS`].

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use super::Runner;
pub use crate::host::{on_path, version};
use crate::workflow::ServiceConfig;

/// What `doctor` found about a runner on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Preflight {
    /// Ready: what was found.
    Ready(String),
    /// Not runnable here, and what to do.
    Missing(String),
}

/// One runner kind: its row in [`KINDS`].
pub struct RunnerKind {
    /// `agent.kind` value (lowercase).
    pub name: &'static str,
    /// The runner for a config (its own section is already read and validated).
    pub build: fn(&ServiceConfig) -> Arc<dyn Runner>,
    /// `doctor`'s check that the runner can start here.
    pub preflight: fn(&ServiceConfig) -> Preflight,
}

/// Every runner this build has; the first is the default.
pub static KINDS: [&RunnerKind; 3] = [
    &super::codex::KIND,
    &super::claude::KIND,
    &super::demo::KIND,
];

/// The kind named `name` (already normalised).
pub fn find(name: &str) -> Option<&'static RunnerKind> {
    KINDS.iter().copied().find(|kind| kind.name == name)
}

/// The kind used when `agent.kind` is not written.
pub fn default_kind() -> &'static RunnerKind {
    KINDS[0]
}

/// The kind names, in table order.
pub fn names() -> Vec<&'static str> {
    KINDS.iter().map(|kind| kind.name).collect()
}

impl fmt::Debug for RunnerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RunnerKind({})", self.name)
    }
}

impl fmt::Display for RunnerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for RunnerKind {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for RunnerKind {}

impl Serialize for RunnerKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name)
    }
}

// Preflight helpers for the rooms.

/// `doctor`'s check of an agent CLI started by `command` (through `bash -lc`): its program (the
/// first word that is not `env` or an assignment, else `default`) is on `PATH`, and its version.
/// `install` says how to get it.
pub fn cli_preflight(command: &str, default: &str, install: &str) -> Preflight {
    let program = (command.split_whitespace())
        .find(|w| *w != "env" && !w.contains('='))
        .unwrap_or(default);
    if !on_path(program) {
        return Preflight::Missing(format!("`{program}` is not on PATH (hint: {install})"));
    }
    let found = version(program).unwrap_or_else(|| "version unknown".to_owned());
    Preflight::Ready(format!("{program}: {found}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_runner_is_found_by_its_unique_lowercase_name() {
        let names = names();
        for name in &names {
            assert_eq!(find(name).map(|k| k.name), Some(*name));
            assert_eq!(names.iter().filter(|n| *n == name).count(), 1, "{name}");
            assert_eq!(*name, name.to_lowercase());
        }
        assert_eq!(
            default_kind().name,
            "codex",
            "SPEC 5.3: the agent is Codex by default"
        );
    }
}
