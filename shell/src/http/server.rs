//! The HTTP/1.1 transport under the API: it owns `accept`, and bounds what a client can make
//! the daemon spend.
//!
//! - **Connections** are tokio tasks, not threads, at most [`Limits::max_connections`] at
//!   once. When the table is full, the oldest connection still waiting for a request head
//!   (idle, or sending one slowly) is closed to make room; when every connection is working on
//!   a request, the newcomer gets a 503 at once.
//! - **Accept errors** (EMFILE, ENFILE, ENOBUFS) are survived: the oldest idle connection is
//!   closed to free a descriptor, accept backs off (10 ms doubling to 1 s), and failures are
//!   logged at most once a minute.
//! - **Sizes**: a request head over [`Limits::max_head_bytes`] gets 431, a body over
//!   [`Limits::max_body_bytes`] gets 413 without being read, chunked bodies get 501.
//! - **Time**: the head and body of each request must arrive within
//!   [`Limits::request_timeout`] of the connection becoming idle; a slow client is cut off.
//!   Writes have the same bound.
//!
//! Why not tiny_http, which served before: it runs its own accept loop, which ends for good on
//! the first accept error, gives each connection a thread from an unbounded pool, and has no
//! head size limit or read timeout; none of that can be changed from outside (DEVIATIONS.md).
//! Head parsing is httparse's, the parser hyper uses.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

/// What a client may make the server spend.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Open connections at once.
    pub max_connections: usize,
    /// Request line plus headers, in bytes.
    pub max_head_bytes: usize,
    /// Request body, in bytes.
    pub max_body_bytes: usize,
    /// From a connection becoming idle to its next request being read whole; also the bound
    /// on writing a response.
    pub request_timeout: Duration,
    /// Requests served on one connection before it is closed.
    pub max_requests_per_connection: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_head_bytes: 16 * 1024,
            max_body_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(10),
            max_requests_per_connection: 1000,
        }
    }
}

/// A parsed request.
#[derive(Debug)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target as sent (path and query).
    pub target: String,
    /// Header names (lowercase) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body (at most `max_body_bytes`).
    pub body: Vec<u8>,
    /// The client's address.
    pub peer: SocketAddr,
    /// The address the connection came in on.
    pub local: SocketAddr,
}

impl Request {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A response; `Content-Length` and `Connection` are added by the server.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body (not sent for `HEAD`).
    pub body: Vec<u8>,
}

/// The request handler.
pub type Handler =
    Arc<dyn Fn(Request) -> Pin<Box<dyn Future<Output = Response> + Send>> + Send + Sync>;

/// Open connections: whether each waits for a request head, and how to close it.
#[derive(Default)]
struct Table {
    next: u64,
    open: BTreeMap<u64, Slot>,
}

struct Slot {
    /// Waiting for a request head (nothing yet, or part of one): what a slow or idle client
    /// looks like, and what may be closed to make room.
    idle: bool,
    close: Arc<Notify>,
}

impl Table {
    /// Closes the oldest connection that waits for a request head; false when every open
    /// connection is working on a request.
    fn evict_idle(&mut self) -> bool {
        let Some(id) = self
            .open
            .iter()
            .find(|(_, slot)| slot.idle)
            .map(|(id, _)| *id)
        else {
            return false;
        };
        if let Some(slot) = self.open.remove(&id) {
            slot.close.notify_one();
        }
        true
    }
}

/// Removes a connection from the table when its task ends, however it ends.
struct Registered {
    table: Arc<Mutex<Table>>,
    id: u64,
}

impl Registered {
    fn set_idle(&self, idle: bool) {
        if let Ok(mut table) = self.table.lock()
            && let Some(slot) = table.open.get_mut(&self.id)
        {
            slot.idle = idle;
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut table) = self.table.lock() {
            table.open.remove(&self.id);
        }
    }
}

/// Accepts on `listener` until `stop` turns true, serving each connection with `handler`.
pub async fn serve(
    listener: TcpListener,
    limits: Limits,
    handler: Handler,
    mut stop: watch::Receiver<bool>,
) {
    let table = Arc::new(Mutex::new(Table::default()));
    let limits = Arc::new(limits);
    let mut backoff = Duration::from_millis(10);
    // Accept failures are logged at most once a minute, with a count of the ones in between.
    let mut last_warned: Option<std::time::Instant> = None;
    let mut unreported = 0u64;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(10);
                let registered = {
                    let Ok(mut t) = table.lock() else { break };
                    if t.open.len() >= limits.max_connections && !t.evict_idle() {
                        drop(t);
                        tokio::spawn(refuse_busy(stream));
                        continue;
                    }
                    t.next += 1;
                    let id = t.next;
                    let close = Arc::new(Notify::new());
                    t.open.insert(
                        id,
                        Slot {
                            idle: true,
                            close: Arc::clone(&close),
                        },
                    );
                    (
                        Registered {
                            table: Arc::clone(&table),
                            id,
                        },
                        close,
                    )
                };
                let (limits, handler) = (Arc::clone(&limits), Arc::clone(&handler));
                tokio::spawn(async move {
                    let (registered, close) = registered;
                    tokio::select! {
                        () = connection(stream, peer, &limits, &handler, &registered) => {}
                        () = close.notified() => {}
                    }
                });
            }
            Err(e) => {
                // Out of descriptors: closing the connection idle longest frees one; its task
                // drops the socket as soon as this loop yields, so retry almost at once.
                let freed =
                    out_of_descriptors(&e) && table.lock().is_ok_and(|mut t| t.evict_idle());
                if last_warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                    tracing::warn!(
                        "HTTP accept failed: {e}; retrying with backoff ({unreported} more \
                         failures since the last report)"
                    );
                    last_warned = Some(std::time::Instant::now());
                    unreported = 0;
                } else {
                    unreported += 1;
                }
                let wait = if freed {
                    Duration::from_millis(1)
                } else {
                    backoff
                };
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => break,
                }
                if !freed {
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }
}

fn out_of_descriptors(e: &std::io::Error) -> bool {
    use rustix::io::Errno;
    e.raw_os_error().is_some_and(|code| {
        [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM]
            .iter()
            .any(|errno| errno.raw_os_error() == code)
    })
}

/// A 503 written without waiting (the send buffer of a fresh connection has room), then a
/// brief drain of what the client sent, so it reads the answer instead of a reset.
async fn refuse_busy(mut stream: TcpStream) {
    let body = br#"{"error":{"code":"busy","message":"too many open connections"}}"#;
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nRetry-After: 1\r\n\r\n",
        body.len()
    );
    if stream.try_write(&[head.as_bytes(), body].concat()).is_ok() {
        let _ = stream.shutdown().await;
        linger(&mut stream).await;
    }
}

/// Why a request could not be read.
enum ReadError {
    /// The peer closed or timed out between requests: close quietly.
    Closed,
    /// Answer this status, then close.
    Respond(u16, &'static str),
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    limits: &Limits,
    handler: &Handler,
    registered: &Registered,
) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::new();
    for served in 1..=limits.max_requests_per_connection {
        registered.set_idle(true);
        let read = tokio::time::timeout(
            limits.request_timeout,
            read_request(&mut stream, &mut buf, limits, registered),
        )
        .await
        .unwrap_or(Err(ReadError::Closed));
        let (mut request, keep_alive) = match read {
            Ok(parsed) => parsed,
            Err(ReadError::Closed) => return,
            Err(ReadError::Respond(status, message)) => {
                let body = format!(r#"{{"error":{{"code":"bad_request","message":"{message}"}}}}"#);
                let response = Response {
                    status,
                    headers: vec![("Content-Type".into(), "application/json".into())],
                    body: body.into_bytes(),
                };
                if write(&mut stream, &response, false, false, limits)
                    .await
                    .is_ok()
                {
                    linger(&mut stream).await;
                }
                return;
            }
        };
        request.peer = peer;
        request.local = local;
        let head_only = request.method == "HEAD";
        let keep_alive = keep_alive && served < limits.max_requests_per_connection;
        let response = handler(request).await;
        if write(&mut stream, &response, head_only, keep_alive, limits)
            .await
            .is_err()
            || !keep_alive
        {
            return;
        }
    }
}

/// After an error answer, reads and discards what the client is still sending, briefly and
/// at most 1 MiB, so closing with unread input does not reset the connection before the
/// client has read the answer.
async fn linger(stream: &mut TcpStream) {
    let mut sink = [0u8; 4096];
    let mut total = 0;
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while let Ok(n) = stream.read(&mut sink).await {
            total += n;
            if n == 0 || total > 1 << 20 {
                break;
            }
        }
    })
    .await;
}

/// Reads one request: the head (bounded), then its body. `buf` carries bytes of a pipelined
/// next request over.
async fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    limits: &Limits,
    registered: &Registered,
) -> Result<(Request, bool), ReadError> {
    let mut scanned = 0;
    let head_len = loop {
        if let Some(end) = head_end(buf, scanned) {
            break end;
        }
        if buf.len() >= limits.max_head_bytes {
            return Err(ReadError::Respond(431, "request head too large"));
        }
        scanned = buf.len().saturating_sub(3);
        read_more(stream, buf, limits.max_head_bytes).await?;
    };
    // A whole head arrived: from here on this connection is working, not waiting.
    registered.set_idle(false);
    if head_len > limits.max_head_bytes {
        return Err(ReadError::Respond(431, "request head too large"));
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(&buf[..head_len]) {
        Ok(httparse::Status::Complete(_)) => {}
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ReadError::Respond(431, "more than 64 headers"));
        }
        _ => return Err(ReadError::Respond(400, "malformed request head")),
    }
    let method = parsed.method.unwrap_or("GET").to_owned();
    let target = parsed.path.unwrap_or("/").to_owned();
    let version = parsed.version.unwrap_or(0);
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).trim().to_owned(),
            )
        })
        .collect();
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let connection = header("connection").map(|v| v.to_ascii_lowercase());
    let keep_alive = version == 1 && connection.as_deref() != Some("close");
    if header("transfer-encoding").is_some() {
        return Err(ReadError::Respond(
            501,
            "chunked request bodies are not supported",
        ));
    }
    let length = match header("content-length") {
        None => 0,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ReadError::Respond(400, "bad Content-Length"))?,
    };
    if length > limits.max_body_bytes {
        return Err(ReadError::Respond(413, "request body too large"));
    }
    if length > 0
        && header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
        && buf.len() == head_len
    {
        let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await;
    }
    while buf.len() < head_len + length {
        read_more(stream, buf, head_len + length).await?;
    }
    let body = buf[head_len..head_len + length].to_vec();
    buf.drain(..head_len + length);
    let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
    Ok((
        Request {
            method,
            target,
            headers,
            body,
            peer: unspecified,
            local: unspecified,
        },
        keep_alive,
    ))
}

/// Reads what has arrived into `buf`, never past `upto` bytes in all; the peer closing (or a
/// read error) ends the connection.
async fn read_more(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    upto: usize,
) -> Result<(), ReadError> {
    let mut chunk = [0u8; 4096];
    let room = upto.saturating_sub(buf.len()).min(chunk.len());
    let n = stream
        .read(&mut chunk[..room])
        .await
        .map_err(|_| ReadError::Closed)?;
    if n == 0 {
        return Err(ReadError::Closed);
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// The length of the head (through the blank line) when `buf` holds all of it. Scanning
/// resumes at `from`, so a head arriving byte by byte costs linear time.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(offset) = buf.get(i..)?.iter().position(|b| *b == b'\n') {
        let at = i + offset;
        match buf.get(at + 1..at + 3) {
            Some([b'\r', b'\n']) => return Some(at + 3),
            Some([b'\n', _]) => return Some(at + 2),
            None if buf.get(at + 1) == Some(&b'\n') => return Some(at + 2),
            _ => {}
        }
        i = at + 1;
    }
    None
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        303 => "See Other",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        421 => "Misdirected Request",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "",
    }
}

async fn write(
    stream: &mut TcpStream,
    response: &Response,
    head_only: bool,
    keep_alive: bool,
    limits: &Limits,
) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nConnection: {}\r\n",
        response.status,
        reason(response.status),
        response.body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    )
    .into_bytes();
    for (name, value) in &response.headers {
        // Header values are the server's own; refuse to emit a line break from any of them.
        if name.contains(['\r', '\n']) || value.contains(['\r', '\n']) {
            continue;
        }
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(&response.body);
    }
    let written = tokio::time::timeout(limits.request_timeout, async {
        stream.write_all(&out).await?;
        stream.flush().await
    })
    .await;
    let result = written.unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()));
    if !keep_alive {
        let _ = stream.shutdown().await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::head_end;

    #[test]
    fn the_head_ends_at_the_first_blank_line_in_either_spelling() {
        assert_eq!(
            head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nrest", 0),
            Some(27)
        );
        assert_eq!(head_end(b"GET / HTTP/1.1\nHost: a\n\nrest", 0), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n", 0), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r", 0), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\n", 13), Some(18));
    }
}
