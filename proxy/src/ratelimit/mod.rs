//! Per-tenant rate limiting shared by every instance: a sliding window log in Redis (each
//! request checked atomically by one script call, which under load carries the checks of many
//! concurrent requests at once, see [`script`]), with a circuit breaker ([`breaker`]) and an
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
    /// The check was sent to Redis but no answer came back (a timeout, or a connection lost
    /// mid-call): the script may still have run, late, and counted the usage. The caller counts
    /// the usage as *uncertain* ([`RateLimiter::uncertain_usage`]) so that a later flush adds it
    /// only if the script did not, instead of counting it twice. Holds the check's sequence.
    pub sent_unanswered: Option<u64>,
}

/// Where a check that went unanswered would have left its trace in Redis: its window key and
/// its member. The script adds the member to the window exactly when it admits the request and
/// records its usage, so the member's presence says whether the usage was counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UncertainUsage {
    /// The window's key, prefixed.
    pub window_key: String,
    /// The check's member in it.
    pub member: String,
}

/// What the shared window said.
enum Shared {
    Decided(Verdict),
    /// No decision; `sent` holds the check's sequence when it reached Redis unanswered.
    NotDecided {
        sent: Option<u64>,
    },
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

/// Most checks sent to Redis in one script call.
const MAX_BATCH: usize = 128;
/// Batches in flight at once; while they are, new checks queue and form the next batch.
const MAX_IN_FLIGHT: usize = 4;
/// Checks waiting for a batch; beyond this they are decided as if Redis were down.
const QUEUE: usize = 16_384;

/// A check's answer from Redis: the answer, Redis' time, its month, and whether the check's
/// usage was added (the month was among the batch's three candidates).
type Answered = Option<(script::Answer, i64, String, bool)>;

/// A check waiting for its batch.
struct Job {
    /// The hash tag (the tenant): in a cluster, a batch holds one slot's checks only.
    tag: String,
    entry: script::Entry,
    /// The check meters usage.
    usage: bool,
    reply: tokio::sync::oneshot::Sender<Answered>,
    /// [`QUEUED`], then [`SENT`] when a batch takes it or [`CANCELLED`] when its caller stopped
    /// waiting first: a cancelled check is left out of its batch, so the caller's local
    /// fallback is the only one to count it; a sent one may still be counted by Redis.
    state: Arc<std::sync::atomic::AtomicU8>,
}

const QUEUED: u8 = 0;
const SENT: u8 = 1;
const CANCELLED: u8 = 2;

/// What the batching task shares with the limiter.
#[derive(Clone)]
struct Batcher {
    link: Arc<RedisLink>,
    script: Arc<redis::Script>,
    breaker: Arc<Breaker>,
    stats: Arc<Stats>,
    timeout: Duration,
    retention_days: u32,
    clock: Clock,
}

impl Batcher {
    /// Collects whatever is queued into batches and runs them, up to [`MAX_IN_FLIGHT`] at once.
    /// Under light load every check is a batch of one, sent at once; under heavy load the checks
    /// that arrive during one round trip share the next, so Redis and the network see one call
    /// per batch instead of one per request. Each check stays atomic: the whole batch is.
    async fn run(self, mut queue: tokio::sync::mpsc::Receiver<Job>) {
        let permits = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
        while let Some(first) = queue.recv().await {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let this = self.clone();
            tokio::spawn(async move {
                if this.link.is_cluster() {
                    let mut by_slot: std::collections::HashMap<String, Vec<Job>> =
                        std::collections::HashMap::new();
                    for job in batch {
                        by_slot.entry(job.tag.clone()).or_default().push(job);
                    }
                    futures::future::join_all(by_slot.into_values().map(|jobs| this.send(jobs)))
                        .await;
                } else {
                    this.send(batch).await;
                }
                drop(permit);
            });
        }
    }

    /// One script call for `jobs`; every job gets its answer, or `None` if the call failed.
    async fn send(&self, jobs: Vec<Job>) {
        let (entries, replies): (Vec<script::Entry>, Vec<_>) = jobs
            .into_iter()
            .filter(|j| {
                j.state
                    .compare_exchange(QUEUED, SENT, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            })
            .map(|j| ((j.entry), (j.reply, j.usage)))
            .unzip();
        if entries.is_empty() {
            return;
        }
        let local = Period::of_millis(self.clock.local_millis());
        let months = [local.prev(), local, local.next()];
        let invocation = script::invocation(
            &self.script,
            &entries,
            local,
            self.clock.injected(),
            self.retention_days,
        );
        let result = self
            .link
            .call(self.timeout, move |mut conn| async move {
                invocation.invoke_async::<Vec<Value>>(&mut conn).await
            })
            .await;
        match result {
            Ok(values) => {
                self.breaker.success();
                let reply = script::parse(&values);
                let in_candidates =
                    Period::parse(&reply.month).is_some_and(|p| months.contains(&p));
                for (i, (tx, meters)) in replies.into_iter().enumerate() {
                    let answer = reply.answers.get(i).map(|a| {
                        let recorded = a.admitted && meters && in_candidates;
                        (*a, reply.now_ms, reply.month.clone(), recorded)
                    });
                    let _ = tx.send(answer);
                }
            }
            Err(e) => {
                self.stats.redis_failures.fetch_add(1, Ordering::Relaxed);
                self.breaker.failure(&e.to_string());
                for (tx, _) in replies {
                    let _ = tx.send(None);
                }
            }
        }
    }
}

/// The limiter.
pub struct RateLimiter {
    redis: Option<Arc<RedisLink>>,
    script: Arc<redis::Script>,
    breaker: Arc<Breaker>,
    local: LocalWindows,
    timeout: Duration,
    retention_days: u32,
    /// Makes window members unique across instances.
    instance: String,
    sequence: AtomicU64,
    clock: Clock,
    stats: Arc<Stats>,
    /// The batching task's queue, started on first use.
    queue: std::sync::OnceLock<tokio::sync::mpsc::Sender<Job>>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("shared", &self.redis.is_some())
            .field("breaker", &self.breaker.state())
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A limiter over `redis` (or purely in process without it), configured by `[limits]`.
    pub fn new(redis: Option<Arc<RedisLink>>, config: &LimitsConfig) -> RateLimiter {
        let id: [u8; 6] = rand::random();
        RateLimiter {
            redis,
            script: Arc::new(redis::Script::new(&script::source())),
            breaker: Arc::new(Breaker::new(
                config.breaker_failures,
                Duration::from_millis(config.breaker_cooldown_ms),
            )),
            local: LocalWindows::default(),
            timeout: Duration::from_millis(config.redis_timeout_ms),
            retention_days: config.usage_retention_days,
            instance: id.iter().map(|b| format!("{b:02x}")).collect(),
            sequence: AtomicU64::new(0),
            clock: Clock::Redis,
            stats: Arc::new(Stats::default()),
            queue: std::sync::OnceLock::new(),
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
        let sent_unanswered = match self.check_shared_traced(&check).await {
            Shared::Decided(v) => return v,
            Shared::NotDecided { sent } => sent,
        };
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
                sent_unanswered: None,
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
            sent_unanswered: if v.admitted { sent_unanswered } else { None },
        }
    }

    /// Where the unanswered check `seq` (from [`Verdict::sent_unanswered`]) of `tenant` in
    /// `group` would be recorded in Redis.
    pub fn uncertain_usage(&self, tenant: &str, group: &str, seq: u64) -> Option<UncertainUsage> {
        let link = self.redis.as_ref()?;
        Some(UncertainUsage {
            window_key: link.key(&Self::window_key(tenant, group)),
            member: format!("{}:{seq}", self.instance),
        })
    }

    /// The batching task's queue (started on first use, inside the caller's runtime).
    fn queue(&self, link: &Arc<RedisLink>) -> &tokio::sync::mpsc::Sender<Job> {
        self.queue.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
            let batcher = Batcher {
                link: link.clone(),
                script: self.script.clone(),
                breaker: self.breaker.clone(),
                stats: self.stats.clone(),
                timeout: self.timeout,
                retention_days: self.retention_days,
                clock: self.clock.clone(),
            };
            tokio::spawn(batcher.run(rx));
            tx
        })
    }

    /// The shared (Redis) decision, or `None` when Redis is not configured, the breaker is
    /// open, or the call failed.
    pub async fn check_shared(&self, check: &Check<'_>) -> Option<Verdict> {
        match self.check_shared_traced(check).await {
            Shared::Decided(v) => Some(v),
            Shared::NotDecided { .. } => None,
        }
    }

    /// [`RateLimiter::check_shared`], saying whether an undecided check reached Redis.
    async fn check_shared_traced(&self, check: &Check<'_>) -> Shared {
        let Some(link) = self.redis.as_ref() else {
            return Shared::NotDecided { sent: None };
        };
        if !self.breaker.allow() {
            return Shared::NotDecided { sent: None };
        }
        let mut pending = Pending {
            breaker: &self.breaker,
            finished: false,
        };
        let seq = self.sequence.fetch_add(1, Ordering::Relaxed);
        let usage_base =
            (!check.usage.is_empty()).then(|| link.key(&format!("usage:{{{}}}:", check.tenant)));
        let entry = script::Entry {
            window_key: link.key(&Self::window_key(check.tenant, check.group)),
            usage_base,
            limit: check.limit,
            window_ms: u64::try_from(check.window.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
            member: format!("{}:{seq}", self.instance),
            usage: check
                .usage
                .iter()
                .map(|(f, n)| ((*f).to_owned(), *n))
                .collect(),
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let state = Arc::new(std::sync::atomic::AtomicU8::new(QUEUED));
        let job = Job {
            tag: check.tenant.to_owned(),
            entry,
            reply: tx,
            usage: !check.usage.is_empty(),
            state: state.clone(),
        };
        if self.queue(link).try_send(job).is_err() {
            // More checks waiting than Redis can take: decide this one as if Redis were down.
            pending.finished = true;
            self.breaker.abandoned();
            return Shared::NotDecided { sent: None };
        }
        // The batch's own call is bounded by the timeout and answers (with `None` on failure,
        // after telling the breaker); waiting longer only covers time spent queued.
        let answer = tokio::time::timeout(self.timeout * 2, rx).await;
        pending.finished = true;
        let sent = || {
            let cancelled = state
                .compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
            (!cancelled).then_some(seq)
        };
        let Ok(Ok(Some((answer, now, month, recorded)))) = answer else {
            return Shared::NotDecided { sent: sent() };
        };
        self.stats.redis_decisions.fetch_add(1, Ordering::Relaxed);
        let period = Period::parse(&month).unwrap_or_else(|| Period::of_millis(now));
        Shared::Decided(Verdict {
            admitted: answer.admitted,
            unavailable: false,
            limit: check.limit,
            remaining: u64::try_from(answer.remaining).unwrap_or(0),
            reset: Duration::from_millis(u64::try_from(answer.reset_ms).unwrap_or(0)),
            window: check.window,
            source: Source::Redis,
            period,
            usage_recorded: recorded,
            sent_unanswered: None,
        })
    }
}
