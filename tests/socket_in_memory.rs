//! Whole sockets through the in-memory test client: a real hyper server connection over a
//! duplex pipe, no port. Keep-alive runs here in virtual time.
#![cfg(feature = "test-util")]

mod common;

use std::{convert::Infallible, time::Duration};

use bytes::Bytes;
use common::{Behaviour, echo_service, next_end};
use http::{Request, StatusCode};
use hyper::body::Incoming;
use tokio::sync::mpsc;
use tower::ServiceBuilder;
use tower_websockets::{
    CloseCode, Error, Message, WebSocketLayer, WebSocketUpgrade,
    handshake::HandshakeBody,
    test::{TestClient, TestError},
};

fn client(
    layer: WebSocketLayer,
    behaviour: Behaviour,
) -> (TestClient, mpsc::UnboundedReceiver<common::Ended>) {
    let (service, ends) = echo_service(layer, behaviour);
    (TestClient::new(service), ends)
}

#[tokio::test]
async fn messages_of_every_kind_and_size_echo() {
    let (client, mut ends) = client(WebSocketLayer::new(), Behaviour::default());
    let mut socket = client.connect("/ws").await.unwrap();
    let big = Bytes::from((0..0x1FFFF).map(|i| (i % 253) as u8).collect::<Vec<u8>>());
    let messages = [
        Message::text("hello"),
        Message::text("привет 👋"),
        Message::text(""),
        Message::binary(Bytes::new()),
        Message::binary(vec![9u8; 130]),
        Message::Binary(big),
    ];
    for message in messages {
        socket.send(message.clone()).await.unwrap();
        assert_eq!(socket.recv_data().await.unwrap(), message);
    }
    socket.close().await.unwrap();
    let ended = next_end(&mut ends).await;
    assert_eq!(ended.echoed, 6);
    assert_eq!(ended.close.unwrap().code, CloseCode::NORMAL);
}

/// A server IO that counts the writes made on it (`poll_write` and `poll_write_vectored` calls
/// that wrote something).
struct CountingIo {
    inner: tokio::io::DuplexStream,
    writes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl tokio::io::AsyncRead for CountingIo {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for CountingIo {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// One WebSocket served by hyper over an in-memory pipe whose server side counts its writes
/// (`CountingIo`): `handler` gets the socket and the count; the client is tokio-tungstenite's.
async fn counted_connection<F, Fut>(handler: F) -> tokio_tungstenite::WebSocketStream<tokio::io::DuplexStream>
where
    F: Fn(tower_websockets::WebSocket, std::sync::Arc<std::sync::atomic::AtomicUsize>) -> Fut
        + Clone
        + Send
        + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    use hyper_util::{rt::TokioIo, service::TowerToHyperService};

    let writes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = writes.clone();
    let service =
        ServiceBuilder::new().layer(WebSocketLayer::new()).service_fn(move |mut req: Request<Incoming>| {
            let (counter, handler) = (counter.clone(), handler.clone());
            async move {
                let upgrade = WebSocketUpgrade::from_request(&mut req).unwrap();
                Ok::<_, Infallible>(upgrade.on_upgrade(move |socket| handler(socket, counter)))
            }
        });
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let server_io = CountingIo { inner: server_io, writes };
    tokio::spawn(async move {
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(server_io), TowerToHyperService::new(service))
            .with_upgrades()
            .await;
    });
    tokio_tungstenite::client_async("ws://localhost/ws", client_io).await.unwrap().0
}

/// `feed` queues messages and `flush` writes them: ten messages fed, then one flush, reach the
/// connection in one write, counted on the server's IO under hyper, and arrive in order.
#[tokio::test]
async fn several_messages_share_one_flush() {
    use std::sync::atomic::Ordering;

    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message as TMessage;

    // The writes counted during the feeds (none) and at the flush, as the handler saw them.
    let (counted_tx, mut counted_rx) = mpsc::unbounded_channel();
    let mut client = counted_connection(move |mut socket, counter| {
        let counted_tx = counted_tx.clone();
        async move {
            // The 101 has been written by now; count from here.
            let before = counter.load(Ordering::SeqCst);
            for i in 0..10 {
                socket.feed(Message::text(i.to_string())).await.unwrap();
            }
            let after_feeds = counter.load(Ordering::SeqCst);
            socket.flush().await.unwrap();
            let after_flush = counter.load(Ordering::SeqCst);
            let _ = counted_tx.send((after_feeds - before, after_flush - after_feeds));
            while socket.recv().await.is_some() {}
        }
    })
    .await;
    let (during_feeds, at_flush) = counted_rx.recv().await.unwrap();
    assert_eq!((during_feeds, at_flush), (0, 1), "writes during the ten feeds, and at the one flush");
    for i in 0..10 {
        assert_eq!(client.next().await.unwrap().unwrap(), TMessage::text(i.to_string()));
    }
}

/// What sixteen `WebSocketSender`s queued while the owner was busy goes out in one write at the
/// owner's next flush, through the socket's own write buffer, each task's message once.
#[tokio::test]
async fn what_senders_queued_goes_out_in_one_write() {
    use std::sync::atomic::Ordering;

    use futures_util::StreamExt;

    let (counted_tx, mut counted_rx) = mpsc::unbounded_channel();
    let mut client = counted_connection(move |mut socket, counter| {
        let counted_tx = counted_tx.clone();
        async move {
            let sender = socket.sender();
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..16 {
                let sender = sender.clone();
                tasks.spawn(async move { sender.try_send(Message::text(i.to_string())) });
            }
            while let Some(queued) = tasks.join_next().await {
                queued.unwrap().unwrap();
            }
            let queued = sender.buffered_amount();
            let before = counter.load(Ordering::SeqCst);
            socket.flush().await.unwrap();
            let _ = counted_tx.send((queued, counter.load(Ordering::SeqCst) - before));
            sender.drained().await.unwrap();
            while socket.recv().await.is_some() {}
        }
    })
    .await;
    let (queued, writes_at_flush) = counted_rx.recv().await.unwrap();
    // "0".."9" and "10".."15": 10 + 12 bytes of payload.
    assert_eq!(queued, 22);
    assert_eq!(writes_at_flush, 1, "the sixteen messages in one write");
    let mut seen: Vec<u32> = Vec::new();
    for _ in 0..16 {
        let message = client.next().await.unwrap().unwrap();
        seen.push(message.into_text().unwrap().as_str().parse().unwrap());
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..16).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_ping_is_answered() {
    let (client, _ends) = client(WebSocketLayer::new(), Behaviour::default());
    let mut socket = client.connect("/ws").await.unwrap();
    socket.send(Message::Ping(Bytes::from_static(b"p"))).await.unwrap();
    assert_eq!(socket.recv().await.unwrap(), Message::Pong(Bytes::from_static(b"p")));
}

#[tokio::test]
async fn the_server_closes_with_its_code_and_reason() {
    let behaviour =
        Behaviour { close_on_request: Some((CloseCode::GOING_AWAY, "bye")), ..Behaviour::default() };
    let (client, mut ends) = client(WebSocketLayer::new(), behaviour);
    let mut socket = client.connect("/ws").await.unwrap();
    socket.send_text("close-me").await.unwrap();
    let frame = socket.recv_close().await.unwrap().unwrap();
    assert_eq!((frame.code, frame.reason.as_str()), (CloseCode::GOING_AWAY, "bye"));
    // Reading on answers the Close; then the connection ends.
    assert!(socket.is_closed().await);
    assert!(matches!(next_end(&mut ends).await.closed_by_server, Some(Ok(()))));
}

#[tokio::test]
async fn an_oversized_message_fails_the_test_with_a_message_naming_1009() {
    let behaviour = Behaviour { max_message_size: Some(16), ..Behaviour::default() };
    let (client, mut ends) = client(WebSocketLayer::new(), behaviour);
    let mut socket = client.connect("/ws").await.unwrap();
    socket.send_text("this is more than sixteen bytes").await.unwrap();
    let error = socket.recv_text().await.unwrap_err();
    assert_eq!(error.to_string(), "server closed with 1009 (message too big): message too big");
    assert!(matches!(next_end(&mut ends).await.error, Some(Error::MessageTooBig { max: 16, .. })));
}

#[tokio::test]
async fn subprotocols_are_negotiated() {
    let behaviour = Behaviour { protocols: vec!["v2", "v1"], ..Behaviour::default() };
    let (client, _ends) = client(WebSocketLayer::new(), behaviour);
    let mut socket = client.connect("/ws").protocols(["v1", "v2"]).await.unwrap();
    assert_eq!(socket.protocol(), Some("v2"));
    assert_eq!(socket.response().headers()["sec-websocket-protocol"], "v2");
    socket.send_text("protocol?").await.unwrap();
    assert_eq!(socket.recv_text().await.unwrap(), "v2");

    let socket = client.connect("/ws").protocols(["v3"]).await.unwrap();
    assert_eq!(socket.protocol(), None);
}

#[tokio::test]
async fn a_refused_handshake_comes_back_as_the_response() {
    let layer = WebSocketLayer::builder().allowed_origins(["https://app.example"]).build().unwrap();
    let (client, _ends) = client(layer, Behaviour::default());

    let error = client.connect("/ws").origin("https://evil.example").await.unwrap_err();
    let response = error.refused().expect("a refused handshake");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(response.text(), "origin not allowed");
    assert_eq!(
        error.to_string(),
        "the server refused the WebSocket handshake with 403 Forbidden: origin not allowed"
    );

    let error = client.connect("/ws").header("sec-websocket-version", "8").await.unwrap_err();
    let response = error.refused().unwrap();
    assert_eq!(response.status(), StatusCode::UPGRADE_REQUIRED);
    assert_eq!(response.headers()["sec-websocket-version"], "13");
    let error = client.connect("/ws").header("sec-websocket-key", "short").await.unwrap_err();
    assert_eq!(error.refused().unwrap().status(), StatusCode::BAD_REQUEST);

    assert!(client.connect("/ws").origin("https://APP.example").await.is_ok());
}

#[tokio::test]
async fn plain_requests_pass_through_the_same_stack() {
    let (client, _ends) = client(WebSocketLayer::new(), Behaviour::default());
    let response = client.get("/ws").await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.text(), "not a WebSocket request");
}

#[tokio::test]
async fn several_clients_talk_to_one_service_at_once() {
    // A broadcast service: every text message goes to every connected socket.
    let (hub, _) = tokio::sync::broadcast::channel::<String>(16);
    let service = ServiceBuilder::new().layer(WebSocketLayer::new()).service_fn(move |mut req: Request<Incoming>| {
        let hub = hub.clone();
        async move {
            let upgrade = match WebSocketUpgrade::from_request(&mut req) {
                Ok(upgrade) => upgrade,
                Err(rejection) => return Ok::<_, Infallible>(rejection.into_http_response()),
            };
            Ok(upgrade.on_upgrade(move |mut socket| async move {
                let mut inbox = hub.subscribe();
                let _ = socket.send(Message::text("joined")).await;
                loop {
                    tokio::select! {
                        Some(Ok(Message::Text(text))) = socket.recv() => { let _ = hub.send(text.to_string()); }
                        Ok(text) = inbox.recv() => { if socket.send(Message::text(text)).await.is_err() { break; } }
                        else => break,
                    }
                }
            }))
        }
    });
    let client = TestClient::new(service);
    let mut alice = client.connect("/chat").await.unwrap();
    let mut bob = client.connect("/chat").await.unwrap();
    assert_eq!(alice.recv_text().await.unwrap(), "joined");
    assert_eq!(bob.recv_text().await.unwrap(), "joined");
    alice.send_text("hi bob").await.unwrap();
    assert_eq!(bob.recv_text().await.unwrap(), "hi bob");
    assert_eq!(alice.recv_text().await.unwrap(), "hi bob");
}

#[tokio::test(start_paused = true)]
async fn a_wait_that_goes_wrong_times_out_with_a_message() {
    let (client, _ends) = client(
        WebSocketLayer::builder().keep_alive_interval(Duration::ZERO).build().unwrap(),
        Behaviour::default(),
    );
    let client = client.timeout(Duration::from_secs(2));
    let mut socket = client.connect("/ws").await.unwrap();
    let error = socket.recv().await.unwrap_err();
    assert!(matches!(error, TestError::Timeout { .. }));
    assert_eq!(error.to_string(), "timed out after 2s waiting for a message from the server");
}

// ---- Keep-alive, in virtual time ----

fn keep_alive_layer(interval: u64, timeout: Option<u64>) -> WebSocketLayer {
    let mut builder = WebSocketLayer::builder().keep_alive_interval(Duration::from_secs(interval));
    if let Some(timeout) = timeout {
        builder = builder.keep_alive_timeout(Duration::from_secs(timeout));
    }
    builder.build().unwrap()
}

#[tokio::test(start_paused = true)]
async fn keep_alive_pings_come_exactly_after_each_interval_of_silence() {
    let (client, _ends) = client(keep_alive_layer(30, None), Behaviour::default());
    let client = client.timeout(Duration::from_secs(600));
    let mut socket = client.connect("/ws").await.unwrap();
    let start = tokio::time::Instant::now();
    for n in 1..=3 {
        assert!(matches!(socket.recv().await.unwrap(), Message::Ping(_)));
        assert_eq!(start.elapsed(), Duration::from_secs(30 * n));
    }
    // Traffic from the client pushes the next Ping back.
    tokio::time::sleep(Duration::from_secs(20)).await;
    socket.send_text("x").await.unwrap();
    assert_eq!(socket.recv_text().await.unwrap(), "x");
    let sent = tokio::time::Instant::now();
    assert!(matches!(socket.recv().await.unwrap(), Message::Ping(_)));
    assert_eq!(sent.elapsed(), Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn keep_alive_off_sends_nothing() {
    let (client, _ends) = client(keep_alive_layer(0, None), Behaviour::default());
    let mut socket = client.timeout(Duration::from_secs(3600)).connect("/ws").await.unwrap();
    assert!(matches!(socket.recv().await.unwrap_err(), TestError::Timeout { .. }));
}

#[tokio::test(start_paused = true)]
async fn the_keep_alive_timeout_drops_a_silent_peer_at_interval_plus_timeout() {
    let (client, mut ends) = client(keep_alive_layer(30, Some(10)), Behaviour::default());
    let start = tokio::time::Instant::now();
    let _silent = client.connect("/ws").await.unwrap();
    let ended = next_end(&mut ends).await;
    assert_eq!(start.elapsed(), Duration::from_secs(40));
    assert!(
        matches!(ended.error, Some(Error::KeepAliveTimeout { timeout }) if timeout == Duration::from_secs(10))
    );
    assert_eq!(
        ended.error.unwrap().to_string(),
        "keep-alive timeout: the peer did not answer a ping within 10s"
    );
}

#[tokio::test(start_paused = true)]
async fn the_keep_alive_timeout_keeps_a_peer_that_answers() {
    let (client, mut ends) = client(keep_alive_layer(30, Some(10)), Behaviour::default());
    let mut socket = client.timeout(Duration::from_secs(600)).connect("/ws").await.unwrap();
    // Reading answers each Ping; ten intervals pass.
    for _ in 0..10 {
        assert!(matches!(socket.recv().await.unwrap(), Message::Ping(_)));
    }
    socket.send_text("alive").await.unwrap();
    assert_eq!(socket.recv_text().await.unwrap(), "alive");
    assert!(ends.try_recv().is_err(), "the server kept the socket");
}

/// The test client answers a Ping as it reads it, not with its next read or write: a test that
/// reads one Ping and then stops reading past the timeout has still answered it.
#[tokio::test(start_paused = true)]
async fn the_test_client_answers_a_ping_when_it_reads_it() {
    let (client, mut ends) = client(keep_alive_layer(30, Some(10)), Behaviour::default());
    let mut socket = client.timeout(Duration::from_secs(600)).connect("/ws").await.unwrap();
    assert!(matches!(socket.recv().await.unwrap(), Message::Ping(_)));
    // Past the 10 s timeout, short of the next Ping at 30 s.
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert!(ends.try_recv().is_err(), "the server kept the socket");
    socket.send_text("alive").await.unwrap();
    assert_eq!(socket.recv_text().await.unwrap(), "alive");
}

#[tokio::test(start_paused = true)]
async fn per_accept_overrides_replace_the_layers_keep_alive() {
    let service = ServiceBuilder::new().layer(keep_alive_layer(30, None)).service_fn(
        |mut req: Request<Incoming>| async move {
            let upgrade = WebSocketUpgrade::from_request(&mut req).unwrap();
            Ok::<_, Infallible>(
                upgrade
                    .keep_alive_interval(Duration::from_secs(5))
                    .on_upgrade(|mut socket| async move { while socket.recv().await.is_some() {} }),
            )
        },
    );
    let client = TestClient::new(service).timeout(Duration::from_secs(600));
    let mut socket = client.connect("/ws").await.unwrap();
    let start = tokio::time::Instant::now();
    assert!(matches!(socket.recv().await.unwrap(), Message::Ping(_)));
    assert_eq!(start.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn invalid_per_accept_overrides_get_500_not_a_panic() {
    let service = ServiceBuilder::new().layer(WebSocketLayer::new()).service_fn(
        |mut req: Request<Incoming>| async move {
            let upgrade = WebSocketUpgrade::from_request(&mut req).unwrap();
            Ok::<_, Infallible>(
                upgrade
                    .keep_alive_interval(Duration::ZERO)
                    .keep_alive_timeout(Duration::from_secs(1))
                    .on_upgrade(|_socket| async {}),
            )
        },
    );
    let error = TestClient::new(service).connect("/ws").await.unwrap_err();
    assert_eq!(error.refused().unwrap().status(), StatusCode::INTERNAL_SERVER_ERROR);
}

/// A handler that only pushes, never calling `recv`.
fn pusher(layer: WebSocketLayer) -> (TestClient, mpsc::UnboundedReceiver<Result<usize, Error>>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let service = ServiceBuilder::new().layer(layer).service_fn(move |mut req: Request<Incoming>| {
        let tx = tx.clone();
        async move {
            let upgrade = WebSocketUpgrade::from_request(&mut req).unwrap();
            Ok::<_, Infallible>(upgrade.on_upgrade(move |mut socket| async move {
                let mut sent = 0;
                let result = loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if let Err(e) = socket.send(Message::text(sent.to_string())).await {
                        break Err(e);
                    }
                    sent += 1;
                    if sent == 300 {
                        break Ok(sent);
                    }
                };
                let _ = tx.send(result);
            }))
        }
    });
    (TestClient::new(service).timeout(Duration::from_secs(600)), rx)
}

#[tokio::test(start_paused = true)]
async fn a_handler_that_only_pushes_still_keeps_an_answering_peer() {
    let (client, mut done) = pusher(keep_alive_layer(30, Some(10)));
    let mut socket = client.connect("/ws").await.unwrap();
    let mut pings = 0;
    let mut texts = 0;
    while texts < 300 {
        match socket.recv().await.unwrap() {
            Message::Ping(_) => pings += 1,
            Message::Text(_) => texts += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(pings >= 5, "keep-alive Pings went out while the handler only sent: {pings}");
    assert_eq!(done.recv().await.unwrap().unwrap(), 300);
}

#[tokio::test(start_paused = true)]
async fn a_handler_that_only_pushes_notices_a_dead_peer() {
    let (client, mut done) = pusher(keep_alive_layer(30, Some(10)));
    let _silent = client.connect("/ws").await.unwrap();
    let start = tokio::time::Instant::now();
    let result = done.recv().await.unwrap();
    assert!(matches!(result, Err(Error::KeepAliveTimeout { .. })), "{result:?}");
    // The Ping goes out with the first send after 30 s of silence; the timeout 10 s later is
    // noticed at the next send.
    assert!(start.elapsed() <= Duration::from_secs(42), "{:?}", start.elapsed());
}

#[tokio::test(start_paused = true)]
async fn turning_keep_alive_off_per_accept_also_turns_the_timeout_off() {
    let service = ServiceBuilder::new().layer(keep_alive_layer(30, Some(10))).service_fn(
        |mut req: Request<Incoming>| async move {
            let upgrade = WebSocketUpgrade::from_request(&mut req).unwrap();
            Ok::<_, Infallible>(upgrade.keep_alive_interval(Duration::ZERO).on_upgrade(
                |mut socket| async move {
                    while let Some(Ok(message)) = socket.recv().await {
                        let _ = socket.send(message).await;
                    }
                },
            ))
        },
    );
    let client = TestClient::new(service).timeout(Duration::from_secs(300));
    let mut socket = client.connect("/ws").await.unwrap();
    // Five silent minutes: no Ping, and the socket is still there.
    assert!(matches!(socket.recv().await.unwrap_err(), TestError::Timeout { .. }));
    socket.send_text("still open").await.unwrap();
    assert_eq!(socket.recv_text().await.unwrap(), "still open");
}

#[tokio::test(start_paused = true)]
async fn a_pushing_handler_keeps_a_peer_whose_message_it_has_not_read() {
    let (client, mut done) = pusher(keep_alive_layer(30, Some(10)));
    let mut socket = client.connect("/ws").await.unwrap();
    // The client says something the handler never reads, then answers every Ping.
    socket.send_text("unread").await.unwrap();
    let mut texts = 0;
    while texts < 300 {
        if let Message::Text(_) = socket.recv().await.unwrap() {
            texts += 1;
        }
    }
    assert_eq!(done.recv().await.unwrap().unwrap(), 300);
}

#[tokio::test(start_paused = true)]
async fn a_pushing_handler_keeps_a_peer_whose_large_message_it_has_not_read() {
    // A large message is taken off tungstenite's path by the transport: it is parked all the
    // same while the handler only sends, and the Pongs after it still count.
    let (client, mut done) = pusher(keep_alive_layer(30, Some(10)));
    let mut socket = client.connect("/ws").await.unwrap();
    socket.send_binary(vec![7u8; 100_000]).await.unwrap();
    let mut texts = 0;
    while texts < 300 {
        if let Message::Text(_) = socket.recv().await.unwrap() {
            texts += 1;
        }
    }
    assert_eq!(done.recv().await.unwrap().unwrap(), 300);
}

#[tokio::test(start_paused = true)]
async fn after_a_keep_alive_timeout_recv_ends_instead_of_hanging() {
    // A handler pushes into a peer that reads nothing, until the writes block; the keep-alive
    // timeout then fails the send, and the next `recv` ends the stream.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let service = ServiceBuilder::new().layer(keep_alive_layer(5, Some(5))).service_fn(
        move |mut req: Request<Incoming>| {
            let tx = tx.clone();
            async move {
                let upgrade = WebSocketUpgrade::from_request(&mut req).unwrap();
                Ok::<_, Infallible>(upgrade.on_upgrade(move |mut socket| async move {
                    let chunk = Bytes::from(vec![0u8; 64 * 1024]);
                    let error = loop {
                        if let Err(e) = socket.send(Message::Binary(chunk.clone())).await {
                            break e;
                        }
                    };
                    let next = tokio::time::timeout(Duration::from_secs(60), socket.recv()).await;
                    let _ = tx.send((error, next.map(|item| item.is_none())));
                }))
            }
        },
    );
    let client = TestClient::new(service).timeout(Duration::from_secs(300));
    let _deaf = client.connect("/ws").await.unwrap();
    let (error, ended) = tokio::time::timeout(Duration::from_secs(120), rx.recv()).await.unwrap().unwrap();
    assert!(matches!(error, Error::KeepAliveTimeout { .. }), "{error:?}");
    assert_eq!(ended, Ok(true), "recv after the timeout yields None at once");
}

#[tokio::test(start_paused = true)]
async fn fed_messages_wait_for_one_flush() {
    let (go, wait) = tokio::sync::oneshot::channel::<()>();
    let wait = std::sync::Arc::new(std::sync::Mutex::new(Some(wait)));
    let service =
        ServiceBuilder::new().layer(WebSocketLayer::new()).service_fn(move |mut req: Request<Incoming>| {
            let wait = wait.clone().lock().unwrap().take();
            async move {
                let upgrade = WebSocketUpgrade::from_request(&mut req).unwrap();
                Ok::<_, Infallible>(upgrade.on_upgrade(move |mut socket| async move {
                    for text in ["one", "two", "three"] {
                        socket.feed(Message::text(text)).await.unwrap();
                    }
                    let _ = wait.unwrap().await;
                    socket.flush().await.unwrap();
                    while socket.recv().await.is_some() {}
                }))
            }
        });
    let client = TestClient::new(service).timeout(Duration::from_secs(1));
    let mut socket = client.connect("/ws").await.unwrap();
    // Queued, not written: nothing arrives.
    assert!(matches!(socket.recv().await.unwrap_err(), TestError::Timeout { .. }));
    go.send(()).unwrap();
    for text in ["one", "two", "three"] {
        assert_eq!(socket.recv_text().await.unwrap(), text);
    }
}

#[tokio::test]
async fn on_failed_upgrade_hears_when_the_connection_is_not_handed_over() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A hyper connection served without `with_upgrades()`: the 101 goes out, but hyper never
    // hands the connection over.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let service =
        ServiceBuilder::new().layer(WebSocketLayer::new()).service_fn(move |mut req: Request<Incoming>| {
            let tx = tx.clone();
            async move {
                let upgrade = WebSocketUpgrade::from_request(&mut req).unwrap();
                let failed = tx.clone();
                Ok::<_, Infallible>(
                    upgrade
                        .on_failed_upgrade(move |error| {
                            let _ = failed.send(Err(error));
                        })
                        .on_upgrade(move |_socket| async move {
                            let _ = tx.send(Ok(()));
                        }),
                )
            }
        });
    let (mut client, server) = tokio::io::duplex(4096);
    tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
        hyper_util::rt::TokioIo::new(server),
        hyper_util::service::TowerToHyperService::new(service),
    ));
    client
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .unwrap();
    let mut head = [0u8; 12];
    client.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
    let outcome = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
    let error = outcome.expect_err("the callback never runs; on_failed_upgrade does");
    assert!(matches!(error, Error::UpgradeFailed(_)), "{error:?}");
    assert!(error.to_string().starts_with("the connection could not be upgraded"), "{error}");
}

/// Per-accept options that do not fit: `try_on_upgrade` hands the handler the very error the
/// layer's `build()` gives for the same options, and nothing is accepted.
#[tokio::test]
async fn try_on_upgrade_returns_the_layers_config_error() {
    type Configure = fn(WebSocketUpgrade) -> WebSocketUpgrade;
    let cases: [(Configure, tower_websockets::ConfigError); 3] = [
        (
            |u| u.keep_alive_interval(Duration::ZERO).keep_alive_timeout(Duration::from_secs(1)),
            WebSocketLayer::builder()
                .keep_alive_interval(Duration::ZERO)
                .keep_alive_timeout(Duration::from_secs(1))
                .build()
                .unwrap_err(),
        ),
        (|u| u.max_message_size(0), WebSocketLayer::builder().max_message_size(0).build().unwrap_err()),
        (
            |u| u.write_buffer_size(10).max_write_buffer_size(10),
            WebSocketLayer::builder().write_buffer_size(10).max_write_buffer_size(10).build().unwrap_err(),
        ),
    ];
    for (configure, layer_error) in cases {
        let service = ServiceBuilder::new().layer(WebSocketLayer::new()).service_fn(
            move |mut req: Request<Incoming>| async move {
                let upgrade = configure(WebSocketUpgrade::from_request(&mut req).unwrap());
                let response = match upgrade.try_on_upgrade(|_socket| async {}) {
                    Ok(response) => response,
                    Err(error) => {
                        let mut response = http::Response::new(HandshakeBody::from(error.to_string()));
                        *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
                        response
                    }
                };
                Ok::<_, Infallible>(response)
            },
        );
        let error = TestClient::new(service).connect("/ws").await.unwrap_err();
        let refused = error.refused().unwrap();
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(refused.text(), layer_error.to_string());
    }
}

/// Setting a zero interval after a timeout turns keep-alive off, timeout included, in both
/// places; setting a timeout after a zero interval is refused in both.
#[test]
fn keep_alive_options_mean_the_same_on_the_layer() {
    let off = WebSocketLayer::builder()
        .keep_alive_timeout(Duration::from_secs(1))
        .keep_alive_interval(Duration::ZERO)
        .build();
    assert!(off.is_ok(), "{off:?}");
    let refused = WebSocketLayer::builder()
        .keep_alive_interval(Duration::ZERO)
        .keep_alive_timeout(Duration::from_secs(1))
        .build();
    assert_eq!(refused.unwrap_err().option(), "keep_alive_timeout");
}

/// A `close()` whose future is dropped before the peer answers (here: a timeout around it)
/// still releases the connection: the peer sees it end, and `recv` returns `None`.
#[tokio::test]
async fn dropping_the_close_future_releases_the_connection() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let service =
        ServiceBuilder::new().layer(WebSocketLayer::new()).service_fn(move |mut req: Request<Incoming>| {
            let tx = tx.clone();
            async move {
                let upgrade = WebSocketUpgrade::from_request(&mut req).unwrap();
                Ok::<_, Infallible>(upgrade.on_upgrade(move |mut socket| async move {
                    // The client does not read, so it never answers the Close.
                    let close = socket.close(CloseCode::NORMAL, "bye");
                    let timed_out = tokio::time::timeout(Duration::from_millis(100), close).await.is_err();
                    let _ = tx.send((timed_out, socket.recv().await.is_none()));
                }))
            }
        });
    let client = TestClient::new(service);
    let mut socket = client.connect("/ws").await.unwrap();
    let (timed_out, released) = rx.recv().await.unwrap();
    assert!(timed_out, "the peer did not answer, so the close future was dropped");
    assert!(released, "recv after a dropped close returns None");
    // The client sees the Close that did go out, then the end of the connection.
    assert_eq!(socket.recv_close().await.unwrap().map(|f| f.code), Some(CloseCode::NORMAL));
    assert!(socket.is_closed().await);
}

/// RFC 6455 §7.4.1 and §5.5 hold on the `Sink` too: a Close with a code that may not be sent, or
/// a Ping over 125 bytes, is refused and nothing goes out; the socket carries on. The server's
/// socket is the one tried here: the test client's side is tokio-tungstenite, whose `Sink`
/// frames what it is given.
#[tokio::test]
async fn frames_the_rfc_forbids_are_refused_on_the_sink_and_nothing_is_sent() {
    use tower_websockets::CloseFrame;

    let (results_tx, mut results) = mpsc::unbounded_channel();
    let service =
        ServiceBuilder::new().layer(WebSocketLayer::new()).service_fn(move |mut req: Request<Incoming>| {
            let results_tx = results_tx.clone();
            let upgrade = WebSocketUpgrade::from_request(&mut req).expect("a WebSocket handshake");
            async move {
                Ok::<_, Infallible>(upgrade.on_upgrade(move |mut socket| async move {
                    let no_status = Message::Close(Some(CloseFrame::new(CloseCode::NO_STATUS_RECEIVED, "")));
                    let long_reason =
                        Message::Close(Some(CloseFrame::new(CloseCode::NORMAL, "r".repeat(124))));
                    let big_ping = Message::Ping(Bytes::from(vec![0u8; 126]));
                    let mut errors = Vec::new();
                    for message in [no_status, long_reason, big_ping] {
                        errors.push(socket.send(message).await.unwrap_err());
                    }
                    let still_open = socket.send(Message::text("still open")).await;
                    let _ = results_tx.send((errors, still_open));
                    while let Some(Ok(_)) = socket.recv().await {}
                }))
            }
        });
    let mut socket = TestClient::new(service).connect("/ws").await.unwrap();
    // The first frame to arrive is the text: none of the refused ones went out.
    assert_eq!(socket.recv().await.unwrap(), Message::text("still open"));
    let (errors, still_open) = results.recv().await.unwrap();
    assert!(still_open.is_ok(), "{still_open:?}");
    assert!(matches!(&errors[0], Error::InvalidClose(m) if m.contains("1005")), "{}", errors[0]);
    assert!(matches!(&errors[1], Error::InvalidClose(m) if m.contains("124 bytes")), "{}", errors[1]);
    let io_error = matches!(&errors[2], Error::Io(e) if e.kind() == std::io::ErrorKind::InvalidInput);
    assert!(io_error, "{}", errors[2]);
    socket.close().await.unwrap();
}

/// The test client refuses a Close it may not send from `close_with` (nothing is sent), as
/// RFC 6455 §7.4.1 asks; the connection carries on.
#[tokio::test]
async fn the_test_client_refuses_to_close_with_a_code_that_may_not_be_sent() {
    let (client, mut ends) = client(WebSocketLayer::new(), Behaviour::default());
    let mut socket = client.connect("/ws").await.unwrap();
    let error = socket.close_with(CloseCode::NO_STATUS_RECEIVED, "").await.unwrap_err();
    assert!(matches!(error, TestError::Socket(Error::InvalidClose(_))), "{error}");
    let error = socket.close_with(CloseCode::NORMAL, &"r".repeat(124)).await.unwrap_err();
    assert!(matches!(error, TestError::Socket(Error::InvalidClose(_))), "{error}");
    socket.send(Message::text("still open")).await.unwrap();
    assert_eq!(socket.recv().await.unwrap(), Message::text("still open"));
    socket.close().await.unwrap();
    assert_eq!(next_end(&mut ends).await.close.unwrap().code, CloseCode::NORMAL);
}

/// The test socket's `Sink` sends what `close_with` refuses, so that a test can see the server's
/// answer: a Close with 1005 (RFC 6455 §7.4.1: never sent) is answered with 1002.
#[tokio::test]
async fn a_close_the_rfc_forbids_goes_out_through_the_test_sockets_sink() {
    use futures_util::SinkExt;
    use tower_websockets::CloseFrame;

    let (client, mut ends) = client(WebSocketLayer::new(), Behaviour::default());
    let mut socket = client.connect("/ws").await.unwrap();
    let no_status = Message::Close(Some(CloseFrame::new(CloseCode::NO_STATUS_RECEIVED, "")));
    SinkExt::send(&mut socket, no_status).await.unwrap();
    assert_eq!(socket.recv_close().await.unwrap().map(|f| f.code), Some(CloseCode::PROTOCOL_ERROR));
    assert!(socket.is_closed().await);
    let ended = next_end(&mut ends).await;
    assert!(matches!(ended.error, Some(Error::Protocol(_))), "{:?}", ended.error);
}

/// tokio-tungstenite, the test client's codec, reads a Close with 1014 (registered with IANA,
/// RFC 6455 §7.4.2) as a Close 1002: the one difference with the crate's own reading that a test
/// sees (docs/conformance.md). When tungstenite changes, this fails: update the docs.
#[tokio::test]
async fn the_test_client_reads_a_close_1014_as_1002() {
    let service =
        ServiceBuilder::new().layer(WebSocketLayer::new()).service_fn(|mut req: Request<Incoming>| {
            let upgrade = WebSocketUpgrade::from_request(&mut req).expect("a WebSocket handshake");
            async move {
                Ok::<_, Infallible>(upgrade.on_upgrade(|mut socket| async move {
                    let _ = socket.close(CloseCode(1014), "upstream down").await;
                }))
            }
        });
    let mut socket = TestClient::new(service).connect("/ws").await.unwrap();
    let frame = socket.recv_close().await.unwrap().unwrap();
    assert_eq!((frame.code, frame.reason.as_str()), (CloseCode::PROTOCOL_ERROR, "Protocol violation"));
}
