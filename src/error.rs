//! The crate's errors: [`Error`], what can go wrong on an open WebSocket, [`ConfigError`],
//! options that do not fit together, and (feature `json`) `JsonError`, a message that is not the
//! JSON expected.

use std::{error::Error as StdError, fmt, io, time::Duration};

use crate::{
    message::{CloseCode, CloseFrame, Message},
    proto::error::ProtocolError,
};

/// An error on an open [`WebSocket`](crate::WebSocket).
///
/// Errors caused by the peer ([`MessageTooBig`](Self::MessageTooBig),
/// [`InvalidUtf8`](Self::InvalidUtf8), [`Protocol`](Self::Protocol)) have already been answered
/// with a Close of the matching code ([`close_code`](Self::close_code)) when you see them: it is
/// queued and being written, and the next `recv` finishes writing it, closes the connection and
/// returns `None`.
///
/// ```
/// # #[cfg(feature = "test-util")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::convert::Infallible;
/// use hyper::body::Incoming;
/// use tower::ServiceBuilder;
/// use tower_websockets::{CloseCode, Error, WebSocketLayer, WebSocketUpgrade, test::TestClient};
///
/// let (errors_tx, mut errors) = tokio::sync::mpsc::unbounded_channel();
/// let layer = WebSocketLayer::builder().max_message_size(16).build()?;
/// let service = ServiceBuilder::new().layer(layer).service_fn(move |mut req: http::Request<Incoming>| {
///     let errors_tx = errors_tx.clone();
///     let upgrade = WebSocketUpgrade::from_request(&mut req).expect("a WebSocket handshake");
///     async move {
///         Ok::<_, Infallible>(upgrade.on_upgrade(move |mut socket| async move {
///             while let Some(result) = socket.recv().await {
///                 if let Err(error) = result {
///                     let _ = errors_tx.send(error);
///                 }
///             }
///         }))
///     }
/// });
///
/// let mut client = TestClient::new(service).connect("/ws").await?;
/// client.send_text("far more than 16 bytes").await?;
/// let error: Error = errors.recv().await.expect("the handler's error");
/// assert!(matches!(error, Error::MessageTooBig { size: 22, max: 16 }));
/// // The socket has already answered with the matching Close.
/// assert_eq!(error.close_code(), Some(CloseCode::MESSAGE_TOO_BIG));
/// assert_eq!(client.recv_close().await?.map(|frame| frame.code), error.close_code());
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "test-util"))]
/// # fn main() {}
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The peer sent nothing within the keep-alive timeout after a keep-alive Ping; the
    /// connection has been dropped.
    KeepAliveTimeout {
        /// The timeout that elapsed.
        timeout: Duration,
    },
    /// The peer sent a message or frame over the size limit; closed with 1009.
    MessageTooBig {
        /// The size seen, in bytes.
        size: usize,
        /// The limit, in bytes.
        max: usize,
    },
    /// The peer sent a text message that is not valid UTF-8; closed with 1007.
    InvalidUtf8,
    /// The peer sent a compressed message (permessage-deflate) that does not inflate; closed
    /// with 1007, as for other payload data that does not fit its message.
    InvalidCompressedData(String),
    /// The peer broke the WebSocket protocol; closed with 1002.
    Protocol(String),
    /// The peer closed the TCP connection without a closing handshake.
    ConnectionReset,
    /// The peer sent past the socket's [`RateLimit`](crate::rate_limit::RateLimit), whose policy is
    /// [`RateLimitPolicy::Close`](crate::rate_limit::RateLimitPolicy::Close); closed with 1008.
    RateLimited,
    /// The socket is closed: nothing more can be sent.
    Closed,
    /// Sending would take the write buffer past `max_write_buffer_size`: the peer is not reading.
    WriteBufferFull,
    /// The closing handshake did not complete in time; the connection has been dropped.
    CloseTimeout,
    /// [`WebSocket::close`](crate::WebSocket::close) was given a code that may not be sent, or a
    /// reason over 123 bytes. Nothing was sent.
    InvalidClose(String),
    /// hyper could not hand over the upgraded connection (given to
    /// [`on_failed_upgrade`](crate::WebSocketUpgrade::on_failed_upgrade)).
    UpgradeFailed(Box<dyn StdError + Send + Sync>),
    /// An I/O error on the connection.
    Io(io::Error),
    /// A message that is not the JSON expected, from
    /// [`WebSocket::recv_json`](crate::WebSocket::recv_json) (feature `json`). The socket stays
    /// open: the handler chooses whether to answer, read on or close (with 1007, say).
    #[cfg(feature = "json")]
    Json(JsonError),
}

impl Error {
    /// The close code the socket answered this error with: 1009, 1007, 1002 or 1008 for the errors
    /// caused by the peer, `None` for the others.
    ///
    /// ```
    /// use tower_websockets::{CloseCode, Error};
    ///
    /// assert_eq!(Error::InvalidUtf8.close_code(), Some(CloseCode::INVALID_PAYLOAD));
    /// assert_eq!(Error::Closed.close_code(), None);
    /// ```
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Self::MessageTooBig { .. } => Some(CloseCode::MESSAGE_TOO_BIG),
            Self::InvalidUtf8 | Self::InvalidCompressedData(_) => Some(CloseCode::INVALID_PAYLOAD),
            Self::Protocol(_) => Some(CloseCode::PROTOCOL_ERROR),
            Self::RateLimited => Some(CloseCode::POLICY_VIOLATION),
            _ => None,
        }
    }

    /// The Close frame to answer this error with, if it calls for one.
    pub(crate) fn close_frame(&self) -> Option<CloseFrame> {
        let code = self.close_code()?;
        let reason = match self {
            Self::MessageTooBig { .. } => "message too big",
            Self::InvalidUtf8 => "invalid UTF-8 in text message",
            Self::InvalidCompressedData(_) => "invalid compressed data",
            Self::RateLimited => "rate limit exceeded",
            _ => "protocol error",
        };
        Some(CloseFrame::new(code, reason))
    }
}

/// What the peer did wrong, as the socket reports it; the close code is the same
/// ([`ProtocolError::close_code`]).
impl From<ProtocolError> for Error {
    fn from(error: ProtocolError) -> Self {
        match error {
            ProtocolError::FrameTooBig { size, max } | ProtocolError::MessageTooBig { size, max } => {
                Self::MessageTooBig { size: usize::try_from(size).unwrap_or(usize::MAX), max }
            }
            // A Close reason that is not UTF-8 is invalid payload data, as text is.
            ProtocolError::InvalidUtf8 | ProtocolError::InvalidCloseReason => Self::InvalidUtf8,
            ProtocolError::CorruptCompressedData(e) => Self::InvalidCompressedData(e),
            other => Self::Protocol(other.to_string()),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::KeepAliveTimeout { timeout } => {
                write!(f, "keep-alive timeout: the peer did not answer a ping within {timeout:?}")
            }
            Self::MessageTooBig { size, max } => {
                write!(f, "message too big: {size} bytes, the limit is {max} (closed with 1009)")
            }
            Self::InvalidUtf8 => f.write_str("invalid UTF-8 in a text message (closed with 1007)"),
            Self::InvalidCompressedData(e) => write!(f, "invalid compressed message: {e} (closed with 1007)"),
            Self::Protocol(e) => write!(f, "WebSocket protocol error: {e} (closed with 1002)"),
            Self::ConnectionReset => {
                f.write_str("the peer closed the connection without a closing handshake")
            }
            Self::RateLimited => f.write_str("the peer went past the rate limit (closed with 1008)"),
            Self::Closed => f.write_str("the WebSocket is closed"),
            Self::WriteBufferFull => f.write_str("the write buffer is full: the peer is not reading"),
            Self::CloseTimeout => f.write_str("the closing handshake timed out"),
            Self::InvalidClose(e) => write!(f, "invalid close: {e}"),
            Self::UpgradeFailed(e) => write!(f, "the connection could not be upgraded: {e}"),
            Self::Io(e) => write!(f, "I/O error on the WebSocket connection: {e}"),
            #[cfg(feature = "json")]
            Self::Json(e) => e.fmt(f),
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::UpgradeFailed(e) => Some(&**e),
            #[cfg(feature = "json")]
            Self::Json(e) => e.source(),
            _ => None,
        }
    }
}

/// Why a [`WebSocketSender`](crate::WebSocketSender) did not queue a message; the message is
/// inside ([`into_message`](Self::into_message)).
///
/// ```
/// use tower_websockets::{Message, sender::SendError};
///
/// let error = SendError::Full(Message::text("late"));
/// assert!(!error.is_closed());
/// assert_eq!(error.to_string(), "the WebSocket's send buffer is full");
/// assert_eq!(error.into_message(), Message::text("late"));
/// ```
#[derive(Debug, PartialEq)]
#[non_exhaustive]
pub enum SendError {
    /// The socket has ended, or is closing: nothing more is sent.
    Closed(Message),
    /// The buffer is at `max_buffered_amount` (from `try_send`, or any method under
    /// [`SendPolicy::DropNewest`](crate::sender::SendPolicy::DropNewest)).
    Full(Message),
    /// `send_timeout`: no room within the timeout.
    Timeout(Message),
}

impl SendError {
    /// The message that was not queued.
    pub fn into_message(self) -> Message {
        match self {
            Self::Closed(message) | Self::Full(message) | Self::Timeout(message) => message,
        }
    }

    /// Whether the socket has ended: every later send fails too.
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed(_))
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Closed(_) => "the WebSocket is closed",
            Self::Full(_) => "the WebSocket's send buffer is full",
            Self::Timeout(_) => "timed out waiting for room in the WebSocket's send buffer",
        })
    }
}

impl StdError for SendError {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Options that do not fit together, refused when the layer is built (or, for per-accept
/// overrides, when the socket is accepted).
///
/// The error names the option at fault.
///
/// ```
/// use std::time::Duration;
/// use tower_websockets::WebSocketLayer;
///
/// let err = WebSocketLayer::builder()
///     .keep_alive_interval(Duration::ZERO)
///     .keep_alive_timeout(Duration::from_secs(10))
///     .build()
///     .unwrap_err();
/// assert_eq!(err.option(), "keep_alive_timeout");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    option: &'static str,
    problem: String,
}

impl ConfigError {
    pub(crate) fn new(option: &'static str, problem: impl Into<String>) -> Self {
        Self { option, problem: problem.into() }
    }

    /// The name of the option at fault, as the builder method is named.
    pub fn option(&self) -> &'static str {
        self.option
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid WebSocket option `{}`: {}", self.option, self.problem)
    }
}

impl StdError for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_errors_map_to_ours_with_the_same_close_code() {
        let cases = [
            ProtocolError::FrameTooBig { size: 10, max: 4 },
            ProtocolError::MessageTooBig { size: 10, max: 4 },
            ProtocolError::InvalidUtf8,
            ProtocolError::InvalidCloseReason,
            ProtocolError::CorruptCompressedData("bad".into()),
            ProtocolError::ReservedBits { bits: 0b010 },
            ProtocolError::UnmaskedFrame,
            ProtocolError::InvalidCloseCode(1005),
            ProtocolError::LengthTopBit,
        ];
        for error in cases {
            let code = error.close_code();
            let ours = Error::from(error);
            assert_eq!(ours.close_code(), Some(CloseCode(code)), "{ours}");
        }
        let too_big = Error::from(ProtocolError::MessageTooBig { size: 10, max: 4 });
        assert!(matches!(too_big, Error::MessageTooBig { size: 10, max: 4 }));
        let reserved = Error::from(ProtocolError::ReservedBits { bits: 0b010 });
        assert!(matches!(reserved, Error::Protocol(m) if m.contains("reserved bits")));
    }

    #[test]
    fn peer_errors_carry_their_close_and_the_others_none() {
        let cases = [
            (Error::MessageTooBig { size: 2, max: 1 }, Some((1009, "message too big"))),
            (Error::InvalidUtf8, Some((1007, "invalid UTF-8 in text message"))),
            (Error::Protocol("x".into()), Some((1002, "protocol error"))),
            (Error::Closed, None),
            (Error::ConnectionReset, None),
            (Error::KeepAliveTimeout { timeout: Duration::from_secs(1) }, None),
        ];
        for (error, expected) in cases {
            let frame = error.close_frame();
            assert_eq!(frame.map(|f| (f.code.0, f.reason.to_string())), expected.map(|(c, r)| (c, r.into())));
            assert_eq!(error.close_code(), expected.map(|(code, _)| CloseCode(code)));
        }
    }

    #[test]
    fn messages_name_the_problem() {
        assert_eq!(
            Error::MessageTooBig { size: 22, max: 16 }.to_string(),
            "message too big: 22 bytes, the limit is 16 (closed with 1009)"
        );
        assert_eq!(
            Error::KeepAliveTimeout { timeout: Duration::from_secs(10) }.to_string(),
            "keep-alive timeout: the peer did not answer a ping within 10s"
        );
        let io = Error::from(io::Error::other("boom"));
        assert_eq!(io.to_string(), "I/O error on the WebSocket connection: boom");
        assert!(io.source().is_some());
        assert!(Error::Closed.source().is_none());
        let config = ConfigError::new("max_message_size", "must be at least 1 byte");
        assert_eq!(config.option(), "max_message_size");
        assert_eq!(
            config.to_string(),
            "invalid WebSocket option `max_message_size`: must be at least 1 byte"
        );
    }
}

/// A message that is not the JSON expected, or a value that cannot be written as JSON (feature
/// `json`).
///
/// Its `Display` names the problem ("binary message where JSON text was expected", "invalid JSON
/// at line 1 column 5: expected value", "JSON of the wrong shape at line 1 column 12: missing
/// field `text`"): fit to send back to the client. The serde_json error, when there is one, is
/// its [`source`](std::error::Error::source).
///
/// ```
/// use tower_websockets::{Message, json::JsonErrorKind};
///
/// #[derive(Debug, serde::Deserialize)]
/// struct Say {
///     text: String,
/// }
///
/// let error = Message::text(r#"{"txt":"hi"}"#).parse_json::<Say>().unwrap_err();
/// assert_eq!(error.kind(), JsonErrorKind::Data);
/// assert_eq!(error.to_string(), "JSON of the wrong shape at line 1 column 12: missing field `text`");
/// assert_eq!((error.line(), error.column()), (Some(1), Some(12)));
///
/// let error = Message::binary(vec![1, 2]).parse_json::<Say>().unwrap_err();
/// assert_eq!(error.to_string(), "binary message where JSON text was expected");
/// ```
#[cfg(feature = "json")]
#[derive(Debug)]
pub struct JsonError {
    kind: JsonErrorKind,
    /// For [`JsonErrorKind::NotText`]: what the message was.
    what: &'static str,
    source: Option<serde_json::Error>,
}

/// What kind of problem a [`JsonError`] is.
#[cfg(feature = "json")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JsonErrorKind {
    /// A Binary (or Ping, Pong, Close) message where JSON text was expected.
    NotText,
    /// The text is not JSON: a syntax error, or it ends too early.
    Syntax,
    /// The text is JSON, but not of the type expected: a missing field, a value of the wrong
    /// type, an unknown variant.
    Data,
    /// The value could not be written as JSON ([`Message::json`](crate::Message::json)): a map whose keys are not
    /// strings, or a `Serialize` implementation that failed.
    Serialize,
}

#[cfg(feature = "json")]
impl JsonError {
    /// What kind of problem this is.
    ///
    /// ```
    /// use tower_websockets::{Message, json::JsonErrorKind};
    ///
    /// let error = Message::text("{").parse_json::<serde_json::Value>().unwrap_err();
    /// assert_eq!(error.kind(), JsonErrorKind::Syntax);
    /// ```
    pub fn kind(&self) -> JsonErrorKind {
        self.kind
    }

    /// The line (from 1) where reading the JSON failed, for [`Syntax`](JsonErrorKind::Syntax)
    /// and [`Data`](JsonErrorKind::Data) errors.
    ///
    /// ```
    /// use tower_websockets::Message;
    ///
    /// let error = Message::text("[1,\n2,,]").parse_json::<Vec<u8>>().unwrap_err();
    /// assert_eq!(error.line(), Some(2));
    /// ```
    pub fn line(&self) -> Option<usize> {
        self.position().map(|(line, _)| line)
    }

    /// The column (from 1) where reading the JSON failed, for
    /// [`Syntax`](JsonErrorKind::Syntax) and [`Data`](JsonErrorKind::Data) errors.
    ///
    /// ```
    /// use tower_websockets::Message;
    ///
    /// let error = Message::text("[1,,]").parse_json::<Vec<u8>>().unwrap_err();
    /// assert_eq!(error.column(), Some(4));
    /// ```
    pub fn column(&self) -> Option<usize> {
        self.position().map(|(_, column)| column)
    }

    fn position(&self) -> Option<(usize, usize)> {
        match (&self.kind, &self.source) {
            (JsonErrorKind::Syntax | JsonErrorKind::Data, Some(e)) if e.line() > 0 => {
                Some((e.line(), e.column()))
            }
            _ => None,
        }
    }

    pub(crate) fn not_text(message: &crate::message::Message) -> Self {
        let what = match message {
            crate::message::Message::Text(_) => "text",
            crate::message::Message::Binary(_) => "binary",
            crate::message::Message::Ping(_) => "ping",
            crate::message::Message::Pong(_) => "pong",
            crate::message::Message::Close(_) => "close",
        };
        Self { kind: JsonErrorKind::NotText, what, source: None }
    }

    pub(crate) fn reading(error: serde_json::Error) -> Self {
        let kind = match error.classify() {
            serde_json::error::Category::Data => JsonErrorKind::Data,
            _ => JsonErrorKind::Syntax,
        };
        Self { kind, what: "", source: Some(error) }
    }

    pub(crate) fn writing(error: serde_json::Error) -> Self {
        Self { kind: JsonErrorKind::Serialize, what: "", source: Some(error) }
    }
}

#[cfg(feature = "json")]
impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(source) = &self.source else {
            return write!(f, "{} message where JSON text was expected", self.what);
        };
        // serde_json's message, without the position it appends: ours goes first.
        let full = source.to_string();
        let position = format!(" at line {} column {}", source.line(), source.column());
        let problem = full.strip_suffix(&position).unwrap_or(&full);
        let what = match self.kind {
            JsonErrorKind::Serialize => return write!(f, "cannot write the value as JSON: {problem}"),
            JsonErrorKind::Data => "JSON of the wrong shape",
            _ => "invalid JSON",
        };
        match self.position() {
            Some((line, column)) => write!(f, "{what} at line {line} column {column}: {problem}"),
            None => write!(f, "{what}: {problem}"),
        }
    }
}

#[cfg(feature = "json")]
impl StdError for JsonError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_ref().map(|e| e as &(dyn StdError + 'static))
    }
}
