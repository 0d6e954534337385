//! `tracker.kind: gitea`: Gitea issues over its REST API (`/api/v1`, paths and shapes from
//! Gitea's Swagger description), state carried by one label of a configured set
//! (aiops-platform's `aiops/*` labels by default).
//!
//! Listing asks for open issues carrying each active state's label (and for any issue
//! carrying a terminal state's label), page by page; more pages than
//! `pagination_max_pages` fails the listing, so that a partial list never looks complete.
//! A closed issue is terminal whatever its labels. A missing, doubled or unknown state label
//! is logged once per change, never fixed.
//!
//! With `skip_issues_with_open_pull_requests`, an issue that an open pull request closes
//! (`fixes #N`, `closes owner/name#N`, the issue URL, in its title or body) is returned not
//! dispatchable; that costs one listing of open pull requests per candidate poll.
//!
//! An issue in `Todo` gets its blockers from Gitea's issue dependencies (one request per such
//! issue per poll) and is dispatchable only when all of them are terminal (the SPEC 8.2 rule,
//! applied here as for Linear and local files, D1).

mod config;
mod records;
mod tools;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use symphony_core::issue::{StateSet, normalize, todo_blockers_allow_dispatch};
use symphony_core::{BlockerRef, Issue, IssueId, TrackerError, TrackerErrorCategory};

pub(crate) use config::KIND;
pub use config::{DEFAULT_STATE_LABELS, GiteaSettings};
pub use records::{Read, identifier, normalize_record, number};

use super::{Probe, Tracker, error, next_link, percent};

/// What a relabel changed: the state labels it removed, and the id of the label it added when
/// the issue did not carry it before.
struct Relabelled {
    removed: Vec<String>,
    added_id: Option<u64>,
}

/// Issues per page (Gitea's default maximum is 50).
const PER_PAGE: u32 = 50;

/// The Gitea adapter.
pub struct GiteaTracker {
    client: reqwest::Client,
    /// `<endpoint>/api/v1`.
    api: String,
    repo: String,
    token: String,
    state_labels: Vec<(String, String)>,
    terminal: Vec<String>,
    max_pages: u32,
    /// Open-PR claim skip.
    skip_claimed: bool,
    /// The label problem last logged per issue number, so each is logged once per change.
    reported: Mutex<BTreeMap<u64, String>>,
}

impl std::fmt::Debug for GiteaTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GiteaTracker")
            .field("api", &self.api)
            .field("repo", &self.repo)
            .finish_non_exhaustive()
    }
}

impl GiteaTracker {
    /// An adapter for `settings`; `terminal_states` are the workflow's (the first one is the
    /// state of a closed issue without a terminal label).
    pub fn new(settings: &GiteaSettings, terminal_states: &[String]) -> Result<Self, String> {
        let endpoint = settings.endpoint.trim_end_matches('/');
        let api = if endpoint.ends_with("/api/v1") {
            endpoint.to_owned()
        } else {
            format!("{endpoint}/api/v1")
        };
        Ok(Self {
            client: super::http_client(Duration::from_millis(settings.timeout_ms))?,
            api,
            repo: settings.repo.clone(),
            token: settings.api_key.expose().to_owned(),
            state_labels: settings.state_labels.clone(),
            terminal: terminal_states.iter().map(|s| normalize(s)).collect(),
            max_pages: settings.pagination_max_pages,
            skip_claimed: settings.skip_issues_with_open_pull_requests,
            reported: Mutex::new(BTreeMap::new()),
        })
    }

    fn repo_url(&self) -> String {
        format!("{}/repos/{}", self.api, self.repo)
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, url)
            .header(
                reqwest::header::AUTHORIZATION,
                format!("token {}", self.token),
            )
            .header(reqwest::header::ACCEPT, "application/json")
    }

    /// Sends `request`; a non-success status is a typed error. `Ok(None)` for 404 when
    /// `missing_ok`.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        missing_ok: bool,
    ) -> Result<Option<reqwest::Response>, TrackerError> {
        let response = request.send().await.map_err(|e| {
            error(
                TrackerErrorCategory::TrackerRequest,
                format!("Gitea request failed: {e}"),
            )
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(Some(response));
        }
        if missing_ok && status.as_u16() == 404 {
            return Ok(None);
        }
        let header = |name: &str| {
            let value = response.headers().get(name)?;
            value.to_str().ok().map(str::to_owned)
        };
        let (category, hint) = match status.as_u16() {
            401 | 403 => (
                TrackerErrorCategory::TrackerAuth,
                format!(
                    " (check tracker.provider.api_key / ${} and the token's access)",
                    config::TOKEN_VAR
                ),
            ),
            404 => (
                TrackerErrorCategory::TrackerStatus,
                " (check tracker.provider.repo and tracker.provider.endpoint)".to_owned(),
            ),
            429 => (
                TrackerErrorCategory::TrackerRateLimited,
                match header("retry-after") {
                    Some(seconds) => format!(": retry after {seconds} s"),
                    None => ": retry later".to_owned(),
                },
            ),
            _ => (TrackerErrorCategory::TrackerStatus, String::new()),
        };
        Err(error(
            category,
            format!("Gitea answered HTTP {status}{hint}"),
        ))
    }

    /// A GET's JSON body and the `rel="next"` link; `Ok(None)` for 404 when `missing_ok`.
    async fn get(
        &self,
        url: &str,
        missing_ok: bool,
    ) -> Result<Option<(Value, Option<String>)>, TrackerError> {
        let Some(response) = self
            .send(self.request(reqwest::Method::GET, url), missing_ok)
            .await?
        else {
            return Ok(None);
        };
        let next = response
            .headers()
            .get(reqwest::header::LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(next_link);
        let body = super::json_capped(response, "Gitea").await?;
        Ok(Some((body, next)))
    }

    /// Every item of a listing starting at `first`, at most `max_pages` pages; `what` names an
    /// item in errors.
    async fn pages(&self, first: String, what: &str) -> Result<Vec<Value>, TrackerError> {
        super::follow_pages(first, self.max_pages, "Gitea", what, |url| async move {
            Ok(self.get(&url, false).await?.unwrap_or_default())
        })
        .await
    }

    fn label_of(&self, state: &str) -> Option<&str> {
        let state = normalize(state);
        self.state_labels
            .iter()
            .find(|(s, _)| normalize(s) == state)
            .map(|(_, label)| label.as_str())
    }

    fn is_terminal(&self, state: &str) -> bool {
        self.terminal.contains(&normalize(state))
    }

    /// SPEC 11.3 normalisation of `item` with this adapter's state labels and repository.
    fn normalize(&self, item: &Value) -> Option<Read> {
        let closed_state = self.terminal_name();
        let terminal = |s: &str| self.is_terminal(s);
        normalize_record(
            item,
            &self.state_labels,
            &closed_state,
            &terminal,
            &self.repo,
        )
    }

    /// Normalises `item`, logging a label problem once per change.
    fn read(&self, item: &Value) -> Option<Issue> {
        let read = self.normalize(item)?;
        let number = item["number"].as_u64()?;
        let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        match &read.problem {
            Some(problem) if reported.get(&number) != Some(problem) => {
                tracing::warn!(
                    issue_identifier = %read.issue.identifier,
                    "Gitea issue {}: {problem}",
                    read.issue.identifier
                );
                reported.insert(number, problem.clone());
            }
            Some(_) => {}
            None => {
                reported.remove(&number);
            }
        }
        Some(read.issue)
    }

    /// The workflow's first terminal state as written, for closed issues.
    fn terminal_name(&self) -> String {
        (self.state_labels.iter())
            .map(|(state, _)| state)
            .find(|state| self.is_terminal(state))
            .cloned()
            .unwrap_or_else(|| "Closed".to_owned())
    }

    async fn by_states(&self, states: &[String]) -> Result<Vec<Issue>, TrackerError> {
        let mut issues: BTreeMap<u64, Issue> = BTreeMap::new();
        for state in states {
            let Some(label) = self.label_of(state) else {
                continue; // a state no label carries: no issue can be in it
            };
            // Active states: open issues. Terminal ones: closed issues too.
            let which = if self.is_terminal(state) {
                "all"
            } else {
                "open"
            };
            let first = format!(
                "{}/issues?state={which}&type=issues&labels={}&page=1&limit={PER_PAGE}",
                self.repo_url(),
                percent(label)
            );
            for item in self.pages(first, "issue").await? {
                if let (Some(number), Some(issue)) = (item["number"].as_u64(), self.read(&item)) {
                    issues.insert(number, issue);
                }
            }
        }
        for (number, issue) in &mut issues {
            self.add_blockers(*number, issue).await;
        }
        let wanted: Vec<String> = states.iter().map(|s| normalize(s)).collect();
        let active_wanted = states.iter().any(|s| !self.is_terminal(s));
        let claimed = if self.skip_claimed && active_wanted && !issues.is_empty() {
            self.claimed_by_open_pulls().await?
        } else {
            BTreeSet::new()
        };
        Ok(issues
            .into_iter()
            .filter(|(_, issue)| wanted.contains(&normalize(&issue.state)))
            .map(|(number, mut issue)| {
                if claimed.contains(&number) {
                    issue.dispatchable = false;
                }
                issue
            })
            .collect())
    }

    /// For an issue in `Todo` (the state the blocker rule applies to): its blockers from
    /// Gitea's issue dependencies, and `dispatchable` only when every one is terminal. A
    /// dependency listing that fails counts as an unfinished blocker (fail closed; the next
    /// poll asks again).
    async fn add_blockers(&self, number: u64, issue: &mut Issue) {
        if normalize(&issue.state) != "todo" {
            return;
        }
        let first = format!(
            "{}/issues/{number}/dependencies?page=1&limit={PER_PAGE}",
            self.repo_url()
        );
        issue.blocked_by = match self.pages(first, "dependency").await {
            Ok(items) => items.iter().filter_map(|item| self.blocker(item)).collect(),
            Err(e) => {
                tracing::warn!(
                    issue_identifier = %issue.identifier,
                    "Gitea dependencies of {} unread, held as blocked: {}",
                    issue.identifier,
                    e.message
                );
                vec![BlockerRef {
                    identifier: Some("(dependencies unread)".to_owned()),
                    ..BlockerRef::default()
                }]
            }
        };
        let terminal = StateSet::new(&self.terminal);
        issue.dispatchable = issue.dispatchable && todo_blockers_allow_dispatch(issue, &terminal);
    }

    /// A dependency as a blocker: its state by the same label rules; from another repository,
    /// named `owner/name#N` and without an id here.
    fn blocker(&self, item: &Value) -> Option<BlockerRef> {
        let number = item["number"].as_u64()?;
        let read = self.normalize(item)?;
        let repo = item["repository"]["full_name"]
            .as_str()
            .unwrap_or(&self.repo);
        let here = repo.eq_ignore_ascii_case(&self.repo);
        Some(BlockerRef {
            id: here.then(|| number.to_string()),
            identifier: Some(if here {
                identifier(number)
            } else {
                format!("{repo}#{number}")
            }),
            state: Some(read.issue.state).filter(|s| !s.is_empty()),
        })
    }

    /// Issue numbers that the repository's open pull requests close, from their titles and
    /// bodies (one listing).
    async fn claimed_by_open_pulls(&self) -> Result<BTreeSet<u64>, TrackerError> {
        let first = format!(
            "{}/pulls?state=open&page=1&limit={PER_PAGE}",
            self.repo_url()
        );
        let mut claimed = BTreeSet::new();
        for pull in self.pages(first, "pull request").await? {
            for field in ["title", "body"] {
                if let Some(text) = pull[field].as_str() {
                    claimed.extend(super::closing::closing_references(text, &self.repo));
                }
            }
        }
        Ok(claimed)
    }

    async fn by_ids(&self, ids: &[IssueId]) -> Result<Vec<Issue>, TrackerError> {
        let mut out = Vec::new();
        for id in ids {
            let Some(number) = number(&id.0) else {
                continue;
            };
            let url = format!("{}/issues/{number}", self.repo_url());
            if let Some((item, _)) = self.get(&url, true).await?
                && let Some(mut issue) = self.read(&item)
            {
                self.add_blockers(number, &mut issue).await;
                out.push(issue);
            }
        }
        Ok(out)
    }

    fn number(identifier: &str) -> Result<u64, TrackerError> {
        number(identifier).ok_or_else(|| {
            error(
                TrackerErrorCategory::TrackerResponse,
                format!("{identifier:?} is not a Gitea issue identifier (GT-<number>)"),
            )
        })
    }

    /// Puts the issue in `state`: adds its label, then removes the other state labels.
    async fn move_to(&self, identifier: &str, state: &str) -> Result<(), TrackerError> {
        let number = Self::number(identifier)?;
        let Some(label) = self.label_of(state) else {
            return Err(error(
                TrackerErrorCategory::TrackerResponse,
                format!(
                    "no Gitea label carries the state {state:?} (tracker.provider.state_labels)"
                ),
            ));
        };
        self.relabel(number, label).await.map(|_| ())
    }

    /// Adds the state label `label` to issue `number`, then removes its other state labels;
    /// returns the names removed.
    async fn relabel(&self, number: u64, label: &str) -> Result<Relabelled, TrackerError> {
        let issue_url = format!("{}/issues/{number}", self.repo_url());
        let (item, _) = self.get(&issue_url, false).await?.unwrap_or_default();
        let had = |name: &str| {
            (item["labels"].as_array().into_iter().flatten()).any(|l| {
                l["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
        };
        let add = self.request(reqwest::Method::POST, &format!("{issue_url}/labels"));
        let added = self
            .send(add.json(&json!({"labels": [label]})), false)
            .await?;
        let now = match added {
            Some(response) => super::json_capped(response, "Gitea").await?,
            None => Value::Null,
        };
        let added_id = (!had(label))
            .then(|| {
                (now.as_array().into_iter().flatten())
                    .find(|l| {
                        l["name"]
                            .as_str()
                            .is_some_and(|n| n.eq_ignore_ascii_case(label))
                    })
                    .and_then(|l| l["id"].as_u64())
            })
            .flatten();
        let stale = item["labels"].as_array().into_iter().flatten().filter(|l| {
            let name = l["name"].as_str().unwrap_or_default();
            !name.eq_ignore_ascii_case(label)
                && self
                    .state_labels
                    .iter()
                    .any(|(_, other)| other.eq_ignore_ascii_case(name))
        });
        let mut removed = Vec::new();
        for old in stale {
            let Some(id) = old["id"].as_u64() else {
                continue;
            };
            let remove = self.request(reqwest::Method::DELETE, &format!("{issue_url}/labels/{id}"));
            self.send(remove, false).await?;
            removed.push(old["name"].as_str().unwrap_or_default().to_owned());
        }
        Ok(Relabelled { removed, added_id })
    }

    /// Undoes a [`Self::relabel`]: the removed labels back, the added one off. Best effort.
    async fn undo_relabel(&self, number: u64, done: &Relabelled) -> Result<(), TrackerError> {
        let issue_url = format!("{}/issues/{number}", self.repo_url());
        if !done.removed.is_empty() {
            let add = self.request(reqwest::Method::POST, &format!("{issue_url}/labels"));
            self.send(add.json(&json!({"labels": done.removed})), false)
                .await?;
        }
        if let Some(id) = done.added_id {
            let remove = self.request(reqwest::Method::DELETE, &format!("{issue_url}/labels/{id}"));
            self.send(remove, false).await?;
        }
        Ok(())
    }

    async fn comment(&self, identifier: &str, body: &str) -> Result<(), TrackerError> {
        let number = Self::number(identifier)?;
        let url = format!("{}/issues/{number}/comments", self.repo_url());
        let request = self.request(reqwest::Method::POST, &url);
        self.send(request.json(&json!({"body": body})), false)
            .await?;
        Ok(())
    }

    async fn probe_scope(&self) -> Result<Probe, TrackerError> {
        let Some((repo, _)) = self.get(&self.repo_url(), true).await? else {
            return Err(error(
                TrackerErrorCategory::TrackerStatus,
                format!(
                    "Gitea has no repository {} visible to this token (check \
                     tracker.provider.repo and the token's access)",
                    self.repo
                ),
            ));
        };
        let scope = repo["full_name"].as_str().unwrap_or(&self.repo).to_owned();
        let (labels, _) = (self.get(
            &format!("{}/labels?page=1&limit=50", self.repo_url()),
            false,
        ))
        .await?
        .unwrap_or_default();
        let existing: Vec<&str> = labels
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["name"].as_str())
            .collect();
        let exists = |label: &str| existing.iter().any(|e| e.eq_ignore_ascii_case(label));
        let states = (self.state_labels.iter())
            .filter(|(_, label)| exists(label))
            .map(|(state, _)| state.clone())
            .collect();
        let missing: Vec<&str> = (self.state_labels.iter())
            .filter(|(_, label)| !exists(label))
            .map(|(_, label)| label.as_str())
            .collect();
        let remarks = if missing.is_empty() {
            Vec::new()
        } else {
            vec![format!(
                "state labels missing in {scope}: {} (create them; no issue can be in those \
                 states until they exist)",
                missing.join(", ")
            )]
        };
        Ok(Probe {
            scope,
            states: Some(states),
            remarks,
        })
    }
}

impl Tracker for GiteaTracker {
    fn tool_specs(&self) -> Vec<Value> {
        vec![self.labels_tool_spec()]
    }

    fn call_session_tool<'a>(
        &'a self,
        name: &'a str,
        arguments: &'a Value,
        session: &'a str,
    ) -> Option<super::BoxFuture<'a, Result<String, String>>> {
        (name == tools::LABELS_TOOL).then(|| {
            Box::pin(self.labels_tool(arguments, session))
                as super::BoxFuture<'a, Result<String, String>>
        })
    }

    fn remark(&self, identifier: &str) -> Option<String> {
        let number = Self::number(identifier).ok()?;
        let reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        (reported.get(&number)).map(|problem| format!("state labels: {problem}"))
    }

    super::http_operations!();
}
