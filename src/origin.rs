//! The origin policy: which pages may open a WebSocket to this server.
//!
//! Browsers send an `Origin` header with every WebSocket handshake, and they do not apply the
//! same-origin policy to WebSockets. Without a check, any page a user visits can open a socket
//! to your server with the user's cookies attached: cross-site WebSocket hijacking. See
//! `docs/security.md` in the repository.

use std::{fmt, sync::Arc};

use http::{HeaderMap, HeaderValue, header::ORIGIN, request::Parts};

use crate::error::ConfigError;

type Predicate = dyn Fn(&HeaderValue, &Parts) -> bool + Send + Sync;

/// Which origins may open a WebSocket, as configured on the
/// [`WebSocketLayerBuilder`](crate::WebSocketLayerBuilder).
///
/// - [`AllowedOrigins::any`] (the default) lets every origin in.
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
    Any,
    List(Vec<String>),
    Predicate(Arc<Predicate>),
}

impl AllowedOrigins {
    /// Every origin may connect (the default).
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
    pub(crate) fn into_policy(self) -> Result<OriginPolicy, ConfigError> {
        match self.0 {
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

/// The checked form of [`AllowedOrigins`] that the layer applies.
#[derive(Clone, Default)]
pub(crate) enum OriginPolicy {
    #[default]
    Any,
    /// Normalised (lower case, no default port) origins.
    List(Vec<Vec<u8>>),
    Predicate(Arc<Predicate>),
}

impl fmt::Debug for OriginPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("Any"),
            Self::List(list) => {
                f.debug_list().entries(list.iter().map(|o| String::from_utf8_lossy(o))).finish()
            }
            Self::Predicate(_) => f.write_str("Predicate(..)"),
        }
    }
}

/// Why an origin was refused; the text goes into the 403 body and the debug event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OriginRefusal {
    /// More than one `Origin` header.
    Several,
    /// `Origin: null`.
    Null,
    /// Not in the list, or the predicate said no.
    NotAllowed,
}

impl OriginRefusal {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Several => "more than one Origin header",
            Self::Null => "the null origin is not allowed",
            Self::NotAllowed => "origin not allowed",
        }
    }
}

impl OriginPolicy {
    /// Does this policy need the request's parts (a predicate)?
    pub(crate) fn needs_parts(&self) -> bool {
        matches!(self, Self::Predicate(_))
    }

    /// Decides on a policy that does not need the request's parts (see [`Self::needs_parts`]).
    pub(crate) fn check_headers(&self, headers: &HeaderMap) -> Result<(), OriginRefusal> {
        match self {
            Self::Any => Ok(()),
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
            other => other.check_headers(&parts.headers),
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

/// `scheme://host[:port]` in lower case, with the scheme's default port removed and at most one
/// trailing `/` tolerated. `None` when it is not of that form.
fn normalize(origin: &[u8]) -> Option<Vec<u8>> {
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
        AllowedOrigins::list(origins).into_policy().unwrap()
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
        assert_eq!(policy.check_headers(&headers(&["https://client.COM"])), Ok(()));
        assert_eq!(policy.check_headers(&headers(&["https://client.com:443"])), Ok(()));
        assert_eq!(policy.check_headers(&headers(&[])), Ok(()));
        for bad in ["https://client.com.evil.example", "http://client.com", "https://client.com:8443"] {
            assert_eq!(policy.check_headers(&headers(&[bad])), Err(OriginRefusal::NotAllowed), "{bad}");
        }
        assert_eq!(policy.check_headers(&headers(&["null"])), Err(OriginRefusal::Null));
        assert_eq!(
            policy.check_headers(&headers(&["https://client.com", "https://client.com"])),
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
        let err = AllowedOrigins::list(["https://a.com/app"]).into_policy().unwrap_err();
        assert_eq!(err.option(), "allowed_origins");
        assert!(err.to_string().contains("https://a.com/app"));
    }

    #[test]
    fn predicate_sees_the_header_and_the_request() {
        let policy = AllowedOrigins::predicate(|origin, parts| {
            origin == "https://ok.example" && parts.uri.path() == "/ws"
        })
        .into_policy()
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
}
