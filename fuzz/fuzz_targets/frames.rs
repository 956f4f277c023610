//! Arbitrary bytes from the peer of an accepted `WebSocket`.
//!
//! A real hyper HTTP/1.1 server connection over `tokio::io::duplex`, with `WebSocketLayer`
//! (`max_message_size` 64 KiB, `max_frame_size` 16 KiB, keep-alive off) and an echo handler: a
//! valid handshake is written first, then the input, then EOF.
//!
//! Invariants, beyond "no panic":
//! - the handler's `recv` ends, and yields nothing after an error;
//! - the server's output is whole, well-formed, unmasked frames, and nothing follows a Close;
//! - it echoes exactly the messages that the reference reading of the input
//!   (`tower_websockets_fuzz::reference`, written from RFC 6455) finds before the end, and
//!   ends as that reading says: no Close when the input just stops, the violation's close code
//!   (RFC 6455 §7.4.1) when the input breaks the protocol, the answer to the peer's Close when
//!   it sends one;
//! - every Pong answers a Ping of the input;
//! - memory: the most bytes live at once stays within a bound set by the limits, not by the
//!   lengths the input announces.
#![no_main]

use std::{convert::Infallible, time::Duration};

use http::Request;
use hyper::body::Incoming;
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceBuilder;
use tower_websockets::{Message, WebSocketLayer, WebSocketUpgrade};
use tower_websockets_fuzz::{
    MAX_FRAME_SIZE, MAX_MESSAGE_SIZE, alloc,
    reference::{self, End, Reply},
    runtime,
    wire::{ServerFrame, parse_server_output},
};

const HANDSHAKE: &[u8] = b"GET /ws HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// Bytes one connection may hold at its peak besides the ones proportional to the input (the
/// output collected here, and the echoes in flight): the runtime, hyper's connection, the
/// socket's buffers and one message at the limit, several times over.
const FIXED_BOUND: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let expected = reference::expect(data);
    let rt = runtime();
    let base = alloc::reset_peak();
    let output = rt.block_on(exchange(data));
    drop(rt);
    let used = alloc::peak().saturating_sub(base);
    let bound = FIXED_BOUND + 4 * data.len();
    assert!(used <= bound, "one connection held {used} bytes (bound {bound})");
    check(&expected, &output);
});

/// How the handler saw the connection.
#[derive(Debug)]
struct Handler {
    errors: usize,
    after_error: usize,
}

/// Runs the connection; returns what the server wrote after its 101.
async fn exchange(data: &[u8]) -> Vec<u8> {
    let layer = WebSocketLayer::builder()
        .max_message_size(MAX_MESSAGE_SIZE)
        .max_frame_size(MAX_FRAME_SIZE)
        .keep_alive_interval(Duration::ZERO)
        .build()
        .expect("valid options");
    let (report, reported) = tokio::sync::oneshot::channel();
    let report = std::sync::Arc::new(std::sync::Mutex::new(Some(report)));
    let service = ServiceBuilder::new().layer(layer).service_fn(move |mut req: Request<Incoming>| {
        let report = report.lock().unwrap().take();
        let upgrade = WebSocketUpgrade::from_request(&mut req).expect("the handshake is valid");
        let response = upgrade.on_upgrade(move |mut socket| async move {
            let mut handler = Handler { errors: 0, after_error: 0 };
            while let Some(item) = socket.recv().await {
                if handler.errors > 0 {
                    handler.after_error += 1;
                }
                match item {
                    Ok(message @ (Message::Text(_) | Message::Binary(_))) => {
                        if socket.send(message).await.is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => handler.errors += 1,
                }
            }
            if let Some(report) = report {
                let _ = report.send(handler);
            }
        });
        async move { Ok::<_, Infallible>(response) }
    });

    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let connection = tokio::spawn(
        hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(server), TowerToHyperService::new(service))
            .with_upgrades(),
    );
    client.write_all(HANDSHAKE).await.unwrap();
    let mut output = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 1024];
        let n = client.read(&mut chunk).await.unwrap();
        assert!(n > 0, "no 101");
        output.extend_from_slice(&chunk[..n]);
        if let Some(at) = output.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    assert!(output.starts_with(b"HTTP/1.1 101 "), "{}", String::from_utf8_lossy(&output));
    output.drain(..head_end);

    let (mut read, mut write) = tokio::io::split(client);
    let writer = async {
        // The server may stop reading (and drop the connection) at a violation.
        let _ = write.write_all(data).await;
        let _ = write.shutdown().await;
    };
    let reader = async {
        let _ = read.read_to_end(&mut output).await;
    };
    let both = async { tokio::join!(writer, reader) };
    // The clock is paused: this fires only if nothing can run any more.
    tokio::time::timeout(Duration::from_secs(600), both).await.expect("the server's output never ended");
    let handler = tokio::time::timeout(Duration::from_secs(600), reported)
        .await
        .expect("the handler's recv never ended")
        .expect("the handler reports");
    assert!(handler.errors <= 1 && handler.after_error == 0, "recv went on after an error: {handler:?}");
    let _ = connection.await;
    output
}

/// Holds the server's output to the reference reading of the input.
fn check(expected: &reference::Expected, output: &[u8]) {
    let frames = parse_server_output(output).unwrap_or_else(|e| panic!("bad server output: {e}"));
    let mut messages = Vec::new();
    let mut partial: Option<(bool, Vec<u8>)> = None;
    let mut close: Option<&ServerFrame> = None;
    for frame in &frames {
        assert!(close.is_none(), "a frame after the server's Close: {frame:?}");
        match frame.opcode {
            0x1 | 0x2 => {
                assert!(partial.is_none(), "a new message inside a fragmented one");
                partial = Some((frame.opcode == 0x1, frame.payload.clone()));
            }
            0x0 => partial.as_mut().expect("a continuation of nothing").1.extend_from_slice(&frame.payload),
            0x8 => close = Some(frame),
            0x9 => panic!("a Ping with keep-alive off"),
            0xa => assert!(expected.pings.contains(&frame.payload), "a Pong for no Ping: {frame:?}"),
            _ => unreachable!("checked by the parser"),
        }
        if frame.fin && frame.opcode <= 0x2 {
            messages.push(partial.take().expect("a message"));
        }
    }
    for (text, payload) in &messages {
        assert!(!text || std::str::from_utf8(payload).is_ok(), "the server sent invalid UTF-8");
    }
    assert!(
        messages == expected.messages,
        "echoed {} messages, expected {} ({:?})",
        messages.len(),
        expected.messages.len(),
        expected.end
    );
    let code =
        close.and_then(|c| (c.payload.len() >= 2).then(|| u16::from_be_bytes([c.payload[0], c.payload[1]])));
    match expected.end.as_ref().expect("an end") {
        End::Eof => assert!(close.is_none(), "a Close ({code:?}) when the input just stopped"),
        End::Violation { or_eof: true, .. } if close.is_none() => {}
        End::Violation { codes, why, .. } => {
            assert!(close.is_some(), "no Close for {why}");
            assert!(
                code.is_some_and(|code| codes.contains(&code)),
                "{why}: closed with {code:?}, expected {codes:?}"
            );
        }
        End::PeerClose(reply) => {
            let close = close.unwrap_or_else(|| panic!("the peer's Close was not answered"));
            match reply {
                Reply::Empty => assert!(close.payload.is_empty(), "{close:?} for an empty Close"),
                Reply::Echo(payload) => assert_eq!(&close.payload, payload),
                Reply::ProtocolError => assert_eq!(code, Some(1002)),
                Reply::EchoOrProtocolError(payload) => {
                    assert!(&close.payload == payload || code == Some(1002), "{close:?}")
                }
            }
        }
    }
}
