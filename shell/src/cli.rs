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

    #[command(flatten)]
    pub(crate) server: ServerFlags,

    /// Record every event and the commands it produced to this NDJSON file (for
    /// `symphony replay`). Default with --logs-root: DIR/events.ndjson.
    #[arg(long, value_name = "FILE")]
    pub(crate) event_log: Option<PathBuf>,

    #[command(flatten)]
    pub(crate) logs: LogFlags,
}

/// Where and how the daemon writes its log.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct LogFlags {
    /// Also write the log to DIR/symphony.log (appending), and the event log to
    /// DIR/events.ndjson unless --event-log says otherwise.
    #[arg(long, value_name = "DIR")]
    pub(crate) logs_root: Option<PathBuf>,

    /// Format of the log file: `human` or `json` (one object per line). stderr is always human.
    #[arg(long, value_enum, default_value = "human")]
    pub(crate) log_format: LogFormat,
}

/// Log file formats.
#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub(crate) enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the embedded demo: the local file tracker and the built-in demo agent, no account.
    ///
    /// Copies the example setup into DIR (unless DIR already holds a WORKFLOW.md) and runs the
    /// daemon on it.
    Demo(DemoArgs),
    /// Validate a workflow offline: config, credentials present, prompt renders.
    ///
    /// Exits 0 when valid, 1 with `error[<class>]: <file>:<line>:<col>: <message>` when not.
    Check(CheckArgs),
    /// Online preflight: workflow, tracker and credential, agent command, git and bash,
    /// workspace root, HTTP port. One line per check; exit 1 when any fails.
    Doctor(CheckArgs),
    /// Print the effective config and where each value came from. Secrets are masked.
    Config(ConfigArgs),
    /// Feed a recorded event log to a fresh orchestrator and print what it decides.
    Replay(ReplayArgs),
    /// Show a running daemon's state in the terminal (polls /api/v1/state; bearer token from
    /// $SYMPHONY_TOKEN when set).
    Status(StatusArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout.
    Man,
}

/// Flags that override the workflow's `server` section.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct ServerFlags {
    /// HTTP port (0: ephemeral, -1: no server); overrides `server.port`.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub(crate) port: Option<i64>,

    /// Address for the HTTP server; overrides `server.bind`.
    #[arg(long, value_name = "ADDR")]
    pub(crate) bind: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Directory for the demo's workflow, issues and workspaces.
    #[arg(value_name = "DIR", default_value = "symphony-demo")]
    pub(crate) dir: PathBuf,

    /// Record the event log to this file (default: DIR/events.ndjson).
    #[arg(long, value_name = "FILE")]
    pub(crate) event_log: Option<PathBuf>,

    #[command(flatten)]
    pub(crate) logs: LogFlags,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The daemon's HTTP address.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub(crate) url: String,

    /// Seconds between redraws.
    #[arg(long, default_value_t = 2.0)]
    pub(crate) interval: f64,

    /// Print one snapshot and exit (for scripts).
    #[arg(long)]
    pub(crate) once: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Workflow file [default: ./WORKFLOW.md].
    #[arg(value_name = "WORKFLOW")]
    pub(crate) workflow: Option<PathBuf>,
}

/// Output formats of `symphony config`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Format {
    Yaml,
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    /// Workflow file [default: ./WORKFLOW.md].
    #[arg(value_name = "WORKFLOW")]
    pub(crate) workflow: Option<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value = "yaml")]
    pub(crate) format: Format,

    #[command(flatten)]
    pub(crate) server: ServerFlags,
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
