//! Sending a [`PreparedMessage`]: its frame as it is, or its compressed frame (made once for all
//! the sockets without context takeover), or compressed by the socket's own compressor.

use std::{future::poll_fn, pin::Pin};

use futures_util::Sink;

use super::{State, WebSocket};
use crate::{
    error::Error,
    message::Message,
    prepared::PreparedMessage,
    proto::{encoder::EncodedFrame, frame::Role},
};

impl WebSocket {
    /// Sends a [`PreparedMessage`] and flushes it: the way to send one message to many sockets
    /// without encoding it once per socket. Keep-alive, the replies to the peer and the
    /// [`send_uncompressed`](Self::send_uncompressed) rules are as for [`send`](Self::send).
    ///
    /// ```
    /// use tower_websockets::{WebSocket, broadcast::PreparedMessage};
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
    /// use tower_websockets::{Error, WebSocket, broadcast::PreparedMessage};
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
        self.queue_prepared(message)
    }

    /// Once the socket can take a message, feeds it the one `next` gives (without flushing):
    /// `Ok(false)` if `next` gives none. A message is taken only when it can be handed over at
    /// once, so a dropped future loses none ([`Subscriber::forward_to`]).
    pub(crate) async fn feed_prepared_from(
        &mut self,
        next: impl FnOnce() -> Option<PreparedMessage>,
    ) -> Result<bool, Error> {
        poll_fn(|cx| Pin::new(&mut *self).poll_ready(cx)).await?;
        let Some(message) = next() else { return Ok(false) };
        self.queue_prepared(&message)?;
        Ok(true)
    }
}

/// What this socket sends for `message`: the prepared frame as it is (a server without
/// compression, or a message the deflater leaves alone), the prepared compressed frame (no
/// context takeover), or a frame of its own (compressed by the socket's own deflater, or masked
/// by a client).
fn encode(socket: &mut WebSocket, message: &PreparedMessage) -> Result<Frame, Error> {
    let (payload, opcode) = message.payload();
    if let Some(deflater) = socket.deflater.as_deref_mut() {
        if deflater.wants(payload.len()) {
            let compressed = match deflater.standalone_settings() {
                Some((level, window_bits)) => match message.compressed_frame(level, window_bits) {
                    Some(frame) if socket.is_server() => return Ok(Frame::Prepared(frame)),
                    Some(frame) => Some(frame.payload().clone()),
                    None => None,
                },
                None => deflater.compress(&payload),
            };
            if let Some(compressed) = compressed {
                let frame = socket.sending()?.encoder.frame(opcode, true, true, compressed);
                return Ok(Frame::Own(frame));
            }
        }
    }
    if socket.is_server() {
        return Ok(Frame::Shared);
    }
    Ok(Frame::Own(socket.sending()?.encoder.frame(opcode, true, false, payload)))
}

/// The frame [`encode`] chose.
enum Frame {
    /// The prepared message's own frame.
    Shared,
    /// A prepared compressed frame.
    Prepared(EncodedFrame),
    /// One made by this socket.
    Own(EncodedFrame),
}

impl WebSocket {
    /// Queues a prepared message's frame.
    fn queue_prepared(&mut self, message: &PreparedMessage) -> Result<(), Error> {
        match encode(self, message)? {
            Frame::Shared => self.queue(message.frame())?,
            Frame::Prepared(frame) | Frame::Own(frame) => self.queue(&frame)?,
        }
        let inner = message.message();
        self.count_message(
            crate::metrics::Direction::Transmit,
            matches!(inner, Message::Binary(_)),
            inner.len(),
        );
        Ok(())
    }

    /// Whether this is a server's socket (its frames are not masked).
    fn is_server(&self) -> bool {
        matches!(&self.state, State::Open(c) | State::Ending(c) if c.role == Role::Server)
    }
}
