//! The background jobs of metering, one runner per instance, each run guarded by a Redis lock
//! so only one instance does the work per interval (without Redis every instance runs them):
//! refreshing the storage gauges every `limits.storage_refresh_secs`, and snapshotting the
//! previous month once it closed `limits.snapshot_grace_secs` ago.

use std::sync::Arc;
use std::time::Duration;

use tenantgate_proxy::ratelimit::Period;

use super::meter::{Meter, Totals};
use super::{snapshot, storage};
use crate::state::ApiState;

/// How often the runner wakes up.
const TICK: Duration = Duration::from_secs(30);

/// Takes the lock `name` for `ttl`; `true` without Redis.
async fn lock(state: &ApiState, name: &str, ttl: Duration) -> bool {
    let Some(link) = &state.services().redis else {
        return true;
    };
    let key = link.key(&format!(
        "{}:job_lock:{{{name}}}",
        state.services().config.policy.internal_database
    ));
    let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    link.call(Duration::from_millis(500), move |mut c| async move {
        redis::cmd("SET")
            .arg(&key)
            .arg("1")
            .arg("NX")
            .arg("PX")
            .arg(ms)
            .query_async::<Option<String>>(&mut c)
            .await
    })
    .await
    .ok()
    .flatten()
    .is_some()
}

/// Every tenant's slug, page by page from the registry.
async fn all_slugs(services: &tenantgate_proxy::Services) -> Result<Vec<String>, String> {
    let mut slugs = Vec::new();
    loop {
        let (tenants, more) = services
            .registry
            .list(slugs.last().map(String::as_str), 100)
            .await
            .map_err(|e| e.to_string())?;
        let done = !more || tenants.is_empty();
        slugs.extend(tenants.into_iter().map(|t| t.slug));
        if done {
            return Ok(slugs);
        }
    }
}

/// Refreshes every tenant's storage gauge: the measured bytes, and 0 for a tenant of the
/// registry that holds no documents any more (a gauge must be able to fall to zero).
pub async fn refresh_storage(state: &ApiState) -> Result<usize, String> {
    let services = state.services();
    let measured = storage::measure(&services.upstream, &services.config.policy).await?;
    let mut empty = Vec::new();
    for slug in all_slugs(services).await? {
        if !measured.contains_key(&slug) {
            empty.push(slug);
        }
    }
    let period = state.meter().current_period();
    let mut n = 0;
    for (tenant, bytes) in &measured {
        if state
            .meter()
            .set_storage(tenant, period, *bytes)
            .await
            .is_ok()
        {
            n += 1;
        }
    }
    for tenant in &empty {
        if state.meter().clear_storage(tenant, period).await.is_ok() {
            n += 1;
        }
    }
    Ok(n)
}

/// Snapshots `period` for every tenant in the registry (idempotent).
pub async fn snapshot_month(state: &ApiState, period: Period) -> Result<usize, String> {
    let services = state.services();
    let db = services.config.policy.internal_database.as_str();
    let _ = state.meter().flush().await;
    let _ = services.upstream.command(snapshot::index_command(db)).await;
    let mut count = 0;
    for slug in all_slugs(services).await? {
        let totals = state
            .meter()
            .read(&slug, period)
            .await
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        snapshot::write(&services.upstream, db, &slug, period, &totals).await?;
        count += 1;
    }
    snapshot::mark_done(&services.upstream, db, period, count).await?;
    Ok(count)
}

/// One pass of the runner.
async fn tick(state: &ApiState, last_storage: &mut Option<tokio::time::Instant>) {
    let config = &state.services().config.limits;
    let refresh = Duration::from_secs(config.storage_refresh_secs.max(1));
    if last_storage.is_none_or(|at| at.elapsed() >= refresh) {
        *last_storage = Some(tokio::time::Instant::now());
        if lock(state, "storage", refresh).await
            && let Err(e) = refresh_storage(state).await
        {
            tracing::warn!(target: "tenantgate::usage", error = %e, "storage gauge refresh failed");
        }
    }
    let now = state.meter().current_period();
    let closed = now.prev();
    let grace_over = tenantgate_proxy::ratelimit::period::now_millis()
        >= closed.end_millis() + i64::try_from(config.snapshot_grace_secs).unwrap_or(0) * 1000;
    if !grace_over {
        return;
    }
    let db = state.services().config.policy.internal_database.as_str();
    match snapshot::done(&state.services().upstream, db, closed).await {
        Ok(true) => {}
        Ok(false) => {
            if lock(
                state,
                &format!("snapshot:{closed}"),
                Duration::from_secs(600),
            )
            .await
            {
                match snapshot_month(state, closed).await {
                    Ok(n) => {
                        tracing::info!(target: "tenantgate::usage", period = %closed, tenants = n, "month-end usage snapshot written")
                    }
                    Err(e) => {
                        tracing::warn!(target: "tenantgate::usage", period = %closed, error = %e, "month-end usage snapshot failed; retrying")
                    }
                }
            }
        }
        Err(e) => {
            tracing::debug!(target: "tenantgate::usage", error = %e, "cannot check snapshots")
        }
    }
}

/// Starts the runner (stops when the state's last other holder is gone).
pub fn spawn(state: &ApiState) {
    let weak = state.downgrade();
    tokio::spawn(async move {
        let mut last_storage = None;
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let Some(state) = ApiState::upgrade(&weak) else {
                return;
            };
            tick(&state, &mut last_storage).await;
        }
    });
}

/// The totals a usage read reports: Redis (or memory), else the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The live counters.
    Live,
    /// The month-end snapshot in MongoDB; `intact` is false when its checksum does not match
    /// its fields (it was edited behind tenantgate's back).
    Snapshot {
        /// Whether the checksum matches.
        intact: bool,
    },
    /// Nothing was recorded.
    None,
}

impl Source {
    /// For responses.
    pub const fn as_str(self) -> &'static str {
        match self {
            Source::Live => "live",
            Source::Snapshot { .. } => "snapshot",
            Source::None => "none",
        }
    }
}

/// `tenant`'s usage in `period`: live counters first, then the snapshot.
pub async fn usage_of(
    state: &ApiState,
    meter: &Arc<Meter>,
    tenant: &str,
    period: Period,
) -> Result<(Totals, Source), String> {
    let live = meter.read(tenant, period).await;
    match live {
        Ok(Some(t)) => return Ok((t, Source::Live)),
        Ok(None) => {}
        Err(ref e) => {
            tracing::debug!(target: "tenantgate::usage", error = %e, "live usage unavailable; trying the snapshot")
        }
    }
    let services = state.services();
    match snapshot::read(
        &services.upstream,
        &services.config.policy.internal_database,
        tenant,
        period,
    )
    .await?
    {
        Some(s) => {
            if !s.intact {
                tracing::error!(target: "tenantgate::usage", tenant, period = %period, "usage snapshot checksum mismatch: the stored figures were changed outside tenantgate");
            }
            Ok((s.totals, Source::Snapshot { intact: s.intact }))
        }
        None => match live {
            Err(e) if period >= meter.current_period() => Err(e.to_string()),
            _ => Ok((Totals::default(), Source::None)),
        },
    }
}
