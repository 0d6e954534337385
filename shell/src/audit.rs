//! The tamper-evident audit log (issue 18): one NDJSON file per UTC day,
//! `<state root>/audit/YYYY-MM-DD.ndjson`, each record chained to the one before it.
//!
//! A record is a JSON object with `ts` (RFC 3339), `type`, optional `issue`, `run`, `session`,
//! `data`, then `previous_hash` (the previous record's `record_hash`; the first record of a
//! day links to the last record of the day before; the very first to [`GENESIS`]) and
//! `record_hash`: the SHA-256, in hex, of the record's canonical JSON without `record_hash`
//! (object keys sorted at every level, no whitespace). Editing, deleting, inserting or
//! reordering a line, cutting a file short or dropping a day breaks the chain, and [`verify`]
//! says where and how.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// `previous_hash` of the first record ever written.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Longest record line read back (a longer one is a break).
const MAX_LINE: u64 = 1024 * 1024;

/// `value` as canonical JSON: object keys sorted at every level, no whitespace.
pub fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<&String, &Value> = map.iter().collect();
            out.push('{');
            for (i, (key, value)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The hash of `record` (its `record_hash`, if any, left out).
pub fn record_hash(record: &Map<String, Value>) -> String {
    let mut without = record.clone();
    without.remove("record_hash");
    let digest = Sha256::digest(canonical(&Value::Object(without)).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// One audit event, before it is chained.
#[derive(Clone, Debug, Default)]
pub struct Entry {
    /// `type`: `prompt_sent`, `tool_call`, `workspace_created`, ...
    pub kind: String,
    /// The issue's identifier, when the event is about one.
    pub issue: Option<String>,
    /// The run.
    pub run: Option<u64>,
    /// The agent session.
    pub session: Option<String>,
    /// Event fields.
    pub data: Value,
}

/// The writer: appends chained records to the day's file.
#[derive(Debug)]
pub struct AuditLog {
    dir: PathBuf,
    /// The open day: its date, file and the last hash written.
    day: Option<(String, File)>,
    last_hash: String,
    /// Secret values scrubbed from every record before it is written.
    secrets: Vec<String>,
    /// A torn last line removed on open (file, line, bytes), recorded with the next append.
    repaired: Option<(String, usize, usize)>,
}

/// `YYYY-MM-DD` of an RFC 3339 timestamp.
fn day_of(ts: &str) -> &str {
    ts.get(..10).unwrap_or(ts)
}

impl AuditLog {
    /// Opens the log in `dir` (created 0700 if missing), continuing the chain from the last
    /// record of the newest day file. A torn last line there (a crash mid-write: it was never
    /// a record) is cut off, and the next record written says so (`torn_line_removed`), so the
    /// chain stays whole and the repair is on the record.
    pub fn open(dir: &Path, secrets: Vec<String>) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let private = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o700);
        std::fs::set_permissions(dir, private)?;
        let newest = day_files(dir)?.pop();
        let repaired = match &newest {
            Some(file) => cut_torn_tail(file)?,
            None => None,
        };
        let last_hash = match &newest {
            Some(file) => last_record_hash(file)?.unwrap_or_else(|| GENESIS.to_owned()),
            None => GENESIS.to_owned(),
        };
        Ok(Self {
            dir: dir.to_owned(),
            day: None,
            last_hash,
            secrets: secrets.into_iter().filter(|s| s.len() >= 4).collect(),
            repaired,
        })
    }

    /// Appends `entry` at time `ts` (RFC 3339, UTC), scrubbed of secrets; returns its hash.
    pub fn append(&mut self, ts: &str, entry: &Entry) -> io::Result<String> {
        if let Some((file, line, bytes)) = self.repaired.take() {
            let note = Entry {
                kind: "torn_line_removed".into(),
                data: serde_json::json!({"file": file, "line": line, "bytes": bytes}),
                ..Entry::default()
            };
            self.write(ts, &note)?;
        }
        self.write(ts, entry)
    }

    fn write(&mut self, ts: &str, entry: &Entry) -> io::Result<String> {
        let mut record = Map::new();
        record.insert("ts".into(), Value::String(ts.to_owned()));
        record.insert("type".into(), Value::String(entry.kind.clone()));
        if let Some(issue) = &entry.issue {
            record.insert("issue".into(), Value::String(issue.clone()));
        }
        if let Some(run) = entry.run {
            record.insert("run".into(), Value::from(run));
        }
        if let Some(session) = &entry.session {
            record.insert("session".into(), Value::String(session.clone()));
        }
        if !entry.data.is_null() {
            record.insert("data".into(), entry.data.clone());
        }
        let mut record = self.scrub(record);
        record.insert(
            "previous_hash".into(),
            Value::String(self.last_hash.clone()),
        );
        let hash = record_hash(&record);
        record.insert("record_hash".into(), Value::String(hash.clone()));
        let day = day_of(ts).to_owned();
        if self.day.as_ref().is_none_or(|(open, _)| *open != day) {
            let path = self.dir.join(format!("{day}.ndjson"));
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            self.day = Some((day, file));
        }
        let (_, file) = self.day.as_mut().expect("opened above");
        let mut line = canonical(&Value::Object(record));
        line.push('\n');
        // One write per record, so a crash leaves at most one torn line, the last.
        file.write_all(line.as_bytes())?;
        self.last_hash = hash.clone();
        Ok(hash)
    }

    fn scrub(&self, record: Map<String, Value>) -> Map<String, Value> {
        if self.secrets.is_empty() {
            return record;
        }
        let mut text = canonical(&Value::Object(record.clone()));
        let mut changed = false;
        for secret in &self.secrets {
            // The secret as it appears inside a JSON string.
            let escaped = Value::String(secret.clone()).to_string();
            let inner = &escaped[1..escaped.len() - 1];
            if text.contains(inner) {
                text = text.replace(inner, "****");
                changed = true;
            }
        }
        if !changed {
            return record;
        }
        match serde_json::from_str(&text) {
            Ok(Value::Object(map)) => map,
            _ => record,
        }
    }
}

/// The day files in `dir`, oldest first.
pub fn day_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
        .collect();
    files.sort();
    Ok(files)
}

/// Cuts a last line without its newline off `file`: (file name, its line number, its bytes).
fn cut_torn_tail(file: &Path) -> io::Result<Option<(String, usize, usize)>> {
    let bytes = std::fs::read(file)?;
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(None);
    }
    let keep = bytes
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |at| at + 1);
    let line = bytes[..keep].iter().filter(|b| **b == b'\n').count() + 1;
    OpenOptions::new()
        .write(true)
        .open(file)?
        .set_len(keep as u64)?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Some((name, line, bytes.len() - keep)))
}

/// The `record_hash` of the last complete record of `file`.
fn last_record_hash(file: &Path) -> io::Result<Option<String>> {
    let mut last = None;
    for line in BufReader::new(File::open(file)?).split(b'\n') {
        let line = line?;
        if let Ok(Value::Object(record)) = serde_json::from_slice::<Value>(&line)
            && let Some(hash) = record.get("record_hash").and_then(Value::as_str)
        {
            last = Some(hash.to_owned());
        }
    }
    Ok(last)
}

/// How the chain broke.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Break {
    /// A record's content no longer matches its hash.
    Edited,
    /// The record before this one is missing.
    Deleted,
    /// A record was added, or records swapped, before this one.
    InsertedOrReordered,
    /// A line that is not a whole record, not at the very end of the newest file.
    Truncated,
    /// A day's first record does not link to the day before's last.
    BrokenLinkAcrossDays,
}

/// Where and how the chain broke.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// How.
    pub kind: Break,
}

/// What [`verify`] found in an intact chain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Records verified.
    pub records: usize,
    /// A torn last line at the end of the newest file (a crash mid-write), if any.
    pub torn: Option<(PathBuf, usize)>,
}

/// Verifies the chain through `files` (in day order).
pub fn verify(files: &[PathBuf]) -> io::Result<Result<Report, Failure>> {
    let mut report = Report::default();
    let mut previous = GENESIS.to_owned();
    for (index, file) in files.iter().enumerate() {
        let newest = index + 1 == files.len();
        let mut lines: Vec<Vec<u8>> = Vec::new();
        let mut reader = BufReader::new(File::open(file)?);
        loop {
            let mut line = Vec::new();
            let n = (&mut reader)
                .take(MAX_LINE + 1)
                .read_until(b'\n', &mut line)?;
            if n == 0 {
                break;
            }
            lines.push(line);
        }
        // Every hash in the file, and where, to tell deletions from insertions.
        let mut hashes: BTreeMap<String, usize> = BTreeMap::new();
        let records: Vec<Option<Map<String, Value>>> = (lines.iter())
            .map(|line| match serde_json::from_slice::<Value>(line) {
                Ok(Value::Object(record)) if line.ends_with(b"\n") => Some(record),
                _ => None,
            })
            .collect();
        for (i, record) in records.iter().enumerate() {
            if let Some(hash) = record
                .as_ref()
                .and_then(|r| r.get("record_hash"))
                .and_then(Value::as_str)
            {
                hashes.insert(hash.to_owned(), i);
            }
        }
        let fail = |line: usize, kind| {
            Ok(Err(Failure {
                file: file.clone(),
                line,
                kind,
            }))
        };
        for (i, record) in records.iter().enumerate() {
            let line = i + 1;
            let Some(record) = record else {
                if newest && line == lines.len() {
                    report.torn = Some((file.clone(), line));
                    break;
                }
                return fail(line, Break::Truncated);
            };
            let stated = record
                .get("record_hash")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if record_hash(record) != stated {
                return fail(line, Break::Edited);
            }
            let link = record
                .get("previous_hash")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if link != previous {
                let kind = if i == 0 && index > 0 {
                    Break::BrokenLinkAcrossDays
                } else if hashes.contains_key(link) {
                    Break::InsertedOrReordered
                } else {
                    Break::Deleted
                };
                return fail(line, kind);
            }
            previous = stated.to_owned();
            report.records += 1;
        }
    }
    Ok(Ok(report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_at_every_level_without_whitespace() {
        let value = json!({"b": 1, "a": {"d": [1, {"z": true, "y": null}], "c": "x y"}});
        assert_eq!(
            canonical(&value),
            r#"{"a":{"c":"x y","d":[1,{"y":null,"z":true}]},"b":1}"#
        );
    }
}
