//! Authentication during the handshake (issue 21, part 2): `WebSocketLayerBuilder::authenticate`,
//! the token helpers, the identity on the request and the socket, and no token in any log.
#![cfg(feature = "test-util")]

mod common;

use std::{
    convert::Infallible,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
};

use common::Captured;
use http::{Request, StatusCode, request::Parts};
use hyper::body::Incoming;
use tower::ServiceBuilder;
use tower_websockets::{
    WebSocketLayer, WebSocketLayerBuilder, WebSocketUpgrade,
    auth::{AuthRejection, Token},
    test::TestClient,
};

const SECRET: &str = "s3cr3t-T0KEN-value";

#[derive(Clone, Debug, PartialEq)]
struct User {
    name: &'static str,
}

/// A layer builder that authenticates with [`SECRET`] from the protocol list, the
/// `access_token` query parameter or the `session` cookie, and counts its calls. `banned` is a
/// token that is known and refused with 403.
fn authenticating(calls: Arc<AtomicUsize>) -> WebSocketLayerBuilder {
    WebSocketLayer::builder()
        .authenticate(move |parts: &Parts| {
            calls.fetch_add(1, Ordering::SeqCst);
            let token = Token::from_protocol(parts)
                .or_else(|| Token::from_query(parts, "access_token"))
                .or_else(|| Token::from_cookie(parts, "session"))
                .map(str::to_owned);
            async move {
                // An asynchronous check, as a database or token service would be.
                tokio::task::yield_now().await;
                match token.as_deref() {
                    None => Err(AuthRejection::unauthorized("no token")),
                    Some(SECRET) => Ok(User { name: "ada" }),
                    Some("banned") => Err(AuthRejection::forbidden("account suspended")),
                    Some(_) => Err(AuthRejection::unauthorized("invalid token")),
                }
            }
        })
        .token_query_param("access_token")
}

/// What the handler saw of an accepted request.
#[derive(Debug, Default, Clone)]
struct Seen {
    uri: String,
    from_extensions: Option<User>,
    from_upgrade: Option<User>,
    from_socket: Option<User>,
    requested: Vec<String>,
    debug: String,
}

/// A client for `layer` in front of a handler that records what it sees, chooses `chat.v1`
/// when offered, and sends the identity's name over the socket.
fn client(layer: WebSocketLayer) -> (TestClient, Arc<Mutex<Vec<Seen>>>, Arc<AtomicUsize>) {
    // Every test's events go to the capture that the last test checks for tokens.
    let _ = captured();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler_calls = Arc::new(AtomicUsize::new(0));
    let (record, count) = (seen.clone(), handler_calls.clone());
    let service = ServiceBuilder::new().layer(layer).service_fn(move |mut req: Request<Incoming>| {
        count.fetch_add(1, Ordering::SeqCst);
        let record = record.clone();
        async move {
            let from_extensions = req.extensions().get::<User>().cloned();
            let uri = req.uri().to_string();
            let Ok(upgrade) = WebSocketUpgrade::from_request(&mut req) else {
                return Ok::<_, Infallible>(http::Response::new(
                    tower_websockets::handshake::HandshakeBody::from("plain"),
                ));
            };
            let mut seen = Seen {
                uri,
                from_extensions,
                from_upgrade: upgrade.identity::<User>().cloned(),
                requested: upgrade.requested_protocols().map(str::to_owned).collect(),
                debug: format!("{upgrade:?}"),
                ..Seen::default()
            };
            let record2 = record.clone();
            Ok(upgrade.protocols(["chat.v1"]).on_upgrade(move |mut socket| async move {
                seen.from_socket = socket.identity::<User>().cloned();
                let name = seen.from_socket.as_ref().map_or("nobody", |user| user.name);
                record2.lock().unwrap().push(seen);
                let _ = socket.send(name).await;
                while let Some(Ok(_)) = socket.recv().await {}
            }))
        }
    });
    (TestClient::new(service), seen, handler_calls)
}

#[tokio::test]
async fn a_token_in_the_protocol_list_is_accepted_and_never_echoed() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = authenticating(calls.clone()).build().unwrap();
    let (client, seen, _) = client(layer.clone());

    let mut socket = client.connect("/ws").protocols(["bearer", SECRET]).await.unwrap();
    assert_eq!(socket.protocol(), Some("bearer"), "the answer names the marker only");
    assert_eq!(socket.recv_text().await.unwrap(), "ada");
    let seen = seen.lock().unwrap()[0].clone();
    assert_eq!(seen.from_extensions, Some(User { name: "ada" }));
    assert_eq!(seen.from_upgrade, Some(User { name: "ada" }));
    assert_eq!(seen.from_socket, Some(User { name: "ada" }));
    assert!(
        seen.requested.is_empty(),
        "neither the marker nor the token is a subprotocol: {:?}",
        seen.requested
    );
    assert!(!seen.debug.contains(SECRET), "{}", seen.debug);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(layer.stats().accepted, 1);
}

#[tokio::test]
async fn an_application_protocol_offered_beside_the_token_is_chosen() {
    let layer = authenticating(Arc::default()).build().unwrap();
    let (client, seen, _) = client(layer);
    let mut socket = client.connect("/ws").protocols(["chat.v1", "bearer", SECRET]).await.unwrap();
    assert_eq!(socket.protocol(), Some("chat.v1"));
    assert_eq!(socket.recv_text().await.unwrap(), "ada");
    assert_eq!(seen.lock().unwrap()[0].requested, ["chat.v1"]);
}

#[tokio::test]
async fn a_token_in_the_query_is_accepted_and_removed_from_the_uri() {
    let layer = authenticating(Arc::default()).build().unwrap();
    let (client, seen, _) = client(layer);
    let mut socket = client.connect(format!("/ws?room=7&access_token={SECRET}&x=1")).await.unwrap();
    assert_eq!(socket.recv_text().await.unwrap(), "ada");
    let seen = seen.lock().unwrap()[0].clone();
    assert_eq!(seen.uri, "/ws?room=7&x=1");
    assert_eq!(seen.from_socket, Some(User { name: "ada" }));
}

#[tokio::test]
async fn a_token_in_a_cookie_is_accepted() {
    let layer = authenticating(Arc::default()).build().unwrap();
    let (client, _, _) = client(layer);
    let cookie = format!("theme=dark; session={SECRET}");
    let mut socket = client.connect("/ws").header("cookie", &cookie).await.unwrap();
    assert_eq!(socket.recv_text().await.unwrap(), "ada");
}

#[tokio::test]
async fn refusals_are_401_or_403_with_the_reason_and_the_handler_never_runs() {
    let layer = authenticating(Arc::default()).build().unwrap();
    let (client, _, handler_calls) = client(layer.clone());
    let cases: [(&str, Vec<&str>, StatusCode, &str); 3] = [
        ("/ws", vec![], StatusCode::UNAUTHORIZED, "no token"),
        ("/ws", vec!["bearer", "wrong"], StatusCode::UNAUTHORIZED, "invalid token"),
        ("/ws?access_token=banned", vec![], StatusCode::FORBIDDEN, "account suspended"),
    ];
    for (path, protocols, status, reason) in cases {
        let error = client.connect(path).protocols(protocols).await.unwrap_err();
        let refused = error.refused().expect("an HTTP refusal");
        assert_eq!((refused.status(), refused.text()), (status, reason.to_owned()), "{path}");
        let challenge = refused.headers().get("www-authenticate").map(|v| v.to_str().unwrap());
        assert_eq!(challenge, (status == StatusCode::UNAUTHORIZED).then_some("Bearer"), "{path}");
    }
    assert_eq!(handler_calls.load(Ordering::SeqCst), 0);
    let stats = layer.stats();
    assert_eq!((stats.refused_by_auth, stats.accepted, stats.open), (3, 0, 0));
}

#[tokio::test]
async fn refused_handshakes_take_no_connection_slot() {
    let layer = authenticating(Arc::default()).max_connections(1).build().unwrap();
    let (client, _, _) = client(layer.clone());
    for _ in 0..5 {
        let error = client.connect("/ws").protocols(["bearer", "wrong"]).await.unwrap_err();
        assert_eq!(error.refused().unwrap().status(), StatusCode::UNAUTHORIZED, "not 503: no slot was taken");
    }
    let mut socket = client.connect("/ws").protocols(["bearer", SECRET]).await.unwrap();
    assert_eq!(socket.recv_text().await.unwrap(), "ada");
    // At the limit, an authenticated handshake gets 503; an unauthenticated one still 401.
    let full = client.connect("/ws").protocols(["bearer", SECRET]).await.unwrap_err();
    assert_eq!(full.refused().unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
    let unauthenticated = client.connect("/ws").await.unwrap_err();
    assert_eq!(unauthenticated.refused().unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(layer.stats().refused_by_limit, 1);
}

#[tokio::test]
async fn ordinary_requests_and_refused_origins_never_reach_the_function() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = authenticating(calls.clone()).build().unwrap();
    let (client, _, handler_calls) = client(layer);
    let response = client.get("/page?access_token=kept").await.unwrap();
    assert_eq!(response.text(), "plain");
    assert_eq!(handler_calls.load(Ordering::SeqCst), 1);
    let refused = client.connect("/ws").origin("https://evil.example").await.unwrap_err();
    assert_eq!(refused.refused().unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the origin check runs first");
}

#[tokio::test]
async fn without_authentication_a_bearer_offer_is_an_ordinary_protocol_list() {
    let layer = WebSocketLayer::new();
    let (client, seen, _) = client(layer);
    let mut socket = client.connect("/ws").protocols(["bearer", "x"]).await.unwrap();
    assert_eq!(socket.protocol(), None);
    assert_eq!(socket.recv_text().await.unwrap(), "nobody");
    let seen = seen.lock().unwrap()[0].clone();
    assert_eq!(seen.requested, ["bearer", "x"]);
    assert_eq!(seen.from_upgrade, None);
}

/// Everything the crate logs in this test binary, every test included: a global subscriber
/// (installed by the first test that asks), so that no test's events escape it. (A scoped
/// subscriber misses events whose callsite interest another test's thread cached first.)
fn captured() -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        // Every level, with span fields and span opening and closing.
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("tower_websockets=trace"))
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        captured
    })
}

#[tokio::test]
async fn no_token_appears_in_any_log_line_or_span() {
    let captured = captured();
    let layer = authenticating(Arc::default()).max_connections(1).build().unwrap();
    let (client, _, _) = client(layer);
    // Refused: a wrong token that looks like the secret, in each place.
    let wrong = format!("{SECRET}-wrong");
    for connect in [
        client.connect("/ws").protocols(["bearer", wrong.as_str()]),
        client.connect(format!("/ws?access_token={wrong}")),
        client.connect("/ws").header("cookie", &format!("session={wrong}")),
    ] {
        let error = connect.await.unwrap_err();
        assert!(!error.to_string().contains(SECRET), "{error}");
    }
    // Accepted, by protocol and by query, and closed (open and close events in the span).
    let mut socket = client.connect("/ws").protocols(["bearer", SECRET]).await.unwrap();
    assert_eq!(socket.recv_text().await.unwrap(), "ada");
    socket.close().await.unwrap();
    let mut socket = client.connect(format!("/ws?access_token={SECRET}")).await.unwrap();
    assert_eq!(socket.recv_text().await.unwrap(), "ada");
    // At the limit now: a refusal that is logged with the request's path.
    let full = client.connect(format!("/ws?access_token={SECRET}")).await.unwrap_err();
    assert_eq!(full.refused().unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
    socket.close().await.unwrap();

    let text = captured.text();
    assert!(text.contains("refused WebSocket request: authentication"), "{text}");
    assert!(text.contains("WebSocket opened"), "{text}");
    assert!(text.contains("connection limit reached"), "{text}");
    assert!(!text.contains(SECRET), "a token in the logs:\n{text}");
}
