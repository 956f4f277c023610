//! permessage-deflate offers (built from the input by `tower_websockets_fuzz::deflate`'s
//! grammar, over one to three header lines) through `WebSocketLayer` with compression on and
//! the extractor. The `Sec-WebSocket-Extensions` answer must be exactly the reference's: the
//! first acceptable offer's answer, or none.
#![no_main]

use std::convert::Infallible;

use http::{Request, Response};
use libfuzzer_sys::fuzz_target;
use tower::{Layer, ServiceExt, service_fn};
use tower_websockets::{Compression, WebSocketLayer, WebSocketUpgrade, handshake::HandshakeBody};
use tower_websockets_fuzz::{deflate, runtime};

fuzz_target!(|input: &[u8]| {
    let (lines, config) = deflate::generate(input);
    let expected = deflate::expected_answer(&lines, config);

    let mut compression = Compression::enabled()
        .server_no_context_takeover(config.server_no_context_takeover)
        .server_max_window_bits(config.server_max_window_bits);
    compression = compression.client_max_window_bits(config.client_max_window_bits);
    let layer = WebSocketLayer::builder().compression(compression).build().expect("valid options");

    let mut request = Request::get("/ws")
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    for line in &lines {
        request = request.header("sec-websocket-extensions", deflate::render(line));
    }
    let mut request = request.body(()).expect("a valid request");
    request.extensions_mut().insert(hyper::upgrade::on(Request::new(())));

    let handler = service_fn(|mut req: Request<()>| async move {
        let upgrade = WebSocketUpgrade::from_request(&mut req).expect("a valid handshake");
        Ok::<Response<HandshakeBody>, Infallible>(upgrade.on_upgrade(|_socket| async {}))
    });
    let response = runtime().block_on(layer.layer(handler).oneshot(request)).expect("infallible");
    assert_eq!(response.status(), 101);
    let answer = response.headers().get("sec-websocket-extensions").map(|v| v.to_str().expect("ASCII").to_owned());
    assert_eq!(answer, expected, "offers {:?}", lines.iter().map(|l| deflate::render(l)).collect::<Vec<_>>());
});
