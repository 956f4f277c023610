//! gRPC and WebSockets on one port: the tonic example's router and server (`examples/tonic.rs`)
//! with tonic's client, a tokio-tungstenite WebSocket over HTTP/1.1 and hyper's HTTP/2 client
//! with an extended CONNECT (RFC 8441), all at once. And why tonic's own server cannot do this.

// The example's `main` and argument parsing are not used here.
#[allow(dead_code)]
#[path = "../examples/tonic.rs"]
mod example;

use std::{future::Future, net::SocketAddr, time::Duration};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Method, Request, StatusCode, Version};
use http_body_util::Empty;
use hyper::{client::conn::http2::SendRequest, ext::Protocol, upgrade::Upgraded};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message as TMessage, protocol::Role},
};
use tonic::transport::Channel;
use tonic_health::{
    ServingStatus,
    pb::{HealthCheckRequest, health_check_response, health_client::HealthClient},
    server::HealthReporter,
};
use tower_websockets::WebSocketLayer;

type Http1Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Http2Socket = WebSocketStream<TokioIo<Upgraded>>;

/// Every wait in these tests is bounded, so that a failure fails instead of hanging.
async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(5), future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// The example's app, served by the example's `serve` on a free port of 127.0.0.1.
async fn start_example() -> (SocketAddr, HealthReporter, WebSocketLayer) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let health = HealthReporter::new();
    let layer = WebSocketLayer::new();
    tokio::spawn(example::serve(listener, example::app(&health, layer.clone())));
    (addr, health, layer)
}

async fn grpc_client(addr: SocketAddr) -> HealthClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    HealthClient::new(channel)
}

/// The overall health (service ""), with a unary `Check`.
async fn check(client: &mut HealthClient<Channel>) -> health_check_response::ServingStatus {
    let request = HealthCheckRequest { service: String::new() };
    within("a health check", client.check(request)).await.unwrap().into_inner().status()
}

async fn http1_websocket(addr: SocketAddr) -> Http1Socket {
    let (socket, response) =
        within("an HTTP/1.1 WebSocket", tokio_tungstenite::connect_async(format!("ws://{addr}/ws")))
            .await
            .unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    socket
}

/// An HTTP/2 connection (h2c with prior knowledge), as tonic's client opens them.
async fn http2_connection(addr: SocketAddr) -> SendRequest<Empty<Bytes>> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(connection);
    sender
}

/// Opens a WebSocket with an extended CONNECT.
async fn http2_websocket(sender: &mut SendRequest<Empty<Bytes>>) -> Result<Http2Socket, hyper::Error> {
    let connect = Request::builder()
        .method(Method::CONNECT)
        .uri("http://localhost/ws")
        .version(Version::HTTP_2)
        .extension(Protocol::from_static("websocket"))
        .header("sec-websocket-version", "13")
        .body(Empty::new())
        .unwrap();
    let mut response = within("an HTTP/2 WebSocket", sender.send_request(connect)).await?;
    assert_eq!(response.status(), StatusCode::OK);
    let upgraded = hyper::upgrade::on(&mut response).await?;
    Ok(WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await)
}

/// Sends `text` and expects it back.
async fn round_trip<S>(socket: &mut WebSocketStream<S>, text: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    socket.send(TMessage::text(text)).await.unwrap();
    let echoed = within("the echo", socket.next()).await.unwrap().unwrap();
    assert_eq!(echoed, TMessage::text(text));
}

/// Closes and waits for the server's Close.
async fn close<S>(socket: &mut WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    socket.close(None).await.unwrap();
    loop {
        match within("the server's Close", socket.next()).await {
            Some(Ok(TMessage::Close(_))) | None => break,
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("{e}"),
        }
    }
}

#[tokio::test]
async fn grpc_and_websockets_share_one_port() {
    let (addr, health, layer) = start_example().await;

    // A gRPC client and two WebSockets, one per HTTP version, open at the same time.
    let mut h2 = http2_connection(addr).await;
    let (mut grpc, mut ws1, ws2) =
        tokio::join!(grpc_client(addr), http1_websocket(addr), http2_websocket(&mut h2));
    let mut ws2 = ws2.unwrap();

    // A server-streaming call stays open next to the sockets.
    let request = HealthCheckRequest { service: String::new() };
    let mut watch = within("the watch", grpc.watch(request)).await.unwrap().into_inner();
    let first = within("the first status", watch.message()).await.unwrap().unwrap();
    assert_eq!(first.status(), health_check_response::ServingStatus::Serving);

    // Unary calls and messages on both sockets, interleaved.
    let mut unary = grpc.clone();
    let (status, (), ()) = tokio::join!(
        check(&mut unary),
        round_trip(&mut ws1, "over HTTP/1.1"),
        round_trip(&mut ws2, "over HTTP/2"),
    );
    assert_eq!(status, health_check_response::ServingStatus::Serving);
    assert_eq!(layer.stats().open, 2);

    // The status changes: the open watch hears of it, and the sockets carry on.
    health.set_service_status("", ServingStatus::NotServing).await;
    let changed = within("the changed status", watch.message()).await.unwrap().unwrap();
    assert_eq!(changed.status(), health_check_response::ServingStatus::NotServing);
    assert_eq!(check(&mut unary).await, health_check_response::ServingStatus::NotServing);
    round_trip(&mut ws1, "still here").await;
    round_trip(&mut ws2, "still here").await;

    close(&mut ws1).await;
    close(&mut ws2).await;
    within("the sockets to end", async {
        while layer.stats().open > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(layer.stats().accepted, 2);
    // gRPC is still served once the sockets are gone.
    assert_eq!(check(&mut grpc).await, health_check_response::ServingStatus::NotServing);
}

#[tokio::test]
async fn tonics_own_server_cannot_carry_websockets() {
    // The same router, layer included, on tonic's `transport::Server`, with HTTP/1.1 allowed.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let health = HealthReporter::new();
    let layer = WebSocketLayer::new();
    let routes = tonic::service::Routes::from(example::app(&health, layer.clone()));
    let server = tonic::transport::Server::builder()
        .accept_http1(true)
        .add_routes(routes)
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
    tokio::spawn(server);

    // gRPC works.
    let mut grpc = grpc_client(addr).await;
    assert_eq!(check(&mut grpc).await, health_check_response::ServingStatus::Serving);

    // HTTP/2: the server never enabled extended CONNECT, so its HTTP/2 layer takes the request's
    // `:protocol` for a malformed request and resets the stream, before any service sees it.
    let mut h2 = http2_connection(addr).await;
    let Err(error) = http2_websocket(&mut h2).await else {
        panic!("tonic's server accepted an extended CONNECT");
    };
    assert!(format!("{error:?}").contains("PROTOCOL_ERROR"), "{error:?}");

    // HTTP/1.1: the handler answers 101, but the connection is served without upgrades, so it is
    // never handed over to the socket: the client sees it end.
    let (mut socket, response) =
        within("an HTTP/1.1 WebSocket", tokio_tungstenite::connect_async(format!("ws://{addr}/ws")))
            .await
            .expect("the handler's 101 reaches the client");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    let _ = socket.send(TMessage::text("anyone?")).await;
    match within("the connection to end", socket.next()).await {
        None | Some(Err(_)) => {}
        Some(Ok(message)) => panic!("tonic's server carried a WebSocket message: {message:?}"),
    }
    assert_eq!(layer.stats().open, 0);
}

#[tokio::test]
async fn unknown_paths_get_unimplemented_for_grpc_and_404_for_websockets() {
    let (addr, _health, layer) = start_example().await;
    let mut h2 = http2_connection(addr).await;

    // A gRPC call to an unknown service: tonic's `Unimplemented` (12), as before.
    let call = Request::post(format!("http://{addr}/example.Nope/Call"))
        .version(Version::HTTP_2)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Empty::new())
        .unwrap();
    let response = within("the gRPC answer", h2.send_request(call)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["grpc-status"], "12");

    // A WebSocket to an unknown path: 404 over HTTP/2, and not tonic's 200, which an HTTP/2 client
    // would take for an accepted socket.
    let connect = Request::builder()
        .method(Method::CONNECT)
        .uri(format!("http://{addr}/nope"))
        .version(Version::HTTP_2)
        .extension(Protocol::from_static("websocket"))
        .header("sec-websocket-version", "13")
        .body(Empty::new())
        .unwrap();
    let response = within("the HTTP/2 answer", h2.send_request(connect)).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // And over HTTP/1.1.
    match within("the HTTP/1.1 answer", tokio_tungstenite::connect_async(format!("ws://{addr}/nope"))).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::NOT_FOUND);
        }
        other => panic!("expected 404, got {other:?}"),
    }
    assert_eq!(layer.stats().accepted, 0);
}

#[tokio::test]
async fn axum_serve_carries_both_too() {
    // `axum::serve` enables upgrades, and extended CONNECT with axum's `http2` feature.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let health = HealthReporter::new();
    let layer = WebSocketLayer::new();
    let app = example::app(&health, layer.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut h2 = http2_connection(addr).await;
    let (mut grpc, mut ws1, ws2) =
        tokio::join!(grpc_client(addr), http1_websocket(addr), http2_websocket(&mut h2));
    let mut ws2 = ws2.unwrap();
    let (status, (), ()) = tokio::join!(
        check(&mut grpc),
        round_trip(&mut ws1, "over HTTP/1.1"),
        round_trip(&mut ws2, "over HTTP/2"),
    );
    assert_eq!(status, health_check_response::ServingStatus::Serving);
    assert_eq!(layer.stats().accepted, 2);
    close(&mut ws1).await;
    close(&mut ws2).await;
}
