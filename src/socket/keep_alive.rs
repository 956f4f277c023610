//! The keep-alive clock: it only decides, from the time and what the peer last sent, whether to
//! wait, send a Ping, or give the peer up. The socket acts on the decision.
//!
//! A Ping is due after `interval` of silence from the peer (and since our last Ping). With a
//! timeout, the peer must send something, a Pong or anything else, within `timeout` of each
//! keep-alive Ping.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Waker},
    time::Duration,
};

use tokio::time::{Instant, Sleep};

/// What the socket should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    /// Nothing: the clock will wake the task when something is due.
    Wait,
    /// Send a keep-alive Ping.
    SendPing,
    /// The peer did not answer the last Ping within this timeout: drop it.
    TimedOut(Duration),
}

#[derive(Debug)]
pub(super) struct KeepAliveClock {
    interval: Duration,
    timeout: Option<Duration>,
    timer: Pin<Box<Sleep>>,
    /// When a frame last came from the peer.
    last_seen: Instant,
    /// When the last keep-alive Ping went out.
    last_ping: Option<Instant>,
    /// A keep-alive Ping is waiting for an answer (only with a timeout).
    awaiting_answer: bool,
    /// The waker the timer was last polled with: it is polled again only for another waker, or
    /// once it has fired (a poll per message would register the same waker again each time).
    registered: Option<Waker>,
}

impl KeepAliveClock {
    /// A clock that starts now; `None` when `interval` is zero (keep-alive off).
    pub(super) fn new(interval: Duration, timeout: Option<Duration>) -> Option<Self> {
        if interval.is_zero() {
            return None;
        }
        let now = Instant::now();
        Some(Self {
            interval,
            timeout,
            timer: Box::pin(tokio::time::sleep_until(now + interval)),
            last_seen: now,
            last_ping: None,
            awaiting_answer: false,
            registered: None,
        })
    }

    /// The peer sent a frame just now.
    pub(super) fn saw_peer(&mut self) {
        self.last_seen = Instant::now();
    }

    /// Is a keep-alive Ping waiting for its answer?
    pub(super) fn is_awaiting_answer(&self) -> bool {
        self.awaiting_answer
    }

    /// Decides, and registers `cx` with the timer so that the task is woken for the next
    /// decision.
    ///
    /// `answer_may_be_unread`: the socket holds a message from the peer that nobody has read
    /// yet, and what came after it (the answer, most likely) is still unread. The peer did send
    /// something then, so it is not given up.
    pub(super) fn poll_decide(&mut self, cx: &mut Context<'_>, answer_may_be_unread: bool) -> Decision {
        if self.is_waiting(cx) {
            return Decision::Wait;
        }
        self.poll_timer(cx, answer_may_be_unread)
    }

    /// Nothing to decide: the timer has not fired, and it will wake `cx` when it does. The
    /// common case, checked a few times per message, so inlined.
    #[inline]
    pub(super) fn is_waiting(&self, cx: &Context<'_>) -> bool {
        self.registered.as_ref().is_some_and(|waker| waker.will_wake(cx.waker())) && !self.timer.is_elapsed()
    }

    /// [`poll_decide`](Self::poll_decide) once the timer has fired or `cx` is new.
    #[inline(never)]
    fn poll_timer(&mut self, cx: &mut Context<'_>, answer_may_be_unread: bool) -> Decision {
        let same_waker = self.registered.as_ref().is_some_and(|waker| waker.will_wake(cx.waker()));
        if !same_waker {
            self.registered = Some(cx.waker().clone());
        }
        while self.timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            if self.awaiting_answer {
                let answered = self.last_ping.is_some_and(|ping| self.last_seen >= ping);
                if !answered && !answer_may_be_unread {
                    return Decision::TimedOut(self.timeout.unwrap_or_default());
                }
                self.awaiting_answer = false;
            }
            let quiet_since = self.last_ping.map_or(self.last_seen, |ping| ping.max(self.last_seen));
            let due = quiet_since + self.interval;
            if now < due {
                self.timer.as_mut().reset(due);
                continue;
            }
            self.last_ping = Some(now);
            match self.timeout {
                Some(timeout) => {
                    self.awaiting_answer = true;
                    self.timer.as_mut().reset(now + timeout);
                }
                None => self.timer.as_mut().reset(now + self.interval),
            }
            return Decision::SendPing;
        }
        Decision::Wait
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    fn decide(clock: &mut KeepAliveClock, unread: bool) -> Decision {
        clock.poll_decide(&mut Context::from_waker(Waker::noop()), unread)
    }

    #[test]
    fn a_zero_interval_is_no_clock() {
        assert!(KeepAliveClock::new(Duration::ZERO, None).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn pings_after_silence_and_not_before() {
        let mut clock = KeepAliveClock::new(Duration::from_secs(10), None).unwrap();
        assert_eq!(decide(&mut clock, false), Decision::Wait);
        tokio::time::advance(Duration::from_secs(6)).await;
        clock.saw_peer();
        tokio::time::advance(Duration::from_secs(6)).await;
        // 12 s since the start, but only 6 s since the peer spoke.
        assert_eq!(decide(&mut clock, false), Decision::Wait);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(decide(&mut clock, false), Decision::SendPing);
        assert!(!clock.is_awaiting_answer(), "no timeout: no answer awaited");
        // Without a timeout, the next Ping comes an interval after this one.
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(decide(&mut clock, false), Decision::Wait);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(decide(&mut clock, false), Decision::SendPing);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_does_not_answer_times_out() {
        let timeout = Duration::from_secs(3);
        let mut clock = KeepAliveClock::new(Duration::from_secs(10), Some(timeout)).unwrap();
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(decide(&mut clock, false), Decision::SendPing);
        assert!(clock.is_awaiting_answer());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(decide(&mut clock, false), Decision::Wait);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(decide(&mut clock, false), Decision::TimedOut(timeout));
    }

    #[tokio::test(start_paused = true)]
    async fn any_frame_answers_and_unread_input_suspends_the_verdict() {
        let mut clock = KeepAliveClock::new(Duration::from_secs(10), Some(Duration::from_secs(3))).unwrap();
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(decide(&mut clock, false), Decision::SendPing);
        tokio::time::advance(Duration::from_secs(1)).await;
        clock.saw_peer();
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(decide(&mut clock, false), Decision::Wait, "answered in time");
        assert!(!clock.is_awaiting_answer());

        // The next Ping goes unanswered, but a message is parked unread: not dead.
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(decide(&mut clock, false), Decision::SendPing);
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(decide(&mut clock, true), Decision::Wait);
    }
}
