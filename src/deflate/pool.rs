//! Compression state shared between the messages of sockets that start every message afresh
//! (no context takeover): such a socket borrows a compressor or an inflater for one message and
//! gives it back, so that it holds none between messages (about 371 KiB and 46 KiB with
//! zlib-rs), as uWebSockets' shared compressor does.

use std::sync::Mutex;

use flate2::{Compress, Decompress};

/// Idle states kept for reuse, per kind; more are dropped.
const KEEP: usize = 16;

/// Idle compressors, with the level and window bits they were made with.
static COMPRESSORS: Mutex<Vec<(u32, u8, Compress)>> = Mutex::new(Vec::new());
/// Idle inflaters (all raw deflate with a 15-bit window).
static INFLATERS: Mutex<Vec<Decompress>> = Mutex::new(Vec::new());

/// A compressor for `level` and `window_bits` (9 to 15), reset: an idle one, or a new one.
pub(crate) fn take_compressor(level: u32, window_bits: u8) -> Compress {
    let idle = {
        let mut idle = COMPRESSORS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        idle.iter().position(|(l, b, _)| (*l, *b) == (level, window_bits)).map(|i| idle.swap_remove(i).2)
    };
    idle.unwrap_or_else(|| {
        Compress::new_with_window_bits(flate2::Compression::new(level), false, window_bits)
    })
}

/// Gives a compressor back, reset, for another message.
pub(crate) fn give_compressor(level: u32, window_bits: u8, mut compress: Compress) {
    compress.reset();
    let mut idle = COMPRESSORS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if idle.len() < KEEP {
        idle.push((level, window_bits, compress));
    }
}

/// An inflater, reset: an idle one, or a new one.
pub(crate) fn take_inflater() -> Decompress {
    let idle = INFLATERS.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop();
    idle.unwrap_or_else(|| Decompress::new(false))
}

/// Gives an inflater back, reset, for another message.
pub(crate) fn give_inflater(mut decompress: Decompress) {
    decompress.reset(false);
    let mut idle = INFLATERS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if idle.len() < KEEP {
        idle.push(decompress);
    }
}
