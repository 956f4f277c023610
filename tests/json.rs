//! Typed JSON (feature `json`): `Message::json`, `Message::parse_json`, `PreparedMessage::json`
//! and `WebSocket::recv_json`, with each error and the two ways a handler answers one.
#![cfg(all(feature = "json", feature = "test-util"))]

use std::{collections::BTreeMap, convert::Infallible, error::Error as _};

use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use tower::ServiceBuilder;
use tower_websockets::{
    CloseCode, Error, Message, WebSocket, WebSocketLayer, WebSocketUpgrade, broadcast::PreparedMessage,
    json::JsonErrorKind, test::TestClient,
};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Command {
    Say { text: String },
    Join { room: String },
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Event {
    Said { text: String },
    Joined { room: String },
    Error { text: String },
}

#[test]
fn a_value_becomes_a_text_message_and_back() {
    let command = Command::Say { text: "hi \"all\"\n\u{2028}".to_owned() };
    let message = Message::json(&command).unwrap();
    assert_eq!(message.as_text(), Some("{\"type\":\"say\",\"text\":\"hi \\\"all\\\"\\n\u{2028}\"}"));
    assert_eq!(message.parse_json::<Command>().unwrap(), command);
    // Borrowed fields are fine.
    #[derive(Deserialize)]
    struct Borrowed<'a> {
        text: &'a str,
    }
    assert_eq!(Message::text(r#"{"text":"plain"}"#).parse_json::<Borrowed<'_>>().unwrap().text, "plain");
    let prepared = PreparedMessage::json(&command).unwrap();
    assert_eq!(prepared.to_message(), message);
}

#[test]
fn a_value_that_cannot_be_json_is_a_serialize_error() {
    let mut map = BTreeMap::new();
    map.insert((1u8, 2u8), "a tuple key");
    let error = Message::json(&map).unwrap_err();
    assert_eq!(error.kind(), JsonErrorKind::Serialize);
    assert_eq!(error.to_string(), "cannot write the value as JSON: key must be a string");
    assert!(error.source().is_some(), "serde_json's error is the source");
    assert_eq!(error.line(), None);
    assert_eq!(PreparedMessage::json(&map).unwrap_err().kind(), JsonErrorKind::Serialize);
}

#[test]
fn each_parse_error_says_what_and_where() {
    let cases: [(Message, JsonErrorKind, &str); 6] = [
        (
            Message::binary(b"{}".to_vec()),
            JsonErrorKind::NotText,
            "binary message where JSON text was expected",
        ),
        (
            Message::Ping(Default::default()),
            JsonErrorKind::NotText,
            "ping message where JSON text was expected",
        ),
        (
            Message::text("{\"type\":"),
            JsonErrorKind::Syntax,
            "invalid JSON at line 1 column 8: EOF while parsing a value",
        ),
        (Message::text("hello"), JsonErrorKind::Syntax, "invalid JSON at line 1 column 1: expected value"),
        // An internally tagged enum reads its fields after the whole object: serde_json gives no
        // position, and none is shown.
        (
            Message::text("{\"type\":\"say\"}"),
            JsonErrorKind::Data,
            "JSON of the wrong shape: missing field `text`",
        ),
        (
            Message::text("{\"type\":\"say\",\n\"text\":5}"),
            JsonErrorKind::Data,
            "JSON of the wrong shape: invalid type: integer `5`, expected a string",
        ),
    ];
    for (message, kind, display) in cases {
        let error = message.parse_json::<Command>().unwrap_err();
        assert_eq!(error.kind(), kind, "{message:?}");
        assert_eq!(error.to_string(), display, "{message:?}");
        assert_eq!(error.source().is_some(), kind != JsonErrorKind::NotText);
    }
    let error = Message::text("[1,\n 2,,]").parse_json::<Vec<u8>>().unwrap_err();
    assert_eq!((error.line(), error.column()), (Some(2), Some(4)));
    let error = Message::text("{\"type\":\"say\"}").parse_json::<Command>().unwrap_err();
    assert_eq!((error.line(), error.column()), (None, None));
    // A plain struct reads as it goes: the position is there.
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Say {
        text: String,
    }
    let error = Message::text("{\"txt\":1}").parse_json::<Say>().unwrap_err();
    assert_eq!(error.to_string(), "JSON of the wrong shape at line 1 column 9: missing field `text`");
}

/// A service whose handler answers each command with an event, and a message that is not a
/// command with an error event (the socket stays open) or, with `strict`, closes with 1007.
fn service(strict: bool) -> TestClient {
    let stack = ServiceBuilder::new().layer(WebSocketLayer::new());
    TestClient::new(stack.service_fn(move |mut req: http::Request<Incoming>| async move {
        let upgrade = WebSocketUpgrade::from_request(&mut req).unwrap();
        Ok::<_, Infallible>(upgrade.on_upgrade(move |socket| handle(socket, strict)))
    }))
}

async fn handle(mut socket: WebSocket, strict: bool) {
    while let Some(received) = socket.recv_json::<Command>().await {
        let event = match received {
            Ok(Command::Say { text }) => Event::Said { text },
            Ok(Command::Join { room }) => Event::Joined { room },
            Err(Error::Json(problem)) if strict => {
                let _ = socket.close(CloseCode::INVALID_PAYLOAD, &problem.to_string()).await;
                return;
            }
            Err(Error::Json(problem)) => Event::Error { text: problem.to_string() },
            Err(_) => return,
        };
        if socket.send(Message::json(&event).unwrap()).await.is_err() {
            return;
        }
    }
}

async fn next_event(socket: &mut tower_websockets::test::TestWebSocket) -> Event {
    serde_json::from_str(&socket.recv_text().await.unwrap()).unwrap()
}

#[tokio::test]
async fn recv_json_reads_commands_and_a_bad_one_gets_an_error_event_and_the_socket_stays_open() {
    let client = service(false);
    let mut socket = client.connect("/").await.unwrap();
    socket.send_text(r#"{"type":"join","room":"lobby"}"#).await.unwrap();
    assert_eq!(next_event(&mut socket).await, Event::Joined { room: "lobby".to_owned() });
    // A Ping in between is answered and skipped.
    socket.send(Message::Ping(b"are you there".to_vec().into())).await.unwrap();
    assert_eq!(socket.recv().await.unwrap(), Message::Pong(b"are you there".to_vec().into()));
    let bad = [
        (
            "{\"type\":\"shout\",\"text\":\"hi\"}",
            "JSON of the wrong shape at line 1 column 15: unknown variant `shout`, expected `say` or `join`",
        ),
        ("not json", "invalid JSON at line 1 column 2: expected ident"),
    ];
    for (text, error) in bad {
        socket.send_text(text).await.unwrap();
        assert_eq!(next_event(&mut socket).await, Event::Error { text: error.to_owned() });
    }
    socket.send_binary(b"{}".to_vec()).await.unwrap();
    assert_eq!(
        next_event(&mut socket).await,
        Event::Error { text: "binary message where JSON text was expected".to_owned() }
    );
    socket.send_text(r#"{"type":"say","text":"still here"}"#).await.unwrap();
    assert_eq!(next_event(&mut socket).await, Event::Said { text: "still here".to_owned() });
    socket.close().await.unwrap();
}

#[tokio::test]
async fn a_strict_handler_closes_with_1007_on_a_bad_command() {
    let client = service(true);
    let mut socket = client.connect("/").await.unwrap();
    socket.send_text(r#"{"type":"say","text":"ok"}"#).await.unwrap();
    assert_eq!(next_event(&mut socket).await, Event::Said { text: "ok".to_owned() });
    socket.send_text(r#"{"type":"say"}"#).await.unwrap();
    let frame = socket.recv_close().await.unwrap().unwrap();
    assert_eq!(frame.code, CloseCode::INVALID_PAYLOAD);
    assert_eq!(frame.reason.as_str(), "JSON of the wrong shape: missing field `text`");
}

#[tokio::test]
async fn recv_json_ends_with_none_when_the_client_closes() {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let done_tx = std::sync::Mutex::new(Some(done_tx));
    let stack = ServiceBuilder::new().layer(WebSocketLayer::new());
    let done_tx = std::sync::Arc::new(done_tx);
    let client = TestClient::new(stack.service_fn(move |mut req: http::Request<Incoming>| {
        let done_tx = done_tx.clone();
        async move {
            let upgrade = WebSocketUpgrade::from_request(&mut req).unwrap();
            Ok::<_, Infallible>(upgrade.on_upgrade(move |mut socket| async move {
                let mut results = Vec::new();
                while let Some(received) = socket.recv_json::<Command>().await {
                    results.push(received.map_err(|e| e.to_string()));
                }
                if let Some(tx) = done_tx.lock().unwrap().take() {
                    let _ = tx.send(results);
                }
            }))
        }
    }));
    let mut socket = client.connect("/").await.unwrap();
    socket.send_text(r#"{"type":"join","room":"a"}"#).await.unwrap();
    socket.close().await.unwrap();
    let results = done_rx.await.unwrap();
    assert_eq!(results, [Ok(Command::Join { room: "a".to_owned() })]);
}
