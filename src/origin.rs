//! The origin policy: which pages may open a WebSocket to this server.
//!
//! Browsers send an `Origin` header with every WebSocket handshake, and they do not apply the
//! same-origin policy to WebSockets. Without a check, any page a user visits can open a socket
//! to your server with the user's cookies attached: cross-site WebSocket hijacking. See
//! `docs/security.md` in the repository.

use std::{fmt, sync::Arc};

use http::{HeaderMap, HeaderValue, Uri, header::HOST, header::ORIGIN, request::Parts};

use crate::error::ConfigError;

type Predicate = dyn Fn(&HeaderValue, &Parts) -> bool + Send + Sync;

/// Which origins may open a WebSocket, as configured on the
/// [`WebSocketLayerBuilder`](crate::WebSocketLayerBuilder).
///
/// - [`AllowedOrigins::same_origin`] (the default) lets in a page served by this same host: the
///   `Origin`'s host and port must match the request's own authority (the URI's authority, as
///   HTTP/2's `:authority` gives it, else the `Host` header). See below for the comparison.
/// - [`AllowedOrigins::any`] lets every origin in (the default before 0.2; see the CHANGELOG).
/// - [`AllowedOrigins::list`] lets in the origins listed (exact origins: a wildcard such as
///   `https://*.example.com` is refused when the layer is built; use a predicate for patterns),
///   compared as `scheme://host[:port]`
///   without regard to ASCII letter case, and with default ports (`:80` for `http`/`ws`, `:443`
///   for `https`/`wss`) left out on both sides. An empty list, or one that contains `*`, lets
///   every origin in, as ASP.NET Core's `AllowedOrigins` does.
/// - [`AllowedOrigins::predicate`] decides with your own function.
///
/// Whatever the policy, a request with no `Origin` header is let in: only browsers send one, and
/// other clients cannot be told apart by it. A restricted policy refuses `Origin: null` (sandboxed
/// frames, `file:` pages) unless a predicate accepts it, and always refuses a request that has
/// more than one `Origin` header.
///
/// **How same-origin compares.** A server behind a TLS-terminating proxy cannot tell whether the
/// page was `http` or `https`, so the scheme is not compared: the host (without regard to ASCII
/// case) and the port are. The `Origin`'s port is its explicit port, or its scheme's default (80
/// for `http`, 443 for `https`). The request's authority (`Host: chat.example.com`) usually has
/// no port; it then matches an `Origin` on its scheme's default port (`https://chat.example.com`
/// or `http://chat.example.com`, not `https://chat.example.com:8443`). With a port
/// (`Host: localhost:3000`), the `Origin`'s port must be that one. Behind a proxy that rewrites
/// `Host`, name the header that carries the public host with
/// [`forwarded_host`](crate::WebSocketLayerBuilder::forwarded_host); it is never trusted
/// otherwise.
///
/// ```
/// use tower_websockets::{AllowedOrigins, WebSocketLayer};
///
/// let layer = WebSocketLayer::builder()
///     .allowed_origins(AllowedOrigins::list(["https://chat.example.com", "https://example.com"]))
///     .build()?;
///
/// // A plain array, `Vec` or slice of strings works too.
/// let layer = WebSocketLayer::builder()
///     .allowed_origins(["https://chat.example.com"])
///     .build()?;
///
/// // The default: pages of this same host only.
/// let layer = WebSocketLayer::builder().allowed_origins(AllowedOrigins::same_origin()).build()?;
///
/// // Any page at all (the old default): for a service that authenticates without cookies.
/// let layer = WebSocketLayer::builder().allowed_origins(AllowedOrigins::any()).build()?;
///
/// // Anything else: a predicate on the header and the request.
/// let layer = WebSocketLayer::builder()
///     .allowed_origins(AllowedOrigins::predicate(|origin, _parts| {
///         origin.as_bytes().ends_with(b".example.com")
///     }))
///     .build()?;
/// # Ok::<(), tower_websockets::ConfigError>(())
/// ```
#[must_use]
#[derive(Clone, Default)]
pub struct AllowedOrigins(Kind);

#[derive(Clone, Default)]
enum Kind {
    #[default]
    SameOrigin,
    Any,
    List(Vec<String>),
    Predicate(Arc<Predicate>),
}

impl AllowedOrigins {
    /// Only pages of this same host may connect (the default): the `Origin`'s host and port must
    /// match the request's authority. See [`AllowedOrigins`] for the comparison.
    pub fn same_origin() -> Self {
        Self(Kind::SameOrigin)
    }

    /// Every origin may connect. This was the default before same-origin became it;
    /// `.allowed_origins(AllowedOrigins::any())` restores the old behaviour.
    pub fn any() -> Self {
        Self(Kind::Any)
    }

    /// Only the origins listed may connect. Each entry is `scheme://host[:port]`; a `*` entry, or
    /// an empty list, means any origin. Entries are checked when the layer is built.
    pub fn list<I>(origins: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        Self(Kind::List(origins.into_iter().map(|o| o.as_ref().to_owned()).collect()))
    }

    /// The origins for which `predicate(origin, request_parts)` returns `true` may connect.
    pub fn predicate<F>(predicate: F) -> Self
    where
        F: Fn(&HeaderValue, &Parts) -> bool + Send + Sync + 'static,
    {
        Self(Kind::Predicate(Arc::new(predicate)))
    }

    /// Checks and normalises the list into the policy the layer applies.
    pub(crate) fn into_policy(self, forwarded: Option<ForwardedHeader>) -> Result<OriginPolicy, ConfigError> {
        match self.0 {
            Kind::SameOrigin => Ok(OriginPolicy::SameOrigin { forwarded }),
            Kind::Any => Ok(OriginPolicy::Any),
            Kind::Predicate(p) => Ok(OriginPolicy::Predicate(p)),
            Kind::List(list) => {
                if list.is_empty() || list.iter().any(|o| o.trim() == "*") {
                    return Ok(OriginPolicy::Any);
                }
                let normalized = list
                    .iter()
                    .map(|origin| {
                        normalize(origin.trim().as_bytes()).ok_or_else(|| {
                            ConfigError::new(
                                "allowed_origins",
                                format!("`{origin}` is not an origin of the form scheme://host[:port]"),
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?;
                Ok(OriginPolicy::List(normalized))
            }
        }
    }
}

impl fmt::Debug for AllowedOrigins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::SameOrigin => f.write_str("AllowedOrigins::SameOrigin"),
            Kind::Any => f.write_str("AllowedOrigins::Any"),
            Kind::List(list) => f.debug_tuple("AllowedOrigins::List").field(list).finish(),
            Kind::Predicate(_) => f.write_str("AllowedOrigins::Predicate(..)"),
        }
    }
}

impl<const N: usize> From<[&str; N]> for AllowedOrigins {
    fn from(origins: [&str; N]) -> Self {
        Self::list(origins)
    }
}

impl From<&[&str]> for AllowedOrigins {
    fn from(origins: &[&str]) -> Self {
        Self::list(origins)
    }
}

impl From<Vec<String>> for AllowedOrigins {
    fn from(origins: Vec<String>) -> Self {
        Self(Kind::List(origins))
    }
}

impl From<Vec<&str>> for AllowedOrigins {
    fn from(origins: Vec<&str>) -> Self {
        Self::list(origins)
    }
}

/// The header a proxy in front of the server sets to the public host the browser connected to,
/// for the same-origin check behind a proxy that rewrites `Host`. Set with
/// [`WebSocketLayerBuilder::forwarded_host`](crate::WebSocketLayerBuilder::forwarded_host); never
/// read unless set, because any client can send these headers to a server it reaches directly.
///
/// ```
/// use tower_websockets::{WebSocketLayer, origin::ForwardedHeader};
///
/// // nginx: proxy_set_header X-Forwarded-Host $host;
/// let layer = WebSocketLayer::builder().forwarded_host(ForwardedHeader::XForwardedHost).build()?;
/// # Ok::<(), tower_websockets::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// RFC 7239's `Forwarded: host=...`; the first element that has a `host` is read.
    Forwarded,
    /// `X-Forwarded-Host`; the first entry of its list is read (the one the first proxy set).
    XForwardedHost,
}

/// The checked form of [`AllowedOrigins`] that the layer applies.
#[derive(Clone)]
pub(crate) enum OriginPolicy {
    SameOrigin {
        forwarded: Option<ForwardedHeader>,
    },
    Any,
    /// Normalised (lower case, no default port) origins.
    List(Vec<Vec<u8>>),
    Predicate(Arc<Predicate>),
}

impl Default for OriginPolicy {
    fn default() -> Self {
        Self::SameOrigin { forwarded: None }
    }
}

impl fmt::Debug for OriginPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SameOrigin { forwarded } => {
                f.debug_struct("SameOrigin").field("forwarded", forwarded).finish()
            }
            Self::Any => f.write_str("Any"),
            Self::List(list) => {
                f.debug_list().entries(list.iter().map(|o| String::from_utf8_lossy(o))).finish()
            }
            Self::Predicate(_) => f.write_str("Predicate(..)"),
        }
    }
}

/// Why an origin was refused; the text goes into the 403 body and the debug event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OriginRefusal {
    /// More than one `Origin` header.
    Several,
    /// `Origin: null`.
    Null,
    /// Not in the list, or the predicate said no.
    NotAllowed,
    /// Same-origin: the origin's host and port are not the request's. Holds the reason's text
    /// (built only on this refusal path).
    CrossOrigin(String),
    /// Same-origin: the request has no authority (no `Host`) to compare with.
    NoHost,
}

impl OriginRefusal {
    pub(crate) fn reason(&self) -> &str {
        match self {
            Self::CrossOrigin(reason) => reason,
            other => other.reason_static(),
        }
    }

    /// The reason of every refusal but [`Self::CrossOrigin`], whose text is built per request.
    pub(crate) fn reason_static(&self) -> &'static str {
        match self {
            Self::Several => "more than one Origin header",
            Self::Null => "the null origin is not allowed",
            Self::NotAllowed => "origin not allowed",
            Self::CrossOrigin(_) => "origin does not match host; see allowed_origins",
            Self::NoHost => "no Host to compare the origin with; see allowed_origins",
        }
    }
}

/// The longest header text quoted in a refusal; longer ones are cut (with `...`).
const QUOTE_MAX: usize = 100;

/// A header value as text for a refusal: printable ASCII, at most [`QUOTE_MAX`] bytes.
fn quote(value: &[u8]) -> String {
    let mut text: String = value
        .iter()
        .take(QUOTE_MAX)
        .map(|&b| if b.is_ascii_graphic() || b == b' ' { char::from(b) } else { '?' })
        .collect();
    if value.len() > QUOTE_MAX {
        text.push_str("...");
    }
    text
}

impl OriginPolicy {
    /// Does this policy need the request's parts (a predicate)?
    pub(crate) fn needs_parts(&self) -> bool {
        matches!(self, Self::Predicate(_))
    }

    /// Decides on a policy that does not need the request's parts (see [`Self::needs_parts`]).
    pub(crate) fn check_headers(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), OriginRefusal> {
        match self {
            Self::Any => Ok(()),
            Self::SameOrigin { forwarded } => match single_origin(headers)? {
                None => Ok(()),
                Some(origin) if origin.as_bytes() == b"null" => Err(OriginRefusal::Null),
                Some(origin) => same_origin(origin.as_bytes(), uri, headers, *forwarded),
            },
            Self::List(list) => match single_origin(headers)? {
                None => Ok(()),
                Some(origin) if origin.as_bytes() == b"null" => Err(OriginRefusal::Null),
                Some(origin) => match normalize(origin.as_bytes()) {
                    Some(origin) if list.contains(&origin) => Ok(()),
                    _ => Err(OriginRefusal::NotAllowed),
                },
            },
            // Callers go through `check_parts` for predicates; refusing here is the safe answer.
            Self::Predicate(_) => Err(OriginRefusal::NotAllowed),
        }
    }

    /// Decides with the whole request head at hand.
    pub(crate) fn check_parts(&self, parts: &Parts) -> Result<(), OriginRefusal> {
        match self {
            Self::Predicate(predicate) => match single_origin(&parts.headers)? {
                None => Ok(()),
                Some(origin) if predicate(origin, parts) => Ok(()),
                Some(_) => Err(OriginRefusal::NotAllowed),
            },
            other => other.check_headers(&parts.uri, &parts.headers),
        }
    }
}

/// The request's one `Origin` header, if any; more than one is refused.
fn single_origin(headers: &HeaderMap) -> Result<Option<&HeaderValue>, OriginRefusal> {
    let mut values = headers.get_all(ORIGIN).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(OriginRefusal::Several);
    }
    Ok(first)
}

/// The same-origin check: the origin's host and port against the request's authority (the
/// forwarded header when one is configured and present, else the URI's authority, else `Host`).
fn same_origin(
    origin: &[u8],
    uri: &Uri,
    headers: &HeaderMap,
    forwarded: Option<ForwardedHeader>,
) -> Result<(), OriginRefusal> {
    let authority: Option<&[u8]> = forwarded
        .and_then(|header| forwarded_host(headers, header))
        .or_else(|| uri.authority().map(|a| a.as_str().as_bytes()))
        .or_else(|| headers.get(HOST).map(HeaderValue::as_bytes));
    let Some(authority) = authority else { return Err(OriginRefusal::NoHost) };
    let mismatch = || {
        OriginRefusal::CrossOrigin(format!(
            "origin {} does not match host {}; see allowed_origins",
            quote(origin),
            quote(authority)
        ))
    };
    // Compared in place, without allocating: this runs for every browser handshake.
    let Some((scheme, origin_authority)) = parse_origin(origin) else { return Err(mismatch()) };
    let (origin_host, origin_port) = host_and_port(origin_authority);
    let scheme_port = if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("ws") {
        Some("80")
    } else if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("wss") {
        Some("443")
    } else {
        None
    };
    let Some(origin_port) = origin_port.or(scheme_port) else { return Err(mismatch()) };
    let Ok(authority_text) = std::str::from_utf8(authority) else { return Err(mismatch()) };
    let authority_text = authority_text.trim();
    if !host_port_ok(authority_text) {
        return Err(mismatch());
    }
    let (host, port) = host_and_port(authority_text);
    let host_matches = host.eq_ignore_ascii_case(origin_host);
    let port_matches = match port {
        Some(port) => port.trim_start_matches('0') == origin_port.trim_start_matches('0'),
        // No port in the authority: the default port of whichever scheme the page had.
        None => scheme_port == Some(origin_port),
    };
    if host_matches && port_matches { Ok(()) } else { Err(mismatch()) }
}

/// The public host a proxy put in `header`, if the request has one.
fn forwarded_host(headers: &HeaderMap, header: ForwardedHeader) -> Option<&[u8]> {
    match header {
        ForwardedHeader::XForwardedHost => {
            let value = headers.get("x-forwarded-host")?.to_str().ok()?;
            let first = value.split(',').next()?.trim();
            (!first.is_empty()).then_some(first.as_bytes())
        }
        ForwardedHeader::Forwarded => headers.get_all(http::header::FORWARDED).iter().find_map(|value| {
            let value = value.to_str().ok()?;
            value.split(',').flat_map(|element| element.split(';')).find_map(|pair| {
                let (name, host) = pair.trim().split_once('=')?;
                if !name.trim().eq_ignore_ascii_case("host") {
                    return None;
                }
                let host = host.trim();
                let host = host.strip_prefix('"').and_then(|h| h.strip_suffix('"')).unwrap_or(host);
                (!host.is_empty()).then_some(host.as_bytes())
            })
        }),
    }
}

/// An authority's host and its port, if it has one (after the last `:` outside an IPv6 literal).
fn host_and_port(authority: &str) -> (&str, Option<&str>) {
    match authority.rfind(':') {
        Some(colon) if !authority[colon..].contains(']') => {
            (&authority[..colon], Some(&authority[colon + 1..]))
        }
        _ => (authority, None),
    }
}

/// An origin's scheme and authority, checked to be of the form `scheme://host[:port]` (at most
/// one trailing `/` tolerated), without allocating. `None` when it is not of that form.
fn parse_origin(origin: &[u8]) -> Option<(&str, &str)> {
    let origin = origin.strip_suffix(b"/").unwrap_or(origin);
    let text = std::str::from_utf8(origin).ok()?;
    let (scheme, authority) = text.split_once("://")?;
    let scheme_ok = scheme
        .bytes()
        .enumerate()
        .all(|(i, b)| b.is_ascii_alphabetic() || (i > 0 && (b.is_ascii_digit() || b"+-.".contains(&b))));
    let authority_ok = authority.bytes().all(|b| b.is_ascii_graphic() && !b"/?#@\\*".contains(&b));
    if scheme.is_empty() || authority.is_empty() || !scheme_ok || !authority_ok || !host_port_ok(authority) {
        return None;
    }
    Some((scheme, authority))
}

/// `scheme://host[:port]` in lower case, with the scheme's default port removed and at most one
/// trailing `/` tolerated. `None` when it is not of that form.
fn normalize(origin: &[u8]) -> Option<Vec<u8>> {
    let (scheme, authority) = parse_origin(origin)?;
    let scheme = scheme.to_ascii_lowercase();
    let mut authority = authority.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" | "ws" => Some(":80"),
        "https" | "wss" => Some(":443"),
        _ => None,
    };
    if let Some(port) = default_port {
        if authority.ends_with(port) && !authority.ends_with(']') {
            authority.truncate(authority.len() - port.len());
        }
    }
    Some(format!("{scheme}://{authority}").into_bytes())
}

/// Is `authority` a host (a name, or an IPv6 literal in brackets) and at most one `:port` of
/// digits? (`http://localhost:3000:80` was once read as `http://localhost:3000`.)
fn host_port_ok(authority: &str) -> bool {
    let (host, port) = match authority.rfind(':') {
        Some(colon) if !authority[colon..].contains(']') => {
            (&authority[..colon], Some(&authority[colon + 1..]))
        }
        _ => (authority, None),
    };
    let port_ok = port.is_none_or(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = match host.strip_prefix('[') {
        Some(literal) => literal.strip_suffix(']').is_some_and(|ip| !ip.contains(['[', ']'])),
        None => !host.is_empty() && !host.contains([':', '[', ']']),
    };
    port_ok && host_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(origins: &[&str]) -> OriginPolicy {
        AllowedOrigins::list(origins).into_policy(None).unwrap()
    }

    fn uri() -> Uri {
        Uri::from_static("/ws")
    }

    fn headers(origins: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for o in origins {
            map.append(ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        map
    }

    #[test]
    fn normalises_case_default_ports_and_trailing_slash() {
        assert_eq!(normalize(b"HTTPS://Example.COM:443/").unwrap(), b"https://example.com");
        assert_eq!(normalize(b"http://a.b:8080").unwrap(), b"http://a.b:8080");
        assert_eq!(normalize(b"http://[::1]:80").unwrap(), b"http://[::1]");
        assert_eq!(normalize(b"chrome-extension://abc").unwrap(), b"chrome-extension://abc");
        for bad in [
            "example.com",
            "https://",
            "https://a.com/path",
            "https://u@a.com",
            "://a",
            "1x://a",
            "https://*.a.com",
            "http://localhost:3000:80",
            "https://a.com:",
            "https://a.com:44x",
            "http://::1",
            "http://[::1",
        ] {
            assert!(normalize(bad.as_bytes()).is_none(), "{bad}");
        }
    }

    #[test]
    fn list_matches_without_regard_to_case_and_refuses_look_alikes() {
        let policy = list(&["https://Client.com"]);
        assert_eq!(policy.check_headers(&uri(), &headers(&["https://client.COM"])), Ok(()));
        assert_eq!(policy.check_headers(&uri(), &headers(&["https://client.com:443"])), Ok(()));
        assert_eq!(policy.check_headers(&uri(), &headers(&[])), Ok(()));
        for bad in ["https://client.com.evil.example", "http://client.com", "https://client.com:8443"] {
            assert_eq!(
                policy.check_headers(&uri(), &headers(&[bad])),
                Err(OriginRefusal::NotAllowed),
                "{bad}"
            );
        }
        assert_eq!(policy.check_headers(&uri(), &headers(&["null"])), Err(OriginRefusal::Null));
        assert_eq!(
            policy.check_headers(&uri(), &headers(&["https://client.com", "https://client.com"])),
            Err(OriginRefusal::Several)
        );
    }

    #[test]
    fn empty_list_and_star_mean_any() {
        assert!(matches!(list(&[]), OriginPolicy::Any));
        assert!(matches!(list(&["https://a.com", "*"]), OriginPolicy::Any));
    }

    #[test]
    fn a_malformed_entry_is_refused_at_build_time_naming_the_option() {
        let err = AllowedOrigins::list(["https://a.com/app"]).into_policy(None).unwrap_err();
        assert_eq!(err.option(), "allowed_origins");
        assert!(err.to_string().contains("https://a.com/app"));
    }

    #[test]
    fn predicate_sees_the_header_and_the_request() {
        let policy = AllowedOrigins::predicate(|origin, parts| {
            origin == "https://ok.example" && parts.uri.path() == "/ws"
        })
        .into_policy(None)
        .unwrap();
        let parts = |path: &str, origins: &[&str]| {
            let mut req = http::Request::get(path).body(()).unwrap();
            *req.headers_mut() = headers(origins);
            req.into_parts().0
        };
        assert_eq!(policy.check_parts(&parts("/ws", &["https://ok.example"])), Ok(()));
        assert_eq!(
            policy.check_parts(&parts("/other", &["https://ok.example"])),
            Err(OriginRefusal::NotAllowed)
        );
        assert_eq!(policy.check_parts(&parts("/ws", &[])), Ok(()));
        assert_eq!(
            policy.check_parts(&parts("/ws", &["https://ok.example", "https://ok.example"])),
            Err(OriginRefusal::Several)
        );
    }

    fn same(forwarded: Option<ForwardedHeader>) -> OriginPolicy {
        AllowedOrigins::same_origin().into_policy(forwarded).unwrap()
    }

    fn with(origin: Option<&str>, pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = headers(origin.as_slice());
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn same_origin_compares_host_and_port_with_default_ports_by_the_origin_scheme() {
        let policy = same(None);
        let host =
            |origin: &str, host: &str| policy.check_headers(&uri(), &with(Some(origin), &[("host", host)]));
        for (origin, authority) in [
            ("https://chat.example.com", "chat.example.com"),
            ("http://chat.example.com", "chat.example.com"),
            ("https://Chat.Example.com:443", "chat.example.COM"),
            ("https://chat.example.com", "chat.example.com:443"),
            ("http://127.0.0.1:5000", "127.0.0.1:5000"),
            ("http://[::1]:8080", "[::1]:8080"),
            // Behind TLS termination the scheme is unknown: the port decides.
            ("http://example.com:443", "example.com:443"),
        ] {
            assert_eq!(host(origin, authority), Ok(()), "{origin} vs {authority}");
        }
        for (origin, authority) in [
            ("https://a.example", "b.example"),
            ("https://example.com.evil.example", "example.com"),
            ("https://example.com:8443", "example.com"),
            ("https://example.com", "example.com:8443"),
            ("http://localhost:3000", "localhost:3001"),
            ("http://localhost:3000", "localhost"),
            ("chrome-extension://abc", "abc"),
            ("not an origin", "example.com"),
            ("https://example.com", "example.com:80:80"),
        ] {
            assert!(
                matches!(host(origin, authority), Err(OriginRefusal::CrossOrigin(_))),
                "{origin} vs {authority}"
            );
        }
        let refusal = host("https://a.example", "b.example").unwrap_err();
        assert_eq!(
            refusal.reason(),
            "origin https://a.example does not match host b.example; see allowed_origins"
        );
        // No Origin: allowed. `null`, two Origins and no Host: refused.
        assert_eq!(policy.check_headers(&uri(), &with(None, &[("host", "b.example")])), Ok(()));
        assert_eq!(host("null", "b.example"), Err(OriginRefusal::Null));
        assert_eq!(
            policy.check_headers(&uri(), &with(Some("https://b.example"), &[])),
            Err(OriginRefusal::NoHost)
        );
    }

    #[test]
    fn same_origin_reads_the_uri_authority_first_as_http2_gives_it() {
        let policy = same(None);
        let h2 = Uri::from_static("https://chat.example.com/ws");
        let headers = with(Some("https://chat.example.com"), &[]);
        assert_eq!(policy.check_headers(&h2, &headers), Ok(()));
        let headers = with(Some("https://evil.example"), &[("host", "evil.example")]);
        assert!(matches!(policy.check_headers(&h2, &headers), Err(OriginRefusal::CrossOrigin(_))));
    }

    #[test]
    fn forwarded_headers_are_read_only_when_configured() {
        let origin = Some("https://public.example");
        let behind = [("host", "backend:8080"), ("x-forwarded-host", "public.example, proxy2")];
        assert!(matches!(
            same(None).check_headers(&uri(), &with(origin, &behind)),
            Err(OriginRefusal::CrossOrigin(_))
        ));
        let x = same(Some(ForwardedHeader::XForwardedHost));
        assert_eq!(x.check_headers(&uri(), &with(origin, &behind)), Ok(()));
        // Configured but absent: the request's own host.
        assert!(x.check_headers(&uri(), &with(origin, &[("host", "backend:8080")])).is_err());
        assert_eq!(x.check_headers(&uri(), &with(origin, &[("host", "public.example")])), Ok(()));

        let f = same(Some(ForwardedHeader::Forwarded));
        let forwarded =
            [("host", "backend:8080"), ("forwarded", "for=1.2.3.4;proto=https;Host=\"public.example\"")];
        assert_eq!(f.check_headers(&uri(), &with(origin, &forwarded)), Ok(()));
        // The other header is not read.
        assert!(f.check_headers(&uri(), &with(origin, &behind)).is_err());
    }

    #[test]
    fn a_refusal_quotes_at_most_a_short_printable_text() {
        let long = format!("https://{}.example", "a".repeat(300));
        let refusal =
            same(None).check_headers(&uri(), &with(Some(&long), &[("host", "b.example")])).unwrap_err();
        assert!(refusal.reason().len() < 250, "{}", refusal.reason());
        assert!(refusal.reason().contains("..."));
    }
}
