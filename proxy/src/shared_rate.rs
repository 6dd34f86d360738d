//! The commands-per-second limit shared by every proxy instance, in Redis.
//!
//! One Lua script per command: a token bucket per tenant in the hash `tg:rate:{<tenant>}`
//! (hash-tagged, so it lives in one Redis Cluster slot), refilled from Redis' own clock so
//! instances with skewed clocks agree. A Redis that is down or slow (over 50 ms) does not stop
//! traffic: the call fails open to the in-process bucket, and the state change is logged once.

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

/// The shared limiter.
pub struct SharedRate {
    conn: ConnectionManager,
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
    /// Connects to `url`.
    pub async fn connect(url: &str) -> Result<SharedRate, String> {
        let client = redis::Client::open(url).map_err(|e| format!("redis.url: {e}"))?;
        let conn = tokio::time::timeout(Duration::from_secs(5), ConnectionManager::new(client))
            .await
            .map_err(|_| format!("redis {url}: connection timed out"))?
            .map_err(|e| format!("redis {url}: {e}"))?;
        Ok(SharedRate {
            conn,
            script: redis::Script::new(SCRIPT),
            degraded: AtomicBool::new(false),
        })
    }

    /// `Some(admitted)` from Redis, `None` when Redis could not answer in time (fail open to the
    /// in-process limiter).
    pub async fn admit(&self, tenant: &str, per_second: u32) -> Option<bool> {
        let mut conn = self.conn.clone();
        let key = format!("tg:rate:{{{tenant}}}");
        let mut invocation = self.script.key(key);
        invocation.arg(per_second);
        let result = tokio::time::timeout(TIMEOUT, invocation.invoke_async::<i64>(&mut conn)).await;
        match result {
            Ok(Ok(allowed)) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!(target: "tenantgate::limits", "redis rate limiter recovered");
                }
                Some(allowed == 1)
            }
            other => {
                if !self.degraded.swap(true, Ordering::Relaxed) {
                    let reason = match other {
                        Err(_) => "timed out".to_owned(),
                        Ok(Err(e)) => e.to_string(),
                        Ok(Ok(_)) => String::new(),
                    };
                    tracing::warn!(target: "tenantgate::limits", reason, "redis rate limiter unavailable; failing open to the in-process limiter");
                }
                None
            }
        }
    }
}
