//! The WebSocket protocol as bytes and rules, with no IO (no tokio, no hyper): what RFC 6455 and
//! RFC 7692 say about frames, messages and closing, for the socket to drive.
//!
//! - [`frame`]: [`OpCode`](frame::OpCode), [`FrameHeader`](frame::FrameHeader) (parse and
//!   encode), masking;
//! - [`error`]: [`ProtocolError`](error::ProtocolError), each violation with its close code;
//! - [`decoder`]: [`Decoder`](decoder::Decoder), the peer's bytes to messages and control
//!   frames, every check, fragments, incremental UTF-8, limits before allocation, and an
//!   [`Inflate`](decoder::Inflate) step that `deflate/` implements;
//! - [`encoder`]: [`Encoder`](encoder::Encoder), messages to frames: an inline header and the
//!   payload as it is;
//! - [`close`]: the closing handshake's rules.
//!
//! It depends on `bytes` and `std` only, and names itself as `crate::proto`, so that the fuzz
//! crate compiles the same files with `#[path]`.
//!
//! The socket (`socket/`) drives it: its reader feeds the decoder, its writer queues what the
//! encoder makes, and it follows the close rules; `deflate/` provides the inflate step.

pub(crate) mod close;
pub(crate) mod decoder;
pub(crate) mod encoder;
pub(crate) mod error;
pub(crate) mod frame;
mod utf8;
