//! A deterministic simulator: the orchestrator plus a fake tracker board and a fake shell.
//!
//! The sim answers request commands from its board, keeps the set of live workers the way a
//! real shell would (a worker exists from `Dispatch` until its exit is delivered), records a
//! readable transcript for snapshots and the log records for replay, and checks after every
//! event the invariants that must hold whatever the events were.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use symphony_core::log::{LogHeader, LogRecord};
use symphony_core::{
    AgentUpdate, Command, ConfigError, ConfigErrorClass, Event, ExitOutcome, Issue, IssueId,
    Orchestrator, RequestId, RetryKind, RunId, SchedulerConfig, Timestamp, TrackerError,
    TrackerErrorCategory, failure_backoff_ms,
};

/// 2026-01-01T00:00:00Z: scenarios start here so times read naturally.
pub(crate) const T0: Timestamp = Timestamp(1_767_225_600_000);

/// An issue with id `i<n>` and identifier `MT-<n>`, created `n` minutes after T0.
pub(crate) fn issue(n: u32, state: &str) -> Issue {
    Issue {
        id: IssueId(format!("i{n}")),
        identifier: format!("MT-{n}"),
        title: format!("Issue {n}"),
        state: state.to_owned(),
        dispatchable: true,
        created_at: Some(T0.plus_millis(u64::from(n) * 60_000)),
        url: Some(format!("https://tracker.example/MT-{n}")),
        ..Issue::default()
    }
}

pub(crate) fn id(n: u32) -> IssueId {
    IssueId(format!("i{n}"))
}

pub(crate) fn tracker_error(message: &str) -> TrackerError {
    TrackerError {
        category: TrackerErrorCategory::TrackerRequest,
        message: message.to_owned(),
    }
}

fn norm(s: &str) -> String {
    s.trim().to_lowercase()
}

pub(crate) struct Sim {
    pub(crate) orch: Orchestrator,
    pub(crate) header: LogHeader,
    pub(crate) now: Timestamp,
    pub(crate) board: BTreeMap<IssueId, Issue>,
    /// Request commands not yet answered, oldest first.
    pub(crate) open: Vec<Command>,
    /// Workers the fake shell is running: issue -> run.
    pub(crate) live: BTreeMap<IssueId, RunId>,
    /// Runs told to stop and not yet reported gone.
    pub(crate) stopping: BTreeSet<RunId>,
    pub(crate) cleaned: Vec<String>,
    pub(crate) records: Vec<LogRecord>,
    pub(crate) transcript: String,
    shutdown_complete: bool,
}

impl Sim {
    pub(crate) fn new(config: SchedulerConfig) -> Self {
        Self {
            header: LogHeader::new(&config),
            orch: Orchestrator::new(config),
            now: T0,
            board: BTreeMap::new(),
            open: Vec::new(),
            live: BTreeMap::new(),
            stopping: BTreeSet::new(),
            cleaned: Vec::new(),
            records: Vec::new(),
            transcript: String::new(),
            shutdown_complete: false,
        }
    }

    /// Puts (or replaces) an issue on the tracker board.
    pub(crate) fn put(&mut self, issue: Issue) {
        let _ = writeln!(
            self.transcript,
            "# tracker: {} is {:?}{}",
            issue.identifier,
            issue.state,
            if issue.dispatchable {
                ""
            } else {
                " (not dispatchable)"
            }
        );
        self.board.insert(issue.id.clone(), issue);
    }

    pub(crate) fn remove(&mut self, n: u32) {
        let _ = writeln!(self.transcript, "# tracker: MT-{n} deleted");
        self.board.remove(&id(n));
    }

    pub(crate) fn note(&mut self, text: &str) {
        let _ = writeln!(self.transcript, "# {text}");
    }

    pub(crate) fn advance(&mut self, ms: u64) {
        self.now = self.now.plus_millis(ms);
    }

    /// Feeds one event at the current time, records it and checks every invariant.
    pub(crate) fn feed(&mut self, event: Event) -> Vec<Command> {
        let commands = self.orch.handle(self.now, &event);
        let seconds = self.now.millis_since(T0) as f64 / 1000.0;
        let _ = writeln!(self.transcript, "[+{seconds:.3}s] {event}");
        for command in &commands {
            let _ = writeln!(self.transcript, "    -> {command}");
        }
        self.check(&event, &commands);
        self.track(&commands);
        self.records.push(LogRecord {
            seq: self.records.len() as u64 + 1,
            at: self.now,
            event,
            commands: commands.clone(),
        });
        commands
    }

    fn track(&mut self, commands: &[Command]) {
        for command in commands {
            match command {
                Command::FetchCandidates { .. }
                | Command::RefreshIssues { .. }
                | Command::ListTerminalIssues { .. } => self.open.push(command.clone()),
                Command::Dispatch { issue_id, run, .. } => {
                    self.live.insert(issue_id.clone(), *run);
                }
                Command::StopWorker { run, .. } => {
                    self.stopping.insert(*run);
                }
                Command::CleanWorkspace { identifier, .. } => self.cleaned.push(identifier.clone()),
                Command::ShutdownComplete => self.shutdown_complete = true,
                _ => {}
            }
        }
    }

    /// The checks that hold after every event, whatever the events were.
    fn check(&self, event: &Event, commands: &[Command]) {
        if let Err(broken) = self.orch.check_invariants() {
            panic!("invariant broken after {event}: {broken}");
        }
        let config = self.orch.config();
        let snapshot = self.orch.snapshot(self.now);
        let mut dispatched_states = Vec::new();
        for command in commands {
            match command {
                Command::Dispatch {
                    issue_id,
                    issue,
                    host,
                    ..
                } => {
                    // No issue runs twice (on one host or two): the shell must not have a
                    // worker for it already.
                    assert!(
                        !self.live.contains_key(issue_id),
                        "{issue_id} dispatched while its worker is still alive"
                    );
                    // Hosts configured: always one of them, never this machine; none: local.
                    match host {
                        Some(host) => {
                            assert!(config.worker_hosts.contains(host), "{host} is no host");
                            let held = snapshot.hosts.iter().find(|h| &h.host == host);
                            assert!(
                                held.is_some_and(|h| h.held_until.is_none()),
                                "{issue_id} dispatched to {host}, which is held out"
                            );
                        }
                        None => assert!(
                            config.worker_hosts.is_empty(),
                            "{issue_id} dispatched locally with worker hosts configured"
                        ),
                    }
                    assert_eligible(config, issue);
                    dispatched_states.push(norm(&issue.state));
                }
                Command::ScheduleRetry {
                    attempt,
                    delay_ms,
                    kind,
                    due_at,
                    ..
                } => {
                    assert_eq!(*due_at, self.now.plus_millis(*delay_ms));
                    match kind {
                        RetryKind::Continuation | RetryKind::Host => assert_eq!(*delay_ms, 1000),
                        RetryKind::Restart => assert_eq!(*delay_ms, 0),
                        RetryKind::Failure => {
                            let cap = config.max_retry_backoff_ms;
                            let expected =
                                (10_000u128 << (attempt - 1).min(100)).min(u128::from(cap)) as u64;
                            assert_eq!(*delay_ms, expected, "backoff for attempt {attempt}");
                            assert!(*delay_ms <= cap);
                            assert_eq!(*delay_ms, failure_backoff_ms(*attempt, cap));
                        }
                    }
                }
                _ => {}
            }
        }
        // A host's count is its running rows; a host dispatched to in this step is within its
        // cap (a reload may lower the cap below what another host already runs).
        let dispatched_hosts: Vec<&String> = (commands.iter())
            .filter_map(|c| match c {
                Command::Dispatch { host, .. } => host.as_ref(),
                _ => None,
            })
            .collect();
        for host in &snapshot.hosts {
            let rows = (snapshot.running.iter())
                .filter(|row| row.host.as_deref() == Some(host.host.as_str()))
                .count();
            assert_eq!(rows, host.running as usize, "{} count", host.host);
            if dispatched_hosts.contains(&&host.host)
                && let Some(cap) = config.max_concurrent_agents_per_host
            {
                assert!(
                    host.running <= cap,
                    "{} runs {} over its cap {cap}",
                    host.host,
                    host.running
                );
            }
        }
        // A step that dispatched leaves running within both limits in force.
        if !dispatched_states.is_empty() {
            let running = snapshot.running.len();
            assert!(
                running <= config.max_concurrent_agents as usize,
                "{running} running over the global limit {}",
                config.max_concurrent_agents
            );
            let limits = config.state_limits();
            for state in dispatched_states {
                let limit = limits
                    .get(&state)
                    .copied()
                    .unwrap_or(config.max_concurrent_agents) as usize;
                let in_state = snapshot
                    .running
                    .iter()
                    .filter(|row| norm(&row.state) == state)
                    .count();
                assert!(
                    in_state <= limit,
                    "{in_state} running in {state:?} over {limit}"
                );
            }
        }
        // A timer fired at or after a run's timeout leaves that run stopping, never running on.
        if let (Event::TimerFired, Some(limit)) = (event, config.run_timeout_ms) {
            for row in snapshot.running.iter().filter(|r| r.stopping.is_none()) {
                let age = self.now.millis_since(row.started_at);
                assert!(
                    age < limit,
                    "{} runs {age} ms past a timer, limit {limit}",
                    row.issue_id
                );
            }
        }
        // Every claimed issue is in exactly one claim state.
        let mut seen = BTreeSet::new();
        let ids = snapshot
            .running
            .iter()
            .map(|r| &r.issue_id)
            .chain(snapshot.retrying.iter().map(|r| &r.issue_id))
            .chain(snapshot.blocked.iter().map(|r| &r.issue_id));
        for issue_id in ids {
            assert!(
                seen.insert(issue_id.clone()),
                "{issue_id} in two claim states"
            );
        }
        // The core's running view is exactly the shell's live workers (before this step's
        // dispatches are tracked, those are the new ones).
        let mut expected: BTreeSet<String> = self.live.keys().map(|i| i.0.clone()).collect();
        for command in commands {
            if let Command::Dispatch { issue_id, .. } = command {
                expected.insert(issue_id.0.clone());
            }
        }
        if let Event::WorkerExited { issue_id, run, .. } = event
            && self.live.get(issue_id) == Some(run)
        {
            expected.remove(&issue_id.0);
        }
        let running: BTreeSet<String> = snapshot
            .running
            .iter()
            .map(|r| r.issue_id.clone())
            .collect();
        assert_eq!(
            running, expected,
            "core running set differs from live workers"
        );
    }

    /// Jumps to the next deadline (if it is in the future) and fires the timer.
    pub(crate) fn fire(&mut self) -> Vec<Command> {
        if let Some(due) = self.orch.next_deadline() {
            self.now = self.now.max(due);
        }
        self.feed(Event::TimerFired)
    }

    fn answer(&self, command: &Command) -> Option<Event> {
        let by_states = |states: &[String]| -> Vec<Issue> {
            let wanted: BTreeSet<String> = states.iter().map(|s| norm(s)).collect();
            self.board
                .values()
                .filter(|i| wanted.contains(&norm(&i.state)))
                .cloned()
                .collect()
        };
        Some(match command {
            Command::FetchCandidates { request, states } => Event::CandidatesFetched {
                request: *request,
                issues: by_states(states),
            },
            Command::ListTerminalIssues { request, states } => Event::TerminalIssuesListed {
                request: *request,
                issues: by_states(states),
            },
            Command::RefreshIssues { request, ids } => Event::IssuesRefreshed {
                request: *request,
                issues: ids
                    .iter()
                    .filter_map(|i| self.board.get(i).cloned())
                    .collect(),
            },
            _ => return None,
        })
    }

    fn failure(command: &Command, message: &str) -> Option<Event> {
        let error = tracker_error(message);
        Some(match command {
            Command::FetchCandidates { request, .. } => Event::CandidatesFetchFailed {
                request: *request,
                error,
            },
            Command::ListTerminalIssues { request, .. } => Event::TerminalIssuesListFailed {
                request: *request,
                error,
            },
            Command::RefreshIssues { request, .. } => Event::IssuesRefreshFailed {
                request: *request,
                error,
            },
            _ => return None,
        })
    }

    /// Fires timers and answers requests until `done` holds, failing after 50 rounds
    /// instead of spinning forever.
    pub(crate) fn run_until(&mut self, done: impl Fn(&Self) -> bool) {
        for _ in 0..50 {
            if done(self) {
                return;
            }
            self.fire();
            self.respond_all();
        }
        panic!("condition not reached within 50 timer rounds");
    }

    /// Answers the oldest open request from the board.
    pub(crate) fn respond(&mut self) -> Vec<Command> {
        if self.open.is_empty() {
            return Vec::new();
        }
        let command = self.open.remove(0);
        let event = self.answer(&command).expect("open holds only requests");
        self.feed(event)
    }

    /// Fails the oldest open request.
    pub(crate) fn fail(&mut self, message: &str) -> Vec<Command> {
        if self.open.is_empty() {
            return Vec::new();
        }
        let command = self.open.remove(0);
        let event = Self::failure(&command, message).expect("open holds only requests");
        self.feed(event)
    }

    /// Answers requests until none is open.
    pub(crate) fn respond_all(&mut self) {
        let mut guard = 0;
        while !self.open.is_empty() {
            self.respond();
            guard += 1;
            assert!(guard < 1000, "requests keep coming: livelock");
        }
    }

    pub(crate) fn run_of(&self, n: u32) -> RunId {
        *self
            .live
            .get(&id(n))
            .unwrap_or_else(|| panic!("MT-{n} has no live worker"))
    }

    pub(crate) fn started(&mut self, n: u32) -> Vec<Command> {
        let run = self.run_of(n);
        self.feed(Event::WorkerStarted {
            issue_id: id(n),
            run,
            workspace_path: Some(format!("/ws/MT-{n}")),
        })
    }

    pub(crate) fn agent(&mut self, n: u32, update: AgentUpdate) -> Vec<Command> {
        let run = self.run_of(n);
        self.feed(Event::AgentUpdate {
            issue_id: id(n),
            run,
            update,
        })
    }

    /// Reports the live worker of MT-n gone with this outcome.
    pub(crate) fn exit(&mut self, n: u32, outcome: ExitOutcome) -> Vec<Command> {
        let run = self.run_of(n);
        let commands = self.feed(Event::WorkerExited {
            issue_id: id(n),
            run,
            outcome,
        });
        self.live.remove(&id(n));
        self.stopping.remove(&run);
        commands
    }

    /// Every worker told to stop reports its exit, as the shell does after stopping it.
    pub(crate) fn finish_stops(&mut self) {
        let stopping: Vec<(IssueId, RunId)> = self
            .live
            .iter()
            .filter(|(_, run)| self.stopping.contains(run))
            .map(|(i, r)| (i.clone(), *r))
            .collect();
        for (issue_id, run) in stopping {
            self.feed(Event::WorkerExited {
                issue_id: issue_id.clone(),
                run,
                outcome: ExitOutcome::Cancelled {
                    reason: "stopped by orchestrator".into(),
                },
            });
            self.live.remove(&issue_id);
            self.stopping.remove(&run);
        }
    }

    /// One turn: started, some tokens, completed.
    pub(crate) fn turn(&mut self, n: u32, turn: &str, tokens: u64) {
        self.agent(
            n,
            AgentUpdate::TurnStarted {
                turn_id: turn.into(),
            },
        );
        self.agent(
            n,
            AgentUpdate::TokenUsage {
                input_tokens: tokens,
                output_tokens: tokens / 2,
                total_tokens: tokens + tokens / 2,
            },
        );
        self.agent(
            n,
            AgentUpdate::TurnCompleted {
                turn_id: turn.into(),
            },
        );
    }

    pub(crate) fn reload(&mut self, config: SchedulerConfig) -> Vec<Command> {
        self.feed(Event::WorkflowReloaded { config })
    }

    pub(crate) fn invalid(&mut self, class: ConfigErrorClass) -> Vec<Command> {
        self.feed(Event::WorkflowInvalid {
            error: ConfigError {
                class,
                message: "WORKFLOW.md:3:1: bad".into(),
            },
        })
    }

    pub(crate) fn shutdown_complete(&self) -> bool {
        self.shutdown_complete
    }

    /// Starts the service and answers the startup requests.
    pub(crate) fn boot(&mut self) {
        self.feed(Event::Startup);
        self.respond_all();
    }

    /// A stale response: a request id nobody asked for.
    pub(crate) fn stale_response(&mut self) -> Vec<Command> {
        self.feed(Event::CandidatesFetched {
            request: RequestId(9_999_999),
            issues: self.board.values().cloned().collect(),
        })
    }
}

/// An independent statement of SPEC 8.2's issue-level rules, to check every dispatch.
fn assert_eligible(config: &SchedulerConfig, issue: &Issue) {
    let state = norm(&issue.state);
    let active = config.active_states.iter().any(|s| norm(s) == state);
    let terminal = config.terminal_states.iter().any(|s| norm(s) == state);
    assert!(
        active && !terminal,
        "dispatched {} in state {state:?}",
        issue.identifier
    );
    assert!(
        issue.dispatchable,
        "dispatched non-dispatchable {}",
        issue.identifier
    );
    for want in &config.required_labels {
        let want = norm(want);
        assert!(
            !want.is_empty() && issue.labels.iter().any(|l| norm(l) == want),
            "dispatched {} without label {want:?}",
            issue.identifier
        );
    }
    assert!(!issue.title.is_empty() && !issue.identifier.is_empty() && !issue.id.0.is_empty());
}
