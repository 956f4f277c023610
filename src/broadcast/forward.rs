//! [`Subscriber::forward_to`]: the handler's side of a [`Hub`](super::Hub), over the socket's
//! [`feed_prepared`](WebSocket::feed_prepared) path. Here in `broadcast`, above the socket: the
//! fan-out uses the socket, the socket knows nothing of the fan-out.

use super::{Delivery, Forwarded, LAG_CLOSE_REASON, Subscriber};
use crate::{error::Error, message::CloseFrame, socket::WebSocket};

/// At most this many messages go out between two flushes in [`Subscriber::forward_to`], so that
/// one burst does not hold the socket's other duties (and the handler's reading) back for long.
const MAX_BATCH: usize = 256;

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
