//! The handshake and origin matrix, through `tower::ServiceExt::oneshot` (no network), plus the
//! RFC 6455 sample handshake over a real hyper connection on an in-memory pipe.

mod common;

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use tower::{ServiceBuilder, ServiceExt};
use tower_websockets::{
    AllowedOrigins, WebSocketLayer, WebSocketUpgrade,
    handshake::{HandshakeBody, WebSocketUpgradeRejection},
    origin::ForwardedHeader,
};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn ws_request() -> http::request::Builder {
    Request::get("/ws")
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", KEY)
}

/// Runs `request` through `layer` in front of a handler that extracts `WebSocketUpgrade` and
/// answers with the rejection; returns the response and how often the handler ran.
async fn extract_through(layer: WebSocketLayer, request: Request<()>) -> (Response<Bytes>, usize) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let service = ServiceBuilder::new().layer(layer).service_fn(move |mut req: Request<()>| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            let response = match WebSocketUpgrade::from_request(&mut req) {
                Ok(_) => Response::new(HandshakeBody::from("accepted")),
                Err(rejection) => rejection.into_http_response(),
            };
            Ok::<_, Infallible>(response)
        }
    });
    let response = service.oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (Response::from_parts(parts, body), calls.load(Ordering::SeqCst))
}

async fn status_of(request: Request<()>) -> (StatusCode, String) {
    let (response, _) = extract_through(WebSocketLayer::new(), request).await;
    (response.status(), String::from_utf8(response.body().to_vec()).unwrap())
}

#[tokio::test]
async fn the_rfc_sample_key_gets_the_rfc_sample_accept() {
    let (service, _ends) = common::echo_service(WebSocketLayer::new(), Default::default());
    let head = common::raw_exchange(
        service,
        &format!(
            "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ),
    )
    .await;
    let lower = head.to_ascii_lowercase();
    assert!(head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{head}");
    assert!(head.contains("sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), "{head}");
    assert!(lower.contains("upgrade: websocket\r\n"), "{head}");
    assert!(lower.contains("connection: upgrade\r\n"), "{head}");
    assert!(!lower.contains("sec-websocket-protocol"), "no protocol was chosen: {head}");
}

#[tokio::test]
async fn keys_that_are_not_base64_of_sixteen_bytes_get_400() {
    for key in [
        "MDEyMzQ1Njc4OWFiY2Rl",
        "MDEyMzQ1Njc4OWFiY2RlZmc=",
        "not base64 at all!!!!!==",
        "dGhlIHNhbXBsZSBub25jZQ",
    ] {
        let request = Request::get("/ws")
            .header("upgrade", "websocket")
            .header("connection", "upgrade")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", key)
            .body(())
            .unwrap();
        let (status, body) = status_of(request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "key {key}");
        assert!(body.contains("Sec-WebSocket-Key"), "{body}");
    }
}

#[tokio::test]
async fn a_missing_key_gets_400() {
    let request = Request::get("/ws")
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap();
    let (status, body) = status_of(request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, "missing Sec-WebSocket-Key header");
}

#[tokio::test]
async fn version_8_gets_426_with_the_supported_version() {
    let request = Request::get("/ws")
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .header("sec-websocket-version", "8")
        .header("sec-websocket-key", KEY)
        .body(())
        .unwrap();
    let (response, _) = extract_through(WebSocketLayer::new(), request).await;
    assert_eq!(response.status(), StatusCode::UPGRADE_REQUIRED);
    assert_eq!(response.headers()["sec-websocket-version"], "13");
}

#[tokio::test]
async fn post_is_refused_with_405_never_101() {
    let request = ws_request().method(Method::POST).body(()).unwrap();
    let (response, _) = extract_through(WebSocketLayer::new(), request).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "GET");
}

#[tokio::test]
async fn connection_keep_alive_upgrade_is_accepted() {
    // `Connection: keep-alive, Upgrade` (what Firefox sends) passes every check; with no hyper
    // connection behind the request, the last check says it cannot be upgraded.
    let request = Request::get("/ws")
        .header("upgrade", "websocket")
        .header("connection", "keep-alive, Upgrade")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", KEY)
        .body(())
        .unwrap();
    let (status, _) = status_of(request).await;
    assert_eq!(status, WebSocketUpgradeRejection::ConnectionNotUpgradable.status());

    // And it upgrades for real over a hyper connection.
    let (service, _ends) = common::echo_service(WebSocketLayer::new(), Default::default());
    let head = common::raw_exchange(
        service,
        &format!(
            "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
}

#[tokio::test]
async fn connection_without_upgrade_gets_400() {
    let request = Request::get("/ws")
        .header("upgrade", "websocket")
        .header("connection", "keep-alive")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", KEY)
        .body(())
        .unwrap();
    let (status, body) = status_of(request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("Connection"), "{body}");
}

#[tokio::test]
async fn a_plain_request_to_the_extractor_gets_400() {
    let (status, body) = status_of(Request::get("/ws").body(()).unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, "not a WebSocket request");
}

#[tokio::test]
async fn http_1_0_cannot_be_upgraded() {
    let request = ws_request().version(Version::HTTP_10).body(()).unwrap();
    let (status, body) = status_of(request).await;
    assert_eq!(status, StatusCode::UPGRADE_REQUIRED);
    assert!(body.contains("cannot be upgraded"), "{body}");
}

#[tokio::test]
async fn without_the_layer_the_extractor_answers_500_naming_it() {
    let service = tower::service_fn(|mut req: Request<()>| async move {
        let response = match WebSocketUpgrade::from_request(&mut req) {
            Ok(_) => Response::new(HandshakeBody::empty()),
            Err(rejection) => rejection.into_http_response(),
        };
        Ok::<_, Infallible>(response)
    });
    let response = service.oneshot(ws_request().body(()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(std::str::from_utf8(&body).unwrap().contains("WebSocketLayer"));
}

// ---- The origin matrix ----

/// Runs a WebSocket request with `origins` through a layer with `allowed`; returns the status
/// and whether the inner service was called.
async fn origin_decision(allowed: Option<AllowedOrigins>, origins: &[&str]) -> (StatusCode, bool) {
    let mut builder = WebSocketLayer::builder();
    if let Some(allowed) = allowed {
        builder = builder.allowed_origins(allowed);
    }
    let mut request = ws_request().body(()).unwrap();
    for origin in origins {
        request.headers_mut().append("origin", HeaderValue::from_str(origin).unwrap());
    }
    let (response, calls) = extract_through(builder.build().unwrap(), request).await;
    (response.status(), calls == 1)
}

const ALLOWED_BY_EXTRACTOR: StatusCode = StatusCode::UPGRADE_REQUIRED; // reached the last check

#[tokio::test]
async fn any_allows_any_origin() {
    let allowed = AllowedOrigins::any();
    assert_eq!(
        origin_decision(Some(allowed), &["https://anything.example"]).await,
        (ALLOWED_BY_EXTRACTOR, true)
    );
}

/// A request for `/ws` on `host`, from a page of `origin`, through a layer with the default
/// origin policy (same origin) and `forwarded`: the response and whether the handler ran.
async fn same_origin_decision(
    origin: &str,
    headers: &[(&'static str, &str)],
    forwarded: Option<ForwardedHeader>,
) -> (Response<Bytes>, bool) {
    let mut builder = WebSocketLayer::builder();
    if let Some(header) = forwarded {
        builder = builder.forwarded_host(header);
    }
    let mut request = ws_request().header("origin", origin).body(()).unwrap();
    for (name, value) in headers {
        request.headers_mut().append(*name, HeaderValue::from_str(value).unwrap());
    }
    let (response, calls) = extract_through(builder.build().unwrap(), request).await;
    (response, calls == 1)
}

#[tokio::test]
async fn by_default_a_cross_origin_handshake_gets_403_saying_why() {
    let (response, called) = same_origin_decision("https://a.example", &[("host", "b.example")], None).await;
    assert_eq!((response.status(), called), (StatusCode::FORBIDDEN, false));
    assert_eq!(response.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(
        response.body(),
        "origin https://a.example does not match host b.example; see allowed_origins"
    );
}

#[tokio::test]
async fn by_default_a_same_origin_handshake_and_one_without_origin_are_let_through() {
    for (origin, host) in [
        ("https://b.example", "b.example"),
        ("http://b.example", "b.example"),
        ("http://127.0.0.1:5000", "127.0.0.1:5000"),
        ("https://B.example:443", "b.example"),
    ] {
        let (response, called) = same_origin_decision(origin, &[("host", host)], None).await;
        assert_eq!((response.status(), called), (ALLOWED_BY_EXTRACTOR, true), "{origin} on {host}");
    }
    let request = ws_request().header("host", "b.example").body(()).unwrap();
    let (response, calls) = extract_through(WebSocketLayer::new(), request).await;
    assert_eq!((response.status(), calls), (ALLOWED_BY_EXTRACTOR, 1), "no Origin: not a browser");
}

#[tokio::test]
async fn by_default_ports_must_match() {
    for (origin, host) in
        [("http://localhost:3000", "localhost:3001"), ("https://b.example:8443", "b.example")]
    {
        let (response, called) = same_origin_decision(origin, &[("host", host)], None).await;
        assert_eq!((response.status(), called), (StatusCode::FORBIDDEN, false), "{origin} on {host}");
    }
}

#[tokio::test]
async fn a_forwarded_host_is_trusted_only_when_configured() {
    let behind_proxy = [("host", "127.0.0.1:8080"), ("x-forwarded-host", "public.example")];
    let (response, _) = same_origin_decision("https://public.example", &behind_proxy, None).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "not trusted by default");
    assert_eq!(
        response.body(),
        "origin https://public.example does not match host 127.0.0.1:8080; see allowed_origins"
    );
    let trusted = Some(ForwardedHeader::XForwardedHost);
    let (response, called) = same_origin_decision("https://public.example", &behind_proxy, trusted).await;
    assert_eq!((response.status(), called), (ALLOWED_BY_EXTRACTOR, true));
    // A forged header from a cross-site page names its own host: still refused.
    let forged = [("host", "127.0.0.1:8080"), ("x-forwarded-host", "public.example")];
    let (response, _) = same_origin_decision("https://evil.example", &forged, trusted).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let forwarded =
        [("host", "127.0.0.1:8080"), ("forwarded", "for=192.0.2.1;host=public.example;proto=https")];
    let (response, called) =
        same_origin_decision("https://public.example", &forwarded, Some(ForwardedHeader::Forwarded)).await;
    assert_eq!((response.status(), called), (ALLOWED_BY_EXTRACTOR, true));
}

#[tokio::test]
async fn over_http2_the_authority_is_the_uri_s() {
    let request = |origin: &'static str| {
        Request::connect("https://chat.example/ws")
            .version(Version::HTTP_2)
            .extension(hyper::ext::Protocol::from_static("websocket"))
            .header("sec-websocket-version", "13")
            .header("origin", origin)
            .body(())
            .unwrap()
    };
    let (response, calls) = extract_through(WebSocketLayer::new(), request("https://chat.example")).await;
    assert_eq!(response.status(), StatusCode::UPGRADE_REQUIRED, "reached the extractor (no OnUpgrade)");
    assert_eq!(calls, 1);
    let (response, calls) = extract_through(WebSocketLayer::new(), request("https://evil.example")).await;
    assert_eq!((response.status(), calls), (StatusCode::FORBIDDEN, 0));
    assert_eq!(
        response.body(),
        "origin https://evil.example does not match host chat.example; see allowed_origins"
    );
}

#[tokio::test]
async fn a_list_with_a_star_allows_any_origin() {
    let allowed = AllowedOrigins::list(["https://a.example", "*"]);
    assert_eq!(origin_decision(Some(allowed), &["https://b.example"]).await, (ALLOWED_BY_EXTRACTOR, true));
}

#[tokio::test]
async fn a_listed_origin_in_other_letter_case_is_allowed() {
    let allowed = AllowedOrigins::list(["https://Client.Example.com"]);
    assert_eq!(
        origin_decision(Some(allowed), &["HTTPS://client.example.COM"]).await,
        (ALLOWED_BY_EXTRACTOR, true)
    );
}

#[tokio::test]
async fn a_missing_origin_is_allowed_even_with_a_list() {
    let allowed = AllowedOrigins::list(["https://client.example.com"]);
    assert_eq!(origin_decision(Some(allowed), &[]).await, (ALLOWED_BY_EXTRACTOR, true));
}

#[tokio::test]
async fn a_mismatched_origin_gets_403_and_the_inner_service_is_not_called() {
    for origin in
        ["https://evil.example", "https://client.example.com.evil.example", "http://client.example.com"]
    {
        let allowed = AllowedOrigins::list(["https://client.example.com"]);
        let mut request = ws_request().body(()).unwrap();
        request.headers_mut().insert("origin", HeaderValue::from_static(origin));
        let (response, calls) =
            extract_through(WebSocketLayer::builder().allowed_origins(allowed).build().unwrap(), request)
                .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{origin}");
        assert_eq!(calls, 0, "{origin}");
        assert_eq!(response.headers()["content-type"], "text/plain; charset=utf-8");
        assert_eq!(response.body(), "origin not allowed");
    }
}

#[tokio::test]
async fn the_null_origin_is_refused_with_a_list() {
    let allowed = AllowedOrigins::list(["https://client.example.com"]);
    assert_eq!(origin_decision(Some(allowed), &["null"]).await, (StatusCode::FORBIDDEN, false));
}

#[tokio::test]
async fn two_origin_headers_are_refused_with_a_list() {
    let allowed = AllowedOrigins::list(["https://client.example.com"]);
    let decision =
        origin_decision(Some(allowed), &["https://client.example.com", "https://client.example.com"]).await;
    assert_eq!(decision, (StatusCode::FORBIDDEN, false));
}

#[tokio::test]
async fn a_predicate_decides_with_the_request() {
    let allowed = || {
        AllowedOrigins::predicate(|origin, parts| {
            origin.as_bytes().ends_with(b".trusted.example") && parts.uri.path() == "/ws"
        })
    };
    assert_eq!(
        origin_decision(Some(allowed()), &["https://app.trusted.example"]).await,
        (ALLOWED_BY_EXTRACTOR, true)
    );
    assert_eq!(
        origin_decision(Some(allowed()), &["https://evil.example"]).await,
        (StatusCode::FORBIDDEN, false)
    );
}

#[tokio::test]
async fn a_plain_get_with_a_foreign_origin_reaches_the_inner_service_untouched() {
    let layer = WebSocketLayer::builder().allowed_origins(["https://client.example.com"]).build().unwrap();
    let service = ServiceBuilder::new().layer(layer).service_fn(|req: Request<()>| async move {
        // The request arrives as sent: same headers, no extensions added.
        assert_eq!(req.headers().len(), 2);
        assert_eq!(req.headers()["origin"], "https://evil.example");
        assert!(req.extensions().is_empty());
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"inner"))))
    });
    let request = Request::get("/page")
        .header("origin", "https://evil.example")
        .header("accept", "text/html")
        .body(())
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), "inner");
}

#[tokio::test]
async fn a_malformed_upgrade_from_a_foreign_origin_is_refused_by_origin_first() {
    // Origin policy applies to every upgrade attempt, valid or not.
    let layer = WebSocketLayer::builder().allowed_origins(["https://client.example.com"]).build().unwrap();
    let request = Request::post("/ws")
        .header("upgrade", "websocket")
        .header("origin", "https://evil.example")
        .body(())
        .unwrap();
    let (response, calls) = extract_through(layer, request).await;
    assert_eq!((response.status(), calls), (StatusCode::FORBIDDEN, 0));
}
