//! `Idempotency-Key` for `POST /v1/payments`, scoped per tenant and kept at least 24 hours
//! (48 h TTL): the same key with the same body returns the original response; the same key with
//! a different body is refused (422); a duplicate that arrives while the first is still being
//! processed gets 409 and retries. Concurrent duplicates create one payment: the first insert of
//! the key record wins on the unique index `{tenantId, key}` and the others see its record.
//!
//! The record also fixes the payment's id before anything is written, which is what makes a
//! failed attempt safe to resume: an attempt that dies after inserting the payment (the
//! database failed while settling it, or while storing the response) leaves its record
//! `started`, and after [`STALE_SECS`] a retry with the same body takes the key over and
//! finishes *that* payment — settles it if it is still pending, or answers with it — instead
//! of creating a second one. A key is only `released` (free for any body) when the attempt
//! knows its payment was never written.

use bson::{Bson, doc};
use sha2::{Digest, Sha256};
use tenantgate_proxy::scoped::{DbError, ScopedDb};

use super::input::NewPayment;

/// The tenant collection of idempotency records.
pub const COLLECTION: &str = "idempotency_keys";
/// How long a record is kept.
pub const TTL_SECS: i64 = 48 * 3600;
/// How long an unfinished attempt owns its key; after this a retry with the same body takes
/// over and resumes it. Longer than one attempt can take (it gives up with the upstream's
/// timeout, 30 s by default, on each of its few round trips).
pub const STALE_SECS: i64 = 90;

/// What a claim found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This request owns the key: create (or, when `resumed`, finish) the payment `id`.
    Owned {
        /// The payment's id, fixed by the key's record.
        id: String,
        /// An earlier attempt with this key stopped part way: the payment may exist.
        resumed: bool,
    },
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

/// Claims `key` for a request with `hash`; `new_id` is the payment id to use if this is the
/// key's first attempt.
pub async fn claim(db: &ScopedDb, key: &str, hash: &str, new_id: &str) -> Result<Claim, DbError> {
    let keys = db.collection(COLLECTION);
    let now = bson::DateTime::now();
    let inserted = keys
        .insert_one(doc! {
            "key": key, "requestHash": hash, "state": "started", "paymentId": new_id,
            "createdAt": now, "startedAt": now,
        })
        .await;
    match inserted {
        Ok(()) => Ok(Claim::Owned {
            id: new_id.to_owned(),
            resumed: false,
        }),
        Err(e) if e.is_duplicate_key() => {
            let Some(existing) = keys.find_one(doc! { "key": key }).await? else {
                // Expired between the insert and the read: the next attempt owns it.
                return Ok(Claim::InProgress);
            };
            let state = existing.get_str("state").unwrap_or_default();
            if state == "released" {
                // The first attempt failed before writing its payment and gave the key up:
                // take it over, once, with a new payment id.
                let taken = keys
                    .update_one(
                        doc! { "key": key, "state": "released" },
                        doc! { "$set": {
                            "state": "started", "requestHash": hash, "paymentId": new_id,
                            "createdAt": now, "startedAt": now,
                        } },
                        false,
                    )
                    .await?;
                return Ok(if taken.matched == 1 {
                    Claim::Owned {
                        id: new_id.to_owned(),
                        resumed: false,
                    }
                } else {
                    Claim::InProgress
                });
            }
            if existing.get_str("requestHash").ok() != Some(hash) {
                return Ok(Claim::Mismatch);
            }
            if state == "done" {
                return Ok(replay(&existing));
            }
            // Started: still running, or stopped part way. Past STALE_SECS, take it over.
            // Records written before `startedAt` existed carry only `createdAt`; the takeover
            // below must match on the field the time was read from.
            let (field, started) = match existing.get_datetime("startedAt") {
                Ok(t) => ("startedAt", *t),
                Err(_) => (
                    "createdAt",
                    existing.get_datetime("createdAt").copied().unwrap_or(now),
                ),
            };
            if now.timestamp_millis() - started.timestamp_millis() < STALE_SECS * 1000 {
                return Ok(Claim::InProgress);
            }
            let taken = keys
                .update_one(
                    doc! { "key": key, "state": "started", field: started },
                    doc! { "$set": { "startedAt": now } },
                    false,
                )
                .await?;
            if taken.matched != 1 {
                return Ok(Claim::InProgress);
            }
            Ok(match existing.get_str("paymentId") {
                Ok(id) => Claim::Owned {
                    id: id.to_owned(),
                    resumed: true,
                },
                Err(_) => Claim::Owned {
                    id: new_id.to_owned(),
                    resumed: false,
                },
            })
        }
        Err(e) => Err(e),
    }
}

fn replay(existing: &bson::Document) -> Claim {
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
    Claim::Replay(status, body)
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

/// Gives `key` up after a failure that wrote no payment, so a retry (with any body) can own
/// it. Records are never deleted — a delete would be a soft delete that keeps the unique key —
/// they are released.
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
