//! Hostile traffic over real TCP on 127.0.0.1, and what must come of it (issue #14).
//!
//! Most cases attack an in-process server: `WebSocketLayer` and the echo handler of
//! `tests/common`, behind hyper with the header limits docs/security.md recommends. The echo
//! example runs as a process where a signal or its own HTTP settings are the point (SIGTERM with
//! 10,000 idle sockets; its header limits). In every case the server answers with the status or
//! close code the RFCs ask for, stays up, serves a well-behaved client straight afterwards, and
//! ends with its memory (RSS, within a margin) and file descriptors back where they were.
//!
//! The cases run one at a time (`serial`), each on a runtime of its own made after taking the
//! lock, so that the process's RSS and descriptor counts are theirs alone. Frames that break the
//! protocol are written by hand (`frame` and friends below); tokio-tungstenite is the
//! well-behaved client.
#![cfg(target_os = "linux")]

mod common;

use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{
    Behaviour, Ended, echo_service,
    raw::{KEY, Raw, close_payload, frame, handshake_request, header, header64, unmasked_frame},
};
use futures_util::{SinkExt, StreamExt};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    process::Child,
    sync::mpsc,
    task::JoinHandle,
};
use tokio_tungstenite::tungstenite::Message as TMessage;
use tower_websockets::{
    CloseCode, WebSocketLayer, WebSocketLayerBuilder,
    auth::{AuthRejection, Token},
    lifecycle::WebSocketStats,
    rate_limit::RateLimit,
};

// ---------------------------------------------------------------------------------------------
// Running one case at a time, and measuring the process.

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `case` alone, on a two-thread runtime of its own.
fn serial<F: Future<Output = ()>>(case: impl FnOnce() -> F) {
    let _alone = SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(case());
}

/// A process's resident memory and open descriptors.
#[derive(Debug, Clone, Copy)]
struct Usage {
    rss_kib: u64,
    fds: usize,
}

fn usage_of(pid: &str) -> Usage {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("VmRSS");
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("/proc/PID/fd").count();
    Usage { rss_kib, fds }
}

fn usage() -> Usage {
    usage_of("self")
}

/// Waits (10 s at most) for the descriptors to come back to `before` (a few more are allowed:
/// the runtime may have opened one meanwhile), then checks that RSS grew by less than
/// `rss_margin_mib`.
async fn assert_back(what: &str, before: Usage, rss_margin_mib: u64, now: impl Fn() -> Usage) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut after = now();
    while after.fds > before.fds + 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = now();
    }
    assert!(after.fds <= before.fds + 2, "{what}: descriptors {} before, {} after", before.fds, after.fds);
    let grown_kib = after.rss_kib.saturating_sub(before.rss_kib);
    assert!(
        grown_kib < rss_margin_mib * 1024,
        "{what}: RSS grew by {grown_kib} KiB ({} KiB before, {} after)",
        before.rss_kib,
        after.rss_kib
    );
}

// ---------------------------------------------------------------------------------------------
// The in-process server.

const MAX_MESSAGE: usize = 64 * 1024;
const MAX_FRAME: usize = 16 * 1024;
const ALLOWED_ORIGIN: &str = "https://example.com";
/// Another allowed origin, with a port.
const ALLOWED_ORIGIN_WITH_PORT: &str = "http://localhost:3000";
/// How long the server waits for a request head (hyper's `header_read_timeout`).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// hyper with the limits docs/security.md recommends: a request head of at most 32 KiB and 100
/// header lines, read within `HEADER_READ_TIMEOUT` (and the first byte too: see `Server::start`).
fn http_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(32 * 1024)
        .max_headers(100);
    builder.http2().enable_connect_protocol();
    builder
}

struct Server {
    addr: std::net::SocketAddr,
    layer: WebSocketLayer,
    ends: mpsc::UnboundedReceiver<Ended>,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    async fn start() -> Self {
        Self::start_with(
            WebSocketLayer::builder().allowed_origins([ALLOWED_ORIGIN, ALLOWED_ORIGIN_WITH_PORT]),
        )
        .await
    }

    /// A server whose layer is `builder` with the suite's message and frame limits.
    async fn start_with(builder: WebSocketLayerBuilder) -> Self {
        let layer =
            builder.max_message_size(MAX_MESSAGE).max_frame_size(MAX_FRAME).build().expect("valid options");
        let (service, ends) = echo_service(layer.clone(), Behaviour::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let http = http_builder();
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, peer)) = accepted else { continue };
                        // The peer's address in every request, as a server must put it there for
                        // max_connections_per_client (hyper does not).
                        let service = tower::ServiceBuilder::new()
                            .map_request(move |mut req: http::Request<hyper::body::Incoming>| {
                                req.extensions_mut().insert(peer);
                                req
                            })
                            .service(service.clone());
                        let service = TowerToHyperService::new(service);
                        let http = http.clone();
                        connections.spawn(async move {
                            // hyper-util's auto builder reads the first bytes (HTTP/1.1 or HTTP/2?)
                            // with no timeout, before `header_read_timeout` applies: a client that
                            // sends nothing would be held for ever (docs/security.md).
                            let first_byte = tokio::time::timeout(HEADER_READ_TIMEOUT, stream.peek(&mut [0u8])).await;
                            if !matches!(first_byte, Ok(Ok(1))) {
                                return;
                            }
                            let _ = http.serve_connection_with_upgrades(TokioIo::new(stream), service).await;
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Self { addr, layer, ends, task }
    }

    fn stats(&self) -> WebSocketStats {
        self.layer.stats()
    }

    /// A well-behaved client: connects, echoes text and binary, closes cleanly; its socket's
    /// end is then reported, without an error.
    async fn assert_serves_a_client(&mut self) {
        well_behaved_client(&format!("ws://{}/ws", self.addr)).await;
        let ended = self.wait_ends(1).await.remove(0);
        assert!(ended.error.is_none() && ended.echoed == 2, "{ended:?}");
    }

    /// Waits (30 s at most) for `n` more sockets to end, and returns their reports.
    async fn wait_ends(&mut self, n: usize) -> Vec<Ended> {
        let mut ends = Vec::with_capacity(n);
        while ends.len() < n {
            match tokio::time::timeout(Duration::from_secs(30), self.ends.recv()).await {
                Ok(Some(ended)) => ends.push(ended),
                _ => panic!("{} of {n} sockets ended within 30 s; {:?}", ends.len(), self.stats()),
            }
        }
        ends
    }

    /// Checks that no socket is open and no end report is left unread.
    async fn settle(&mut self) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(self.stats().open, 0, "{:?}", self.stats());
        if let Ok(ended) = self.ends.try_recv() {
            panic!("a socket ended that the case did not expect: {ended:?}");
        }
    }
}

async fn well_behaved_client(url: &str) {
    let connect = tokio_tungstenite::connect_async(url);
    let (mut client, _) =
        tokio::time::timeout(Duration::from_secs(10), connect).await.expect("connects in time").expect("101");
    for message in [TMessage::text("still here"), TMessage::binary(vec![1u8, 2, 3])] {
        client.send(message.clone()).await.unwrap();
        let echoed =
            tokio::time::timeout(Duration::from_secs(10), client.next()).await.expect("an echo in time");
        assert_eq!(echoed.unwrap().unwrap(), message);
    }
    client.close(None).await.unwrap();
    while let Some(Ok(_)) = client.next().await {}
}

/// Sends `bytes` on a socket of its own and checks the server's Close code, that it then ends
/// the connection, and that the handler's `recv` ended.
async fn assert_closes_with(server: &mut Server, what: &str, bytes: &[u8], code: u16) {
    let mut raw = Raw::open(&server.addr.to_string()).await;
    raw.send(bytes).await;
    let got = raw.reader.close_code().await;
    assert_eq!(got, Some(Some(code)), "{what}: expected Close {code}, got {got:?}");
    // The peer would answer with its own Close; the server must not wait for it forever.
    raw.reader.assert_closed().await;
    server.wait_ends(1).await;
}

// ---------------------------------------------------------------------------------------------
// RFC 6455 §5: every frame-level violation on a socket of its own, with its close code.

#[test]
fn every_frame_level_violation_gets_its_close_code() {
    serial(|| async {
        let mut server = Server::start().await;
        let before = usage();
        let mut cases: Vec<(String, Vec<u8>, u16)> = vec![
            ("an unmasked text frame".into(), unmasked_frame(0x81, b"hi"), 1002),
            ("an unmasked Ping".into(), unmasked_frame(0x89, b""), 1002),
            ("RSV1".into(), frame(0xc1, b"hi"), 1002),
            ("RSV2".into(), frame(0xa1, b"hi"), 1002),
            ("RSV3".into(), frame(0x91, b"hi"), 1002),
            ("a fragmented Ping".into(), frame(0x09, b"p"), 1002),
            ("a fragmented Close".into(), frame(0x08, &close_payload(1000, b"")), 1002),
            ("a 126-byte Ping".into(), frame(0x89, &[b'p'; 126]), 1002),
            ("a 126-byte Pong".into(), frame(0x8a, &[b'p'; 126]), 1002),
            ("a 126-byte Close".into(), frame(0x88, &close_payload(1000, &[b'r'; 124])), 1002),
            ("an orphan final continuation".into(), frame(0x80, b"x"), 1002),
            ("an orphan continuation".into(), frame(0x00, b"x"), 1002),
            (
                "a text frame inside a fragmented message".into(),
                [frame(0x01, b"a"), frame(0x81, b"b")].concat(),
                1002,
            ),
            (
                "a binary frame inside a fragmented message".into(),
                [frame(0x02, b"a"), frame(0x82, b"b")].concat(),
                1002,
            ),
            ("a one-byte Close payload".into(), frame(0x88, &[0x03]), 1002),
            ("a Close reason that is not UTF-8".into(), frame(0x88, &close_payload(1000, b"\xff\xfe")), 1007),
            (
                "a Close reason cut mid-character".into(),
                frame(0x88, &close_payload(1000, "é".as_bytes()[..1].as_ref())),
                1007,
            ),
            (
                "invalid UTF-8 in a text frame".into(),
                frame(0x81, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"),
                1007,
            ),
            ("a surrogate in a text frame".into(), frame(0x81, b"\xed\xa0\x80"), 1007),
            (
                "invalid UTF-8 in a later fragment".into(),
                [frame(0x01, "κό".as_bytes()), frame(0x00, b"\xc0\xaf"), frame(0x80, b"x")].concat(),
                1007,
            ),
            (
                "a character split across fragments, then broken".into(),
                [frame(0x01, &"€".as_bytes()[..2]), frame(0x80, b"x")].concat(),
                1007,
            ),
            (
                "a text message ending mid-character".into(),
                [frame(0x01, b"ok"), frame(0x80, &"€".as_bytes()[..2])].concat(),
                1007,
            ),
        ];
        for opcode in (0x3..=0x7).chain(0xb..=0xf) {
            cases.push((format!("reserved opcode {opcode:#x}"), frame(0x80 | opcode, b""), 1002));
        }
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
            cases.push((format!("Close code {code}"), frame(0x88, &close_payload(code, b"")), 1002));
        }
        for (what, bytes, code) in &cases {
            assert_closes_with(&mut server, what, bytes, *code).await;
            server.assert_serves_a_client().await;
        }
        server.settle().await;
        assert_back("frame violations", before, 16, usage).await;
    });
}

/// The valid sequences next to the violations: fragments with control frames between them, a
/// character split across fragments, valid close codes echoed.
#[test]
fn valid_edge_cases_are_accepted() {
    serial(|| async {
        let mut server = Server::start().await;
        let mut raw = Raw::open(&server.addr.to_string()).await;
        let split = "€".as_bytes();
        let bytes = [
            frame(0x01, &split[..1]),
            frame(0x89, b"ping"),
            frame(0x00, &split[1..2]),
            frame(0x80, &split[2..]),
        ]
        .concat();
        raw.send(&bytes).await;
        assert_eq!(raw.reader.next_frame().await, Some((0xa, b"ping".to_vec())), "the Pong comes first");
        assert_eq!(raw.reader.next_frame().await, Some((0x1, split.to_vec())));
        raw.send(&frame(0x88, &close_payload(4000, b"app"))).await;
        assert_eq!(raw.reader.next_frame().await, Some((0x8, close_payload(4000, b"app"))), "echoed");
        raw.reader.assert_closed().await;
        // 1014 (Bad Gateway) is in the IANA registry (RFC 6455 §7.4.2, §11.7).
        for code in [1000u16, 1001, 1003, 1007, 1011, 1014, 3000, 4999] {
            let mut raw = Raw::open(&server.addr.to_string()).await;
            raw.send(&frame(0x88, &close_payload(code, b""))).await;
            assert_eq!(raw.reader.close_code().await, Some(Some(code)));
            raw.reader.assert_closed().await;
        }
        server.wait_ends(9).await;
        server.settle().await;
    });
}

/// Gap 1 of issue #14: RFC 6455 §5.2 says the most significant bit of a 64-bit length MUST be 0.
/// tungstenite alone would read such a header as a huge length (and its frame limit would answer
/// 1009); the crate refuses it as a protocol error, 1002.
#[test]
fn a_64_bit_length_with_its_top_bit_set_gets_1002() {
    serial(|| async {
        let mut server = Server::start().await;
        for len in [1u64 << 63, u64::MAX, (1 << 63) | 5] {
            assert_closes_with(&mut server, "top bit", &header64(0x82, len), 1002).await;
            server.assert_serves_a_client().await;
        }
    });
}

#[test]
fn frames_announcing_2_to_the_40_bytes_get_1009_without_memory() {
    serial(|| async {
        let mut server = Server::start().await;
        let before = usage();
        for b0 in [0x82u8, 0x81, 0x02] {
            let mut bytes = header64(b0, 1 << 40);
            bytes.extend_from_slice(&[0u8; 64]); // a little of the announced payload
            assert_closes_with(&mut server, &format!("2^40 bytes, b0 {b0:#x}"), &bytes, 1009).await;
        }
        // Just over the limit, in the 16-bit form.
        assert_closes_with(&mut server, "frame limit + 1", &header(0x82, MAX_FRAME as u64 + 1, true), 1009)
            .await;
        server.assert_serves_a_client().await;
        server.settle().await;
        assert_back("2^40-byte frames", before, 8, usage).await;
    });
}

#[test]
fn many_tiny_fragments_past_the_message_limit_get_1009() {
    serial(|| async {
        let mut server = Server::start().await;
        let before = usage();
        for (b0, payload) in [(0x02u8, b"x"), (0x01, b"y")] {
            let mut raw = Raw::open(&server.addr.to_string()).await;
            // One-byte fragments, one more than the limit, written while the server answers.
            let fragments = MAX_MESSAGE + 1;
            let mut bytes = frame(b0, payload);
            for _ in 1..fragments {
                bytes.extend(frame(0x00, payload));
            }
            bytes.extend(frame(0x80, b""));
            // Written while the Close is read: the server stops reading at the limit, and the
            // write then fails.
            let write = async {
                let _ = raw.write.write_all(&bytes).await;
            };
            let (_, code) = tokio::join!(write, raw.reader.close_code());
            assert_eq!(code, Some(Some(1009)), "fragments of {b0:#x}");
            raw.reader.assert_closed().await;
            let ended = server.wait_ends(1).await.remove(0);
            assert_eq!(ended.error.and_then(|e| e.close_code()), Some(CloseCode::MESSAGE_TOO_BIG));
        }
        server.assert_serves_a_client().await;
        server.settle().await;
        assert_back("tiny fragments", before, 16, usage).await;
    });
}

// ---------------------------------------------------------------------------------------------
// Handshakes.

/// Sends `request` on a connection of its own and returns the response head.
async fn exchange(addr: &str, request: &[u8]) -> String {
    Raw::request(addr, request).await.1.unwrap_or_default()
}

/// Sends `request` and returns the whole response, head and body (read up to its
/// `Content-Length`).
async fn exchange_whole(addr: &str, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("the server reads");
    let mut response = Vec::new();
    let read = async {
        let mut chunk = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&response).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if response.len() >= end + 4 + length {
                    return;
                }
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => response.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read).await.expect("a whole response in time");
    String::from_utf8_lossy(&response).into_owned()
}

fn status_of(head: &str) -> u16 {
    head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status in {head:?}"))
}

fn has_header(head: &str, name: &str, value: &str) -> bool {
    head.lines().any(|line| {
        line.split_once(':').is_some_and(|(n, v)| n.eq_ignore_ascii_case(name) && v.trim() == value)
    })
}

#[test]
fn malformed_handshakes_get_their_status() {
    serial(|| async {
        let mut server = Server::start().await;
        let addr = server.addr.to_string();
        let before = usage();
        let no_key = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                      Sec-WebSocket-Version: 13\r\n\r\n";
        let two_origins = format!("Origin: {ALLOWED_ORIGIN}\r\nOrigin: {ALLOWED_ORIGIN}\r\n");
        let cases: Vec<(&str, String, u16)> = vec![
            ("no key", no_key.to_owned(), 400),
            ("a short key", handshake_request("").replace(KEY, "c2hvcnQ="), 400),
            ("a key that is not base64", handshake_request("").replace(KEY, "dGhlIHNhbXBsZSBub25j*Q=="), 400),
            ("two keys", handshake_request(&format!("Sec-WebSocket-Key: {KEY}\r\n")), 400),
            ("version 8", handshake_request("").replace("Version: 13", "Version: 8"), 426),
            ("no version", handshake_request("").replace("Sec-WebSocket-Version: 13\r\n", ""), 426),
            ("POST", handshake_request("").replace("GET", "POST"), 405),
            (
                "no Connection: upgrade",
                handshake_request("").replace("Connection: Upgrade", "Connection: close"),
                400,
            ),
            ("a lookalike origin", handshake_request("Origin: https://example.com.evil.example\r\n"), 403),
            ("a lookalike origin (suffix)", handshake_request("Origin: https://evil-example.com\r\n"), 403),
            ("a lookalike origin (trailing dot)", handshake_request("Origin: https://example.com.\r\n"), 403),
            (
                "a lookalike origin (user info)",
                handshake_request("Origin: https://example.com@evil.example\r\n"),
                403,
            ),
            ("another scheme", handshake_request("Origin: http://example.com\r\n"), 403),
            ("the null origin", handshake_request("Origin: null\r\n"), 403),
            // Found by the handshake fuzz target: once read as http://localhost:3000.
            ("a port after the port", handshake_request("Origin: http://localhost:3000:80\r\n"), 403),
            ("two allowed origins", handshake_request(&two_origins), 403),
            (
                "a 40 KiB header line",
                handshake_request(&format!("X-Big: {}\r\n", "a".repeat(40 * 1024))),
                431,
            ),
            ("101 header lines", handshake_request(&"X-Many: 1\r\n".repeat(101)), 431),
        ];
        for (what, request, status) in &cases {
            let head = exchange(&addr, request.as_bytes()).await;
            assert_eq!(status_of(&head), *status, "{what}: {head}");
            if *status == 426 {
                assert!(has_header(&head, "sec-websocket-version", "13"), "{what}: {head}");
            }
            if *status == 405 {
                assert!(has_header(&head, "allow", "GET"), "{what}: {head}");
            }
            server.assert_serves_a_client().await;
        }
        // The allowed origins, in another case and with the default port, are let in.
        for origin in ["HTTPS://Example.com:443", "http://LOCALHOST:3000/"] {
            let request = handshake_request(&format!("Origin: {origin}\r\n"));
            let head = exchange(&addr, request.as_bytes()).await;
            assert_eq!(status_of(&head), 101, "{origin}: {head}");
            server.wait_ends(1).await;
        }
        assert_eq!(server.stats().refused_by_origin, 8);
        server.settle().await;
        assert_back("malformed handshakes", before, 16, usage).await;
    });
}

#[test]
fn by_default_a_cross_origin_page_gets_403_naming_both_hosts() {
    serial(|| async {
        let mut server = Server::start_with(WebSocketLayer::builder()).await;
        server.assert_serves_a_client().await;
        let addr = server.addr.to_string();
        let before = usage();
        // `handshake_request` sends `Host: 127.0.0.1`.
        for (origin, host) in [
            ("https://evil.example", "127.0.0.1"),
            ("http://127.0.0.1:8080", "127.0.0.1"),
            ("http://127.0.0.1.evil.example", "127.0.0.1"),
        ] {
            let response =
                exchange_whole(&addr, handshake_request(&format!("Origin: {origin}\r\n")).as_bytes()).await;
            assert_eq!(status_of(&response), 403, "{origin}: {response}");
            let reason = format!("origin {origin} does not match host {host}; see allowed_origins");
            assert!(response.ends_with(&format!("\r\n\r\n{reason}")), "{origin}: {response}");
            server.assert_serves_a_client().await;
        }
        // The server's own pages, on either scheme's default port, are let in.
        for origin in ["http://127.0.0.1", "https://127.0.0.1"] {
            let head = exchange(&addr, handshake_request(&format!("Origin: {origin}\r\n")).as_bytes()).await;
            assert_eq!(status_of(&head), 101, "{origin}: {head}");
            server.wait_ends(1).await;
        }
        assert_eq!(server.stats().refused_by_origin, 3);
        server.settle().await;
        assert_back("cross-origin handshakes", before, 16, usage).await;
    });
}

#[test]
fn handshakes_refused_by_authentication_get_401_or_403_and_take_no_slot() {
    serial(|| async {
        let builder =
            WebSocketLayer::builder().max_connections(4).authenticate(|parts: &http::request::Parts| {
                let token =
                    Token::from_protocol(parts).or_else(|| Token::from_query(parts, "t")).map(str::to_owned);
                async move {
                    match token.as_deref() {
                        Some("good") => Ok(()),
                        Some("banned") => Err(AuthRejection::forbidden("banned")),
                        _ => Err(AuthRejection::unauthorized("no valid token")),
                    }
                }
            });
        let mut server = Server::start_with(builder.token_query_param("t")).await;
        let addr = server.addr.to_string();
        let before = usage();
        // More refusals than slots: none of them takes one.
        for round in 0..3 {
            for (what, request, status, body) in [
                ("no token", handshake_request(""), 401, "no valid token"),
                (
                    "a wrong token",
                    handshake_request("Sec-WebSocket-Protocol: bearer, bad\r\n"),
                    401,
                    "no valid token",
                ),
                ("a banned token", handshake_request("").replace("/ws", "/ws?t=banned"), 403, "banned"),
            ] {
                let response = exchange_whole(&addr, request.as_bytes()).await;
                assert_eq!(status_of(&response), status, "{what} (round {round}): {response}");
                assert!(response.ends_with(&format!("\r\n\r\n{body}")), "{what}: {response}");
                assert_eq!(
                    has_header(&response, "www-authenticate", "Bearer"),
                    status == 401,
                    "{what}: {response}"
                );
            }
        }
        // The token in the protocol list: accepted, answered with the marker only.
        let (raw, head) = Raw::open_with(&addr, "Sec-WebSocket-Protocol: bearer, good\r\n").await;
        assert!(has_header(&head, "sec-websocket-protocol", "bearer"), "{head}");
        drop(raw);
        server.wait_ends(1).await;
        assert_eq!(server.stats().refused_by_auth, 9);
        server.settle().await;
        assert_back("refused authentication", before, 16, usage).await;
    });
}

#[test]
fn a_flooding_client_is_held_to_its_rate_while_another_keeps_its_latency() {
    const RATE: u64 = 1000;
    const BURST: u64 = 100;
    const FLOOD: Duration = Duration::from_secs(2);
    serial(|| async {
        let builder = WebSocketLayer::builder().rate_limit(RateLimit::new().messages(RATE, BURST));
        let mut server = Server::start_with(builder).await;
        server.assert_serves_a_client().await;
        let addr = server.addr.to_string();

        // The flooder: 1,000 masked 20-byte text frames every 10 ms (100,000 a second), for 2 s,
        // while a task counts the echoes it gets back.
        let opened_at = tokio::time::Instant::now();
        let Raw { mut write, mut reader } = Raw::open(&addr).await;
        let batch: Vec<u8> = (0..1000).flat_map(|_| frame(0x81, b"0123456789abcdefghij")).collect();
        let writer = tokio::spawn(async move {
            let mut sent = 0u64;
            let end = tokio::time::Instant::now() + FLOOD;
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            while tokio::time::Instant::now() < end {
                tick.tick().await;
                // Blocked once the server stops reading: TCP pushes back.
                match tokio::time::timeout_at(end, write.write_all(&batch)).await {
                    Ok(Ok(())) => sent += 1000,
                    Ok(Err(e)) => panic!("the flood's write failed: {e}"),
                    Err(_) => break,
                }
            }
            (sent, write)
        });
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let counter = tokio::spawn(async move {
            let mut echoes = 0u64;
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    frame = reader.next_frame() => match frame {
                        Some((0x1, _)) => echoes += 1,
                        Some(_) => {}
                        None => break,
                    },
                }
            }
            (echoes, reader)
        });

        // The well-behaved client on the same server: 100 round trips, 10 ms apart.
        let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.expect("101");
        let mut round_trips = Vec::with_capacity(100);
        for i in 0..100 {
            let sent_at = std::time::Instant::now();
            client.send(TMessage::text(format!("polite {i}"))).await.unwrap();
            let echoed = tokio::time::timeout(Duration::from_secs(10), client.next())
                .await
                .expect("an echo within 10 s while another client floods");
            assert_eq!(echoed.unwrap().unwrap(), TMessage::text(format!("polite {i}")));
            round_trips.push(sent_at.elapsed());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        client.close(None).await.unwrap();
        while let Some(Ok(_)) = client.next().await {}
        round_trips.sort();
        let p50 = round_trips[round_trips.len() / 2];
        let p99 = round_trips[round_trips.len() * 99 / 100 - 1];
        println!("well-behaved client's round trips while another floods: p50 {p50:?}, p99 {p99:?}");

        let (sent, write) = writer.await.unwrap();
        let _ = stop.send(());
        let (echoes, reader) = counter.await.unwrap();
        let elapsed = opened_at.elapsed();
        // Upper bound of what the buckets let through since the socket opened (the socket
        // opened after `opened_at`): the burst, plus the rate times the time.
        let allowed = BURST + (RATE as f64 * elapsed.as_secs_f64()).ceil() as u64 + 1;
        println!(
            "flooder: {sent} messages written, {echoes} echoed in {elapsed:?} (at most {allowed} allowed)"
        );
        assert!(echoes <= allowed, "{echoes} echoes > {allowed} allowed in {elapsed:?}");
        assert!(echoes > 0 && sent > echoes, "sent {sent}, echoed {echoes}");
        assert_eq!(server.stats().rate_limit_throttled, 1, "{:?}", server.stats());
        assert_eq!(
            server.wait_ends(1).await[0].error.as_ref().map(ToString::to_string),
            None,
            "the polite client"
        );

        // A reset discards what the kernel holds for the flooder; its socket then ends.
        Raw { write, reader }.reset();
        server.wait_ends(1).await;
        server.settle().await;
    });
}

#[test]
fn the_sixth_socket_from_one_ip_gets_429() {
    serial(|| async {
        let mut server = Server::start_with(WebSocketLayer::builder().max_connections_per_client(5)).await;
        let addr = server.addr.to_string();
        let mut sockets = Vec::new();
        for _ in 0..5 {
            sockets.push(Raw::open(&addr).await);
        }
        assert_eq!(server.stats().tracked_clients, 1, "one IP, one entry");
        let response = exchange_whole(&addr, handshake_request("").as_bytes()).await;
        assert_eq!(status_of(&response), 429, "{response}");
        assert!(has_header(&response, "retry-after", "5"), "{response}");
        assert!(response.ends_with("too many WebSocket connections from this client"), "{response}");
        assert_eq!(server.stats().refused_by_client_limit, 1);
        // One closes: the client may open another.
        sockets.pop().expect("five sockets").reset();
        server.wait_ends(1).await;
        sockets.push(Raw::open(&addr).await);
        drop(sockets);
        server.wait_ends(5).await;
        server.settle().await;
        assert_eq!(server.stats().tracked_clients, 0, "forgotten with its last socket");
    });
}

#[test]
fn ten_thousand_client_keys_leave_no_state_behind() {
    // Two waves of 5,000 sockets open at once, each its own client (both ends in this process:
    // two descriptors a socket).
    const WAVE: usize = 5_000;
    raise_nofile(2 * WAVE as u64 + 2000);
    serial(|| async {
        let builder = WebSocketLayer::builder()
            .max_connections_per_client(1)
            .client_key(|parts| parts.headers.get("x-client")?.to_str().ok().map(str::to_owned));
        let mut server = Server::start_with(builder).await;
        let addr = server.addr.to_string();
        for wave in 0..2 {
            let mut tasks = tokio::task::JoinSet::new();
            for task in 0..50 {
                let addr = addr.clone();
                tasks.spawn(async move {
                    let mut sockets = Vec::with_capacity(WAVE / 50);
                    for i in 0..WAVE / 50 {
                        let key = wave * WAVE + task * (WAVE / 50) + i;
                        sockets.push(Raw::open_with(&addr, &format!("X-Client: {key}\r\n")).await.0);
                    }
                    sockets
                });
            }
            let mut sockets = Vec::with_capacity(WAVE);
            while let Some(result) = tasks.join_next().await {
                sockets.extend(result.unwrap());
            }
            assert_eq!(server.stats().tracked_clients, WAVE, "one entry per client with a socket");
            // A second socket for a key that has one: 429.
            let again = format!("X-Client: {}\r\n", wave * WAVE);
            let response = exchange_whole(&addr, handshake_request(&again).as_bytes()).await;
            assert_eq!(status_of(&response), 429, "{response}");
            for raw in sockets {
                raw.reset();
            }
            server.wait_ends(WAVE).await;
            server.settle().await;
            assert_eq!(server.stats().tracked_clients, 0, "wave {wave}: no key left once closed");
        }
        let stats = server.stats();
        assert_eq!((stats.accepted, stats.refused_by_client_limit), (2 * WAVE as u64, 2));
    });
}

/// How late after its header read timeout a stalled connection may be dropped: the timer's
/// tick, the scheduler and a loaded machine, not a second timeout.
const DROP_SLACK: Duration = Duration::from_secs(3);

/// Connects to `addr`, writes `bytes` of a handshake one at a time, 100 ms apart, then stalls;
/// returns how long after connecting the server dropped the connection (`None`: not within
/// `timeout + DROP_SLACK`).
async fn stall(addr: String, bytes: usize, timeout: Duration) -> Option<Duration> {
    let started = tokio::time::Instant::now();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let request = handshake_request("");
    for byte in request.as_bytes().iter().take(bytes) {
        if stream.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut rest = Vec::new();
    let deadline = started + timeout + DROP_SLACK;
    match tokio::time::timeout_at(deadline, stream.read_to_end(&mut rest)).await {
        Ok(_) => Some(started.elapsed()),
        Err(_) => None,
    }
}

/// Each connection was dropped, and not before `timeout` nor later than `timeout + DROP_SLACK`.
fn assert_dropped_at(what: &str, drops: &[Option<Duration>], timeout: Duration) {
    let late = drops.iter().filter(|drop| drop.is_none()).count();
    assert_eq!(
        late,
        0,
        "{what}: {late} of {} connections were still open {DROP_SLACK:?} after the timeout",
        drops.len()
    );
    // A whole request head was never sent, so nothing but the timeout may end a connection
    // (a little under it: the server's clock started on accept, ours before connecting).
    let early =
        drops.iter().flatten().filter(|elapsed| **elapsed + Duration::from_millis(200) < timeout).count();
    assert_eq!(early, 0, "{what}: dropped before the {timeout:?} timeout: {drops:?}");
}

#[test]
fn slowloris_handshakes_do_not_stop_a_live_client_and_are_dropped_at_the_timeout() {
    serial(|| async {
        let mut server = Server::start().await;
        let addr = server.addr.to_string();
        let before = usage();
        // 200 connections that send their request head a byte at a time, slower than the
        // header read timeout allows (40 bytes in 4 s, where the whole head must come in 2 s).
        let mut slow = tokio::task::JoinSet::new();
        for _ in 0..200 {
            slow.spawn(stall(addr.clone(), 40, HEADER_READ_TIMEOUT));
        }
        // Meanwhile a live client is served, more than once.
        for _ in 0..5 {
            server.assert_serves_a_client().await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut drops = Vec::new();
        while let Some(result) = slow.join_next().await {
            drops.push(result.unwrap());
        }
        assert_dropped_at("byte-at-a-time heads", &drops, HEADER_READ_TIMEOUT);
        server.assert_serves_a_client().await;
        server.settle().await;
        assert_back("slowloris", before, 16, usage).await;
    });
}

/// The echo example's own timeouts (`--head-timeout`, 1 s here): a connection that sends
/// nothing (the first-byte timeout, before hyper reads) and one that sends its head a byte at a
/// time (hyper's header read timeout) are both dropped at the timeout, while a live client is
/// served.
#[test]
fn the_echo_example_drops_silent_and_slow_connections_at_its_head_timeout() {
    const TIMEOUT: Duration = Duration::from_secs(1);
    serial(|| async {
        let echo = Echo::start(&["--head-timeout", "1"]).await;
        echo.assert_serves_a_client().await;
        let before = echo.usage();
        let mut silent = tokio::task::JoinSet::new();
        let mut slow = tokio::task::JoinSet::new();
        for _ in 0..50 {
            silent.spawn(stall(echo.addr.clone(), 0, TIMEOUT));
            slow.spawn(stall(echo.addr.clone(), 20, TIMEOUT));
        }
        echo.assert_serves_a_client().await;
        for (what, mut set) in [("silent connections", silent), ("byte-at-a-time heads", slow)] {
            let mut drops = Vec::new();
            while let Some(result) = set.join_next().await {
                drops.push(result.unwrap());
            }
            assert_dropped_at(what, &drops, TIMEOUT);
        }
        echo.assert_serves_a_client().await;
        assert_back("slowloris (echo process)", before, 16, || echo.usage()).await;
    });
}

#[test]
fn a_client_that_never_reads_cannot_grow_memory() {
    serial(|| async {
        let mut server = Server::start().await;
        let before = usage();
        let mut raw = Raw::open(&server.addr.to_string()).await;
        // 15 KiB messages (under the frame limit), echoed by the server into a connection nobody
        // reads. Write until the server stops taking them (its socket buffers and its write
        // buffer are full), 256 MiB at most.
        let message = frame(0x82, &vec![0xa5; 15 * 1024]);
        let mut written = 0usize;
        while written < 256 << 20 {
            match tokio::time::timeout(Duration::from_secs(2), raw.write.write_all(&message)).await {
                Ok(Ok(())) => written += message.len(),
                Ok(Err(_)) | Err(_) => break,
            }
        }
        assert!(written > 1 << 20, "the server took only {written} bytes");
        let stuck = usage();
        let grown_mib = stuck.rss_kib.saturating_sub(before.rss_kib) / 1024;
        assert!(grown_mib < 64, "wrote {} MiB; RSS grew by {grown_mib} MiB", written >> 20);
        // A well-behaved client is served meanwhile.
        server.assert_serves_a_client().await;
        drop(raw);
        server.wait_ends(1).await;
        server.settle().await;
        assert_back("a client that never reads", before, 16, usage).await;
    });
}

#[test]
fn two_thousand_connect_close_cycles_leak_nothing() {
    serial(|| async {
        let mut server = Server::start().await;
        let url = format!("ws://{}/ws", server.addr);
        let accepted = server.stats().accepted;
        let before = usage();
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..8 {
            let url = url.clone();
            tasks.spawn(async move {
                for i in 0..250 {
                    let (mut client, _) = tokio_tungstenite::connect_async(&url).await.expect("101");
                    let message = TMessage::text(format!("{worker}/{i}"));
                    client.send(message.clone()).await.unwrap();
                    assert_eq!(client.next().await.unwrap().unwrap(), message);
                    client.close(None).await.unwrap();
                    while let Some(Ok(_)) = client.next().await {}
                }
            });
        }
        while let Some(result) = tasks.join_next().await {
            result.unwrap();
        }
        server.wait_ends(2000).await;
        assert_eq!(server.stats().accepted - accepted, 2000);
        server.assert_serves_a_client().await;
        server.settle().await;
        assert_back("2,000 cycles", before, 16, usage).await;
    });
}

#[test]
fn five_hundred_resets_mid_frame_leak_nothing() {
    serial(|| async {
        let mut server = Server::start().await;
        let addr = server.addr.to_string();
        let before = usage();
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..10 {
            let addr = addr.clone();
            tasks.spawn(async move {
                for i in 0..50 {
                    let raw = Raw::open(&addr).await;
                    // Half of a frame: its header announces 1,000 bytes, 10 come.
                    let mut bytes = header(0x82, 1000, true);
                    bytes.extend_from_slice(&[(worker * 50 + i) as u8; 10]);
                    let mut raw = raw;
                    raw.send(&bytes).await;
                    raw.reset();
                }
            });
        }
        while let Some(result) = tasks.join_next().await {
            result.unwrap();
        }
        let ends = server.wait_ends(500).await;
        assert!(ends.iter().all(|ended| ended.error.is_some()), "each one saw the reset");
        server.assert_serves_a_client().await;
        server.settle().await;
        assert_back("500 resets", before, 16, usage).await;
    });
}

// ---------------------------------------------------------------------------------------------
// The echo example as a process.

struct Echo {
    child: Child,
    addr: String,
    log: mpsc::UnboundedReceiver<String>,
}

impl Echo {
    async fn start(args: &[&str]) -> Self {
        let (child, addr, log) = common::echo_process::start(args).await;
        Self { child, addr, log }
    }

    fn pid(&self) -> String {
        self.child.id().expect("running").to_string()
    }

    fn usage(&self) -> Usage {
        usage_of(&self.pid())
    }

    async fn assert_serves_a_client(&self) {
        well_behaved_client(&format!("ws://{}/ws", self.addr)).await;
    }
}

/// Raises this process's soft limit on open files to `needed` (the echo process inherits it).
fn raise_nofile(needed: u64) {
    let (soft, hard) = rlimit::Resource::NOFILE.get().expect("getrlimit");
    if soft < needed {
        assert!(hard >= needed, "RLIMIT_NOFILE hard limit {hard} < {needed}");
        rlimit::Resource::NOFILE.set(needed, hard).expect("setrlimit");
    }
}

#[test]
fn ten_thousand_idle_sockets_each_get_1001_at_sigterm() {
    const SOCKETS: usize = 10_000;
    raise_nofile(SOCKETS as u64 + 2000);
    serial(|| async {
        let mut echo = Echo::start(&["--shutdown-timeout", "20"]).await;
        echo.assert_serves_a_client().await;
        let before = echo.usage();
        let sockets = Arc::new(tokio::sync::Mutex::new(Vec::with_capacity(SOCKETS)));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let (addr, sockets) = (echo.addr.clone(), sockets.clone());
            tasks.spawn(async move {
                for _ in 0..SOCKETS / 50 {
                    let raw = Raw::open(&addr).await;
                    sockets.lock().await.push(raw);
                }
            });
        }
        while let Some(result) = tasks.join_next().await {
            result.unwrap();
        }
        let open = echo.usage();
        // One descriptor per socket (`before` may still count the warm-up client's).
        assert!(open.fds >= SOCKETS, "{before:?} before, {open:?} with the sockets open");
        let per_socket_kib = open.rss_kib.saturating_sub(before.rss_kib) / SOCKETS as u64;
        assert!(per_socket_kib < 64, "{per_socket_kib} KiB per idle socket");

        let pid = echo.pid();
        assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let mut sockets = std::mem::take(&mut *sockets.lock().await);
        let mut readers = tokio::task::JoinSet::new();
        while !sockets.is_empty() {
            let mut chunk: Vec<Raw> = sockets.drain(..sockets.len().min(200)).collect();
            readers.spawn(async move {
                let mut codes = Vec::new();
                for raw in &mut chunk {
                    codes.push(raw.reader.close_code().await);
                    // Answer the Close, as a client does, so that no socket is cut.
                    let _ = raw.write.write_all(&frame(0x88, &close_payload(1001, b""))).await;
                }
                codes
            });
        }
        let mut going_away = 0;
        while let Some(codes) = readers.join_next().await {
            for code in codes.unwrap() {
                assert_eq!(code, Some(Some(1001)));
                going_away += 1;
            }
        }
        assert_eq!(going_away, SOCKETS);
        let status = tokio::time::timeout(Duration::from_secs(30), echo.child.wait()).await.unwrap().unwrap();
        assert!(status.success(), "{status}");
        let mut output = Vec::new();
        while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(5), echo.log.recv()).await {
            output.push(line);
        }
        let summary = output.iter().rev().find(|line| line.contains("WebSockets closed"));
        let summary = summary
            .unwrap_or_else(|| panic!("no summary line; the last lines: {:?}", output.last_chunk::<5>()));
        // Sockets whose upgrade was still under way at the signal are not counted as open, but
        // they got their 1001 all the same (above).
        assert!(summary.ends_with(" cut=0"), "{summary}");
    });
}

/// Gap 2 of issue #14: the echo example refuses request heads over 32 KiB, and more than 100
/// header lines, with 431 (Kestrel's limits), and still serves the next client.
#[test]
fn the_echo_example_refuses_oversized_request_heads_with_431() {
    serial(|| async {
        let echo = Echo::start(&[]).await;
        echo.assert_serves_a_client().await;
        let before = echo.usage();
        let within = handshake_request(&format!("X-Big: {}\r\n", "a".repeat(24 * 1024)));
        assert_eq!(status_of(&exchange(&echo.addr, within.as_bytes()).await), 101, "a 24 KiB header line");
        for (what, request) in [
            ("a 40 KiB header line", handshake_request(&format!("X-Big: {}\r\n", "a".repeat(40 * 1024)))),
            ("a 64 KiB header line", handshake_request(&format!("X-Big: {}\r\n", "a".repeat(64 * 1024)))),
            (
                "1,000 short header lines of 40 bytes",
                handshake_request(&format!("X-Many: {}\r\n", "b".repeat(30)).repeat(1000)),
            ),
            ("101 header lines", handshake_request(&"X-Many: 1\r\n".repeat(101))),
        ] {
            let head = exchange(&echo.addr, request.as_bytes()).await;
            assert_eq!(status_of(&head), 431, "{what}: {head}");
            echo.assert_serves_a_client().await;
        }
        assert_back("oversized heads (echo process)", before, 16, || echo.usage()).await;
    });
}
