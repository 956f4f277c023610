//! What the fuzz targets share: a counting allocator, a parser for what the server writes, a
//! reference model of RFC 6455 §5 for what a client sends, and the handshake input format.
//!
//! Targets (`fuzz_targets/`):
//! - `handshake`: a request head, as text, through `WebSocketLayer` and the extractor;
//! - `frames`: bytes from a peer to an accepted `WebSocket` over a real hyper connection;
//! - `deflate_offer`: permessage-deflate offers, built by a grammar, through the layer and the
//!   extractor, the answer checked against a reference decision (`deflate`).
#![deny(unsafe_code)]

pub mod alloc;
pub mod deflate;
pub mod handshake;
pub mod reference;
pub mod wire;

/// Limits the `frames` target gives the socket: small, so that inputs can reach them.
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;
/// See [`MAX_MESSAGE_SIZE`].
pub const MAX_FRAME_SIZE: usize = 16 * 1024;

/// The one runtime shape the targets use: one thread, its clock paused. A stuck future then
/// shows at once as a timeout, because the clock jumps ahead whenever nothing can run.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime")
}
