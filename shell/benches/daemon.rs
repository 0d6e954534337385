//! The daemon as a process: start to `/readyz`, idle footprint, `/api/v1/state` latency with
//! 100 running agents, and one machine at scale: 100 and 1,000 concurrent demo runs (RSS,
//! threads and CPU, per-run overhead, poll tick time, `/api/v1/state` p99). Prints figures
//! for `docs/performance.md`; `IDLE_SECONDS` (default 60) sets the idle window, `SCALE_RUNS`
//! (default `100,1000`) the run counts. Everything talks to 127.0.0.1 only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

fn write_setup(dir: &Path, issues: usize, turn_ms: u64) {
    write_setup_polling(dir, issues, turn_ms, 30_000);
}

fn write_setup_polling(dir: &Path, issues: usize, turn_ms: u64, interval_ms: u64) {
    std::fs::create_dir_all(dir.join("issues")).unwrap();
    std::fs::write(
        dir.join("WORKFLOW.md"),
        format!(
            "---\ntracker:\n  kind: local\npolling:\n  interval_ms: {interval_ms}\nworkspace:\n  root: ./ws\nserver:\n  port: 0\nagent:\n  kind: demo\n  demo_turn_ms: {turn_ms}\n  max_concurrent_agents: {issues}\n---\nWork on {{{{ issue.identifier }}}}.\n"
        ),
    )
    .unwrap();
    for n in 0..issues {
        std::fs::write(
            dir.join(format!("issues/B-{n}.md")),
            format!("---\ntitle: Bench {n}\nstate: Todo\n---\n"),
        )
        .unwrap();
    }
}

/// Starts the daemon; returns it, its log lines and the HTTP address once it is listening.
fn start(dir: &Path) -> (Child, Receiver<String>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_symphony"))
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("SYMPHONY_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("daemon logs");
        if let Some(rest) = line.split("http://").nth(1) {
            break rest.trim_end_matches('/').to_owned();
        }
    };
    (child, rx, addr)
}

fn get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn stop(mut child: Child) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
    let _ = child.wait();
}

/// `count` sequential `GET /api/v1/state`, a new connection each: the times, sorted.
fn state_times(addr: &str, count: usize) -> Vec<Duration> {
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        let (status, _) = get(addr, "/api/v1/state");
        times.push(started.elapsed());
        assert_eq!(status, 200);
    }
    times.sort();
    times
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn proc_field(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// User + system CPU time of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, r)| r)
        .unwrap_or("")
        .split(' ')
        .collect();
    fields
        .get(11)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
}

fn start_to_ready() {
    let mut times = Vec::new();
    for _ in 0..15 {
        let dir = tempfile::tempdir().unwrap();
        write_setup(dir.path(), 0, 1000);
        let started = Instant::now();
        let (child, _rx, addr) = start(dir.path());
        loop {
            if get(&addr, "/readyz").0 == 200 {
                break;
            }
        }
        times.push(started.elapsed());
        stop(child);
    }
    times.sort();
    println!(
        "start to /readyz (local tracker, 15 runs): median {:?}, max {:?}",
        percentile(&times, 0.5),
        times[times.len() - 1]
    );
}

fn idle() {
    let seconds: u64 = std::env::var("IDLE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let dir = tempfile::tempdir().unwrap();
    write_setup(dir.path(), 0, 1000);
    let (child, _rx, addr) = start(dir.path());
    while get(&addr, "/readyz").0 != 200 {}
    let pid = child.id();
    let ticks_before = cpu_ticks(pid);
    let window = Duration::from_secs(seconds);
    std::thread::sleep(window); // measuring an idle process: the wait is the measurement
    let ticks = cpu_ticks(pid) - ticks_before;
    let hz = 100.0; // USER_HZ on Linux
    let cpu_percent = ticks as f64 / hz / window.as_secs_f64() * 100.0;
    println!(
        "idle, local tracker, nothing to do, {seconds} s: RSS {} kB (peak {} kB), CPU {:.3}%",
        proc_field(pid, "VmRSS:"),
        proc_field(pid, "VmHWM:"),
        cpu_percent
    );
    stop(child);
}

fn state_latency() {
    let dir = tempfile::tempdir().unwrap();
    write_setup(dir.path(), 100, 600_000);
    let (child, _rx, addr) = start(dir.path());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = get(&addr, "/api/v1/state");
        let state: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if status == 200 && state["counts"]["running"] == 100 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "100 agents never ran: {status} {}",
            body.chars().take(300).collect::<String>()
        );
    }
    let times = state_times(&addr, 2000);
    println!(
        "/api/v1/state with 100 running (2,000 sequential requests, new connection each): p50 {:?}, p99 {:?}, max {:?}",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times[times.len() - 1]
    );
    stop(child);
}

/// `/api/v1/state` latency while 1,000 idle keep-alive connections are held open, then the
/// daemon's RSS and threads while 10,000 hostile connections (each a partial 8 KiB head that
/// never ends) hammer it.
fn under_connection_load() {
    let dir = tempfile::tempdir().unwrap();
    write_setup(dir.path(), 100, 600_000);
    let (child, _rx, addr) = start(dir.path());
    let pid = child.id();
    while get(&addr, "/readyz").0 != 200 {}
    let threads_before = proc_field(pid, "Threads:");
    let idle: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    let times = state_times(&addr, 2000);
    println!(
        "/api/v1/state with 100 running and 1,000 idle connections held open (2,000 requests): p50 {:?}, p99 {:?}, max {:?}; threads {} -> {}",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times[times.len() - 1],
        threads_before,
        proc_field(pid, "Threads:")
    );
    drop(idle);

    let rss_before = proc_field(pid, "VmRSS:");
    let partial = format!(
        "GET /api/v1/state HTTP/1.1\r\nHost: localhost\r\nX-Pad: {}",
        "a".repeat(8192)
    );
    let mut hostile = Vec::with_capacity(10_000);
    let mut refused = 0;
    for _ in 0..10_000 {
        match TcpStream::connect(&addr) {
            Ok(mut stream) => {
                let _ = stream.set_nonblocking(true);
                let _ = stream.write(partial.as_bytes());
                hostile.push(stream);
            }
            Err(_) => refused += 1,
        }
    }
    let mut live = Vec::with_capacity(200);
    for _ in 0..200 {
        let started = Instant::now();
        assert_eq!(get(&addr, "/livez").0, 200);
        let (status, _) = get(&addr, "/api/v1/state");
        assert_eq!(status, 200);
        live.push(started.elapsed());
    }
    live.sort();
    println!(
        "10,000 hostile connections (8 KiB partial heads; {refused} refused at connect): daemon RSS {} kB -> {} kB (peak {} kB), threads {}; /livez + /api/v1/state meanwhile p50 {:?}, p99 {:?}",
        rss_before,
        proc_field(pid, "VmRSS:"),
        proc_field(pid, "VmHWM:"),
        proc_field(pid, "Threads:"),
        percentile(&live, 0.5),
        percentile(&live, 0.99),
    );
    drop(hostile);
    stop(child);
}

/// Waits (bounded) until `/api/v1/state` counts `running` runs.
fn wait_running(addr: &str, running: usize, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = get(addr, "/api/v1/state");
        let state: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if status == 200 && state["counts"]["running"] == running {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{running} runs never ran: {status} {}",
            body.chars().take(300).collect::<String>()
        );
        std::thread::sleep(Duration::from_millis(200)); // polling another process's state
    }
}

/// A `/metrics` sample's value.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// `n` concurrent demo runs (turns that last ten minutes), polled every 2 s: the daemon's
/// RSS, threads and CPU over 20 s, its poll ticks (the daemon's own histogram: from the
/// tick's first tracker request to its dispatch decisions) and `/api/v1/state` latency.
/// Returns (RSS kB, threads).
fn scale_at(n: usize) -> (u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    write_setup_polling(dir.path(), n, 600_000, 2_000);
    let (child, _rx, addr) = start(dir.path());
    let started = Instant::now();
    wait_running(&addr, n, Duration::from_secs(300));
    let ramp = started.elapsed();
    let pid = child.id();
    let (_, before) = get(&addr, "/metrics");
    let ticks_before = cpu_ticks(pid);
    let window = Duration::from_secs(20);
    std::thread::sleep(window); // the daemon at rest with n runs: the wait is the measurement
    let cpu = (cpu_ticks(pid) - ticks_before) as f64 / 100.0 / window.as_secs_f64() * 100.0;
    let (_, after) = get(&addr, "/metrics");
    let tick = "symphony_poll_tick_duration_seconds";
    let count =
        metric(&after, &format!("{tick}_count")) - metric(&before, &format!("{tick}_count"));
    let sum = metric(&after, &format!("{tick}_sum")) - metric(&before, &format!("{tick}_sum"));
    let rss = proc_field(pid, "VmRSS:");
    let threads = proc_field(pid, "Threads:");
    let times = state_times(&addr, 1000);
    let (_, body) = get(&addr, "/api/v1/state");
    println!(
        "{n} concurrent demo runs: all running after {ramp:?}; RSS {rss} kB (peak {} kB), \
         {threads} threads, CPU {cpu:.2}% over {window:?}; poll ticks: {count} in the window, \
         mean {:.2} ms; /api/v1/state ({} bytes, 1,000 sequential): p50 {:?}, p99 {:?}, max {:?}",
        proc_field(pid, "VmHWM:"),
        if count > 0.0 {
            sum / count * 1000.0
        } else {
            0.0
        },
        body.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times[times.len() - 1]
    );
    stop(child);
    (rss, threads)
}

/// [`scale_at`] for each of `SCALE_RUNS`, then the cost of one more run between the first and
/// the last.
fn scale() {
    let counts: Vec<usize> = std::env::var("SCALE_RUNS")
        .unwrap_or_else(|_| "100,1000".to_owned())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let rows: Vec<(usize, (u64, u64))> = counts.iter().map(|n| (*n, scale_at(*n))).collect();
    if let (Some((low, (rss_low, threads_low))), Some((high, (rss_high, threads_high)))) =
        (rows.first(), rows.last())
        && high > low
    {
        let more = (high - low) as f64;
        println!(
            "per run, between {low} and {high}: {:.1} kB RSS, {:.2} threads",
            (*rss_high as f64 - *rss_low as f64) / more,
            (*threads_high as f64 - *threads_low as f64) / more
        );
    }
}

fn main() {
    // `cargo test --benches` runs bench binaries with no arguments to check them; the figures
    // are only taken under `cargo bench`, which passes `--bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    if std::env::var("SCALE_ONLY").is_ok() {
        return scale();
    }
    start_to_ready();
    state_latency();
    under_connection_load();
    idle();
    scale();
}
