//! Sending a [`PreparedMessage`]: the shared payload as it is, or compressed (once for all the
//! sockets without context takeover, by the socket's own compressor otherwise).

use std::{future::poll_fn, pin::Pin};

use futures_util::Sink;
use tokio_tungstenite::tungstenite;

use super::{WebSocket, compressed_frame};
use crate::{
    broadcast::{Delivery, PreparedMessage, Subscriber},
    deflate::Deflater,
    error::Error,
    message::CloseCode,
};

/// At most this many messages go out between two flushes in
/// [`WebSocket::send_delivery`], so that one burst does not hold the socket's other duties
/// (and the handler's reading) back for long.
const MAX_BATCH: usize = 256;

/// What [`WebSocket::send_delivery`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SentDeliveries {
    /// Messages written (and flushed).
    pub messages: usize,
    /// The subscriber had fallen behind: this many messages were dropped before the next ones
    /// still queued ([`Delivery::Missed`]). Tell the client now if it cares; the batch stopped
    /// here so that the notice keeps its place.
    pub missed: u64,
    /// The subscriber was told to close ([`Delivery::Close`]): close the socket with this code
    /// and [`LAG_CLOSE_REASON`](crate::broadcast::LAG_CLOSE_REASON).
    pub close: Option<CloseCode>,
}

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

    /// Writes a [`Delivery`] from [`Subscriber::recv`], and every message the subscriber
    /// already has queued after it, then flushes once: one write to the connection for a
    /// burst of published messages rather than one per message (as uWebSockets corks what it
    /// publishes). This is how a handler forwards its subscriber's queue; see
    /// [the `broadcast` module](crate::broadcast) for the whole handler.
    ///
    /// The batch stops early at a [`Delivery::Missed`] or [`Delivery::Close`], which the result
    /// reports, and after 256 messages (the rest follow on the next call).
    ///
    /// ```
    /// use tower_websockets::{WebSocket, broadcast::{Hub, LAG_CLOSE_REASON}};
    ///
    /// async fn listen(mut socket: WebSocket, hub: Hub) {
    ///     let mut subscriber = hub.subscriber();
    ///     subscriber.subscribe("news");
    ///     loop {
    ///         let delivery = subscriber.recv().await;
    ///         let Ok(sent) = socket.send_delivery(delivery, &mut subscriber).await else { break };
    ///         if let Some(code) = sent.close {
    ///             let _ = socket.close(code, LAG_CLOSE_REASON).await;
    ///             break;
    ///         }
    ///         if sent.missed > 0 && socket.send(format!("(missed {})", sent.missed)).await.is_err() {
    ///             break;
    ///         }
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send). Messages taken from the queue before the error are lost
    /// (delivery is at most once).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe, as [`send`](Self::send): keep it out of `select!` branches' futures
    /// (call it in the branch's handler, as the module's example does).
    pub async fn send_delivery(
        &mut self,
        delivery: Delivery,
        subscriber: &mut Subscriber,
    ) -> Result<SentDeliveries, Error> {
        let mut sent = SentDeliveries::default();
        let mut next = Some(delivery);
        while let Some(delivery) = next.take() {
            match delivery {
                Delivery::Message(message) => {
                    self.feed_prepared(&message).await?;
                    sent.messages += 1;
                }
                Delivery::Missed(count) => {
                    sent.missed = count;
                    break;
                }
                Delivery::Close(code) => {
                    sent.close = Some(code);
                    break;
                }
            }
            if sent.messages < MAX_BATCH {
                next = subscriber.try_recv();
            }
        }
        if sent.messages > 0 {
            self.flush().await?;
        }
        Ok(sent)
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
