//! Cursor ownership: which principal opened which upstream cursor.
//!
//! Cursor ids are global on the upstream, so a `getMore` or `killCursors` naming an id is only
//! forwarded when the sending principal opened that cursor; anyone else gets `CursorNotFound`
//! (and an audit record), exactly as if the id did not exist. Drivers may continue a cursor on
//! another pooled connection, so ownership is per principal, not per connection; each client
//! connection also remembers what it opened, so its live cursors are killed when it closes.
//!
//! The table is bounded: entries untouched for longer than the upstream's idle cursor timeout
//! (10 minutes by default; 30 here for margin) are pruned, and at most `MAX_CURSORS` are kept —
//! a client that opens cursors and abandons them cannot grow the proxy's memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most cursors tracked at once; past it the oldest are forgotten first.
const MAX_CURSORS: usize = 1_000_000;
/// A cursor untouched this long is gone upstream too.
const STALE_AFTER: Duration = Duration::from_secs(30 * 60);

/// The registry shared by all connections.
#[derive(Debug, Default)]
pub struct CursorRegistry {
    owners: Mutex<HashMap<i64, (String, Instant)>>,
}

impl CursorRegistry {
    /// Records that `principal` owns `id`.
    pub fn open(&self, id: i64, principal: &str) {
        if id != 0
            && let Ok(mut m) = self.owners.lock()
        {
            let now = Instant::now();
            if m.len() >= MAX_CURSORS {
                m.retain(|_, (_, at)| now.duration_since(*at) < STALE_AFTER);
                if m.len() >= MAX_CURSORS {
                    // Still full of live entries: drop the oldest tenth.
                    let mut ages: Vec<Instant> = m.values().map(|(_, at)| *at).collect();
                    ages.sort_unstable();
                    let cutoff = ages.get(ages.len() / 10).copied().unwrap_or(now);
                    m.retain(|_, (_, at)| *at > cutoff);
                }
            }
            m.insert(id, (principal.to_owned(), now));
        }
    }

    /// Whether `principal` owns `id`.
    pub fn owns(&self, id: i64, principal: &str) -> bool {
        let Ok(mut m) = self.owners.lock() else {
            return false;
        };
        match m.get_mut(&id) {
            Some((owner, at)) if owner == principal && at.elapsed() < STALE_AFTER => {
                *at = Instant::now();
                true
            }
            _ => false,
        }
    }

    /// Forgets `id` (exhausted or killed).
    pub fn close(&self, id: i64) {
        if let Ok(mut m) = self.owners.lock() {
            m.remove(&id);
        }
    }

    /// How many cursors are open (metrics, tests).
    pub fn len(&self) -> usize {
        self.owners.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether no cursor is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_owner_may_continue() {
        let r = CursorRegistry::default();
        r.open(42, "svc-bank1");
        assert!(r.owns(42, "svc-bank1"));
        assert!(!r.owns(42, "svc-bank2"));
        assert!(!r.owns(43, "svc-bank1"));
        r.close(42);
        assert!(!r.owns(42, "svc-bank1"));
        r.open(0, "x");
        assert!(r.is_empty(), "id 0 means no cursor");
    }
}
