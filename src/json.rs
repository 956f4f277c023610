//! Typed JSON messages, with the `json` feature: [`Message::json`],
//! [`PreparedMessage::json`], [`Message::parse_json`], [`WebSocket::recv_json`], and their
//! [`JsonError`].
//!
//! JSON travels in Text messages. A message that is not the JSON a handler expects is an error
//! the handler chooses what to do with: answer with an error event and read on, or close with
//! 1007 (invalid payload data), as RFC 6455 suggests for data that does not fit its message.
//! [`WebSocket::recv_json`] shows both.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

pub use crate::error::{JsonError, JsonErrorKind};
use crate::{error::Error, message::Message, prepared::PreparedMessage, socket::WebSocket};

impl Message {
    /// A Text message holding `value` as JSON.
    ///
    /// ```
    /// use tower_websockets::Message;
    ///
    /// #[derive(serde::Serialize)]
    /// struct Said<'a> {
    ///     nick: &'a str,
    ///     text: &'a str,
    /// }
    ///
    /// let message = Message::json(&Said { nick: "alice", text: "hi \"bob\"" })?;
    /// assert_eq!(message.as_text(), Some(r#"{"nick":"alice","text":"hi \"bob\""}"#));
    /// # Ok::<_, tower_websockets::json::JsonError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A [`JsonError`] of kind [`Serialize`](crate::json::JsonErrorKind::Serialize) when `value` cannot be
    /// written as JSON (a map whose keys are not strings, say).
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, JsonError> {
        serde_json::to_string(value).map(Self::text).map_err(JsonError::writing)
    }

    /// Reads a Text message as JSON of type `T`. `T` may borrow from the message (`&str`
    /// fields).
    ///
    /// ```
    /// use tower_websockets::{Message, json::JsonErrorKind};
    ///
    /// #[derive(Debug, PartialEq, serde::Deserialize)]
    /// #[serde(tag = "type", rename_all = "lowercase")]
    /// enum Command<'a> {
    ///     Join { room: &'a str },
    ///     Say { text: String },
    /// }
    ///
    /// let message = Message::text(r#"{"type":"join","room":"lobby"}"#);
    /// assert_eq!(message.parse_json::<Command>()?, Command::Join { room: "lobby" });
    ///
    /// let error = Message::text(r#"{"type":"shout"}"#).parse_json::<Command>().unwrap_err();
    /// assert_eq!(error.kind(), JsonErrorKind::Data);
    /// assert!(error.to_string().starts_with("JSON of the wrong shape at line 1 column 15: unknown variant `shout`"));
    /// # Ok::<_, tower_websockets::json::JsonError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A [`JsonError`]: [`NotText`](crate::json::JsonErrorKind::NotText) for a message other than Text,
    /// [`Syntax`](crate::json::JsonErrorKind::Syntax) for text that is not JSON,
    /// [`Data`](crate::json::JsonErrorKind::Data) for JSON that is not a `T`.
    pub fn parse_json<'a, T: Deserialize<'a>>(&'a self) -> Result<T, JsonError> {
        match self {
            Self::Text(text) => serde_json::from_str(text.as_str()).map_err(JsonError::reading),
            other => Err(JsonError::not_text(other)),
        }
    }
}

impl PreparedMessage {
    /// A prepared Text message holding `value` as JSON: encoded once, for a
    /// [`Hub`](crate::broadcast::Hub) to publish to many sockets.
    ///
    /// ```
    /// use tower_websockets::broadcast::{Hub, PreparedMessage};
    ///
    /// let hub = Hub::new();
    /// let tick = PreparedMessage::json(&serde_json::json!({ "type": "tick", "n": 1 }))?;
    /// hub.publish("ticks", tick);
    /// # Ok::<_, tower_websockets::json::JsonError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`Message::json`].
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, JsonError> {
        serde_json::to_string(value).map(Self::text).map_err(JsonError::writing)
    }
}

impl WebSocket {
    /// Receives the next data message as JSON of type `T`; Pings and Pongs are skipped (they
    /// are answered for you). `None` once the connection is closed.
    ///
    /// A message that is not a `T` (not JSON, the wrong shape, a Binary message) is
    /// `Some(Err(Error::Json(_)))`, and **the socket stays open**: the next call reads on. What
    /// to do is the handler's choice. Any other error ends the socket, as for
    /// [`recv`](Self::recv).
    ///
    /// Answer with an error event and keep reading:
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use tower_websockets::{Error, Message, WebSocket};
    ///
    /// #[derive(Deserialize)]
    /// #[serde(tag = "type", rename_all = "lowercase")]
    /// enum Command {
    ///     Say { text: String },
    /// }
    ///
    /// #[derive(Serialize)]
    /// #[serde(tag = "type", rename_all = "lowercase")]
    /// enum Event<'a> {
    ///     Said { text: &'a str },
    ///     Error { text: String },
    /// }
    ///
    /// async fn handle(mut socket: WebSocket) -> Result<(), Error> {
    ///     while let Some(received) = socket.recv_json::<Command>().await {
    ///         let event = match &received {
    ///             Ok(Command::Say { text }) => Event::Said { text },
    ///             // Not a command: say what is wrong, and read on.
    ///             Err(Error::Json(problem)) => Event::Error { text: problem.to_string() },
    ///             Err(_) => break, // the socket failed
    ///         };
    ///         socket.send(Message::json(&event).expect("events serialize")).await?;
    ///     }
    ///     Ok(())
    /// }
    /// ```
    ///
    /// Or close with 1007 (invalid payload data):
    ///
    /// ```
    /// use tower_websockets::{CloseCode, Error, WebSocket};
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Reading {
    ///     sensor: u32,
    ///     value: f64,
    /// }
    ///
    /// async fn ingest(mut socket: WebSocket) {
    ///     while let Some(received) = socket.recv_json::<Reading>().await {
    ///         match received {
    ///             Ok(reading) => tracing::info!(reading.sensor, reading.value, "reading"),
    ///             Err(Error::Json(problem)) => {
    ///                 // The reason is at most 123 bytes: keep it short.
    ///                 let _ = socket.close(CloseCode::INVALID_PAYLOAD, "invalid reading").await;
    ///                 tracing::debug!(%problem, "closed with 1007");
    ///                 break;
    ///             }
    ///             Err(_) => break,
    ///         }
    ///     }
    /// }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`recv`](Self::recv).
    pub async fn recv_json<T: DeserializeOwned>(&mut self) -> Option<Result<T, Error>> {
        loop {
            let message = match self.recv().await? {
                Ok(message) => message,
                Err(error) => return Some(Err(error)),
            };
            match message {
                Message::Ping(_) | Message::Pong(_) | Message::Close(_) => {}
                data => return Some(data.parse_json().map_err(Error::Json)),
            }
        }
    }
}
