//! Per-socket rate limits (issue 21, part 3) through the in-memory client, in virtual time: a
//! throttled peer is slowed and loses nothing; a closing limit answers 1008; per-accept
//! overrides; the counters.
#![cfg(feature = "test-util")]

use std::{convert::Infallible, time::Duration};

use http::Request;
use hyper::body::Incoming;
use tokio::time::Instant;
use tower::ServiceBuilder;
use tower_websockets::{
    CloseCode, Message, WebSocketLayer, WebSocketUpgrade,
    rate_limit::{RateLimit, RateLimitPolicy},
    test::TestClient,
};

/// An echo behind `layer`; a request for `/override` gets `per_accept` as its rate limit.
fn echo(layer: WebSocketLayer, per_accept: RateLimit) -> TestClient {
    let service =
        ServiceBuilder::new().layer(layer).service_fn(move |mut req: Request<Incoming>| async move {
            let path = req.uri().path().to_owned();
            let mut upgrade = WebSocketUpgrade::from_request(&mut req).expect("a WebSocket handshake");
            if path == "/override" {
                upgrade = upgrade.rate_limit(per_accept);
            }
            Ok::<_, Infallible>(upgrade.on_upgrade(|mut socket| async move {
                while let Some(Ok(message)) = socket.recv().await {
                    if matches!(message, Message::Text(_) | Message::Binary(_))
                        && socket.send(message).await.is_err()
                    {
                        break;
                    }
                }
            }))
        });
    TestClient::new(service).timeout(Duration::from_secs(600))
}

#[tokio::test(start_paused = true)]
async fn a_throttled_peer_is_held_to_the_rate_and_loses_nothing() {
    // 10 messages a second, 5 at once.
    let layer = WebSocketLayer::builder().rate_limit(RateLimit::new().messages(10, 5)).build().unwrap();
    let client = echo(layer.clone(), RateLimit::new());
    let mut socket = client.connect("/ws").await.unwrap();
    let start = Instant::now();
    socket.send_all((0..25).map(|i| Message::from(format!("m{i}")))).await.unwrap();
    for i in 0..25 {
        assert_eq!(socket.recv_text().await.unwrap(), format!("m{i}"), "in order, none dropped");
        if i == 4 {
            assert!(
                start.elapsed() < Duration::from_millis(50),
                "the burst passes at once: {:?}",
                start.elapsed()
            );
        }
    }
    // 20 past the burst at 10 a second: two seconds of virtual time.
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_secs(2) && elapsed < Duration::from_millis(2100), "{elapsed:?}");
    let stats = layer.stats();
    assert_eq!((stats.rate_limit_throttled, stats.rate_limit_closed), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_byte_limit_throttles_by_size() {
    // 1,000 bytes a second, 1,000 at once. A message is let in whenever the bucket is not in
    // debt, so 5 messages of 1,000 bytes take 3 seconds: the burst, one message of debt, and
    // 3,000 bytes earned at the rate.
    let layer = WebSocketLayer::builder().rate_limit(RateLimit::new().bytes(1000, 1000)).build().unwrap();
    let client = echo(layer, RateLimit::new());
    let mut socket = client.connect("/ws").await.unwrap();
    let start = Instant::now();
    let payload = "x".repeat(1000);
    socket.send_all((0..5).map(|_| Message::from(payload.clone()))).await.unwrap();
    for _ in 0..5 {
        assert_eq!(socket.recv_text().await.unwrap().len(), 1000);
    }
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_secs(3) && elapsed < Duration::from_millis(3100), "{elapsed:?}");
}

#[tokio::test(start_paused = true)]
async fn a_closing_limit_answers_1008_and_counts_the_socket() {
    let limit = RateLimit::new().messages(10, 3).policy(RateLimitPolicy::Close);
    let layer = WebSocketLayer::builder().rate_limit(limit).build().unwrap();
    let client = echo(layer.clone(), RateLimit::new());
    let mut socket = client.connect("/ws").await.unwrap();
    socket.send_all((0..10).map(|i| Message::from(format!("m{i}")))).await.unwrap();
    for i in 0..3 {
        assert_eq!(socket.recv_text().await.unwrap(), format!("m{i}"));
    }
    let close = socket.recv_close().await.unwrap().expect("a Close frame");
    assert_eq!((close.code, close.reason.as_str()), (CloseCode::POLICY_VIOLATION, "rate limit exceeded"));
    let stats = layer.stats();
    assert_eq!((stats.rate_limit_closed, stats.rate_limit_throttled), (1, 0));

    // A peer within the rate is never closed.
    let mut polite = client.connect("/ws").await.unwrap();
    for i in 0..20 {
        polite.send_text(&format!("p{i}")).await.unwrap();
        assert_eq!(polite.recv_text().await.unwrap(), format!("p{i}"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(layer.stats().rate_limit_closed, 1);
}

#[tokio::test(start_paused = true)]
async fn a_limit_is_overridden_per_accept() {
    let layer = WebSocketLayer::builder().build().unwrap();
    let strict = RateLimit::new().messages(1, 1).policy(RateLimitPolicy::Close);
    let client = echo(layer.clone(), strict);
    // The layer has no limit.
    let mut free = client.connect("/ws").await.unwrap();
    free.send_all((0..50).map(|i| Message::from(format!("m{i}")))).await.unwrap();
    for i in 0..50 {
        assert_eq!(free.recv_text().await.unwrap(), format!("m{i}"));
    }
    // This socket has one.
    let mut limited = client.connect("/override").await.unwrap();
    limited.send_all((0..3).map(|i| Message::from(format!("m{i}")))).await.unwrap();
    assert_eq!(limited.recv_text().await.unwrap(), "m0");
    let close = limited.recv_close().await.unwrap().expect("a Close frame");
    assert_eq!(close.code, CloseCode::POLICY_VIOLATION);
    assert_eq!(layer.stats().rate_limit_closed, 1);
}

#[tokio::test]
async fn an_invalid_per_accept_limit_is_a_config_error_naming_the_option() {
    let service = ServiceBuilder::new().layer(WebSocketLayer::new()).service_fn(
        |mut req: Request<Incoming>| async move {
            let upgrade = WebSocketUpgrade::from_request(&mut req).expect("a WebSocket handshake");
            let error = upgrade
                .rate_limit(RateLimit::new().bytes(0, 1))
                .try_on_upgrade(|_socket| async {})
                .unwrap_err();
            Ok::<_, Infallible>(http::Response::new(tower_websockets::handshake::HandshakeBody::from(
                error.option().to_owned(),
            )))
        },
    );
    let refused = TestClient::new(service).connect("/ws").await.unwrap_err();
    assert_eq!(refused.refused().unwrap().text(), "rate_limit");
}

#[tokio::test]
async fn a_client_key_limits_its_sockets_with_429_and_retry_after() {
    let layer = WebSocketLayer::builder()
        .max_connections_per_client(2)
        .client_key(|parts| parts.headers.get("x-account")?.to_str().ok().map(str::to_owned))
        .build()
        .unwrap();
    let client = echo(layer.clone(), RateLimit::new());
    let first = client.connect("/ws").header("x-account", "ada").await.unwrap();
    let second = client.connect("/ws").header("x-account", "ada").await.unwrap();
    let refused = client.connect("/ws").header("x-account", "ada").await.unwrap_err();
    let refused = refused.refused().expect("an HTTP refusal");
    assert_eq!(refused.status(), http::StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "5");
    let other = client.connect("/ws").header("x-account", "bob").await.unwrap();
    assert_eq!(layer.stats().tracked_clients, 2);
    for mut socket in [first, second, other] {
        socket.close().await.unwrap();
    }
    // The sockets' tasks end after the closing handshake.
    for _ in 0..100 {
        if layer.stats().open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = layer.stats();
    assert_eq!((stats.open, stats.tracked_clients, stats.refused_by_client_limit), (0, 0, 1));
}

#[tokio::test]
async fn without_a_client_key_requests_are_let_in_uncounted() {
    // The in-memory client puts no peer address in the request: no key.
    let layer = WebSocketLayer::builder().max_connections_per_client(1).build().unwrap();
    let client = echo(layer.clone(), RateLimit::new());
    let mut first = client.connect("/ws").await.unwrap();
    let mut second = client.connect("/ws").await.unwrap();
    // A round trip each: both sockets are open on the server.
    for socket in [&mut first, &mut second] {
        socket.send_text("hi").await.unwrap();
        assert_eq!(socket.recv_text().await.unwrap(), "hi");
    }
    let stats = layer.stats();
    assert_eq!((stats.accepted, stats.refused_by_client_limit, stats.tracked_clients), (2, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn the_peers_close_is_never_rate_limited() {
    let limit = RateLimit::new().messages(1, 1).policy(RateLimitPolicy::Close);
    let layer = WebSocketLayer::builder().rate_limit(limit).build().unwrap();
    let client = echo(layer.clone(), RateLimit::new());
    let mut socket = client.connect("/ws").await.unwrap();
    socket.send_text("the burst").await.unwrap();
    assert_eq!(socket.recv_text().await.unwrap(), "the burst");
    // The bucket is empty: a Close still completes the closing handshake, with its own code.
    socket.close_with(CloseCode::NORMAL, "bye").await.unwrap();
    assert_eq!(layer.stats().rate_limit_closed, 0);
}
