//! Operator controls (extension): pause and resume dispatch, stop one run, and the state that
//! must outlive the process ([`Durable`]: the pause and the day's token use), which the shell
//! keeps in its state root and hands back with [`crate::Event::StateRestored`] at start.

use serde::{Deserialize, Serialize};

use crate::command::{Command, Reason};
use crate::issue::IssueId;
use crate::orchestrator::Orchestrator;
use crate::state::{AfterStop, Claim, PendingStop, summarize};
use crate::time::{Timestamp, rfc3339};

/// Dispatch paused by an operator: nothing new starts (retries wait too) until a resume;
/// running agents go on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    /// What the operator said, capped like every message.
    pub reason: String,
    /// When.
    #[serde(with = "rfc3339")]
    pub since: Timestamp,
}

/// What the shell keeps across restarts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Durable {
    /// The operator's pause, if dispatch is paused.
    pub paused: Option<Pause>,
    /// The UTC day (days since the epoch) `day_tokens` counts.
    pub day: u64,
    /// Tokens used that day, for `agent.max_tokens_per_day`.
    pub day_tokens: u64,
}

/// What became of a stop request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopVerdict {
    /// The run was told to stop; the issue is held until it changes in the tracker.
    Stopping,
    /// No run of that issue is live.
    NotRunning,
}

impl Orchestrator {
    /// The state to keep across a restart.
    pub fn durable(&self) -> Durable {
        Durable {
            paused: self.operator_pause.clone(),
            day: self.today.day,
            day_tokens: self.today.tokens,
        }
    }

    /// The tokens `run` of issue `id` has used so far, while it is live.
    pub fn run_tokens(&self, id: &IssueId, run: crate::command::RunId) -> Option<crate::Tokens> {
        match self.claims.get(id) {
            Some(Claim::Running(entry) | Claim::Stopping(entry, _)) if entry.run == run => {
                Some(entry.tokens)
            }
            _ => None,
        }
    }

    /// Whether a stop request for `identifier` would reach a live run.
    pub fn stop_verdict(&self, identifier: &str) -> StopVerdict {
        if self.running_issue(identifier).is_some() {
            StopVerdict::Stopping
        } else {
            StopVerdict::NotRunning
        }
    }

    pub(crate) fn on_pause(&mut self, reason: &str) {
        let reason = if reason.trim().is_empty() {
            "paused by the operator".to_owned()
        } else {
            summarize(reason.trim())
        };
        self.operator_pause = Some(Pause {
            reason,
            since: self.now,
        });
    }

    pub(crate) fn on_resume(&mut self, out: &mut Vec<Command>) {
        if self.operator_pause.take().is_some() {
            // Dispatch what waited, now rather than at the next poll.
            self.on_refresh_requested(out);
            self.fire_due_retries(out);
        }
    }

    /// Stops the live run of `identifier` and holds the issue until it changes in the tracker
    /// (a resumed poll would otherwise start it again at once).
    /// The issue with the human-readable key `identifier`, when a run of it is live.
    fn running_issue(&self, identifier: &str) -> Option<IssueId> {
        self.claims.iter().find_map(|(id, claim)| match claim {
            Claim::Running(entry) if entry.issue.identifier == identifier => Some(id.clone()),
            _ => None,
        })
    }

    pub(crate) fn on_stop_requested(&mut self, identifier: &str, out: &mut Vec<Command>) {
        if let Some(id) = self.running_issue(identifier) {
            let stop = PendingStop {
                reason: Reason::OperatorStop,
                then: AfterStop::Hold,
            };
            self.stop_worker(&id, stop, false, out);
        }
    }

    /// Takes back what a previous process kept: its pause, and its day's token use when that
    /// day is still today.
    pub(crate) fn on_restored(&mut self, durable: &Durable) {
        if let Some(pause) = &durable.paused {
            self.operator_pause = Some(Pause {
                reason: summarize(&pause.reason),
                since: pause.since,
            });
        }
        if durable.day == crate::budget::DayUse::day_of(self.now)
            && durable.day_tokens > self.today.used(self.now)
        {
            self.today.day = durable.day;
            self.today.tokens = durable.day_tokens;
        }
    }

    /// Why dispatch is paused by the operator, for `paused_reason`.
    pub(crate) fn operator_pause_reason(&self) -> Option<String> {
        let pause = self.operator_pause.as_ref()?;
        Some(format!(
            "paused by the operator since {}: {}",
            pause.since.to_rfc3339(),
            pause.reason
        ))
    }
}
