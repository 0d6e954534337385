//! Notifications (`notifications.channels`): telling a webhook or a Slack channel when
//! something needs a human (a run failed or stalled, an agent asked for input, a budget ran
//! out) or is done (an issue completed, dispatch paused or resumed).
//!
//! The daemon turns the core's commands into [`Notice`]s ([`notice_for`]); each channel has its
//! own task with a bounded queue, so a dead or hung endpoint costs at most a queue of notices
//! and never slows the loop: a full queue drops the newest and counts it. A send has a short
//! timeout, follows no redirect, and is retried a bounded number of times with backoff. No
//! secret reaches a payload (every text is masked), and titles can be left out.

use std::time::Duration;

use serde::Serialize;
use symphony_core::{Command, Reason, RetryKind};
use tokio::sync::mpsc;

use crate::workflow::{ErrorClass, Secret, SectionKeys, WorkflowError};

/// What a channel can be told.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A run failed (a failure retry follows).
    RunFailed,
    /// A run showed no activity for the stall timeout and was stopped.
    RunStalled,
    /// A run moved its issue out of the active states.
    IssueCompleted,
    /// The agent asked for input; the issue waits for someone.
    InputRequired,
    /// A token budget (per issue or per day) ran out.
    TokenBudgetReached,
    /// An operator paused dispatch.
    Paused,
    /// An operator resumed dispatch.
    Resumed,
}

const KINDS: [(&str, Kind); 7] = [
    ("run_failed", Kind::RunFailed),
    ("run_stalled", Kind::RunStalled),
    ("issue_completed", Kind::IssueCompleted),
    ("input_required", Kind::InputRequired),
    ("token_budget_reached", Kind::TokenBudgetReached),
    ("paused", Kind::Paused),
    ("resumed", Kind::Resumed),
];

/// Where notices go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// Our JSON body, POSTed to any URL.
    Webhook,
    /// Slack's incoming-webhook JSON (`{"text": ...}`).
    Slack,
}

/// One channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Channel {
    /// `kind`.
    pub kind: ChannelKind,
    /// `url` (a secret: a Slack webhook URL is a credential).
    pub url: Secret,
    /// `headers`, values as secrets.
    pub headers: Vec<(String, Secret)>,
    /// `events`; every kind when not written.
    pub events: Vec<Kind>,
}

/// The `notifications` section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NotifyConfig {
    /// `redact_titles`: leave issue titles out of every payload.
    pub redact_titles: bool,
    /// `channels`.
    pub channels: Vec<Channel>,
}

impl NotifyConfig {
    /// Every secret value, for masking.
    pub fn secret_values(&self) -> Vec<String> {
        (self.channels.iter())
            .flat_map(|c| {
                std::iter::once(c.url.expose().to_owned())
                    .chain(c.headers.iter().map(|(_, v)| v.expose().to_owned()))
            })
            .collect()
    }
}

/// Reads the `notifications` section.
pub fn read_config(keys: &mut SectionKeys<'_, '_>) -> Result<NotifyConfig, WorkflowError> {
    keys.check_keys(&["redact_titles", "channels"]);
    let redact_titles = keys.flag("redact_titles", false)?;
    let Some(raw) = keys.raw("channels", None) else {
        return Ok(NotifyConfig {
            redact_titles,
            channels: Vec::new(),
        });
    };
    let serde_json::Value::Array(items) = raw else {
        return Err(keys.invalid("channels", "a list of channels", &raw.to_string()));
    };
    let mut channels = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("channels[{i}]");
        let bad = |keys: &SectionKeys<'_, '_>, message: String| {
            keys.error(ErrorClass::InvalidConfigValue, "channels", message)
        };
        let Some(map) = item.as_object() else {
            return Err(bad(
                keys,
                format!("notifications.{at}: expected a map with kind and url"),
            ));
        };
        if let Some(unknown) = map
            .keys()
            .find(|k| !["kind", "url", "headers", "events"].contains(&k.as_str()))
        {
            return Err(bad(
                keys,
                format!("notifications.{at}.{unknown}: unknown key (kind, url, headers, events)"),
            ));
        }
        let kind = match map.get("kind").and_then(|k| k.as_str()) {
            Some("webhook") => ChannelKind::Webhook,
            Some("slack") => ChannelKind::Slack,
            other => {
                return Err(bad(
                    keys,
                    format!(
                        "notifications.{at}.kind: expected webhook or slack, found {}",
                        other.unwrap_or("nothing")
                    ),
                ));
            }
        };
        let Some(url) = map.get("url").and_then(|u| u.as_str()) else {
            return Err(bad(
                keys,
                format!("notifications.{at}.url: missing (a URL or $VAR)"),
            ));
        };
        let url = keys.secret_value(&format!("{at}.url"), url)?;
        let parsed = reqwest::Url::parse(url.expose()).ok();
        if !parsed.is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host()) {
            // The URL itself is not shown: it may be a credential.
            return Err(bad(
                keys,
                format!("notifications.{at}.url: not an http(s) URL (the value is not shown)"),
            ));
        }
        let mut headers = Vec::new();
        if let Some(written) = map.get("headers") {
            let Some(written) = written.as_object() else {
                return Err(bad(
                    keys,
                    format!("notifications.{at}.headers: expected a map"),
                ));
            };
            for (name, value) in written {
                let valid_name = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
                let Some(value) = value.as_str().filter(|_| valid_name) else {
                    return Err(bad(
                        keys,
                        format!(
                            "notifications.{at}.headers.{name}: expected a header name and a string value"
                        ),
                    ));
                };
                let value = keys.secret_value(&format!("{at}.headers.{name}"), value)?;
                headers.push((name.clone(), value));
            }
        }
        let events = match map.get("events") {
            None => KINDS.iter().map(|(_, kind)| *kind).collect(),
            Some(serde_json::Value::Array(names)) => {
                let mut events = Vec::new();
                for name in names {
                    let found = (KINDS.iter()).find(|(n, _)| Some(*n) == name.as_str());
                    let Some((_, kind)) = found else {
                        let known: Vec<&str> = KINDS.iter().map(|(n, _)| *n).collect();
                        return Err(bad(
                            keys,
                            format!(
                                "notifications.{at}.events: unknown event {name} (one of {})",
                                known.join(", ")
                            ),
                        ));
                    };
                    events.push(*kind);
                }
                events
            }
            Some(other) => {
                return Err(bad(
                    keys,
                    format!("notifications.{at}.events: expected a list, found {other}"),
                ));
            }
        };
        channels.push(Channel {
            kind,
            url,
            headers,
            events,
        });
    }
    Ok(NotifyConfig {
        redact_titles,
        channels,
    })
}

/// One thing to tell.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Notice {
    /// What happened.
    pub event: Kind,
    /// The issue's identifier, when it is about one.
    pub issue: Option<String>,
    /// Its title (left out under `redact_titles`, or when not known).
    pub title: Option<String>,
    /// Its tracker link.
    pub url: Option<String>,
    /// A line of detail (the error, the reason), masked.
    pub detail: String,
    /// When, RFC 3339.
    pub at: String,
}

/// What an issue is known as, for notices about it.
#[derive(Clone, Debug, Default)]
pub struct IssueInfo {
    /// Identifier.
    pub identifier: String,
    /// Title.
    pub title: String,
    /// Tracker link.
    pub url: Option<String>,
}

/// The notice a core command calls for, if any. `issue` looks up what the issue is known as.
pub fn notice_for(
    command: &Command,
    issue: impl Fn(&str) -> Option<IssueInfo>,
    at: symphony_core::Timestamp,
) -> Option<Notice> {
    let (event, id, detail) = match command {
        Command::ScheduleRetry {
            issue_id,
            kind: RetryKind::Failure,
            error,
            attempt,
            ..
        } => (
            Kind::RunFailed,
            issue_id.as_str(),
            format!(
                "attempt {attempt}: {}",
                error.as_deref().unwrap_or("the run failed")
            ),
        ),
        Command::StopWorker {
            issue_id,
            reason: reason @ Reason::Stalled { .. },
            ..
        } => (Kind::RunStalled, issue_id.as_str(), reason.to_string()),
        Command::ReleaseClaim {
            issue_id,
            reason: reason @ Reason::Completed { .. },
        } => (Kind::IssueCompleted, issue_id.as_str(), reason.to_string()),
        Command::HoldIssue {
            issue_id, reason, ..
        } => {
            let event = match crate::metrics::held_reason(reason) {
                "input_required" => Kind::InputRequired,
                "token_budget" => Kind::TokenBudgetReached,
                _ => return None,
            };
            (event, issue_id.as_str(), reason.clone())
        }
        _ => return None,
    };
    let info = issue(id);
    Some(Notice {
        event,
        issue: Some(
            info.as_ref()
                .map_or(id.to_owned(), |i| i.identifier.clone()),
        ),
        title: info.as_ref().map(|i| i.title.clone()),
        url: info.and_then(|i| i.url),
        detail,
        at: at.to_rfc3339(),
    })
}

/// The body a channel gets for `notice`, masked.
pub fn payload(kind: ChannelKind, notice: &Notice) -> String {
    let body = match kind {
        ChannelKind::Webhook => serde_json::to_string(notice).unwrap_or_default(),
        ChannelKind::Slack => {
            let event = serde_json::to_value(notice.event)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
                .replace('_', " ");
            let mut text = format!("symphony: {event}");
            if let Some(issue) = &notice.issue {
                text.push_str(&format!(" - {issue}"));
            }
            if let Some(title) = &notice.title {
                text.push_str(&format!(" ({title})"));
            }
            if !notice.detail.is_empty() {
                text.push_str(&format!(": {}", notice.detail));
            }
            if let Some(url) = &notice.url {
                text.push_str(&format!(" <{url}>"));
            }
            serde_json::json!({ "text": text }).to_string()
        }
    };
    crate::redact::mask(&body).into_owned()
}

/// Notices waiting per channel; more are dropped (and counted) until the queue drains.
pub const QUEUE: usize = 64;
/// One send's limit.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Sends of one notice at most (the first and the retries).
pub const ATTEMPTS: u32 = 3;

/// The running channels: a queue and a task each.
#[derive(Debug, Default)]
pub struct Notifier {
    channels: Vec<(Channel, mpsc::Sender<Notice>)>,
    redact_titles: bool,
    dropped: u64,
}

impl Notifier {
    /// Starts a task per channel on `runtime`.
    pub fn start(config: &NotifyConfig, runtime: &tokio::runtime::Handle) -> Result<Self, String> {
        let client = crate::tracker::http_client_builder(SEND_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the notification client: {e}"))?;
        let mut channels = Vec::new();
        for channel in &config.channels {
            let (tx, rx) = mpsc::channel(QUEUE);
            runtime.spawn(deliver(
                client.clone(),
                channel.clone(),
                rx,
                Duration::from_secs(1),
            ));
            channels.push((channel.clone(), tx));
        }
        Ok(Self {
            channels,
            redact_titles: config.redact_titles,
            dropped: 0,
        })
    }

    /// Queues `notice` on every channel that wants its kind; never waits.
    pub fn send(&mut self, mut notice: Notice) {
        if self.redact_titles {
            notice.title = None;
        }
        for (channel, tx) in &self.channels {
            if channel.events.contains(&notice.event) && tx.try_send(notice.clone()).is_err() {
                self.dropped += 1;
                tracing::warn!(
                    dropped = self.dropped,
                    "a notification channel is behind; a {:?} notice was dropped",
                    notice.event
                );
            }
        }
    }
}

/// A channel's task: each notice sent, retried after `backoff` (doubling) on a failure, at
/// most [`ATTEMPTS`] times.
async fn deliver(
    client: reqwest::Client,
    channel: Channel,
    mut rx: mpsc::Receiver<Notice>,
    backoff: Duration,
) {
    while let Some(notice) = rx.recv().await {
        let body = payload(channel.kind, &notice);
        let mut wait = backoff;
        for attempt in 1..=ATTEMPTS {
            let mut request = (client.post(channel.url.expose()))
                .header("content-type", "application/json")
                .body(body.clone());
            for (name, value) in &channel.headers {
                request = request.header(name.as_str(), value.expose());
            }
            let outcome = match request.send().await {
                Ok(response) if response.status().is_success() => Ok(()),
                Ok(response) => Err(format!("HTTP {}", response.status().as_u16())),
                // Never the URL: it may be the credential.
                Err(e) if e.is_timeout() => Err("timed out".to_owned()),
                Err(_) => Err("cannot connect".to_owned()),
            };
            match outcome {
                Ok(()) => break,
                Err(why) if attempt == ATTEMPTS => {
                    tracing::warn!("a {:?} notification was not delivered: {why}", notice.event);
                }
                Err(_) => {
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
            }
        }
    }
}
