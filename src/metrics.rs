//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`): what the
//! sockets, handshakes and hubs count, for whatever recorder the application installs.
//!
//! The names follow the OpenTelemetry semantic conventions' style (`http.server.*`,
//! `signalr.server.*`); `docs/guide.md` has the table. Attributes are few and bounded: never a
//! path, origin, address or user.
//!
//! Handles are made once per socket (when it opens) and once per hub (when it is built), never
//! per message: without a recorder they are no-ops, and a message costs a few branches. Without
//! the feature the types below are empty and their methods do nothing, so every hook compiles
//! away.

/// Which way a message or a byte went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// From the peer.
    Receive = 0,
    /// To the peer.
    Transmit = 1,
}

#[cfg(feature = "metrics")]
pub(crate) use on::*;

#[cfg(not(feature = "metrics"))]
pub(crate) use off::*;

/// The metrics' names.
#[cfg(feature = "metrics")]
pub(crate) mod names {
    pub(crate) const ACTIVE_CONNECTIONS: &str = "websocket.server.active_connections";
    pub(crate) const CONNECTION_DURATION: &str = "websocket.server.connection.duration";
    pub(crate) const HANDSHAKES: &str = "websocket.server.handshakes";
    pub(crate) const MESSAGES: &str = "websocket.server.messages";
    pub(crate) const MESSAGE_SIZE: &str = "websocket.server.message.size";
    pub(crate) const BYTES: &str = "websocket.server.bytes";
    pub(crate) const COMPRESSION_RATIO: &str = "websocket.server.compression.ratio";
    pub(crate) const HUB_PUBLISHED: &str = "websocket.hub.published";
    pub(crate) const HUB_DROPPED: &str = "websocket.hub.dropped";
    pub(crate) const HUB_RELAY_FAILURES: &str = "websocket.hub.relay_failures";
}

#[cfg(feature = "metrics")]
mod on {
    use std::{sync::Once, time::Duration};

    use metrics::{Counter, Gauge, Histogram, Unit, counter, gauge, histogram};

    use super::{Direction, names::*};
    use crate::message::CloseCode;

    const DIRECTION: &str = "network.io.direction";
    const DIRECTIONS: [&str; 2] = ["receive", "transmit"];
    const MESSAGE_TYPE: &str = "websocket.message.type";
    const TYPES: [&str; 2] = ["text", "binary"];

    /// Describes the metrics (unit and help text) to the recorder, once per process.
    fn describe() {
        static DESCRIBED: Once = Once::new();
        DESCRIBED.call_once(|| {
            metrics::describe_gauge!(ACTIVE_CONNECTIONS, Unit::Count, "WebSocket connections open now");
            metrics::describe_histogram!(
                CONNECTION_DURATION,
                Unit::Seconds,
                "How long WebSocket connections lived, by close code and who closed"
            );
            metrics::describe_counter!(HANDSHAKES, Unit::Count, "WebSocket handshakes, by outcome");
            metrics::describe_counter!(
                MESSAGES,
                Unit::Count,
                "WebSocket data messages, by direction and type"
            );
            metrics::describe_histogram!(
                MESSAGE_SIZE,
                Unit::Bytes,
                "WebSocket data messages' payload sizes (uncompressed), by direction and type"
            );
            metrics::describe_counter!(BYTES, Unit::Bytes, "Bytes on the wire (frames), by direction");
            metrics::describe_histogram!(
                COMPRESSION_RATIO,
                "Message bytes over wire bytes of each permessage-deflate connection, when it ends"
            );
            metrics::describe_counter!(HUB_PUBLISHED, Unit::Count, "Messages published to hubs");
            metrics::describe_counter!(
                HUB_DROPPED,
                Unit::Count,
                "Messages dropped from the queues of subscribers that fell behind"
            );
            metrics::describe_counter!(
                HUB_RELAY_FAILURES,
                Unit::Count,
                "Published messages the backplane could not take or carry"
            );
        });
    }

    /// The `websocket.close.code` attribute: 1000–1015 as themselves, an application's code by
    /// its range (a peer chooses it: 2,000 values would be 2,000 series).
    fn close_code_label(code: CloseCode) -> &'static str {
        const NAMED: [&str; 16] = [
            "1000", "1001", "1002", "1003", "1004", "1005", "1006", "1007", "1008", "1009", "1010", "1011",
            "1012", "1013", "1014", "1015",
        ];
        match code.0 {
            1000..=1015 => NAMED[usize::from(code.0 - 1000)],
            3000..=3999 => "3xxx",
            4000..=4999 => "4xxx",
            _ => "other",
        }
    }

    /// Counts a handshake the layer or the extractor refused.
    pub(crate) fn handshake_refused(reason: &'static str, status: http::StatusCode) {
        describe();
        counter!(
            HANDSHAKES,
            "websocket.handshake.outcome" => "refused",
            "error.type" => reason,
            "http.response.status_code" => status.as_u16().to_string(),
        )
        .increment(1);
    }

    /// A server socket's handles.
    #[derive(Debug)]
    pub(crate) struct SocketMetrics(Option<Box<Handles>>);

    #[derive(Debug)]
    struct Handles {
        /// By direction, then type.
        messages: [[Counter; 2]; 2],
        sizes: [[Histogram; 2]; 2],
        bytes: [Counter; 2],
        active: Gauge,
        /// The wire bytes counted so far, by direction.
        reported: [u64; 2],
    }

    impl SocketMetrics {
        /// For a client socket: counts nothing.
        pub(crate) fn none() -> Self {
            Self(None)
        }

        /// A server socket has opened: counts its handshake and it as active.
        pub(crate) fn open() -> Self {
            describe();
            counter!(HANDSHAKES, "websocket.handshake.outcome" => "accepted").increment(1);
            let active = gauge!(ACTIVE_CONNECTIONS);
            active.increment(1.0);
            let by_type = |direction: &'static str| {
                [
                    counter!(MESSAGES, DIRECTION => direction, MESSAGE_TYPE => TYPES[0]),
                    counter!(MESSAGES, DIRECTION => direction, MESSAGE_TYPE => TYPES[1]),
                ]
            };
            let sizes = |direction: &'static str| {
                [
                    histogram!(MESSAGE_SIZE, DIRECTION => direction, MESSAGE_TYPE => TYPES[0]),
                    histogram!(MESSAGE_SIZE, DIRECTION => direction, MESSAGE_TYPE => TYPES[1]),
                ]
            };
            Self(Some(Box::new(Handles {
                messages: [by_type(DIRECTIONS[0]), by_type(DIRECTIONS[1])],
                sizes: [sizes(DIRECTIONS[0]), sizes(DIRECTIONS[1])],
                bytes: [
                    counter!(BYTES, DIRECTION => DIRECTIONS[0]),
                    counter!(BYTES, DIRECTION => DIRECTIONS[1]),
                ],
                active,
                reported: [0, 0],
            })))
        }

        /// A data message of `len` bytes (uncompressed) went `direction`.
        #[inline]
        pub(crate) fn message(&mut self, direction: Direction, binary: bool, len: usize) {
            if let Some(handles) = self.0.as_deref() {
                let (d, t) = (direction as usize, usize::from(binary));
                handles.messages[d][t].increment(1);
                handles.sizes[d][t].record(len as f64);
            }
        }

        /// The wire bytes so far, read and written: what is new since the last call is counted.
        #[inline]
        pub(crate) fn wire_bytes(&mut self, received: u64, sent: u64) {
            if let Some(handles) = self.0.as_deref_mut() {
                for (i, total) in [received, sent].into_iter().enumerate() {
                    let new = total.saturating_sub(handles.reported[i]);
                    if new > 0 {
                        handles.bytes[i].increment(new);
                        handles.reported[i] = total;
                    }
                }
            }
        }

        /// The socket has ended.
        pub(crate) fn closed(
            &mut self,
            code: CloseCode,
            closed_by: &'static str,
            lifetime: Duration,
            compression_ratio: Option<f64>,
        ) {
            let Some(handles) = self.0.take() else { return };
            handles.active.decrement(1.0);
            histogram!(
                CONNECTION_DURATION,
                "websocket.close.code" => close_code_label(code),
                "websocket.close.initiator" => closed_by,
            )
            .record(lifetime.as_secs_f64());
            if let Some(ratio) = compression_ratio {
                histogram!(COMPRESSION_RATIO).record(ratio);
            }
        }
    }

    /// A hub's handles.
    #[derive(Debug)]
    pub(crate) struct HubMetrics {
        published: Counter,
        dropped: Counter,
        relay_failures: Counter,
    }

    impl HubMetrics {
        pub(crate) fn new() -> Self {
            describe();
            Self {
                published: counter!(HUB_PUBLISHED),
                dropped: counter!(HUB_DROPPED),
                relay_failures: counter!(HUB_RELAY_FAILURES),
            }
        }

        #[inline]
        pub(crate) fn published(&self) {
            self.published.increment(1);
        }

        #[inline]
        pub(crate) fn dropped(&self, messages: u64) {
            self.dropped.increment(messages);
        }

        #[inline]
        pub(crate) fn relay_failure(&self) {
            self.relay_failures.increment(1);
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn close_code_labels_are_bounded() {
            assert_eq!(close_code_label(CloseCode::NORMAL), "1000");
            assert_eq!(close_code_label(CloseCode(1015)), "1015");
            assert_eq!(close_code_label(CloseCode(3042)), "3xxx");
            assert_eq!(close_code_label(CloseCode(4999)), "4xxx");
            assert_eq!(close_code_label(CloseCode(2000)), "other");
            let labels: std::collections::HashSet<_> =
                (0..=u16::MAX).map(|c| close_code_label(CloseCode(c))).collect();
            assert_eq!(labels.len(), 19);
        }
    }
}

/// Without the feature: nothing is counted, and every hook is an empty inline function (with
/// the same `self` as the feature's, so that the call sites are the same).
#[cfg(not(feature = "metrics"))]
#[allow(clippy::unused_self)]
mod off {
    use std::time::Duration;

    use super::Direction;
    use crate::message::CloseCode;

    #[inline(always)]
    pub(crate) fn handshake_refused(_reason: &'static str, _status: http::StatusCode) {}

    #[derive(Debug)]
    pub(crate) struct SocketMetrics;

    impl SocketMetrics {
        #[inline(always)]
        pub(crate) fn none() -> Self {
            Self
        }

        #[inline(always)]
        pub(crate) fn open() -> Self {
            Self
        }

        #[inline(always)]
        pub(crate) fn message(&mut self, _direction: Direction, _binary: bool, _len: usize) {}

        #[inline(always)]
        pub(crate) fn wire_bytes(&mut self, _received: u64, _sent: u64) {}

        #[inline(always)]
        pub(crate) fn closed(&mut self, _: CloseCode, _: &'static str, _: Duration, _: Option<f64>) {}
    }

    #[derive(Debug)]
    pub(crate) struct HubMetrics;

    impl HubMetrics {
        #[inline(always)]
        pub(crate) fn new() -> Self {
            Self
        }

        #[inline(always)]
        pub(crate) fn published(&self) {}

        #[inline(always)]
        pub(crate) fn dropped(&self, _messages: u64) {}

        #[inline(always)]
        pub(crate) fn relay_failure(&self) {}
    }
}
