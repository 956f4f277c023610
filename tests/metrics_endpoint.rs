//! The echo example's `--metrics ADDR`, as a process: `/metrics` in Prometheus' text format,
//! scraped after some traffic, counts what the test sent.
#![cfg(all(unix, feature = "metrics"))]

mod common;

use std::time::Duration;

use common::echo_process::start;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::{
    Message,
    protocol::{CloseFrame, frame::coding::CloseCode},
};

/// `GET path` on `addr`: the status line and the body.
async fn get(addr: &str, path: &str) -> (String, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

/// The value of the sample `series` (its name and labels, as rendered), if there is one.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn close(
    socket: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    code: u16,
) {
    let frame = CloseFrame { code: CloseCode::from(code), reason: "bye".into() };
    socket.send(Message::Close(Some(frame))).await.unwrap();
    while let Some(Ok(_)) = socket.next().await {}
}

#[tokio::test]
async fn the_echo_example_serves_what_it_counted_at_slash_metrics() {
    let (_child, addr, mut log) = start(&["--metrics", "127.0.0.1:0"]).await;
    let metrics_addr = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let line = log.recv().await.expect("the echo example exited early");
            if let Some((_, rest)) = line.split_once("metrics on http://") {
                return rest.trim().trim_end_matches("/metrics").to_owned();
            }
        }
    })
    .await
    .expect("the metrics line");

    // 3 texts of 9 bytes and a binary of 1,000 from one socket (closed with 1000), 2 texts of
    // 9 bytes from another (closed with 4000); a GET /ws that is no handshake (400).
    let (mut first, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.unwrap();
    for i in 0..3 {
        first.send(Message::text(format!("message {i}"))).await.unwrap();
        assert_eq!(first.next().await.unwrap().unwrap(), Message::text(format!("message {i}")));
    }
    first.send(Message::binary(vec![7u8; 1000])).await.unwrap();
    assert_eq!(first.next().await.unwrap().unwrap(), Message::binary(vec![7u8; 1000]));
    let (mut second, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.unwrap();
    for i in 3..5 {
        second.send(Message::text(format!("message {i}"))).await.unwrap();
        assert_eq!(second.next().await.unwrap().unwrap(), Message::text(format!("message {i}")));
    }
    let (status, _) = get(&metrics_addr, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    close(&mut first, 1000).await;
    close(&mut second, 4000).await;
    let (status, _) = get(&addr, "/ws").await;
    assert!(status.starts_with("HTTP/1.1 400"), "{status}");

    // The sockets' ends are counted when their tasks finish: scrape until both are.
    let mut text = String::new();
    for _ in 0..100 {
        text = get(&metrics_addr, "/metrics").await.1;
        if sample(&text, "websocket_server_active_connections") == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (series, value) in [
        ("websocket_server_active_connections", 0.0),
        (r#"websocket_server_handshakes{websocket_handshake_outcome="accepted"}"#, 2.0),
        (
            r#"websocket_server_handshakes{websocket_handshake_outcome="refused",error_type="not_websocket",http_response_status_code="400"}"#,
            1.0,
        ),
        (r#"websocket_server_messages{network_io_direction="receive",websocket_message_type="text"}"#, 5.0),
        (r#"websocket_server_messages{network_io_direction="transmit",websocket_message_type="text"}"#, 5.0),
        (r#"websocket_server_messages{network_io_direction="receive",websocket_message_type="binary"}"#, 1.0),
        (
            r#"websocket_server_messages{network_io_direction="transmit",websocket_message_type="binary"}"#,
            1.0,
        ),
        (
            r#"websocket_server_message_size_sum{network_io_direction="receive",websocket_message_type="text"}"#,
            45.0,
        ),
        (
            r#"websocket_server_message_size_sum{network_io_direction="transmit",websocket_message_type="binary"}"#,
            1000.0,
        ),
        (
            r#"websocket_server_connection_duration_count{websocket_close_code="1000",websocket_close_initiator="peer"}"#,
            1.0,
        ),
        (
            r#"websocket_server_connection_duration_count{websocket_close_code="4xxx",websocket_close_initiator="peer"}"#,
            1.0,
        ),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series} in:\n{text}");
    }
    // Wire bytes: the client's frames are masked (4 bytes each) and headed (2, or 4 past 125
    // bytes): 5 texts of 15 bytes (9 + 6), the binary (1,000 + 8), two Closes of 2 + 3 bytes
    // (+ 6) = 75 + 1,008 + 22 = 1,105 in; the server's are not masked: 5 × 11 + 1,004 + 2 × 7 =
    // 1,073 out.
    assert_eq!(
        sample(&text, r#"websocket_server_bytes{network_io_direction="receive"}"#),
        Some(1105.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"websocket_server_bytes{network_io_direction="transmit"}"#),
        Some(1073.0),
        "{text}"
    );
    assert!(text.contains("# TYPE websocket_server_connection_duration summary"), "{text}");

    let (status, _) = get(&metrics_addr, "/other").await;
    assert!(status.starts_with("HTTP/1.1 404"), "{status}");
}
