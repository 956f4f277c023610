//! Runs one of uWebSockets' own load generators (`benchmarks/load_test.c` or
//! `benchmarks/broadcast_test.c`, built by `scripts/uws-build.sh`) against a server, and turns
//! what it prints into the same JSON record as `bench-load`, with the server's CPU time read
//! from `/proc` over the same windows.
//!
//! ```text
//! bench-uws-load --tool load_test|broadcast_test --bin PATH --port PORT [options]
//! ```
//!
//! Both tools connect N WebSockets one after the other, print `Running benchmark now...`, and
//! then, every 4 seconds (uSockets' timer granularity, `LIBUS_TIMEOUT_GRANULARITY`), a rate over
//! the last 4 seconds: `Msg/sec: F` (load_test: echoes per second over all connections, one
//! message in flight on each) or `Iterations/second (N clients): F` (broadcast_test: rounds in
//! which every client sends one 20-byte message and receives all N of the round's). They run
//! until killed, so this wrapper reads their output line by line (through `stdbuf -oL`: they
//! print with `printf` into a pipe, which glibc would otherwise block-buffer), skips the first
//! line(s) (the first covers the connection phase and part of a window: a warm-up), averages
//! the next `--windows` ones, and kills the tool.
//!
//! load_test counts an echo by its byte count alone (it does not parse frames or compare
//! payloads), and goes on with fewer connections when the server closes one (it prints
//! `Closed!`): this wrapper fails the run on that line. Pin it with `taskset`: the tool inherits
//! the affinity.
//!
//! With `--server-pid`, the record also carries the server's `VmRSS` before the tool starts (a
//! fresh server) and at the end of the last window, and the growth per connection: for
//! broadcast_test, the memory of a subscriber that is being broadcast to.
//!
//! Fan-out only: `--slow-clients K` first opens K WebSockets of its own (`GET /` upgrades) that
//! never read a byte after the `101`, so that the server broadcasts to K clients that fall
//! behind; broadcast_test's own clients do not count them. `--stats PATH` reads the server's
//! counts with a plain `GET PATH` at the end (`ours-hub` answers `/stats` with its hub's) and
//! records the dropped messages.

use std::{
    io::{BufRead, BufReader, Read as _, Write as _},
    net::TcpStream,
    process::{Child, Command, ExitCode, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use bench_common::{Record, cpu_percent, cpu_ticks, machine_busy_ticks, rss_kib};

const USAGE: &str = "\
usage: bench-uws-load --tool TOOL --bin PATH --port PORT [options]

TOOL: load_test | broadcast_test (uWebSockets' benchmarks/, built by scripts/uws-build.sh)

Options:
  --host ADDR          server address [default: 127.0.0.1]
  --port PORT          server port (required)
  --connections N      WebSockets to open [default: 100]
  --size BYTES         load_test's payload size [default: 20]; broadcast_test's is always 20
  --skip N             report lines to skip first, as a warm-up [default: 1]
  --windows N          4-second windows to average after those [default: 1]
  --connect-timeout S  time allowed for opening the connections [default: 30]
  --server-pid PID     read the server's CPU time and memory from /proc
  --slow-clients K     broadcast_test: open K WebSockets that never read first [default: 0]
  --stats PATH         broadcast_test: GET PATH from the server at the end, for its hub's
                       dropped count (ours-hub: /stats)
  --scenario LABEL     label for the result record
  --server-name NAME   server name for the result record";

/// uSockets' `LIBUS_TIMEOUT_GRANULARITY`: both tools print a rate every this many seconds.
const WINDOW_SECONDS: f64 = 4.0;

/// The payload of broadcast_test's messages, fixed in its source.
const BROADCAST_SIZE: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    LoadTest,
    BroadcastTest,
}

impl Tool {
    fn mode(self) -> &'static str {
        match self {
            Tool::LoadTest => "uws-load",
            Tool::BroadcastTest => "uws-broadcast",
        }
    }
}

#[derive(Debug, Clone)]
struct Options {
    tool: Tool,
    bin: String,
    host: String,
    port: u16,
    connections: usize,
    size: usize,
    skip: usize,
    windows: usize,
    connect_timeout: f64,
    server_pid: Option<String>,
    scenario: String,
    server_name: String,
    slow_clients: usize,
    stats: Option<String>,
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(problem) => {
            eprintln!("bench-uws-load: {problem}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(record) => match serde_json::to_string(&record) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("bench-uws-load: cannot write the record: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("bench-uws-load: {} against {}: {e}", options.bin, options.server_name);
            ExitCode::FAILURE
        }
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let (mut tool, mut bin, mut port) = (None, None, None);
    let mut options = Options {
        tool: Tool::LoadTest,
        bin: String::new(),
        host: "127.0.0.1".to_owned(),
        port: 0,
        connections: 100,
        size: 20,
        skip: 1,
        windows: 1,
        connect_timeout: 30.0,
        server_pid: None,
        scenario: String::new(),
        server_name: String::new(),
        slow_clients: 0,
        stats: None,
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        fn num<T: std::str::FromStr>(arg: &str, v: String) -> Result<T, String> {
            v.parse().map_err(|_| format!("{arg}: bad value {v:?}"))
        }
        match arg.as_str() {
            "--tool" => {
                tool = Some(match value()?.as_str() {
                    "load_test" => Tool::LoadTest,
                    "broadcast_test" => Tool::BroadcastTest,
                    other => return Err(format!("--tool: unknown tool {other:?}")),
                })
            }
            "--bin" => bin = Some(value()?),
            "--host" => options.host = value()?,
            "--port" => port = Some(num::<u16>(&arg, value()?)?),
            "--connections" => options.connections = num(&arg, value()?)?,
            "--size" => options.size = num(&arg, value()?)?,
            "--skip" => options.skip = num(&arg, value()?)?,
            "--windows" => options.windows = num(&arg, value()?)?,
            "--connect-timeout" => options.connect_timeout = num(&arg, value()?)?,
            "--server-pid" => options.server_pid = Some(value()?),
            "--scenario" => options.scenario = value()?,
            "--server-name" => options.server_name = value()?,
            "--slow-clients" => options.slow_clients = num(&arg, value()?)?,
            "--stats" => options.stats = Some(value()?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    options.tool = tool.ok_or("--tool is required")?;
    options.bin = bin.ok_or("--bin is required")?;
    options.port = port.ok_or("--port is required")?;
    if options.port == 0 {
        return Err("--port must not be 0".into());
    }
    if options.connections == 0 {
        return Err("--connections must be at least 1".into());
    }
    if options.windows == 0 {
        return Err("--windows must be at least 1".into());
    }
    // load_test's frame length field is an unsigned int, and its echo counter an int.
    if options.size > i32::MAX as usize / 2 {
        return Err(format!("--size {} is more than load_test can count", options.size));
    }
    if options.tool == Tool::BroadcastTest {
        options.size = BROADCAST_SIZE;
    } else if options.slow_clients > 0 || options.stats.is_some() {
        return Err("--slow-clients and --stats go with --tool broadcast_test".into());
    }
    if options.stats.as_ref().is_some_and(|path| !path.starts_with('/')) {
        return Err("--stats needs a path that starts with /".into());
    }
    if options.connect_timeout.is_nan() || options.connect_timeout <= 0.0 || options.connect_timeout > 3600.0
    {
        return Err("--connect-timeout must be above 0 and at most 3600 seconds".into());
    }
    Ok(options)
}

/// What one line of the tool's output says.
#[derive(Debug, PartialEq)]
enum Line {
    /// A rate over the last window: messages (load_test) or iterations (broadcast_test) per
    /// second.
    Rate(f64),
    /// All connections are open; the rates start.
    Started,
    /// The tool saw a connection closed, or an error of its own.
    Failure(String),
    /// Anything else (`Using message size of 20 bytes`).
    Other,
}

fn parse_line(tool: Tool, line: &str) -> Line {
    let line = line.trim();
    let rate = match tool {
        Tool::LoadTest => line.strip_prefix("Msg/sec:"),
        Tool::BroadcastTest => line
            .strip_prefix("Iterations/second")
            .and_then(|rest| rest.split_once("):"))
            .map(|(_, rate)| rate),
    };
    if let Some(rate) = rate {
        return match rate.trim().parse::<f64>() {
            Ok(rate) if rate.is_finite() && rate >= 0.0 => Line::Rate(rate),
            _ => Line::Failure(format!("unreadable rate line {line:?}")),
        };
    }
    if line == "Running benchmark now..." {
        return Line::Started;
    }
    // load_test: "Closed!" (and it carries on with one connection fewer), "ERROR: outstanding
    // bytes negative!", "Error: message size must be ..."; broadcast_test: "Client was
    // disconnected, exiting!".
    if line.starts_with("Closed!")
        || line.starts_with("Client was disconnected")
        || line.starts_with("ERROR")
        || line.starts_with("Error")
    {
        return Line::Failure(line.to_owned());
    }
    Line::Other
}

/// The tool's process, killed when dropped (it runs until killed).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CPU counters at one instant.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    server: Option<u64>,
    client: u64,
    machine: Option<u64>,
}

impl Sample {
    fn take(server_pid: Option<&str>, tool_pid: u32) -> Self {
        let tool = cpu_ticks(&tool_pid.to_string()).unwrap_or(0);
        Self {
            at: Instant::now(),
            server: server_pid.and_then(|pid| cpu_ticks(pid).ok()),
            client: tool + cpu_ticks("self").unwrap_or(0),
            machine: machine_busy_ticks().ok(),
        }
    }
}

/// A slow client's receive buffer: the kernel's smallest, more or less (Linux doubles it), so
/// that the server's queue for it, not the kernel's buffers, soon holds what it has not read.
const SLOW_RECEIVE_BUFFER: usize = 4096;

/// A WebSocket that upgraded and then never reads: the slow subscriber of the fan-out scenario.
fn open_slow_client(host: &str, port: u16) -> Result<TcpStream, String> {
    use socket2::{Domain, Socket, Type};

    let address = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .map_err(|e| format!("slow client: {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("slow client: no address for {host}"))?;
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)
        .map_err(|e| format!("slow client: socket: {e}"))?;
    socket.set_recv_buffer_size(SLOW_RECEIVE_BUFFER).map_err(|e| format!("slow client: SO_RCVBUF: {e}"))?;
    socket.connect(&address.into()).map_err(|e| format!("slow client: connect: {e}"))?;
    let mut stream = TcpStream::from(socket);
    let _ = stream.set_nodelay(true);
    stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(|e| format!("slow client: {e}"))?;
    // Read the 101's head byte by byte, so that nothing after it is taken off the socket.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            Ok(_) => return Err("slow client: closed during the upgrade".into()),
            Err(e) => return Err(format!("slow client: upgrade: {e}")),
        }
        if head.len() > 8192 {
            return Err("slow client: no end to the upgrade response".into());
        }
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        return Err(format!("slow client: not upgraded: {:?}", String::from_utf8_lossy(&head)));
    }
    Ok(stream)
}

/// `GET path` from the server, and the `dropped` count in its JSON answer (`ours-hub`'s
/// `/stats`).
fn read_dropped(host: &str, port: u16, path: &str) -> Result<u64, String> {
    let mut stream = TcpStream::connect((host, port)).map_err(|e| format!("stats: connect: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(|e| format!("stats: {e}"))?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| format!("stats: {e}"))?;
    dropped_from(&response).ok_or_else(|| format!("stats: no dropped count in {response:?}"))
}

/// The `dropped` field of a `200` response's JSON body.
fn dropped_from(response: &str) -> Option<u64> {
    let (head, body) = response.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    let json: serde_json::Value = serde_json::from_str(body.trim()).ok()?;
    json.get("dropped")?.as_u64()
}

fn run(options: &Options) -> Result<Record, String> {
    let rss_before = options.server_pid.as_deref().and_then(|pid| rss_kib(pid).ok());
    let slow: Vec<TcpStream> = (0..options.slow_clients)
        .map(|_| open_slow_client(&options.host, options.port))
        .collect::<Result<_, _>>()?;
    let port = options.port.to_string();
    let connections = options.connections.to_string();
    let size = options.size.to_string();
    // connections host port ssl [deflate payload_size_bytes]
    let mut tool_args = vec![connections.as_str(), options.host.as_str(), port.as_str(), "0"];
    if options.tool == Tool::LoadTest {
        tool_args.extend(["0", size.as_str()]);
    }
    let child = Command::new("stdbuf")
        .arg("-oL")
        .arg(&options.bin)
        .args(&tool_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run stdbuf -oL {} (stdbuf comes with coreutils): {e}", options.bin))?;
    let mut child = Running(child);
    let pid = child.0.id();
    let stdout = child.0.stdout.take().ok_or("the tool's output is not piped")?;
    let (lines_tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    let mut seen: Vec<String> = Vec::new();
    let tail = |seen: &[String]| seen[seen.len().saturating_sub(5)..].join(" | ");
    let mut started = false;
    let mut skipped = 0;
    let mut start: Option<Sample> = None;
    let mut rates = Vec::new();
    let begun = Instant::now();
    let mut deadline = begun + Duration::from_secs_f64(options.connect_timeout);
    while rates.len() < options.windows {
        let wait = deadline.saturating_duration_since(Instant::now());
        let line = match lines.recv_timeout(wait) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(if started {
                    format!("no rate line within {:.0} s (output: {})", 3.0 * WINDOW_SECONDS, tail(&seen))
                } else {
                    format!(
                        "{} connections not open within {} s (output: {})",
                        options.connections,
                        options.connect_timeout,
                        tail(&seen)
                    )
                });
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.0.wait().map_or_else(|e| e.to_string(), |s| s.to_string());
                return Err(format!("the tool exited ({status}) (output: {})", tail(&seen)));
            }
        };
        seen.push(line.clone());
        match parse_line(options.tool, &line) {
            Line::Started => {
                started = true;
                deadline = Instant::now() + Duration::from_secs_f64(3.0 * WINDOW_SECONDS);
            }
            Line::Rate(rate) => {
                deadline = Instant::now() + Duration::from_secs_f64(3.0 * WINDOW_SECONDS);
                if skipped < options.skip {
                    skipped += 1;
                } else {
                    rates.push(rate);
                }
                // The counters are read at the line that closes the skipped windows, and at the
                // last one.
                if skipped == options.skip && start.is_none() {
                    start = Some(Sample::take(options.server_pid.as_deref(), pid));
                }
            }
            Line::Failure(problem) => {
                return Err(format!("the tool reported {problem:?} (output: {})", tail(&seen)));
            }
            Line::Other => {}
        }
    }
    let end = Sample::take(options.server_pid.as_deref(), pid);
    let rss_after = options.server_pid.as_deref().and_then(|pid| rss_kib(pid).ok());
    let dropped = match &options.stats {
        Some(path) => Some(read_dropped(&options.host, options.port, path)?),
        None => None,
    };
    drop(child);
    drop(slow);
    let start = start.ok_or("no starting sample")?;
    let mut record = record(options, &rates, start, end);
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        record.rss_before_kib = Some(before);
        record.rss_after_kib = Some(after);
        record.rss_per_socket_bytes = Some(
            (after as f64 - before as f64) * 1024.0 / (options.connections + options.slow_clients) as f64,
        );
    }
    if options.tool == Tool::BroadcastTest {
        record.slow_clients = Some(options.slow_clients);
    }
    record.dropped = dropped;
    Ok(record)
}

/// The record of a run: `rates` are the tool's own per-window figures; the CPU figures come
/// from the counters read at the start and the end of those windows.
fn record(options: &Options, rates: &[f64], start: Sample, end: Sample) -> Record {
    let seconds = end.at.duration_since(start.at).as_secs_f64();
    let per_second = rates.iter().sum::<f64>() / rates.len().max(1) as f64;
    // The tools print count / 4 for each window.
    let count = rates.iter().map(|r| (r * WINDOW_SECONDS).round() as u64).sum::<u64>();
    let server_cpu = match (start.server, end.server) {
        (Some(a), Some(b)) => Some(cpu_percent(b.saturating_sub(a), seconds)),
        _ => None,
    };
    let client_cpu = cpu_percent(end.client.saturating_sub(start.client), seconds);
    let other_cpu = match (start.machine, end.machine) {
        (Some(a), Some(b)) => Some(
            (cpu_percent(b.saturating_sub(a), seconds) - client_cpu - server_cpu.unwrap_or(0.0)).max(0.0),
        ),
        _ => None,
    };
    // Payload bytes delivered per operation: one echo (load_test), or a round of N messages
    // each delivered to N clients (broadcast_test).
    let bytes_per_op = match options.tool {
        Tool::LoadTest => options.size as f64,
        Tool::BroadcastTest => (options.connections * options.connections * options.size) as f64,
    };
    Record {
        mode: options.tool.mode().to_owned(),
        scenario: options.scenario.clone(),
        server: options.server_name.clone(),
        connections: options.connections,
        size: options.size,
        seconds,
        count,
        per_second,
        slices: rates.to_vec(),
        mb_per_second: per_second * bytes_per_op / 1e6,
        server_cpu,
        server_us_per_op: server_cpu
            .filter(|_| count > 0)
            .map(|cpu| cpu / 100.0 * seconds * 1e6 / count as f64),
        client_cpu,
        other_cpu,
        ..Record::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Options, String> {
        parse_args(list.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn reads_load_test_lines() {
        assert_eq!(parse_line(Tool::LoadTest, "Msg/sec: 52915.250000"), Line::Rate(52915.25));
        assert_eq!(parse_line(Tool::LoadTest, "Running benchmark now..."), Line::Started);
        assert_eq!(parse_line(Tool::LoadTest, "Using message size of 20 bytes"), Line::Other);
        assert_eq!(parse_line(Tool::LoadTest, "Closed!"), Line::Failure("Closed!".to_owned()));
        assert!(matches!(parse_line(Tool::LoadTest, "ERROR: outstanding bytes negative!"), Line::Failure(_)));
        assert!(matches!(parse_line(Tool::LoadTest, "Msg/sec: nan"), Line::Failure(_)));
        assert!(matches!(parse_line(Tool::LoadTest, "Msg/sec: -1"), Line::Failure(_)));
        // The other tool's rate line is not load_test's.
        assert_eq!(parse_line(Tool::LoadTest, "Iterations/second (10 clients): 5.0"), Line::Other);
    }

    #[test]
    fn reads_broadcast_test_lines() {
        assert_eq!(
            parse_line(Tool::BroadcastTest, "Iterations/second (100 clients): 1234.500000"),
            Line::Rate(1234.5)
        );
        assert!(matches!(
            parse_line(Tool::BroadcastTest, "Client was disconnected, exiting!"),
            Line::Failure(_)
        ));
        assert_eq!(parse_line(Tool::BroadcastTest, "Msg/sec: 5.0"), Line::Other);
    }

    #[test]
    fn arguments_are_checked() {
        let ok = args(&["--tool", "load_test", "--bin", "x", "--port", "9", "--size", "16384"]).unwrap();
        assert_eq!((ok.tool, ok.port, ok.size, ok.skip, ok.windows), (Tool::LoadTest, 9, 16384, 1, 1));
        let broadcast =
            args(&["--tool", "broadcast_test", "--bin", "x", "--port", "9", "--size", "99"]).unwrap();
        assert_eq!(broadcast.size, BROADCAST_SIZE);
        assert!(args(&["--bin", "x", "--port", "9"]).unwrap_err().contains("--tool"));
        assert!(args(&["--tool", "wrk", "--bin", "x", "--port", "9"]).unwrap_err().contains("unknown tool"));
        assert!(args(&["--tool", "load_test", "--bin", "x"]).unwrap_err().contains("--port"));
        assert!(args(&["--tool", "load_test", "--bin", "x", "--port", "0"]).is_err());
        assert!(args(&["--tool", "load_test", "--bin", "x", "--port", "9", "--windows", "0"]).is_err());
        assert!(args(&["--tool", "load_test", "--bin", "x", "--port", "9", "--connections", "0"]).is_err());
        assert!(
            args(&["--tool", "load_test", "--bin", "x", "--port", "9", "--connect-timeout", "NaN"]).is_err()
        );
        assert!(args(&["--tool", "load_test", "--bin", "x", "--port", "9", "--size", "lots"]).is_err());
    }

    #[test]
    fn fan_out_options_and_the_stats_answer() {
        let o = args(&[
            "--tool",
            "broadcast_test",
            "--bin",
            "x",
            "--port",
            "9",
            "--slow-clients",
            "1",
            "--stats",
            "/stats",
        ])
        .unwrap();
        assert_eq!((o.slow_clients, o.stats.as_deref()), (1, Some("/stats")));
        assert!(args(&["--tool", "load_test", "--bin", "x", "--port", "9", "--slow-clients", "1"]).is_err());
        assert!(
            args(&["--tool", "broadcast_test", "--bin", "x", "--port", "9", "--stats", "stats"]).is_err()
        );
        let ok = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"published\":5,\"dropped\":42}";
        assert_eq!(dropped_from(ok), Some(42));
        assert_eq!(dropped_from("HTTP/1.1 404 Not Found\r\n\r\n{\"dropped\":1}"), None);
        assert_eq!(dropped_from("HTTP/1.1 200 OK\r\n\r\nnot json"), None);
    }

    #[test]
    fn the_record_averages_the_windows_and_counts_from_them() {
        let options = args(&["--tool", "load_test", "--bin", "x", "--port", "9", "--size", "1000"]).unwrap();
        let start = Sample { at: Instant::now(), server: Some(100), client: 10, machine: Some(1000) };
        let end = Sample {
            at: start.at + Duration::from_secs(8),
            server: Some(100 + 8 * 100),
            client: 10,
            machine: None,
        };
        let r = record(&options, &[1000.0, 3000.0], start, end);
        assert_eq!(r.mode, "uws-load");
        assert_eq!(r.per_second, 2000.0);
        assert_eq!(r.count, 16_000);
        assert_eq!(r.mb_per_second, 2.0);
        assert_eq!(r.slices, vec![1000.0, 3000.0]);
        assert_eq!(r.other_cpu, None);
        // 800 ticks over 8 s is one whole core, whatever the tick rate: check through the same
        // conversion.
        let cpu = cpu_percent(800, 8.0);
        assert_eq!(r.server_cpu, Some(cpu));
        let us = r.server_us_per_op.unwrap();
        assert!((us - cpu / 100.0 * 8.0 * 1e6 / 16_000.0).abs() < 1e-9, "{us}");
    }

    /// The whole path against a stand-in for the tool: a shell script that prints what
    /// load_test prints, and one that reports a closed connection.
    #[test]
    fn runs_a_tool_and_reads_its_windows() {
        let dir = std::env::temp_dir().join(format!("bench-uws-load-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.sh");
        std::fs::write(
            &good,
            "#!/bin/sh\necho 'Using message size of 20 bytes'\necho 'Running benchmark now...'\n\
             echo 'Msg/sec: 10.0'\necho 'Msg/sec: 250.0'\necho 'Msg/sec: 750.0'\nexec sleep 30\n",
        )
        .unwrap();
        let bad = dir.join("bad.sh");
        std::fs::write(&bad, "#!/bin/sh\necho 'Running benchmark now...'\necho 'Msg/sec: 10.0'\necho 'Closed!'\nexec sleep 30\n")
            .unwrap();
        let early = dir.join("early.sh");
        std::fs::write(&early, "#!/bin/sh\necho 'Running benchmark now...'\necho 'Msg/sec: 10.0'\nexit 3\n")
            .unwrap();
        for script in [&good, &bad, &early] {
            let status = Command::new("chmod").arg("+x").arg(script).status().unwrap();
            assert!(status.success());
        }
        let with = |bin: &std::path::Path| {
            let mut o =
                args(&["--tool", "load_test", "--bin", "x", "--port", "9", "--windows", "2"]).unwrap();
            o.bin = bin.display().to_string();
            o
        };
        let started = Instant::now();
        let r = run(&with(&good)).unwrap();
        assert_eq!(r.slices, vec![250.0, 750.0]);
        assert_eq!(r.per_second, 500.0);
        assert_eq!(r.count, 4_000);
        assert!(started.elapsed() < Duration::from_secs(20), "the tool was not killed once done");
        let e = run(&with(&bad)).unwrap_err();
        assert!(e.contains("Closed!"), "{e}");
        let e = run(&with(&early)).unwrap_err();
        assert!(e.contains("exited") && e.contains("3"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
