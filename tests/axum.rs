//! axum: the extractor in a `Router`, over TCP with `axum::serve` and through the test client.
#![cfg(all(feature = "axum", feature = "test-util"))]

use std::time::Duration;

use axum::{
    Router,
    extract::State,
    response::IntoResponse,
    routing::{any, get},
};
use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::{self, Message as TMessage, client::IntoClientRequest};
use tower_websockets::{Message, WebSocket, WebSocketLayer, WebSocketUpgrade, test::TestClient};

/// A chat room: each text message goes to everyone, prefixed with the subprotocol's format.
async fn chat(upgrade: WebSocketUpgrade, State(room): State<broadcast::Sender<String>>) -> impl IntoResponse {
    upgrade.protocols(["chat.v2", "chat.v1"]).on_upgrade(move |socket| member(socket, room))
}

async fn member(mut socket: WebSocket, room: broadcast::Sender<String>) {
    let mut inbox = room.subscribe();
    let shout = socket.protocol() == Some("chat.v2");
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => { let _ = room.send(text.to_string()); }
                Some(Ok(_)) => {}
                _ => break,
            },
            Ok(text) = inbox.recv() => {
                let text = if shout { text.to_uppercase() } else { text };
                if socket.send(Message::text(text)).await.is_err() { break; }
            }
        }
    }
}

fn app() -> Router {
    let (room, _) = broadcast::channel(64);
    let layer = WebSocketLayer::builder()
        .allowed_origins(["https://chat.example.com"])
        .keep_alive_interval(Duration::from_secs(30))
        .build()
        .unwrap();
    Router::new().route("/chat", any(chat)).route("/", get(|| async { "home" })).with_state(room).layer(layer)
}

#[tokio::test]
async fn an_axum_chat_through_the_test_client() {
    let client = TestClient::new(app());

    let mut v2 =
        client.connect("/chat").origin("https://chat.example.com").protocols(["chat.v2"]).await.unwrap();
    let mut v1 = client.connect("/chat").protocols(["chat.v1", "chat.v0"]).await.unwrap();
    assert_eq!(v2.protocol(), Some("chat.v2"));
    assert_eq!(v1.protocol(), Some("chat.v1"));

    v1.send_text("hello room").await.unwrap();
    assert_eq!(v2.recv_text().await.unwrap(), "HELLO ROOM");
    assert_eq!(v1.recv_text().await.unwrap(), "hello room");

    // A hostile page is refused before the handler runs.
    let refused = client.connect("/chat").origin("https://evil.example").await.unwrap_err();
    assert_eq!(refused.refused().unwrap().status(), StatusCode::FORBIDDEN);

    // The extractor's rejections are axum responses: a plain GET to the socket route gets 400.
    let plain = client.get("/chat").await.unwrap();
    assert_eq!((plain.status(), plain.text().as_str()), (StatusCode::BAD_REQUEST, "not a WebSocket request"));

    // Other routes pass through the layer untouched.
    let home = client.get("/").await.unwrap();
    assert_eq!((home.status(), home.text().as_str()), (StatusCode::OK, "home"));
}

#[tokio::test]
async fn an_axum_router_served_over_tcp() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app()).await });

    let mut request = format!("ws://{addr}/chat").into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", "chat.v1".parse().unwrap());
    request.headers_mut().insert("origin", "https://chat.example.com".parse().unwrap());
    let (mut socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat.v1");
    socket.send(TMessage::text("over tcp")).await.unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(5), socket.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(echoed, TMessage::text("over tcp"));
    socket.close(None).await.unwrap();

    let mut request = format!("ws://{addr}/chat").into_client_request().unwrap();
    request.headers_mut().insert("origin", "https://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), StatusCode::FORBIDDEN),
        other => panic!("expected 403, got {other:?}"),
    }
    server.abort();
}

#[tokio::test]
async fn an_optional_extractor_serves_a_page_and_a_socket_on_one_route() {
    async fn page_or_socket(upgrade: Option<WebSocketUpgrade>) -> axum::response::Response {
        match upgrade {
            Some(upgrade) => upgrade
                .on_upgrade(|mut socket| async move {
                    let _ = socket.send(Message::text("socket")).await;
                })
                .into_response(),
            None => "page".into_response(),
        }
    }
    let app = Router::new().route("/", any(page_or_socket)).layer(WebSocketLayer::new());
    let client = TestClient::new(app);
    assert_eq!(client.get("/").await.unwrap().text(), "page");
    let mut socket = client.connect("/").await.unwrap();
    assert_eq!(socket.recv_text().await.unwrap(), "socket");
    // An invalid handshake is still refused, not served the page.
    let refused = client.connect("/").header("sec-websocket-version", "12").await.unwrap_err();
    assert_eq!(refused.refused().unwrap().status(), StatusCode::UPGRADE_REQUIRED);
}

#[tokio::test]
async fn a_rejection_mixes_with_other_axum_responses() {
    async fn handler(
        upgrade: Result<WebSocketUpgrade, tower_websockets::handshake::WebSocketUpgradeRejection>,
    ) -> axum::response::Response {
        match upgrade {
            Ok(upgrade) => upgrade.on_upgrade(|_socket| async {}).into_response(),
            Err(tower_websockets::handshake::WebSocketUpgradeRejection::NotWebSocket) => {
                (StatusCode::IM_A_TEAPOT, "page").into_response()
            }
            // axum's `IntoResponse::into_response`: the same type as the other arms.
            Err(rejection) => rejection.into_response(),
        }
    }
    let client = TestClient::new(Router::new().route("/", any(handler)).layer(WebSocketLayer::new()));
    assert_eq!(client.get("/").await.unwrap().status(), StatusCode::IM_A_TEAPOT);
    let refused = client.connect("/").header("sec-websocket-key", "short").await.unwrap_err();
    assert_eq!(refused.refused().unwrap().text(), "Sec-WebSocket-Key must be base64 of 16 bytes, sent once");
}

/// The identity of `authenticate` in an axum handler: `Extension<User>`, the extractor's
/// `identity`, and the socket's.
#[tokio::test]
async fn an_authenticated_identity_reaches_axum_extractors_and_the_socket() {
    use axum::Extension;
    use tower_websockets::auth::{AuthRejection, Token};

    #[derive(Clone, Debug, PartialEq)]
    struct User(String);

    async fn greet(Extension(user): Extension<User>, upgrade: WebSocketUpgrade) -> impl IntoResponse {
        assert_eq!(upgrade.identity::<User>(), Some(&user));
        upgrade.on_upgrade(move |mut socket| async move {
            let name = socket.identity::<User>().map(|user| user.0.clone()).unwrap_or_default();
            let _ = socket.send(format!("{} / {}", user.0, name)).await;
        })
    }

    let layer = WebSocketLayer::builder()
        .authenticate(|parts: &http::request::Parts| {
            let token = Token::from_protocol(parts).map(str::to_owned);
            async move {
                match token.as_deref() {
                    Some("t0k3n") => Ok(User("ada".into())),
                    _ => Err(AuthRejection::unauthorized("no valid token")),
                }
            }
        })
        .build()
        .unwrap();
    let app = Router::new().route("/ws", any(greet)).route("/", get(|| async { "home" })).layer(layer);
    let client = TestClient::new(app);
    let mut socket = client.connect("/ws").protocols(["bearer", "t0k3n"]).await.unwrap();
    assert_eq!(socket.protocol(), Some("bearer"));
    assert_eq!(socket.recv_text().await.unwrap(), "ada / ada");
    let refused = client.connect("/ws").await.unwrap_err();
    assert_eq!(refused.refused().unwrap().status(), StatusCode::UNAUTHORIZED);
    // Ordinary requests never meet the check.
    assert_eq!(client.get("/").await.unwrap().text(), "home");
}
