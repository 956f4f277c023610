//! The closing handshake's rules (RFC 6455 §5.5.1, §7), as plain state: which codes may be on
//! the wire, what to answer a peer's Close with, never a second Close of ours, no data once
//! ours is out, and when the handshake is complete.

use crate::proto::{decoder::CloseFrame, error::ProtocolError};

/// 1000: normal closure.
#[cfg(test)]
pub(crate) const NORMAL: u16 = 1000;

/// Whether `code` may be carried by a Close on the wire (RFC 6455 §7.4.1, §7.4.2 and the IANA
/// registry): 1000–1003, 1007–1014 and 3000–4999. 1004 is reserved; 1005, 1006 and 1015 are
/// for reporting only, never sent; the rest of 0–2999 is unassigned or for the protocol's
/// future use; nothing is defined from 5000 up.
pub(crate) const fn is_allowed_on_wire(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// What to send in answer to the peer's Close (§5.5.1): its code echoed, or an empty Close
/// when it had none (a code of 1005, "no status", is never sent).
pub(crate) fn reply_code(received: Option<&CloseFrame>) -> Option<u16> {
    received.map(|frame| frame.code)
}

/// The Close that fails the connection after `error` (§7.1.7): its code.
pub(crate) fn failure_code(error: &ProtocolError) -> u16 {
    error.close_code()
}

/// Where a connection is in its closing handshake.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CloseState {
    /// Our Close has been queued.
    sent: bool,
    /// The peer's Close has arrived.
    received: bool,
}

/// What to do after the peer's Close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnPeerClose {
    /// Answer with a Close: with this code, or empty.
    Reply(Option<u16>),
    /// Our Close went out first: the handshake is complete, send nothing more.
    Complete,
}

impl CloseState {
    /// The peer's Close has arrived: answer it, unless ours is already out (never two Closes).
    pub(crate) fn on_peer_close(&mut self, received: Option<&CloseFrame>) -> OnPeerClose {
        self.received = true;
        if self.sent {
            OnPeerClose::Complete
        } else {
            self.sent = true;
            OnPeerClose::Reply(reply_code(received))
        }
    }

    /// We want to send a Close of our own (a `close()` call, a shutdown, a peer error).
    /// `false` when one is out already: send nothing.
    pub(crate) fn start_close(&mut self) -> bool {
        !std::mem::replace(&mut self.sent, true)
    }

    /// Whether data frames (and Pings) may still be sent: not once our Close is out (§5.5.1).
    pub(crate) fn may_send_data(&self) -> bool {
        !self.sent
    }

    /// Whether both Closes have been exchanged: the server then closes the connection (§7.1.1).
    pub(crate) fn is_complete(&self) -> bool {
        self.sent && self.received
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn codes_allowed_on_the_wire() {
        for code in [1000, 1001, 1002, 1003, 1007, 1008, 1011, 1014, 3000, 3999, 4000, 4999] {
            assert!(is_allowed_on_wire(code), "{code}");
        }
        for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, u16::MAX] {
            assert!(!is_allowed_on_wire(code), "{code}");
        }
    }

    #[test]
    fn a_peer_close_is_echoed_once_and_data_stops() {
        let frame = CloseFrame { code: 4001, reason: Bytes::from_static(b"bye") };
        let mut state = CloseState::default();
        assert!(state.may_send_data());
        assert_eq!(state.on_peer_close(Some(&frame)), OnPeerClose::Reply(Some(4001)));
        assert!(state.is_complete());
        assert!(!state.may_send_data());
        // Our own Close after that: not sent.
        assert!(!state.start_close());
        // No code: an empty Close back.
        assert_eq!(CloseState::default().on_peer_close(None), OnPeerClose::Reply(None));
    }

    #[test]
    fn our_close_first_then_the_peer_completes_it() {
        let mut state = CloseState::default();
        assert!(state.start_close());
        assert!(!state.start_close(), "never two Closes");
        assert!(!state.may_send_data());
        assert!(!state.is_complete());
        assert_eq!(state.on_peer_close(None), OnPeerClose::Complete);
        assert!(state.is_complete());
        assert_eq!(failure_code(&ProtocolError::InvalidUtf8), 1007);
        assert_eq!(failure_code(&ProtocolError::UnmaskedFrame), 1002);
        assert!(is_allowed_on_wire(NORMAL));
    }
}
