//! `tracker.kind: gitlab`: issues of one GitLab project over REST API v4 (gitlab.com or any
//! self-managed instance), the state carried by GitLab's own `opened`/`closed` or by labels.
//!
//! - Identity: `id` is the project-scoped iid, `identifier` `GL-<iid>`.
//! - State: a closed issue is `Closed`. An open issue's state is the text after
//!   `provider.state_label_prefix` on its label (`symphony::Todo` with the prefix
//!   `symphony::`: a scoped label, so GitLab itself keeps one per issue), or with no prefix the
//!   first workflow state that the issue carries as a whole label name; with none, `Opened`.
//! - Listing: GitLab's `labels` filter wants every label it lists, so each state is its own
//!   listing (`state=opened&labels=<label>`; `Opened` and `Closed` list by state). Pages
//!   follow `Link: rel="next"`, else `x-next-page`; totals are never read (gitlab.com leaves
//!   them out past 10,000 items). A page seen twice or more than `pagination_max_pages` fails
//!   the listing.
//! - Refresh by iid; 404 is gone.
//! - Blockers: an issue in `Todo` reads its links (one request per poll) and waits for every
//!   `is_blocked_by` issue to be closed or terminal. Blocking link types are in GitLab's paid
//!   tiers; elsewhere every link is `relates_to` and nothing blocks. A failed read holds the
//!   issue (fail closed).
//! - Open merge requests that close an issue by GitLab's closing pattern (`Closes #N`,
//!   `Implements group/project#N`, the issue URL) in their title or description make it not
//!   dispatchable, with `skip_issues_with_open_merge_requests` (one listing per poll).
//! - `gitlab_api`: the agent's REST tool, limited to the project.

mod config;
mod records;
mod tools;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use symphony_core::issue::{StateSet, normalize, todo_blockers_allow_dispatch};
use symphony_core::{Issue, IssueId, TrackerError, TrackerErrorCategory};

pub use config::GitlabSettings;
pub(crate) use config::KIND;
pub use records::{OWN_STATES, blockers, identifier, iid, normalize_record};

use super::github::StateLabels;
use super::rest::Api;
use super::{Probe, Tracker, error, next_link, percent};

const PER_PAGE: u32 = 100;

/// The GitLab adapter.
pub struct GitlabTracker {
    api: Api,
    /// `<endpoint>/projects/<id or encoded path>`.
    project_url: String,
    /// The project as configured.
    project: String,
    token: String,
    states: StateLabels,
    /// Terminal states and `Closed`: a blocker in one of them is finished.
    finished: StateSet,
    skip_claimed: bool,
    max_pages: u32,
    /// The project's full path, once known (configured, or read for a numeric id).
    path: Mutex<Option<String>>,
}

impl std::fmt::Debug for GitlabTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitlabTracker")
            .field("project_url", &self.project_url)
            .finish_non_exhaustive()
    }
}

impl GitlabTracker {
    /// An adapter for `settings`; `states` are every workflow state (active, terminal and
    /// inactive: with no label prefix they name the state labels), `terminal` the terminal
    /// ones.
    pub fn new(
        settings: &GitlabSettings,
        states: &[String],
        terminal: &[String],
    ) -> Result<Self, String> {
        let api = Api::new(
            Duration::from_millis(settings.timeout_ms),
            "GitLab",
            format!(
                " (check tracker.provider.api_key / ${} and the token's `api` scope)",
                config::TOKEN_VAR
            ),
            " (check tracker.provider.project and endpoint)".to_owned(),
        )?;
        let mut finished = terminal.to_vec();
        finished.push("Closed".to_owned());
        let numeric = settings.project.bytes().all(|b| b.is_ascii_digit());
        Ok(Self {
            api,
            project_url: format!(
                "{}/projects/{}",
                settings.endpoint,
                percent(&settings.project)
            ),
            project: settings.project.clone(),
            token: settings.api_key.expose().to_owned(),
            states: StateLabels::with_own_states(&settings.state_label_prefix, states, &OWN_STATES),
            finished: StateSet::new(&finished),
            skip_claimed: settings.skip_issues_with_open_merge_requests,
            max_pages: settings.pagination_max_pages,
            path: Mutex::new((!numeric).then(|| settings.project.clone())),
        })
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.api
            .client
            .request(method, url)
            .header("PRIVATE-TOKEN", &self.token)
            .header(reqwest::header::ACCEPT, "application/json")
    }

    /// A GET's JSON body and the next page's URL; `Ok(None)` for 404 when `missing_ok`.
    async fn get(
        &self,
        url: &str,
        missing_ok: bool,
    ) -> Result<Option<(Value, Option<String>)>, TrackerError> {
        let request = self.request(reqwest::Method::GET, url);
        let Some(response) = self.api.send(request, missing_ok).await? else {
            return Ok(None);
        };
        let headers = response.headers();
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let next = match header("link").and_then(next_link) {
            Some(link) => Some(link),
            None => (header("x-next-page").map(str::trim))
                .filter(|page| !page.is_empty())
                .and_then(|page| page.parse::<u32>().ok())
                .and_then(|page| with_page(url, page)),
        };
        let body = self.api.body(response).await?;
        Ok(Some((body, next)))
    }

    /// Every item of a listing starting at `first`; `what` names an item in errors.
    async fn pages(&self, first: String, what: &str) -> Result<Vec<Value>, TrackerError> {
        super::follow_pages(first, self.max_pages, "GitLab", what, |url| async move {
            Ok(self.get(&url, false).await?.unwrap_or_default())
        })
        .await
    }

    /// The listing query that finds issues in `state`, if any issue can be in it.
    fn query_for(&self, state: &str) -> Option<String> {
        match normalize(state).as_str() {
            "closed" => Some("state=closed".to_owned()),
            "opened" => Some("state=opened".to_owned()),
            _ => {
                let label = self.states.label_for(state).ok()?;
                Some(format!("state=opened&labels={}", percent(&label)))
            }
        }
    }

    async fn by_states(&self, states: &[String]) -> Result<Vec<Issue>, TrackerError> {
        let queries: BTreeSet<String> = states.iter().filter_map(|s| self.query_for(s)).collect();
        let mut issues: BTreeMap<u64, Issue> = BTreeMap::new();
        for query in queries {
            let first = format!(
                "{}/issues?{query}&per_page={PER_PAGE}&page=1",
                self.project_url
            );
            for item in self.pages(first, "issue").await? {
                if let Some(issue) = normalize_record(&item, &self.states)
                    && let Some(number) = iid(issue.id.as_str())
                {
                    issues.insert(number, issue);
                }
            }
        }
        let wanted: Vec<String> = states.iter().map(|s| normalize(s)).collect();
        issues.retain(|_, issue| wanted.contains(&normalize(&issue.state)));
        for issue in issues.values_mut() {
            self.add_blockers(issue).await;
        }
        let open = issues.values().any(|i| normalize(&i.state) != "closed");
        let claimed = if self.skip_claimed && open {
            self.claimed_by_open_merge_requests().await?
        } else {
            BTreeSet::new()
        };
        Ok(issues
            .into_iter()
            .map(|(iid, mut issue)| {
                if claimed.contains(&iid) {
                    issue.dispatchable = false;
                }
                issue
            })
            .collect())
    }

    /// For an issue in `Todo`: its `is_blocked_by` links, and `dispatchable` only when each is
    /// closed or terminal. A failed read holds the issue for this poll.
    async fn add_blockers(&self, issue: &mut Issue) {
        if normalize(&issue.state) != "todo" {
            return;
        }
        let Some(number) = iid(issue.id.as_str()) else {
            return;
        };
        let project_id = (issue.native_ref.as_ref())
            .and_then(|native| native.get("project_id"))
            .and_then(Value::as_u64);
        let url = format!("{}/issues/{number}/links", self.project_url);
        issue.blocked_by = match self.get(&url, false).await {
            Ok(found) => {
                let (links, _) = found.unwrap_or_default();
                let links = links.as_array().map(Vec::as_slice).unwrap_or_default();
                blockers(links, project_id, &self.states)
            }
            Err(e) => {
                tracing::warn!(
                    issue_identifier = %issue.identifier,
                    "GitLab links of {} unread, held as blocked: {}",
                    issue.identifier,
                    e.message
                );
                vec![symphony_core::BlockerRef {
                    identifier: Some("(links unread)".to_owned()),
                    ..Default::default()
                }]
            }
        };
        issue.dispatchable =
            issue.dispatchable && todo_blockers_allow_dispatch(issue, &self.finished);
    }

    /// The project's full path: as configured, or read once for a numeric id.
    async fn project_path(&self) -> Result<String, TrackerError> {
        if let Some(path) = self.path.lock().ok().and_then(|p| p.clone()) {
            return Ok(path);
        }
        let (project, _) = self
            .get(&self.project_url, false)
            .await?
            .unwrap_or_default();
        let Some(path) = project["path_with_namespace"].as_str() else {
            return Err(error(
                TrackerErrorCategory::TrackerResponse,
                "GitLab sent a project without its path_with_namespace",
            ));
        };
        if let Ok(mut kept) = self.path.lock() {
            *kept = Some(path.to_owned());
        }
        Ok(path.to_owned())
    }

    /// Iids of issues that the project's open merge requests close (one listing).
    async fn claimed_by_open_merge_requests(&self) -> Result<BTreeSet<u64>, TrackerError> {
        let path = self.project_path().await?;
        let first = format!(
            "{}/merge_requests?state=opened&per_page={PER_PAGE}&page=1",
            self.project_url
        );
        let mut claimed = BTreeSet::new();
        for request in self.pages(first, "merge request").await? {
            for field in ["title", "description"] {
                if let Some(text) = request[field].as_str() {
                    claimed.extend(super::closing::gitlab_closing_references(text, &path));
                }
            }
        }
        Ok(claimed)
    }

    async fn by_ids(&self, ids: &[IssueId]) -> Result<Vec<Issue>, TrackerError> {
        let mut out = Vec::new();
        for id in ids {
            let Some(number) = iid(id.as_str()) else {
                continue; // not a GitLab iid: not visible here
            };
            let url = format!("{}/issues/{number}", self.project_url);
            let Some((item, _)) = self.get(&url, true).await? else {
                continue;
            };
            let Some(mut issue) = normalize_record(&item, &self.states) else {
                return Err(error(
                    TrackerErrorCategory::TrackerResponse,
                    format!("GitLab issue {number} came without its iid or title"),
                ));
            };
            self.add_blockers(&mut issue).await;
            out.push(issue);
        }
        Ok(out)
    }

    fn iid_of(identifier: &str) -> Result<u64, TrackerError> {
        iid(identifier).ok_or_else(|| {
            error(
                TrackerErrorCategory::TrackerRequest,
                format!("{identifier:?} is not a GitLab issue identifier (GL-<iid>)"),
            )
        })
    }

    /// Puts the issue in `state`: `Closed` closes it, `Opened` reopens it, a label state adds
    /// its label; every other state label comes off (one update).
    async fn move_to(&self, identifier: &str, state: &str) -> Result<(), TrackerError> {
        let number = Self::iid_of(identifier)?;
        let url = format!("{}/issues/{number}", self.project_url);
        let (item, _) = self.get(&url, false).await?.unwrap_or_default();
        let closed = item["state"] == "closed";
        let mut update = serde_json::Map::new();
        let target = match normalize(state).as_str() {
            "closed" => {
                if !closed {
                    update.insert("state_event".into(), json!("close"));
                }
                None
            }
            "opened" => None,
            _ => Some(
                (self.states.label_for(state))
                    .map_err(|why| error(TrackerErrorCategory::TrackerRequest, why))?,
            ),
        };
        if closed && normalize(state) != "closed" {
            update.insert("state_event".into(), json!("reopen"));
        }
        let stale: Vec<&str> = (records::labels(&item).into_iter())
            .filter(|label| self.states.state_of(label).is_some())
            .filter(|label| {
                target
                    .as_deref()
                    .is_none_or(|t| !t.eq_ignore_ascii_case(label))
            })
            .collect();
        if !stale.is_empty() {
            update.insert("remove_labels".into(), json!(stale.join(",")));
        }
        if let Some(label) = &target {
            update.insert("add_labels".into(), json!(label));
        }
        if update.is_empty() {
            return Ok(());
        }
        let request = self.request(reqwest::Method::PUT, &url).json(&update);
        self.api.send(request, false).await?;
        Ok(())
    }

    async fn comment(&self, identifier: &str, body: &str) -> Result<(), TrackerError> {
        let number = Self::iid_of(identifier)?;
        let url = format!("{}/issues/{number}/notes", self.project_url);
        let request = self.request(reqwest::Method::POST, &url);
        self.api
            .send(request.json(&json!({"body": body})), false)
            .await?;
        Ok(())
    }

    /// The project, and every state its labels can express.
    async fn probe_scope(&self) -> Result<Probe, TrackerError> {
        let Some((project, _)) = self.get(&self.project_url, true).await? else {
            return Err(error(
                TrackerErrorCategory::TrackerStatus,
                format!(
                    "GitLab has no project {} visible to this token (check \
                     tracker.provider.project and the token's access)",
                    self.project
                ),
            ));
        };
        let path = project["path_with_namespace"]
            .as_str()
            .unwrap_or(&self.project);
        if project["issues_enabled"] == json!(false) {
            return Err(error(
                TrackerErrorCategory::TrackerRequest,
                format!("{path} has issues turned off"),
            ));
        }
        let first = format!("{}/labels?per_page={PER_PAGE}&page=1", self.project_url);
        let labels = self.pages(first, "label").await?;
        let mut states = vec!["Opened".to_owned(), "Closed".to_owned()];
        states.extend((labels.iter()).filter_map(|label| {
            self.states
                .state_of(label["name"].as_str()?)
                .map(str::to_owned)
        }));
        let mut remarks = Vec::new();
        if let StateLabels::Named(names) = &self.states {
            let missing: Vec<&str> = (names.iter())
                .filter(|name| !states.iter().any(|s| normalize(s) == normalize(name)))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                remarks.push(format!(
                    "state labels missing in {path}: {} (create them; no open issue can be in \
                     those states until they exist)",
                    missing.join(", ")
                ));
            }
        }
        Ok(Probe {
            scope: format!("project {path}"),
            states: Some(states),
            remarks,
        })
    }
}

/// `url` with its `page` query parameter set to `page` (added when absent).
fn with_page(url: &str, page: u32) -> Option<String> {
    let mut parsed = reqwest::Url::parse(url).ok()?;
    let pairs: Vec<(String, String)> = (parsed.query_pairs())
        .filter(|(k, _)| k != "page")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut query = parsed.query_pairs_mut();
        query.clear();
        for (k, v) in &pairs {
            query.append_pair(k, v);
        }
        query.append_pair("page", &page.to_string());
    }
    Some(parsed.to_string())
}

impl Tracker for GitlabTracker {
    fn tool_specs(&self) -> Vec<Value> {
        vec![self.api_tool_spec()]
    }

    fn call_tool<'a>(
        &'a self,
        name: &'a str,
        arguments: &'a Value,
    ) -> Option<super::BoxFuture<'a, Result<String, String>>> {
        (name == tools::API_TOOL).then(|| {
            Box::pin(self.api_tool(arguments)) as super::BoxFuture<'a, Result<String, String>>
        })
    }

    fn rate_limit(&self) -> Option<super::RateLimit> {
        self.api.rate_limit()
    }

    super::http_operations!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_replaces_or_adds_the_page_parameter() {
        assert_eq!(
            with_page(
                "https://g.example/api/v4/projects/a%2Fb/issues?state=opened&page=1&per_page=100",
                2
            )
            .unwrap(),
            "https://g.example/api/v4/projects/a%2Fb/issues?state=opened&per_page=100&page=2"
        );
        assert_eq!(
            with_page("https://g.example/x?labels=symphony%3A%3Atodo", 3).unwrap(),
            "https://g.example/x?labels=symphony%3A%3Atodo&page=3"
        );
    }
}
