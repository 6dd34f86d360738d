//! What every handler can reach: the services the proxy built (registry, policy engine,
//! audit sink, JWT verifier, Redis) and the API's own settings, behind one cheap clone.

use std::sync::Arc;

use tenantgate_proxy::Services;
use tenantgate_proxy::net::Cidr;

use crate::routes::metrics::MetricsRenderer;
use crate::usage::meter::Meter;

/// How hosts name tenants (`[api] base_domains`, `trusted_proxies`).
#[derive(Debug, Clone, Default)]
pub struct HostRules {
    /// Base domains, normalised (`financeops.com`).
    pub base_domains: Vec<String>,
    /// Peers whose `X-Forwarded-Host` is believed.
    pub trusted_proxies: Vec<Cidr>,
}

/// A weak [`ApiState`].
#[derive(Clone)]
pub struct WeakApiState(std::sync::Weak<Inner>);

impl std::fmt::Debug for WeakApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WeakApiState")
    }
}

/// The router's state.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    services: Services,
    meter: Arc<Meter>,
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
        let meter = Arc::new(Meter::new(
            services.redis.clone(),
            services.config.limits.usage_retention_days,
            services.rate_limiter.clock().clone(),
        ));
        meter.spawn_flusher();
        let state = ApiState {
            inner: Arc::new(Inner {
                services,
                meter,
                metrics,
                hosts,
                database,
            }),
        };
        crate::usage::jobs::spawn(&state);
        let services = state.services().clone();
        let db = state.database().to_owned();
        tokio::spawn(async move {
            let field = services.config.policy.tenant_field.clone();
            if let Err(e) = crate::payments::ensure_indexes(&services.upstream, &db, &field).await {
                tracing::error!(target: "tenantgate::api", error = %e, "payments indexes missing: concurrent duplicate Idempotency-Keys could create two payments");
            }
        });
        state
    }

    /// A weak handle, for background tasks that must not keep the API alive.
    pub fn downgrade(&self) -> WeakApiState {
        WeakApiState(Arc::downgrade(&self.inner))
    }

    /// The state behind `weak`, while anything else still holds it.
    pub fn upgrade(weak: &WeakApiState) -> Option<ApiState> {
        weak.0.upgrade().map(|inner| ApiState { inner })
    }

    /// Usage metering.
    pub fn meter(&self) -> &Arc<Meter> {
        &self.inner.meter
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
