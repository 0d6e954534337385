//! A scripted stand-in for `codex app-server`, for the runner's tests: it follows a scenario
//! file (`fixtures/app-server/*.json`) step by step and logs every line it receives.
//!
//! Usage: `symphony-fake-app-server SCENARIO LOG`. Steps (JSON objects, in order):
//!
//! - `{"expect": METHOD, "reply": RESULT?, "error": MESSAGE?}`: read lines until a request or
//!   notification with that method arrives; answer a request with `RESULT` (default `{}`) or
//!   with an error.
//! - `{"send": MESSAGE}`: write a message (a notification, typically); `$THREAD`/`$TURN` in
//!   strings are not special, scenarios spell ids out.
//! - `{"request": MESSAGE}`: write a server request and wait for the client's answer to it.
//! - `{"raw": TEXT}`: write TEXT as one line, as is.
//! - `{"long_line_mb": N}`: write one line of N MiB.
//! - `{"stderr_mb": N}`: write N MiB to stderr.
//! - `{"grandchild": PIDFILE}`: start `sleep 1000` in the background, its pid in PIDFILE.
//! - `{"dump_env": FILE}`: write its environment to FILE, one `NAME=VALUE` per line.
//! - `{"sleep_ms": N}`: pause.
//! - `{"exit": CODE}`: exit now.
//! - `{"hang": true}`: wait until stdin closes, then exit 0.
//!
//! At the end of the script it waits for stdin to close, as app-server does.

use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(scenario), Some(log)) = (args.next(), args.next()) else {
        eprintln!("usage: fake_app_server SCENARIO LOG");
        std::process::exit(2);
    };
    let steps: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(&scenario).expect("scenario file is readable"),
    )
    .expect("scenario file is a JSON list");
    let mut log = std::fs::File::create(&log).expect("log file is writable");
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut stdout = std::io::stdout();
    let mut write = |value: &str| {
        let _ = writeln!(stdout, "{value}");
        let _ = stdout.flush();
    };
    let mut next_request_id = 1000u64;

    for step in steps {
        if let Some(method) = step["expect"].as_str() {
            loop {
                let Some(Ok(line)) = lines.next() else {
                    std::process::exit(0);
                };
                let _ = writeln!(log, "{line}");
                let message: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                if message["method"] != method {
                    continue;
                }
                if let Some(id) = message.get("id") {
                    let answer = match step["error"].as_str() {
                        Some(error) => {
                            json!({"id": id, "error": {"code": -32000, "message": error}})
                        }
                        None => {
                            json!({"id": id, "result": step.get("reply").cloned().unwrap_or(json!({}))})
                        }
                    };
                    write(&answer.to_string());
                }
                break;
            }
        } else if let Some(message) = step.get("send") {
            write(&message.to_string());
        } else if let Some(request) = step.get("request") {
            let mut request = request.clone();
            request["id"] = json!(next_request_id);
            write(&request.to_string());
            loop {
                let Some(Ok(line)) = lines.next() else {
                    std::process::exit(0);
                };
                let _ = writeln!(log, "{line}");
                let message: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                if message["id"] == json!(next_request_id) && message.get("method").is_none() {
                    break;
                }
            }
            next_request_id += 1;
        } else if let Some(text) = step["raw"].as_str() {
            write(text);
        } else if let Some(mb) = step["long_line_mb"].as_u64() {
            let line = "x".repeat(usize::try_from(mb).unwrap_or(0) * 1024 * 1024);
            write(&line);
        } else if let Some(mb) = step["stderr_mb"].as_u64() {
            let chunk = "e".repeat(1024 * 1024);
            let mut stderr = std::io::stderr();
            for _ in 0..mb {
                let _ = stderr.write_all(chunk.as_bytes());
            }
        } else if let Some(pidfile) = step["grandchild"].as_str() {
            // Left running on purpose: the test checks that the runner kills it.
            #[allow(clippy::zombie_processes)]
            let child = Command::new("sleep")
                .arg("1000")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("sleep starts");
            std::fs::write(pidfile, child.id().to_string()).expect("pid file is writable");
        } else if let Some(path) = step["dump_env"].as_str() {
            let text: String = std::env::vars_os()
                .map(|(k, v)| format!("{}={}\n", k.to_string_lossy(), v.to_string_lossy()))
                .collect();
            std::fs::write(path, text).expect("the env file is writable");
        } else if let Some(ms) = step["sleep_ms"].as_u64() {
            std::thread::sleep(Duration::from_millis(ms));
        } else if let Some(code) = step["exit"].as_i64() {
            std::process::exit(i32::try_from(code).unwrap_or(1));
        } else if step["hang"] == json!(true) {
            break;
        }
    }
    // Like app-server: run until stdin closes.
    for line in lines.map_while(Result::ok) {
        let _ = writeln!(log, "{line}");
    }
}
