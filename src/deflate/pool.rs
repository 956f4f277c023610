//! Compression state shared between the messages of sockets that start every message afresh
//! (no context takeover): such a socket borrows a compressor or an inflater for one message and
//! gives it back, so that it holds none between messages (about 371 KiB and 46 KiB with
//! zlib-rs), as uWebSockets' shared compressor does.
//!
//! The pools shrink when idle: a state given back and not taken again within [`IDLE_LIMIT`] is
//! dropped, by the next take or give or, once traffic stops, by a small reaper task on the
//! runtime that gave it back (one at a time, ending when both pools are empty). A state given
//! back outside a Tokio runtime waits for the next take or give.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use flate2::{Compress, Decompress};
use tokio::time::Instant;

/// Idle states kept for reuse, per kind; more are dropped.
const KEEP: usize = 16;

/// How long an idle state is kept for reuse.
const IDLE_LIMIT: Duration = Duration::from_secs(30);

/// Idle states of one kind, each with the time it was given back; the most recent last.
struct Pool<K, T> {
    idle: Mutex<Vec<(Instant, K, T)>>,
}

impl<K: PartialEq, T> Pool<K, T> {
    const fn new() -> Self {
        Self { idle: Mutex::new(Vec::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Instant, K, T)>> {
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The most recently given back state made with `key`, if any.
    fn take(&self, key: &K, now: Instant) -> Option<T> {
        let mut idle = self.lock();
        prune(&mut idle, now);
        let i = idle.iter().rposition(|(_, k, _)| k == key)?;
        Some(idle.remove(i).2)
    }

    /// Keeps `state` for reuse, unless [`KEEP`] are kept already.
    fn give(&self, key: K, state: T, now: Instant) {
        let mut idle = self.lock();
        prune(&mut idle, now);
        if idle.len() < KEEP {
            idle.push((now, key, state));
        }
    }

    /// Drops the states idle for [`IDLE_LIMIT`] or more; says how many are left.
    fn shrink(&self, now: Instant) -> usize {
        let mut idle = self.lock();
        prune(&mut idle, now);
        idle.len()
    }
}

/// Drops the states given back [`IDLE_LIMIT`] or more before `now` (the oldest come first).
fn prune<K, T>(idle: &mut Vec<(Instant, K, T)>, now: Instant) {
    let stale =
        idle.iter().take_while(|(since, ..)| now.saturating_duration_since(*since) >= IDLE_LIMIT).count();
    idle.drain(..stale);
}

/// The compressors and inflaters kept for reuse, and their reaper.
struct Pools {
    /// Idle compressors, by the level and window bits they were made with.
    compressors: Pool<(u32, u8), Compress>,
    /// Idle inflaters (all raw deflate with a 15-bit window).
    inflaters: Pool<(), Decompress>,
    /// Is a reaper task running?
    reaper: AtomicBool,
}

impl Pools {
    const fn new() -> Self {
        Self { compressors: Pool::new(), inflaters: Pool::new(), reaper: AtomicBool::new(false) }
    }

    /// Starts the reaper on the current Tokio runtime, if there is one and no reaper runs:
    /// every [`IDLE_LIMIT`] it drops the stale states, and it ends once both pools are empty.
    fn start_reaper(&'static self) {
        /// Clears the flag when the task ends, also when its runtime drops it.
        struct Running(&'static AtomicBool);
        impl Drop for Running {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }

        if self.reaper.swap(true, Ordering::AcqRel) {
            return;
        }
        let running = Running(&self.reaper);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // `running` clears the flag
        };
        runtime.spawn(async move {
            let _running = running;
            loop {
                tokio::time::sleep(IDLE_LIMIT).await;
                let now = Instant::now();
                // A state given back while this loop ends is pruned by a later take or give,
                // or by the next reaper, which that give starts once the flag is clear.
                if self.compressors.shrink(now) + self.inflaters.shrink(now) == 0 {
                    break;
                }
            }
        });
    }
}

static POOLS: Pools = Pools::new();

/// A compressor for `level` and `window_bits` (9 to 15), reset: an idle one, or a new one.
pub(crate) fn take_compressor(level: u32, window_bits: u8) -> Compress {
    POOLS.compressors.take(&(level, window_bits), Instant::now()).unwrap_or_else(|| {
        Compress::new_with_window_bits(flate2::Compression::new(level), false, window_bits)
    })
}

/// Gives a compressor back, reset, for another message.
pub(crate) fn give_compressor(level: u32, window_bits: u8, mut compress: Compress) {
    compress.reset();
    POOLS.compressors.give((level, window_bits), compress, Instant::now());
    POOLS.start_reaper();
}

/// An inflater, reset: an idle one, or a new one.
pub(crate) fn take_inflater() -> Decompress {
    POOLS.inflaters.take(&(), Instant::now()).unwrap_or_else(|| Decompress::new(false))
}

/// Gives an inflater back, reset, for another message.
pub(crate) fn give_inflater(mut decompress: Decompress) {
    decompress.reset(false);
    POOLS.inflaters.give((), decompress, Instant::now());
    POOLS.start_reaper();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_most_recent_state_with_the_same_settings() {
        let pool: Pool<u8, &str> = Pool::new();
        let now = Instant::now();
        pool.give(9, "nine", now);
        pool.give(15, "old fifteen", now);
        pool.give(15, "new fifteen", now);
        assert_eq!(pool.take(&15, now), Some("new fifteen"));
        assert_eq!(pool.take(&15, now), Some("old fifteen"));
        assert_eq!(pool.take(&15, now), None);
        assert_eq!(pool.take(&9, now), Some("nine"));
    }

    #[test]
    fn keeps_at_most_keep_states() {
        let pool: Pool<(), usize> = Pool::new();
        let now = Instant::now();
        for i in 0..KEEP + 5 {
            pool.give((), i, now);
        }
        assert_eq!(pool.shrink(now), KEEP);
    }

    #[test]
    fn drops_states_idle_for_the_limit() {
        let pool: Pool<(), &str> = Pool::new();
        let start = Instant::now();
        pool.give((), "first", start);
        pool.give((), "second", start + Duration::from_secs(20));
        // Just under the limit for the first: both kept.
        assert_eq!(pool.shrink(start + IDLE_LIMIT - Duration::from_millis(1)), 2);
        // The first is stale now, the second not yet.
        assert_eq!(pool.shrink(start + IDLE_LIMIT), 1);
        // A take prunes too: the second is stale after its own 30 s.
        assert_eq!(pool.take(&(), start + Duration::from_secs(20) + IDLE_LIMIT), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_reaper_empties_the_pools_once_traffic_stops_and_then_ends() {
        // Pools of this test's own (the global ones are shared with the other tests).
        let pools: &'static Pools = Box::leak(Box::new(Pools::new()));
        pools.inflaters.give((), Decompress::new(false), Instant::now());
        pools.start_reaper();
        assert!(pools.reaper.load(Ordering::Acquire), "the reaper runs");
        tokio::time::sleep(IDLE_LIMIT / 2).await;
        pools.compressors.give((6, 15), Compress::new(flate2::Compression::new(6), false), Instant::now());
        pools.start_reaper(); // one reaper at a time: this one does nothing

        // At the first tick, only the inflater is stale.
        tokio::time::sleep(IDLE_LIMIT / 2 + Duration::from_millis(1)).await;
        tokio::task::yield_now().await;
        assert_eq!(
            (pools.inflaters.shrink(Instant::now()), pools.compressors.shrink(Instant::now())),
            (0, 1)
        );
        assert!(pools.reaper.load(Ordering::Acquire), "the reaper waits for the compressor");

        // At the second, the compressor too, and the reaper ends.
        tokio::time::sleep(IDLE_LIMIT).await;
        tokio::task::yield_now().await;
        assert_eq!(pools.compressors.shrink(Instant::now()), 0);
        assert!(!pools.reaper.load(Ordering::Acquire), "the reaper ended with the pools empty");
    }

    #[test]
    fn without_a_runtime_no_reaper_starts() {
        let pools: &'static Pools = Box::leak(Box::new(Pools::new()));
        pools.inflaters.give((), Decompress::new(false), Instant::now());
        pools.start_reaper();
        assert!(!pools.reaper.load(Ordering::Acquire));
    }
}
