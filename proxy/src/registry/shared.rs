//! The Redis level of the tenant cache (shared by every instance) and the pub/sub channel that
//! tells every instance to forget a tenant at once.
//!
//! Keys are namespaced by the registry database (`policy.internal_database`, so deployments that
//! share a Redis but not a registry never see each other's tenants) and hash-tagged on the slug
//! or domain so a value and its epoch share a Redis Cluster slot: `tenantgate:tenant:{bank1}`
//! holds the tenant as BSON, `tenantgate:tenant_domain:{pay.bank.com}` the slug of the domain's
//! tenant; an empty value means "known unknown" (kept for the shorter negative TTL).
//!
//! A reader that misses fills the key only if the key's epoch (`tenantgate:tenant_epoch:{bank1}`) is still
//! the one it read before going to the database; an invalidation deletes the value and bumps
//! the epoch in one script. So a lookup that raced an update or a deactivation cannot put the old
//! tenant back into Redis for five minutes.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::local::LocalCache;
use crate::redis_link::{RedisError, RedisLink};

/// Redis must answer a cache call within this, or the database is asked instead.
const TIMEOUT: Duration = Duration::from_millis(100);
/// The pub/sub channel carrying invalidations for the registry in `namespace`.
pub fn channel(namespace: &str) -> String {
    format!("{namespace}:registry:invalidate")
}
/// Epoch keys outlive any reader by far.
const EPOCH_TTL_MS: u64 = 86_400_000;

const FILL: &str = r#"
local epoch = redis.call('GET', KEYS[2]) or '0'
if epoch ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"#;

const INVALIDATE: &str = r#"
redis.call('DEL', KEYS[1])
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 1
"#;

/// What a cache key is about.
#[derive(Debug, Clone, Copy)]
pub enum Key<'a> {
    /// A tenant by slug.
    Slug(&'a str),
    /// A normalised custom domain.
    Domain(&'a str),
}

impl Key<'_> {
    /// The value key and the epoch key in `namespace`.
    pub fn names(&self, namespace: &str) -> (String, String) {
        match self {
            Key::Slug(s) => (
                format!("{namespace}:tenant:{{{s}}}"),
                format!("{namespace}:tenant_epoch:{{{s}}}"),
            ),
            Key::Domain(d) => (
                format!("{namespace}:tenant_domain:{{{d}}}"),
                format!("{namespace}:tenant_domain_epoch:{{{d}}}"),
            ),
        }
    }
}

/// A Redis read: the cached bytes (empty = known unknown), and the epoch to fill with on a miss.
#[derive(Debug)]
pub struct Read {
    /// `Some(bytes)` on a hit.
    pub value: Option<Vec<u8>>,
    /// The key's epoch at the time of the read.
    pub epoch: String,
}

/// The Redis level.
#[derive(Debug, Clone)]
pub struct SharedCache {
    link: Arc<RedisLink>,
    /// Prefix of every key and of the channel: the registry database's name.
    namespace: String,
    ttl: Duration,
    negative_ttl: Duration,
    fill: Arc<redis::Script>,
    invalidate: Arc<redis::Script>,
}

/// One invalidation message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Invalidation {
    /// The tenant.
    pub slug: String,
    /// Domains it had or has now.
    #[serde(default)]
    pub domains: Vec<String>,
}

impl SharedCache {
    /// The Redis level over `link` for the registry in database `namespace`.
    pub fn new(
        link: Arc<RedisLink>,
        namespace: &str,
        ttl: Duration,
        negative_ttl: Duration,
    ) -> SharedCache {
        SharedCache {
            link,
            namespace: namespace.to_owned(),
            ttl,
            negative_ttl,
            fill: Arc::new(redis::Script::new(FILL)),
            invalidate: Arc::new(redis::Script::new(INVALIDATE)),
        }
    }

    /// How long a positive answer lives in Redis.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Reads a key and its epoch.
    pub async fn read(&self, key: Key<'_>) -> Result<Read, RedisError> {
        let (value_key, epoch_key) = key.names(&self.namespace);
        let (value, epoch): (Option<Vec<u8>>, Option<String>) = self
            .link
            .call(TIMEOUT, move |mut c| async move {
                redis::cmd("MGET")
                    .arg(&value_key)
                    .arg(&epoch_key)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(Read {
            value,
            epoch: epoch.unwrap_or_else(|| "0".into()),
        })
    }

    /// Stores `value` (empty = known unknown) if the epoch is still `epoch`.
    pub async fn fill(&self, key: Key<'_>, epoch: &str, value: Vec<u8>) -> Result<(), RedisError> {
        let (value_key, epoch_key) = key.names(&self.namespace);
        let ttl = if value.is_empty() {
            self.negative_ttl
        } else {
            self.ttl
        };
        let script = self.fill.clone();
        let epoch = epoch.to_owned();
        self.link
            .call(TIMEOUT, move |mut c| async move {
                let mut inv = script.key(value_key);
                inv.key(epoch_key)
                    .arg(epoch)
                    .arg(value)
                    .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
                inv.invoke_async::<i64>(&mut c).await
            })
            .await
            .map(|_| ())
    }

    /// Deletes the keys of a tenant and its domains and bumps their epochs.
    pub async fn forget(&self, message: &Invalidation) -> Result<(), RedisError> {
        let mut keys = vec![Key::Slug(&message.slug)];
        keys.extend(message.domains.iter().map(|d| Key::Domain(d)));
        for key in keys {
            let (value_key, epoch_key) = key.names(&self.namespace);
            let script = self.invalidate.clone();
            self.link
                .call(TIMEOUT, move |mut c| async move {
                    let mut inv = script.key(value_key);
                    inv.key(epoch_key).arg(EPOCH_TTL_MS);
                    inv.invoke_async::<i64>(&mut c).await
                })
                .await?;
        }
        Ok(())
    }

    /// Tells every instance to drop its in-process copy.
    pub async fn publish(&self, message: &Invalidation) -> Result<(), RedisError> {
        let payload = serde_json::to_string(message).unwrap_or_default();
        let channel = channel(&self.namespace);
        self.link
            .call(TIMEOUT, move |mut c| async move {
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(payload)
                    .query_async::<i64>(&mut c)
                    .await
            })
            .await
            .map(|_| ())
    }
}

/// Listens on the namespace's [`channel`] and applies every invalidation to `local` until aborted. While the
/// subscription is down, messages may be missed, so every (re)subscription starts by clearing
/// the in-process cache; the local TTL bounds staleness in between.
pub async fn listen(
    link: Arc<RedisLink>,
    namespace: String,
    local: Arc<LocalCache>,
    received: Arc<std::sync::atomic::AtomicU64>,
) {
    let mut backoff = Duration::from_millis(200);
    let mut connected_before = false;
    loop {
        let subscribed = async {
            let mut pubsub = link.client().get_async_pubsub().await?;
            pubsub.subscribe(channel(&namespace)).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(Duration::from_secs(2), subscribed).await {
            Ok(Ok(pubsub)) => {
                local.clear();
                if connected_before {
                    tracing::info!(target: "tenantgate::registry", "tenant invalidation channel re-subscribed; in-process cache cleared");
                }
                connected_before = true;
                backoff = Duration::from_millis(200);
                let mut messages = pubsub.into_on_message();
                while let Some(msg) = messages.next().await {
                    let Ok(payload) = msg.get_payload::<String>() else {
                        continue;
                    };
                    match serde_json::from_str::<Invalidation>(&payload) {
                        Ok(inv) => {
                            received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            local.invalidate(&inv.slug, &inv.domains);
                        }
                        Err(_) => {
                            tracing::warn!(target: "tenantgate::registry", "ignoring a malformed invalidation message");
                        }
                    }
                }
                tracing::warn!(target: "tenantgate::registry", "tenant invalidation channel lost; reconnecting");
            }
            Ok(Err(e)) => {
                tracing::debug!(target: "tenantgate::registry", error = %e, "cannot subscribe to tenant invalidations");
            }
            Err(_) => {
                tracing::debug!(target: "tenantgate::registry", "subscribing to tenant invalidations timed out");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
