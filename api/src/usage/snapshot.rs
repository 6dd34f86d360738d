//! Month-end snapshots: after a month closes (plus `limits.snapshot_grace_secs`, so late
//! buffered increments land first), every tenant's totals for it are copied from Redis into
//! the MongoDB collection `usage_snapshots` of tenantgate's own database. Billing then survives
//! the loss of Redis, and `GET /v1/usage?period=` reads the snapshot once Redis no longer has
//! the month.
//!
//! Snapshots are written once and never changed: `_id` is `<tenant>:<period>`, so a second
//! writer (another instance, a re-run) gets a duplicate-key error and changes nothing. Each
//! carries a SHA-256 over its fields, so an edit made behind tenantgate's back shows.

use bson::{Bson, Document, RawArrayBuf, RawDocumentBuf, rawdoc};
use sha2::{Digest, Sha256};
use tenantgate_proxy::ratelimit::Period;
use tenantgate_proxy::upstream::Upstream;

use super::meter::Totals;

/// The collection.
pub const COLLECTION: &str = "usage_snapshots";

/// A stored snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The month's totals.
    pub totals: Totals,
    /// When it was taken (RFC 3339).
    pub closed_at: String,
    /// Whether the stored checksum matches the fields.
    pub intact: bool,
}

fn checksum(tenant: &str, period: Period, t: &Totals) -> String {
    let text = format!(
        "{tenant}|{period}|{}|{}|{}|{}",
        t.api_calls, t.transactions, t.storage_bytes, t.bandwidth_bytes
    );
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn int(d: &Document, key: &str) -> i64 {
    match d.get(key) {
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Int32(n)) => i64::from(*n),
        _ => 0,
    }
}

/// Writes the snapshot of `tenant` for `period` unless one exists. `Ok(true)` when written.
pub async fn write(
    upstream: &Upstream,
    database: &str,
    tenant: &str,
    period: Period,
    totals: &Totals,
) -> Result<bool, String> {
    let document = rawdoc! {
        "_id": format!("{tenant}:{period}"),
        "tenantId": tenant,
        "period": period.to_string(),
        "apiCalls": totals.api_calls,
        "transactions": totals.transactions,
        "storageBytes": totals.storage_bytes,
        "bandwidthBytes": totals.bandwidth_bytes,
        "closedAt": bson::DateTime::now(),
        "checksum": checksum(tenant, period, totals),
    };
    let mut docs = RawArrayBuf::new();
    docs.push(document);
    let insert = rawdoc! { "insert": COLLECTION, "documents": docs, "$db": database };
    let reply = upstream.command(insert).await.map_err(|e| e.to_string())?;
    let duplicate = reply
        .get_array("writeErrors")
        .ok()
        .and_then(|a| a.first())
        .and_then(Bson::as_document)
        .map(|e| e.get_i32("code").unwrap_or(0));
    match duplicate {
        None if reply.get_f64("ok").unwrap_or(0.0) == 1.0 => Ok(true),
        Some(11000) => Ok(false),
        _ => Err(format!("snapshot not written: {reply}")),
    }
}

/// The snapshot of `tenant` for `period`, if one was taken.
pub async fn read(
    upstream: &Upstream,
    database: &str,
    tenant: &str,
    period: Period,
) -> Result<Option<Snapshot>, String> {
    let find = rawdoc! {
        "find": COLLECTION, "filter": { "_id": format!("{tenant}:{period}") },
        "limit": 1, "singleBatch": true, "$db": database,
    };
    let reply = upstream.command(find).await.map_err(|e| e.to_string())?;
    let Some(d) = reply
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .ok()
        .and_then(|b| b.first())
        .and_then(Bson::as_document)
    else {
        return Ok(None);
    };
    let totals = Totals {
        api_calls: int(d, "apiCalls"),
        transactions: int(d, "transactions"),
        storage_bytes: int(d, "storageBytes"),
        bandwidth_bytes: int(d, "bandwidthBytes"),
    };
    let closed_at = d
        .get_datetime("closedAt")
        .ok()
        .and_then(|t| t.try_to_rfc3339_string().ok())
        .unwrap_or_default();
    let intact = d.get_str("checksum").ok() == Some(checksum(tenant, period, &totals).as_str());
    Ok(Some(Snapshot {
        totals,
        closed_at,
        intact,
    }))
}

/// Whether every tenant's snapshot of `period` has been written (a marker document).
pub async fn done(upstream: &Upstream, database: &str, period: Period) -> Result<bool, String> {
    let find = rawdoc! {
        "find": COLLECTION, "filter": { "_id": format!("*:{period}") },
        "limit": 1, "singleBatch": true, "$db": database,
    };
    let reply = upstream.command(find).await.map_err(|e| e.to_string())?;
    Ok(reply
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .is_ok_and(|b| !b.is_empty()))
}

/// Records that `period` is complete.
pub async fn mark_done(
    upstream: &Upstream,
    database: &str,
    period: Period,
    tenants: usize,
) -> Result<(), String> {
    let mut docs = RawArrayBuf::new();
    let mut marker = RawDocumentBuf::new();
    marker.append(bson::raw::cstr!("_id"), format!("*:{period}"));
    marker.append(bson::raw::cstr!("period"), period.to_string());
    marker.append(
        bson::raw::cstr!("tenants"),
        i64::try_from(tenants).unwrap_or(i64::MAX),
    );
    marker.append(bson::raw::cstr!("completedAt"), bson::DateTime::now());
    docs.push(marker);
    let insert = rawdoc! { "insert": COLLECTION, "documents": docs, "$db": database };
    upstream.command(insert).await.map_err(|e| e.to_string())?;
    Ok(())
}

/// The index the admin listing reads by.
pub fn index_command(database: &str) -> RawDocumentBuf {
    rawdoc! {
        "createIndexes": COLLECTION,
        "indexes": [ { "key": { "period": 1, "tenantId": 1 }, "name": "period_tenant" } ],
        "$db": database,
    }
}
