//! Session ownership: a logical session id (`lsid`) first used by one principal cannot be used
//! by another.
//!
//! Session ids are chosen by clients and are global on the upstream; a principal that learned
//! another's `lsid` could otherwise join its transaction or read its causally consistent state.
//! Entries expire after the server's session timeout of inactivity, and the table is bounded.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Largest number of sessions tracked; beyond it the oldest idle entries are pruned first.
const MAX_SESSIONS: usize = 1_000_000;

/// The table shared by all connections.
#[derive(Debug)]
pub struct SessionRegistry {
    owners: Mutex<HashMap<Vec<u8>, (String, Instant)>>,
    idle: Duration,
}

impl SessionRegistry {
    /// Sessions idle longer than `idle` are forgotten.
    pub fn new(idle: Duration) -> Self {
        SessionRegistry {
            owners: Mutex::new(HashMap::new()),
            idle,
        }
    }

    /// Claims `lsid` for `principal`, or says who holds it. `true` when the principal may use it.
    pub fn claim(&self, lsid: &[u8], principal: &str) -> bool {
        let Ok(mut m) = self.owners.lock() else {
            return false;
        };
        let now = Instant::now();
        if m.len() >= MAX_SESSIONS {
            let idle = self.idle;
            m.retain(|_, (_, at)| now.duration_since(*at) < idle);
        }
        match m.get_mut(lsid) {
            Some((owner, at)) if now.duration_since(*at) < self.idle => {
                if owner != principal {
                    return false;
                }
                *at = now;
                true
            }
            _ => {
                if m.len() < MAX_SESSIONS {
                    m.insert(lsid.to_vec(), (principal.to_owned(), now));
                }
                true
            }
        }
    }

    /// Forgets a session the principal ended.
    pub fn end(&self, lsid: &[u8], principal: &str) {
        if let Ok(mut m) = self.owners.lock()
            && m.get(lsid).is_some_and(|(owner, _)| owner == principal)
        {
            m.remove(lsid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_belongs_to_its_first_user() {
        let r = SessionRegistry::new(Duration::from_secs(60));
        assert!(r.claim(b"s1", "svc-bank1"));
        assert!(r.claim(b"s1", "svc-bank1"));
        assert!(!r.claim(b"s1", "svc-bank2"));
        r.end(b"s1", "svc-bank2");
        assert!(!r.claim(b"s1", "svc-bank2"), "only the owner ends it");
        r.end(b"s1", "svc-bank1");
        assert!(r.claim(b"s1", "svc-bank2"));
        let short = SessionRegistry::new(Duration::from_millis(0));
        assert!(short.claim(b"s", "a"));
        assert!(short.claim(b"s", "b"), "an expired session can be reused");
    }
}
