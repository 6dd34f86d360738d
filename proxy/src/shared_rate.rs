//! The commands-per-second limit shared by every proxy instance, in Redis.
//!
//! One Lua script per command: a token bucket per tenant in the hash `tg:rate:{<tenant>}`
//! (hash-tagged, so it lives in one Redis Cluster slot), refilled from Redis' own clock so
//! instances with skewed clocks agree. A Redis that is down or slow (over 50 ms) does not stop
//! traffic — not even at start-up: the call fails open to the in-process bucket, reconnection is
//! tried at most every few seconds, and each change of state is logged once.

use std::sync::Arc;
use std::time::Duration;

use crate::redis_link::RedisLink;

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
#[derive(Debug, Clone)]
pub struct SharedRate {
    link: Arc<RedisLink>,
    script: Arc<redis::Script>,
}

impl SharedRate {
    /// A limiter for `url` (checked now; connected on first use, so a Redis that is down at
    /// start-up does not stop the proxy).
    pub async fn connect(url: &str) -> Result<SharedRate, String> {
        Ok(Self::new(Arc::new(RedisLink::open(url)?)))
    }

    /// A limiter over an existing link.
    pub fn new(link: Arc<RedisLink>) -> SharedRate {
        SharedRate {
            link,
            script: Arc::new(redis::Script::new(SCRIPT)),
        }
    }

    /// `Some(admitted)` from Redis, `None` when Redis could not answer in time (fail open to the
    /// in-process limiter).
    pub async fn admit(&self, tenant: &str, per_second: u32) -> Option<bool> {
        let key = format!("tg:rate:{{{tenant}}}");
        let script = self.script.clone();
        self.link
            .call(TIMEOUT, move |mut conn| async move {
                let mut invocation = script.key(key);
                invocation.arg(per_second);
                invocation.invoke_async::<i64>(&mut conn).await
            })
            .await
            .ok()
            .map(|allowed| allowed == 1)
    }
}
