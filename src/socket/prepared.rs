//! Sending a [`PreparedMessage`]: the shared payload as it is, or compressed (once for all the
//! sockets without context takeover, by the socket's own compressor otherwise).

use std::{future::poll_fn, pin::Pin};

use futures_util::Sink;
use tokio_tungstenite::tungstenite;

use super::{WebSocket, compressed_frame};
use crate::{
    broadcast::{Delivery, Forwarded, LAG_CLOSE_REASON, PreparedMessage, Subscriber},
    deflate::Deflater,
    error::Error,
    message::CloseFrame,
};

/// At most this many messages go out between two flushes in [`Subscriber::forward_to`], so that
/// one burst does not hold the socket's other duties (and the handler's reading) back for long.
const MAX_BATCH: usize = 256;

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

    /// Once the socket can take a message, feeds it the one `next` gives (without flushing):
    /// `Ok(false)` if `next` gives none. A message is taken only when it can be handed over at
    /// once, so a dropped future loses none ([`Subscriber::forward_to`]).
    pub(crate) async fn feed_prepared_from(
        &mut self,
        next: impl FnOnce() -> Option<PreparedMessage>,
    ) -> Result<bool, Error> {
        poll_fn(|cx| Pin::new(&mut *self).poll_ready(cx)).await?;
        let Some(message) = next() else { return Ok(false) };
        let frame = encode(self.deflater.as_deref_mut(), &message);
        self.sending_stream()?.start_send(frame).map_err(Error::from_tungstenite)?;
        Ok(true)
    }
}

/// The handler's side of a [`Hub`](crate::broadcast::Hub): here rather than in `broadcast/`,
/// which the socket depends on, and not the other way round.
impl Subscriber {
    /// Writes what is queued for this subscriber to `socket`: waits until something is (as
    /// [`ready`](Subscriber::ready)), then writes up to 256 messages and flushes once, so that a
    /// burst of published messages is one write to the connection rather than one per message
    /// (as uWebSockets corks what it publishes). The rest, if any, go on the next call.
    ///
    /// Two things stop a batch, and [`Forwarded`] reports them:
    ///
    /// - **Missed messages** (under
    ///   [`LagPolicy::DropOldest`](crate::broadcast::LagPolicy::DropOldest)): `missed` is how
    ///   many were dropped before the messages still queued. The call that reports them writes
    ///   nothing, so a notice you send the client now keeps its place; the next call goes on.
    /// - **The order to close** (under [`LagPolicy::Close`](crate::broadcast::LagPolicy::Close)):
    ///   the subscriber leaves all its topics, and `forward_to` closes the socket itself, with
    ///   the policy's code and [`LAG_CLOSE_REASON`] (the closing handshake, up to 10 seconds, as
    ///   [`WebSocket::close`]). `close` is that frame: end the handler.
    ///
    /// This is the handler's side of the hub; see [the `broadcast` module](crate::broadcast) for
    /// the whole handler, with `select!`.
    ///
    /// ```
    /// use tower_websockets::{WebSocket, broadcast::Subscriber};
    ///
    /// /// A socket that only listens: the news, as it is published.
    /// async fn listen(mut socket: WebSocket, mut subscriber: Subscriber) {
    ///     loop {
    ///         match subscriber.forward_to(&mut socket).await {
    ///             Ok(forwarded) if forwarded.close.is_some() => break, // it fell behind
    ///             Ok(forwarded) if forwarded.missed > 0 => {
    ///                 let notice = format!("(missed {} messages)", forwarded.missed);
    ///                 if socket.send(notice).await.is_err() {
    ///                     break;
    ///                 }
    ///             }
    ///             Ok(_) => {}
    ///             Err(_) => break, // the socket is closed, or failed
    ///         }
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`WebSocket::send`]. Messages taken from the queue and not written when the
    /// socket fails are lost (delivery is at most once).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, in this sense: dropping the future loses no message. A message is taken
    /// from the queue only once the socket can take it, and handed to the socket at once, so
    /// each message is either still queued for the next call or in the socket's write buffer,
    /// which the next send or flush writes out; a missed count is taken only when the call
    /// returns it. Dropped while closing (the order to close), the connection is released, as
    /// when [`WebSocket::close`]'s future is dropped. It still borrows the socket, so in a
    /// `select!` it goes in the branch's handler, after [`ready`](Subscriber::ready), not beside
    /// [`WebSocket::recv`].
    pub async fn forward_to(&mut self, socket: &mut WebSocket) -> Result<Forwarded, Error> {
        self.ready().await;
        let mut forwarded = Forwarded::default();
        match self.take_notice() {
            Some(Delivery::Missed(count)) => {
                forwarded.missed = count;
                return Ok(forwarded);
            }
            Some(Delivery::Close(code)) => {
                if let Err(error) = socket.close(code, LAG_CLOSE_REASON).await {
                    tracing::debug!(%error, "closing a subscriber that fell behind");
                }
                forwarded.close = Some(CloseFrame::new(code, LAG_CLOSE_REASON));
                return Ok(forwarded);
            }
            Some(Delivery::Message(_)) | None => {}
        }
        while forwarded.sent < MAX_BATCH {
            if !socket.feed_prepared_from(|| self.take_message()).await? {
                break;
            }
            forwarded.sent += 1;
        }
        if forwarded.sent > 0 {
            socket.flush().await?;
        }
        Ok(forwarded)
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
