//! `symphony replay`: a recorded event log through a fresh core. A log cut into segments
//! (`events.ndjson.2 events.ndjson.1 events.ndjson`, oldest first) replays as one: each segment
//! after the first starts from the state its header carries, and `--check` also verifies that
//! state against the replay of the segment before it.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use symphony_core::Orchestrator;
use symphony_core::log::{
    LogError, LogHeader, LogRecord, TornTail, read_log_tolerating_torn_tail, replay,
};

use crate::Outcome;
use crate::cli::ReplayArgs;

/// Why a log could not be replayed at all.
#[derive(Debug)]
pub(crate) enum ReplayError {
    Read(std::io::Error),
    Log(LogError),
    /// A segment does not continue where the one before it ended.
    Gap {
        expected: u64,
        found: u64,
    },
}

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Read(e) => write!(f, "cannot read it: {e}"),
            Self::Log(e) => e.fmt(f),
            Self::Gap { expected, found } => write!(
                f,
                "starts at seq {found}, but the segment before it ends at seq {} (a segment is \
                 missing, or the files are not given oldest first)",
                expected - 1
            ),
        }
    }
}

pub(crate) fn run(args: &ReplayArgs) -> Outcome {
    match load(&args.files) {
        Ok(segments) => render(&segments, args.check, args.until),
        Err((path, error)) => Outcome {
            stdout: String::new(),
            stderr: format!("error: {}: {error}\n", path.display()),
            success: false,
        },
    }
}

/// One file of the log.
struct Segment<'a> {
    path: &'a Path,
    header: LogHeader,
    records: Vec<LogRecord>,
    /// A last line cut short by a crash, left out of the replay.
    torn: Option<TornTail>,
}

/// Reads every file and checks that each continues the one before it.
fn load(paths: &[PathBuf]) -> Result<Vec<Segment<'_>>, (&Path, ReplayError)> {
    let mut segments: Vec<Segment<'_>> = Vec::with_capacity(paths.len());
    for path in paths {
        let fail = |e| (path.as_path(), e);
        let text = fs::read_to_string(path).map_err(|e| fail(ReplayError::Read(e)))?;
        let (header, records, torn) =
            read_log_tolerating_torn_tail(&text).map_err(|e| fail(ReplayError::Log(e)))?;
        // Only the newest segment can end mid-write; a torn line in an older one means the
        // chain is not what the daemon wrote.
        if torn.is_some() && !std::ptr::eq(path, paths.last().unwrap_or(path)) {
            let line = torn.as_ref().map_or(0, |t| t.line);
            return Err(fail(ReplayError::Log(LogError::Malformed {
                line,
                message: "a torn line in a segment that is not the last".to_owned(),
            })));
        }
        if let Some(previous) = segments.last() {
            let expected = previous
                .records
                .last()
                .map_or(previous.header.first_seq(), |r| r.seq + 1);
            let found = header.first_seq();
            if found != expected {
                return Err(fail(ReplayError::Gap { expected, found }));
            }
        }
        segments.push(Segment {
            path,
            header,
            records,
            torn,
        });
    }
    Ok(segments)
}

fn render(segments: &[Segment<'_>], check: bool, until: Option<u64>) -> Outcome {
    let mut stdout = String::new();
    let mut stderr = String::new();
    let fail = |stdout, stderr| Outcome {
        stdout,
        stderr,
        success: false,
    };
    let mut state: Option<Orchestrator> = None;
    let mut last_at = None;
    let (mut replayed, mut total) = (0, 0);
    let mut first_divergence = None;
    for segment in segments {
        let header = &segment.header;
        total += segment.records.len();
        if let Some(resume) = &header.resume {
            let _ = writeln!(
                stdout,
                "segment {}: resumes at seq {}, config {}",
                segment.path.display(),
                resume.seq,
                header.config_digest
            );
            if check
                && let Some(state) = &state
                && serde_json::to_value(state).ok() != serde_json::to_value(&resume.state).ok()
            {
                let _ = writeln!(
                    stderr,
                    "divergence at seq {}: the state {} resumes from is not the state this build \
                     reaches by replaying the segments before it",
                    resume.seq,
                    segment.path.display()
                );
                return fail(stdout, stderr);
            }
        } else {
            let _ = writeln!(
                stdout,
                "event log {} v{}, written by symphony-core {}, config {}",
                header.format, header.version, header.crate_version, header.config_digest
            );
        }
        if until.is_some_and(|seq| seq < header.first_seq()) {
            break;
        }
        let result = replay(header, &segment.records, until);
        replayed += result.records.len();
        for record in &result.records {
            let _ = writeln!(
                stdout,
                "[{}] {} {}",
                record.seq,
                record.at.to_rfc3339(),
                record.event
            );
            for command in &record.commands {
                let _ = writeln!(stdout, "    -> {command}");
            }
            if check
                && let Some(divergence) = &result.divergence
                && divergence.seq == record.seq
            {
                let _ = write!(stderr, "{divergence}");
                return fail(stdout, stderr);
            }
        }
        first_divergence = first_divergence.or(result.divergence.as_ref().map(|d| d.seq));
        last_at = result.records.last().map(|r| r.at).or(last_at);
        state = Some(result.orchestrator);
    }
    if let Some(state) = &state {
        let snapshot = state.snapshot(last_at.unwrap_or_else(|| state.now()));
        let _ = writeln!(
            stdout,
            "\nfinal snapshot after {replayed} of {total} records:"
        );
        let _ = writeln!(
            stdout,
            "{}",
            serde_json::to_string_pretty(&snapshot).unwrap_or_default()
        );
    }
    for segment in segments {
        if let Some(torn) = &segment.torn {
            let _ = writeln!(
                stderr,
                "note: {} ends in a torn line (line {}, {} bytes, cut short by a crash \
                 mid-write?); the records before it were replayed",
                segment.path.display(),
                torn.line,
                torn.bytes
            );
        }
    }
    match first_divergence {
        None => {
            let _ = writeln!(stderr, "replay matches the recorded commands");
        }
        Some(seq) => {
            let _ = writeln!(
                stderr,
                "warning: this build decides differently from the log at seq {seq} \
                 (rerun with --check for the diff)"
            );
        }
    }
    Outcome {
        stdout,
        stderr,
        success: true,
    }
}
