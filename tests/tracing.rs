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
