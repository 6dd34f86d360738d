//! Usage metering: one Redis hash per tenant per UTC month, `usage:{bank1}:2026-11`, with the
//! fields `api_calls`, `transactions`, `storage_bytes` and `bandwidth_bytes`, kept
//! `limits.usage_retention_days` after the month ends.
//!
//! `api_calls` is added by the limiter's script in the same round trip that admits the request.
//! What cannot go there — body bytes (request and response, counted as they pass), and every
//! increment made while Redis is down — is buffered here and flushed every second. A failed
//! flush keeps the increments and retries: usage is reconciled when Redis returns, never
//! silently dropped; only a buffer overflow (more than [`MAX_PENDING`] distinct tenant-months
//! waiting) drops, and that is counted and logged.
//!
//! Retries must not count twice. A flush that times out may still run in Redis later (a Redis
//! stalled by a slow command or `DEBUG SLEEP` executes what was queued when it wakes), so each
//! flushed batch carries an id, is written by a script that sets a marker key
//! `usage_flush:{tenant}:<id>` with `NX` in the same atomic step, and a failed batch is retried
//! with the *same* id: whichever attempt runs first counts, the others find the marker. Likewise
//! a rate-limit check that reached Redis but got no answer may have counted its `api_calls`
//! there; the API buffers that call as *uncertain* ([`Meter::add_uncertain`]) and the flush adds
//! it only if the check's member is not in the window (the limiter's script adds the member
//! exactly when it admits and counts; the scan for it runs only for such rare calls).
//!
//! `transactions` counts a payment once per idempotency key (a marker key set with `NX` in the
//! same script); `storage_bytes` is a gauge, overwritten with the latest measurement.
//!
//! Without Redis, totals live in this process only.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::Value;
use sha2::{Digest, Sha256};
use tenantgate_proxy::ratelimit::{Clock, Period, RateLimiter, UncertainUsage, script};
use tenantgate_proxy::redis_link::{RedisError, RedisLink};

/// Tenant-months waiting to be flushed before new ones are dropped.
pub const MAX_PENDING: usize = 100_000;
/// How long a payment's idempotency marker is kept for counting: as long as the payments API
/// keeps the key itself (48 h), so a key reused after that — a new payment — counts again.
const MARKER_TTL: Duration = Duration::from_secs(48 * 3_600);

/// Redis must answer a metering call within this.
const TIMEOUT: Duration = Duration::from_millis(500);
/// How long a flushed batch's marker is kept: far longer than any retry of it can take.
const FLUSH_MARKER_TTL: Duration = Duration::from_secs(24 * 3_600);

/// Adds one batch once. KEYS: the usage hash, the batch's marker, and the window of an
/// uncertain check (the marker again when there is none). ARGV: marker TTL ms, the hash's
/// EXPIREAT, the uncertain check's member (or ''), then field / increment pairs. Returns 1 when
/// it added, 0 when the batch (or the limiter's script, for an uncertain check) already had.
const FLUSH: &str = r#"
if ARGV[3] ~= '' then
  -- The limiter stores `<time>:<member>`; members are unique, so a match means it counted.
  local cursor = '0'
  repeat
    local page = redis.call('ZSCAN', KEYS[3], cursor, 'MATCH', '*:' .. ARGV[3], 'COUNT', 1000)
    cursor = page[1]
    if #page[2] > 0 then
      return 0
    end
  until cursor == '0'
end
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then
  return 0
end
for i = 4, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('EXPIREAT', KEYS[1], ARGV[2])
return 1
"#;

/// Increments on their way to Redis under one id (kept across retries).
#[derive(Debug, Clone)]
struct Batch {
    tenant: String,
    period: Period,
    counts: [i64; 3],
    id: u64,
    /// Set for an API call whose rate-limit check may already have counted it.
    uncertain: Option<UncertainUsage>,
}

/// A metered quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Admitted API requests.
    ApiCalls,
    /// Payments (once per idempotency key).
    Transactions,
    /// Request and response body bytes.
    BandwidthBytes,
}

impl Field {
    /// The hash field.
    pub const fn as_str(self) -> &'static str {
        match self {
            Field::ApiCalls => "api_calls",
            Field::Transactions => "transactions",
            Field::BandwidthBytes => "bandwidth_bytes",
        }
    }

    const fn index(self) -> usize {
        match self {
            Field::ApiCalls => 0,
            Field::Transactions => 1,
            Field::BandwidthBytes => 2,
        }
    }

    const ALL: [Field; 3] = [Field::ApiCalls, Field::Transactions, Field::BandwidthBytes];
}

/// One tenant's usage in one month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Admitted API requests.
    pub api_calls: i64,
    /// Payments.
    pub transactions: i64,
    /// Latest storage measurement.
    pub storage_bytes: i64,
    /// Request and response body bytes.
    pub bandwidth_bytes: i64,
}

impl Totals {
    fn add(&mut self, counts: &[i64; 3]) {
        self.api_calls += counts[0];
        self.transactions += counts[1];
        self.bandwidth_bytes += counts[2];
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Increments written to Redis by flushes.
    pub flushed: AtomicU64,
    /// Flushes that failed (their increments were kept).
    pub flush_failures: AtomicU64,
    /// Increments dropped because the buffer was full.
    pub dropped: AtomicU64,
}

/// The meter.
#[derive(Debug)]
pub struct Meter {
    link: Option<Arc<RedisLink>>,
    /// Increments not yet in Redis (with Redis), or all totals (without).
    pending: Mutex<HashMap<(String, Period), [i64; 3]>>,
    /// Batches whose flush failed (retried with their ids) and uncertain API calls.
    sealed: Mutex<Vec<Batch>>,
    /// This process's batch ids: a random instance part and a counter.
    instance: String,
    next_batch: AtomicU64,
    flush_script: redis::Script,
    /// Storage gauges when there is no Redis.
    storage: Mutex<HashMap<(String, Period), i64>>,
    retention_days: u32,
    transaction: redis::Script,
    clock: Clock,
    stats: Stats,
}

fn key(link: &RedisLink, tenant: &str, period: Period) -> String {
    link.key(&RateLimiter::usage_key(tenant, period))
}

const TRANSACTION: &str = r#"
local now
if ARGV[3] ~= '' then
  now = tonumber(ARGV[3])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local month = month_of(now)
if ARGV[1] == '1' then
  if not redis.call('SET', KEYS[1], month, 'NX', 'PX', ARGV[2]) then
    return {0, redis.call('GET', KEYS[1]) or month}
  end
end
for i = 1, 3 do
  if ARGV[3 + i] == month then
    if ARGV[10] ~= '' and tonumber(redis.call('HGET', KEYS[1 + i], 'transactions') or '0') >= tonumber(ARGV[10]) then
      if ARGV[1] == '1' then
        redis.call('DEL', KEYS[1])
      end
      return {-1, month}
    end
    redis.call('HINCRBY', KEYS[1 + i], 'transactions', 1)
    redis.call('EXPIREAT', KEYS[1 + i], ARGV[6 + i])
  end
end
return {1, month}
"#;

fn parse_totals(map: &HashMap<String, i64>) -> Totals {
    let get = |k: &str| map.get(k).copied().unwrap_or(0);
    Totals {
        api_calls: get("api_calls"),
        transactions: get("transactions"),
        storage_bytes: get("storage_bytes"),
        bandwidth_bytes: get("bandwidth_bytes"),
    }
}

impl Meter {
    /// A meter writing to `link` (or in process without it), on the limiter's `clock`.
    pub fn new(link: Option<Arc<RedisLink>>, retention_days: u32, clock: Clock) -> Meter {
        Meter {
            link,
            pending: Mutex::new(HashMap::new()),
            sealed: Mutex::new(Vec::new()),
            instance: {
                let bytes: [u8; 8] = rand::random();
                bytes.iter().map(|b| format!("{b:02x}")).collect()
            },
            next_batch: AtomicU64::new(0),
            flush_script: redis::Script::new(FLUSH),
            storage: Mutex::new(HashMap::new()),
            retention_days,
            transaction: redis::Script::new(&format!("{}{TRANSACTION}", script::MONTH_OF)),
            clock,
            stats: Stats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Distinct tenant-months (and retried batches) waiting for Redis.
    pub fn pending_keys(&self) -> usize {
        if self.link.is_none() {
            return 0;
        }
        self.pending.lock().map(|p| p.len()).unwrap_or(0)
            + self.sealed.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Adds an API call whose rate-limit check reached Redis but got no answer: the limiter's
    /// script may have counted it already (it ran late), so the flush adds it only if the
    /// check's member is not in its window. Without Redis, a plain [`Meter::add`].
    pub fn add_uncertain(&self, tenant: &str, period: Period, check: UncertainUsage) {
        if self.link.is_none() {
            self.add(tenant, period, Field::ApiCalls, 1);
            return;
        }
        let mut counts = [0; 3];
        counts[Field::ApiCalls.index()] = 1;
        let batch = Batch {
            tenant: tenant.to_owned(),
            period,
            counts,
            id: self.next_batch.fetch_add(1, Ordering::Relaxed),
            uncertain: Some(check),
        };
        self.seal(vec![batch]);
    }

    /// Keeps `batches` for the next flush, within [`MAX_PENDING`].
    fn seal(&self, batches: Vec<Batch>) {
        let Ok(mut sealed) = self.sealed.lock() else {
            return;
        };
        for b in batches {
            if sealed.len() >= MAX_PENDING {
                let dropped = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped.is_power_of_two() {
                    tracing::error!(target: "tenantgate::usage", dropped, "usage buffer full; increments dropped");
                }
                continue;
            }
            sealed.push(b);
        }
    }

    /// The month "now" falls in, by the meter's clock read locally.
    pub fn current_period(&self) -> Period {
        Period::of_millis(self.clock.local_millis())
    }

    /// Adds `n` of `field` to `tenant`'s `period`, through the buffer.
    pub fn add(&self, tenant: &str, period: Period, field: Field, n: i64) {
        if n == 0 {
            return;
        }
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        let k = (tenant.to_owned(), period);
        if !pending.contains_key(&k) && pending.len() >= MAX_PENDING {
            let dropped = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::error!(target: "tenantgate::usage", dropped, "usage buffer full; increments dropped");
            }
            return;
        }
        pending.entry(k).or_default()[field.index()] += n;
    }

    /// Writes buffered increments to Redis; on failure they stay buffered for the next flush,
    /// under the same batch ids, so a write that did land late is not added again.
    pub async fn flush(&self) -> Result<(), RedisError> {
        let Some(link) = &self.link else {
            return Ok(());
        };
        let mut batches: Vec<Batch> = match self.sealed.lock() {
            Ok(mut s) => std::mem::take(&mut *s),
            Err(_) => return Ok(()),
        };
        if let Ok(mut p) = self.pending.lock() {
            for ((tenant, period), counts) in p.drain() {
                batches.push(Batch {
                    tenant,
                    period,
                    counts,
                    id: self.next_batch.fetch_add(1, Ordering::Relaxed),
                    uncertain: None,
                });
            }
        }
        let mut result = Ok(());
        let mut failed = Vec::new();
        for batch in batches {
            if result.is_err() {
                failed.push(batch);
                continue;
            }
            let k = key(link, &batch.tenant, batch.period);
            let marker = link.key(&format!(
                "usage_flush:{{{}}}:{}:{}",
                batch.tenant, self.instance, batch.id
            ));
            let mut inv = self.flush_script.prepare_invoke();
            inv.key(&k).key(&marker);
            match &batch.uncertain {
                Some(u) => inv.key(&u.window_key),
                None => inv.key(&marker),
            };
            inv.arg(u64::try_from(FLUSH_MARKER_TTL.as_millis()).unwrap_or(u64::MAX))
                .arg(batch.period.expire_at_secs(self.retention_days))
                .arg(batch.uncertain.as_ref().map_or("", |u| u.member.as_str()));
            for f in Field::ALL {
                if batch.counts[f.index()] != 0 {
                    inv.arg(f.as_str()).arg(batch.counts[f.index()]);
                }
            }
            let written = link
                .call(TIMEOUT, move |mut c| async move {
                    inv.invoke_async::<i64>(&mut c).await
                })
                .await;
            match written {
                Ok(added) => {
                    if added == 1 {
                        let n = batch.counts.iter().filter(|c| **c != 0).count();
                        self.stats.flushed.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
                Err(e) => {
                    self.stats.flush_failures.fetch_add(1, Ordering::Relaxed);
                    failed.push(batch);
                    result = Err(e);
                }
            }
        }
        if !failed.is_empty() {
            self.seal(failed);
        }
        result
    }

    /// Flushes every second until the meter is dropped elsewhere (holds a weak reference).
    pub fn spawn_flusher(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(meter) = weak.upgrade() else {
                    return;
                };
                let _ = meter.flush().await;
            }
        });
    }

    /// Counts one payment for `tenant`, once per `idempotency_key` (a retry with the same key
    /// counts nothing). Returns whether it counted and the month it counted in.
    pub async fn transaction(&self, tenant: &str, idempotency_key: Option<&str>) -> (bool, Period) {
        match self
            .reserve_transaction(tenant, idempotency_key, None)
            .await
        {
            Ok(counted) => counted,
            Err(period) => (false, period),
        }
    }

    /// Like [`Meter::transaction`], but refuses — atomically, in the same script — when the
    /// month already holds `quota` transactions: `Err(month)`. Concurrent payments cannot
    /// overshoot the quota. Without Redis the check is per instance.
    pub async fn reserve_transaction(
        &self,
        tenant: &str,
        idempotency_key: Option<&str>,
        quota: Option<u64>,
    ) -> Result<(bool, Period), Period> {
        let here = self.current_period();
        let Some(link) = &self.link else {
            if let Some(q) = quota {
                let used = self
                    .pending
                    .lock()
                    .ok()
                    .and_then(|p| {
                        p.get(&(tenant.to_owned(), here))
                            .map(|c| c[Field::Transactions.index()])
                    })
                    .unwrap_or(0);
                if u64::try_from(used).unwrap_or(0) >= q {
                    return Err(here);
                }
            }
            self.add(tenant, here, Field::Transactions, 1);
            return Ok((true, here));
        };
        let marker = match idempotency_key {
            Some(k) => {
                let digest = Sha256::digest(k.as_bytes());
                let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
                link.key(&format!("usage_txn:{{{tenant}}}:{hex}"))
            }
            None => link.key(&format!("usage_txn:{{{tenant}}}:-")),
        };
        let months = [here.prev(), here, here.next()];
        let mut inv = self.transaction.prepare_invoke();
        inv.key(marker);
        for m in months {
            inv.key(key(link, tenant, m));
        }
        inv.arg(if idempotency_key.is_some() { "1" } else { "0" })
            .arg(u64::try_from(MARKER_TTL.as_millis()).unwrap_or(u64::MAX))
            .arg(match &self.clock {
                Clock::Fixed(ms) => ms.load(Ordering::Relaxed).to_string(),
                Clock::Redis => String::new(),
            });
        for m in months {
            inv.arg(m.to_string());
        }
        for m in months {
            inv.arg(m.expire_at_secs(self.retention_days));
        }
        inv.arg(quota.map(|q| q.to_string()).unwrap_or_default());
        let reply = link
            .call(TIMEOUT, move |mut c| async move {
                inv.invoke_async::<Vec<Value>>(&mut c).await
            })
            .await;
        match reply {
            Ok(v) => {
                let period = match v.get(1) {
                    Some(Value::BulkString(b)) => Period::parse(&String::from_utf8_lossy(b)),
                    _ => None,
                }
                .unwrap_or(here);
                if matches!(v.first(), Some(Value::Int(-1))) {
                    return Err(period);
                }
                let counted = matches!(v.first(), Some(Value::Int(1)));
                if counted && !months.contains(&period) {
                    self.add(tenant, period, Field::Transactions, 1);
                }
                Ok((counted, period))
            }
            Err(e) => {
                // Counted locally and reconciled later; a retry during the outage may count
                // twice, which is logged so billing can review it.
                tracing::warn!(target: "tenantgate::usage", tenant, error = %e, "transaction counted in the local buffer while Redis is unavailable");
                self.add(tenant, here, Field::Transactions, 1);
                Ok((true, here))
            }
        }
    }

    /// Takes back a transaction reserved for a payment that was then not created.
    pub async fn release_transaction(
        &self,
        tenant: &str,
        idempotency_key: Option<&str>,
        period: Period,
    ) {
        self.add(tenant, period, Field::Transactions, -1);
        if let (Some(link), Some(k)) = (&self.link, idempotency_key) {
            let digest = Sha256::digest(k.as_bytes());
            let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
            let marker = link.key(&format!("usage_txn:{{{tenant}}}:{hex}"));
            let _ = link
                .call(TIMEOUT, move |mut c| async move {
                    redis::cmd("DEL")
                        .arg(&marker)
                        .query_async::<i64>(&mut c)
                        .await
                })
                .await;
        }
    }

    /// Sets `tenant`'s `storage_bytes` gauge for `period`.
    pub async fn set_storage(
        &self,
        tenant: &str,
        period: Period,
        bytes: i64,
    ) -> Result<(), RedisError> {
        let Some(link) = &self.link else {
            if let Ok(mut s) = self.storage.lock() {
                s.insert((tenant.to_owned(), period), bytes);
            }
            return Ok(());
        };
        let k = key(link, tenant, period);
        let expire = period.expire_at_secs(self.retention_days);
        link.call(TIMEOUT, move |mut c| async move {
            redis::pipe()
                .atomic()
                .hset(&k, "storage_bytes", bytes)
                .ignore()
                .expire_at(&k, expire)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    /// Sets `tenant`'s `storage_bytes` gauge to 0 if it was ever set for `period` (a tenant
    /// that never stored anything gets no usage record for it).
    pub async fn clear_storage(&self, tenant: &str, period: Period) -> Result<(), RedisError> {
        let Some(link) = &self.link else {
            if let Ok(mut s) = self.storage.lock()
                && let Some(v) = s.get_mut(&(tenant.to_owned(), period))
            {
                *v = 0;
            }
            return Ok(());
        };
        let k = key(link, tenant, period);
        link.call(TIMEOUT, move |mut c| async move {
            redis::Script::new(
                "if redis.call('HEXISTS', KEYS[1], 'storage_bytes') == 1 then redis.call('HSET', KEYS[1], 'storage_bytes', 0) end return 1",
            )
            .key(&k)
            .invoke_async::<i64>(&mut c)
            .await
        })
        .await
        .map(|_| ())
    }

    /// `tenant`'s totals for `period`: what Redis holds plus what this instance has not flushed
    /// yet. `Ok(None)` when nothing was ever recorded (or it has expired).
    pub async fn read(&self, tenant: &str, period: Period) -> Result<Option<Totals>, RedisError> {
        let buffered = self
            .pending
            .lock()
            .ok()
            .and_then(|p| p.get(&(tenant.to_owned(), period)).copied());
        let Some(link) = &self.link else {
            let storage = self
                .storage
                .lock()
                .ok()
                .and_then(|s| s.get(&(tenant.to_owned(), period)).copied());
            if buffered.is_none() && storage.is_none() {
                return Ok(None);
            }
            let mut t = Totals {
                storage_bytes: storage.unwrap_or(0),
                ..Totals::default()
            };
            t.add(&buffered.unwrap_or_default());
            return Ok(Some(t));
        };
        let k = key(link, tenant, period);
        let map: HashMap<String, i64> = link
            .call(TIMEOUT, move |mut c| async move {
                redis::cmd("HGETALL").arg(&k).query_async(&mut c).await
            })
            .await?;
        if map.is_empty() && buffered.is_none() {
            return Ok(None);
        }
        let mut t = parse_totals(&map);
        t.add(&buffered.unwrap_or_default());
        Ok(Some(t))
    }
}
