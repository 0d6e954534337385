//! `linear_graphql`, the adapter's agent tool (SPEC 11.5): one GraphQL operation per call,
//! sent to the configured endpoint with the daemon's API key.

use serde_json::{Value, json};

use super::LinearTracker;

/// The `linear_graphql` tool's dynamic tool spec.
pub(super) fn tool_spec() -> Value {
    json!({
        "type": "function",
        "name": "linear_graphql",
        "description": "Run one GraphQL query or mutation against Linear with Symphony's credentials. Returns the `data` object as JSON; GraphQL errors fail the call.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "One GraphQL operation"},
                "variables": {"type": "object", "description": "Its variables"}
            },
            "required": ["query"],
            "additionalProperties": false
        }
    })
}

/// Whether a GraphQL document holds exactly one operation: one top-level `{ ... }` block.
fn single_operation(document: &str) -> bool {
    let mut depth = 0i32;
    let mut blocks = 0;
    let mut in_string = false;
    let mut previous = ' ';
    for c in document.chars() {
        match c {
            '"' if previous != '\\' => in_string = !in_string,
            '{' if !in_string => {
                if depth == 0 {
                    blocks += 1;
                }
                depth += 1;
            }
            '}' if !in_string => depth -= 1,
            _ => {}
        }
        previous = c;
    }
    blocks == 1 && depth == 0
}

impl LinearTracker {
    /// `linear_graphql`: one operation, the `data` object back as JSON text.
    pub(super) async fn graphql_tool(&self, arguments: &Value) -> Result<String, String> {
        let query = arguments["query"].as_str().ok_or("missing `query`")?;
        if !single_operation(query) {
            return Err("send exactly one GraphQL operation per call".to_owned());
        }
        let variables = arguments.get("variables").cloned().unwrap_or(json!({}));
        self.graphql(query, variables)
            .await
            .map(|data| data.to_string())
            .map_err(|e| e.message)
    }
}
