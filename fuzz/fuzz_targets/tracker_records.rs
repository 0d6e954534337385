//! Hostile tracker content: any text as a pull request's title or body for GitHub's
//! closing-reference parser, as a JSON issue listing for the record normalisers (GitHub's, GitLab's
//! and Jira's, with ADF descriptions), and as a Jira timestamp, comment or JQL literal. Each must
//! return, never panic (a panic here once stopped polling for good).
#![no_main]

use libfuzzer_sys::fuzz_target;
use symphony::tracker::records;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for repo in ["acme/app", "\u{20ac}/\u{e9}"] {
        let _ = records::closing_references(&text, repo);
        let _ = records::gitlab_closing_references(&text, repo);
    }
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
        let items = match value {
            serde_json::Value::Array(items) => items,
            other => vec![other],
        };
        let states = ["Todo", "aiops:ready", "\u{212a}"].map(String::from);
        let labelings = [
            records::StateLabels::new("state:", &states),
            records::StateLabels::new("\u{212a}:", &states),
            records::StateLabels::new("", &states),
        ];
        let terminal = |state: &str| state == "Done";
        for item in &items {
            for labels in &labelings {
                let _ = records::normalize_record(item, labels, "acme/app");
            }
            let _ = records::jira_record(item, "https://acme.atlassian.net", &terminal);
            for labels in &labelings {
                let _ = records::gitlab_record(item, labels);
            }
            let _ = records::adf_text(item);
        }
        let _ = records::claimed_by_open_pulls(&items, "acme/app");
    }
    // The same text as a Jira timestamp, a comment to write in ADF and a JQL literal.
    let _ = records::jira_timestamp(&text);
    let _ = records::adf_text(&records::adf_document(&text));
    let _ = records::jql_string(&text);
    // The same text as a pull request in a listing, so the claim path sees it too.
    let pull = serde_json::json!([{"state": "open", "pull_request": {}, "title": &*text, "body": &*text}]);
    let items = pull.as_array().cloned().unwrap_or_default();
    let _ = records::claimed_by_open_pulls(&items, "acme/app");
});
