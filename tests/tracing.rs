//! The per-socket span and its debug events.
#![cfg(feature = "test-util")]

mod common;

use std::time::Duration;

use common::{Behaviour, Captured, echo_service};
use tower_websockets::{WebSocketLayer, test::TestClient};

/// Captures every debug event of this thread (the tests run on a current-thread runtime, so
/// spawned tasks are on it too) until the guard drops.
fn capture_debug_events() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .without_time()
        .with_writer(move || writer.clone())
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

#[tokio::test(start_paused = true)]
async fn each_socket_has_a_span_with_open_close_and_timeout_events() {
    let (captured, _guard) = capture_debug_events();

    let layer = WebSocketLayer::builder()
        .keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let behaviour = Behaviour { protocols: vec!["chat"], ..Behaviour::default() };
    let (service, mut ends) = echo_service(layer, behaviour);
    let client = TestClient::new(service).timeout(Duration::from_secs(60));

    let mut socket = client.connect("/ws").protocols(["chat"]).await.unwrap();
    socket.close().await.unwrap();
    common::next_end(&mut ends).await;
    let _silent = client.connect("/ws").http2().await.unwrap();
    common::next_end(&mut ends).await;

    let log = captured.text();
    let http1_span = r#"websocket{path=/ws http=HTTP/1.1 peer=None protocol="chat"}"#;
    let http2_span = "websocket{path=/ws http=HTTP/2.0 peer=None}";
    for (span, event) in [
        (http1_span, "WebSocket opened"),
        (http1_span, "WebSocket closed code=1000 (normal closure)"),
        (http2_span, "WebSocket opened"),
        (http2_span, "WebSocket keep-alive timeout: dropping the peer timeout=5s"),
        (http2_span, "WebSocket closed without a closing handshake"),
    ] {
        assert!(
            log.lines().any(|line| line.contains(span) && line.contains(event)),
            "no `{event}` in span `{span}`:\n{log}"
        );
    }
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn the_span_names_the_peer_from_axum_connect_info() {
    use axum::{Router, extract::connect_info::MockConnectInfo, routing::any};
    use tower_websockets::WebSocketUpgrade;

    let (captured, _guard) = capture_debug_events();

    let peer: std::net::SocketAddr = "192.0.2.7:4242".parse().unwrap();
    let app = Router::new()
        .route("/live", any(|upgrade: WebSocketUpgrade| async { upgrade.on_upgrade(|_socket| async {}) }))
        .layer(WebSocketLayer::new())
        .layer(MockConnectInfo(peer));
    let client = TestClient::new(app);
    let mut socket = client.connect("/live").await.unwrap();
    assert!(socket.is_closed().await);

    let log = captured.text();
    assert!(
        log.lines()
            .any(|line| line.contains("websocket{path=/live http=HTTP/1.1 peer=Some(192.0.2.7:4242)}")
                && line.contains("WebSocket opened")),
        "{log}"
    );
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn the_span_names_the_peer_from_a_real_connect_info() {
    use axum::{Router, routing::any};
    use tower_websockets::WebSocketUpgrade;

    let (captured, _guard) = capture_debug_events();

    let app = Router::new()
        .route("/live", any(|upgrade: WebSocketUpgrade| async { upgrade.on_upgrade(|_socket| async {}) }))
        .layer(WebSocketLayer::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await
    });
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let (mut socket, _) = tokio_tungstenite::client_async(format!("ws://{addr}/live"), tcp).await.unwrap();
    let _ = socket.close(None).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.abort();

    let log = captured.text();
    let span = format!("websocket{{path=/live http=HTTP/1.1 peer=Some({local})}}");
    assert!(
        log.lines().any(|line| line.contains(&span) && line.contains("WebSocket opened")),
        "{span}\n{log}"
    );
}

/// The number after `name=` on `line`.
fn field(line: &str, name: &str) -> f64 {
    let start =
        line.find(&format!(" {name}=")).unwrap_or_else(|| panic!("no {name} in {line}")) + name.len() + 2;
    let value: String = line[start..].chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    value.parse().unwrap_or_else(|_| panic!("{name} in {line}"))
}

/// When a socket ends, one debug event in its span tells its story: lifetime, messages and wire
/// bytes each way, the close code, who sent it and why, and the compression ratio.
#[tokio::test]
async fn a_socket_that_ends_logs_its_story_in_one_event() {
    use tower_websockets::{CloseCode, Compression, Message};

    let (captured, _guard) = capture_debug_events();
    let layer = WebSocketLayer::builder().compression(Compression::enabled()).build().unwrap();
    let (service, mut ends) = echo_service(layer.clone(), Behaviour::default());
    let client = TestClient::new(service);

    // Closed by the peer, uncompressed: every byte is known. In: "hello" (2 + 4 mask + 5),
    // [1, 2, 3] (2 + 4 + 3), the Close 1000 "bye" (2 + 4 + 2 + 3) = 31. Out: the two echoes
    // (7 + 5) and the Close's echo (2 + 2 + 3) = 19.
    let mut socket = client.connect("/peer").await.unwrap();
    socket.send_text("hello").await.unwrap();
    assert_eq!(socket.recv_text().await.unwrap(), "hello");
    socket.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(socket.recv().await.unwrap(), Message::binary(vec![1, 2, 3]));
    socket.close_with(CloseCode::NORMAL, "bye").await.unwrap();
    common::next_end(&mut ends).await;

    // Compressed, and closed by the shutdown.
    let mut compressed = client.connect("/deflate").compression(Compression::enabled()).await.unwrap();
    let text = "the same words again and again, ".repeat(32);
    for _ in 0..4 {
        compressed.send_text(&text).await.unwrap();
        assert_eq!(compressed.recv_text().await.unwrap(), text);
    }
    let shutdown = layer.shutdown_handle();
    let (report, close) = tokio::join!(shutdown.shutdown(Duration::from_secs(5)), compressed.recv_close());
    assert_eq!(report.cut, 0);
    assert_eq!(close.unwrap().map(|f| f.code), Some(CloseCode::GOING_AWAY));
    common::next_end(&mut ends).await;

    let log = captured.text();
    let ends: Vec<&str> = log.lines().filter(|line| line.contains("WebSocket closed")).collect();
    assert_eq!(ends.len(), 2, "one event per socket:\n{log}");

    let peer = ends.iter().find(|line| line.contains("websocket{path=/peer")).expect("/peer's event");
    for expected in [
        "WebSocket closed code=1000 (normal closure) closed_by=\"peer\" reason=\"bye\" lifetime=",
        " messages_received=2 messages_sent=2 bytes_received=31 bytes_sent=19",
    ] {
        assert!(peer.contains(expected), "{expected}\nin {peer}");
    }
    assert!(!peer.contains("compression_ratio"), "{peer}");

    let shutdown =
        ends.iter().find(|line| line.contains("websocket{path=/deflate")).expect("/deflate's event");
    assert!(
        shutdown.contains("code=1001 (going away) closed_by=\"shutdown\" reason=\"server shutting down\""),
        "{shutdown}"
    );
    assert_eq!((field(shutdown, "messages_received"), field(shutdown, "messages_sent")), (4.0, 4.0));
    let wire = field(shutdown, "bytes_received") + field(shutdown, "bytes_sent");
    let ratio = field(shutdown, "compression_ratio");
    // 8 messages of 1,024 bytes over what went on the wire.
    assert!((ratio - 8.0 * 1024.0 / wire).abs() < 0.01, "{ratio} for {wire} wire bytes: {shutdown}");
    assert!(ratio > 5.0, "repeated text compresses well: {ratio}");
}

/// A connection that ends without a Close is told as such, with 1006 and the cause.
#[tokio::test]
async fn a_socket_that_ends_without_a_close_says_why() {
    let (captured, _guard) = capture_debug_events();
    let (service, mut ends) = echo_service(WebSocketLayer::new(), Behaviour::default());
    let client = TestClient::new(service);
    let mut socket = client.connect("/ws").await.unwrap();
    socket.send_text("x").await.unwrap();
    assert_eq!(socket.recv_text().await.unwrap(), "x");
    drop(socket);
    common::next_end(&mut ends).await;

    let log = captured.text();
    let line = log.lines().find(|line| line.contains("WebSocket closed")).expect("the event");
    assert!(
        line.contains(
            "WebSocket closed without a closing handshake code=1006 (abnormal closure) closed_by=\"none\" \
             reason=\"connection reset\""
        ),
        "{line}"
    );
    assert!(line.contains("messages_received=1 messages_sent=1 bytes_received=7 bytes_sent=3"), "{line}");
}
