//! Session ownership: a logical session id (`lsid`) first used by one principal cannot be used
//! by another.
//!
//! Session ids are chosen by clients and are global on the upstream; a principal that learned
//! another's `lsid` could otherwise join its transaction or read its causally consistent state.
//! Entries expire after the server's session timeout of inactivity, and the table is bounded:
//! when it is full of live sessions a new one is refused (`TooManyLogicalSessions`), never
//! admitted unowned. Pruning the idle ones walks the table, so it runs at most once a second.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Largest number of sessions tracked.
const MAX_SESSIONS: usize = 1_000_000;
/// Least time between two walks of a full table for idle entries.
const PRUNE_EVERY: Duration = Duration::from_secs(1);

/// What a claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The session is the principal's (now, or already).
    Owned,
    /// Another principal holds it.
    Foreign,
    /// The table is full of live sessions: a new one cannot be owned, so it is refused.
    Full,
}

#[derive(Debug, Default)]
struct Table {
    owners: HashMap<Vec<u8>, (String, Instant)>,
    pruned_at: Option<Instant>,
}

/// The table shared by all connections.
#[derive(Debug)]
pub struct SessionRegistry {
    table: Mutex<Table>,
    idle: Duration,
    max: usize,
}

impl SessionRegistry {
    /// Sessions idle longer than `idle` are forgotten.
    pub fn new(idle: Duration) -> Self {
        Self::with_capacity(idle, MAX_SESSIONS)
    }

    fn with_capacity(idle: Duration, max: usize) -> Self {
        SessionRegistry {
            table: Mutex::new(Table::default()),
            idle,
            max,
        }
    }

    /// Claims `lsid` for `owner` (a connection's owner key), or says why not.
    pub fn claim(&self, lsid: &[u8], owner: &str) -> Claim {
        let Ok(mut t) = self.table.lock() else {
            return Claim::Full;
        };
        let now = Instant::now();
        if let Some((holder, at)) = t.owners.get_mut(lsid)
            && now.duration_since(*at) < self.idle
        {
            if holder != owner {
                return Claim::Foreign;
            }
            *at = now;
            return Claim::Owned;
        }
        if t.owners.len() >= self.max
            && !t.owners.contains_key(lsid)
            && t.pruned_at
                .is_none_or(|p| now.duration_since(p) >= PRUNE_EVERY)
        {
            let idle = self.idle;
            t.owners.retain(|_, (_, at)| now.duration_since(*at) < idle);
            t.pruned_at = Some(now);
        }
        if t.owners.len() >= self.max && !t.owners.contains_key(lsid) {
            return Claim::Full;
        }
        t.owners.insert(lsid.to_vec(), (owner.to_owned(), now));
        Claim::Owned
    }

    /// Forgets a session its owner ended.
    pub fn end(&self, lsid: &[u8], owner: &str) {
        if let Ok(mut t) = self.table.lock()
            && t.owners
                .get(lsid)
                .is_some_and(|(holder, _)| holder == owner)
        {
            t.owners.remove(lsid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_belongs_to_its_first_user() {
        let r = SessionRegistry::new(Duration::from_secs(60));
        assert_eq!(r.claim(b"s1", "svc-bank1"), Claim::Owned);
        assert_eq!(r.claim(b"s1", "svc-bank1"), Claim::Owned);
        assert_eq!(r.claim(b"s1", "svc-bank2"), Claim::Foreign);
        r.end(b"s1", "svc-bank2");
        assert_eq!(
            r.claim(b"s1", "svc-bank2"),
            Claim::Foreign,
            "only the owner ends it"
        );
        r.end(b"s1", "svc-bank1");
        assert_eq!(r.claim(b"s1", "svc-bank2"), Claim::Owned);
        let short = SessionRegistry::new(Duration::from_millis(0));
        assert_eq!(short.claim(b"s", "a"), Claim::Owned);
        assert_eq!(
            short.claim(b"s", "b"),
            Claim::Owned,
            "an expired session can be reused"
        );
    }

    #[test]
    fn a_full_table_refuses_new_sessions_instead_of_leaving_them_unowned() {
        let r = SessionRegistry::with_capacity(Duration::from_secs(60), 2);
        assert_eq!(r.claim(b"a", "bank1"), Claim::Owned);
        assert_eq!(r.claim(b"b", "bank1"), Claim::Owned);
        assert_eq!(r.claim(b"c", "bank2"), Claim::Full);
        assert_eq!(r.claim(b"c", "bank1"), Claim::Full);
        // Known sessions keep working, and their owner still holds them.
        assert_eq!(r.claim(b"a", "bank1"), Claim::Owned);
        assert_eq!(r.claim(b"a", "bank2"), Claim::Foreign);
        // Ending one makes room.
        r.end(b"a", "bank1");
        assert_eq!(r.claim(b"c", "bank2"), Claim::Owned);
        assert_eq!(r.claim(b"c", "bank1"), Claim::Foreign);
    }
}
