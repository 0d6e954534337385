//! Gitea's issue records read into normalised issues (SPEC 11.3), with the state carried by one
//! label of the configured set: pure functions over JSON.

use serde_json::{Value, json};
use symphony_core::Issue;

/// The identifier of issue `number` (`GT-12`), and back.
pub fn identifier(number: u64) -> String {
    format!("GT-{number}")
}

/// The issue number in an identifier (`GT-12`, or the bare number).
pub fn number(identifier: &str) -> Option<u64> {
    let digits = identifier
        .strip_prefix("GT-")
        .or_else(|| identifier.strip_prefix("gt-"))
        .unwrap_or(identifier);
    digits.parse().ok().filter(|n| *n > 0)
}

/// A record read, and what is wrong with its state labels, if anything (reported, never
/// fixed silently).
#[derive(Clone, Debug, PartialEq)]
pub struct Read {
    /// The normalised issue.
    pub issue: Issue,
    /// A missing, doubled or unknown state label.
    pub problem: Option<String>,
}

/// SPEC 11.3 normalisation of one Gitea issue. `mapping` is (state, label), highest priority
/// first; `closed_state` is the state of a closed issue that carries no terminal label;
/// `terminal` says whether a state is terminal. `None` for a pull request or a record without
/// its fields.
pub fn normalize_record(
    item: &Value,
    mapping: &[(String, String)],
    closed_state: &str,
    terminal: &dyn Fn(&str) -> bool,
    repo: &str,
) -> Option<Read> {
    if !item["pull_request"].is_null() {
        return None;
    }
    let number = item["number"].as_u64()?;
    let labels: Vec<&str> = item["labels"]
        .as_array()
        .map(|ls| ls.iter().filter_map(|l| l["name"].as_str()).collect())
        .unwrap_or_default();
    let carried: Vec<&(String, String)> = mapping
        .iter()
        .filter(|(_, label)| labels.iter().any(|l| l.eq_ignore_ascii_case(label)))
        .collect();
    // Labels that look like state labels (same prefix as a configured one) but are not one.
    let prefixes: Vec<String> = mapping
        .iter()
        .filter_map(|(_, label)| {
            label
                .rsplit_once('/')
                .map(|(p, _)| format!("{}/", p.to_lowercase()))
        })
        .collect();
    let unknown: Vec<&str> = labels
        .iter()
        .copied()
        .filter(|l| {
            let lower = l.to_lowercase();
            prefixes.iter().any(|p| lower.starts_with(p.as_str()))
                && !mapping
                    .iter()
                    .any(|(_, label)| label.eq_ignore_ascii_case(l))
        })
        .collect();
    let closed = item["state"] == "closed";
    let first = carried.first().map(|(state, _)| state.as_str());
    let state = match (closed, first) {
        (true, Some(state)) if terminal(state) => state.to_owned(),
        (true, _) => closed_state.to_owned(),
        (false, Some(state)) => state.to_owned(),
        (false, None) => String::new(),
    };
    let mut problems = Vec::new();
    if !unknown.is_empty() {
        problems.push(format!("unknown state label {}", unknown.join(", ")));
    }
    if carried.len() > 1 {
        let names: Vec<&str> = carried.iter().map(|(_, l)| l.as_str()).collect();
        problems.push(format!(
            "several state labels ({}); {} wins",
            names.join(", "),
            names[0]
        ));
    }
    if carried.is_empty() && !closed {
        problems.push("no state label".to_owned());
    }
    let mut native = serde_json::Map::new();
    native.insert("number".into(), json!(number));
    native.insert("repo".into(), json!(repo));
    let issue =
        crate::tracker::forge::issue(item, number, identifier(number), state, &labels, native)?;
    Some(Read {
        issue,
        problem: (!problems.is_empty()).then(|| problems.join("; ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping() -> Vec<(String, String)> {
        crate::tracker::gitea::DEFAULT_STATE_LABELS
            .iter()
            .map(|(s, l)| ((*s).to_owned(), (*l).to_owned()))
            .collect()
    }

    fn read(state: &str, labels: &[&str]) -> Read {
        let labels: Vec<Value> = labels.iter().map(|l| json!({"name": l})).collect();
        let item = json!({"number": 7, "title": "T", "state": state, "labels": labels});
        let terminal = |s: &str| s == "Done" || s == "Canceled";
        normalize_record(&item, &mapping(), "Done", &terminal, "acme/app").unwrap()
    }

    #[test]
    fn one_label_carries_the_state_and_problems_are_named() {
        let r = read("open", &["aiops/todo", "bug"]);
        assert_eq!((r.issue.state.as_str(), r.problem), ("Todo", None));
        assert_eq!(r.issue.identifier, "GT-7");
        // Two: the higher priority wins, and it is said.
        let r = read("open", &["aiops/todo", "AIOPS/Rework"]);
        assert_eq!(r.issue.state, "Rework");
        assert!(r.problem.unwrap().contains("several state labels"));
        // None, or one nobody configured.
        let r = read("open", &["bug"]);
        assert_eq!(
            (r.issue.state.as_str(), r.problem.as_deref()),
            ("", Some("no state label"))
        );
        let r = read("open", &["aiops/todo", "aiops/blocked"]);
        assert_eq!(r.issue.state, "Todo");
        assert!(
            r.problem
                .unwrap()
                .contains("unknown state label aiops/blocked")
        );
    }

    #[test]
    fn a_closed_issue_is_terminal_whatever_its_labels() {
        assert_eq!(read("closed", &["aiops/in-progress"]).issue.state, "Done");
        assert_eq!(read("closed", &["aiops/canceled"]).issue.state, "Canceled");
        assert_eq!(read("closed", &[]).issue.state, "Done");
        assert_eq!(read("closed", &[]).problem, None);
    }

    #[test]
    fn pull_requests_and_bad_identifiers_are_left_out() {
        let pr =
            json!({"number": 1, "title": "P", "state": "open", "pull_request": {"merged": false}});
        let terminal = |_: &str| false;
        assert!(normalize_record(&pr, &mapping(), "Done", &terminal, "acme/app").is_none());
        assert_eq!(number("GT-12"), Some(12));
        assert_eq!(number("12"), Some(12));
        assert_eq!(number("GT-0"), None);
        assert_eq!(number("GH-3"), None);
    }
}
