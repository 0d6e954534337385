//! `symphony`: the imperative shell around `symphony-core`.
//!
//! `symphony [WORKFLOW]` runs the daemon; `demo`, `check`, `config` and `replay` are the
//! operator commands.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;

mod check;
mod cli;
mod doctor;
mod replay;
mod status;

/// What a command prints and how it ends.
pub(crate) struct Outcome {
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) success: bool,
}

impl Outcome {
    fn finish(self) -> ExitCode {
        // Every secret masked, and control characters from outside (identifiers, messages,
        // errors) escaped so they cannot drive the terminal. Output errors (a closed pipe) are
        // a normal end, not worth a panic.
        let clean = |text: &str| {
            let masked = symphony::redact::mask(text);
            symphony::redact::escape_controls(&masked, &['\n', '\t']).into_owned()
        };
        let _ = std::io::stdout().write_all(clean(&self.stdout).as_bytes());
        let _ = std::io::stderr().write_all(clean(&self.stderr).as_bytes());
        if self.success {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

/// The embedded default setup (`examples/local`), written out by `symphony demo`.
const DEMO_FILES: [(&str, &str); 6] = [
    (
        "WORKFLOW.md",
        include_str!("../../examples/local/WORKFLOW.md"),
    ),
    ("README.md", include_str!("../../examples/local/README.md")),
    (
        "issues/DEMO-1.md",
        include_str!("../../examples/local/issues/DEMO-1.md"),
    ),
    (
        "issues/DEMO-2.md",
        include_str!("../../examples/local/issues/DEMO-2.md"),
    ),
    (
        "issues/DEMO-3.md",
        include_str!("../../examples/local/issues/DEMO-3.md"),
    ),
    (
        "issues/DEMO-4.md",
        include_str!("../../examples/local/issues/DEMO-4.md"),
    ),
];

/// stderr (human, coloured on a terminal unless `NO_COLOR`) and, with `--logs-root`, a log
/// file in the chosen format. `SYMPHONY_LOG` sets the filter (default `info`).
fn init_logging(flags: &cli::LogFlags) -> Result<(), String> {
    use std::io::IsTerminal as _;
    use symphony::redact::{Controls, RedactingWriter};
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let filter = tracing_subscriber::EnvFilter::try_from_env("SYMPHONY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let controls = if color {
        Controls::KeepColours
    } else {
        Controls::Escape
    };
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(move || RedactingWriter::new(std::io::stderr(), controls))
        .with_target(false)
        .with_ansi(color);
    let file = match &flags.logs_root {
        None => None,
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create the logs root {}: {e}", dir.display()))?;
            let path = dir.join("symphony.log");
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            let file = std::sync::Arc::new(file);
            let format = flags.log_format;
            let writer = move || {
                let controls = match format {
                    cli::LogFormat::Human => Controls::Escape,
                    cli::LogFormat::Json => Controls::Keep,
                };
                RedactingWriter::new(SharedFile(std::sync::Arc::clone(&file)), controls)
            };
            Some(match flags.log_format {
                cli::LogFormat::Human => tracing_subscriber::fmt::layer()
                    .with_writer(writer)
                    .with_target(false)
                    .with_ansi(false)
                    .boxed(),
                cli::LogFormat::Json => tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_writer(writer)
                    .boxed(),
            })
        }
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(stderr)
        .with(file)
        .try_init()
        .map_err(|e| format!("cannot set up logging: {e}"))
}

/// The log file, shared by every record's writer; each record is one append.
struct SharedFile(std::sync::Arc<std::fs::File>);

impl std::io::Write for SharedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&*self.0).write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        (&*self.0).flush()
    }
}

/// Writes `bytes` to stdout; a closed pipe (`symphony man | head`) is a normal end.
fn print_bytes(bytes: &[u8], what: &str) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write {what}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The subcommand a positional argument that names no file was probably meant to be
/// (`symphony stauts`): a bare word within two edits of a subcommand's name.
fn mistyped_command(path: &std::path::Path) -> Option<String> {
    if path.exists() || path.components().count() != 1 {
        return None;
    }
    let word = path.to_str()?;
    let command = <cli::Cli as clap::CommandFactory>::command();
    command
        .get_subcommands()
        .map(|sub| sub.get_name().to_owned())
        .map(|name| (strsim::damerau_levenshtein(word, &name), name))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, name)| name)
}

/// Marks a directory `symphony demo` wrote, so a later run may reset it.
const DEMO_MARK: &str = ".symphony-demo";

/// Writes a fresh copy of the demo setup into `dir`: every run starts from the same issues
/// (an earlier run left them `Done`), and the example files in the repository are never
/// touched. A directory the demo did not write is refused, not overwritten; one written by an
/// older version (no mark, but the demo's files) is taken as the demo's.
fn write_demo(dir: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
    let ours = dir.join(DEMO_MARK).is_file()
        || (dir.join("WORKFLOW.md").is_file() && dir.join("issues/DEMO-1.md").is_file());
    let empty = std::fs::read_dir(dir).map_or(true, |mut entries| entries.next().is_none());
    if !ours && !empty {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "the directory exists and is not a symphony demo; give `symphony demo` another one",
        ));
    }
    for generated in ["issues", "workspaces"] {
        match std::fs::remove_dir_all(dir.join(generated)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    for (name, text) in DEMO_FILES {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, text)?;
    }
    std::fs::write(
        dir.join(DEMO_MARK),
        "written by `symphony demo`, which resets this directory on every run\n",
    )?;
    Ok(dir.join("WORKFLOW.md"))
}

fn main() -> ExitCode {
    // The values of the conventional secret variables are masked in all output from here on.
    symphony::redact::register(Vec::new());
    let cli = cli::Cli::parse();
    match cli.command {
        Some(cli::Command::Replay(args)) => replay::run(&args).finish(),
        Some(cli::Command::Check(args)) => check::check(&args).finish(),
        Some(cli::Command::Config(args)) => check::config(&args).finish(),
        Some(cli::Command::Status(args)) => status::run(&args).finish(),
        Some(cli::Command::Pause { reason, daemon }) => {
            let body = serde_json::json!({ "reason": reason.unwrap_or_default() });
            status::control(daemon.url, "/api/v1/pause", Some(body)).finish()
        }
        Some(cli::Command::Resume { daemon }) => {
            status::control(daemon.url, "/api/v1/resume", None).finish()
        }
        Some(cli::Command::Stop { identifier, daemon }) => {
            let path = format!(
                "/api/v1/issues/{}/stop",
                symphony::http::path_segment(&identifier)
            );
            status::control(daemon.url, &path, None).finish()
        }
        Some(cli::Command::Doctor(args)) => doctor::run(&args).finish(),
        Some(cli::Command::Completions { shell }) => {
            let mut command = <cli::Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "symphony", &mut script);
            print_bytes(&script, "the completion script")
        }
        Some(cli::Command::Audit {
            command: cli::AuditCommand::Verify { paths },
        }) => audit_verify(&paths),
        Some(cli::Command::McpBridge { socket }) => {
            match symphony::agent::claude::tools::bridge(&socket) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!(
                        "error: cannot reach the session's tools at {}: {e}",
                        socket.display()
                    );
                    ExitCode::FAILURE
                }
            }
        }
        Some(cli::Command::Man) => {
            let command = <cli::Cli as clap::CommandFactory>::command();
            let mut page = Vec::new();
            match clap_mangen::Man::new(command).render(&mut page) {
                Ok(()) => print_bytes(&page, "the man page"),
                Err(e) => {
                    eprintln!("error: cannot render the man page: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(cli::Command::Demo(args)) => {
            if let Err(e) = init_logging(&args.logs) {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
            let workflow = match write_demo(&args.dir) {
                Ok(path) => path,
                Err(e) => {
                    eprintln!(
                        "error: cannot write the demo into {}: {e}",
                        args.dir.display()
                    );
                    return ExitCode::FAILURE;
                }
            };
            eprintln!(
                "symphony demo in {dir} (a fresh copy; `symphony {dir}/WORKFLOW.md` would \
                 continue it instead): watch {dir}/issues and {dir}/workspaces; Ctrl-C to stop",
                dir = args.dir.display(),
            );
            symphony::daemon::run(symphony::daemon::Options {
                workflow,
                overrides: symphony::workflow::Overrides::default(),
                event_log: Some(args.event_log.unwrap_or_else(|| {
                    args.logs
                        .logs_root
                        .as_ref()
                        .unwrap_or(&args.dir)
                        .join("events.ndjson")
                })),
                event_log_rotation: args.logs.rotation(),
                announce_status: true,
                // Every demo starts from its fresh copy.
                fresh: true,
            })
        }
        None => {
            if let Some(given) = cli.workflow.as_deref()
                && let Some(word) = mistyped_command(given)
            {
                eprintln!(
                    "error: {} is neither a workflow file nor a command; did you mean \
                     `symphony {word}`?",
                    given.display()
                );
                return ExitCode::from(2);
            }
            if let Err(e) = init_logging(&cli.logs) {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
            let event_log = cli.event_log.or_else(|| {
                cli.logs
                    .logs_root
                    .as_ref()
                    .map(|dir| dir.join("events.ndjson"))
            });
            symphony::daemon::run(symphony::daemon::Options {
                workflow: cli
                    .workflow
                    .unwrap_or_else(symphony::workflow::default_path),
                overrides: symphony::workflow::Overrides {
                    port: cli.server.port,
                    bind: cli.server.bind,
                    state_dir: cli.server.state_dir,
                },
                event_log,
                event_log_rotation: cli.logs.rotation(),
                announce_status: false,
                fresh: cli.fresh,
            })
        }
    }
}

/// `symphony audit verify`: the day files named, or found in the directories named, in day
/// order.
fn audit_verify(paths: &[std::path::PathBuf]) -> ExitCode {
    use symphony::audit;
    let paths = if paths.is_empty() {
        vec![std::path::PathBuf::from("audit")]
    } else {
        paths.to_vec()
    };
    let mut files = Vec::new();
    for path in &paths {
        if path.is_dir() {
            match audit::day_files(path) {
                Ok(found) => files.extend(found),
                Err(e) => {
                    eprintln!("error: cannot read {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
        } else {
            files.push(path.clone());
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    match audit::verify(&files) {
        Err(e) => {
            eprintln!("error: cannot read the audit log: {e}");
            ExitCode::FAILURE
        }
        Ok(Err(failure)) => {
            let kind = match failure.kind {
                audit::Break::Edited => "a record was edited: its content does not match its hash",
                audit::Break::Deleted => "a record before this one was deleted",
                audit::Break::InsertedOrReordered => {
                    "a record was inserted, or records reordered, before this one"
                }
                audit::Break::Truncated => "the file is cut short: this line is not a whole record",
                audit::Break::BrokenLinkAcrossDays => {
                    "this day does not continue the day before: its last records are missing"
                }
            };
            eprintln!("error: {}:{}: {kind}", failure.file.display(), failure.line);
            ExitCode::FAILURE
        }
        Ok(Ok(report)) => {
            println!(
                "ok: {} records in {} files, chain intact",
                report.records,
                files.len()
            );
            if let Some((file, line)) = report.torn {
                println!(
                    "note: {}:{line} is a torn last line (a crash mid-write); the chain before it is intact",
                    file.display()
                );
            }
            ExitCode::SUCCESS
        }
    }
}
