//! Candidate selection and concurrency (SPEC 8.2, 8.3).
//!
//! A worker can only be started with a [`Permit`], and only [`Orchestrator::permit`] makes one,
//! after checking every SPEC 8.2 rule, the claim map and both slot limits. So no code path can
//! dispatch without the checks (SPEC 7.4).

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt;

use crate::budget::Spent;
use crate::command::Command;
use crate::event::ConfigErrorClass;
use crate::issue::{Issue, matches_normalized, normalize};
use crate::orchestrator::{Lifecycle, Orchestrator};
use crate::state::{Claim, RunningEntry, WaitingEntry};

/// Proof that an issue passed every dispatch check, with the worker host chosen for it
/// (`None`: this machine). Built only here.
pub(crate) struct Permit {
    host: Option<String>,
}

/// Why an issue may not start now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Ineligible {
    ShuttingDown,
    PreflightFailed(ConfigErrorClass),
    MissingFields,
    Terminal,
    NotActive,
    NotDispatchable,
    MissingLabel,
    Claimed,
    NoSlot,
    /// Worker hosts are configured and none can take a run now: the text says why.
    NoHost(String),
    Paused(String),
}

impl fmt::Display for Ineligible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ShuttingDown => f.write_str("shutting down"),
            Self::PreflightFailed(class) => write!(f, "dispatch preflight failed: {class}"),
            Self::MissingFields => f.write_str("missing id, identifier, title or state"),
            Self::Terminal => f.write_str("terminal state"),
            Self::NotActive => f.write_str("state not active"),
            Self::NotDispatchable => f.write_str("adapter marked it not dispatchable"),
            Self::MissingLabel => f.write_str("missing a required label"),
            Self::Claimed => f.write_str("already claimed"),
            Self::NoSlot => f.write_str("no available orchestrator slots"),
            Self::NoHost(why) => f.write_str(why),
            Self::Paused(reason) => write!(f, "dispatch paused: {reason}"),
        }
    }
}

/// How a refreshed issue stands against the config (SPEC 8.5 part B order: terminal first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Standing {
    Terminal,
    Inactive,
    Unroutable,
    Active,
}

/// Most waiting issues kept with their reason per tick; the rest are counted.
pub(crate) const MAX_WAITING_LISTED: usize = 100;

/// Waiting issues found in one candidate pass: `(issue, announce, reason)`, at most
/// [`MAX_WAITING_LISTED`], and how many more there were.
#[derive(Default)]
struct Notes<'a> {
    listed: Vec<(&'a Issue, bool, String)>,
    unlisted: usize,
}

impl<'a> Notes<'a> {
    fn full(&self) -> bool {
        self.listed.len() >= MAX_WAITING_LISTED
    }

    /// Lists `issue` with the reason `why` builds, or only counts it once the list is full.
    fn add(&mut self, issue: &'a Issue, announce: bool, why: impl FnOnce() -> String) {
        if self.full() {
            self.unlisted += 1;
        } else {
            self.listed.push((issue, announce, why()));
        }
    }
}

/// Everyone left in `heap` (after `issue`) waits for the same `reason`: lists the next in
/// line, counts the rest.
fn all_wait<'a>(
    issue: &'a Issue,
    reason: String,
    notes: &mut Notes<'a>,
    heap: &mut BinaryHeap<Reverse<Ranked<'a>>>,
) {
    notes.add(issue, false, || reason.clone());
    while !notes.full()
        && let Some(Reverse(Ranked { issue, .. })) = heap.pop()
    {
        notes.add(issue, false, || reason.clone());
    }
    notes.unlisted += heap.len();
}

/// Running workers per normalised state and per worker host, against the limits (SPEC 8.3,
/// Appendix A).
pub(crate) struct Slots {
    used: u32,
    per_state: BTreeMap<String, u32>,
    per_host: BTreeMap<String, u32>,
}

impl Slots {
    fn global_free(&self, orch: &Orchestrator) -> bool {
        self.used < orch.config.max_concurrent_agents
    }

    fn state_free(&self, orch: &Orchestrator, state: &str) -> bool {
        let key = normalize(state);
        let limit = orch
            .policy
            .state_limits
            .get(&key)
            .copied()
            .unwrap_or(orch.config.max_concurrent_agents);
        self.per_state.get(&key).copied().unwrap_or(0) < limit
    }

    fn take(&mut self, state: &str, host: Option<&str>) {
        self.used += 1;
        *self.per_state.entry(normalize(state)).or_default() += 1;
        if let Some(host) = host {
            *self.per_host.entry(host.to_owned()).or_default() += 1;
        }
    }

    pub(crate) fn on_host(&self, host: &str) -> u32 {
        self.per_host.get(host).copied().unwrap_or(0)
    }
}

/// The numeric part of the SPEC 8.2 sort key: priority bucket and value, then creation time
/// with nulls last. Computed once per candidate so heap comparisons are integer compares.
fn numeric_key(issue: &Issue) -> (u8, i64, u8, u64) {
    let (pb, p) = match issue.priority {
        Some(p @ 1..=4) => (0, p),
        _ => (1, 0),
    };
    let (cb, c) = issue.created_at.map_or((1, 0), |t| (0, t.0));
    (pb, p, cb, c)
}

/// SPEC 8.2 sort: priority 1..=4 ascending then the rest, oldest `created_at` (null last),
/// identifier, and the id last so the order is total and independent of input order.
pub(crate) fn dispatch_order(a: &Issue, b: &Issue) -> Ordering {
    Ranked::new(a).cmp(&Ranked::new(b))
}

/// Candidate in the dispatch heap, ordered by [`dispatch_order`].
struct Ranked<'a> {
    key: (u8, i64, u8, u64),
    issue: &'a Issue,
}

impl<'a> Ranked<'a> {
    fn new(issue: &'a Issue) -> Self {
        Self {
            key: numeric_key(issue),
            issue,
        }
    }
}

impl PartialEq for Ranked<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Ranked<'_> {}
impl PartialOrd for Ranked<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key
            .cmp(&other.key)
            .then_with(|| self.issue.identifier.cmp(&other.issue.identifier))
            .then_with(|| self.issue.id.cmp(&other.issue.id))
    }
}

impl Orchestrator {
    /// SPEC 8.2 `issue_routable`: adapter says dispatchable and every required label is there.
    pub(crate) fn routable(&self, issue: &Issue) -> bool {
        issue.dispatchable && self.has_required_labels(issue)
    }

    fn has_required_labels(&self, issue: &Issue) -> bool {
        self.policy
            .required_labels
            .as_ref()
            .is_some_and(|required| {
                required.iter().all(|want| {
                    issue
                        .labels
                        .iter()
                        .any(|have| matches_normalized(have, want))
                })
            })
    }

    pub(crate) fn standing(&self, issue: &Issue) -> Standing {
        if self.policy.terminal.contains(&issue.state) {
            Standing::Terminal
        } else if !self.policy.active.contains(&issue.state) {
            Standing::Inactive
        } else if !issue.has_required_fields() || !self.routable(issue) {
            Standing::Unroutable
        } else {
            Standing::Active
        }
    }

    /// The issue-only part of SPEC 8.2: everything but claims and slots.
    fn issue_eligible(&self, issue: &Issue) -> Result<(), Ineligible> {
        if !issue.has_required_fields() {
            return Err(Ineligible::MissingFields);
        }
        if self.policy.terminal.contains(&issue.state) {
            return Err(Ineligible::Terminal);
        }
        if !self.policy.active.contains(&issue.state) {
            return Err(Ineligible::NotActive);
        }
        if !issue.dispatchable {
            return Err(Ineligible::NotDispatchable);
        }
        if !self.has_required_labels(issue) {
            return Err(Ineligible::MissingLabel);
        }
        Ok(())
    }

    /// Every check before a dispatch, and the host it goes to. `own_retry` allows the issue's
    /// own retry claim, which the dispatch replaces; `preferred` is the host of the run before.
    pub(crate) fn permit(
        &self,
        issue: &Issue,
        slots: &Slots,
        own_retry: bool,
        preferred: Option<&str>,
    ) -> Result<Permit, Ineligible> {
        if self.lifecycle != Lifecycle::Running {
            return Err(Ineligible::ShuttingDown);
        }
        if let Some(error) = &self.preflight_error {
            return Err(Ineligible::PreflightFailed(error.class));
        }
        if let Some(reason) = self.pause_cause() {
            return Err(Ineligible::Paused(reason));
        }
        self.issue_eligible(issue)?;
        match self.claims.get(&issue.id) {
            None => {}
            Some(Claim::Retrying(entry)) if own_retry && entry.checking.is_some() => {}
            Some(_) => return Err(Ineligible::Claimed),
        }
        if !slots.global_free(self) || !slots.state_free(self, &issue.state) {
            return Err(Ineligible::NoSlot);
        }
        let host = self.choose_host(slots, preferred)?;
        Ok(Permit { host })
    }

    /// Appendix A host choice. No hosts configured: this machine (`None`). Otherwise, among
    /// the hosts not held out and under `max_concurrent_agents_per_host`: `preferred` when it
    /// is one of them, else the least loaded, ties by list order. None left: the run waits;
    /// it never falls back to this machine.
    fn choose_host(
        &self,
        slots: &Slots,
        preferred: Option<&str>,
    ) -> Result<Option<String>, Ineligible> {
        let hosts = &self.config.worker_hosts;
        if hosts.is_empty() {
            return Ok(None);
        }
        let cap = self
            .config
            .max_concurrent_agents_per_host
            .unwrap_or(u32::MAX);
        let open = |host: &&String| {
            slots.on_host(host) < cap
                && self
                    .host_holds
                    .get(*host)
                    .is_none_or(|hold| hold.until <= self.now)
        };
        if let Some(preferred) = preferred
            && let Some(host) = hosts.iter().filter(open).find(|h| *h == preferred)
        {
            return Ok(Some(host.clone()));
        }
        // `min_by_key` keeps the first of equals: list order breaks ties.
        if let Some(host) = hosts.iter().filter(open).min_by_key(|h| slots.on_host(h)) {
            return Ok(Some(host.clone()));
        }
        let held = hosts.iter().filter(|h| {
            self.host_holds
                .get(*h)
                .is_some_and(|hold| hold.until > self.now)
        });
        let held: Vec<&str> = held.map(String::as_str).collect();
        Err(Ineligible::NoHost(if held.is_empty() {
            format!(
                "every worker host runs its {cap} agents (worker.max_concurrent_agents_per_host)"
            )
        } else {
            format!(
                "no worker host can take a run: {} held out after failures, the others full",
                held.join(", ")
            )
        }))
    }

    /// Current use of the slots: running and stopping workers both hold one.
    pub(crate) fn slots(&self) -> Slots {
        let mut slots = Slots {
            used: 0,
            per_state: BTreeMap::new(),
            per_host: BTreeMap::new(),
        };
        for claim in self.claims.values() {
            if let Claim::Running(entry) | Claim::Stopping(entry, _) = claim {
                slots.take(&entry.issue.state, entry.host.as_deref());
            }
        }
        slots
    }

    /// SPEC 8.1 steps 4-5: dispatch eligible candidates in priority order while slots remain.
    ///
    /// Filters in O(n), heapifies in O(n) and pops only as many as it examines, so a tick costs
    /// O(n + k log n) for k examined candidates (dispatched or already claimed) rather than a
    /// full sort.
    pub(crate) fn dispatch_candidates(&mut self, issues: &[Issue], out: &mut Vec<Command>) {
        if self.lifecycle != Lifecycle::Running {
            self.waiting.clear();
            self.waiting_unlisted = 0;
            return;
        }
        let now = self.now;
        self.host_holds.retain(|_, hold| hold.until > now);
        let mut slots = self.slots();
        let paused = self.paused_reason();
        // Why active issues that do not start now wait: at most MAX_WAITING_LISTED of them,
        // issue-specific reasons first, then the next in line for a slot; the rest are only
        // counted (formatting and keeping a row for each of 10,000 candidates would cost more
        // than the whole tick).
        let mut notes = Notes::default();
        // Claims are checked when an issue leaves the heap (in `permit`), not here: reading
        // every candidate's id from memory cost more than the rest of the filter together,
        // and a claimed issue in the heap is just skipped when popped.
        let mut eligible: Vec<Reverse<Ranked<'_>>> = Vec::with_capacity(issues.len());
        for issue in issues {
            match self.issue_eligible(issue) {
                Ok(()) => eligible.push(Reverse(Ranked::new(issue))),
                Err(Ineligible::NotDispatchable) => {
                    notes.add(issue, true, || self.blocker_note(issue));
                }
                Err(Ineligible::MissingLabel) => notes.add(issue, true, || self.label_note(issue)),
                Err(_) => {}
            }
        }
        // Built in one O(n) heapify, not n pushes.
        let mut heap = BinaryHeap::from(eligible);
        while let Some(Reverse(Ranked { issue, .. })) = heap.pop() {
            if paused.is_some() || !slots.global_free(self) {
                let reason = paused.clone().unwrap_or_else(|| {
                    format!(
                        "all {} agent slots are in use (agent.max_concurrent_agents)",
                        self.config.max_concurrent_agents
                    )
                });
                all_wait(issue, reason, &mut notes, &mut heap);
                break;
            }
            // Re-checked per issue: an earlier dispatch in this pass may have used the
            // state's last slot, or a duplicate id in the input may now be claimed.
            match self.permit(issue, &slots, false, None) {
                Ok(permit) => {
                    let fresh = Spent::default();
                    self.dispatch(permit, issue, None, fresh, &mut slots, out);
                }
                Err(Ineligible::NoSlot) => notes.add(issue, false, || {
                    let limit = self
                        .policy
                        .state_limits
                        .get(&normalize(&issue.state))
                        .copied()
                        .unwrap_or(self.config.max_concurrent_agents);
                    format!(
                        "all {limit} slots for state {:?} are in use \
                         (agent.max_concurrent_agents_by_state)",
                        issue.state
                    )
                }),
                // No host for this one is no host for any (none has a preferred host).
                Err(Ineligible::NoHost(why)) => {
                    all_wait(issue, why, &mut notes, &mut heap);
                    break;
                }
                Err(_) => {}
            }
        }
        self.note_waiting(notes, out);
    }

    /// What pauses dispatch besides a broken workflow: the operator, low disk, the day's
    /// token budget, in that order.
    fn pause_cause(&self) -> Option<String> {
        (self.operator_pause_reason())
            .or_else(|| self.disk_low.clone())
            .or_else(|| self.daily_budget_used())
    }

    /// Why nothing is dispatched at all right now, if it is paused.
    fn paused_reason(&self) -> Option<String> {
        if let Some(error) = &self.preflight_error {
            return Some(format!(
                "dispatch paused: the workflow does not load ({})",
                error.class
            ));
        }
        let reason = self.pause_cause()?;
        Some(format!("dispatch paused: {reason}"))
    }

    /// Why an issue the tracker marks not dispatchable waits: its unfinished blockers when it
    /// has any, else the adapter's own reason (an open pull request claiming it, say).
    fn blocker_note(&self, issue: &Issue) -> String {
        let open: Vec<String> = issue
            .blocked_by
            .iter()
            .filter(|b| {
                b.state
                    .as_deref()
                    .is_none_or(|state| !self.policy.terminal.contains(state))
            })
            .map(|b| {
                let name = b.identifier.as_deref().or(b.id.as_deref()).unwrap_or("?");
                match b.state.as_deref() {
                    Some(state) => format!("{name} ({state})"),
                    None => format!("{name} (state unknown)"),
                }
            })
            .collect();
        if open.is_empty() {
            "the tracker marks it not dispatchable (for example, an open pull request claims it)"
                .to_owned()
        } else {
            format!("waiting for its blockers: {}", open.join(", "))
        }
    }

    /// Which required labels an issue lacks.
    fn label_note(&self, issue: &Issue) -> String {
        if self.policy.required_labels.is_none() {
            return "tracker.required_labels has a blank entry, which no issue can carry"
                .to_owned();
        }
        let missing: Vec<&str> = self
            .policy
            .required_labels
            .iter()
            .flatten()
            .filter(|want| {
                !issue
                    .labels
                    .iter()
                    .any(|have| matches_normalized(have, want))
            })
            .map(String::as_str)
            .collect();
        format!(
            "missing required label(s): {} (tracker.required_labels)",
            missing.join(", ")
        )
    }

    /// Replaces the waiting list with `notes` (claimed issues left out), emitting
    /// [`Command::IssueWaiting`] for each issue-specific reason (a blocker, a label) that is
    /// new or changed. Capacity and pause reasons are shown, not announced one issue at a
    /// time: they are common to every issue in line, and change as slots come and go.
    fn note_waiting(&mut self, notes: Notes<'_>, out: &mut Vec<Command>) {
        let mut waiting = BTreeMap::new();
        for (issue, announce, reason) in notes.listed {
            if self.claims.contains_key(&issue.id) || waiting.contains_key(&issue.id) {
                continue;
            }
            // Unchanged since the last poll: the entry moves over as it is.
            let before = self.waiting.remove(&issue.id);
            let since = match before {
                Some(before) if before.reason == reason && before.state == issue.state => {
                    waiting.insert(issue.id.clone(), before);
                    continue;
                }
                Some(before) if before.reason == reason => before.since,
                _ => {
                    if announce {
                        out.push(Command::IssueWaiting {
                            issue_id: issue.id.clone(),
                            identifier: issue.identifier.clone(),
                            reason: reason.clone(),
                        });
                    }
                    self.now
                }
            };
            waiting.insert(
                issue.id.clone(),
                WaitingEntry {
                    identifier: issue.identifier.clone(),
                    url: issue.url.clone(),
                    state: issue.state.clone(),
                    reason,
                    since,
                },
            );
        }
        self.waiting = waiting;
        self.waiting_unlisted = notes.unlisted;
    }

    /// SPEC 16.4: claim the issue as running and tell the shell to start a worker. `spent`:
    /// what the claim's earlier runs used (nothing for a first run).
    pub(crate) fn dispatch(
        &mut self,
        permit: Permit,
        issue: &Issue,
        attempt: Option<u32>,
        spent: Spent,
        slots: &mut Slots,
        out: &mut Vec<Command>,
    ) {
        let run = self.new_run();
        slots.take(&issue.state, permit.host.as_deref());
        let mut entry = RunningEntry::new(run, issue.clone(), attempt, self.now);
        entry.spent_before = spent;
        entry.host = permit.host.clone();
        self.set_claim(&issue.id, Claim::Running(Box::new(entry)));
        out.push(Command::Dispatch {
            issue_id: issue.id.clone(),
            run,
            attempt,
            issue: issue.clone(),
            host: permit.host,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Timestamp;

    fn issue(id: &str, priority: Option<i64>, created: Option<u64>) -> Issue {
        Issue {
            id: id.into(),
            identifier: id.to_uppercase(),
            priority,
            created_at: created.map(Timestamp),
            ..Issue::default()
        }
    }

    #[test]
    fn order_is_priority_bucket_then_age_then_identifier() {
        let mut list = [
            issue("e", None, Some(1)),
            issue("d", Some(7), Some(0)),
            issue("c", Some(2), None),
            issue("b", Some(2), Some(5)),
            issue("a", Some(2), Some(5)),
            issue("f", Some(1), Some(9)),
            issue("g", Some(0), Some(0)),
        ];
        list.sort_by(dispatch_order);
        let ids: Vec<&str> = list.iter().map(|i| i.id.as_str()).collect();
        // 1..=4 first (f, then a/b by identifier, then c with no date), then 7/0/null by age.
        assert_eq!(ids, ["f", "a", "b", "c", "d", "g", "e"]);
    }
}
