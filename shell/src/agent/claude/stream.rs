//! Claude Code's `--output-format stream-json --verbose` lines, decoded (field names from the
//! published `SDKMessage` type and `claude-code-facts.md`). Pure: no I/O, so it is benched and
//! fuzzable on its own. Unknown message kinds decode to [`Message::Other`], never an error.

use serde_json::Value;
use symphony_core::AgentUpdate;

/// Longest assistant text kept for the status surfaces, in characters.
const MAX_TEXT: usize = 2_000;

/// One decoded line.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// `system`/`init`: the session this invocation runs in.
    Init {
        /// `session_id`.
        session_id: String,
        /// `model`.
        model: Option<String>,
    },
    /// `assistant`: the model's text (blocks joined) and the tools it called.
    Assistant {
        /// Text blocks, joined, capped.
        text: Option<String>,
        /// Names of `tool_use` blocks.
        tools: Vec<String>,
    },
    /// `user`: tool results; how many, and how many were errors.
    ToolResults {
        /// Results in the message.
        count: usize,
        /// Of which `is_error: true`.
        errors: usize,
    },
    /// `system`/`api_retry`: the CLI retries a failed model request.
    ApiRetry {
        /// `attempt` of `max_retries`.
        attempt: u64,
        /// `max_retries`.
        max_retries: u64,
        /// `retry_delay_ms`.
        delay_ms: u64,
        /// `error_status` (an HTTP status), when given.
        status: Option<u64>,
    },
    /// `rate_limit_event`: its `rate_limit_info` as sent.
    RateLimit(Value),
    /// `result`: the end of this invocation.
    Result(Outcome),
    /// Anything else (about 40 kinds exist).
    Other,
}

/// The `result` line.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// `success`, `error_max_turns`, `error_max_budget_usd`, `error_during_execution`, ...
    pub subtype: String,
    /// `is_error`.
    pub is_error: bool,
    /// `result` (success) or `errors` joined (error subtypes).
    pub text: String,
    /// `usage`: the sum over this invocation's model calls.
    pub usage: Usage,
    /// `total_cost_usd`: cumulative over the session.
    pub total_cost_usd: Option<f64>,
    /// `permission_denials`: the tool names refused.
    pub denied: Vec<String>,
    /// `num_turns`.
    pub num_turns: u64,
}

impl Outcome {
    /// Whether the invocation did its work.
    pub fn succeeded(&self) -> bool {
        self.subtype == "success" && !self.is_error
    }

    /// Whether the failure is the model API's rate limit.
    pub fn rate_limited(&self) -> bool {
        let text = self.text.to_lowercase();
        ["rate limit", "rate_limit", "429", "too many requests"]
            .iter()
            .any(|needle| text.contains(needle))
    }
}

/// Token counts of one invocation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// `input_tokens` (uncached input).
    pub input: u64,
    /// `output_tokens`.
    pub output: u64,
    /// `cache_read_input_tokens`.
    pub cache_read: u64,
    /// `cache_creation_input_tokens`.
    pub cache_creation: u64,
}

impl Usage {
    /// Every input token the model processed: uncached, read from and written to the cache.
    pub fn prompt(&self) -> u64 {
        (self.input)
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_creation)
    }

    /// Adds another invocation's counts.
    pub fn add(&mut self, other: &Self) {
        self.input = self.input.saturating_add(other.input);
        self.output = self.output.saturating_add(other.output);
        self.cache_read = self.cache_read.saturating_add(other.cache_read);
        self.cache_creation = self.cache_creation.saturating_add(other.cache_creation);
    }
}

/// What one message means for the orchestrator.
#[derive(Debug, Default, PartialEq)]
pub struct Step {
    /// Updates to report, in order.
    pub updates: Vec<AgentUpdate>,
    /// The message was the invocation's `system/init`.
    pub init: bool,
    /// The message was its `result`.
    pub outcome: Option<Outcome>,
}

/// Turns decoded messages into orchestrator updates, keeping what spans invocations: the
/// session id and the session's token sums.
#[derive(Debug, Default)]
pub struct Translator {
    /// The session the last `system/init` named.
    pub session_id: Option<String>,
    totals: Usage,
}

impl Translator {
    /// Forgets the session: the next `system/init` starts a new one, tokens from zero.
    pub fn forget_session(&mut self) {
        self.session_id = None;
    }

    /// The updates `message` means; `pid` is the invocation's process, `turn_id` its turn.
    pub fn feed(&mut self, message: Message, pid: u32, turn_id: &str) -> Step {
        let mut step = Step::default();
        let note = |event: &str, text: String| AgentUpdate::Message {
            event: event.to_owned(),
            message: Some(text),
        };
        match message {
            Message::Init { session_id, .. } => {
                step.init = true;
                if self.session_id.as_deref() != Some(&session_id) {
                    // A new session counts its tokens from zero.
                    self.totals = Usage::default();
                    step.updates.push(AgentUpdate::SessionStarted {
                        thread_id: session_id.clone(),
                        pid: Some(pid),
                    });
                    self.session_id = Some(session_id);
                }
                step.updates.push(AgentUpdate::TurnStarted {
                    turn_id: turn_id.to_owned(),
                });
            }
            Message::Assistant { text, tools } => {
                step.updates
                    .extend(text.map(|text| note("assistant", text)));
                step.updates
                    .extend(tools.into_iter().map(|tool| note("tool_use", tool)));
            }
            Message::ToolResults { count, errors } => step.updates.push(note(
                "tool_result",
                format!("{count} result(s), {errors} error(s)"),
            )),
            Message::ApiRetry {
                attempt,
                max_retries,
                delay_ms,
                status,
            } => {
                // Retry state, shown as the rate-limit view; the CLI bounds its own retries.
                step.updates.push(AgentUpdate::RateLimits {
                    snapshot: serde_json::json!({"source": "claude_api_retry",
                        "attempt": attempt, "max_retries": max_retries,
                        "retry_delay_ms": delay_ms, "error_status": status}),
                });
                step.updates.push(note(
                    "api_retry",
                    format!(
                        "model API retry {attempt} of {max_retries} in {delay_ms} ms{}",
                        status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
                    ),
                ));
            }
            Message::RateLimit(snapshot) => {
                step.updates.push(AgentUpdate::RateLimits { snapshot });
            }
            Message::Result(outcome) => {
                self.totals.add(&outcome.usage);
                let (input, output) = (self.totals.prompt(), self.totals.output);
                step.updates.push(AgentUpdate::TokenUsage {
                    input_tokens: input,
                    output_tokens: output,
                    total_tokens: input.saturating_add(output),
                });
                if let Some(usd) = outcome.total_cost_usd.filter(|usd| usd.is_finite()) {
                    // Cumulative over the session already, as the core wants it.
                    step.updates.push(AgentUpdate::Cost {
                        total_usd_micros: (usd.max(0.0) * 1_000_000.0).round() as u64,
                    });
                }
                if !outcome.denied.is_empty() {
                    step.updates.push(AgentUpdate::PermissionDenied {
                        tools: outcome.denied.clone(),
                    });
                }
                step.outcome = Some(outcome);
            }
            Message::Other => {}
        }
        step
    }
}

fn count(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

fn text(value: &Value) -> Option<String> {
    value.as_str().map(str::to_owned)
}

/// Cuts `text` to [`MAX_TEXT`] characters.
fn capped(text: String) -> String {
    match text.char_indices().nth(MAX_TEXT) {
        Some((cut, _)) => text[..cut].to_owned(),
        None => text,
    }
}

/// Decodes one line; `None` when it is not a JSON object (garbage on stdout).
pub fn decode(line: &str) -> Option<Message> {
    let value: Value = serde_json::from_str(line).ok()?;
    let kind = value.get("type")?.as_str()?;
    Some(match (kind, value["subtype"].as_str()) {
        ("system", Some("init")) => Message::Init {
            session_id: text(&value["session_id"])?,
            model: text(&value["model"]),
        },
        ("system", Some("api_retry")) => Message::ApiRetry {
            attempt: count(&value["attempt"]),
            max_retries: count(&value["max_retries"]),
            delay_ms: count(&value["retry_delay_ms"]),
            status: value["error_status"].as_u64(),
        },
        ("assistant", _) => {
            let blocks = value["message"]["content"].as_array();
            let blocks = blocks.map(Vec::as_slice).unwrap_or_default();
            let texts: Vec<&str> = (blocks.iter())
                .filter(|b| b["type"] == "text")
                .filter_map(|b| b["text"].as_str())
                .collect();
            Message::Assistant {
                text: (!texts.is_empty()).then(|| capped(texts.join("\n"))),
                tools: (blocks.iter())
                    .filter(|b| b["type"] == "tool_use")
                    .filter_map(|b| text(&b["name"]))
                    .collect(),
            }
        }
        ("user", _) => {
            let blocks = value["message"]["content"].as_array();
            let results: Vec<&Value> = (blocks.map(Vec::as_slice).unwrap_or_default().iter())
                .filter(|b| b["type"] == "tool_result")
                .collect();
            Message::ToolResults {
                count: results.len(),
                errors: results.iter().filter(|b| b["is_error"] == true).count(),
            }
        }
        ("rate_limit_event", _) => Message::RateLimit(value["rate_limit_info"].clone()),
        ("result", _) => Message::Result(outcome(&value)),
        _ => Message::Other,
    })
}

fn outcome(value: &Value) -> Outcome {
    let usage = &value["usage"];
    let errors: Vec<&str> = (value["errors"].as_array().map(Vec::as_slice))
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let said = match value["result"].as_str() {
        Some(result) if errors.is_empty() => result.to_owned(),
        _ => errors.join("; "),
    };
    Outcome {
        subtype: value["subtype"].as_str().unwrap_or_default().to_owned(),
        is_error: value["is_error"] == true,
        text: capped(said),
        usage: Usage {
            input: count(&usage["input_tokens"]),
            output: count(&usage["output_tokens"]),
            cache_read: count(&usage["cache_read_input_tokens"]),
            cache_creation: count(&usage["cache_creation_input_tokens"]),
        },
        total_cost_usd: value["total_cost_usd"].as_f64(),
        denied: (value["permission_denials"].as_array().map(Vec::as_slice))
            .unwrap_or_default()
            .iter()
            .filter_map(|d| text(&d["tool_name"]))
            .collect(),
        num_turns: count(&value["num_turns"]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_messages_a_runner_needs_decode_and_the_rest_are_other() {
        let init = json!({"type": "system", "subtype": "init", "session_id": "s-1",
            "model": "claude-x", "cwd": "/w", "tools": ["Bash"]});
        assert_eq!(
            decode(&init.to_string()),
            Some(Message::Init {
                session_id: "s-1".into(),
                model: Some("claude-x".into())
            })
        );
        let assistant = json!({"type": "assistant", "message": {"content": [
            {"type": "text", "text": "Looking."},
            {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "ls"}}
        ], "usage": {"input_tokens": 5, "output_tokens": 1}}});
        assert_eq!(
            decode(&assistant.to_string()),
            Some(Message::Assistant {
                text: Some("Looking.".into()),
                tools: vec!["Bash".into()]
            })
        );
        let user = json!({"type": "user", "message": {"content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": "x", "is_error": true}
        ]}});
        assert_eq!(
            decode(&user.to_string()),
            Some(Message::ToolResults {
                count: 1,
                errors: 1
            })
        );
        let retry = json!({"type": "system", "subtype": "api_retry", "attempt": 2,
            "max_retries": 10, "retry_delay_ms": 1200, "error_status": 529, "error": "overloaded"});
        assert_eq!(
            decode(&retry.to_string()),
            Some(Message::ApiRetry {
                attempt: 2,
                max_retries: 10,
                delay_ms: 1200,
                status: Some(529)
            })
        );
        for other in [
            json!({"type": "system", "subtype": "compact_boundary"}),
            json!({"type": "stream_event", "event": {}}),
        ] {
            assert_eq!(decode(&other.to_string()), Some(Message::Other));
        }
        assert_eq!(decode("not json"), None);
        assert_eq!(decode("[1, 2]"), None);
        assert_eq!(
            decode(r#"{"type": "system", "subtype": "init"}"#),
            None,
            "an init without a session is not usable"
        );
    }

    #[test]
    fn results_carry_usage_cost_denials_and_error_text() {
        let success = json!({"type": "result", "subtype": "success", "is_error": false,
            "result": "Done.", "num_turns": 2, "session_id": "s-1", "total_cost_usd": 0.25,
            "usage": {"input_tokens": 100, "output_tokens": 20, "cache_read_input_tokens": 7,
                "cache_creation_input_tokens": 3},
            "permission_denials": [{"tool_name": "Bash", "tool_use_id": "t", "tool_input": {}}]});
        let Some(Message::Result(outcome)) = decode(&success.to_string()) else {
            panic!("a result");
        };
        assert!(outcome.succeeded());
        assert_eq!(outcome.text, "Done.");
        assert_eq!(outcome.usage.prompt(), 110);
        assert_eq!(outcome.usage.output, 20);
        assert_eq!(outcome.total_cost_usd, Some(0.25));
        assert_eq!(outcome.denied, ["Bash"]);
        let max_turns = json!({"type": "result", "subtype": "error_max_turns", "is_error": true,
            "num_turns": 3, "errors": ["Reached maximum number of turns (2)"]});
        let Some(Message::Result(outcome)) = decode(&max_turns.to_string()) else {
            panic!("a result");
        };
        assert!(!outcome.succeeded());
        assert_eq!(outcome.text, "Reached maximum number of turns (2)");
        assert!(!outcome.rate_limited());
        let limited = json!({"type": "result", "subtype": "success", "is_error": true,
            "result": "API Error: 429 Too Many Requests"});
        let Some(Message::Result(outcome)) = decode(&limited.to_string()) else {
            panic!("a result");
        };
        assert!(!outcome.succeeded() && outcome.rate_limited());
    }

    #[test]
    fn a_session_starts_once_and_its_token_sums_restart_with_a_new_one() {
        let mut t = Translator::default();
        let init = |id: &str| Message::Init {
            session_id: id.into(),
            model: None,
        };
        let result = |input: u64| {
            Message::Result(Outcome {
                subtype: "success".into(),
                usage: Usage {
                    input,
                    output: 10,
                    cache_read: 5,
                    cache_creation: 0,
                },
                total_cost_usd: Some(0.0125),
                ..Outcome::default()
            })
        };
        let first = t.feed(init("s-1"), 7, "turn-1");
        assert!(first.init);
        assert!(matches!(
            first.updates[0],
            AgentUpdate::SessionStarted { pid: Some(7), .. }
        ));
        t.feed(result(100), 7, "turn-1");
        let again = t.feed(init("s-1"), 8, "turn-2");
        assert_eq!(
            again.updates.len(),
            1,
            "a resumed session does not start again"
        );
        let step = t.feed(result(200), 8, "turn-2");
        assert_eq!(
            step.updates[..2],
            [
                AgentUpdate::TokenUsage {
                    input_tokens: 310,
                    output_tokens: 20,
                    total_tokens: 330
                },
                AgentUpdate::Cost {
                    total_usd_micros: 12_500
                }
            ],
            "sums of both invocations"
        );
        assert!(step.outcome.is_some());
        let retry = Message::ApiRetry {
            attempt: 3,
            max_retries: 10,
            delay_ms: 2_300,
            status: Some(429),
        };
        let shown = t.feed(retry, 8, "turn-2").updates;
        assert!(
            matches!(&shown[0], AgentUpdate::RateLimits { snapshot } if snapshot["error_status"] == 429),
            "{shown:?}"
        );
        t.forget_session();
        t.feed(init("s-2"), 9, "turn-3");
        let fresh = t.feed(result(50), 9, "turn-3");
        assert!(
            matches!(
                fresh.updates[0],
                AgentUpdate::TokenUsage {
                    input_tokens: 55,
                    ..
                }
            ),
            "a new session from zero: {fresh:?}"
        );
    }

    #[test]
    fn long_text_is_capped_on_a_character_boundary() {
        let long = "é".repeat(MAX_TEXT + 50);
        let line =
            json!({"type": "assistant", "message": {"content": [{"type": "text", "text": long}]}});
        let Some(Message::Assistant {
            text: Some(text), ..
        }) = decode(&line.to_string())
        else {
            panic!("assistant text");
        };
        assert_eq!(text.chars().count(), MAX_TEXT);
    }
}
