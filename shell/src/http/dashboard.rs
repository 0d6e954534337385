//! `GET /`: the state as a self-refreshing HTML page, rendered on the server (no scripts, no
//! external assets).

use std::sync::OnceLock;

use serde_json::Value;
use tera::{Context, Tera};

const TEMPLATE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="2">
<title>Symphony</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d1d1f; }
h1 { font-size: 1.3rem; margin: 0 0 .2rem; }
h2 { font-size: 1.05rem; margin: 1.4rem 0 .4rem; }
.meta { color: #666; }
.pill { display: inline-block; padding: 0 .5rem; border-radius: 1rem; background: #e8f5e9; }
.warn { background: #fff3e0; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #e5e5e5; vertical-align: top; }
th { font-weight: 600; color: #444; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.empty { color: #888; font-style: italic; }
form.control { display: inline; }
pre { background: #f6f6f6; padding: .5rem; overflow-x: auto; }
</style>
</head>
<body>
<h1>Symphony</h1>
<div class="meta">
  {{ state.generated_at }} ·
  {% if state.dispatch.ready %}<span class="pill">ready</span>{% else %}<span class="pill warn">starting</span>{% endif %}
  {% if state.dispatch.preflight_error %}<span class="pill warn">dispatch paused: {{ state.dispatch.preflight_error.class }}</span>{% endif %}
  {% if state.dispatch.paused %}<span class="pill warn" id="paused">paused by the operator since {{ state.dispatch.paused.since }}: {{ state.dispatch.paused.reason }}</span>
  <form class="control" method="post" action="/api/v1/resume"><button type="submit" id="resume">Resume dispatch</button></form>
  {% else %}<form class="control" method="post" action="/api/v1/pause"><input name="reason" placeholder="why (optional)" maxlength="200"> <button type="submit" id="pause">Pause dispatch</button></form>{% endif %}
  {% if state.dispatch.disk_low %}<span class="pill warn">{{ state.dispatch.disk_low }}</span>{% endif %}
  {% if state.dispatch.daily_tokens %}<span class="pill{% if state.dispatch.daily_tokens.used >= state.dispatch.daily_tokens.limit %} warn{% endif %}" id="daily-tokens">tokens today: {{ state.dispatch.daily_tokens.used }} of {{ state.dispatch.daily_tokens.limit }}, resets {{ state.dispatch.daily_tokens.resets_at }}</span>{% endif %}
  · {{ state.counts.running }} running · {{ state.counts.retrying }} retrying · {{ state.counts.blocked }} held · {{ state.counts.waiting }} waiting
</div>

<h2>Running</h2>
{% if state.running %}
<table id="running">
<tr><th>Issue</th><th>State</th><th>Turns</th><th>Tokens</th><th>Last event</th><th>Age</th></tr>
{% for row in state.running %}
<tr class="running-row" data-identifier="{{ row.issue_identifier }}">
  <td>{% if row.issue_url %}<a href="{{ row.issue_url }}">{{ row.issue_identifier }}</a>{% else %}{{ row.issue_identifier }}{% endif %}{% if row.stopping %} <span class="pill warn">stopping</span>{% else %} <form class="control" method="post" action="{{ row.stop_path }}"><button type="submit" class="stop">Stop</button></form>{% endif %}</td>
  <td>{{ row.state }}{% if row.phase %} <span class="pill">{{ row.phase | replace(from="_", to=" ") }}</span>{% endif %}</td>
  <td class="num">{{ row.turn_count }}</td>
  <td class="num">{{ row.tokens.total_tokens }}</td>
  <td>{% if row.last_event %}{{ row.last_event }}{% if row.last_message %}: {{ row.last_message }}{% endif %}{% else %}<span class="empty">none yet</span>{% endif %}</td>
  <td class="num">{{ row.age }}</td>
</tr>
{% endfor %}
</table>
{% else %}<p class="empty">Nothing running.</p>{% endif %}

<h2>Retry queue</h2>
{% if state.retrying %}
<table id="retrying">
<tr><th>Issue</th><th>Attempt</th><th>Due</th><th>Error</th></tr>
{% for row in state.retrying %}
<tr><td>{{ row.issue_identifier }}</td><td class="num">{{ row.attempt }}</td><td>{{ row.due_at }}</td><td>{% if row.error %}{{ row.error }}{% endif %}</td></tr>
{% endfor %}
</table>
{% else %}<p class="empty">No retries queued.</p>{% endif %}

{% if state.blocked %}
<h2>Held until the issue changes</h2>
<table id="blocked">
<tr><th>Issue</th><th>Since</th><th>Reason</th></tr>
{% for row in state.blocked %}
<tr><td>{{ row.issue_identifier }}</td><td>{{ row.since }}</td><td>{{ row.reason }}</td></tr>
{% endfor %}
</table>
{% endif %}

{% if state.waiting %}
<h2>Waiting</h2>
<table id="waiting">
<tr><th>Issue</th><th>State</th><th>Since</th><th>Why it does not run now</th></tr>
{% for row in state.waiting %}
<tr class="waiting-row" data-identifier="{{ row.issue_identifier }}"><td>{% if row.issue_url %}<a href="{{ row.issue_url }}">{{ row.issue_identifier }}</a>{% else %}{{ row.issue_identifier }}{% endif %}</td><td>{{ row.state }}</td><td>{{ row.since }}</td><td>{{ row.reason }}</td></tr>
{% endfor %}
</table>
{% if waiting_more %}<p class="empty">and {{ waiting_more }} more candidates not listed</p>{% endif %}
{% endif %}

<h2>Totals</h2>
<table id="totals">
<tr><th>Input tokens</th><th>Output tokens</th><th>Total tokens</th><th>Agent time</th></tr>
<tr><td class="num">{{ state.codex_totals.input_tokens }}</td><td class="num">{{ state.codex_totals.output_tokens }}</td><td class="num">{{ state.codex_totals.total_tokens }}</td><td class="num">{{ state.codex_totals.seconds_running }} s</td></tr>
</table>

<h2>Rate limits</h2>
{% if rate_limits %}<pre>{{ rate_limits }}</pre>{% else %}<p class="empty">None reported.</p>{% endif %}
</body>
</html>
"#;

fn engine() -> &'static Result<Tera, String> {
    static ENGINE: OnceLock<Result<Tera, String>> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut tera = Tera::new();
        tera.autoescape_on(vec![".html"]);
        tera.add_raw_template("dashboard.html", TEMPLATE)
            .map(|()| tera)
            .map_err(|e| e.to_string())
    })
}

/// Waiting issues listed on the page.
const MAX_WAITING_ROWS: usize = 100;

/// The page for a `/api/v1/state` body.
pub(super) fn render(state: &Value) -> String {
    let mut state = state.clone();
    let now = state["generated_at"].as_str().map(str::to_owned);
    if let Some(rows) = state["running"].as_array_mut() {
        for row in rows {
            let started = row["started_at"].as_str().map(str::to_owned);
            row["age"] = Value::String(super::elapsed(started.as_deref(), now.as_deref()));
            let identifier = row["issue_identifier"].as_str().unwrap_or_default();
            row["stop_path"] = Value::String(format!(
                "/api/v1/issues/{}/stop",
                super::path_segment(identifier)
            ));
        }
    }
    // A daemon of an older version sends no waiting list.
    if state["waiting"].is_null() {
        state["waiting"] = Value::Array(Vec::new());
    }
    if let Some(counts) = state["counts"].as_object_mut() {
        counts.entry("waiting").or_insert(Value::from(0));
    }
    // A page, not a dump: at most 100 waiting rows (the core lists no more), and a count of
    // the rest.
    let mut waiting_more = state["waiting_unlisted"].as_u64().unwrap_or(0) as usize;
    if let Some(rows) = state["waiting"].as_array_mut()
        && rows.len() > MAX_WAITING_ROWS
    {
        waiting_more += rows.len() - MAX_WAITING_ROWS;
        rows.truncate(MAX_WAITING_ROWS);
    }
    let rate_limits = match &state["rate_limits"] {
        Value::Null => String::new(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    };
    let mut context = Context::new();
    context.insert("state", &state);
    context.insert("rate_limits", &rate_limits);
    context.insert("waiting_more", &waiting_more);
    match engine() {
        Ok(tera) => tera
            .render("dashboard.html", &context)
            .unwrap_or_else(|e| format!("<!doctype html><p>dashboard error: {e}</p>")),
        Err(e) => format!("<!doctype html><p>dashboard error: {e}</p>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_a_clock() {
        let t0 = "2026-01-01T00:00:00Z";
        let age = super::super::elapsed;
        assert_eq!(age(Some(t0), Some("2026-01-01T00:00:09Z")), "9s");
        assert_eq!(age(Some(t0), Some("2026-01-01T00:03:04Z")), "3m 04s");
        assert_eq!(age(Some(t0), Some("2026-01-01T01:02:00Z")), "1h 02m");
        assert_eq!(age(None, Some(t0)), "");
    }

    #[test]
    fn the_page_shows_rows_and_escapes_text() {
        let state = serde_json::json!({
            "generated_at": "2026-01-01T00:01:00Z",
            "counts": {"running": 1, "retrying": 1, "blocked": 0},
            "running": [{
                "issue_identifier": "MT-1", "issue_url": null, "state": "In Progress",
                "phase": "streaming_turn", "turn_count": 2, "tokens": {"total_tokens": 1500},
                "last_event": "notification", "last_message": "<b>hi</b>",
                "started_at": "2026-01-01T00:00:00Z", "stopping": null
            }],
            "retrying": [{"issue_identifier": "MT-2", "attempt": 3,
                          "due_at": "2026-01-01T00:02:00Z", "error": "boom"}],
            "blocked": [],
            "codex_totals": {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3,
                             "seconds_running": 4.5},
            "rate_limits": null,
            "dispatch": {"ready": true, "preflight_error": null, "disk_low": null}
        });
        let html = render(&state);
        assert!(html.contains("data-identifier=\"MT-1\""), "{html}");
        assert!(
            html.contains(">streaming turn</span>"),
            "the run phase: {html}"
        );
        assert!(html.contains("1m 00s"));
        assert!(
            html.contains("&lt;b&gt;hi&lt;&#x2F;b&gt;") || html.contains("&lt;b&gt;hi&lt;/b&gt;"),
            "{html}"
        );
        assert!(!html.contains("<b>hi</b>"));
        assert!(!html.contains("daily-tokens"), "no budget, no pill");
        assert!(
            html.contains("action=\"/api/v1/pause\"") && !html.contains("id=\"paused\""),
            "a pause control while dispatching: {html}"
        );
        assert!(
            html.contains("action=\"/api/v1/issues/MT-1/stop\""),
            "a stop control per live run: {html}"
        );
        let mut paused = state.clone();
        paused["dispatch"]["paused"] =
            serde_json::json!({"reason": "<freeze>", "since": "2026-01-01T00:00:00Z"});
        let html = render(&paused);
        assert!(
            html.contains(
                "id=\"paused\">paused by the operator since 2026-01-01T00:00:00Z: &lt;freeze&gt;"
            ) && html.contains("action=\"/api/v1/resume\"")
                && !html.contains("action=\"/api/v1/pause\""),
            "{html}"
        );
        let mut spent = state.clone();
        spent["dispatch"]["daily_tokens"] = serde_json::json!(
            {"used": 1200, "limit": 1000, "resets_at": "2026-01-02T00:00:00Z"});
        let html = render(&spent);
        assert!(
            html.contains("class=\"pill warn\" id=\"daily-tokens\">tokens today: 1200 of 1000, resets 2026-01-02T00:00:00Z"),
            "{html}"
        );
        assert!(html.contains("boom") && html.contains("MT-2"));
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no external assets"
        );
    }
}
