//! The `tenants` collection itself: reads and writes over the proxy's upstream pool, with the
//! unique indexes that keep slugs and custom domains unambiguous.
//!
//! It lives in `policy.internal_database`, which the policy engine never opens to tenants, and
//! it is reached with the proxy's own upstream identity, never through a tenant's scope. Uniqueness
//! is the database's job (unique indexes on `slug` and the multikey `domains`); the store also
//! checks domains first so the error names the tenant that holds one.

use std::sync::Arc;

use bson::{Bson, Document, RawArrayBuf, RawDocumentBuf, doc, rawdoc};

use super::RegistryError;
use super::tenant::Tenant;
use crate::config::TenantSeed;
use crate::upstream::Upstream;

/// The collection holding tenants.
pub const COLLECTION: &str = "tenants";

/// MongoDB's duplicate-key error code.
const DUPLICATE_KEY: i32 = 11000;

/// Access to the collection.
#[derive(Debug, Clone)]
pub struct Store {
    upstream: Arc<Upstream>,
    database: String,
}

fn unavailable(e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Unavailable(e.to_string())
}

/// The command's error, if the reply is not `ok: 1` or carries write errors.
fn check(reply: &Document) -> Result<(), RegistryError> {
    let first_write_error = reply
        .get_array("writeErrors")
        .ok()
        .and_then(|a| a.first())
        .and_then(Bson::as_document);
    let (code, message) = match first_write_error {
        Some(e) => (
            e.get_i32("code").unwrap_or(0),
            e.get_str("errmsg").unwrap_or(""),
        ),
        None if reply.get_f64("ok").unwrap_or(0.0) == 1.0
            || reply.get_i32("ok").unwrap_or(0) == 1 =>
        {
            return Ok(());
        }
        None => (
            reply.get_i32("code").unwrap_or(0),
            reply.get_str("errmsg").unwrap_or("command failed"),
        ),
    };
    if code == DUPLICATE_KEY {
        return Err(RegistryError::Conflict(
            "a tenant with this slug or domain already exists".into(),
        ));
    }
    Err(RegistryError::Unavailable(format!(
        "registry command failed ({code}): {message}"
    )))
}

fn decode(doc: Document) -> Result<Tenant, RegistryError> {
    let slug = doc.get_str("slug").unwrap_or("?").to_owned();
    bson::deserialize_from_document(doc).map_err(|e| RegistryError::Corrupt {
        slug,
        reason: e.to_string(),
    })
}

fn first_batch(reply: Document) -> Vec<Document> {
    reply
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .map(|b| b.iter().filter_map(|d| d.as_document().cloned()).collect())
        .unwrap_or_default()
}

impl Store {
    /// The collection in `database`.
    pub fn new(upstream: Arc<Upstream>, database: &str) -> Store {
        Store {
            upstream,
            database: database.to_owned(),
        }
    }

    async fn run(&self, mut body: RawDocumentBuf) -> Result<Document, RegistryError> {
        body.append(bson::raw::cstr!("$db"), self.database.as_str());
        self.upstream.command(body).await.map_err(unavailable)
    }

    /// Creates the unique indexes and every seed tenant that does not exist yet. An existing
    /// tenant keeps what the admin API last set.
    pub async fn ensure(&self, seeds: &[TenantSeed]) -> Result<(), RegistryError> {
        let indexes = rawdoc! {
            "createIndexes": COLLECTION,
            "indexes": [
                { "key": { "slug": 1 }, "name": "slug_unique", "unique": true },
                { "key": { "domains": 1 }, "name": "domains_unique", "unique": true, "partialFilterExpression": { "domains": { "$type": "string" } } },
            ],
        };
        let reply = self.run(indexes).await?;
        if let Err(e) = check(&reply) {
            tracing::warn!(target: "tenantgate::registry", error = %e, "could not create registry indexes");
        }
        for seed in seeds {
            let now = bson::DateTime::now();
            let mut domains = RawArrayBuf::new();
            for d in &seed.domains {
                let d = super::normalize_domain(d)
                    .map_err(|e| RegistryError::Invalid(e.to_string()))?;
                domains.push(d.as_str());
            }
            let normal = seed
                .settings
                .checked()
                .map_err(|(k, why)| RegistryError::Invalid(format!("settings.{k} {why}")))?;
            let settings = bson::serialize_to_raw_document_buf(&normal)
                .map_err(|e| RegistryError::Invalid(e.to_string()))?;
            let upsert = rawdoc! {
                "update": COLLECTION,
                "updates": [ {
                    "q": { "slug": seed.slug.as_str() },
                    "u": { "$setOnInsert": {
                        "slug": seed.slug.as_str(), "name": seed.name.as_str(), "tier": seed.tier.as_str(),
                        "domains": domains, "settings": settings, "limits": {}, "isActive": seed.active,
                        "createdAt": now, "updatedAt": now,
                    } },
                    "upsert": true,
                } ],
            };
            check(&self.run(upsert).await?)?;
        }
        Ok(())
    }

    /// The tenant matching `filter`, if any.
    pub async fn find_one(&self, filter: Document) -> Result<Option<Tenant>, RegistryError> {
        let mut find = rawdoc! { "find": COLLECTION, "limit": 1, "singleBatch": true };
        find.append(
            bson::raw::cstr!("filter"),
            RawDocumentBuf::try_from(&filter).map_err(unavailable)?,
        );
        let reply = self.run(find).await?;
        check(&reply)?;
        first_batch(reply)
            .into_iter()
            .next()
            .map(decode)
            .transpose()
    }

    /// The tenant with `slug`.
    pub async fn by_slug(&self, slug: &str) -> Result<Option<Tenant>, RegistryError> {
        self.find_one(doc! { "slug": slug }).await
    }

    /// The tenant holding the normalised `domain`.
    pub async fn by_domain(&self, domain: &str) -> Result<Option<Tenant>, RegistryError> {
        self.find_one(doc! { "domains": domain }).await
    }

    /// Up to `limit` tenants in slug order, after `after`; and whether more follow.
    pub async fn list(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Tenant>, bool), RegistryError> {
        let filter = match after {
            Some(a) => doc! { "slug": { "$gt": a } },
            None => doc! {},
        };
        let mut find = rawdoc! {
            "find": COLLECTION, "sort": { "slug": 1 },
            "limit": i64::try_from(limit + 1).unwrap_or(i64::MAX), "singleBatch": true,
        };
        find.append(
            bson::raw::cstr!("filter"),
            RawDocumentBuf::try_from(&filter).map_err(unavailable)?,
        );
        let reply = self.run(find).await?;
        check(&reply)?;
        let mut tenants = first_batch(reply)
            .into_iter()
            .map(decode)
            .collect::<Result<Vec<_>, _>>()?;
        let more = tenants.len() > limit;
        tenants.truncate(limit);
        Ok((tenants, more))
    }

    /// Refuses domains another tenant already holds, naming it.
    pub async fn check_domains_free(
        &self,
        slug: &str,
        domains: &[String],
    ) -> Result<(), RegistryError> {
        if domains.is_empty() {
            return Ok(());
        }
        let holder = self
            .find_one(doc! { "domains": { "$in": domains }, "slug": { "$ne": slug } })
            .await?;
        match holder {
            Some(other) => {
                let taken = domains
                    .iter()
                    .find(|d| other.domains.contains(d))
                    .cloned()
                    .unwrap_or_default();
                Err(RegistryError::Conflict(format!(
                    "domain {taken} already belongs to tenant {}",
                    other.slug
                )))
            }
            None => Ok(()),
        }
    }

    /// Inserts a new tenant.
    pub async fn insert(&self, tenant: &Tenant) -> Result<(), RegistryError> {
        if self.by_slug(&tenant.slug).await?.is_some() {
            return Err(RegistryError::Conflict(format!(
                "tenant {} already exists",
                tenant.slug
            )));
        }
        self.check_domains_free(&tenant.slug, &tenant.domains)
            .await?;
        let doc = bson::serialize_to_raw_document_buf(tenant).map_err(unavailable)?;
        let mut docs = RawArrayBuf::new();
        docs.push(doc);
        let insert = rawdoc! { "insert": COLLECTION, "documents": docs };
        check(&self.run(insert).await?)
    }

    /// Applies `update` (an update document of operators) to the tenant and returns it as it is
    /// afterwards; `None` when there is no such tenant. `updatedAt` is set here.
    pub async fn update(
        &self,
        slug: &str,
        mut update: Document,
    ) -> Result<Option<Tenant>, RegistryError> {
        let now = bson::DateTime::now();
        match update.get_document_mut("$set") {
            Ok(set) => {
                set.insert("updatedAt", now);
            }
            Err(_) => {
                update.insert("$set", doc! { "updatedAt": now });
            }
        }
        let mut fam =
            rawdoc! { "findAndModify": COLLECTION, "query": { "slug": slug }, "new": true };
        fam.append(
            bson::raw::cstr!("update"),
            RawDocumentBuf::try_from(&update).map_err(unavailable)?,
        );
        let reply = self.run(fam).await?;
        check(&reply)?;
        match reply.get("value") {
            Some(Bson::Document(d)) => decode(d.clone()).map(Some),
            _ => Ok(None),
        }
    }
}
