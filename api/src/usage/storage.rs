//! The `storage_bytes` gauge: how many bytes of documents each tenant holds across the tenant
//! collections of every policy database, soft-deleted documents included (they still occupy
//! storage). One `$group` by tenant field per collection measures all tenants at once; the
//! result replaces the gauge in the current month's usage — it is the latest value, never a
//! sum of measurements.

use std::collections::HashMap;

use bson::{Bson, rawdoc};
use tenantgate_policy::{CollectionMode, PolicyConfig};
use tenantgate_proxy::upstream::Upstream;

/// Bytes per tenant, measured now.
pub async fn measure(
    upstream: &Upstream,
    policy: &PolicyConfig,
) -> Result<HashMap<String, i64>, String> {
    let mut totals: HashMap<String, i64> = HashMap::new();
    for db in &policy.databases {
        let list = rawdoc! { "listCollections": 1, "nameOnly": true, "$db": db.as_str() };
        let reply = upstream.command(list).await.map_err(|e| e.to_string())?;
        let names: Vec<String> = reply
            .get_document("cursor")
            .and_then(|c| c.get_array("firstBatch"))
            .map(|b| {
                b.iter()
                    .filter_map(Bson::as_document)
                    .filter_map(|d| d.get_str("name").ok().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        for name in names {
            if name.starts_with("system.")
                || policy.collection(&name).mode != CollectionMode::Tenant
            {
                continue;
            }
            let field = format!("${}", policy.tenant_field);
            let aggregate = rawdoc! {
                "aggregate": name.as_str(),
                "pipeline": [
                    { "$group": { "_id": field.as_str(), "bytes": { "$sum": { "$bsonSize": "$$ROOT" } } } },
                ],
                "cursor": { "batchSize": 100_000 },
                "$db": db.as_str(),
            };
            let reply = upstream
                .command(aggregate)
                .await
                .map_err(|e| e.to_string())?;
            let batch = reply
                .get_document("cursor")
                .and_then(|c| c.get_array("firstBatch"))
                .cloned()
                .unwrap_or_default();
            for row in batch.iter().filter_map(Bson::as_document) {
                let Ok(tenant) = row.get_str("_id") else {
                    continue;
                };
                let bytes = match row.get("bytes") {
                    Some(Bson::Int32(n)) => i64::from(*n),
                    Some(Bson::Int64(n)) => *n,
                    Some(Bson::Double(n)) => *n as i64,
                    _ => 0,
                };
                *totals.entry(tenant.to_owned()).or_default() += bytes;
            }
        }
    }
    Ok(totals)
}
