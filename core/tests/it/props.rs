//! Property tests: random event sequences against the simulator.
//!
//! Every step runs through [`Sim::feed`], which checks the invariants after each event (limits,
//! no double dispatch, one claim state per issue, eligibility of every dispatch, the backoff
//! formula, core/shell agreement on running workers). On top of that each sequence must be
//! deterministic and survive a round trip through the NDJSON event log unchanged.

use std::collections::BTreeMap;

use proptest::prelude::*;
use symphony_core::log::{LogHeader, read_log, replay};
use symphony_core::{
    AgentUpdate, Command, ConfigErrorClass, Event, ExitOutcome, IssueId, RunId, SchedulerConfig,
};

use crate::sim::{Sim, id, issue};

/// Issues `1..=ISSUES` live on the board; `UNKNOWN` is never on it.
const ISSUES: u32 = 6;
const UNKNOWN: u32 = 99;

/// Board states, including spellings that only match after normalisation and one state that is
/// neither active nor terminal.
const STATES: [&str; 6] = [
    "Todo",
    "In Progress",
    " IN PROGRESS ",
    "Review",
    "Done",
    "Cancelled",
];

#[derive(Clone, Debug)]
enum Action {
    /// Time passes without any event.
    Advance(u64),
    /// The shell's timer fires at the next deadline.
    Fire,
    /// A timer event arrives early, before any deadline (a spurious or late wake-up).
    FireNow,
    Respond,
    Fail,
    RespondAll,
    StaleResponse,
    SetState(u32, usize),
    Delete(u32),
    SetDispatchable(u32, bool),
    SetLabel(u32, bool),
    SetPriority(u32, Option<i64>),
    Bump(u32),
    Started(u32),
    Update(u32, Update),
    Exit(u32, Outcome),
    /// An exit or update carrying a run id the core has finished with (or never issued).
    StaleExit(u32),
    StaleUpdate(u32),
    FinishStops,
    Reload(Knobs),
    Invalid,
    DiskLow,
    DiskOk,
    Refresh,
    Pause,
    Resume,
    Stop(u32),
    /// Placed by the test at a chosen index, not drawn at random: once stopped the core
    /// ignores everything, so a frequent shutdown would hide the rest of the sequence.
    Shutdown,
    Startup,
}

#[derive(Clone, Debug)]
enum Update {
    Session,
    TurnStarted(u8),
    TurnCompleted(u8),
    Tokens(u64, u64),
    RateLimits(u8),
    Message,
}

#[derive(Clone, Copy, Debug)]
enum Outcome {
    Normal,
    Failed,
    TimedOut,
    Cancelled,
    InputRequired,
    HostUnavailable,
}

/// The values a reload can change: limits that grow and shrink, labels, turns, timeouts.
#[derive(Clone, Debug)]
struct Knobs {
    max_agents: u32,
    by_state: Vec<(String, i64)>,
    require_label: bool,
    max_turns: u32,
    stall_timeout_ms: i64,
    max_retry_backoff_ms: u64,
    poll_interval_ms: u64,
    token_budget: Option<u64>,
    max_age_days: Option<u32>,
    turn_budget: Option<u32>,
    runtime_budget_ms: Option<u64>,
    run_timeout_ms: Option<u64>,
    day_budget: Option<u64>,
    /// Worker hosts (none: local) and their cap.
    hosts: Vec<String>,
    per_host: Option<u32>,
}

impl Knobs {
    fn config(&self) -> SchedulerConfig {
        SchedulerConfig {
            active_states: vec!["Todo".into(), "In Progress".into()],
            terminal_states: vec!["Done".into(), "cancelled".into()],
            required_labels: if self.require_label {
                vec!["Agent".into()]
            } else {
                Vec::new()
            },
            poll_interval_ms: self.poll_interval_ms,
            max_concurrent_agents: self.max_agents,
            max_concurrent_agents_by_state: self.by_state.iter().cloned().collect(),
            max_retry_backoff_ms: self.max_retry_backoff_ms,
            max_turns: self.max_turns,
            stall_timeout_ms: self.stall_timeout_ms,
            max_tokens_per_issue: self.token_budget,
            max_turns_per_issue: self.turn_budget,
            max_runtime_ms_per_issue: self.runtime_budget_ms,
            run_timeout_ms: self.run_timeout_ms,
            max_tokens_per_day: self.day_budget,
            workspace_max_age_days: self.max_age_days,
            worker_hosts: self.hosts.clone(),
            max_concurrent_agents_per_host: self.per_host,
            host_backoff_ms: Some(30_000),
        }
    }
}

fn knobs() -> impl Strategy<Value = Knobs> {
    let state_key = prop_oneof![
        Just("todo".to_owned()),
        Just(" In Progress".to_owned()),
        Just("IN PROGRESS".to_owned()),
        Just("review".to_owned()),
    ];
    let limits = (
        prop::option::weighted(0.3, 1u32..=6),
        prop::option::weighted(0.3, 5_000u64..=200_000),
        prop::option::weighted(0.3, 5_000u64..=120_000),
        prop::option::weighted(0.2, 1_000u64..=50_000),
        prop_oneof![
            2 => Just(Vec::new()),
            1 => Just(vec!["alpha".to_owned()]),
            2 => Just(vec!["alpha".to_owned(), "beta".to_owned()]),
            1 => Just(vec!["alpha".to_owned(), "beta".to_owned(), "gamma".to_owned()]),
        ],
        prop::option::weighted(0.6, 1u32..=2),
    );
    (
        (
            1u32..=4,
            prop::collection::vec((state_key, -1i64..=3), 0..3),
            prop::bool::weighted(0.2),
            1u32..=4,
            prop_oneof![Just(-1i64), Just(0), 5_000i64..=120_000],
            prop_oneof![Just(5_000u64), 10_000u64..=400_000],
            1_000u64..=60_000,
            prop::option::weighted(0.3, 2_000u64..=20_000),
            prop::option::weighted(0.3, 1u32..=30),
        ),
        limits,
    )
        .prop_map(
            |(
                (max_agents, by_state, require_label, max_turns, stall, backoff, poll, budget, age),
                (turn_budget, runtime_budget_ms, run_timeout_ms, day_budget, hosts, per_host),
            )| {
                Knobs {
                    max_agents,
                    by_state,
                    require_label,
                    max_turns,
                    stall_timeout_ms: stall,
                    max_retry_backoff_ms: backoff,
                    poll_interval_ms: poll,
                    token_budget: budget,
                    max_age_days: age,
                    turn_budget,
                    runtime_budget_ms,
                    run_timeout_ms,
                    day_budget,
                    hosts,
                    per_host,
                }
            },
        )
}

fn update() -> impl Strategy<Value = Update> {
    prop_oneof![
        Just(Update::Session),
        (0u8..3).prop_map(Update::TurnStarted),
        (0u8..3).prop_map(Update::TurnCompleted),
        (0u64..5_000, 0u64..5_000).prop_map(|(i, o)| Update::Tokens(i, o)),
        (0u8..4).prop_map(Update::RateLimits),
        Just(Update::Message),
    ]
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        3 => Just(Outcome::Normal),
        3 => Just(Outcome::Failed),
        1 => Just(Outcome::TimedOut),
        1 => Just(Outcome::Cancelled),
        1 => Just(Outcome::InputRequired),
        1 => Just(Outcome::HostUnavailable),
    ]
}

/// An issue to stop: a known one, or one that does not exist.
fn any_n_stop() -> impl Strategy<Value = u32> {
    prop_oneof![5 => 1u32..=ISSUES, 1 => Just(UNKNOWN)]
}

fn action() -> impl Strategy<Value = Action> {
    let n = 1u32..=ISSUES;
    let any_n = prop_oneof![5 => 1u32..=ISSUES, 1 => Just(UNKNOWN)];
    prop_oneof![
        4 => (0u64..90_000).prop_map(Action::Advance),
        6 => Just(Action::Fire),
        1 => Just(Action::FireNow),
        8 => Just(Action::Respond),
        2 => Just(Action::Fail),
        4 => Just(Action::RespondAll),
        1 => Just(Action::StaleResponse),
        4 => (n.clone(), 0..STATES.len()).prop_map(|(n, s)| Action::SetState(n, s)),
        1 => n.clone().prop_map(Action::Delete),
        1 => (n.clone(), prop::bool::weighted(0.8)).prop_map(|(n, d)| Action::SetDispatchable(n, d)),
        1 => (n.clone(), any::<bool>()).prop_map(|(n, l)| Action::SetLabel(n, l)),
        1 => (n.clone(), prop::option::of(-1i64..=6)).prop_map(|(n, p)| Action::SetPriority(n, p)),
        1 => n.clone().prop_map(Action::Bump),
        3 => any_n.clone().prop_map(Action::Started),
        6 => (any_n.clone(), update()).prop_map(|(n, u)| Action::Update(n, u)),
        4 => (any_n, outcome()).prop_map(|(n, o)| Action::Exit(n, o)),
        1 => n.clone().prop_map(Action::StaleExit),
        1 => n.prop_map(Action::StaleUpdate),
        2 => Just(Action::FinishStops),
        1 => knobs().prop_map(Action::Reload),
        1 => Just(Action::Invalid),
        1 => Just(Action::DiskLow),
        1 => Just(Action::DiskOk),
        1 => Just(Action::Refresh),
        1 => Just(Action::Pause),
        1 => Just(Action::Resume),
        1 => any_n_stop().prop_map(Action::Stop),
        1 => Just(Action::Startup),
    ]
}

fn to_update(update: &Update) -> AgentUpdate {
    match update {
        Update::Session => AgentUpdate::SessionStarted {
            thread_id: "thread-1".into(),
            pid: Some(4242),
        },
        Update::TurnStarted(t) => AgentUpdate::TurnStarted {
            turn_id: format!("turn-{t}"),
        },
        Update::TurnCompleted(t) => AgentUpdate::TurnCompleted {
            turn_id: format!("turn-{t}"),
        },
        Update::Tokens(input, output) => AgentUpdate::TokenUsage {
            input_tokens: *input,
            output_tokens: *output,
            total_tokens: input + output,
        },
        Update::RateLimits(n) => AgentUpdate::RateLimits {
            snapshot: serde_json::json!({ "primary": { "usedPercent": n * 25 } }),
        },
        Update::Message => AgentUpdate::Message {
            event: "notification".into(),
            message: Some("working".repeat(60)),
        },
    }
}

fn to_outcome(outcome: Outcome) -> ExitOutcome {
    let reason = "prop".to_owned();
    match outcome {
        Outcome::Normal => ExitOutcome::Normal,
        Outcome::Failed => ExitOutcome::Failed { reason },
        Outcome::TimedOut => ExitOutcome::TimedOut { reason },
        Outcome::Cancelled => ExitOutcome::Cancelled { reason },
        Outcome::InputRequired => ExitOutcome::InputRequired { reason },
        Outcome::HostUnavailable => ExitOutcome::HostUnavailable { reason },
    }
}

/// A run id that is not the live one for `n`: its previous run if it had one, else one never
/// issued.
fn stale_run(sim: &Sim, n: u32) -> RunId {
    let live = sim.live.get(&id(n)).copied();
    sim.records
        .iter()
        .rev()
        .flat_map(|r| r.commands.iter().rev())
        .filter_map(|c| match c {
            Command::Dispatch { issue_id, run, .. } if *issue_id == id(n) => Some(*run),
            _ => None,
        })
        .find(|run| Some(*run) != live)
        .unwrap_or(RunId(u64::MAX - u64::from(n)))
}

/// Edits the board entry of MT-n, creating it in `Todo` when absent.
fn edit(sim: &mut Sim, n: u32, change: impl FnOnce(&mut symphony_core::Issue)) {
    let mut current = sim
        .board
        .get(&id(n))
        .cloned()
        .unwrap_or_else(|| issue(n, "Todo"));
    change(&mut current);
    sim.put(current);
}

fn apply(sim: &mut Sim, action: &Action) {
    match action {
        Action::Advance(ms) => sim.advance(*ms),
        Action::Fire => {
            sim.fire();
        }
        Action::FireNow => {
            sim.feed(Event::TimerFired);
        }
        Action::Respond => {
            sim.respond();
        }
        Action::Fail => {
            sim.fail("tracker down");
        }
        Action::RespondAll => sim.respond_all(),
        Action::StaleResponse => {
            sim.stale_response();
        }
        Action::SetState(n, s) => edit(sim, *n, |i| i.state = STATES[*s].to_owned()),
        Action::Delete(n) => sim.remove(*n),
        Action::SetDispatchable(n, d) => edit(sim, *n, |i| i.dispatchable = *d),
        Action::SetLabel(n, on) => edit(sim, *n, |i| {
            i.labels = if *on {
                vec!["agent".into()]
            } else {
                Vec::new()
            };
        }),
        Action::SetPriority(n, p) => edit(sim, *n, |i| i.priority = *p),
        Action::Bump(n) => {
            let now = sim.now;
            edit(sim, *n, |i| i.updated_at = Some(now));
        }
        Action::Started(n) => {
            if sim.live.contains_key(&id(*n)) {
                sim.started(*n);
            } else {
                sim.feed(Event::WorkerStarted {
                    issue_id: id(*n),
                    run: stale_run(sim, *n),
                    workspace_path: None,
                });
            }
        }
        Action::Update(n, update) => {
            if sim.live.contains_key(&id(*n)) {
                sim.agent(*n, to_update(update));
            } else {
                sim.feed(Event::AgentUpdate {
                    issue_id: id(*n),
                    run: stale_run(sim, *n),
                    update: to_update(update),
                });
            }
        }
        Action::Exit(n, outcome) => {
            if sim.live.contains_key(&id(*n)) {
                sim.exit(*n, to_outcome(*outcome));
            } else {
                sim.feed(Event::WorkerExited {
                    issue_id: id(*n),
                    run: stale_run(sim, *n),
                    outcome: to_outcome(*outcome),
                });
            }
        }
        Action::StaleExit(n) => {
            let run = stale_run(sim, *n);
            sim.feed(Event::WorkerExited {
                issue_id: id(*n),
                run,
                outcome: ExitOutcome::Normal,
            });
        }
        Action::StaleUpdate(n) => {
            let run = stale_run(sim, *n);
            sim.feed(Event::AgentUpdate {
                issue_id: id(*n),
                run,
                update: AgentUpdate::TurnCompleted {
                    turn_id: "old".into(),
                },
            });
        }
        Action::FinishStops => sim.finish_stops(),
        Action::Reload(knobs) => {
            sim.reload(knobs.config());
        }
        Action::Invalid => {
            sim.invalid(ConfigErrorClass::WorkflowParseError);
        }
        Action::DiskLow => {
            sim.feed(Event::DiskSpaceLow {
                free_mb: 10,
                min_mb: 256,
            });
        }
        Action::DiskOk => {
            sim.feed(Event::DiskSpaceRecovered { free_mb: 9_000 });
        }
        Action::Refresh => {
            sim.feed(Event::RefreshRequested);
        }
        Action::Pause => {
            sim.feed(Event::PauseRequested {
                reason: "hold on".into(),
            });
        }
        Action::Resume => {
            sim.feed(Event::ResumeRequested);
        }
        Action::Stop(n) => {
            sim.feed(Event::StopRequested {
                identifier: format!("MT-{n}"),
            });
        }
        Action::Shutdown => {
            sim.feed(Event::ShutdownRequested);
        }
        Action::Startup => {
            sim.feed(Event::Startup);
        }
    }
}

/// Runs a sequence from a fresh sim whose board holds every issue in `Todo`.
fn run(initial: &Knobs, actions: &[Action]) -> Sim {
    let mut sim = Sim::new(initial.config());
    for n in 1..=ISSUES {
        sim.put(issue(n, "Todo"));
    }
    sim.feed(Event::Startup);
    for action in actions {
        apply(&mut sim, action);
    }
    sim
}

fn encode(header: &LogHeader, sim: &Sim) -> String {
    let mut text = header.to_line();
    for record in &sim.records {
        text.push('\n');
        text.push_str(&serde_json::to_string(record).expect("records serialise"));
    }
    text.push('\n');
    text
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    })]

    /// Invariants hold after every step (checked inside the sim), the same sequence gives the same
    /// records twice, and the NDJSON log replays to the same commands.
    #[test]
    fn random_sequences_keep_invariants_and_replay_exactly(
        initial in knobs(),
        mut actions in prop::collection::vec(action(), 1..200),
        shutdown_at in prop::option::weighted(0.3, any::<prop::sample::Index>()),
        cut in any::<prop::sample::Index>(),
    ) {
        if let Some(at) = shutdown_at {
            let at = at.index(actions.len() + 1);
            actions.insert(at, Action::Shutdown);
        }
        let first = run(&initial, &actions);
        let second = run(&initial, &actions);
        prop_assert_eq!(&first.records, &second.records, "same events, different commands");
        prop_assert_eq!(&first.transcript, &second.transcript);

        let text = encode(&first.header, &first);
        let (header, records) = read_log(&text).expect("a recorded log reads back");
        prop_assert_eq!(&header, &first.header);
        prop_assert_eq!(&records, &first.records, "serde round trip changed a record");
        let replayed = replay(&header, &records, None);
        prop_assert!(
            replayed.divergence.is_none(),
            "replay diverged:\n{}",
            replayed.divergence.map(|d| d.to_string()).unwrap_or_default()
        );
        prop_assert_eq!(
            replayed.orchestrator.snapshot(first.now),
            first.orch.snapshot(first.now)
        );

        // Cut the log anywhere: the second segment, resumed from the exported state (through
        // its JSON text), replays the rest without divergence and ends in the same state.
        let cut = cut.index(records.len() + 1);
        let state = replay(&header, &records[..cut], None).orchestrator;
        let mut segment = LogHeader::resuming(&state, cut as u64 + 1).to_line();
        for record in &records[cut..] {
            segment.push('\n');
            segment.push_str(&serde_json::to_string(record).expect("records serialise"));
        }
        let (resumed_header, rest) = read_log(&segment).expect("a resumed segment reads back");
        prop_assert_eq!(rest.len(), records.len() - cut);
        let resumed = replay(&resumed_header, &rest, None);
        prop_assert!(
            resumed.divergence.is_none(),
            "a segment cut at {} diverged:\n{}",
            cut,
            resumed.divergence.map(|d| d.to_string()).unwrap_or_default()
        );
        prop_assert_eq!(
            serde_json::to_value(&resumed.orchestrator).unwrap(),
            serde_json::to_value(&replayed.orchestrator).unwrap(),
            "the resumed core ends in the same state"
        );
    }

    /// With agents that always fail, every retry delay follows the formula and the attempt
    /// numbers of one issue only go up until it is released.
    #[test]
    fn failing_agents_back_off_by_the_formula(
        initial in knobs(),
        rounds in 1usize..25,
    ) {
        let mut sim = Sim::new(initial.config());
        for n in 1..=3 {
            let mut i = issue(n, "Todo");
            i.labels = vec!["agent".into()];
            sim.put(i);
        }
        sim.boot();
        let mut attempts: BTreeMap<IssueId, u32> = BTreeMap::new();
        for _ in 0..rounds {
            let live: Vec<u32> = (1..=3).filter(|n| sim.live.contains_key(&id(*n))).collect();
            for n in live {
                let commands = sim.exit(n, ExitOutcome::Failed { reason: "boom".into() });
                for command in commands {
                    if let Command::ScheduleRetry { issue_id, attempt, .. } = command {
                        let last = attempts.insert(issue_id.clone(), attempt).unwrap_or(0);
                        prop_assert!(attempt > last, "{} attempt {} after {}", issue_id, attempt, last);
                    }
                }
            }
            sim.fire();
            sim.respond_all();
        }
        // The sim checked every delay against the formula and the cap; make sure some happened.
        prop_assert!(!attempts.is_empty());
    }
}
