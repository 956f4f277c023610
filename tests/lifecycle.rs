//! Connection lifecycle: graceful shutdown with 1001, the connection limit, and the counters.
#![cfg(all(feature = "test-util", feature = "axum"))]

mod common;

use std::{convert::Infallible, future::pending, time::Duration};

use common::{Behaviour, echo_service};
use futures_util::{SinkExt, StreamExt};
use http::{Request, StatusCode};
use hyper::body::Incoming;
use tokio::task::JoinSet;
use tower::ServiceBuilder;
use tower_websockets::{
    CloseCode, Message, WebSocketLayer, WebSocketUpgrade, lifecycle::ShutdownHandle, test::TestClient,
};

/// Waits (in small steps) until `stats` says `open` sockets are open.
async fn until_open(handle: &ShutdownHandle, open: usize) {
    for _ in 0..500 {
        if handle.stats().open == open {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("expected {open} open sockets, stats say {:?}", handle.stats());
}

#[tokio::test]
async fn a_hundred_sockets_get_1001_on_shutdown_and_the_wait_completes() {
    let layer = WebSocketLayer::new();
    let handle = layer.shutdown_handle();
    let (service, mut ends) = echo_service(layer, Behaviour::default());
    let client = TestClient::new(service);

    let mut clients = JoinSet::new();
    for i in 0..100 {
        let mut socket = client.connect("/ws").await.unwrap();
        socket.send_text(&format!("hello {i}")).await.unwrap();
        assert_eq!(socket.recv_text().await.unwrap(), format!("hello {i}"));
        clients.spawn(async move {
            let frame = socket.recv_close().await.unwrap().expect("a close code");
            assert!(socket.is_closed().await);
            frame
        });
    }
    until_open(&handle, 100).await;

    let report = handle.shutdown(Duration::from_secs(10)).await;
    assert_eq!((report.open_at_start, report.cut), (100, 0));
    while let Some(frame) = clients.join_next().await {
        let frame = frame.unwrap();
        assert_eq!((frame.code, frame.reason.as_str()), (CloseCode::GOING_AWAY, "server shutting down"));
    }
    // Each handler saw the closing handshake through `recv` and ended cleanly.
    for _ in 0..100 {
        let ended = common::next_end(&mut ends).await;
        assert!(ended.error.is_none(), "{:?}", ended.error);
        assert_eq!(ended.close.unwrap().code, CloseCode::GOING_AWAY);
    }
    assert_eq!(handle.stats().open, 0);
    assert_eq!(handle.stats().accepted, 100);
}

#[tokio::test(start_paused = true)]
async fn a_handler_that_ignores_the_close_is_cut_at_the_deadline() {
    let layer = WebSocketLayer::new();
    let handle = layer.shutdown_handle();
    let service = ServiceBuilder::new().layer(layer).service_fn(|mut req: Request<Incoming>| async move {
        let upgrade = WebSocketUpgrade::from_request(&mut req).unwrap();
        // Holds the socket and never looks at it again.
        Ok::<_, Infallible>(upgrade.on_upgrade(|socket| async move {
            let _socket = socket;
            pending::<()>().await;
        }))
    });
    let client = TestClient::new(service).timeout(Duration::from_secs(60));
    let mut socket = client.connect("/ws").await.unwrap();
    until_open(&handle, 1).await;

    let start = tokio::time::Instant::now();
    let report = handle.shutdown(Duration::from_secs(3)).await;
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    assert_eq!((report.open_at_start, report.cut), (1, 1));
    // The connection is dropped: the client's stream ends without a Close.
    assert!(socket.is_closed().await);
    until_open(&handle, 0).await;
}

#[tokio::test]
async fn a_message_sent_just_before_shutdown_arrives_before_the_close() {
    let layer = WebSocketLayer::new();
    let handle = layer.shutdown_handle();
    let trigger = handle.clone();
    let service = ServiceBuilder::new().layer(layer).service_fn(move |mut req: Request<Incoming>| {
        let trigger = trigger.clone();
        async move {
            let upgrade = WebSocketUpgrade::from_request(&mut req).unwrap();
            Ok::<_, Infallible>(upgrade.on_upgrade(move |mut socket| async move {
                // Queued, not yet flushed, when the shutdown begins.
                socket.feed(Message::text("last words")).await.unwrap();
                trigger.trigger();
                while socket.recv().await.is_some() {}
            }))
        }
    });
    let client = TestClient::new(service);
    let mut socket = client.connect("/ws").await.unwrap();
    assert_eq!(socket.recv_text().await.unwrap(), "last words");
    assert_eq!(socket.recv_close().await.unwrap().unwrap().code, CloseCode::GOING_AWAY);
    assert!(socket.is_closed().await);
    assert_eq!(handle.shutdown(Duration::from_secs(5)).await.cut, 0);
}

#[tokio::test]
async fn after_shutdown_websocket_requests_get_503_and_others_pass() {
    let layer = WebSocketLayer::new();
    let handle = layer.shutdown_handle();
    let (service, _ends) = echo_service(layer, Behaviour::default());
    let client = TestClient::new(service);
    handle.trigger();
    assert!(handle.is_triggered());

    let refused = client.connect("/ws").await.unwrap_err();
    let response = refused.refused().unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "5");
    assert_eq!(response.text(), "the server is shutting down");
    // Not the layer's business: an ordinary request still reaches the service.
    assert_eq!(client.get("/ws").await.unwrap().text(), "not a WebSocket request");
}

/// A service whose handler panics on "panic", closes on "close-me", and echoes otherwise.
fn limited(n: usize) -> (TestClient, ShutdownHandle) {
    let layer = WebSocketLayer::builder().max_connections(n).build().unwrap();
    let handle = layer.shutdown_handle();
    let service = ServiceBuilder::new().layer(layer).service_fn(|mut req: Request<Incoming>| async move {
        let upgrade = match WebSocketUpgrade::from_request(&mut req) {
            Ok(upgrade) => upgrade,
            Err(rejection) => return Ok::<_, Infallible>(rejection.into_http_response()),
        };
        Ok(upgrade.on_upgrade(|mut socket| async move {
            while let Some(Ok(message)) = socket.recv().await {
                match message.as_text() {
                    Some("panic") => panic!("the handler panics (on purpose, in a test)"),
                    Some(_) => socket.send(message).await.unwrap(),
                    None => {}
                }
            }
        }))
    });
    (TestClient::new(service), handle)
}

#[tokio::test]
async fn the_limit_refuses_with_503_and_a_clean_close_frees_the_slot() {
    let (client, handle) = limited(2);
    let mut first = client.connect("/ws").await.unwrap();
    let _second = client.connect("/ws").await.unwrap();

    let refused = client.connect("/ws").await.unwrap_err();
    let response = refused.refused().unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "5");
    assert_eq!(response.text(), "too many WebSocket connections");

    first.close().await.unwrap();
    until_open(&handle, 1).await;
    let mut third = client.connect("/ws").await.unwrap();
    third.send_text("in").await.unwrap();
    assert_eq!(third.recv_text().await.unwrap(), "in");
    assert_eq!(handle.stats().refused_by_limit, 1);
}

#[tokio::test]
async fn a_handler_panic_frees_the_slot() {
    let (client, handle) = limited(1);
    let mut doomed = client.connect("/ws").await.unwrap();
    assert!(client.connect("/ws").await.unwrap_err().refused().is_some());
    doomed.send_text("panic").await.unwrap();
    assert!(doomed.is_closed().await);
    until_open(&handle, 0).await;
    let mut next = client.connect("/ws").await.unwrap();
    next.send_text("after").await.unwrap();
    assert_eq!(next.recv_text().await.unwrap(), "after");
}

#[tokio::test]
async fn requests_that_do_not_become_sockets_free_their_slot() {
    let (client, handle) = limited(1);
    // Refused by the extractor (bad key) after the layer took a slot.
    for _ in 0..3 {
        let error = client.connect("/ws").header("sec-websocket-key", "bad").await.unwrap_err();
        assert_eq!(error.refused().unwrap().status(), StatusCode::BAD_REQUEST);
    }
    let _socket = client.connect("/ws").await.unwrap();
    assert_eq!(handle.stats().refused_by_limit, 0);
}

#[tokio::test(start_paused = true)]
async fn the_counters_match_what_happened() {
    let layer = WebSocketLayer::builder()
        .allowed_origins(["https://ok.example"])
        .max_connections(3)
        .keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let handle = layer.shutdown_handle();
    let (service, mut ends) = echo_service(layer.clone(), Behaviour::default());
    let client = TestClient::new(service).timeout(Duration::from_secs(60));

    let mut talker = client.connect("/ws").origin("https://ok.example").await.unwrap();
    let _silent = client.connect("/ws").await.unwrap();
    for _ in 0..2 {
        assert!(client.connect("/ws").origin("https://evil.example").await.is_err());
    }
    let _third = client.connect("/ws").await.unwrap();
    assert!(client.connect("/ws").await.is_err()); // the limit

    // The talker answers Pings as it reads; the two silent ones time out at 15 s.
    let reading = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            assert!(matches!(talker.recv().await.unwrap(), Message::Ping(_)));
        }
    });
    assert!(reading.await.is_err(), "20 s of reading Pings");
    talker.send_text("still here").await.unwrap();
    assert_eq!(talker.recv_text().await.unwrap(), "still here");
    for _ in 0..2 {
        common::next_end(&mut ends).await;
    }
    until_open(&handle, 1).await;
    let stats = handle.stats();
    assert_eq!(stats.open, 1);
    assert_eq!(stats.accepted, 3);
    assert_eq!(stats.refused_by_origin, 2);
    assert_eq!(stats.refused_by_limit, 1);
    assert_eq!(stats.keep_alive_timeouts, 2);
    assert_eq!(layer.stats(), stats);
}

// ---- Wiring with the servers' own graceful shutdown ----

#[tokio::test]
async fn axum_serve_drains_http_then_the_websockets_drain() {
    use axum::{Router, routing::any};
    let layer = WebSocketLayer::new();
    let handle = layer.shutdown_handle();
    let app = Router::new()
        .route(
            "/ws",
            any(|upgrade: WebSocketUpgrade| async move {
                upgrade.on_upgrade(|socket| async move {
                    common::echo(socket, &Behaviour::default()).await;
                })
            }),
        )
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });

    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.unwrap();
    socket.send("ping me".into()).await.unwrap();
    socket.next().await.unwrap().unwrap();

    // 1. The HTTP side drains: axum::serve returns although the WebSocket is still open.
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap().unwrap();
    assert_eq!(handle.stats().open, 1);

    // 2. Then the WebSockets drain: the client gets 1001 and answers; nothing is cut.
    let client = tokio::spawn(async move {
        let mut closes = Vec::new();
        while let Some(Ok(message)) = socket.next().await {
            if let tokio_tungstenite::tungstenite::Message::Close(Some(frame)) = message {
                closes.push(u16::from(frame.code));
            }
        }
        closes
    });
    let report = handle.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.cut, 0);
    assert_eq!(client.await.unwrap(), vec![1001]);
}

#[tokio::test]
async fn hyper_util_graceful_shutdown_then_the_websockets() {
    use hyper_util::{
        rt::{TokioExecutor, TokioIo},
        server::{conn::auto, graceful::GracefulShutdown},
        service::TowerToHyperService,
    };
    let layer = WebSocketLayer::new();
    let handle = layer.shutdown_handle();
    let (service, _ends) = echo_service(layer, Behaviour::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let graceful = GracefulShutdown::new();
    let watcher = graceful.watcher();
    let accept = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let connection = auto::Builder::new(TokioExecutor::new())
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        tokio::spawn(watcher.watch(connection));
    });
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.unwrap();
    accept.await.unwrap();

    tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await.unwrap();
    let closes = tokio::spawn(async move {
        let mut codes = Vec::new();
        while let Some(Ok(message)) = socket.next().await {
            if let tokio_tungstenite::tungstenite::Message::Close(Some(frame)) = message {
                codes.push(u16::from(frame.code));
            }
        }
        codes
    });
    assert_eq!(handle.shutdown(Duration::from_secs(5)).await.cut, 0);
    assert_eq!(closes.await.unwrap(), vec![1001]);
}

#[tokio::test]
async fn sending_after_the_shutdown_close_is_closed_not_a_protocol_error() {
    let layer = WebSocketLayer::new();
    let handle = layer.shutdown_handle();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let trigger = handle.clone();
    let service = ServiceBuilder::new().layer(layer).service_fn(move |mut req: Request<Incoming>| {
        let (tx, trigger) = (tx.clone(), trigger.clone());
        async move {
            let upgrade = WebSocketUpgrade::from_request(&mut req).unwrap();
            Ok::<_, Infallible>(upgrade.on_upgrade(move |mut socket| async move {
                trigger.trigger();
                // The first send notices the shutdown and sends the 1001 Close; later sends fail.
                let mut result = Ok(());
                for _ in 0..3 {
                    result = socket.send(Message::text("update")).await;
                    if result.is_err() {
                        break;
                    }
                }
                let _ = tx.send(result);
            }))
        }
    });
    let client = TestClient::new(service);
    let mut socket = client.connect("/ws").await.unwrap();
    assert_eq!(socket.recv_close().await.unwrap().unwrap().code, CloseCode::GOING_AWAY);
    let result = rx.recv().await.unwrap();
    assert!(matches!(result, Err(tower_websockets::Error::Closed)), "{result:?}");
}
