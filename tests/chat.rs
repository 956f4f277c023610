//! The chat example (`examples/chat.rs`) driven in memory: nicknames, rooms, presence, the log,
//! and the errors a client gets for bad commands.
#![cfg(feature = "test-util")]

#[path = "../examples/chat.rs"]
#[allow(dead_code)]
mod chat;

use hyper::body::Incoming;
use tower::ServiceBuilder;
use tower_websockets::{
    Message,
    test::{TestClient, TestWebSocket},
};

fn client() -> (TestClient, chat::Chat) {
    let state = chat::Chat::default();
    let service_state = state.clone();
    let service = ServiceBuilder::new()
        .layer(chat::layer().unwrap())
        .service_fn(move |req: http::Request<Incoming>| chat::route(service_state.clone(), req));
    (TestClient::new(service), state)
}

fn presence(room: &str, members: &[&str]) -> String {
    let members: Vec<String> = members.iter().map(|m| format!("\"{m}\"")).collect();
    format!(r#"{{"type":"presence","room":"{room}","members":[{}]}}"#, members.join(","))
}

fn said(room: &str, nick: &str, text: &str) -> String {
    format!(r#"{{"type":"message","room":"{room}","nick":"{nick}","text":{text}}}"#)
}

async fn join(client: &TestClient, nick: &str, room: &str) -> TestWebSocket {
    let mut socket = client.connect("/ws").await.unwrap();
    socket.send_text(&format!("nick:{nick}")).await.unwrap();
    assert_eq!(socket.recv_text().await.unwrap(), format!(r#"{{"type":"info","text":"you are {nick}"}}"#));
    socket.send_text(&format!("join:{room}")).await.unwrap();
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

    alice.send_text("say:hello, \"bob\"\nhow are you?").await.unwrap();
    let expected = said("lobby", "alice", r#""hello, \"bob\"\nhow are you?""#);
    assert_eq!(alice.recv_text().await.unwrap(), expected);
    assert_eq!(bob.recv_text().await.unwrap(), expected);
    carol.send_text("say:anyone?").await.unwrap();
    assert_eq!(carol.recv_text().await.unwrap(), said("garden", "carol", r#""anyone?""#));

    // Bob moves to the garden: both rooms hear of it.
    bob.send_text("join:garden").await.unwrap();
    assert_eq!(alice.recv_text().await.unwrap(), presence("lobby", &["alice"]));
    assert_eq!(bob.recv_text().await.unwrap(), presence("garden", &["bob", "carol"]));
    assert_eq!(carol.recv_text().await.unwrap(), presence("garden", &["bob", "carol"]));

    // Carol leaves: the garden hears, the lobby does not.
    carol.close().await.unwrap();
    assert_eq!(bob.recv_text().await.unwrap(), presence("garden", &["bob"]));
    alice.send_text("say:still here").await.unwrap();
    assert_eq!(alice.recv_text().await.unwrap(), said("lobby", "alice", r#""still here""#));
    bob.send_text("say:me too").await.unwrap();
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
        ("say:hi", "choose a nickname first"),
        ("join:lobby", "choose a nickname first"),
        ("hello", "a command is nick:NAME, join:ROOM or say:TEXT"),
        ("shout:hi", "unknown command `shout`: use nick, join or say"),
        ("nick:", "a nickname has 1 to 32 characters"),
        (&format!("nick:{}", "n".repeat(33)), "a nickname has 1 to 32 characters"),
        ("nick:a\u{7}b", "a nickname has no control characters"),
    ];
    for (line, error) in cases {
        socket.send_text(line).await.unwrap();
        assert_eq!(
            socket.recv_text().await.unwrap(),
            format!(r#"{{"type":"error","text":"{error}"}}"#),
            "{line}"
        );
    }
    socket.send_text("nick:dave").await.unwrap();
    socket.recv_text().await.unwrap();
    socket.send_text("say:hi").await.unwrap();
    assert_eq!(socket.recv_text().await.unwrap(), r#"{"type":"error","text":"join a room first"}"#);
    socket.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(socket.recv_text().await.unwrap(), r#"{"type":"error","text":"send text"}"#);
    socket.send_text(&format!("say:{}", "x".repeat(2001))).await.unwrap();
    assert_eq!(
        socket.recv_text().await.unwrap(),
        r#"{"type":"error","text":"a line has at most 2000 characters"}"#
    );
    socket.close().await.unwrap();
}

#[tokio::test]
async fn the_page_is_served_and_other_paths_are_404() {
    let (client, _) = client();
    let page = client.get("/").await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(page.text().contains("<title>WebSocket Chat</title>"));
    assert_eq!(client.get("/nope").await.unwrap().status(), 404);
    assert_eq!(client.get("/ws").await.unwrap().status(), 400, "a plain GET on the socket's path");
}

#[test]
fn json_strings_are_escaped() {
    assert_eq!(chat::json_string("a\"b\\c\n\u{1}\u{2028}é"), r#""a\"b\\c\n\u0001\u2028é""#);
}
