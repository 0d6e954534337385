//! The scheduling subset of the typed config (SPEC 5.3, 6.4).
//!
//! The shell parses WORKFLOW.md, resolves `$VAR`s and paths, and hands the core only what
//! scheduling decisions read. None of it is secret, so it is written verbatim into event logs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::issue::{StateSet, normalize};

/// Fixed delay of the continuation retry after a normal worker exit (SPEC 8.4).
pub const CONTINUATION_DELAY_MS: u64 = 1000;
/// How long a host whose run failed before its agent started is left out of choice, unless
/// `worker.host_backoff_ms` says otherwise (Appendix A).
pub const HOST_BACKOFF_MS: u64 = 60_000;
/// Base of the failure backoff: `min(BASE * 2^(attempt-1), max_retry_backoff_ms)` (SPEC 8.4).
pub const FAILURE_BACKOFF_BASE_MS: u64 = 10_000;

/// Scheduling settings in force. Field defaults follow SPEC 6.4.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// `tracker.active_states`: provider state names eligible for work.
    pub active_states: Vec<String>,
    /// `tracker.terminal_states`: states that end work and clean the workspace.
    pub terminal_states: Vec<String>,
    /// `tracker.required_labels`: every one must be on an issue for it to run.
    pub required_labels: Vec<String>,
    /// `polling.interval_ms`.
    pub poll_interval_ms: u64,
    /// `agent.max_concurrent_agents`.
    pub max_concurrent_agents: u32,
    /// `agent.max_concurrent_agents_by_state`, as written; see [`SchedulerConfig::state_limits`].
    pub max_concurrent_agents_by_state: BTreeMap<String, i64>,
    /// `agent.max_retry_backoff_ms`.
    pub max_retry_backoff_ms: u64,
    /// `agent.max_turns`: turns per worker run before it hands back to the retry queue.
    pub max_turns: u32,
    /// `codex.stall_timeout_ms`; `<= 0` disables stall detection.
    pub stall_timeout_ms: i64,
    /// `agent.max_tokens_per_issue`: tokens an issue may use across the runs of one claim
    /// before its worker is stopped and the issue held; `None`: no limit. Left out of the
    /// encoding when `None`, so digests of logs written before it existed do not change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens_per_issue: Option<u64>,
    /// `agent.max_turns_per_issue`: completed turns an issue may use across the runs of one
    /// claim before it is held, so an issue the agent cannot finish does not continue forever;
    /// `None`: no limit (SPEC 7.1). Left out of the encoding when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_turns_per_issue: Option<u32>,
    /// `agent.max_runtime_ms_per_issue`: wall-clock time the runs of one claim may take
    /// together before the worker is stopped and the issue held; `None`: no limit. Left out of
    /// the encoding when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_runtime_ms_per_issue: Option<u64>,
    /// `agent.max_tokens_per_day`: tokens all runs may use in one UTC day; reached, nothing new
    /// is dispatched until the next day (running agents finish). Left out of the encoding when
    /// `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens_per_day: Option<u64>,
    /// `agent.run_timeout_ms`: wall-clock time one worker run may take before it is stopped
    /// and retried with the failure backoff; `None`: no limit. Left out of the encoding when
    /// `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_timeout_ms: Option<u64>,
    /// `workspace.max_age_days`: sweep workspaces untouched this long (`crate::Command::
    /// SweepWorkspaces`); `None`: never. Left out of the encoding when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_max_age_days: Option<u32>,
    /// `worker.ssh_hosts`, each by its name as written (Appendix A): where runs go, in the
    /// order that breaks ties. Empty: every run is local. Left out of the encoding when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub worker_hosts: Vec<String>,
    /// `worker.max_concurrent_agents_per_host`; `None`: only the global limits bound a host.
    /// Left out of the encoding when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_agents_per_host: Option<u32>,
    /// `worker.host_backoff_ms`: how long a host whose run failed before its agent started is
    /// left out of choice; `None`: [`HOST_BACKOFF_MS`]. Left out of the encoding when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_backoff_ms: Option<u64>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            active_states: vec!["Todo".into(), "In Progress".into()],
            terminal_states: ["Closed", "Cancelled", "Canceled", "Duplicate", "Done"]
                .map(String::from)
                .to_vec(),
            required_labels: Vec::new(),
            poll_interval_ms: 30_000,
            max_concurrent_agents: 10,
            max_concurrent_agents_by_state: BTreeMap::new(),
            max_retry_backoff_ms: 300_000,
            max_turns: 20,
            stall_timeout_ms: 300_000,
            max_tokens_per_issue: None,
            max_turns_per_issue: None,
            max_runtime_ms_per_issue: None,
            max_tokens_per_day: None,
            run_timeout_ms: None,
            workspace_max_age_days: None,
            worker_hosts: Vec::new(),
            max_concurrent_agents_per_host: None,
            host_backoff_ms: None,
        }
    }
}

impl SchedulerConfig {
    /// Per-state limits with keys trimmed and lowercased and non-positive values dropped
    /// (SPEC 5.3.5). When two keys normalise alike, the smaller limit wins.
    pub fn state_limits(&self) -> BTreeMap<String, u32> {
        let mut limits = BTreeMap::new();
        for (state, &limit) in &self.max_concurrent_agents_by_state {
            let key = normalize(state);
            if key.is_empty() || limit <= 0 {
                continue;
            }
            let limit = u32::try_from(limit).unwrap_or(u32::MAX);
            limits
                .entry(key)
                .and_modify(|l: &mut u32| *l = (*l).min(limit))
                .or_insert(limit);
        }
        limits
    }

    /// A short, stable fingerprint of these settings for log headers (FNV-1a 64 over the
    /// canonical JSON; fields serialise in declaration order and maps in key order).
    pub fn digest(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in json {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        format!("fnv1a64:{hash:016x}")
    }
}

/// The config compiled for fast, allocation-free checks on the dispatch path.
#[derive(Clone, Debug)]
pub(crate) struct Policy {
    pub(crate) active: StateSet,
    pub(crate) terminal: StateSet,
    /// Normalised required labels; `None` when a blank label was configured, which no issue
    /// can carry (SPEC 5.3.1), so nothing is routable.
    pub(crate) required_labels: Option<Vec<String>>,
    pub(crate) state_limits: BTreeMap<String, u32>,
}

impl Policy {
    /// A placeholder until the real config is known (an orchestrator being deserialised).
    pub(crate) fn unset() -> Self {
        Self::new(&SchedulerConfig::default())
    }

    pub(crate) fn new(config: &SchedulerConfig) -> Self {
        let mut labels = Vec::with_capacity(config.required_labels.len());
        let mut satisfiable = true;
        for label in &config.required_labels {
            let label = normalize(label);
            if label.is_empty() {
                satisfiable = false;
            }
            labels.push(label);
        }
        Self {
            active: StateSet::new(&config.active_states),
            terminal: StateSet::new(&config.terminal_states),
            required_labels: satisfiable.then_some(labels),
            state_limits: config.state_limits(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_spec_cheat_sheet() {
        let c = SchedulerConfig::default();
        assert_eq!(c.poll_interval_ms, 30_000);
        assert_eq!(c.max_concurrent_agents, 10);
        assert_eq!(c.max_retry_backoff_ms, 300_000);
        assert_eq!(c.max_turns, 20);
        assert_eq!(c.stall_timeout_ms, 300_000);
        assert!(c.max_concurrent_agents_by_state.is_empty());
    }

    #[test]
    fn state_limits_normalise_keys_and_drop_non_positive_values() {
        let c = SchedulerConfig {
            max_concurrent_agents_by_state: [
                (" In Progress ", 3),
                ("in progress", 2),
                ("Todo", 0),
                ("Review", -4),
                ("  ", 5),
                ("Rework", 1),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
            ..SchedulerConfig::default()
        };
        let limits = c.state_limits();
        assert_eq!(
            limits.into_iter().collect::<Vec<_>>(),
            vec![("in progress".to_owned(), 2), ("rework".to_owned(), 1)]
        );
    }

    #[test]
    fn digest_changes_with_any_setting() {
        let a = SchedulerConfig::default();
        let b = SchedulerConfig {
            max_turns: 21,
            ..a.clone()
        };
        assert_eq!(a.digest(), SchedulerConfig::default().digest());
        assert_ne!(a.digest(), b.digest());
        assert!(a.digest().starts_with("fnv1a64:"));
    }

    #[test]
    fn blank_required_label_matches_nothing() {
        let c = SchedulerConfig {
            required_labels: vec!["Agent".into(), "  ".into()],
            ..SchedulerConfig::default()
        };
        assert_eq!(Policy::new(&c).required_labels, None);
    }
}
