//! What no existing load generator measures (scripts/bench.sh; docs/benchmarks.md has the
//! method). One JSON line on stdout.
//!
//! ```text
//! bench-client churn   --port P [--connections 32]      connect, upgrade, close, again: rate,
//!                                                       latency from connect to the 101
//! bench-client deflate --port P [--connections 100 --size 1024 --deflate require|refused]
//! bench-client idle    --port P [--connections 10000 [--size 1024 --deflate require|refused]]
//! bench-client slow    --port P [--connections 1]       upgrade, never read; hold until killed
//! common: --server-pid PID (its CPU, its RSS) --warmup SECS --seconds SECS --path /ws (the
//!         request's path, `/` unless given)
//! ```
//!
//! `deflate` replays compressed traffic: a pool of JSON messages is compressed once, as a
//! browser would (context kept from message to message unless the server asks
//! `client_no_context_takeover`), and every connection sends it in order, one message in flight:
//! a valid stream for the server's decompressor, at no compression cost to the client. Every
//! echo is inflated and compared. `--deflate refused` requires the server to decline. `idle`
//! with `--deflate` echoes one message on each socket first.

use std::{cell::RefCell, fmt::Write as _, rc::Rc, time::Duration};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
    time::Instant,
};

type Result<T> = std::result::Result<T, String>;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const TRAILER: [u8; 4] = [0, 0, 0xff, 0xff];
/// The path every upgrade asks for (`--path`).
static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

#[derive(Debug, Clone)]
struct Options {
    mode: String,
    port: u16,
    connections: usize,
    size: usize,
    deflate: Option<bool>,
    server_pid: Option<String>,
    warmup: f64,
    seconds: f64,
}

fn main() {
    let result = parse_args().and_then(|options| {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        runtime.block_on(tokio::task::LocalSet::new().run_until(run(options)))
    });
    match result {
        Ok(record) => println!("{record}"),
        Err(problem) => {
            eprintln!("bench-client: {problem}");
            std::process::exit(1);
        }
    }
}

fn parse_args() -> Result<Options> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().ok_or("usage: bench-client churn|deflate|idle|slow --port P [options]")?;
    let mut o = Options {
        connections: match mode.as_str() {
            "churn" => 32,
            "deflate" => 100,
            "idle" => 10_000,
            "slow" => 1,
            _ => return Err(format!("unknown mode {mode:?}")),
        },
        mode,
        port: 0,
        size: 1024,
        deflate: None,
        server_pid: None,
        warmup: 1.5,
        seconds: 4.0,
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = || format!("bad value {value:?} for {flag}");
        match flag.as_str() {
            "--port" => o.port = value.parse().map_err(|_| bad())?,
            "--connections" => o.connections = value.parse().map_err(|_| bad())?,
            "--size" => o.size = value.parse().map_err(|_| bad())?,
            "--warmup" => o.warmup = value.parse().map_err(|_| bad())?,
            "--seconds" => o.seconds = value.parse().map_err(|_| bad())?,
            "--server-pid" => o.server_pid = Some(value),
            "--path" if value.starts_with('/') => PATH.set(value).map_err(|_| "--path twice".to_owned())?,
            "--deflate" if value == "require" || value == "refused" => o.deflate = Some(value == "require"),
            _ => return Err(format!("unknown option {flag} {value}")),
        }
    }
    if o.port == 0 || o.connections == 0 {
        return Err("--port and a non-zero --connections are needed".into());
    }
    if o.mode == "deflate" && o.deflate.is_none() {
        o.deflate = Some(true);
    }
    Ok(o)
}

async fn run(o: Options) -> Result<Value> {
    let mut record = match o.mode.as_str() {
        "churn" => churn(&o).await?,
        "deflate" => deflate(&o).await?,
        "idle" => idle(&o).await?,
        _ => slow(&o).await?,
    };
    record["connections"] = json!(o.connections);
    Ok(record)
}

// --- /proc --------------------------------------------------------------------------------------

/// User plus system CPU time of a process, in seconds (`/proc/PID/stat` fields 14 and 15, in
/// Linux's fixed 100 ticks per second).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some((fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?) as f64 / 100.0)
}

fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse().ok()
}

/// Runs `work` on every connection until the window closes, and measures the window: `work`
/// records the latency of each operation that ends inside it.
async fn measure<F, Fut>(o: &Options, work: F) -> Result<Value>
where
    F: Fn(usize, Instant, Instant, Rc<RefCell<Vec<u32>>>) -> Fut,
    Fut: std::future::Future<Output = Result<()>> + 'static,
{
    let start = Instant::now() + Duration::from_secs_f64(o.warmup);
    let end = start + Duration::from_secs_f64(o.seconds);
    let latencies = Rc::new(RefCell::new(Vec::new()));
    let tasks: Vec<_> = (0..o.connections)
        .map(|i| tokio::task::spawn_local(work(i, start, end, latencies.clone())))
        .collect();
    tokio::time::sleep_until(start).await;
    let cpu_start = o.server_pid.as_deref().and_then(cpu_seconds);
    tokio::time::sleep_until(end).await;
    let cpu_end = o.server_pid.as_deref().and_then(cpu_seconds);
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    let mut latencies = latencies.take();
    latencies.sort_unstable();
    let count = latencies.len();
    let percentile = |p: f64| {
        latencies.get(((count as f64 * p) as usize).min(count.max(1) - 1)).map(|ns| f64::from(*ns) / 1e3)
    };
    let server_cpu = cpu_start.zip(cpu_end).map(|(a, b)| b - a);
    Ok(json!({
        "mode": o.mode, "seconds": o.seconds, "count": count, "per_second": count as f64 / o.seconds,
        "p50_us": percentile(0.5), "p99_us": percentile(0.99), "p999_us": percentile(0.999),
        "server_cpu": server_cpu.map(|s| 100.0 * s / o.seconds),
        "server_us_per_op": server_cpu.map(|s| 1e6 * s / count.max(1) as f64),
    }))
}

fn record_latency(latencies: &RefCell<Vec<u32>>, began: Instant, start: Instant, end: Instant) {
    let now = Instant::now();
    if now >= start && now < end {
        latencies.borrow_mut().push(now.duration_since(began).as_nanos().min(u128::from(u32::MAX)) as u32);
    }
}

// --- the handshake ------------------------------------------------------------------------------

/// Connects and upgrades; the server's permessage-deflate answer (its parameters), checked
/// against `deflate`: `Some(true)` requires one, `Some(false)` requires none.
async fn connect(port: u16, deflate: Option<bool>) -> Result<(TcpStream, Option<String>)> {
    connect_with(port, deflate, None).await
}

async fn connect_with(
    port: u16,
    deflate: Option<bool>,
    receive_buffer: Option<u32>,
) -> Result<(TcpStream, Option<String>)> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    if let Some(bytes) = receive_buffer {
        socket.set_recv_buffer_size(bytes).map_err(|e| e.to_string())?;
    }
    let mut stream =
        socket.connect(([127, 0, 0, 1], port).into()).await.map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let offer = if deflate.is_some() {
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    } else {
        ""
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n",
        path = PATH.get().map_or("/", String::as_str),
    );
    stream.write_all(request.as_bytes()).await.map_err(|e| format!("upgrade: {e}"))?;
    // A slow subscriber may be sent messages right after the 101, so it reads byte by byte; the
    // others read the head whole, and nothing may follow it (the server speaks when spoken to).
    let (mut head, mut chunk) = (Vec::with_capacity(256), [0u8; 512]);
    while !head.ends_with(b"\r\n\r\n") {
        let want = if receive_buffer.is_some() { 1 } else { chunk.len() };
        match stream.read(&mut chunk[..want]).await.map_err(|e| format!("upgrade: {e}"))? {
            0 => return Err("closed during the upgrade".into()),
            n if head.len() + n > 8192 => return Err("no end to the upgrade response".into()),
            n => head.extend_from_slice(&chunk[..n]),
        }
        if head.windows(4).position(|w| w == b"\r\n\r\n").is_some_and(|end| end + 4 != head.len()) {
            return Err("data after the 101 response".into());
        }
    }
    let head = String::from_utf8_lossy(&head);
    if !head.starts_with("HTTP/1.1 101") {
        return Err(format!("not upgraded: {:?}", head.lines().next().unwrap_or("")));
    }
    let header = |name: &str| {
        head.lines().find_map(|l| {
            l.split_once(':')
                .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_owned())
        })
    };
    if header("sec-websocket-accept").as_deref() != Some(ACCEPT) {
        return Err("wrong or missing Sec-WebSocket-Accept".into());
    }
    let answer = header("sec-websocket-extensions");
    match (deflate, &answer) {
        (Some(true), Some(a)) if a.starts_with("permessage-deflate") => Ok((stream, answer)),
        (Some(true), _) => Err(format!("permessage-deflate required, the server answered {answer:?}")),
        (_, None) => Ok((stream, None)),
        (_, Some(a)) => Err(format!("the server answered an extension it was not required to: {a:?}")),
    }
}

fn masked_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![first];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n < 65_536 => frame.extend([0x80 | 126].into_iter().chain((n as u16).to_be_bytes())),
        n => frame.extend([0x80 | 127].into_iter().chain((n as u64).to_be_bytes())),
    }
    frame.extend(MASK);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    frame
}

/// Reads one message (its frames gathered): its first byte and payload.
async fn read_message(stream: &mut TcpStream, payload: &mut Vec<u8>) -> Result<u8> {
    payload.clear();
    let mut first_byte = None;
    loop {
        let mut head = [0u8; 2];
        stream.read_exact(&mut head).await.map_err(|e| format!("reading an echo: {e}"))?;
        let len = match head[1] & 0x7f {
            126 => u64::from(stream.read_u16().await.map_err(|e| e.to_string())?),
            127 => stream.read_u64().await.map_err(|e| e.to_string())?,
            n => u64::from(n),
        };
        if head[1] & 0x80 != 0 || len > 1 << 30 {
            return Err(format!("a masked or oversized frame from the server (header {head:02x?})"));
        }
        let at = payload.len();
        payload.resize(at + len as usize, 0);
        stream.read_exact(&mut payload[at..]).await.map_err(|e| format!("reading an echo: {e}"))?;
        let first = *first_byte.get_or_insert(head[0]);
        if head[0] & 0x80 != 0 {
            return Ok(first);
        }
    }
}

// --- churn --------------------------------------------------------------------------------------

async fn churn(o: &Options) -> Result<Value> {
    let port = o.port;
    measure(o, move |_, start, end, latencies| async move {
        let close = masked_frame(0x88, &1000u16.to_be_bytes());
        while Instant::now() < end {
            let began = Instant::now();
            let (mut stream, _) = connect(port, None).await?;
            record_latency(&latencies, began, start, end);
            stream.write_all(&close).await.map_err(|e| format!("close: {e}"))?;
            let mut payload = Vec::new();
            if read_message(&mut stream, &mut payload).await? & 0x0f != 0x8 {
                return Err("expected the server's Close".into());
            }
            // Then the end of the stream (a reset is an end too).
            let _ = stream.read(&mut [0u8; 64]).await;
        }
        Ok(())
    })
    .await
}

// --- deflate ------------------------------------------------------------------------------------

/// What every connection replays: the server's answer, the messages, and the frames that carry
/// them (compressed, when the answer is a permessage-deflate one).
type Pool = (Option<String>, Vec<Vec<u8>>, Vec<Vec<u8>>);

fn pool(size: usize, answer: Option<String>) -> Result<Pool> {
    // Enough distinct messages that the pool spans 256 KiB: a compressor with a 32 KiB window
    // never sees the same message twice within it.
    let messages = json_messages(size, (256 * 1024 / size.max(1)).clamp(4, 1024));
    let Some(answer) = answer else {
        let frames = messages.iter().map(|m| masked_frame(0x81, m)).collect();
        return Ok((None, messages, frames));
    };
    let param = |name: &str| {
        answer
            .split(';')
            .map(str::trim)
            .find(|p| p.starts_with(name))
            .map(|p| p.split_once('=').map_or("", |(_, v)| v.trim_matches('"')).to_owned())
    };
    let bits = param("client_max_window_bits").and_then(|b| b.parse().ok()).unwrap_or(15u8).clamp(9, 15);
    let reset = param("client_no_context_takeover").is_some();
    let mut compress = Compress::new_with_window_bits(Compression::default(), false, bits);
    let mut frames = Vec::new();
    for message in &messages {
        if reset {
            compress.reset();
        }
        let mut out = Vec::with_capacity(message.len() + 64);
        let before = compress.total_in();
        compress.compress_vec(message, &mut out, FlushCompress::Sync).map_err(|e| e.to_string())?;
        if compress.total_in() - before != message.len() as u64 || !out.ends_with(&TRAILER) {
            return Err("a message did not compress in one call".into());
        }
        out.truncate(out.len() - TRAILER.len());
        frames.push(masked_frame(0xc1, &out));
    }
    Ok((Some(answer), messages, frames))
}

/// Inflates one compressed message into `out` (the trailer added back to `compressed`).
fn inflate(
    decompress: &mut Decompress,
    compressed: &mut Vec<u8>,
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<()> {
    compressed.extend_from_slice(&TRAILER);
    out.clear();
    out.reserve(limit + 64);
    let start = decompress.total_in();
    loop {
        let used = (decompress.total_in() - start) as usize;
        let status = decompress
            .decompress_vec(&compressed[used..], out, FlushDecompress::Sync)
            .map_err(|e| format!("an echo does not inflate: {e}"))?;
        if status == flate2::Status::StreamEnd {
            decompress.reset(false);
            return Ok(());
        }
        if (decompress.total_in() - start) as usize == compressed.len() && out.len() < out.capacity() {
            return Ok(());
        }
        if out.len() > limit {
            return Err("an echo inflates to more than was sent".into());
        }
        out.reserve(4096);
    }
}

/// One connection's replay: sends the pool in order, one message in flight, and checks each echo.
struct Replay {
    stream: TcpStream,
    pool: Rc<Pool>,
    next: usize,
    decompress: Decompress,
    received: Vec<u8>,
    inflated: Vec<u8>,
}

impl Replay {
    /// Opens a connection; the pool is made at the first, and every other must get its answer.
    async fn open(o: &Options, shared: &RefCell<Option<Rc<Pool>>>) -> Result<Self> {
        let (stream, answer) = connect(o.port, o.deflate).await?;
        let pool = match shared.borrow().clone() {
            Some(pool) if pool.0 == answer => pool,
            Some(pool) => return Err(format!("two answers from one server: {:?}, {answer:?}", pool.0)),
            None => Rc::new(pool(o.size, answer)?),
        };
        *shared.borrow_mut() = Some(pool.clone());
        let decompress = Decompress::new_with_window_bits(false, 15);
        Ok(Self { stream, pool, next: 0, decompress, received: Vec::new(), inflated: Vec::new() })
    }

    async fn echo(&mut self) -> Result<()> {
        let (_, messages, frames) = &*self.pool;
        let i = self.next % frames.len();
        self.next += 1;
        self.stream.write_all(&frames[i]).await.map_err(|e| format!("sending: {e}"))?;
        let first = read_message(&mut self.stream, &mut self.received).await?;
        let echoed = if first & 0x40 != 0 {
            inflate(&mut self.decompress, &mut self.received, &mut self.inflated, messages[i].len())?;
            &self.inflated
        } else {
            &self.received
        };
        if first & 0x0f != 0x1 || echoed != &messages[i] {
            return Err(format!(
                "a wrong echo (first byte {first:#04x}, {} bytes for {})",
                echoed.len(),
                messages[i].len()
            ));
        }
        Ok(())
    }
}

async fn deflate(o: &Options) -> Result<Value> {
    let shared = Rc::new(RefCell::new(None));
    let mut replays = Vec::new();
    for _ in 0..o.connections {
        replays.push(Some(Replay::open(o, &shared).await?));
    }
    let replays = Rc::new(RefCell::new(replays));
    let mut record = measure(o, |i, start, end, latencies| {
        let replays = replays.clone();
        async move {
            let mut replay = replays.borrow_mut()[i].take().ok_or("no connection")?;
            while Instant::now() < end {
                let began = Instant::now();
                replay.echo().await?;
                record_latency(&latencies, began, start, end);
            }
            Ok(())
        }
    })
    .await?;
    record["size"] = json!(o.size);
    record["deflate"] =
        json!(shared.borrow().as_ref().and_then(|pool| pool.0.clone()).unwrap_or_else(|| "declined".into()));
    Ok(record)
}

// --- idle and slow ------------------------------------------------------------------------------

async fn idle(o: &Options) -> Result<Value> {
    let pid = o.server_pid.as_deref().ok_or("idle needs --server-pid")?;
    let shared = RefCell::new(None);
    let mut open = Vec::with_capacity(o.connections);
    let mut before = 0;
    // 100 opened and closed first, as a warm-up; then the N kept open.
    for i in 0..100 + o.connections {
        if i == 100 {
            open.clear();
            tokio::time::sleep(Duration::from_millis(200)).await;
            before = rss_kib(pid).ok_or("no VmRSS for the server")?;
        }
        if o.deflate.is_some() {
            let mut replay = Replay::open(o, &shared).await?;
            replay.echo().await?;
            open.push(replay.stream);
        } else {
            open.push(connect(o.port, None).await?.0);
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(pid).ok_or("no VmRSS for the server")?;
    drop(open);
    Ok(json!({
        "mode": "idle", "size": o.deflate.map(|_| o.size), "rss_before_kib": before, "rss_after_kib": after,
        "rss_per_socket_bytes": (after as f64 - before as f64) * 1024.0 / o.connections as f64,
    }))
}

async fn slow(o: &Options) -> Result<Value> {
    let mut open = Vec::new();
    for _ in 0..o.connections {
        // The kernel's smallest receive buffer, more or less: the server's queue, not the
        // kernel's buffers, soon holds what this client does not read.
        open.push(connect_with(o.port, None, Some(4096)).await?);
    }
    eprintln!("ready");
    std::future::pending::<()>().await;
    Ok(Value::Null)
}

// --- JSON text ----------------------------------------------------------------------------------

/// xorshift64*, so that every run sends the same bytes.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

// Symbols, and their base prices in cents.
const SYMBOLS: [&str; 8] = ["BTC-USD", "ETH-USD", "SOL-USD", "ADA-USD", "AAPL", "MSFT", "EUR-USD", "XAU-USD"];
const BASES: [u64; 8] = [4_312_500, 318_725, 14_210, 61, 23_412, 41_890, 108, 263_050];
const WORDS: [&str; 16] = [
    "market", "update", "order", "filled", "partial", "cancel", "price", "level", "book", "depth", "spread",
    "quote", "trade", "stream", "client", "session",
];

/// `count` distinct JSON messages of exactly `size` bytes (a trading feed's: an envelope, then
/// records whose keys repeat and whose values vary), the same on every run. They compress 5–15×.
fn json_messages(size: usize, count: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng(0x5eed_0000_0000_0000 ^ size as u64);
    let mut id = 100_000u64;
    (0..count as u64).map(|seq| json_message(size, seq, &mut id, &mut rng)).collect()
}

fn json_message(size: usize, seq: u64, id: &mut u64, rng: &mut Rng) -> Vec<u8> {
    const TAIL: usize = 13; // `],"note":"`, a letter and `"}`
    let mut out = format!(
        r#"{{"type":"trades","seq":{seq},"sent":"2026-11-29T18:{:02}:{:02}.{:03}Z","items":["#,
        seq / 3600 % 60,
        seq / 60 % 60,
        rng.below(1000)
    );
    if out.len() + TAIL > size {
        return (0..size).map(|i| b'a' + (i % 26) as u8).collect();
    }
    let mut record = String::new();
    loop {
        record.clear();
        let pick = rng.below(8) as usize;
        let (symbol, base) = (SYMBOLS[pick], BASES[pick]);
        let price = base + rng.below(100);
        let user = 4_000 + rng.below(16);
        *id += 1 + rng.below(3);
        let _ = write!(
            record,
            r#"{}{{"id":{id},"symbol":"{symbol}","side":"{}","price":{}.{:02},"qty":{},"venue":"{}","user":{{"id":{user},"name":"user-{user}","tier":"{}"}},"status":"filled"}}"#,
            if out.ends_with('[') { "" } else { "," },
            rng.pick(&["buy", "sell"]),
            price / 100,
            price % 100,
            rng.pick(&["0.25", "0.5", "1", "2", "5", "10"]),
            rng.pick(&["XNAS", "XNYS", "BATS", "ARCX"]),
            rng.pick(&["basic", "gold", "platinum"]),
        );
        if out.len() + record.len() + TAIL > size {
            break;
        }
        out.push_str(&record);
    }
    out.push_str(r#"],"note":""#);
    let mut space = false;
    while out.len() < size - 2 {
        let word = if space { " " } else { rng.pick(&WORDS) };
        out.push_str(&word[..word.len().min(size - 2 - out.len())]);
        space = !space;
    }
    out.push_str("\"}");
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_messages_have_the_size_asked_and_parse() {
        for size in [200, 1024, 65_536] {
            for message in json_messages(size, 4) {
                assert_eq!(message.len(), size);
                serde_json::from_slice::<Value>(&message).expect("JSON");
            }
        }
    }

    #[test]
    fn the_pool_inflates_back_in_order_with_context_takeover() {
        let (_, messages, frames) = pool(1024, Some("permessage-deflate".into())).expect("pool");
        let mut decompress = Decompress::new_with_window_bits(false, 15);
        let mut out = Vec::new();
        for (message, frame) in messages.iter().zip(&frames) {
            assert_eq!(frame[0], 0xc1);
            let offset = if frame[1] & 0x7f == 126 { 8 } else { 6 };
            let mut compressed: Vec<u8> =
                frame[offset..].iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]).collect();
            assert!(compressed.len() < message.len() / 2, "JSON text should compress");
            inflate(&mut decompress, &mut compressed, &mut out, message.len()).expect("inflate");
            assert_eq!(&out, message);
        }
    }

    #[test]
    fn an_echo_longer_than_the_message_is_refused() {
        let (_, messages, _) = pool(4096, None).expect("pool");
        let mut compress = Compress::new_with_window_bits(Compression::default(), false, 15);
        let mut compressed = Vec::with_capacity(8192);
        let doubled = [messages[0].clone(), messages[0].clone()].concat();
        compress.compress_vec(&doubled, &mut compressed, FlushCompress::Sync).expect("deflate");
        compressed.truncate(compressed.len() - 4);
        let mut decompress = Decompress::new_with_window_bits(false, 15);
        assert!(inflate(&mut decompress, &mut compressed, &mut Vec::new(), 4096).is_err());
    }

    #[test]
    fn frames_carry_their_length_and_mask() {
        let frame = masked_frame(0x82, &[0u8; 300]);
        assert_eq!(&frame[..4], &[0x82, 0x80 | 126, 1, 44]);
        assert_eq!(&frame[4..8], &MASK);
        assert_eq!(frame.len(), 8 + 300);
    }
}
