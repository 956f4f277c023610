//! Fan-out: one message to many sockets, encoded once.
//!
//! - [`prepared`]: [`PreparedMessage`], a message encoded once, sent with
//!   [`WebSocket::send_prepared`](crate::WebSocket::send_prepared).

mod prepared;

pub use prepared::PreparedMessage;
