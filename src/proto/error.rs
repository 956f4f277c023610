//! [`ProtocolError`]: every way a peer's bytes can break RFC 6455 or RFC 7692, each with the
//! close code the connection is failed with (RFC 6455 §7.4.1).

use std::fmt;

/// 1002: the peer broke the protocol.
pub(crate) const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// 1007: a payload that is not what its type says (invalid UTF-8, data that does not inflate).
pub(crate) const CLOSE_INVALID_PAYLOAD: u16 = 1007;
/// 1009: a frame or a message over the limit.
pub(crate) const CLOSE_TOO_BIG: u16 = 1009;

/// What the peer did wrong. After one, the decoder stays failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProtocolError {
    /// RSV2 or RSV3 set, or RSV1 without a negotiated extension (RFC 6455 §5.2): 1002.
    ReservedBits {
        /// The three RSV bits, RSV1 highest (0b100 is RSV1 alone).
        bits: u8,
    },
    /// RSV1 on a continuation or a control frame although permessage-deflate was negotiated: it
    /// belongs on a data message's first frame only (RFC 7692 §6): 1002.
    MisplacedRsv1,
    /// A reserved opcode, 3–7 or 11–15 (RFC 6455 §5.2): 1002.
    UnknownOpcode(u8),
    /// A control frame with a payload over 125 bytes (RFC 6455 §5.5): 1002. Found on the
    /// header's second byte, before the extended length.
    ControlFrameTooLong,
    /// A control frame without FIN (RFC 6455 §5.5): 1002.
    FragmentedControlFrame,
    /// A continuation frame with no fragmented message open (RFC 6455 §5.4): 1002.
    UnexpectedContinuation,
    /// A Text or Binary frame while a fragmented message is open (RFC 6455 §5.4): 1002.
    ExpectedContinuation,
    /// A client's frame that is not masked (RFC 6455 §5.1): 1002.
    UnmaskedFrame,
    /// A server's frame that is masked (RFC 6455 §5.1): 1002.
    MaskedFrame,
    /// A 64-bit payload length with its most significant bit set (RFC 6455 §5.2): 1002.
    LengthTopBit,
    /// A Close whose payload is a single byte (RFC 6455 §5.5.1): 1002.
    CloseOneByte,
    /// A Close with a code that may not be sent on the wire (RFC 6455 §7.4): 1002.
    InvalidCloseCode(u16),
    /// A Close whose reason is not UTF-8 (RFC 6455 §5.5.1): 1007.
    InvalidCloseReason,
    /// A text message that is not UTF-8 (RFC 6455 §8.1): 1007.
    InvalidUtf8,
    /// A frame whose declared length is over `max_frame_size`: 1009.
    FrameTooBig {
        /// The declared length.
        size: u64,
        /// The limit.
        max: usize,
    },
    /// A message over `max_message_size`, counted over its fragments, or once inflated: 1009.
    MessageTooBig {
        /// The size reached.
        size: u64,
        /// The limit.
        max: usize,
    },
    /// A compressed message that does not inflate, or has data after its final deflate block
    /// (RFC 7692 §7.2.2, §7.2.3.4): 1007.
    CorruptCompressedData(String),
}

impl ProtocolError {
    /// The close code the connection is failed with.
    pub(crate) fn close_code(&self) -> u16 {
        match self {
            Self::InvalidCloseReason | Self::InvalidUtf8 | Self::CorruptCompressedData(_) => {
                CLOSE_INVALID_PAYLOAD
            }
            Self::FrameTooBig { .. } | Self::MessageTooBig { .. } => CLOSE_TOO_BIG,
            Self::ReservedBits { .. }
            | Self::MisplacedRsv1
            | Self::UnknownOpcode(_)
            | Self::ControlFrameTooLong
            | Self::FragmentedControlFrame
            | Self::UnexpectedContinuation
            | Self::ExpectedContinuation
            | Self::UnmaskedFrame
            | Self::MaskedFrame
            | Self::LengthTopBit
            | Self::CloseOneByte
            | Self::InvalidCloseCode(_) => CLOSE_PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReservedBits { bits } => write!(f, "reserved bits set without an extension: {bits:03b}"),
            Self::MisplacedRsv1 => f.write_str("RSV1 on a frame that is not a data message's first"),
            Self::UnknownOpcode(op) => write!(f, "unknown opcode {op:#x}"),
            Self::ControlFrameTooLong => f.write_str("control frame over 125 bytes"),
            Self::FragmentedControlFrame => f.write_str("fragmented control frame"),
            Self::UnexpectedContinuation => f.write_str("continuation frame with no message to continue"),
            Self::ExpectedContinuation => f.write_str("new data frame inside a fragmented message"),
            Self::UnmaskedFrame => f.write_str("unmasked frame from a client"),
            Self::MaskedFrame => f.write_str("masked frame from a server"),
            Self::LengthTopBit => f.write_str("64-bit payload length with its most significant bit set"),
            Self::CloseOneByte => f.write_str("close frame with a one-byte payload"),
            Self::InvalidCloseCode(code) => write!(f, "close code {code} is not allowed on the wire"),
            Self::InvalidCloseReason => f.write_str("close reason is not UTF-8"),
            Self::InvalidUtf8 => f.write_str("text message is not UTF-8"),
            Self::FrameTooBig { size, max } => write!(f, "frame of {size} bytes; the limit is {max}"),
            Self::MessageTooBig { size, max } => {
                write!(f, "message of {size} bytes or more; the limit is {max}")
            }
            Self::CorruptCompressedData(e) => write!(f, "compressed data does not inflate: {e}"),
        }
    }
}

impl std::error::Error for ProtocolError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_close_code() {
        let cases = [
            (ProtocolError::ReservedBits { bits: 0b010 }, 1002),
            (ProtocolError::MisplacedRsv1, 1002),
            (ProtocolError::UnknownOpcode(3), 1002),
            (ProtocolError::ControlFrameTooLong, 1002),
            (ProtocolError::FragmentedControlFrame, 1002),
            (ProtocolError::UnexpectedContinuation, 1002),
            (ProtocolError::ExpectedContinuation, 1002),
            (ProtocolError::UnmaskedFrame, 1002),
            (ProtocolError::MaskedFrame, 1002),
            (ProtocolError::LengthTopBit, 1002),
            (ProtocolError::CloseOneByte, 1002),
            (ProtocolError::InvalidCloseCode(1005), 1002),
            (ProtocolError::InvalidCloseReason, 1007),
            (ProtocolError::InvalidUtf8, 1007),
            (ProtocolError::CorruptCompressedData("x".into()), 1007),
            (ProtocolError::FrameTooBig { size: 2, max: 1 }, 1009),
            (ProtocolError::MessageTooBig { size: 2, max: 1 }, 1009),
        ];
        for (error, code) in cases {
            assert_eq!(error.close_code(), code, "{error}");
        }
        assert_eq!(
            ProtocolError::ReservedBits { bits: 0b100 }.to_string(),
            "reserved bits set without an extension: 100"
        );
    }
}
