//! `tracker.provider` for `kind: local`, and its row in the kinds table.

use std::path::PathBuf;

use serde::Serialize;

use super::LocalTracker;
use crate::tracker::Tracker;
use crate::tracker::kinds::{Kind, ProviderSettings, Settings};
use crate::workflow::{SectionKeys, TrackerConfig, WorkflowError};

/// The kinds-table row.
pub(crate) static KIND: Kind = Kind {
    name: "local",
    provider_keys: &["path"],
    legacy_aliases: &[],
    default_terminal_states: &["Done", "Cancelled"],
    secret_vars: &[],
    remote: false,
    read,
};

/// `tracker.provider` for `kind: local`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LocalSettings {
    /// Directory of issue files; absolute after resolution. Default `./issues`.
    pub path: PathBuf,
}

fn read(keys: &mut SectionKeys<'_, '_>) -> Result<ProviderSettings, WorkflowError> {
    let path = keys.path("path", "./issues")?;
    Ok(ProviderSettings::new(LocalSettings { path }))
}

impl Settings for LocalSettings {
    fn target(&self) -> String {
        format!("issues in {}", self.path.display())
    }

    fn build(&self, tracker: &TrackerConfig) -> Result<Box<dyn Tracker>, String> {
        let tracker = LocalTracker::new(self.path.clone(), tracker.terminal_states.clone());
        Ok(Box::new(tracker))
    }
}
