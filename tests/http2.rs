//! WebSockets over HTTP/2 (RFC 8441): a hyper HTTP/2 client opens them with an extended CONNECT
//! through the layer, over real TCP (h2c, prior knowledge) and through the in-memory client.

#![cfg(feature = "test-util")]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Behaviour, TestServer, echo_service, next_end};
use futures_util::{SinkExt, StreamExt};
use http::{Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use hyper::{client::conn::http2::SendRequest, ext::Protocol};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{Message as TMessage, protocol::Role},
};
use tower_websockets::{AllowedOrigins, CloseCode, WebSocketLayer};

type H2 = SendRequest<Empty<Bytes>>;

async fn h2_connect(server: &TestServer) -> H2 {
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(connection);
    sender
}

fn extended_connect(version: &str, origin: Option<&str>) -> Request<Empty<Bytes>> {
    let mut builder = Request::builder()
        .method(Method::CONNECT)
        .uri("http://localhost/ws")
        .version(Version::HTTP_2)
        .extension(Protocol::from_static("websocket"))
        .header("sec-websocket-version", version)
        .header("sec-websocket-protocol", "chat");
    if let Some(origin) = origin {
        builder = builder.header("origin", origin);
    }
    builder.body(Empty::new()).unwrap()
}

/// Sends `request` on the shared HTTP/2 connection.
async fn send(
    sender: &mut H2,
    request: impl Fn() -> Request<Empty<Bytes>>,
) -> http::Response<hyper::body::Incoming> {
    sender.ready().await.unwrap();
    sender.send_request(request()).await.unwrap()
}

async fn open_socket(
    sender: &mut H2,
) -> (WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>, http::HeaderMap) {
    let mut response = send(sender, || extended_connect("13", None)).await;
    assert_eq!(response.status(), StatusCode::OK);
    for header in ["connection", "upgrade", "sec-websocket-accept"] {
        assert!(response.headers().get(header).is_none(), "no {header} over HTTP/2");
    }
    let headers = response.headers().clone();
    let upgraded = hyper::upgrade::on(&mut response).await.unwrap();
    (WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await, headers)
}

async fn next(socket: &mut WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>) -> TMessage {
    tokio::time::timeout(Duration::from_secs(5), socket.next()).await.unwrap().unwrap().unwrap()
}

#[tokio::test]
async fn an_http2_websocket_echoes_pings_and_closes_cleanly() {
    let layer = WebSocketLayer::builder().keep_alive_interval(Duration::from_millis(300)).build().unwrap();
    let behaviour = Behaviour { protocols: vec!["chat"], ..Behaviour::default() };
    let (service, mut ends) = echo_service(layer, behaviour);
    let server = TestServer::start(service).await;
    let mut sender = h2_connect(&server).await;
    let (mut socket, headers) = open_socket(&mut sender).await;
    assert_eq!(headers["sec-websocket-protocol"], "chat");

    socket.send(TMessage::text("over h2")).await.unwrap();
    assert_eq!(next(&mut socket).await, TMessage::text("over h2"));
    socket.send(TMessage::binary(vec![1u8; 70_000])).await.unwrap();
    assert_eq!(next(&mut socket).await, TMessage::binary(vec![1u8; 70_000]));
    // Silence: the server's keep-alive Ping comes over the stream.
    assert!(matches!(next(&mut socket).await, TMessage::Ping(_)));

    socket.close(None).await.unwrap();
    assert!(matches!(next(&mut socket).await, TMessage::Close(_)));
    let ended = next_end(&mut ends).await;
    assert_eq!(ended.echoed, 2);
    assert!(ended.error.is_none(), "{:?}", ended.error);
}

#[tokio::test]
async fn two_websockets_and_a_request_share_one_http2_connection() {
    let (service, _ends) = echo_service(WebSocketLayer::new(), Behaviour::default());
    let server = TestServer::start(service).await;
    let mut sender = h2_connect(&server).await;
    let (mut first, _) = open_socket(&mut sender).await;
    let (mut second, _) = open_socket(&mut sender).await;

    let plain = send(&mut sender, || {
        Request::get("http://localhost/ws").version(Version::HTTP_2).body(Empty::new()).unwrap()
    })
    .await;
    assert_eq!(plain.status(), StatusCode::BAD_REQUEST);
    let body = plain.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "not a WebSocket request");

    first.send(TMessage::text("one")).await.unwrap();
    second.send(TMessage::text("two")).await.unwrap();
    assert_eq!(next(&mut second).await, TMessage::text("two"));
    assert_eq!(next(&mut first).await, TMessage::text("one"));
}

#[tokio::test]
async fn http2_rejections_keep_their_statuses() {
    let layer = WebSocketLayer::builder()
        .allowed_origins(AllowedOrigins::list(["https://ok.example"]))
        .build()
        .unwrap();
    let (service, _ends) = echo_service(layer, Behaviour::default());
    let server = TestServer::start(service).await;
    let mut sender = h2_connect(&server).await;

    let wrong_version = send(&mut sender, || extended_connect("8", None)).await;
    assert_eq!(wrong_version.status(), StatusCode::UPGRADE_REQUIRED);
    assert_eq!(wrong_version.headers()["sec-websocket-version"], "13");

    let foreign = send(&mut sender, || extended_connect("13", Some("https://evil.example"))).await;
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);

    let allowed = send(&mut sender, || extended_connect("13", Some("https://OK.example"))).await;
    assert_eq!(allowed.status(), StatusCode::OK);

    // A CONNECT without `:protocol` is no WebSocket.
    let plain_connect = send(&mut sender, || {
        Request::builder()
            .method(Method::CONNECT)
            .uri("localhost:443")
            .version(Version::HTTP_2)
            .body(Empty::new())
            .unwrap()
    })
    .await;
    assert_eq!(plain_connect.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_test_client_speaks_http2_too() {
    let behaviour = Behaviour {
        protocols: vec!["chat"],
        close_on_request: Some((CloseCode::NORMAL, "done")),
        ..Behaviour::default()
    };
    let (service, mut ends) = echo_service(WebSocketLayer::new(), behaviour);
    let client = tower_websockets::test::TestClient::new(service);
    let mut socket = client.connect("/ws").http2().protocols(["chat"]).await.unwrap();
    assert_eq!(socket.response().status(), StatusCode::OK);
    assert_eq!(socket.protocol(), Some("chat"));
    socket.send_text("h2 in memory").await.unwrap();
    assert_eq!(socket.recv_text().await.unwrap(), "h2 in memory");
    socket.send_text("close-me").await.unwrap();
    assert_eq!(socket.recv_close().await.unwrap().unwrap().code, CloseCode::NORMAL);
    assert!(socket.is_closed().await);
    assert!(matches!(next_end(&mut ends).await.closed_by_server, Some(Ok(()))));

    let refused = client.connect("/ws").http2().header("sec-websocket-version", "7").await.unwrap_err();
    assert_eq!(refused.refused().unwrap().status(), StatusCode::UPGRADE_REQUIRED);
}
