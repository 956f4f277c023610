//! Per-socket rate limits on what a peer sends: [`RateLimit`], a token bucket on messages and
//! one on bytes, and [`RateLimitPolicy`], what to do with a peer that goes past them. Give one
//! to [`WebSocketLayerBuilder::rate_limit`](crate::WebSocketLayerBuilder::rate_limit), or to
//! [`WebSocketUpgrade::rate_limit`](crate::WebSocketUpgrade::rate_limit) for one socket.

// The buckets are pure: `Buckets` decides from the instants it is given and does no IO, so
// its tests run in virtual time. `Gate` is the socket's hook: before a read it says whether
// the socket may read now (or registers a timer for when it may), and after a message it
// charges the buckets. Throttling is not reading: the peer's bytes stay in the kernel, its TCP
// window closes, and that peer alone is slowed; nothing is dropped.
//
// Each bucket is kept as GCRA's "theoretical arrival time" (the instant the bucket would be
// full again): one `Instant` per bucket, integer arithmetic, no refill task. A message is let
// in when its bucket holds at least one message, or any bytes: a message larger than the byte
// burst still passes once the bucket is full, and the bucket then goes into debt, so the
// average stays at the rate whatever the message sizes.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tokio::time::{Instant, Sleep};

use crate::error::ConfigError;

/// Where a gate counts the sockets it throttles and closes (the layer's counters), so that this
/// file needs nothing above `error`.
pub(crate) trait Counts {
    fn count_rate_limit_throttled(&self);
    fn count_rate_limit_closed(&self);
}

/// What a socket does with a peer that sends faster than its [`RateLimit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RateLimitPolicy {
    /// Stop reading from this socket until its buckets refill (the default). The peer's data
    /// waits in the kernel's buffers and TCP flow control slows that peer alone; nothing is
    /// dropped. While throttled, the socket reads nothing else either: the peer's Pongs and
    /// Close wait too, so keep a keep-alive timeout well above the time a burst takes to drain.
    #[default]
    Throttle,
    /// Close the socket with 1008 (policy violation) and the reason `rate limit exceeded`; the
    /// message that went past the limit is dropped and `recv` yields
    /// [`Error::RateLimited`](crate::Error::RateLimited).
    Close,
}

/// A token bucket: `per_second` units a second on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bucket {
    per_second: u64,
    burst: u64,
}

/// Rate limits on what one socket receives: messages per second and bytes (of payload) per
/// second, each a token bucket with a burst, and the [`RateLimitPolicy`] for a peer that goes
/// past them. Every message counts (Pings and Pongs too) but the peer's Close; a fragmented
/// message counts once.
///
/// Set it for every socket with
/// [`WebSocketLayerBuilder::rate_limit`](crate::WebSocketLayerBuilder::rate_limit), or for one
/// socket with [`WebSocketUpgrade::rate_limit`](crate::WebSocketUpgrade::rate_limit). Default:
/// no limit. Sockets that were throttled, and sockets closed by the limit, are counted in
/// [`WebSocketStats`](crate::lifecycle::WebSocketStats).
///
/// ```
/// use tower_websockets::{WebSocketLayer, rate_limit::{RateLimit, RateLimitPolicy}};
///
/// // 100 messages a second (bursts of 200), 1 MiB a second (bursts of 4 MiB); slow down a
/// // client that sends more.
/// let limit = RateLimit::new().messages(100, 200).bytes(1 << 20, 4 << 20);
/// let layer = WebSocketLayer::builder().rate_limit(limit).build()?;
///
/// // Or close it with 1008.
/// let strict = limit.policy(RateLimitPolicy::Close);
/// let layer = WebSocketLayer::builder().rate_limit(strict).build()?;
///
/// // A rate of zero is refused when the layer is built.
/// let refused = WebSocketLayer::builder().rate_limit(RateLimit::new().messages(0, 10)).build();
/// assert_eq!(refused.unwrap_err().option(), "rate_limit");
/// # Ok::<(), tower_websockets::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[must_use]
pub struct RateLimit {
    messages: Option<Bucket>,
    bytes: Option<Bucket>,
    policy: RateLimitPolicy,
}

impl RateLimit {
    /// No limit (the default); add one with [`messages`](Self::messages) or
    /// [`bytes`](Self::bytes).
    pub const fn new() -> Self {
        Self { messages: None, bytes: None, policy: RateLimitPolicy::Throttle }
    }

    /// At most `per_second` messages a second on average, and `burst` at once (at least 1).
    pub const fn messages(mut self, per_second: u64, burst: u64) -> Self {
        self.messages = Some(Bucket { per_second, burst });
        self
    }

    /// At most `per_second` bytes of payload a second on average, and `burst` at once.
    pub const fn bytes(mut self, per_second: u64, burst: u64) -> Self {
        self.bytes = Some(Bucket { per_second, burst });
        self
    }

    /// What to do past the limit: [`RateLimitPolicy::Throttle`] (the default) or
    /// [`RateLimitPolicy::Close`].
    pub const fn policy(mut self, policy: RateLimitPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Does it limit anything?
    pub(crate) fn is_limited(&self) -> bool {
        self.messages.is_some() || self.bytes.is_some()
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        for bucket in [self.messages, self.bytes].into_iter().flatten() {
            if bucket.per_second == 0 || bucket.burst == 0 {
                return Err(ConfigError::new("rate_limit", "a rate and a burst must be at least 1"));
            }
        }
        Ok(())
    }
}

/// One bucket's state: the rate, the burst as time, and the instant the bucket is full again.
#[derive(Debug, Clone, Copy)]
struct Gcra {
    per_second: u64,
    /// How long the bucket takes to refill from empty (the burst, as time).
    tolerance: Duration,
    /// When the bucket is full again; in the past, it is full now.
    full_at: Instant,
}

impl Gcra {
    fn new(bucket: Bucket, now: Instant) -> Self {
        Self { per_second: bucket.per_second, tolerance: cost(bucket.burst, bucket.per_second), full_at: now }
    }

    /// `None` when the bucket holds more than `reserve` (as time) at `now`, counting it full
    /// when it is; otherwise the instant from which it will.
    fn wait_until(&self, now: Instant, reserve: Duration) -> Option<Instant> {
        // How far the bucket is from full, as time; it may hold `tolerance` at most.
        let missing = self.full_at.saturating_duration_since(now);
        let allowed = self.tolerance.saturating_sub(reserve);
        (missing > allowed).then(|| now + (missing - allowed))
    }

    fn charge(&mut self, now: Instant, units: u64) {
        self.full_at = self.full_at.max(now) + cost(units, self.per_second);
    }
}

/// How long `units` take to earn at `per_second`.
fn cost(units: u64, per_second: u64) -> Duration {
    let nanos = u128::from(units) * 1_000_000_000 / u128::from(per_second.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// The buckets of one socket. Pure: every decision takes the current instant.
#[derive(Debug, Clone)]
pub(crate) struct Buckets {
    messages: Option<Gcra>,
    bytes: Option<Gcra>,
}

impl Buckets {
    /// Full buckets at `now`.
    pub(crate) fn new(limit: &RateLimit, now: Instant) -> Self {
        Self {
            messages: limit.messages.map(|bucket| Gcra::new(bucket, now)),
            bytes: limit.bytes.map(|bucket| Gcra::new(bucket, now)),
        }
    }

    /// `None` when a message may be read at `now`; otherwise the instant from which it may: the
    /// message bucket holds one message and the byte bucket is not in debt.
    pub(crate) fn wait_until(&self, now: Instant) -> Option<Instant> {
        let messages = self.messages.and_then(|bucket| bucket.wait_until(now, cost(1, bucket.per_second)));
        // Any bytes at all: more than nothing, by the smallest unit of time.
        let bytes = self.bytes.and_then(|bucket| bucket.wait_until(now, Duration::from_nanos(1)));
        messages.into_iter().chain(bytes).max()
    }

    /// Charges a message of `len` bytes received at `now`.
    pub(crate) fn charge(&mut self, now: Instant, len: usize) {
        if let Some(bucket) = self.messages.as_mut() {
            bucket.charge(now, 1);
        }
        if let Some(bucket) = self.bytes.as_mut() {
            bucket.charge(now, u64::try_from(len).unwrap_or(u64::MAX));
        }
    }
}

/// The peer went past the limit of a socket whose policy is [`RateLimitPolicy::Close`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exceeded;

/// A socket's rate limit: its buckets, its policy, and the timer it waits on while throttled.
/// Boxed in the socket, and only for sockets that have a limit.
#[derive(Debug)]
pub(crate) struct Gate {
    buckets: Buckets,
    policy: RateLimitPolicy,
    /// Armed while throttled.
    sleep: Option<Pin<Box<Sleep>>>,
    /// Counted in the stats once.
    throttled_once: bool,
}

impl Gate {
    /// The gate for `limit`, or `None` when it limits nothing.
    pub(crate) fn new(limit: &RateLimit) -> Option<Box<Self>> {
        limit.is_limited().then(|| {
            Box::new(Self {
                buckets: Buckets::new(limit, Instant::now()),
                policy: limit.policy,
                sleep: None,
                throttled_once: false,
            })
        })
    }

    /// May the socket read? `Pending` (with `cx` woken when it may) while a throttling socket's
    /// buckets are empty. A closing socket always reads: [`charge`](Self::charge) decides.
    pub(crate) fn poll_read_allowed(
        &mut self,
        cx: &mut Context<'_>,
        tracker: Option<&dyn Counts>,
    ) -> Poll<()> {
        if self.policy == RateLimitPolicy::Close {
            return Poll::Ready(());
        }
        let Some(until) = self.buckets.wait_until(Instant::now()) else {
            self.sleep = None;
            return Poll::Ready(());
        };
        if !self.throttled_once {
            self.throttled_once = true;
            if let Some(tracker) = tracker {
                tracker.count_rate_limit_throttled();
            }
            tracing::debug!("WebSocket rate limit: throttling the peer");
        }
        let sleep = self.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
        if sleep.deadline() != until {
            sleep.as_mut().reset(until);
        }
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.sleep = None;
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Charges a message of `len` bytes. With [`RateLimitPolicy::Close`], `Err` when the
    /// buckets had no room for it (the socket then closes with 1008).
    pub(crate) fn charge(&mut self, len: usize, tracker: Option<&dyn Counts>) -> Result<(), Exceeded> {
        let now = Instant::now();
        if self.policy == RateLimitPolicy::Close && self.buckets.wait_until(now).is_some() {
            if let Some(tracker) = tracker {
                tracker.count_rate_limit_closed();
            }
            tracing::debug!("WebSocket rate limit exceeded: closing with 1008");
            return Err(Exceeded);
        }
        self.buckets.charge(now, len);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn a_full_bucket_lets_a_burst_through_then_the_rate() {
        let start = Instant::now();
        let mut buckets = Buckets::new(&RateLimit::new().messages(10, 5), start);
        for _ in 0..5 {
            assert_eq!(buckets.wait_until(start), None);
            buckets.charge(start, 20);
        }
        // Empty: the next message may come a tenth of a second later, and not before.
        assert_eq!(buckets.wait_until(start), Some(start + secs(0.1)));
        assert_eq!(buckets.wait_until(start + secs(0.05)), Some(start + secs(0.1)));
        assert_eq!(buckets.wait_until(start + secs(0.1)), None);
        // A long quiet spell refills no more than the burst.
        let later = start + secs(60.0);
        for _ in 0..5 {
            assert_eq!(buckets.wait_until(later), None);
            buckets.charge(later, 20);
        }
        assert!(buckets.wait_until(later).is_some());
    }

    #[test]
    fn a_message_over_the_byte_burst_passes_once_and_leaves_a_debt() {
        let start = Instant::now();
        let mut buckets = Buckets::new(&RateLimit::new().bytes(100, 50), start);
        assert_eq!(buckets.wait_until(start), None);
        buckets.charge(start, 250); // 200 bytes of debt: two seconds.
        let ready = buckets.wait_until(start).expect("in debt");
        assert!(ready > start + secs(2.0) && ready < start + secs(2.001), "{:?}", ready - start);
        assert_eq!(buckets.wait_until(start + secs(2.001)), None);
    }

    #[test]
    fn both_buckets_must_allow() {
        let start = Instant::now();
        let limit = RateLimit::new().messages(1000, 1000).bytes(10, 10);
        let mut buckets = Buckets::new(&limit, start);
        buckets.charge(start, 10);
        assert!(buckets.wait_until(start).is_some(), "the byte bucket is empty");
        let limit = RateLimit::new().messages(1, 1).bytes(1000, 1000);
        let mut buckets = Buckets::new(&limit, start);
        buckets.charge(start, 1);
        assert_eq!(buckets.wait_until(start), Some(start + secs(1.0)), "the message bucket is empty");
    }

    #[test]
    fn the_average_rate_holds_over_a_long_run() {
        // A peer that sends whenever it may, for 10 virtual seconds: burst + rate × time.
        let start = Instant::now();
        let mut buckets = Buckets::new(&RateLimit::new().messages(100, 20), start);
        let mut now = start;
        let mut sent = 0u32;
        while now < start + secs(10.0) {
            match buckets.wait_until(now) {
                None => {
                    buckets.charge(now, 20);
                    sent += 1;
                }
                Some(until) => now = until,
            }
        }
        assert!((1019..=1021).contains(&sent), "{sent}");
    }

    #[test]
    fn zero_rates_and_bursts_are_refused() {
        assert!(RateLimit::new().validate().is_ok());
        assert!(!RateLimit::new().is_limited());
        for limit in [
            RateLimit::new().messages(0, 1),
            RateLimit::new().messages(1, 0),
            RateLimit::new().bytes(0, 1),
            RateLimit::new().bytes(1, 0),
        ] {
            assert_eq!(limit.validate().unwrap_err().option(), "rate_limit");
        }
    }

    #[derive(Default)]
    struct Counted(std::cell::Cell<(u64, u64)>);

    impl Counts for Counted {
        fn count_rate_limit_throttled(&self) {
            let (throttled, closed) = self.0.get();
            self.0.set((throttled + 1, closed));
        }
        fn count_rate_limit_closed(&self) {
            let (throttled, closed) = self.0.get();
            self.0.set((throttled, closed + 1));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttling_gate_waits_in_virtual_time_and_a_closing_one_refuses() {
        let tracker = Counted::default();
        let limit = RateLimit::new().messages(2, 1);
        let mut gate = Gate::new(&limit).expect("a limit");
        let start = Instant::now();
        std::future::poll_fn(|cx| gate.poll_read_allowed(cx, Some(&tracker))).await;
        gate.charge(1, Some(&tracker)).unwrap();
        // Empty: the next read waits half a second of virtual time.
        std::future::poll_fn(|cx| gate.poll_read_allowed(cx, Some(&tracker))).await;
        assert_eq!(Instant::now() - start, secs(0.5));
        assert!(gate.charge(1, Some(&tracker)).is_ok(), "a throttling gate never refuses");

        let mut closing = Gate::new(&limit.policy(RateLimitPolicy::Close)).expect("a limit");
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(closing.poll_read_allowed(&mut cx, Some(&tracker)).is_ready());
        assert_eq!(closing.charge(1, Some(&tracker)), Ok(()));
        assert_eq!(closing.charge(1, Some(&tracker)), Err(Exceeded));
        assert_eq!(tracker.0.get(), (1, 1), "one socket throttled (once), one closed");
        assert!(Gate::new(&RateLimit::new()).is_none(), "no limit, no gate");
    }
}
