//! The `handshake` target's input, and what the RFCs and the crate's documentation say should
//! become of it.
//!
//! The input is a request head as text, so that seeds are readable and mutations stay near
//! real requests:
//!
//! ```text
//! GET /ws HTTP/1.1
//! Upgrade: websocket
//! :protocol: websocket        (HTTP/2's extended CONNECT pseudo-header, as hyper::ext::Protocol)
//! ```
//!
//! Lines end with `\n` or `\r\n`; a line that does not make a header is skipped, so that every
//! input builds some request.

use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, Version, header};
use sha1::{Digest, Sha1};

/// The origins the target's layer allows.
pub const ALLOWED_ORIGINS: [&str; 2] = ["https://example.com", "http://localhost:3000"];
/// The subprotocols the target's handler speaks, in order of preference.
pub const SERVER_PROTOCOLS: [&str; 2] = ["chat.v2", "chat.v1"];

/// A parsed request head.
#[derive(Debug, Clone)]
pub struct Head {
    /// The method.
    pub method: Method,
    /// The request target.
    pub uri: Uri,
    /// The version.
    pub version: Version,
    /// The header lines, in order.
    pub headers: HeaderMap,
    /// The `:protocol` pseudo-header of an extended CONNECT.
    pub protocol: Option<String>,
}

/// Parses the input; `None` when its first line is not `METHOD TARGET VERSION`.
pub fn parse(data: &[u8]) -> Option<Head> {
    let mut lines = data.split(|&b| b == b'\n').map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    let mut first = lines.next()?.split(|&b| b == b' ');
    let method = Method::from_bytes(first.next()?).ok()?;
    let uri = Uri::try_from(first.next()?).ok()?;
    let version = match first.next()? {
        b"HTTP/1.1" => Version::HTTP_11,
        b"HTTP/1.0" => Version::HTTP_10,
        b"HTTP/2" | b"HTTP/2.0" => Version::HTTP_2,
        b"HTTP/0.9" => Version::HTTP_09,
        _ => return None,
    };
    if first.next().is_some() {
        return None;
    }
    let mut headers = HeaderMap::new();
    let mut protocol = None;
    for line in lines {
        if let Some(value) = line.strip_prefix(b":protocol:") {
            protocol = std::str::from_utf8(value.trim_ascii()).ok().map(str::to_owned);
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(&line[..colon]), HeaderValue::from_bytes(line[colon + 1..].trim_ascii()))
        else {
            continue;
        };
        headers.append(name, value);
    }
    Some(Head { method, uri, version, headers, protocol })
}

/// Does some `name` line hold `token` in its comma-separated list (any case)?
pub fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

impl Head {
    /// An upgrade attempt, valid or not (docs/security.md): `Upgrade: websocket`, or an extended
    /// CONNECT for `websocket`. The layer applies the origin policy to these.
    pub fn is_attempt(&self) -> bool {
        (self.method == Method::CONNECT
            && self.protocol.as_deref().is_some_and(|p| p.eq_ignore_ascii_case("websocket")))
            || has_token(&self.headers, &header::UPGRADE, "websocket")
    }

    /// An upgrade attempt as the head reads once written as HTTP/1.x text: `:protocol` is
    /// HTTP/2's (RFC 8441) and does not survive, so only `Upgrade: websocket` counts.
    pub fn is_attempt_over_http1(&self) -> bool {
        has_token(&self.headers, &header::UPGRADE, "websocket")
    }

    /// Would the origin policy (an exact list: [`ALLOWED_ORIGINS`]) let this request in? No
    /// `Origin` is allowed; two are refused; one must be `scheme://host[:port]` and, compared
    /// without regard to case and with the scheme's default port and one trailing `/` dropped,
    /// equal a listed origin.
    pub fn origin_allowed(&self) -> bool {
        let mut origins = self.headers.get_all(header::ORIGIN).iter();
        match (origins.next(), origins.next()) {
            (None, _) => true,
            (Some(_), Some(_)) => false,
            (Some(origin), None) => {
                let Some(origin) = canonical_origin(origin.as_bytes()) else { return false };
                ALLOWED_ORIGINS.contains(&origin.as_str())
            }
        }
    }

    /// A valid RFC 6455 §4.2.1 opening handshake over HTTP/1.1, with its key.
    pub fn valid_http1_key(&self) -> Option<&HeaderValue> {
        if self.version != Version::HTTP_11
            || self.method != Method::GET
            || !has_token(&self.headers, &header::UPGRADE, "websocket")
            || !has_token(&self.headers, &header::CONNECTION, "upgrade")
            || !has_token(&self.headers, &header::SEC_WEBSOCKET_VERSION, "13")
        {
            return None;
        }
        let mut keys = self.headers.get_all(header::SEC_WEBSOCKET_KEY).iter();
        let (Some(key), None) = (keys.next(), keys.next()) else { return None };
        // Lenient about the unused low bits of the last character, as most decoders are.
        let lenient = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
        );
        let decoded = lenient.decode(key.as_bytes()).ok()?;
        (decoded.len() == 16 && key.len() == 24).then_some(key)
    }

    /// The subprotocols offered, in order: every visible-ASCII `Sec-WebSocket-Protocol` line,
    /// split at commas and trimmed.
    pub fn offered_protocols(&self) -> Vec<&str> {
        self.headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect()
    }

    /// The subprotocol the server must choose: its first preference the client offered.
    pub fn expected_protocol(&self) -> Option<&'static str> {
        let offered = self.offered_protocols();
        SERVER_PROTOCOLS.into_iter().find(|p| offered.contains(p))
    }

    /// The head as HTTP/1.x text.
    pub fn to_http1(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let version = if self.version == Version::HTTP_10 { "HTTP/1.0" } else { "HTTP/1.1" };
        out.extend_from_slice(format!("{} {} {version}\r\n", self.method, self.uri).as_bytes());
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// `scheme://host[:port]`, lower case, without the scheme's default port or one trailing `/`;
/// `None` when it is not of that form. Written from RFC 6454 §6.1, not from the crate.
pub fn canonical_origin(origin: &[u8]) -> Option<String> {
    let origin = std::str::from_utf8(origin).ok()?.to_ascii_lowercase();
    let origin = origin.strip_suffix('/').unwrap_or(&origin);
    let (scheme, rest) = origin.split_once("://")?;
    if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) {
        return None;
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (rest, None),
    };
    let host_ok = !host.is_empty()
        && (host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
            || (host.starts_with('[') && host.ends_with(']')));
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !host_ok || !port_ok {
        return None;
    }
    let default = match scheme {
        "http" | "ws" => Some("80"),
        "https" | "wss" => Some("443"),
        _ => None,
    };
    Some(match port {
        Some(port) if Some(port) != default => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// `Sec-WebSocket-Accept` for `key` (RFC 6455 §4.2.2 step 5.4).
pub fn accept_key(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha1.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_example_key() {
        assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn origins() {
        assert_eq!(canonical_origin(b"HTTPS://Example.com:443/").as_deref(), Some("https://example.com"));
        assert_eq!(canonical_origin(b"http://localhost:3000").as_deref(), Some("http://localhost:3000"));
        assert_eq!(canonical_origin(b"http://localhost:3000:80"), None);
        assert_eq!(canonical_origin(b"https://a@example.com"), None);
        assert_eq!(canonical_origin(b"https://example.com/x"), None);
    }

    #[test]
    fn parses_a_head() {
        let head =
            parse(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n:protocol: websocket\r\nbad line\n").unwrap();
        assert!(head.is_attempt());
        assert_eq!(head.protocol.as_deref(), Some("websocket"));
        assert_eq!(head.headers.len(), 1);
    }
}
