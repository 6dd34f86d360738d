//! The end-of-run check, through a direct connection to the upstream (not through tenantgate,
//! whose answers are what is being checked): every acknowledged write is there exactly once,
//! with the right tenant and the state the acknowledgements imply, and nothing else is.

use std::collections::{BTreeMap, BTreeSet};

use bson::{Document, doc};
use futures::TryStreamExt;

use crate::api_work::PaymentLedger;
use crate::proxy_work::{COLLECTION, READS, SEEDED, WriteLedger, seed_id};

/// What the check found.
#[derive(Debug, Default)]
pub struct Verification {
    /// Documents and payments compared against an acknowledgement.
    pub checked: usize,
    /// Acknowledged but absent.
    pub lost: usize,
    /// Present more than once (the same `_id` twice, or two payments for one key).
    pub duplicated: usize,
    /// Present with another tenant's id.
    pub wrong_tenant: usize,
    /// Present, but with another update count or soft-delete state than acknowledged.
    pub wrong_state: usize,
    /// Present without any request having written it.
    pub unexpected: usize,
    /// The first problems, described.
    pub problems: Vec<String>,
}

impl Verification {
    pub fn failures(&self) -> usize {
        self.lost + self.duplicated + self.wrong_tenant + self.wrong_state + self.unexpected
    }

    fn problem(&mut self, what: String) {
        if self.problems.len() < 20 {
            self.problems.push(what);
        }
    }
}

/// A stored document's owner and soft-delete state.
struct Stored {
    tenant: Option<String>,
    deleted: bool,
    version: Option<i64>,
    copies: usize,
}

pub async fn verify(
    upstream: &mongodb::Database,
    tenants: &[String],
    writes: &[WriteLedger],
    payments: &[PaymentLedger],
    run_id: &str,
) -> mongodb::error::Result<Verification> {
    let mut v = Verification::default();

    // --- the proxy's documents ---------------------------------------------------------------
    let items = stored_docs(upstream, COLLECTION).await?;
    let seeds = stored_docs(upstream, READS).await?;
    let mut expected_ids: BTreeSet<String> = BTreeSet::new();
    let mut seed_ids: BTreeSet<String> = BTreeSet::new();
    let check = |v: &mut Verification,
                 stored: &BTreeMap<String, Stored>,
                 id: &str,
                 tenant: &str,
                 deleted: bool,
                 version: Option<i64>| {
        v.checked += 1;
        match stored.get(id) {
            None => {
                v.lost += 1;
                v.problem(format!(
                    "LOST: acknowledged insert {id} of {tenant} is not in the upstream"
                ));
            }
            Some(s) => {
                if s.copies != 1 {
                    v.duplicated += 1;
                    v.problem(format!("DUPLICATED: {id} is stored {} times", s.copies));
                }
                if s.tenant.as_deref() != Some(tenant) {
                    v.wrong_tenant += 1;
                    v.problem(format!(
                        "WRONG TENANT: {id} written by {tenant} is stored as {:?}",
                        s.tenant
                    ));
                }
                if s.deleted != deleted || (version.is_some() && s.version != version) {
                    v.wrong_state += 1;
                    v.problem(format!(
                        "WRONG STATE: {id}: deleted {} version {:?}, acknowledged deleted {deleted} version {version:?}",
                        s.deleted, s.version
                    ));
                }
            }
        }
    };
    for t in tenants {
        for i in 0..SEEDED {
            let id = seed_id(t, i);
            check(&mut v, &seeds, &id, t, false, None);
            seed_ids.insert(id);
        }
    }
    for w in writes {
        let uncertain: BTreeSet<&String> = w.uncertain.iter().collect();
        for (id, e) in &w.acked {
            if uncertain.contains(id) {
                // Its last update or delete failed: only presence and owner are known.
                if let Some(s) = items.get(id) {
                    check(&mut v, &items, id, &e.tenant, s.deleted, s.version);
                } else {
                    check(&mut v, &items, id, &e.tenant, false, None);
                }
            } else {
                check(&mut v, &items, id, &e.tenant, e.deleted, Some(e.updates));
            }
            expected_ids.insert(id.clone());
        }
        expected_ids.extend(w.unknown.iter().cloned());
    }
    for (collection, stored, expected) in [
        (COLLECTION, &items, &expected_ids),
        (READS, &seeds, &seed_ids),
    ] {
        for id in stored.keys() {
            if !expected.contains(id) {
                v.unexpected += 1;
                v.problem(format!(
                    "UNEXPECTED: {collection} holds {id}, which no request wrote"
                ));
            }
        }
    }

    // --- the API's payments ----------------------------------------------------------------------
    // Payments carry their Idempotency-Key in metadata.key; keys of this run contain run_id.
    let mut by_key: BTreeMap<String, Vec<(String, Option<String>)>> = BTreeMap::new();
    let mut cursor = upstream
        .collection::<Document>("payments")
        .find(doc! {})
        .projection(doc! { "tenantId": 1, "metadata": 1 })
        .batch_size(1000)
        .await?;
    while let Some(d) = cursor.try_next().await? {
        let key = d
            .get_document("metadata")
            .ok()
            .and_then(|m| m.get_str("key").ok())
            .unwrap_or_default()
            .to_owned();
        if !key.ends_with(run_id) {
            continue; // not this run's (a reused database)
        }
        let id = d.get_str("_id").unwrap_or_default().to_owned();
        by_key
            .entry(key)
            .or_default()
            .push((id, d.get_str("tenantId").ok().map(str::to_owned)));
    }
    let mut known_keys: BTreeSet<&str> = BTreeSet::new();
    for ledger in payments {
        for p in &ledger.created {
            v.checked += 1;
            known_keys.insert(&p.key);
            match by_key.get(&p.key).map(Vec::as_slice) {
                None | Some([]) => {
                    v.lost += 1;
                    v.problem(format!(
                        "LOST: payment {} (key {}) of {} is not in the upstream",
                        p.id, p.key, p.tenant
                    ));
                }
                Some([(id, tenant)]) => {
                    if id != &p.id {
                        v.wrong_state += 1;
                        v.problem(format!(
                            "WRONG STATE: key {} answered {} but stored {id}",
                            p.key, p.id
                        ));
                    }
                    if tenant.as_deref() != Some(p.tenant.as_str()) {
                        v.wrong_tenant += 1;
                        v.problem(format!(
                            "WRONG TENANT: payment {id} of {} is stored as {tenant:?}",
                            p.tenant
                        ));
                    }
                }
                Some(many) => {
                    v.duplicated += 1;
                    v.problem(format!(
                        "DUPLICATED: key {} has {} payments: {many:?}",
                        p.key,
                        many.len()
                    ));
                }
            }
        }
        for (tenant, key) in &ledger.unknown {
            known_keys.insert(key);
            if let Some(many) = by_key.get(key).filter(|m| m.len() > 1) {
                v.duplicated += 1;
                v.problem(format!(
                    "DUPLICATED: key {key} of {tenant} (create failed) has {} payments",
                    many.len()
                ));
            }
        }
    }
    for (key, found) in &by_key {
        if !known_keys.contains(key.as_str()) {
            v.unexpected += found.len();
            v.problem(format!(
                "UNEXPECTED: payments {found:?} with key {key} that no request sent"
            ));
        }
    }
    Ok(v)
}

/// Every document of `collection`, by `_id`, with how many times each `_id` came back.
async fn stored_docs(
    upstream: &mongodb::Database,
    collection: &str,
) -> mongodb::error::Result<BTreeMap<String, Stored>> {
    let mut stored: BTreeMap<String, Stored> = BTreeMap::new();
    let mut cursor = upstream
        .collection::<Document>(collection)
        .find(doc! {})
        .projection(doc! { "tenantId": 1, "deletedAt": 1, "version": 1 })
        .batch_size(1000)
        .await?;
    while let Some(d) = cursor.try_next().await? {
        let id = d
            .get_str("_id")
            .map(str::to_owned)
            .unwrap_or_else(|_| format!("{:?}", d.get("_id")));
        let deleted = !matches!(d.get("deletedAt"), None | Some(bson::Bson::Null));
        let entry = stored.entry(id).or_insert(Stored {
            tenant: d.get_str("tenantId").ok().map(str::to_owned),
            deleted,
            version: d.get_i64("version").ok(),
            copies: 0,
        });
        entry.copies += 1;
    }
    Ok(stored)
}
