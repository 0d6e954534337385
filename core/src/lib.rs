//! The Symphony orchestrator as a deterministic state machine (SPEC 4, 7, 8, 16).
//!
//! This crate performs no I/O, reads no clock, spawns nothing and uses no randomness. It is
//! driven entirely by its caller, the shell:
//!
//! * **Input**: [`Orchestrator::handle`]`(at, &event)` is the only mutator. `at` is when the
//!   event happened, in milliseconds since the epoch, from one clock that does not go
//!   backwards (an earlier value is treated as the latest seen).
//! * **Output**: the returned [`Command`]s, in order. The shell executes each one and answers
//!   every request command with exactly one response event carrying its [`RequestId`].
//! * **Time**: [`Orchestrator::next_deadline`] is the only timer. The shell sleeps until it
//!   (or until another event arrives) and then feeds [`Event::TimerFired`]. Firing early or
//!   twice is harmless, so the shell never cancels a timer.
//! * **Reads**: [`Orchestrator::snapshot`] and [`Orchestrator::issue_detail`] for status
//!   surfaces; they change nothing.
//!
//! The run loop, then:
//!
//! 1. Build with [`Orchestrator::new`] and feed [`Event::Startup`].
//! 2. Execute the returned commands; their results come back later as events.
//! 3. Wait for the next event or for [`Orchestrator::next_deadline`], whichever is first.
//! 4. Feed it with its time; go to 2.
//!
//! Same events in, same commands out: a [`log`] of events replays bit for bit.
//!
//! # Module map (by SPEC section)
//!
//! | Module          | SPEC      | What                                             |
//! |-----------------|-----------|--------------------------------------------------|
//! | [`issue`]       | 4.1.1 4.2 | the normalised issue, state matching             |
//! | [`config`]      | 5.3 6.4   | the scheduling settings                          |
//! | [`event`]       | 7.3       | inputs                                           |
//! | [`command`]     | 7.3 16    | outputs                                          |
//! | `state`         | 4.1 7.1   | claim states and entries                         |
//! | `orchestrator`  | 7 8.1 16  | entry point, tick sequence, lifecycle            |
//! | `select`        | 8.2 8.3   | eligibility, order, slots, dispatch permits      |
//! | `retry`         | 8.4       | retry queue and backoff                          |
//! | `reconcile`     | 8.5 8.6   | stalls, tracker refresh, between-turn decisions  |
//! | `worker`        | 7.3 13.5  | agent updates, token accounting, worker exits    |
//! | `budget`        | -         | run timeout, per-claim token/turn/time budgets   |
//! | [`snapshot`]    | 13.3      | status views                                     |
//! | [`log`]         | -         | NDJSON event log and replay                      |
//! | [`time`]        | -         | timestamps as values, RFC 3339                   |

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod budget;
pub mod command;
pub mod config;
mod display;
pub mod event;
pub mod issue;
pub mod log;
mod operator;
mod orchestrator;
mod reconcile;
mod restart;
mod retry;
mod select;
pub mod snapshot;
mod state;
mod sweep;
pub mod time;
mod worker;

pub use command::{Command, Reason, RequestId, RetryKind, RunId};
pub use config::SchedulerConfig;
pub use event::{
    AgentUpdate, ConfigError, ConfigErrorClass, Event, ExitOutcome, TrackerError,
    TrackerErrorCategory,
};
pub use issue::{BlockerRef, Issue, IssueId};
pub use operator::{Durable, Pause, StopVerdict};
pub use orchestrator::Orchestrator;
pub use restart::RESTART_ERROR;
pub use retry::failure_backoff_ms;
pub use snapshot::Snapshot;
pub use state::{MAX_MESSAGE_CHARS, Tokens};
pub use time::Timestamp;
