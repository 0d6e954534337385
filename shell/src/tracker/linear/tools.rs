//! `linear_graphql`, the adapter's agent tool (SPEC 11.5): one GraphQL operation per call,
//! sent to the configured endpoint with the daemon's API key.

use serde_json::{Value, json};

use super::LinearTracker;
use super::graphql::MutationPolicy;

/// The `linear_graphql` tool's dynamic tool spec; its description says which mutations the
/// workflow lets through, so the agent need not find out by failing.
pub(super) fn tool_spec(mutations: &MutationPolicy) -> Value {
    let mut description = "Run one GraphQL query or mutation against Linear with Symphony's \
                           credentials. Returns the `data` object as JSON; GraphQL errors fail \
                           the call."
        .to_owned();
    match mutations {
        MutationPolicy::Any => {}
        MutationPolicy::None => description.push_str(" Mutations are turned off: queries only."),
        MutationPolicy::Only(names) => {
            description.push_str(" Mutations allowed: ");
            description.push_str(&names.join(", "));
            description.push('.');
        }
    }
    json!({
        "type": "function",
        "name": "linear_graphql",
        "description": description,
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

impl LinearTracker {
    /// `linear_graphql`: one operation, the `data` object back as JSON text.
    pub(super) async fn graphql_tool(&self, arguments: &Value) -> Result<String, String> {
        let query = arguments["query"].as_str().ok_or("missing `query`")?;
        // Checked here, before anything is sent.
        super::graphql::admit(query, &self.mutations)?;
        let variables = arguments.get("variables").cloned().unwrap_or(json!({}));
        self.graphql(query, variables)
            .await
            .map(|data| data.to_string())
            .map_err(|e| e.message)
    }
}
