//! The one table of tracker kinds. A kind is registered here and nowhere else: the config
//! reader, `check`, `doctor`, secret masking and every "one of: ..." message read [`KINDS`].
//!
//! A kind's row points into its room (`tracker/<name>/`): the keys it reads under
//! `tracker.provider`, its older flat spellings, its default terminal states, the environment
//! variables that hold its credentials, and the function that reads its settings. The settings
//! it returns build the adapter ([`Settings::build`]).

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use super::Tracker;
use crate::workflow::{Secret, SectionKeys, TrackerConfig, WorkflowError};

/// One tracker kind: its row in [`KINDS`].
pub struct Kind {
    /// `tracker.kind` value (lowercase).
    pub name: &'static str,
    /// Keys read under `tracker.provider`; also accepted, deprecated, directly under
    /// `tracker`.
    pub provider_keys: &'static [&'static str],
    /// Older flat spellings directly under `tracker` that mean a provider key of another
    /// name: `(flat, provider key)`.
    pub legacy_aliases: &'static [(&'static str, &'static str)],
    /// `tracker.terminal_states` when the workflow gives none.
    pub default_terminal_states: &'static [&'static str],
    /// Environment variables holding this kind's credentials: read as fallbacks, masked in
    /// every output, never passed to agents or hooks unless a workflow names them.
    pub secret_vars: &'static [&'static str],
    /// Whether answering at all proves a credential was accepted (`doctor`'s wording).
    pub remote: bool,
    /// Reads and validates the provider keys.
    pub read: fn(&mut SectionKeys<'_, '_>) -> Result<ProviderSettings, WorkflowError>,
}

/// Every tracker kind this build has. Add a row here and a room under `tracker/`.
pub static KINDS: [&Kind; 6] = [
    &super::local::KIND,
    &super::linear::KIND,
    &super::github::KIND,
    &super::gitea::KIND,
    &super::gitlab::KIND,
    &super::jira::KIND,
];

/// The kind named `name` (already normalised: trimmed, lowercase).
pub fn find(name: &str) -> Option<&'static Kind> {
    KINDS.iter().copied().find(|kind| kind.name == name)
}

/// The kind names, in table order.
pub fn names() -> Vec<&'static str> {
    KINDS.iter().map(|kind| kind.name).collect()
}

/// Every credential variable any kind reads.
pub fn secret_vars() -> impl Iterator<Item = &'static str> {
    KINDS
        .iter()
        .flat_map(|kind| kind.secret_vars.iter().copied())
}

impl Kind {
    /// The flat key `flat` directly under `tracker` names this provider key, if any.
    pub fn provider_key_for(&self, flat: &str) -> Option<&'static str> {
        self.legacy_aliases
            .iter()
            .find(|(old, _)| *old == flat)
            .map(|(_, key)| *key)
            .or_else(|| self.provider_keys.iter().copied().find(|k| *k == flat))
    }
}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kind({})", self.name)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for Kind {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Kind {}

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name)
    }
}

/// A kind's validated `tracker.provider` settings, as its room defines them.
pub trait Settings: fmt::Debug + PartialEq + Serialize + Send + Sync + 'static {
    /// What the tracker watches, for one-line summaries ("repository owner/name").
    fn target(&self) -> String;

    /// The credentials among the settings, so every output surface can mask them.
    fn secrets(&self) -> Vec<&Secret> {
        Vec::new()
    }

    /// Forms the credentials take on the wire that do not contain them verbatim (Jira's Basic
    /// header is base64 of `email:token`); masked wherever the credentials are.
    fn derived_secrets(&self) -> Vec<String> {
        Vec::new()
    }

    /// The adapter for these settings and the kind-independent `tracker` settings.
    fn build(&self, tracker: &TrackerConfig) -> Result<Box<dyn Tracker>, String>;
}

/// [`Settings`] with its type erased, so one config type holds any kind's settings.
trait Erased: Send + Sync {
    fn target(&self) -> String;
    fn secrets(&self) -> Vec<&Secret>;
    fn derived_secrets(&self) -> Vec<String>;
    fn build(&self, tracker: &TrackerConfig) -> Result<Box<dyn Tracker>, String>;
    /// The settings as a value; a YAML value keeps the fields in declaration order.
    fn value(&self) -> serde_yaml::Value;
    fn as_any(&self) -> &dyn Any;
    fn same(&self, other: &dyn Erased) -> bool;
    fn debug(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

impl<T: Settings> Erased for T {
    fn target(&self) -> String {
        Settings::target(self)
    }
    fn secrets(&self) -> Vec<&Secret> {
        Settings::secrets(self)
    }
    fn derived_secrets(&self) -> Vec<String> {
        Settings::derived_secrets(self)
    }
    fn build(&self, tracker: &TrackerConfig) -> Result<Box<dyn Tracker>, String> {
        Settings::build(self, tracker)
    }
    fn value(&self) -> serde_yaml::Value {
        serde_yaml::to_value(self).unwrap_or(serde_yaml::Value::Null)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn same(&self, other: &dyn Erased) -> bool {
        other.as_any().downcast_ref::<T>() == Some(self)
    }
    fn debug(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// `tracker.provider` after validation: one kind's [`Settings`]. Serialises as those settings
/// (credentials as `****`), compares by value.
#[derive(Clone)]
pub struct ProviderSettings(Arc<dyn Erased>);

impl ProviderSettings {
    /// Wraps a room's settings.
    pub fn new<T: Settings>(settings: T) -> Self {
        Self(Arc::new(settings))
    }

    /// The settings as their room's type, when they are of that type.
    pub fn get<T: Settings>(&self) -> Option<&T> {
        self.0.as_any().downcast_ref()
    }

    /// See [`Settings::target`].
    pub fn target(&self) -> String {
        self.0.target()
    }

    /// See [`Settings::secrets`].
    pub fn secrets(&self) -> Vec<&Secret> {
        self.0.secrets()
    }

    /// Every credential value, as configured and in its derived forms
    /// ([`Settings::derived_secrets`]), never an empty string.
    pub fn secret_values(&self) -> Vec<String> {
        let configured = self.secrets().into_iter().map(|s| s.expose().to_owned());
        (configured.chain(self.0.derived_secrets()))
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// See [`Settings::build`]; the adapter comes wrapped so that its credentials never
    /// appear in what it returns (`tracker::Scrubbed`).
    pub fn build(&self, tracker: &TrackerConfig) -> Result<Box<dyn Tracker>, String> {
        Ok(Box::new(super::Scrubbed {
            inner: self.0.build(tracker)?,
            secrets: self.secret_values(),
        }))
    }
}

impl fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.debug(f)
    }
}

impl PartialEq for ProviderSettings {
    fn eq(&self, other: &Self) -> bool {
        self.0.same(other.0.as_ref())
    }
}

impl Eq for ProviderSettings {}

impl Serialize for ProviderSettings {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.value().serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_found_by_its_name_and_names_are_unique() {
        let names = names();
        for name in &names {
            assert_eq!(find(name).map(|k| k.name), Some(*name));
            assert_eq!(names.iter().filter(|n| *n == name).count(), 1, "{name}");
            assert_eq!(*name, name.to_lowercase(), "kinds are matched lowercase");
        }
        assert!(find("nope").is_none());
    }

    #[test]
    fn legacy_aliases_and_flat_keys_map_to_provider_keys_the_kind_reads() {
        for kind in KINDS {
            for (flat, key) in kind.legacy_aliases {
                assert!(kind.provider_keys.contains(key), "{kind}: {flat} -> {key}");
                assert_eq!(kind.provider_key_for(flat), Some(*key));
            }
            for key in kind.provider_keys {
                assert_eq!(kind.provider_key_for(key), Some(*key));
            }
            assert!(!kind.default_terminal_states.is_empty(), "{kind}");
        }
    }
}
