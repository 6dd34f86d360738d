//! Cursor ownership: which principal opened which upstream cursor.
//!
//! Cursor ids are global on the upstream, so a `getMore` or `killCursors` naming an id is only
//! forwarded when the sending principal opened that cursor; anyone else gets `CursorNotFound`
//! (and an audit record), exactly as if the id did not exist. Drivers may continue a cursor on
//! another pooled connection, so ownership is per principal, not per connection; each client
//! connection also remembers what it opened, so its live cursors are killed when it closes.

use std::collections::HashMap;
use std::sync::Mutex;

/// The registry shared by all connections.
#[derive(Debug, Default)]
pub struct CursorRegistry {
    owners: Mutex<HashMap<i64, String>>,
}

impl CursorRegistry {
    /// Records that `principal` owns `id`.
    pub fn open(&self, id: i64, principal: &str) {
        if id != 0
            && let Ok(mut m) = self.owners.lock()
        {
            m.insert(id, principal.to_owned());
        }
    }

    /// Whether `principal` owns `id`.
    pub fn owns(&self, id: i64, principal: &str) -> bool {
        self.owners
            .lock()
            .map(|m| m.get(&id).is_some_and(|p| p == principal))
            .unwrap_or(false)
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
