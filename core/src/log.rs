//! The event log: a versioned NDJSON record of every event fed to the core and the commands it
//! produced, and the pure replay that checks a log against the current code.
//!
//! Format, version 1. The first line is a [`LogHeader`]:
//!
//! ```text
//! {"format":"symphony-event-log","version":1,"crate_version":"0.1.0","config_digest":"fnv1a64:...","config":{...}}
//! ```
//!
//! Every further line is a [`LogRecord`]: `{"seq":1,"at":1767225600000,"event":{...},"commands":[...]}`,
//! with `seq` counting from 1 without gaps and `at` in milliseconds since the epoch. Events and
//! commands use the serde encoding of [`Event`] and [`Command`]: adding a variant or an optional
//! field keeps version 1; renaming or removing one needs version 2.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::command::Command;
use crate::config::SchedulerConfig;
use crate::event::Event;
use crate::orchestrator::Orchestrator;
use crate::time::Timestamp;

/// Value of [`LogHeader::format`].
pub const LOG_FORMAT: &str = "symphony-event-log";
/// The format version this build writes and reads.
pub const LOG_VERSION: u32 = 1;

/// First line of a log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogHeader {
    /// Always [`LOG_FORMAT`].
    pub format: String,
    /// Format version.
    pub version: u32,
    /// Version of `symphony-core` that wrote the log.
    pub crate_version: String,
    /// [`SchedulerConfig::digest`] of `config`.
    pub config_digest: String,
    /// The config the orchestrator was built with.
    pub config: SchedulerConfig,
}

impl LogHeader {
    /// The header for a log of an orchestrator built with `config`.
    pub fn new(config: &SchedulerConfig) -> Self {
        Self {
            format: LOG_FORMAT.to_owned(),
            version: LOG_VERSION,
            crate_version: env!("CARGO_PKG_VERSION").to_owned(),
            config_digest: config.digest(),
            config: config.clone(),
        }
    }

    /// One JSON line, without the newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// One handled event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// 1-based position in the log.
    pub seq: u64,
    /// When the event happened.
    pub at: Timestamp,
    /// The event.
    pub event: Event,
    /// What the orchestrator returned for it.
    pub commands: Vec<Command>,
}

/// Borrowed form of [`LogRecord`] for writing without copying.
#[derive(Serialize)]
struct RecordRef<'a> {
    seq: u64,
    at: Timestamp,
    event: &'a Event,
    commands: &'a [Command],
}

/// An orchestrator that also numbers its events and encodes each as a log line.
#[derive(Clone, Debug)]
pub struct Recorder {
    orchestrator: Orchestrator,
    header: LogHeader,
    next_seq: u64,
}

impl Recorder {
    /// A fresh orchestrator with `config`; [`Recorder::header`] is the log's first line.
    pub fn new(config: SchedulerConfig) -> Self {
        Self {
            header: LogHeader::new(&config),
            orchestrator: Orchestrator::new(config),
            next_seq: 1,
        }
    }

    /// The log header.
    pub fn header(&self) -> &LogHeader {
        &self.header
    }

    /// Handles the event and returns its commands with the log line recording both.
    pub fn handle(&mut self, at: Timestamp, event: &Event) -> (Vec<Command>, String) {
        let commands = self.orchestrator.handle(at, event);
        let record = RecordRef {
            seq: self.next_seq,
            at,
            event,
            commands: &commands,
        };
        self.next_seq += 1;
        let line = serde_json::to_string(&record).unwrap_or_default();
        (commands, line)
    }

    /// The orchestrator, for snapshots and deadlines.
    pub fn orchestrator(&self) -> &Orchestrator {
        &self.orchestrator
    }
}

/// A log that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogError {
    /// No header line.
    Empty,
    /// A line is not valid JSON of the expected shape.
    Malformed {
        /// 1-based line number.
        line: usize,
        /// The decoder's message.
        message: String,
    },
    /// The header names another format.
    NotAnEventLog {
        /// What `format` said.
        found: String,
    },
    /// The header's version is not one this build reads.
    UnsupportedVersion {
        /// What `version` said.
        found: u32,
    },
    /// The header's digest does not match its config: the header was edited or corrupted.
    DigestMismatch {
        /// Digest written in the header.
        recorded: String,
        /// Digest of the config in the header.
        computed: String,
    },
    /// Records are not numbered 1, 2, 3, ...
    SequenceGap {
        /// 1-based line number.
        line: usize,
        /// The `seq` expected there.
        expected: u64,
        /// The `seq` found.
        found: u64,
    },
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("event log is empty: no header line"),
            Self::Malformed { line, message } => write!(f, "line {line}: {message}"),
            Self::NotAnEventLog { found } => {
                write!(f, "line 1: format is {found:?}, expected {LOG_FORMAT:?}")
            }
            Self::UnsupportedVersion { found } => write!(
                f,
                "line 1: event log version {found} is not supported (this build reads {LOG_VERSION})"
            ),
            Self::DigestMismatch { recorded, computed } => write!(
                f,
                "line 1: config_digest {recorded} does not match the header's config ({computed})"
            ),
            Self::SequenceGap {
                line,
                expected,
                found,
            } => write!(f, "line {line}: seq {found} where {expected} was expected"),
        }
    }
}

impl std::error::Error for LogError {}

/// Parses and checks a header line.
pub fn parse_header(line: &str) -> Result<LogHeader, LogError> {
    let header: LogHeader = serde_json::from_str(line).map_err(|e| LogError::Malformed {
        line: 1,
        message: e.to_string(),
    })?;
    if header.format != LOG_FORMAT {
        return Err(LogError::NotAnEventLog {
            found: header.format,
        });
    }
    if header.version != LOG_VERSION {
        return Err(LogError::UnsupportedVersion {
            found: header.version,
        });
    }
    let computed = header.config.digest();
    if computed != header.config_digest {
        return Err(LogError::DigestMismatch {
            recorded: header.config_digest,
            computed,
        });
    }
    Ok(header)
}

/// Parses a whole log held in memory. Blank lines are skipped.
pub fn read_log(text: &str) -> Result<(LogHeader, Vec<LogRecord>), LogError> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty());
    let (_, first) = lines.next().ok_or(LogError::Empty)?;
    let header = parse_header(first)?;
    let mut records = Vec::new();
    for (index, line) in lines {
        let record: LogRecord = serde_json::from_str(line).map_err(|e| LogError::Malformed {
            line: index + 1,
            message: e.to_string(),
        })?;
        let expected = records.len() as u64 + 1;
        if record.seq != expected {
            return Err(LogError::SequenceGap {
                line: index + 1,
                expected,
                found: record.seq,
            });
        }
        records.push(record);
    }
    Ok((header, records))
}

/// The first record whose replayed commands differ from the recorded ones.
#[derive(Clone, Debug, PartialEq)]
pub struct Divergence {
    /// Its `seq`.
    pub seq: u64,
    /// The event.
    pub event: Event,
    /// Commands the log recorded.
    pub recorded: Vec<Command>,
    /// Commands this build produced.
    pub replayed: Vec<Command>,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "divergence at seq {}: {}", self.seq, self.event)?;
        let width = self.recorded.len().max(self.replayed.len());
        for i in 0..width {
            match (self.recorded.get(i), self.replayed.get(i)) {
                (Some(a), Some(b)) if a == b => writeln!(f, "  {a}")?,
                (a, b) => {
                    if let Some(a) = a {
                        writeln!(f, "- {a}")?;
                    }
                    if let Some(b) = b {
                        writeln!(f, "+ {b}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// What a replay produced.
#[derive(Clone, Debug)]
pub struct Replay {
    /// The orchestrator after the last replayed event.
    pub orchestrator: Orchestrator,
    /// The replayed records, with the commands this build produced.
    pub records: Vec<LogRecord>,
    /// The first record where this build disagrees with the log.
    pub divergence: Option<Divergence>,
}

/// Feeds the records to a fresh orchestrator built from the header's config, up to and
/// including `seq == until` when given. Pure: same log in, same replay out.
pub fn replay<'a>(
    header: &LogHeader,
    records: impl IntoIterator<Item = &'a LogRecord>,
    until: Option<u64>,
) -> Replay {
    let mut orchestrator = Orchestrator::new(header.config.clone());
    let mut replayed = Vec::new();
    let mut divergence = None;
    for record in records {
        if until.is_some_and(|last| record.seq > last) {
            break;
        }
        let commands = orchestrator.handle(record.at, &record.event);
        if divergence.is_none() && commands != record.commands {
            divergence = Some(Divergence {
                seq: record.seq,
                event: record.event.clone(),
                recorded: record.commands.clone(),
                replayed: commands.clone(),
            });
        }
        replayed.push(LogRecord {
            seq: record.seq,
            at: record.at,
            event: record.event.clone(),
            commands,
        });
    }
    Replay {
        orchestrator,
        records: replayed,
        divergence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_log() -> String {
        let mut recorder = Recorder::new(SchedulerConfig::default());
        let mut text = recorder.header().to_line();
        for (at, event) in [(5, Event::Startup), (10, Event::RefreshRequested)] {
            let (_, line) = recorder.handle(Timestamp(at), &event);
            text.push('\n');
            text.push_str(&line);
        }
        text
    }

    #[test]
    fn recorded_log_reads_back_and_replays_without_divergence() {
        let text = small_log();
        let (header, records) = read_log(&text).unwrap();
        assert_eq!(records.len(), 2);
        assert!(!records[0].commands.is_empty());
        let replay = replay(&header, &records, None);
        assert_eq!(replay.divergence, None);
        assert_eq!(replay.records, records);
    }

    #[test]
    fn replay_reports_the_first_divergent_record() {
        let text = small_log();
        let (header, mut records) = read_log(&text).unwrap();
        records[1].commands.clear();
        let replay = replay(&header, &records, None);
        let divergence = replay.divergence.expect("edited commands must diverge");
        assert_eq!(divergence.seq, 2);
        assert!(divergence.to_string().contains("+ refresh-queued"));
    }

    #[test]
    fn until_stops_after_that_record() {
        let (header, records) = read_log(&small_log()).unwrap();
        assert_eq!(replay(&header, &records, Some(1)).records.len(), 1);
    }

    #[test]
    fn bad_logs_get_errors_that_name_the_line() {
        assert_eq!(read_log(""), Err(LogError::Empty));
        let text = small_log();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.swap(1, 2);
        let err = read_log(&lines.join("\n")).unwrap_err();
        assert_eq!(
            err,
            LogError::SequenceGap {
                line: 2,
                expected: 1,
                found: 2
            }
        );
        let broken = text.replacen("\"seq\":2", "\"seq\":", 1);
        assert!(matches!(
            read_log(&broken),
            Err(LogError::Malformed { line: 3, .. })
        ));
        let tampered = text.replacen("\"max_turns\":20", "\"max_turns\":2", 1);
        assert!(matches!(
            read_log(&tampered),
            Err(LogError::DigestMismatch { .. })
        ));
        let future = text.replacen("\"version\":1", "\"version\":9", 1);
        assert_eq!(
            read_log(&future).unwrap_err().to_string(),
            "line 1: event log version 9 is not supported (this build reads 1)"
        );
    }
}
