//! `tracker.kind: jira`: Jira Cloud issues of one project over REST API v3 (operations and
//! shapes from Atlassian's published OpenAPI description, `fixtures/jira/`).
//!
//! - Identity: `id` is Jira's issue id (stable when an issue is moved), `identifier` its key
//!   (`ENG-12`); `state` is the status name as the site spells it.
//! - Candidates: `POST /rest/api/3/search/jql` with `project = "KEY" AND status in (...)`,
//!   every value a quoted JQL literal, page after page by `nextPageToken` until `isLast`. A
//!   token seen twice, or more pages than `pagination_max_pages`, fails the listing: a
//!   partial list never looks complete.
//! - Jira refuses a whole JQL query that names a status the site does not know. The project's
//!   statuses are read first (and again every few minutes), and workflow states the project
//!   does not use are left out of the query, logged once.
//! - Refresh: `POST /rest/api/3/issue/bulkfetch`, 100 ids a request. An issue Jira could not
//!   return for a retriable reason (`issueErrors`) fails the refresh rather than looking
//!   gone; an issue moved to another project is gone.
//! - State moves go through the workflow's transitions: the one whose target status has the
//!   state's name. Comments are written in Atlassian Document Format.
//! - Blockers from inward `Blocks` links; an issue whose status is of category `new` waits
//!   until each is done (status category `done`, or a terminal state).
//! - `jira_rest`: the agent's REST tool, limited to this project's issues and the project.

mod config;
mod records;
mod tools;

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use symphony_core::issue::normalize;
use symphony_core::{Issue, IssueId, TrackerError, TrackerErrorCategory};

pub use config::JiraSettings;
pub(crate) use config::KIND;
pub use records::{FIELDS, adf_document, adf_text, jql_string, normalize_record, timestamp};

use super::rest::Api;
use super::{Probe, Tracker, error};

/// Ids per bulk fetch (the API's maximum).
const BULK_FETCH_MAX: usize = 100;
/// How long the project's status names are trusted before they are read again.
const STATUSES_TTL: Duration = Duration::from_secs(300);

/// The Jira adapter.
pub struct JiraTracker {
    api: Api,
    /// The site, without a trailing slash.
    site: String,
    /// `Basic ...`.
    authorization: String,
    project: String,
    terminal: Vec<String>,
    page_size: u32,
    max_pages: u32,
    /// The project's status names, and when they were read.
    statuses: Mutex<Option<(Instant, Vec<String>)>>,
    /// Workflow states last found missing in the project, so each change is logged once.
    missing_logged: Mutex<Vec<String>>,
}

impl std::fmt::Debug for JiraTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JiraTracker")
            .field("site", &self.site)
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

impl JiraTracker {
    /// An adapter for `settings`; `terminal_states` are the workflow's.
    pub fn new(settings: &JiraSettings, terminal_states: &[String]) -> Result<Self, String> {
        let api = Api::new(
            Duration::from_millis(settings.timeout_ms),
            "Jira",
            format!(
                " (check tracker.provider.email and api_token / ${}, and the account's access \
                 to project {})",
                config::TOKEN_VAR,
                settings.project_key
            ),
            " (check tracker.provider.base_url and project_key)".to_owned(),
        )?;
        Ok(Self {
            api,
            site: settings.base_url.trim_end_matches('/').to_owned(),
            authorization: settings.authorization(),
            project: settings.project_key.clone(),
            terminal: terminal_states.iter().map(|s| normalize(s)).collect(),
            page_size: settings.page_size,
            max_pages: settings.pagination_max_pages,
            statuses: Mutex::new(None),
            missing_logged: Mutex::new(Vec::new()),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/rest/api/3{path}", self.site)
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.api
            .client
            .request(method, url)
            .header(reqwest::header::AUTHORIZATION, &self.authorization)
            .header(reqwest::header::ACCEPT, "application/json")
    }

    /// A JSON answer to `method path` with `body`; `Ok(None)` for 404 when `missing_ok`.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        missing_ok: bool,
    ) -> Result<Option<Value>, TrackerError> {
        let mut request = self.request(method, &self.url(path));
        if let Some(body) = body {
            request = request.json(body);
        }
        self.api.json(request, missing_ok).await
    }

    fn is_terminal(&self, state: &str) -> bool {
        self.terminal.contains(&normalize(state))
    }

    fn read(&self, item: &Value) -> Option<Issue> {
        normalize_record(item, &self.site, &|state| self.is_terminal(state))
    }

    /// Whether `key` names an issue of this project (`ENG-12`).
    fn in_project(&self, key: &str) -> bool {
        key.split_once('-').is_some_and(|(project, number)| {
            project.eq_ignore_ascii_case(&self.project)
                && !number.is_empty()
                && number.bytes().all(|b| b.is_ascii_digit())
        })
    }

    fn key(&self, identifier: &str) -> Result<String, TrackerError> {
        if self.in_project(identifier) {
            Ok(identifier.to_ascii_uppercase())
        } else {
            Err(error(
                TrackerErrorCategory::TrackerRequest,
                format!(
                    "{identifier:?} is not an issue key of project {} ({}-<number>)",
                    self.project, self.project
                ),
            ))
        }
    }

    /// The project's status names over every issue type, in the order Jira lists them.
    async fn project_statuses(&self) -> Result<Vec<String>, TrackerError> {
        let path = format!("/project/{}/statuses", self.project);
        let body = self
            .call(reqwest::Method::GET, &path, None, false)
            .await?
            .unwrap_or_default();
        let Some(types) = body.as_array() else {
            return Err(error(
                TrackerErrorCategory::TrackerResponse,
                "Jira sent project statuses that are not a list",
            ));
        };
        let mut names: Vec<String> = Vec::new();
        for status in types
            .iter()
            .flat_map(|t| t["statuses"].as_array().into_iter().flatten())
        {
            if let Some(name) = status["name"].as_str()
                && !names.iter().any(|n| normalize(n) == normalize(name))
            {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    /// [`Self::project_statuses`], read at most every [`STATUSES_TTL`].
    async fn known_statuses(&self) -> Result<Vec<String>, TrackerError> {
        let fresh = |kept: &Option<(Instant, Vec<String>)>| {
            kept.as_ref()
                .filter(|(at, _)| at.elapsed() < STATUSES_TTL)
                .map(|(_, names)| names.clone())
        };
        if let Some(names) = self.statuses.lock().ok().and_then(|k| fresh(&k)) {
            return Ok(names);
        }
        let names = self.project_statuses().await?;
        if let Ok(mut kept) = self.statuses.lock() {
            *kept = Some((Instant::now(), names.clone()));
        }
        Ok(names)
    }

    /// `states` the project uses, spelled as Jira spells them; the others are logged once
    /// per change.
    async fn usable_states(&self, states: &[String]) -> Result<Vec<String>, TrackerError> {
        let known = self.known_statuses().await?;
        let mut usable = Vec::new();
        let mut missing = Vec::new();
        for state in states {
            match known.iter().find(|k| normalize(k) == normalize(state)) {
                Some(name) if !usable.contains(name) => usable.push(name.clone()),
                Some(_) => {}
                None => missing.push(state.clone()),
            }
        }
        if let Ok(mut logged) = self.missing_logged.lock()
            && *logged != missing
        {
            if !missing.is_empty() {
                tracing::warn!(
                    "Jira project {} has no status {}: left out of the search (the project's \
                     statuses: {})",
                    self.project,
                    missing.join(", "),
                    known.join(", ")
                );
            }
            *logged = missing;
        }
        Ok(usable)
    }

    async fn by_states(&self, states: &[String]) -> Result<Vec<Issue>, TrackerError> {
        if states.is_empty() {
            return Ok(Vec::new());
        }
        let usable = self.usable_states(states).await?;
        if usable.is_empty() {
            return Ok(Vec::new());
        }
        let listed: Vec<String> = usable.iter().map(|s| jql_string(s)).collect();
        let jql = format!(
            "project = {} AND status in ({}) ORDER BY created ASC",
            jql_string(&self.project),
            listed.join(", ")
        );
        let wanted: Vec<String> = states.iter().map(|s| normalize(s)).collect();
        let mut issues = Vec::new();
        let mut token: Option<String> = None;
        let mut seen = BTreeSet::new();
        for page in 1.. {
            if page > self.max_pages {
                return Err(error(
                    TrackerErrorCategory::TrackerPagination,
                    format!(
                        "more than {} pages of search results; raise \
                         tracker.provider.pagination_max_pages (a partial list is not used)",
                        self.max_pages
                    ),
                ));
            }
            let mut body = json!({"jql": jql, "fields": FIELDS, "maxResults": self.page_size});
            if let Some(token) = &token {
                body["nextPageToken"] = json!(token);
            }
            let answer = self
                .call(reqwest::Method::POST, "/search/jql", Some(&body), false)
                .await?
                .unwrap_or_default();
            let Some(batch) = answer["issues"].as_array() else {
                return Err(error(
                    TrackerErrorCategory::TrackerResponse,
                    "Jira sent a search result without an issue list",
                ));
            };
            issues.extend(
                (batch.iter().filter_map(|item| self.read(item)))
                    .filter(|issue| wanted.contains(&normalize(&issue.state))),
            );
            let next = answer["nextPageToken"].as_str().filter(|t| !t.is_empty());
            match (answer["isLast"].as_bool(), next) {
                (Some(true), _) | (None, None) => break,
                (_, Some(next)) => {
                    if !seen.insert(next.to_owned()) {
                        return Err(error(
                            TrackerErrorCategory::TrackerPagination,
                            "Jira's next page token leads back to a page already read",
                        ));
                    }
                    token = Some(next.to_owned());
                }
                (Some(false), None) => {
                    return Err(error(
                        TrackerErrorCategory::TrackerPagination,
                        "Jira said more pages follow but sent no nextPageToken",
                    ));
                }
            }
        }
        Ok(issues)
    }

    async fn by_ids(&self, ids: &[IssueId]) -> Result<Vec<Issue>, TrackerError> {
        let mut found: Vec<Issue> = Vec::new();
        for chunk in ids.chunks(BULK_FETCH_MAX) {
            let wanted: Vec<&str> = chunk.iter().map(IssueId::as_str).collect();
            let body = json!({"issueIdsOrKeys": wanted, "fields": FIELDS});
            let answer = self
                .call(
                    reqwest::Method::POST,
                    "/issue/bulkfetch",
                    Some(&body),
                    false,
                )
                .await?
                .unwrap_or_default();
            let errors: Vec<String> = (answer["issueErrors"].as_array().into_iter().flatten())
                .map(|e| {
                    format!(
                        "{}: {}",
                        e["id"].as_str().unwrap_or("?"),
                        e["errorMessage"].as_str().unwrap_or("no reason given")
                    )
                })
                .collect();
            if !errors.is_empty() {
                // Not gone: Jira could not answer for them this time.
                return Err(error(
                    TrackerErrorCategory::TrackerResponse,
                    format!(
                        "Jira could not return {} of the issues asked for ({}); the refresh is \
                         tried again next tick",
                        errors.len(),
                        errors.join("; ").chars().take(300).collect::<String>()
                    ),
                ));
            }
            for item in answer["issues"].as_array().into_iter().flatten() {
                let moved = item["fields"]["project"]["key"]
                    .as_str()
                    .is_some_and(|p| !p.eq_ignore_ascii_case(&self.project));
                if moved {
                    continue; // moved to another project: no longer visible here
                }
                match self.read(item) {
                    Some(issue) => found.push(issue),
                    None => {
                        return Err(error(
                            TrackerErrorCategory::TrackerResponse,
                            "Jira sent an issue without its id, key or summary",
                        ));
                    }
                }
            }
        }
        // In the order asked, each once.
        let mut out = Vec::with_capacity(found.len());
        for id in ids {
            if let Some(at) = found.iter().position(|issue| &issue.id == id) {
                out.push(found.swap_remove(at));
            }
        }
        Ok(out)
    }

    /// Moves the issue by the transition whose target status is `state` (a transition named
    /// so, failing that). Already there: nothing to do.
    async fn move_to(&self, identifier: &str, state: &str) -> Result<(), TrackerError> {
        let key = self.key(identifier)?;
        let path = format!("/issue/{key}/transitions");
        let listed = self
            .call(reqwest::Method::GET, &path, None, false)
            .await?
            .unwrap_or_default();
        let transitions: Vec<&Value> = listed["transitions"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        let target = normalize(state);
        let names_target = |field: &Value| field.as_str().is_some_and(|n| normalize(n) == target);
        let chosen = (transitions.iter())
            .find(|t| names_target(&t["to"]["name"]))
            .or_else(|| transitions.iter().find(|t| names_target(&t["name"])));
        if let Some(transition) = chosen {
            let Some(id) = transition["id"].as_str() else {
                return Err(error(
                    TrackerErrorCategory::TrackerResponse,
                    "Jira sent a transition without an id",
                ));
            };
            let body = json!({"transition": {"id": id}});
            self.call(reqwest::Method::POST, &path, Some(&body), false)
                .await?;
            return Ok(());
        }
        let current = self
            .call(
                reqwest::Method::GET,
                &format!("/issue/{key}?fields=status"),
                None,
                false,
            )
            .await?
            .unwrap_or_default();
        if current["fields"]["status"]["name"]
            .as_str()
            .is_some_and(|name| normalize(name) == target)
        {
            return Ok(());
        }
        let reachable: Vec<&str> = (transitions.iter())
            .filter_map(|t| t["to"]["name"].as_str())
            .collect();
        Err(error(
            TrackerErrorCategory::TrackerRequest,
            format!(
                "{key} has no transition to {state:?}; from its status it can move to: {}",
                if reachable.is_empty() {
                    "nothing".to_owned()
                } else {
                    reachable.join(", ")
                }
            ),
        ))
    }

    async fn comment(&self, identifier: &str, body: &str) -> Result<(), TrackerError> {
        let key = self.key(identifier)?;
        if body.trim().is_empty() {
            return Err(error(
                TrackerErrorCategory::TrackerRequest,
                "a Jira comment cannot be empty",
            ));
        }
        let payload = json!({"body": adf_document(body)});
        self.call(
            reqwest::Method::POST,
            &format!("/issue/{key}/comment"),
            Some(&payload),
            false,
        )
        .await?;
        Ok(())
    }

    /// The account (proving the credentials), the project, and its statuses.
    async fn probe_scope(&self) -> Result<Probe, TrackerError> {
        self.call(reqwest::Method::GET, "/myself", None, false)
            .await?;
        let path = format!("/project/{}", self.project);
        let Some(project) = self.call(reqwest::Method::GET, &path, None, true).await? else {
            return Err(error(
                TrackerErrorCategory::TrackerStatus,
                format!(
                    "Jira has no project {} visible to this account (check \
                     tracker.provider.project_key and the account's access)",
                    self.project
                ),
            ));
        };
        let states = self.project_statuses().await?;
        let name = project["name"].as_str().unwrap_or_default();
        Ok(Probe {
            scope: format!("project {} ({name})", self.project),
            states: Some(states),
            remarks: Vec::new(),
        })
    }
}

impl Tracker for JiraTracker {
    fn tool_specs(&self) -> Vec<Value> {
        vec![self.rest_tool_spec()]
    }

    fn call_tool<'a>(
        &'a self,
        name: &'a str,
        arguments: &'a Value,
    ) -> Option<super::BoxFuture<'a, Result<String, String>>> {
        (name == tools::REST_TOOL).then(|| {
            Box::pin(self.rest_tool(arguments)) as super::BoxFuture<'a, Result<String, String>>
        })
    }

    fn rate_limit(&self) -> Option<super::RateLimit> {
        self.api.rate_limit()
    }

    super::http_operations!();
}
