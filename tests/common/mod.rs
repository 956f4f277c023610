//! Shared pieces of the integration tests: an echo service that reports how each socket ended,
//! a real TCP server on 127.0.0.1 with port 0, and a raw HTTP exchange over an in-memory pipe.
#![allow(dead_code)]

pub(crate) mod echo_process;
pub(crate) mod raw;
#[cfg(feature = "redis")]
pub(crate) mod redis_server;

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::mpsc,
    task::JoinHandle,
};
use tower::{ServiceBuilder, util::BoxCloneSyncService};
use tower_websockets::{CloseCode, Error, Message, WebSocket, WebSocketLayer, WebSocketUpgrade};

pub(crate) type Svc = BoxCloneSyncService<
    Request<Incoming>,
    Response<tower_websockets::service::ResponseBody<tower_websockets::handshake::HandshakeBody>>,
    Infallible,
>;

/// How a server-side socket ended, as its handler saw it.
#[derive(Debug)]
pub(crate) struct Ended {
    /// The error `recv` yielded, if any.
    pub error: Option<Error>,
    /// The Close the peer sent, if any.
    pub close: Option<tower_websockets::CloseFrame>,
    /// What `close()` returned, when the handler closed itself.
    pub closed_by_server: Option<Result<(), Error>>,
    /// Messages echoed.
    pub echoed: usize,
    /// What the socket negotiated for permessage-deflate.
    pub compression: Option<tower_websockets::compression::NegotiatedCompression>,
}

/// What the echo handler does besides echoing.
#[derive(Clone, Default)]
pub(crate) struct Behaviour {
    /// Subprotocols the server speaks, in preference order.
    pub protocols: Vec<&'static str>,
    /// Close with this code and reason when a text message says "close-me".
    pub close_on_request: Option<(CloseCode, &'static str)>,
    /// Per-accept override of the largest message.
    pub max_message_size: Option<usize>,
}

/// An echo service behind `layer`; each socket's end is reported on the returned channel.
pub(crate) fn echo_service(
    layer: WebSocketLayer,
    behaviour: Behaviour,
) -> (Svc, mpsc::UnboundedReceiver<Ended>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let behaviour = Arc::new(behaviour);
    let service = ServiceBuilder::new().layer(layer).service_fn(move |mut req: Request<Incoming>| {
        let tx = tx.clone();
        let behaviour = behaviour.clone();
        async move {
            let upgrade = match WebSocketUpgrade::from_request(&mut req) {
                Ok(upgrade) => upgrade,
                Err(rejection) => return Ok::<_, Infallible>(rejection.into_http_response()),
            };
            let mut upgrade = upgrade.protocols(behaviour.protocols.clone());
            if let Some(max) = behaviour.max_message_size {
                upgrade = upgrade.max_message_size(max);
            }
            Ok(upgrade.on_upgrade(move |socket| async move {
                let ended = echo(socket, &behaviour).await;
                let _ = tx.send(ended);
            }))
        }
    });
    (BoxCloneSyncService::new(service), rx)
}

/// Echoes text and binary until the stream ends, and says how it ended.
pub(crate) async fn echo(mut socket: WebSocket, behaviour: &Behaviour) -> Ended {
    let mut ended = Ended {
        error: None,
        close: None,
        closed_by_server: None,
        echoed: 0,
        compression: socket.compression().copied(),
    };
    while let Some(item) = socket.recv().await {
        match item {
            Ok(Message::Text(text)) if text == "close-me" && behaviour.close_on_request.is_some() => {
                let (code, reason) = behaviour.close_on_request.unwrap();
                ended.closed_by_server = Some(socket.close(code, reason).await);
                break;
            }
            Ok(Message::Text(text)) if text == "protocol?" => {
                let answer = socket.protocol().unwrap_or("none").to_owned();
                let _ = socket.send(Message::text(answer)).await;
            }
            Ok(message @ (Message::Text(_) | Message::Binary(_))) => {
                if let Err(error) = socket.send(message).await {
                    ended.error = Some(error);
                    break;
                }
                ended.echoed += 1;
            }
            Ok(Message::Close(frame)) => ended.close = frame,
            Ok(_) => {}
            Err(error) => ended.error = Some(error),
        }
    }
    ended
}

/// A server on 127.0.0.1, port 0, serving `service` with HTTP/1.1 upgrades and HTTP/2 (h2c,
/// prior knowledge) with the extended CONNECT protocol; it stops when dropped.
pub(crate) struct TestServer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    pub(crate) async fn start(service: Svc) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else { break };
                let service = TowerToHyperService::new(service.clone());
                connections.spawn(async move {
                    let mut builder = auto::Builder::new(TokioExecutor::new());
                    builder.http2().enable_connect_protocol();
                    let _ = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).await;
                });
            }
        });
        Self { addr, task }
    }

    pub(crate) fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }
}

/// Sends `request` (raw HTTP/1.1 bytes) to `service` over a real hyper server connection on an
/// in-memory pipe, and returns the response head as text.
pub(crate) async fn raw_exchange(service: Svc, request: &str) -> String {
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(server), TowerToHyperService::new(service))
            .with_upgrades()
            .await;
    });
    client.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(5), async {
        while !head.ends_with(b"\r\n\r\n") {
            if client.read(&mut byte).await.unwrap() == 0 {
                break;
            }
            head.push(byte[0]);
        }
    })
    .await
    .expect("a response head within 5 s");
    String::from_utf8(head).unwrap()
}

/// Waits for the next socket end report.
pub(crate) async fn next_end(rx: &mut mpsc::UnboundedReceiver<Ended>) -> Ended {
    tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .expect("the server-side socket ended within 60 s")
        .expect("the service is alive")
}

/// A `Write` that keeps what tracing-subscriber's `fmt` layer writes, for tests that read the
/// crate's log (tests/tracing.rs, tests/auth.rs).
#[derive(Clone, Default)]
pub(crate) struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Everything written so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}
