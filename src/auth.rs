//! Authentication during the handshake: [`WebSocketLayerBuilder::authenticate`]'s types, and
//! [`Token`], the helpers that read a token from the three places a browser can put one.
//!
//! Browsers cannot set `Authorization` on a WebSocket, so a token travels in
//! `Sec-WebSocket-Protocol` (offered as `["bearer", token]`), in the query string, or in a cookie.
//! The layer runs the application's function on upgrade requests only, after the origin check and
//! before the connection slot and the handler; the identity it returns lands in the request's
//! extensions and on the socket. No token is ever logged by the crate (see `docs/security.md`).
//!
//! [`WebSocketLayerBuilder::authenticate`]: crate::WebSocketLayerBuilder::authenticate

use std::{any::Any, borrow::Cow, fmt, future::Future, pin::Pin, sync::Arc};

use http::{Extensions, StatusCode, header::COOKIE, header::SEC_WEBSOCKET_PROTOCOL, request::Parts};

/// The subprotocol a client offers before its token: `new WebSocket(url, ["bearer", token])`.
/// The server answers with this marker (never the token) when the application chose no other
/// subprotocol.
pub const BEARER_PROTOCOL: &str = "bearer";

/// Why an authentication function refused a handshake: `401 Unauthorized` (no credentials, or
/// bad ones) or `403 Forbidden` (known, but not allowed), with a short reason for the body and
/// the debug log.
///
/// The reason is sent to the client and logged: never put the token in it.
///
/// ```
/// use tower_websockets::auth::AuthRejection;
///
/// let missing = AuthRejection::unauthorized("no token");
/// assert_eq!(missing.status(), 401);
/// let banned = AuthRejection::forbidden("account suspended");
/// assert_eq!(banned.to_string(), "403 Forbidden: account suspended");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRejection {
    status: StatusCode,
    reason: Cow<'static, str>,
}

impl AuthRejection {
    /// `401 Unauthorized`: no credentials, or credentials that are not valid.
    pub fn unauthorized(reason: impl Into<Cow<'static, str>>) -> Self {
        Self { status: StatusCode::UNAUTHORIZED, reason: reason.into() }
    }

    /// `403 Forbidden`: the client is known, and not allowed this socket.
    pub fn forbidden(reason: impl Into<Cow<'static, str>>) -> Self {
        Self { status: StatusCode::FORBIDDEN, reason: reason.into() }
    }

    /// The status the layer answers with: 401 or 403.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The reason, sent as the response's body.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    pub(crate) fn into_parts(self) -> (StatusCode, Cow<'static, str>) {
        (self.status, self.reason)
    }
}

impl fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.reason)
    }
}

impl std::error::Error for AuthRejection {}

/// An identity of the application's type, erased: what the authentication function returned.
/// Cloned into the request's extensions as the application's own type, and kept (one `Arc`) by
/// the socket for [`WebSocket::identity`](crate::WebSocket::identity).
#[derive(Clone)]
pub(crate) struct Identity {
    value: Arc<dyn Any + Send + Sync>,
    insert: fn(&(dyn Any + Send + Sync), &mut Extensions),
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Identity(..)")
    }
}

impl Identity {
    fn new<I: Clone + Send + Sync + 'static>(identity: I) -> Self {
        fn insert<I: Clone + Send + Sync + 'static>(
            value: &(dyn Any + Send + Sync),
            extensions: &mut Extensions,
        ) {
            if let Some(identity) = value.downcast_ref::<I>() {
                extensions.insert(identity.clone());
            }
        }
        Self { value: Arc::new(identity), insert: insert::<I> }
    }

    /// Puts a clone of the identity, as the application's type, into `extensions`.
    pub(crate) fn insert_into(&self, extensions: &mut Extensions) {
        (self.insert)(&*self.value, extensions);
    }

    /// The identity, if it is an `I`.
    pub(crate) fn get<I: 'static>(&self) -> Option<&I> {
        self.value.downcast_ref()
    }
}

pub(crate) type AuthFuture = Pin<Box<dyn Future<Output = Result<Identity, AuthRejection>> + Send>>;

/// The application's authentication function, erased and shared.
#[derive(Clone)]
pub(crate) struct Authenticator(Arc<dyn Fn(&Parts) -> AuthFuture + Send + Sync>);

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Authenticator(..)")
    }
}

impl Authenticator {
    pub(crate) fn new<F, Fut, I>(function: F) -> Self
    where
        F: Fn(&Parts) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<I, AuthRejection>> + Send + 'static,
        I: Clone + Send + Sync + 'static,
    {
        Self(Arc::new(move |parts| {
            let future = function(parts);
            Box::pin(async move { future.await.map(Identity::new) })
        }))
    }

    pub(crate) fn authenticate(&self, parts: &Parts) -> AuthFuture {
        (self.0)(parts)
    }
}

/// Reads a token from the places a browser can put one on a WebSocket handshake. Each returns
/// `None` when the token is not there (or is not valid text).
///
/// Use them in the function given to
/// [`authenticate`](crate::WebSocketLayerBuilder::authenticate): read the token from the head
/// (the function gets `&Parts`), then check it in the future it returns.
///
/// ```
/// use tower_websockets::auth::Token;
///
/// let (parts, ()) = http::Request::get("/ws?room=1&access_token=abc")
///     .header("sec-websocket-protocol", "chat.v1, bearer, xyz")
///     .header("cookie", "theme=dark; session=s3cr3t")
///     .body(())?
///     .into_parts();
/// assert_eq!(Token::from_protocol(&parts), Some("xyz"));
/// assert_eq!(Token::from_query(&parts, "access_token"), Some("abc"));
/// assert_eq!(Token::from_cookie(&parts, "session"), Some("s3cr3t"));
/// assert_eq!(Token::from_cookie(&parts, "missing"), None);
/// # Ok::<(), http::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Token;

impl Token {
    /// The protocol offered right after the [`BEARER_PROTOCOL`] marker in
    /// `Sec-WebSocket-Protocol`: `new WebSocket(url, ["bearer", token])` in the browser. The
    /// token must then be a valid subprotocol name (an HTTP token: base64url, hex or a JWT is;
    /// standard base64's `/` and `=` are not). With a layer that authenticates, the extractor
    /// never counts the token as a subprotocol, and answers `bearer` when the application
    /// chooses no other.
    pub fn from_protocol(parts: &Parts) -> Option<&str> {
        let mut offers = offered_protocols(&parts.headers);
        offers.find(|protocol| *protocol == BEARER_PROTOCOL)?;
        offers.next()
    }

    /// The value of the query parameter `name`, as it is in the URI (not percent-decoded: use
    /// URL-safe tokens). Name the parameter with
    /// [`token_query_param`](crate::WebSocketLayerBuilder::token_query_param) too, so that the
    /// layer removes it from the URI the handler sees.
    pub fn from_query<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
        parts.uri.query()?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name && !value.is_empty()).then_some(value)
        })
    }

    /// The value of the cookie `name`, from the request's `Cookie` headers.
    pub fn from_cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
        parts.headers.get_all(COOKIE).iter().filter_map(|value| value.to_str().ok()).find_map(|line| {
            line.split(';').find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                let value = value.trim();
                let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
                (key.trim() == name && !value.is_empty()).then_some(value)
            })
        })
    }
}

/// The protocols in every `Sec-WebSocket-Protocol` line, trimmed, empty entries skipped.
pub(crate) fn offered_protocols(headers: &http::HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|protocol| !protocol.is_empty())
}

/// `uri` without the query parameter `name` (every occurrence); `None` when it has none.
pub(crate) fn without_query_param(uri: &http::Uri, name: &str) -> Option<http::Uri> {
    let query = uri.query()?;
    let is_token = |pair: &&str| pair.split_once('=').map_or(*pair, |(key, _)| key) == name;
    if !query.split('&').any(|pair| is_token(&pair)) {
        return None;
    }
    let kept: Vec<&str> = query.split('&').filter(|pair| !is_token(pair)).collect();
    let mut path_and_query = uri.path().to_owned();
    if !kept.is_empty() {
        path_and_query.push('?');
        path_and_query.push_str(&kept.join("&"));
    }
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().ok()?);
    http::Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::get(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_protocol_token_is_the_offer_after_the_marker() {
        assert_eq!(
            Token::from_protocol(&parts("/", &[("sec-websocket-protocol", "bearer, t0k")])),
            Some("t0k")
        );
        let two_lines =
            parts("/", &[("sec-websocket-protocol", "chat, bearer"), ("sec-websocket-protocol", "t1")]);
        assert_eq!(Token::from_protocol(&two_lines), Some("t1"));
        assert_eq!(Token::from_protocol(&parts("/", &[("sec-websocket-protocol", "chat, bearer")])), None);
        assert_eq!(Token::from_protocol(&parts("/", &[("sec-websocket-protocol", "chat, t0k")])), None);
        assert_eq!(Token::from_protocol(&parts("/", &[])), None);
    }

    #[test]
    fn query_and_cookie_tokens() {
        let p = parts("/ws?a=1&access_token=xyz&b", &[("cookie", "a=1; sid=\"q\"; empty=")]);
        assert_eq!(Token::from_query(&p, "access_token"), Some("xyz"));
        assert_eq!(Token::from_query(&p, "b"), None);
        assert_eq!(Token::from_query(&p, "access"), None);
        assert_eq!(Token::from_cookie(&p, "sid"), Some("q"));
        assert_eq!(Token::from_cookie(&p, "empty"), None);
        assert_eq!(Token::from_cookie(&p, "a"), Some("1"));
    }

    #[test]
    fn the_token_parameter_is_removed_from_the_uri() {
        let strip =
            |uri: &str| without_query_param(&uri.parse().unwrap(), "access_token").map(|u| u.to_string());
        assert_eq!(strip("/ws?access_token=s3cr3t").as_deref(), Some("/ws"));
        assert_eq!(strip("/ws?room=1&access_token=s3cr3t&x=2").as_deref(), Some("/ws?room=1&x=2"));
        assert_eq!(
            strip("https://h.example/ws?access_token=a&access_token=b").as_deref(),
            Some("https://h.example/ws")
        );
        assert_eq!(strip("/ws?room=1"), None);
        assert_eq!(strip("/ws"), None);
        assert_eq!(strip("/ws?access_token_2=x"), None);
    }

    #[test]
    fn an_identity_goes_into_extensions_as_its_own_type() {
        #[derive(Clone, Debug, PartialEq)]
        struct User(u32);
        let identity = Identity::new(User(7));
        let mut extensions = Extensions::new();
        identity.insert_into(&mut extensions);
        assert_eq!(extensions.get::<User>(), Some(&User(7)));
        assert_eq!(identity.get::<User>(), Some(&User(7)));
        assert_eq!(identity.get::<u32>(), None);
    }

    #[test]
    fn a_rejection_displays_status_and_reason() {
        let rejection = AuthRejection::unauthorized("no token");
        assert_eq!(rejection.to_string(), "401 Unauthorized: no token");
        assert_eq!(AuthRejection::forbidden(String::from("x")).status(), StatusCode::FORBIDDEN);
    }
}
