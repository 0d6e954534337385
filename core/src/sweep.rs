//! `workspace.max_age_days`: when to sweep old workspaces and which to keep. The shell only
//! looks at the directories (their age is a fact about the disk); the timing and the set of
//! issues whose workspaces must stay are decided here, so they are recorded and replayed.

use crate::command::Command;
use crate::issue::Issue;
use crate::orchestrator::Orchestrator;
use crate::state::Claim;

/// How often the sweep runs: after the first successful candidate fetch, then at the first
/// successful fetch at least this long after the previous sweep. A sweep needs a fresh
/// candidate list (the active issues it keeps), so it waits for a fetch, not a bare timer.
pub(crate) const SWEEP_EVERY_MS: u64 = 6 * 3600 * 1000;

impl Orchestrator {
    /// After a successful candidate fetch: a sweep when one is due, keeping the workspaces
    /// of every fetched (active) issue and of every claimed one.
    pub(crate) fn sweep_if_due(&mut self, candidates: &[Issue], out: &mut Vec<Command>) {
        let Some(max_age_days) = self.config.workspace_max_age_days else {
            return;
        };
        if self.next_sweep.is_some_and(|due| self.now < due) {
            return;
        }
        self.next_sweep = Some(self.now.plus_millis(SWEEP_EVERY_MS));
        let mut keep: Vec<String> = candidates.iter().map(|i| i.identifier.clone()).collect();
        keep.extend(self.claims.values().map(|claim| match claim {
            Claim::Running(entry) | Claim::Stopping(entry, _) => entry.issue.identifier.clone(),
            Claim::Retrying(entry) => entry.identifier.clone(),
            Claim::Blocked(entry) => entry.identifier.clone(),
        }));
        keep.sort();
        keep.dedup();
        out.push(Command::SweepWorkspaces { max_age_days, keep });
    }
}
