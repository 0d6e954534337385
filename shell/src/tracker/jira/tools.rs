//! `jira_rest`, the adapter's agent tool (SPEC 11.5): one REST v3 call with the daemon's
//! credentials, confined to the configured project. A path must pass the shared scope check
//! under `/rest/api/3` and then name this project (`/rest/api/3/project/ENG...`) or one of
//! its issues by key (`/rest/api/3/issue/ENG-12...`). Jira answers an issue's old key after a
//! move, so before an issue path is used the issue is read and must still be in the project.

use serde_json::{Value, json};

use super::JiraTracker;
use crate::tracker::scope::scoped_url;

/// The tool's name.
pub(super) const REST_TOOL: &str = "jira_rest";

impl JiraTracker {
    /// The `jira_rest` tool's dynamic tool spec.
    pub(super) fn rest_tool_spec(&self) -> Value {
        let project = &self.project;
        json!({
            "type": "function",
            "name": REST_TOOL,
            "description": format!(
                "Call Jira's REST API v3 with Symphony's credentials, limited to project {project}: \
                 paths under /rest/api/3/issue/{project}-<number> or /rest/api/3/project/{project}. \
                 Rich text (descriptions, comments) is Atlassian Document Format."),
            "inputSchema": {
                "type": "object",
                "properties": {
                    "method": {"type": "string", "enum": ["GET", "POST", "PUT", "DELETE"]},
                    "path": {"type": "string", "description": format!("e.g. /rest/api/3/issue/{project}-1/comment")},
                    "body": {"type": "object"}
                },
                "required": ["method", "path"],
                "additionalProperties": false
            }
        })
    }

    /// `jira_rest`: one call inside the project.
    pub(super) async fn rest_tool(&self, arguments: &Value) -> Result<String, String> {
        let method =
            crate::tracker::rest::tool_method(arguments, &["GET", "POST", "PUT", "DELETE"])?;
        let path = arguments["path"].as_str().ok_or("missing `path`")?;
        let url = scoped_url(&self.site, &["rest", "api", "3"], path).map_err(|e| e.to_string())?;
        let base_depth = (reqwest::Url::parse(&self.site).ok())
            .and_then(|u| {
                u.path_segments()
                    .map(|s| s.filter(|s| !s.is_empty()).count())
            })
            .unwrap_or(0);
        let segments: Vec<String> = (url.path_segments().into_iter().flatten())
            .skip(base_depth + 3)
            .map(str::to_owned)
            .collect();
        let refuse = |why: &str| {
            Err(format!(
                "path {:?} refused: {why}; only /rest/api/3/issue/{p}-<number> and \
                 /rest/api/3/project/{p} are allowed",
                path.chars().take(200).collect::<String>(),
                p = self.project
            ))
        };
        match segments.as_slice() {
            [kind, project, ..] if kind == "project" => {
                if !project.eq_ignore_ascii_case(&self.project) {
                    return refuse("another project");
                }
            }
            [kind, key, ..] if kind == "issue" => {
                if !self.in_project(key) {
                    return refuse("not an issue key of the project");
                }
                self.still_in_project(key).await?;
            }
            _ => return refuse("not a project or issue path"),
        }
        let mut request = self.request(method, url.as_str());
        if let Some(body) = arguments.get("body") {
            request = request.json(body);
        }
        self.api.tool_answer(request).await
    }

    /// Whether the issue `key` names is in the project today (not an old key of an issue moved
    /// out of it).
    async fn still_in_project(&self, key: &str) -> Result<(), String> {
        let path = format!("/issue/{key}?fields=project");
        let found =
            (self.call(reqwest::Method::GET, &path, None, true).await).map_err(|e| e.message)?;
        let Some(issue) = found else {
            return Err(format!("Jira has no issue {key}"));
        };
        let now_key = issue["key"].as_str().unwrap_or_default();
        let project = issue["fields"]["project"]["key"]
            .as_str()
            .unwrap_or_default();
        if self.in_project(now_key) && project.eq_ignore_ascii_case(&self.project) {
            Ok(())
        } else {
            Err(format!(
                "{key} is now {now_key} in project {project}, outside project {}",
                self.project
            ))
        }
    }
}
