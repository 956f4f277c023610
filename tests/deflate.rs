//! permessage-deflate (RFC 7692) end to end: negotiation through the layer and the extractor,
//! compressed messages both ways through the in-memory client (HTTP/1.1 and HTTP/2), and the
//! peer's mistakes over real TCP, written as raw frames.

#![cfg(feature = "test-util")]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{
    Behaviour, TestServer, echo_service, next_end,
    raw::{Raw, far_repeat, frame, handshake_request, inflate},
};
use flate2::{Compress, Decompress, FlushCompress};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{
        Message as TMessage,
        client::IntoClientRequest,
        protocol::frame::{
            Frame, FrameHeader,
            coding::{Control, Data, OpCode},
        },
    },
};
use tower_websockets::{Compression, Error, Message, WebSocketLayer, test::TestClient};

fn layer(compression: Compression) -> WebSocketLayer {
    WebSocketLayer::builder().compression(compression).build().unwrap()
}

/// JSON-like text that compresses well.
fn json(n: usize) -> String {
    (0..n).map(|i| format!(r#"{{"id":{i},"user":"alice","text":"hello, world"}}"#)).collect()
}

#[tokio::test]
async fn off_by_default_the_offer_is_ignored() {
    let (service, mut ends) = echo_service(WebSocketLayer::new(), Behaviour::default());
    let mut socket =
        TestClient::new(service).connect("/ws").compression(Compression::enabled()).await.unwrap();
    assert!(socket.response().headers().get("sec-websocket-extensions").is_none());
    assert_eq!(socket.compression(), None);
    socket.send_text(&json(10)).await.unwrap();
    assert_eq!(socket.recv_text().await.unwrap(), json(10));
    socket.close().await.unwrap();
    assert_eq!(next_end(&mut ends).await.compression, None);
}

#[tokio::test]
async fn compressed_messages_of_every_size_echo_over_http1_and_http2() {
    for http2 in [false, true] {
        let (service, mut ends) = echo_service(layer(Compression::enabled()), Behaviour::default());
        let client = TestClient::new(service);
        let connect = client.connect("/ws").compression(Compression::enabled());
        let mut socket = if http2 { connect.http2().await } else { connect.await }.unwrap();
        assert_eq!(socket.response().headers()["sec-websocket-extensions"], "permessage-deflate");
        let negotiated = socket.compression().copied().expect("negotiated");
        assert!(!negotiated.server_no_context_takeover() && !negotiated.client_no_context_takeover());

        let noise: Vec<u8> = (0..200_000u64).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
        let messages = [
            Message::text("short"),
            Message::text(json(1)),
            Message::text(json(20_000)),
            Message::binary(noise),
            Message::binary(vec![7u8; 3 << 20]),
            Message::text(""),
        ];
        for message in messages {
            socket.send(message.clone()).await.unwrap();
            assert_eq!(socket.recv_data().await.unwrap(), message, "http2: {http2}");
        }
        socket.close().await.unwrap();
        let ended = next_end(&mut ends).await;
        assert_eq!(ended.echoed, 6);
        assert_eq!(ended.compression, Some(negotiated));
        assert!(ended.error.is_none(), "{:?}", ended.error);
    }
}

#[tokio::test]
async fn no_context_takeover_both_ways_and_window_bits() {
    let server = Compression::enabled().server_no_context_takeover(true).client_max_window_bits(Some(10));
    let (service, mut ends) = echo_service(layer(server), Behaviour::default());
    let client = Compression::enabled().server_max_window_bits(9);
    let mut socket = TestClient::new(service).connect("/ws").compression(client).await.unwrap();
    assert_eq!(
        socket.response().headers()["sec-websocket-extensions"],
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits=10"
    );
    let negotiated = *socket.compression().unwrap();
    assert!(negotiated.server_no_context_takeover());
    assert_eq!(
        (negotiated.server_max_window_bits(), negotiated.client_max_window_bits()),
        (Some(9), Some(10))
    );
    for _ in 0..3 {
        socket.send_text(&json(500)).await.unwrap();
        assert_eq!(socket.recv_text().await.unwrap(), json(500));
    }
    socket.close().await.unwrap();
    assert_eq!(next_end(&mut ends).await.echoed, 3);
}

/// Compression per accept: on at `/compressed` (the layer leaves it off), off at `/plain`; the
/// handler says which it got.
fn per_accept_service() -> common::Svc {
    use std::convert::Infallible;

    use http::Request;
    use hyper::body::Incoming;
    use tower::{ServiceBuilder, util::BoxCloneSyncService};
    use tower_websockets::WebSocketUpgrade;

    BoxCloneSyncService::new(ServiceBuilder::new().layer(WebSocketLayer::new()).service_fn(
        |mut req: Request<Incoming>| async move {
            let upgrade = WebSocketUpgrade::from_request(&mut req).unwrap();
            let compressed = req.uri().path() == "/compressed";
            let upgrade = if compressed { upgrade.compression(Compression::enabled()) } else { upgrade };
            Ok::<_, Infallible>(upgrade.on_upgrade(|mut socket| async move {
                let said = if socket.compression().is_some() { "compressed" } else { "plain" };
                let _ = socket.send(said).await;
                while let Some(Ok(_)) = socket.recv().await {}
            }))
        },
    ))
}

#[tokio::test]
async fn per_accept_compression_overrides_the_layer() {
    let client = TestClient::new(per_accept_service());
    for (path, said) in [("/compressed", "compressed"), ("/plain", "plain")] {
        let mut socket = client.connect(path).compression(Compression::enabled()).await.unwrap();
        assert_eq!(socket.recv_text().await.unwrap(), said);
        assert_eq!(socket.compression().is_some(), said == "compressed");
    }
}

#[tokio::test]
async fn on_the_wire_per_accept_compression_overrides_the_layer() {
    let server = TestServer::start(per_accept_service()).await;
    let (mut raw, head) = raw_open(server.addr, "/compressed", "permessage-deflate").await;
    assert!(head.contains("sec-websocket-extensions: permessage-deflate\r\n"), "{head}");
    let (b0, payload) = raw.reader.next_data_frame().await;
    assert_eq!(b0, 0x80 | 0x40 | 0x1, "FIN, RSV1 and Text");
    assert_eq!(inflate(&mut Decompress::new(false), &payload).unwrap(), b"compressed");

    let (mut raw, head) = raw_open(server.addr, "/plain", "permessage-deflate").await;
    assert!(!head.contains("sec-websocket-extensions"), "{head}");
    assert_eq!(raw.reader.next_data_frame().await, (0x80 | 0x1, b"plain".to_vec()), "FIN and Text, no RSV1");
}

// --- The server's frames as they are on the wire -------------------------------------------
//
// The in-memory client above inflates with the crate's own inflater, and a decoded message hides
// RSV1: these read the server's frames raw over TCP and inflate them with flate2 directly, with
// the negotiated window, so that a server that never compressed, ignored the window or kept its
// context when it said it would not, fails here.

async fn raw_open(addr: std::net::SocketAddr, path: &str, offer: &str) -> (Raw, String) {
    let request = handshake_request(&format!("Sec-WebSocket-Extensions: {offer}\r\n")).replacen(
        "GET /ws ",
        &format!("GET {path} "),
        1,
    );
    let (raw, head) = Raw::request(&addr.to_string(), request.as_bytes()).await;
    let head = head.expect("a response head");
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    (raw, head.to_ascii_lowercase())
}

/// Echoes `message` three times; returns each compressed payload's length, after checking that
/// each frame is FIN + RSV1 + `opcode` and that `decompress()` (called once per message) inflates
/// it to `message`.
async fn echo_compressed(
    raw: &mut Raw,
    opcode: u8,
    message: &[u8],
    mut decompress: impl FnMut() -> Option<Decompress>,
    shared: &mut Decompress,
) -> Vec<usize> {
    let mut sizes = Vec::new();
    for _ in 0..3 {
        raw.send(&frame(0x80 | opcode, message)).await;
        let (b0, payload) = raw.reader.next_data_frame().await;
        assert_eq!(b0, 0x80 | 0x40 | opcode, "FIN, RSV1 (compressed) and the opcode");
        let inflated = match decompress() {
            Some(mut fresh) => inflate(&mut fresh, &payload),
            None => inflate(shared, &payload),
        };
        assert_eq!(inflated.expect("inflates with the negotiated window"), message);
        sizes.push(payload.len());
    }
    sizes
}

#[tokio::test]
async fn on_the_wire_a_repeated_message_shrinks_with_context_takeover() {
    let (service, _ends) = echo_service(layer(Compression::enabled()), Behaviour::default());
    let server = TestServer::start(service).await;
    let (mut raw, head) = raw_open(server.addr, "/ws", "permessage-deflate").await;
    assert!(head.contains("sec-websocket-extensions: permessage-deflate\r\n"), "{head}");
    // One inflater for the connection: the server's context runs on from message to message.
    let mut context = Decompress::new(false);
    let message = json(20);
    let sizes = echo_compressed(&mut raw, 0x1, message.as_bytes(), || None, &mut context).await;
    assert!(sizes[0] < message.len() / 2, "compressed: {sizes:?} of {}", message.len());
    assert!(sizes[1] * 2 < sizes[0] && sizes[2] * 2 < sizes[0], "the repeats refer back: {sizes:?}");
}

#[tokio::test]
async fn on_the_wire_no_context_takeover_and_a_9_bit_window_are_kept() {
    // What tells the windows apart: with 15 bits this message shrinks to about half (its second
    // half refers back 2,000 bytes); within 9 bits it cannot shrink at all.
    let far = far_repeat();
    let wide = deflate(&mut Compress::new(flate2::Compression::default(), false), &far).len();
    assert!(wide < 2200, "a 15-bit window refers back 2,000 bytes: {wide}");

    let compression = Compression::enabled().server_no_context_takeover(true);
    let (service, _ends) = echo_service(layer(compression), Behaviour::default());
    let server = TestServer::start(service).await;
    let (mut raw, head) = raw_open(server.addr, "/ws", "permessage-deflate; server_max_window_bits=9").await;
    assert!(
        head.contains("sec-websocket-extensions: permessage-deflate; server_no_context_takeover; server_max_window_bits=9\r\n"),
        "{head}"
    );
    // A new 9-bit inflater for each message: no context is carried over, and none is needed.
    let fresh = || Some(Decompress::new_with_window_bits(false, 9));
    let mut unused = Decompress::new(false);
    let message = json(20);
    let sizes = echo_compressed(&mut raw, 0x1, message.as_bytes(), fresh, &mut unused).await;
    assert!(sizes[0] < message.len() / 2, "compressed: {sizes:?} of {}", message.len());
    assert!(sizes.iter().all(|size| *size == sizes[0]), "a repeat does not shrink: {sizes:?}");
    let sizes = echo_compressed(&mut raw, 0x2, &far, fresh, &mut unused).await;
    assert!(sizes.iter().all(|size| *size == sizes[0]), "{sizes:?}");
    assert!(sizes[0] >= far.len(), "no reference 2,000 bytes back, as a 9-bit window allows: {sizes:?}");
}

// --- The peer's mistakes, written as raw frames over TCP -------------------------------------

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A server that inflates but never compresses (so that tungstenite, which refuses RSV1, can
/// read its answers), and a client that offered permessage-deflate.
async fn raw_client(
    max_message_size: Option<usize>,
) -> (TestServer, Client, tokio::sync::mpsc::UnboundedReceiver<common::Ended>) {
    let compression = Compression::enabled().min_message_size(usize::MAX);
    let layer = WebSocketLayer::builder()
        .compression(compression)
        .max_message_size(max_message_size)
        .build()
        .unwrap();
    let (service, ends) = echo_service(layer, Behaviour::default());
    let server = TestServer::start(service).await;
    let mut request = server.ws_url("/ws").into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-extensions", "permessage-deflate".parse().unwrap());
    let (client, response) = connect_async(request).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-extensions"], "permessage-deflate");
    (server, client, ends)
}

fn deflate(compress: &mut Compress, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 100 + 1024);
    let start = compress.total_in();
    loop {
        let taken = (compress.total_in() - start) as usize;
        compress.compress_vec(&data[taken..], &mut out, FlushCompress::Sync).unwrap();
        if (compress.total_in() - start) as usize == data.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity());
    }
    out.truncate(out.len() - 4);
    out
}

/// A raw frame; the client masks it when it sends it.
fn compressed(payload: Vec<u8>, opcode: OpCode, fin: bool, rsv1: bool) -> TMessage {
    let header = FrameHeader { is_final: fin, rsv1, rsv2: false, rsv3: false, opcode, mask: None };
    TMessage::Frame(Frame::from_payload(header, Bytes::from(payload)))
}

async fn next(client: &mut Client) -> TMessage {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), client.next())
            .await
            .expect("a message within 10 s")
            .expect("the stream is open")
            .expect("no error");
        if !matches!(message, TMessage::Ping(_)) {
            return message;
        }
    }
}

async fn expect_close(client: &mut Client, code: u16) {
    match next(client).await {
        TMessage::Close(Some(frame)) => assert_eq!(u16::from(frame.code), code),
        other => panic!("expected Close {code}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_fragmented_compressed_message_with_a_ping_between_its_frames() {
    let (_server, mut client, mut ends) = raw_client(None).await;
    let mut compress = Compress::new(flate2::Compression::new(6), false);
    let text = json(300);
    let payload = deflate(&mut compress, text.as_bytes());
    let (a, b) = payload.split_at(payload.len() / 2);
    client.feed(compressed(a.to_vec(), OpCode::Data(Data::Text), false, true)).await.unwrap();
    client.feed(compressed(b"p".to_vec(), OpCode::Control(Control::Ping), true, false)).await.unwrap();
    client.feed(compressed(b.to_vec(), OpCode::Data(Data::Continue), true, false)).await.unwrap();
    client.flush().await.unwrap();
    assert_eq!(next(&mut client).await, TMessage::Pong(Bytes::from_static(b"p")));
    assert_eq!(next(&mut client).await, TMessage::text(text.clone()));
    // Context takeover: a second message may refer to the first.
    client
        .send(compressed(deflate(&mut compress, text.as_bytes()), OpCode::Data(Data::Text), true, true))
        .await
        .unwrap();
    assert_eq!(next(&mut client).await, TMessage::text(text));
    client.close(None).await.unwrap();
    assert_eq!(next_end(&mut ends).await.echoed, 2);
}

#[tokio::test]
async fn rsv1_misuse_and_corrupt_data_close_with_1002_and_1007() {
    let cases: [(TMessage, u16); 3] = [
        // RSV1 on a control frame.
        (compressed(b"p".to_vec(), OpCode::Control(Control::Ping), true, true), 1002),
        // RSV1 on a continuation of an uncompressed message (its first frame is sent first).
        (compressed(b"rest".to_vec(), OpCode::Data(Data::Continue), true, true), 1002),
        // Compressed data that does not inflate.
        (compressed(vec![0xFF; 16], OpCode::Data(Data::Binary), true, true), 1007),
    ];
    for (i, (frame, code)) in cases.into_iter().enumerate() {
        let (_server, mut client, mut ends) = raw_client(None).await;
        if i == 1 {
            client.feed(compressed(b"first".to_vec(), OpCode::Data(Data::Text), false, false)).await.unwrap();
        }
        client.send(frame).await.unwrap();
        expect_close(&mut client, code).await;
        let error = next_end(&mut ends).await.error;
        match code {
            1007 => assert!(matches!(error, Some(Error::InvalidCompressedData(_))), "{error:?}"),
            _ => assert!(matches!(error, Some(Error::Protocol(_))), "{error:?}"),
        }
    }
}

#[tokio::test]
async fn rsv1_without_negotiation_closes_with_1002() {
    let (service, mut ends) = echo_service(layer(Compression::enabled()), Behaviour::default());
    let server = TestServer::start(service).await;
    // No offer: nothing negotiated.
    let (mut client, response) = connect_async(server.ws_url("/ws")).await.unwrap();
    assert!(response.headers().get("sec-websocket-extensions").is_none());
    client.send(compressed(vec![0x4B, 0x04, 0x00], OpCode::Data(Data::Text), true, true)).await.unwrap();
    expect_close(&mut client, 1002).await;
    assert!(matches!(next_end(&mut ends).await.error, Some(Error::Protocol(_))));
}

/// 64 MiB of zeros compress to about 64 KiB: against a 1 MiB limit the socket stops at the
/// limit and closes with 1009. (`tests/deflate_bomb.rs` asserts the allocations.)
#[tokio::test]
async fn a_compression_bomb_closes_with_1009_at_the_limit() {
    let (_server, mut client, mut ends) = raw_client(Some(1 << 20)).await;
    let mut compress = Compress::new(flate2::Compression::new(9), false);
    let bomb = deflate(&mut compress, &vec![0u8; 64 << 20]);
    assert!(bomb.len() < 100 << 10);
    client.send(compressed(bomb, OpCode::Data(Data::Binary), true, true)).await.unwrap();
    expect_close(&mut client, 1009).await;
    match next_end(&mut ends).await.error {
        Some(Error::MessageTooBig { size, max }) => {
            assert_eq!(max, 1 << 20);
            assert!(size > max && size <= max + (64 << 10), "{size}");
        }
        other => panic!("{other:?}"),
    }
}

/// A frame the client sent: its first byte and its unmasked payload.
type ClientFrame = (u8, Vec<u8>);

/// A server written by hand behind the test client's hyper connection: it accepts
/// permessage-deflate, writes `frames` as they are, then reads what the client sends until the
/// end and hands it back (unmasked frames: first byte, payload).
fn raw_server(frames: Vec<u8>) -> (TestClient, tokio::sync::oneshot::Receiver<Vec<ClientFrame>>) {
    use std::sync::{Arc, Mutex};

    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = Arc::new(Mutex::new(Some(tx)));
    let service = tower::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        let (frames, tx) = (frames.clone(), tx.clone());
        let key = req.headers()["sec-websocket-key"].as_bytes().to_vec();
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let mut io = TokioIo::new(on_upgrade.await.unwrap());
            io.write_all(&frames).await.unwrap();
            let mut received = Vec::new();
            let _ = io.read_to_end(&mut received).await;
            let mut frames = Vec::new();
            let mut rest = &received[..];
            // The client's frames here are short: a 7-bit length, and a mask key.
            while rest.len() >= 6 {
                let len = usize::from(rest[1] & 0x7f);
                let (mask, payload) = (&rest[2..6], &rest[6..6 + len]);
                frames.push((rest[0], payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]).collect()));
                rest = &rest[6 + len..];
            }
            let _ = tx.lock().unwrap().take().map(|tx| tx.send(frames));
        });
        async move {
            let response = http::Response::builder()
                .status(101)
                .header("upgrade", "websocket")
                .header("connection", "upgrade")
                .header("sec-websocket-accept", derive_accept_key(&key))
                .header("sec-websocket-extensions", "permessage-deflate")
                .body(http_body_util::Empty::<Bytes>::new())
                .unwrap();
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    (TestClient::new(service), rx)
}

/// An unmasked server frame, in the 7-bit or 16-bit length form.
fn server_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![b0];
    match u8::try_from(payload.len()) {
        Ok(len) if len < 126 => out.push(len),
        _ => {
            out.push(126);
            out.extend_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// The test client's compressed side (tungstenite's frames, the client's own message layer)
/// inflates a fragmented compressed message, answers a Ping, and fails a server that sets RSV1
/// on a control frame with a Close 1002, as RFC 7692 §6 and RFC 6455 §7.1.7 ask.
#[tokio::test]
async fn the_test_client_inflates_fragments_and_fails_rsv1_on_a_control_frame() {
    let compressed = deflate(&mut Compress::new(flate2::Compression::fast(), false), b"hello, hello");
    let (first, second) = compressed.split_at(compressed.len() / 2);
    let mut frames = server_frame(0x40 | 0x01, first); // Text, RSV1, not final
    frames.extend(server_frame(0x89, b"are you there")); // a Ping between the fragments
    frames.extend(server_frame(0x80, second)); // the final continuation
    frames.extend(server_frame(0xC0 | 0x0A, b"")); // a Pong with RSV1: a protocol error
    let (client, received) = raw_server(frames);
    let mut socket = client.connect("/ws").compression(Compression::enabled()).await.unwrap();
    assert!(socket.compression().is_some());
    assert_eq!(socket.recv().await.unwrap(), Message::Ping(Bytes::from_static(b"are you there")));
    assert_eq!(socket.recv().await.unwrap(), Message::text("hello, hello"));
    let error = socket.recv().await.unwrap_err();
    assert!(
        matches!(&error, tower_websockets::test::TestError::Socket(Error::Protocol(m)) if m.contains("RSV1")),
        "{error}"
    );
    assert!(socket.is_closed().await);
    drop(socket);
    let frames = received.await.unwrap();
    assert_eq!(frames[0], (0x8A, b"are you there".to_vec()), "the Pong");
    assert_eq!(frames[1].0, 0x88, "then a Close");
    assert_eq!(&frames[1].1[..2], &1002u16.to_be_bytes());
    assert_eq!(frames.len(), 2);
}

/// Data that does not inflate fails the test client's side with 1007; a large message that
/// inflates to many times its size comes whole.
#[tokio::test]
async fn the_test_client_inflates_large_messages_and_fails_corrupt_ones_with_1007() {
    let big = vec![b'a'; 1 << 20];
    let compressed = deflate(&mut Compress::new(flate2::Compression::fast(), false), &big);
    assert!(compressed.len() < big.len() / 50, "{}", compressed.len());
    let mut frames = server_frame(0xC2, &compressed); // Binary, RSV1
    frames.extend(server_frame(0xC2, &[0xff; 8])); // not deflate data
    let (client, received) = raw_server(frames);
    let mut socket = client.connect("/ws").compression(Compression::enabled()).await.unwrap();
    assert_eq!(socket.recv().await.unwrap(), Message::binary(big));
    let error = socket.recv().await.unwrap_err();
    assert!(
        matches!(error, tower_websockets::test::TestError::Socket(Error::InvalidCompressedData(_))),
        "{error}"
    );
    drop(socket);
    let frames = received.await.unwrap();
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].0, 0x88);
    assert_eq!(&frames[0].1[..2], &1007u16.to_be_bytes());
}

/// Every rule the compressed test client's message layer checks on a server's frames fails the
/// connection with the right error and Close code (RFC 6455 §5, §7.4.1, §8.1; RFC 7692 §6).
#[tokio::test]
async fn the_test_client_fails_each_broken_rule_with_its_close_code() {
    let masked = vec![0x82, 0x80 | 2, 1, 2, 3, 4, 0, 0];
    let cases: [(&str, Vec<u8>, u16); 10] = [
        ("masked", masked, 1002),
        ("RSV2", server_frame(0xA2, b"x"), 1002),
        ("fragmented control", server_frame(0x09, b""), 1002),
        ("control over 125 bytes", server_frame(0x89, &[0; 126]), 1002),
        ("continuation", server_frame(0x80, b"x"), 1002),
        ("new data frame", [server_frame(0x01, b"a"), server_frame(0x81, b"b")].concat(), 1002),
        ("reserved data opcode", server_frame(0x83, b""), 1002),
        ("1 byte", server_frame(0x88, &[3]), 1002),
        ("1005 may not be sent", server_frame(0x88, &1005u16.to_be_bytes()), 1002),
        ("invalid UTF-8", server_frame(0x81, &[0xff]), 1007),
    ];
    for (name, frames, code) in cases {
        let (client, received) = raw_server(frames);
        let mut socket = client.connect("/ws").compression(Compression::enabled()).await.unwrap();
        let error = socket.recv().await.unwrap_err();
        let tower_websockets::test::TestError::Socket(error) = error else { panic!("{name}: {error}") };
        assert_eq!(error.close_code().map(|code| code.0), Some(code), "{name}: {error}");
        drop(socket);
        let frames = received.await.unwrap();
        assert_eq!(frames.len(), 1, "{name}");
        assert_eq!((frames[0].0, &frames[0].1[..2]), (0x88, &code.to_be_bytes()[..]), "{name}");
    }
}
