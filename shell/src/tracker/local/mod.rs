//! `tracker.kind: local`: one Markdown file per issue in a directory, the embedded default.
//!
//! `<dir>/<IDENTIFIER>.md`, with YAML front matter:
//!
//! ```markdown
//! ---
//! title: Fix the login redirect
//! state: Todo            # required
//! priority: 2            # optional, 1 (urgent) .. 4 (low)
//! labels: [bug, web]     # optional
//! blocked_by: [DEMO-1]   # optional, identifiers of other files
//! created_at: 2026-01-05T10:00:00Z   # optional; file mtime otherwise
//! ---
//! The description.
//! ```
//!
//! The identifier is the file name without `.md`; the id is the identifier. `updated_at` is the
//! file's modification time. `dispatchable` applies the Todo-blocker rule: an issue in `Todo`
//! waits until every blocker is in a terminal state. A malformed file is skipped with a warning
//! when listing by state, and fails a refresh by id (SPEC 11.1). Writes (state changes,
//! comments) replace the file atomically; a state change rewrites only the `state:` line, so
//! the rest of the file keeps its formatting.
//!
//! Identifiers follow one rule for reading and writing (`identifier_rule`): letters, digits,
//! `-`, `_` and `.`, not starting with `.`, at most 128 characters. A file whose name breaks it
//! is skipped with a warning, like a malformed one; each such warning is logged once per change
//! of the file's problem, not on every poll. Files are read only when they are regular files
//! of at most `MAX_ISSUE_FILE_BYTES`, with front matter of at most
//! `MAX_FRONT_MATTER_BYTES`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use serde_yaml::{Mapping, Value};
use symphony_core::issue::{StateSet, matches_normalized, normalize, todo_blockers_allow_dispatch};

use symphony_core::{BlockerRef, Issue, IssueId, Timestamp, TrackerError, TrackerErrorCategory};

use super::{BoxFuture, Probe, Tracker, error};

mod config;

pub(crate) use config::KIND;
pub use config::LocalSettings;

/// Largest issue file read.
pub(crate) const MAX_ISSUE_FILE_BYTES: u64 = 1024 * 1024;

/// Largest front matter parsed (YAML parsing of deeply nested input grows faster than its size).
pub(crate) const MAX_FRONT_MATTER_BYTES: usize = 64 * 1024;

/// Longest identifier.
const MAX_IDENTIFIER_CHARS: usize = 128;

/// Issues as Markdown files in a directory.
#[derive(Clone, Debug)]
pub struct LocalTracker {
    dir: PathBuf,
    terminal: StateSet,
    /// The problem last reported per skipped file, so each is logged once per change.
    reported: Arc<Mutex<BTreeMap<String, String>>>,
    /// Each file's last parse, by identifier, with the stamp it was read at: a poll parses
    /// only the files that changed since (a stat each for the rest).
    parsed: Arc<Mutex<ParseCache>>,
}

/// Each file's last parse by identifier, with the stamp the file had when it was read.
type ParseCache = BTreeMap<String, (Stamp, Result<Parsed, String>)>;

/// What changes when a file does: its device and inode (a rename over it, as editors and
/// [`LocalTracker::rewrite`] do), size, and modification and status-change times to the
/// nanosecond (an in-place write).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(path: &Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(Self {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

/// The one rule for local identifiers, for reading and for writing: `Err` says why `identifier`
/// breaks it.
pub(crate) fn identifier_rule(identifier: &str) -> Result<(), String> {
    if identifier.is_empty() {
        return Err("the identifier is empty".into());
    }
    if identifier.starts_with('.') {
        return Err("an identifier may not start with `.`".into());
    }
    if identifier.chars().count() > MAX_IDENTIFIER_CHARS {
        return Err(format!(
            "an identifier has at most {MAX_IDENTIFIER_CHARS} characters"
        ));
    }
    if !identifier
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(
            "an identifier has only ASCII letters, digits, `-`, `_` and `.` (rename the file)"
                .into(),
        );
    }
    Ok(())
}

/// Every issue file of the directory: identifier and the parsed file or why it is malformed.
type Files = Vec<(String, Result<Parsed, String>)>;

/// One parsed file, before blockers are resolved.
#[derive(Clone, Debug)]
struct Parsed {
    issue: Issue,
    blocker_ids: Vec<String>,
}

impl LocalTracker {
    /// A tracker over `dir`; `terminal_states` decide the Todo-blocker rule.
    pub fn new(dir: PathBuf, terminal_states: Vec<String>) -> Self {
        Self {
            dir,
            terminal: StateSet::new(&terminal_states),
            reported: Arc::new(Mutex::new(BTreeMap::new())),
            parsed: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file_for(&self, identifier: &str) -> Result<PathBuf, TrackerError> {
        identifier_rule(identifier).map_err(|why| {
            error(
                TrackerErrorCategory::TrackerRequest,
                format!("{identifier:?} is not a local issue identifier: {why}"),
            )
        })?;
        Ok(self.dir.join(format!("{identifier}.md")))
    }

    /// Every issue file, parsed; malformed ones are returned as errors per file.
    fn read_all(&self) -> Result<Files, TrackerError> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| {
            error(
                TrackerErrorCategory::TrackerRequest,
                format!("cannot list {}: {e}", self.dir.display()),
            )
        })?;
        let mut files = Vec::new();
        let mut cache = self.parsed.lock().unwrap_or_else(|e| e.into_inner());
        let mut kept = BTreeMap::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(identifier) = path
                .extension()
                .filter(|ext| *ext == "md")
                .and(path.file_stem())
                .and_then(|s| s.to_str())
            else {
                continue;
            };
            if identifier.starts_with('.') || !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let stamp = Stamp::of(&path);
            let parsed = match (cache.remove(identifier), stamp) {
                (Some((before, parsed)), Some(now)) if before == now => parsed,
                _ => match identifier_rule(identifier) {
                    Ok(()) => parse_file(&path, identifier),
                    Err(why) => Err(why),
                },
            };
            if let Some(stamp) = stamp {
                kept.insert(identifier.to_owned(), (stamp, parsed.clone()));
            }
            files.push((identifier.to_owned(), parsed));
        }
        // Files gone since the last listing leave the cache with it.
        *cache = kept;
        drop(cache);
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(files)
    }

    /// Resolves blockers against the other files and applies the Todo-blocker rule.
    fn finish(&self, parsed: Vec<Parsed>, all: &BTreeMap<String, String>) -> Vec<Issue> {
        parsed
            .into_iter()
            .map(|mut p| {
                p.issue.blocked_by = p
                    .blocker_ids
                    .iter()
                    .map(|id| BlockerRef {
                        id: Some(id.clone()),
                        identifier: Some(id.clone()),
                        state: all.get(id).cloned(),
                    })
                    .collect();
                p.issue.dispatchable = todo_blockers_allow_dispatch(&p.issue, &self.terminal);
                p.issue
            })
            .collect()
    }

    fn states_of(files: &Files) -> BTreeMap<String, String> {
        files
            .iter()
            .filter_map(|(id, p)| p.as_ref().ok().map(|p| (id.clone(), p.issue.state.clone())))
            .collect()
    }

    fn by_states(&self, states: &[String]) -> Result<Vec<Issue>, TrackerError> {
        if states.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: Vec<String> = states.iter().map(|s| normalize(s)).collect();
        let files = self.read_all()?;
        let all = Self::states_of(&files);
        let mut chosen = Vec::new();
        let mut problems = BTreeMap::new();
        for (identifier, parsed) in files {
            match parsed {
                Ok(p) if wanted.iter().any(|w| matches_normalized(&p.issue.state, w)) => {
                    chosen.push(p);
                }
                Ok(_) => {}
                Err(reason) => {
                    problems.insert(identifier, reason);
                }
            }
        }
        self.report(problems);
        Ok(self.finish(chosen, &all))
    }

    /// Warns about each skipped file whose problem is new or changed since the last listing.
    fn report(&self, problems: BTreeMap<String, String>) {
        let Ok(mut reported) = self.reported.lock() else {
            return;
        };
        for (identifier, reason) in &problems {
            if reported.get(identifier) != Some(reason) {
                tracing::warn!(
                    issue_identifier = identifier.as_str(),
                    "skipping issue file {}: {reason}",
                    self.dir.join(format!("{identifier}.md")).display()
                );
            }
        }
        *reported = problems;
    }

    fn by_ids(&self, ids: &[IssueId]) -> Result<Vec<Issue>, TrackerError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: std::collections::BTreeSet<&str> = ids.iter().map(IssueId::as_str).collect();
        let files = self.read_all()?;
        let all = Self::states_of(&files);
        let mut chosen = Vec::new();
        for (identifier, parsed) in files {
            if !wanted.contains(identifier.as_str()) {
                continue;
            }
            match parsed {
                Ok(p) => chosen.push(p),
                // A refresh must not silently omit a requested record (SPEC 11.1).
                Err(reason) => {
                    return Err(error(
                        TrackerErrorCategory::TrackerResponse,
                        format!("issue file {identifier}.md is malformed: {reason}"),
                    ));
                }
            }
        }
        Ok(self.finish(chosen, &all))
    }

    /// Applies `change` to an issue file, atomically.
    fn rewrite(&self, identifier: &str, change: Change) -> Result<(), TrackerError> {
        let path = self.file_for(identifier)?;
        let text = read_issue_file(&path).map_err(|e| {
            error(
                TrackerErrorCategory::TrackerRequest,
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let (mut front, mut body) = split(&text).map_err(|e| {
            error(
                TrackerErrorCategory::TrackerResponse,
                format!("{}: {e}", path.display()),
            )
        })?;
        let new_text = match change {
            Change::State(state) => match replace_state_line(&text, &state) {
                Some(text) => text,
                None => {
                    front.insert("state".into(), Value::String(state));
                    reserialize(front, &body)?
                }
            },
            Change::Comment(comment) => {
                append_comment(&mut body, &comment);
                reserialize(front, &body)?
            }
        };
        let tmp = path.with_extension(format!("md.tmp.{}", std::process::id()));
        std::fs::write(&tmp, new_text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                error(
                    TrackerErrorCategory::TrackerRequest,
                    format!("cannot write {}: {e}", path.display()),
                )
            })
    }
}

/// A write to an issue file.
enum Change {
    /// Set `state:`.
    State(String),
    /// Append a comment under `## Comments`.
    Comment(String),
}

fn reserialize(front: Mapping, body: &str) -> Result<String, TrackerError> {
    let yaml = serde_yaml::to_string(&Value::Mapping(front))
        .map_err(|e| error(TrackerErrorCategory::TrackerResponse, e.to_string()))?;
    Ok(format!("---\n{yaml}---\n{body}"))
}

fn append_comment(body: &mut String, comment: &str) {
    if !body.contains("\n## Comments\n") && !body.starts_with("## Comments\n") {
        if !body.ends_with('\n') && !body.is_empty() {
            body.push('\n');
        }
        body.push_str("\n## Comments\n");
    }
    body.push_str(&format!("\n{}\n", comment.trim()));
}

/// `text` with the value of its one top-level `state:` line in the front matter replaced by
/// `state`, everything else byte for byte; `None` when there is not exactly one such line on
/// a line of its own (then the caller rewrites the whole front matter).
fn replace_state_line(text: &str, state: &str) -> Option<String> {
    let front_end = text.get(4..)?.find("\n---")? + 4;
    let front = &text[..front_end];
    let mut found = None;
    let mut offset = 0;
    for line in front.split_inclusive('\n') {
        if line.starts_with("state:") {
            if found.is_some() {
                return None;
            }
            found = Some((offset, line.len()));
        }
        offset += line.len();
    }
    let (at, len) = found?;
    let line = &text[at..at + len];
    let ending = if line.ends_with("\r\n") {
        "\r\n"
    } else if line.ends_with('\n') {
        "\n"
    } else {
        ""
    };
    // The value as YAML writes a lone string (quoted when it must be).
    let value = serde_yaml::to_string(&Value::String(state.to_owned())).ok()?;
    let value = value.trim_end_matches('\n');
    if value.contains('\n') {
        return None;
    }
    Some(format!(
        "{}state: {value}{ending}{}",
        &text[..at],
        &text[at + len..]
    ))
}

/// An issue file's text: a regular file of at most [`MAX_ISSUE_FILE_BYTES`], UTF-8.
fn read_issue_file(path: &Path) -> Result<String, String> {
    let bytes = crate::workflow::read_regular_file(path, MAX_ISSUE_FILE_BYTES)
        .map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|_| "the file is not valid UTF-8".to_owned())
}

/// Front matter map and body of an issue file.
fn split(text: &str) -> Result<(Mapping, String), String> {
    let rest = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
        .ok_or("no YAML front matter (the file must start with `---`)")?;
    let (yaml, body) = match rest.find("\n---") {
        Some(end) => {
            let after = &rest[end + 4..];
            let body = after
                .strip_prefix("\r\n")
                .or_else(|| after.strip_prefix('\n'))
                .unwrap_or(after);
            (&rest[..=end], body)
        }
        None => return Err("the front matter is never closed by `---`".into()),
    };
    if yaml.len() > MAX_FRONT_MATTER_BYTES {
        return Err(format!(
            "the front matter has {} bytes, more than the {MAX_FRONT_MATTER_BYTES} allowed",
            yaml.len()
        ));
    }
    crate::workflow::front_matter::check_flow_depth(
        yaml,
        crate::workflow::front_matter::MAX_FLOW_DEPTH,
    )?;
    match serde_yaml::from_str::<Value>(yaml).map_err(|e| e.to_string())? {
        Value::Mapping(map) => Ok((map, body.to_owned())),
        Value::Null => Ok((Mapping::new(), body.to_owned())),
        _ => Err("the front matter is not a map".into()),
    }
}

fn parse_file(path: &Path, identifier: &str) -> Result<Parsed, String> {
    let text = read_issue_file(path)?;
    let (front, body) = split(&text)?;
    let string = |key: &str| -> Result<Option<String>, String> {
        match front.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(format!("`{key}` must be a string")),
        }
    };
    let list = |key: &str| -> Result<Vec<String>, String> {
        match front.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Sequence(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => Err(format!("`{key}` must be a list of strings")),
                })
                .collect(),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(_) => Err(format!("`{key}` must be a list of strings")),
        }
    };
    let state = string("state")?
        .filter(|s| !s.trim().is_empty())
        .ok_or("`state` is required")?;
    let title = string("title")?
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| identifier.to_owned());
    let priority = match front.get("priority") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_i64(),
        Some(_) => None, // best-effort field: unusable values normalise to null (SPEC 11.3)
    };
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| Timestamp(d.as_millis() as u64));
    let created_at = match string("created_at")? {
        Some(text) => Some(
            Timestamp::parse_rfc3339(&text)
                .map_err(|_| format!("`created_at` {text:?} is not RFC 3339"))?,
        ),
        None => modified,
    };
    let description = Some(body.trim().to_owned()).filter(|d| !d.is_empty());
    Ok(Parsed {
        issue: Issue {
            id: IssueId(identifier.to_owned()),
            identifier: identifier.to_owned(),
            title,
            description,
            priority,
            state,
            labels: list("labels")?.iter().map(|l| normalize(l)).collect(),
            created_at,
            updated_at: modified,
            dispatchable: true,
            ..Issue::default()
        },
        blocker_ids: list("blocked_by")?,
    })
}

fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, TrackerError> + Send + 'static,
) -> BoxFuture<'static, Result<T, TrackerError>> {
    Box::pin(async move {
        tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
            Err(error(
                TrackerErrorCategory::TrackerRequest,
                format!("local tracker task failed: {e}"),
            ))
        })
    })
}

impl Tracker for LocalTracker {
    fn fetch_by_states<'a>(
        &'a self,
        states: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Issue>, TrackerError>> {
        let this = self.clone();
        let states = states.to_vec();
        blocking(move || this.by_states(&states))
    }

    fn fetch_by_ids<'a>(
        &'a self,
        ids: &'a [IssueId],
    ) -> BoxFuture<'a, Result<Vec<Issue>, TrackerError>> {
        let this = self.clone();
        let ids = ids.to_vec();
        blocking(move || this.by_ids(&ids))
    }

    fn probe(&self) -> BoxFuture<'_, Result<Probe, TrackerError>> {
        let this = self.clone();
        blocking(move || {
            this.read_all().map(|_| Probe {
                scope: format!("directory {}", this.dir.display()),
                states: None, // a file may carry any state name
                remarks: Vec::new(),
            })
        })
    }

    fn set_state<'a>(
        &'a self,
        identifier: &'a str,
        state: &'a str,
    ) -> BoxFuture<'a, Result<(), TrackerError>> {
        let this = self.clone();
        let (identifier, state) = (identifier.to_owned(), state.to_owned());
        blocking(move || this.rewrite(&identifier, Change::State(state)))
    }

    fn add_comment<'a>(
        &'a self,
        identifier: &'a str,
        body: &'a str,
    ) -> BoxFuture<'a, Result<(), TrackerError>> {
        let this = self.clone();
        let (identifier, comment) = (identifier.to_owned(), body.to_owned());
        blocking(move || this.rewrite(&identifier, Change::Comment(comment)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_reads_front_matter_and_body() {
        let (front, body) = split("---\nstate: Todo\n---\nHello\n").unwrap();
        assert_eq!(front.get("state").and_then(Value::as_str), Some("Todo"));
        assert_eq!(body, "Hello\n");
        assert!(split("no front matter").is_err());
        assert!(split("---\nstate: Todo\n").is_err());
        assert!(split("---\n- a\n---\n").is_err());
    }

    #[test]
    fn a_state_change_keeps_the_rest_of_the_file_byte_for_byte() {
        let text = "---\ntitle: A  # note\nstate: Todo\nlabels: [backend]\n---\nBody\n";
        assert_eq!(
            replace_state_line(text, "In Progress").unwrap(),
            "---\ntitle: A  # note\nstate: In Progress\nlabels: [backend]\n---\nBody\n"
        );
        assert_eq!(
            replace_state_line(text, "true").unwrap(),
            "---\ntitle: A  # note\nstate: 'true'\nlabels: [backend]\n---\nBody\n",
            "a value YAML would read as a boolean is quoted"
        );
        // Not exactly one top-level `state:` line: the caller rewrites the front matter.
        assert!(replace_state_line("---\nstate: a\nstate: b\n---\n", "x").is_none());
        assert!(replace_state_line("---\nmeta:\n  state: a\n---\n", "x").is_none());
        assert!(replace_state_line("---\ntitle: t\n---\nstate: body\n", "x").is_none());
    }

    #[test]
    fn one_identifier_rule_for_reading_and_writing() {
        for ok in ["DEMO-1", "a.b_c", "X"] {
            assert!(identifier_rule(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "sp ace",
            "\u{1f600}",
            "a/b",
            "a\nb",
            &"x".repeat(129),
        ] {
            assert!(identifier_rule(bad).is_err(), "{bad:?}");
        }
    }
}
