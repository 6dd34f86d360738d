//! The listener: accepts clients up to `max_connections`, hands each to a connection task, and
//! on shutdown stops accepting and lets in-flight commands finish.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicI32, AtomicI64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tenantgate_wire::Limits;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::audit::AuditSink;
use crate::auth::PrincipalStore;
use crate::config::{Config, Env};
use crate::cursors::CursorRegistry;
use crate::error::ProxyError;
use crate::limits::Limiter;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::redis_link::RedisLink;
use crate::registry::Registry;
use crate::scoped::Engine;
use crate::sessions::SessionRegistry;
use crate::upstream::Upstream;

/// Failed authentications per source address, to slow guessing down.
#[derive(Debug, Default)]
pub(crate) struct Failures {
    recent: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Failures {
    const WINDOW: Duration = Duration::from_secs(60);

    /// Records a failure and returns how long to wait before answering: 100 ms per failure in
    /// the last minute, at most 3 s.
    pub(crate) fn record(&self, ip: IpAddr) -> Duration {
        let Ok(mut m) = self.recent.lock() else {
            return Duration::from_millis(100);
        };
        let now = Instant::now();
        if m.len() > 100_000 {
            m.retain(|_, (_, at)| now.duration_since(*at) < Self::WINDOW);
        }
        let entry = m.entry(ip).or_insert((0, now));
        if now.duration_since(entry.1) > Self::WINDOW {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        Duration::from_millis(100 * u64::from(entry.0.min(30)))
    }

    /// Forgets an address after a success.
    pub(crate) fn clear(&self, ip: IpAddr) {
        if let Ok(mut m) = self.recent.lock() {
            m.remove(&ip);
        }
    }
}

/// A tenant collection whose *default* collation is not simple would loosen the scope's
/// `tenantId` equality for every command that names no collation (the policy engine refuses
/// explicit ones). The engine cannot see collection options, so the proxy looks at start-up and
/// closes such collections to tenants (`admin` mode), loudly.
async fn guard_collations(upstream: &Upstream, policy: &mut tenantgate_policy::PolicyConfig) {
    use tenantgate_policy::{CollectionMode, CollectionPolicy};
    for db in policy.databases.clone() {
        let list = bson::rawdoc! {
            "listCollections": 1, "filter": { "options.collation": { "$exists": true } },
            "nameOnly": false, "$db": db.as_str(),
        };
        let Ok(reply) = upstream.command(list).await else {
            continue;
        };
        let batch = reply
            .get_document("cursor")
            .and_then(|c| c.get_array("firstBatch"))
            .cloned()
            .unwrap_or_default();
        for item in batch.iter().filter_map(|b| b.as_document()) {
            let Ok(name) = item.get_str("name") else {
                continue;
            };
            let locale = item
                .get_document("options")
                .and_then(|o| o.get_document("collation"))
                .and_then(|c| c.get_str("locale"))
                .unwrap_or("simple");
            if locale == "simple" || policy.collection(name).mode != CollectionMode::Tenant {
                continue;
            }
            tracing::error!(
                target: "tenantgate::proxy",
                database = %db,
                collection = name,
                locale,
                "collection has a non-simple default collation, which would loosen tenant isolation: closed to tenants (admin mode)"
            );
            let mut closed = policy.collection(name).clone();
            closed.mode = CollectionMode::Admin;
            policy
                .collections
                .insert(name.to_owned(), CollectionPolicy { ..closed });
        }
    }
}

/// State every connection shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: Config,
    pub principals: PrincipalStore,
    pub upstream: Arc<Upstream>,
    pub registry: Arc<Registry>,
    pub audit: Arc<AuditSink>,
    pub cursors: CursorRegistry,
    pub sessions: SessionRegistry,
    pub limiter: Arc<Limiter>,
    pub metrics: Arc<Metrics>,
    pub jwt: Option<Arc<crate::auth::jwt::JwtVerifier>>,
    pub rate_limiter: Arc<RateLimiter>,
    pub failures: Failures,
    pub next_connection_id: AtomicI64,
    pub next_reply_id: AtomicI32,
    pub limits: Limits,
}

/// A bound proxy, ready to run.
pub struct Proxy {
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    services: Services,
}

/// What the proxy built that the HTTP API shares: one upstream pool, one registry and its
/// caches, one audit sink, one JWT verifier and one policy engine per process.
#[derive(Debug, Clone)]
pub struct Services {
    /// The validated configuration (its `policy` after the start-up collation guard).
    pub config: Arc<Config>,
    /// The upstream pool.
    pub upstream: Arc<Upstream>,
    /// The tenant registry.
    pub registry: Arc<Registry>,
    /// The audit sink.
    pub audit: Arc<AuditSink>,
    /// Proxy metrics.
    pub metrics: Arc<Metrics>,
    /// The `[jwt]` verifier, when configured.
    pub jwt: Option<Arc<crate::auth::jwt::JwtVerifier>>,
    /// The Redis link, when configured.
    pub redis: Option<Arc<RedisLink>>,
    /// The rate limiter (shared windows in Redis, in-process fallback).
    pub rate_limiter: Arc<RateLimiter>,
    /// The in-process policy path for tenant-scoped data access.
    pub engine: Arc<Engine>,
}
impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("listener", &self.listener)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Proxy {
    /// Derives credentials, connects to the upstream and binds the listener. Errors say which
    /// part failed and why.
    pub async fn bind(mut config: Config, env: &dyn Env) -> Result<Proxy, ProxyError> {
        let principals = PrincipalStore::from_config(&config.principals, env)?;
        let jwt = config
            .jwt
            .as_ref()
            .map(crate::auth::jwt::JwtVerifier::from_config)
            .transpose()?
            .map(Arc::new);
        let redis = match &config.redis {
            Some(r) => Some(Arc::new(r.link()?)),
            None => None,
        };
        let rate_limiter = Arc::new(RateLimiter::new(redis.clone(), &config.limits));
        let tls = match (&config.proxy.tls_cert_file, &config.proxy.tls_key_file) {
            (Some(cert), Some(key)) => Some(crate::tls::acceptor(cert, key)?),
            _ => None,
        };
        let upstream = Upstream::connect(&config.upstream).await?;
        guard_collations(&upstream, &mut config.policy).await;
        let upstream_session_minutes = upstream.info.session_timeout_minutes.unwrap_or(30);
        let registry = Arc::new(Registry::new(
            upstream.clone(),
            &config.policy.internal_database,
            redis.clone(),
            &config.registry,
        ));
        registry
            .ensure(&config.tenants)
            .await
            .map_err(|e| ProxyError::Upstream {
                addr: upstream.addr().to_owned(),
                reason: format!("cannot prepare the tenant registry: {e}"),
            })?;
        let listener = TcpListener::bind(&config.proxy.listen)
            .await
            .map_err(|source| ProxyError::Bind {
                addr: config.proxy.listen.clone(),
                source,
            })?;
        let audit = AuditSink::start(
            upstream.clone(),
            &config.policy.internal_database,
            config.audit.retention_days,
            config.audit.buffer,
        );
        let limits = Limits {
            max_message_size: config.proxy.max_message_size,
            ..Limits::default()
        };
        let metrics = Arc::new(Metrics::default());
        let engine = Arc::new(Engine::new(
            upstream.clone(),
            config.policy.clone(),
            audit.clone(),
            registry.clone(),
            metrics.clone(),
        ));
        let services = Services {
            config: Arc::new(config.clone()),
            upstream: upstream.clone(),
            registry: registry.clone(),
            audit: audit.clone(),
            metrics: metrics.clone(),
            jwt: jwt.clone(),
            redis,
            engine,
            rate_limiter: rate_limiter.clone(),
        };
        let shared = Arc::new(Shared {
            config,
            principals,
            upstream,
            registry,
            audit,
            cursors: CursorRegistry::default(),
            sessions: SessionRegistry::new(Duration::from_secs(
                60 * u64::try_from(upstream_session_minutes).unwrap_or(30).max(1),
            )),
            limiter: Arc::new(Limiter::default()),
            metrics,
            jwt,
            rate_limiter,
            failures: Failures::default(),
            next_connection_id: AtomicI64::new(1),
            next_reply_id: AtomicI32::new(1),
            limits,
        });
        Ok(Proxy {
            listener,
            shared,
            tls,
            services,
        })
    }

    /// A renderer for `GET /metrics` (Prometheus text format).
    pub fn metrics_renderer(&self) -> impl Fn() -> String + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || {
            let (pool_idle, pool_busy) = shared.upstream.pool_state();
            shared.metrics.render(&crate::metrics::Extra {
                audit_dropped: shared.audit.dropped(),
                cursors_open: shared.cursors.len(),
                tenants: shared.limiter.snapshot(),
                pool_idle,
                pool_busy,
            })
        }
    }

    /// The shared services, for the HTTP API in the same process.
    pub fn services(&self) -> Services {
        self.services.clone()
    }

    /// The audit sink (for its drop counter).
    pub fn audit(&self) -> Arc<AuditSink> {
        self.shared.audit.clone()
    }

    /// The address it listens on (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then stops accepting, tells connections to finish and
    /// waits up to `grace` for them.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>, grace: Duration) {
        let Proxy {
            listener,
            shared,
            tls,
            services: _,
        } = self;
        let permits = Arc::new(Semaphore::new(shared.config.proxy.max_connections));
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                _ = &mut shutdown => break,
            };
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = &mut shutdown => break,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let shared = shared.clone();
                    let stop = stop_rx.clone();
                    let tls = tls.clone();
                    tasks.spawn(async move {
                        match tls {
                            None => crate::connection::run(stream, peer, shared, stop, false).await,
                            Some(acceptor) => {
                                let timeout = Duration::from_secs(shared.config.proxy.frame_timeout_secs.max(1));
                                match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                                    Ok(Ok(tls_stream)) => crate::connection::run(tls_stream, peer, shared, stop, true).await,
                                    Ok(Err(e)) => {
                                        tracing::info!(target: "tenantgate::proxy", peer = %peer, error = %e, "TLS handshake failed");
                                    }
                                    Err(_) => {
                                        tracing::info!(target: "tenantgate::proxy", peer = %peer, "TLS handshake timed out");
                                    }
                                }
                            }
                        }
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!(target: "tenantgate::proxy", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            while tasks.try_join_next().is_some() {}
        }
        // Closed now, not when `run` returns: a listener kept open during the drain would let
        // the kernel complete new clients' handshakes into a backlog nobody serves, and they
        // would hang until the process exits instead of being refused at once.
        drop(listener);
        tracing::info!(target: "tenantgate::proxy", connections = tasks.len(), "shutting down: draining connections");
        let _ = stop_tx.send(true);
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(target: "tenantgate::proxy", "grace period over; closing remaining connections");
            tasks.abort_all();
        }
    }
}
