//! A loopback fake of Anthropic's Messages API for the real `claude` CLI (shapes from
//! `real-agents-offline.md`: `POST /v1/messages?beta=true`, answered as an SSE stream of
//! `message_start`, content blocks, `message_delta` and `message_stop`).
//!
//! The fake model follows a [`Script`]: it decides from the latest user message (the CLI puts
//! system reminders and an environment block around it), and every answer reports [`USAGE`], so
//! a test can check token totals exactly.

use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::support;

/// Usage of every answer: input, cache creation, cache read, output.
pub(crate) const USAGE: (u64, u64, u64, u64) = (1_000, 20, 30, 50);

/// What the fake model does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Script {
    /// Per user prompt: a Bash call writing `result.txt`, then (after its result) "Done.".
    Work,
    /// Always another Bash call (for `--max-turns`).
    Loop,
    /// Holds every request open without answering (a stop mid-turn).
    Hang,
    /// Per user prompt: a Bash call (writing `result.txt`, and the agent's environment and
    /// what it can read of `$HOME/notes.txt` and `$HOME/.ssh/id_ed25519` to `agent-env.txt`),
    /// then the host tool `comment_on_issue` over MCP, then "Done.".
    Tools,
}

/// What the fake saw.
#[derive(Default)]
pub(crate) struct Seen {
    /// Request bodies, in order.
    pub(crate) requests: Vec<Value>,
}

fn event(kind: &str, data: &Value) -> String {
    format!("event: {kind}\ndata: {data}\n\n")
}

/// The SSE body answering `request`.
fn answer(script: Script, request: &Value, n: usize) -> String {
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    // The model's steps since the prompt: assistant messages after the last user text.
    let is_prompt = |m: &Value| {
        m["role"] == "user"
            && (m["content"].is_string()
                || (m["content"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter())
                .any(|b| {
                    b["type"] == "text"
                        && !b["text"]
                            .as_str()
                            .unwrap_or("")
                            .starts_with("<system-reminder>")
                }))
    };
    let prompt_at = messages.iter().rposition(is_prompt).unwrap_or(0);
    let steps = (messages[prompt_at..].iter())
        .filter(|m| m["role"] == "assistant")
        .count();
    let after_tool = steps > 0;
    let (input, cache_creation, cache_read, output) = USAGE;
    let mut out = event(
        "message_start",
        &json!({"type": "message_start", "message": {
            "id": format!("msg_{n}"), "type": "message", "role": "assistant", "model": "fake-model",
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": input, "cache_creation_input_tokens": cache_creation,
                "cache_read_input_tokens": cache_read, "output_tokens": 1}}}),
    );
    let mcp = script == Script::Tools && steps == 1;
    let tool = script == Script::Loop || !after_tool || mcp;
    if tool {
        let command = match script {
            Script::Loop => "true",
            // The environment, then what the agent can read of the operator's home: a plain
            // file and an SSH key (a sandbox must let the first through and hide the second).
            Script::Tools => {
                "env > agent-env.txt; cat \"$HOME/notes.txt\" \"$HOME/.ssh/id_ed25519\" >> agent-env.txt 2>/dev/null; echo written-by-claude > result.txt"
            }
            _ => "echo written-by-claude > result.txt",
        };
        let (name, input) = if mcp {
            let body = json!({"body": "Wrote result.txt"});
            ("mcp__symphony__comment_on_issue", body.to_string())
        } else {
            let input = json!({"command": command, "description": "write the file"});
            ("Bash", input.to_string())
        };
        out += &event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0, "content_block":
                {"type": "tool_use", "id": format!("toolu_{n}"), "name": name, "input": {}}}),
        );
        out += &event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": input}}),
        );
    } else {
        out += &event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}),
        );
        out += &event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": "Done: result.txt is written."}}),
        );
    }
    out += &event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
    );
    let stop = if tool { "tool_use" } else { "end_turn" };
    out += &event(
        "message_delta",
        &json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
            "usage": {"output_tokens": output}}),
    );
    out + &event("message_stop", &json!({"type": "message_stop"}))
}

/// Starts the fake; returns its base URL and what it saw.
pub(crate) fn fake(script: Script) -> (String, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let shared = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let shared = Arc::clone(&shared);
            // One thread per connection: the CLI may open several.
            std::thread::spawn(move || {
                let Some(request) = support::read_request(&stream) else {
                    return;
                };
                if request.method != "POST" || !request.path.starts_with("/v1/messages") {
                    let _ = stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    return;
                }
                let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
                let n = {
                    let mut seen = shared.lock().unwrap();
                    seen.requests.push(body.clone());
                    seen.requests.len()
                };
                if script == Script::Hang {
                    // Until the client goes away (its process killed closes the socket).
                    let _ = std::io::Read::read(&mut stream, &mut [0u8; 1]);
                    return;
                }
                let events = answer(script, &body, n);
                let _ = stream.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n{events}"
                    )
                    .as_bytes(),
                );
            });
        }
    });
    (base, seen)
}
