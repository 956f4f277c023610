//! permessage-deflate (RFC 7692): the options ([`Compression`]), the negotiation
//! ([`negotiate`]), and what was agreed ([`NegotiatedCompression`]).
//!
//! The data path: the socket compresses a data message ([`Deflater`]) into the payload of a frame
//! with RSV1 set, and the protocol core's decoder inflates one through [`MessageInflater`], its
//! inflate step.

mod compress;
mod inflate;
mod negotiate;
mod pool;

pub(crate) use compress::{Deflater, compress_alone};
pub(crate) use inflate::MessageInflater;
pub(crate) use negotiate::negotiate;
#[cfg(feature = "test-util")]
pub(crate) use negotiate::{accept_answer, client_offer};

use crate::error::ConfigError;

/// permessage-deflate options for a layer or for one accept, after ASP.NET Core's
/// `DangerousEnableCompression`, `DisableServerContextTakeover` and `ServerMaxWindowBits`.
///
/// Off by default: compressing secrets next to data an attacker chooses invites CRIME/BREACH
/// attacks (see `docs/security.md`).
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression {
    pub(crate) enabled: bool,
    pub(crate) server_no_context_takeover: bool,
    pub(crate) server_max_window_bits: u8,
    pub(crate) client_max_window_bits: Option<u8>,
    pub(crate) level: u32,
    pub(crate) min_message_size: usize,
}

impl Default for Compression {
    fn default() -> Self {
        Self::disabled()
    }
}

impl Compression {
    /// No compression: offers are ignored and no extension is answered (the default).
    pub const fn disabled() -> Self {
        Self {
            enabled: false,
            server_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: None,
            level: 1,
            min_message_size: 0,
        }
    }

    /// permessage-deflate with context takeover both ways, a 15-bit window, level 1, and every
    /// message compressed (as ASP.NET Core and Python's `websockets` do; see
    /// [`min_message_size`](Self::min_message_size)).
    pub const fn enabled() -> Self {
        Self { enabled: true, ..Self::disabled() }
    }

    /// Is compression on?
    pub const fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Start every message the server sends with an empty compression context, and say so
    /// in the answer (`server_no_context_takeover`). Costs compression ratio; saves the
    /// compressor's memory between messages. Also answered whenever a client asks for it.
    pub const fn server_no_context_takeover(mut self, on: bool) -> Self {
        self.server_no_context_takeover = on;
        self
    }

    /// The largest LZ77 window the server compresses with, 9 to 15 bits (default 15). A client
    /// may ask for less with `server_max_window_bits`; a client's 8 is honoured by compressing
    /// with 9 bits, whose distances stay within 250 bytes.
    pub const fn server_max_window_bits(mut self, bits: u8) -> Self {
        self.server_max_window_bits = bits;
        self
    }

    /// Ask clients that offer `client_max_window_bits` to compress with at most this many bits
    /// (8 to 15), or `None` (the default) to leave their window as they chose it.
    pub const fn client_max_window_bits(mut self, bits: Option<u8>) -> Self {
        self.client_max_window_bits = bits;
        self
    }

    /// The compression level, 0 (store) to 9 (smallest); default 1, the fastest that
    /// compresses.
    pub const fn level(mut self, level: u32) -> Self {
        self.level = level;
        self
    }

    /// Messages shorter than this many bytes go out uncompressed (default 0: every message is
    /// compressed). Tiny messages gain little from compression and cost a compressor call each;
    /// a threshold such as 64 saves CPU where most messages are that small (Node's `ws` uses
    /// 1024).
    pub const fn min_message_size(mut self, bytes: usize) -> Self {
        self.min_message_size = bytes;
        self
    }
}

/// What the handshake agreed on for permessage-deflate, as answered in
/// `Sec-WebSocket-Extensions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NegotiatedCompression {
    pub(crate) server_no_context_takeover: bool,
    pub(crate) client_no_context_takeover: bool,
    pub(crate) server_max_window_bits: Option<u8>,
    pub(crate) client_max_window_bits: Option<u8>,
}

impl NegotiatedCompression {
    /// Does the server start each message with an empty compression context?
    pub const fn server_no_context_takeover(&self) -> bool {
        self.server_no_context_takeover
    }

    /// Does the client start each message with an empty compression context?
    pub const fn client_no_context_takeover(&self) -> bool {
        self.client_no_context_takeover
    }

    /// The `server_max_window_bits` of the answer, if it has one.
    pub const fn server_max_window_bits(&self) -> Option<u8> {
        self.server_max_window_bits
    }

    /// The `client_max_window_bits` of the answer, if it has one.
    pub const fn client_max_window_bits(&self) -> Option<u8> {
        self.client_max_window_bits
    }
}

impl Compression {
    /// Checks the values.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if !(9..=15).contains(&self.server_max_window_bits) {
            return Err(ConfigError::new("compression", "server_max_window_bits must be 9 to 15"));
        }
        if self.client_max_window_bits.is_some_and(|bits| !(8..=15).contains(&bits)) {
            return Err(ConfigError::new("compression", "client_max_window_bits must be 8 to 15"));
        }
        if self.level > 9 {
            return Err(ConfigError::new("compression", "level must be 0 to 9"));
        }
        Ok(())
    }
}
