//! The commands-per-second limit shared by every proxy instance, in Redis.
//!
//! One Lua script per command: a token bucket per tenant in the hash `tg:rate:{<tenant>}`
//! (hash-tagged, so it lives in one Redis Cluster slot), refilled from Redis' own clock so
//! instances with skewed clocks agree. A Redis that is down or slow (over 50 ms) does not stop
//! traffic — not even at start-up: the call fails open to the in-process bucket, reconnection is
//! tried at most every few seconds, and each change of state is logged once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::ConnectionManager;

/// Redis must answer within this; otherwise the in-process limiter decides.
const TIMEOUT: Duration = Duration::from_millis(50);

const SCRIPT: &str = r#"
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', key, 'tokens', 'at')
local tokens = tonumber(state[1]) or rate
local at = tonumber(state[2]) or now
tokens = math.min(rate, tokens + math.max(0, now - at) * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', key, 'tokens', tokens, 'at', now)
redis.call('EXPIRE', key, 60)
return allowed
"#;

/// How often a lost Redis is dialled again.
const RECONNECT_EVERY: Duration = Duration::from_secs(5);

/// The shared limiter.
pub struct SharedRate {
    client: redis::Client,
    conn: tokio::sync::Mutex<(Option<ConnectionManager>, Option<tokio::time::Instant>)>,
    script: redis::Script,
    degraded: AtomicBool,
}

impl std::fmt::Debug for SharedRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRate")
            .field("degraded", &self.degraded.load(Ordering::Relaxed))
            .finish()
    }
}

impl SharedRate {
    /// A limiter for `url` (checked now; connected on first use, so a Redis that is down at
    /// start-up does not stop the proxy).
    pub async fn connect(url: &str) -> Result<SharedRate, String> {
        let client = redis::Client::open(url).map_err(|e| format!("redis.url: {e}"))?;
        Ok(SharedRate {
            client,
            conn: tokio::sync::Mutex::new((None, None)),
            script: redis::Script::new(SCRIPT),
            degraded: AtomicBool::new(false),
        })
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
        match tokio::time::timeout(Duration::from_millis(500), dial).await {
            Ok(Ok(c)) => {
                guard.0 = Some(c.clone());
                Some(c)
            }
            _ => None,
        }
    }

    /// `Some(admitted)` from Redis, `None` when Redis could not answer in time (fail open to the
    /// in-process limiter).
    pub async fn admit(&self, tenant: &str, per_second: u32) -> Option<bool> {
        let result = match self.connection().await {
            Some(conn) => self.call(conn, tenant, per_second).await,
            None => Err("not connected".to_owned()),
        };
        match result {
            Ok(allowed) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!(target: "tenantgate::limits", "redis rate limiter recovered");
                }
                Some(allowed)
            }
            Err(reason) => {
                if !self.degraded.swap(true, Ordering::Relaxed) {
                    tracing::warn!(target: "tenantgate::limits", reason, "redis rate limiter unavailable; failing open to the in-process limiter");
                }
                None
            }
        }
    }

    async fn call(
        &self,
        mut conn: ConnectionManager,
        tenant: &str,
        per_second: u32,
    ) -> Result<bool, String> {
        let key = format!("tg:rate:{{{tenant}}}");
        let mut invocation = self.script.key(key);
        invocation.arg(per_second);
        let result = tokio::time::timeout(TIMEOUT, invocation.invoke_async::<i64>(&mut conn)).await;
        match result {
            Ok(Ok(allowed)) => Ok(allowed == 1),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".to_owned()),
        }
    }
}
