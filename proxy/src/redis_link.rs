//! One lazily connected, self-healing link to Redis — a single server or a Redis Cluster —
//! shared by everything that uses it (the rate limiter, the tenant cache, usage metering).
//!
//! Redis is an accelerator and a coordinator, never a dependency that can stop traffic: the
//! link connects on first use (a Redis that is down at start-up does not stop tenantgate),
//! every call has a tight timeout, a lost Redis is dialled again at most every few seconds, and
//! each change between "up" and "down" is logged once, not per request. Callers decide what a
//! failed call means (fail open, fall back to the database, or refuse).
//!
//! Every key tenantgate writes carries a hash tag (`{bank1}`), so the keys one script touches
//! live in one cluster slot and the same code runs against one server or a cluster.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// How often a lost Redis is dialled again.
const RECONNECT_EVERY: Duration = Duration::from_secs(5);
/// How long one dial may take.
const DIAL_TIMEOUT: Duration = Duration::from_millis(500);

/// Why a Redis call did not produce an answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RedisError {
    /// Not connected (down at the last dial, waiting before the next one).
    #[error("redis is not connected")]
    NotConnected,
    /// No answer within the call's timeout.
    #[error("redis timed out")]
    Timeout,
    /// Redis answered with an error, or the connection broke.
    #[error("redis: {0}")]
    Failed(String),
}

/// A connection handed to a call: to one server or to a cluster. Cheap to clone (both are
/// multiplexed handles).
#[derive(Clone)]
pub enum RedisConn {
    /// A single server.
    Single(ConnectionManager),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RedisConn::Single(_) => "RedisConn::Single",
            RedisConn::Cluster(_) => "RedisConn::Cluster",
        })
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
        }
    }
}

enum Target {
    Single(redis::Client),
    Cluster(Box<redis::cluster::ClusterClient>),
}

/// The connection and the dial in progress.
#[derive(Default)]
struct Link {
    conn: Option<RedisConn>,
    last_dial: Option<tokio::time::Instant>,
    dialling: Option<tokio::task::JoinHandle<Option<RedisConn>>>,
}

/// The shared link.
pub struct RedisLink {
    target: Target,
    /// A plain client for pub/sub (a cluster broadcasts PUBLISH to every node, so subscribing
    /// to one seed node hears all of them).
    pubsub: redis::Client,
    conn: tokio::sync::Mutex<Link>,
    /// The established connection, readable without awaiting (the hot path).
    ready: std::sync::RwLock<Option<RedisConn>>,
    /// Set while Redis is failing; flips are logged once.
    degraded: AtomicBool,
    /// Calls that failed (for `/metrics`).
    failures: AtomicU64,
    /// `redis.key_prefix`.
    prefix: String,
}

impl std::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLink")
            .field("cluster", &matches!(self.target, Target::Cluster(_)))
            .field("degraded", &self.degraded.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl RedisLink {
    /// A link to one server at `url` (parsed now, connected on first use).
    pub fn open(url: &str) -> Result<RedisLink, String> {
        let client = redis::Client::open(url).map_err(|e| format!("redis.url: {e}"))?;
        Ok(Self::with(Target::Single(client.clone()), client))
    }

    /// A link to the Redis Cluster seeded by `nodes` (parsed now, connected on first use).
    pub fn open_cluster(nodes: &[String]) -> Result<RedisLink, String> {
        let first = nodes
            .first()
            .ok_or_else(|| "redis.cluster_nodes: at least one node".to_owned())?;
        let pubsub =
            redis::Client::open(first.as_str()).map_err(|e| format!("redis.cluster_nodes: {e}"))?;
        let cluster = redis::cluster::ClusterClientBuilder::new(nodes.iter().map(String::as_str))
            .connection_timeout(DIAL_TIMEOUT)
            .response_timeout(Duration::from_secs(1))
            .retries(1)
            .build()
            .map_err(|e| format!("redis.cluster_nodes: {e}"))?;
        Ok(Self::with(Target::Cluster(Box::new(cluster)), pubsub))
    }

    fn with(target: Target, pubsub: redis::Client) -> RedisLink {
        RedisLink {
            target,
            pubsub,
            conn: tokio::sync::Mutex::new(Link::default()),
            ready: std::sync::RwLock::new(None),
            degraded: AtomicBool::new(false),
            failures: AtomicU64::new(0),
            prefix: String::new(),
        }
    }

    /// Sets `redis.key_prefix`.
    pub fn with_prefix(mut self, prefix: &str) -> RedisLink {
        self.prefix = prefix.to_owned();
        self
    }

    /// `redis.key_prefix` followed by `key`.
    pub fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// A plain client for connections that cannot be multiplexed (pub/sub).
    pub fn client(&self) -> &redis::Client {
        &self.pubsub
    }

    /// Whether this is a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }

    /// Whether the last call failed.
    pub fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// Calls that failed since start.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    fn dial(&self) -> tokio::task::JoinHandle<Option<RedisConn>> {
        match &self.target {
            Target::Single(client) => {
                let client = client.clone();
                tokio::spawn(async move {
                    tokio::time::timeout(DIAL_TIMEOUT, ConnectionManager::new(client))
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .map(RedisConn::Single)
                })
            }
            Target::Cluster(client) => {
                let client = client.clone();
                tokio::spawn(async move {
                    tokio::time::timeout(DIAL_TIMEOUT * 2, client.get_async_connection())
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .map(RedisConn::Cluster)
                })
            }
        }
    }

    /// The connection, dialling if needed. A dial runs as its own task, so a caller whose
    /// (tight) timeout ends first does not cancel it: the next caller finds it finished.
    async fn connection(&self) -> Option<RedisConn> {
        // The hot path: connected, no await, no contention beyond a read lock.
        if let Ok(ready) = self.ready.read()
            && let Some(c) = ready.as_ref()
        {
            return Some(c.clone());
        }
        let mut link = self.conn.lock().await;
        if let Some(c) = &link.conn {
            return Some(c.clone());
        }
        if link.dialling.is_none() {
            let now = tokio::time::Instant::now();
            if link
                .last_dial
                .is_some_and(|at| now.duration_since(at) < RECONNECT_EVERY)
            {
                return None;
            }
            link.last_dial = Some(now);
            link.dialling = Some(self.dial());
        }
        let dialled = match link.dialling.as_mut() {
            Some(handle) => handle.await.ok().flatten(),
            None => None,
        };
        link.dialling = None;
        if let Some(c) = &dialled {
            link.conn = Some(c.clone());
            if let Ok(mut ready) = self.ready.write() {
                *ready = Some(c.clone());
            }
        }
        dialled
    }

    /// Runs `f` on the shared connection within `timeout`. Failures are counted and the first
    /// one after a success (and the first success after failures) is logged.
    pub async fn call<T, F, Fut>(&self, timeout: Duration, f: F) -> Result<T, RedisError>
    where
        F: FnOnce(RedisConn) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let attempt = async {
            match self.connection().await {
                Some(conn) => f(conn).await.map_err(|e| RedisError::Failed(e.to_string())),
                None => Err(RedisError::NotConnected),
            }
        };
        let result = match tokio::time::timeout(timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(RedisError::Timeout),
        };
        match &result {
            Ok(_) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!(target: "tenantgate::redis", "redis recovered");
                }
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                if !self.degraded.swap(true, Ordering::Relaxed) {
                    tracing::warn!(target: "tenantgate::redis", error = %e, "redis unavailable; falling back until it returns");
                }
            }
        }
        result
    }
}
