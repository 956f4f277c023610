//! gRPC and WebSockets on one port: tonic's health service and a WebSocket echo, in one axum
//! router behind `WebSocketLayer`.
//!
//! ```text
//! cargo run --example tonic --features axum
//! cargo run --example tonic --features axum -- --bind 127.0.0.1:0
//! ```
//!
//! then, on the port it prints:
//!
//! ```text
//! grpc-health-probe -addr 127.0.0.1:5001    # gRPC (h2c): status: SERVING
//! websocat ws://127.0.0.1:5001/ws           # WebSocket over HTTP/1.1: echoes each line
//! ```
//!
//! tonic's own `transport::Server` serves neither HTTP/1.1 upgrades nor HTTP/2 extended CONNECT
//! (RFC 8441), so it cannot carry WebSockets. The shape that works, and that this example keeps
//! in [`app`] and [`serve`] (`tests/tonic.rs` runs both):
//!
//! 1. the tonic services become an axum router (`tonic::service::Routes::into_axum_router`);
//! 2. the WebSocket route joins them, with `any`: over HTTP/2 a WebSocket is a CONNECT, not a GET;
//! 3. `WebSocketLayer` goes over the whole router (gRPC calls pass through it untouched);
//! 4. a server that enables upgrades and extended CONNECT serves it: hyper-util's auto builder
//!    with `serve_connection_with_upgrades` and `http2().enable_connect_protocol()`, as here, or
//!    `axum::serve`.
//!
//! See docs/tonic.md.

use std::{process::ExitCode, time::Duration};

use axum::{
    Router,
    extract::Request,
    response::{IntoResponse, Response},
    routing::any,
};
use http::{StatusCode, header::CONTENT_TYPE};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tonic_health::{
    pb::health_server::HealthServer,
    server::{HealthReporter, HealthService},
};
use tower_websockets::{Message, WebSocket, WebSocketLayer, WebSocketUpgrade};

const USAGE: &str = "\
gRPC (tonic's health service) and a WebSocket echo (/ws) on one port.

Usage: tonic [OPTIONS]

Options:
  --bind ADDR   Address to listen on [default: 127.0.0.1:5001]
                (port 0 picks a free port)
  -h, --help    Print this help";

const DEFAULT_BIND: &str = "127.0.0.1:5001";

/// One router for both: the gRPC services that `health` reports on, and a WebSocket echo at
/// `/ws`, all behind `layer`.
pub(crate) fn app(health: &HealthReporter, layer: WebSocketLayer) -> Router {
    // 1. tonic's services as an axum router. Add more with `Routes::add_service`.
    let grpc =
        tonic::service::Routes::new(HealthServer::new(HealthService::from_health_reporter(health.clone())));
    grpc.into_axum_router()
        // 2. `any`, not `get`: an HTTP/2 WebSocket (RFC 8441) arrives as a CONNECT.
        .route("/ws", any(ws))
        .fallback(fallback)
        // 3. The layer sees every request; gRPC calls are not WebSocket requests and go through.
        .layer(layer)
}

/// Unknown paths. tonic's own fallback answers them all with gRPC's `Unimplemented`, which is an
/// HTTP 200, and over HTTP/2 a WebSocket client takes a 200 for an accepted socket (that then
/// ends at once). Keep that answer for gRPC calls; anything else gets a 404.
async fn fallback(request: Request) -> Response {
    let is_grpc = request
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"));
    if is_grpc { tonic::Status::unimplemented("").into_http() } else { StatusCode::NOT_FOUND.into_response() }
}

/// Serves `app` on `listener`, forever, with what WebSockets need and tonic's own server does
/// not enable: HTTP/1.1 upgrades and HTTP/2 extended CONNECT.
/// The auto builder speaks HTTP/1.1 and HTTP/2 (h2c with prior knowledge, which is what tonic's
/// client sends) on the same port.
pub(crate) async fn serve(listener: TcpListener, app: Router) {
    let mut http = auto::Builder::new(TokioExecutor::new());
    // 4. RFC 8441: announce extended CONNECT in the HTTP/2 SETTINGS.
    http.http2().enable_connect_protocol();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // Such as too many open files: wait a moment rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // As tonic's server does: gRPC messages are small, and Nagle's algorithm would delay them.
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let http = http.clone();
        tokio::spawn(async move {
            // 4. `_with_upgrades`: HTTP/1.1 `Upgrade: websocket` hands the connection over.
            if let Err(e) = http.serve_connection_with_upgrades(TokioIo::new(stream), service).await {
                tracing::debug!(error = %e, "connection failed");
            }
        });
    }
}

async fn ws(upgrade: WebSocketUpgrade) -> impl IntoResponse {
    upgrade.on_upgrade(echo)
}

/// Echoes text and binary messages until the client closes.
async fn echo(mut socket: WebSocket) {
    while let Some(Ok(message)) = socket.recv().await {
        if matches!(message, Message::Text(_) | Message::Binary(_)) && socket.send(message).await.is_err() {
            break;
        }
    }
}

/// `--bind ADDR` (or `--bind=ADDR`), `None` for `--help`.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<String>, String> {
    let mut bind = DEFAULT_BIND.to_owned();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--bind" => bind = args.next().ok_or("option `--bind` needs a value")?,
            _ => match arg.strip_prefix("--bind=") {
                Some(value) => bind = value.to_owned(),
                None => return Err(format!("unknown option `{arg}`")),
            },
        }
    }
    Ok(Some(bind))
}

#[tokio::main]
async fn main() -> ExitCode {
    let bind = match parse_args(std::env::args().skip(1)) {
        Ok(Some(bind)) => bind,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n\nRun with --help for the options.");
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

    let listener = match TcpListener::bind(&bind).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("error: cannot listen on {bind}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on http://{addr}");

    // The overall status (service "") starts as SERVING; a real server would also report on
    // each of its services with `set_serving::<S>()`.
    let health = HealthReporter::new();
    let layer = WebSocketLayer::new();
    let shutdown = layer.shutdown_handle();
    tokio::select! {
        () = serve(listener, app(&health, layer)) => {}
        _ = tokio::signal::ctrl_c() => {
            // Tell health checkers first, then close the open sockets with 1001 (Going Away).
            health.set_service_status("", tonic_health::ServingStatus::NotServing).await;
            let report = shutdown.shutdown(Duration::from_secs(5)).await;
            tracing::info!(open = report.open_at_start, cut = report.cut, "shut down");
        }
    }
    ExitCode::SUCCESS
}

// Run by `cargo test --all-features --test tonic`, which includes this file.
#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<String>, String> {
        parse_args(args.iter().map(|arg| arg.to_string()))
    }

    #[test]
    fn parses_the_command_line() {
        assert_eq!(parse(&[]), Ok(Some(DEFAULT_BIND.to_owned())));
        assert_eq!(parse(&["--bind", "0.0.0.0:80"]), Ok(Some("0.0.0.0:80".to_owned())));
        assert_eq!(parse(&["--bind=[::1]:0"]), Ok(Some("[::1]:0".to_owned())));
        assert_eq!(parse(&["--bind", "x", "--help"]), Ok(None));
        assert!(parse(&["--bind"]).unwrap_err().contains("--bind"));
        assert!(parse(&["--port", "1"]).unwrap_err().contains("--port"));
    }
}
