//! The Symphony shell: everything that touches the world around `symphony-core`.
//!
//! The binary (`src/main.rs`) is thin; the pieces live here so tests, benches and fuzz
//! targets can reach them.
//!
//! | Module | SPEC | What |
//! |---|---|---|
//! | [`workflow`] | 5, 6, 12 | WORKFLOW.md: front matter, typed config, prompt template, reload |
//! | [`workspace`] | 9, 15.2, 15.4 | per-issue directories, hooks, cleanup, disk guard |
//! | [`host`] | 9, 10, 15 | the execution seam: processes and workspace files (`LocalHost`) |
//! | [`tracker`] | 11 | the kinds table; one room per adapter: local files, Linear, GitHub |
//! | [`agent`] | 10 | coding agents: the built-in demo agent, the Codex app-server runner |
//! | [`daemon`] | 16 | the event loop around the core, workers, signals, reload |
//! | [`redact`] | 15.3 | secrets masked and control characters escaped at every sink |
//! | [`http`] | 13.7 | dashboard, JSON API, health probes (a bounded HTTP/1.1 server on tokio) |

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod agent;
pub mod audit;
mod child;
pub mod daemon;
pub mod host;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod redact;
pub mod tracker;
pub mod workflow;
pub mod workspace;
