//! The environment the config resolves against: variables, home and temp directories.
//! Behind a trait so tests and fuzzing resolve against a fixed map, never the real process.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where `$VAR`, `~` and the default workspace root come from.
pub trait Env {
    /// The variable's value; unset and non-UTF-8 values are `None`.
    fn var(&self, name: &str) -> Option<String>;
    /// The home directory for `~`.
    fn home(&self) -> Option<PathBuf>;
    /// The system temporary directory (default workspace root's parent, SPEC 5.3.3).
    fn temp_dir(&self) -> PathBuf;
}

/// The real process environment.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn home(&self) -> Option<PathBuf> {
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
    }

    fn temp_dir(&self) -> PathBuf {
        std::env::temp_dir()
    }
}

/// A fixed environment for tests, fuzzing and benches.
#[derive(Clone, Debug, Default)]
pub struct MapEnv {
    /// Variables.
    pub vars: BTreeMap<String, String>,
    /// `~`.
    pub home: Option<PathBuf>,
    /// The temp directory.
    pub temp: PathBuf,
}

impl MapEnv {
    /// An environment with these variables, home `/home/op` and temp `/tmp`.
    pub fn new<'a>(vars: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            home: Some(PathBuf::from("/home/op")),
            temp: PathBuf::from("/tmp"),
        }
    }
}

impl Env for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }

    fn home(&self) -> Option<PathBuf> {
        self.home.clone()
    }

    fn temp_dir(&self) -> PathBuf {
        self.temp.clone()
    }
}

/// The variable name when `value` is exactly `$NAME` or `${NAME}`.
pub(crate) fn var_reference(value: &str) -> Option<&str> {
    let value = value.trim();
    let name = value
        .strip_prefix("${")
        .and_then(|v| v.strip_suffix('}'))
        .or_else(|| value.strip_prefix('$'))?;
    let mut chars = name.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic() || first == '_')
        .then_some(())
        .filter(|()| chars.all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .map(|()| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn var_references_are_whole_values_only() {
        assert_eq!(var_reference("$LINEAR_API_KEY"), Some("LINEAR_API_KEY"));
        assert_eq!(var_reference(" ${GITHUB_TOKEN} "), Some("GITHUB_TOKEN"));
        assert_eq!(var_reference("$1ABC"), None);
        assert_eq!(var_reference("$"), None);
        assert_eq!(var_reference("${}"), None);
        assert_eq!(var_reference("prefix$VAR"), None);
        assert_eq!(var_reference("$VAR/path"), None);
        assert_eq!(var_reference("lin_api_123"), None);
    }
}
