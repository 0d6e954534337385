//! Jira's issue records read into normalised issues (SPEC 11.3), Atlassian Document Format
//! (ADF) both ways, and JQL string quoting: pure functions over JSON and text, fuzzed by
//! `fuzz/fuzz_targets/tracker_records.rs`.

use serde_json::{Map, Value, json};
use symphony_core::issue::normalize;
use symphony_core::{BlockerRef, Issue, IssueId, Timestamp};

/// The issue fields every read asks for.
pub const FIELDS: [&str; 10] = [
    "summary",
    "description",
    "status",
    "priority",
    "labels",
    "assignee",
    "created",
    "updated",
    "issuelinks",
    "project",
];

/// Deepest ADF nesting read; deeper content is left out (real documents nest a few levels).
const MAX_ADF_DEPTH: usize = 64;

/// SPEC 11.3 normalisation of one Jira issue (an `IssueBean` asked for [`FIELDS`]): `id` is
/// Jira's issue id, `identifier` its key, `state` its status name. `site` is the base URL
/// (for the browse link); `done` says whether a status name is terminal. An issue whose
/// status is of category `new` waits for its blockers (inward `Blocks` links) to be done:
/// status category `done` or a terminal status. `None` without an id, a key or a summary.
pub fn normalize_record(item: &Value, site: &str, done: &dyn Fn(&str) -> bool) -> Option<Issue> {
    let id = item["id"].as_str()?;
    let key = item["key"].as_str()?;
    let fields = &item["fields"];
    let title = fields["summary"].as_str()?;
    let status = &fields["status"];
    let state = status["name"].as_str().unwrap_or_default().to_owned();
    let description = match &fields["description"] {
        Value::String(text) => Some(text.clone()),
        doc @ Value::Object(_) => Some(adf_text(doc)),
        _ => None,
    }
    .filter(|text| !text.trim().is_empty());
    let labels = (fields["labels"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .map(normalize)
        .collect();
    let blocked_by: Vec<BlockerRef> = (fields["issuelinks"].as_array().into_iter().flatten())
        .filter(|link| {
            link["type"]["name"]
                .as_str()
                .is_some_and(|name| name.eq_ignore_ascii_case("blocks"))
        })
        .filter_map(|link| {
            let blocker = link.get("inwardIssue")?;
            Some(BlockerRef {
                id: blocker["id"].as_str().map(str::to_owned),
                identifier: blocker["key"].as_str().map(str::to_owned),
                state: blocker["fields"]["status"]["name"]
                    .as_str()
                    .map(str::to_owned),
            })
        })
        .collect();
    let waits = category(status) == Some("new")
        && (fields["issuelinks"].as_array().into_iter().flatten()).any(|link| {
            let is_blocks = link["type"]["name"]
                .as_str()
                .is_some_and(|name| name.eq_ignore_ascii_case("blocks"));
            let Some(blocker) = link.get("inwardIssue").filter(|_| is_blocks) else {
                return false;
            };
            let status = &blocker["fields"]["status"];
            let finished =
                category(status) == Some("done") || status["name"].as_str().is_some_and(done);
            !finished
        });
    let mut native = Map::new();
    native.insert("id".into(), json!(id));
    native.insert("key".into(), json!(key));
    if let Some(project) = fields["project"]["key"].as_str() {
        native.insert("project".into(), json!(project));
    }
    Some(Issue {
        id: IssueId(id.to_owned()),
        identifier: key.to_owned(),
        title: title.to_owned(),
        description,
        priority: fields["priority"]["name"].as_str().and_then(priority),
        state,
        url: Some(format!("{}/browse/{key}", site.trim_end_matches('/'))),
        assignee_id: fields["assignee"]["accountId"].as_str().map(str::to_owned),
        labels,
        blocked_by,
        dispatchable: !waits,
        created_at: fields["created"].as_str().and_then(timestamp),
        updated_at: fields["updated"].as_str().and_then(timestamp),
        native_ref: Some(native),
        ..Issue::default()
    })
}

/// A status's category key (`new`, `indeterminate`, `done`).
fn category(status: &Value) -> Option<&str> {
    status["statusCategory"]["key"].as_str()
}

/// Jira's default priority scheme as SPEC 8.2 ranks: Highest 1 to Lowest 5; other names
/// (a site's own scheme) have no rank.
fn priority(name: &str) -> Option<i64> {
    let rank = match normalize(name).as_str() {
        "highest" | "blocker" => 1,
        "high" | "critical" => 2,
        "medium" | "major" => 3,
        "low" | "minor" => 4,
        "lowest" | "trivial" => 5,
        _ => return None,
    };
    Some(rank)
}

/// Jira's timestamps (`2026-01-02T03:04:05.678+0000`: an offset without its colon) as
/// instants; RFC 3339 text is read as it is.
pub fn timestamp(text: &str) -> Option<Timestamp> {
    if let Ok(t) = Timestamp::parse_rfc3339(text) {
        return Some(t);
    }
    let split = text.len().checked_sub(5)?;
    let (head, offset) = (text.get(..split)?, text.get(split..)?);
    let bytes = offset.as_bytes();
    let numeric = matches!(bytes[0], b'+' | b'-') && bytes[1..].iter().all(u8::is_ascii_digit);
    if !numeric {
        return None;
    }
    let fixed = format!("{head}{}:{}", &offset[..3], &offset[3..]);
    Timestamp::parse_rfc3339(&fixed).ok()
}

/// The plain text of an ADF document: text runs, a line per block, list items and table
/// cells on their own lines, mentions and emoji by their text, links to cards by their URL.
pub fn adf_text(doc: &Value) -> String {
    let mut out = String::new();
    adf_walk(doc, 0, &mut out);
    out.trim_end().to_owned()
}

fn adf_walk(node: &Value, depth: usize, out: &mut String) {
    if depth > MAX_ADF_DEPTH {
        return;
    }
    let attrs = &node["attrs"];
    match node["type"].as_str().unwrap_or_default() {
        "text" => out.push_str(node["text"].as_str().unwrap_or_default()),
        "hardBreak" => out.push('\n'),
        "mention" => out.push_str(attrs["text"].as_str().unwrap_or_default()),
        "emoji" => out.push_str(
            (attrs["text"].as_str())
                .or(attrs["shortName"].as_str())
                .unwrap_or_default(),
        ),
        "inlineCard" | "blockCard" => out.push_str(attrs["url"].as_str().unwrap_or_default()),
        "rule" => out.push_str("---\n"),
        kind => {
            let block = !matches!(kind, "doc" | "bulletList" | "orderedList" | "table");
            if kind == "listItem" {
                out.push_str("- ");
            }
            if kind == "codeBlock" {
                out.push_str("```\n");
            }
            for child in node["content"].as_array().into_iter().flatten() {
                adf_walk(child, depth + 1, out);
            }
            if kind == "codeBlock" {
                if !out.ends_with('\n') {
                    out.push('\n');
                }
                out.push_str("```");
            }
            if block && !out.ends_with('\n') {
                out.push('\n');
            }
        }
    }
}

/// `text` (Markdown as agents write it) as an ADF document: fenced code as code blocks,
/// paragraphs split at blank lines, line breaks inside a paragraph kept. ADF forbids empty
/// text nodes, so none is made.
pub fn adf_document(text: &str) -> Value {
    let mut blocks: Vec<Value> = Vec::new();
    let mut paragraph: Vec<String> = Vec::new();
    let mut code: Option<(String, Vec<&str>)> = None;
    let flush = |lines: &mut Vec<String>, blocks: &mut Vec<Value>| {
        if lines.is_empty() {
            return;
        }
        let mut content = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            if i > 0 {
                content.push(json!({"type": "hardBreak"}));
            }
            if !line.is_empty() {
                content.push(json!({"type": "text", "text": line}));
            }
        }
        blocks.push(json!({"type": "paragraph", "content": content}));
        lines.clear();
    };
    for line in text.lines() {
        match &mut code {
            Some((language, lines)) => {
                if line.trim_start().starts_with("```") {
                    let body = lines.join("\n");
                    let mut block = json!({"type": "codeBlock"});
                    if !language.is_empty() {
                        block["attrs"] = json!({"language": language});
                    }
                    if !body.is_empty() {
                        block["content"] = json!([{"type": "text", "text": body}]);
                    }
                    blocks.push(block);
                    code = None;
                } else {
                    lines.push(line);
                }
            }
            None => {
                if let Some(fence) = line.trim_start().strip_prefix("```") {
                    flush(&mut paragraph, &mut blocks);
                    code = Some((fence.trim().to_owned(), Vec::new()));
                } else if line.trim().is_empty() {
                    flush(&mut paragraph, &mut blocks);
                } else {
                    paragraph.push(line.to_owned());
                }
            }
        }
    }
    // An unclosed fence: what followed it is still text.
    if let Some((language, lines)) = code {
        paragraph.push(format!("```{language}"));
        paragraph.extend(lines.into_iter().map(str::to_owned));
    }
    flush(&mut paragraph, &mut blocks);
    json!({"type": "doc", "version": 1, "content": blocks})
}

/// `text` as a JQL string literal: double-quoted, with `"` and `\` escaped and line breaks
/// written as escapes, so no value can end the literal and add a clause.
pub fn jql_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: &str, category: &str, links: Value) -> Value {
        json!({"id": "10001", "key": "ENG-1", "fields": {
            "summary": "Fix it", "status": {"name": status, "statusCategory": {"key": category}},
            "priority": {"name": "High"}, "labels": ["Backend"], "issuelinks": links,
            "assignee": {"accountId": "abc"}, "created": "2026-01-02T03:04:05.678+0000",
            "updated": "2026-01-02T03:04:05.678-0130", "project": {"key": "ENG"},
            "description": {"type": "doc", "version": 1, "content": [
                {"type": "paragraph", "content": [{"type": "text", "text": "Line one"},
                    {"type": "hardBreak"}, {"type": "text", "text": "line two"}]},
                {"type": "bulletList", "content": [
                    {"type": "listItem", "content": [{"type": "paragraph", "content": [
                        {"type": "mention", "attrs": {"id": "x", "text": "@ann"}}]}]}]},
                {"type": "codeBlock", "content": [{"type": "text", "text": "cargo test"}]}
            ]}
        }})
    }

    fn blocks(key: &str, status: &str, category: &str) -> Value {
        json!({"id": "1", "type": {"name": "Blocks", "inward": "is blocked by", "outward": "blocks"},
            "inwardIssue": {"id": "2", "key": key, "fields": {"status": {"name": status,
                "statusCategory": {"key": category}}}}})
    }

    #[test]
    fn a_record_becomes_an_issue_with_its_text_priority_times_and_links() {
        let never = |_: &str| false;
        let issue = normalize_record(
            &record("To Do", "new", json!([])),
            "https://x.atlassian.net/",
            &never,
        )
        .unwrap();
        assert_eq!(issue.id.as_str(), "10001");
        assert_eq!(issue.identifier, "ENG-1");
        assert_eq!(issue.state, "To Do");
        assert_eq!(issue.priority, Some(2));
        assert_eq!(issue.labels, ["backend"]);
        assert_eq!(issue.assignee_id.as_deref(), Some("abc"));
        assert_eq!(
            issue.url.as_deref(),
            Some("https://x.atlassian.net/browse/ENG-1")
        );
        assert_eq!(
            issue.description.as_deref(),
            Some("Line one\nline two\n- @ann\n```\ncargo test\n```")
        );
        assert_eq!(
            issue.created_at.unwrap().to_rfc3339(),
            "2026-01-02T03:04:05.678Z"
        );
        assert_eq!(
            issue.updated_at.unwrap().to_rfc3339(),
            "2026-01-02T04:34:05.678Z"
        );
        assert!(issue.dispatchable);
    }

    #[test]
    fn a_new_issue_waits_for_blockers_that_are_not_done() {
        let terminal = |s: &str| s == "Shipped";
        let open = json!([blocks("ENG-2", "In Progress", "indeterminate")]);
        let issue =
            normalize_record(&record("To Do", "new", open.clone()), "s", &terminal).unwrap();
        assert!(!issue.dispatchable);
        assert_eq!(issue.blocked_by[0].identifier.as_deref(), Some("ENG-2"));
        assert_eq!(issue.blocked_by[0].state.as_deref(), Some("In Progress"));
        // Started work is not held back, as SPEC 8.2 holds back only Todo.
        assert!(
            normalize_record(
                &record("In Progress", "indeterminate", open),
                "s",
                &terminal
            )
            .unwrap()
            .dispatchable
        );
        // Done by category, or by a terminal status name.
        for finished in [
            blocks("ENG-2", "Closed", "done"),
            blocks("ENG-3", "Shipped", "indeterminate"),
        ] {
            let issue =
                normalize_record(&record("To Do", "new", json!([finished])), "s", &terminal)
                    .unwrap();
            assert!(issue.dispatchable);
        }
        // Outward links (this issue blocks another) and other link types do not block.
        let outward = json!([{"type": {"name": "Blocks"}, "outwardIssue": {"key": "ENG-9"}},
            {"type": {"name": "Relates"}, "inwardIssue": {"key": "ENG-8", "fields": {"status": {"name": "Open"}}}}]);
        let issue = normalize_record(&record("To Do", "new", outward), "s", &terminal).unwrap();
        assert!(issue.dispatchable);
        assert!(issue.blocked_by.is_empty());
    }

    #[test]
    fn adf_round_trips_paragraphs_breaks_and_code() {
        let doc = adf_document("First line\nsecond line\n\n```rust\nfn main() {}\n```\n\nAfter");
        assert_eq!(doc["type"], "doc");
        assert_eq!(doc["version"], 1);
        let content = doc["content"].as_array().unwrap();
        assert_eq!(content.len(), 3);
        assert_eq!(content[0]["content"][1]["type"], "hardBreak");
        assert_eq!(content[1]["type"], "codeBlock");
        assert_eq!(content[1]["attrs"]["language"], "rust");
        assert_eq!(
            adf_text(&doc),
            "First line\nsecond line\n```\nfn main() {}\n```\nAfter"
        );
        // No empty text node anywhere, even for blank input or an empty fence.
        for text in [
            "",
            "\n\n",
            "```\n```",
            "a\n\n\n\nb",
            "```open\nnever closed",
        ] {
            let doc = adf_document(text);
            assert!(!doc.to_string().contains(r#""text":"""#), "{text:?}: {doc}");
        }
        assert_eq!(
            adf_text(&adf_document("```open\nnever closed")),
            "```open\nnever closed"
        );
    }

    #[test]
    fn deep_adf_is_cut_not_overflowed() {
        let mut node = json!({"type": "text", "text": "deep"});
        for _ in 0..500 {
            node = json!({"type": "paragraph", "content": [node]});
        }
        assert_eq!(adf_text(&node), "");
    }

    proptest::proptest! {
        #[test]
        fn any_text_makes_valid_adf_that_keeps_its_lines(
            lines in proptest::collection::vec("[ a-z`é\t]{0,12}", 0..12),
        ) {
            let text = lines.join("\n");
            let doc = adf_document(&text);
            proptest::prop_assert!(!doc.to_string().contains(r#""text":"""#), "{}", doc);
            let back = adf_text(&doc);
            for line in text.lines() {
                if line.trim().is_empty() || line.trim_start().starts_with("```") {
                    continue;
                }
                let kept = line.trim_end();
                proptest::prop_assert!(back.contains(kept), "{:?} lost from {:?}", kept, back);
            }
        }
    }

    #[test]
    fn jql_strings_cannot_be_left() {
        assert_eq!(jql_string("To Do"), r#""To Do""#);
        assert_eq!(
            jql_string(r#"a" OR project = "X"#),
            r#""a\" OR project = \"X""#
        );
        assert_eq!(jql_string("back\\slash\nline"), r#""back\\slash\nline""#);
        assert_eq!(jql_string("bell\u{7}"), r#""bell""#);
    }

    #[test]
    fn jira_timestamps_are_read_with_or_without_the_offset_colon() {
        assert!(timestamp("2026-01-02T03:04:05.678+0000").is_some());
        assert!(timestamp("2026-01-02T03:04:05Z").is_some());
        assert!(timestamp("2026-01-02T03:04:05.678+00:00").is_some());
        assert!(timestamp("garbage").is_none());
        assert!(timestamp("€€").is_none());
        assert!(timestamp("").is_none());
    }
}
