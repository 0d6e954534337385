//! `symphony status`: a terminal view of a running daemon's `/api/v1/state`.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Value;
use symphony::http::elapsed;

use crate::Outcome;
use crate::cli::StatusArgs;

/// The HTTP client and the runtime it runs on, made once per invocation.
struct Fetcher {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Fetcher {
    fn new() -> Result<Self, String> {
        Ok(Self {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?,
            client: symphony::tracker::http_client(Duration::from_secs(5))?,
        })
    }
}

/// Fetches the state JSON (bearer token from `$SYMPHONY_TOKEN` when set).
fn fetch(fetcher: &Fetcher, url: &str) -> Result<Value, String> {
    let client = &fetcher.client;
    fetcher.runtime.block_on(async {
        let mut request = client.get(format!("{}/api/v1/state", url.trim_end_matches('/')));
        if let Ok(token) = std::env::var(symphony::redact::SERVER_TOKEN_VAR) {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("cannot reach {url}: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("{url} answered HTTP {status}"));
        }
        response
            .json()
            .await
            .map_err(|e| format!("{url} sent bad JSON: {e}"))
    })
}

/// A failure, said on stderr.
fn failed(error: String) -> Outcome {
    Outcome {
        stdout: String::new(),
        stderr: format!("error: {error}\n"),
        success: false,
    }
}

/// `pause`, `resume`, `stop`: POSTs to `path` on the daemon (the local one by default) and
/// prints its answer; exit 1 with the daemon's message when it refuses.
pub(crate) fn control(url: Option<String>, path: &str, body: Option<Value>) -> Outcome {
    let fetcher = match Fetcher::new() {
        Ok(fetcher) => fetcher,
        Err(e) => return failed(e),
    };
    let url = url.unwrap_or_else(local_daemon);
    let target = format!("{}{path}", url.trim_end_matches('/'));
    let answer = fetcher.runtime.block_on(async {
        let mut request = fetcher.client.post(&target);
        if let Some(body) = &body {
            request = request.json(body);
        }
        if let Ok(token) = std::env::var(symphony::redact::SERVER_TOKEN_VAR) {
            request = request.bearer_auth(token);
        }
        let response = (request.send().await).map_err(|e| format!("cannot reach {url}: {e}"))?;
        let status = response.status();
        let text = (response.text().await).map_err(|e| format!("{url}: {e}"))?;
        Ok::<_, String>((status, text))
    });
    let (status, text) = match answer {
        Ok(answer) => answer,
        Err(e) => return failed(e),
    };
    let text = symphony::redact::escape_controls(&symphony::redact::mask(&text), &[]).into_owned();
    if status.is_success() {
        Outcome {
            stdout: format!("{text}\n"),
            stderr: String::new(),
            success: true,
        }
    } else {
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let message = value["error"]["message"]
            .as_str()
            .unwrap_or(&text)
            .to_owned();
        failed(format!("{url} answered HTTP {status}: {message}"))
    }
}

/// Cuts `text` to `width` characters, marking the cut.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// The view, `width` columns wide (rows are cut to fit narrow terminals).
pub(crate) fn render(url: &str, state: &Value, width: usize) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let now = state["generated_at"].as_str();
    let mut out = String::new();
    let ready = if state["dispatch"]["ready"] == true {
        "ready"
    } else {
        "starting"
    };
    let _ = writeln!(
        out,
        "{}",
        fit(
            &format!(
                "Symphony at {url} · {} · {ready} · {} running · {} retrying · {} held · {} waiting",
                text(&state["generated_at"]),
                state["counts"]["running"],
                state["counts"]["retrying"],
                state["counts"]["blocked"],
                state["counts"]["waiting"].as_u64().unwrap_or(0)
            ),
            width
        )
    );
    if let Some(error) = state["dispatch"]["preflight_error"].as_object() {
        let _ = writeln!(
            out,
            "{}",
            fit(
                &format!(
                    "dispatch paused: {}",
                    error.get("class").and_then(Value::as_str).unwrap_or("")
                ),
                width
            )
        );
    }
    if let Some(pause) = state["dispatch"]["paused"].as_object() {
        let field = |name: &str| pause.get(name).and_then(Value::as_str).unwrap_or("");
        let line = format!(
            "dispatch paused by the operator since {}: {} (`symphony resume` resumes it)",
            field("since"),
            field("reason")
        );
        let _ = writeln!(out, "{}", fit(&line, width));
    }
    if let Some(low) = state["dispatch"]["disk_low"].as_str() {
        let _ = writeln!(out, "{}", fit(&format!("dispatch paused: {low}"), width));
    }
    let daily = &state["dispatch"]["daily_tokens"];
    if let (Some(used), Some(limit)) = (daily["used"].as_u64(), daily["limit"].as_u64()) {
        let resets = daily["resets_at"].as_str().unwrap_or("");
        let line = if used >= limit {
            format!("dispatch paused: daily token budget used ({used} of {limit}), resets {resets}")
        } else {
            format!("tokens today: {used} of {limit}, resets {resets}")
        };
        let _ = writeln!(out, "{}", fit(&line, width));
    }
    let _ = writeln!(out, "\nRUNNING");
    let rows = state["running"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        let _ = writeln!(out, "  (none)");
    } else {
        let _ = writeln!(
            out,
            "{}",
            fit(
                &format!(
                    "  {:<12} {:<14} {:>5} {:>9} {:>8}  {}",
                    "ISSUE", "STATE", "TURNS", "TOKENS", "AGE", "LAST EVENT"
                ),
                width
            )
        );
        for row in rows {
            let last = match (row["last_event"].as_str(), row["last_message"].as_str()) {
                (Some(e), Some(m)) => format!("{e}: {m}"),
                (Some(e), None) => e.to_owned(),
                _ => String::new(),
            };
            let line = format!(
                "  {:<12} {:<14} {:>5} {:>9} {:>8}  {}",
                fit(&text(&row["issue_identifier"]), 12),
                fit(&text(&row["state"]), 14),
                row["turn_count"].to_string(),
                row["tokens"]["total_tokens"].to_string(),
                elapsed(row["started_at"].as_str(), now),
                last.replace('\n', " ")
            );
            let _ = writeln!(out, "{}", fit(&line, width));
        }
    }
    let _ = writeln!(out, "\nRETRY QUEUE");
    let retries = state["retrying"].as_array().cloned().unwrap_or_default();
    if retries.is_empty() {
        let _ = writeln!(out, "  (none)");
    } else {
        for row in retries {
            let line = format!(
                "  {:<12} attempt {:<3} due {}  {}",
                fit(&text(&row["issue_identifier"]), 12),
                row["attempt"].to_string(),
                text(&row["due_at"]),
                text(&row["error"])
            );
            let _ = writeln!(out, "{}", fit(&line, width));
        }
    }
    for (title, key) in [
        ("HELD UNTIL THE ISSUE CHANGES", "blocked"),
        ("WAITING", "waiting"),
    ] {
        let rows = state[key].as_array().cloned().unwrap_or_default();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{title}");
        for row in rows {
            let line = format!(
                "  {:<12} {}",
                fit(&text(&row["issue_identifier"]), 12),
                text(&row["reason"]).replace('\n', " ")
            );
            let _ = writeln!(out, "{}", fit(&line, width));
        }
    }
    let totals = &state["codex_totals"];
    let _ = writeln!(
        out,
        "\n{}",
        fit(
            &format!(
                "TOTALS  input {}  output {}  total {}  agent time {} s",
                totals["input_tokens"],
                totals["output_tokens"],
                totals["total_tokens"],
                totals["seconds_running"]
            ),
            width
        )
    );
    let limits = match &state["rate_limits"] {
        Value::Null => "none reported".to_owned(),
        other => other.to_string(),
    };
    let _ = writeln!(out, "{}", fit(&format!("RATE LIMITS  {limits}"), width));
    out
}

/// The URL of the local daemon to show: the one running `./WORKFLOW.md` when several are,
/// else the one started last; `http://127.0.0.1:8080` when none registered.
fn local_daemon() -> String {
    let running = symphony::daemon::registry::running();
    let here = std::path::absolute("WORKFLOW.md").ok();
    let chosen = running
        .iter()
        .find(|d| Some(&d.workflow) == here.as_ref())
        .or(running.first());
    chosen.map_or_else(
        || "http://127.0.0.1:8080".to_owned(),
        |daemon| daemon.url.clone(),
    )
}

/// Columns to fit rows in: `$COLUMNS` when set, else the terminal's width, else (stdout is a
/// pipe or a file: a script reads it) no limit.
fn width() -> usize {
    use std::io::IsTerminal as _;
    if let Some(columns) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|w: &usize| *w >= 20)
    {
        return columns;
    }
    if !std::io::stdout().is_terminal() {
        return usize::MAX;
    }
    rustix::termios::tcgetwinsize(std::io::stdout())
        .ok()
        .map(|size| usize::from(size.ws_col))
        .filter(|w| *w >= 20)
        .unwrap_or(100)
}

pub(crate) fn run(args: &StatusArgs) -> Outcome {
    let fetcher = match Fetcher::new() {
        Ok(fetcher) => fetcher,
        Err(e) => return failed(e),
    };
    let url = args.url.clone().unwrap_or_else(local_daemon);
    let url = url.as_str();
    if args.once {
        return match fetch(&fetcher, url) {
            Ok(state) => Outcome {
                stdout: render(url, &state, width()),
                stderr: String::new(),
                success: true,
            },
            Err(e) => failed(e),
        };
    }
    // Live view: redraw in place every interval; `q` (or Ctrl-C) quits. The terminal is put
    // in non-canonical, no-echo mode meanwhile and restored on the way out.
    let keys = spawn_key_reader();
    let saved = quiet_terminal();
    let interval = Duration::from_secs_f64(args.interval.max(0.2));
    loop {
        let view = match fetch(&fetcher, url) {
            Ok(state) => render(url, &state, width()),
            Err(e) => format!("error: {e}\n"),
        };
        // Text from the daemon (identifiers, messages) is escaped before the view's own
        // control sequences are added. Raw-ish mode: lines need an explicit carriage return.
        let masked = symphony::redact::mask(&view);
        let view = symphony::redact::escape_controls(&masked, &['\n']);
        print!("\x1b[H\x1b[2J{}", view.replace('\n', "\r\n"));
        print!("\r\n(q quits)");
        let _ = std::io::Write::flush(&mut std::io::stdout());
        match keys.recv_timeout(interval) {
            Ok(b'q' | b'Q' | 0x03 | 0x04) => break,
            // stdin closed: on a terminal that means the user is gone; otherwise (stdin is
            // /dev/null under a supervisor) keep redrawing at the interval.
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) if saved.is_some() => break,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(interval),
            _ => {}
        }
    }
    restore_terminal(saved);
    print!("\r\n");
    Outcome {
        stdout: String::new(),
        stderr: String::new(),
        success: true,
    }
}

/// Bytes typed on stdin, one at a time.
fn spawn_key_reader() -> std::sync::mpsc::Receiver<u8> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut byte = [0u8; 1];
        while let Ok(1) = std::io::Read::read(&mut std::io::stdin(), &mut byte) {
            if tx.send(byte[0]).is_err() {
                break;
            }
        }
    });
    rx
}

/// Turns off line buffering, echo and signal keys on a terminal stdin; the saved settings.
fn quiet_terminal() -> Option<rustix::termios::Termios> {
    use rustix::termios::{LocalModes, OptionalActions, isatty, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    if !isatty(&stdin) {
        return None;
    }
    let saved = tcgetattr(&stdin).ok()?;
    let mut quiet = saved.clone();
    quiet
        .local_modes
        .remove(LocalModes::ICANON | LocalModes::ECHO | LocalModes::ISIG);
    tcsetattr(&stdin, OptionalActions::Now, &quiet).ok()?;
    Some(saved)
}

fn restore_terminal(saved: Option<rustix::termios::Termios>) {
    if let Some(saved) = saved {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &saved,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daily_token_budget_shows_and_says_when_it_pauses_dispatch() {
        let mut state = serde_json::json!({
            "generated_at": "2026-01-01T00:01:00Z",
            "counts": {"running": 0, "retrying": 0, "blocked": 0, "waiting": 0},
            "running": [], "retrying": [], "blocked": [], "waiting": [],
            "codex_totals": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0,
                             "seconds_running": 0.0},
            "dispatch": {"ready": true, "preflight_error": null, "disk_low": null}
        });
        assert!(!render("http://x", &state, 120).contains("tokens today"));
        state["dispatch"]["daily_tokens"] =
            serde_json::json!({"used": 10, "limit": 1000, "resets_at": "2026-01-02T00:00:00Z"});
        let text = render("http://x", &state, 120);
        assert!(
            text.contains("tokens today: 10 of 1000, resets 2026-01-02T00:00:00Z"),
            "{text}"
        );
        state["dispatch"]["daily_tokens"]["used"] = serde_json::json!(1000);
        let text = render("http://x", &state, 120);
        assert!(
            text.contains("dispatch paused: daily token budget used (1000 of 1000)"),
            "{text}"
        );
        assert!(!text.contains("by the operator"));
        state["dispatch"]["paused"] =
            serde_json::json!({"reason": "deploy freeze", "since": "2026-01-01T00:00:30Z"});
        let text = render("http://x", &state, 200);
        assert!(
            text.contains(
                "dispatch paused by the operator since 2026-01-01T00:00:30Z: deploy freeze"
            ),
            "{text}"
        );
    }
}
