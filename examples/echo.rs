//! The ASP.NET Core WebSocket sample, with this crate: an echo server and a page to try it.
//!
//! ```text
//! cargo run --example echo
//! ```
//!
//! then open <http://localhost:5000>. `GET /` serves the page; `/ws` accepts WebSockets and
//! echoes text and binary messages until the client closes; anything else is a 404.
//! `cargo run --example echo -- --help` lists the options. Set
//! `RUST_LOG=echo=debug,tower_websockets=debug` to also see refused requests.
//!
//! With `--metrics ADDR` (and the `metrics` feature: `cargo run --example echo --features metrics
//! -- --metrics 127.0.0.1:9000`) it also serves `/metrics` on ADDR, in Prometheus' text format.
//!
//! The page's live panel opens a second WebSocket on the `stats` subprotocol: the server pushes
//! the layer's counts ([`WebSocketLayer::stats`]) on it once a second.
//!
//! With `--tls` it serves HTTPS with a self-signed certificate made at startup, offering `h2` in
//! ALPN: that is what browsers need to open WebSockets over HTTP/2 (RFC 8441, extended CONNECT).
//! Each socket's log lines say which HTTP version it came over.

use std::{convert::Infallible, net::SocketAddr, process::ExitCode, sync::Arc, time::Duration};

use clap::Parser;
use http::{Method, Request, Response, StatusCode, Version, header};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{
        conn::auto,
        graceful::{GracefulShutdown, Watcher},
    },
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        self,
        pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
    },
};
use tower::ServiceBuilder;
use tower_websockets::{
    Compression, Message, WebSocket, WebSocketLayer, WebSocketUpgrade,
    auth::{AuthRejection, Token},
    handshake::HandshakeBody,
    lifecycle::ShutdownHandle,
};
use tracing::Instrument;

const SERVER: &str = concat!("tower-websockets-echo/", env!("CARGO_PKG_VERSION"));
const INDEX_HTML: &str = include_str!("echo/index.html");
/// The subprotocol on which the server also pushes a clock.
const CLOCK_PROTOCOL: &str = "clock";
/// The subprotocol of the page's live panel: the layer's counts, pushed once a second.
const STATS_PROTOCOL: &str = "stats";

#[path = "common/metrics.rs"]
mod metrics_endpoint;

/// The ASP.NET Core WebSocket sample: an echo server and a page to try it.
#[derive(Debug, Parser)]
#[command(
    name = "echo",
    after_help = "Logging follows RUST_LOG [default: info]; RUST_LOG=echo=debug,tower_websockets=debug\n\
                  also shows refused requests."
)]
struct Options {
    /// Address to listen on (a host name such as localhost:5000 is resolved; port 0 picks a free
    /// port)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5000")]
    bind: String,
    /// Let WebSockets in only from this origin, as scheme://host[:port], or * for any page;
    /// repeat for more [default: same origin: the pages this server serves]
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
    /// Ping a silent client after this many seconds; 0 turns keep-alive off [default: 120]
    #[arg(long, value_name = "SECS", value_parser = parse_seconds, allow_negative_numbers = true)]
    keep_alive_interval: Option<Duration>,
    /// Drop a client that does not answer a keep-alive ping within this many seconds
    /// [default: off]
    #[arg(long, value_name = "SECS", value_parser = parse_seconds, allow_negative_numbers = true)]
    keep_alive_timeout: Option<Duration>,
    /// Largest incoming message [default: 67108864]
    #[arg(long, value_name = "BYTES")]
    max_message_size: Option<usize>,
    /// A subprotocol the server speaks, in order of preference; repeat for more [default: none]
    #[arg(long = "protocol", value_name = "NAME", value_parser = parse_protocol)]
    protocols: Vec<String>,
    /// On Ctrl-C or SIGTERM, close every WebSocket with 1001 and wait this long for them to end
    #[arg(
        long,
        value_name = "SECS",
        value_parser = parse_seconds,
        allow_negative_numbers = true,
        default_value = "10"
    )]
    shutdown_timeout: Duration,
    /// Drop a connection that has not sent its whole request head (its first byte included)
    /// within this many seconds
    #[arg(
        long,
        value_name = "SECS",
        value_parser = parse_seconds,
        allow_negative_numbers = true,
        default_value = "30"
    )]
    head_timeout: Duration,
    /// Serve HTTPS and WSS with a self-signed certificate for localhost, 127.0.0.1 and ::1 made
    /// at startup (clients must be told to accept it); ALPN offers h2, so browsers can open
    /// WebSockets over HTTP/2
    #[arg(long)]
    tls: bool,
    /// Let WebSockets in only with this token, offered in the subprotocol list as
    /// ["bearer", TOKEN] or sent as ?access_token=TOKEN (removed from the URI before the handler
    /// sees it); others get 401 [default: none]
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
    /// Negotiate permessage-deflate (RFC 7692) with clients that offer it [default: off]
    #[arg(long)]
    compression: bool,
    /// With --compression: start every message the server sends with an empty compression
    /// context (less memory, less compression)
    #[arg(long, requires = "compression")]
    server_no_context_takeover: bool,
    /// With --compression: the largest window the server compresses with, 9 to 15 bits
    /// [default: 15]
    #[arg(long, value_name = "BITS", requires = "compression", value_parser = clap::value_parser!(u8).range(9..=15))]
    server_max_window_bits: Option<u8>,
    /// Serve the crate's metrics at http://ADDR/metrics in Prometheus' text format (needs the
    /// `metrics` feature) [default: none]
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
}

impl Default for Options {
    /// The options with no flags given.
    fn default() -> Self {
        Self::parse_from(["echo"])
    }
}

/// Decimal seconds, such as `30` or `0.5`.
fn parse_seconds(value: &str) -> Result<Duration, String> {
    let seconds: f64 = value.parse().map_err(|_| "expected a number of seconds".to_owned())?;
    Duration::try_from_secs_f64(seconds).map_err(|_| "expected a non-negative number of seconds".to_owned())
}

/// A subprotocol name: an HTTP token.
fn parse_protocol(value: &str) -> Result<String, String> {
    let is_token = !value.is_empty()
        && value.bytes().all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
    if is_token { Ok(value.to_owned()) } else { Err("a subprotocol name is an HTTP token".to_owned()) }
}

/// The identity of a client that sent the right `--token`.
#[derive(Debug, Clone, Copy)]
struct Authenticated;

fn layer(options: &Options) -> Result<WebSocketLayer, tower_websockets::ConfigError> {
    let mut builder = WebSocketLayer::builder();
    if !options.allowed_origins.is_empty() {
        builder = builder.allowed_origins(options.allowed_origins.clone());
    }
    if let Some(interval) = options.keep_alive_interval {
        builder = builder.keep_alive_interval(interval);
    }
    if let Some(timeout) = options.keep_alive_timeout {
        builder = builder.keep_alive_timeout(timeout);
    }
    if let Some(bytes) = options.max_message_size {
        builder = builder.max_message_size(bytes);
    }
    if let Some(expected) = options.token.clone() {
        let expected: Arc<str> = expected.into();
        builder = builder
            .authenticate(move |parts: &http::request::Parts| {
                let token = Token::from_protocol(parts).or_else(|| Token::from_query(parts, "access_token"));
                let outcome = match token {
                    None => Err(AuthRejection::unauthorized("no token")),
                    Some(token) if token.as_bytes() == expected.as_bytes() => Ok(Authenticated),
                    Some(_) => Err(AuthRejection::unauthorized("invalid token")),
                };
                std::future::ready(outcome)
            })
            .token_query_param("access_token");
    }
    if options.compression {
        let mut compression =
            Compression::enabled().server_no_context_takeover(options.server_no_context_takeover);
        if let Some(bits) = options.server_max_window_bits {
            compression = compression.server_max_window_bits(bits);
        }
        builder = builder.compression(compression);
    }
    builder.build()
}

/// Binds the first address `bind` resolves to that accepts. The error comes with its exit status:
/// 2 for an address that does not resolve, 1 for one that cannot be listened on.
async fn bind(bind: &str) -> Result<TcpListener, (String, u8)> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(bind)
        .await
        .map_err(|e| (format!("invalid value `{bind}` for `--bind`: {e}"), 2))?
        .collect();
    let mut last_error = (format!("invalid value `{bind}` for `--bind`: no address found"), 2);
    for addr in &addrs {
        match TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(e) => last_error = (format!("cannot listen on {addr}: {e}"), 1),
        }
    }
    Err(last_error)
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = Options::parse(); // prints --help, or the error with status 2
    // The recorder first, so that whatever counts is counted into it.
    let metrics = match options.metrics.as_deref().map(metrics_endpoint::recorder).transpose() {
        Ok(metrics) => metrics,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let layer = match layer(&options) {
        Ok(layer) => layer,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };

    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();

    let listener = match bind(&options.bind).await {
        Ok(listener) => listener,
        Err((e, status)) => {
            eprintln!("error: {e}");
            return ExitCode::from(status);
        }
    };
    let local_addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let tls = if options.tls {
        match tls_acceptor() {
            Ok(acceptor) => Some(acceptor),
            Err(e) => {
                eprintln!("error: cannot set up TLS: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!("listening on {scheme}://{local_addr}");
    if let (Some(addr), Some(recorder)) = (&options.metrics, metrics) {
        match metrics_endpoint::serve(addr, recorder).await {
            Ok(addr) => tracing::info!("metrics on http://{addr}/metrics"),
            Err(e) => {
                eprintln!("error: --metrics {addr}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }

    let protocols: Arc<[String]> = options.protocols.into();
    let mut http = auto::Builder::new(TokioExecutor::new());
    // Announces extended CONNECT in the HTTP/2 SETTINGS: RFC 8441 (WebSockets over HTTP/2) needs
    // it. Over TLS, HTTP/2 is what ALPN `h2` picks; in the clear, a client that starts with the
    // HTTP/2 preface (h2c with prior knowledge) gets it too.
    http.http2().enable_connect_protocol();
    // Kestrel's limits on a request head (docs/security.md): 32 KiB at most, else 431 (hyper's
    // default buffer lets about 400 KiB in); 100 header lines; and --head-timeout (30 s by default) to send it, so that
    // a slow client cannot hold a connection for ever (the timeout needs hyper's timer).
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.head_timeout)
        .max_buf_size(32 * 1024)
        .max_headers(100);
    let head_timeout = options.head_timeout;

    let websockets = layer.shutdown_handle();
    let connections = GracefulShutdown::new();
    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: give connections time to end.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            signal = &mut signal => {
                tracing::info!("{signal}: shutting down");
                break;
            }
        };
        let server = Server { http: http.clone(), layer: layer.clone(), protocols: protocols.clone() };
        // Taken here, before the connection's task runs, so that shutdown waits for it.
        let watcher = connections.watcher();
        let tls = tls.clone();
        // The span puts the peer on what the layer logs, such as a refused origin.
        let span = tracing::info_span!("conn", %peer);
        tokio::spawn(
            async move {
                match tls {
                    // hyper-util's auto::Builder reads the first bytes (HTTP/1.1 or HTTP/2?) with
                    // no timeout of its own: a client that sends nothing is dropped after
                    // --head-timeout.
                    None => {
                        if first_byte_within(&stream, head_timeout).await {
                            server.serve(stream, peer, watcher).await;
                        }
                    }
                    // The handshake runs on the connection's task, not in the accept loop.
                    Some(acceptor) => {
                        if let Some(stream) = tls_handshake(&acceptor, stream).await {
                            server.serve(stream, peer, watcher).await;
                        }
                    }
                }
            }
            .instrument(span),
        );
    }

    // Stop accepting; then the HTTP connections drain, then the WebSockets (every one gets a
    // Close with 1001), all within --shutdown-timeout.
    drop(listener);
    let deadline = tokio::time::Instant::now() + options.shutdown_timeout;
    websockets.trigger();
    if tokio::time::timeout_at(deadline, connections.shutdown()).await.is_err() {
        tracing::warn!("HTTP connections still open at the shutdown deadline");
    }
    let report = websockets.shutdown(deadline.saturating_duration_since(tokio::time::Instant::now())).await;
    tracing::info!(open = report.open_at_start, cut = report.cut, "WebSockets closed; exiting");
    ExitCode::SUCCESS
}

/// How long a client has to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS with a self-signed certificate for `localhost`, `127.0.0.1` and `::1`, made now. ALPN offers
/// `h2` first, then `http/1.1`: browsers open WebSockets over HTTP/2 (RFC 8441) only on an `h2`
/// connection.
fn tls_acceptor() -> Result<TlsAcceptor, Box<dyn std::error::Error>> {
    let (cert, key) = self_signed_certificate()?;
    Ok(TlsAcceptor::from(Arc::new(tls_config(cert, key)?)))
}

/// A new key pair and a self-signed certificate for it, for `localhost`, `127.0.0.1` and `::1`.
fn self_signed_certificate() -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), rcgen::Error> {
    let certified = rcgen::generate_simple_self_signed(["localhost", "127.0.0.1", "::1"].map(String::from))?;
    let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
    Ok((certified.cert.der().clone(), key.into()))
}

fn tls_config(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig, rustls::Error> {
    // The `ring` provider, named rather than left to rustls' process-wide default.
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Runs the TLS handshake, within [`TLS_HANDSHAKE_TIMEOUT`]; `None` (logged at debug level) when
/// it fails.
async fn tls_handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => {
            // `h2` when the client can do HTTP/2; the server then speaks it.
            let alpn = stream.get_ref().1.alpn_protocol().map(String::from_utf8_lossy);
            tracing::debug!(alpn = alpn.as_deref(), "TLS handshake done");
            Some(stream)
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!("TLS handshake timed out");
            None
        }
    }
}

/// Has the client sent anything within `timeout`? (A peek: the bytes stay for hyper.)
async fn first_byte_within(stream: &TcpStream, timeout: Duration) -> bool {
    matches!(tokio::time::timeout(timeout, stream.peek(&mut [0u8])).await, Ok(Ok(1)))
}

/// What every connection needs: the HTTP server and the WebSocket layer.
#[derive(Clone)]
struct Server {
    http: auto::Builder<TokioExecutor>,
    layer: WebSocketLayer,
    protocols: Arc<[String]>,
}

impl Server {
    /// Serves one connection, plain TCP or TLS, HTTP/1.1 or HTTP/2, until it ends or shutdown
    /// closes it.
    async fn serve<I>(self, io: I, peer: SocketAddr, watcher: Watcher)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let protocols = self.protocols;
        let stats = self.layer.shutdown_handle();
        let service =
            ServiceBuilder::new().layer(self.layer).service_fn(move |mut req: Request<Incoming>| {
                // The layer's per-socket span shows the peer it finds here.
                req.extensions_mut().insert(peer);
                handle(req, peer, protocols.clone(), stats.clone())
            });
        let connection =
            self.http.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service));
        if let Err(e) = watcher.watch(connection.into_owned()).await {
            tracing::debug!(error = %e, "connection failed");
        }
    }
}

/// Completes on Ctrl-C or, on Unix, SIGTERM, and says which.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                let _ = tokio::signal::ctrl_c().await;
                return "Ctrl-C";
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "Ctrl-C",
            _ = terminate.recv() => "SIGTERM",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// Answers one request. `stats` reads the layer's counts, for the live panel.
async fn handle(
    mut req: Request<Incoming>,
    peer: SocketAddr,
    protocols: Arc<[String]>,
    stats: ShutdownHandle,
) -> Result<Response<HandshakeBody>, Infallible> {
    let response = match req.uri().path() {
        "/" | "/index.html" if req.method() == Method::GET || req.method() == Method::HEAD => {
            let mut response = Response::new(HandshakeBody::from(INDEX_HTML));
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/html; charset=utf-8"));
            response
        }
        "/" | "/index.html" => {
            let mut response = status(StatusCode::METHOD_NOT_ALLOWED);
            response.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
            response
        }
        "/ws" => match WebSocketUpgrade::from_request(&mut req) {
            Ok(upgrade) => {
                // `clock` (the page's Server clock box): ticks pushed from another task. Only a
                // client that asks for it gets it; other clients see a pure echo.
                // `stats` (the page's live panel): the layer's counts, pushed the same way.
                let ours = [CLOCK_PROTOCOL.to_owned(), STATS_PROTOCOL.to_owned()];
                let upgrade = upgrade.protocols(protocols.iter().cloned().chain(ours));
                // HTTP/1.1 for an Upgrade, HTTP/2 for an extended CONNECT (RFC 8441).
                let version = req.version();
                upgrade.on_upgrade(move |socket| echo(socket, peer, version, stats))
            }
            Err(rejection) => {
                tracing::debug!(
                    method = %req.method(),
                    uri = %req.uri(),
                    status = %rejection.status(),
                    reason = %rejection,
                    "refused WebSocket request"
                );
                return Ok(with_server_header(rejection.into_http_response()));
            }
        },
        _ => status(StatusCode::NOT_FOUND),
    };
    if response.status().is_client_error() || response.status().is_server_error() {
        tracing::debug!(method = %req.method(), uri = %req.uri(), status = %response.status(), "request failed");
    }
    Ok(with_server_header(response))
}

/// Names the server, so that Autobahn reports name it too.
fn with_server_header(mut response: Response<HandshakeBody>) -> Response<HandshakeBody> {
    response.headers_mut().insert(header::SERVER, header::HeaderValue::from_static(SERVER));
    response
}

fn status(status: StatusCode) -> Response<HandshakeBody> {
    let mut response = Response::new(HandshakeBody::from(status.to_string()));
    *response.status_mut() = status;
    response
}

/// Pushes `clock:<n> <HH:MM:SS> UTC` once a second until the socket ends (`send` then fails).
async fn clock(sender: tower_websockets::WebSocketSender) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    for tick in 0u64.. {
        interval.tick().await;
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let (h, m, s) = (secs / 3600 % 24, secs / 60 % 60, secs % 60);
        // A client that does not read holds at most the socket's max_buffered_amount.
        if sender.send(format!("clock:{tick} {h:02}:{m:02}:{s:02} UTC")).await.is_err() {
            break;
        }
    }
}

/// Pushes `stats:{json}` once a second until the socket ends: the layer's counts, for the page's
/// live panel (open sockets, data messages each way so far, sockets ended by close code). The
/// page takes the rates from the differences.
async fn push_stats(sender: tower_websockets::WebSocketSender, layer: ShutdownHandle) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    loop {
        interval.tick().await;
        let stats = layer.stats();
        let mut closes: Vec<String> =
            stats.closes.iter().map(|(code, n)| format!("\"{}\":{n}", code.0)).collect();
        if stats.closes.other() > 0 {
            closes.push(format!("\"other\":{}", stats.closes.other()));
        }
        let json = format!(
            "stats:{{\"open\":{},\"received\":{},\"sent\":{},\"closes\":{{{}}}}}",
            stats.open,
            stats.messages_received,
            stats.messages_sent,
            closes.join(",")
        );
        if sender.send(json).await.is_err() {
            break;
        }
    }
}

/// Echoes text and binary messages until the client closes, then logs how the connection ended.
/// `version` is the HTTP version of the handshake, which both log lines show.
async fn echo(mut socket: WebSocket, peer: SocketAddr, version: Version, stats: ShutdownHandle) {
    let compression = socket.compression().is_some();
    let authenticated = socket.identity::<Authenticated>().is_some();
    tracing::info!(%peer, http = ?version, protocol = ?socket.protocol(), compression, authenticated, "WebSocket opened");
    // On the `clock` subprotocol a task of its own pushes a tick a second through a sender; this
    // task stays the socket's owner (it echoes, answers Pings, closes), and its `recv` writes the
    // ticks out.
    let clock = match socket.protocol() {
        Some(CLOCK_PROTOCOL) => Some(tokio::spawn(clock(socket.sender()))),
        Some(STATS_PROTOCOL) => Some(tokio::spawn(push_stats(socket.sender(), stats))),
        _ => None,
    };
    let mut echoed: u64 = 0;
    let mut close_code = None;
    let mut close_reason = None;
    let mut error = None;
    // Read until the stream ends, so that the closing handshake completes.
    while let Some(item) = socket.recv().await {
        match item {
            Ok(message @ (Message::Text(_) | Message::Binary(_))) => {
                if let Err(e) = socket.send(message).await {
                    error = Some(e);
                    break;
                }
                echoed += 1;
            }
            Ok(Message::Close(frame)) => {
                // 1005: the Close carried no status code (RFC 6455, section 7.1.5).
                close_code = Some(frame.as_ref().map_or(1005, |f| f.code.0));
                close_reason = frame.map(|f| f.reason.to_string());
            }
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    if let Some(clock) = clock {
        clock.abort();
    }
    let error = error.map(|e| e.to_string());
    tracing::info!(
        %peer,
        http = ?version,
        protocol = ?socket.protocol(),
        echoed,
        close_code,
        close_reason = close_reason.as_deref(),
        error = error.as_deref(),
        "WebSocket connection ended"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, String> {
        Options::try_parse_from(std::iter::once("echo").chain(args.iter().copied()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn parses_flags() {
        let Ok(options) = parse(&[
            "--bind",
            "localhost:0",
            "--allowed-origin=https://a.example",
            "--allowed-origin",
            "https://b.example",
            "--keep-alive-interval",
            "0.5",
            "--keep-alive-timeout=2",
            "--max-message-size",
            "1024",
            "--protocol",
            "chat",
            "--tls",
            "--head-timeout",
            "1.5",
        ]) else {
            panic!("expected options");
        };
        assert_eq!(options.bind, "localhost:0");
        assert_eq!(options.allowed_origins, ["https://a.example", "https://b.example"]);
        assert_eq!(options.keep_alive_interval, Some(Duration::from_millis(500)));
        assert_eq!(options.keep_alive_timeout, Some(Duration::from_secs(2)));
        assert_eq!(options.max_message_size, Some(1024));
        assert_eq!(options.protocols, ["chat"]);
        assert!(options.tls);
        assert_eq!(options.head_timeout, Duration::from_millis(1500));
        let Ok(options) = parse(&[]) else { panic!("expected options") };
        assert_eq!(options.head_timeout, Duration::from_secs(30));
        assert!(!options.tls);
        assert_eq!(options.bind, "127.0.0.1:5000");
        assert_eq!(options.shutdown_timeout, Duration::from_secs(10));
        assert_eq!((options.keep_alive_interval, options.max_message_size), (None, None));
    }

    #[test]
    fn refuses_bad_flags_naming_them() {
        for (args, named) in [
            (&["--nope"][..], "--nope"),
            (&["--bind"][..], "--bind"),
            (&["--keep-alive-interval", "-1"][..], "--keep-alive-interval"),
            (&["--keep-alive-timeout", "soon"][..], "--keep-alive-timeout"),
            (&["--max-message-size", "1e3"][..], "--max-message-size"),
            (&["--protocol", "a b"][..], "--protocol"),
            (&["--tls=yes"][..], "--tls"),
            (&["--head-timeout", "-1"][..], "--head-timeout"),
        ] {
            let Err(e) = parse(args) else { panic!("{args:?} should be refused") };
            assert!(e.contains(named), "{e}");
        }
    }

    #[test]
    fn help_documents_every_flag_with_its_default() {
        use clap::CommandFactory;

        let help = Options::command().render_help().to_string();
        let flags = [
            ("--bind <ADDR>", "[default: 127.0.0.1:5000]".to_owned()),
            ("--allowed-origin <ORIGIN>", "[default: same origin: the pages this server serves]".to_owned()),
            // The crate's documented defaults (`keep_alive_interval`: 2 minutes;
            // `max_message_size`: 64 MiB).
            ("--keep-alive-interval <SECS>", "[default: 120]".to_owned()),
            ("--keep-alive-timeout <SECS>", "[default: off]".to_owned()),
            ("--max-message-size <BYTES>", format!("[default: {}]", 64 << 20)),
            ("--protocol <NAME>", "[default: none]".to_owned()),
            ("--token <TOKEN>", "[default: none]".to_owned()),
            ("--shutdown-timeout <SECS>", "[default: 10]".to_owned()),
            ("--head-timeout <SECS>", "[default: 30]".to_owned()),
        ];
        for (flag, default) in flags {
            // The flag's entry: its line, and the lines up to the next flag.
            let mut lines = help.lines().skip_while(|line| !line.contains(flag));
            let first = lines.next().unwrap_or_else(|| panic!("{flag} is missing:\n{help}"));
            let rest = lines.take_while(|line| !line.trim_start().starts_with('-'));
            let entry = std::iter::once(first).chain(rest).collect::<Vec<_>>().join(" ");
            assert!(entry.contains(&default), "{flag} should say {default}:\n{help}");
        }
        assert!(help.contains("--tls") && help.contains("-h, --help") && help.contains("RUST_LOG"), "{help}");
    }

    #[test]
    fn invalid_combinations_come_back_from_build() {
        let Ok(options) = parse(&["--keep-alive-interval", "0", "--keep-alive-timeout", "1"]) else {
            panic!("expected options");
        };
        assert_eq!(layer(&options).unwrap_err().option(), "keep_alive_timeout");
    }

    /// `--tls` end to end: a client that trusts only the generated certificate gets `h2` from
    /// ALPN, then a WebSocket over HTTP/2 (RFC 8441 extended CONNECT) that echoes.
    #[tokio::test]
    async fn tls_serves_websockets_over_http2() {
        use futures_util::{SinkExt, StreamExt};
        use http_body_util::Empty;
        use hyper::ext::Protocol;
        use tokio_tungstenite::{
            WebSocketStream,
            tungstenite::{Message, protocol::Role},
        };

        let (cert, key) = self_signed_certificate().unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(tls_config(cert.clone(), key).unwrap()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut http = auto::Builder::new(TokioExecutor::new());
        http.http2().enable_connect_protocol();
        // Kestrel's limits on a request head (docs/security.md): 32 KiB at most, else 431 (hyper's
        // default buffer lets about 400 KiB in); 100 header lines; and 30 seconds to send it, so that
        // a slow client cannot hold a connection for ever (the timeout needs hyper's timer).
        http.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .max_buf_size(32 * 1024)
            .max_headers(100);
        let layer = layer(&Options::default()).unwrap();
        let server = Server { http, layer, protocols: Arc::from([]) };
        let connections = GracefulShutdown::new();
        let watcher = connections.watcher();
        tokio::spawn(async move {
            let (stream, peer) = listener.accept().await.unwrap();
            let stream = tls_handshake(&acceptor, stream).await.expect("TLS handshake");
            server.serve(stream, peer, watcher).await;
        });

        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).unwrap();
        let mut config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));

        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.unwrap();
        tokio::spawn(connection);
        // h2 sends an extended CONNECT without waiting for the server's SETTINGS; the server
        // enabled it, so that is fine.
        let request = Request::connect("https://localhost/ws")
            .header(header::SEC_WEBSOCKET_VERSION, "13")
            .extension(Protocol::from_static("websocket"))
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let mut response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let upgraded = hyper::upgrade::on(&mut response).await.unwrap();
        let mut socket = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
        socket.send(Message::text("over h2")).await.unwrap();
        assert_eq!(socket.next().await.unwrap().unwrap(), Message::text("over h2"));
        socket.close(None).await.unwrap();
    }

    /// The example's whole service, default options, on the in-memory test client.
    #[cfg(feature = "test-util")]
    fn in_memory_client() -> tower_websockets::test::TestClient {
        let layer = layer(&Options::default()).unwrap();
        let stats = layer.shutdown_handle();
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let service = ServiceBuilder::new()
            .layer(layer)
            .service_fn(move |req| handle(req, peer, Arc::from([]), stats.clone()));
        tower_websockets::test::TestClient::new(service).timeout(Duration::from_secs(10))
    }

    /// The page's Server clock: on the `clock` subprotocol ticks arrive from the clock's task
    /// between the echoes; a client that does not ask for it gets a pure echo.
    #[cfg(feature = "test-util")]
    #[tokio::test(start_paused = true)]
    async fn the_clock_subprotocol_pushes_ticks_and_plain_clients_get_a_pure_echo() {
        let client = in_memory_client();

        let mut clock = client.connect("/ws").protocols([CLOCK_PROTOCOL]).await.unwrap();
        assert_eq!(clock.protocol(), Some(CLOCK_PROTOCOL));
        assert!(clock.recv_text().await.unwrap().starts_with("clock:0 "));
        clock.send_text("hello").await.unwrap();
        let mut ticks = 1;
        loop {
            let text = clock.recv_text().await.unwrap();
            if text == "hello" {
                break;
            }
            assert!(text.starts_with(&format!("clock:{ticks} ")), "{text}");
            ticks += 1;
        }
        assert!(clock.recv_text().await.unwrap().starts_with(&format!("clock:{ticks} ")));
        clock.close().await.unwrap();

        let mut plain = client.connect("/ws").await.unwrap();
        assert_eq!(plain.protocol(), None);
        plain.send_text("hello").await.unwrap();
        assert_eq!(plain.recv_text().await.unwrap(), "hello");
        assert!(
            tokio::time::timeout(Duration::from_secs(3), plain.recv()).await.is_err(),
            "a tick without clock"
        );
        plain.close().await.unwrap();
    }

    /// The page's live panel: on the `stats` subprotocol the layer's counts arrive once a
    /// second, and they follow what other sockets do.
    #[cfg(feature = "test-util")]
    #[tokio::test(start_paused = true)]
    async fn the_stats_subprotocol_pushes_the_layers_counts() {
        use tower_websockets::CloseCode;

        let client = in_memory_client();

        let mut panel = client.connect("/ws").protocols([STATS_PROTOCOL]).await.unwrap();
        assert_eq!(panel.protocol(), Some(STATS_PROTOCOL));
        assert_eq!(panel.recv_text().await.unwrap(), r#"stats:{"open":1,"received":0,"sent":0,"closes":{}}"#);
        let mut other = client.connect("/ws").await.unwrap();
        other.send_text("one").await.unwrap();
        assert_eq!(other.recv_text().await.unwrap(), "one");
        other.close_with(CloseCode(4000), "bye").await.unwrap();
        // The first push counted as sent, then the echo each way; the 4000 among the others.
        let expected = r#"stats:{"open":1,"received":1,"sent":2,"closes":{"other":1}}"#;
        loop {
            let text = panel.recv_text().await.unwrap();
            assert!(text.starts_with("stats:{"), "{text}");
            if text == expected {
                break;
            }
        }
        panel.close().await.unwrap();
    }
}
