//! Command-line interface. One definition: help text, completions and the man page (issue 9)
//! all come from these types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Runs coding agents on issue-tracker tickets, one workspace per ticket.
///
/// With no subcommand, runs the daemon on WORKFLOW (default ./WORKFLOW.md).
#[derive(Debug, Parser)]
#[command(name = "symphony", version, args_conflicts_with_subcommands = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,

    /// Workflow file for the daemon.
    #[arg(value_name = "WORKFLOW")]
    pub(crate) workflow: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Feed a recorded event log to a fresh orchestrator and print what it decides.
    Replay(ReplayArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// The NDJSON event log (header line, then one record per event).
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,

    /// Exit 1 at the first record whose commands differ from the recorded ones, with a diff.
    #[arg(long)]
    pub(crate) check: bool,

    /// Stop after the record with this sequence number.
    #[arg(long, value_name = "SEQ")]
    pub(crate) until: Option<u64>,
}
