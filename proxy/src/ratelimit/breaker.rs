//! A circuit breaker in front of Redis: after `failures` consecutive failed calls it opens and
//! every limiter decision is made in process for `cooldown`, so a dead or slow Redis costs no
//! request more than the one timeout that tripped it. Then one trial call is let through
//! (half-open): success closes the breaker, failure opens it again. Each state change is logged
//! once and counted.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Redis is used.
    Closed,
    /// Redis is skipped until the cooldown ends.
    Open,
    /// One trial call is in flight.
    HalfOpen,
}

impl State {
    /// For logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: State,
    consecutive: u32,
    opened_at: Option<Instant>,
}

/// The breaker.
#[derive(Debug)]
pub struct Breaker {
    inner: Mutex<Inner>,
    failures: u32,
    cooldown: Duration,
    /// Times it opened.
    pub trips: AtomicU64,
}

impl Breaker {
    /// Opens after `failures` consecutive failures, for `cooldown`.
    pub fn new(failures: u32, cooldown: Duration) -> Breaker {
        Breaker {
            inner: Mutex::new(Inner {
                state: State::Closed,
                consecutive: 0,
                opened_at: None,
            }),
            failures: failures.max(1),
            cooldown,
            trips: AtomicU64::new(0),
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.inner.lock().map(|i| i.state).unwrap_or(State::Open)
    }

    /// Whether to try Redis now. In the open state, the first caller after the cooldown gets
    /// the trial call (and the breaker goes half-open).
    pub fn allow(&self) -> bool {
        let Ok(mut i) = self.inner.lock() else {
            return false;
        };
        match i.state {
            State::Closed => true,
            State::HalfOpen => false,
            State::Open => {
                if i.opened_at.is_some_and(|at| at.elapsed() >= self.cooldown) {
                    i.state = State::HalfOpen;
                    true
                } else {
                    false
                }
            }
        }
    }

    /// Records a successful call.
    pub fn success(&self) {
        let Ok(mut i) = self.inner.lock() else {
            return;
        };
        i.consecutive = 0;
        if i.state != State::Closed {
            tracing::info!(target: "tenantgate::limits", "redis limiter circuit closed: Redis decides again");
            i.state = State::Closed;
            i.opened_at = None;
        }
    }

    /// Records a call that was abandoned before it finished (its caller went away). A trial
    /// call that never finished proves nothing: the breaker opens again and the next caller after
    /// the cooldown tries anew. In the closed state it changes nothing.
    pub fn abandoned(&self) {
        let Ok(mut i) = self.inner.lock() else {
            return;
        };
        if i.state == State::HalfOpen {
            i.state = State::Open;
            i.opened_at = Some(Instant::now());
        }
    }

    /// Records a failed call.
    pub fn failure(&self, reason: &str) {
        let Ok(mut i) = self.inner.lock() else {
            return;
        };
        i.consecutive = i.consecutive.saturating_add(1);
        let trip = match i.state {
            State::HalfOpen => true,
            State::Closed => i.consecutive >= self.failures,
            State::Open => false,
        };
        if trip {
            if i.state == State::Closed {
                tracing::warn!(target: "tenantgate::limits", reason, "redis limiter circuit open: deciding in process until Redis answers again");
            }
            i.state = State::Open;
            i.opened_at = Some(Instant::now());
            self.trips.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_recovers_through_half_open() {
        let b = Breaker::new(3, Duration::from_millis(20));
        assert!(b.allow());
        b.failure("x");
        b.failure("x");
        assert_eq!(b.state(), State::Closed);
        b.success();
        b.failure("x");
        b.failure("x");
        assert_eq!(b.state(), State::Closed, "a success resets the count");
        b.failure("x");
        assert_eq!(b.state(), State::Open);
        assert!(!b.allow(), "open: Redis is skipped");
        std::thread::sleep(Duration::from_millis(30));
        assert!(b.allow(), "the trial call");
        assert_eq!(b.state(), State::HalfOpen);
        assert!(!b.allow(), "only one trial at a time");
        b.failure("x");
        assert_eq!(b.state(), State::Open);
        std::thread::sleep(Duration::from_millis(30));
        assert!(b.allow());
        b.success();
        assert_eq!(b.state(), State::Closed);
        assert_eq!(b.trips.load(Ordering::Relaxed), 2);
    }
}
