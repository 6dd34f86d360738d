//! The tenant registry: the `tenants` collection in tenantgate's own database, behind a
//! two-level cache shared by the proxy and the API.
//!
//! Every proxy command and every API request needs "who is this tenant, and is it active?".
//! Answers come from, in order: the in-process cache ([`local`], short TTL, single-flight so a
//! burst of first requests for one tenant makes one lookup), Redis ([`shared`], five minutes,
//! shared by all instances), then MongoDB ([`store`]). Unknown names are cached too, briefly.
//! A write through this type (create, update, deactivate, domain change) invalidates both levels
//! on every instance at once through Redis pub/sub, so a deactivated tenant is cut off
//! everywhere within one message delay rather than one TTL.
//!
//! Without Redis the in-process level is all there is, and other instances see a change within
//! the in-process TTL.

pub mod currency;
pub mod local;
pub mod shared;
pub mod store;
pub mod tenant;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bson::Document;

pub use store::COLLECTION;
pub use tenant::{
    DomainError, LimitOverrides, RESERVED_SLUGS, Settings, Tenant, Tier, check_setting, is_slug,
    normalize_domain,
};

use crate::config::{RegistryConfig, TenantSeed};
use crate::limits::{TierLimits, tier_limits};
use crate::redis_link::RedisLink;
use crate::upstream::Upstream;
use local::{Flights, LocalCache};
use shared::{Invalidation, Key, SharedCache};
use store::Store;

/// Why a registry operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    /// MongoDB could not be reached or refused the command.
    #[error("the tenant registry is unavailable: {0}")]
    Unavailable(String),
    /// A slug or domain is already taken.
    #[error("{0}")]
    Conflict(String),
    /// A value is not acceptable (e.g. a malformed domain).
    #[error("{0}")]
    Invalid(String),
    /// A stored tenant document does not match the schema.
    #[error("tenant record {slug:?} is invalid: {reason}")]
    Corrupt {
        /// Its slug.
        slug: String,
        /// What did not parse.
        reason: String,
    },
}

/// What the proxy needs to know about a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantStatus {
    /// Exists and is active.
    pub active: bool,
    /// The registry could not be read (and nothing was cached): `active` is `false` because the
    /// answer is unknown, not because the tenant is inactive. Callers report a retryable
    /// "unavailable" error instead of "inactive", so a database outage does not look like a
    /// deactivated tenant to clients and drivers retry.
    pub unavailable: bool,
    /// `starter`, `professional` or `enterprise`.
    pub tier: &'static str,
    /// Proxy limits in force (tier defaults with the tenant's overrides).
    pub limits: TierLimits,
}

/// Counters, for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct Stats {
    /// Answers from the in-process cache.
    pub local_hits: AtomicU64,
    /// Answers from Redis.
    pub redis_hits: AtomicU64,
    /// Queries to MongoDB.
    pub upstream_lookups: AtomicU64,
    /// Invalidation messages received over pub/sub.
    pub invalidations_received: Arc<AtomicU64>,
}

type Lookup = Result<Option<Arc<Tenant>>, RegistryError>;

/// The registry and its caches.
#[derive(Debug)]
pub struct Registry {
    store: Store,
    local: Arc<LocalCache>,
    shared: Option<SharedCache>,
    flights: Flights<Lookup>,
    stats: Stats,
    /// The pub/sub listener, stopped with the registry.
    listener: Option<tokio::task::AbortHandle>,
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(l) = &self.listener {
            l.abort();
        }
    }
}

impl Registry {
    /// A registry in `database`, with Redis as the shared level when `redis` is given. Must be
    /// called inside a tokio runtime when `redis` is given (it starts the pub/sub listener).
    pub fn new(
        upstream: Arc<Upstream>,
        database: &str,
        redis: Option<Arc<RedisLink>>,
        config: &RegistryConfig,
    ) -> Registry {
        let local = Arc::new(LocalCache::new(
            Duration::from_millis(config.cache_ttl_ms),
            Duration::from_millis(config.negative_ttl_ms),
        ));
        let stats = Stats::default();
        let (shared, listener) = match redis {
            Some(link) => {
                let task = tokio::spawn(shared::listen(
                    link.clone(),
                    database.to_owned(),
                    local.clone(),
                    stats.invalidations_received.clone(),
                ));
                (
                    Some(SharedCache::new(
                        link,
                        database,
                        Duration::from_secs(config.redis_ttl_secs),
                        Duration::from_secs(config.redis_negative_ttl_secs),
                    )),
                    Some(task.abort_handle()),
                )
            }
            None => (None, None),
        };
        Registry {
            store: Store::new(upstream, database),
            local,
            shared,
            flights: Flights::default(),
            stats,
            listener,
        }
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Creates the unique indexes and every seed tenant that does not exist yet.
    pub async fn ensure(&self, seeds: &[TenantSeed]) -> Result<(), RegistryError> {
        self.store.ensure(seeds).await
    }

    /// The tenant with `slug` (cached). `Ok(None)` when there is none.
    pub async fn tenant(&self, slug: &str) -> Lookup {
        if !is_slug(slug) {
            return Ok(None);
        }
        if let Some(hit) = self.local.slug(slug) {
            self.stats.local_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit);
        }
        let generation = self.local.generation();
        let key = format!("s:{generation}:{slug}");
        self.flights
            .run(key, || async move {
                let found = self.load_slug(slug).await?;
                self.local.put_slug(slug, found.clone(), generation);
                Ok(found)
            })
            .await
    }

    async fn load_slug(&self, slug: &str) -> Lookup {
        let mut epoch = None;
        if let Some(shared) = &self.shared
            && let Ok(read) = shared.read(Key::Slug(slug)).await
        {
            match read.value {
                Some(bytes) if bytes.is_empty() => {
                    self.stats.redis_hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(None);
                }
                Some(bytes) => {
                    if let Ok(t) = bson::deserialize_from_slice::<Tenant>(&bytes)
                        && t.slug == slug
                    {
                        self.stats.redis_hits.fetch_add(1, Ordering::Relaxed);
                        return Ok(Some(Arc::new(t)));
                    }
                }
                None => epoch = Some(read.epoch),
            }
        }
        self.stats.upstream_lookups.fetch_add(1, Ordering::Relaxed);
        let found = self.store.by_slug(slug).await?;
        if let (Some(shared), Some(epoch)) = (&self.shared, epoch) {
            let bytes = match &found {
                Some(t) => bson::serialize_to_vec(t).unwrap_or_default(),
                None => Vec::new(),
            };
            let _ = shared.fill(Key::Slug(slug), &epoch, bytes).await;
        }
        Ok(found.map(Arc::new))
    }

    /// The tenant holding the custom domain `domain` (normalised by the caller; cached).
    pub async fn by_domain(&self, domain: &str) -> Lookup {
        if let Some(hit) = self.local.domain(domain) {
            match hit {
                None => {
                    self.stats.local_hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(None);
                }
                Some(slug) => {
                    if let Some(t) = self.tenant(&slug).await?
                        && t.domains.iter().any(|d| d == domain)
                    {
                        return Ok(Some(t));
                    }
                }
            }
        }
        let generation = self.local.generation();
        let key = format!("d:{generation}:{domain}");
        self.flights
            .run(key, || async move {
                let found = self.load_domain(domain).await?;
                self.local
                    .put_domain(domain, found.as_ref().map(|t| t.slug.clone()), generation);
                if let Some(t) = &found {
                    self.local.put_slug(&t.slug, Some(t.clone()), generation);
                }
                Ok(found)
            })
            .await
    }

    async fn load_domain(&self, domain: &str) -> Lookup {
        let mut epoch = None;
        if let Some(shared) = &self.shared
            && let Ok(read) = shared.read(Key::Domain(domain)).await
        {
            match read.value {
                Some(bytes) if bytes.is_empty() => {
                    self.stats.redis_hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(None);
                }
                Some(bytes) => {
                    // Trust the mapping only if the tenant still holds the domain.
                    let slug = String::from_utf8_lossy(&bytes).into_owned();
                    if let Some(t) = self.load_slug(&slug).await?
                        && t.domains.iter().any(|d| d == domain)
                    {
                        self.stats.redis_hits.fetch_add(1, Ordering::Relaxed);
                        return Ok(Some(t));
                    }
                }
                None => epoch = Some(read.epoch),
            }
        }
        self.stats.upstream_lookups.fetch_add(1, Ordering::Relaxed);
        let found = self.store.by_domain(domain).await?;
        if let (Some(shared), Some(epoch)) = (&self.shared, epoch) {
            let bytes = found
                .as_ref()
                .map(|t| t.slug.clone().into_bytes())
                .unwrap_or_default();
            let _ = shared.fill(Key::Domain(domain), &epoch, bytes).await;
        }
        Ok(found.map(Arc::new))
    }

    /// Whether `slug` exists and is active, with its limits (cached). An unreachable registry
    /// counts as inactive: fail closed.
    pub async fn status(&self, slug: &str) -> TenantStatus {
        match self.tenant(slug).await {
            Ok(Some(t)) => TenantStatus {
                active: t.is_active,
                unavailable: false,
                tier: t.tier.as_str(),
                limits: t.proxy_limits(),
            },
            Ok(None) => TenantStatus {
                active: false,
                unavailable: false,
                tier: "starter",
                limits: tier_limits("starter"),
            },
            Err(e) => {
                tracing::warn!(target: "tenantgate::registry", tenant = slug, error = %e, "registry unreachable; treating tenant as inactive");
                TenantStatus {
                    active: false,
                    unavailable: true,
                    tier: "starter",
                    limits: tier_limits("starter"),
                }
            }
        }
    }

    /// Whether `slug` exists and is active (cached).
    pub async fn is_active(&self, slug: &str) -> bool {
        self.status(slug).await.active
    }

    /// The tenant as stored now, bypassing the caches (admin reads).
    pub async fn fresh(&self, slug: &str) -> Lookup {
        Ok(self.store.by_slug(slug).await?.map(Arc::new))
    }

    /// Up to `limit` tenants in slug order after `after`, and whether more follow (uncached).
    pub async fn list(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Tenant>, bool), RegistryError> {
        self.store.list(after, limit).await
    }

    /// Creates a tenant. Its slug and domains must be free.
    pub async fn create(&self, tenant: &Tenant) -> Result<(), RegistryError> {
        self.store.insert(tenant).await?;
        self.invalidate(&tenant.slug, tenant.domains.clone()).await;
        Ok(())
    }

    /// Applies an update document (`$set`, `$unset`, `$addToSet`, `$pull` of the tenant's own
    /// fields) and invalidates every cached copy. `claimed_domains` are checked to be free first.
    pub async fn update(
        &self,
        slug: &str,
        update: Document,
        claimed_domains: &[String],
    ) -> Result<Option<Tenant>, RegistryError> {
        let Some(before) = self.store.by_slug(slug).await? else {
            return Ok(None);
        };
        self.store.check_domains_free(slug, claimed_domains).await?;
        let written = self.store.update(slug, update).await;
        let mut domains = before.domains;
        domains.extend(claimed_domains.iter().cloned());
        let after = match written {
            Ok(after) => after,
            Err(e) => {
                // The write may have happened even if its reply did not decode: forget the
                // cached copies either way.
                self.invalidate(slug, domains).await;
                return Err(e);
            }
        };
        if let Some(a) = &after {
            domains.extend(a.domains.iter().cloned());
        }
        domains.sort();
        domains.dedup();
        self.invalidate(slug, domains).await;
        Ok(after)
    }

    /// Forgets `slug` and `domains` in this process, in Redis, and (through pub/sub) in every
    /// other instance.
    pub async fn invalidate(&self, slug: &str, domains: Vec<String>) {
        // Redis first: a local lookup after the local invalidation must not find the old
        // value in Redis and cache it again.
        let message = Invalidation {
            slug: slug.to_owned(),
            domains,
        };
        let mut retry = false;
        if let Some(shared) = &self.shared
            && let Err(e) = shared.forget(&message).await
        {
            tracing::warn!(target: "tenantgate::registry", tenant = slug, error = %e, "could not delete the tenant from the Redis cache; retrying in the background");
            retry = true;
        }
        self.local.invalidate(slug, &message.domains);
        if let Some(shared) = &self.shared
            && let Err(e) = shared.publish(&message).await
        {
            tracing::warn!(target: "tenantgate::registry", tenant = slug, error = %e, "could not publish a tenant invalidation; retrying in the background");
            retry = true;
        }
        if retry && let Some(shared) = self.shared.clone() {
            // Until Redis returns, its old copy could be served to other instances; keep trying
            // for as long as that copy could live.
            tokio::spawn(async move {
                let give_up = tokio::time::Instant::now() + shared.ttl();
                while tokio::time::Instant::now() < give_up {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if shared.forget(&message).await.is_ok()
                        && shared.publish(&message).await.is_ok()
                    {
                        tracing::info!(target: "tenantgate::registry", tenant = %message.slug, "delayed tenant invalidation delivered");
                        return;
                    }
                }
            });
        }
    }
}
