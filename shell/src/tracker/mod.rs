//! Issue tracker adapters (SPEC 11). Each turns a provider into normalised
//! [`symphony_core::Issue`]s and typed [`TrackerError`]s; the core sees nothing else.

pub(crate) mod closing;
mod forge;
pub mod gitea;
pub mod github;
pub mod gitlab;
pub mod jira;
pub mod kinds;
pub mod linear;
pub mod local;
pub(crate) mod rest;
pub mod scope;

use std::future::Future;
use std::pin::Pin;

use symphony_core::{Issue, IssueId, TrackerError, TrackerErrorCategory};

pub use github::GithubTracker;
/// Record parsers exposed for fuzzing (`fuzz/fuzz_targets/tracker_records.rs`).
pub mod records {
    pub use super::closing::gitlab_closing_references;
    pub use super::github::{
        StateLabels, claimed_by_open_pulls, closing_references, normalize_record,
    };
    pub use super::gitlab::normalize_record as gitlab_record;
    pub use super::jira::{
        adf_document, adf_text, jql_string, normalize_record as jira_record,
        timestamp as jira_timestamp,
    };
}
pub use linear::LinearTracker;
pub use local::LocalTracker;

use crate::workflow::TrackerConfig;

/// A boxed future, so trackers can be used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What `symphony doctor` learns about the configured scope with one or two read-only
/// requests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Probe {
    /// The scope as the tracker names it (a project's name, a repository's full name).
    pub scope: String,
    /// Every state name the tracker knows for that scope, when it can tell (local files take
    /// any name: `None`).
    pub states: Option<Vec<String>>,
    /// What the operator should know about the scope, one line each (`doctor` warns with
    /// them): labels a kind needs that are missing, say.
    pub remarks: Vec<String>,
}

/// The two required operations of SPEC 11.1, plus the adapter's host-side tool surface.
pub trait Tracker: Send + Sync {
    /// Issues in any of `states` (compared after normalisation). Empty `states`: no request,
    /// empty result.
    fn fetch_by_states<'a>(
        &'a self,
        states: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Issue>, TrackerError>>;

    /// Current snapshots of `ids`; ids no longer visible are omitted. Empty `ids`: no
    /// request, empty result.
    fn fetch_by_ids<'a>(
        &'a self,
        ids: &'a [IssueId],
    ) -> BoxFuture<'a, Result<Vec<Issue>, TrackerError>>;

    /// Moves an issue to `state` (used by agent tools and the demo agent).
    fn set_state<'a>(
        &'a self,
        identifier: &'a str,
        state: &'a str,
    ) -> BoxFuture<'a, Result<(), TrackerError>>;

    /// Appends a comment to an issue.
    fn add_comment<'a>(
        &'a self,
        identifier: &'a str,
        body: &'a str,
    ) -> BoxFuture<'a, Result<(), TrackerError>>;

    /// Finds the configured scope (project, repository, directory) and the state names it
    /// knows; an unknown scope is an error naming the setting to check.
    fn probe(&self) -> BoxFuture<'_, Result<Probe, TrackerError>>;

    /// Provider-native agent tools (SPEC 11.5) as dynamic tool specs: `{type, name,
    /// description, inputSchema}`. None by default.
    fn tool_specs(&self) -> Vec<serde_json::Value> {
        Vec::new()
    }

    /// Runs a provider-native tool host-side with the adapter's credentials; `None` when the
    /// adapter has no tool of that name. The text goes back to the agent.
    fn call_tool<'a>(
        &'a self,
        name: &'a str,
        arguments: &'a serde_json::Value,
    ) -> Option<BoxFuture<'a, Result<String, String>>> {
        let _ = (name, arguments);
        None
    }

    /// [`Self::call_tool`] for the agent session working on the issue `session` (its
    /// identifier): a tool that acts on one issue acts on that one only. The default is
    /// `call_tool`, for tools without a per-issue scope.
    fn call_session_tool<'a>(
        &'a self,
        name: &'a str,
        arguments: &'a serde_json::Value,
        session: &'a str,
    ) -> Option<BoxFuture<'a, Result<String, String>>> {
        let _ = session;
        self.call_tool(name, arguments)
    }

    /// What the adapter noticed about the issue `identifier` when it last read it and could not
    /// fix (Gitea: its state labels are missing, several or unknown), for the operator. `None`
    /// by default.
    fn remark(&self, identifier: &str) -> Option<String> {
        let _ = identifier;
        None
    }

    /// The tracker API's rate-limit headroom as of its last answer, when it reports one
    /// (GitHub's `X-RateLimit-Remaining` and `-Limit`), for `/metrics`. `None` by default.
    fn rate_limit(&self) -> Option<RateLimit> {
        None
    }
}

/// A tracker API's rate-limit headroom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests left in the current window.
    pub remaining: u64,
    /// The window's size, when told.
    pub limit: Option<u64>,
}

impl RateLimit {
    /// From `x-ratelimit-remaining` and `x-ratelimit-limit` (GitHub, Jira), or
    /// `ratelimit-remaining` and `ratelimit-limit` (GitLab), when a remaining count is there.
    pub fn from_headers(headers: &reqwest::header::HeaderMap) -> Option<Self> {
        let number = |name: &str| {
            (headers.get(name))
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        ["x-ratelimit-", "ratelimit-"].iter().find_map(|prefix| {
            Some(Self {
                remaining: number(&format!("{prefix}remaining"))?,
                limit: number(&format!("{prefix}limit")),
            })
        })
    }
}

/// The five [`Tracker`] operations of an HTTP adapter, each boxing the adapter's inherent
/// async method of the same role: `by_states`, `by_ids`, `move_to`, `comment` and
/// `probe_scope`. Used inside `impl Tracker for ...`, beside the adapter's tools.
macro_rules! http_operations {
    () => {
        fn fetch_by_states<'a>(
            &'a self,
            states: &'a [String],
        ) -> $crate::tracker::BoxFuture<
            'a,
            Result<Vec<symphony_core::Issue>, symphony_core::TrackerError>,
        > {
            Box::pin(self.by_states(states))
        }

        fn fetch_by_ids<'a>(
            &'a self,
            ids: &'a [symphony_core::IssueId],
        ) -> $crate::tracker::BoxFuture<
            'a,
            Result<Vec<symphony_core::Issue>, symphony_core::TrackerError>,
        > {
            Box::pin(self.by_ids(ids))
        }

        fn probe(
            &self,
        ) -> $crate::tracker::BoxFuture<
            '_,
            Result<$crate::tracker::Probe, symphony_core::TrackerError>,
        > {
            Box::pin(self.probe_scope())
        }

        fn set_state<'a>(
            &'a self,
            identifier: &'a str,
            state: &'a str,
        ) -> $crate::tracker::BoxFuture<'a, Result<(), symphony_core::TrackerError>> {
            Box::pin(self.move_to(identifier, state))
        }

        fn add_comment<'a>(
            &'a self,
            identifier: &'a str,
            body: &'a str,
        ) -> $crate::tracker::BoxFuture<'a, Result<(), symphony_core::TrackerError>> {
            Box::pin(self.comment(identifier, body))
        }
    };
}
use http_operations;

/// An HTTP client for tracker APIs. TLS is rustls with the ring provider (no OpenSSL, no C
/// toolchain), installed as the process default the first time.
pub fn http_client(timeout: std::time::Duration) -> Result<reqwest::Client, String> {
    http_client_builder(timeout)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// The builder behind [`http_client`], for a client that needs one more setting (no
/// redirects, for notifications).
pub fn http_client_builder(timeout: std::time::Duration) -> reqwest::ClientBuilder {
    static PROVIDER: std::sync::Once = std::sync::Once::new();
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("symphony-rs/", env!("CARGO_PKG_VERSION")))
}

/// Largest tracker response body read (one page of a listing, one GraphQL answer).
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Largest answer a provider tool hands back to the agent.
pub const MAX_TOOL_RESPONSE_BYTES: usize = 1024 * 1024;

/// Reads `response`'s body, at most `max` bytes: a larger `Content-Length` is refused before
/// reading, and a body that grows past `max` while streaming stops there. `what` names the
/// provider in the error.
pub(crate) async fn body_capped(
    mut response: reqwest::Response,
    max: usize,
    what: &str,
) -> Result<Vec<u8>, TrackerError> {
    let too_large = |size: String| {
        error(
            TrackerErrorCategory::TrackerResponse,
            format!("{what} sent a body of {size} bytes, more than the {max} read"),
        )
    };
    if let Some(length) = response.content_length()
        && length > max as u64
    {
        return Err(too_large(length.to_string()));
    }
    let mut body = Vec::new();
    loop {
        let chunk = response.chunk().await.map_err(|e| {
            error(
                TrackerErrorCategory::TrackerRequest,
                format!("{what} request failed while reading the body: {e}"),
            )
        })?;
        let Some(chunk) = chunk else {
            return Ok(body);
        };
        if body.len() + chunk.len() > max {
            return Err(too_large(format!("over {}", body.len() + chunk.len())));
        }
        body.extend_from_slice(&chunk);
    }
}

/// [`body_capped`] parsed as JSON.
pub(crate) async fn json_capped(
    response: reqwest::Response,
    what: &str,
) -> Result<serde_json::Value, TrackerError> {
    let body = body_capped(response, MAX_RESPONSE_BYTES, what).await?;
    serde_json::from_slice(&body).map_err(|e| {
        error(
            TrackerErrorCategory::TrackerResponse,
            format!("{what} sent a body that is not JSON: {e}"),
        )
    })
}

/// Every item of a listing whose pages are JSON arrays, starting at `first`: `get` answers a
/// page's body and the next page's URL. A next URL already read, or more than `max_pages`
/// pages, fails the listing (a partial list never passes for a whole one). `provider` and
/// `what` (an item, singular) name things in errors.
pub(crate) async fn follow_pages<F, Fut>(
    first: String,
    max_pages: u32,
    provider: &str,
    what: &str,
    mut get: F,
) -> Result<Vec<serde_json::Value>, TrackerError>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<(serde_json::Value, Option<String>), TrackerError>>,
{
    let mut url = Some(first);
    let mut items = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    while let Some(current) = url {
        if !seen.insert(current.clone()) {
            return Err(error(
                TrackerErrorCategory::TrackerPagination,
                format!("{provider}'s next page leads back to a page already read ({what}s)"),
            ));
        }
        if seen.len() > max_pages as usize {
            return Err(error(
                TrackerErrorCategory::TrackerPagination,
                format!(
                    "more than {max_pages} pages of {what}s; raise \
                     tracker.provider.pagination_max_pages (a partial list is not used)"
                ),
            ));
        }
        let (body, next) = get(current).await?;
        let Some(batch) = body.as_array() else {
            return Err(error(
                TrackerErrorCategory::TrackerResponse,
                format!("{provider} sent a {what} list that is not an array"),
            ));
        };
        items.extend(batch.iter().cloned());
        url = next;
    }
    Ok(items)
}

/// The `rel="next"` URL of a `Link` header.
pub(crate) fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned()
            })
    })
}

/// `text` percent-encoded for a query value or a path segment: everything but ASCII letters,
/// digits, `-`, `_`, `.` and `~` (labels hold `/` and spaces; GitLab project paths hold `/`).
pub(crate) fn percent(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Whether `repo` is `owner/name`, each part non-empty and made of ASCII letters, digits, `-`,
/// `_` and `.` (the repository selector of GitHub and Gitea).
pub(crate) fn is_owner_and_name(repo: &str) -> bool {
    repo.split_once('/').is_some_and(|(owner, name)| {
        let ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        ok(owner) && ok(name)
    })
}

/// A tracker error with a category and a message.
pub(crate) fn error(category: TrackerErrorCategory, message: impl Into<String>) -> TrackerError {
    TrackerError {
        category,
        message: message.into(),
    }
}

/// The adapter for a tracker config, its credentials scrubbed from whatever it returns.
pub fn build(config: &TrackerConfig) -> Result<Box<dyn Tracker>, String> {
    config.provider.build(config)
}

/// An adapter whose errors and tool results never carry its credentials: a server may echo
/// the header it was sent (in an error message, say), and nothing an adapter returns may
/// hand a credential to a log line or to an agent. Every kind gets this from
/// [`kinds::ProviderSettings::build`].
pub(crate) struct Scrubbed {
    pub(crate) inner: Box<dyn Tracker>,
    /// The credential values (never empty strings).
    pub(crate) secrets: Vec<String>,
}

impl Scrubbed {
    fn text(&self, mut text: String) -> String {
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "****");
            }
        }
        text
    }

    fn error(&self, error: TrackerError) -> TrackerError {
        TrackerError {
            category: error.category,
            message: self.text(error.message),
        }
    }

    fn result<T>(&self, result: Result<T, TrackerError>) -> Result<T, TrackerError> {
        result.map_err(|e| self.error(e))
    }
}

impl Tracker for Scrubbed {
    fn fetch_by_states<'a>(
        &'a self,
        states: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Issue>, TrackerError>> {
        Box::pin(async move { self.result(self.inner.fetch_by_states(states).await) })
    }

    fn fetch_by_ids<'a>(
        &'a self,
        ids: &'a [IssueId],
    ) -> BoxFuture<'a, Result<Vec<Issue>, TrackerError>> {
        Box::pin(async move { self.result(self.inner.fetch_by_ids(ids).await) })
    }

    fn set_state<'a>(
        &'a self,
        identifier: &'a str,
        state: &'a str,
    ) -> BoxFuture<'a, Result<(), TrackerError>> {
        Box::pin(async move { self.result(self.inner.set_state(identifier, state).await) })
    }

    fn add_comment<'a>(
        &'a self,
        identifier: &'a str,
        body: &'a str,
    ) -> BoxFuture<'a, Result<(), TrackerError>> {
        Box::pin(async move { self.result(self.inner.add_comment(identifier, body).await) })
    }

    fn probe(&self) -> BoxFuture<'_, Result<Probe, TrackerError>> {
        Box::pin(async move { self.result(self.inner.probe().await) })
    }

    fn tool_specs(&self) -> Vec<serde_json::Value> {
        self.inner.tool_specs()
    }

    fn call_tool<'a>(
        &'a self,
        name: &'a str,
        arguments: &'a serde_json::Value,
    ) -> Option<BoxFuture<'a, Result<String, String>>> {
        let call = self.inner.call_tool(name, arguments)?;
        Some(self.scrub_tool(call))
    }

    fn call_session_tool<'a>(
        &'a self,
        name: &'a str,
        arguments: &'a serde_json::Value,
        session: &'a str,
    ) -> Option<BoxFuture<'a, Result<String, String>>> {
        let call = self.inner.call_session_tool(name, arguments, session)?;
        Some(self.scrub_tool(call))
    }

    fn remark(&self, identifier: &str) -> Option<String> {
        self.inner.remark(identifier).map(|text| self.text(text))
    }

    fn rate_limit(&self) -> Option<RateLimit> {
        self.inner.rate_limit()
    }
}

impl Scrubbed {
    fn scrub_tool<'a>(
        &'a self,
        call: BoxFuture<'a, Result<String, String>>,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            match call.await {
                Ok(text) => Ok(self.text(text)),
                Err(text) => Err(self.text(text)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_paths_are_percent_encoded() {
        assert_eq!(percent("aiops/in-progress"), "aiops%2Fin-progress");
        assert_eq!(percent("a b&c"), "a%20b%26c");
        assert_eq!(percent("symphony::todo"), "symphony%3A%3Atodo");
    }
}
