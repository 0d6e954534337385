//! Splitting WORKFLOW.md into YAML front matter and prompt body (SPEC 5.2), and finding where a
//! key sits in the front matter so errors can point at it.

use std::collections::BTreeMap;

use super::error::Position;

/// A workflow file cut in two. Line numbers are 1-based lines of the whole file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Parts<'a> {
    /// The front matter text between the `---` lines, when there is front matter.
    pub(crate) yaml: Option<&'a str>,
    /// File line of the first front matter line.
    pub(crate) yaml_line: usize,
    /// The prompt body, trimmed (SPEC 5.2).
    pub(crate) body: &'a str,
    /// Where the trimmed body starts in the file.
    pub(crate) body_at: Position,
}

/// The front matter was opened and never closed: the line it was opened on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Unclosed;

fn is_fence(line: &str) -> bool {
    line.trim_end() == "---"
}

/// Splits `text`. A file whose first line is `---` has front matter up to the next `---`
/// line; any other file is all body.
pub(crate) fn split(text: &str) -> Result<Parts<'_>, Unclosed> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.split_inclusive('\n');
    let Some(first) = lines.next().filter(|l| is_fence(l)) else {
        return Ok(body_only(text, 0, 1));
    };
    let yaml_start = first.len();
    let mut offset = yaml_start;
    for (line_no, line) in (2..).zip(lines) {
        if is_fence(line) {
            let yaml = &text[yaml_start..offset];
            let body_offset = offset + line.len();
            let mut parts = body_only(text, body_offset, line_no + 1);
            parts.yaml = Some(yaml);
            parts.yaml_line = 2;
            return Ok(parts);
        }
        offset += line.len();
    }
    Err(Unclosed)
}

/// The part of `text` from `offset` (which is at the start of file line `line`) as a trimmed
/// body, with the file position where the trimmed body starts.
fn body_only(text: &str, offset: usize, line: usize) -> Parts<'_> {
    let rest = &text[offset..];
    let trimmed_start = rest.trim_start();
    let skipped = &rest[..rest.len() - trimmed_start.len()];
    let newlines = skipped.matches('\n').count();
    let col = skipped.rsplit('\n').next().map_or(0, |s| s.chars().count()) + 1;
    Parts {
        yaml: None,
        yaml_line: 0,
        body: trimmed_start.trim_end(),
        body_at: Position {
            line: line + newlines,
            col,
        },
    }
}

/// Best-effort positions of every block-style key in `yaml`, by dotted path
/// (`agent.max_turns`), found in one pass (the first occurrence of a path wins). Flow-style
/// maps, list items and keys in quotes with escapes are not followed.
pub(crate) fn key_positions(yaml: &str, first_line: usize) -> BTreeMap<String, Position> {
    let mut positions = BTreeMap::new();
    // The open maps above the current line: (indentation, dotted path).
    let mut stack: Vec<(usize, String)> = Vec::new();
    for (index, line) in yaml.lines().enumerate() {
        let content = line.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let indent = line.len() - content.len();
        while stack.last().is_some_and(|(open, _)| *open >= indent) {
            stack.pop();
        }
        if content.starts_with("- ") || content == "-" {
            continue;
        }
        let Some((key, _)) = content.split_once(':') else {
            continue;
        };
        let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
        if key.is_empty() || key.starts_with(['{', '[']) {
            continue;
        }
        let path = match stack.last() {
            Some((_, parent)) => format!("{parent}.{key}"),
            None => key.to_owned(),
        };
        positions.entry(path.clone()).or_insert(Position {
            line: first_line + index,
            col: indent + 1,
        });
        stack.push((indent, path));
    }
    positions
}

/// Deepest flow nesting (`[` and `{`) a YAML document may have. YAML's parser spends time
/// faster than linear in the nesting before its own recursion limit trips (60,000 `[` took
/// 7.5 s), so the depth is checked first, in one linear pass.
pub(crate) const MAX_FLOW_DEPTH: usize = 64;

/// `Err` with the line when `yaml` nests flow collections deeper than `max`. Quoted scalars
/// and comments are skipped; brackets inside plain scalars count, which only errs on the side
/// of refusing absurd input.
pub(crate) fn check_flow_depth(yaml: &str, max: usize) -> Result<(), String> {
    let mut depth = 0usize;
    let mut line = 1;
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut previous = '\n';
    for c in yaml.chars() {
        if c == '\n' {
            line += 1;
            comment = false;
        }
        if comment {
            previous = c;
            continue;
        }
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') if !previous.is_alphanumeric() => quote = Some(c),
            (None, '#') if previous.is_whitespace() => comment = true,
            (None, '[' | '{') => {
                depth += 1;
                if depth > max {
                    return Err(format!(
                        "flow collections (`[`, `{{`) nest deeper than {max} at line {line}"
                    ));
                }
            }
            (None, ']' | '}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        previous = c;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter_and_body_are_split_with_positions() {
        let text = "---\na: 1\n---\n\n  Hello {{ issue.identifier }}\n\n";
        let parts = split(text).unwrap();
        assert_eq!(parts.yaml, Some("a: 1\n"));
        assert_eq!(parts.yaml_line, 2);
        assert_eq!(parts.body, "Hello {{ issue.identifier }}");
        assert_eq!(parts.body_at, Position { line: 5, col: 3 });
    }

    #[test]
    fn no_front_matter_means_all_body() {
        let parts = split("Just a prompt\n").unwrap();
        assert_eq!(parts.yaml, None);
        assert_eq!(parts.body, "Just a prompt");
        assert_eq!(parts.body_at, Position { line: 1, col: 1 });
        // `---` later in the file is Markdown, not front matter.
        assert_eq!(split("text\n---\nmore").unwrap().yaml, None);
    }

    #[test]
    fn crlf_bom_and_empty_front_matter() {
        let parts = split("\u{feff}---\r\n---\r\nBody\r\n").unwrap();
        assert_eq!(parts.yaml, Some(""));
        assert_eq!(parts.body, "Body");
        assert_eq!(parts.body_at.line, 3);
    }

    #[test]
    fn unclosed_front_matter_is_an_error() {
        assert_eq!(split("---\na: 1\nbody"), Err(Unclosed));
    }

    #[test]
    fn keys_are_located_by_indentation() {
        let yaml = "tracker:\n  kind: linear\nagent:\n  # limits\n  max_turns: 0\n  nested:\n    max_turns: 1\ncodex:\n  max_turns: 2\n";
        let at = key_positions(yaml, 2);
        assert_eq!(
            at.get("agent.max_turns"),
            Some(&Position { line: 6, col: 3 })
        );
        assert_eq!(
            at.get("agent.nested.max_turns"),
            Some(&Position { line: 8, col: 5 })
        );
        assert_eq!(
            at.get("codex.max_turns"),
            Some(&Position { line: 10, col: 3 })
        );
        assert_eq!(at.get("agent"), Some(&Position { line: 4, col: 1 }));
        assert_eq!(at.get("tracker.max_turns"), None);
    }

    #[test]
    fn flow_depth_is_bounded_outside_quotes_and_comments() {
        assert!(check_flow_depth("a: [[[1]]]\nb: {c: [d]}\n", 3).is_ok());
        let err = check_flow_depth("a: 1\nb: [[[[1]]]]\n", 3).unwrap_err();
        assert!(err.contains("deeper than 3 at line 2"), "{err}");
        assert!(check_flow_depth("a: '[[[[['\nb: \"{{{{{\"\n# [[[[[\n", 1).is_ok());
        assert!(check_flow_depth(&"[".repeat(100_000), MAX_FLOW_DEPTH).is_err());
    }
}
