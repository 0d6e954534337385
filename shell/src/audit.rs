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

/// The day file in `dir` that a record at `ts` (RFC 3339) goes to.
pub fn day_file(dir: &Path, ts: &str) -> PathBuf {
    dir.join(format!("{}.ndjson", day_of(ts)))
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
            let path = day_file(&self.dir, ts);
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

/// The two fields [`verify`] reads of a record; the rest is checked through the hash.
#[derive(serde::Deserialize)]
struct Stamp {
    #[serde(default)]
    previous_hash: String,
    #[serde(default)]
    record_hash: String,
}

/// The hash of a record line as written (canonical JSON): the line without its top-level
/// `record_hash` member is exactly the canonical JSON the hash was taken over, so no
/// re-serialisation is needed. The top-level member is the last match: keys are sorted, the
/// ones after it (`run`, `session`, `ts`, `type`) hold no unescaped quote, and a `data` object
/// with a key of that name comes before it. A line not in canonical form does not hash to
/// what it states, so it reads as edited.
fn text_hash(line: &[u8]) -> Option<String> {
    const KEY: &[u8] = b"\"record_hash\":\"";
    let at = line.windows(KEY.len()).rposition(|w| w == KEY)?;
    let end = at + KEY.len() + 64 + 1; // the hash and its closing quote
    if line.get(end - 1) != Some(&b'"') {
        return None;
    }
    // The member and one comma beside it.
    let (cut_from, cut_to) = match line.get(end) {
        Some(b',') => (at, end + 1),
        _ if at > 0 && line[at - 1] == b',' => (at - 1, end),
        _ => (at, end),
    };
    let mut hash = Sha256::new();
    hash.update(&line[..cut_from]);
    hash.update(&line[cut_to..]);
    Some(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
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
        let records: Vec<Option<Stamp>> = (lines.iter())
            .map(|line| {
                let whole = line.strip_suffix(b"\n")?;
                let stamp: Stamp = serde_json::from_slice(whole).ok()?;
                Some(stamp)
            })
            .collect();
        for (i, record) in records.iter().enumerate() {
            if let Some(record) = record {
                hashes.insert(record.record_hash.clone(), i);
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
            let stated = record.record_hash.as_str();
            if text_hash(&lines[i][..lines[i].len() - 1]) != Some(stated.to_owned()) {
                return fail(line, Break::Edited);
            }
            let link = record.previous_hash.as_str();
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

/// The daemon's audit log, once installed: where [`record`] writes.
static SINK: std::sync::Mutex<Option<AuditLog>> = std::sync::Mutex::new(None);

/// Makes `log` the one [`record`] writes to (the daemon, at start).
pub fn install(log: AuditLog) {
    *SINK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(log);
}

/// Appends `entry` to the installed log, stamped now; without one, does nothing. A failed
/// write is logged, never fatal: auditing must not stop the work it watches.
pub fn record(entry: Entry) {
    let mut sink = SINK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(log) = sink.as_mut() else {
        return;
    };
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let ts = symphony_core::Timestamp(ms).to_rfc3339();
    if let Err(e) = log.append(&ts, &entry) {
        tracing::warn!("audit log: cannot write a {} record: {e}", entry.kind);
    }
}

/// The SHA-256 of `text`, in hex.
pub fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Creates the state root (0700) when missing, and refuses one that is a symlink, not a
/// directory, not ours, or open to others.
pub fn prepare_state_root(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
    let shown = path.display();
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            Err(format!("the state root {shown} is a symlink; refused"))
        }
        Ok(meta) if !meta.is_dir() => Err(format!("the state root {shown} is not a directory")),
        Ok(meta) if meta.uid() != rustix::process::geteuid().as_raw() => Err(format!(
            "the state root {shown} belongs to another user (uid {}); refused",
            meta.uid()
        )),
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => Err(format!(
            "the state root {shown} is open to others (mode {:o}); run `chmod 700 {shown}`",
            meta.permissions().mode() & 0o777
        )),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(path)
                .map_err(|e| format!("cannot create the state root {shown}: {e}"))
        }
        Err(e) => Err(format!("cannot read the state root {shown}: {e}")),
    }
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
