//! `github_api`, the adapter's agent tool (SPEC 11.5): one REST call with the daemon's
//! token, confined to the configured repository by [`crate::tracker::scope::scoped_url`].

use serde_json::{Value, json};

use super::GithubTracker;

impl GithubTracker {
    /// The `github_api` tool's dynamic tool spec.
    pub(super) fn api_tool_spec(&self) -> Value {
        json!({
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
        })
    }

    /// `github_api`: one REST call under `/repos/<repo>` only.
    pub(super) async fn api_tool(&self, arguments: &Value) -> Result<String, String> {
        let allowed = ["GET", "POST", "PATCH", "PUT", "DELETE"];
        let method = crate::tracker::rest::tool_method(arguments, &allowed)?;
        let path = arguments["path"].as_str().ok_or("missing `path`")?;
        let (owner, name) = self.repo.split_once('/').unwrap_or((&self.repo, ""));
        let url = crate::tracker::scope::scoped_url(&self.api_url, &["repos", owner, name], path)
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
        let body = crate::tracker::body_capped(
            response,
            crate::tracker::MAX_TOOL_RESPONSE_BYTES,
            "GitHub",
        )
        .await
        .map_err(|e| e.message)?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}
