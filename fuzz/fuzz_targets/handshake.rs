//! A request head from arbitrary bytes (see `tower_websockets_fuzz::handshake` for the format)
//! through `WebSocketLayer` with an origin list, and a service that calls
//! `WebSocketUpgrade::from_request`, `protocols([...])` and `on_upgrade`.
//!
//! Each input is tried twice:
//! - directly, as an `http::Request` (any version, HTTP/2's `:protocol` as `hyper::ext::Protocol`),
//!   through `tower::ServiceExt::oneshot`;
//! - for HTTP/1.x, as text over a real hyper connection (`tokio::io::duplex`), so that a valid
//!   handshake gets its 101 and a socket.
//!
//! Invariants, beyond "no panic":
//! - a request that is not an upgrade attempt reaches the inner service untouched, and its
//!   response is the inner service's;
//! - an attempt from an origin the policy refuses gets 403, never reaches the inner service,
//!   and never gets 101;
//! - every refusal by the layer or the extractor is a 4xx (5xx is for server faults such as a
//!   missing layer, which this stack cannot have);
//! - 101 only for a valid RFC 6455 handshake from an allowed origin, with the right
//!   `Sec-WebSocket-Accept`, and the subprotocol the server prefers among those offered; and a
//!   valid handshake from an allowed origin does get 101;
//! - the socket's handler ends once the client goes away.
#![no_main]

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version, header};
use http_body_util::Empty;
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use libfuzzer_sys::fuzz_target;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::mpsc,
};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_websockets::{WebSocketLayer, WebSocketUpgrade, handshake::HandshakeBody};
use tower_websockets_fuzz::{
    alloc,
    handshake::{ALLOWED_ORIGINS, Head, SERVER_PROTOCOLS, accept_key, has_token, parse},
    runtime,
};

/// What the inner service was given.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    protocol: Option<String>,
    extensions: usize,
}

impl Seen {
    fn of<B>(req: &Request<B>) -> Self {
        Self {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            headers: req.headers().clone(),
            protocol: req.extensions().get::<hyper::ext::Protocol>().map(|p| p.as_str().to_owned()),
            extensions: req.extensions().len(),
        }
    }

    fn same_head(&self, head: &Head) -> bool {
        self.method == head.method
            && self.uri == head.uri
            && self.version == head.version
            && self.headers == head.headers
            && self.protocol == head.protocol
    }
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// The handler: records the request, accepts it if it can (its sockets read until the end and
/// then report on `ended`), and marks its responses with `x-inner`.
fn inner<B: Send + 'static>(
    log: Log,
    ended: mpsc::UnboundedSender<()>,
) -> impl Service<Request<B>, Response = Response<HandshakeBody>, Error = Infallible, Future: Send> + Clone {
    service_fn(move |mut req: Request<B>| {
        log.lock().unwrap().push(Seen::of(&req));
        let ended = ended.clone();
        let mut response = match WebSocketUpgrade::from_request(&mut req) {
            Ok(upgrade) => upgrade.protocols(SERVER_PROTOCOLS).on_upgrade(move |mut socket| async move {
                while socket.recv().await.is_some() {}
                let _ = ended.send(());
            }),
            Err(rejection) => rejection.into_http_response(),
        };
        response.headers_mut().insert("x-inner", http::HeaderValue::from_static("1"));
        async move { Ok(response) }
    })
}

fn layer() -> WebSocketLayer {
    WebSocketLayer::builder()
        .allowed_origins(ALLOWED_ORIGINS)
        .keep_alive_interval(Duration::ZERO)
        .build()
        .expect("valid options")
}

fuzz_target!(|data: &[u8]| {
    let Some(head) = parse(data) else { return };
    let base = alloc::reset_peak();
    let rt = runtime();
    rt.block_on(direct(&head));
    if matches!(head.version, Version::HTTP_10 | Version::HTTP_11) {
        rt.block_on(over_hyper(&head));
    }
    drop(rt);
    let used = alloc::peak().saturating_sub(base);
    assert!(used < 4 << 20, "one handshake held {used} bytes");
});

/// The head as an `http::Request`, straight through the stack.
async fn direct(head: &Head) {
    let log = Log::default();
    let (ended, _) = mpsc::unbounded_channel();
    let service = layer().layer(inner(log.clone(), ended));
    let mut req = Request::new(Empty::<Bytes>::new());
    *req.method_mut() = head.method.clone();
    *req.uri_mut() = head.uri.clone();
    *req.version_mut() = head.version;
    *req.headers_mut() = head.headers.clone();
    if let Some(protocol) = &head.protocol {
        req.extensions_mut().insert(hyper::ext::Protocol::from(protocol.as_str()));
    }
    let before = Seen::of(&req);
    let response = service.oneshot(req).await.unwrap();
    let status = response.status();
    let seen = log.lock().unwrap().clone();
    let from_inner = response.headers().contains_key("x-inner");

    // No hyper connection here, so nothing can be upgraded: every answer is a refusal.
    assert!(status.is_client_error(), "{status} for {head:?}");
    if !head.is_attempt() {
        assert_eq!(seen, vec![before], "not an attempt, so untouched");
        assert!(from_inner, "not an attempt: the inner service answers");
    } else if !head.origin_allowed() {
        assert!(seen.is_empty(), "a refused origin reached the inner service: {head:?}");
        assert_eq!(status, StatusCode::FORBIDDEN, "{head:?}");
    } else {
        assert_eq!(seen.len(), 1, "an allowed attempt reaches the inner service: {head:?}");
        assert!(seen[0].same_head(head), "the layer changed the head: {:?}", seen[0]);
        assert!(from_inner);
    }
}

/// The head as HTTP/1.x text over a real hyper connection.
async fn over_hyper(head: &Head) {
    let log = Log::default();
    let (ended_tx, mut ended) = mpsc::unbounded_channel();
    let service = layer().layer(inner(log.clone(), ended_tx));
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let connection = tokio::spawn(
        hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(server), TowerToHyperService::new(service))
            .with_upgrades(),
    );
    if client.write_all(&head.to_http1()).await.is_err() {
        return;
    }
    let Ok(Some((status, headers))) =
        tokio::time::timeout(Duration::from_secs(30), read_head(&mut client)).await
    else {
        return; // hyper is waiting for more, or closed without an answer: hyper's business
    };
    let seen = log.lock().unwrap().clone();
    let from_inner = headers.contains_key("x-inner");
    // Whether hyper handed the service exactly the head we built.
    let as_built = seen.len() == 1 && seen[0].same_head(head);

    let attempt = head.is_attempt_over_http1();
    if attempt && !head.origin_allowed() {
        assert!(seen.is_empty(), "a refused origin reached the inner service: {head:?}");
        assert_ne!(status, StatusCode::SWITCHING_PROTOCOLS, "{head:?}");
    }
    if from_inner {
        assert!(
            status == StatusCode::SWITCHING_PROTOCOLS || status.is_client_error(),
            "{status} for {head:?}"
        );
    } else if status == StatusCode::FORBIDDEN {
        assert!(attempt && !head.origin_allowed(), "a 403 for {head:?}");
    }
    assert_ne!(status, StatusCode::SERVICE_UNAVAILABLE, "no limit, no shutdown here: {head:?}");

    let key = head.valid_http1_key();
    if status == StatusCode::SWITCHING_PROTOCOLS {
        let key = key.unwrap_or_else(|| panic!("101 for an invalid handshake: {head:?}"));
        assert!(head.origin_allowed(), "101 for a refused origin: {head:?}");
        let accept = headers.get(header::SEC_WEBSOCKET_ACCEPT).expect("Sec-WebSocket-Accept");
        assert_eq!(accept.as_bytes(), accept_key(key.as_bytes()).as_bytes());
        assert!(has_token(&headers, &header::UPGRADE, "websocket"));
        assert!(has_token(&headers, &header::CONNECTION, "upgrade"));
        let protocol = headers.get(header::SEC_WEBSOCKET_PROTOCOL).map(|p| p.to_str().unwrap());
        assert_eq!(protocol, head.expected_protocol(), "{head:?}");
        drop(client);
        let _ = tokio::time::timeout(Duration::from_secs(60), connection).await;
        let ended = tokio::time::timeout(Duration::from_secs(60), ended.recv()).await;
        assert!(matches!(ended, Ok(Some(()))), "the handler's recv did not end");
    } else if as_built && key.is_some() && head.origin_allowed() {
        panic!("{status} for a valid handshake from an allowed origin: {head:?}");
    } else {
        drop(client);
        let _ = tokio::time::timeout(Duration::from_secs(60), connection).await;
    }
}

/// Reads a response head; `None` when the connection ends first or it is not HTTP.
async fn read_head(client: &mut tokio::io::DuplexStream) -> Option<(StatusCode, HeaderMap)> {
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let n = client.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut lines = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut lines);
        if let httparse::Status::Complete(_) = response.parse(&buf).ok()? {
            let status = StatusCode::from_u16(response.code?).ok()?;
            let mut headers = HeaderMap::new();
            for line in response.headers.iter() {
                headers.append(
                    http::HeaderName::from_bytes(line.name.as_bytes()).ok()?,
                    http::HeaderValue::from_bytes(line.value).ok()?,
                );
            }
            return Some((status, headers));
        }
    }
}
