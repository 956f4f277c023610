//! Fan-out: prepared messages sent to many sockets (plain and compressed, with and without
//! context takeover), and the hub's topics, back-pressure policies and counts.
#![cfg(feature = "test-util")]

mod common;

use std::{
    convert::Infallible,
    sync::Arc,
    time::{Duration, Instant},
};

use common::{
    TestServer,
    raw::{Raw, far_repeat, inflate},
};
use flate2::Decompress;
use hyper::body::Incoming;
use tower::{ServiceBuilder, util::BoxCloneSyncService};
use tower_websockets::{
    CloseCode, Compression, Message, WebSocket, WebSocketLayer, WebSocketUpgrade,
    broadcast::{
        Delivery, Forwarded, Hub, HubStats, LAG_CLOSE_REASON, LagPolicy, PreparedMessage,
        QUEUED_MESSAGE_OVERHEAD, Subscriber,
    },
    test::{TestClient, TestWebSocket},
};

/// JSON-like text that compresses well.
fn json(n: usize) -> String {
    (0..n).map(|i| format!(r#"{{"id":{i},"user":"alice","text":"hello, world"}}"#)).collect()
}

/// A client of [`prepared_svc`].
fn prepared_service(compression: Compression, messages: Arc<Vec<PreparedMessage>>) -> TestClient {
    TestClient::new(prepared_svc(compression, messages))
}

/// A service whose sockets each get `messages` (the same prepared values for all), a plain
/// message between them, and then read until the client closes.
fn prepared_svc(compression: Compression, messages: Arc<Vec<PreparedMessage>>) -> common::Svc {
    let layer = WebSocketLayer::builder().compression(compression).build().unwrap();
    let stack = ServiceBuilder::new().layer(layer);
    BoxCloneSyncService::new(stack.service_fn(move |mut req: http::Request<Incoming>| {
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

/// The same, read raw over TCP and inflated with flate2 (a decoded message hides RSV1): each
/// message is compressed (RSV1) where compression was negotiated, with the socket's own context
/// (with context takeover the repeat shrinks) or once for all sockets without context takeover
/// (the repeat is the same bytes), within the negotiated window; without compression, plain.
#[tokio::test]
async fn on_the_wire_prepared_messages_are_compressed_as_each_socket_negotiated() {
    let far = far_repeat();
    let messages = Arc::new(vec![
        PreparedMessage::text(json(200)),
        PreparedMessage::text(json(200)),
        PreparedMessage::binary(far.clone()),
    ]);
    let server = TestServer::start(prepared_svc(Compression::enabled(), messages)).await;
    let takeover = "permessage-deflate";
    let no_takeover = "permessage-deflate; server_no_context_takeover";
    let ten_bits = "permessage-deflate; server_no_context_takeover; server_max_window_bits=10";
    for offer in [None, Some(takeover), Some(no_takeover), Some(ten_bits)] {
        let headers = offer.map(|offer| format!("Sec-WebSocket-Extensions: {offer}\r\n")).unwrap_or_default();
        let (mut raw, head) = Raw::open_with(&server.addr.to_string(), &headers).await;
        let head = head.to_ascii_lowercase();
        assert_eq!(head.contains("sec-websocket-extensions"), offer.is_some(), "{head}");
        let bits = if offer == Some(ten_bits) { 10 } else { 15 };
        let mut context = Decompress::new(false);
        let mut payloads = Vec::new();
        for (opcode, expected) in [
            (0x1, json(200).into_bytes()),
            (0x1, json(3).into_bytes()),
            (0x1, json(200).into_bytes()),
            (0x1, json(3).into_bytes()),
            (0x2, far.clone()),
            (0x1, json(3).into_bytes()),
        ] {
            let (b0, payload) = raw.reader.next_data_frame().await;
            let inflated = match offer {
                None => {
                    assert_eq!(b0, 0x80 | opcode, "{offer:?}: FIN, no RSV1");
                    payload.clone()
                }
                Some(offer) => {
                    assert_eq!(b0, 0x80 | 0x40 | opcode, "{offer}: FIN, RSV1 (compressed)");
                    let mut fresh = Decompress::new_with_window_bits(false, bits);
                    let decompress = if offer == takeover { &mut context } else { &mut fresh };
                    inflate(decompress, &payload).expect("inflates with the negotiated window")
                }
            };
            assert_eq!(inflated, expected, "{offer:?}");
            payloads.push(payload);
        }
        let (first, repeat, far_payload) = (&payloads[0], &payloads[2], &payloads[4]);
        match offer {
            None => {}
            Some(offer) if offer == takeover => {
                assert!(
                    repeat.len() < first.len() * 6 / 10,
                    "the repeat refers back: {} then {}",
                    first.len(),
                    repeat.len()
                );
                assert!(
                    far_payload.len() < far.len() * 6 / 10,
                    "15 bits reach 2,000 bytes back: {}",
                    far_payload.len()
                );
            }
            Some(_) => {
                assert_eq!(first, repeat, "{offer:?}: compressed once, the same bytes each time");
                let reaches_back = far_payload.len() < far.len() * 6 / 10;
                assert_eq!(
                    reaches_back,
                    bits == 15,
                    "{offer:?}: {} bytes for {}",
                    far_payload.len(),
                    far.len()
                );
            }
        }
        raw.send(&common::raw::frame(0x88, &common::raw::close_payload(1000, b""))).await;
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

// ---- The hub ----

/// A chat service on `hub`: a socket joins the topic named by its path, publishes every text it
/// receives there, and writes what is published, with "missed N" for dropped messages.
fn hub_service(hub: Hub) -> TestClient {
    let layer = WebSocketLayer::builder().write_buffer_size(8 * 1024).build().unwrap();
    let stack = ServiceBuilder::new().layer(layer);
    TestClient::new(stack.service_fn(move |mut req: http::Request<Incoming>| {
        let hub = hub.clone();
        async move {
            let topic = req.uri().path().to_owned();
            let upgrade = WebSocketUpgrade::from_request(&mut req).unwrap();
            // Subscribed here, before the 101 goes out: the client's connect returns after it.
            let mut subscriber = hub.subscriber();
            subscriber.subscribe(&topic);
            Ok::<_, Infallible>(
                upgrade.on_upgrade(move |socket: WebSocket| chat(socket, hub, topic, subscriber)),
            )
        }
    }))
}

async fn chat(mut socket: WebSocket, hub: Hub, topic: String, mut subscriber: Subscriber) {
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    hub.publish(&topic, text);
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
            () = subscriber.ready() => {
                // The documented shape: whatever is queued, one flush.
                match subscriber.forward_to(&mut socket).await {
                    Ok(forwarded) if forwarded.close.is_some() => break,
                    Ok(forwarded) if forwarded.missed > 0 => {
                        if socket.send(format!("missed {}", forwarded.missed)).await.is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
    }
}

/// Issue 20's race: a client whose connect has returned must get the very next publish. The
/// handler subscribes before the 101 goes out (the documented shape); subscribing inside the
/// `on_upgrade` callback instead, which runs on a spawned task after the 101, missed the first
/// publish in some rounds of 500 on two worker threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_connect_has_returned_gets_the_next_publish() {
    const ROUNDS: usize = 500;
    let hub = Hub::new();
    let client = hub_service(hub.clone());
    let mut missed = Vec::new();
    for round in 0..ROUNDS {
        let topic = format!("/race/{round}");
        let mut newcomer = client.connect(&topic).await.unwrap();
        // At once, as another member speaking would.
        hub.publish(&topic, "first");
        // Then a message it gets for certain, once it is in the topic.
        wait_for(&hub, "the newcomer in its topic", |_| hub.subscriber_count(&topic) == 1).await;
        hub.publish(&topic, "second");
        match newcomer.recv_text().await.unwrap().as_str() {
            "first" => assert_eq!(newcomer.recv_text().await.unwrap(), "second"),
            _ => missed.push(round),
        }
        newcomer.close().await.unwrap();
    }
    assert!(missed.is_empty(), "missed the first publish in {} of {ROUNDS} rounds: {missed:?}", missed.len());
}

/// Waits (in real time, up to 5 s) until `check` holds for the hub's counts.
async fn wait_for(hub: &Hub, what: &str, check: impl Fn(&HubStats) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check(&hub.stats()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {:?}", hub.stats());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn connect_all(client: &TestClient, path: &str, n: usize) -> Vec<TestWebSocket> {
    let mut sockets = Vec::new();
    for _ in 0..n {
        sockets.push(client.connect(path).await.unwrap());
    }
    sockets
}

#[tokio::test]
async fn a_message_published_by_one_socket_reaches_every_subscriber_of_its_topic() {
    let hub = Hub::new();
    let client = hub_service(hub.clone());
    let mut room = connect_all(&client, "/room", 20).await;
    let mut elsewhere = client.connect("/elsewhere").await.unwrap();
    wait_for(&hub, "21 subscribers", |s| s.subscriptions == 21).await;
    assert_eq!(hub.subscriber_count("/room"), 20);

    room[3].send_text("hello, room").await.unwrap();
    for socket in &mut room {
        assert_eq!(socket.recv_text().await.unwrap(), "hello, room");
    }
    // And from outside any socket: a background task's publish.
    assert_eq!(hub.publish("/room", "from the server"), 20);
    for socket in &mut room {
        assert_eq!(socket.recv_text().await.unwrap(), "from the server");
    }
    elsewhere.send_text("anyone?").await.unwrap();
    assert_eq!(elsewhere.recv_text().await.unwrap(), "anyone?");
    // The next thing the room sees is its own marker: nothing came from the other topic.
    hub.publish("/room", "marker");
    for socket in &mut room {
        assert_eq!(socket.recv_text().await.unwrap(), "marker");
    }
    let stats = hub.stats();
    assert_eq!((stats.topics, stats.subscribers, stats.published, stats.queued), (2, 21, 4, 61));
    assert_eq!(stats.dropped, 0);
    for socket in &mut room {
        socket.close().await.unwrap();
    }
    elsewhere.close().await.unwrap();
}

#[tokio::test]
async fn a_socket_leaves_its_topics_when_its_handler_ends() {
    let hub = Hub::new();
    let client = hub_service(hub.clone());
    let mut sockets = connect_all(&client, "/room", 3).await;
    wait_for(&hub, "3 subscribers", |s| s.subscriptions == 3).await;
    sockets[0].close().await.unwrap();
    wait_for(&hub, "2 subscribers", |s| s.subscribers == 2 && s.subscriptions == 2).await;
    assert_eq!(hub.publish("/room", "still here"), 2);
    for socket in &mut sockets[1..] {
        assert_eq!(socket.recv_text().await.unwrap(), "still here");
    }
    // A socket dropped without a closing handshake leaves too.
    drop(sockets.pop());
    wait_for(&hub, "1 subscriber", |s| s.subscribers == 1).await;
    sockets[1].close().await.unwrap();
    wait_for(&hub, "no topic", |s| s.topics == 0 && s.subscribers == 0 && s.subscriptions == 0).await;
    assert_eq!(hub.publish("/room", "nobody"), 0);
}

#[tokio::test]
async fn unsubscribe_stops_deliveries_and_keeps_what_was_queued() {
    let hub = Hub::new();
    let mut alice = hub.subscriber();
    let mut bob = hub.subscriber();
    for topic in ["a", "b"] {
        alice.subscribe(topic);
        bob.subscribe(topic);
    }
    hub.publish("a", "one");
    assert!(alice.unsubscribe("a"));
    assert!(!alice.unsubscribe("a"));
    assert_eq!(hub.publish("a", "two"), 1);
    assert_eq!(hub.publish("b", "three"), 2);
    let texts = |subscriber: &mut tower_websockets::broadcast::Subscriber| {
        let mut texts = Vec::new();
        while let Some(delivery) = subscriber.try_recv() {
            let Delivery::Message(message) = delivery else { panic!("{delivery:?}") };
            texts.push(message.to_message().as_text().unwrap().to_owned());
        }
        texts
    };
    assert_eq!(texts(&mut alice), ["one", "three"]);
    assert_eq!(texts(&mut bob), ["one", "two", "three"]);
    assert_eq!(hub.stats().subscriptions, 3);
    drop(bob);
    assert_eq!(hub.stats().topics, 1);
    assert_eq!(hub.subscriber_count("a"), 0);
}

#[tokio::test]
async fn publish_except_skips_one_subscriber_only() {
    let hub = Hub::new();
    let client = hub_service(hub.clone());
    let mut room = connect_all(&client, "/room", 3).await;
    let mut speaker = hub.subscriber();
    speaker.subscribe("/room");
    let mut elsewhere = hub.subscriber();
    elsewhere.subscribe("/elsewhere");
    assert_eq!(hub.publish_except("/room", "not to the speaker", &speaker), 3);
    for socket in &mut room {
        assert_eq!(socket.recv_text().await.unwrap(), "not to the speaker");
    }
    assert!(speaker.try_recv().is_none());
    // A subscriber of another topic changes nothing; the others still get the next message.
    assert_eq!(hub.publish_except("/room", "to all", &elsewhere), 4);
    assert!(matches!(speaker.try_recv(), Some(Delivery::Message(_))));
    assert_eq!(hub.stats().published, 2);
    for socket in &mut room {
        assert_eq!(socket.recv_text().await.unwrap(), "to all");
        socket.close().await.unwrap();
    }
}

/// `forward_to` under a timeout that keeps cancelling it while the client does not read: every
/// message still arrives, once and in order.
#[tokio::test]
async fn forward_to_dropped_mid_batch_loses_nothing() {
    const COUNT: usize = 2000;
    let (cancelled_tx, mut cancelled_rx) = tokio::sync::mpsc::unbounded_channel();
    let layer = WebSocketLayer::builder().write_buffer_size(16 * 1024).build().unwrap();
    let client = TestClient::new(ServiceBuilder::new().layer(layer).service_fn(
        move |mut req: http::Request<Incoming>| {
            let cancelled_tx = cancelled_tx.clone();
            async move {
                let upgrade = WebSocketUpgrade::from_request(&mut req).unwrap();
                let hub = Hub::builder().max_queued_bytes(8 << 20).build().unwrap();
                let mut subscriber = hub.subscriber();
                subscriber.subscribe("t");
                Ok::<_, Infallible>(upgrade.on_upgrade(move |mut socket: WebSocket| async move {
                    let padding = "x".repeat(1000);
                    for i in 0..COUNT {
                        hub.publish("t", format!("{i:05}{padding}"));
                    }
                    let mut cancelled = 0;
                    while futures_util::FutureExt::now_or_never(subscriber.ready()).is_some() {
                        let forward = subscriber.forward_to(&mut socket);
                        match tokio::time::timeout(Duration::from_millis(2), forward).await {
                            Ok(forwarded) => assert!(forwarded.is_ok(), "{forwarded:?}"),
                            Err(_) => cancelled += 1,
                        }
                    }
                    cancelled_tx.send(cancelled).unwrap();
                    socket.close(CloseCode::NORMAL, "done").await.unwrap();
                }))
            }
        },
    ));
    let mut socket = client.connect("/").await.unwrap();
    // Not reading yet: the pipe and the write buffer fill, and the timeouts cancel.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 0..COUNT {
        let text = socket.recv_text().await.unwrap();
        assert_eq!(text[..5], format!("{i:05}"));
    }
    assert_eq!(socket.recv_close().await.unwrap().unwrap().code, CloseCode::NORMAL);
    let cancelled = cancelled_rx.recv().await.unwrap();
    assert!(cancelled > 0, "the test cancelled no forward_to");
}

#[tokio::test]
async fn drop_oldest_keeps_the_newest_and_counts_what_was_missed() {
    let message = |i: usize| PreparedMessage::text(format!("{i:04}"));
    let budget = 10 * (4 + QUEUED_MESSAGE_OVERHEAD);
    let hub = Hub::builder().max_queued_bytes(budget).build().unwrap();
    let mut slow = hub.subscriber();
    let mut fast = hub.subscriber();
    slow.subscribe("t");
    fast.subscribe("t");
    for i in 0..100 {
        assert_eq!(hub.publish("t", message(i)), 2, "both subscribers keep taking messages");
        let Some(Delivery::Message(got)) = fast.try_recv() else { panic!("the fast one gets #{i}") };
        assert_eq!(got.to_message(), message(i).to_message());
    }
    assert_eq!(slow.queued_bytes(), budget);
    assert!(matches!(slow.try_recv(), Some(Delivery::Missed(90))));
    for i in 90..100 {
        let Some(Delivery::Message(got)) = slow.try_recv() else { panic!("#{i}") };
        assert_eq!(got.to_message(), message(i).to_message());
    }
    assert!(slow.try_recv().is_none());
    assert_eq!(hub.stats().dropped, 90);
    // A message larger than the whole budget still reaches an empty queue.
    hub.publish("t", vec![0u8; budget * 2]);
    assert!(matches!(slow.try_recv(), Some(Delivery::Message(m)) if m.len() == budget * 2));
}

#[tokio::test]
async fn the_close_policy_tells_the_slow_subscriber_to_close_and_removes_it() {
    let hub = Hub::builder()
        .max_queued_bytes(1000)
        .on_lag(LagPolicy::Close(CloseCode::POLICY_VIOLATION))
        .build()
        .unwrap();
    let mut slow = hub.subscriber();
    let mut fast = hub.subscriber();
    slow.subscribe("t");
    fast.subscribe("t");
    let mut reached = Vec::new();
    for _ in 0..50 {
        reached.push(hub.publish("t", vec![1u8; 100]));
        assert!(matches!(fast.try_recv(), Some(Delivery::Message(_))));
    }
    // 164 bytes a message: six fit in 1000, the seventh closes the slow one.
    assert_eq!(reached[..6], [2; 6]);
    assert!(reached[6..].iter().all(|&n| n == 1), "{reached:?}");
    assert!(matches!(slow.try_recv(), Some(Delivery::Close(CloseCode::POLICY_VIOLATION))));
    assert_eq!(slow.topics().count(), 0, "it left its topics");
    assert_eq!(slow.queued_bytes(), 0);
    let stats = hub.stats();
    assert_eq!((stats.closed_for_lag, stats.dropped, stats.subscriptions), (1, 7, 1));
    assert!(slow.try_recv().is_none());
}

#[test]
fn bad_hub_options_are_refused() {
    let error = Hub::builder().max_queued_bytes(0).build().unwrap_err();
    assert_eq!(error.option(), "max_queued_bytes");
    let error = Hub::builder().on_lag(LagPolicy::Close(CloseCode::NO_STATUS_RECEIVED)).build().unwrap_err();
    assert_eq!(error.option(), "on_lag");
    assert!(error.to_string().contains("1005"), "{error}");
}

/// Sockets: a client that never reads does not hold the publisher or the others up.
async fn slow_reader_among_fast_ones(
    policy: LagPolicy,
) -> (Vec<String>, Option<tower_websockets::CloseFrame>, HubStats) {
    const COUNT: usize = 2000;
    let hub = Hub::builder().max_queued_bytes(64 * 1024).on_lag(policy).build().unwrap();
    let client = hub_service(hub.clone());
    let mut slow = client.connect("/room").await.unwrap();
    let fast = connect_all(&client, "/room", 3).await;
    wait_for(&hub, "4 subscribers", |s| s.subscriptions == 4).await;
    let padding = "x".repeat(2000);
    // How far each fast reader has got: the test paces its publishing to them, as healthy
    // clients would be; the slow one never reads meanwhile.
    let progress: Arc<Vec<std::sync::atomic::AtomicUsize>> =
        Arc::new((0..3).map(|_| Default::default()).collect());
    let readers: Vec<_> = fast
        .into_iter()
        .enumerate()
        .map(|(n, mut socket)| {
            let progress = progress.clone();
            tokio::spawn(async move {
                for i in 0..COUNT {
                    let text = socket.recv_text().await.unwrap();
                    assert_eq!(text[..5], format!("{i:05}"), "a fast reader gets every message, in order");
                    progress[n].store(i + 1, std::sync::atomic::Ordering::Relaxed);
                }
                socket.close().await.unwrap();
            })
        })
        .collect();
    for batch in 0..COUNT / 20 {
        for i in batch * 20..(batch + 1) * 20 {
            // Publishing has no await: it never waits for any socket.
            assert!(hub.publish("/room", format!("{i:05}{padding}")) >= 3);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while progress.iter().any(|p| p.load(std::sync::atomic::Ordering::Relaxed) < (batch + 1) * 20) {
            assert!(Instant::now() < deadline, "the fast readers are held up");
            tokio::task::yield_now().await;
        }
    }
    for reader in readers {
        reader.await.unwrap();
    }
    // Now the slow one reads what it kept.
    let mut texts = Vec::new();
    let close = loop {
        match slow.recv().await.unwrap() {
            Message::Text(text) => {
                let done = text.starts_with(&format!("{:05}", COUNT - 1));
                texts.push(text.as_str().to_owned());
                if done {
                    break None;
                }
            }
            Message::Close(frame) => break frame,
            other => panic!("{other:?}"),
        }
    };
    (texts, close, hub.stats())
}

#[tokio::test]
async fn a_slow_socket_under_drop_oldest_misses_messages_and_is_told_how_many() {
    let (texts, close, stats) = slow_reader_among_fast_ones(LagPolicy::DropOldest).await;
    assert!(close.is_none());
    assert_eq!(stats.closed_for_lag, 0);
    let notices: Vec<_> = texts.iter().filter(|t| t.starts_with("missed ")).collect();
    assert!(!notices.is_empty(), "it fell behind");
    let missed: usize = notices.iter().map(|t| t["missed ".len()..].parse::<usize>().unwrap()).sum();
    let numbers: Vec<usize> =
        texts.iter().filter(|t| !t.starts_with("missed ")).map(|t| t[..5].parse().unwrap()).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "in order");
    assert_eq!(numbers.len() + missed, 2000, "every message either arrived or was counted missed");
    assert_eq!(stats.dropped, missed as u64);
}

#[tokio::test]
async fn a_slow_socket_under_the_close_policy_is_closed_with_1013() {
    let (texts, close, stats) =
        slow_reader_among_fast_ones(LagPolicy::Close(CloseCode::TRY_AGAIN_LATER)).await;
    assert_eq!(stats.closed_for_lag, 1);
    assert!(stats.dropped > 0);
    let close = close.expect("a Close");
    assert_eq!(close.code, CloseCode::TRY_AGAIN_LATER);
    assert_eq!(close.reason.as_str(), LAG_CLOSE_REASON);
    assert!(texts.len() < 2000);
}

/// A socket whose handler queues `publish` messages for its own subscriber (and, with
/// `budget`, lets the hub drop some), then forwards them with `forward_to` until the queue is
/// empty, and reports each call's result.
async fn forward_queued(
    publish: usize,
    budget: Option<usize>,
    policy: LagPolicy,
) -> (Vec<Forwarded>, Vec<Message>) {
    let (report, mut reports) = tokio::sync::mpsc::unbounded_channel();
    let layer = WebSocketLayer::new();
    let client = TestClient::new(ServiceBuilder::new().layer(layer).service_fn(
        move |mut req: http::Request<Incoming>| {
            let report = report.clone();
            async move {
                let upgrade = WebSocketUpgrade::from_request(&mut req).unwrap();
                Ok::<_, Infallible>(upgrade.on_upgrade(move |mut socket: WebSocket| async move {
                    let mut hub = Hub::builder().on_lag(policy);
                    if let Some(budget) = budget {
                        hub = hub.max_queued_bytes(budget);
                    }
                    let hub = hub.build().unwrap();
                    let mut subscriber = hub.subscriber();
                    subscriber.subscribe("t");
                    for i in 0..publish {
                        hub.publish("t", format!("{i}"));
                    }
                    // Until nothing is waiting: `ready` completes at once while something is.
                    while futures_util::FutureExt::now_or_never(subscriber.ready()).is_some() {
                        let forwarded = subscriber.forward_to(&mut socket).await.unwrap();
                        let closed = forwarded.close.is_some();
                        report.send(Some(forwarded)).unwrap();
                        if closed {
                            report.send(None).unwrap();
                            return;
                        }
                    }
                    report.send(None).unwrap();
                    socket.close(CloseCode::NORMAL, "done").await.unwrap();
                }))
            }
        },
    ));
    let mut socket = client.connect("/").await.unwrap();
    let mut received = Vec::new();
    loop {
        let message = socket.recv().await.unwrap();
        let close = message.is_close();
        received.push(message);
        if close {
            break;
        }
    }
    let mut forwarded = Vec::new();
    while let Some(Some(report)) = reports.recv().await {
        forwarded.push(report);
    }
    (forwarded, received)
}

#[tokio::test]
async fn forward_to_writes_a_burst_in_batches_of_at_most_256_in_order() {
    let (forwarded, received) = forward_queued(300, None, LagPolicy::DropOldest).await;
    let counts: Vec<usize> = forwarded.iter().map(|f| f.sent).collect();
    assert_eq!(counts, [256, 44]);
    assert!(forwarded.iter().all(|f| f.missed == 0 && f.close.is_none()));
    let texts: Vec<&str> = received.iter().filter_map(Message::as_text).collect();
    let expected: Vec<String> = (0..300).map(|i| i.to_string()).collect();
    assert_eq!(texts, expected);
}

#[tokio::test]
async fn forward_to_reports_missed_messages_alone_so_that_the_notice_keeps_its_place() {
    // Room for 3 one-digit messages: of 10, the oldest 7 are dropped.
    let budget = 3 * (1 + QUEUED_MESSAGE_OVERHEAD);
    let (forwarded, received) = forward_queued(10, Some(budget), LagPolicy::DropOldest).await;
    assert_eq!(forwarded.len(), 2, "{forwarded:?}");
    assert_eq!((forwarded[0].missed, forwarded[0].sent), (7, 0));
    assert_eq!((forwarded[1].missed, forwarded[1].sent), (0, 3));
    let texts: Vec<&str> = received.iter().filter_map(Message::as_text).collect();
    assert_eq!(texts, ["7", "8", "9"]);
}

#[tokio::test]
async fn forward_to_closes_the_socket_on_the_order_to_close_and_reports_the_frame() {
    let budget = 3 * (1 + QUEUED_MESSAGE_OVERHEAD);
    let (forwarded, received) =
        forward_queued(10, Some(budget), LagPolicy::Close(CloseCode::POLICY_VIOLATION)).await;
    assert_eq!(forwarded.len(), 1, "{forwarded:?}");
    let frame = forwarded[0].close.clone().expect("the order to close");
    assert_eq!((frame.code, frame.reason.as_str()), (CloseCode::POLICY_VIOLATION, LAG_CLOSE_REASON));
    assert_eq!(forwarded[0].sent, 0);
    let Some(Message::Close(Some(received))) = received.last() else { panic!("{received:?}") };
    assert_eq!(*received, frame, "the client got that frame");
}
