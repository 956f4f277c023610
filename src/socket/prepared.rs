//! Sending a [`PreparedMessage`]: the shared payload as it is, or compressed (once for all the
//! sockets without context takeover, by the socket's own compressor otherwise).

use std::{future::poll_fn, pin::Pin};

use futures_util::Sink;
use tokio_tungstenite::tungstenite;

use super::{WebSocket, compressed_frame};
use crate::{broadcast::PreparedMessage, deflate::Deflater, error::Error};

impl WebSocket {
    /// Sends a [`PreparedMessage`] and flushes it: the way to send one message to many sockets
    /// without encoding it once per socket. Keep-alive, the replies to the peer and the
    /// [`send_uncompressed`](Self::send_uncompressed) rules are as for [`send`](Self::send).
    ///
    /// ```
    /// use tower_websockets::{PreparedMessage, WebSocket};
    ///
    /// async fn announce(sockets: &mut Vec<WebSocket>) {
    ///     let news = PreparedMessage::text("the server restarts at noon");
    ///     // Keep the sockets that took it.
    ///     let mut kept = Vec::new();
    ///     for mut socket in sockets.drain(..) {
    ///         if socket.send_prepared(&news).await.is_ok() {
    ///             kept.push(socket);
    ///         }
    ///     }
    ///     *sockets = kept;
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    ///
    /// # Cancel safety
    ///
    /// As for [`send`](Self::send): not cancel safe.
    pub async fn send_prepared(&mut self, message: &PreparedMessage) -> Result<(), Error> {
        self.feed_prepared(message).await?;
        self.flush().await
    }

    /// Queues a [`PreparedMessage`] without flushing it, as [`feed`](Self::feed) does.
    ///
    /// ```
    /// use tower_websockets::{Error, PreparedMessage, WebSocket};
    ///
    /// async fn replay(socket: &mut WebSocket, log: &[PreparedMessage]) -> Result<(), Error> {
    ///     for message in log {
    ///         socket.feed_prepared(message).await?;
    ///     }
    ///     socket.flush().await
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub async fn feed_prepared(&mut self, message: &PreparedMessage) -> Result<(), Error> {
        poll_fn(|cx| Pin::new(&mut *self).poll_ready(cx)).await?;
        let frame = encode(self.deflater.as_deref_mut(), message);
        self.sending_stream()?.start_send(frame).map_err(Error::from_tungstenite)
    }
}

/// What this socket sends for `message`.
fn encode(deflater: Option<&mut Deflater>, message: &PreparedMessage) -> tungstenite::Message {
    let plain = || message.to_message().into_tungstenite();
    let Some(deflater) = deflater else { return plain() };
    let (payload, opcode) = message.payload();
    if !deflater.wants(payload.len()) {
        return plain();
    }
    let compressed = match deflater.standalone_settings() {
        Some((level, window_bits)) => message.compressed_alone(level, window_bits),
        None => deflater.compress(payload),
    };
    match compressed {
        Some(compressed) => compressed_frame(compressed, opcode),
        None => plain(),
    }
}
