//! Per-tenant rate limiting shared by every instance: a sliding window log in Redis (one
//! atomic script per request, see [`script`]), with a circuit breaker ([`breaker`]) and an
//! in-process fallback ([`local`]). The HTTP API limits requests per endpoint group per minute
//! and meters usage in the same script; the proxy limits commands per second per tenant with
//! the same limiter.
//!
//! Keys are hash-tagged on the tenant — `rate_limit:{bank1}:payments`, `usage:{bank1}:2026-11`
//! — so everything one script touches is in one Redis Cluster slot.
//!
//! When Redis is down or slow (a call over `limits.redis_timeout_ms`), the breaker opens after
//! `breaker_failures` consecutive failures and decisions are made in process: `open` failure
//! mode admits by the local window (each instance counts only its own requests), `closed`
//! refuses ([`Verdict::unavailable`]). Without a `[redis]` section the local window is the
//! limiter.

pub mod breaker;
pub mod local;
pub mod period;
pub mod script;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use redis::Value;

pub use crate::config::FailureMode;
use crate::config::LimitsConfig;
use crate::redis_link::RedisLink;
use breaker::Breaker;
use local::LocalWindows;
pub use period::Period;

/// Where "now" comes from.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// Redis' `TIME` (production).
    #[default]
    Redis,
    /// A fixed instant in Unix milliseconds that tests move by hand.
    Fixed(Arc<AtomicI64>),
}

impl Clock {
    fn injected(&self) -> Option<i64> {
        match self {
            Clock::Redis => None,
            Clock::Fixed(ms) => Some(ms.load(Ordering::Relaxed)),
        }
    }

    /// Now by this clock, read locally (Redis time is only known inside the script).
    pub fn local_millis(&self) -> i64 {
        self.injected().unwrap_or_else(period::now_millis)
    }
}

/// One request to limit.
#[derive(Debug, Clone, Copy)]
pub struct Check<'a> {
    /// The tenant slug.
    pub tenant: &'a str,
    /// The endpoint group (`payments`, `default`, `proxy_commands`).
    pub group: &'a str,
    /// Requests admitted per window.
    pub limit: u64,
    /// The window.
    pub window: Duration,
    /// What to do while Redis is down.
    pub mode: FailureMode,
    /// Usage to add to the tenant's month when admitted (`("api_calls", 1)`).
    pub usage: &'a [(&'a str, i64)],
}

/// Who decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The shared window in Redis.
    Redis,
    /// This instance's window.
    Local,
}

/// The decision on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The request may proceed.
    pub admitted: bool,
    /// Redis was needed (failure mode `closed`) and could not answer: refuse with 503.
    pub unavailable: bool,
    /// The limit applied.
    pub limit: u64,
    /// Requests left in the window.
    pub remaining: u64,
    /// Until a slot frees (the oldest admitted request leaves the window).
    pub reset: Duration,
    /// The window.
    pub window: Duration,
    /// Who decided.
    pub source: Source,
    /// The month the request belongs to (Redis' clock when Redis decided).
    pub period: Period,
    /// The script added [`Check::usage`] to the month; otherwise the caller must.
    pub usage_recorded: bool,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Decisions made by Redis.
    pub redis_decisions: AtomicU64,
    /// Decisions made in process (no Redis, breaker open, or a failed call).
    pub local_decisions: AtomicU64,
    /// Requests refused because Redis was needed and down (`closed` mode).
    pub refused_unavailable: AtomicU64,
    /// Redis calls that failed or timed out.
    pub redis_failures: AtomicU64,
}

/// A Redis call in flight; if its future is dropped before it finishes (the client went
/// away), the breaker hears of it, so an abandoned trial call cannot leave it half-open.
struct Pending<'a> {
    breaker: &'a Breaker,
    finished: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.breaker.abandoned();
        }
    }
}

/// The limiter.
#[derive(Debug)]
pub struct RateLimiter {
    redis: Option<Arc<RedisLink>>,
    script: redis::Script,
    breaker: Breaker,
    local: LocalWindows,
    timeout: Duration,
    retention_days: u32,
    /// Makes window members unique across instances.
    instance: String,
    sequence: AtomicU64,
    clock: Clock,
    stats: Stats,
}

fn int(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Int(n)) => *n,
        Some(Value::BulkString(b)) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        _ => 0,
    }
}

impl RateLimiter {
    /// A limiter over `redis` (or purely in process without it), configured by `[limits]`.
    pub fn new(redis: Option<Arc<RedisLink>>, config: &LimitsConfig) -> RateLimiter {
        let id: [u8; 6] = rand::random();
        RateLimiter {
            redis,
            script: redis::Script::new(&script::source()),
            breaker: Breaker::new(
                config.breaker_failures,
                Duration::from_millis(config.breaker_cooldown_ms),
            ),
            local: LocalWindows::default(),
            timeout: Duration::from_millis(config.redis_timeout_ms),
            retention_days: config.usage_retention_days,
            instance: id.iter().map(|b| format!("{b:02x}")).collect(),
            sequence: AtomicU64::new(0),
            clock: Clock::Redis,
            stats: Stats::default(),
        }
    }

    /// Replaces the clock (tests).
    pub fn with_clock(mut self, clock: Clock) -> RateLimiter {
        self.clock = clock;
        self
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The breaker's state.
    pub fn breaker_state(&self) -> breaker::State {
        self.breaker.state()
    }

    /// Times the breaker opened.
    pub fn breaker_trips(&self) -> u64 {
        self.breaker.trips.load(Ordering::Relaxed)
    }

    /// Whether Redis is configured.
    pub fn shared(&self) -> bool {
        self.redis.is_some()
    }

    /// The window key of `tenant` and `group` (after `redis.key_prefix`).
    pub fn window_key(tenant: &str, group: &str) -> String {
        format!("rate_limit:{{{tenant}}}:{group}")
    }

    /// The usage hash of `tenant` for `period` (after `redis.key_prefix`).
    pub fn usage_key(tenant: &str, period: Period) -> String {
        format!("usage:{{{tenant}}}:{period}")
    }

    /// Decides one request: Redis when it answers, else the failure mode.
    pub async fn check(&self, check: Check<'_>) -> Verdict {
        if let Some(v) = self.check_shared(&check).await {
            return v;
        }
        let period = Period::of_millis(self.clock.local_millis());
        if self.redis.is_some() && check.mode == FailureMode::Closed {
            self.stats
                .refused_unavailable
                .fetch_add(1, Ordering::Relaxed);
            return Verdict {
                admitted: false,
                unavailable: true,
                limit: check.limit,
                remaining: 0,
                reset: Duration::from_secs(1),
                window: check.window,
                source: Source::Local,
                period,
                usage_recorded: false,
            };
        }
        self.stats.local_decisions.fetch_add(1, Ordering::Relaxed);
        let key = format!("{}:{}", check.tenant, check.group);
        let v = self.local.check(&key, check.limit, check.window);
        Verdict {
            admitted: v.admitted,
            unavailable: false,
            limit: check.limit,
            remaining: v.remaining,
            reset: v.reset,
            window: check.window,
            source: Source::Local,
            period,
            usage_recorded: false,
        }
    }

    /// The shared (Redis) decision, or `None` when Redis is not configured, the breaker is
    /// open, or the call failed.
    pub async fn check_shared(&self, check: &Check<'_>) -> Option<Verdict> {
        let link = self.redis.as_ref()?;
        if !self.breaker.allow() {
            return None;
        }
        let mut pending = Pending {
            breaker: &self.breaker,
            finished: false,
        };
        let seq = self.sequence.fetch_add(1, Ordering::Relaxed);
        let member = format!("{}:{seq}", self.instance);
        let mut invocation = self.script.prepare_invoke();
        invocation.key(link.key(&Self::window_key(check.tenant, check.group)));
        let here = Period::of_millis(self.clock.local_millis());
        let months = [here.prev(), here, here.next()];
        if !check.usage.is_empty() {
            for m in months {
                invocation.key(link.key(&Self::usage_key(check.tenant, m)));
            }
        }
        invocation
            .arg(check.limit)
            .arg(
                u64::try_from(check.window.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1),
            )
            .arg(member)
            .arg(
                self.clock
                    .injected()
                    .map(|ms| ms.to_string())
                    .unwrap_or_default(),
            );
        for m in months {
            invocation.arg(m.to_string());
        }
        for m in months {
            invocation.arg(m.expire_at_secs(self.retention_days));
        }
        for m in months {
            invocation.arg(m.start_millis());
        }
        invocation.arg(here.next().end_millis());
        for (field, n) in check.usage {
            invocation.arg(*field).arg(*n);
        }
        let result = link
            .call(self.timeout, move |mut conn| async move {
                invocation.invoke_async::<Vec<Value>>(&mut conn).await
            })
            .await;
        pending.finished = true;
        match result {
            Ok(reply) => {
                self.breaker.success();
                self.stats.redis_decisions.fetch_add(1, Ordering::Relaxed);
                let month = match reply.get(4) {
                    Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                    _ => String::new(),
                };
                let now = int(reply.get(3));
                let period = Period::parse(&month).unwrap_or_else(|| Period::of_millis(now));
                let admitted = int(reply.first()) == 1;
                Some(Verdict {
                    admitted,
                    unavailable: false,
                    limit: check.limit,
                    remaining: u64::try_from(int(reply.get(1))).unwrap_or(0),
                    reset: Duration::from_millis(u64::try_from(int(reply.get(2))).unwrap_or(0)),
                    window: check.window,
                    source: Source::Redis,
                    period,
                    usage_recorded: admitted && !check.usage.is_empty() && months.contains(&period),
                })
            }
            Err(e) => {
                self.stats.redis_failures.fetch_add(1, Ordering::Relaxed);
                self.breaker.failure(&e.to_string());
                None
            }
        }
    }
}
