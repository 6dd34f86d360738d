//! The in-process level of the tenant cache, and single-flight lookups.
//!
//! Every API request and every proxy command asks "who is this tenant, and is it active?", so
//! the answer is kept here for a short TTL; unknown names are remembered for a shorter one so a
//! client hammering `nosuchbank.financeops.com` does not turn into a database query each time.
//! Both maps are bounded: a flood of distinct unknown names evicts negative entries first.
//!
//! Invalidation bumps a generation counter. A lookup that started before an invalidation does
//! not store its (possibly stale) answer, and lookups after it start a new flight instead of
//! joining the old one — so a deactivation is never undone by a slow read that raced it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use super::tenant::Tenant;

/// Entries per map before expired and then negative entries are evicted.
const MAX_ENTRIES: usize = 50_000;

#[derive(Debug, Clone)]
struct Entry<V> {
    value: V,
    expires: Instant,
}

/// A cached answer: `Some(tenant)` or a remembered "no such tenant".
pub type Cached<V> = Option<V>;

/// The in-process cache.
#[derive(Debug)]
pub struct LocalCache {
    /// slug → tenant (or known-unknown).
    slugs: Mutex<HashMap<String, Entry<Cached<Arc<Tenant>>>>>,
    /// normalised domain → slug (or known-unknown).
    domains: Mutex<HashMap<String, Entry<Cached<String>>>>,
    /// Bumped by every invalidation; see the module docs.
    generation: AtomicU64,
    ttl: Duration,
    negative_ttl: Duration,
}

fn get<V: Clone>(map: &Mutex<HashMap<String, Entry<V>>>, key: &str) -> Option<V> {
    let m = map.lock().ok()?;
    let e = m.get(key)?;
    (e.expires > Instant::now()).then(|| e.value.clone())
}

fn put<V>(
    map: &Mutex<HashMap<String, Entry<Option<V>>>>,
    key: &str,
    value: Option<V>,
    ttl: Duration,
) {
    let Ok(mut m) = map.lock() else {
        return;
    };
    if m.len() >= MAX_ENTRIES {
        let now = Instant::now();
        m.retain(|_, e| e.expires > now);
        if m.len() >= MAX_ENTRIES {
            m.retain(|_, e| e.value.is_some());
        }
        if m.len() >= MAX_ENTRIES {
            m.clear();
        }
    }
    m.insert(
        key.to_owned(),
        Entry {
            value,
            expires: Instant::now() + ttl,
        },
    );
}

impl LocalCache {
    /// A cache keeping answers for `ttl` and unknown names for `negative_ttl`.
    pub fn new(ttl: Duration, negative_ttl: Duration) -> LocalCache {
        LocalCache {
            slugs: Mutex::new(HashMap::new()),
            domains: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            ttl,
            negative_ttl,
        }
    }

    /// The current generation; pass it back to `put_*`.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn ttl_for<V>(&self, v: &Option<V>) -> Duration {
        if v.is_some() {
            self.ttl
        } else {
            self.negative_ttl
        }
    }

    /// `None` on a miss; `Some(None)` for a remembered unknown slug.
    pub fn slug(&self, slug: &str) -> Option<Cached<Arc<Tenant>>> {
        get(&self.slugs, slug)
    }

    /// Stores a lookup's answer unless an invalidation happened since `generation`.
    pub fn put_slug(&self, slug: &str, value: Cached<Arc<Tenant>>, generation: u64) {
        if self.generation() == generation {
            let ttl = self.ttl_for(&value);
            put(&self.slugs, slug, value, ttl);
        }
    }

    /// `None` on a miss; `Some(None)` for a remembered unknown domain.
    pub fn domain(&self, domain: &str) -> Option<Cached<String>> {
        get(&self.domains, domain)
    }

    /// Stores a domain's slug unless an invalidation happened since `generation`.
    pub fn put_domain(&self, domain: &str, slug: Cached<String>, generation: u64) {
        if self.generation() == generation {
            let ttl = self.ttl_for(&slug);
            put(&self.domains, domain, slug, ttl);
        }
    }

    /// Forgets `slug`, the listed domains and every domain that pointed at `slug`.
    pub fn invalidate(&self, slug: &str, domains: &[String]) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut m) = self.slugs.lock() {
            m.remove(slug);
        }
        if let Ok(mut m) = self.domains.lock() {
            for d in domains {
                m.remove(d);
            }
            m.retain(|_, e| e.value.as_deref() != Some(slug));
        }
    }

    /// Forgets everything (after missing invalidations, e.g. while pub/sub was disconnected).
    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut m) = self.slugs.lock() {
            m.clear();
        }
        if let Ok(mut m) = self.domains.lock() {
            m.clear();
        }
    }
}

/// Concurrent lookups of one key share one execution.
#[derive(Debug)]
pub struct Flights<V> {
    inflight: Mutex<HashMap<String, Arc<OnceCell<V>>>>,
}

impl<V> Default for Flights<V> {
    fn default() -> Self {
        Flights {
            inflight: Mutex::new(HashMap::new()),
        }
    }
}

impl<V: Clone> Flights<V> {
    /// Runs `load` for `key`, or waits for the run already in flight and shares its answer.
    /// Cancellation-safe: if the caller running `load` goes away, a waiter takes over.
    pub async fn run<F, Fut>(&self, key: String, load: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let cell = match self.inflight.lock() {
            Ok(mut m) => m.entry(key.clone()).or_default().clone(),
            Err(_) => Arc::new(OnceCell::new()),
        };
        let value = cell.get_or_init(load).await.clone();
        if let Ok(mut m) = self.inflight.lock()
            && m.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell))
        {
            m.remove(&key);
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::tenant::{LimitOverrides, Settings, Tier};
    use std::sync::atomic::AtomicUsize;

    fn tenant(slug: &str) -> Arc<Tenant> {
        Arc::new(Tenant {
            slug: slug.into(),
            name: slug.into(),
            tier: Tier::Starter,
            domains: vec![],
            settings: Settings::default(),
            limits: LimitOverrides::default(),
            is_active: true,
            created_at: None,
            updated_at: None,
        })
    }

    #[test]
    fn a_stale_lookup_does_not_overwrite_an_invalidation() {
        let c = LocalCache::new(Duration::from_secs(60), Duration::from_secs(5));
        let before = c.generation();
        c.invalidate("bank1", &[]);
        c.put_slug("bank1", Some(tenant("bank1")), before);
        assert!(c.slug("bank1").is_none(), "stale answer stored");
        c.put_slug("bank1", Some(tenant("bank1")), c.generation());
        assert!(c.slug("bank1").is_some());
    }

    #[test]
    fn invalidation_drops_domains_pointing_at_the_slug() {
        let c = LocalCache::new(Duration::from_secs(60), Duration::from_secs(5));
        let g = c.generation();
        c.put_domain("pay.bank.com", Some("bank1".into()), g);
        c.put_domain("unknown.com", None, g);
        c.invalidate("bank1", &["unknown.com".into()]);
        assert!(c.domain("pay.bank.com").is_none());
        assert!(c.domain("unknown.com").is_none());
    }

    #[test]
    fn negative_entries_expire_sooner() {
        let c = LocalCache::new(Duration::from_secs(60), Duration::from_millis(1));
        c.put_slug("ghost", None, c.generation());
        std::thread::sleep(Duration::from_millis(5));
        assert!(c.slug("ghost").is_none());
    }

    #[tokio::test]
    async fn concurrent_lookups_share_one_flight() {
        let flights: Arc<Flights<u32>> = Arc::new(Flights::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let flights = flights.clone();
            let calls = calls.clone();
            tasks.push(tokio::spawn(async move {
                flights
                    .run("s:bank1".into(), || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        7
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("joined"), 7);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
