//! The chat example (`examples/chat.rs`) driven in memory: nicknames, rooms, presence, the log,
//! and the errors a client gets for bad commands.
#![cfg(all(feature = "test-util", feature = "axum", feature = "json"))]

#[path = "../examples/chat.rs"]
#[allow(dead_code)]
mod chat;

use tower_websockets::{
    Compression, Message,
    test::{TestClient, TestWebSocket},
};

fn client() -> (TestClient, chat::Chat) {
    client_allowing(&[])
}

fn client_allowing(origins: &[&str]) -> (TestClient, chat::Chat) {
    let state = chat::Chat::default();
    let origins: Vec<String> = origins.iter().map(|&o| o.to_owned()).collect();
    (TestClient::new(chat::app(state.clone(), &origins).unwrap()), state)
}

fn presence(room: &str, members: &[&str]) -> String {
    let members: Vec<String> = members.iter().map(|m| format!("\"{m}\"")).collect();
    format!(r#"{{"type":"presence","room":"{room}","members":[{}]}}"#, members.join(","))
}

fn said(room: &str, nick: &str, text: &str) -> String {
    format!(r#"{{"type":"message","room":"{room}","nick":"{nick}","text":{text}}}"#)
}

fn nick(name: &str) -> String {
    serde_json::json!({ "type": "nick", "name": name }).to_string()
}

fn join_room(room: &str) -> String {
    serde_json::json!({ "type": "join", "room": room }).to_string()
}

fn say(text: &str) -> String {
    serde_json::json!({ "type": "say", "text": text }).to_string()
}

async fn join(client: &TestClient, name: &str, room: &str) -> TestWebSocket {
    let mut socket = client.connect("/ws").await.unwrap();
    socket.send_text(&nick(name)).await.unwrap();
    assert_eq!(socket.recv_text().await.unwrap(), format!(r#"{{"type":"info","text":"you are {name}"}}"#));
    socket.send_text(&join_room(room)).await.unwrap();
    socket
}

#[tokio::test]
async fn two_people_in_a_room_see_each_other_and_each_others_messages() {
    let (client, state) = client();
    let mut alice = join(&client, "alice", "lobby").await;
    assert_eq!(alice.recv_text().await.unwrap(), presence("lobby", &["alice"]));
    let mut bob = join(&client, "bob", "lobby").await;
    assert_eq!(alice.recv_text().await.unwrap(), presence("lobby", &["alice", "bob"]));
    assert_eq!(bob.recv_text().await.unwrap(), presence("lobby", &["alice", "bob"]));
    // Someone in another room sees none of it.
    let mut carol = join(&client, "carol", "garden").await;
    assert_eq!(carol.recv_text().await.unwrap(), presence("garden", &["carol"]));

    alice.send_text(&say("hello, \"bob\"\nhow are you?")).await.unwrap();
    let expected = said("lobby", "alice", r#""hello, \"bob\"\nhow are you?""#);
    assert_eq!(alice.recv_text().await.unwrap(), expected);
    assert_eq!(bob.recv_text().await.unwrap(), expected);
    carol.send_text(&say("anyone?")).await.unwrap();
    assert_eq!(carol.recv_text().await.unwrap(), said("garden", "carol", r#""anyone?""#));

    // Bob moves to the garden: both rooms hear of it.
    bob.send_text(&join_room("garden")).await.unwrap();
    assert_eq!(alice.recv_text().await.unwrap(), presence("lobby", &["alice"]));
    assert_eq!(bob.recv_text().await.unwrap(), presence("garden", &["bob", "carol"]));
    assert_eq!(carol.recv_text().await.unwrap(), presence("garden", &["bob", "carol"]));

    // Carol leaves: the garden hears, the lobby does not.
    carol.close().await.unwrap();
    assert_eq!(bob.recv_text().await.unwrap(), presence("garden", &["bob"]));
    alice.send_text(&say("still here")).await.unwrap();
    assert_eq!(alice.recv_text().await.unwrap(), said("lobby", "alice", r#""still here""#));
    bob.send_text(&say("me too")).await.unwrap();
    assert_eq!(bob.recv_text().await.unwrap(), said("garden", "bob", r#""me too""#));

    alice.close().await.unwrap();
    bob.close().await.unwrap();
    // Everyone gone: no topic and no subscriber left.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while state.hub.stats().subscribers > 0 {
        assert!(std::time::Instant::now() < deadline, "{:?}", state.hub.stats());
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    assert_eq!(state.hub.stats().topics, 0);
}

#[tokio::test]
async fn bad_commands_get_an_error_and_the_socket_stays_open() {
    let (client, _) = client();
    let mut socket = client.connect("/ws").await.unwrap();
    let cases = [
        (say("hi"), "choose a nickname first".to_owned()),
        (join_room("lobby"), "choose a nickname first".to_owned()),
        ("hello".to_owned(), "invalid JSON at line 1 column 1: expected value".to_owned()),
        (
            r#"{"type":"shout","text":"hi"}"#.to_owned(),
            "JSON of the wrong shape at line 1 column 15: unknown variant `shout`, expected one of `nick`, `join`, `say`"
                .to_owned(),
        ),
        (r#"{"type":"nick"}"#.to_owned(), "JSON of the wrong shape: missing field `name`".to_owned()),
        (nick(""), "a nickname has 1 to 32 characters".to_owned()),
        (nick(&"n".repeat(33)), "a nickname has 1 to 32 characters".to_owned()),
        (nick("a\u{7}b"), "a nickname has no control characters".to_owned()),
    ];
    for (line, error) in cases {
        socket.send_text(&line).await.unwrap();
        let got: serde_json::Value = serde_json::from_str(&socket.recv_text().await.unwrap()).unwrap();
        assert_eq!(got, serde_json::json!({ "type": "error", "text": error }), "{line}");
    }
    socket.send_text(&nick("dave")).await.unwrap();
    socket.recv_text().await.unwrap();
    socket.send_text(&say("hi")).await.unwrap();
    assert_eq!(socket.recv_text().await.unwrap(), r#"{"type":"error","text":"join a room first"}"#);
    socket.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(
        socket.recv_text().await.unwrap(),
        r#"{"type":"error","text":"binary message where JSON text was expected"}"#
    );
    socket.send_text(&join_room("lobby")).await.unwrap();
    assert_eq!(socket.recv_text().await.unwrap(), presence("lobby", &["dave"]));
    socket.send_text(&say(&"x".repeat(2001))).await.unwrap();
    assert_eq!(
        socket.recv_text().await.unwrap(),
        r#"{"type":"error","text":"a line has at most 2000 characters"}"#
    );
    socket.send_text(&say("  ")).await.unwrap();
    assert_eq!(socket.recv_text().await.unwrap(), r#"{"type":"error","text":"nothing to say"}"#);
    socket.close().await.unwrap();
}

#[tokio::test]
async fn the_page_is_served_and_other_paths_are_404() {
    let (client, _) = client();
    for path in ["/", "/index.html"] {
        let page = client.get(path).await.unwrap();
        assert_eq!(page.status(), 200);
        assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
        assert!(page.text().contains("<title>WebSocket Chat</title>"));
    }
    assert_eq!(client.get("/nope").await.unwrap().status(), 404);
    assert_eq!(client.get("/ws").await.unwrap().status(), 400, "a plain GET on the socket's path");
}

#[tokio::test]
async fn the_page_s_own_origin_and_the_allowed_ones_connect_and_others_are_refused() {
    let (client, _) = client_allowing(&["https://chat.example.com/"]);
    // The test client sends `Host: localhost`: its page's origin is http://localhost.
    for origin in ["http://localhost", "https://LOCALHOST", "https://chat.example.com"] {
        let socket = client.connect("/ws").origin(origin).await;
        assert!(socket.is_ok(), "{origin}: {:?}", socket.err());
    }
    for origin in ["http://localhost:8080", "https://evil.example", "null", "http://chat.example.com"] {
        let refused = client.connect("/ws").origin(origin).await.unwrap_err();
        assert_eq!(refused.refused().unwrap().status(), 403, "{origin}");
    }
    assert!(chat::app(chat::Chat::default(), &["chat.example.com".to_owned()]).is_err(), "no scheme");
}

#[tokio::test]
async fn sockets_are_compressed_when_the_client_offers_it() {
    let (client, _) = client();
    let mut socket = client.connect("/ws").compression(Compression::enabled()).await.unwrap();
    assert!(socket.compression().is_some());
    socket.send_text(&nick("zoe")).await.unwrap();
    assert_eq!(socket.recv_text().await.unwrap(), r#"{"type":"info","text":"you are zoe"}"#);
    socket.close().await.unwrap();
}
