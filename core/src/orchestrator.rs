//! The orchestrator: the single authority over scheduling state (SPEC 7, 8, 16).
//!
//! This file holds the state, the entry point, the tick sequence and lifecycle. The decisions
//! themselves live beside the SPEC section they implement: [`crate::select`] (8.2, 8.3),
//! [`crate::retry`] (8.4), [`crate::reconcile`] (8.5, 8.6), [`crate::worker`] (7.3 worker and
//! agent triggers), [`crate::snapshot`] (13.3).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::command::{Command, Reason, RequestId, RunId};
use crate::config::{Policy, SchedulerConfig};
use crate::event::{ConfigError, Event};
use crate::issue::IssueId;
use crate::state::{AfterStop, Claim, PendingStop, Tokens, WaitingEntry};
use crate::time::Timestamp;

/// The sans-IO scheduler. See the crate documentation for the driving contract.
///
/// Its whole state serialises (serde), so an event log can start a new segment from a
/// checkpoint ([`crate::log`]); the encoding is internal to the crate version that wrote it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Orchestrator {
    pub(crate) config: SchedulerConfig,
    /// Derived from `config`: not serialised, rebuilt when read back.
    #[serde(skip, default = "Policy::unset")]
    pub(crate) policy: Policy,
    /// The latest time seen; never moves backwards.
    pub(crate) now: Timestamp,
    pub(crate) lifecycle: Lifecycle,
    /// Every reserved issue and its claim state (SPEC 4.1.8 `claimed`, `running`,
    /// `retry_attempts` in one map, so an issue cannot be in two of them).
    pub(crate) claims: BTreeMap<IssueId, Claim>,
    /// Index of waiting retries by due time: exactly the `Retrying` claims not being checked.
    pub(crate) retry_queue: BTreeSet<(Timestamp, IssueId)>,
    /// Tracker requests awaiting an answer.
    pub(crate) pending: BTreeMap<RequestId, Pending>,
    pub(crate) tick: TickPhase,
    /// When the next poll tick is due; `None` while a tick runs or after shutdown.
    pub(crate) next_poll: Option<Timestamp>,
    pub(crate) last_tick_end: Option<Timestamp>,
    pub(crate) ticks_completed: u64,
    pub(crate) next_request: u64,
    pub(crate) next_run: u64,
    /// Set while the workflow on disk fails to load or validate (SPEC 6.3): no new dispatch.
    pub(crate) preflight_error: Option<ConfigError>,
    /// Set while the workspace filesystem is short of space: new dispatch is paused.
    pub(crate) disk_low: Option<String>,
    /// Aggregate tokens over every run (SPEC 13.5).
    pub(crate) totals: Tokens,
    /// Tokens used in the current UTC day, for `agent.max_tokens_per_day`.
    #[serde(default)]
    pub(crate) today: crate::budget::DayUse,
    /// Runtime of runs that have ended, in milliseconds.
    pub(crate) ended_runtime_ms: u64,
    pub(crate) rate_limits: Option<serde_json::Value>,
    /// Normal worker exits (SPEC 4.1.8 `completed`, kept as a count: a set would grow without
    /// bound over a daemon's lifetime and nothing decides on it).
    pub(crate) completed_runs: u64,
    /// Issues in an active state that the last candidate fetch did not dispatch, and why;
    /// rebuilt at every fetch.
    #[serde(default)]
    pub(crate) waiting: BTreeMap<IssueId, WaitingEntry>,
    /// Waiting candidates beyond the listed ones, counted at the last fetch.
    #[serde(default)]
    pub(crate) waiting_unlisted: usize,
    /// When the next workspace age sweep is due (`crate::sweep`); `None` before the first.
    #[serde(default)]
    pub(crate) next_sweep: Option<Timestamp>,
    /// Dispatch paused by an operator (`crate::operator`).
    #[serde(default)]
    pub(crate) operator_pause: Option<crate::operator::Pause>,
    /// Worker hosts left out of choice, and until when (Appendix A); expired holds are
    /// dropped at the next candidate pass.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) host_holds: BTreeMap<String, crate::state::HostHold>,
}

impl Serialize for Orchestrator {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Orchestrator::serialize(self, serializer)
    }
}

impl<'de> Deserialize<'de> for Orchestrator {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut orchestrator = Orchestrator::deserialize(deserializer)?;
        orchestrator.policy = Policy::new(&orchestrator.config);
        Ok(orchestrator)
    }
}

/// Service lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Lifecycle {
    /// Built, waiting for [`Event::Startup`].
    Created,
    /// Scheduling.
    Running,
    /// Stopping workers; no new work.
    ShuttingDown,
    /// Every worker has exited.
    Stopped,
}

/// Where the poll tick is (SPEC 8.1: reconcile, validate, fetch, dispatch).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum TickPhase {
    /// No tick in flight.
    Idle,
    /// Waiting for the refresh of running and blocked issues.
    Reconciling(RequestId),
    /// Waiting for candidates.
    Fetching(RequestId),
}

/// What an outstanding tracker request is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Pending {
    TerminalListing,
    Candidates,
    Reconcile {
        running: Vec<(IssueId, RunId)>,
        blocked: Vec<IssueId>,
    },
    RetryCheck(Vec<IssueId>),
    AfterTurn {
        issue_id: IssueId,
        run: RunId,
    },
}

impl Orchestrator {
    /// A fresh orchestrator with this config, waiting for [`Event::Startup`].
    pub fn new(config: SchedulerConfig) -> Self {
        let policy = Policy::new(&config);
        Self {
            config,
            policy,
            now: Timestamp::default(),
            lifecycle: Lifecycle::Created,
            claims: BTreeMap::new(),
            retry_queue: BTreeSet::new(),
            pending: BTreeMap::new(),
            tick: TickPhase::Idle,
            next_poll: None,
            last_tick_end: None,
            ticks_completed: 0,
            next_request: 1,
            next_run: 1,
            preflight_error: None,
            disk_low: None,
            totals: Tokens::default(),
            today: crate::budget::DayUse::default(),
            ended_runtime_ms: 0,
            rate_limits: None,
            completed_runs: 0,
            waiting: BTreeMap::new(),
            waiting_unlisted: 0,
            next_sweep: None,
            operator_pause: None,
            host_holds: BTreeMap::new(),
        }
    }

    /// The one mutator: apply `event`, which happened at `at`, and return what to do.
    ///
    /// Times must not decrease; an earlier `at` is treated as the latest time already seen.
    /// Events that refer to unknown issues, stale runs or requests nobody waits for change
    /// nothing.
    pub fn handle(&mut self, at: Timestamp, event: &Event) -> Vec<Command> {
        self.now = self.now.max(at);
        let mut out = Vec::new();
        match event {
            Event::Startup => self.on_startup(&mut out),
            Event::TimerFired => self.on_timer(&mut out),
            Event::CandidatesFetched { request, issues } => {
                self.on_candidates(*request, Some(issues), &mut out);
            }
            Event::CandidatesFetchFailed { request, .. } => {
                self.on_candidates(*request, None, &mut out);
            }
            Event::IssuesRefreshed { request, issues } => {
                self.on_refresh(*request, Some(issues), &mut out);
            }
            Event::IssuesRefreshFailed { request, .. } => self.on_refresh(*request, None, &mut out),
            Event::TerminalIssuesListed { request, issues } => {
                if self
                    .take_pending(*request, |p| *p == Pending::TerminalListing)
                    .is_some()
                {
                    self.clean_terminal_workspaces(issues, &mut out);
                }
            }
            Event::TerminalIssuesListFailed { request, .. } => {
                self.take_pending(*request, |p| *p == Pending::TerminalListing);
            }
            Event::WorkerStarted {
                issue_id,
                run,
                workspace_path,
            } => self.on_worker_started(issue_id, *run, workspace_path.as_deref()),
            Event::AgentUpdate {
                issue_id,
                run,
                update,
            } => self.on_agent_update(issue_id, *run, update, &mut out),
            Event::WorkerExited {
                issue_id,
                run,
                outcome,
            } => self.on_worker_exited(issue_id, *run, outcome, &mut out),
            Event::WorkflowReloaded { config } => self.on_reload(config, &mut out),
            Event::WorkflowInvalid { error } => self.preflight_error = Some(error.clone()),
            Event::DiskSpaceLow { free_mb, min_mb } => {
                self.disk_low = Some(format!(
                    "low disk space: {free_mb} MB free, {min_mb} MB required"
                ));
            }
            Event::DiskSpaceRecovered { .. } => self.disk_low = None,
            Event::RefreshRequested => self.on_refresh_requested(&mut out),
            Event::PauseRequested { reason } => self.on_pause(reason),
            Event::ResumeRequested => self.on_resume(&mut out),
            Event::StopRequested { identifier } => self.on_stop_requested(identifier, &mut out),
            Event::StateRestored { durable } => self.on_restored(durable),
            Event::Restarted => self.on_restarted(&mut out),
            Event::ShutdownRequested => self.on_shutdown(&mut out),
        }
        out
    }

    /// The earliest time at which [`Event::TimerFired`] has work to do, if any. The shell
    /// sleeps until then (or until another event arrives).
    pub fn next_deadline(&self) -> Option<Timestamp> {
        if self.lifecycle != Lifecycle::Running {
            return None;
        }
        let poll = self.next_poll.filter(|_| self.tick == TickPhase::Idle);
        let retry = (self.retry_queue.first())
            .filter(|_| self.operator_pause.is_none())
            .map(|(due, _)| *due);
        [poll, retry, self.next_run_limit()]
            .into_iter()
            .flatten()
            .min()
    }

    /// The config in force.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// The latest time seen.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Whether startup is done and at least one tick has completed (for `/readyz`).
    pub fn is_ready(&self) -> bool {
        self.lifecycle == Lifecycle::Running && self.ticks_completed > 0
    }

    /// Whether a poll tick is between its first tracker request and its dispatch decisions.
    pub fn tick_in_flight(&self) -> bool {
        self.tick != TickPhase::Idle
    }

    /// Whether shutdown has completed.
    pub fn is_stopped(&self) -> bool {
        self.lifecycle == Lifecycle::Stopped
    }

    fn on_startup(&mut self, out: &mut Vec<Command>) {
        if self.lifecycle != Lifecycle::Created {
            return;
        }
        self.lifecycle = Lifecycle::Running;
        if !self.policy.terminal.is_empty() {
            let request = self.new_request(Pending::TerminalListing);
            out.push(Command::ListTerminalIssues {
                request,
                states: self.config.terminal_states.clone(),
            });
        }
        self.start_tick(out);
    }

    fn on_timer(&mut self, out: &mut Vec<Command>) {
        if self.lifecycle != Lifecycle::Running {
            return;
        }
        if self.tick == TickPhase::Idle && self.next_poll.is_some_and(|due| due <= self.now) {
            self.start_tick(out);
        }
        self.enforce_run_limits(out);
        // An operator pause keeps retries waiting as they are (no attempt spent on a check
        // that could not dispatch); they fire on resume.
        if self.operator_pause.is_none() {
            self.fire_due_retries(out);
        }
    }

    /// SPEC 8.1 steps 1-2: reconcile first; candidates are fetched once the refresh answers.
    pub(crate) fn start_tick(&mut self, out: &mut Vec<Command>) {
        self.next_poll = None;
        self.detect_stalls(out);
        let mut running = Vec::new();
        let mut blocked = Vec::new();
        for (id, claim) in &self.claims {
            match claim {
                Claim::Running(entry) => running.push((id.clone(), entry.run)),
                Claim::Blocked(_) => blocked.push(id.clone()),
                Claim::Stopping(..) | Claim::Retrying(_) => {}
            }
        }
        if running.is_empty() && blocked.is_empty() {
            // SPEC 17.4: reconciliation with nothing running is a no-op.
            self.fetch_candidates(out);
            return;
        }
        let mut ids: Vec<IssueId> = running.iter().map(|(id, _)| id.clone()).collect();
        ids.extend(blocked.iter().cloned());
        ids.sort();
        let request = self.new_request(Pending::Reconcile { running, blocked });
        self.tick = TickPhase::Reconciling(request);
        out.push(Command::RefreshIssues { request, ids });
    }

    /// SPEC 8.1 steps 2-3: skip dispatch when the preflight fails, else fetch candidates.
    pub(crate) fn fetch_candidates(&mut self, out: &mut Vec<Command>) {
        let can_dispatch = self.lifecycle == Lifecycle::Running
            && self.preflight_error.is_none()
            && self.disk_low.is_none()
            && !self.policy.active.is_empty();
        if !can_dispatch {
            self.finish_tick(out);
            return;
        }
        let request = self.new_request(Pending::Candidates);
        self.tick = TickPhase::Fetching(request);
        out.push(Command::FetchCandidates {
            request,
            states: self.config.active_states.clone(),
        });
    }

    fn finish_tick(&mut self, out: &mut Vec<Command>) {
        self.tick = TickPhase::Idle;
        self.ticks_completed += 1;
        self.last_tick_end = Some(self.now);
        if self.lifecycle == Lifecycle::Running {
            let due = self.now.plus_millis(self.config.poll_interval_ms);
            self.next_poll = Some(due);
            out.push(Command::SchedulePoll { due_at: due });
        }
    }

    fn on_candidates(
        &mut self,
        request: RequestId,
        issues: Option<&[crate::Issue]>,
        out: &mut Vec<Command>,
    ) {
        if self
            .take_pending(request, |p| *p == Pending::Candidates)
            .is_none()
        {
            return;
        }
        if let Some(issues) = issues {
            self.dispatch_candidates(issues, out);
            if self.lifecycle == Lifecycle::Running {
                self.sweep_if_due(issues, out);
            }
        }
        if self.tick == TickPhase::Fetching(request) {
            self.finish_tick(out);
        }
    }

    fn on_refresh(
        &mut self,
        request: RequestId,
        issues: Option<&[crate::Issue]>,
        out: &mut Vec<Command>,
    ) {
        let Some(pending) = self.take_pending(request, |p| {
            matches!(
                p,
                Pending::Reconcile { .. } | Pending::RetryCheck(_) | Pending::AfterTurn { .. }
            )
        }) else {
            return;
        };
        match pending {
            Pending::Reconcile { running, blocked } => {
                if let Some(issues) = issues {
                    self.reconcile_running(&running, issues, out);
                    self.reconcile_blocked(&blocked, issues, out);
                }
                // SPEC 8.5: a failed refresh keeps workers running; the tick goes on.
                if self.tick == TickPhase::Reconciling(request) {
                    self.fetch_candidates(out);
                }
            }
            Pending::RetryCheck(ids) => self.check_retries(request, &ids, issues, out),
            Pending::AfterTurn { issue_id, run } => {
                self.after_turn(request, &issue_id, run, issues, out);
            }
            Pending::TerminalListing | Pending::Candidates => {}
        }
    }

    fn on_reload(&mut self, config: &SchedulerConfig, out: &mut Vec<Command>) {
        self.config = config.clone();
        self.policy = Policy::new(&self.config);
        self.preflight_error = None;
        // SPEC 5.3.2: a new interval applies to the poll already scheduled.
        if let (Lifecycle::Running, TickPhase::Idle, Some(due)) =
            (self.lifecycle, self.tick, self.next_poll)
        {
            let base = self.last_tick_end.unwrap_or(self.now);
            let new_due = base.plus_millis(self.config.poll_interval_ms).max(self.now);
            if new_due != due {
                self.next_poll = Some(new_due);
                out.push(Command::SchedulePoll { due_at: new_due });
            }
        }
    }

    pub(crate) fn on_refresh_requested(&mut self, out: &mut Vec<Command>) {
        match (self.lifecycle, self.tick) {
            (Lifecycle::Running, TickPhase::Idle) => {
                out.push(Command::RefreshQueued {
                    queued: true,
                    coalesced: false,
                });
                self.start_tick(out);
            }
            (Lifecycle::Running, _) => out.push(Command::RefreshQueued {
                queued: true,
                coalesced: true,
            }),
            _ => out.push(Command::RefreshQueued {
                queued: false,
                coalesced: false,
            }),
        }
    }

    fn on_shutdown(&mut self, out: &mut Vec<Command>) {
        if matches!(self.lifecycle, Lifecycle::ShuttingDown | Lifecycle::Stopped) {
            return;
        }
        self.lifecycle = Lifecycle::ShuttingDown;
        self.next_poll = None;
        let ids: Vec<IssueId> = self.claims.keys().cloned().collect();
        for id in ids {
            match self.claims.get(&id) {
                Some(Claim::Running(_)) => self.stop_worker(
                    &id,
                    PendingStop {
                        reason: Reason::Shutdown,
                        then: AfterStop::Release,
                    },
                    false,
                    out,
                ),
                // Retries and holds stay in the state: a restart from the event log takes
                // them back (`crate::restart`).
                Some(Claim::Retrying(_) | Claim::Blocked(_) | Claim::Stopping(..)) | None => {}
            }
        }
        self.finish_shutdown_if_idle(out);
    }

    pub(crate) fn finish_shutdown_if_idle(&mut self, out: &mut Vec<Command>) {
        let busy = self
            .claims
            .values()
            .any(|c| matches!(c, Claim::Running(_) | Claim::Stopping(..)));
        if self.lifecycle == Lifecycle::ShuttingDown && !busy {
            self.lifecycle = Lifecycle::Stopped;
            out.push(Command::ShutdownComplete);
        }
    }

    pub(crate) fn new_request(&mut self, purpose: Pending) -> RequestId {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        self.pending.insert(id, purpose);
        id
    }

    pub(crate) fn new_run(&mut self) -> RunId {
        let id = RunId(self.next_run);
        self.next_run += 1;
        id
    }

    /// Removes and returns the pending request if it exists and is of the expected kind; a
    /// response of the wrong kind leaves the real request waiting.
    fn take_pending(
        &mut self,
        request: RequestId,
        expected: impl Fn(&Pending) -> bool,
    ) -> Option<Pending> {
        if self.pending.get(&request).is_some_and(expected) {
            self.pending.remove(&request)
        } else {
            None
        }
    }

    /// Sets an issue's claim, keeping the retry index in step.
    pub(crate) fn set_claim(&mut self, id: &IssueId, claim: Claim) {
        self.remove_claim(id);
        if let Claim::Retrying(entry) = &claim
            && entry.checking.is_none()
        {
            self.retry_queue.insert((entry.due_at, id.clone()));
        }
        self.claims.insert(id.clone(), claim);
    }

    /// Removes an issue's claim, keeping the retry index in step.
    pub(crate) fn remove_claim(&mut self, id: &IssueId) -> Option<Claim> {
        let claim = self.claims.remove(id)?;
        if let Claim::Retrying(entry) = &claim
            && entry.checking.is_none()
        {
            self.retry_queue.remove(&(entry.due_at, id.clone()));
        }
        Some(claim)
    }

    /// Drops the claim (SPEC 7.1 `Released`).
    pub(crate) fn release(&mut self, id: &IssueId, reason: Reason, out: &mut Vec<Command>) {
        if self.remove_claim(id).is_some() {
            out.push(Command::ReleaseClaim {
                issue_id: id.clone(),
                reason,
            });
        }
    }

    /// Checks the structural invariants; `Err` names the first one broken. Tests and fuzzers
    /// call this after every event.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut queued = BTreeSet::new();
        let mut runs = BTreeSet::new();
        for (id, claim) in &self.claims {
            match claim {
                Claim::Running(entry) | Claim::Stopping(entry, _) => {
                    if entry.issue.id != *id {
                        return Err(format!("claim {id} holds issue {}", entry.issue.id));
                    }
                    if !runs.insert(entry.run) {
                        return Err(format!("{} used twice", entry.run));
                    }
                    if let (Claim::Running(_), Some(req)) = (claim, entry.awaiting_refresh) {
                        let expected = Pending::AfterTurn {
                            issue_id: id.clone(),
                            run: entry.run,
                        };
                        if self.pending.get(&req) != Some(&expected) {
                            return Err(format!("{id} waits on {req} which is not pending"));
                        }
                    }
                }
                Claim::Retrying(entry) => match entry.checking {
                    None => {
                        queued.insert((entry.due_at, id.clone()));
                    }
                    Some(req) => match self.pending.get(&req) {
                        Some(Pending::RetryCheck(ids)) if ids.contains(id) => {}
                        _ => return Err(format!("retry of {id} checks on {req}, not pending")),
                    },
                },
                Claim::Blocked(_) => {}
            }
        }
        if queued != self.retry_queue {
            return Err("retry queue index differs from the retrying claims".into());
        }
        match self.tick {
            TickPhase::Idle => {
                let should_poll = self.lifecycle == Lifecycle::Running;
                if should_poll != self.next_poll.is_some() {
                    return Err(format!(
                        "idle tick with next_poll {:?} in {:?}",
                        self.next_poll, self.lifecycle
                    ));
                }
            }
            TickPhase::Reconciling(req) | TickPhase::Fetching(req) => {
                if !self.pending.contains_key(&req) || self.next_poll.is_some() {
                    return Err(format!("tick in flight on {req} is inconsistent"));
                }
            }
        }
        let live =
            (self.claims.values()).any(|c| matches!(c, Claim::Running(_) | Claim::Stopping(..)));
        if self.lifecycle == Lifecycle::Stopped && live {
            return Err("stopped with a live run left".into());
        }
        Ok(())
    }
}
