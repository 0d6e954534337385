//! `tracker.provider` for `kind: github`, and its row in the kinds table.

use serde::Serialize;

use super::GithubTracker;
use crate::tracker::Tracker;
use crate::tracker::kinds::{Kind, ProviderSettings, Settings};
use crate::workflow::{ErrorClass, Secret, SectionKeys, TrackerConfig, WorkflowError};

/// The kinds-table row.
pub(crate) static KIND: Kind = Kind {
    name: "github",
    provider_keys: &[
        "api_url",
        "repo",
        "token",
        "state_label_prefix",
        "skip_issues_with_open_pull_requests",
        "timeout_ms",
    ],
    legacy_aliases: &[("api_key", "token"), ("endpoint", "api_url")],
    default_terminal_states: &["Done", "Closed"],
    secret_vars: &[TOKEN_VAR],
    remote: true,
    read,
};

/// Where the token is read when the workflow names no variable.
pub(crate) const TOKEN_VAR: &str = "GITHUB_TOKEN";

/// `tracker.provider` for `kind: github`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GithubSettings {
    /// REST API base.
    pub api_url: String,
    /// `owner/name`.
    pub repo: String,
    /// Token. Fallback: `$GITHUB_TOKEN`.
    pub token: Secret,
    /// Labels starting with this carry the issue's state.
    pub state_label_prefix: String,
    /// Skip issues that already have an open pull request linked.
    pub skip_issues_with_open_pull_requests: bool,
    /// Per-request timeout.
    pub timeout_ms: u64,
}

fn read(keys: &mut SectionKeys<'_, '_>) -> Result<ProviderSettings, WorkflowError> {
    let api_url = keys
        .string("api_url", Some("https://api.github.com"))?
        .unwrap_or_default();
    let Some(repo) = keys.string("repo", None)? else {
        return Err(keys.missing(
            ErrorClass::MissingTrackerProject,
            "tracker.provider.repo is required for kind github, as `owner/name`",
        ));
    };
    if !crate::tracker::is_owner_and_name(&repo) {
        return Err(keys.invalid("repo", "`owner/name`", &repo));
    }
    let token = keys.secret("token", TOKEN_VAR)?;
    let state_label_prefix = keys
        .string("state_label_prefix", Some("state:"))?
        .unwrap_or_default();
    let skip = keys.flag("skip_issues_with_open_pull_requests", false)?;
    let timeout_ms = keys.int("timeout_ms", 30_000, 1..=600_000)? as u64;
    Ok(ProviderSettings::new(GithubSettings {
        api_url,
        repo,
        token,
        state_label_prefix,
        skip_issues_with_open_pull_requests: skip,
        timeout_ms,
    }))
}

impl Settings for GithubSettings {
    fn target(&self) -> String {
        format!("repository {}", self.repo)
    }

    fn secrets(&self) -> Vec<&Secret> {
        vec![&self.token]
    }

    fn build(&self, tracker: &TrackerConfig) -> Result<Box<dyn Tracker>, String> {
        Ok(Box::new(GithubTracker::new(self, &tracker.state_names())?))
    }
}
