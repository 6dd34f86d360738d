//! One lazily connected, self-healing link to Redis, shared by everything that uses it (the
//! shared rate limiter, the tenant cache, the API's limits and metering).
//!
//! Redis is an accelerator and a coordinator, never a dependency that can stop traffic: the
//! link connects on first use (a Redis that is down at start-up does not stop tenantgate),
//! every call has a tight timeout, a lost Redis is dialled again at most every few seconds, and
//! each change between "up" and "down" is logged once, not per request. Callers decide what a
//! failed call means (fail open, fall back to the database, or refuse).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::ConnectionManager;

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

/// The shared link.
pub struct RedisLink {
    client: redis::Client,
    conn: tokio::sync::Mutex<(Option<ConnectionManager>, Option<tokio::time::Instant>)>,
    /// Set while Redis is failing; flips are logged once.
    degraded: AtomicBool,
    /// Calls that failed (for `/metrics`).
    failures: AtomicU64,
}

impl std::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLink")
            .field("degraded", &self.degraded.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl RedisLink {
    /// A link to `url` (parsed now, connected on first use).
    pub fn open(url: &str) -> Result<RedisLink, String> {
        let client = redis::Client::open(url).map_err(|e| format!("redis.url: {e}"))?;
        Ok(RedisLink {
            client,
            conn: tokio::sync::Mutex::new((None, None)),
            degraded: AtomicBool::new(false),
            failures: AtomicU64::new(0),
        })
    }

    /// The client, for connections that cannot be multiplexed (pub/sub).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// Whether the last call failed.
    pub fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// Calls that failed since start.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    async fn connection(&self) -> Option<ConnectionManager> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = &guard.0 {
            return Some(c.clone());
        }
        let now = tokio::time::Instant::now();
        if guard
            .1
            .is_some_and(|at| now.duration_since(at) < RECONNECT_EVERY)
        {
            return None;
        }
        guard.1 = Some(now);
        let dial = ConnectionManager::new(self.client.clone());
        match tokio::time::timeout(DIAL_TIMEOUT, dial).await {
            Ok(Ok(c)) => {
                guard.0 = Some(c.clone());
                Some(c)
            }
            _ => None,
        }
    }

    /// Runs `f` on the shared connection within `timeout`. Failures are counted and the first
    /// one after a success (and the first success after failures) is logged.
    pub async fn call<T, F, Fut>(&self, timeout: Duration, f: F) -> Result<T, RedisError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let result = match tokio::time::timeout(timeout, self.connection()).await {
            Ok(Some(conn)) => match tokio::time::timeout(timeout, f(conn)).await {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(RedisError::Failed(e.to_string())),
                Err(_) => Err(RedisError::Timeout),
            },
            Ok(None) => Err(RedisError::NotConnected),
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
