//! The tenant registry: the `tenants` collection in tenantgate's own database.
//!
//! The proxy needs two things from it: the `[[tenants]]` of the configuration exist (created at
//! start-up when missing; an existing tenant keeps what the admin API last set), and whether a
//! tenant is active. Activity is cached for `TTL`, so deactivating a tenant cuts off its new
//! commands within that time on every proxy instance, without a registry read per command.
//! The registry lives upstream in `policy.internal_database`, which the policy engine never
//! opens to tenants.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bson::{RawArrayBuf, rawdoc};

use crate::config::TenantSeed;
use crate::upstream::{Upstream, UpstreamError};

/// How long an activity answer is trusted.
pub const TTL: Duration = Duration::from_secs(10);

/// The collection holding tenants.
pub const COLLECTION: &str = "tenants";

/// What the proxy needs to know about a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantStatus {
    /// Exists and is active.
    pub active: bool,
    /// `starter`, `professional` or `enterprise`.
    pub tier: String,
}

/// Registry access with a small cache.
#[derive(Debug)]
pub struct Registry {
    upstream: Arc<Upstream>,
    database: String,
    cache: Mutex<HashMap<String, (TenantStatus, Instant)>>,
}

impl Registry {
    /// A registry in `database`.
    pub fn new(upstream: Arc<Upstream>, database: &str) -> Self {
        Registry {
            upstream,
            database: database.to_owned(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Creates the unique indexes and every seed tenant that does not exist yet.
    pub async fn ensure(&self, seeds: &[TenantSeed]) -> Result<(), UpstreamError> {
        let db = self.database.as_str();
        let indexes = rawdoc! {
            "createIndexes": COLLECTION,
            "indexes": [
                { "key": { "slug": 1 }, "name": "slug_unique", "unique": true },
                { "key": { "domains": 1 }, "name": "domains_unique", "unique": true, "partialFilterExpression": { "domains": { "$type": "string" } } },
            ],
            "$db": db,
        };
        let reply = self.upstream.command(indexes).await?;
        if reply.get_f64("ok").unwrap_or(0.0) != 1.0 {
            tracing::warn!(target: "tenantgate::registry", reply = %reply, "could not create registry indexes");
        }
        for seed in seeds {
            let now = bson::DateTime::now();
            let mut domains = RawArrayBuf::new();
            for d in &seed.domains {
                domains.push(d.trim().trim_end_matches('.').to_ascii_lowercase().as_str());
            }
            let upsert = rawdoc! {
                "update": COLLECTION,
                "updates": [ {
                    "q": { "slug": seed.slug.as_str() },
                    "u": { "$setOnInsert": {
                        "slug": seed.slug.as_str(), "name": seed.name.as_str(), "tier": seed.tier.as_str(),
                        "domains": domains, "settings": {}, "limits": {}, "isActive": seed.active,
                        "createdAt": now, "updatedAt": now,
                    } },
                    "upsert": true,
                } ],
                "$db": db,
            };
            let reply = self.upstream.command(upsert).await?;
            if reply.get_f64("ok").unwrap_or(0.0) != 1.0 {
                return Err(UpstreamError::Protocol(format!(
                    "creating tenant {}: {reply}",
                    seed.slug
                )));
            }
        }
        Ok(())
    }

    /// Whether `slug` exists and is active (cached for [`TTL`]).
    pub async fn is_active(&self, slug: &str) -> bool {
        self.status(slug).await.active
    }

    /// The tenant's status (cached for [`TTL`]). An unreachable registry counts as inactive:
    /// fail closed.
    pub async fn status(&self, slug: &str) -> TenantStatus {
        if let Ok(cache) = self.cache.lock()
            && let Some((status, at)) = cache.get(slug)
            && at.elapsed() < TTL
        {
            return status.clone();
        }
        let find = rawdoc! {
            "find": COLLECTION, "filter": { "slug": slug }, "limit": 1, "singleBatch": true,
            "projection": { "isActive": 1, "tier": 1 }, "$db": self.database.as_str(),
        };
        let status = match self.upstream.command(find).await {
            Ok(reply) => {
                let doc = reply
                    .get_document("cursor")
                    .and_then(|c| c.get_array("firstBatch"))
                    .ok()
                    .and_then(|b| b.first())
                    .and_then(|d| d.as_document())
                    .cloned();
                TenantStatus {
                    active: doc
                        .as_ref()
                        .is_some_and(|d| d.get_bool("isActive").unwrap_or(false)),
                    tier: doc
                        .as_ref()
                        .and_then(|d| d.get_str("tier").ok())
                        .unwrap_or("starter")
                        .to_owned(),
                }
            }
            Err(e) => {
                tracing::warn!(target: "tenantgate::registry", tenant = slug, error = %e, "registry unreachable; treating tenant as inactive");
                return TenantStatus {
                    active: false,
                    tier: "starter".into(),
                };
            }
        };
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(slug.to_owned(), (status.clone(), Instant::now()));
        }
        status
    }
}
