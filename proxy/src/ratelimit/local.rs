//! The in-process sliding window log: the limiter when no Redis is configured, and the
//! fallback while Redis is down (in `open` failure mode). Same semantics as the Redis script —
//! only admitted requests are logged — but each instance counts only its own requests.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Windows kept before idle ones are dropped.
const MAX_WINDOWS: usize = 100_000;

/// A local verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalVerdict {
    /// Admitted.
    pub admitted: bool,
    /// Requests left in the window.
    pub remaining: u64,
    /// Until the oldest logged request leaves the window.
    pub reset: Duration,
}

/// Windows by key.
#[derive(Debug, Default)]
pub struct LocalWindows {
    windows: Mutex<HashMap<String, (VecDeque<Instant>, Duration)>>,
}

impl LocalWindows {
    /// One request against `key` with at most `limit` per `window`.
    pub fn check(&self, key: &str, limit: u64, window: Duration) -> LocalVerdict {
        let now = Instant::now();
        let Ok(mut map) = self.windows.lock() else {
            return LocalVerdict {
                admitted: true,
                remaining: 0,
                reset: window,
            };
        };
        if map.len() >= MAX_WINDOWS && !map.contains_key(key) {
            map.retain(|_, (log, w)| log.back().is_some_and(|t| now.duration_since(*t) < *w));
        }
        let (log, w) = map
            .entry(key.to_owned())
            .or_insert_with(|| (VecDeque::new(), window));
        *w = window;
        while log
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            log.pop_front();
        }
        let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
        let admitted = log.len() < limit_usize;
        if admitted {
            log.push_back(now);
        }
        let reset = log
            .front()
            .map(|t| window.saturating_sub(now.duration_since(*t)))
            .unwrap_or(window);
        LocalVerdict {
            admitted,
            remaining: limit.saturating_sub(log.len() as u64),
            reset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_then_slides() {
        let w = LocalWindows::default();
        let window = Duration::from_millis(50);
        for i in 0..3 {
            let v = w.check("t:g", 3, window);
            assert!(v.admitted, "request {i}");
            assert_eq!(v.remaining, 2 - i);
        }
        let refused = w.check("t:g", 3, window);
        assert!(!refused.admitted);
        assert!(refused.reset <= window);
        assert!(w.check("other", 3, window).admitted, "keys are independent");
        std::thread::sleep(Duration::from_millis(60));
        assert!(w.check("t:g", 3, window).admitted, "old requests aged out");
    }
}
