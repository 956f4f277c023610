//! Closing, the socket's side of it (the rules themselves are `proto::close`'s): the checks on a
//! Close the handler sends, the closing handshake of [`WebSocket::close`], and the Closes the
//! socket sends on its own (a peer error, a shutdown).

use std::{task::Context, time::Duration};

use futures_util::{SinkExt, StreamExt};

use super::{
    WebSocket,
    summary::{ClosedBy, Closing},
};
use crate::{
    error::Error,
    message::{CloseCode, CloseFrame, Message, Utf8Bytes},
};

/// How long [`WebSocket::close`] waits for the whole closing handshake.
pub(super) const CLOSE_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks that a Close with `code` and `reason` may be sent.
///
/// # Errors
///
/// [`Error::InvalidClose`] for a code that is not [sendable](CloseCode::is_sendable), or a reason
/// over [`CloseFrame::MAX_REASON_LEN`] bytes.
pub(crate) fn check_sendable(code: CloseCode, reason: &str) -> Result<(), Error> {
    if !code.is_sendable() {
        return Err(Error::InvalidClose(format!("close code {code} may not be sent")));
    }
    if reason.len() > CloseFrame::MAX_REASON_LEN {
        return Err(Error::InvalidClose(format!(
            "close reason is {} bytes; the limit is {}",
            reason.len(),
            CloseFrame::MAX_REASON_LEN
        )));
    }
    Ok(())
}

/// Releases the connection when dropped: when the closing handshake ends, and also when the
/// future of [`WebSocket::close`] is dropped before that.
struct ReleaseOnDrop<'a>(&'a mut WebSocket);

impl Drop for ReleaseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl WebSocket {
    /// Starts the closing handshake with `code` and `reason`, and waits for the peer's Close: 10
    /// seconds at most for the whole handshake, sending included. Messages that arrive meanwhile
    /// are discarded. The connection is released when this returns.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidClose`] for a code that may not be sent (see
    /// [`CloseCode::is_sendable`]) or a reason longer than 123 bytes, and then nothing is sent;
    /// [`Error::CloseTimeout`] when the peer did not answer in time; the error that ended the
    /// connection otherwise.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes (in a `select!`, or under a timeout) releases the
    /// connection all the same: the Close may or may not have gone out, and the peer then sees
    /// the connection end.
    ///
    /// ```
    /// use tower_websockets::{CloseCode, WebSocket};
    ///
    /// async fn goodbye(mut socket: WebSocket) {
    ///     let _ = socket.send("bye").await;
    ///     if let Err(error) = socket.close(CloseCode::NORMAL, "done").await {
    ///         tracing::debug!(%error, "the closing handshake did not complete");
    ///     }
    /// }
    /// ```
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        check_sendable(code, reason)?;
        let frame = CloseFrame::new(code, Utf8Bytes::from(reason));
        let guard = ReleaseOnDrop(self);
        let handshake = async {
            let socket = &mut *guard.0;
            match SinkExt::send(&mut *socket, Message::Close(Some(frame))).await {
                Ok(()) | Err(Error::Closed) => {}
                Err(e) => return Err(e),
            }
            while let Some(item) = socket.next().await {
                item?;
            }
            Ok(())
        };
        tokio::time::timeout(CLOSE_HANDSHAKE_TIMEOUT, handshake).await.unwrap_or(Err(Error::CloseTimeout))
    }

    /// Sends a Close frame the socket decided on itself (a peer error, a shutdown), and starts
    /// writing it out. Nothing when a Close went out already (never two, RFC 6455 §5.5.1).
    pub(super) fn queue_close(&mut self, frame: CloseFrame, cx: &mut Context<'_>) {
        self.queue_close_by(frame, ClosedBy::Server, cx);
    }

    /// [`queue_close`](Self::queue_close), with who decided on it (the server, or a shutdown).
    pub(super) fn queue_close_by(&mut self, frame: CloseFrame, by: ClosedBy, cx: &mut Context<'_>) {
        let Some(connection) = self.state.connection_mut() else { return };
        let Ok(close) = connection.encoder.close(Some((frame.code.0, frame.reason.as_str()))) else { return };
        if connection.queue_close(close) {
            Closing::remember(&mut self.closing, frame.code, by, frame.reason);
            let _ = self.poll_flush_own_frames(cx);
        }
    }

    /// Closes with 1001 once the layer shuts down. With `register`, makes sure `cx` is woken
    /// when that happens.
    #[inline]
    pub(super) fn close_if_shutting_down(&mut self, cx: &mut Context<'_>, register: bool) {
        if self.open.as_mut().is_some_and(|open| open.poll_shutdown_begun(cx, register)) {
            self.close_for_shutdown(cx);
        }
    }

    #[cold]
    #[inline(never)]
    fn close_for_shutdown(&mut self, cx: &mut Context<'_>) {
        tracing::debug!("WebSocket shutdown: closing with 1001");
        self.queue_close_by(
            CloseFrame::new(CloseCode::GOING_AWAY, "server shutting down"),
            ClosedBy::Shutdown,
            cx,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sendable_codes_and_reasons() {
        for code in [1000, 1001, 1003, 1007, 1011, 1014, 3000, 4999] {
            assert_eq!(check_sendable(CloseCode(code), "ok").ok(), Some(()), "{code}");
        }
        for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, u16::MAX] {
            let error = check_sendable(CloseCode(code), "").unwrap_err();
            assert!(matches!(&error, Error::InvalidClose(m) if m.contains("may not be sent")), "{code}");
        }
        let longest = "x".repeat(CloseFrame::MAX_REASON_LEN);
        assert!(check_sendable(CloseCode::NORMAL, &longest).is_ok());
        let error = check_sendable(CloseCode::NORMAL, &format!("{longest}x")).unwrap_err();
        assert_eq!(error.to_string(), "invalid close: close reason is 124 bytes; the limit is 123");
    }
}
