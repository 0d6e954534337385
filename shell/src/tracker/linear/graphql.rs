//! What a `linear_graphql` call would run, read before anything is sent: the document must
//! hold exactly one operation, and a mutation's top-level fields are checked against the
//! workflow's [`MutationPolicy`] (aiops-platform's `codex.linear_graphql` narrowing).
//!
//! Parsing is graphql-parser's (the GraphQL grammar, not a brace count). It recurses and
//! stops itself 50 brackets deep; a nesting check before it refuses deeper documents with a
//! message that says why, and without depending on that limit.

use std::collections::BTreeSet;

use graphql_parser::query::{Definition, OperationDefinition, Selection, parse_query};
use serde::Serialize;

/// Deeper nesting of braces, brackets and parentheses is refused unparsed (Linear's own
/// queries nest about ten deep).
pub(crate) const MAX_DEPTH: usize = 40;

/// Which mutations the `linear_graphql` tool may send.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MutationPolicy {
    /// Any (SPEC 10.5: the tool runs what the agent sends). The default.
    #[default]
    Any,
    /// None: queries only.
    None,
    /// Only mutations whose top-level fields are all in the list (`issueUpdate`, ...).
    Only(Vec<String>),
}

/// The one operation of a document.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Operation {
    pub(crate) kind: Kind,
    /// Field names selected at the top, through fragments; aliases resolved to the field.
    pub(crate) fields: BTreeSet<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Query,
    Mutation,
    Subscription,
}

/// Whether `policy` lets `document` be sent; the reason when not, for the agent.
pub fn admit(document: &str, policy: &MutationPolicy) -> Result<(), String> {
    let operation = inspect(document)?;
    match (operation.kind, policy) {
        (Kind::Query, _) | (Kind::Mutation, MutationPolicy::Any) => Ok(()),
        (Kind::Subscription, _) => Err("subscriptions are not supported; send a query".into()),
        (Kind::Mutation, MutationPolicy::None) => Err(
            "mutations are turned off for this workflow (allow_mutations: false); queries \
             still work"
                .into(),
        ),
        (Kind::Mutation, MutationPolicy::Only(allowed)) => {
            let refused: Vec<&str> = (operation.fields.iter())
                .map(String::as_str)
                .filter(|field| *field != "__typename" && !allowed.iter().any(|a| a == field))
                .collect();
            if refused.is_empty() {
                return Ok(());
            }
            Err(format!(
                "mutation {} is not allowed for this workflow (allowed_mutations: {})",
                refused.join(", "),
                allowed.join(", ")
            ))
        }
    }
}

/// The document's one operation, or why it is not a document of one operation.
pub(crate) fn inspect(document: &str) -> Result<Operation, String> {
    let depth = nesting(document);
    if depth > MAX_DEPTH {
        return Err(format!(
            "the document nests {depth} levels deep, more than the {MAX_DEPTH} allowed"
        ));
    }
    let parsed = parse_query::<&str>(document)
        .map_err(|e| format!("not a GraphQL document: {}", first_line(&e.to_string())))?;
    let mut operations = Vec::new();
    let mut fragments = std::collections::BTreeMap::new();
    for definition in &parsed.definitions {
        match definition {
            Definition::Operation(op) => operations.push(op),
            Definition::Fragment(fragment) => {
                fragments.insert(fragment.name, &fragment.selection_set);
            }
        }
    }
    let [operation] = operations.as_slice() else {
        return Err(format!(
            "send exactly one GraphQL operation per call ({} found)",
            operations.len()
        ));
    };
    let (kind, selection) = match operation {
        OperationDefinition::SelectionSet(set) => (Kind::Query, set),
        OperationDefinition::Query(q) => (Kind::Query, &q.selection_set),
        OperationDefinition::Mutation(m) => (Kind::Mutation, &m.selection_set),
        OperationDefinition::Subscription(s) => (Kind::Subscription, &s.selection_set),
    };
    // The top-level fields, through inline fragments and fragment spreads; each fragment is
    // opened once (a cycle or a long chain cannot loop or recurse).
    let mut fields = BTreeSet::new();
    let mut opened = BTreeSet::new();
    let mut pending = vec![selection];
    while let Some(set) = pending.pop() {
        for item in &set.items {
            match item {
                Selection::Field(field) => {
                    fields.insert(field.name.to_owned());
                }
                Selection::InlineFragment(inline) => pending.push(&inline.selection_set),
                Selection::FragmentSpread(spread) => {
                    let name = spread.fragment_name;
                    let Some(set) = fragments.get(name) else {
                        return Err(format!("fragment {name} is used but not defined"));
                    };
                    if opened.insert(name) {
                        pending.push(set);
                    }
                }
            }
        }
    }
    Ok(Operation { kind, fields })
}

/// The deepest nesting of `{`, `[` and `(` outside strings and comments.
fn nesting(document: &str) -> usize {
    let bytes = document.as_bytes();
    let (mut depth, mut deepest, mut i) = (0usize, 0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    deepest
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(document: &str) -> Vec<String> {
        inspect(document).unwrap().fields.into_iter().collect()
    }

    #[test]
    fn the_operation_kind_and_its_top_fields_are_read_through_aliases_and_fragments() {
        let op = inspect("query Q { viewer { id } issues { nodes { id } } }").unwrap();
        assert_eq!(op.kind, Kind::Query);
        assert_eq!(fields("{ viewer { id } }"), ["viewer"]);
        let doc = "mutation M($id: String!) { done: issueUpdate(id: $id, input: {}) { success } \
                   ...More ... on Mutation { commentCreate(input: {}) { success } } }
                   fragment More on Mutation { issueDelete(id: \"x\") { success } ...More }";
        let op = inspect(doc).unwrap();
        assert_eq!(op.kind, Kind::Mutation);
        assert_eq!(
            op.fields.into_iter().collect::<Vec<_>>(),
            ["commentCreate", "issueDelete", "issueUpdate"],
            "an alias does not hide the field; a self-spreading fragment does not loop"
        );
    }

    #[test]
    fn documents_that_are_not_one_operation_are_refused() {
        for (document, says) in [
            ("{ a } { b }", "exactly one"),
            ("query A { a } mutation B { b }", "exactly one"),
            ("fragment F on Query { a }", "exactly one"),
            ("{ a ", "not a GraphQL document"),
            ("", "not a GraphQL document"),
            ("{ ...Missing }", "not defined"),
        ] {
            let e = inspect(document).unwrap_err();
            assert!(e.contains(says), "{document:?}: {e}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing_and_strings_do_not_count() {
        let deep = format!("{}{}", "{a".repeat(10_000), "}".repeat(10_000));
        let e = inspect(&deep).unwrap_err();
        assert!(e.contains("10000 levels deep"), "{e}");
        // The deepest allowed parses on a test thread's stack (2 MiB, as tokio's workers).
        let limit = format!("{}{}", "{a".repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
        assert_eq!(fields(&limit), ["a"]);
        let list = format!("{{ a(x: {}1{}) }}", "[".repeat(5_000), "]".repeat(5_000));
        assert!(inspect(&list).unwrap_err().contains("levels deep"));
        // Braces inside strings, block strings and comments are text.
        let braces = "{".repeat(100);
        let doc = format!(
            "# {braces}\n{{ a(x: \"{braces}\", y: \"\"\"{braces} \\\"\"\" {braces}\"\"\") }}"
        );
        assert_eq!(nesting(&doc), 2);
        assert_eq!(fields(&doc), ["a"]);
    }

    #[test]
    fn the_policy_gates_mutations_only() {
        let query = "query { viewer { id } }";
        let mutation = "mutation { issueUpdate(id: \"1\", input: {}) { success } }";
        let two = "mutation { issueUpdate(id: \"1\", input: {}) { success } \
                   issueDelete(id: \"1\") { success } }";
        let only = MutationPolicy::Only(vec!["issueUpdate".into(), "commentCreate".into()]);
        for policy in [&MutationPolicy::Any, &MutationPolicy::None, &only] {
            assert_eq!(admit(query, policy), Ok(()), "{policy:?}");
        }
        assert_eq!(admit(mutation, &MutationPolicy::Any), Ok(()));
        assert!(
            admit(mutation, &MutationPolicy::None)
                .unwrap_err()
                .contains("turned off")
        );
        assert_eq!(admit(mutation, &only), Ok(()));
        let e = admit(two, &only).unwrap_err();
        assert!(e.contains("mutation issueDelete is not allowed"), "{e}");
        let sub = admit("subscription { x }", &MutationPolicy::Any).unwrap_err();
        assert!(sub.contains("subscriptions"), "{sub}");
    }
}
