//! Compares a live upstream with an export: per collection, the content digest of the tenant's
//! documents (soft-deleted included) in `_id` order against the manifest's.
//!
//! Import ends with this check on the target; run on its own (`tenantgate tenant verify`) it
//! tells whether the source changed since the export, or whether a target still matches before
//! the source copy is deleted.

use anyhow::Result;
use bson::doc;

use super::db::Db;
use super::digest::{ContentDigest, Summary};
use super::manifest::{CollectionEntry, Manifest};

/// One collection's comparison.
#[derive(Debug)]
pub struct Outcome<'a> {
    /// The manifest's entry.
    pub entry: &'a CollectionEntry,
    /// The database compared (after `--map-database`).
    pub database: String,
    /// What the live collection holds for the tenant.
    pub live: Summary,
}

impl Outcome<'_> {
    /// The live documents are exactly the exported ones.
    pub fn matches(&self) -> bool {
        self.live.sha256 == self.entry.content_sha256 && self.live.documents == self.entry.documents
    }

    /// One line for the operator.
    pub fn describe(&self) -> String {
        let ns = format!("{}.{}", self.database, self.entry.collection);
        if self.matches() {
            format!(
                "match     {ns}: {} documents, sha256 {}",
                self.live.documents, self.live.sha256
            )
        } else {
            format!(
                "MISMATCH  {ns}: export has {} documents (sha256 {}), upstream has {} (sha256 {})",
                self.entry.documents,
                self.entry.content_sha256,
                self.live.documents,
                self.live.sha256
            )
        }
    }
}

/// The tenant's live content digest of `database.collection`.
pub async fn digest(
    db: &Db,
    database: &str,
    collection: &str,
    tenant_field: &str,
    tenant: &str,
    batch_size: i32,
) -> Result<Summary> {
    let mut content = ContentDigest::default();
    let find = doc! {
        "find": collection,
        "filter": { tenant_field: tenant },
        "sort": { "_id": 1 },
        "batchSize": batch_size,
    };
    db.for_each(database, find, batch_size, |d| {
        content.add(&d.to_vec()?);
        Ok(())
    })
    .await?;
    Ok(content.finish())
}

/// Compares every collection of `manifest`; `map` turns an exported database name into the
/// live one.
pub async fn compare<'a>(
    db: &Db,
    manifest: &'a Manifest,
    map: impl Fn(&str) -> String,
    batch_size: i32,
) -> Result<Vec<Outcome<'a>>> {
    let mut out = Vec::with_capacity(manifest.collections.len());
    for entry in &manifest.collections {
        let database = map(&entry.database);
        let live = digest(
            db,
            &database,
            &entry.collection,
            &manifest.tenant_field,
            &manifest.tenant,
            batch_size,
        )
        .await?;
        out.push(Outcome {
            entry,
            database,
            live,
        });
    }
    Ok(out)
}
