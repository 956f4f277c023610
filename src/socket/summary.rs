//! What a socket did, counted as it goes: its data messages and bytes each way, and how it
//! closed. The layer's [`WebSocketStats`](crate::WebSocketStats) and the `metrics` feature are fed
//! from here, and when a server socket ends, one debug event in its `websocket` span tells its
//! story: how long it lived, what it carried, the close code, who sent it and why.

use std::time::{Duration, Instant};

use super::WebSocket;
use crate::{
    message::{CloseCode, Utf8Bytes},
    metrics::Direction,
};

/// Who sent the Close a socket ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClosedBy {
    /// The peer's Close came first.
    Peer,
    /// The server's: the handler's, or the socket's own on a peer error, a rate limit or a full
    /// sender queue.
    Server,
    /// The layer's graceful shutdown (1001).
    Shutdown,
    /// No Close: the connection ended without a closing handshake (1006).
    Nobody,
}

impl ClosedBy {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Peer => "peer",
            Self::Server => "server",
            Self::Shutdown => "shutdown",
            Self::Nobody => "none",
        }
    }
}

/// The first Close exchanged (or the end without one): why the socket ended.
#[derive(Debug)]
pub(super) struct Closing {
    pub(super) code: CloseCode,
    pub(super) by: ClosedBy,
    pub(super) reason: Utf8Bytes,
}

/// A socket's counts.
#[derive(Debug)]
pub(super) struct Traffic {
    opened: Instant,
    /// Data messages, by [`Direction`].
    messages: [u64; 2],
    /// Their payloads' bytes (uncompressed), by direction.
    payload: [u64; 2],
    /// Wire bytes (read, written), kept when the connection is released.
    wire: [u64; 2],
}

impl Traffic {
    pub(super) fn new() -> Self {
        Self { opened: Instant::now(), messages: [0; 2], payload: [0; 2], wire: [0; 2] }
    }
}

impl Closing {
    /// Remembers why the socket is closing, unless an earlier Close (or end) is already known:
    /// the first one is the story.
    pub(super) fn remember(closing: &mut Option<Self>, code: CloseCode, by: ClosedBy, reason: Utf8Bytes) {
        if closing.is_none() {
            *closing = Some(Self { code, by, reason });
        }
    }
}

impl WebSocket {
    /// The wire bytes so far, read and written.
    fn wire_bytes(&mut self) -> [u64; 2] {
        if let Some(connection) = self.state.connection_mut() {
            self.traffic.wire = [connection.reader.wire_bytes, connection.writer.wire_bytes];
        }
        self.traffic.wire
    }

    /// Counts a data message of `len` bytes (uncompressed) that went `direction`.
    #[inline]
    pub(super) fn count_message(&mut self, direction: Direction, binary: bool, len: usize) {
        let d = direction as usize;
        self.traffic.messages[d] += 1;
        self.traffic.payload[d] += len as u64;
        if let Some(open) = &self.open {
            match direction {
                Direction::Receive => open.tracker().count_received(),
                Direction::Transmit => open.tracker().count_sent(),
            }
            self.metrics.message(direction, binary, len);
            #[cfg(feature = "metrics")]
            {
                let [read, written] = self.wire_bytes();
                self.metrics.wire_bytes(read, written);
            }
        }
    }

    /// Keeps the wire bytes before the connection is released.
    pub(super) fn keep_wire_bytes(&mut self) {
        self.wire_bytes();
    }

    /// The end of a server socket: counts its close code, and logs its story.
    pub(super) fn summarize(&mut self) {
        if self.open.is_none() {
            return;
        }
        let lifetime = self.traffic.opened.elapsed();
        let [bytes_received, bytes_sent] = self.wire_bytes();
        let closing = self.closing.take().unwrap_or(Closing {
            code: CloseCode::ABNORMAL_CLOSURE,
            by: ClosedBy::Nobody,
            reason: Utf8Bytes::from_static(""),
        });
        if let Some(open) = &self.open {
            open.tracker().count_close(closing.code);
        }
        // Message bytes over wire bytes, both ways: what permessage-deflate saved (frame headers
        // and control frames included, so a socket of small messages shows under 1).
        let compression_ratio = self.deflater.is_some().then(|| {
            let payload = self.traffic.payload[0] + self.traffic.payload[1];
            let wire = bytes_received + bytes_sent;
            if wire == 0 { 1.0 } else { payload as f64 / wire as f64 }
        });
        let [messages_received, messages_sent] = self.traffic.messages;
        self.metrics.wire_bytes(bytes_received, bytes_sent);
        self.metrics.closed(closing.code, closing.by.as_str(), lifetime, compression_ratio);
        log(
            &closing,
            lifetime,
            [messages_received, messages_sent],
            [bytes_received, bytes_sent],
            compression_ratio,
        );
    }
}

/// The socket's one event at its end.
fn log(
    closing: &Closing,
    lifetime: Duration,
    messages: [u64; 2],
    bytes: [u64; 2],
    compression_ratio: Option<f64>,
) {
    let code = closing.code;
    let closed_by = closing.by.as_str();
    let reason = closing.reason.as_str();
    let [messages_received, messages_sent] = messages;
    let [bytes_received, bytes_sent] = bytes;
    if closing.by == ClosedBy::Nobody {
        tracing::debug!(
            %code,
            closed_by,
            reason,
            ?lifetime,
            messages_received,
            messages_sent,
            bytes_received,
            bytes_sent,
            compression_ratio,
            "WebSocket closed without a closing handshake"
        );
    } else {
        tracing::debug!(
            %code,
            closed_by,
            reason,
            ?lifetime,
            messages_received,
            messages_sent,
            bytes_received,
            bytes_sent,
            compression_ratio,
            "WebSocket closed"
        );
    }
}
