//! The Redis backplane against a real `redis-server` (tests/common/redis_server.rs): two hubs
//! (two instances) on one Redis, each message once on each; the chat example as two instances;
//! Redis stopped and restarted under them; and the start-up errors.
//!
//! Every test here needs `redis-server`, so each is `#[ignore]`d with that reason: the README's
//! `cargo test --all-features` reports them as ignored, never as passed. Where Redis is installed
//! (CI: `.ci/run` installs it), run them with
//! `cargo test --all-features --test redis_backplane -- --ignored`; without `redis-server` they
//! then fail, saying so.
#![cfg(all(feature = "redis", feature = "test-util"))]

mod common;

// The chat example needs `axum` and `json` too: its tests below are in `chat_instances`.
#[cfg(all(feature = "axum", feature = "json"))]
#[path = "../examples/chat.rs"]
#[allow(dead_code)]
mod chat;

use std::time::{Duration, Instant};

use common::redis_server::RedisServer;
use tower_websockets::broadcast::{BackplaneError, Delivery, Hub, RedisBackplane, Subscriber};

const PATIENCE: Duration = Duration::from_secs(10);

/// Waits until `done` holds, or fails saying `what`.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn next_text(subscriber: &mut Subscriber) -> String {
    match tokio::time::timeout(PATIENCE, subscriber.recv()).await {
        Ok(Delivery::Message(message)) => message.to_message().as_text().expect("text").to_owned(),
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Nothing more arrives within a moment (long enough for Redis to have echoed anything).
async fn nothing_more(subscriber: &mut Subscriber) {
    if let Ok(delivery) = tokio::time::timeout(Duration::from_millis(300), subscriber.recv()).await {
        panic!("unexpected {delivery:?}");
    }
}

async fn instance(redis: &RedisServer) -> (Hub, RedisBackplane) {
    let hub = Hub::new();
    let backplane = RedisBackplane::attach(&redis.url(""), &hub).await.expect("attach");
    (hub, backplane)
}

#[tokio::test]
#[ignore = "needs redis-server; run with --ignored (CI does)"]
async fn a_message_published_on_either_instance_reaches_every_subscriber_once_and_in_order() {
    let redis = RedisServer::start(&[]);
    let (east, east_backplane) = instance(&redis).await;
    let (west, west_backplane) = instance(&redis).await;
    let mut alice = east.subscriber();
    let mut bob = west.subscriber();
    let mut carol = west.subscriber();
    for subscriber in [&mut alice, &mut bob, &mut carol] {
        subscriber.subscribe("room");
    }
    eventually("both instances have subscribed", || {
        east_backplane.is_subscribed("room") && west_backplane.is_subscribed("room")
    })
    .await;

    assert_eq!(east.publish_confirmed("room", "from east").await, Ok(1), "one local subscriber");
    assert_eq!(west.publish_confirmed("room", "from west").await, Ok(2));
    assert_eq!(next_text(&mut alice).await, "from east");
    assert_eq!(next_text(&mut alice).await, "from west");
    // Two publishers: no order between them, but each message once.
    for subscriber in [&mut bob, &mut carol] {
        let mut got = [next_text(subscriber).await, next_text(subscriber).await];
        got.sort();
        assert_eq!(got, ["from east", "from west"]);
    }
    for subscriber in [&mut alice, &mut bob, &mut carol] {
        nothing_more(subscriber).await;
    }

    // One publisher's messages keep their order on the other instance.
    for n in 0..200 {
        east.publish("room", format!("{n}"));
    }
    for n in 0..200 {
        assert_eq!(next_text(&mut bob).await, format!("{n}"));
        assert_eq!(next_text(&mut alice).await, format!("{n}"));
    }
    // Counted once Redis has answered the pipeline: 1 + 200 messages from east, none lost.
    eventually("east's relays are counted", || east.stats().relayed == 201).await;
    assert_eq!(east.stats().relay_failures, 0);
    assert_eq!(west.stats().from_backplane, 201, "{:?}", west.stats());

    // A topic nobody here is in is not received here; binary messages cross too.
    let mut dave = west.subscriber();
    dave.subscribe("other");
    eventually("west subscribed to other", || west_backplane.is_subscribed("other")).await;
    assert_eq!(east.publish_confirmed("other", vec![1u8, 2, 3]).await, Ok(0));
    match tokio::time::timeout(PATIENCE, dave.recv()).await {
        Ok(Delivery::Message(message)) => {
            assert_eq!(message.to_message(), tower_websockets::Message::Binary(vec![1u8, 2, 3].into()));
        }
        other => panic!("{other:?}"),
    }
    nothing_more(&mut alice).await;

    // The last subscriber leaving a topic unsubscribes the instance.
    drop(dave);
    eventually("west unsubscribed from other", || !west_backplane.is_subscribed("other")).await;
}

#[tokio::test]
#[ignore = "needs redis-server; run with --ignored (CI does)"]
async fn publish_except_skips_one_local_subscriber_and_reaches_every_other_instance_s_all() {
    let redis = RedisServer::start(&[]);
    let (east, east_backplane) = instance(&redis).await;
    let (west, west_backplane) = instance(&redis).await;
    let (mut alice, mut dave) = (east.subscriber(), east.subscriber());
    let mut bob = west.subscriber();
    for subscriber in [&mut alice, &mut dave, &mut bob] {
        subscriber.subscribe("room");
    }
    eventually("both instances have subscribed", || {
        east_backplane.is_subscribed("room") && west_backplane.is_subscribed("room")
    })
    .await;
    assert_eq!(east.publish_except("room", "alice says hi", &alice), 1, "dave, here");
    assert_eq!(next_text(&mut dave).await, "alice says hi");
    assert_eq!(next_text(&mut bob).await, "alice says hi");
    nothing_more(&mut alice).await;
    nothing_more(&mut dave).await;
    nothing_more(&mut bob).await;
}

#[tokio::test]
#[ignore = "needs redis-server; run with --ignored (CI does)"]
async fn while_redis_is_down_publishing_fails_locally_only_and_afterwards_everything_resumes() {
    let mut redis = RedisServer::start(&[]);
    let east = Hub::new();
    let east_backplane = RedisBackplane::builder(redis.url(""))
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(400))
        .attach(&east)
        .await
        .expect("attach east");
    let west = Hub::new();
    let west_backplane = RedisBackplane::builder(redis.url(""))
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(400))
        .attach(&west)
        .await
        .expect("attach west");
    let mut alice = east.subscriber();
    let mut bob = west.subscriber();
    alice.subscribe("room");
    bob.subscribe("room");
    eventually("both subscribed", || {
        east_backplane.is_subscribed("room") && west_backplane.is_subscribed("room")
    })
    .await;
    east.publish_confirmed("room", "before").await.expect("Redis is up");
    assert_eq!(next_text(&mut bob).await, "before");
    assert_eq!(next_text(&mut alice).await, "before");

    redis.stop();
    // The first publish may still be written to a socket whose peer just went; soon they fail.
    let error = loop {
        match east.publish_confirmed("room", "during").await {
            Err(error) => break error,
            Ok(reached) => assert_eq!(reached, 1),
        }
        assert_eq!(next_text(&mut alice).await, "during");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(matches!(error, BackplaneError::Unavailable { .. }), "{error:?}");
    assert!(error.to_string().contains("only this instance's subscribers got the message"), "{error}");
    assert_eq!(next_text(&mut alice).await, "during", "the local subscriber still gets it");
    assert!(east.stats().relay_failures >= 1);
    eventually("both backplanes see the outage", || {
        !west_backplane.is_connected()
            && !east_backplane.is_subscribed("room")
            && !west_backplane.is_subscribed("room")
    })
    .await;
    // A fire-and-forget publish during the outage: local delivery, a counted failure, no panic.
    assert_eq!(west.publish("room", "west during"), 1);
    assert_eq!(next_text(&mut bob).await, "west during");
    eventually("the failure is counted", || west.stats().relay_failures >= 1).await;

    redis.restart();
    eventually("both subscribers reconnect and subscribe again", || {
        east_backplane.is_subscribed("room") && west_backplane.is_subscribed("room")
    })
    .await;
    // The publisher reconnects on the next publish once its back-off has passed.
    let deadline = Instant::now() + PATIENCE;
    loop {
        match east.publish_confirmed("room", "after").await {
            Ok(_) => break,
            Err(error) => assert!(Instant::now() < deadline, "still failing: {error}"),
        }
        assert_eq!(next_text(&mut alice).await, "after");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(next_text(&mut alice).await, "after");
    assert_eq!(next_text(&mut bob).await, "after", "west receives again, once");
    nothing_more(&mut bob).await;
    assert!(east_backplane.is_connected());

    // A second outage is noticed and survived as well.
    redis.stop();
    eventually("both see the second outage", || {
        !west_backplane.is_subscribed("room") && !east_backplane.is_subscribed("room")
    })
    .await;
    redis.restart();
    eventually("west is back", || west_backplane.is_subscribed("room")).await;
    eventually("east is back", || east_backplane.is_subscribed("room")).await;
    // West's publisher reconnects at once: its subscriber saw the outage.
    assert_eq!(west.publish_confirmed("room", "again").await, Ok(1));
    assert_eq!(next_text(&mut bob).await, "again");
    assert_eq!(next_text(&mut alice).await, "again");
}

#[tokio::test]
#[ignore = "needs redis-server; run with --ignored (CI does)"]
async fn start_up_errors_name_the_problem() {
    let redis = RedisServer::start(&["--requirepass", "right"]);

    let wrong = RedisBackplane::attach(&redis.url(":wrong@"), &Hub::new()).await.unwrap_err();
    assert!(matches!(wrong, BackplaneError::Refused { .. }), "{wrong:?}");
    let text = wrong.to_string();
    assert!(text.contains("refused") && !text.contains("wrong@"), "{text}");

    let missing = RedisBackplane::attach(&redis.url(""), &Hub::new()).await.unwrap_err();
    assert!(matches!(missing, BackplaneError::Refused { .. }), "{missing:?}");
    assert!(missing.to_string().to_lowercase().contains("auth"), "{missing}");

    let hub = Hub::new();
    let backplane = RedisBackplane::attach(&redis.url(":right@"), &hub).await.expect("the right password");
    assert_eq!(backplane.url(), redis.url(":***@"));
    let again = RedisBackplane::attach(&redis.url(":right@"), &hub).await.unwrap_err();
    assert_eq!(again, BackplaneError::AlreadyAttached);
}

/// The chat example as two instances on one Redis.
#[cfg(all(feature = "axum", feature = "json"))]
mod chat_instances {
    use std::time::{Duration, Instant};

    use tower_websockets::test::{TestClient, TestWebSocket};

    use super::{PATIENCE, chat, common::redis_server::RedisServer};

    /// One chat instance, in memory, on the shared Redis.
    async fn chat_instance(redis: &RedisServer) -> TestClient {
        let state = chat::Chat::default();
        chat::share_rooms_through_redis(&state, &redis.url("")).await.expect("attach");
        TestClient::new(chat::app(state, &[]).unwrap())
    }

    fn say(text: &str) -> String {
        serde_json::json!({ "type": "say", "text": text }).to_string()
    }

    async fn join(client: &TestClient, nick: &str, room: &str) -> TestWebSocket {
        let mut socket = client.connect("/ws").await.unwrap();
        socket.send_text(&serde_json::json!({ "type": "nick", "name": nick }).to_string()).await.unwrap();
        assert_eq!(
            socket.recv_text().await.unwrap(),
            format!(r#"{{"type":"info","text":"you are {nick}"}}"#)
        );
        socket.send_text(&serde_json::json!({ "type": "join", "room": room }).to_string()).await.unwrap();
        socket
    }

    /// Reads until the room's presence lists `members` (in any order).
    async fn until_present(socket: &mut TestWebSocket, members: &[&str]) {
        let mut expected: Vec<String> = members.iter().map(|m| format!("\"{m}\"")).collect();
        expected.sort();
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = tokio::time::timeout_at(deadline.into(), socket.recv_text())
                .await
                .unwrap_or_else(|_| panic!("no presence with {members:?}"))
                .unwrap();
            let Some(list) = text.strip_prefix(r#"{"type":"presence","room":"lobby","members":["#) else {
                continue;
            };
            let mut listed: Vec<String> =
                list.trim_end_matches("]}").split(',').filter(|m| !m.is_empty()).map(str::to_owned).collect();
            listed.sort();
            if listed == expected {
                return;
            }
        }
    }

    /// The next line that is not a presence list (which instances may repeat as they exchange
    /// rosters), or `None` if none comes within a moment.
    async fn next_line(socket: &mut TestWebSocket) -> Option<String> {
        loop {
            let text =
                tokio::time::timeout(Duration::from_millis(500), socket.recv_text()).await.ok()?.unwrap();
            if !text.starts_with(r#"{"type":"presence""#) {
                return Some(text);
            }
        }
    }

    #[tokio::test]
    #[ignore = "needs redis-server; run with --ignored (CI does)"]
    async fn two_chat_instances_share_rooms_presence_and_messages() {
        let redis = RedisServer::start(&[]);
        let east = chat_instance(&redis).await;
        let west = chat_instance(&redis).await;

        let mut alice = join(&east, "alice", "lobby").await;
        until_present(&mut alice, &["alice"]).await;
        // The instances subscribe to the room as their first member joins; give Redis the moment.
        let mut bob = join(&west, "bob", "lobby").await;
        until_present(&mut bob, &["alice", "bob"]).await;
        until_present(&mut alice, &["alice", "bob"]).await;

        alice.send_text(&say("hello from east")).await.unwrap();
        let said = r#"{"type":"message","room":"lobby","nick":"alice","text":"hello from east"}"#;
        assert_eq!(next_line(&mut alice).await, Some(said.to_owned()));
        assert_eq!(next_line(&mut bob).await, Some(said.to_owned()));
        bob.send_text(&say("hi alice")).await.unwrap();
        let reply = r#"{"type":"message","room":"lobby","nick":"bob","text":"hi alice"}"#;
        assert_eq!(next_line(&mut bob).await, Some(reply.to_owned()));
        assert_eq!(next_line(&mut alice).await, Some(reply.to_owned()), "once, with nothing in between");
        for socket in [&mut alice, &mut bob] {
            assert_eq!(next_line(socket).await, None, "no duplicate");
        }

        // Bob leaves: east hears of it.
        bob.close().await.unwrap();
        until_present(&mut alice, &["alice"]).await;
    }

    #[tokio::test]
    #[ignore = "needs redis-server; run with --ignored (CI does)"]
    async fn chat_sockets_stay_open_through_a_redis_outage() {
        let mut redis = RedisServer::start(&[]);
        let east = chat_instance(&redis).await;
        let west = chat_instance(&redis).await;
        let mut alice = join(&east, "alice", "lobby").await;
        let mut bob = join(&west, "bob", "lobby").await;
        until_present(&mut alice, &["alice", "bob"]).await;

        redis.stop();
        // Alice still talks to her own server; she is told when the other one was not reached.
        let said = r#"{"type":"message","room":"lobby","nick":"alice","text":"anyone?"}"#;
        let deadline = Instant::now() + PATIENCE;
        loop {
            alice.send_text(&say("anyone?")).await.unwrap();
            let first = next_line(&mut alice).await;
            assert!(first.is_some(), "her own server answers");
            let second =
                if first.as_deref() == Some(said) { next_line(&mut alice).await } else { first.clone() };
            if let Some(error) = second {
                assert!(
                    error.starts_with(
                        r#"{"type":"error","text":"not everyone got it: the backplane is unavailable"#
                    ),
                    "{error}"
                );
                assert_eq!(
                    next_line(&mut alice).await.as_deref(),
                    if first.as_deref() == Some(said) { None } else { Some(said) }
                );
                break;
            }
            assert!(Instant::now() < deadline, "the outage was never reported");
        }
        while next_line(&mut bob).await.is_some() {} // what got through before Redis went

        redis.restart();
        // Both sockets are still open, and the room is whole again once the instances reconnect.
        let deadline = Instant::now() + PATIENCE;
        let back = r#"{"type":"message","room":"lobby","nick":"alice","text":"back"}"#;
        loop {
            alice.send_text(&say("back")).await.unwrap();
            assert_eq!(next_line(&mut alice).await.as_deref(), Some(back));
            if next_line(&mut bob).await.as_deref() == Some(back) {
                break;
            }
            assert!(Instant::now() < deadline, "west never heard from east again");
            while next_line(&mut alice).await.is_some() {} // an error while still reconnecting
        }
        bob.send_text(&say("welcome back")).await.unwrap();
        let welcome = r#"{"type":"message","room":"lobby","nick":"bob","text":"welcome back"}"#;
        assert_eq!(next_line(&mut alice).await.as_deref(), Some(welcome));
    }
}

#[tokio::test]
#[ignore = "needs redis-server; run with --ignored (CI does)"]
async fn past_max_pending_publishing_fails_for_the_other_instances_only() {
    let redis = RedisServer::start(&[]);
    let hub = Hub::new();
    let _backplane =
        RedisBackplane::builder(redis.url("")).max_pending(1).attach(&hub).await.expect("attach");
    let mut alice = hub.subscriber();
    alice.subscribe("room");
    // On this test's one thread the publisher task cannot run between these calls: the first
    // message waits for Redis, the others find the queue full.
    for n in 0..10 {
        assert_eq!(hub.publish("room", format!("{n}")), 1, "local delivery goes on");
    }
    assert_eq!(hub.stats().relay_failures, 9, "{:?}", hub.stats());
    let overloaded = hub.publish_confirmed("room", "one more").await.unwrap_err();
    assert_eq!(overloaded, BackplaneError::Overloaded);
    assert!(
        overloaded.to_string().contains("only this instance's subscribers got the message"),
        "{overloaded}"
    );
    for n in 0..10 {
        assert_eq!(next_text(&mut alice).await, format!("{n}"));
    }
    assert_eq!(next_text(&mut alice).await, "one more");
    eventually("the queued message reaches Redis", || hub.stats().relayed == 1).await;
}
