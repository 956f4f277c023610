//! [`PreparedMessage`]: a text or binary message encoded once for any number of sockets.

use std::{
    fmt,
    sync::{Arc, Mutex},
};

use bytes::Bytes;

use crate::{
    deflate::compress_alone,
    message::{Message, Utf8Bytes},
    proto::{
        encoder::{EncodedFrame, Encoder},
        frame::OpCode,
    },
};

/// A text or binary message prepared once and sent to many sockets with
/// [`WebSocket::send_prepared`](crate::WebSocket::send_prepared).
///
/// A server frame is not masked, so every socket sends the same bytes: the message is framed
/// once, when it is prepared (its header and its payload), a clone shares that frame (an
/// `Arc`), and a server socket writes it as it is, with no framing or copy of its own (a small
/// one is coalesced with the other frames of its write). With permessage-deflate, the sockets
/// that compress every message alone (no server context takeover) send identical compressed
/// bytes for a given level and window: the compressed frame is made once per such setting, on
/// the first socket that needs it, and kept here for the others (as uWebSockets' shared
/// compressor does). A socket with context takeover compresses the message
/// with its own compressor, since its output depends on what that socket sent before.
///
/// ```
/// use tower_websockets::{WebSocket, broadcast::PreparedMessage};
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
    /// The message as one unmasked frame, as a server sends it.
    frame: EncodedFrame,
    /// Compressed frames (RSV1 set) by (level, window bits), for sockets without context
    /// takeover; `None` where compressing failed (the message then goes out plainly).
    compressed: Mutex<Vec<(u32, u8, Option<EncodedFrame>)>>,
}

impl PreparedMessage {
    fn new(message: Message) -> Self {
        let (payload, opcode) = payload_of(&message);
        let frame = Encoder::frame_with_mask(opcode, true, false, payload, None);
        Self { inner: Arc::new(Inner { message, frame, compressed: Mutex::new(Vec::new()) }) }
    }

    /// A text message.
    ///
    /// ```
    /// use tower_websockets::broadcast::PreparedMessage;
    ///
    /// assert!(PreparedMessage::text("hi").is_text());
    /// ```
    pub fn text(text: impl Into<Utf8Bytes>) -> Self {
        Self::new(Message::Text(text.into()))
    }

    /// A binary message.
    ///
    /// ```
    /// use tower_websockets::broadcast::PreparedMessage;
    ///
    /// assert!(!PreparedMessage::binary(vec![1, 2, 3]).is_text());
    /// ```
    pub fn binary(bytes: impl Into<Bytes>) -> Self {
        Self::new(Message::Binary(bytes.into()))
    }

    /// The payload length in bytes, before any compression.
    ///
    /// ```
    /// use tower_websockets::broadcast::PreparedMessage;
    ///
    /// assert_eq!(PreparedMessage::binary(vec![0; 10]).len(), 10);
    /// ```
    pub fn len(&self) -> usize {
        self.inner.message.len()
    }

    /// Is the payload empty?
    ///
    /// ```
    /// use tower_websockets::broadcast::PreparedMessage;
    ///
    /// assert!(PreparedMessage::text("").is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Is this a text message?
    ///
    /// ```
    /// use tower_websockets::broadcast::PreparedMessage;
    ///
    /// assert!(PreparedMessage::text("hi").is_text());
    /// ```
    pub fn is_text(&self) -> bool {
        matches!(self.inner.message, Message::Text(_))
    }

    /// The message as a [`Message`] (its payload shared, not copied).
    ///
    /// ```
    /// use tower_websockets::{Message, broadcast::PreparedMessage};
    ///
    /// assert_eq!(PreparedMessage::text("hi").to_message(), Message::text("hi"));
    /// ```
    pub fn to_message(&self) -> Message {
        self.inner.message.clone()
    }

    /// The message, borrowed.
    pub(crate) fn message(&self) -> &Message {
        &self.inner.message
    }

    /// The payload and the opcode.
    pub(crate) fn payload(&self) -> (Bytes, OpCode) {
        payload_of(&self.inner.message)
    }

    /// The message as one unmasked frame: what a server socket writes.
    pub(crate) fn frame(&self) -> &EncodedFrame {
        &self.inner.frame
    }

    /// The message as one compressed frame, compressed alone (no context takeover) at `level`
    /// with `window_bits`: made once per setting and kept. `None` if it does not compress.
    pub(crate) fn compressed_frame(&self, level: u32, window_bits: u8) -> Option<EncodedFrame> {
        // The lock is held while compressing, so that sockets asking at the same moment wait for
        // the one result rather than each compressing the message.
        let mut cache = self.inner.compressed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, _, frame)) = cache.iter().find(|(l, b, _)| (*l, *b) == (level, window_bits)) {
            return frame.clone();
        }
        let (payload, opcode) = self.payload();
        let frame = compress_alone(level, window_bits, &payload)
            .map(|compressed| Encoder::frame_with_mask(opcode, true, true, compressed, None));
        cache.push((level, window_bits, frame.clone()));
        frame
    }

    #[cfg(test)]
    fn compressed_forms(&self) -> usize {
        self.inner.compressed.lock().map(|cache| cache.len()).unwrap_or(0)
    }
}

/// A data message's payload and opcode.
fn payload_of(message: &Message) -> (Bytes, OpCode) {
    match message {
        Message::Text(text) => (Bytes::from(text.clone()), OpCode::Text),
        Message::Binary(bytes) => (bytes.clone(), OpCode::Binary),
        // Only the constructors above make one.
        _ => (Bytes::new(), OpCode::Binary),
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
        // Framed once: the frame's payload is the message's own bytes.
        assert_eq!(message.frame().payload().as_ptr(), bytes.as_ptr());
        assert_eq!(message.frame().header(), &[0x82, 126, 0x03, 0xE8]);
    }

    #[test]
    fn a_compressed_form_is_computed_once_per_setting() {
        let message = PreparedMessage::text("hello hello hello hello hello".repeat(20));
        let first = message.compressed_frame(1, 15).expect("compressed");
        let again = message.compressed_frame(1, 15).expect("compressed");
        assert_eq!(
            first.payload().as_ptr(),
            again.payload().as_ptr(),
            "the same bytes, not a second compression"
        );
        assert!(first.payload().len() < message.len() / 4);
        assert_eq!(first.header()[0], 0xC1, "FIN, RSV1, text");
        assert_eq!(message.compressed_forms(), 1);
        let other = message.compressed_frame(9, 10).expect("compressed");
        assert_eq!(message.compressed_forms(), 2);
        assert_ne!(other.payload().as_ptr(), first.payload().as_ptr());
    }
}
