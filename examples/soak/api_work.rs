//! The HTTP half of the workload, one tenant per worker, with the tenant's dev JWT: list
//! payments, create payments with fresh `Idempotency-Key`s, replay a key (which must answer the
//! same payment, marked `Idempotent-Replayed`), read usage, and now and then ask for another
//! tenant's payment (which must be `404`).
//!
//! Each created payment is recorded in a [`PaymentLedger`], so `verify.rs` can check that the
//! upstream holds exactly one payment per key, with the right tenant.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use crate::stats::{Op, lock};
use crate::{Pacer, Rng, Shared};

/// One acknowledged `201` for a new key.
#[derive(Debug, Clone)]
pub struct Payment {
    pub tenant: String,
    pub key: String,
    pub id: String,
}

/// The payments one worker created.
#[derive(Debug, Default)]
pub struct PaymentLedger {
    pub created: Vec<Payment>,
    /// Keys whose create failed: zero or one payment is fine for these, two is not.
    pub unknown: Vec<(String, String)>,
}

/// How many recent payment ids are kept for cross-tenant lookups.
const RECENT: usize = 256;

/// One outcome: `Ok` or an error message.
type Outcome = Result<(), String>;

async fn body(r: reqwest::Response) -> (u16, bool, Value) {
    let status = r.status().as_u16();
    let replayed = r
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v.as_bytes() == b"true");
    let v = r.json::<Value>().await.unwrap_or(Value::Null);
    (status, replayed, v)
}

fn short(v: &Value) -> String {
    let mut s = v.to_string();
    s.truncate(300);
    s
}

pub async fn worker(
    shared: Arc<Shared>,
    http: reqwest::Client,
    tenant: String,
    index: usize,
    mut pacer: Pacer,
) -> PaymentLedger {
    let token = shared.tokens.get(&tenant).cloned().unwrap_or_default();
    let auth = format!("Bearer {token}");
    let base = shared.api.trim_end_matches('/').to_owned();
    let mut rng = Rng::new(1_000 + index as u64);
    let mut ledger = PaymentLedger::default();
    let mut last: Option<(String, Value, String)> = None; // key, body, id
    let mut seq = 0u64;
    while pacer.wait(shared.deadline).await {
        let roll = rng.below(100);
        let started = Instant::now();
        let (op, outcome): (Op, Outcome) = match roll {
            0..40 => {
                let r = http
                    .get(format!("{base}/v1/payments?limit=20"))
                    .header("authorization", &auth)
                    .send()
                    .await;
                (Op::ApiList, list(r, &tenant).await)
            }
            40..70 => {
                seq += 1;
                let key = format!("soak-{tenant}-{index}-{seq}-{}", shared.run_id);
                let payload = json!({
                    "amount": 100 + rng.below(1_000_000),
                    "currency": "EUR",
                    "description": "soak",
                    "metadata": { "key": key },
                });
                let r = http
                    .post(format!("{base}/v1/payments"))
                    .header("authorization", &auth)
                    .header("idempotency-key", &key)
                    .json(&payload)
                    .send()
                    .await;
                let outcome = match r {
                    Err(e) => Err(format!("POST: {e}")),
                    Ok(r) => match body(r).await {
                        (201, false, v) => match (v["id"].as_str(), v["tenantId"].as_str()) {
                            (Some(id), Some(t)) if t == tenant => {
                                let p = Payment {
                                    tenant: tenant.clone(),
                                    key: key.clone(),
                                    id: id.to_owned(),
                                };
                                remember(&shared, &p);
                                ledger.created.push(p);
                                last = Some((key.clone(), payload, id.to_owned()));
                                Ok(())
                            }
                            _ => Err(format!(
                                "ISOLATION or shape: 201 for {tenant} with {}",
                                short(&v)
                            )),
                        },
                        (s, replayed, v) => Err(format!(
                            "POST new key: {s} replayed={replayed} {}",
                            short(&v)
                        )),
                    },
                };
                if outcome.is_err() {
                    ledger.unknown.push((tenant.clone(), key));
                }
                (Op::ApiCreate, outcome)
            }
            70..80 if last.is_some() => {
                let Some((key, payload, id)) = last.take() else {
                    continue;
                };
                let r = http
                    .post(format!("{base}/v1/payments"))
                    .header("authorization", &auth)
                    .header("idempotency-key", &key)
                    .json(&payload)
                    .send()
                    .await;
                let outcome = match r {
                    Err(e) => Err(format!("replay POST: {e}")),
                    Ok(r) => match body(r).await {
                        (201, true, v) if v["id"].as_str() == Some(id.as_str()) => Ok(()),
                        (s, replayed, v) => Err(format!(
                            "replay of {key} (payment {id}): {s} replayed={replayed} {}",
                            short(&v)
                        )),
                    },
                };
                (Op::ApiReplay, outcome)
            }
            70..96 => {
                let r = http
                    .get(format!("{base}/v1/usage"))
                    .header("authorization", &auth)
                    .send()
                    .await;
                let outcome = match r {
                    Err(e) => Err(format!("GET usage: {e}")),
                    Ok(r) => match body(r).await {
                        (200, _, v) if v["tenantId"].as_str() == Some(tenant.as_str()) => Ok(()),
                        (s, _, v) => Err(format!("GET usage: {s} {}", short(&v))),
                    },
                };
                (Op::ApiUsage, outcome)
            }
            _ => {
                let other = {
                    let recent = lock(&shared.recent_payments);
                    let theirs: Vec<&Payment> =
                        recent.iter().filter(|p| p.tenant != tenant).collect();
                    theirs
                        .get(rng.below(theirs.len().max(1) as u64) as usize)
                        .map(|p| (*p).clone())
                };
                let Some(p) = other else { continue };
                let r = http
                    .get(format!("{base}/v1/payments/{}", p.id))
                    .header("authorization", &auth)
                    .send()
                    .await;
                let outcome = match r {
                    Err(e) => Err(format!("GET other's payment: {e}")),
                    Ok(r) => match body(r).await {
                        (404, _, _) => Ok(()),
                        (s, _, v) => Err(format!(
                            "ISOLATION: {tenant} asked for {}'s payment {}: {s} {}",
                            p.tenant,
                            p.id,
                            short(&v)
                        )),
                    },
                };
                (Op::ApiCrossTenant, outcome)
            }
        };
        match outcome {
            Ok(()) => shared.recorder.ok(op, started.elapsed()),
            Err(e) => shared.recorder.error(op, format!("[{tenant}] {e}")),
        }
    }
    ledger
}

async fn list(r: reqwest::Result<reqwest::Response>, tenant: &str) -> Outcome {
    let r = r.map_err(|e| format!("GET payments: {e}"))?;
    let (status, _, v) = body(r).await;
    if status != 200 {
        return Err(format!("GET payments: {status} {}", short(&v)));
    }
    let data = v["data"]
        .as_array()
        .ok_or_else(|| format!("GET payments: no data array: {}", short(&v)))?;
    match data.iter().find(|p| p["tenantId"].as_str() != Some(tenant)) {
        None => Ok(()),
        Some(p) => Err(format!("ISOLATION: {tenant}'s list holds {}", short(p))),
    }
}

fn remember(shared: &Shared, p: &Payment) {
    let mut recent = lock(&shared.recent_payments);
    if recent.len() >= RECENT {
        recent.pop_front();
    }
    recent.push_back(p.clone());
}
