//! `symphony`: the imperative shell around `symphony-core`.
//!
//! Today it offers `symphony replay`; the daemon itself (trackers, workspaces, agents, HTTP)
//! is being built in the issues listed in README.md.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;

mod cli;
mod replay;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.command {
        Some(cli::Command::Replay(args)) => {
            let outcome = replay::run(&args);
            // Output errors (a closed pipe) are not worth a panic.
            let _ = std::io::stdout().write_all(outcome.stdout.as_bytes());
            let _ = std::io::stderr().write_all(outcome.stderr.as_bytes());
            if outcome.success {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
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
