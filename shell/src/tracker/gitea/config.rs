//! `tracker.provider` for `kind: gitea`, and its row in the kinds table.

use serde::Serialize;

use super::GiteaTracker;
use crate::tracker::Tracker;
use crate::tracker::kinds::{Kind, ProviderSettings, Settings};
use crate::workflow::{ErrorClass, Secret, SectionKeys, TrackerConfig, WorkflowError};

/// The kinds-table row.
pub(crate) static KIND: Kind = Kind {
    name: "gitea",
    provider_keys: &[
        "endpoint",
        "api_key",
        "repo",
        "state_labels",
        "pagination_max_pages",
        "skip_issues_with_open_pull_requests",
        "timeout_ms",
    ],
    legacy_aliases: &[("api_url", "endpoint")],
    default_terminal_states: &["Done", "Canceled"],
    secret_vars: &[TOKEN_VAR],
    remote: true,
    read,
};

/// Where the token is read when the workflow names no variable.
pub(crate) const TOKEN_VAR: &str = "GITEA_TOKEN";
/// Where the base URL is read when the workflow names none.
pub(crate) const URL_VAR: &str = "GITEA_BASE_URL";

/// The default state labels, highest priority first (aiops-platform's set).
pub const DEFAULT_STATE_LABELS: [(&str, &str); 7] = [
    ("Rework", "aiops/rework"),
    ("In Progress", "aiops/in-progress"),
    ("Merging", "aiops/merging"),
    ("Human Review", "aiops/human-review"),
    ("Todo", "aiops/todo"),
    ("Done", "aiops/done"),
    ("Canceled", "aiops/canceled"),
];

/// `tracker.provider` for `kind: gitea`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GiteaSettings {
    /// The Gitea base URL (`https://gitea.example.com`); the API is under `/api/v1`.
    pub endpoint: String,
    /// Token, sent as `Authorization: token <key>`. Fallback: `$GITEA_TOKEN`.
    pub api_key: Secret,
    /// `owner/name`.
    pub repo: String,
    /// State name and the label that carries it, highest priority first.
    pub state_labels: Vec<(String, String)>,
    /// Pages read per listing at most; more fails the listing.
    pub pagination_max_pages: u32,
    /// Skip issues that an open pull request closes (one more listing per poll).
    pub skip_issues_with_open_pull_requests: bool,
    /// Per-request timeout.
    pub timeout_ms: u64,
}

fn read(keys: &mut SectionKeys<'_, '_>) -> Result<ProviderSettings, WorkflowError> {
    let endpoint = match keys.string("endpoint", None)? {
        Some(endpoint) => endpoint,
        None => keys.from_env("endpoint", URL_VAR).ok_or_else(|| {
            keys.missing(
                ErrorClass::MissingTrackerProject,
                format!(
                    "tracker.provider.endpoint is required for kind gitea (the Gitea base \
                     URL), or export {URL_VAR}"
                ),
            )
        })?,
    };
    let endpoint = endpoint.trim().trim_end_matches('/').to_owned();
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(keys.invalid("endpoint", "an http:// or https:// URL", &endpoint));
    }
    let api_key = keys.secret("api_key", TOKEN_VAR)?;
    let Some(repo) = keys.string("repo", None)? else {
        return Err(keys.missing(
            ErrorClass::MissingTrackerProject,
            "tracker.provider.repo is required for kind gitea, as `owner/name`",
        ));
    };
    if !crate::tracker::is_owner_and_name(&repo) {
        return Err(keys.invalid("repo", "`owner/name`", &repo));
    }
    let state_labels = match keys.string_map("state_labels")? {
        Some(map) if map.is_empty() => {
            return Err(keys.invalid("state_labels", "at least one state: label", "{}"));
        }
        Some(map) => map,
        None => DEFAULT_STATE_LABELS
            .iter()
            .map(|(state, label)| ((*state).to_owned(), (*label).to_owned()))
            .collect(),
    };
    let pagination_max_pages = keys.int("pagination_max_pages", 20, 1..=1_000)? as u32;
    let skip = keys.flag("skip_issues_with_open_pull_requests", false)?;
    let timeout_ms = keys.int("timeout_ms", 30_000, 1..=600_000)? as u64;
    Ok(ProviderSettings::new(GiteaSettings {
        endpoint,
        api_key,
        repo,
        state_labels,
        pagination_max_pages,
        skip_issues_with_open_pull_requests: skip,
        timeout_ms,
    }))
}

impl Settings for GiteaSettings {
    fn target(&self) -> String {
        format!("repository {} on {}", self.repo, self.endpoint)
    }

    fn secrets(&self) -> Vec<&Secret> {
        vec![&self.api_key]
    }

    fn build(&self, tracker: &TrackerConfig) -> Result<Box<dyn Tracker>, String> {
        Ok(Box::new(GiteaTracker::new(self, &tracker.terminal_states)?))
    }
}
