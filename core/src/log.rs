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
//!
//! A log may be cut into segments ([`Recorder::rotate`]) so it can be size-capped. The header
//! of every segment after the first carries `"resume":{"seq":N,"state":{...}}`: the
//! orchestrator's whole state just before record `N`, the segment's first. A segment then
//! replays on its own, from that state instead of a fresh core, and its `config` is the one
//! in force at the cut. The `state` encoding is internal to the `crate_version` that wrote it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::command::Command;
use crate::config::SchedulerConfig;
use crate::event::Event;
use crate::orchestrator::Orchestrator;
use crate::time::Timestamp;

/// Value of [`LogHeader::format`].
pub const LOG_FORMAT: &str = "symphony-event-log";
/// The format version this build writes. Version 4 added worker hosts (`host` on dispatch,
/// clean-workspace and state entries, `hold_host`, the `host` retry kind and exit outcome);
/// a build that reads 3 cannot read them, so they bumped the version.
pub const LOG_VERSION: u32 = 4;
/// The oldest version this build reads: version 3 logs hold none of version 4's additions,
/// so they read, restore and replay as they were written.
pub const OLDEST_LOG_VERSION: u32 = 3;

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
    /// The config the orchestrator was built with (for a resumed segment: the one in force
    /// at the cut).
    pub config: SchedulerConfig,
    /// For a segment after the first: where it starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Box<Resume>>,
}

/// The start of a segment after the first: its first `seq` and the state to replay from.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Resume {
    /// `seq` of the segment's first record.
    pub seq: u64,
    /// The orchestrator just before that record.
    pub state: Orchestrator,
}

impl PartialEq for Resume {
    /// States compare by their serde encoding (the orchestrator has no `PartialEq`).
    fn eq(&self, other: &Self) -> bool {
        self.seq == other.seq
            && serde_json::to_value(&self.state).ok() == serde_json::to_value(&other.state).ok()
    }
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
            resume: None,
        }
    }

    /// The header of a segment whose first record is `seq`, resuming from `state`.
    pub fn resuming(state: &Orchestrator, seq: u64) -> Self {
        Self {
            resume: Some(Box::new(Resume {
                seq,
                state: state.clone(),
            })),
            ..Self::new(state.config())
        }
    }

    /// The `seq` of this segment's first record.
    pub fn first_seq(&self) -> u64 {
        self.resume.as_ref().map_or(1, |r| r.seq)
    }

    /// The orchestrator a replay of this segment starts from.
    pub fn start(&self) -> Orchestrator {
        self.resume.as_ref().map_or_else(
            || Orchestrator::new(self.config.clone()),
            |r| r.state.clone(),
        )
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

    /// Carries on from `orchestrator` (restored from an earlier log) at record `next_seq`; the
    /// header resumes from that state, so the new log continues the old one as a segment.
    pub fn resume(orchestrator: Orchestrator, next_seq: u64) -> Self {
        Self {
            header: LogHeader::resuming(&orchestrator, next_seq),
            orchestrator,
            next_seq,
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

    /// Starts a new segment: the header line for it, resuming at the next record. The
    /// previous segment stays a complete log of its own.
    pub fn rotate(&mut self) -> String {
        self.header = LogHeader::resuming(&self.orchestrator, self.next_seq);
        self.header.to_line()
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
    /// A resumed segment's state was built with another config than the header's.
    ResumeConfigMismatch,
    /// Records are not numbered 1, 2, 3, ... (or N, N+1, ... in a resumed segment)
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
                "line 1: event log version {found} is not supported (this build reads \
                 {OLDEST_LOG_VERSION} to {LOG_VERSION})"
            ),
            Self::DigestMismatch { recorded, computed } => write!(
                f,
                "line 1: config_digest {recorded} does not match the header's config ({computed})"
            ),
            Self::ResumeConfigMismatch => {
                f.write_str("line 1: the resume state's config differs from the header's config")
            }
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
    if !(OLDEST_LOG_VERSION..=LOG_VERSION).contains(&header.version) {
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
    if let Some(resume) = &header.resume
        && *resume.state.config() != header.config
    {
        return Err(LogError::ResumeConfigMismatch);
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
        let expected = header.first_seq() + records.len() as u64;
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

/// A last line cut short (the writer crashed mid-line): where it is and how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// Its 1-based line number.
    pub line: usize,
    /// Its length in bytes.
    pub bytes: usize,
}

/// [`read_log`], except that a last line which does not parse and is not ended by a newline
/// (what a crash in the middle of a write leaves) is reported instead of failing the read:
/// the records before it are returned with the torn tail. A malformed line anywhere else is
/// still an error.
pub fn read_log_tolerating_torn_tail(
    text: &str,
) -> Result<(LogHeader, Vec<LogRecord>, Option<TornTail>), LogError> {
    if text.ends_with('\n') {
        return read_log(text).map(|(header, records)| (header, records, None));
    }
    let cut = text.rfind('\n').map_or(0, |at| at + 1);
    let (complete, tail) = text.split_at(cut);
    if complete.trim().is_empty() || tail.trim().is_empty() {
        return read_log(text).map(|(header, records)| (header, records, None));
    }
    match read_log(text) {
        Ok((header, records)) => Ok((header, records, None)),
        Err(LogError::Malformed { line, .. }) if line == complete.lines().count() + 1 => {
            let (header, records) = read_log(complete)?;
            Ok((
                header,
                records,
                Some(TornTail {
                    line,
                    bytes: tail.len(),
                }),
            ))
        }
        Err(e) => Err(e),
    }
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

/// Feeds the records to a fresh orchestrator built from the header's config (or, for a resumed
/// segment, to the header's state), up to and including `seq == until` when given. Pure: same
/// log in, same replay out.
pub fn replay<'a>(
    header: &LogHeader,
    records: impl IntoIterator<Item = &'a LogRecord>,
    until: Option<u64>,
) -> Replay {
    let mut orchestrator = header.start();
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
    fn a_rotated_segment_replays_on_its_own_from_its_resume_state() {
        let config = SchedulerConfig::default();
        let mut recorder = Recorder::new(config);
        let mut first = recorder.header().to_line();
        let issue = crate::Issue {
            id: crate::IssueId("1".into()),
            identifier: "MT-1".into(),
            title: "t".into(),
            state: "Todo".into(),
            dispatchable: true,
            ..crate::Issue::default()
        };
        let record = |recorder: &mut Recorder, text: &mut String, at: u64, event: Event| {
            let (commands, line) = recorder.handle(Timestamp(at), &event);
            text.push('\n');
            text.push_str(&line);
            commands
        };
        // Answer every request until a worker is dispatched, so one runs at the cut.
        let mut queue = record(&mut recorder, &mut first, 5, Event::Startup);
        while let Some(command) = queue.pop() {
            let event = match command {
                Command::ListTerminalIssues { request, .. } => Event::TerminalIssuesListed {
                    request,
                    issues: Vec::new(),
                },
                Command::FetchCandidates { request, .. } => Event::CandidatesFetched {
                    request,
                    issues: vec![issue.clone()],
                },
                _ => continue,
            };
            queue.extend(record(&mut recorder, &mut first, 8, event));
        }
        let second_header = recorder.rotate();
        let mut second = second_header.clone();
        record(&mut recorder, &mut second, 20, Event::RefreshRequested);
        record(&mut recorder, &mut second, 25, Event::ShutdownRequested);

        let (header, records) = read_log(&first).unwrap();
        assert!(header.resume.is_none());
        assert_eq!(replay(&header, &records, None).divergence, None);
        let before_cut = replay(&header, &records, None).orchestrator;
        assert_eq!(
            before_cut.snapshot(Timestamp(8)).counts.running,
            1,
            "a worker runs at the cut"
        );

        let (header, records) = read_log(&second).unwrap();
        assert_eq!(header.first_seq(), records[0].seq);
        assert!(records[0].seq > 1);
        let replayed = replay(&header, &records, None);
        assert_eq!(
            replayed.divergence, None,
            "the resume state carries everything"
        );
        assert_eq!(
            replayed.orchestrator.snapshot(Timestamp(25)),
            recorder.orchestrator().snapshot(Timestamp(25))
        );

        let tampered = second.replacen("\"max_turns\":20", "\"max_turns\":3", 1);
        assert!(
            matches!(read_log(&tampered), Err(LogError::DigestMismatch { .. })),
            "the header's config is covered by the digest"
        );
        let (mut header, _) = read_log(&second).unwrap();
        header.config.max_turns = 3;
        header.config_digest = header.config.digest();
        assert_eq!(
            parse_header(&header.to_line()),
            Err(LogError::ResumeConfigMismatch)
        );
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
        let future = text.replacen(&format!("\"version\":{LOG_VERSION}"), "\"version\":9", 1);
        assert_eq!(
            read_log(&future).unwrap_err().to_string(),
            format!(
                "line 1: event log version 9 is not supported (this build reads \
                 {OLDEST_LOG_VERSION} to {LOG_VERSION})"
            )
        );
        // A version 3 log (before worker hosts) still reads.
        let older = text.replacen(&format!("\"version\":{LOG_VERSION}"), "\"version\":3", 1);
        assert!(read_log(&older).is_ok());
        let ancient = text.replacen(&format!("\"version\":{LOG_VERSION}"), "\"version\":2", 1);
        assert!(matches!(
            read_log(&ancient),
            Err(LogError::UnsupportedVersion { found: 2 })
        ));
    }
}
