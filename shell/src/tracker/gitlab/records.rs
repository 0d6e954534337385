//! GitLab's issue records read into normalised issues (SPEC 11.3): pure functions over JSON,
//! fuzzed by `fuzz/fuzz_targets/tracker_records.rs`.

use serde_json::{Map, Value, json};
use symphony_core::issue::normalize;
use symphony_core::{BlockerRef, Issue, IssueId, Timestamp};

use crate::tracker::github::StateLabels;

/// GitLab's own states, never labels.
pub const OWN_STATES: [&str; 3] = ["opened", "closed", "all"];

/// The identifier of issue `iid`.
pub fn identifier(iid: u64) -> String {
    format!("GL-{iid}")
}

/// The iid an identifier (`GL-12`) or id (`12`) names.
pub fn iid(text: &str) -> Option<u64> {
    let digits = text.strip_prefix("GL-").unwrap_or(text);
    digits.parse().ok().filter(|n| *n > 0)
}

/// An issue's label names: strings, or label objects (`with_labels_details`).
pub(super) fn labels(item: &Value) -> Vec<&str> {
    (item["labels"].as_array().into_iter().flatten())
        .filter_map(|l| l.as_str().or_else(|| l["name"].as_str()))
        .collect()
}

/// The state of `item`: `Closed` when closed; else the state its labels carry, or `Opened`.
pub(super) fn state_of(item: &Value, states: &StateLabels) -> String {
    if item["state"] == "closed" {
        return "Closed".to_owned();
    }
    states
        .issue_state(&labels(item))
        .unwrap_or_else(|| "Opened".to_owned())
}

/// SPEC 11.3 normalisation of one GitLab issue: `id` is the project-scoped iid, `identifier`
/// `GL-<iid>`. Priority from a `priority::N` or `priority:N` label (1 to 4). `None` without an
/// iid or a title.
pub fn normalize_record(item: &Value, states: &StateLabels) -> Option<Issue> {
    let iid = item["iid"].as_u64()?;
    let title = item["title"].as_str()?;
    let names = labels(item);
    let priority = names.iter().find_map(|l| {
        let lower = l.to_lowercase();
        let rest = lower
            .strip_prefix("priority::")
            .or_else(|| lower.strip_prefix("priority:"))?;
        rest.trim()
            .parse::<i64>()
            .ok()
            .filter(|p| (1..=4).contains(p))
    });
    let ts = |v: &Value| v.as_str().and_then(|s| Timestamp::parse_rfc3339(s).ok());
    let assignee = (item["assignees"][0]["username"].as_str())
        .or_else(|| item["assignee"]["username"].as_str());
    let mut native = Map::new();
    native.insert("iid".into(), json!(iid));
    for key in ["id", "project_id"] {
        if let Some(n) = item[key].as_u64() {
            native.insert(key.into(), json!(n));
        }
    }
    Some(Issue {
        id: IssueId(iid.to_string()),
        identifier: identifier(iid),
        title: title.to_owned(),
        description: (item["description"].as_str())
            .filter(|d| !d.trim().is_empty())
            .map(str::to_owned),
        priority,
        state: state_of(item, states),
        url: item["web_url"].as_str().map(str::to_owned),
        assignee_id: assignee.map(str::to_owned),
        labels: names.iter().map(|l| normalize(l)).collect(),
        created_at: ts(&item["created_at"]),
        updated_at: ts(&item["updated_at"]),
        dispatchable: true,
        native_ref: Some(native),
        ..Issue::default()
    })
}

/// The blockers among an issue's links (`GET .../issues/:iid/links`): those of
/// `link_type: is_blocked_by`. A blocker in the same project (`project_id`) is `GL-<iid>`
/// with its iid as id; one elsewhere is named by its full reference (`group/other#5`).
pub fn blockers(links: &[Value], project_id: Option<u64>, states: &StateLabels) -> Vec<BlockerRef> {
    links
        .iter()
        .filter(|link| link["link_type"] == "is_blocked_by")
        .filter_map(|link| {
            let iid = link["iid"].as_u64()?;
            let here = project_id.is_some() && link["project_id"].as_u64() == project_id;
            Some(BlockerRef {
                id: here.then(|| iid.to_string()),
                identifier: Some(if here {
                    identifier(iid)
                } else {
                    (link["references"]["full"].as_str())
                        .map(str::to_owned)
                        .unwrap_or_else(|| format!("#{iid} (another project)"))
                }),
                state: Some(state_of(link, states)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labelled(prefix: &str) -> StateLabels {
        let states = ["Todo", "In Progress", "Done", "Closed", "opened"].map(String::from);
        StateLabels::with_own_states(prefix, &states, &OWN_STATES)
    }

    #[test]
    fn state_comes_from_gitlab_state_then_labels() {
        let named = labelled("");
        let issue = |state: &str, labels: Value| {
            json!({"iid": 3, "id": 99, "project_id": 7, "title": "T", "state": state, "labels": labels,
                "description": "", "web_url": "https://gitlab.example.com/acme/app/-/issues/3",
                "assignees": [{"username": "ann"}], "created_at": "2026-01-01T00:00:00.000Z"})
        };
        let open = normalize_record(
            &issue("opened", json!(["In Progress", "priority::2"])),
            &named,
        )
        .unwrap();
        assert_eq!(open.state, "In Progress");
        assert_eq!(open.identifier, "GL-3");
        assert_eq!(open.id.as_str(), "3");
        assert_eq!(open.priority, Some(2));
        assert_eq!(open.assignee_id.as_deref(), Some("ann"));
        assert_eq!(open.description, None);
        assert!(open.created_at.is_some());
        assert_eq!(
            normalize_record(&issue("opened", json!(["bug"])), &named)
                .unwrap()
                .state,
            "Opened"
        );
        assert_eq!(
            normalize_record(&issue("closed", json!(["Todo"])), &named)
                .unwrap()
                .state,
            "Closed"
        );
        // Scoped labels by prefix; label objects too.
        let scoped = labelled("symphony::");
        let issue = issue(
            "opened",
            json!([{"name": "symphony::Todo", "color": "#fff"}]),
        );
        assert_eq!(normalize_record(&issue, &scoped).unwrap().state, "Todo");
        assert_eq!(
            scoped.label_for("In Progress").unwrap(),
            "symphony::In Progress"
        );
        assert!(normalize_record(&json!({"iid": 1}), &scoped).is_none());
    }

    #[test]
    fn only_is_blocked_by_links_block() {
        let named = labelled("");
        let links = [
            json!({"iid": 1, "project_id": 7, "state": "opened", "labels": ["Todo"], "link_type": "is_blocked_by",
                "references": {"full": "acme/app#1"}}),
            json!({"iid": 5, "project_id": 8, "state": "closed", "labels": [], "link_type": "is_blocked_by",
                "references": {"full": "acme/other#5"}}),
            json!({"iid": 2, "project_id": 7, "state": "opened", "labels": [], "link_type": "relates_to"}),
            json!({"iid": 4, "project_id": 7, "state": "opened", "labels": [], "link_type": "blocks"}),
        ];
        let found = blockers(&links, Some(7), &named);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].identifier.as_deref(), Some("GL-1"));
        assert_eq!(found[0].id.as_deref(), Some("1"));
        assert_eq!(found[0].state.as_deref(), Some("Todo"));
        assert_eq!(found[1].identifier.as_deref(), Some("acme/other#5"));
        assert_eq!(found[1].id, None);
        assert_eq!(found[1].state.as_deref(), Some("Closed"));
    }

    #[test]
    fn identifiers_and_ids_name_iids() {
        assert_eq!(iid("GL-12"), Some(12));
        assert_eq!(iid("12"), Some(12));
        for bad in ["GL-", "GL-0", "GH-1", "GL-1x", ""] {
            assert_eq!(iid(bad), None, "{bad}");
        }
    }
}
