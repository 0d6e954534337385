//! `symphony replay`: a recorded event log through a fresh core.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use symphony_core::log::{LogError, read_log, replay};

use crate::Outcome;
use crate::cli::ReplayArgs;

/// Why a log could not be replayed at all.
#[derive(Debug)]
pub(crate) enum ReplayError {
    Read(std::io::Error),
    Log(LogError),
}

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Read(e) => write!(f, "cannot read it: {e}"),
            Self::Log(e) => e.fmt(f),
        }
    }
}

pub(crate) fn run(args: &ReplayArgs) -> Outcome {
    match render(&args.file, args.check, args.until) {
        Ok(outcome) => outcome,
        Err(error) => Outcome {
            stdout: String::new(),
            stderr: format!("error: {}: {error}\n", args.file.display()),
            success: false,
        },
    }
}

fn render(path: &Path, check: bool, until: Option<u64>) -> Result<Outcome, ReplayError> {
    let text = fs::read_to_string(path).map_err(ReplayError::Read)?;
    let (header, records) = read_log(&text).map_err(ReplayError::Log)?;
    let result = replay(&header, &records, until);

    let mut stdout = String::new();
    let mut stderr = String::new();
    let _ = writeln!(
        stdout,
        "event log {} v{}, written by symphony-core {}, config {}",
        header.format, header.version, header.crate_version, header.config_digest
    );
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
            return Ok(Outcome {
                stdout,
                stderr,
                success: false,
            });
        }
    }
    let at = result
        .records
        .last()
        .map_or_else(|| result.orchestrator.now(), |r| r.at);
    let snapshot = result.orchestrator.snapshot(at);
    let _ = writeln!(
        stdout,
        "\nfinal snapshot after {} of {} records:",
        result.records.len(),
        records.len()
    );
    let _ = writeln!(
        stdout,
        "{}",
        serde_json::to_string_pretty(&snapshot).unwrap_or_default()
    );
    match &result.divergence {
        None => {
            let _ = writeln!(stderr, "replay matches the recorded commands");
        }
        Some(divergence) => {
            let _ = writeln!(
                stderr,
                "warning: this build decides differently from the log at seq {} \
                 (rerun with --check for the diff)",
                divergence.seq
            );
        }
    }
    Ok(Outcome {
        stdout,
        stderr,
        success: true,
    })
}
