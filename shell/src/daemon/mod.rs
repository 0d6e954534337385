//! The daemon: one task owns the orchestrator core; trackers, workers, timers, signals and the
//! workflow watcher send it events over a channel, and it executes the commands the core
//! returns (SPEC 16). It makes no scheduling decision of its own.

mod bound;
mod durable;
mod event_log;
mod housekeeping;
pub mod registry;
mod worker;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use symphony_core::log::Recorder;
use symphony_core::{
    AgentUpdate, Command, ConfigError, Event, IssueId, RunId, Timestamp, TrackerError,
    TrackerErrorCategory,
};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::http::{self, Answer, HttpServer, Query};
use crate::workflow::{
    self, DEFAULT_INTERVAL, ErrorClass, Overrides, ProcessEnv, WatchEvent, Watcher, Workflow,
};
use crate::workspace::{DiskGuard, IssueRef};
use bound::Bound;
use event_log::EventLog;
pub use event_log::Rotation;
use housekeeping::OrphanReport;
use worker::WorkerHandle;

/// How long shutdown waits for workers before exiting anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What arrives on the daemon's channel.
pub enum Input {
    /// An event for the core.
    Event(Event),
    /// The workflow watcher saw a change.
    Watch(WatchEvent),
    /// An HTTP request thread asks something; the answer goes back on the sender.
    Query(Query, http::Reply),
}

/// How the daemon was started.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The workflow file.
    pub workflow: PathBuf,
    /// Command-line overrides of the workflow.
    pub overrides: Overrides,
    /// Where to write the NDJSON event log (default: `events.ndjson` in the state root); the
    /// state is restored from it at start.
    pub event_log: Option<PathBuf>,
    /// When to cut the event log into a new segment.
    pub event_log_rotation: Rotation,
    /// Tell the person at the terminal how to watch this daemon (`symphony demo`).
    pub announce_status: bool,
    /// Do not restore from the event log.
    pub fresh: bool,
}

/// The recorder to carry on with: restored from the event log at `path` when there is one (its
/// last segment's checkpoint plus the records after it), else fresh. A torn last line (a crash
/// mid-write) is reported and left out; a log this build cannot read is refused with the way
/// out (`--fresh`). Returns whether a state was restored.
fn restore(
    path: &std::path::Path,
    config: &symphony_core::SchedulerConfig,
) -> Result<(Recorder, bool), String> {
    let fresh = || Ok((Recorder::new(config.clone()), false));
    // Only a regular file is read back (a device such as /dev/null or /dev/full is a place to
    // write to, never a state to restore); anything else is refused when the log is created.
    if !std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) {
        return fresh();
    }
    let text = match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => return fresh(),
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return fresh(),
        Err(e) => {
            return Err(format!(
                "cannot read the event log {} to restore from it: {e}; start fresh with --fresh",
                path.display()
            ));
        }
    };
    let (header, records, torn) = symphony_core::log::read_log_tolerating_torn_tail(&text)
        .map_err(|e| {
            format!(
                "cannot restore from the event log {}: {e}; start fresh with --fresh (the old \
                 log is then kept as {}.1)",
                path.display(),
                path.display()
            )
        })?;
    if let Some(torn) = torn {
        tracing::warn!(
            "the event log's last line ({}, {} bytes) was cut short by a crash; restored from \
             the records before it",
            torn.line,
            torn.bytes
        );
    }
    let next_seq = records.last().map_or(header.first_seq(), |r| r.seq + 1);
    let replay = symphony_core::log::replay(&header, &records, None);
    if let Some(divergence) = &replay.divergence {
        tracing::warn!(
            "this build decides differently from the event log at record {} (another version \
             wrote it); restored the state this build reaches",
            divergence.seq
        );
    }
    let snapshot = replay.orchestrator.snapshot(replay.orchestrator.now());
    tracing::info!(
        running = snapshot.counts.running,
        retrying = snapshot.counts.retrying,
        held = snapshot.counts.blocked,
        "restored from {} ({} records)",
        path.display(),
        records.len()
    );
    Ok((Recorder::resume(replay.orchestrator, next_seq), true))
}

/// Holds an exclusive lock on `<state root>/lock` for as long as the returned file is open.
fn lock_state_root(state_root: &std::path::Path) -> Result<std::fs::File, String> {
    let path = state_root.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
        |_| {
            format!(
                "another symphony runs with the state root {} (one daemon per state root: give \
             this one its own with --state-dir)",
                state_root.display()
            )
        },
    )?;
    Ok(file)
}

/// Milliseconds since the epoch, now.
fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Timestamp(ms)
}

/// Runs the daemon until shutdown. Returns the process exit code.
pub fn run(options: Options) -> ExitCode {
    let workflow = match workflow::load(&options.workflow, &ProcessEnv, &options.overrides) {
        Ok(workflow) => workflow,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    for warning in &workflow.warnings {
        tracing::warn!("{warning}");
    }
    // The same validation as `symphony check`: a template that cannot render for a sample
    // issue would fail every run.
    if let Err(error) = workflow.prompt.validate() {
        eprintln!("{error}");
        return ExitCode::FAILURE;
    }
    // The state root, and the audit log in it.
    let state_root = workflow.config.state_root.clone();
    if let Err(message) = crate::audit::prepare_state_root(&state_root) {
        eprintln!("error: {message}");
        return ExitCode::FAILURE;
    }
    // One daemon per state root: a second one would kill the first one's processes.
    let _lock = match lock_state_root(&state_root) {
        Ok(lock) => lock,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    };
    // Every process this daemon starts carries the state root's mark; what a killed daemon on
    // this state root left running is killed before anything is dispatched.
    let marker = crate::audit::sha256(&state_root.display().to_string());
    let marker = marker.get(..16).unwrap_or(&marker).to_owned();
    let killed = crate::host::kill_leftovers(&marker);
    if !killed.is_empty() {
        tracing::warn!(
            "killed {} process group(s) an earlier daemon on this state root left running: {killed:?}",
            killed.len()
        );
    }
    crate::host::set_instance_marker(marker);
    match crate::audit::AuditLog::open(&state_root.join("audit"), workflow.config.secret_values()) {
        Ok(log) => {
            crate::audit::install(log);
            crate::audit::record(crate::audit::Entry {
                kind: "daemon_started".into(),
                data: serde_json::json!({"workflow": workflow.path, "pid": std::process::id()}),
                ..crate::audit::Entry::default()
            });
        }
        Err(e) => {
            eprintln!(
                "error: cannot open the audit log in {}: {e}",
                state_root.display()
            );
            return ExitCode::FAILURE;
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match Daemon::start(workflow, options) {
            Ok(daemon) => daemon.run().await,
            Err(message) => {
                eprintln!("error: {message}");
                ExitCode::FAILURE
            }
        }
    })
}

struct Daemon {
    recorder: Recorder,
    log: Option<EventLog>,
    /// Where the event log goes, and why it is not recording when it is not.
    recording: Recording,
    bound: Arc<Bound>,
    workers: BTreeMap<RunId, WorkerHandle>,
    /// Workspace paths of live runs: never two issues in one directory.
    paths: LivePaths,
    tx: UnboundedSender<Input>,
    rx: UnboundedReceiver<Input>,
    disk: DiskGuard,
    runtime: tokio::runtime::Handle,
    _watcher: Option<Watcher>,
    _http: Option<HttpServer>,
    /// Removed when the daemon stops.
    _registration: Option<registry::Registration>,
    /// Registered at start, listened to from `run`.
    signals: Option<Signals>,
    /// The startup orphan report, until it has run.
    orphan_report: Option<OrphanReport>,
    /// The pause and the day's tokens in the state root.
    keeper: durable::Keeper,
    /// What an earlier process kept, until it is handed to the core at start.
    restored: Option<symphony_core::Durable>,
    /// The UTC day whose used-up token budget is in the audit log already.
    budget_audited_day: Option<u64>,
    /// What `/metrics` shows.
    metrics: Arc<crate::metrics::Metrics>,
    /// Tracker requests in flight: what they are and when they left, for their latency.
    tracker_pending: BTreeMap<symphony_core::RequestId, (&'static str, std::time::Instant)>,
    /// When the poll tick in flight started.
    tick_started: Option<std::time::Instant>,
    /// Where today's audit log and the event log are, for their sizes.
    state_root: PathBuf,
    /// The notification channels (set at start; a reload does not change them).
    notifier: crate::notify::Notifier,
    /// What claimed issues are known as, for notices (from their dispatch).
    issue_info: BTreeMap<String, crate::notify::IssueInfo>,
    /// Set when the state was restored from the event log: the config now in force, handed to
    /// the core after `Restarted`.
    restored_log: Option<symphony_core::SchedulerConfig>,
}

impl Daemon {
    fn start(workflow: Workflow, options: Options) -> Result<Self, String> {
        let (tx, rx) = unbounded_channel();
        let scheduler = workflow.config.scheduler();
        let workflow_state_root = workflow.config.state_root.clone();
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let notifier = crate::notify::Notifier::start(
            &workflow.config.notifications,
            &tokio::runtime::Handle::current(),
        )?;
        let scheduler_terminal_empty = scheduler.terminal_states.is_empty();
        let min_free = workflow.config.workspace.min_free_disk_mb;
        let source = workflow.source.clone();
        let path = workflow.path.clone();
        let server = workflow.config.server.clone();
        let bound = Arc::new(Bound::new(workflow)?);
        let log_path = (options.event_log.clone())
            .unwrap_or_else(|| workflow_state_root.join("events.ndjson"));
        let (recorder, restored_log) = if options.fresh {
            (Recorder::new(scheduler.clone()), false)
        } else {
            restore(&log_path, &scheduler)?
        };
        // An existing log moves aside as segment .1; with a restored state, the new one
        // resumes from it, so the two replay as one chain.
        let log = Some(
            EventLog::create(
                &log_path,
                &recorder.header().to_line(),
                options.event_log_rotation,
            )
            .map_err(|e| format!("cannot create the event log {}: {e}", log_path.display()))?,
        );
        let watch_tx = tx.clone();
        let watcher = Watcher::spawn(
            path,
            Arc::new(ProcessEnv),
            options.overrides.clone(),
            DEFAULT_INTERVAL,
            Some(source),
            move |event| {
                let _ = watch_tx.send(Input::Watch(event));
            },
        )
        .map_err(|e| tracing::warn!("workflow reload is off: cannot start the watcher: {e}"))
        .ok();
        let mut registration = None;
        let http = match server.port {
            None => None,
            Some(port) => {
                let token = server.auth_token.as_ref().map(|t| t.expose().to_owned());
                let queries = tx.clone();
                let submit: http::Submit =
                    Box::new(move |query, reply| queries.send(Input::Query(query, reply)).is_ok());
                let started = http::start(
                    &server.bind,
                    port,
                    token,
                    submit,
                    Some(Arc::clone(&metrics)),
                )?;
                let url = format!("http://{}", started.addr);
                tracing::info!("HTTP server listening on {url}/");
                // Where `symphony status` looks for a local daemon by default.
                registration = registry::register(&url, &options.workflow, now().to_rfc3339());
                if options.announce_status {
                    eprintln!(
                        "watch it: open {url}/ or, in another terminal, run `symphony status` \
                         (from this checkout: `cargo run --release -p symphony -- status`)"
                    );
                }
                Some(started)
            }
        };
        let (keeper, restored) = durable::Keeper::open(&workflow_state_root);
        let signals = Signals::register();
        tracing::info!(
            root = %bound.workspace.root().display(),
            "symphony started"
        );
        Ok(Self {
            _http: http,
            _registration: registration,
            signals: Some(signals),
            orphan_report: Some(OrphanReport {
                // No terminal states: the core lists nothing, and nothing is missing.
                terminal: scheduler_terminal_empty.then(Vec::new),
                active: None,
            }),
            recorder,
            log,
            recording: Recording {
                path: log_path,
                rotation: options.event_log_rotation,
                failure: None,
            },
            bound,
            workers: BTreeMap::new(),
            paths: LivePaths::default(),
            tx,
            rx,
            disk: DiskGuard::new(min_free),
            runtime: tokio::runtime::Handle::current(),
            _watcher: watcher,
            keeper,
            restored,
            budget_audited_day: None,
            metrics,
            tracker_pending: BTreeMap::new(),
            tick_started: None,
            state_root: workflow_state_root,
            notifier,
            issue_info: BTreeMap::new(),
            restored_log: restored_log.then_some(scheduler),
        })
    }

    async fn run(mut self) -> ExitCode {
        if let Some(config) = self.restored_log.take() {
            // The previous process is gone with its workers: its live runs become retries.
            self.feed(Event::Restarted);
            self.feed(Event::WorkflowReloaded { config });
        }
        if let Some(durable) = self.restored.take() {
            if let Some(pause) = &durable.paused {
                tracing::warn!(
                    "dispatch stays paused, as it was before the restart (since {}): {}; \
                     `symphony resume` resumes it",
                    pause.since.to_rfc3339(),
                    pause.reason
                );
            }
            self.feed(Event::StateRestored { durable });
        }
        self.feed(Event::Startup);
        let shutdown = shutdown_signal(self.signals.take().unwrap_or_else(Signals::register));
        tokio::pin!(shutdown);
        let mut force_exit: Option<tokio::time::Instant> = None;
        loop {
            let wake = self.recorder.orchestrator().next_deadline().map(|due| {
                let wait = due.0.saturating_sub(now().0);
                tokio::time::Instant::now() + Duration::from_millis(wait)
            });
            tokio::select! {
                () = &mut shutdown, if force_exit.is_none() => {
                    tracing::info!("shutdown requested");
                    force_exit = Some(tokio::time::Instant::now() + SHUTDOWN_GRACE);
                    // Running hooks get TERM now (KILL two seconds later): a worker blocked
                    // in one can then see its stop.
                    crate::child::stop_all_groups();
                    self.feed(Event::ShutdownRequested);
                }
                input = self.rx.recv() => match input {
                    Some(Input::Event(event)) => {
                        self.log_worker_event(&event);
                        self.note_for_orphans(&event);
                        if let Event::WorkerExited { issue_id, run, outcome } = &event {
                            if let Some(worker) = self.workers.get(run) {
                                let seconds = worker.started.elapsed().as_secs_f64();
                                self.metrics.run_ended(outcome_label(outcome), seconds);
                            }
                            self.audit_tokens(issue_id, *run);
                            self.workers.remove(run);
                            self.paths.release(*run);
                        }
                        let turn_end = match &event {
                            Event::AgentUpdate {
                                issue_id,
                                run,
                                update: AgentUpdate::TurnCompleted { .. },
                            } => Some((issue_id.clone(), *run)),
                            _ => None,
                        };
                        self.feed(event);
                        if let Some((issue_id, run)) = turn_end {
                            self.audit_tokens(&issue_id, run);
                        }
                    }
                    Some(Input::Watch(change)) => self.on_watch(change),
                    Some(Input::Query(query, reply)) => {
                        let answer = self.answer(query);
                        http::reply(reply, answer);
                    }
                    None => break,
                },
                () = sleep_until(wake) => {
                    self.check_disk();
                    self.feed(Event::TimerFired);
                }
                () = sleep_until(force_exit) => {
                    tracing::warn!(
                        running = self.workers.len(),
                        "workers did not stop within {} s; exiting anyway",
                        SHUTDOWN_GRACE.as_secs()
                    );
                    break;
                }
            }
            self.flush_log();
            if self.recorder.orchestrator().is_stopped() {
                break;
            }
        }
        self.flush_log();
        let durable = self.recorder.orchestrator().durable();
        self.keeper.offer(&durable, true);
        // Nothing started for a hook outlives the daemon, even when a worker did not stop.
        crate::child::kill_all_groups();
        tracing::info!("symphony stopped");
        ExitCode::SUCCESS
    }

    /// Session and exit lines, with the issue's fields and `session_id` (`<thread>-<turn>`).
    fn log_worker_event(&mut self, event: &Event) {
        match event {
            Event::AgentUpdate {
                issue_id,
                run,
                update,
            } => {
                let Some(worker) = self.workers.get_mut(run) else {
                    return;
                };
                let thread = worker.thread.clone().unwrap_or_default();
                // Approvals the runner answered and tools the agent was refused: on the record.
                let approval = match update {
                    AgentUpdate::Message { event, message } if event == "approval" => {
                        Some(("approval", serde_json::json!({"request": message})))
                    }
                    AgentUpdate::PermissionDenied { tools } => {
                        Some(("permission_denied", serde_json::json!({"tools": tools})))
                    }
                    _ => None,
                };
                if let Some((kind, data)) = approval {
                    crate::audit::record(crate::audit::Entry {
                        kind: kind.into(),
                        issue: Some(worker.identifier.clone()),
                        run: Some(run.0),
                        session: worker.thread.clone(),
                        data,
                    });
                }
                match update {
                    AgentUpdate::SessionStarted { thread_id, pid } => {
                        worker.thread = Some(thread_id.clone());
                        tracing::info!(
                            issue_id = issue_id.as_str(),
                            issue_identifier = worker.identifier.as_str(),
                            session_id = thread_id.as_str(),
                            pid,
                            "agent session started"
                        );
                    }
                    AgentUpdate::TurnStarted { turn_id }
                    | AgentUpdate::TurnCompleted { turn_id } => {
                        let what = if matches!(update, AgentUpdate::TurnStarted { .. }) {
                            "turn started"
                        } else {
                            "turn completed"
                        };
                        tracing::info!(
                            issue_id = issue_id.as_str(),
                            issue_identifier = worker.identifier.as_str(),
                            session_id = format!("{thread}-{turn_id}"),
                            "{what}"
                        );
                    }
                    _ => {}
                }
            }
            Event::WorkerExited {
                issue_id,
                run,
                outcome,
            } => {
                if let Some(worker) = self.workers.get(run) {
                    // A worker the orchestrator stopped: the `released` or `retry scheduled`
                    // line that follows says why (a completed run, a terminal state, ...).
                    if matches!(outcome, symphony_core::ExitOutcome::Cancelled { .. }) {
                        tracing::debug!(
                            issue_id = issue_id.as_str(),
                            issue_identifier = worker.identifier.as_str(),
                            "worker stopped as asked"
                        );
                    } else {
                        tracing::info!(
                            issue_id = issue_id.as_str(),
                            issue_identifier = worker.identifier.as_str(),
                            "worker exited: {outcome}"
                        );
                    }
                }
            }
            _ => {}
        }
    }

    /// Feeds one event to the core, records it, executes the commands and returns them (the
    /// HTTP refresh answer reads the core's verdict from them).
    fn feed(&mut self, event: Event) -> Vec<Command> {
        let event = scrub(event);
        self.measure_answer(&event);
        let (commands, line) = self.recorder.handle(now(), &event);
        match &mut self.log {
            Some(log) => {
                if let Err(e) = log.line(&line) {
                    self.log_failed("write", &e);
                }
            }
            None => {
                if let Some(failure) = self.recording.failure.as_mut() {
                    failure.lost += 1;
                }
            }
        }
        for command in &commands {
            self.execute(command);
        }
        self.keep_durable();
        let in_flight = self.recorder.orchestrator().tick_in_flight();
        match (in_flight, self.tick_started) {
            (true, None) => self.tick_started = Some(std::time::Instant::now()),
            (false, Some(started)) => {
                self.metrics.tick(started.elapsed().as_secs_f64());
                self.tick_started = None;
            }
            _ => {}
        }
        commands
    }

    /// A notice about dispatch as a whole (pause, resume).
    fn notify_operator(&mut self, event: crate::notify::Kind, detail: &str) {
        self.notifier.send(crate::notify::Notice {
            event,
            issue: None,
            title: None,
            url: None,
            detail: detail.to_owned(),
            at: now().to_rfc3339(),
        });
    }

    /// A tracker answer's latency and result, for `/metrics`.
    fn measure_answer(&mut self, event: &Event) {
        let (request, ok) = match event {
            Event::CandidatesFetched { request, .. }
            | Event::IssuesRefreshed { request, .. }
            | Event::TerminalIssuesListed { request, .. } => (request, true),
            Event::CandidatesFetchFailed { request, .. }
            | Event::IssuesRefreshFailed { request, .. }
            | Event::TerminalIssuesListFailed { request, .. } => (request, false),
            _ => return,
        };
        if let Some((operation, sent)) = self.tracker_pending.remove(request) {
            let seconds = sent.elapsed().as_secs_f64();
            self.metrics.tracker_request(operation, ok, seconds);
        }
    }

    /// Keeps the pause and the day's tokens in the state root, and writes the day's budget
    /// running out to the audit log once.
    fn keep_durable(&mut self) {
        let orchestrator = self.recorder.orchestrator();
        let durable = orchestrator.durable();
        if let Some(limit) = orchestrator.config().max_tokens_per_day
            && durable.day_tokens >= limit
            && self.budget_audited_day != Some(durable.day)
        {
            self.budget_audited_day = Some(durable.day);
            crate::audit::record(crate::audit::Entry {
                kind: "daily_budget_used".into(),
                data: serde_json::json!({"used": durable.day_tokens, "limit": limit}),
                ..crate::audit::Entry::default()
            });
        }
        self.keeper.offer(&durable, false);
    }

    /// Writes the tokens `run` used since its last such record (a turn's, or what remained at
    /// its exit) to the audit log.
    fn audit_tokens(&mut self, issue_id: &IssueId, run: RunId) {
        let Some(tokens) = self.recorder.orchestrator().run_tokens(issue_id, run) else {
            return;
        };
        let Some(worker) = self.workers.get_mut(&run) else {
            return;
        };
        let before = worker.tokens_audited;
        if tokens == before {
            return;
        }
        worker.tokens_audited = tokens;
        crate::audit::record(crate::audit::Entry {
            kind: "tokens".into(),
            issue: Some(worker.identifier.clone()),
            run: Some(run.0),
            data: serde_json::json!({
                "input": tokens.input_tokens.saturating_sub(before.input_tokens),
                "output": tokens.output_tokens.saturating_sub(before.output_tokens),
                "total": tokens.total_tokens.saturating_sub(before.total_tokens),
            }),
            ..crate::audit::Entry::default()
        });
    }

    /// The event log failed (disk full, say): recording pauses, and is retried with backoff
    /// (from 1 s, doubling to 5 min) in a new segment that resumes from the current state.
    fn log_failed(&mut self, action: &str, error: &std::io::Error) {
        self.log = None;
        let recording = &mut self.recording;
        let backoff = recording
            .failure
            .as_ref()
            .map_or(Duration::from_secs(1), |f| {
                (f.backoff * 2).min(Duration::from_secs(300))
            });
        tracing::error!(
            "event log {action} failed, recording pauses and is retried in {} s: {error}",
            backoff.as_secs()
        );
        let (since, lost) = recording
            .failure
            .as_ref()
            .map_or((now(), 0), |f| (f.since, f.lost));
        recording.failure = Some(LogFailure {
            since,
            error: error.to_string(),
            backoff,
            retry_at: std::time::Instant::now() + backoff,
            lost: lost + 1,
        });
    }

    /// Flushes the event log, cuts a new segment once the current one is full, and retries a
    /// failed log when its backoff is over.
    fn flush_log(&mut self) {
        let Some(log) = &mut self.log else {
            self.retry_log();
            return;
        };
        if let Err(e) = log.flush() {
            self.log_failed("flush", &e);
        } else if log.full() {
            let header = self.recorder.rotate();
            match log.rotate(&header) {
                Ok(()) => tracing::info!("event log rotated"),
                Err(e) => self.log_failed("rotation", &e),
            }
        }
    }

    fn retry_log(&mut self) {
        let recording = &mut self.recording;
        let Some(failure) = &recording.failure else {
            return;
        };
        if std::time::Instant::now() < failure.retry_at {
            return;
        }
        let header = self.recorder.rotate();
        match EventLog::create(&recording.path, &header, recording.rotation) {
            Ok(log) => {
                tracing::info!(
                    lost_records = failure.lost,
                    "event log recording again in a new segment"
                );
                recording.failure = None;
                self.log = Some(log);
            }
            Err(e) => self.log_failed("reopening", &e),
        }
    }

    /// Runs `answer` (a tracker request) as a task and feeds its event back through the
    /// channel: request commands are answered by exactly one later event. When the task does
    /// not finish with an answer (a panic while parsing hostile tracker content, a
    /// cancellation), `failed` turns the reason into the request's failure event, so no single
    /// record can leave the core waiting for an answer forever.
    fn answer_later(
        &self,
        answer: impl Future<Output = Event> + Send + 'static,
        failed: impl FnOnce(TrackerError) -> Event + Send + 'static,
    ) {
        spawn_answer(self.tx.clone(), answer, failed);
    }

    fn send_later(&self, event: Event) {
        let _ = self.tx.send(Input::Event(event));
    }

    fn execute(&mut self, command: &Command) {
        let sent = std::time::Instant::now();
        match command {
            Command::FetchCandidates { request, .. } => {
                self.tracker_pending.insert(*request, ("candidates", sent));
            }
            Command::ListTerminalIssues { request, .. } => {
                self.tracker_pending.insert(*request, ("terminal", sent));
            }
            Command::RefreshIssues { request, .. } => {
                self.tracker_pending.insert(*request, ("refresh", sent));
            }
            Command::Dispatch { issue, .. } => {
                self.metrics.dispatched();
                let info = crate::notify::IssueInfo {
                    identifier: issue.identifier.clone(),
                    title: issue.title.clone(),
                    url: issue.url.clone(),
                };
                self.issue_info.insert(issue.id.as_str().to_owned(), info);
            }
            _ => {}
        }
        let info = |id: &str| self.issue_info.get(id).cloned();
        if let Some(notice) = crate::notify::notice_for(command, info, now()) {
            self.notifier.send(notice);
        }
        if let Command::ReleaseClaim { issue_id, .. } = command {
            self.issue_info.remove(issue_id.as_str());
        }
        match command {
            Command::FetchCandidates { request, states } => {
                let (request, states) = (*request, states.clone());
                let tracker = Arc::clone(&self.bound.tracker);
                self.answer_later(
                    async move {
                        match tracker.fetch_by_states(&states).await {
                            Ok(issues) => Event::CandidatesFetched { request, issues },
                            Err(error) => {
                                tracing::warn!("candidate fetch failed: {}", error.message);
                                Event::CandidatesFetchFailed { request, error }
                            }
                        }
                    },
                    move |error| Event::CandidatesFetchFailed { request, error },
                );
            }
            Command::ListTerminalIssues { request, states } => {
                let (request, states) = (*request, states.clone());
                let tracker = Arc::clone(&self.bound.tracker);
                self.answer_later(
                    async move {
                        match tracker.fetch_by_states(&states).await {
                            Ok(issues) => Event::TerminalIssuesListed { request, issues },
                            Err(error) => Event::TerminalIssuesListFailed { request, error },
                        }
                    },
                    move |error| Event::TerminalIssuesListFailed { request, error },
                );
            }
            Command::RefreshIssues { request, ids } => {
                let (request, ids) = (*request, ids.clone());
                let tracker = Arc::clone(&self.bound.tracker);
                self.answer_later(
                    async move {
                        match tracker.fetch_by_ids(&ids).await {
                            Ok(issues) => Event::IssuesRefreshed { request, issues },
                            Err(error) => {
                                tracing::warn!("issue refresh failed: {}", error.message);
                                Event::IssuesRefreshFailed { request, error }
                            }
                        }
                    },
                    move |error| Event::IssuesRefreshFailed { request, error },
                );
            }
            // The workflow reader offers no `worker.ssh_hosts` yet (issue 19), so the core never
            // names a host; a log or state from elsewhere that does is refused run by run.
            Command::Dispatch {
                issue_id,
                run,
                host: Some(host),
                ..
            } => {
                let reason = format!("this daemon does not run agents on worker hosts ({host})");
                tracing::error!(issue_id = issue_id.as_str(), "{reason}");
                self.send_later(Event::WorkerExited {
                    issue_id: issue_id.clone(),
                    run: *run,
                    outcome: symphony_core::ExitOutcome::HostUnavailable { reason },
                });
            }
            Command::Dispatch {
                issue_id,
                run,
                attempt,
                issue,
                host: None,
            } => {
                tracing::info!(
                    issue_id = issue_id.as_str(),
                    issue_identifier = issue.identifier.as_str(),
                    attempt,
                    "dispatching"
                );
                let (issue_id, run) = (issue_id.clone(), *run);
                let path = self.bound.workspace.path_for(&issue.identifier);
                if let Err(holder) = self.paths.claim(path.clone(), run, &issue_id) {
                    let reason = format!(
                        "workspace {} is in use by issue {holder}; refusing to share it",
                        path.display()
                    );
                    tracing::error!(issue_id = issue_id.as_str(), "{reason}");
                    return self.send_later(Event::WorkerExited {
                        issue_id,
                        run,
                        outcome: symphony_core::ExitOutcome::Failed { reason },
                    });
                }
                match worker::spawn(
                    Arc::clone(&self.bound),
                    issue.clone(),
                    run,
                    *attempt,
                    self.tx.clone(),
                    self.runtime.clone(),
                ) {
                    Ok(handle) => {
                        self.workers.insert(run, handle);
                    }
                    Err(e) => self.send_later(Event::WorkerExited {
                        issue_id,
                        run,
                        outcome: symphony_core::ExitOutcome::Failed {
                            reason: format!("cannot start the worker thread: {e}"),
                        },
                    }),
                }
            }
            Command::StartTurn {
                run, turn, issue, ..
            } => {
                if let Some(worker) = self.workers.get(run) {
                    worker.turn(*turn, issue.clone());
                }
            }
            Command::StopWorker {
                issue_id,
                run,
                reason,
                cleanup_workspace,
            } => {
                tracing::info!(issue_id = issue_id.as_str(), %reason, "stopping worker");
                if let Some(worker) = self.workers.get(run) {
                    worker.stop(*cleanup_workspace);
                }
            }
            Command::SweepWorkspaces { max_age_days, keep } => {
                self.sweep_old_workspaces(*max_age_days, keep);
            }
            Command::CleanWorkspace {
                issue_id,
                identifier,
                host: Some(host),
            } => tracing::error!(
                issue_id = issue_id.as_str(),
                "not removing the workspace of {identifier} on {host}: this daemon does not \
                 reach worker hosts"
            ),
            Command::CleanWorkspace {
                issue_id,
                identifier,
                host: None,
            } => {
                let path = self.bound.workspace.path_for(identifier);
                if let Some(holder) = self.paths.holder(&path) {
                    return tracing::error!(
                        issue_id = issue_id.as_str(),
                        "not removing {}: a live run of issue {holder} uses it",
                        path.display()
                    );
                }
                let bound = Arc::clone(&self.bound);
                let (issue_id, identifier) = (issue_id.clone(), identifier.clone());
                tokio::task::spawn_blocking(move || {
                    bound.clean(IssueRef {
                        id: issue_id.as_str(),
                        identifier: &identifier,
                    });
                });
            }
            Command::ScheduleRetry {
                issue_id,
                identifier,
                attempt,
                delay_ms,
                error,
                ..
            } => tracing::info!(
                issue_id = issue_id.as_str(),
                issue_identifier = identifier.as_str(),
                attempt,
                delay_ms,
                error = error.as_deref().unwrap_or(""),
                "retry scheduled"
            ),
            Command::ReleaseClaim { issue_id, reason } => {
                tracing::info!(issue_id = issue_id.as_str(), %reason, "released");
            }
            Command::HoldHost {
                host,
                until,
                reason,
            } => tracing::warn!(
                host = host.as_str(),
                "worker host {host} held out of dispatch until {until}: {reason}"
            ),
            Command::HoldIssue {
                issue_id,
                identifier,
                reason,
            } => tracing::warn!(
                issue_id = issue_id.as_str(),
                issue_identifier = identifier.as_str(),
                "held: {reason}; it runs again when the issue changes in the tracker"
            ),
            Command::IssueWaiting {
                issue_id,
                identifier,
                reason,
            } => tracing::info!(
                issue_id = issue_id.as_str(),
                issue_identifier = identifier.as_str(),
                "waiting: {reason}"
            ),
            // Informational: the HTTP refresh answer reads it from what `feed` returns.
            Command::RefreshQueued { .. }
            | Command::CancelRetry { .. }
            | Command::SchedulePoll { .. }
            | Command::ShutdownComplete => {}
        }
    }

    fn on_watch(&mut self, change: WatchEvent) {
        let event = change.core_event();
        match change {
            WatchEvent::Invalid(error) => {
                tracing::error!(
                    class = error.class.as_str(),
                    "{error}; keeping the last good workflow, new dispatch paused"
                );
                self.feed(event);
            }
            WatchEvent::Reloaded(workflow) => {
                crate::redact::register(workflow.config.secret_values());
                for warning in &workflow.warnings {
                    tracing::warn!("{warning}");
                }
                let min_free = workflow.config.workspace.min_free_disk_mb;
                match Bound::new(*workflow) {
                    Ok(bound) => {
                        tracing::info!("workflow reloaded");
                        self.bound = Arc::new(bound);
                        self.disk.set_min(min_free);
                        self.feed(event);
                    }
                    Err(message) => {
                        tracing::error!("{message}; keeping the last good workflow");
                        self.feed(Event::WorkflowInvalid {
                            error: ConfigError {
                                class: ErrorClass::ConfigSetupFailed,
                                message,
                            },
                        });
                    }
                }
            }
        }
    }

    /// Answers an HTTP query from the core's state, secrets masked.
    fn answer(&mut self, query: Query) -> Answer {
        match query {
            Query::State => {
                let snapshot = self.recorder.orchestrator().snapshot(now());
                let mut answer = Answer::json(200, &snapshot);
                // The event log's status, appended to the snapshot's object.
                if answer.body.ends_with('}') {
                    let status = self.recording.status();
                    answer.body.pop();
                    answer.body.push_str(",\"event_log\":");
                    answer.body.push_str(&status.to_string());
                    answer.body.push('}');
                }
                answer
            }
            Query::Issue(identifier) => {
                // What the tracker noticed and could not fix (a Gitea label problem, say).
                let remark = self.bound.tracker.remark(&identifier);
                match self.recorder.orchestrator().issue_detail(&identifier) {
                    Some(detail) => {
                        let mut body = serde_json::to_value(&detail).unwrap_or_default();
                        if let (Some(remark), Some(fields)) = (remark, body.as_object_mut()) {
                            fields.insert("tracker_remark".into(), remark.into());
                        }
                        Answer::json(200, &body)
                    }
                    None => Answer::error(
                        404,
                        "issue_not_found",
                        match remark {
                            Some(remark) => format!(
                                "{identifier} is not running, queued or held; the tracker \
                                 says: {remark}"
                            ),
                            None => format!("{identifier} is not running, queued or held"),
                        },
                    ),
                }
            }
            Query::Refresh => {
                let requested_at = now();
                let (queued, coalesced) = self
                    .feed(Event::RefreshRequested)
                    .iter()
                    .find_map(|c| match c {
                        Command::RefreshQueued { queued, coalesced } => Some((*queued, *coalesced)),
                        _ => None,
                    })
                    .unwrap_or((false, false));
                let body = serde_json::json!({
                    "queued": queued,
                    "coalesced": coalesced,
                    "requested_at": requested_at.to_rfc3339(),
                    "operations": ["poll", "reconcile"],
                });
                Answer::json(202, &body)
            }
            Query::Pause(reason) => {
                self.feed(Event::PauseRequested { reason });
                let pause = self.recorder.orchestrator().durable().paused;
                if let Some(pause) = &pause {
                    self.notify_operator(crate::notify::Kind::Paused, &pause.reason);
                    tracing::warn!("dispatch paused by the operator: {}", pause.reason);
                    crate::audit::record(crate::audit::Entry {
                        kind: "dispatch_paused".into(),
                        data: serde_json::json!({"reason": pause.reason}),
                        ..crate::audit::Entry::default()
                    });
                }
                Answer::json(200, &serde_json::json!({"paused": pause}))
            }
            Query::Resume => {
                let was = self.recorder.orchestrator().durable().paused.is_some();
                self.feed(Event::ResumeRequested);
                if was {
                    self.notify_operator(crate::notify::Kind::Resumed, "");
                    tracing::info!("dispatch resumed by the operator");
                    crate::audit::record(crate::audit::Entry {
                        kind: "dispatch_resumed".into(),
                        ..crate::audit::Entry::default()
                    });
                }
                Answer::json(200, &serde_json::json!({"paused": null, "resumed": was}))
            }
            Query::Stop(identifier) => {
                let verdict = self.recorder.orchestrator().stop_verdict(&identifier);
                if verdict == symphony_core::StopVerdict::NotRunning {
                    return Answer::error(
                        409,
                        "not_running",
                        format!("{identifier} has no live run to stop"),
                    );
                }
                self.feed(Event::StopRequested {
                    identifier: identifier.clone(),
                });
                tracing::warn!(
                    issue_identifier = identifier.as_str(),
                    "run stopped by the operator"
                );
                crate::audit::record(crate::audit::Entry {
                    kind: "run_stopped".into(),
                    issue: Some(identifier.clone()),
                    data: serde_json::json!({"by": "operator"}),
                    ..crate::audit::Entry::default()
                });
                Answer::json(
                    202,
                    &serde_json::json!({"stopping": identifier, "then": "held until the issue changes"}),
                )
            }
            Query::Metrics => {
                let snapshot = self.recorder.orchestrator().snapshot(now());
                let size = |path: &std::path::Path| std::fs::metadata(path).ok().map(|m| m.len());
                let audit =
                    crate::audit::day_file(&self.state_root.join("audit"), &now().to_rfc3339());
                let sizes = crate::metrics::LogSizes {
                    event_log: size(&self.recording.path),
                    audit_log: size(&audit),
                    tracker_rate: self.bound.tracker.rate_limit(),
                };
                let text = self.metrics.render(&snapshot, sizes);
                Answer {
                    status: 200,
                    body: crate::redact::mask(&text).into_owned(),
                }
            }
            Query::Ready => {
                let ready = self.recorder.orchestrator().is_ready();
                let status = if ready { 200 } else { 503 };
                Answer::json(status, &serde_json::json!({ "ready": ready }))
            }
        }
    }
}

/// A run's ending as a metrics label.
fn outcome_label(outcome: &symphony_core::ExitOutcome) -> &'static str {
    use symphony_core::ExitOutcome;
    match outcome {
        ExitOutcome::Normal => "normal",
        ExitOutcome::Failed { .. } => "failed",
        ExitOutcome::TimedOut { .. } => "timed_out",
        ExitOutcome::Cancelled { .. } => "cancelled",
        ExitOutcome::InputRequired { .. } => "input_required",
        ExitOutcome::HostUnavailable { .. } => "host_unavailable",
    }
}

async fn sleep_until(when: Option<tokio::time::Instant>) {
    match when {
        Some(when) => tokio::time::sleep_until(when).await,
        None => std::future::pending().await,
    }
}

/// SIGINT and SIGTERM, registered when the daemon starts (before it says it has), so a signal
/// that arrives at any moment after that is a clean shutdown, never the default abrupt exit.
struct Signals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn register() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Self {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal(mut signals: Signals) {
    async fn next(signal: Option<&mut tokio::signal::unix::Signal>) {
        match signal {
            Some(signal) => {
                signal.recv().await;
            }
            None => std::future::pending().await,
        }
    }
    tokio::select! {
        () = next(signals.interrupt.as_mut()) => {}
        () = next(signals.terminate.as_mut()) => {}
    }
}

/// The event log's destination and health.
struct Recording {
    path: PathBuf,
    rotation: Rotation,
    failure: Option<LogFailure>,
}

/// Why the event log is not recording, since when, and when it is tried again.
struct LogFailure {
    since: Timestamp,
    error: String,
    backoff: Duration,
    retry_at: std::time::Instant,
    /// Records not written since the failure.
    lost: u64,
}

impl Recording {
    /// `event_log` in `/api/v1/state`.
    fn status(&self) -> serde_json::Value {
        match &self.failure {
            None => serde_json::json!({"path": self.path, "recording": true}),
            Some(f) => serde_json::json!({
                "path": self.path,
                "recording": false,
                "failing_since": f.since.to_rfc3339(),
                "error": f.error,
                "lost_records": f.lost,
                "retry_in_ms": f.retry_at.saturating_duration_since(std::time::Instant::now()).as_millis() as u64,
            }),
        }
    }
}

/// Which live run holds which workspace path. Keys are injective, so two issues meeting at
/// one path means something is wrong (a bug, a hand-made directory): the second is refused,
/// never given the first one's directory.
#[derive(Debug, Default)]
struct LivePaths {
    held: BTreeMap<PathBuf, (RunId, String)>,
}

impl LivePaths {
    /// Takes `path` for `run` of `issue`; `Err` names the issue already holding it.
    fn claim(&mut self, path: PathBuf, run: RunId, issue: &IssueId) -> Result<(), String> {
        match self.held.get(&path) {
            Some((_, holder)) if holder != issue.as_str() => Err(holder.clone()),
            _ => {
                self.held.insert(path, (run, issue.as_str().to_owned()));
                Ok(())
            }
        }
    }

    fn holder(&self, path: &std::path::Path) -> Option<&str> {
        self.held.get(path).map(|(_, issue)| issue.as_str())
    }

    fn release(&mut self, run: RunId) {
        self.held.retain(|_, (holder, _)| *holder != run);
    }
}

/// `event` with every registered secret masked, before the core, the event log or any status
/// surface sees it (a tracker that echoes the key in an error message, say). The core decides
/// on the masked event, so the log replays exactly. Events without a secret pass unchanged;
/// with no secret registered (the local tracker) nothing is serialised.
fn scrub(event: Event) -> Event {
    if !crate::redact::any() {
        return event;
    }
    let Ok(text) = serde_json::to_string(&event) else {
        return event;
    };
    if !crate::redact::contains_secret(&text) {
        return event;
    }
    serde_json::from_str(&crate::redact::mask(&text)).unwrap_or(event)
}

/// [`Daemon::answer_later`]'s body: `answer` runs as its own task; its event, or `failed`'s
/// when the task panicked or was cancelled, goes to `tx`.
fn spawn_answer(
    tx: UnboundedSender<Input>,
    answer: impl Future<Output = Event> + Send + 'static,
    failed: impl FnOnce(TrackerError) -> Event + Send + 'static,
) {
    let task = tokio::spawn(answer);
    tokio::spawn(async move {
        let event = match task.await {
            Ok(event) => event,
            Err(join) => {
                let why = if join.is_panic() {
                    let payload = join.into_panic();
                    let text = payload
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".to_owned());
                    format!("the tracker request failed inside the adapter: {text}")
                } else {
                    "the tracker request task was cancelled".to_owned()
                };
                tracing::error!("{why}; the request counts as failed");
                failed(TrackerError {
                    category: TrackerErrorCategory::TrackerResponse,
                    message: why,
                })
            }
        };
        let _ = tx.send(Input::Event(event));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use symphony_core::{IssueId, RequestId};

    #[test]
    fn two_live_issues_never_share_a_workspace_path() {
        let mut paths = LivePaths::default();
        let path = PathBuf::from("/ws/sp_ace--ed7f8c6309c245d7");
        let (a, b) = (IssueId("a".into()), IssueId("b".into()));
        assert_eq!(paths.claim(path.clone(), RunId(1), &a), Ok(()));
        assert_eq!(paths.claim(path.clone(), RunId(2), &b), Err("a".to_owned()));
        assert_eq!(paths.holder(&path), Some("a"));
        // The same issue's next run (a retry) takes it over.
        assert_eq!(paths.claim(path.clone(), RunId(3), &a), Ok(()));
        paths.release(RunId(3));
        assert_eq!(paths.holder(&path), None);
        assert_eq!(paths.claim(path, RunId(4), &b), Ok(()));
    }

    /// A request task that panics (hostile tracker content once did this in a parser) still
    /// answers its request, with a failure, so polling goes on.
    #[tokio::test]
    async fn a_panicking_request_task_answers_with_a_failure() {
        let (tx, mut rx) = unbounded_channel();
        let request = RequestId(7);
        spawn_answer(
            tx,
            async move {
                if request.0 == 7 {
                    panic!("byte index 3 is not a char boundary");
                }
                Event::CandidatesFetched {
                    request,
                    issues: Vec::new(),
                }
            },
            move |error| Event::CandidatesFetchFailed { request, error },
        );
        let answer = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("an answer within the bound")
            .expect("the channel stays open");
        let Input::Event(Event::CandidatesFetchFailed {
            request: got,
            error,
        }) = answer
        else {
            panic!("expected a failed fetch");
        };
        assert_eq!(got, request);
        assert_eq!(error.category, TrackerErrorCategory::TrackerResponse);
        assert!(
            error.message.contains("not a char boundary"),
            "{}",
            error.message
        );
    }
}
