//! The wire-proxy half of the workload: long-lived driver clients doing reads, writes,
//! aggregates and cursors as one tenant each, plus auth churn (a new client, hence a new SCRAM
//! conversation, several times a second) and the occasional cross-tenant attempt.
//!
//! Every worker writes only documents it inserted itself, so it knows exactly what the upstream
//! must hold at the end: each acknowledged insert once, with its tenant, its update count and
//! its soft-delete state ([`WriteLedger`], checked by `verify.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::{Bson, Document, doc};
use futures::TryStreamExt;
use mongodb::error::ErrorKind;

use crate::stats::{Op, Recorder};
use crate::{Pacer, Rng, Shared};

/// The collection the proxy workload writes (tenant-scoped, soft delete).
pub const COLLECTION: &str = "soak_items";
/// The collection the scanning reads use: seeded before the load and never written, so a read's
/// cost is the same in the last minute as in the first. (Scanning the growing `soak_items`
/// instead would make p99 climb with the data on an upstream without a fitting index, which is
/// the workload changing, not tenantgate.)
pub const READS: &str = "soak_reads";
/// Documents seeded per tenant into [`READS`] before the load starts.
pub const SEEDED: usize = 200;
/// Documents one cursor reads, in batches of [`BATCH`]: several `getMore`s per cursor.
const CURSOR_LIMIT: i64 = 50;
const BATCH: u32 = 7;
/// A single operation slower than this is an error (SecantusDB's hang shows up this way).
pub const OP_TIMEOUT: Duration = Duration::from_secs(30);

/// What the upstream must hold for one acknowledged insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub tenant: String,
    /// Acknowledged `update_one`s, each `$inc: {version: 1}`.
    pub updates: i64,
    /// Acknowledged soft delete.
    pub deleted: bool,
}

/// The writes one worker made.
#[derive(Debug, Default)]
pub struct WriteLedger {
    /// Acknowledged inserts by `_id`.
    pub acked: BTreeMap<String, Expected>,
    /// Inserts whose outcome is unknown (the command failed): present or absent are both fine.
    pub unknown: Vec<String>,
    /// Documents whose update or delete failed: their version or deletion state is not checked.
    pub uncertain: Vec<String>,
}

/// The `_id` of seeded document `i` of `tenant`.
pub fn seed_id(tenant: &str, i: usize) -> String {
    format!("{tenant}-seed-{i:04}")
}

/// A driver client for `user` through the proxy.
pub async fn client(proxy: &str, user: &str, password: &str, pool: u32) -> mongodb::Client {
    let uri = format!("mongodb://{user}:{password}@{proxy}/?authSource=admin");
    let mut o = mongodb::options::ClientOptions::parse(&uri)
        .await
        .expect("the proxy URI parses");
    o.app_name = Some("tenantgate-soak".into());
    o.server_selection_timeout = Some(Duration::from_secs(10));
    o.connect_timeout = Some(Duration::from_secs(5));
    o.max_pool_size = Some(pool);
    mongodb::Client::with_options(o).expect("a client from valid options")
}

/// Seeds [`SEEDED`] documents of `tenant` through the proxy.
pub async fn seed(db: &mongodb::Database, tenant: &str) -> mongodb::error::Result<()> {
    let docs: Vec<Document> = (0..SEEDED)
        .map(|i| {
            doc! { "_id": seed_id(tenant, i), "status": if i % 3 == 0 { "settled" } else { "open" },
            "amount": (i as i64) * 100, "seed": true }
        })
        .collect();
    db.collection::<Document>(READS)
        .insert_many(docs)
        .await
        .map(|_| ())
}

async fn timed<T>(
    fut: impl std::future::IntoFuture<Output = mongodb::error::Result<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(OP_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {OP_TIMEOUT:?}")),
    }
}

/// A document returned to `tenant` that belongs to someone else is the worst failure there is.
fn check_owner(d: &Document, tenant: &str) -> Result<(), String> {
    match d.get_str("tenantId") {
        Ok(t) if t == tenant => Ok(()),
        other => Err(format!(
            "ISOLATION: {tenant} was sent a document of tenant {other:?}: _id {:?}",
            d.get("_id")
        )),
    }
}

/// One long-lived worker acting as `tenant` until the deadline.
pub async fn worker(
    shared: Arc<Shared>,
    db: mongodb::Database,
    tenant: String,
    index: usize,
    mut pacer: Pacer,
) -> WriteLedger {
    let coll = db.collection::<Document>(COLLECTION);
    let reads = db.collection::<Document>(READS);
    let rec: &Recorder = &shared.recorder;
    let mut rng = Rng::new(index as u64 + 1);
    let mut ledger = WriteLedger::default();
    let mut live: Vec<String> = Vec::new();
    let mut seq = 0u64;
    while pacer.wait(shared.deadline).await {
        let roll = rng.below(100);
        let started = Instant::now();
        let (op, outcome): (Op, Result<(), String>) = match roll {
            0..20 => {
                let id = seed_id(&tenant, rng.below(SEEDED as u64) as usize);
                let r = timed(reads.find_one(doc! { "_id": &id })).await;
                (
                    Op::FindId,
                    r.and_then(|d| match d {
                        Some(d) => check_owner(&d, &tenant),
                        None => Err(format!("seeded document {id} not found")),
                    }),
                )
            }
            20..32 => {
                let min = rng.below(SEEDED as u64 * 100) as i64;
                let r = timed(async {
                    reads
                        .find(doc! { "status": "open", "amount": { "$gte": min } })
                        .limit(20)
                        .await?
                        .try_collect::<Vec<_>>()
                        .await
                })
                .await;
                (
                    Op::FindFilter,
                    r.and_then(|docs| docs.iter().try_for_each(|d| check_owner(d, &tenant))),
                )
            }
            32..40 => {
                let pipeline = [
                    doc! { "$match": { "amount": { "$gte": 0 } } },
                    doc! { "$group": { "_id": "$status", "n": { "$sum": 1 }, "total": { "$sum": "$amount" } } },
                ];
                let r = timed(async {
                    reads
                        .aggregate(pipeline)
                        .await?
                        .try_collect::<Vec<_>>()
                        .await
                })
                .await;
                let seeded = SEEDED as i64;
                (
                    Op::Aggregate,
                    r.and_then(|groups| {
                        let n: i64 = groups
                            .iter()
                            .filter_map(|g| {
                                g.get_i32("n")
                                    .ok()
                                    .map(i64::from)
                                    .or_else(|| g.get_i64("n").ok())
                            })
                            .sum();
                        if n == seeded {
                            Ok(())
                        } else {
                            Err(format!(
                                "$group counted {n} documents, not the {seeded} seeded: {groups:?}"
                            ))
                        }
                    }),
                )
            }
            40..48 => {
                let r = timed(async {
                    reads
                        .find(doc! {})
                        .sort(doc! { "_id": 1 })
                        .batch_size(BATCH)
                        .limit(CURSOR_LIMIT)
                        .await?
                        .try_collect::<Vec<_>>()
                        .await
                })
                .await;
                (
                    Op::Cursor,
                    r.and_then(|docs| {
                        docs.iter().try_for_each(|d| check_owner(d, &tenant))?;
                        if docs.len() as i64 == CURSOR_LIMIT {
                            Ok(())
                        } else {
                            Err(format!(
                                "cursor returned {} documents, expected {CURSOR_LIMIT}",
                                docs.len()
                            ))
                        }
                    }),
                )
            }
            48..64 => {
                seq += 1;
                let id = format!("{tenant}-w{index}-{seq}");
                let d = doc! { "_id": &id, "status": "open", "amount": rng.below(100_000) as i64, "version": 0_i64 };
                match timed(coll.insert_one(d)).await {
                    Ok(_) => {
                        ledger.acked.insert(
                            id.clone(),
                            Expected {
                                tenant: tenant.clone(),
                                updates: 0,
                                deleted: false,
                            },
                        );
                        live.push(id);
                        (Op::Insert, Ok(()))
                    }
                    Err(e) => {
                        ledger.unknown.push(id);
                        (Op::Insert, Err(e))
                    }
                }
            }
            64..74 if !live.is_empty() => {
                let id = live[rng.below(live.len() as u64) as usize].clone();
                let r = timed(coll.update_one(
                    doc! { "_id": &id },
                    doc! { "$set": { "status": "settled" }, "$inc": { "version": 1_i64 } },
                ))
                .await;
                let r = match r {
                    Ok(u) if u.matched_count == 1 && u.modified_count == 1 => {
                        if let Some(e) = ledger.acked.get_mut(&id) {
                            e.updates += 1;
                        }
                        Ok(())
                    }
                    Ok(u) => {
                        ledger.uncertain.push(id.clone());
                        Err(format!(
                            "update of its own live {id} matched {} modified {}",
                            u.matched_count, u.modified_count
                        ))
                    }
                    Err(e) => {
                        ledger.uncertain.push(id.clone());
                        Err(e)
                    }
                };
                (Op::Update, r)
            }
            74..79 if !live.is_empty() => {
                let id = live.swap_remove(rng.below(live.len() as u64) as usize);
                let r = match timed(coll.delete_one(doc! { "_id": &id })).await {
                    Ok(d) if d.deleted_count == 1 => {
                        if let Some(e) = ledger.acked.get_mut(&id) {
                            e.deleted = true;
                        }
                        Ok(())
                    }
                    Ok(d) => {
                        ledger.uncertain.push(id.clone());
                        Err(format!(
                            "delete of its own live {id} deleted {}",
                            d.deleted_count
                        ))
                    }
                    Err(e) => {
                        ledger.uncertain.push(id.clone());
                        Err(e)
                    }
                };
                (Op::SoftDelete, r)
            }
            64..88 => {
                let r = timed(reads.count_documents(doc! { "status": "open" })).await;
                (
                    Op::Count,
                    r.and_then(|n| {
                        let open = (0..SEEDED).filter(|i| i % 3 != 0).count() as u64;
                        if n == open {
                            Ok(())
                        } else {
                            Err(format!(
                                "countDocuments found {n} open documents, not the {open} seeded"
                            ))
                        }
                    }),
                )
            }
            88..97 => {
                let r = timed(reads.distinct("tenantId", doc! {})).await;
                (
                    Op::Distinct,
                    r.and_then(|v| {
                        if v == [Bson::from(tenant.as_str())] {
                            Ok(())
                        } else {
                            Err(format!(
                                "ISOLATION: distinct tenantId as {tenant} returned {v:?}"
                            ))
                        }
                    }),
                )
            }
            _ => (
                Op::CrossTenant,
                cross_tenant(&reads, &tenant, &shared.tenants, &mut rng).await,
            ),
        };
        match outcome {
            Ok(()) => rec.ok(op, started.elapsed()),
            Err(e) => rec.error(op, format!("[{tenant}] {e}")),
        }
    }
    ledger
}

/// Names another tenant: by filter (must be refused with `Unauthorized`, rule
/// `tenant_override`) or by one of its document ids (must find nothing).
async fn cross_tenant(
    coll: &mongodb::Collection<Document>,
    tenant: &str,
    tenants: &[String],
    rng: &mut Rng,
) -> Result<(), String> {
    let others: Vec<&String> = tenants.iter().filter(|t| *t != tenant).collect();
    let Some(other) = others.get(rng.below(others.len().max(1) as u64) as usize) else {
        return Ok(());
    };
    if rng.below(2) == 0 {
        match tokio::time::timeout(OP_TIMEOUT, coll.find_one(doc! { "tenantId": *other })).await {
            Err(_) => Err(format!("no answer within {OP_TIMEOUT:?}")),
            Ok(Ok(d)) => Err(format!(
                "ISOLATION: find {{tenantId: {other}}} as {tenant} was accepted: {d:?}"
            )),
            Ok(Err(e)) => match e.kind.as_ref() {
                ErrorKind::Command(c)
                    if c.code == 13 && c.message.contains("'tenant_override'") =>
                {
                    Ok(())
                }
                _ => Err(format!(
                    "find {{tenantId: {other}}} failed, but not as a policy rejection: {e}"
                )),
            },
        }
    } else {
        let id = seed_id(other, rng.below(SEEDED as u64) as usize);
        match timed(coll.find_one(doc! { "_id": &id })).await? {
            None => Ok(()),
            Some(d) => Err(format!(
                "ISOLATION: {tenant} read {other}'s document {id}: {d:?}"
            )),
        }
    }
}

/// Auth churn: a new client per iteration (connect, SCRAM-SHA-256, one command, shutdown);
/// every 20th uses a wrong password and must be refused.
pub async fn churn(shared: Arc<Shared>, proxy: String, mut pacer: Pacer) {
    let mut rng = Rng::new(0xC0FFEE);
    let mut n = 0u64;
    while pacer.wait(shared.deadline).await {
        n += 1;
        let tenant = &shared.tenants[rng.below(shared.tenants.len() as u64) as usize];
        let wrong = n.is_multiple_of(20);
        let password = if wrong {
            "not-the-password".to_owned()
        } else {
            format!("{tenant}-secret")
        };
        let started = Instant::now();
        let c = client(&proxy, &format!("svc-{tenant}"), &password, 1).await;
        let r = tokio::time::timeout(
            OP_TIMEOUT,
            c.database(&shared.database)
                .collection::<Document>(READS)
                .find_one(doc! { "_id": seed_id(tenant, 0) }),
        )
        .await;
        let took = started.elapsed();
        let rec = &shared.recorder;
        match (wrong, r) {
            (_, Err(_)) => rec.error(Op::Auth, format!("no answer within {OP_TIMEOUT:?}")),
            (false, Ok(Ok(Some(_)))) => rec.ok(Op::Auth, took),
            (false, Ok(Ok(None))) => rec.error(
                Op::Auth,
                format!("svc-{tenant} did not find its seeded document"),
            ),
            (false, Ok(Err(e))) => rec.error(Op::Auth, format!("svc-{tenant}: {e}")),
            (true, Ok(Ok(_))) => rec.error(
                Op::AuthRejected,
                format!("SECURITY: svc-{tenant} with a wrong password was accepted"),
            ),
            (true, Ok(Err(e))) => match e.kind.as_ref() {
                ErrorKind::Authentication { .. } => rec.ok(Op::AuthRejected, took),
                _ => rec.error(
                    Op::AuthRejected,
                    format!("wrong password failed, but not as an authentication error: {e}"),
                ),
            },
        }
        c.shutdown().await;
    }
}
