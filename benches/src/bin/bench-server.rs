//! The servers under test (scripts/bench.sh, docs/benchmarks.md): `--server NAME` picks one.
//! Each runs on a single-threaded tokio runtime, binds `--bind` (default `127.0.0.1:0`), prints
//! its port on stdout, and serves until killed; pin it to a core with `taskset`.
//!
//! - Echo (any path; the axum ones route `/ws` and `/`, which uWebSockets' `load_test` asks
//!   for): `ours-axum`, `ours-hyper` (our layer on a tower `service_fn`), `axum`, `tungstenite`
//!   (behind a hand-written hyper upgrade), `fastwebsockets` (as its `echo_server` example), and
//!   `sockudo` (sockudo-ws's axum integration, the permessage-deflate peer). Every echo loop reads
//!   until the stream ends, sends back Text and Binary, and lets the library answer Pings and
//!   the Close.
//! - Fan-out (`broadcast_test`): every message received goes to every socket, its sender
//!   included: `ours-hub` (our `broadcast::Hub` as its docs show, `Subscriber::forward_to`;
//!   `GET /stats` answers the hub's counts), `ours-hub-unbatched` (`send_prepared` per message,
//!   the shape before batching), `axum-chat` (axum's chat example's shape).
//! - Plain HTTP (`GET /` answers `Hello, World!`): `http-axum`, `http-axum-layer` (with
//!   `Router::layer(WebSocketLayer::new())`), `http-axum-outer` (the layer around the `Router`).
//!
//! Every server sets `TCP_NODELAY` on accepted connections.

use std::{convert::Infallible, io::Write as _, net::SocketAddr, process::ExitCode};

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http::{Request, Response, StatusCode, header};
use http_body_util::{Empty, Full};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{self, handshake::derive_accept_key, protocol::Role},
};
use tower::ServiceBuilder;

const USAGE: &str =
    "usage: bench-server --server NAME [--bind ADDR] [--compression [--server-no-context-takeover]]

NAME: ours-axum | ours-hyper | axum | tungstenite | fastwebsockets | sockudo
      | ours-hub | ours-hub-unbatched | axum-chat (fan-out)
      | http-axum | http-axum-layer | http-axum-outer

--compression: permessage-deflate for ours-axum, ours-hyper and sockudo, the same for both
libraries: context takeover, 15-bit windows, every message compressed, level 1;
--server-no-context-takeover resets the server's compressor after each message.";

/// permessage-deflate (`--compression`), for the servers that have it.
#[derive(Debug, Clone, Copy)]
struct Deflate {
    server_no_context_takeover: bool,
}

/// The compression level of both libraries: ours' default.
const DEFLATE_LEVEL: u32 = 1;

static DEFLATE: std::sync::OnceLock<Deflate> = std::sync::OnceLock::new();

const SERVERS: [&str; 12] = [
    "ours-axum",
    "ours-hyper",
    "axum",
    "tungstenite",
    "fastwebsockets",
    "sockudo",
    "ours-hub",
    "ours-hub-unbatched",
    "axum-chat",
    "http-axum",
    "http-axum-layer",
    "http-axum-outer",
];

fn main() -> ExitCode {
    let mut server = None;
    let mut bind: SocketAddr = "127.0.0.1:0".parse().expect("valid address");
    let (mut compression, mut no_context_takeover) = (false, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--server" => server = args.next(),
            "--compression" => compression = true,
            "--server-no-context-takeover" => no_context_takeover = true,
            "--bind" => match args.next().and_then(|a| a.parse().ok()) {
                Some(addr) => bind = addr,
                None => return usage("--bind needs an address such as 127.0.0.1:0"),
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => return usage(&format!("unknown argument {other:?}")),
        }
    }
    let Some(server) = server.filter(|s| SERVERS.contains(&s.as_str())) else {
        return usage("--server NAME is required");
    };
    if compression {
        if !["ours-axum", "ours-hyper", "sockudo"].contains(&server.as_str()) {
            return usage(&format!("--compression: {server} has no permessage-deflate here"));
        }
        DEFLATE.set(Deflate { server_no_context_takeover: no_context_takeover }).expect("set once");
    } else if no_context_takeover {
        return usage("--server-no-context-takeover goes with --compression");
    }

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let result = runtime.block_on(async move {
        let listener = TcpListener::bind(bind).await?;
        println!("{}", listener.local_addr()?.port());
        std::io::stdout().flush()?;
        match server.as_str() {
            "ours-axum" => ours::serve_axum(listener).await,
            "ours-hyper" => ours::serve_hyper(listener).await,
            "axum" => axum_ws::serve(listener).await,
            "tungstenite" => tungstenite_ws::serve(listener).await,
            "fastwebsockets" => fast::serve(listener).await,
            "sockudo" => sockudo::serve(listener).await,
            "ours-hub" => fan_out::serve_hub(listener, true).await,
            "ours-hub-unbatched" => fan_out::serve_hub(listener, false).await,
            "axum-chat" => fan_out::serve_axum_chat(listener).await,
            "http-axum" => plain_http::serve(listener, plain_http::Layering::None).await,
            "http-axum-layer" => plain_http::serve(listener, plain_http::Layering::OnRouter).await,
            "http-axum-outer" => plain_http::serve(listener, plain_http::Layering::AroundRouter).await,
            _ => unreachable!("checked above"),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("bench-server: {problem}\n{USAGE}");
    ExitCode::from(2)
}

/// Accepts connections forever and serves each with hyper's http1 connection, upgrades on.
async fn serve_http1<S, B>(listener: TcpListener, service: S) -> std::io::Result<()>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        let Some(stream) = accept(&listener).await else { continue };
        let service = service.clone();
        tokio::spawn(async move {
            let _ =
                http1::Builder::new().serve_connection(TokioIo::new(stream), service).with_upgrades().await;
        });
    }
}

async fn accept(listener: &TcpListener) -> Option<TcpStream> {
    match listener.accept().await {
        Ok((stream, _)) => {
            let _ = stream.set_nodelay(true);
            Some(stream)
        }
        Err(e) => {
            // Out of file descriptors and the like: wait a little, as axum::serve does.
            eprintln!("bench-server: accept: {e}");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            None
        }
    }
}

/// A listener for `axum::serve` that sets `TCP_NODELAY`, as axum's docs show.
fn axum_listener(listener: TcpListener) -> impl axum::serve::Listener<Addr = SocketAddr> {
    use axum::serve::ListenerExt as _;
    listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    })
}

/// tower-websockets, on axum and on plain hyper.
mod ours {
    use axum::{Router, response::IntoResponse, routing::any};
    use tower_websockets::{Compression, Message, WebSocket, WebSocketLayer, WebSocketUpgrade};

    use super::*;

    /// The echo loop from the crate's docs: read until the stream ends (the socket answers Pings
    /// and the peer's Close itself), send Text and Binary back. `send` flushes each message: with
    /// one message in flight per connection there is nothing to batch.
    pub(super) async fn echo(mut socket: WebSocket) {
        while let Some(message) = socket.recv().await {
            match message {
                Ok(message @ (Message::Text(_) | Message::Binary(_))) => {
                    if socket.send(message).await.is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }

    async fn ws(upgrade: WebSocketUpgrade) -> impl IntoResponse {
        upgrade.on_upgrade(echo)
    }

    pub(super) fn layer() -> WebSocketLayer {
        let Some(deflate) = DEFLATE.get() else { return WebSocketLayer::new() };
        // Compression::enabled(): context takeover, 15-bit windows, every message.
        let compression = Compression::enabled()
            .server_no_context_takeover(deflate.server_no_context_takeover)
            .level(DEFLATE_LEVEL);
        WebSocketLayer::builder().compression(compression).build().expect("valid options")
    }

    pub(super) async fn serve_axum(listener: TcpListener) -> std::io::Result<()> {
        let app: Router = Router::new().route("/ws", any(ws)).route("/", any(ws)).layer(layer());
        axum::serve(axum_listener(listener), app).await
    }

    pub(super) async fn serve_hyper(listener: TcpListener) -> std::io::Result<()> {
        let service =
            ServiceBuilder::new().layer(layer()).service_fn(|mut req: Request<Incoming>| async move {
                let response = match WebSocketUpgrade::from_request(&mut req) {
                    Ok(upgrade) => upgrade.on_upgrade(echo),
                    Err(rejection) => rejection.into_http_response(),
                };
                Ok::<_, Infallible>(response)
            });
        serve_http1(listener, TowerToHyperService::new(service)).await
    }
}

/// The fan-out servers: every message received goes to every open socket, its sender included.
mod fan_out {
    use axum::{
        Router,
        extract::State,
        response::IntoResponse,
        routing::{any, get},
    };

    use super::*;

    /// The one topic (room) every socket is in.
    const TOPIC: &str = "broadcast";

    /// tower-websockets' hub, with its defaults: 1 MiB queued per subscriber, the oldest
    /// messages dropped beyond that. `broadcast_test` at 1,000 clients queues at most one
    /// round, 1,000 × (20 B + `QUEUED_MESSAGE_OVERHEAD`) = 84,000 B, per subscriber: a client
    /// that reads loses nothing; only one that stops reading reaches the budget.
    pub(super) async fn serve_hub(listener: TcpListener, batch: bool) -> std::io::Result<()> {
        use tower_websockets::{WebSocketUpgrade, broadcast::Hub};

        #[derive(Clone)]
        struct Shared {
            hub: Hub,
            batch: bool,
        }

        async fn ws(upgrade: WebSocketUpgrade, State(shared): State<Shared>) -> impl IntoResponse {
            // Subscribed before the 101 goes out, as the `broadcast` module's docs show.
            let mut subscriber = shared.hub.subscriber();
            subscriber.subscribe(TOPIC);
            upgrade.on_upgrade(move |socket| hub_socket(socket, shared.hub, subscriber, shared.batch))
        }

        async fn stats(State(shared): State<Shared>) -> impl IntoResponse {
            let s = shared.hub.stats();
            let body = format!(
                "{{\"subscribers\":{},\"published\":{},\"queued\":{},\"dropped\":{},\"closed_for_lag\":{}}}",
                s.subscribers, s.published, s.queued, s.dropped, s.closed_for_lag
            );
            ([(header::CONTENT_TYPE, "application/json")], body)
        }

        let app: Router = Router::new()
            .route("/ws", any(ws))
            .route("/", any(ws))
            .route("/stats", get(stats))
            .layer(super::ours::layer())
            .with_state(Shared { hub: Hub::new(), batch });
        axum::serve(axum_listener(listener), app).await
    }

    /// The handler's shape from the `broadcast` module's docs: one owner of the socket, waiting
    /// on the socket and on its subscriber at once.
    ///
    /// With `batch` (`ours-hub`), what is queued goes out with `Subscriber::forward_to`: up to
    /// 256 messages, one flush. Without (`ours-hub-unbatched`), one `send_prepared` per message.
    async fn hub_socket(
        mut socket: tower_websockets::WebSocket,
        hub: tower_websockets::broadcast::Hub,
        mut subscriber: tower_websockets::broadcast::Subscriber,
        batch: bool,
    ) {
        use tower_websockets::{
            Message,
            broadcast::{Delivery, LAG_CLOSE_REASON},
        };

        loop {
            tokio::select! {
                incoming = socket.recv() => match incoming {
                    Some(Ok(Message::Binary(bytes))) => {
                        hub.publish(TOPIC, bytes);
                    }
                    Some(Ok(Message::Text(text))) => {
                        hub.publish(TOPIC, text);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                },
                () = subscriber.ready() => {
                    let sent = if batch {
                        // ours-hub, as the broadcast module's docs show: whatever is queued, one
                        // flush. Only a client that stopped reading misses messages (the hub
                        // counts them, GET /stats); telling it would put a message into
                        // broadcast_test's byte count, so it is not told.
                        match subscriber.forward_to(&mut socket).await {
                            Ok(forwarded) if forwarded.close.is_some() => break,
                            Ok(_) => Ok(()),
                            Err(e) => Err(e),
                        }
                    } else {
                        match subscriber.try_recv() {
                            // ours-hub-unbatched: one write per message (the shape before
                            // send_delivery).
                            Some(Delivery::Message(message)) => socket.send_prepared(&message).await,
                            Some(Delivery::Close(code)) => {
                                let _ = socket.close(code, LAG_CLOSE_REASON).await;
                                break;
                            }
                            _ => Ok(()),
                        }
                    };
                    if sent.is_err() {
                        break;
                    }
                }
            }
        }
    }

    /// The channel's capacity, in messages. axum's chat example uses 100; a round of
    /// `broadcast_test` at 1,000 clients puts 1,000 messages in the channel before the slowest
    /// socket's forwarding task has taken the first, and a receiver that lags behind the
    /// capacity gets `RecvError::Lagged`, which ends the example's forwarding loop and with it
    /// the socket. 16,384 is more than a round at 1,000 clients, and about what the hub's 1 MiB
    /// budget holds of 20 B messages (12,483).
    const CHAT_CAPACITY: usize = 16 * 1024;

    /// axum's chat, as its example writes it (messages relayed as they come, Binary here, since
    /// `broadcast_test` sends Binary; the example relays Text).
    pub(super) async fn serve_axum_chat(listener: TcpListener) -> std::io::Result<()> {
        use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
        use tokio::sync::broadcast;

        async fn ws(
            upgrade: WebSocketUpgrade,
            State(tx): State<broadcast::Sender<Bytes>>,
        ) -> impl IntoResponse {
            upgrade.on_upgrade(move |socket| chat(socket, tx))
        }

        async fn chat(socket: WebSocket, tx: broadcast::Sender<Bytes>) {
            let (mut sender, mut receiver) = socket.split();
            let mut rx = tx.subscribe();
            // Everything sent to the channel goes to this client, made into a Message here.
            let mut send_task = tokio::spawn(async move {
                while let Ok(payload) = rx.recv().await {
                    if sender.send(Message::Binary(payload)).await.is_err() {
                        break;
                    }
                }
            });
            // What this client sends goes to the channel.
            let mut recv_task = tokio::spawn(async move {
                while let Some(Ok(message)) = receiver.next().await {
                    if let Message::Binary(payload) = message {
                        let _ = tx.send(payload);
                    }
                }
            });
            // When either ends, so does the other.
            tokio::select! {
                _ = &mut send_task => recv_task.abort(),
                _ = &mut recv_task => send_task.abort(),
            }
        }

        let (tx, _) = broadcast::channel::<Bytes>(CHAT_CAPACITY);
        let app: Router = Router::new().route("/ws", any(ws)).route("/", any(ws)).with_state(tx);
        axum::serve(axum_listener(listener), app).await
    }
}

/// axum 0.8's own `extract::ws`, with its default options.
mod axum_ws {
    use axum::{
        Router,
        extract::ws::{Message, WebSocket, WebSocketUpgrade},
        response::IntoResponse,
        routing::any,
    };

    use super::*;

    async fn echo(mut socket: WebSocket) {
        while let Some(Ok(message)) = socket.recv().await {
            if let Message::Text(_) | Message::Binary(_) = message {
                if socket.send(message).await.is_err() {
                    break;
                }
            }
        }
    }

    async fn ws(upgrade: WebSocketUpgrade) -> impl IntoResponse {
        upgrade.on_upgrade(echo)
    }

    pub(super) async fn serve(listener: TcpListener) -> std::io::Result<()> {
        let app: Router = Router::new().route("/ws", any(ws)).route("/", any(ws));
        axum::serve(axum_listener(listener), app).await
    }
}

/// tokio-tungstenite behind a hand-written hyper upgrade: no middleware, default options.
mod tungstenite_ws {
    use super::*;

    /// The least a correct server checks: an `Upgrade: websocket` request with a key.
    async fn handle(mut req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        let is_ws = req
            .headers()
            .get(header::UPGRADE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
        let key = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned();
        let (true, Some(key)) = (is_ws, key) else {
            let mut response = Response::new(Full::from("not a WebSocket request"));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            return Ok(response);
        };
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else { return };
            echo(WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await).await;
        });
        let response = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_ACCEPT, derive_accept_key(key.as_bytes()))
            .body(Full::default())
            .expect("valid response");
        Ok(response)
    }

    async fn echo<S>(mut ws: WebSocketStream<S>)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        while let Some(Ok(message)) = ws.next().await {
            if let tungstenite::Message::Text(_) | tungstenite::Message::Binary(_) = message {
                if ws.send(message).await.is_err() {
                    break;
                }
            }
        }
    }

    pub(super) async fn serve(listener: TcpListener) -> std::io::Result<()> {
        serve_http1(listener, hyper::service::service_fn(handle)).await
    }
}

/// fastwebsockets with its `upgrade` feature, as its `echo_server` example does it
/// (`FragmentCollector`, the handler run `unconstrained`).
mod fast {
    use fastwebsockets::{FragmentCollector, OpCode, WebSocketError, upgrade};

    use super::*;

    async fn echo(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
        let mut ws = FragmentCollector::new(fut.await?);
        loop {
            // auto_close and auto_pong are on: the library answers the Close and Pings. After a
            // Close the connection is over: that is the end of the stream here.
            let frame = ws.read_frame().await?;
            match frame.opcode {
                OpCode::Close => break,
                OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
                _ => {}
            }
        }
        Ok(())
    }

    async fn handle(mut req: Request<Incoming>) -> Result<Response<Empty<Bytes>>, Infallible> {
        match upgrade::upgrade(&mut req) {
            Ok((response, fut)) => {
                tokio::spawn(async move {
                    let _ = tokio::task::unconstrained(echo(fut)).await;
                });
                Ok(response)
            }
            Err(_) => {
                let mut response = Response::new(Empty::new());
                *response.status_mut() = StatusCode::BAD_REQUEST;
                Ok(response)
            }
        }
    }

    pub(super) async fn serve(listener: TcpListener) -> std::io::Result<()> {
        serve_http1(listener, hyper::service::service_fn(handle)).await
    }
}

/// sockudo-ws 3 through its axum integration: the permessage-deflate peer. Its `Config` defaults
/// (keep-alive Pings after 30 s of silence, a 120 s idle timeout, write coalescing) stay; with
/// `--compression`, a `DeflateConfig` of the same settings as ours: a compressor of its own per
/// connection ("dedicated"), context takeover unless `--server-no-context-takeover`, 15-bit
/// windows, our level, every message compressed (its own defaults are level 6, and messages
/// under 32 bytes left uncompressed).
mod sockudo {
    use axum::{Router, response::IntoResponse, routing::any};
    use sockudo_ws::{
        Config, Message,
        axum_integration::{WebSocket, WebSocketUpgrade},
        deflate::DeflateConfig,
    };

    use super::*;

    /// The same loop as ours: `send` flushes each message.
    async fn echo(mut socket: WebSocket) {
        while let Some(message) = socket.recv().await {
            match message {
                Ok(message @ (Message::Text(_) | Message::Binary(_))) => {
                    if socket.send(message).await.is_err() {
                        break;
                    }
                }
                // The library has answered the Close (as with fastwebsockets).
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    fn config() -> Config {
        let mut builder = Config::builder();
        if let Some(deflate) = DEFLATE.get() {
            builder = builder.deflate_config(DeflateConfig {
                server_no_context_takeover: deflate.server_no_context_takeover,
                compression_level: DEFLATE_LEVEL,
                compression_threshold: 0,
                ..DeflateConfig::default()
            });
        }
        builder.build()
    }

    async fn ws(upgrade: WebSocketUpgrade) -> impl IntoResponse {
        upgrade.config(config()).on_upgrade(echo)
    }

    pub(super) async fn serve(listener: TcpListener) -> std::io::Result<()> {
        let app: Router = Router::new().route("/ws", any(ws)).route("/", any(ws));
        axum::serve(axum_listener(listener), app).await
    }
}

/// A plain HTTP axum app, with and without `WebSocketLayer`.
mod plain_http {
    use axum::{Router, response::IntoResponse, routing::get};
    use tower::Layer as _;
    use tower_websockets::WebSocketLayer;

    use super::*;

    /// Where the layer goes.
    pub(super) enum Layering {
        None,
        /// `Router::layer`, as the README shows.
        OnRouter,
        /// Around the whole `Router`, its response mapped back to axum's.
        AroundRouter,
    }

    pub(super) async fn serve(listener: TcpListener, layering: Layering) -> std::io::Result<()> {
        let app: Router = Router::new().route("/", get(|| async { "Hello, World!" }));
        match layering {
            Layering::None => axum::serve(axum_listener(listener), app).await,
            Layering::OnRouter => {
                axum::serve(axum_listener(listener), app.layer(WebSocketLayer::new())).await
            }
            Layering::AroundRouter => {
                let service = WebSocketLayer::new().layer(app);
                let service = tower::ServiceExt::<Request<axum::body::Body>>::map_response(
                    service,
                    IntoResponse::into_response,
                );
                let make_service = axum::ServiceExt::<Request<axum::body::Body>>::into_make_service(service);
                axum::serve(axum_listener(listener), make_service).await
            }
        }
    }
}
