//! `tenantgate tenant export`: one tenant's documents out of every tenant-scoped collection.
//!
//! Which collections are tenant-scoped is the policy's call (`[policy] databases` and the
//! collection modes), the same call the proxy makes, so the export holds exactly what the
//! tenant can reach plus what it cannot: its soft-deleted documents. Each collection is read in
//! `_id` order straight from the upstream and written as canonical Extended JSON, one document
//! per line, which keeps every BSON type (Int32 vs Int64, Decimal128, dates, binary) exact.
//!
//! The export is not a point-in-time snapshot: writes that land while it runs may or may not
//! be in it. Stop the tenant's writes first (deactivate it) for a final copy; see
//! docs/migrations.md.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bson::{Bson, Document, doc};
use tenantgate_policy::{CollectionMode, PolicyConfig};

use super::db::{self, Db};
use super::digest::{ContentDigest, FileDigest};
use super::manifest::{self, CollectionEntry, Manifest, Skipped};

/// What to export.
#[derive(Debug)]
pub struct Plan<'a> {
    /// The tenant's slug.
    pub tenant: &'a str,
    /// The export directory (created; must be empty).
    pub out: &'a Path,
    /// Databases to read (all of `policy.databases` when empty).
    pub databases: &'a [String],
    /// Documents per `find`/`getMore` batch.
    pub batch_size: i32,
    /// The source's policy.
    pub policy: &'a PolicyConfig,
    /// The source URI (for the manifest's `source`, credentials removed).
    pub source_uri: &'a str,
}

/// Writes the export and returns its manifest.
pub async fn export(db: &Db, plan: &Plan<'_>) -> Result<Manifest> {
    let policy = plan.policy;
    if !tenantgate_proxy::registry::is_slug(plan.tenant) {
        bail!("--tenant {:?} is not a valid tenant slug", plan.tenant);
    }
    prepare_dir(plan.out)?;
    let databases: Vec<String> = if plan.databases.is_empty() {
        policy.databases.clone()
    } else {
        for d in plan.databases {
            if !policy.tenant_database(d) {
                bail!("--database {d}: not in [policy] databases, so tenants have no data there");
            }
        }
        plan.databases.to_vec()
    };
    if databases.is_empty() {
        bail!("[policy] databases is empty: tenants have no data to export");
    }
    let exported_at = bson::DateTime::now()
        .try_to_rfc3339_string()
        .context("formatting the time")?;
    let mut manifest = Manifest {
        format: manifest::FORMAT.into(),
        version: manifest::VERSION,
        export_id: export_id(plan.tenant, &exported_at),
        tenant: plan.tenant.to_owned(),
        tenant_field: policy.tenant_field.clone(),
        soft_delete_field: policy.soft_delete_field.clone(),
        exported_at,
        tenantgate_version: env!("CARGO_PKG_VERSION").into(),
        source: db::redacted(plan.source_uri),
        registry: registry_record(db, policy, plan.tenant).await?,
        collections: Vec::new(),
        skipped: Vec::new(),
    };
    for database in &databases {
        let mut listed = db
            .collect(database, doc! { "listCollections": 1, "nameOnly": false })
            .await?;
        listed.sort_by(|a, b| a.get_str("name").ok().cmp(&b.get_str("name").ok()));
        for info in listed {
            let name = info.get_str("name").unwrap_or_default().to_owned();
            let kind = info.get_str("type").unwrap_or("collection");
            let skip = |reason: &str| Skipped {
                database: database.clone(),
                collection: name.clone(),
                reason: reason.into(),
            };
            if name.starts_with("system.") {
                manifest.skipped.push(skip("system collection"));
                continue;
            }
            if kind != "collection" {
                manifest
                    .skipped
                    .push(skip(&format!("a {kind}, not a collection")));
                continue;
            }
            match policy.collection(&name).mode {
                CollectionMode::Tenant => {}
                mode => {
                    manifest.skipped.push(skip(&format!(
                        "policy mode {}: not tenant-scoped",
                        format!("{mode:?}").to_lowercase()
                    )));
                    continue;
                }
            }
            let file = manifest::data_file(manifest.collections.len());
            let options = info.get_document("options").cloned().unwrap_or_default();
            let entry = export_collection(db, plan, database, &name, &file, options).await?;
            eprintln!(
                "exported {}.{}: {} documents ({} soft-deleted) -> {}",
                entry.database, entry.collection, entry.documents, entry.soft_deleted, entry.file
            );
            manifest.collections.push(entry);
        }
    }
    manifest.write(plan.out)?;
    write_sums(plan.out, &manifest)?;
    Ok(manifest)
}

/// Creates `dir` (and `dir/collections`), refusing one that already holds anything: an export
/// never mixes with another.
fn prepare_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut entries =
        std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    if entries.next().is_some() {
        bail!(
            "{} is not empty: export into a new directory (an export never overwrites another)",
            dir.display()
        );
    }
    let data = dir.join("collections");
    std::fs::create_dir(&data).with_context(|| format!("creating {}", data.display()))
}

async fn export_collection(
    db: &Db,
    plan: &Plan<'_>,
    database: &str,
    collection: &str,
    file: &str,
    options: Document,
) -> Result<CollectionEntry> {
    let policy = plan.policy;
    let path: PathBuf = plan.out.join(file);
    let handle =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, handle);
    let mut file_digest = FileDigest::default();
    let mut content = ContentDigest::default();
    let mut soft_deleted = 0u64;
    let mut failure: Option<anyhow::Error> = None;
    let find = doc! {
        "find": collection,
        "filter": { policy.tenant_field.as_str(): plan.tenant },
        "sort": { "_id": 1 },
        "batchSize": plan.batch_size,
    };
    db.for_each(database, find, plan.batch_size, |d| {
        if failure.is_some() {
            return Ok(());
        }
        // The filter also matches an array holding the slug; such a document is not
        // unambiguously this tenant's, and import would refuse it. Say so now.
        if d.get(&policy.tenant_field) != Some(&Bson::String(plan.tenant.to_owned())) {
            failure = Some(anyhow::anyhow!(
                "{database}.{collection} document _id {} has {} = {} (not exactly {:?}); \
                 fix it before exporting",
                d.get("_id").map_or("?".into(), |v| v.to_string()),
                policy.tenant_field,
                d.get(&policy.tenant_field)
                    .map_or("?".into(), |v| v.to_string()),
                plan.tenant
            ));
            return Ok(());
        }
        if !matches!(d.get(&policy.soft_delete_field), None | Some(Bson::Null)) {
            soft_deleted += 1;
        }
        content.add(&d.to_vec().context("re-encoding a document")?);
        let mut line = serde_json::to_string(&Bson::Document(d).into_canonical_extjson())
            .context("encoding Extended JSON")?;
        line.push('\n');
        file_digest.update(line.as_bytes());
        out.write_all(line.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    })
    .await?;
    if let Some(e) = failure {
        return Err(e);
    }
    let handle = out
        .into_inner()
        .map_err(|e| anyhow::anyhow!("writing {}: {}", path.display(), e.error()))?;
    handle
        .sync_all()
        .with_context(|| format!("syncing {}", path.display()))?;
    let mut indexes = Vec::new();
    for mut spec in db
        .collect(database, doc! { "listIndexes": collection })
        .await?
    {
        if spec.get_str("name").ok() == Some("_id_") {
            continue;
        }
        spec.remove("v");
        spec.remove("ns");
        indexes.push(Bson::Document(spec).into_canonical_extjson());
    }
    let content = content.finish();
    Ok(CollectionEntry {
        database: database.to_owned(),
        collection: collection.to_owned(),
        file: file.to_owned(),
        documents: content.documents,
        soft_deleted,
        bson_bytes: content.bytes,
        file_sha256: file_digest.finish(),
        content_sha256: content.sha256,
        options: Bson::Document(options).into_canonical_extjson(),
        indexes,
    })
}

/// The tenant's registry document, if the source registry has one.
async fn registry_record(
    db: &Db,
    policy: &PolicyConfig,
    tenant: &str,
) -> Result<Option<serde_json::Value>> {
    let found = db
        .collect(
            &policy.internal_database,
            doc! {
                "find": tenantgate_proxy::registry::COLLECTION,
                "filter": { "slug": tenant },
                "limit": 1,
                "singleBatch": true,
            },
        )
        .await?;
    Ok(found
        .into_iter()
        .next()
        .map(|d| Bson::Document(d).into_canonical_extjson()))
}

/// `SHA256SUMS` in `sha256sum` format, so `sha256sum -c SHA256SUMS` checks the directory.
fn write_sums(dir: &Path, manifest: &Manifest) -> Result<()> {
    let manifest_bytes =
        std::fs::read(dir.join(manifest::MANIFEST)).context("re-reading the manifest")?;
    let mut digest = FileDigest::default();
    digest.update(&manifest_bytes);
    let mut text = format!("{}  {}\n", digest.finish(), manifest::MANIFEST);
    for c in &manifest.collections {
        text.push_str(&format!("{}  {}\n", c.file_sha256, c.file));
    }
    manifest::write_synced(&dir.join(manifest::SUMS), text.as_bytes())
}

/// A unique id for this export: a digest of the tenant, the time and this process.
fn export_id(tenant: &str, at: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut d = FileDigest::default();
    d.update(format!("{tenant}\0{at}\0{nanos}\0{}", std::process::id()).as_bytes());
    let mut id = d.finish();
    id.truncate(24);
    id
}
