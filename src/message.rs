//! [`Message`] and the types inside it. They are this crate's own (their payloads are
//! [`Bytes`]), so no protocol library's version shows through them.

use std::{fmt, ops::Deref};

use bytes::Bytes;

/// A WebSocket message.
///
/// Pings from the peer are answered for you; they and Pongs are still handed to you, in case you
/// want them. Text and binary payloads are [`Bytes`]-based, so clones and conversions do not copy.
///
/// ```
/// use tower_websockets::Message;
///
/// let text = Message::text("hello");
/// assert_eq!(text.as_text(), Some("hello"));
/// let binary = Message::binary(vec![1, 2, 3]);
/// assert_eq!(binary.len(), 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message: valid UTF-8.
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
    /// A Ping, with at most 125 bytes of payload.
    Ping(Bytes),
    /// A Pong, with at most 125 bytes of payload.
    Pong(Bytes),
    /// A Close, with its code and reason if the peer gave them.
    Close(Option<CloseFrame>),
}

impl Message {
    /// A text message.
    pub fn text(text: impl Into<Utf8Bytes>) -> Self {
        Self::Text(text.into())
    }

    /// A binary message.
    pub fn binary(bytes: impl Into<Bytes>) -> Self {
        Self::Binary(bytes.into())
    }

    /// The text of a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(text) => Some(text),
            _ => None,
        }
    }

    /// The payload length in bytes (for a Close, its reason's length).
    pub fn len(&self) -> usize {
        match self {
            Self::Text(text) => text.len(),
            Self::Binary(bytes) | Self::Ping(bytes) | Self::Pong(bytes) => bytes.len(),
            Self::Close(frame) => frame.as_ref().map_or(0, |f| f.reason.len()),
        }
    }

    /// Is the payload empty?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Is this a Close?
    pub fn is_close(&self) -> bool {
        matches!(self, Self::Close(_))
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Self::text(text)
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Self::text(text)
    }
}

impl From<Bytes> for Message {
    fn from(bytes: Bytes) -> Self {
        Self::Binary(bytes)
    }
}

impl From<Vec<u8>> for Message {
    fn from(bytes: Vec<u8>) -> Self {
        Self::binary(bytes)
    }
}

/// UTF-8 text backed by [`Bytes`]: cheap to clone, dereferences to `&str`.
///
/// The payload of [`Message::Text`]. Converting to and from [`Bytes`] does not copy; converting
/// from `Bytes` checks the UTF-8.
///
/// ```
/// use bytes::Bytes;
/// use tower_websockets::{Message, Utf8Bytes};
///
/// let text = Utf8Bytes::from_static("hello");
/// assert_eq!(text.to_uppercase(), "HELLO"); // any `str` method
/// assert_eq!(Message::Text(text.clone()).as_text(), Some("hello"));
///
/// let bytes = Bytes::from(text.clone());
/// assert_eq!(Utf8Bytes::try_from(bytes).unwrap(), text);
/// assert!(Utf8Bytes::try_from(Bytes::from_static(b"\xff")).is_err());
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Utf8Bytes(bytestring::ByteString);

impl Utf8Bytes {
    /// Text from a `&'static str`, without copying.
    pub const fn from_static(text: &'static str) -> Self {
        Self(bytestring::ByteString::from_static(text))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for Utf8Bytes {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<String> for Utf8Bytes {
    fn from(text: String) -> Self {
        Self(text.into())
    }
}

impl From<&str> for Utf8Bytes {
    fn from(text: &str) -> Self {
        Self(text.into())
    }
}

impl From<Utf8Bytes> for Bytes {
    fn from(text: Utf8Bytes) -> Self {
        text.0.into_bytes()
    }
}

impl TryFrom<Bytes> for Utf8Bytes {
    type Error = std::str::Utf8Error;
    fn try_from(bytes: Bytes) -> Result<Self, Self::Error> {
        bytestring::ByteString::try_from(bytes).map(Self)
    }
}

impl PartialEq<str> for Utf8Bytes {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Utf8Bytes {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The code and reason of a Close frame, as carried by [`Message::Close`].
///
/// To close a [`WebSocket`](crate::WebSocket) yourself, prefer
/// [`WebSocket::close`](crate::WebSocket::close), which also checks the code and reason and
/// waits for the peer's answer.
///
/// ```
/// use tower_websockets::{CloseCode, CloseFrame, Message};
///
/// let frame = CloseFrame::new(CloseCode::POLICY_VIOLATION, "login first");
/// assert_eq!(frame.code, CloseCode(1008));
/// assert_eq!(frame.reason, "login first");
///
/// let message = Message::Close(Some(frame));
/// assert!(message.is_close());
/// assert_eq!(message.len(), 11); // a Close's length is its reason's
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// Why the connection closes.
    pub code: CloseCode,
    /// A short explanation: at most 123 bytes of UTF-8.
    pub reason: Utf8Bytes,
}

impl CloseFrame {
    /// The longest reason a Close frame can carry, in bytes: a control frame's payload is at
    /// most 125 bytes, and the code takes 2 of them.
    pub const MAX_REASON_LEN: usize = 123;

    /// A Close frame with `code` and `reason`.
    pub fn new(code: CloseCode, reason: impl Into<Utf8Bytes>) -> Self {
        Self { code, reason: reason.into() }
    }
}

/// A WebSocket close code (RFC 6455 §7.4), with the registered codes as constants.
///
/// ```
/// use tower_websockets::CloseCode;
/// assert_eq!(CloseCode::MESSAGE_TOO_BIG, CloseCode(1009));
/// assert_eq!(CloseCode::MESSAGE_TOO_BIG.to_string(), "1009 (message too big)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL: Self = Self(1000);
    /// 1001: the server is going down, or the browser is leaving the page.
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: a protocol error.
    pub const PROTOCOL_ERROR: Self = Self(1002);
    /// 1003: a type of data the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: Self = Self(1003);
    /// 1007: data inconsistent with the message type, such as invalid UTF-8 in a text message.
    pub const INVALID_PAYLOAD: Self = Self(1007);
    /// 1008: a message that violates the endpoint's policy.
    pub const POLICY_VIOLATION: Self = Self(1008);
    /// 1009: a message too big to process.
    pub const MESSAGE_TOO_BIG: Self = Self(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: Self = Self(1010);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL_ERROR: Self = Self(1011);
    /// 1012: the service is restarting.
    pub const SERVICE_RESTART: Self = Self(1012);
    /// 1013: try again later.
    pub const TRY_AGAIN_LATER: Self = Self(1013);
    /// 1014: a gateway or proxy received an invalid response from the upstream server.
    pub const BAD_GATEWAY: Self = Self(1014);
    /// 1005: reserved, never sent. Stands for a Close that carried no code, as when the peer
    /// sent an empty Close, or a `Sink` close sent one.
    pub const NO_STATUS_RECEIVED: Self = Self(1005);
    /// 1006: reserved, never sent. Stands for a connection that ended without a Close.
    pub const ABNORMAL_CLOSURE: Self = Self(1006);

    /// May an endpoint put this code in a Close frame (RFC 6455 §7.4)? `true` for 1000 to 1003,
    /// 1007 to 1014 and the application ranges 3000 to 4999; `false` for the codes that are
    /// reserved for other uses (1004 to 1006, 1015), the unassigned ones (below 1000, 1016 to
    /// 2999) and 5000 and up. [`WebSocket::close`](crate::WebSocket::close) refuses the others,
    /// and a peer that sends one gets a protocol error.
    ///
    /// ```
    /// use tower_websockets::CloseCode;
    ///
    /// assert!(CloseCode::NORMAL.is_sendable());
    /// assert!(CloseCode(4000).is_sendable());
    /// assert!(!CloseCode::NO_STATUS_RECEIVED.is_sendable());
    /// assert!(!CloseCode(2000).is_sendable());
    /// ```
    pub const fn is_sendable(self) -> bool {
        crate::proto::close::is_allowed_on_wire(self.0)
    }

    /// The registered name of the code, if it has one.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1000 => "normal closure",
            1001 => "going away",
            1002 => "protocol error",
            1003 => "unsupported data",
            1005 => "no status received",
            1006 => "abnormal closure",
            1007 => "invalid payload data",
            1008 => "policy violation",
            1009 => "message too big",
            1010 => "mandatory extension",
            1011 => "internal error",
            1012 => "service restart",
            1013 => "try again later",
            1014 => "bad gateway",
            1015 => "TLS handshake",
            _ => return None,
        })
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{} ({name})", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        Self(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_kinds_and_text() {
        let close = Message::Close(Some(CloseFrame::new(CloseCode::NORMAL, "bye")));
        let cases = [
            (Message::text("héllo"), 6, Some("héllo")),
            (Message::binary(vec![1, 2]), 2, None),
            (Message::Ping(Bytes::new()), 0, None),
            (Message::Pong(Bytes::from_static(b"p")), 1, None),
            (close.clone(), 3, None),
            (Message::Close(None), 0, None),
        ];
        for (message, len, text) in cases {
            assert_eq!(message.len(), len, "{message:?}");
            assert_eq!(message.is_empty(), len == 0, "{message:?}");
            assert_eq!(message.as_text(), text, "{message:?}");
        }
        assert!(close.is_close());
        assert!(!Message::text("x").is_close());
    }

    #[test]
    fn conversions_pick_the_kind() {
        assert_eq!(Message::from("a"), Message::text("a"));
        assert_eq!(Message::from(String::from("a")), Message::text("a"));
        assert_eq!(Message::from(vec![1u8]), Message::binary(vec![1u8]));
        assert_eq!(Message::from(Bytes::from_static(b"b")), Message::Binary(Bytes::from_static(b"b")));
    }

    #[test]
    fn close_codes_name_themselves_and_convert() {
        assert_eq!(CloseCode::NO_STATUS_RECEIVED.to_string(), "1005 (no status received)");
        assert_eq!(CloseCode(4321).to_string(), "4321");
        assert_eq!(CloseCode(4321).name(), None);
        assert_eq!(u16::from(CloseCode::from(1011)), 1011);
        assert_eq!(CloseCode::ABNORMAL_CLOSURE.name(), Some("abnormal closure"));
        assert!(!CloseCode::ABNORMAL_CLOSURE.is_sendable());
        assert!(CloseCode::BAD_GATEWAY.is_sendable());
    }

    #[test]
    fn utf8_bytes_compare_and_convert_without_surprises() {
        let text = Utf8Bytes::from(String::from("abc"));
        assert_eq!(text, "abc");
        assert_eq!(text, *"abc");
        assert_eq!(format!("{text} {text:?}"), "abc \"abc\"");
        assert_eq!(Bytes::from(text.clone()), Bytes::from_static(b"abc"));
        assert_eq!(Utf8Bytes::default().as_str(), "");
        assert!(Utf8Bytes::try_from(Bytes::from_static(b"\xc3")).is_err());
    }
}
