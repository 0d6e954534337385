//! The issue-record fields GitHub and Gitea name alike (Gitea's REST API follows GitHub's
//! shape): title, body, links, assignee, labels, timestamps. Each adapter decides identity,
//! state and extras; this turns the rest into an [`Issue`].

use serde_json::{Map, Value};
use symphony_core::issue::normalize;
use symphony_core::{Issue, IssueId, Timestamp};

/// An [`Issue`] from `item`'s shared fields, with the adapter's `number`, `identifier`,
/// `state`, `labels` and `native` reference; `None` without a title.
pub(crate) fn issue(
    item: &Value,
    number: u64,
    identifier: String,
    state: String,
    labels: &[&str],
    native: Map<String, Value>,
) -> Option<Issue> {
    let ts = |v: &Value| v.as_str().and_then(|s| Timestamp::parse_rfc3339(s).ok());
    Some(Issue {
        id: IssueId(number.to_string()),
        identifier,
        title: item["title"].as_str()?.to_owned(),
        description: (item["body"].as_str())
            .filter(|b| !b.is_empty())
            .map(str::to_owned),
        state,
        url: item["html_url"].as_str().map(str::to_owned),
        assignee_id: item["assignee"]["login"].as_str().map(str::to_owned),
        labels: labels.iter().map(|l| normalize(l)).collect(),
        created_at: ts(&item["created_at"]),
        updated_at: ts(&item["updated_at"]),
        dispatchable: true,
        native_ref: Some(native),
        ..Issue::default()
    })
}
