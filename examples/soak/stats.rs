//! What the soak measures while it runs: one latency sample per operation, grouped by
//! operation class and by reporting interval, plus the unexpected errors (with the first few
//! messages kept for the report) and the expected rejections.
//!
//! Workers record into one mutex-guarded [`Window`]; the sampler swaps it out at each interval
//! boundary. At a few hundred operations per second the lock is never contended enough to show
//! in the latencies it measures.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// An operation class: each has its own percentiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    FindId,
    FindFilter,
    Aggregate,
    Cursor,
    Insert,
    Update,
    SoftDelete,
    Count,
    Distinct,
    /// A command naming another tenant, which the proxy must refuse (an expected rejection).
    CrossTenant,
    /// A new driver client: connect, SCRAM-SHA-256, first command.
    Auth,
    /// A new driver client with a wrong password, which must fail (an expected rejection).
    AuthRejected,
    ApiList,
    ApiCreate,
    ApiReplay,
    ApiUsage,
    /// Another tenant's payment by id over the API, which must be `404` (an expected rejection).
    ApiCrossTenant,
}

/// Which p99 column an operation class counts towards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Proxy,
    Api,
    Auth,
    /// Expected rejections: counted, but not part of any latency column.
    Rejection,
}

impl Op {
    pub const ALL: [Op; 17] = [
        Op::FindId,
        Op::FindFilter,
        Op::Aggregate,
        Op::Cursor,
        Op::Insert,
        Op::Update,
        Op::SoftDelete,
        Op::Count,
        Op::Distinct,
        Op::CrossTenant,
        Op::Auth,
        Op::AuthRejected,
        Op::ApiList,
        Op::ApiCreate,
        Op::ApiReplay,
        Op::ApiUsage,
        Op::ApiCrossTenant,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::FindId => "proxy find by _id",
            Op::FindFilter => "proxy find with filter",
            Op::Aggregate => "proxy aggregate $group",
            Op::Cursor => "proxy cursor (getMore)",
            Op::Insert => "proxy insert",
            Op::Update => "proxy update",
            Op::SoftDelete => "proxy delete (soft)",
            Op::Count => "proxy countDocuments",
            Op::Distinct => "proxy distinct",
            Op::CrossTenant => "proxy cross-tenant (refused)",
            Op::Auth => "new client + SCRAM + 1st command",
            Op::AuthRejected => "new client, wrong password (refused)",
            Op::ApiList => "API GET /v1/payments",
            Op::ApiCreate => "API POST /v1/payments",
            Op::ApiReplay => "API POST /v1/payments (replay)",
            Op::ApiUsage => "API GET /v1/usage",
            Op::ApiCrossTenant => "API other tenant's payment (404)",
        }
    }

    pub fn side(self) -> Side {
        match self {
            Op::CrossTenant | Op::AuthRejected | Op::ApiCrossTenant => Side::Rejection,
            Op::Auth => Side::Auth,
            Op::ApiList | Op::ApiCreate | Op::ApiReplay | Op::ApiUsage => Side::Api,
            _ => Side::Proxy,
        }
    }
}

/// Everything recorded during one interval.
#[derive(Debug, Default)]
pub struct Window {
    /// Latencies in microseconds, per class.
    pub latencies: BTreeMap<Op, Vec<u32>>,
    /// Unexpected errors.
    pub errors: u64,
}

impl Window {
    /// Operations completed (successfully or as expected rejections).
    pub fn ops(&self) -> usize {
        self.latencies.values().map(Vec::len).sum()
    }

    /// The sorted latencies of every class on `side`.
    pub fn side(&self, side: Side) -> Vec<u32> {
        let mut all: Vec<u32> = self
            .latencies
            .iter()
            .filter(|(op, _)| op.side() == side)
            .flat_map(|(_, l)| l.iter().copied())
            .collect();
        all.sort_unstable();
        all
    }
}

/// How many error messages are kept for the report (all are counted).
const KEPT_MESSAGES: usize = 20;

/// Shared by every worker.
#[derive(Debug, Default)]
pub struct Recorder {
    window: Mutex<Window>,
    /// Every latency of the run, per class, for the final per-class table.
    all: Mutex<BTreeMap<Op, Vec<u32>>>,
    /// The first [`KEPT_MESSAGES`] unexpected errors.
    messages: Mutex<Vec<String>>,
    /// Unexpected errors over the whole run.
    pub errors: AtomicU64,
    /// Expected rejections that were indeed rejected.
    pub rejections: AtomicU64,
}

impl Recorder {
    /// One successful operation (or correctly rejected attempt) of class `op`.
    pub fn ok(&self, op: Op, took: Duration) {
        let us = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
        if op.side() == Side::Rejection {
            self.rejections.fetch_add(1, Ordering::Relaxed);
        }
        lock(&self.window).latencies.entry(op).or_default().push(us);
        lock(&self.all).entry(op).or_default().push(us);
    }

    /// One unexpected error; `what` says which operation and why.
    pub fn error(&self, op: Op, what: impl std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        lock(&self.window).errors += 1;
        let mut kept = lock(&self.messages);
        if kept.len() < KEPT_MESSAGES {
            kept.push(format!("{}: {what}", op.name()));
        }
    }

    /// The current interval's figures; starts the next one.
    pub fn take_window(&self) -> Window {
        std::mem::take(&mut *lock(&self.window))
    }

    /// The whole run's latencies per class.
    pub fn all(&self) -> BTreeMap<Op, Vec<u32>> {
        let mut all = lock(&self.all).clone();
        for l in all.values_mut() {
            l.sort_unstable();
        }
        all
    }

    /// The kept error messages.
    pub fn messages(&self) -> Vec<String> {
        lock(&self.messages).clone()
    }
}

/// A poisoned lock only means a worker panicked mid-record; the data is still counts.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Nearest-rank percentile of sorted microseconds, in milliseconds (0 when empty).
pub fn percentile_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1000.0
}

/// The median of `values` (0 when empty).
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_ms(&v, 50.0), 50.0);
        assert_eq!(percentile_ms(&v, 99.0), 99.0);
        assert_eq!(percentile_ms(&v, 100.0), 100.0);
        assert_eq!(percentile_ms(&[], 99.0), 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
