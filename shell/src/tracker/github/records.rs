//! GitHub's issue and pull-request records read into normalised issues (SPEC 11.3): pure
//! functions over JSON, fuzzed by `fuzz/fuzz_targets/tracker_records.rs`.

use serde_json::{Value, json};
use symphony_core::Issue;
use symphony_core::issue::normalize;

pub use crate::tracker::closing::closing_references;

/// How an open issue's labels carry its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateLabels {
    /// The text after a prefix on the first label that has it (`state:In Progress`); the
    /// prefix as written and normalised.
    Prefix {
        /// As written, for new labels.
        written: String,
        /// Trimmed and lowercased, for matching.
        normalized: String,
    },
    /// Whole label names (aiops-platform's convention: `aiops:ready`): the first of these
    /// configured states, in order, that the issue carries as a label, in any case.
    Named(Vec<String>),
}

impl StateLabels {
    /// `prefix` as written; an empty prefix means whole label names drawn from `states`
    /// (`open`, `closed` and `all` are GitHub's own states, never labels).
    pub fn new(prefix: &str, states: &[String]) -> Self {
        Self::with_own_states(prefix, states, &["open", "closed", "all"])
    }

    /// [`Self::new`] for a provider whose own states (never labels) are `own`, lowercase
    /// (GitLab: `opened`, `closed`).
    pub fn with_own_states(prefix: &str, states: &[String], own: &[&str]) -> Self {
        if !prefix.trim().is_empty() {
            return Self::Prefix {
                written: prefix.to_owned(),
                normalized: normalize(prefix),
            };
        }
        let mut names: Vec<String> = Vec::new();
        for state in states {
            let key = normalize(state);
            if key.is_empty() || own.contains(&key.as_str()) {
                continue;
            }
            if !names.iter().any(|n| normalize(n) == key) {
                names.push(state.trim().to_owned());
            }
        }
        Self::Named(names)
    }

    /// The state `label` stands for, if it is a state label.
    pub fn state_of<'a>(&'a self, label: &'a str) -> Option<&'a str> {
        match self {
            Self::Prefix { normalized, .. } => {
                state_in_label(normalized, label).filter(|s| !s.is_empty())
            }
            Self::Named(names) => {
                let key = normalize(label);
                names
                    .iter()
                    .find(|n| normalize(n) == key)
                    .map(String::as_str)
            }
        }
    }

    /// An open issue's state from its labels, if one is a state label.
    pub(crate) fn issue_state<L: AsRef<str>>(&self, labels: &[L]) -> Option<String> {
        match self {
            Self::Prefix { .. } => labels
                .iter()
                .find_map(|l| self.state_of(l.as_ref()))
                .map(str::to_owned),
            // Configured order decides, not label order, as aiops-platform has it.
            Self::Named(names) => names
                .iter()
                .find(|n| labels.iter().any(|l| normalize(l.as_ref()) == normalize(n)))
                .cloned(),
        }
    }

    /// The label that puts an issue in `state`; `Err` with the known states when labels by
    /// name cannot express it.
    pub fn label_for(&self, state: &str) -> Result<String, String> {
        match self {
            Self::Prefix { written, .. } => Ok(format!("{written}{state}")),
            Self::Named(names) => self
                .state_of(state)
                .map(str::to_owned)
                .ok_or_else(|| format!("{state:?} is not one of the states: {}", names.join(", "))),
        }
    }
}

/// SPEC 11.3 normalisation of one record of GitHub's issue listing; `None` for a pull request
/// or a record without its fields. Public for the `tracker_records` fuzz target.
pub fn normalize_record(item: &Value, states: &StateLabels, repo: &str) -> Option<Issue> {
    if item.get("pull_request").is_some() {
        return None;
    }
    let number = item["number"].as_u64()?;
    // Label objects, or bare names.
    let labels: Vec<&str> = (item["labels"].as_array().map(Vec::as_slice))
        .unwrap_or_default()
        .iter()
        .filter_map(|l| l["name"].as_str().or_else(|| l.as_str()))
        .collect();
    let state = if item["state"] == "closed" {
        "Closed".to_owned()
    } else {
        (states.issue_state(&labels)).unwrap_or_else(|| "Open".to_owned())
    };
    let priority = labels.iter().find_map(|l| {
        l.to_lowercase()
            .strip_prefix("priority:")
            .and_then(|p| p.trim().parse::<i64>().ok())
            .filter(|p| (1..=4).contains(p))
    });
    let mut native = serde_json::Map::new();
    native.insert("number".into(), json!(number));
    native.insert("repo".into(), json!(repo));
    if let Some(node) = item["node_id"].as_str() {
        native.insert("node_id".into(), json!(node));
    }
    let issue =
        crate::tracker::forge::issue(item, number, format!("GH-{number}"), state, &labels, native)?;
    Some(Issue { priority, ..issue })
}

/// What follows `prefix` (normalised) in `label`, trimmed, when the label starts with it in
/// any case. The prefix is compared on the label's own bytes, so a character whose lowercase
/// has another length cannot shift the cut into the middle of a character.
pub(super) fn state_in_label<'l>(prefix: &str, label: &'l str) -> Option<&'l str> {
    let head = label.get(..prefix.len())?;
    (head.to_lowercase() == prefix).then(|| label[prefix.len()..].trim())
}

/// Issue numbers claimed by the open pull requests among `items` (an issue listing, which
/// carries pull requests too), from their titles and bodies.
pub fn claimed_by_open_pulls(items: &[Value], repo: &str) -> Vec<u64> {
    let mut claimed = Vec::new();
    for pull in items
        .iter()
        .filter(|i| i.get("pull_request").is_some() && i["state"] == "open")
    {
        for field in ["title", "body"] {
            if let Some(text) = pull[field].as_str() {
                claimed.extend(closing_references(text, repo));
            }
        }
    }
    claimed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_labels_match_the_prefix_in_any_case_and_never_cut_a_character() {
        assert_eq!(
            state_in_label("state:", "State: In Progress"),
            Some("In Progress")
        );
        assert_eq!(state_in_label("state:", "STATE:Todo"), Some("Todo"));
        assert_eq!(state_in_label("state:", "state:"), Some(""));
        assert_eq!(state_in_label("state:", "priority:1"), None);
        assert_eq!(state_in_label("state:", "st"), None);
        // The Kelvin sign lowercases to a one-byte `k`: matching on the lowercased text and
        // cutting the original at the prefix's length would split it.
        assert_eq!(state_in_label("k:", "\u{212A}:x"), None);
    }

    #[test]
    fn labels_by_name_are_states_in_configured_order_and_any_case() {
        let states: Vec<String> = ["aiops:ready", "closed", "aiops:human-review", "AIOPS:READY"]
            .map(String::from)
            .to_vec();
        let named = StateLabels::new("", &states);
        assert_eq!(
            named,
            StateLabels::Named(vec!["aiops:ready".into(), "aiops:human-review".into()]),
            "GitHub's own states and repeats are not labels"
        );
        let labels = ["bug", "AIOPS:Human-Review", "aiops:ready"].map(String::from);
        assert_eq!(
            named.issue_state(&labels).as_deref(),
            Some("aiops:ready"),
            "the first configured state wins"
        );
        assert_eq!(named.issue_state(&["bug".to_owned()]), None);
        assert_eq!(named.label_for("AIOPS:READY").unwrap(), "aiops:ready");
        assert!(
            named
                .label_for("aiops:done")
                .unwrap_err()
                .contains("not one of")
        );
        let prefix = StateLabels::new("state:", &states);
        assert_eq!(prefix.label_for("Todo").unwrap(), "state:Todo");
        assert_eq!(prefix.state_of("State: Todo"), Some("Todo"));
        assert_eq!(prefix.state_of("state:"), None);
    }

    #[test]
    fn closing_keywords_name_issues_of_this_repository_only() {
        let repo = "acme/app";
        assert_eq!(closing_references("Closes #12", repo), [12]);
        assert_eq!(
            closing_references("This fixes: #3, and RESOLVED acme/App#4.", repo),
            [3, 4]
        );
        assert_eq!(
            closing_references(
                "(fix https://github.com/acme/app/issues/5) close https://github.com/other/acme/app2/issues/6",
                repo
            ),
            [5]
        );
        assert!(closing_references("closes other/app#7 and mentions #8", repo).is_empty());
        assert!(closing_references("see #9; enclose #10; closes", repo).is_empty());
        assert!(closing_references("fixes #x12 closes #", repo).is_empty());
        // A cut inside a multi-byte character is no match (this panicked once).
        assert!(closing_references("fixes https://€€€€€/issues/1", repo).is_empty());
        assert!(closing_references("fixes https://€€acme/app/issues/2", repo).is_empty());
        assert_eq!(
            closing_references("fixes https://€/acme/app/issues/3", repo),
            [3]
        );
    }

    #[test]
    fn only_open_pull_requests_claim_issues() {
        let items = vec![
            json!({"number": 20, "state": "open", "title": "Fix #1", "body": null, "pull_request": {}}),
            json!({"number": 21, "state": "closed", "title": "t", "body": "closes #2", "pull_request": {}}),
            json!({"number": 22, "state": "open", "title": "closes #3", "body": "an issue, not a PR"}),
            json!({"number": 23, "state": "open", "title": "t", "body": "Resolves #4\nfixes #1", "pull_request": {}}),
        ];
        assert_eq!(claimed_by_open_pulls(&items, "acme/app"), [1, 4, 1]);
    }
}
