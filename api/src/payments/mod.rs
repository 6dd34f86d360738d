//! Payments: what a tenant's API clients create and read. Money is an integer number of minor
//! units with an ISO 4217 currency; time is UTC. Every read and write goes through the tenant's
//! [`TenantDb`](crate::extract::TenantDb), so a payment is stamped with, and only ever found
//! under, the tenant that created it.
//!
//! Lifecycle: a payment is created `pending` and handed to the processor, which settles it
//! `succeeded` or `failed` in the same request; a succeeded payment can be `refunded`. The
//! processor here is a deterministic simulator (metadata `simulate: "decline"` fails a payment)
//! standing in for a card network.

pub mod idempotency;
pub mod input;

use bson::{Bson, Document, doc, oid::ObjectId};
use serde_json::{Map, Value};

use crate::openapi::schemas::{Payment, PaymentObject};

/// The tenant collection holding payments.
pub const COLLECTION: &str = "payments";

/// A payment's status: created `pending`, settled `succeeded` or `failed` in the same request; a
/// `succeeded` payment can be `refunded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = PaymentStatus)]
pub enum Status {
    /// Created, not settled.
    Pending,
    /// Settled successfully.
    Succeeded,
    /// Declined.
    Failed,
    /// Succeeded, then refunded.
    Refunded,
}

impl Status {
    /// The stored and returned name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Refunded => "refunded",
        }
    }

    /// Parses a status name.
    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "pending" => Some(Status::Pending),
            "succeeded" => Some(Status::Succeeded),
            "failed" => Some(Status::Failed),
            "refunded" => Some(Status::Refunded),
            _ => None,
        }
    }
}

/// A new id: `pay_` and an ObjectId, so ids sort by creation time (newest first = descending).
pub fn new_id() -> String {
    format!("pay_{}", ObjectId::new().to_hex())
}

/// What the simulated processor decides for a new payment.
pub fn settle(simulate: Option<&str>) -> Status {
    match simulate {
        Some("decline") => Status::Failed,
        _ => Status::Succeeded,
    }
}

/// The UTC time stored at `key` as RFC 3339, or `None` (`null`).
pub(crate) fn rfc3339(d: &Document, key: &str) -> Option<String> {
    d.get_datetime(key)
        .ok()
        .and_then(|t| t.try_to_rfc3339_string().ok())
}

/// The string values of the sub-document `key` (others are skipped), in stored order.
pub(crate) fn string_map(d: &Document, key: &str) -> Map<String, Value> {
    d.get_document(key)
        .ok()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), Value::String(s.to_owned()))))
                .collect()
        })
        .unwrap_or_default()
}

/// The API object of a stored payment.
pub fn view(d: &Document, policy: &tenantgate_policy::PolicyConfig) -> Payment {
    let amount = match d.get("amount") {
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Int32(n)) => i64::from(*n),
        _ => 0,
    };
    Payment {
        id: d.get_str("_id").unwrap_or_default().to_owned(),
        object: PaymentObject::Payment,
        amount,
        currency: d.get_str("currency").unwrap_or_default().to_owned(),
        customer: d.get_str("customer").ok().map(str::to_owned),
        description: d.get_str("description").ok().map(str::to_owned),
        metadata: string_map(d, "metadata"),
        status: d.get_str("status").unwrap_or_default().to_owned(),
        tenant_id: d
            .get_str(&policy.tenant_field)
            .unwrap_or_default()
            .to_owned(),
        created_at: rfc3339(d, "createdAt"),
        updated_at: rfc3339(d, "updatedAt"),
    }
}

/// The stored document of a new payment (the engine adds `tenantId`).
pub fn document(id: &str, p: &input::NewPayment, status: Status) -> Document {
    let now = bson::DateTime::now();
    let mut metadata = Document::new();
    for (k, v) in &p.metadata {
        metadata.insert(k.clone(), v.clone());
    }
    let mut d = doc! {
        "_id": id,
        "amount": p.amount,
        "currency": p.currency.as_str(),
        "metadata": metadata,
        "status": status.as_str(),
        "createdAt": now,
        "updatedAt": now,
    };
    if let Some(c) = &p.customer {
        d.insert("customer", c.as_str());
    }
    if let Some(desc) = &p.description {
        d.insert("description", desc.as_str());
    }
    d
}

/// Creates the indexes the payments API relies on, with the proxy's own upstream identity
/// (index management is not a tenant's business): one idempotency record per tenant and key
/// (unique — the guarantee that concurrent duplicates create one payment), records expiring
/// after [`idempotency::TTL_SECS`], and payments listed newest first per tenant.
pub async fn ensure_indexes(
    upstream: &tenantgate_proxy::upstream::Upstream,
    database: &str,
    tenant_field: &str,
) -> Result<(), String> {
    let commands = [
        doc! {
            "createIndexes": idempotency::COLLECTION,
            "indexes": [
                { "key": { tenant_field: 1, "key": 1 }, "name": "tenant_key_unique", "unique": true },
                { "key": { "createdAt": 1 }, "name": "created_ttl", "expireAfterSeconds": idempotency::TTL_SECS },
            ],
            "$db": database,
        },
        doc! {
            "createIndexes": COLLECTION,
            "indexes": [ { "key": { tenant_field: 1, "_id": -1 }, "name": "tenant_newest_first" } ],
            "$db": database,
        },
    ];
    for c in commands {
        let raw = bson::RawDocumentBuf::try_from(&c).map_err(|e| e.to_string())?;
        let reply = upstream.command(raw).await.map_err(|e| e.to_string())?;
        if reply.get_f64("ok").unwrap_or(0.0) != 1.0 {
            return Err(format!("createIndexes failed: {reply}"));
        }
    }
    Ok(())
}
