//! `tracker.kind: github`: GitHub issues over the REST API, state carried by labels.
//!
//! - Scope: issues of `provider.repo` (`owner/name`); pull requests are filtered out.
//! - State: an open issue's state is the name after `provider.state_label_prefix` on its first
//!   such label (`state:In Progress` -> `In Progress`), or `Open` without one; a closed issue's
//!   state is `Closed`.
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
use symphony_core::{Issue, IssueId, Timestamp, TrackerError, TrackerErrorCategory};

use super::{BoxFuture, Probe, Tracker, error};
use crate::workflow::GithubProvider;

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
    prefix: String,
    /// `prefix` normalised (trimmed, lowercase), for matching labels.
    label_prefix: String,
    skip_claimed: bool,
    /// The last 200 answer per URL, for conditional requests.
    cache: Mutex<BTreeMap<String, Cached>>,
}

impl std::fmt::Debug for GithubTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubTracker")
            .field("api_url", &self.api_url)
            .field("repo", &self.repo)
            .finish_non_exhaustive()
    }
}

/// The `rel="next"` URL of a `Link` header.
fn next_link(link: &str) -> Option<String> {
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

impl GithubTracker {
    /// A client for `provider`.
    pub fn new(provider: &GithubProvider) -> Result<Self, String> {
        Ok(Self {
            client: super::http_client(Duration::from_millis(provider.timeout_ms))?,
            api_url: provider.api_url.trim_end_matches('/').to_owned(),
            repo: provider.repo.clone(),
            token: provider.token.expose().to_owned(),
            prefix: provider.state_label_prefix.clone(),
            label_prefix: normalize(&provider.state_label_prefix),
            skip_claimed: provider.skip_issues_with_open_pull_requests,
            cache: Mutex::new(BTreeMap::new()),
        })
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, url)
            .bearer_auth(&self.token)
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
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
            " (check tracker.provider.token / $GITHUB_TOKEN)"
        } else if status.as_u16() == 404 {
            " (check tracker.provider.repo and the token's access)"
        } else {
            ""
        };
        error(
            TrackerErrorCategory::TrackerStatus,
            format!("GitHub answered HTTP {status}{hint}"),
        )
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
        let mut pages = 0;
        while let Some(current) = url {
            pages += 1;
            if pages > MAX_PAGES {
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
            if next.as_deref() == Some(current.as_str()) {
                return Err(error(
                    TrackerErrorCategory::TrackerPagination,
                    "GitHub's next page link points at the same page",
                ));
            }
            url = next;
        }
        Ok(items)
    }

    /// The state a label names, trimmed, when it starts with the state prefix (any case).
    fn state_label<'l>(&self, label: &'l str) -> Option<&'l str> {
        state_in_label(&self.label_prefix, label)
    }

    /// SPEC 11.3 normalisation; `None` for a pull request or a record without its fields.
    fn normalize(&self, item: &Value) -> Option<Issue> {
        normalize_record(item, &self.label_prefix, &self.repo)
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
    async fn find_repository(&self) -> Result<Probe, TrackerError> {
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
        states.extend(labels.iter().filter_map(|label| {
            self.state_label(label["name"].as_str()?)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        }));
        Ok(Probe {
            scope: format!(
                "repository {}",
                repository["full_name"].as_str().unwrap_or(&self.repo)
            ),
            states: Some(states),
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
            labels.push(format!("{}{state}", self.prefix));
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

impl GithubTracker {
    /// `github_api`: one REST call under `/repos/<repo>` only.
    async fn api_tool(&self, arguments: &Value) -> Result<String, String> {
        let method = arguments["method"].as_str().unwrap_or("GET").to_uppercase();
        let method = match method.as_str() {
            "GET" => reqwest::Method::GET,
            "POST" => reqwest::Method::POST,
            "PATCH" => reqwest::Method::PATCH,
            "PUT" => reqwest::Method::PUT,
            "DELETE" => reqwest::Method::DELETE,
            other => return Err(format!("method {other} is not allowed")),
        };
        let path = arguments["path"].as_str().ok_or("missing `path`")?;
        let (owner, name) = self.repo.split_once('/').unwrap_or((&self.repo, ""));
        let url = super::scope::scoped_url(&self.api_url, &["repos", owner, name], path)
            .map_err(|e| e.to_string())?;
        let mut request = self.request(method, url.as_str());
        if let Some(body) = arguments.get("body") {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("GitHub request failed: {e}"))?;
        if !response.status().is_success() {
            return Err(Self::status_error(&response).message);
        }
        let body = super::body_capped(response, super::MAX_TOOL_RESPONSE_BYTES, "GitHub")
            .await
            .map_err(|e| e.message)?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}

impl Tracker for GithubTracker {
    fn tool_specs(&self) -> Vec<Value> {
        vec![json!({
            "type": "function",
            "name": "github_api",
            "description": format!("Call GitHub's REST API with Symphony's credentials, limited to paths under /repos/{}.", self.repo),
            "inputSchema": {
                "type": "object",
                "properties": {
                    "method": {"type": "string", "enum": ["GET", "POST", "PATCH", "PUT", "DELETE"]},
                    "path": {"type": "string", "description": format!("e.g. /repos/{}/issues/1/comments", self.repo)},
                    "body": {"type": "object"}
                },
                "required": ["method", "path"],
                "additionalProperties": false
            }
        })]
    }

    fn call_tool<'a>(
        &'a self,
        name: &'a str,
        arguments: &'a Value,
    ) -> Option<BoxFuture<'a, Result<String, String>>> {
        (name == "github_api")
            .then(|| Box::pin(self.api_tool(arguments)) as BoxFuture<'a, Result<String, String>>)
    }

    fn fetch_by_states<'a>(
        &'a self,
        states: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Issue>, TrackerError>> {
        Box::pin(self.by_states(states))
    }

    fn fetch_by_ids<'a>(
        &'a self,
        ids: &'a [IssueId],
    ) -> BoxFuture<'a, Result<Vec<Issue>, TrackerError>> {
        Box::pin(self.by_ids(ids))
    }

    fn secret_env_names(&self) -> &'static [&'static str] {
        &["GITHUB_TOKEN"]
    }

    fn probe(&self) -> BoxFuture<'_, Result<Probe, TrackerError>> {
        Box::pin(self.find_repository())
    }

    fn set_state<'a>(
        &'a self,
        identifier: &'a str,
        state: &'a str,
    ) -> BoxFuture<'a, Result<(), TrackerError>> {
        Box::pin(self.move_to(identifier, state))
    }

    fn add_comment<'a>(
        &'a self,
        identifier: &'a str,
        body: &'a str,
    ) -> BoxFuture<'a, Result<(), TrackerError>> {
        Box::pin(self.comment(identifier, body))
    }
}

/// SPEC 11.3 normalisation of one record of GitHub's issue listing, with `label_prefix`
/// already normalised; `None` for a pull request or a record without its fields. Public for
/// the `tracker_records` fuzz target.
pub fn normalize_record(item: &Value, label_prefix: &str, repo: &str) -> Option<Issue> {
    if item.get("pull_request").is_some() {
        return None;
    }
    let number = item["number"].as_u64()?;
    let labels: Vec<String> = item["labels"]
        .as_array()
        .map(|ls| {
            ls.iter()
                .filter_map(|l| l["name"].as_str().or_else(|| l.as_str()))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let state = if item["state"] == "closed" {
        "Closed".to_owned()
    } else {
        labels
            .iter()
            .find_map(|l| state_in_label(label_prefix, l))
            .filter(|s| !s.is_empty())
            .map_or_else(|| "Open".to_owned(), str::to_owned)
    };
    let priority = labels.iter().find_map(|l| {
        l.to_lowercase()
            .strip_prefix("priority:")
            .and_then(|p| p.trim().parse::<i64>().ok())
            .filter(|p| (1..=4).contains(p))
    });
    let ts = |v: &Value| v.as_str().and_then(|s| Timestamp::parse_rfc3339(s).ok());
    let mut native = serde_json::Map::new();
    native.insert("number".into(), json!(number));
    native.insert("repo".into(), json!(repo));
    if let Some(node) = item["node_id"].as_str() {
        native.insert("node_id".into(), json!(node));
    }
    Some(Issue {
        id: IssueId(number.to_string()),
        identifier: format!("GH-{number}"),
        title: item["title"].as_str()?.to_owned(),
        description: item["body"]
            .as_str()
            .map(str::to_owned)
            .filter(|b| !b.is_empty()),
        priority,
        state,
        url: item["html_url"].as_str().map(str::to_owned),
        assignee_id: item["assignee"]["login"].as_str().map(str::to_owned),
        labels: labels.iter().map(|l| normalize(l)).collect(),
        created_at: ts(&item["created_at"]),
        updated_at: ts(&item["updated_at"]),
        dispatchable: true,
        native_ref: Some(native),
        ..Issue::default()
    })
}

/// What follows `prefix` (normalised) in `label`, trimmed, when the label starts with it in
/// any case. The prefix is compared on the label's own bytes, so a character whose lowercase
/// has another length cannot shift the cut into the middle of a character.
fn state_in_label<'l>(prefix: &str, label: &'l str) -> Option<&'l str> {
    let head = label.get(..prefix.len())?;
    (head.to_lowercase() == prefix).then(|| label[prefix.len()..].trim())
}

/// GitHub's closing keywords (case does not matter).
const CLOSING_KEYWORDS: [&str; 9] = [
    "close", "closes", "closed", "fix", "fixes", "fixed", "resolve", "resolves", "resolved",
];

/// Numbers of `repo`'s issues that `text` closes: a closing keyword (optionally followed by
/// `:`), then `#N`, `owner/name#N` naming `repo`, or a URL ending `/owner/name/issues/N`.
pub fn closing_references(text: &str, repo: &str) -> Vec<u64> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut numbers = Vec::new();
    for pair in words.windows(2) {
        let keyword = pair[0]
            .trim_start_matches(['(', '[', '*', '_'])
            .trim_end_matches(':')
            .to_ascii_lowercase();
        if !CLOSING_KEYWORDS.contains(&keyword.as_str()) {
            continue;
        }
        let target = pair[1].trim_end_matches(['.', ',', ';', ':', ')', ']', '!', '?', '*', '_']);
        let number = if let Some(n) = target.strip_prefix('#') {
            n.parse().ok()
        } else if let Some((name, n)) = target.split_once('#') {
            name.eq_ignore_ascii_case(repo)
                .then(|| n.parse().ok())
                .flatten()
        } else if target.starts_with("https://") || target.starts_with("http://") {
            target
                .rsplit_once("/issues/")
                .filter(|(head, _)| {
                    // `get` on both sides of the cut: a cut inside a multi-byte character
                    // (`https://€€€/issues/1`) is no match, never a panic.
                    let cut = head.len().saturating_sub(repo.len());
                    cut > 0
                        && head
                            .get(cut..)
                            .is_some_and(|r| r.eq_ignore_ascii_case(repo))
                        && head.get(..cut).is_some_and(|h| h.ends_with('/'))
                })
                .and_then(|(_, n)| n.parse().ok())
        } else {
            None
        };
        if let Some(number) = number
            && !numbers.contains(&number)
        {
            numbers.push(number);
        }
    }
    numbers
}

/// Issue numbers claimed by the open pull requests among `items` (an issue listing, which
/// carries pull requests too), from their titles and bodies.
pub fn claimed_by_open_pulls(items: &[Value], repo: &str) -> Vec<u64> {
    let mut claimed = Vec::new();
    for pull in items
        .iter()
        .filter(|i| i.get("pull_request").is_some() && i["state"] == "open")
    {
        for field in ["title", "body"] {
            if let Some(text) = pull[field].as_str() {
                claimed.extend(closing_references(text, repo));
            }
        }
    }
    claimed
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

    #[test]
    fn state_labels_match_the_prefix_in_any_case_and_never_cut_a_character() {
        assert_eq!(
            state_in_label("state:", "State: In Progress"),
            Some("In Progress")
        );
        assert_eq!(state_in_label("state:", "STATE:Todo"), Some("Todo"));
        assert_eq!(state_in_label("state:", "state:"), Some(""));
        assert_eq!(state_in_label("state:", "priority:1"), None);
        assert_eq!(state_in_label("state:", "st"), None);
        // The Kelvin sign lowercases to a one-byte `k`: matching on the lowercased text and
        // cutting the original at the prefix's length would split it.
        assert_eq!(state_in_label("k:", "\u{212A}:x"), None);
    }

    #[test]
    fn closing_keywords_name_issues_of_this_repository_only() {
        let repo = "acme/app";
        assert_eq!(closing_references("Closes #12", repo), [12]);
        assert_eq!(
            closing_references("This fixes: #3, and RESOLVED acme/App#4.", repo),
            [3, 4]
        );
        assert_eq!(
            closing_references(
                "(fix https://github.com/acme/app/issues/5) close https://github.com/other/acme/app2/issues/6",
                repo
            ),
            [5]
        );
        assert!(closing_references("closes other/app#7 and mentions #8", repo).is_empty());
        assert!(closing_references("see #9; enclose #10; closes", repo).is_empty());
        assert!(closing_references("fixes #x12 closes #", repo).is_empty());
        // A cut inside a multi-byte character is no match (this panicked once).
        assert!(closing_references("fixes https://€€€€€/issues/1", repo).is_empty());
        assert!(closing_references("fixes https://€€acme/app/issues/2", repo).is_empty());
        assert_eq!(
            closing_references("fixes https://€/acme/app/issues/3", repo),
            [3]
        );
    }

    #[test]
    fn only_open_pull_requests_claim_issues() {
        let items = vec![
            json!({"number": 20, "state": "open", "title": "Fix #1", "body": null, "pull_request": {}}),
            json!({"number": 21, "state": "closed", "title": "t", "body": "closes #2", "pull_request": {}}),
            json!({"number": 22, "state": "open", "title": "closes #3", "body": "an issue, not a PR"}),
            json!({"number": 23, "state": "open", "title": "t", "body": "Resolves #4\nfixes #1", "pull_request": {}}),
        ];
        assert_eq!(claimed_by_open_pulls(&items, "acme/app"), [1, 4, 1]);
    }
}
