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
    /// `symphony replay`); the daemon restores its state from it at the next start. Default:
    /// DIR/events.ndjson with --logs-root, else events.ndjson in the state root.
    #[arg(long, value_name = "FILE")]
    pub(crate) event_log: Option<PathBuf>,

    /// Start from a fresh state instead of restoring the retry queue, holds and budgets from the
    /// event log (the old log is kept as FILE.1).
    #[arg(long)]
    pub(crate) fresh: bool,

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

    /// Cut the event log into a new segment once its records pass this size (bytes, or K, M, G
    /// suffixed). Each segment replays on its own; see `symphony replay`.
    #[arg(long, value_name = "SIZE", default_value = "64M", value_parser = parse_size)]
    pub(crate) event_log_max_size: u64,

    /// Rotated event-log segments to keep (FILE.1 newest ... FILE.N oldest), at most 1000.
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub(crate) event_log_keep: u32,
}

/// `1024`, `512K`, `64M`, `1G` (binary multiples); at least 1K.
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c.to_ascii_uppercase()),
        _ => (text, 'B'),
    };
    let shift = match unit {
        'B' => 0,
        'K' => 10,
        'M' => 20,
        'G' => 30,
        other => return Err(format!("unknown size unit {other:?}: use K, M or G")),
    };
    let value: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 64M"))?;
    let bytes = value
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))?;
    if bytes < 1024 {
        return Err(format!("{text:?} is below the minimum of 1K"));
    }
    Ok(bytes)
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
    /// Pause dispatch on a running daemon: nothing new starts (retries wait) until `resume`;
    /// running agents go on. Kept across restarts.
    Pause {
        /// Why, shown in the API, the dashboard and `status`.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        daemon: DaemonUrl,
    },
    /// Resume dispatch on a running daemon after `pause`.
    Resume {
        #[command(flatten)]
        daemon: DaemonUrl,
    },
    /// End the live run of one issue now; the issue is held until it changes in the tracker.
    Stop {
        /// The identifier (for example ABC-123).
        identifier: String,
        #[command(flatten)]
        daemon: DaemonUrl,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout.
    Man,
    /// Check the tamper-evident audit log: every record's hash, and the chain across lines and
    /// days. Exit 0 when intact (a torn last line from a crash is reported), 1 at the first
    /// break, naming the file, the line and how it broke.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Internal: the stdio MCP server a Claude Code agent starts to reach its session's host
    /// tools; it relays to SOCKET and holds nothing itself.
    #[command(hide = true)]
    McpBridge {
        /// The session's tools socket.
        socket: PathBuf,
    },
}

/// `symphony audit ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Verify day files, or every `*.ndjson` in a directory (default: `audit`).
    Verify {
        /// Files or directories.
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
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

    /// The state root (the audit log lives there); overrides `$SYMPHONY_STATE_DIR` and
    /// `state.root`.
    #[arg(long, value_name = "DIR")]
    pub(crate) state_dir: Option<PathBuf>,
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

/// Which daemon an operator command goes to.
#[derive(Debug, Args)]
pub(crate) struct DaemonUrl {
    /// The daemon's HTTP address [default: the local daemon that registered last, else
    /// http://127.0.0.1:8080]; bearer token from $SYMPHONY_TOKEN when set.
    #[arg(long)]
    pub(crate) url: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The daemon's HTTP address [default: the local daemon that registered last, else
    /// http://127.0.0.1:8080].
    #[arg(long)]
    pub(crate) url: Option<String>,

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
    /// The NDJSON event log (header line, then one record per event). A rotated log is given
    /// as its segments, oldest first: `events.ndjson.2 events.ndjson.1 events.ndjson`.
    #[arg(value_name = "FILE", required = true, num_args = 1..)]
    pub(crate) files: Vec<PathBuf>,

    /// Exit 1 at the first record whose commands differ from the recorded ones, with a diff.
    #[arg(long)]
    pub(crate) check: bool,

    /// Stop after the record with this sequence number.
    #[arg(long, value_name = "SEQ")]
    pub(crate) until: Option<u64>,
}

impl LogFlags {
    /// The event-log rotation these flags ask for.
    pub(crate) fn rotation(&self) -> symphony::daemon::Rotation {
        symphony::daemon::Rotation {
            max_bytes: self.event_log_max_size,
            keep: self.event_log_keep,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_take_binary_suffixes_and_refuse_nonsense() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("2k"), Ok(2048));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("10").unwrap_err().contains("minimum"));
        assert!(parse_size("5T").unwrap_err().contains("unknown size unit"));
        assert!(parse_size("M").is_err());
        assert!(
            parse_size("99999999999G")
                .unwrap_err()
                .contains("too large")
        );
    }
}
