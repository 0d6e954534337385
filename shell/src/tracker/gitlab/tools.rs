//! `gitlab_api`, the adapter's agent tool (SPEC 11.5): one REST v4 call with the daemon's
//! token, confined to the configured project. The agent names a path relative to the project
//! (`/issues/3/notes`); the daemon puts `/projects/<project>` in front, and the shared scope
//! check ([`crate::tracker::scope::scoped_url`]) proves the URL sent stays under it.

use serde_json::{Value, json};

use super::GitlabTracker;

/// The tool's name.
pub(super) const API_TOOL: &str = "gitlab_api";

impl GitlabTracker {
    /// The `gitlab_api` tool's dynamic tool spec.
    pub(super) fn api_tool_spec(&self) -> Value {
        json!({
            "type": "function",
            "name": API_TOOL,
            "description": format!(
                "Call GitLab's REST API v4 with Symphony's credentials, limited to project {}. \
                 The path is relative to the project: /issues/3/notes means \
                 /projects/<project>/issues/3/notes.", self.project),
            "inputSchema": {
                "type": "object",
                "properties": {
                    "method": {"type": "string", "enum": ["GET", "POST", "PUT", "DELETE"]},
                    "path": {"type": "string", "description": "e.g. /issues/3/notes or /merge_requests?state=opened"},
                    "body": {"type": "object"}
                },
                "required": ["method", "path"],
                "additionalProperties": false
            }
        })
    }

    /// `gitlab_api`: one call under the project.
    pub(super) async fn api_tool(&self, arguments: &Value) -> Result<String, String> {
        let method =
            crate::tracker::rest::tool_method(arguments, &["GET", "POST", "PUT", "DELETE"])?;
        let path = arguments["path"].as_str().ok_or("missing `path`")?;
        let url = crate::tracker::scope::scoped_url(&self.project_url, &[], path)
            .map_err(|e| e.to_string())?;
        let mut request = self.request(method, url.as_str());
        if let Some(body) = arguments.get("body") {
            request = request.json(body);
        }
        self.api.tool_answer(request).await
    }
}
