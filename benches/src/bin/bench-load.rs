//! The load generator, after uWebSockets' `benchmarks/load_test.c`: a closed loop over N
//! connections with one message in flight on each, a fixed payload, masked frames prepared once,
//! and echoes counted per second over a timed window after a warm-up.
//!
//! It speaks WebSocket by hand, to stay cheap: a raw HTTP upgrade over a `TcpStream`, then one
//! prepared frame written per message and the echoed frames parsed in place (headers only, and
//! the payload compared during the warm-up). One thread, one `mio` poll loop: pin it to a core
//! of its own with `taskset`.
//!
//! ```text
//! bench-load MODE --port PORT [options]
//! ```
//!
//! Modes:
//!
//! - `echo`: N connections echo a SIZE-byte binary message, one in flight each. Reports echoes
//!   per second, MB/s and round-trip latency percentiles.
//! - `churn`: N slots each connect, upgrade, close (a Close frame, the server's Close, then the
//!   server's end of the TCP stream) and start over. Reports completed handshakes per second.
//! - `idle`: opens N WebSockets and leaves them idle; reports the server's RSS growth per socket
//!   (`VmRSS` from `/proc/PID/status`, before and after). Needs `--server-pid`.
//! - `http`: N keep-alive connections send `GET PATH`, one request in flight each. Reports
//!   responses per second and latency.
//!
//! With `--server-pid`, the server's CPU use over the window comes from `/proc/PID/stat`. The
//! result is one JSON line on stdout; progress goes to stderr.
//!
//! Compression (`--payload json --deflate require`): the messages are JSON text
//! ([`bench_common::json_messages`]), and the upgrade offers `permessage-deflate;
//! client_max_window_bits` (RFC 7692). Once the server accepts, every message goes out compressed
//! (raw deflate, a sync flush, its `00 00 ff ff` removed, RSV1 set) and every echo is inflated and
//! checked. The messages are a fixed pool that every connection sends in the same order, from
//! the first, round and round; the pool is compressed once, up front, by one compressor that
//! keeps its context from message to message (or one reset per message, if the server asks for
//! `client_no_context_takeover`). Replaying those frames is a valid compressed stream for the
//! server's decompressor: a message refers back only to the messages before it in the pool,
//! which the server has just received again in the same order. So the client compresses like a
//! browser and yet costs nothing per message to compress; it inflates what it receives, with
//! one decompressor per connection. `--deflate refused` offers the same and requires the server
//! to decline: the baseline, uncompressed, with the same messages.

use std::{
    io::{self, ErrorKind, Read, Write},
    net::{SocketAddr, TcpStream as StdTcpStream},
    process::ExitCode,
    time::{Duration, Instant},
};

use bench_common::{Record, cpu_percent, cpu_ticks, machine_busy_ticks, rss_kib};
use flate2::{Compress, Decompress, FlushCompress, FlushDecompress};
use mio::{Events, Interest, Poll, Token, net::TcpStream};

const USAGE: &str = "\
usage: bench-load MODE --port PORT [options]

MODE: echo | churn | idle | http

Options:
  --host ADDR          server address [default: 127.0.0.1]
  --port PORT          server port (required)
  --path PATH          request path [default: /ws, or / for http]
  --connections N      concurrent connections [default: 100]
  --size BYTES         echo payload size [default: 20]
  --payload KIND       binary: a fixed byte pattern in Binary messages [default]
                       json: JSON text in Text messages, a pool of distinct messages
  --deflate MODE       offer permessage-deflate (echo, idle); MODE is require (the server
                       must accept: messages go out compressed, echoes are inflated) or
                       refused (the server must decline)
  --exchange           idle: each socket echoes one message before it idles
  --warmup SECS        warm-up before measuring [default: 2]
  --duration SECS      measuring window [default: 5]
  --settle SECS        idle: wait before reading the RSS [default: 1]
  --server-pid PID     read the server's CPU time (and RSS for idle) from /proc
  --scenario LABEL     label for the result record
  --server-name NAME   server name for the result record";

/// The key of every handshake, and the `Sec-WebSocket-Accept` it must get back (RFC 6455's own
/// example).
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

#[derive(Debug, Clone)]
struct Options {
    mode: String,
    addr: SocketAddr,
    path: Option<String>,
    connections: usize,
    size: usize,
    warmup: f64,
    duration: f64,
    settle: f64,
    server_pid: Option<String>,
    scenario: String,
    server_name: String,
    payload: PayloadKind,
    deflate: Option<DeflateMode>,
    exchange: bool,
}

/// What the messages carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PayloadKind {
    /// [`payload`]: a byte pattern, in Binary messages.
    Binary,
    /// [`bench_common::json_messages`]: JSON text, in Text messages.
    Json,
}

/// What the server must answer to our permessage-deflate offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeflateMode {
    Require,
    Refused,
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(options) => options,
        Err(problem) => {
            eprintln!("bench-load: {problem}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match options.mode.as_str() {
        "echo" => echo(&options),
        "churn" => churn(&options),
        "idle" => idle(&options),
        "http" => http(&options),
        _ => unreachable!("checked in parse_args"),
    };
    match result {
        Ok(record) => {
            println!("{}", serde_json::to_string(&record).expect("serializable"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench-load: {} against {}: {e}", options.mode, options.server_name);
            ExitCode::FAILURE
        }
    }
}

fn parse_args() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().ok_or("MODE is required")?;
    if !["echo", "churn", "idle", "http"].contains(&mode.as_str()) {
        return Err(format!("unknown mode {mode:?}"));
    }
    let mut host = "127.0.0.1".to_owned();
    let mut port = None;
    let mut options = Options {
        mode,
        addr: "127.0.0.1:1".parse().expect("valid"),
        path: None,
        connections: 100,
        size: 20,
        warmup: 2.0,
        duration: 5.0,
        settle: 1.0,
        server_pid: None,
        scenario: String::new(),
        server_name: String::new(),
        payload: PayloadKind::Binary,
        deflate: None,
        exchange: false,
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        fn num<T: std::str::FromStr>(arg: &str, v: String) -> Result<T, String> {
            v.parse().map_err(|_| format!("{arg}: bad value {v:?}"))
        }
        match arg.as_str() {
            "--host" => host = value()?,
            "--port" => port = Some(num::<u16>(&arg, value()?)?),
            "--path" => options.path = Some(value()?),
            "--connections" => options.connections = num(&arg, value()?)?,
            "--size" => options.size = num(&arg, value()?)?,
            "--warmup" => options.warmup = num(&arg, value()?)?,
            "--duration" => options.duration = num(&arg, value()?)?,
            "--settle" => options.settle = num(&arg, value()?)?,
            "--server-pid" => options.server_pid = Some(value()?),
            "--scenario" => options.scenario = value()?,
            "--server-name" => options.server_name = value()?,
            "--payload" => {
                options.payload = match value()?.as_str() {
                    "binary" => PayloadKind::Binary,
                    "json" => PayloadKind::Json,
                    other => return Err(format!("--payload: {other:?} is not binary or json")),
                }
            }
            "--deflate" => {
                options.deflate = Some(match value()?.as_str() {
                    "require" => DeflateMode::Require,
                    "refused" => DeflateMode::Refused,
                    other => return Err(format!("--deflate: {other:?} is not require or refused")),
                })
            }
            "--exchange" => options.exchange = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let port = port.ok_or("--port is required")?;
    options.addr = format!("{host}:{port}").parse().map_err(|_| format!("bad host {host:?}"))?;
    if options.connections == 0 {
        return Err("--connections must be at least 1".into());
    }
    if options.duration <= 0.0 {
        return Err("--duration must be above 0".into());
    }
    if options.deflate.is_some() && !["echo", "idle"].contains(&options.mode.as_str()) {
        return Err("--deflate is for the echo and idle modes".into());
    }
    if options.exchange && options.mode != "idle" {
        return Err("--exchange is for the idle mode".into());
    }
    Ok(options)
}

impl Options {
    fn path(&self) -> &str {
        self.path.as_deref().unwrap_or(if self.mode == "http" { "/" } else { "/ws" })
    }

    fn upgrade_request(&self) -> Vec<u8> {
        format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{}\r\n",
            self.path(),
            self.addr,
            if self.deflate.is_some() {
                format!("Sec-WebSocket-Extensions: {DEFLATE_OFFER}\r\n")
            } else {
                String::new()
            },
        )
        .into_bytes()
    }

    fn record(&self) -> Record {
        Record {
            mode: self.mode.clone(),
            scenario: self.scenario.clone(),
            server: self.server_name.clone(),
            connections: self.connections,
            size: if self.mode == "echo" || self.exchange { self.size } else { 0 },
            payload: (self.payload == PayloadKind::Json).then(|| "json".to_owned()),
            ..Record::default()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Frames and handshakes

/// The payload every echo carries: a fixed pattern, so that echoes can be checked.
fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8).collect()
}

/// A masked frame, FIN set, carrying `payload`, ready to write as many times as needed.
fn masked_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    masked_frame_with(0x80 | opcode, payload)
}

/// A masked frame whose first byte (FIN, RSV bits, opcode) is `first`.
fn masked_frame_with(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 14);
    frame.push(first);
    match payload.len() {
        len @ 0..=125 => frame.push(0x80 | len as u8),
        len @ 126..=0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&MASK);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    frame
}

/// Our offer: permessage-deflate, and we accept any window the server wants us to use.
const DEFLATE_OFFER: &str = "permessage-deflate; client_max_window_bits";
/// What a sync flush ends with, removed by the sender and added back by the receiver.
const SYNC_TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// RSV1: the first frame of a compressed message.
const RSV1: u8 = 0x40;

/// The server's permessage-deflate answer (RFC 7692 §7.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct DeflateAnswer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    client_max_window_bits: Option<u8>,
}

impl DeflateAnswer {
    /// Parses the server's `Sec-WebSocket-Extensions` values: exactly one `permessage-deflate`
    /// element, each parameter once, window bits 8 to 15.
    fn parse(values: &[&str]) -> io::Result<Self> {
        let elements: Vec<&str> =
            values.iter().flat_map(|v| v.split(',')).map(str::trim).filter(|e| !e.is_empty()).collect();
        let [element] = elements[..] else {
            return Err(io::Error::other(format!(
                "the server answered {} extensions: {values:?}",
                elements.len()
            )));
        };
        let mut params = element.split(';').map(str::trim);
        if params.next() != Some("permessage-deflate") {
            return Err(io::Error::other(format!(
                "the server answered an extension we did not offer: {element:?}"
            )));
        }
        let mut answer = Self::default();
        let mut seen = Vec::new();
        for param in params {
            let (name, value) = match param.split_once('=') {
                Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
                None => (param, None),
            };
            if seen.contains(&name) {
                return Err(io::Error::other(format!("{name} twice in the answer {element:?}")));
            }
            seen.push(name);
            let bits = || -> io::Result<u8> {
                value
                    .filter(|v| !v.starts_with('0'))
                    .and_then(|v| v.parse().ok())
                    .filter(|bits| (8..=15).contains(bits))
                    .ok_or_else(|| io::Error::other(format!("bad {name} in the answer {element:?}")))
            };
            match (name, value) {
                ("server_no_context_takeover", None) => answer.server_no_context_takeover = true,
                ("client_no_context_takeover", None) => answer.client_no_context_takeover = true,
                ("server_max_window_bits", Some(_)) => answer.server_max_window_bits = Some(bits()?),
                ("client_max_window_bits", Some(_)) => answer.client_max_window_bits = Some(bits()?),
                _ => {
                    return Err(io::Error::other(format!(
                        "bad parameter {param:?} in the answer {element:?}"
                    )));
                }
            }
        }
        Ok(answer)
    }

    /// The answer as the server gave it, normalised, for the result record.
    fn describe(&self) -> String {
        let mut out = "permessage-deflate".to_owned();
        if self.server_no_context_takeover {
            out.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            out.push_str("; client_no_context_takeover");
        }
        if let Some(bits) = self.server_max_window_bits {
            out.push_str(&format!("; server_max_window_bits={bits}"));
        }
        if let Some(bits) = self.client_max_window_bits {
            out.push_str(&format!("; client_max_window_bits={bits}"));
        }
        out
    }
}

/// Checks the server's answer to the upgrade request; the permessage-deflate answer, if any.
/// An extension we did not offer is an error.
fn check_upgrade_response(head: &[u8], offered_deflate: bool) -> io::Result<Option<DeflateAnswer>> {
    let text = String::from_utf8_lossy(head);
    if !text.starts_with("HTTP/1.1 101") {
        let status = text.lines().next().unwrap_or("");
        return Err(io::Error::other(format!("upgrade refused: {status:?}")));
    }
    let header = |wanted: &str| -> Vec<String> {
        text.lines()
            .filter_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.trim().eq_ignore_ascii_case(wanted).then(|| value.trim().to_owned())
            })
            .collect()
    };
    let accept = header("sec-websocket-accept");
    if accept != [ACCEPT] {
        return Err(io::Error::other(format!("wrong Sec-WebSocket-Accept: {accept:?}")));
    }
    let extensions = header("sec-websocket-extensions");
    if extensions.is_empty() {
        return Ok(None);
    }
    if !offered_deflate {
        return Err(io::Error::other(format!("an extension we did not offer: {extensions:?}")));
    }
    DeflateAnswer::parse(&extensions.iter().map(String::as_str).collect::<Vec<_>>()).map(Some)
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Connects and upgrades one connection, blocking, then hands back a non-blocking stream and
/// the permessage-deflate answer, checked against `--deflate`.
fn connect_upgraded(options: &Options, request: &[u8]) -> io::Result<(StdTcpStream, Option<DeflateAnswer>)> {
    let mut stream = StdTcpStream::connect(options.addr)?;
    stream.set_nodelay(true)?;
    stream.write_all(request)?;
    let mut head = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(ErrorKind::UnexpectedEof, "closed during the handshake"));
        }
        head.extend_from_slice(&chunk[..n]);
        if let Some(end) = find_head_end(&head) {
            if end != head.len() {
                return Err(io::Error::other("data after the 101 response"));
            }
            let answer = check_upgrade_response(&head, options.deflate.is_some())?;
            match (options.deflate, answer) {
                (Some(DeflateMode::Require), None) => {
                    return Err(io::Error::other(
                        "the server declined permessage-deflate (--deflate require)",
                    ));
                }
                (Some(DeflateMode::Refused), Some(answer)) => {
                    return Err(io::Error::other(format!(
                        "the server accepted permessage-deflate ({}) (--deflate refused)",
                        answer.describe()
                    )));
                }
                _ => {}
            }
            return Ok((stream, answer));
        }
    }
}

/// What every connection sends: a pool of messages, each with the masked frame that carries it
/// (compressed when permessage-deflate was negotiated), sent in order, round and round.
struct Outgoing {
    messages: Vec<Vec<u8>>,
    frames: Vec<Vec<u8>>,
    text: bool,
    /// The negotiated permessage-deflate, if any.
    deflate: Option<DeflateAnswer>,
}

impl Outgoing {
    /// The pool for `options`, framed for the negotiated `deflate`.
    fn new(options: &Options, deflate: Option<DeflateAnswer>) -> io::Result<Self> {
        let (messages, text) = match options.payload {
            PayloadKind::Binary => (vec![payload(options.size)], false),
            // Enough distinct messages that the pool spans 256 KiB (at least 4): a server's
            // compressor with a 32 KiB window never sees the same message twice within it.
            PayloadKind::Json => {
                let count = (256 * 1024 / options.size.max(1)).clamp(4, 1024);
                (bench_common::json_messages(options.size, count), true)
            }
        };
        let opcode = if text { 0x1 } else { 0x2 };
        let frames = match &deflate {
            None => messages.iter().map(|m| masked_frame(opcode, m)).collect(),
            Some(answer) => compress_pool(&messages, answer)?
                .iter()
                .map(|c| masked_frame_with(0x80 | RSV1 | opcode, c))
                .collect(),
        };
        Ok(Self { messages, frames, text, deflate })
    }

    /// A reader for the echoes of these messages.
    fn reader(&self) -> FrameReader {
        FrameReader::new(self.text, self.deflate.is_some())
    }
}

/// Compresses the pool as a browser would, in order, with one compressor (zlib's default
/// level 6) that keeps its context from message to message, unless the server asked for
/// `client_no_context_takeover`, within the window the server allowed (zlib-rs's raw deflate
/// needs at least 9 bits: a server's 8 gets 9, whose distances stay within 250 bytes). Each
/// message ends with a sync flush, its `00 00 ff ff` removed.
fn compress_pool(messages: &[Vec<u8>], answer: &DeflateAnswer) -> io::Result<Vec<Vec<u8>>> {
    let bits = answer.client_max_window_bits.unwrap_or(15).clamp(9, 15);
    let mut compress = Compress::new_with_window_bits(flate2::Compression::default(), false, bits);
    let mut pool = Vec::with_capacity(messages.len());
    for message in messages {
        if answer.client_no_context_takeover {
            compress.reset();
        }
        let start = compress.total_in();
        let mut out = Vec::with_capacity(message.len() / 2 + 64);
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(1024));
            }
            let consumed = (compress.total_in() - start) as usize;
            compress
                .compress_vec(&message[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| io::Error::other(format!("deflate: {e}")))?;
            if (compress.total_in() - start) as usize == message.len() && out.len() < out.capacity() {
                break;
            }
        }
        if !out.ends_with(&SYNC_TRAILER) {
            return Err(io::Error::other("a sync flush that does not end with 00 00 ff ff"));
        }
        out.truncate(out.len() - SYNC_TRAILER.len());
        pool.push(out);
    }
    Ok(pool)
}

/// The receiving side of permessage-deflate: one decompressor per connection, kept from message
/// to message (the server's context takeover), and the compressed payload of the current
/// message.
struct Inflater {
    decompress: Decompress,
    compressed: Vec<u8>,
    out: Vec<u8>,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater").field("compressed", &self.compressed.len()).finish_non_exhaustive()
    }
}

impl Inflater {
    fn new() -> Self {
        Self {
            decompress: Decompress::new_with_window_bits(false, 15),
            compressed: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Inflates the message gathered in `compressed` (the trailer added back). More than `limit`
    /// bytes is an error, found without inflating much beyond it.
    fn inflate(&mut self, limit: usize) -> io::Result<&[u8]> {
        self.compressed.extend_from_slice(&SYNC_TRAILER);
        self.out.clear();
        self.out.reserve(limit + 1);
        let start = self.decompress.total_in();
        let mut ended = false;
        loop {
            let consumed = (self.decompress.total_in() - start) as usize;
            let before = (consumed, self.out.len());
            let status = self
                .decompress
                .decompress_vec(&self.compressed[consumed..], &mut self.out, FlushDecompress::Sync)
                .map_err(|e| io::Error::other(format!("the echo does not inflate: {e}")))?;
            let consumed = (self.decompress.total_in() - start) as usize;
            if self.out.len() > limit {
                return Err(io::Error::other(format!(
                    "the echo inflates to more than the {limit} bytes sent"
                )));
            }
            if status == flate2::Status::StreamEnd {
                // A final block (BFINAL): the sender starts a new deflate stream next time.
                ended = true;
                break;
            }
            if consumed == self.compressed.len() {
                break;
            }
            if (consumed, self.out.len()) == before {
                if self.out.len() == self.out.capacity() {
                    self.out.reserve(1);
                    continue;
                }
                return Err(io::Error::other("the echo's deflate data makes no progress"));
            }
        }
        self.compressed.clear();
        if ended {
            self.decompress.reset(false);
        }
        Ok(&self.out)
    }
}

/// Reads the server's frames in place: headers are parsed, payloads skipped (or compared), or,
/// for compressed messages, gathered and inflated.
#[derive(Debug, Default)]
struct FrameReader {
    header: [u8; 14],
    header_len: usize,
    /// Payload bytes of the current frame still to come; `None` while reading a header.
    payload_left: Option<u64>,
    /// The current frame is a data frame (Binary or Continuation), not a control frame.
    data: bool,
    fin: bool,
    /// A fragmented message has started and not ended.
    in_message: bool,
    /// Payload bytes of the current message so far.
    message_len: u64,
    /// Data messages are Text (opcode 0x1), not Binary (0x2, the default).
    text: bool,
    /// permessage-deflate was negotiated: a message may come compressed.
    inflater: Option<Inflater>,
    /// The current message is compressed (RSV1 on its first frame).
    compressed: bool,
    /// Bytes on the wire of the current message's frames, headers included.
    wire_len: u64,
    /// The same, for the last complete message.
    last_wire_len: u64,
}

enum Parsed {
    /// Consumed this many bytes; the message is not complete yet.
    More,
    /// Consumed this many bytes and completed a message of `message_len` bytes.
    Message(usize),
}

impl FrameReader {
    fn new(text: bool, deflate: bool) -> Self {
        Self { text, inflater: deflate.then(Inflater::new), ..Self::default() }
    }

    /// Consumes bytes from `input` up to the end of one message. `expected` is the payload the
    /// message must carry; it is compared when `compare` is set.
    fn feed(&mut self, input: &[u8], expected: &[u8], compare: bool) -> io::Result<Parsed> {
        let mut at = 0;
        let data_opcode = if self.text { 0x1 } else { 0x2 };
        while at < input.len() {
            match self.payload_left {
                None => {
                    self.header[self.header_len] = input[at];
                    self.header_len += 1;
                    at += 1;
                    if let Some((len, header_len)) = self.header_complete()? {
                        debug_assert_eq!(header_len, self.header_len);
                        let opcode = self.header[0] & 0x0f;
                        let rsv = self.header[0] & 0x70;
                        self.fin = self.header[0] & 0x80 != 0;
                        if rsv & !RSV1 != 0 {
                            return Err(io::Error::other("the server set RSV2 or RSV3"));
                        }
                        let first_data = opcode == data_opcode && !self.in_message;
                        if rsv != 0 && (self.inflater.is_none() || !first_data) {
                            return Err(io::Error::other(if self.inflater.is_none() {
                                "RSV1 without permessage-deflate"
                            } else {
                                "RSV1 on a continuation or control frame"
                            }));
                        }
                        match opcode {
                            _ if first_data => {
                                self.data = true;
                                self.in_message = true;
                                self.compressed = rsv != 0;
                            }
                            0x0 if self.in_message => self.data = true,
                            0x9 | 0xa => self.data = false,
                            0x8 => return Err(io::Error::other("the server sent a Close")),
                            other => {
                                return Err(io::Error::other(format!("unexpected opcode {other:#x}")));
                            }
                        }
                        if self.data {
                            self.wire_len += header_len as u64 + len;
                        }
                        self.header_len = 0;
                        self.payload_left = Some(len);
                        if len == 0 {
                            if let Some(done) = self.frame_done(expected, compare)? {
                                return Ok(Parsed::Message(at + done));
                            }
                        }
                    }
                }
                Some(left) => {
                    let take = (left as usize).min(input.len() - at);
                    if self.data && self.compressed {
                        let inflater = self.inflater.as_mut().expect("compressed only with an inflater");
                        // A compressed echo may be a little longer than the message (stored
                        // blocks), never twice as long.
                        if inflater.compressed.len() + take > 2 * expected.len() + 1024 {
                            return Err(io::Error::other(
                                "a compressed echo far longer than the message sent",
                            ));
                        }
                        inflater.compressed.extend_from_slice(&input[at..at + take]);
                        self.message_len += take as u64;
                    } else if self.data {
                        let offset = self.message_len as usize;
                        if offset + take > expected.len() {
                            return Err(io::Error::other(format!(
                                "echo longer than the {} bytes sent",
                                expected.len()
                            )));
                        }
                        if compare && input[at..at + take] != expected[offset..offset + take] {
                            return Err(io::Error::other("echoed payload differs from the one sent"));
                        }
                        self.message_len += take as u64;
                    }
                    at += take;
                    self.payload_left = Some(left - take as u64);
                    if left == take as u64 {
                        if let Some(done) = self.frame_done(expected, compare)? {
                            return Ok(Parsed::Message(at + done));
                        }
                    }
                }
            }
        }
        Ok(Parsed::More)
    }

    /// A frame ended: `Some(0)` when it completed a message (checked against `expected`).
    fn frame_done(&mut self, expected: &[u8], compare: bool) -> io::Result<Option<usize>> {
        self.payload_left = None;
        if !self.data || !self.fin {
            return Ok(None);
        }
        let len = std::mem::take(&mut self.message_len);
        self.data = false;
        self.in_message = false;
        self.last_wire_len = std::mem::take(&mut self.wire_len);
        if std::mem::take(&mut self.compressed) {
            let inflater = self.inflater.as_mut().expect("compressed only with an inflater");
            let inflated = inflater.inflate(expected.len())?;
            if inflated.len() != expected.len() {
                return Err(io::Error::other(format!(
                    "echo inflates to {} bytes; {} were sent",
                    inflated.len(),
                    expected.len()
                )));
            }
            if compare && inflated != expected {
                return Err(io::Error::other("inflated echo differs from the message sent"));
            }
            return Ok(Some(0));
        }
        if len != expected.len() as u64 {
            return Err(io::Error::other(format!("echo of {len} bytes; {} were sent", expected.len())));
        }
        Ok(Some(0))
    }

    /// `Some((payload length, header length))` once the header is complete.
    fn header_complete(&self) -> io::Result<Option<(u64, usize)>> {
        if self.header_len < 2 {
            return Ok(None);
        }
        if self.header[1] & 0x80 != 0 {
            return Err(io::Error::other("the server sent a masked frame"));
        }
        let (len, need) = match self.header[1] & 0x7f {
            126 => (None, 4),
            127 => (None, 10),
            len => (Some(u64::from(len)), 2),
        };
        if self.header_len < need {
            return Ok(None);
        }
        let len = len.unwrap_or_else(|| {
            if need == 4 {
                u64::from(u16::from_be_bytes([self.header[2], self.header[3]]))
            } else {
                u64::from_be_bytes(self.header[2..10].try_into().expect("8 bytes"))
            }
        });
        Ok(Some((len, need)))
    }
}

// ---------------------------------------------------------------------------------------------
// Timing

/// Warm-up, then a measuring window cut into one-second slices; reads CPU times at both ends.
struct Clock {
    start: Instant,
    measure_from: Instant,
    measure_until: Instant,
    next_slice: Instant,
    slice_count: u64,
    slices: Vec<f64>,
    duration: Duration,
    /// The measured window's real length, once it is over.
    measured: f64,
    measuring: bool,
    done: bool,
    server_pid: Option<String>,
    server_ticks: Option<u64>,
    client_ticks: u64,
    machine_ticks: Option<u64>,
    server_cpu: Option<f64>,
    client_cpu: f64,
    other_cpu: Option<f64>,
}

impl Clock {
    fn new(options: &Options) -> Self {
        let start = Instant::now();
        let measure_from = start + Duration::from_secs_f64(options.warmup);
        let duration = Duration::from_secs_f64(options.duration);
        Self {
            start,
            measure_from,
            measure_until: measure_from + duration,
            duration,
            measured: 0.0,
            next_slice: measure_from + Duration::from_secs(1),
            slice_count: 0,
            slices: Vec::new(),
            measuring: false,
            done: false,
            server_pid: options.server_pid.clone(),
            server_ticks: None,
            client_ticks: 0,
            machine_ticks: None,
            server_cpu: None,
            client_cpu: 0.0,
            other_cpu: None,
        }
    }

    /// How long the poll may sleep.
    fn timeout(&self, now: Instant) -> Duration {
        let next = if !self.measuring { self.measure_from } else { self.next_slice.min(self.measure_until) };
        next.saturating_duration_since(now)
    }

    /// Moves the phases on; `count` is the number of operations counted since the window opened.
    /// Returns true when the window just opened (the caller resets its counters).
    fn tick(&mut self, now: Instant, count: u64) -> bool {
        if !self.measuring {
            if now >= self.measure_from {
                self.measuring = true;
                self.measure_from = now;
                self.measure_until = now + self.duration;
                self.next_slice = now + Duration::from_secs(1);
                self.server_ticks = self.server_pid.as_deref().and_then(|pid| cpu_ticks(pid).ok());
                self.client_ticks = cpu_ticks("self").unwrap_or(0);
                self.machine_ticks = machine_busy_ticks().ok();
                return true;
            }
            return false;
        }
        if now >= self.next_slice && self.next_slice <= self.measure_until {
            self.slices.push((count - self.slice_count) as f64);
            self.slice_count = count;
            self.next_slice += Duration::from_secs(1);
        }
        if now >= self.measure_until && !self.done {
            self.done = true;
            let seconds = now.duration_since(self.measure_from).as_secs_f64();
            self.measured = seconds;
            if let (Some(pid), Some(before)) = (self.server_pid.as_deref(), self.server_ticks) {
                if let Ok(after) = cpu_ticks(pid) {
                    self.server_cpu = Some(cpu_percent(after.saturating_sub(before), seconds));
                }
            }
            let after = cpu_ticks("self").unwrap_or(0);
            self.client_cpu = cpu_percent(after.saturating_sub(self.client_ticks), seconds);
            if let (Some(before), Ok(after)) = (self.machine_ticks, machine_busy_ticks()) {
                let all = cpu_percent(after.saturating_sub(before), seconds);
                self.other_cpu = Some((all - self.client_cpu - self.server_cpu.unwrap_or(0.0)).max(0.0));
            }
        }
        false
    }

    fn finish(self, record: &mut Record, count: u64, mut latencies: Vec<u32>) {
        let seconds = self.measured;
        record.seconds = seconds;
        record.count = count;
        record.per_second = count as f64 / seconds;
        record.slices = self.slices;
        record.server_cpu = self.server_cpu;
        if count > 0 {
            record.server_us_per_op = self.server_cpu.map(|cpu| cpu / 100.0 * seconds * 1e6 / count as f64);
        }
        record.client_cpu = self.client_cpu;
        record.other_cpu = self.other_cpu;
        if !latencies.is_empty() {
            latencies.sort_unstable();
            let at = |q: f64| {
                let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
                f64::from(latencies[i]) / 1000.0
            };
            record.p50_us = at(0.50);
            record.p99_us = at(0.99);
            record.p999_us = at(0.999);
        }
        let _ = self.start;
    }
}

fn ns_since(then: Instant, now: Instant) -> u32 {
    u32::try_from(now.duration_since(then).as_nanos()).unwrap_or(u32::MAX)
}

/// Reads until `WouldBlock` would come, into `buf`; `Ok(0)` is the end of the stream.
fn read_some(stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        match stream.read(buf) {
            Ok(n) => return Ok(Some(n)),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Writes from `data[*offset..]` until done or `WouldBlock`; true when all is written.
fn write_some(stream: &mut TcpStream, data: &[u8], offset: &mut usize) -> io::Result<bool> {
    while *offset < data.len() {
        match stream.write(&data[*offset..]) {
            Ok(0) => return Err(io::Error::new(ErrorKind::WriteZero, "connection closed")),
            Ok(n) => *offset += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

// ---------------------------------------------------------------------------------------------
// echo

struct EchoConn {
    stream: TcpStream,
    /// The message in flight: an index into the pool.
    next: usize,
    /// How much of its frame has been written; the frame's length when it all has.
    written: usize,
    reader: FrameReader,
    sent_at: Instant,
}

/// Opens the connections and agrees on what they send: every connection must get the same
/// permessage-deflate answer.
fn open_connections(options: &Options, poll: &Poll) -> io::Result<(Vec<EchoConn>, Outgoing)> {
    let request = options.upgrade_request();
    let mut conns = Vec::with_capacity(options.connections);
    let mut outgoing: Option<Outgoing> = None;
    for i in 0..options.connections {
        let (stream, answer) = connect_upgraded(options, &request)?;
        let outgoing = match &outgoing {
            Some(outgoing) if outgoing.deflate != answer => {
                return Err(io::Error::other(format!(
                    "connection {i} got another permessage-deflate answer: {answer:?}, not {:?}",
                    outgoing.deflate
                )));
            }
            Some(outgoing) => outgoing,
            None => outgoing.insert(Outgoing::new(options, answer)?),
        };
        stream.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(stream);
        poll.registry().register(&mut stream, Token(i), Interest::READABLE | Interest::WRITABLE)?;
        conns.push(EchoConn {
            stream,
            next: 0,
            written: 0,
            reader: outgoing.reader(),
            sent_at: Instant::now(),
        });
    }
    let outgoing = outgoing.ok_or_else(|| io::Error::other("no connection"))?;
    Ok((conns, outgoing))
}

fn echo(options: &Options) -> io::Result<Record> {
    let mut poll = Poll::new()?;
    let (mut conns, outgoing) = open_connections(options, &poll)?;
    let Outgoing { messages, frames, .. } = &outgoing;
    eprintln!(
        "bench-load: {} connections upgraded on {}; {} B messages{}",
        options.connections,
        options.server_name,
        options.size,
        match &outgoing.deflate {
            Some(answer) => {
                let wire: usize = frames.iter().map(Vec::len).sum();
                let sent: usize = messages.iter().map(Vec::len).sum();
                format!(
                    ", {} ({:.1}× smaller on the wire, client to server)",
                    answer.describe(),
                    sent as f64 / wire as f64
                )
            }
            None if options.deflate.is_some() => ", permessage-deflate declined".to_owned(),
            None => String::new(),
        }
    );

    let mut clock = Clock::new(options);
    let mut count: u64 = 0;
    let (mut wire_up, mut wire_down) = (0u64, 0u64);
    let mut latencies: Vec<u32> = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut events = Events::with_capacity(1024);

    // Start: one message in flight on every connection.
    for conn in &mut conns {
        conn.sent_at = Instant::now();
        write_some(&mut conn.stream, &frames[0], &mut conn.written)?;
    }

    while !clock.done {
        let now = Instant::now();
        poll.poll(&mut events, Some(clock.timeout(now)))?;
        let now = Instant::now();
        let compare = !clock.measuring;
        for event in &events {
            let conn = &mut conns[event.token().0];
            let frame = &frames[conn.next];
            if conn.written < frame.len() && event.is_writable() {
                write_some(&mut conn.stream, frame, &mut conn.written)?;
            }
            if !event.is_readable() && !event.is_read_closed() {
                continue;
            }
            // Read until the echo is complete or the socket is drained.
            while let Some(n) = read_some(&mut conn.stream, &mut buf)? {
                if n == 0 {
                    return Err(io::Error::new(ErrorKind::UnexpectedEof, "the server closed the connection"));
                }
                let Parsed::Message(used) = conn.reader.feed(&buf[..n], &messages[conn.next], compare)?
                else {
                    continue;
                };
                if used < n {
                    return Err(io::Error::other("data after the echo"));
                }
                if conn.written < frame.len() {
                    return Err(io::Error::other("echo complete before the message was sent"));
                }
                if clock.measuring {
                    count += 1;
                    latencies.push(ns_since(conn.sent_at, now));
                    wire_up += frame.len() as u64;
                    wire_down += conn.reader.last_wire_len;
                }
                // Next message. With one in flight, nothing else is coming: no need to read on
                // until WouldBlock (epoll is edge-triggered, and the next echo's arrival is a
                // new edge).
                conn.next = (conn.next + 1) % frames.len();
                conn.written = 0;
                conn.sent_at = Instant::now();
                write_some(&mut conn.stream, &frames[conn.next], &mut conn.written)?;
                break;
            }
        }
        if clock.tick(Instant::now(), count) {
            count = 0;
            (wire_up, wire_down) = (0, 0);
            latencies.clear();
            latencies.reserve(1 << 20);
        }
    }
    let mut record = options.record();
    clock.finish(&mut record, count, latencies);
    record.mb_per_second = record.per_second * options.size as f64 / 1e6;
    if count > 0 {
        record.wire_up_bytes = Some(wire_up as f64 / count as f64);
        record.wire_down_bytes = Some(wire_down as f64 / count as f64);
    }
    record.deflate =
        options.deflate.map(|_| outgoing.deflate.map_or("declined".to_owned(), |a| a.describe()));
    Ok(record)
}

// ---------------------------------------------------------------------------------------------
// http

struct HttpConn {
    stream: TcpStream,
    written: usize,
    head: Vec<u8>,
    /// Body bytes still to come once the head is read.
    body_left: Option<usize>,
    sent_at: Instant,
}

fn http(options: &Options) -> io::Result<Record> {
    let request = format!("GET {} HTTP/1.1\r\nHost: {}\r\n\r\n", options.path(), options.addr).into_bytes();
    let mut poll = Poll::new()?;
    let mut conns = Vec::with_capacity(options.connections);
    for i in 0..options.connections {
        let stream = StdTcpStream::connect(options.addr)?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(stream);
        poll.registry().register(&mut stream, Token(i), Interest::READABLE | Interest::WRITABLE)?;
        conns.push(HttpConn {
            stream,
            written: 0,
            head: Vec::with_capacity(512),
            body_left: None,
            sent_at: Instant::now(),
        });
    }
    let mut clock = Clock::new(options);
    let mut count: u64 = 0;
    let mut latencies: Vec<u32> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut events = Events::with_capacity(1024);
    for conn in &mut conns {
        conn.sent_at = Instant::now();
        write_some(&mut conn.stream, &request, &mut conn.written)?;
    }
    while !clock.done {
        poll.poll(&mut events, Some(clock.timeout(Instant::now())))?;
        let now = Instant::now();
        for event in &events {
            let conn = &mut conns[event.token().0];
            if conn.written < request.len() && event.is_writable() {
                write_some(&mut conn.stream, &request, &mut conn.written)?;
            }
            'read: while let Some(n) = read_some(&mut conn.stream, &mut buf)? {
                if n == 0 {
                    return Err(io::Error::new(ErrorKind::UnexpectedEof, "the server closed the connection"));
                }
                let mut data = &buf[..n];
                while !data.is_empty() {
                    match conn.body_left {
                        None => {
                            let before = conn.head.len();
                            conn.head.extend_from_slice(data);
                            let Some(end) = find_head_end(&conn.head) else { break };
                            let head = &conn.head[..end];
                            if !head.starts_with(b"HTTP/1.1 200") {
                                let line = String::from_utf8_lossy(
                                    head.split(|&b| b == b'\r').next().unwrap_or(b""),
                                )
                                .into_owned();
                                return Err(io::Error::other(format!("HTTP status {line:?}")));
                            }
                            let len = content_length(head)
                                .ok_or_else(|| io::Error::other("response without Content-Length"))?;
                            data = &data[end - before..];
                            conn.head.clear();
                            conn.body_left = Some(len);
                        }
                        Some(left) => {
                            let take = left.min(data.len());
                            data = &data[take..];
                            conn.body_left = Some(left - take);
                        }
                    }
                    if conn.body_left == Some(0) {
                        conn.body_left = None;
                        if !data.is_empty() {
                            return Err(io::Error::other("data after the response"));
                        }
                        if clock.measuring {
                            count += 1;
                            latencies.push(ns_since(conn.sent_at, now));
                        }
                        conn.written = 0;
                        conn.sent_at = Instant::now();
                        write_some(&mut conn.stream, &request, &mut conn.written)?;
                        break 'read;
                    }
                }
            }
        }
        if clock.tick(Instant::now(), count) {
            count = 0;
            latencies.clear();
            latencies.reserve(1 << 20);
        }
    }
    let mut record = options.record();
    clock.finish(&mut record, count, latencies);
    Ok(record)
}

fn content_length(head: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(head).ok()?;
    text.split("\r\n").find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if name.trim().eq_ignore_ascii_case("content-length") { value.trim().parse().ok() } else { None }
    })
}

// ---------------------------------------------------------------------------------------------
// churn

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChurnState {
    AwaitingResponse,
    SendingClose,
    AwaitingClose,
    /// The server's Close came; waiting for the end of the TCP stream.
    AwaitingEnd,
}

struct ChurnSlot {
    stream: TcpStream,
    /// Bumped on each new connection, and part of the poll token, so that events of the
    /// previous connection in the same batch are told apart.
    generation: u64,
    state: ChurnState,
    written: usize,
    head: Vec<u8>,
    reader: Vec<u8>,
    started: Instant,
}

/// Opens a connection for the churn and sends the upgrade request: a blocking `connect` (on
/// loopback the TCP handshake completes within the call, and it saves the poll round and the
/// `SO_ERROR`/`getpeername` checks of a non-blocking one), then the request, written at once.
/// The fewer system calls here, the more of the machine's second core is left to drive the
/// server.
fn churn_connect(options: &Options, request: &[u8]) -> io::Result<TcpStream> {
    let stream = StdTcpStream::connect(options.addr)?;
    stream.set_nonblocking(true)?;
    let mut stream = TcpStream::from_std(stream);
    let mut written = 0;
    if !write_some(&mut stream, request, &mut written)? {
        return Err(io::Error::other("the upgrade request did not fit in the socket buffer"));
    }
    Ok(stream)
}

fn churn(options: &Options) -> io::Result<Record> {
    let request = options.upgrade_request();
    // A masked Close with status 1000.
    let close = masked_frame(0x8, &1000u16.to_be_bytes());
    let mut poll = Poll::new()?;
    let token = |slot: usize, generation: u64| Token(((generation as usize) << 24) | slot);
    let mut slots = Vec::with_capacity(options.connections);
    for i in 0..options.connections {
        let mut stream = churn_connect(options, &request)?;
        poll.registry().register(&mut stream, token(i, 0), Interest::READABLE)?;
        slots.push(ChurnSlot {
            stream,
            generation: 0,
            state: ChurnState::AwaitingResponse,
            written: 0,
            head: Vec::with_capacity(512),
            reader: Vec::with_capacity(16),
            started: Instant::now(),
        });
    }
    let mut clock = Clock::new(options);
    let mut count: u64 = 0;
    let mut resets: u64 = 0;
    let mut latencies: Vec<u32> = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut events = Events::with_capacity(1024);
    let mut last_progress = Instant::now();
    let mut done_total: u64 = 0;
    let mut last_total = 0;
    while !clock.done {
        poll.poll(&mut events, Some(clock.timeout(Instant::now()).min(Duration::from_millis(500))))?;
        for event in &events {
            let slot_index = event.token().0 & 0xff_ffff;
            let slot = &mut slots[slot_index];
            if event.token() != token(slot_index, slot.generation) {
                continue; // an event of the previous connection in this slot
            }
            let finished = churn_step(slot, &close, &mut buf)
                .map_err(|e| io::Error::new(e.kind(), format!("{:?}: {e}", slot.state)))?;
            if let Some(reset) = finished {
                done_total += 1;
                let now = Instant::now();
                if clock.measuring {
                    count += 1;
                    resets += u64::from(reset);
                    latencies.push(ns_since(slot.started, now));
                }
                // Closing the socket takes it out of the poll set too.
                slot.generation += 1;
                slot.stream = churn_connect(options, &request)?;
                slot.state = ChurnState::AwaitingResponse;
                slot.written = 0;
                slot.head.clear();
                slot.reader.clear();
                slot.started = now;
                poll.registry().register(
                    &mut slot.stream,
                    token(slot_index, slot.generation),
                    Interest::READABLE,
                )?;
            }
        }
        let now = Instant::now();
        if done_total != last_total {
            last_total = done_total;
            last_progress = now;
        } else if now.duration_since(last_progress) > Duration::from_secs(5) {
            return Err(io::Error::other("no handshake completed in 5 s"));
        }
        if clock.tick(now, count) {
            count = 0;
            resets = 0;
            latencies.clear();
        }
    }
    if resets > 0 {
        eprintln!("bench-load: churn: {resets} connections ended with a reset instead of a clean end");
    }
    let mut record = options.record();
    clock.finish(&mut record, count, latencies);
    Ok(record)
}

/// Moves one churn connection on. `Some(reset)` once the connection is over.
fn churn_step(slot: &mut ChurnSlot, close: &[u8], buf: &mut [u8]) -> io::Result<Option<bool>> {
    loop {
        match slot.state {
            ChurnState::AwaitingResponse => {
                let Some(n) = read_some(&mut slot.stream, buf)? else { return Ok(None) };
                if n == 0 {
                    return Err(io::Error::new(ErrorKind::UnexpectedEof, "closed during the handshake"));
                }
                slot.head.extend_from_slice(&buf[..n]);
                if let Some(end) = find_head_end(&slot.head) {
                    check_upgrade_response(&slot.head[..end], false)?;
                    if end != slot.head.len() {
                        return Err(io::Error::other("data after the 101 response"));
                    }
                    slot.state = ChurnState::SendingClose;
                }
            }
            ChurnState::SendingClose => {
                if !write_some(&mut slot.stream, close, &mut slot.written)? {
                    return Err(io::Error::other("a 8-byte Close frame did not fit in the socket buffer"));
                }
                slot.state = ChurnState::AwaitingClose;
            }
            ChurnState::AwaitingClose | ChurnState::AwaitingEnd => {
                let n = match read_some(&mut slot.stream, buf) {
                    Ok(Some(n)) => n,
                    Ok(None) => return Ok(None),
                    Err(e)
                        if slot.state == ChurnState::AwaitingEnd
                            && e.kind() == ErrorKind::ConnectionReset =>
                    {
                        return Ok(Some(true));
                    }
                    Err(e) => return Err(e),
                };
                if n == 0 {
                    if slot.state == ChurnState::AwaitingClose {
                        return Err(io::Error::new(ErrorKind::UnexpectedEof, "closed without a Close frame"));
                    }
                    return Ok(Some(false));
                }
                if slot.state == ChurnState::AwaitingClose {
                    slot.reader.extend_from_slice(&buf[..n]);
                    if slot.reader.len() >= 2 {
                        if slot.reader[0] & 0x0f != 0x8 {
                            return Err(io::Error::other(format!(
                                "expected a Close frame, got opcode {:#x}",
                                slot.reader[0] & 0x0f
                            )));
                        }
                        let len = 2 + usize::from(slot.reader[1] & 0x7f);
                        if slot.reader.len() >= len {
                            slot.state = ChurnState::AwaitingEnd;
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// idle

fn idle(options: &Options) -> io::Result<Record> {
    let pid = options.server_pid.as_deref().ok_or_else(|| io::Error::other("idle needs --server-pid"))?;
    let request = options.upgrade_request();
    let mut outgoing = None;
    // Warm-up: a few sockets opened and closed, so that one-time allocations are not counted.
    let warm = options.connections.min(100);
    let mut warm_sockets = Vec::with_capacity(warm);
    for _ in 0..warm {
        warm_sockets.push(open_idle(options, &request, &mut outgoing)?);
    }
    let close = masked_frame(0x8, &1000u16.to_be_bytes());
    for mut socket in warm_sockets {
        socket.write_all(&close)?;
        let mut sink = Vec::new();
        let _ = socket.read_to_end(&mut sink);
    }
    std::thread::sleep(Duration::from_secs_f64(options.settle));
    let before = rss_kib(pid)?;
    let started = Instant::now();
    let mut sockets = Vec::with_capacity(options.connections);
    for i in 0..options.connections {
        match open_idle(options, &request, &mut outgoing) {
            Ok(socket) => sockets.push(socket),
            Err(e) => return Err(io::Error::new(e.kind(), format!("socket {i}: {e}"))),
        }
    }
    let opened = started.elapsed();
    std::thread::sleep(Duration::from_secs_f64(options.settle));
    let after = rss_kib(pid)?;
    // Are they all still open? A closed one would read 0 bytes; an open idle one would block, or
    // hold a Ping: a server may ping a silent socket (uWebSockets' EchoServer does after 4–8 s),
    // and that socket is still open.
    for socket in &sockets {
        socket.set_nonblocking(true)?;
        let mut byte = [0u8; 1];
        let read = (&*socket).read(&mut byte);
        if !still_open(&read, byte[0]) {
            return Err(io::Error::other(format!(
                "an idle socket was not idle: {read:?}, first byte {:#04x}",
                byte[0]
            )));
        }
    }
    let deflate = options.deflate.map(|_| match outgoing.as_ref().and_then(|o| o.deflate) {
        Some(answer) => answer.describe(),
        None => "declined".to_owned(),
    });
    eprintln!(
        "bench-load: {} idle WebSockets opened in {:.2} s on {}{}{}; VmRSS {before} -> {after} KiB",
        sockets.len(),
        opened.as_secs_f64(),
        options.server_name,
        if options.exchange { format!(", each after a {} B echo", options.size) } else { String::new() },
        deflate.as_ref().map_or(String::new(), |d| format!(", {d}")),
    );
    let mut record = options.record();
    record.seconds = opened.as_secs_f64();
    record.count = sockets.len() as u64;
    record.per_second = sockets.len() as f64 / opened.as_secs_f64();
    record.rss_before_kib = Some(before);
    record.rss_after_kib = Some(after);
    record.rss_per_socket_bytes = Some((after as f64 - before as f64) * 1024.0 / sockets.len() as f64);
    record.deflate = deflate;
    Ok(record)
}

/// Opens one socket for the idle mode, blocking; with `--exchange`, echoes one message on it
/// first (the first of the pool, compressed when permessage-deflate was negotiated), so that
/// the server has made whatever state a socket that has talked keeps.
fn open_idle(options: &Options, request: &[u8], outgoing: &mut Option<Outgoing>) -> io::Result<StdTcpStream> {
    let (mut socket, answer) = connect_upgraded(options, request)?;
    if !options.exchange {
        return Ok(socket);
    }
    let outgoing = match outgoing {
        Some(outgoing) if outgoing.deflate != answer => {
            return Err(io::Error::other(format!(
                "another permessage-deflate answer: {answer:?}, not {:?}",
                outgoing.deflate
            )));
        }
        Some(outgoing) => outgoing,
        None => outgoing.insert(Outgoing::new(options, answer)?),
    };
    socket.write_all(&outgoing.frames[0])?;
    socket.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = outgoing.reader();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = socket.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::new(ErrorKind::UnexpectedEof, "closed before the echo"));
        }
        if let Parsed::Message(used) = reader.feed(&buf[..n], &outgoing.messages[0], true)? {
            if used < n {
                return Err(io::Error::other("data after the echo"));
            }
            socket.set_read_timeout(None)?;
            return Ok(socket);
        }
    }
}

/// Whether a non-blocking one-byte read of an idle WebSocket shows it still open: nothing to
/// read, or the first byte of a Ping frame (FIN + opcode 0x9).
fn still_open(read: &io::Result<usize>, first: u8) -> bool {
    match read {
        Err(e) => e.kind() == ErrorKind::WouldBlock,
        Ok(1) => first == 0x89,
        Ok(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mut frame = masked_frame(opcode, payload);
        // Unmask: drop the mask bit and key, and XOR the payload back.
        let header_len = frame.len() - payload.len() - 4;
        frame[0] = if fin { 0x80 | opcode } else { opcode };
        frame[1] &= 0x7f;
        let mut out = frame[..header_len].to_vec();
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn frames_are_parsed_across_reads_and_fragments() {
        for size in [0usize, 20, 125, 126, 1024, 70_000] {
            let expected = payload(size);
            let half = size / 2;
            let mut wire = server_frame(0x2, false, &expected[..half]);
            wire.extend(server_frame(0x9, true, b"ping"));
            wire.extend(server_frame(0x0, true, &expected[half..]));
            for chunk in [1usize, 3, 7, 4096, wire.len()] {
                let mut reader = FrameReader::default();
                let mut done = false;
                for (i, piece) in wire.chunks(chunk).enumerate() {
                    match reader.feed(piece, &expected, true).unwrap() {
                        Parsed::More => {}
                        Parsed::Message(used) => {
                            assert_eq!(used, piece.len(), "size {size} chunk {chunk}");
                            assert_eq!(i, wire.len().div_ceil(chunk) - 1);
                            done = true;
                        }
                    }
                }
                assert!(done, "size {size} chunk {chunk}");
            }
        }
    }

    #[test]
    fn wrong_echoes_are_refused() {
        let expected = payload(20);
        let mut short = FrameReader::default();
        assert!(short.feed(&server_frame(0x2, true, &expected[..19]), &expected, false).is_err());
        let mut long = FrameReader::default();
        assert!(long.feed(&server_frame(0x2, true, &payload(21)), &expected, false).is_err());
        let mut changed = payload(20);
        changed[5] ^= 1;
        let mut differs = FrameReader::default();
        assert!(differs.feed(&server_frame(0x2, true, &changed), &expected, true).is_err());
        assert!(FrameReader::default().feed(&server_frame(0x2, true, &changed), &expected, false).is_ok());
    }

    #[test]
    fn the_accept_key_is_right() {
        let head = format!("HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: {ACCEPT}\r\n\r\n");
        assert_eq!(check_upgrade_response(head.as_bytes(), false).unwrap(), None);
        let wrong = "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: x\r\n\r\n";
        assert!(check_upgrade_response(wrong.as_bytes(), false).is_err());
    }

    fn answer_to(extensions: &[&str], offered: bool) -> io::Result<Option<DeflateAnswer>> {
        let mut head = format!("HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: {ACCEPT}\r\n");
        for line in extensions {
            head.push_str(&format!("Sec-WebSocket-Extensions: {line}\r\n"));
        }
        head.push_str("\r\n");
        check_upgrade_response(head.as_bytes(), offered)
    }

    #[test]
    fn deflate_answers_are_read_strictly() {
        let plain = DeflateAnswer::default();
        assert_eq!(answer_to(&["permessage-deflate"], true).unwrap(), Some(plain));
        assert_eq!(answer_to(&[], true).unwrap(), None, "declined");
        assert_eq!(
            answer_to(
                &["permessage-deflate; server_no_context_takeover; client_max_window_bits=\"10\""],
                true
            )
            .unwrap(),
            Some(DeflateAnswer {
                server_no_context_takeover: true,
                client_max_window_bits: Some(10),
                ..plain
            })
        );
        assert_eq!(
            answer_to(&["permessage-deflate;client_no_context_takeover;server_max_window_bits=9"], true)
                .unwrap()
                .unwrap()
                .describe(),
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=9"
        );
        for bad in [
            "permessage-deflate; foo",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=09",
            "permessage-deflate; client_max_window_bits=16",
            "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate, permessage-deflate",
            "x-webkit-deflate-frame",
        ] {
            assert!(answer_to(&[bad], true).is_err(), "{bad}");
        }
        assert!(answer_to(&["permessage-deflate", "permessage-deflate"], true).is_err(), "two lines");
        assert!(answer_to(&["permessage-deflate"], false).is_err(), "not offered");
    }

    /// A server's compressed message: raw deflate, sync flush, trailer removed.
    fn server_deflate(compress: &mut Compress, message: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(message.len() * 2 + 64);
        compress.compress_vec(message, &mut out, FlushCompress::Sync).unwrap();
        assert!(out.ends_with(&SYNC_TRAILER));
        out.truncate(out.len() - 4);
        out
    }

    /// `server_frame` with RSV1 set.
    fn rsv1(mut frame: Vec<u8>) -> Vec<u8> {
        frame[0] |= RSV1;
        frame
    }

    /// Feeds `wire` in `chunk`-byte pieces; true once a message completed at the end.
    fn feed_all(reader: &mut FrameReader, wire: &[u8], chunk: usize, expected: &[u8]) -> io::Result<bool> {
        for (i, piece) in wire.chunks(chunk).enumerate() {
            if let Parsed::Message(used) = reader.feed(piece, expected, true)? {
                assert_eq!((used, i), (piece.len(), wire.len().div_ceil(chunk) - 1));
                return Ok(true);
            }
        }
        Ok(false)
    }

    #[test]
    fn compressed_echoes_are_inflated_with_the_context_kept() {
        let messages = bench_common::json_messages(1024, 6);
        for chunk in [1usize, 5, 300, 1 << 20] {
            let mut compress = Compress::new_with_window_bits(flate2::Compression::new(1), false, 15);
            let mut reader = FrameReader::new(true, true);
            for (i, message) in messages.iter().enumerate() {
                let compressed = server_deflate(&mut compress, message);
                // Every other message in two fragments with a Ping between (RSV1 on the first
                // only); the last one uncompressed, as a server may send any message.
                let wire = if i == messages.len() - 1 {
                    server_frame(0x1, true, message)
                } else if i % 2 == 1 {
                    let half = compressed.len() / 2;
                    let mut wire = rsv1(server_frame(0x1, false, &compressed[..half]));
                    wire.extend(server_frame(0x9, true, b"ping"));
                    wire.extend(server_frame(0x0, true, &compressed[half..]));
                    wire
                } else {
                    rsv1(server_frame(0x1, true, &compressed))
                };
                assert!(feed_all(&mut reader, &wire, chunk, message).unwrap(), "message {i}, chunk {chunk}");
                // The Ping is not part of the message on the wire.
                let ping = if i % 2 == 1 && i != messages.len() - 1 { 6 } else { 0 };
                assert_eq!(reader.last_wire_len as usize, wire.len() - ping, "message {i}");
            }
        }
    }

    #[test]
    fn bad_compressed_echoes_are_refused() {
        let message = bench_common::json_messages(1024, 1).remove(0);
        let mut compress = Compress::new_with_window_bits(flate2::Compression::new(1), false, 15);
        let compressed = server_deflate(&mut compress, &message);
        let good = rsv1(server_frame(0x1, true, &compressed));
        assert!(feed_all(&mut FrameReader::new(true, true), &good, 64, &message).unwrap());
        // RSV1 without permessage-deflate.
        assert!(feed_all(&mut FrameReader::new(true, false), &good, 64, &message).is_err());
        // RSV1 on a continuation frame, and on a control frame.
        let mut wire = rsv1(server_frame(0x1, false, &compressed[..10]));
        wire.extend(rsv1(server_frame(0x0, true, &compressed[10..])));
        assert!(feed_all(&mut FrameReader::new(true, true), &wire, 64, &message).is_err());
        let ping = rsv1(server_frame(0x9, true, b"ping"));
        assert!(feed_all(&mut FrameReader::new(true, true), &ping, 64, &message).is_err());
        // RSV2.
        let mut rsv2 = server_frame(0x1, true, &message);
        rsv2[0] |= 0x20;
        assert!(feed_all(&mut FrameReader::new(true, true), &rsv2, 64, &message).is_err());
        // Corrupt deflate data, a different message, a Binary echo of a Text message.
        let corrupt = rsv1(server_frame(0x1, true, &[0xff; 40]));
        assert!(feed_all(&mut FrameReader::new(true, true), &corrupt, 64, &message).is_err());
        let mut other = message.clone();
        other[100] ^= 1;
        assert!(feed_all(&mut FrameReader::new(true, true), &good, 64, &other).is_err());
        let binary = rsv1(server_frame(0x2, true, &compressed));
        assert!(feed_all(&mut FrameReader::new(true, true), &binary, 64, &message).is_err());
        // Inflating past the message's length stops with an error.
        let mut compress = Compress::new_with_window_bits(flate2::Compression::new(1), false, 15);
        let bomb = rsv1(server_frame(0x1, true, &server_deflate(&mut compress, &vec![b'a'; 100_000])));
        let err = feed_all(&mut FrameReader::new(true, true), &bomb, 1 << 20, &message).unwrap_err();
        assert!(err.to_string().contains("more than the 1024 bytes"), "{err}");
    }

    /// The pool's frames replayed round and round are a valid stream for one decompressor that
    /// keeps its context (the server's), and with `client_no_context_takeover` each message
    /// inflates on its own; a narrower window is honoured.
    #[test]
    fn the_compressed_pool_can_be_replayed() {
        let messages = bench_common::json_messages(1024, 40);
        let inflate = |decompress: &mut Decompress, compressed: &[u8], size: usize| {
            let mut input = compressed.to_vec();
            input.extend_from_slice(&SYNC_TRAILER);
            let mut out = Vec::with_capacity(size + 1);
            decompress.decompress_vec(&input, &mut out, FlushDecompress::Sync).unwrap();
            out
        };
        let takeover = compress_pool(&messages, &DeflateAnswer::default()).unwrap();
        let wire: usize = takeover.iter().map(Vec::len).sum();
        assert!(wire * 5 < 40 * 1024, "compresses 5× or more: {wire} bytes");
        let mut decompress = Decompress::new_with_window_bits(false, 15);
        for round in 0..3 {
            for (message, compressed) in messages.iter().zip(&takeover) {
                assert_eq!(&inflate(&mut decompress, compressed, 1024), message, "round {round}");
            }
        }
        let answer = DeflateAnswer {
            client_no_context_takeover: true,
            client_max_window_bits: Some(9),
            ..Default::default()
        };
        let alone = compress_pool(&messages, &answer).unwrap();
        for (message, compressed) in messages.iter().zip(&alone).rev() {
            let mut fresh = Decompress::new_with_window_bits(false, 9);
            assert_eq!(&inflate(&mut fresh, compressed, 1024), message);
        }
    }

    #[test]
    fn an_idle_socket_is_open_while_silent_or_pinged() {
        let would_block = || Err(io::Error::from(ErrorKind::WouldBlock));
        assert!(still_open(&would_block(), 0));
        assert!(still_open(&Ok(1), 0x89), "a Ping");
        assert!(!still_open(&Ok(0), 0), "the end of the stream");
        assert!(!still_open(&Ok(1), 0x88), "a Close");
        assert!(!still_open(&Ok(1), 0x82), "a data frame");
        assert!(!still_open(&Err(io::Error::from(ErrorKind::ConnectionReset)), 0));
    }
}
