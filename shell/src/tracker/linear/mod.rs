//! `tracker.kind: linear`: Linear's GraphQL API (field names from Linear's published schema).
//!
//! - Scope: issues of the project whose `slugId` is `provider.project_slug`, optionally only
//!   those of the team whose key is `provider.team_key` and those assigned to
//!   `provider.assignee` (a user id).
//! - Pagination: `first: 50` with `after: endCursor` while `hasNextPage`; a repeated cursor or
//!   more than 200 pages is a `tracker_pagination` error.
//! - Auth: the API key as the raw `Authorization` header value (no `Bearer`).
//! - Normalisation: `id` is Linear's UUID, `identifier` its key (`ENG-12`); priority `0` (no
//!   priority) becomes null; labels lowercase; blockers from inverse relations of type `blocks`;
//!   `dispatchable` applies the Todo-blocker rule; `native_ref` keeps the team key.
//! - Errors: transport failures are `tracker_request`, non-2xx `tracker_status` (429:
//!   `tracker_rate_limited`), GraphQL `errors` or a malformed body `tracker_response`.

use std::time::Duration;

use serde_json::{Value, json};
use symphony_core::issue::{StateSet, todo_blockers_allow_dispatch};
use symphony_core::{BlockerRef, Issue, IssueId, Timestamp, TrackerError, TrackerErrorCategory};

use super::{BoxFuture, Probe, Tracker, error};
mod config;
mod graphql;
mod tools;

pub(crate) use config::KIND;
pub use config::LinearSettings;
pub use graphql::{MutationPolicy, admit};
use tools::tool_spec;

const PAGE: u32 = 50;
const MAX_PAGES: usize = 200;

const ISSUE_FIELDS: &str = "id identifier title description priority branchName url createdAt updatedAt \
    state { name } assignee { id } team { key } labels(first: 50) { nodes { name } } \
    inverseRelations(first: 50) { nodes { type issue { id identifier state { name } } } }";

/// Linear over GraphQL.
#[derive(Clone)]
pub struct LinearTracker {
    client: reqwest::Client,
    endpoint: String,
    api_key: String,
    project_slug: String,
    team_key: Option<String>,
    assignee: Option<String>,
    mutations: MutationPolicy,
    terminal: StateSet,
}

impl std::fmt::Debug for LinearTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinearTracker")
            .field("endpoint", &self.endpoint)
            .field("project_slug", &self.project_slug)
            .finish_non_exhaustive()
    }
}

fn ts(value: &Value) -> Option<Timestamp> {
    value
        .as_str()
        .and_then(|s| Timestamp::parse_rfc3339(s).ok())
}

impl LinearTracker {
    /// A client for `provider`; `terminal_states` decide the Todo-blocker rule.
    pub fn new(provider: &LinearSettings, terminal_states: &[String]) -> Result<Self, String> {
        let client = super::http_client(Duration::from_millis(provider.timeout_ms))?;
        Ok(Self {
            client,
            endpoint: provider.endpoint.clone(),
            api_key: provider.api_key.expose().to_owned(),
            project_slug: provider.project_slug.clone(),
            team_key: provider.team_key.clone(),
            assignee: provider.assignee.clone(),
            mutations: provider.mutations.clone(),
            terminal: StateSet::new(terminal_states),
        })
    }

    /// One GraphQL request: `data` or a typed error.
    async fn graphql(&self, query: &str, variables: Value) -> Result<Value, TrackerError> {
        let response = self
            .client
            .post(&self.endpoint)
            .header(reqwest::header::AUTHORIZATION, &self.api_key)
            .json(&json!({"query": query, "variables": variables}))
            .send()
            .await
            .map_err(|e| {
                error(
                    TrackerErrorCategory::TrackerRequest,
                    format!("Linear request failed: {e}"),
                )
            })?;
        let status = response.status();
        if !status.is_success() {
            let category = match status.as_u16() {
                429 => TrackerErrorCategory::TrackerRateLimited,
                401 | 403 => TrackerErrorCategory::TrackerAuth,
                _ => TrackerErrorCategory::TrackerStatus,
            };
            let header = |name: &str| {
                let value = response.headers().get(name)?;
                value.to_str().ok().map(str::to_owned)
            };
            let hint = match status.as_u16() {
                401 => {
                    let var = config::API_KEY_VAR;
                    format!(" (check the API key in tracker.provider.api_key / ${var})")
                }
                429 => match (header("retry-after"), header("x-ratelimit-requests-reset")) {
                    (Some(seconds), _) => format!(": retry after {seconds} s"),
                    (None, Some(at)) => format!(": the limit resets at epoch ms {at}"),
                    (None, None) => ": retry later".to_owned(),
                },
                _ => String::new(),
            };
            return Err(error(
                category,
                format!("Linear answered HTTP {status}{hint}"),
            ));
        }
        let body = super::json_capped(response, "Linear").await?;
        if let Some(errors) = body["errors"].as_array().filter(|e| !e.is_empty()) {
            let messages: Vec<&str> = errors
                .iter()
                .filter_map(|e| e["message"].as_str())
                .collect();
            return Err(error(
                TrackerErrorCategory::TrackerResponse,
                format!("Linear GraphQL error: {}", messages.join("; ")),
            ));
        }
        match body.get("data") {
            Some(data) if data.is_object() => Ok(data.clone()),
            _ => Err(error(
                TrackerErrorCategory::TrackerResponse,
                "Linear sent no `data`",
            )),
        }
    }

    /// Every page of `issues(filter: ...)`.
    async fn issues(&self, filter: Value) -> Result<Vec<Value>, TrackerError> {
        let query = format!(
            "query SymphonyIssues($filter: IssueFilter, $after: String) {{ \
             issues(filter: $filter, first: {PAGE}, after: $after) {{ \
             nodes {{ {ISSUE_FIELDS} }} pageInfo {{ hasNextPage endCursor }} }} }}"
        );
        let mut nodes = Vec::new();
        let mut after: Option<String> = None;
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..MAX_PAGES {
            let data = self
                .graphql(&query, json!({"filter": filter, "after": after}))
                .await?;
            let page = &data["issues"];
            let Some(batch) = page["nodes"].as_array() else {
                return Err(error(
                    TrackerErrorCategory::TrackerResponse,
                    "Linear sent issues without `nodes`",
                ));
            };
            nodes.extend(batch.iter().cloned());
            if page["pageInfo"]["hasNextPage"] != json!(true) {
                return Ok(nodes);
            }
            let cursor = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
            match cursor {
                Some(c) if seen.insert(c.clone()) => after = Some(c),
                _ => {
                    return Err(error(
                        TrackerErrorCategory::TrackerPagination,
                        "Linear pagination returned a missing or repeated cursor",
                    ));
                }
            }
        }
        Err(error(
            TrackerErrorCategory::TrackerPagination,
            format!("more than {MAX_PAGES} pages of issues"),
        ))
    }

    fn scope(&self) -> Value {
        let mut filter = json!({"project": {"slugId": {"eq": self.project_slug}}});
        if let Some(team) = &self.team_key {
            filter["team"] = json!({"key": {"eq": team}});
        }
        if let Some(assignee) = &self.assignee {
            filter["assignee"] = json!({"id": {"eq": assignee}});
        }
        filter
    }

    /// SPEC 11.3 normalisation of one GraphQL `Issue` node; `None` for a record missing
    /// required fields.
    pub fn normalize(&self, node: &Value) -> Option<Issue> {
        let text = |v: &Value| v.as_str().map(str::to_owned);
        let mut issue = Issue {
            id: IssueId(text(&node["id"])?),
            identifier: text(&node["identifier"])?,
            title: text(&node["title"])?,
            state: text(&node["state"]["name"])?,
            description: text(&node["description"]),
            priority: node["priority"]
                .as_f64()
                .map(|p| p as i64)
                .filter(|p| (1..=4).contains(p)),
            branch_name: text(&node["branchName"]).filter(|b| !b.is_empty()),
            url: text(&node["url"]),
            assignee_id: text(&node["assignee"]["id"]),
            labels: node["labels"]["nodes"]
                .as_array()
                .map(|labels| {
                    labels
                        .iter()
                        .filter_map(|l| l["name"].as_str())
                        .map(|l| l.trim().to_lowercase())
                        .collect()
                })
                .unwrap_or_default(),
            blocked_by: node["inverseRelations"]["nodes"]
                .as_array()
                .map(|relations| {
                    relations
                        .iter()
                        .filter(|r| r["type"] == "blocks")
                        .map(|r| BlockerRef {
                            id: text(&r["issue"]["id"]),
                            identifier: text(&r["issue"]["identifier"]),
                            state: text(&r["issue"]["state"]["name"]),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            created_at: ts(&node["createdAt"]),
            updated_at: ts(&node["updatedAt"]),
            dispatchable: true,
            ..Issue::default()
        };
        if let Some(team) = node["team"]["key"].as_str() {
            let mut native = serde_json::Map::new();
            native.insert("team_key".into(), Value::String(team.to_owned()));
            issue.native_ref = Some(native);
        }
        issue.dispatchable = todo_blockers_allow_dispatch(&issue, &self.terminal);
        Some(issue)
    }

    async fn by_states(&self, states: &[String]) -> Result<Vec<Issue>, TrackerError> {
        if states.is_empty() {
            return Ok(Vec::new());
        }
        let mut filter = self.scope();
        filter["state"] = json!({"name": {"in": states}});
        let nodes = self.issues(filter).await?;
        Ok(nodes
            .iter()
            .filter_map(|node| {
                let issue = self.normalize(node);
                if issue.is_none() {
                    tracing::warn!(
                        "skipping a Linear issue without id, identifier, title or state"
                    );
                }
                issue
            })
            .collect())
    }

    async fn by_ids(&self, ids: &[IssueId]) -> Result<Vec<Issue>, TrackerError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut filter = self.scope();
        let ids: Vec<&str> = ids.iter().map(IssueId::as_str).collect();
        filter["id"] = json!({"in": ids});
        let nodes = self.issues(filter).await?;
        let mut issues = Vec::with_capacity(nodes.len());
        for node in &nodes {
            match self.normalize(node) {
                Some(issue) => issues.push(issue),
                None => {
                    return Err(error(
                        TrackerErrorCategory::TrackerResponse,
                        "Linear returned a requested issue without its required fields",
                    ));
                }
            }
        }
        Ok(issues)
    }

    async fn move_to(&self, identifier: &str, state: &str) -> Result<(), TrackerError> {
        let data = self
            .graphql(
                "query SymphonyIssueTeam($id: String!) { issue(id: $id) { id team { states { nodes { id name } } } } }",
                json!({"id": identifier}),
            )
            .await?;
        let issue = &data["issue"];
        let state_id = issue["team"]["states"]["nodes"]
            .as_array()
            .and_then(|states| {
                states.iter().find(|s| {
                    s["name"]
                        .as_str()
                        .is_some_and(|n| n.trim().eq_ignore_ascii_case(state.trim()))
                })
            })
            .and_then(|s| s["id"].as_str())
            .ok_or_else(|| {
                error(
                    TrackerErrorCategory::TrackerRequest,
                    format!("{identifier}'s team has no state named {state:?}"),
                )
            })?;
        let data = self
            .graphql(
                "mutation SymphonyMoveIssue($id: String!, $stateId: String!) { issueUpdate(id: $id, input: { stateId: $stateId }) { success } }",
                json!({"id": issue["id"], "stateId": state_id}),
            )
            .await?;
        if data["issueUpdate"]["success"] == json!(true) {
            Ok(())
        } else {
            Err(error(
                TrackerErrorCategory::TrackerResponse,
                "Linear did not confirm the state change",
            ))
        }
    }

    async fn comment(&self, identifier: &str, body: &str) -> Result<(), TrackerError> {
        let data = self
            .graphql(
                "mutation SymphonyComment($issueId: String!, $body: String!) { commentCreate(input: { issueId: $issueId, body: $body }) { success } }",
                json!({"issueId": identifier, "body": body}),
            )
            .await?;
        if data["commentCreate"]["success"] == json!(true) {
            Ok(())
        } else {
            Err(error(
                TrackerErrorCategory::TrackerResponse,
                "Linear did not confirm the comment",
            ))
        }
    }
}

impl LinearTracker {
    /// The project by slug, with the workflow states of its teams.
    async fn probe_scope(&self) -> Result<Probe, TrackerError> {
        let data = self
            .graphql(
                "query SymphonyProbe($slug: String!) { projects(filter: { slugId: { eq: $slug } }, first: 1) \
                 { nodes { name teams(first: 50) { nodes { key states(first: 100) { nodes { name } } } } } } }",
                json!({"slug": self.project_slug}),
            )
            .await?;
        let Some(project) = data["projects"]["nodes"].as_array().and_then(|n| n.first()) else {
            return Err(error(
                TrackerErrorCategory::TrackerRequest,
                format!(
                    "Linear has no project with slug {:?} visible to this key (check \
                     tracker.provider.project_slug: the slug is the last part of the project's URL)",
                    self.project_slug
                ),
            ));
        };
        let mut states: Vec<String> = Vec::new();
        for team in project["teams"]["nodes"].as_array().into_iter().flatten() {
            for state in team["states"]["nodes"].as_array().into_iter().flatten() {
                if let Some(name) = state["name"].as_str()
                    && !states.iter().any(|s| s == name)
                {
                    states.push(name.to_owned());
                }
            }
        }
        Ok(Probe {
            scope: format!(
                "project {:?}",
                project["name"].as_str().unwrap_or(&self.project_slug)
            ),
            states: Some(states),
            remarks: Vec::new(),
        })
    }
}

impl Tracker for LinearTracker {
    fn tool_specs(&self) -> Vec<Value> {
        vec![tool_spec(&self.mutations)]
    }

    fn call_tool<'a>(
        &'a self,
        name: &'a str,
        arguments: &'a Value,
    ) -> Option<BoxFuture<'a, Result<String, String>>> {
        (name == "linear_graphql").then(|| {
            Box::pin(self.graphql_tool(arguments)) as BoxFuture<'a, Result<String, String>>
        })
    }

    super::http_operations!();
}
