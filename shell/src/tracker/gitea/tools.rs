//! `gitea_issue_labels`, the adapter's agent tool (aiops-platform's semantics): put this
//! session's issue in one state by its label, and optionally close it with a terminal one,
//! with the daemon's token. Input `{issue_number, labels: [one state label], close_issue?}`.

use serde_json::{Value, json};

use super::{GiteaTracker, number};

/// The tool's name.
pub(super) const LABELS_TOOL: &str = "gitea_issue_labels";

impl GiteaTracker {
    /// The tool's dynamic tool spec.
    pub(super) fn labels_tool_spec(&self) -> Value {
        let labels: Vec<&str> = self.state_labels.iter().map(|(_, l)| l.as_str()).collect();
        json!({
            "type": "function",
            "name": LABELS_TOOL,
            "description": format!(
                "Set the state label of the Gitea issue you are working on in {}: exactly one of {}. \
                 With close_issue, a terminal state label also closes the issue. Uses Symphony's \
                 credentials; only your own issue.",
                self.repo,
                labels.join(", ")
            ),
            "inputSchema": {
                "type": "object",
                "properties": {
                    "issue_number": {"type": "integer", "description": "Your issue's number"},
                    "labels": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 1,
                               "description": "The one state label the issue should carry"},
                    "close_issue": {"type": "boolean", "description": "Also close the issue (terminal labels only)"}
                },
                "required": ["issue_number", "labels"],
                "additionalProperties": false
            }
        })
    }

    /// Runs the tool for the session working on `session`.
    pub(super) async fn labels_tool(
        &self,
        arguments: &Value,
        session: &str,
    ) -> Result<String, String> {
        let own = number(session).ok_or("this session's issue is not a Gitea issue")?;
        let asked = arguments["issue_number"]
            .as_u64()
            .ok_or("missing `issue_number` (a positive integer)")?;
        if asked != own {
            return Err(format!(
                "{LABELS_TOOL} acts on this session's issue #{own} only, not #{asked}"
            ));
        }
        let labels: Vec<&str> = arguments["labels"]
            .as_array()
            .map(|l| l.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let [wanted] = labels.as_slice() else {
            return Err(format!(
                "give exactly one state label, not {}",
                labels.len()
            ));
        };
        let Some((state, label)) = self
            .state_labels
            .iter()
            .find(|(_, label)| label.eq_ignore_ascii_case(wanted))
        else {
            let known: Vec<&str> = self.state_labels.iter().map(|(_, l)| l.as_str()).collect();
            return Err(format!(
                "{wanted:?} is not a state label; one of: {}",
                known.join(", ")
            ));
        };
        let close = arguments["close_issue"].as_bool().unwrap_or(false);
        if close && !self.is_terminal(state) {
            return Err(format!(
                "close_issue needs a terminal state label; {label} is {state:?}, which is not terminal"
            ));
        }
        let done = self.relabel(own, label).await.map_err(|e| e.message)?;
        if !close {
            return Ok(format!("#{own} now carries {label} ({state})"));
        }
        let url = format!("{}/issues/{own}", self.repo_url());
        let request = self.request(reqwest::Method::PATCH, &url);
        match self
            .send(request.json(&json!({"state": "closed"})), false)
            .await
        {
            Ok(_) => Ok(format!(
                "#{own} now carries {label} ({state}) and is closed"
            )),
            Err(e) => {
                // Undo the relabel, so a failed close changes nothing visible.
                let note = match self.undo_relabel(own, &done).await {
                    Ok(()) => "the labels it had are restored",
                    Err(_) => "restoring its labels failed too",
                };
                Err(format!("closing #{own} failed ({}); {note}", e.message))
            }
        }
    }
}
