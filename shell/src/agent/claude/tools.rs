//! The host-side tools offered to Claude over MCP (Model Context Protocol, JSON-RPC 2.0 as
//! newline-delimited JSON). Claude starts `symphony mcp-bridge <socket>` as a stdio MCP server
//! (`--mcp-config`, `--strict-mcp-config`); the bridge only relays bytes to the Unix socket this
//! server listens on, in the session's private config dir. Tool calls are executed by the
//! session thread (`SessionIo::call_tool`), with the daemon's credentials and on the session's
//! issue only: the credential never reaches the agent, its environment or its files. When the
//! session ends, the listener goes and calls are refused.
//!
//! Three methods are served (`initialize`, `tools/list`, `tools/call`, plus `ping`); others get
//! JSON-RPC's "method not found". A line is at most [`MAX_LINE`] bytes.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::time::Duration;

use serde_json::{Value, json};

use crate::agent::ToolResult;

/// The MCP server's name; Claude calls its tools `mcp__symphony__<tool>`.
pub const SERVER: &str = "symphony";
/// Longest request line accepted.
const MAX_LINE: u64 = 1024 * 1024;
/// The protocol version answered when the client names none.
const PROTOCOL: &str = "2025-06-18";
/// Longest a tool call may wait for the session to run it.
const CALL_TIMEOUT: Duration = Duration::from_secs(600);

/// A tool call for the session thread, with where to send its result.
pub struct Call {
    /// Tool name (without the `mcp__symphony__` prefix).
    pub name: String,
    /// Its arguments.
    pub arguments: Value,
    /// The result goes here.
    pub reply: Sender<ToolResult>,
}

/// A listening tools server; stops listening when dropped.
pub struct ToolsServer {
    socket: PathBuf,
    closed: Arc<AtomicBool>,
}

impl ToolsServer {
    /// Listens on `socket` for the bridge, offering `tools` (dynamic tool specs); calls go to
    /// `calls` as built by `wrap`.
    pub fn start<T: Send + 'static>(
        socket: &Path,
        tools: &[Value],
        calls: Sender<T>,
        wrap: fn(Call) -> T,
    ) -> std::io::Result<Self> {
        let listener = UnixListener::bind(socket)?;
        let closed = Arc::new(AtomicBool::new(false));
        let listed: Vec<Value> = (tools.iter())
            .map(|t| json!({"name": t["name"], "description": t["description"], "inputSchema": t["inputSchema"]}))
            .collect();
        let flag = Arc::clone(&closed);
        std::thread::Builder::new()
            .name("mcp-accept".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if flag.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let (listed, calls, flag) = (listed.clone(), calls.clone(), Arc::clone(&flag));
                    let _ = std::thread::Builder::new()
                        .name("mcp-conn".into())
                        .spawn(move || serve(stream, &listed, &calls, wrap, &flag));
                }
            })?;
        Ok(Self {
            socket: socket.to_owned(),
            closed,
        })
    }

    /// The `--mcp-config` JSON that starts `bridge mcp-bridge <socket>` as the server.
    pub fn mcp_config(&self, bridge: &Path) -> String {
        json!({"mcpServers": {SERVER: {
            "type": "stdio",
            "command": bridge,
            "args": ["mcp-bridge", self.socket],
        }}})
        .to_string()
    }
}

impl Drop for ToolsServer {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag and ends.
        let _ = UnixStream::connect(&self.socket);
    }
}

/// One connection: requests in, answers out, until either side closes.
fn serve<T>(
    stream: UnixStream,
    tools: &[Value],
    calls: &Sender<T>,
    wrap: fn(Call) -> T,
    closed: &AtomicBool,
) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        match (&mut reader).take(MAX_LINE).read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if !line.ends_with('\n') && line.len() as u64 >= MAX_LINE => return,
            Ok(_) => {}
        }
        let Ok(request) = serde_json::from_str::<Value>(&line) else {
            let error = json!({"jsonrpc": "2.0", "id": null,
                "error": {"code": -32700, "message": "parse error"}});
            if send(&mut out, &error).is_err() {
                return;
            }
            continue;
        };
        let Some(id) = request.get("id").cloned() else {
            continue; // a notification: nothing to answer
        };
        let answer = if closed.load(Ordering::SeqCst) {
            Err((-32000, "the session has ended".to_owned()))
        } else {
            answer(&request, tools, calls, wrap)
        };
        let message = match answer {
            Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
            Err((code, message)) => {
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
            }
        };
        if send(&mut out, &message).is_err() {
            return;
        }
    }
}

fn send(out: &mut UnixStream, message: &Value) -> std::io::Result<()> {
    out.write_all(message.to_string().as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()
}

fn answer<T>(
    request: &Value,
    tools: &[Value],
    calls: &Sender<T>,
    wrap: fn(Call) -> T,
) -> Result<Value, (i64, String)> {
    let params = &request["params"];
    match request["method"].as_str().unwrap_or_default() {
        "initialize" => Ok(json!({
            "protocolVersion": params["protocolVersion"].as_str().unwrap_or(PROTOCOL),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": SERVER, "version": env!("CARGO_PKG_VERSION")},
        })),
        "ping" => Ok(json!({})),
        "tools/list" => Ok(json!({"tools": tools})),
        "tools/call" => {
            let name = params["name"].as_str().unwrap_or_default().to_owned();
            let arguments = params.get("arguments").cloned().unwrap_or(json!({}));
            let (reply, result) = channel();
            let call = Call {
                name,
                arguments,
                reply,
            };
            if calls.send(wrap(call)).is_err() {
                return Err((-32000, "the session has ended".to_owned()));
            }
            let result = result.recv_timeout(CALL_TIMEOUT).unwrap_or(ToolResult {
                success: false,
                text: "the session did not run the tool in time".to_owned(),
            });
            Ok(json!({
                "content": [{"type": "text", "text": result.text}],
                "isError": !result.success,
            }))
        }
        other => Err((-32601, format!("method not found: {other}"))),
    }
}

/// `symphony mcp-bridge <socket>`: relays stdin to the socket and the socket to stdout, until
/// either closes. It holds nothing of its own: no credential, no state.
pub fn bridge(socket: &Path) -> std::io::Result<()> {
    let stream = UnixStream::connect(socket)?;
    let mut to_socket = stream.try_clone()?;
    let upstream = std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut to_socket);
        let _ = to_socket.shutdown(std::net::Shutdown::Write);
    });
    let mut from_socket = stream;
    let _ = std::io::copy(&mut from_socket, &mut std::io::stdout().lock());
    drop(upstream);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(
        stream: &mut UnixStream,
        reader: &mut BufReader<UnixStream>,
        message: &Value,
    ) -> Value {
        send(stream, message).unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    }

    #[test]
    fn the_server_answers_mcp_and_hands_calls_to_the_session() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("tools.sock");
        let tools = vec![json!({"type": "function", "name": "comment_on_issue",
            "description": "Comment.", "inputSchema": {"type": "object"}})];
        let (calls, session) = channel::<Call>();
        let server = ToolsServer::start(&socket, &tools, calls, |call| call).unwrap();
        let config: Value =
            serde_json::from_str(&server.mcp_config(Path::new("/bin/symphony"))).unwrap();
        assert_eq!(config["mcpServers"]["symphony"]["args"][0], "mcp-bridge");
        // The session thread's part: run each call, answer it.
        let worker = std::thread::spawn(move || {
            for call in session {
                let text = format!("{} ran with {}", call.name, call.arguments);
                let _ = call.reply.send(ToolResult {
                    success: true,
                    text,
                });
            }
        });
        let mut stream = UnixStream::connect(&socket).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let init = roundtrip(
            &mut stream,
            &mut reader,
            &json!({"jsonrpc": "2.0", "id": 0,
            "method": "initialize", "params": {"protocolVersion": "2025-03-26", "capabilities": {},
            "clientInfo": {"name": "claude", "version": "x"}}}),
        );
        assert_eq!(init["result"]["protocolVersion"], "2025-03-26");
        assert_eq!(init["result"]["capabilities"]["tools"], json!({}));
        send(
            &mut stream,
            &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        )
        .unwrap();
        let list = roundtrip(
            &mut stream,
            &mut reader,
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        );
        assert_eq!(list["result"]["tools"][0]["name"], "comment_on_issue");
        assert!(
            list["result"]["tools"][0].get("type").is_none(),
            "MCP's shape, not ours"
        );
        let call = roundtrip(
            &mut stream,
            &mut reader,
            &json!({"jsonrpc": "2.0", "id": 2,
            "method": "tools/call", "params": {"name": "comment_on_issue", "arguments": {"body": "hi"}}}),
        );
        assert_eq!(call["result"]["isError"], false);
        assert_eq!(
            call["result"]["content"][0]["text"],
            "comment_on_issue ran with {\"body\":\"hi\"}"
        );
        let unknown = roundtrip(
            &mut stream,
            &mut reader,
            &json!({"jsonrpc": "2.0", "id": 3, "method": "resources/list"}),
        );
        assert_eq!(unknown["error"]["code"], -32601);
        let garbage = {
            stream.write_all(b"not json\n").unwrap();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            serde_json::from_str::<Value>(&line).unwrap()
        };
        assert_eq!(garbage["error"]["code"], -32700);
        // Revoked with the session: a call after the server is gone is refused.
        drop(server);
        let late = roundtrip(
            &mut stream,
            &mut reader,
            &json!({"jsonrpc": "2.0", "id": 4,
            "method": "tools/call", "params": {"name": "comment_on_issue", "arguments": {}}}),
        );
        assert_eq!(late["error"]["message"], "the session has ended");
        drop(stream);
        drop(reader);
        let _ = worker;
    }

    /// Hostile bytes from the agent's side of the socket: a line past the limit, or one that is
    /// not UTF-8, ends that connection; the server goes on serving others.
    #[test]
    fn an_oversized_or_non_utf8_line_closes_only_its_connection() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("tools.sock");
        let (calls, _session) = channel::<Call>();
        let _server = ToolsServer::start(&socket, &[], calls, |call| call).unwrap();
        for hostile in [vec![b'a'; MAX_LINE as usize + 10], b"\xff\xfe{}\n".to_vec()] {
            let mut stream = UnixStream::connect(&socket).unwrap();
            // The server may close before reading it all: a failed write is as good.
            let _ = stream.write_all(&hostile);
            // Without a limit the server would answer the parse error once input ends.
            let _ = stream.shutdown(std::net::Shutdown::Write);
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest);
            assert!(
                rest.is_empty(),
                "no answer, the connection closed: {rest:?}"
            );
        }
        let mut stream = UnixStream::connect(&socket).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let ping = roundtrip(
            &mut stream,
            &mut reader,
            &json!({"jsonrpc": "2.0", "id": 7, "method": "ping"}),
        );
        assert_eq!(ping["result"], json!({}), "still serving");
    }
}
