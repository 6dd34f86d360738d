//! What every handler can reach: the services the proxy built (registry, policy engine,
//! audit sink, JWT verifier, Redis) and the API's own settings, behind one cheap clone.

use std::sync::Arc;

use tenantgate_proxy::Services;
use tenantgate_proxy::net::Cidr;

use crate::routes::metrics::MetricsRenderer;

/// How hosts name tenants (`[api] base_domains`, `trusted_proxies`).
#[derive(Debug, Clone, Default)]
pub struct HostRules {
    /// Base domains, normalised (`financeops.com`).
    pub base_domains: Vec<String>,
    /// Peers whose `X-Forwarded-Host` is believed.
    pub trusted_proxies: Vec<Cidr>,
}

/// The router's state.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    services: Services,
    metrics: MetricsRenderer,
    hosts: HostRules,
    database: String,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("hosts", &self.inner.hosts)
            .field("database", &self.inner.database)
            .finish_non_exhaustive()
    }
}

impl ApiState {
    /// The state for `services` (from [`tenantgate_proxy::Proxy::services`]).
    pub fn new(services: Services, metrics: MetricsRenderer) -> ApiState {
        let api = &services.config.api;
        let hosts = HostRules {
            base_domains: api.base_domains.clone(),
            // Validated at config load; an entry that does not parse is skipped, never trusted.
            trusted_proxies: api
                .trusted_proxies
                .iter()
                .filter_map(|p| Cidr::parse(p).ok())
                .collect(),
        };
        let database = api
            .database
            .clone()
            .or_else(|| services.config.policy.databases.first().cloned())
            .unwrap_or_else(|| "payments".into());
        ApiState {
            inner: Arc::new(Inner {
                services,
                metrics,
                hosts,
                database,
            }),
        }
    }

    /// The shared services.
    pub fn services(&self) -> &Services {
        &self.inner.services
    }

    /// The metrics renderer.
    pub fn metrics(&self) -> &MetricsRenderer {
        &self.inner.metrics
    }

    /// Host rules.
    pub fn hosts(&self) -> &HostRules {
        &self.inner.hosts
    }

    /// The database tenant data lives in.
    pub fn database(&self) -> &str {
        &self.inner.database
    }
}
