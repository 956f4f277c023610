//! Fan-out: prepared messages sent to many sockets (plain and compressed, with and without
//! context takeover), and the hub's topics, back-pressure policies and counts.

use std::{convert::Infallible, sync::Arc};

use hyper::body::Incoming;
use tower::ServiceBuilder;
use tower_websockets::{
    Compression, Message, PreparedMessage, WebSocket, WebSocketLayer, WebSocketUpgrade, test::TestClient,
};

/// JSON-like text that compresses well.
fn json(n: usize) -> String {
    (0..n).map(|i| format!(r#"{{"id":{i},"user":"alice","text":"hello, world"}}"#)).collect()
}

/// A service whose sockets each get `messages` (the same prepared values for all), a plain
/// message between them, and then read until the client closes.
fn prepared_service(compression: Compression, messages: Arc<Vec<PreparedMessage>>) -> TestClient {
    let layer = WebSocketLayer::builder().compression(compression).build().unwrap();
    let stack = ServiceBuilder::new().layer(layer);
    TestClient::new(stack.service_fn(move |mut req: http::Request<Incoming>| {
        let messages = messages.clone();
        async move {
            let upgrade = WebSocketUpgrade::from_request(&mut req).unwrap();
            Ok::<_, Infallible>(upgrade.on_upgrade(move |mut socket: WebSocket| async move {
                for message in messages.iter() {
                    socket.send_prepared(message).await.unwrap();
                    // An ordinary message in between: with context takeover it shares the
                    // socket's compressor with the prepared ones.
                    socket.send(Message::text(json(3))).await.unwrap();
                }
                while let Some(Ok(_)) = socket.recv().await {}
            }))
        }
    }))
}

#[tokio::test]
async fn one_prepared_message_reaches_many_sockets_plain_and_compressed() {
    let noise: Vec<u8> = (0..50_000u64).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    let messages = Arc::new(vec![
        PreparedMessage::text(json(200)),
        PreparedMessage::text(json(200)), // the same again: a context-takeover socket refers back
        PreparedMessage::binary(noise),
        PreparedMessage::text(""),
        PreparedMessage::binary(vec![9u8; 1 << 20]),
    ]);
    let clients = [
        ("plain", None),
        ("context takeover", Some(Compression::enabled())),
        ("no context takeover", Some(Compression::enabled().server_no_context_takeover(true))),
        (
            "no context takeover, 10 bits",
            Some(Compression::enabled().server_no_context_takeover(true).server_max_window_bits(10)),
        ),
    ];
    let client = prepared_service(Compression::enabled(), messages.clone());
    let mut sockets = Vec::new();
    for round in 0..5 {
        for (name, compression) in clients {
            let connect = client.connect("/ws");
            let socket = match compression {
                Some(compression) => connect.compression(compression).await,
                None => connect.await,
            }
            .unwrap();
            let negotiated = socket.compression().copied();
            match compression {
                None => assert_eq!(negotiated, None),
                Some(offer) => assert_eq!(
                    negotiated.map(|n| n.server_no_context_takeover()),
                    Some(offer != Compression::enabled()),
                    "{name}"
                ),
            }
            sockets.push((round, name, socket));
        }
    }
    for (round, name, socket) in &mut sockets {
        for message in messages.iter() {
            assert_eq!(socket.recv_data().await.unwrap(), message.to_message(), "{name} #{round}");
            assert_eq!(socket.recv_text().await.unwrap(), json(3), "{name} #{round}");
        }
    }
    for (_, _, socket) in &mut sockets {
        socket.close().await.unwrap();
    }
}

#[tokio::test]
async fn a_server_without_compression_sends_prepared_messages_plainly() {
    let messages = Arc::new(vec![PreparedMessage::text(json(50))]);
    let client = prepared_service(Compression::disabled(), messages);
    let mut socket = client.connect("/ws").compression(Compression::enabled()).await.unwrap();
    assert_eq!(socket.compression(), None);
    assert_eq!(socket.recv_text().await.unwrap(), json(50));
    assert_eq!(socket.recv_text().await.unwrap(), json(3));
    socket.close().await.unwrap();
}

#[tokio::test]
async fn send_prepared_on_a_closed_socket_is_an_error() {
    let (result_tx, mut result_rx) = tokio::sync::mpsc::unbounded_channel();
    let stack = ServiceBuilder::new().layer(WebSocketLayer::new());
    let client = TestClient::new(stack.service_fn(move |mut req: http::Request<Incoming>| {
        let result_tx = result_tx.clone();
        async move {
            let upgrade = WebSocketUpgrade::from_request(&mut req).unwrap();
            Ok::<_, Infallible>(upgrade.on_upgrade(move |mut socket: WebSocket| async move {
                while let Some(Ok(_)) = socket.recv().await {}
                let _ = result_tx.send(socket.send_prepared(&PreparedMessage::text("late")).await);
            }))
        }
    }));
    let mut socket = client.connect("/ws").await.unwrap();
    socket.close().await.unwrap();
    let result = result_rx.recv().await.unwrap();
    assert!(matches!(result, Err(tower_websockets::Error::Closed)), "{result:?}");
}
