//! `GET /metrics`: the daemon in the Prometheus text format (0.0.4), through the Prometheus
//! project's own `prometheus-client` crate.
//!
//! Two kinds of figures: what the shell counts as it goes (dispatches, run outcomes and
//! durations, tracker requests and their latency, poll ticks, HTTP requests), held in the
//! registry's counters and histograms; and what the core knows (running, retrying, held,
//! waiting, tokens, pause), read from its snapshot each time the page is rendered.
//! Label values come from fixed sets (routes, outcomes, operations, reasons), never from
//! issue text, so the number of series is bounded.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use symphony_core::Snapshot;

/// One label.
type Labels = Vec<(&'static str, String)>;

/// The `Content-Type` of the page.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Everything `/metrics` shows.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    dispatches: Counter,
    run_outcomes: Family<Labels, Counter>,
    run_seconds: Histogram,
    tracker_requests: Family<Labels, Counter>,
    tracker_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    tick_seconds: Histogram,
    http_requests: Family<Labels, Counter>,
    issues: Family<Labels, Gauge>,
    held: Family<Labels, Gauge>,
    tokens: Family<Labels, Counter>,
    tokens_seen: Mutex<(u64, u64, u64)>,
    rate_limit_used: Family<Labels, Gauge<f64, AtomicU64>>,
    paused: Gauge,
    log_bytes: Family<Labels, Gauge>,
    tracker_rate: Family<Labels, Gauge>,
}

/// File sizes shown beside the core's figures.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogSizes {
    /// The event log's current segment, when one is recorded.
    pub event_log: Option<u64>,
    /// Today's audit-log file.
    pub audit_log: Option<u64>,
    /// The tracker API's rate-limit headroom, when it reports one.
    pub tracker_rate: Option<crate::tracker::RateLimit>,
}

/// Tracker request latency buckets: 5 ms to about 10 s.
fn tracker_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 12))
}

/// What a held issue waits for, from the core's reason text: a fixed set of label values.
pub fn held_reason(reason: &str) -> &'static str {
    const KNOWN: [(&str, &str); 5] = [
        ("token budget used", "token_budget"),
        ("turn budget used", "turn_budget"),
        ("runtime budget used", "runtime_budget"),
        ("stopped by the operator", "operator_stop"),
        ("the daily token budget", "daily_budget"),
    ];
    (KNOWN.iter())
        .find(|(prefix, _)| reason.starts_with(prefix))
        .map_or("input_required", |(_, label)| label)
}

fn label(name: &'static str, value: impl Into<String>) -> Labels {
    vec![(name, value.into())]
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered, all at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("symphony");
        let metrics = Self {
            registry: Registry::default(),
            dispatches: Counter::default(),
            run_outcomes: Family::default(),
            run_seconds: Histogram::new(exponential_buckets(1.0, 2.0, 16)),
            tracker_requests: Family::default(),
            tracker_seconds: Family::new_with_constructor(tracker_histogram as fn() -> Histogram),
            tick_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            http_requests: Family::default(),
            issues: Family::default(),
            held: Family::default(),
            tokens: Family::default(),
            tokens_seen: Mutex::new((0, 0, 0)),
            rate_limit_used: Family::default(),
            paused: Gauge::default(),
            log_bytes: Family::default(),
            tracker_rate: Family::default(),
        };
        registry.register(
            "dispatches",
            "Runs started (first runs, retries and continuations)",
            metrics.dispatches.clone(),
        );
        registry.register(
            "runs_ended",
            "Runs ended, by outcome (normal, failed, timed_out, cancelled, input_required)",
            metrics.run_outcomes.clone(),
        );
        registry.register(
            "run_duration_seconds",
            "Wall-clock duration of ended runs",
            metrics.run_seconds.clone(),
        );
        registry.register(
            "tracker_requests",
            "Tracker requests, by operation and result (ok or error)",
            metrics.tracker_requests.clone(),
        );
        registry.register(
            "tracker_request_duration_seconds",
            "Tracker request latency, by operation",
            metrics.tracker_seconds.clone(),
        );
        registry.register(
            "poll_tick_duration_seconds",
            "From a poll tick's first tracker request to its dispatch decisions",
            metrics.tick_seconds.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests, by route and status",
            metrics.http_requests.clone(),
        );
        registry.register(
            "issues",
            "Claimed or eligible issues, by status (running, retrying, held, waiting)",
            metrics.issues.clone(),
        );
        registry.register(
            "held_issues",
            "Held issues, by reason",
            metrics.held.clone(),
        );
        registry.register(
            "agent_tokens",
            "Agent tokens over every run, by kind (input, output, total)",
            metrics.tokens.clone(),
        );
        registry.register(
            "agent_rate_limit_used_percent",
            "The agent's latest reported rate-limit use, by window",
            metrics.rate_limit_used.clone(),
        );
        registry.register(
            "dispatch_paused",
            "1 while an operator has paused dispatch",
            metrics.paused.clone(),
        );
        registry.register(
            "tracker_rate_limit",
            "The tracker API's rate-limit window as of its last answer, by what (remaining, limit)",
            metrics.tracker_rate.clone(),
        );
        registry.register(
            "log_bytes",
            "Size of the event log's current segment and today's audit log, by log",
            metrics.log_bytes.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }

    /// A run started.
    pub fn dispatched(&self) {
        self.dispatches.inc();
    }

    /// A run ended with `outcome` (a fixed label) after `seconds`.
    pub fn run_ended(&self, outcome: &'static str, seconds: f64) {
        self.run_outcomes
            .get_or_create(&label("outcome", outcome))
            .inc();
        self.run_seconds.observe(seconds);
    }

    /// A tracker request (`operation`: candidates, refresh, terminal) answered after
    /// `seconds`.
    pub fn tracker_request(&self, operation: &'static str, ok: bool, seconds: f64) {
        let result = if ok { "ok" } else { "error" };
        let labels = vec![
            ("operation", operation.to_owned()),
            ("result", result.to_owned()),
        ];
        self.tracker_requests.get_or_create(&labels).inc();
        (self.tracker_seconds)
            .get_or_create(&label("operation", operation))
            .observe(seconds);
    }

    /// A poll tick finished its dispatch decisions `seconds` after it started.
    pub fn tick(&self, seconds: f64) {
        self.tick_seconds.observe(seconds);
    }

    /// An HTTP request to `route` (a fixed route name) answered with `status`.
    pub fn http_request(&self, route: &'static str, status: u16) {
        let labels = vec![("route", route.to_owned()), ("status", status.to_string())];
        self.http_requests.get_or_create(&labels).inc();
    }

    /// The page: the core's figures from `snapshot` and `sizes`, then every metric.
    pub fn render(&self, snapshot: &Snapshot, sizes: LogSizes) -> String {
        let counts = &snapshot.counts;
        for (status, n) in [
            ("running", counts.running),
            ("retrying", counts.retrying),
            ("held", counts.blocked),
            ("waiting", counts.waiting + snapshot.waiting_unlisted),
        ] {
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            self.issues.get_or_create(&label("status", status)).set(n);
        }
        self.held.clear();
        for row in &snapshot.blocked {
            self.held
                .get_or_create(&label("reason", held_reason(&row.reason)))
                .inc();
        }
        let totals = &snapshot.codex_totals;
        if let Ok(mut seen) = self.tokens_seen.lock() {
            let now = (
                totals.input_tokens,
                totals.output_tokens,
                totals.total_tokens,
            );
            for (kind, before, after) in [
                ("input", seen.0, now.0),
                ("output", seen.1, now.1),
                ("total", seen.2, now.2),
            ] {
                let counter = self.tokens.get_or_create(&label("kind", kind));
                counter.inc_by(after.saturating_sub(before));
            }
            *seen = (seen.0.max(now.0), seen.1.max(now.1), seen.2.max(now.2));
        }
        self.rate_limit_used.clear();
        if let Some(limits) = snapshot.rate_limits.as_ref().and_then(|v| v.as_object()) {
            for window in ["primary", "secondary"] {
                let used = limits.get(window).and_then(|w| {
                    (w.get("usedPercent").or_else(|| w.get("used_percent")))
                        .and_then(serde_json::Value::as_f64)
                });
                if let Some(used) = used {
                    self.rate_limit_used
                        .get_or_create(&label("window", window))
                        .set(used);
                }
            }
        }
        self.paused
            .set(i64::from(snapshot.dispatch.paused.is_some()));
        self.log_bytes.clear();
        for (log, size) in [("event", sizes.event_log), ("audit", sizes.audit_log)] {
            if let Some(size) = size {
                let size = i64::try_from(size).unwrap_or(i64::MAX);
                self.log_bytes.get_or_create(&label("log", log)).set(size);
            }
        }
        self.tracker_rate.clear();
        if let Some(rate) = sizes.tracker_rate {
            let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            (self.tracker_rate.get_or_create(&label("what", "remaining")))
                .set(gauge(rate.remaining));
            if let Some(limit) = rate.limit {
                (self.tracker_rate.get_or_create(&label("what", "limit"))).set(gauge(limit));
            }
        }
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}
