//! The `metrics` feature: what a recorder sees (here the Prometheus exporter, installed for this
//! whole test binary), checked against the traffic the test made.

mod common;

use common::{Behaviour, echo_service};
use metrics_exporter_prometheus::PrometheusBuilder;
use tower_websockets::{
    CloseCode, Compression, Message, WebSocketLayer,
    broadcast::{Hub, LagPolicy},
    test::TestClient,
};

/// The value of the sample `series` (its name and labels, as rendered) in `text`.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no `{series}` in:\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn the_recorder_sees_the_traffic_the_handshakes_and_the_hub() {
    let prometheus = PrometheusBuilder::new().install_recorder().unwrap();

    let layer = WebSocketLayer::builder()
        .allowed_origins(["https://example.com"])
        .compression(Compression::enabled())
        .build()
        .unwrap();
    let (service, mut ends) = echo_service(layer.clone(), Behaviour::default());
    let client = TestClient::new(service);

    // Two sockets: 3 texts and 1 binary in, echoed; closed by the peer with 1000 and 4001.
    let mut first = client
        .connect("/ws")
        .origin("https://example.com")
        .compression(Compression::enabled())
        .await
        .unwrap();
    for text in ["a", "bb", "ccc"] {
        first.send_text(text).await.unwrap();
        assert_eq!(first.recv_text().await.unwrap(), text);
    }
    let mut second = client
        .connect("/ws")
        .origin("https://example.com")
        .compression(Compression::enabled())
        .await
        .unwrap();
    second.send(Message::binary(vec![0u8; 100])).await.unwrap();
    assert_eq!(second.recv().await.unwrap(), Message::binary(vec![0u8; 100]));

    let open = prometheus.render();
    assert_eq!(sample(&open, "websocket_server_active_connections"), 2.0);

    first.close_with(CloseCode::NORMAL, "done").await.unwrap();
    second.close_with(CloseCode(4001), "app").await.unwrap();
    common::next_end(&mut ends).await;
    common::next_end(&mut ends).await;
    // A refused origin, and a request that is not a handshake at all.
    assert!(client.connect("/ws").origin("https://evil.example").await.is_err());
    let plain = client.get("/ws").await.unwrap();
    assert_eq!(plain.status(), http::StatusCode::BAD_REQUEST);

    // A hub whose one subscriber falls behind: 3 published, 2 dropped (a queue of one message).
    let hub = Hub::builder().max_queued_bytes(1).on_lag(LagPolicy::DropOldest).build().unwrap();
    let mut subscriber = hub.subscriber();
    subscriber.subscribe("t");
    for n in 0..3 {
        hub.publish("t", format!("{n}"));
    }
    assert_eq!(hub.stats().dropped, 2);

    let text = prometheus.render();
    for (series, value) in [
        ("websocket_server_active_connections", 0.0),
        (r#"websocket_server_handshakes{websocket_handshake_outcome="accepted"}"#, 2.0),
        (
            r#"websocket_server_handshakes{websocket_handshake_outcome="refused",error_type="origin",http_response_status_code="403"}"#,
            1.0,
        ),
        (
            r#"websocket_server_handshakes{websocket_handshake_outcome="refused",error_type="not_websocket",http_response_status_code="400"}"#,
            1.0,
        ),
        (r#"websocket_server_messages{network_io_direction="receive",websocket_message_type="text"}"#, 3.0),
        (r#"websocket_server_messages{network_io_direction="transmit",websocket_message_type="text"}"#, 3.0),
        (r#"websocket_server_messages{network_io_direction="receive",websocket_message_type="binary"}"#, 1.0),
        (
            r#"websocket_server_messages{network_io_direction="transmit",websocket_message_type="binary"}"#,
            1.0,
        ),
        (
            r#"websocket_server_message_size_sum{network_io_direction="receive",websocket_message_type="text"}"#,
            6.0,
        ),
        (
            r#"websocket_server_message_size_count{network_io_direction="transmit",websocket_message_type="binary"}"#,
            1.0,
        ),
        (
            r#"websocket_server_message_size_sum{network_io_direction="transmit",websocket_message_type="binary"}"#,
            100.0,
        ),
        (
            r#"websocket_server_connection_duration_count{websocket_close_code="1000",websocket_close_initiator="peer"}"#,
            1.0,
        ),
        (
            r#"websocket_server_connection_duration_count{websocket_close_code="4xxx",websocket_close_initiator="peer"}"#,
            1.0,
        ),
        ("websocket_server_compression_ratio_count", 2.0),
        ("websocket_hub_published", 3.0),
        ("websocket_hub_dropped", 2.0),
        ("websocket_hub_relay_failures", 0.0),
    ] {
        assert_eq!(sample(&text, series), value, "{series}");
    }
    // The wire bytes: at least every payload, each way, and the same as the sockets' own count.
    let received = sample(&text, r#"websocket_server_bytes{network_io_direction="receive"}"#);
    let sent = sample(&text, r#"websocket_server_bytes{network_io_direction="transmit"}"#);
    assert!(received > 0.0 && sent > 0.0, "{received} {sent}");
    // No path, origin or address among the labels.
    for unbounded in ["/ws", "example", "127.0.0.1", "path="] {
        assert!(!text.contains(unbounded), "{unbounded} in:\n{text}");
    }
}
