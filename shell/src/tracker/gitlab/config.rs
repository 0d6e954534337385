//! `tracker.provider` for `kind: gitlab`, and its row in the kinds table.

use serde::Serialize;

use super::GitlabTracker;
use crate::tracker::Tracker;
use crate::tracker::kinds::{Kind, ProviderSettings, Settings};
use crate::workflow::{ErrorClass, Secret, SectionKeys, TrackerConfig, WorkflowError};

/// The kinds-table row.
pub(crate) static KIND: Kind = Kind {
    name: "gitlab",
    provider_keys: &[
        "endpoint",
        "api_key",
        "project",
        "state_label_prefix",
        "skip_issues_with_open_merge_requests",
        "pagination_max_pages",
        "timeout_ms",
    ],
    legacy_aliases: &[("api_url", "endpoint")],
    default_terminal_states: &["Done", "Closed"],
    secret_vars: &[TOKEN_VAR],
    remote: true,
    read,
};

/// Where the token is read when the workflow names no variable.
pub(crate) const TOKEN_VAR: &str = "GITLAB_TOKEN";

/// `tracker.provider` for `kind: gitlab`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GitlabSettings {
    /// The REST API base, ending `/api/v4` (added when the workflow gives the instance URL).
    pub endpoint: String,
    /// Token, sent as `PRIVATE-TOKEN`. Fallback: `$GITLAB_TOKEN`.
    pub api_key: Secret,
    /// The project: its full path (`group/sub/project`) or its numeric id.
    pub project: String,
    /// Labels starting with this carry the issue's state (`symphony::` for scoped labels);
    /// empty: whole label names that are workflow states.
    pub state_label_prefix: String,
    /// Skip issues that an open merge request closes (one more listing per poll).
    pub skip_issues_with_open_merge_requests: bool,
    /// Pages read per listing at most; more fails the listing.
    pub pagination_max_pages: u32,
    /// Per-request timeout.
    pub timeout_ms: u64,
}

/// Whether `project` is a numeric id or a full path: two or more segments of ASCII letters,
/// digits, `-`, `_` and `.`, none of them `.` or `..`.
pub(crate) fn is_project(project: &str) -> bool {
    if !project.is_empty() && project.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    let segments: Vec<&str> = project.split('/').collect();
    segments.len() >= 2
        && segments.iter().all(|s| {
            !s.is_empty()
                && *s != "."
                && *s != ".."
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}

fn read(keys: &mut SectionKeys<'_, '_>) -> Result<ProviderSettings, WorkflowError> {
    let endpoint = keys
        .string("endpoint", Some("https://gitlab.com/api/v4"))?
        .unwrap_or_default();
    let endpoint = endpoint.trim().trim_end_matches('/').to_owned();
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(keys.invalid("endpoint", "an http:// or https:// URL", &endpoint));
    }
    let endpoint = if endpoint.ends_with("/api/v4") {
        endpoint
    } else {
        format!("{endpoint}/api/v4")
    };
    let api_key = keys.secret("api_key", TOKEN_VAR)?;
    let Some(project) = keys.string("project", None)? else {
        return Err(keys.missing(
            ErrorClass::MissingTrackerProject,
            "tracker.provider.project is required for kind gitlab: the project's full path \
             (`group/sub/project`) or its numeric id",
        ));
    };
    let project = project.trim().trim_matches('/').to_owned();
    if !is_project(&project) {
        return Err(keys.invalid(
            "project",
            "a full path such as `group/sub/project`, or a numeric id",
            &project,
        ));
    }
    let state_label_prefix = keys
        .string("state_label_prefix", Some(""))?
        .unwrap_or_default();
    let skip = keys.flag("skip_issues_with_open_merge_requests", false)?;
    let pagination_max_pages = keys.int("pagination_max_pages", 100, 1..=10_000)? as u32;
    let timeout_ms = keys.int("timeout_ms", 30_000, 1..=600_000)? as u64;
    Ok(ProviderSettings::new(GitlabSettings {
        endpoint,
        api_key,
        project,
        state_label_prefix,
        skip_issues_with_open_merge_requests: skip,
        pagination_max_pages,
        timeout_ms,
    }))
}

impl Settings for GitlabSettings {
    fn target(&self) -> String {
        format!("project {} on {}", self.project, self.endpoint)
    }

    fn secrets(&self) -> Vec<&Secret> {
        vec![&self.api_key]
    }

    fn build(&self, tracker: &TrackerConfig) -> Result<Box<dyn Tracker>, String> {
        Ok(Box::new(GitlabTracker::new(
            self,
            &tracker.state_names(),
            &tracker.terminal_states,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projects_are_ids_or_full_paths_without_dot_segments() {
        for good in ["42", "acme/app", "acme/platform/app", "a.b/c-d_e"] {
            assert!(is_project(good), "{good}");
        }
        for bad in [
            "",
            "app",
            "acme//app",
            "acme/../x",
            "acme/./x",
            "acme/a b",
            "acme/%2e",
            "4 2",
        ] {
            assert!(!is_project(bad), "{bad}");
        }
    }
}
