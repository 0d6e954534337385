//! `symphony`: the imperative shell around `symphony-core`.
//!
//! Today it offers `check`, `config` and `replay`; the daemon itself (trackers, workspaces,
//! agents, HTTP) is being built in the issues listed in README.md.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;

mod check;
mod cli;
mod replay;

/// What a command prints and how it ends.
pub(crate) struct Outcome {
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) success: bool,
}

impl Outcome {
    fn finish(self) -> ExitCode {
        // Output errors (a closed pipe) are not worth a panic.
        let _ = std::io::stdout().write_all(self.stdout.as_bytes());
        let _ = std::io::stderr().write_all(self.stderr.as_bytes());
        if self.success {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.command {
        Some(cli::Command::Replay(args)) => replay::run(&args).finish(),
        Some(cli::Command::Check(args)) => check::check(&args).finish(),
        Some(cli::Command::Config(args)) => check::config(&args).finish(),
        None => {
            let workflow = cli
                .workflow
                .unwrap_or_else(|| std::path::PathBuf::from("WORKFLOW.md"));
            eprintln!(
                "error: the daemon is not implemented yet (it would run {}); \
                 see README.md for what works today",
                workflow.display()
            );
            ExitCode::FAILURE
        }
    }
}
