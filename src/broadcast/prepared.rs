//! [`PreparedMessage`]: a text or binary message encoded once for any number of sockets.

use std::{
    fmt,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use tokio_tungstenite::tungstenite::protocol::frame::coding::Data;

use crate::{
    deflate::compress_alone,
    message::{Message, Utf8Bytes},
};

/// A text or binary message prepared once and sent to many sockets with
/// [`WebSocket::send_prepared`](crate::WebSocket::send_prepared).
///
/// A server frame is not masked, so every socket sends the same payload: a clone shares it (an
/// `Arc`), and a socket copies it only into its own write buffer. With permessage-deflate, the
/// sockets that compress every message alone (no server context takeover) send identical
/// compressed bytes for a given level and window: the message is compressed once per such
/// setting, on the first socket that needs it, and the result is kept here for the others (as
/// uWebSockets' shared compressor does). A socket with context takeover compresses the message
/// with its own compressor, since its output depends on what that socket sent before.
///
/// ```
/// use tower_websockets::{PreparedMessage, WebSocket};
///
/// async fn tell_everyone(sockets: &mut [WebSocket], text: &str) {
///     let message = PreparedMessage::text(text.to_owned());
///     for socket in sockets {
///         // A socket that fails is the caller's to drop; the others still get the message.
///         let _ = socket.send_prepared(&message).await;
///     }
/// }
///
/// let message = PreparedMessage::text("hello");
/// assert_eq!(message.len(), 5);
/// assert_eq!(message.to_message().as_text(), Some("hello"));
/// ```
#[derive(Clone)]
pub struct PreparedMessage {
    inner: Arc<Inner>,
}

struct Inner {
    /// `Message::Text` or `Message::Binary`.
    message: Message,
    /// Compressed payloads by (level, window bits), for sockets without context takeover;
    /// `None` where compressing failed (the message then goes out plainly).
    compressed: Mutex<Vec<(u32, u8, Option<Bytes>)>>,
}

impl PreparedMessage {
    fn new(message: Message) -> Self {
        Self { inner: Arc::new(Inner { message, compressed: Mutex::new(Vec::new()) }) }
    }

    /// A text message.
    ///
    /// ```
    /// use tower_websockets::PreparedMessage;
    ///
    /// assert!(PreparedMessage::text("hi").is_text());
    /// ```
    pub fn text(text: impl Into<Utf8Bytes>) -> Self {
        Self::new(Message::Text(text.into()))
    }

    /// A binary message.
    ///
    /// ```
    /// use tower_websockets::PreparedMessage;
    ///
    /// assert!(!PreparedMessage::binary(vec![1, 2, 3]).is_text());
    /// ```
    pub fn binary(bytes: impl Into<Bytes>) -> Self {
        Self::new(Message::Binary(bytes.into()))
    }

    /// The payload length in bytes, before any compression.
    ///
    /// ```
    /// use tower_websockets::PreparedMessage;
    ///
    /// assert_eq!(PreparedMessage::binary(vec![0; 10]).len(), 10);
    /// ```
    pub fn len(&self) -> usize {
        self.inner.message.len()
    }

    /// Is the payload empty?
    ///
    /// ```
    /// use tower_websockets::PreparedMessage;
    ///
    /// assert!(PreparedMessage::text("").is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Is this a text message?
    ///
    /// ```
    /// use tower_websockets::PreparedMessage;
    ///
    /// assert!(PreparedMessage::text("hi").is_text());
    /// ```
    pub fn is_text(&self) -> bool {
        matches!(self.inner.message, Message::Text(_))
    }

    /// The message as a [`Message`] (its payload shared, not copied).
    ///
    /// ```
    /// use tower_websockets::{Message, PreparedMessage};
    ///
    /// assert_eq!(PreparedMessage::text("hi").to_message(), Message::text("hi"));
    /// ```
    pub fn to_message(&self) -> Message {
        self.inner.message.clone()
    }

    /// The uncompressed payload and its opcode.
    pub(crate) fn payload(&self) -> (&[u8], Data) {
        match &self.inner.message {
            Message::Text(text) => (text.as_bytes(), Data::Text),
            Message::Binary(bytes) => (bytes, Data::Binary),
            // Only the constructors above make one.
            _ => (&[], Data::Binary),
        }
    }

    /// The payload compressed alone with `level` and `window_bits`: computed by the first
    /// socket that asks, then shared. `None` if compressing failed.
    pub(crate) fn compressed_alone(&self, level: u32, window_bits: u8) -> Option<Bytes> {
        // The lock is held while compressing, so that sockets asking at the same moment wait for
        // the one result rather than each compressing the message.
        let mut cache = self.inner.compressed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, _, payload)) = cache.iter().find(|(l, b, _)| (*l, *b) == (level, window_bits)) {
            return payload.clone();
        }
        let payload = compress_alone(level, window_bits, self.payload().0);
        cache.push((level, window_bits, payload.clone()));
        payload
    }

    /// How many compressed forms are cached (for tests).
    #[cfg(test)]
    fn compressed_forms(&self) -> usize {
        self.inner.compressed.lock().map(|cache| cache.len()).unwrap_or(0)
    }
}

impl fmt::Debug for PreparedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedMessage")
            .field("text", &self.is_text())
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl From<&str> for PreparedMessage {
    fn from(text: &str) -> Self {
        Self::text(text)
    }
}

impl From<String> for PreparedMessage {
    fn from(text: String) -> Self {
        Self::text(text)
    }
}

impl From<Utf8Bytes> for PreparedMessage {
    fn from(text: Utf8Bytes) -> Self {
        Self::text(text)
    }
}

impl From<Bytes> for PreparedMessage {
    fn from(bytes: Bytes) -> Self {
        Self::binary(bytes)
    }
}

impl From<Vec<u8>> for PreparedMessage {
    fn from(bytes: Vec<u8>) -> Self {
        Self::binary(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_payload() {
        let message = PreparedMessage::binary(vec![7u8; 1000]);
        let clone = message.clone();
        assert_eq!(message.payload().0.as_ptr(), clone.payload().0.as_ptr());
        let Message::Binary(bytes) = message.to_message() else { panic!("binary") };
        assert_eq!(bytes.as_ptr(), message.payload().0.as_ptr(), "to_message does not copy");
    }

    #[test]
    fn a_compressed_form_is_computed_once_per_setting() {
        let message = PreparedMessage::text("hello hello hello hello hello".repeat(20));
        let first = message.compressed_alone(1, 15).expect("compressed");
        let again = message.compressed_alone(1, 15).expect("compressed");
        assert_eq!(first.as_ptr(), again.as_ptr(), "the same bytes, not a second compression");
        assert!(first.len() < message.len() / 4);
        assert_eq!(message.compressed_forms(), 1);
        let other = message.compressed_alone(9, 10).expect("compressed");
        assert_eq!(message.compressed_forms(), 2);
        assert_ne!(other.as_ptr(), first.as_ptr());
    }
}
