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

use std::{convert::Infallible, net::SocketAddr, process::ExitCode, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_websockets::{Message, WebSocket, WebSocketLayer, WebSocketUpgrade};
use tracing::Instrument;

const SERVER: &str = concat!("tower-websockets-echo/", env!("CARGO_PKG_VERSION"));
const INDEX_HTML: &str = include_str!("echo/index.html");

const USAGE: &str = "\
The ASP.NET Core WebSocket sample: an echo server and a page to try it.

Usage: echo [OPTIONS]

Options:
  --bind ADDR                  Address to listen on [default: 127.0.0.1:5000]
                               (a host name such as localhost:5000 is resolved;
                               port 0 picks a free port)
  --allowed-origin ORIGIN      Let WebSockets in only from this origin, as
                               scheme://host[:port]; repeat for more [default: any]
  --keep-alive-interval SECS   Ping a silent client after this many seconds; 0 turns
                               keep-alive off [default: 120]
  --keep-alive-timeout SECS    Drop a client that does not answer a keep-alive ping
                               within this many seconds [default: off]
  --max-message-size BYTES     Largest incoming message [default: 67108864]
  --protocol NAME              A subprotocol the server speaks, in order of
                               preference; repeat for more [default: none]
  --shutdown-timeout SECS      On Ctrl-C or SIGTERM, close every WebSocket with 1001
                               and wait this long for them to end [default: 10]
  -h, --help                   Print this help

Logging follows RUST_LOG [default: info]; RUST_LOG=echo=debug,tower_websockets=debug
also shows refused requests.";

/// The command line.
#[derive(Debug)]
struct Options {
    bind: String,
    allowed_origins: Vec<String>,
    keep_alive_interval: Option<Duration>,
    keep_alive_timeout: Option<Duration>,
    max_message_size: Option<usize>,
    protocols: Vec<String>,
    shutdown_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:5000".to_owned(),
            allowed_origins: Vec::new(),
            keep_alive_interval: None,
            keep_alive_timeout: None,
            max_message_size: None,
            protocols: Vec::new(),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// What the command line asks for.
enum Command {
    Run(Options),
    Help,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut options = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Command::Help);
        }
        // Both `--flag VALUE` and `--flag=VALUE`.
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value.to_owned())),
            _ => (arg, None),
        };
        let known = [
            "--bind",
            "--allowed-origin",
            "--keep-alive-interval",
            "--keep-alive-timeout",
            "--max-message-size",
            "--protocol",
            "--shutdown-timeout",
        ];
        if !known.contains(&flag.as_str()) {
            return Err(format!("unknown option `{flag}`"));
        }
        let value = match inline_value.or_else(|| args.next()) {
            Some(value) => value,
            None => return Err(format!("option `{flag}` needs a value")),
        };
        let invalid = |why: &str| format!("invalid value `{value}` for `{flag}`: {why}");
        match flag.as_str() {
            "--bind" => options.bind = value,
            "--allowed-origin" => options.allowed_origins.push(value),
            "--keep-alive-interval" => {
                options.keep_alive_interval = Some(parse_seconds(&value).map_err(|e| invalid(&e))?);
            }
            "--keep-alive-timeout" => {
                options.keep_alive_timeout = Some(parse_seconds(&value).map_err(|e| invalid(&e))?);
            }
            "--shutdown-timeout" => {
                options.shutdown_timeout = parse_seconds(&value).map_err(|e| invalid(&e))?;
            }
            "--max-message-size" => {
                let bytes = value.parse().map_err(|_| invalid("expected a number of bytes"))?;
                options.max_message_size = Some(bytes);
            }
            "--protocol" => {
                let is_token = !value.is_empty()
                    && value.bytes().all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
                if !is_token {
                    return Err(invalid("a subprotocol name is an HTTP token"));
                }
                options.protocols.push(value);
            }
            _ => unreachable!("checked against `known`"),
        }
    }
    Ok(Command::Run(options))
}

/// Decimal seconds, such as `30` or `0.5`.
fn parse_seconds(value: &str) -> Result<Duration, String> {
    let seconds: f64 = value.parse().map_err(|_| "expected a number of seconds".to_owned())?;
    Duration::try_from_secs_f64(seconds).map_err(|_| "expected a non-negative number of seconds".to_owned())
}

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
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Run(options)) => options,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n\nRun with --help for the options.");
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
    tracing::info!("listening on http://{local_addr}");

    let protocols: Arc<[String]> = options.protocols.into();
    let mut http = auto::Builder::new(TokioExecutor::new());
    // RFC 8441 (WebSockets over HTTP/2) needs it; harmless until then.
    http.http2().enable_connect_protocol();

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
        let protocols = protocols.clone();
        let service =
            ServiceBuilder::new().layer(layer.clone()).service_fn(move |mut req: Request<Incoming>| {
                // The layer's per-socket span shows the peer it finds here.
                req.extensions_mut().insert(peer);
                handle(req, peer, protocols.clone())
            });
        let connection =
            http.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = connections.watch(connection.into_owned());
        // The span puts the peer on what the layer logs, such as a refused origin.
        let span = tracing::info_span!("conn", %peer);
        tokio::spawn(
            async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "connection failed");
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

async fn handle(
    mut req: Request<Incoming>,
    peer: SocketAddr,
    protocols: Arc<[String]>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = match req.uri().path() {
        "/" | "/index.html" if req.method() == Method::GET || req.method() == Method::HEAD => {
            let mut response = Response::new(Full::new(Bytes::from_static(INDEX_HTML.as_bytes())));
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
                let upgrade = upgrade.protocols(protocols.iter().cloned());
                upgrade.on_upgrade(move |socket| echo(socket, peer))
            }
            Err(rejection) => {
                tracing::debug!(
                    method = %req.method(),
                    uri = %req.uri(),
                    status = %rejection.status(),
                    reason = %rejection,
                    "refused WebSocket request"
                );
                return Ok(with_server_header(rejection.into_response()));
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
fn with_server_header(mut response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    response.headers_mut().insert(header::SERVER, header::HeaderValue::from_static(SERVER));
    response
}

fn status(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(status.to_string())));
    *response.status_mut() = status;
    response
}

/// Echoes text and binary messages until the client closes, then logs how the connection ended.
async fn echo(mut socket: WebSocket, peer: SocketAddr) {
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
    let error = error.map(|e| e.to_string());
    tracing::info!(
        %peer,
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

    fn parse(args: &[&str]) -> Result<Command, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_flags() {
        let Ok(Command::Run(options)) = parse(&[
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
        ]) else {
            panic!("expected options");
        };
        assert_eq!(options.bind, "localhost:0");
        assert_eq!(options.allowed_origins, ["https://a.example", "https://b.example"]);
        assert_eq!(options.keep_alive_interval, Some(Duration::from_millis(500)));
        assert_eq!(options.keep_alive_timeout, Some(Duration::from_secs(2)));
        assert_eq!(options.max_message_size, Some(1024));
        assert_eq!(options.protocols, ["chat"]);
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
        ] {
            let Err(e) = parse(args) else { panic!("{args:?} should be refused") };
            assert!(e.contains(named), "{e}");
        }
    }

    #[test]
    fn invalid_combinations_come_back_from_build() {
        let Ok(Command::Run(options)) = parse(&["--keep-alive-interval", "0", "--keep-alive-timeout", "1"])
        else {
            panic!("expected options");
        };
        assert_eq!(layer(&options).unwrap_err().option(), "keep_alive_timeout");
    }
}
