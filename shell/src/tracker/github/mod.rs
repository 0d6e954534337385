//! `tracker.kind: github`: GitHub issues over the REST API, state carried by labels.
//!
//! - Scope: issues of `provider.repo` (`owner/name`); pull requests are filtered out.
//! - State: an open issue's state is the name after `provider.state_label_prefix` on its first
//!   such label (`state:In Progress` -> `In Progress`), or `Open` without one; a closed issue's
//!   state is `Closed`. With an empty prefix (aiops-platform's convention, the default with its
//!   `repo` block), whole label names are states: the first configured state the issue
//!   carries as a label.
//! - Identity: `id` is the issue number, `identifier` is `GH-<number>`; `native_ref` keeps the
//!   number, the repository and the node id.
//! - Priority from a `priority:<1..4>` label; labels lowercase (state and priority labels
//!   included); no blockers (GitHub issues have none in this API).
//! - Pagination by the `Link` header (`rel="next"`), 100 per page. Every GET sends the last
//!   `ETag` it saw for that URL; a 304 reuses the cached page and costs no rate limit.
//! - Open-PR claim skip (`provider.skip_issues_with_open_pull_requests`): an open pull request
//!   whose title or body closes an issue with a GitHub closing keyword (`Closes #N`,
//!   `fixes acme/app#N`, `Resolves https://github.com/acme/app/issues/N`, ...) makes that issue
//!   not `dispatchable` while both are open. Pull requests come in the same open-issue listing,
//!   so the check costs no request.
//! - Rate limits: 403/429 with `Retry-After` or an exhausted `X-RateLimit-Remaining` are
//!   `tracker_rate_limited`, naming when to retry.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use symphony_core::issue::normalize;
use symphony_core::{Issue, IssueId, TrackerError, TrackerErrorCategory};

use super::{BoxFuture, Probe, Tracker, error, next_link};
mod config;
mod records;
mod tools;

pub use config::GithubSettings;
pub(crate) use config::KIND;
pub use records::{StateLabels, claimed_by_open_pulls, closing_references, normalize_record};

const PER_PAGE: u32 = 100;
const MAX_PAGES: usize = 100;

/// A cached 200 answer: its `ETag`, body and next-page link.
#[derive(Clone)]
struct Cached {
    etag: String,
    body: Value,
    next: Option<String>,
}

/// GitHub issues of one repository.
pub struct GithubTracker {
    client: reqwest::Client,
    api_url: String,
    repo: String,
    token: String,
    /// How labels carry states.
    states: StateLabels,
    skip_claimed: bool,
    /// The last 200 answer per URL, for conditional requests.
    cache: Mutex<BTreeMap<String, Cached>>,
    /// The rate-limit headroom GitHub reported last.
    rate: Mutex<Option<super::RateLimit>>,
}

impl std::fmt::Debug for GithubTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubTracker")
            .field("api_url", &self.api_url)
            .field("repo", &self.repo)
            .finish_non_exhaustive()
    }
}

impl GithubTracker {
    /// A client for `provider`; `states` are the workflow's state names (active, terminal,
    /// inactive), which are the state labels when the prefix is empty.
    pub fn new(provider: &GithubSettings, states: &[String]) -> Result<Self, String> {
        Ok(Self {
            client: super::http_client(Duration::from_millis(provider.timeout_ms))?,
            api_url: provider.api_url.trim_end_matches('/').to_owned(),
            repo: provider.repo.clone(),
            token: provider.token.expose().to_owned(),
            states: StateLabels::new(&provider.state_label_prefix, states),
            skip_claimed: provider.skip_issues_with_open_pull_requests,
            cache: Mutex::new(BTreeMap::new()),
            rate: Mutex::new(None),
        })
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, url)
            .bearer_auth(&self.token)
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
    }

    /// Keeps the rate-limit headroom an answer reports.
    fn note_rate(&self, response: &reqwest::Response) {
        if let (Some(rate), Ok(mut kept)) = (
            super::RateLimit::from_headers(response.headers()),
            self.rate.lock(),
        ) {
            *kept = Some(rate);
        }
    }

    /// Maps a non-success answer to a typed error.
    fn status_error(response: &reqwest::Response) -> TrackerError {
        let status = response.status();
        let headers = response.headers();
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let exhausted = header("x-ratelimit-remaining") == Some("0");
        if status.as_u16() == 429
            || (status.as_u16() == 403 && (exhausted || header("retry-after").is_some()))
        {
            let when = header("retry-after")
                .map(|s| format!("retry after {s} s"))
                .or_else(|| {
                    header("x-ratelimit-reset").map(|r| format!("the limit resets at epoch {r}"))
                })
                .unwrap_or_else(|| "retry later".to_owned());
            return error(
                TrackerErrorCategory::TrackerRateLimited,
                format!("GitHub rate limit ({status}): {when}"),
            );
        }
        let hint = if status.as_u16() == 401 {
            format!(" (check tracker.provider.token / ${})", config::TOKEN_VAR)
        } else if status.as_u16() == 404 {
            " (check tracker.provider.repo and the token's access)".to_owned()
        } else {
            String::new()
        };
        let category = match status.as_u16() {
            401 | 403 => TrackerErrorCategory::TrackerAuth,
            _ => TrackerErrorCategory::TrackerStatus,
        };
        error(category, format!("GitHub answered HTTP {status}{hint}"))
    }

    /// A GET with conditional caching: the body, and the next page's URL.
    async fn get(&self, url: &str) -> Result<(Value, Option<String>), TrackerError> {
        // With `missing_ok` false every non-success status is an error, so `None` cannot occur.
        self.get_if_present(url, false)
            .await
            .map(|found| found.unwrap_or((Value::Null, None)))
    }

    /// [`Self::get`], with `Ok(None)` for 404 and 410 when `missing_ok`: an issue that is gone.
    async fn get_if_present(
        &self,
        url: &str,
        missing_ok: bool,
    ) -> Result<Option<(Value, Option<String>)>, TrackerError> {
        let cached = self.cache.lock().ok().and_then(|c| c.get(url).cloned());
        let mut request = self.request(reqwest::Method::GET, url);
        if let Some(cached) = &cached {
            request = request.header(reqwest::header::IF_NONE_MATCH, &cached.etag);
        }
        let response = request.send().await.map_err(|e| {
            error(
                TrackerErrorCategory::TrackerRequest,
                format!("GitHub request failed: {e}"),
            )
        })?;
        self.note_rate(&response);
        if response.status().as_u16() == 304
            && let Some(cached) = cached
        {
            return Ok(Some((cached.body, cached.next)));
        }
        if missing_ok && matches!(response.status().as_u16(), 404 | 410) {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(Self::status_error(&response));
        }
        let etag = response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let next = response
            .headers()
            .get(reqwest::header::LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(next_link);
        let body = super::json_capped(response, "GitHub").await?;
        if let (Some(etag), Ok(mut cache)) = (etag, self.cache.lock()) {
            let entry = Cached {
                etag,
                body: body.clone(),
                next: next.clone(),
            };
            cache.insert(url.to_owned(), entry);
        }
        Ok(Some((body, next)))
    }

    /// Every page of the repository's issues in `state` (`open`, `closed` or `all`).
    async fn list(&self, state: &str) -> Result<Vec<Value>, TrackerError> {
        let first = format!(
            "{}/repos/{}/issues?state={state}&per_page={PER_PAGE}",
            self.api_url, self.repo
        );
        self.pages(first, "issue").await
    }

    /// Every item of a paginated list starting at `first`; `what` names an item in errors.
    async fn pages(&self, first: String, what: &str) -> Result<Vec<Value>, TrackerError> {
        let mut url = Some(first);
        let mut items = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        while let Some(current) = url {
            if !seen.insert(current.clone()) {
                return Err(error(
                    TrackerErrorCategory::TrackerPagination,
                    format!("GitHub's next page link leads back to a page already read ({what}s)"),
                ));
            }
            if seen.len() > MAX_PAGES {
                return Err(error(
                    TrackerErrorCategory::TrackerPagination,
                    format!("more than {MAX_PAGES} pages of {what}s"),
                ));
            }
            let (body, next) = self.get(&current).await?;
            let Some(batch) = body.as_array() else {
                return Err(error(
                    TrackerErrorCategory::TrackerResponse,
                    format!("GitHub sent a {what} list that is not an array"),
                ));
            };
            items.extend(batch.iter().cloned());
            url = next;
        }
        Ok(items)
    }

    /// The state a label stands for, if it is a state label.
    fn state_label<'l>(&'l self, label: &'l str) -> Option<&'l str> {
        self.states.state_of(label)
    }

    /// SPEC 11.3 normalisation; `None` for a pull request or a record without its fields.
    fn normalize(&self, item: &Value) -> Option<Issue> {
        normalize_record(item, &self.states, &self.repo)
    }

    async fn by_states(&self, states: &[String]) -> Result<Vec<Issue>, TrackerError> {
        if states.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: Vec<String> = states.iter().map(|s| normalize(s)).collect();
        let want_closed = wanted.iter().any(|s| s == "closed");
        let want_open = wanted.iter().any(|s| s != "closed");
        let scope = match (want_open, want_closed) {
            (true, true) => "all",
            (false, true) => "closed",
            _ => "open",
        };
        let items = self.list(scope).await?;
        let claimed = if self.skip_claimed {
            claimed_by_open_pulls(&items, &self.repo)
        } else {
            Vec::new()
        };
        Ok(items
            .iter()
            .filter_map(|item| self.normalize(item))
            .filter(|issue| wanted.contains(&normalize(&issue.state)))
            .map(|mut issue| {
                if issue
                    .id
                    .as_str()
                    .parse::<u64>()
                    .is_ok_and(|n| claimed.contains(&n))
                {
                    issue.dispatchable = false;
                }
                issue
            })
            .collect())
    }

    /// The repository, and every state its labels can express.
    async fn probe_scope(&self) -> Result<Probe, TrackerError> {
        let url = format!("{}/repos/{}", self.api_url, self.repo);
        let Some((repository, _)) = self.get_if_present(&url, true).await? else {
            return Err(error(
                TrackerErrorCategory::TrackerStatus,
                format!(
                    "GitHub has no repository {} visible to this token (check \
                     tracker.provider.repo and the token's repository access)",
                    self.repo
                ),
            ));
        };
        if repository["has_issues"] == json!(false) {
            return Err(error(
                TrackerErrorCategory::TrackerRequest,
                format!("{} has issues turned off", self.repo),
            ));
        }
        let labels = self
            .pages(format!("{url}/labels?per_page={PER_PAGE}"), "label")
            .await?;
        let mut states = vec!["Open".to_owned(), "Closed".to_owned()];
        states.extend(
            labels
                .iter()
                .filter_map(|label| self.state_label(label["name"].as_str()?).map(str::to_owned)),
        );
        Ok(Probe {
            scope: format!(
                "repository {}",
                repository["full_name"].as_str().unwrap_or(&self.repo)
            ),
            states: Some(states),
            remarks: Vec::new(),
        })
    }

    async fn by_ids(&self, ids: &[IssueId]) -> Result<Vec<Issue>, TrackerError> {
        let mut issues = Vec::new();
        for id in ids {
            let Ok(number) = id.as_str().parse::<u64>() else {
                continue; // not a GitHub issue id: not visible here
            };
            let url = format!("{}/repos/{}/issues/{number}", self.api_url, self.repo);
            // Gone (404/410): omitted, as SPEC 11.1 asks.
            let Some((body, _)) = self.get_if_present(&url, true).await? else {
                continue;
            };
            match self.normalize(&body) {
                Some(issue) => issues.push(issue),
                None if body.get("pull_request").is_some() => {}
                None => {
                    return Err(error(
                        TrackerErrorCategory::TrackerResponse,
                        format!("GitHub issue {number} came without its required fields"),
                    ));
                }
            }
        }
        Ok(issues)
    }

    fn number(identifier: &str) -> Result<u64, TrackerError> {
        identifier.trim_start_matches("GH-").parse().map_err(|_| {
            error(
                TrackerErrorCategory::TrackerRequest,
                format!("{identifier:?} is not a GitHub issue identifier (GH-<number>)"),
            )
        })
    }

    async fn move_to(&self, identifier: &str, state: &str) -> Result<(), TrackerError> {
        let number = Self::number(identifier)?;
        let url = format!("{}/repos/{}/issues/{number}", self.api_url, self.repo);
        let (item, _) = self.get(&url).await?;
        let mut labels: Vec<String> = item["labels"]
            .as_array()
            .map(|ls| {
                ls.iter()
                    .filter_map(|l| l["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        labels.retain(|l| self.state_label(l).is_none());
        let closing = matches!(normalize(state).as_str(), "closed");
        let mut patch = json!({});
        if closing {
            patch["state"] = json!("closed");
        } else {
            let label = (self.states.label_for(state))
                .map_err(|why| error(TrackerErrorCategory::TrackerRequest, why))?;
            labels.push(label);
            patch["state"] = json!("open");
        }
        patch["labels"] = json!(labels);
        self.write(reqwest::Method::PATCH, &url, &patch).await
    }

    /// A write request whose answer only needs to be a success.
    async fn write(
        &self,
        method: reqwest::Method,
        url: &str,
        body: &Value,
    ) -> Result<(), TrackerError> {
        let response = self
            .request(method, url)
            .json(body)
            .send()
            .await
            .map_err(|e| {
                error(
                    TrackerErrorCategory::TrackerRequest,
                    format!("GitHub request failed: {e}"),
                )
            })?;
        self.note_rate(&response);
        if response.status().is_success() {
            Ok(())
        } else {
            Err(Self::status_error(&response))
        }
    }

    async fn comment(&self, identifier: &str, body: &str) -> Result<(), TrackerError> {
        let number = Self::number(identifier)?;
        let url = format!(
            "{}/repos/{}/issues/{number}/comments",
            self.api_url, self.repo
        );
        self.write(reqwest::Method::POST, &url, &json!({"body": body}))
            .await
    }
}

impl Tracker for GithubTracker {
    fn tool_specs(&self) -> Vec<Value> {
        vec![self.api_tool_spec()]
    }

    fn call_tool<'a>(
        &'a self,
        name: &'a str,
        arguments: &'a Value,
    ) -> Option<BoxFuture<'a, Result<String, String>>> {
        (name == "github_api")
            .then(|| Box::pin(self.api_tool(arguments)) as BoxFuture<'a, Result<String, String>>)
    }

    super::http_operations!();

    fn rate_limit(&self) -> Option<super::RateLimit> {
        self.rate.lock().ok().and_then(|r| *r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_are_found_among_the_others() {
        let link = "<https://api.github.com/repositories/1/issues?page=2>; rel=\"next\", <https://api.github.com/repositories/1/issues?page=5>; rel=\"last\"";
        assert_eq!(
            next_link(link).as_deref(),
            Some("https://api.github.com/repositories/1/issues?page=2")
        );
        assert_eq!(next_link("<https://x/?page=1>; rel=\"prev\""), None);
    }
}
