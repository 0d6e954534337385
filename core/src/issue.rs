//! The normalised issue (SPEC 4.1.1, 4.2, 11.3).
//!
//! Adapters in the shell build these from provider payloads; the core only reads the generic
//! fields. Provider-specific data rides along opaquely in [`Issue::native_ref`].

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::time::{Timestamp, rfc3339};

/// The tracker's stable dispatch identity for an issue: opaque to the core (SPEC 4.2).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IssueId(pub String);

impl IssueId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IssueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for IssueId {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// A best-effort reference to an issue that blocks this one (SPEC 4.1.1 `blocked_by`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockerRef {
    /// The blocker's dispatch id, when known.
    #[serde(default)]
    pub id: Option<String>,
    /// The blocker's human-readable key, when known.
    #[serde(default)]
    pub identifier: Option<String>,
    /// The blocker's tracker state, when known.
    #[serde(default)]
    pub state: Option<String>,
}

/// A normalised, schedulable work item (SPEC 4.1.1). Every field is always present; nullable
/// fields use `None` and collections are empty when the provider had nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issue {
    /// Stable dispatch identity; map key everywhere in the core.
    pub id: IssueId,
    /// Human-readable key such as `ABC-123`; names workspaces and API routes.
    pub identifier: String,
    /// Title.
    pub title: String,
    /// Body text.
    #[serde(default)]
    pub description: Option<String>,
    /// Lower is more urgent; `1..=4` sort first, everything else after them (SPEC 8.2).
    #[serde(default)]
    pub priority: Option<i64>,
    /// Provider-native state name, spelled as the provider spells it.
    pub state: String,
    /// Branch name the tracker suggests, if any.
    #[serde(default)]
    pub branch_name: Option<String>,
    /// Link to the issue in the tracker.
    #[serde(default)]
    pub url: Option<String>,
    /// Assignee identity, if any.
    #[serde(default)]
    pub assignee_id: Option<String>,
    /// Lowercase labels.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Issues that block this one.
    #[serde(default)]
    pub blocked_by: Vec<BlockerRef>,
    /// The adapter's verdict on provider-specific routing rules (assignment, blockers, board).
    pub dispatchable: bool,
    /// Creation instant.
    #[serde(default, with = "rfc3339::option")]
    pub created_at: Option<Timestamp>,
    /// Last-update instant.
    #[serde(default, with = "rfc3339::option")]
    pub updated_at: Option<Timestamp>,
    /// Non-secret provider identifiers for provider-native tools; never interpreted here.
    #[serde(default)]
    pub native_ref: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Issue {
    /// SPEC 8.2 first bullet: `id`, `identifier`, `title` and `state` are non-empty.
    pub fn has_required_fields(&self) -> bool {
        !(self.id.0.is_empty()
            || self.identifier.is_empty()
            || self.title.is_empty()
            || trim(&self.state).is_empty())
    }
}

/// Normalises a state name or label for comparison: trim, then lowercase (SPEC 4.2).
pub fn normalize(name: &str) -> String {
    name.trim().to_lowercase()
}

/// `str::trim`, skipping the scan when both ends are plainly not whitespace: the dispatch pass
/// trims every candidate's state several times.
fn trim(s: &str) -> &str {
    match (s.as_bytes().first(), s.as_bytes().last()) {
        (Some(a), Some(b)) if a.is_ascii_graphic() && b.is_ascii_graphic() => s,
        _ => s.trim(),
    }
}

/// Whether `raw` equals the already-normalised `normalized` after normalisation, without
/// allocating: the dispatch pass runs this for every candidate.
pub fn matches_normalized(raw: &str, normalized: &str) -> bool {
    matches_trimmed(trim(raw), normalized)
}

fn matches_trimmed(raw: &str, normalized: &str) -> bool {
    if raw.is_ascii() {
        // Fast path for the usual case. `normalized` is lowercase, so comparing it ignoring
        // ASCII case is comparing it to the lowercased `raw`; a non-ASCII byte in it can
        // never equal a byte of an ASCII `raw`.
        return normalized.eq_ignore_ascii_case(raw);
    }
    raw.chars()
        .flat_map(char::to_lowercase)
        .eq(normalized.chars())
}

/// A set of normalised state names, compared case-insensitively (SPEC 5.3.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateSet(Vec<String>);

impl StateSet {
    /// Normalises each name; blank names are dropped because they can match nothing.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a String>) -> Self {
        let mut set: Vec<String> = names
            .into_iter()
            .map(|n| normalize(n))
            .filter(|n| !n.is_empty())
            .collect();
        set.sort();
        set.dedup();
        Self(set)
    }

    /// Whether `state` (raw provider spelling) is in the set.
    pub fn contains(&self, state: &str) -> bool {
        let state = trim(state);
        self.0.iter().any(|s| matches_trimmed(state, s))
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The blocker rule older Symphony versions applied in the scheduler: an issue in a `Todo`
/// state may start only when every blocker is known and terminal.
///
/// SPEC 11.2 now puts blocker semantics behind the adapter's `dispatchable` flag and forbids
/// the orchestrator from branching on them, so the scheduler never calls this. Adapters that
/// want the rule (local, Linear) fold it into `dispatchable` with this one shared definition.
pub fn todo_blockers_allow_dispatch(issue: &Issue, terminal_states: &StateSet) -> bool {
    if !matches_normalized(&issue.state, "todo") {
        return true;
    }
    issue.blocked_by.iter().all(|blocker| {
        blocker
            .state
            .as_deref()
            .is_some_and(|state| terminal_states.contains(state))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn state_matching_trims_and_ignores_case() {
        let set = StateSet::new(&names(&["  In Progress ", "TODO", ""]));
        assert!(set.contains("in progress"));
        assert!(set.contains(" todo\t"));
        assert!(set.contains("ToDo"));
        assert!(!set.contains("Done"));
        assert!(!set.contains(""));
        assert!(matches_normalized("ÜBER", "über"));
        assert!(!matches_normalized("UBER", "über"));
        assert!(!matches_normalized("todo", "todos"));
        assert!(matches_normalized(" İ ", "i\u{307}"));
    }

    #[test]
    fn todo_blocker_rule_needs_every_blocker_terminal() {
        let terminal = StateSet::new(&names(&["Done", "Cancelled"]));
        let blocker = |state: Option<&str>| BlockerRef {
            state: state.map(str::to_owned),
            ..BlockerRef::default()
        };
        let mut issue = Issue {
            state: "Todo".into(),
            blocked_by: vec![blocker(Some("done")), blocker(Some("In Progress"))],
            ..Issue::default()
        };
        assert!(!todo_blockers_allow_dispatch(&issue, &terminal));
        issue.blocked_by.pop();
        assert!(todo_blockers_allow_dispatch(&issue, &terminal));
        issue.blocked_by.push(blocker(None));
        assert!(!todo_blockers_allow_dispatch(&issue, &terminal));
        issue.state = "In Progress".into();
        assert!(todo_blockers_allow_dispatch(&issue, &terminal));
    }

    #[test]
    fn issue_json_uses_rfc3339_and_tolerates_missing_optionals() {
        let issue: Issue = serde_json::from_str(
            r#"{"id":"1","identifier":"MT-1","title":"t","state":"Todo","dispatchable":true,
                "created_at":"2026-01-02T03:04:05Z"}"#,
        )
        .unwrap();
        assert_eq!(issue.created_at, Some(Timestamp(1_767_323_045_000)));
        assert!(issue.labels.is_empty() && issue.priority.is_none());
        let text = serde_json::to_string(&issue).unwrap();
        assert!(
            text.contains(r#""created_at":"2026-01-02T03:04:05Z""#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Issue>(&text).unwrap(), issue);
    }
}
