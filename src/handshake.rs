//! Classifying requests: is this a WebSocket handshake, and is it a valid one?
//!
//! Everything here reads headers in place: no allocation, no copies.

use http::{
    HeaderMap, HeaderValue, Method, Request,
    header::{CONNECTION, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE},
};

use crate::rejection::WebSocketUpgradeRejection;

/// Does any `name` header line hold `token` in its comma-separated list, ignoring ASCII case
/// and surrounding white space?
pub(crate) fn header_has_token(
    headers: &HeaderMap,
    name: impl http::header::AsHeaderName,
    token: &str,
) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// Is this request an attempt at a WebSocket handshake, valid or not?
///
/// This is the layer's test, run on every request: one header look-up for ordinary traffic.
/// Attempts go through the origin policy; whether they are *valid* is the extractor's business,
/// so that a bad attempt gets a precise rejection.
pub(crate) fn is_upgrade_attempt(headers: &HeaderMap) -> bool {
    header_has_token(headers, UPGRADE, "websocket")
}

/// Is `key` a valid `Sec-WebSocket-Key`: base64 of exactly 16 bytes (22 characters, then `==`)?
pub(crate) fn is_valid_key(key: &HeaderValue) -> bool {
    let key = key.as_bytes();
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22].iter().all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// A checked HTTP/1.1 handshake: what the response needs.
#[derive(Debug, Clone)]
pub(crate) struct Handshake {
    /// The client's `Sec-WebSocket-Key`.
    pub(crate) key: HeaderValue,
}

/// Checks an HTTP/1.1 WebSocket handshake (RFC 6455 §4.2.1), in an order that gives the most
/// useful answer first.
pub(crate) fn check(method: &Method, headers: &HeaderMap) -> Result<Handshake, WebSocketUpgradeRejection> {
    if !is_upgrade_attempt(headers) {
        return Err(WebSocketUpgradeRejection::NotWebSocket);
    }
    if method != Method::GET {
        return Err(WebSocketUpgradeRejection::MethodNotGet);
    }
    if !header_has_token(headers, CONNECTION, "upgrade") {
        return Err(WebSocketUpgradeRejection::ConnectionHeaderMissingUpgrade);
    }
    if !header_has_token(headers, SEC_WEBSOCKET_VERSION, "13") {
        return Err(WebSocketUpgradeRejection::UnsupportedVersion);
    }
    let mut keys = headers.get_all(SEC_WEBSOCKET_KEY).iter();
    match (keys.next(), keys.next()) {
        (None, _) => Err(WebSocketUpgradeRejection::MissingKey),
        (Some(key), None) if is_valid_key(key) => Ok(Handshake { key: key.clone() }),
        _ => Err(WebSocketUpgradeRejection::InvalidKey),
    }
}

/// Is this a valid WebSocket handshake request?
///
/// The counterpart of ASP.NET Core's `HttpContext.WebSockets.IsWebSocketRequest`: it checks the
/// method, the `Upgrade`, `Connection` and `Sec-WebSocket-Version` headers and the key, reading
/// headers in place. It does not need [`WebSocketLayer`](crate::WebSocketLayer), and it does not
/// apply the origin policy.
///
/// ```
/// use tower_websockets::is_websocket_request;
///
/// let req = http::Request::get("/ws")
///     .header("upgrade", "websocket")
///     .header("connection", "Upgrade")
///     .header("sec-websocket-version", "13")
///     .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
///     .body(())
///     .unwrap();
/// assert!(is_websocket_request(&req));
///
/// let plain = http::Request::get("/ws").body(()).unwrap();
/// assert!(!is_websocket_request(&plain));
/// ```
pub fn is_websocket_request<B>(request: &Request<B>) -> bool {
    check(request.method(), request.headers()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn tokens_are_found_in_lists_across_lines_in_any_case() {
        let map = headers(&[("connection", "keep-alive"), ("connection", " Keep-Alive , UPGRADE ")]);
        assert!(header_has_token(&map, CONNECTION, "upgrade"));
        assert!(!header_has_token(&map, CONNECTION, "close"));
        assert!(!header_has_token(&headers(&[("connection", "upgrades")]), CONNECTION, "upgrade"));
    }

    #[test]
    fn keys_must_be_base64_of_sixteen_bytes() {
        assert!(is_valid_key(&HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ==")));
        for bad in [
            "MDEyMzQ1Njc4OWFiY2Rl",     // 15 bytes
            "MDEyMzQ1Njc4OWFiY2RlZmc=", // 17 bytes
            "dGhlIHNhbXBsZSBub25jZQ",   // no padding
            "dGhl*HNhbXBsZSBub25jZQ==", // not base64
            "",
        ] {
            assert!(!is_valid_key(&HeaderValue::from_static(bad)), "{bad}");
        }
    }

    #[test]
    fn two_keys_are_refused() {
        let map = headers(&[
            ("upgrade", "websocket"),
            ("connection", "upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        assert_eq!(check(&Method::GET, &map).unwrap_err(), WebSocketUpgradeRejection::InvalidKey);
    }
}
