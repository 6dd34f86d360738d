//! `Idempotency-Key` for `POST /v1/payments`, scoped per tenant and kept at least 24 hours
//! (48 h TTL): the same key with the same body returns the original response; the same key with
//! a different body is refused (422); a duplicate that arrives while the first is still being
//! processed gets 409 and retries. Concurrent duplicates create one payment: the first insert of
//! the key record wins on the unique index `{tenantId, key}` and the others see its record.

use bson::{Bson, doc};
use sha2::{Digest, Sha256};
use tenantgate_proxy::scoped::{DbError, ScopedDb};

use super::input::NewPayment;

/// The tenant collection of idempotency records.
pub const COLLECTION: &str = "idempotency_keys";
/// How long a record is kept.
pub const TTL_SECS: i64 = 48 * 3600;

/// What a claim found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This request owns the key: go ahead.
    Owned,
    /// The key finished before with this status and body.
    Replay(u16, serde_json::Value),
    /// The key was used with another body.
    Mismatch,
    /// The key's first request is still running.
    InProgress,
}

/// A key as a client may send it: 1 to 255 printable ASCII characters.
pub fn valid_key(key: &str) -> bool {
    (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
}

/// The hash of a request body, canonical (field order and whitespace do not matter).
pub fn fingerprint(p: &NewPayment) -> String {
    let mut metadata = p.metadata.clone();
    metadata.sort();
    let canonical = serde_json::json!([p.amount, p.currency, p.customer, p.description, metadata]);
    Sha256::digest(canonical.to_string().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Claims `key` for a request with `hash`.
pub async fn claim(db: &ScopedDb, key: &str, hash: &str) -> Result<Claim, DbError> {
    let keys = db.collection(COLLECTION);
    let inserted = keys
        .insert_one(doc! {
            "key": key, "requestHash": hash, "state": "started", "createdAt": bson::DateTime::now(),
        })
        .await;
    match inserted {
        Ok(()) => Ok(Claim::Owned),
        Err(e) if e.is_duplicate_key() => {
            let Some(existing) = keys.find_one(doc! { "key": key }).await? else {
                // Expired between the insert and the read: the next attempt owns it.
                return Ok(Claim::InProgress);
            };
            if existing.get_str("state").ok() == Some("released") {
                // The first attempt failed and gave the key up: take it over, once.
                let taken = keys
                    .update_one(
                        doc! { "key": key, "state": "released" },
                        doc! { "$set": { "state": "started", "requestHash": hash, "createdAt": bson::DateTime::now() } },
                        false,
                    )
                    .await?;
                return Ok(if taken.matched == 1 {
                    Claim::Owned
                } else {
                    Claim::InProgress
                });
            }
            if existing.get_str("requestHash").ok() != Some(hash) {
                return Ok(Claim::Mismatch);
            }
            if existing.get_str("state").ok() != Some("done") {
                return Ok(Claim::InProgress);
            }
            let status = match existing.get("responseStatus") {
                Some(Bson::Int32(n)) => u16::try_from(*n).unwrap_or(200),
                Some(Bson::Int64(n)) => u16::try_from(*n).unwrap_or(200),
                _ => 200,
            };
            let body = existing
                .get_str("responseBody")
                .ok()
                .and_then(|b| serde_json::from_str(b).ok())
                .unwrap_or(serde_json::Value::Null);
            Ok(Claim::Replay(status, body))
        }
        Err(e) => Err(e),
    }
}

/// Stores the response of the request that owns `key`.
pub async fn complete(
    db: &ScopedDb,
    key: &str,
    status: u16,
    body: &serde_json::Value,
) -> Result<(), DbError> {
    db.collection(COLLECTION)
        .update_one(
            doc! { "key": key },
            doc! { "$set": { "state": "done", "responseStatus": i32::from(status), "responseBody": body.to_string() } },
            false,
        )
        .await
        .map(|_| ())
}

/// Gives `key` up after a failure, so a retry (with any body) can own it. Records are never
/// deleted — a delete would be a soft delete that keeps the unique key — they are released.
pub async fn release(db: &ScopedDb, key: &str) {
    let _ = db
        .collection(COLLECTION)
        .update_one(
            doc! { "key": key, "state": "started" },
            doc! { "$set": { "state": "released" } },
            false,
        )
        .await;
}
