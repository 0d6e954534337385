//! The shell's integration tests, one binary: one link, one place for the helpers
//! (`support`, `daemon_harness`) and the fakes of external APIs (`anthropic_fake`, `gitea_fake`,
//! `github_fake`, `gitlab_fake`, `jira_fake`,
//! `linear_fake`). Each module is one subject; snapshots live in `snapshots/`.

#[path = "fakes/anthropic.rs"]
mod anthropic_fake;
#[path = "support/daemon.rs"]
mod daemon_harness;
#[path = "fakes/gitea.rs"]
mod gitea_fake;
#[path = "fakes/github.rs"]
mod github_fake;
#[path = "fakes/gitlab.rs"]
mod gitlab_fake;
#[path = "fakes/jira.rs"]
mod jira_fake;
#[path = "fakes/linear.rs"]
mod linear_fake;
mod support;

mod audit;
mod check_cli;
mod claude_real;
mod codex_fake;
mod codex_real;
mod contract;
mod daemon;
mod daemon_trackers;
mod dashboard_browser;
mod examples;
mod gitea;
mod github;
mod gitlab;
mod http;
mod jira;
mod linear;
mod local_tracker;
mod notify;
mod readme;
mod replay;
mod restart;
mod sandbox;
mod ssh;
mod status;
mod watch;
mod workflow;
mod workspace;
