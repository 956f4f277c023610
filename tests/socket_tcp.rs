//! Whole sockets over real TCP (127.0.0.1, port 0) through a real hyper server, with
//! tokio-tungstenite as the client: the network path, kept on purpose beside the in-memory tests.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Behaviour, TestServer, echo_service, next_end};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{
        self, Message as TMessage,
        client::IntoClientRequest,
        protocol::{
            CloseFrame as TCloseFrame,
            frame::Frame,
            frame::coding::{CloseCode as TCloseCode, Data, OpCode},
        },
    },
};
use tower_websockets::{CloseCode, Error, WebSocketLayer};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn connect(server: &TestServer) -> Client {
    connect_async(server.ws_url("/ws")).await.expect("handshake").0
}

async fn next(client: &mut Client) -> TMessage {
    tokio::time::timeout(Duration::from_secs(5), client.next())
        .await
        .expect("a message within 5 s")
        .expect("the stream is open")
        .expect("no error")
}

/// Next message that is not a keep-alive Ping.
async fn next_data(client: &mut Client) -> TMessage {
    loop {
        match next(client).await {
            TMessage::Ping(_) => {}
            other => return other,
        }
    }
}

#[tokio::test]
async fn text_binary_empty_and_large_messages_echo() {
    let (service, mut ends) = echo_service(WebSocketLayer::new(), Behaviour::default());
    let server = TestServer::start(service).await;
    let mut client = connect(&server).await;

    let big: Vec<u8> = (0..0x1FFFF).map(|i| (i % 251) as u8).collect();
    let messages = [
        TMessage::text("hello"),
        TMessage::text("привет 👋"),
        TMessage::binary(vec![0u8, 1, 2, 255]),
        TMessage::text(""),
        TMessage::binary(Vec::new()),
        TMessage::binary(vec![7u8; 130]),
        TMessage::binary(big),
    ];
    for message in messages {
        client.send(message.clone()).await.unwrap();
        assert_eq!(next_data(&mut client).await, message);
    }
    client.close(None).await.unwrap();
    let ended = next_end(&mut ends).await;
    assert_eq!(ended.echoed, 7);
    assert!(ended.error.is_none(), "{:?}", ended.error);
}

#[tokio::test]
async fn a_fragmented_message_is_reassembled() {
    let (service, _ends) = echo_service(WebSocketLayer::new(), Behaviour::default());
    let server = TestServer::start(service).await;
    let mut client = connect(&server).await;

    let first = Frame::message(Bytes::from_static(b"Hello, "), OpCode::Data(Data::Text), false);
    let middle = Frame::message(Bytes::from_static(b"fragmented "), OpCode::Data(Data::Continue), false);
    let last = Frame::message(Bytes::from_static(b"world"), OpCode::Data(Data::Continue), true);
    for frame in [first, middle, last] {
        client.send(TMessage::Frame(frame)).await.unwrap();
    }
    assert_eq!(next_data(&mut client).await, TMessage::text("Hello, fragmented world"));
}

#[tokio::test]
async fn a_ping_gets_a_pong_with_the_same_payload() {
    let (service, _ends) = echo_service(WebSocketLayer::new(), Behaviour::default());
    let server = TestServer::start(service).await;
    let mut client = connect(&server).await;
    client.send(TMessage::Ping(Bytes::from_static(b"are you there"))).await.unwrap();
    assert_eq!(next_data(&mut client).await, TMessage::Pong(Bytes::from_static(b"are you there")));
}

#[tokio::test]
async fn the_client_closes_and_the_handshake_completes() {
    let (service, mut ends) = echo_service(WebSocketLayer::new(), Behaviour::default());
    let server = TestServer::start(service).await;
    let mut client = connect(&server).await;
    client
        .send(TMessage::Close(Some(TCloseFrame { code: TCloseCode::Normal, reason: "bye".into() })))
        .await
        .unwrap();
    match next_data(&mut client).await {
        TMessage::Close(Some(frame)) => assert_eq!(frame.code, TCloseCode::Normal),
        other => panic!("expected the server's Close, got {other:?}"),
    }
    // The server then closes the TCP connection: the client's stream ends.
    let end = tokio::time::timeout(Duration::from_secs(5), client.next()).await.unwrap();
    assert!(end.is_none(), "{end:?}");
    let ended = next_end(&mut ends).await;
    let close = ended.close.expect("the handler saw the client's Close");
    assert_eq!((close.code, close.reason.as_str()), (CloseCode::NORMAL, "bye"));
    assert!(ended.error.is_none(), "{:?}", ended.error);
}

#[tokio::test]
async fn the_server_closes_and_the_handshake_completes() {
    let behaviour =
        Behaviour { close_on_request: Some((CloseCode(4000), "done here")), ..Behaviour::default() };
    let (service, mut ends) = echo_service(WebSocketLayer::new(), behaviour);
    let server = TestServer::start(service).await;
    let mut client = connect(&server).await;
    client.send(TMessage::text("close-me")).await.unwrap();
    match next_data(&mut client).await {
        TMessage::Close(Some(frame)) => {
            assert_eq!((u16::from(frame.code), frame.reason.as_str()), (4000, "done here"));
        }
        other => panic!("expected the server's Close, got {other:?}"),
    }
    // tungstenite answers the Close as the client reads on; then the server drops the TCP.
    let end = tokio::time::timeout(Duration::from_secs(5), client.next()).await.unwrap();
    assert!(end.is_none(), "{end:?}");
    let ended = next_end(&mut ends).await;
    assert!(matches!(ended.closed_by_server, Some(Ok(()))), "{:?}", ended.closed_by_server);
}

#[tokio::test]
async fn subprotocols_are_chosen_in_the_servers_order() {
    let behaviour = Behaviour { protocols: vec!["chat.v2", "chat.v1"], ..Behaviour::default() };
    let (service, _ends) = echo_service(WebSocketLayer::new(), behaviour);
    let server = TestServer::start(service).await;

    let cases: [(&str, Option<&str>); 4] = [
        ("chat.v1, chat.v2", Some("chat.v2")),
        ("chat.v1", Some("chat.v1")),
        ("other, CHAT.V2", None),
        ("", None),
    ];
    for (offer, chosen) in cases {
        let mut request = server.ws_url("/ws").into_client_request().unwrap();
        if !offer.is_empty() {
            request.headers_mut().insert("sec-websocket-protocol", offer.parse().unwrap());
        }
        let result = connect_async(request).await;
        match chosen {
            Some(chosen) => {
                let (mut client, response) = result.expect("handshake");
                assert_eq!(response.headers()["sec-websocket-protocol"], chosen, "offer {offer}");
                client.send(TMessage::text("protocol?")).await.unwrap();
                assert_eq!(next_data(&mut client).await, TMessage::text(chosen));
            }
            None if offer.is_empty() => {
                let (_, response) = result.expect("handshake");
                assert!(response.headers().get("sec-websocket-protocol").is_none());
            }
            None => {
                // No match: the header is left out, and the client decides. tungstenite's client
                // gives up when none of its offers was chosen.
                let error = result.expect_err("tungstenite's client refuses a missing protocol");
                assert!(
                    matches!(
                        error,
                        tungstenite::Error::Protocol(
                            tungstenite::error::ProtocolError::SecWebSocketSubProtocolError(
                                tungstenite::error::SubProtocolError::NoSubProtocol
                            )
                        )
                    ),
                    "offer {offer}: {error:?}"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_message_over_the_limit_closes_with_1009() {
    let layer = WebSocketLayer::builder().max_message_size(1024).build().unwrap();
    let (service, mut ends) = echo_service(layer, Behaviour::default());
    let server = TestServer::start(service).await;
    let mut client = connect(&server).await;

    client.send(TMessage::binary(vec![1u8; 1024])).await.unwrap();
    assert_eq!(next_data(&mut client).await, TMessage::binary(vec![1u8; 1024]));
    client.send(TMessage::binary(vec![1u8; 1025])).await.unwrap();
    match next_data(&mut client).await {
        TMessage::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1009),
        other => panic!("expected Close 1009, got {other:?}"),
    }
    let ended = next_end(&mut ends).await;
    assert!(matches!(ended.error, Some(Error::MessageTooBig { size: 1025, max: 1024 })), "{:?}", ended.error);
}

#[tokio::test]
async fn a_frame_over_the_limit_closes_with_1009() {
    let layer = WebSocketLayer::builder().max_frame_size(100).build().unwrap();
    let (service, mut ends) = echo_service(layer, Behaviour::default());
    let server = TestServer::start(service).await;
    let mut client = connect(&server).await;
    client.send(TMessage::binary(vec![1u8; 101])).await.unwrap();
    match next_data(&mut client).await {
        TMessage::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1009),
        other => panic!("expected Close 1009, got {other:?}"),
    }
    assert!(matches!(next_end(&mut ends).await.error, Some(Error::MessageTooBig { .. })));
}

#[tokio::test]
async fn invalid_utf8_closes_with_1007() {
    let (service, mut ends) = echo_service(WebSocketLayer::new(), Behaviour::default());
    let server = TestServer::start(service).await;
    let mut client = connect(&server).await;
    let frame = Frame::message(Bytes::from_static(&[0xff, 0xfe, 0x41]), OpCode::Data(Data::Text), true);
    client.send(TMessage::Frame(frame)).await.unwrap();
    match next_data(&mut client).await {
        TMessage::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1007),
        other => panic!("expected Close 1007, got {other:?}"),
    }
    assert!(matches!(next_end(&mut ends).await.error, Some(Error::InvalidUtf8)));
}

#[tokio::test]
async fn large_messages_keep_their_order_among_pings_and_small_messages() {
    // Large whole messages are taken off tungstenite's path by the transport: the Pongs and
    // the echoes still come back in the order the client sent.
    let (service, mut ends) = echo_service(WebSocketLayer::new(), Behaviour::default());
    let server = TestServer::start(service).await;
    let mut client = connect(&server).await;
    let big: Vec<u8> = (0..300_000).map(|i| (i % 249) as u8).collect();
    let big_text: String = "añ€𝄞".chars().cycle().take(20_000).collect();
    let sent = [
        TMessage::Ping(Bytes::from_static(b"1")),
        TMessage::binary(big.clone()),
        TMessage::text("small"),
        TMessage::text(big_text.clone()),
        TMessage::Ping(Bytes::from_static(b"2")),
        TMessage::binary(vec![3u8; 513]),
        TMessage::binary(vec![4u8; 512]),
    ];
    for message in sent {
        client.feed(message).await.unwrap();
    }
    client.flush().await.unwrap();
    let expected = [
        TMessage::Pong(Bytes::from_static(b"1")),
        TMessage::binary(big),
        TMessage::text("small"),
        TMessage::text(big_text),
        TMessage::Pong(Bytes::from_static(b"2")),
        TMessage::binary(vec![3u8; 513]),
        TMessage::binary(vec![4u8; 512]),
    ];
    for message in expected {
        assert_eq!(next_data(&mut client).await, message);
    }
    client.close(None).await.unwrap();
    let ended = next_end(&mut ends).await;
    assert_eq!(ended.echoed, 5);
    assert!(ended.error.is_none(), "{:?}", ended.error);
}

#[tokio::test]
async fn a_large_message_with_invalid_utf8_closes_with_1007() {
    let (service, mut ends) = echo_service(WebSocketLayer::new(), Behaviour::default());
    let server = TestServer::start(service).await;
    let mut client = connect(&server).await;
    let mut payload = vec![b'a'; 100_000];
    payload[99_000] = 0xFF;
    client.send(TMessage::text("before")).await.unwrap();
    let frame = Frame::message(Bytes::from(payload), OpCode::Data(Data::Text), true);
    client.send(TMessage::Frame(frame)).await.unwrap();
    assert_eq!(next_data(&mut client).await, TMessage::text("before"));
    match next_data(&mut client).await {
        TMessage::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1007),
        other => panic!("expected Close 1007, got {other:?}"),
    }
    assert!(matches!(next_end(&mut ends).await.error, Some(Error::InvalidUtf8)));
}

#[tokio::test]
async fn a_protocol_error_closes_with_1002() {
    let (service, mut ends) = echo_service(WebSocketLayer::new(), Behaviour::default());
    let server = TestServer::start(service).await;
    let mut client = connect(&server).await;
    // A continuation frame with no message to continue.
    let frame = Frame::message(Bytes::from_static(b"orphan"), OpCode::Data(Data::Continue), true);
    client.send(TMessage::Frame(frame)).await.unwrap();
    match next_data(&mut client).await {
        TMessage::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1002),
        other => panic!("expected Close 1002, got {other:?}"),
    }
    assert!(matches!(next_end(&mut ends).await.error, Some(Error::Protocol(_))));
}

#[tokio::test]
async fn a_64_bit_length_with_its_top_bit_set_closes_with_1002_after_the_frames_before_it() {
    use tokio::io::AsyncWriteExt;

    let (service, mut ends) = echo_service(WebSocketLayer::new(), Behaviour::default());
    let server = TestServer::start(service).await;
    let mut client = connect(&server).await;
    // A masked text frame "hi" (an all-zero mask key), then in the same write a binary frame
    // header whose 64-bit length has its most significant bit set (RFC 6455 §5.2: MUST be 0).
    let mut bytes = vec![0x81, 0x82, 0, 0, 0, 0, b'h', b'i'];
    bytes.extend_from_slice(&[0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4]);
    let MaybeTlsStream::Plain(tcp) = client.get_mut() else { panic!("plain TCP") };
    tcp.write_all(&bytes).await.unwrap();

    assert_eq!(next_data(&mut client).await, TMessage::text("hi"), "the frame before is served");
    match next_data(&mut client).await {
        TMessage::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1002),
        other => panic!("expected Close 1002, got {other:?}"),
    }
    let ended = next_end(&mut ends).await;
    assert_eq!(ended.echoed, 1);
    match ended.error {
        Some(Error::Protocol(message)) => assert!(message.contains("most significant bit"), "{message}"),
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

/// With no frame limit of its own, a frame is held to the message limit: a header announcing
/// 2^40 bytes is refused with 1009 before anything is allocated for it.
#[tokio::test]
async fn without_a_frame_limit_a_huge_frame_header_closes_with_1009() {
    use tokio::io::AsyncWriteExt;

    let layer = WebSocketLayer::builder().max_frame_size(None).max_message_size(1024).build().unwrap();
    let (service, mut ends) = echo_service(layer, Behaviour::default());
    let server = TestServer::start(service).await;
    let mut client = connect(&server).await;
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 40).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    let MaybeTlsStream::Plain(tcp) = client.get_mut() else { panic!("plain TCP") };
    tcp.write_all(&header).await.unwrap();
    match next_data(&mut client).await {
        TMessage::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1009),
        other => panic!("expected Close 1009, got {other:?}"),
    }
    assert!(matches!(next_end(&mut ends).await.error, Some(Error::MessageTooBig { max: 1024, .. })));
}

/// Over real TCP, in real time: each Ping comes no sooner than the interval after the last
/// traffic, and not much later. (The exact instants are asserted in paused time over the
/// in-memory client: `keep_alive_pings_come_exactly_after_each_interval_of_silence` in
/// tests/socket_in_memory.rs.)
#[tokio::test]
async fn a_keep_alive_ping_arrives_after_an_interval_of_silence() {
    const INTERVAL: Duration = Duration::from_millis(200);
    let layer = WebSocketLayer::builder().keep_alive_interval(INTERVAL).build().unwrap();
    let (service, _ends) = echo_service(layer, Behaviour::default());
    let server = TestServer::start(service).await;
    // The server's clock starts after this instant (at the upgrade), so the wait measured from
    // here is never shorter than the one the server timed.
    let mut silent_since = tokio::time::Instant::now();
    let mut client = connect(&server).await;
    // Read without sending: the first thing to arrive must be the server's Ping. (tungstenite
    // answers each Ping with a Pong, which is traffic: the next interval starts from there.)
    for n in 1..=2 {
        match next(&mut client).await {
            TMessage::Ping(_) => {}
            other => panic!("expected keep-alive Ping {n}, got {other:?}"),
        }
        let waited = silent_since.elapsed();
        assert!(
            waited >= INTERVAL,
            "Ping {n} came after {waited:?} of silence, before the {INTERVAL:?} interval"
        );
        assert!(waited < INTERVAL + Duration::from_secs(2), "Ping {n} came only after {waited:?}");
        // Let tungstenite write its Pong; the server hears it after this instant.
        client.flush().await.unwrap();
        silent_since = tokio::time::Instant::now();
    }
}

/// An echo server that pings after 100 ms of silence and drops a peer 100 ms later.
async fn fast_keep_alive_server() -> (TestServer, tokio::sync::mpsc::UnboundedReceiver<common::Ended>) {
    let layer = WebSocketLayer::builder()
        .keep_alive_interval(Duration::from_millis(100))
        .keep_alive_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let (service, ends) = echo_service(layer, Behaviour::default());
    (TestServer::start(service).await, ends)
}

#[tokio::test]
async fn the_keep_alive_timeout_drops_a_peer_that_never_answers() {
    let (server, mut ends) = fast_keep_alive_server().await;
    // A client that completes the handshake and then never reads, so never answers a Ping.
    let mut silent = connect(&server).await;
    let ended = next_end(&mut ends).await;
    assert!(
        matches!(ended.error, Some(Error::KeepAliveTimeout { timeout }) if timeout == Duration::from_millis(100)),
        "{:?}",
        ended.error
    );
    // The TCP connection is closed: after the Ping, the client's stream ends without a Close.
    let mut rest = Vec::new();
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match silent.next().await {
                Some(Ok(message)) => rest.push(message),
                other => return other,
            }
        }
    })
    .await
    .expect("the connection ends");
    assert!(
        matches!(end, None | Some(Err(tungstenite::Error::Protocol(_) | tungstenite::Error::Io(_)))),
        "{end:?}"
    );
    assert!(rest.iter().all(|m| matches!(m, TMessage::Ping(_))), "{rest:?}");
}

#[tokio::test]
async fn the_keep_alive_timeout_keeps_a_peer_that_answers() {
    let (server, mut ends) = fast_keep_alive_server().await;
    let mut client = connect(&server).await;
    // Reading answers the Pings (tungstenite replies as it reads). Stay silent otherwise for
    // several intervals and timeouts.
    let mut pings = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1000);
    while let Ok(message) = tokio::time::timeout_at(deadline, client.next()).await {
        match message {
            Some(Ok(TMessage::Ping(_))) => pings += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(pings >= 3, "only {pings} pings");
    // Still open: an echo works, and the handler has not ended.
    client.send(TMessage::text("still here")).await.unwrap();
    assert_eq!(next_data(&mut client).await, TMessage::text("still here"));
    assert!(ends.try_recv().is_err());
}
