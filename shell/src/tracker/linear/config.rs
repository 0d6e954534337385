//! `tracker.provider` for `kind: linear`, and its row in the kinds table.

use serde::Serialize;

use super::LinearTracker;
use super::graphql::MutationPolicy;
use crate::tracker::Tracker;
use crate::tracker::kinds::{Kind, ProviderSettings, Settings};
use crate::workflow::{ErrorClass, Secret, SectionKeys, TrackerConfig, WorkflowError};

/// The kinds-table row.
pub(crate) static KIND: Kind = Kind {
    name: "linear",
    provider_keys: &[
        "endpoint",
        "api_key",
        "project_slug",
        "team_key",
        "assignee",
        "allow_mutations",
        "allowed_mutations",
        "timeout_ms",
    ],
    legacy_aliases: &[],
    default_terminal_states: &["Closed", "Cancelled", "Canceled", "Duplicate", "Done"],
    secret_vars: &[API_KEY_VAR],
    remote: true,
    read,
};

/// Where the API key is read when the workflow names no variable.
pub(crate) const API_KEY_VAR: &str = "LINEAR_API_KEY";

/// `tracker.provider` for `kind: linear`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LinearSettings {
    /// GraphQL endpoint.
    pub endpoint: String,
    /// API key, sent raw in `Authorization`. Fallback: `$LINEAR_API_KEY`.
    pub api_key: Secret,
    /// The project's slug id.
    pub project_slug: String,
    /// Only issues of the team with this key (`ENG`), when set (aiops-platform's
    /// `tracker.team_key`).
    pub team_key: Option<String>,
    /// Only issues assigned to this user, when set.
    pub assignee: Option<String>,
    /// Which mutations the `linear_graphql` tool may send.
    pub mutations: MutationPolicy,
    /// Per-request timeout.
    pub timeout_ms: u64,
}

fn read(keys: &mut SectionKeys<'_, '_>) -> Result<ProviderSettings, WorkflowError> {
    let endpoint = keys
        .string("endpoint", Some("https://api.linear.app/graphql"))?
        .unwrap_or_default();
    let api_key = keys.secret("api_key", API_KEY_VAR)?;
    let Some(project_slug) = keys
        .string("project_slug", None)?
        .filter(|s| !s.trim().is_empty())
    else {
        return Err(keys.missing(
            ErrorClass::MissingTrackerProject,
            "tracker.provider.project_slug is required for kind linear \
             (the slug id from the project's URL)",
        ));
    };
    let team_key = (keys.string("team_key", None)?)
        .map(|key| key.trim().to_owned())
        .filter(|key| !key.is_empty());
    let assignee = keys.string("assignee", None)?;
    let mutations = mutation_policy(keys)?;
    let timeout_ms = keys.int("timeout_ms", 30_000, 1..=600_000)? as u64;
    Ok(ProviderSettings::new(LinearSettings {
        endpoint,
        api_key,
        project_slug,
        team_key,
        assignee,
        mutations,
        timeout_ms,
    }))
}

/// `allow_mutations` and `allowed_mutations`: neither written, any mutation (SPEC 10.5);
/// `allow_mutations: false`, none; otherwise, when the list is written and not empty, only
/// mutations whose top-level fields it all names. A list with `allow_mutations: false`, a
/// name that is not a GraphQL name, or a name listed twice is refused, as aiops-platform does.
fn mutation_policy(keys: &mut SectionKeys<'_, '_>) -> Result<MutationPolicy, WorkflowError> {
    let allow = keys.flag("allow_mutations", true)?;
    let listed = keys.strings("allowed_mutations")?.unwrap_or_default();
    let name = "allowed_mutations";
    for (i, field) in listed.iter().enumerate() {
        if !is_graphql_name(field) {
            return Err(keys.invalid(name, "GraphQL field names such as issueUpdate", field));
        }
        if listed[..i].contains(field) {
            return Err(keys.invalid(name, "each name once", field));
        }
    }
    match (allow, listed.is_empty()) {
        (false, true) => Ok(MutationPolicy::None),
        (false, false) => Err(keys.error(
            ErrorClass::InvalidConfigValue,
            name,
            "allowed_mutations needs allow_mutations: true (with allow_mutations false, no \
             mutation is sent at all)",
        )),
        (true, true) => Ok(MutationPolicy::Any),
        (true, false) => Ok(MutationPolicy::Only(listed)),
    }
}

/// A GraphQL name: a letter or `_`, then letters, digits and `_`.
fn is_graphql_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Settings for LinearSettings {
    fn target(&self) -> String {
        match &self.team_key {
            Some(team) => format!("project {}, team {team}", self.project_slug),
            None => format!("project {}", self.project_slug),
        }
    }

    fn secrets(&self) -> Vec<&Secret> {
        vec![&self.api_key]
    }

    fn build(&self, tracker: &TrackerConfig) -> Result<Box<dyn Tracker>, String> {
        Ok(Box::new(LinearTracker::new(
            self,
            &tracker.terminal_states,
        )?))
    }
}
