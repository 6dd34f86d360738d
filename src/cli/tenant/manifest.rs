//! `manifest.json`: what an export holds and the checksums it must match.
//!
//! The manifest is written last (through a temporary file and a rename), so a directory without
//! one is an export that did not finish. Import trusts nothing in it blindly: file names must
//! have the exact shape export writes (no path can leave the directory), the tenant must be a
//! valid slug, and every document is checked against it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};

/// The `format` value.
pub const FORMAT: &str = "tenantgate-tenant-export";
/// The `version` this build writes and reads.
pub const VERSION: u32 = 1;
/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";
/// The checksum list, in `sha256sum` format.
pub const SUMS: &str = "SHA256SUMS";

/// The whole manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`].
    pub version: u32,
    /// Unique per export; import checkpoints are keyed by it.
    pub export_id: String,
    /// The tenant's slug: every document's tenant field holds exactly this.
    pub tenant: String,
    /// The field carrying the tenant (`policy.tenant_field` of the source).
    pub tenant_field: String,
    /// The soft-delete field (`policy.soft_delete_field` of the source).
    pub soft_delete_field: String,
    /// When the export started, RFC 3339 UTC.
    pub exported_at: String,
    /// The tenantgate version that wrote it.
    pub tenantgate_version: String,
    /// The source upstream's first host (never credentials).
    pub source: String,
    /// The tenant's registry record (canonical Extended JSON), when the source had one.
    pub registry: Option<serde_json::Value>,
    /// The exported collections, in file order.
    pub collections: Vec<CollectionEntry>,
    /// Collections seen but not exported, and why.
    pub skipped: Vec<Skipped>,
}

/// One exported collection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CollectionEntry {
    /// Source database.
    pub database: String,
    /// Collection name.
    pub collection: String,
    /// Data file, relative to the export directory: `collections/NNNN.jsonl`.
    pub file: String,
    /// Documents in the file.
    pub documents: u64,
    /// Of which soft-deleted.
    pub soft_deleted: u64,
    /// Their total BSON size.
    pub bson_bytes: u64,
    /// SHA-256 of the file.
    pub file_sha256: String,
    /// Content digest: SHA-256 of the documents' BSON in `_id` order.
    pub content_sha256: String,
    /// The collection's creation options (canonical Extended JSON), re-used when import has to
    /// create it.
    pub options: serde_json::Value,
    /// Its secondary index specifications (canonical Extended JSON), without `_id_`.
    pub indexes: Vec<serde_json::Value>,
}

/// A collection export passed over.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Skipped {
    /// Database.
    pub database: String,
    /// Collection.
    pub collection: String,
    /// Why (not tenant-scoped, a view, a system collection).
    pub reason: String,
}

/// The data file name of the `index`-th collection.
pub fn data_file(index: usize) -> String {
    format!("collections/{index:04}.jsonl")
}

fn is_data_file(name: &str) -> bool {
    name.strip_prefix("collections/")
        .and_then(|n| n.strip_suffix(".jsonl"))
        .is_some_and(|n| n.len() >= 4 && n.bytes().all(|b| b.is_ascii_digit()))
}

fn is_hex_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Manifest {
    /// Reads and checks `dir/manifest.json`.
    pub fn read(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {} (an export directory without a manifest did not finish)",
                path.display()
            )
        })?;
        let manifest: Manifest = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a tenantgate export manifest", path.display()))?;
        manifest.check()?;
        Ok(manifest)
    }

    fn check(&self) -> Result<()> {
        ensure!(
            self.format == FORMAT,
            "manifest format is {:?}, expected {FORMAT:?}",
            self.format
        );
        ensure!(
            self.version == VERSION,
            "manifest version {} is not supported by this build (reads {VERSION})",
            self.version
        );
        ensure!(
            tenantgate_proxy::registry::is_slug(&self.tenant),
            "manifest tenant {:?} is not a valid tenant slug",
            self.tenant
        );
        ensure!(
            !self.export_id.is_empty()
                && self.export_id.len() <= 64
                && self.export_id.bytes().all(|b| b.is_ascii_alphanumeric()),
            "manifest exportId is malformed"
        );
        let mut files = std::collections::HashSet::new();
        let mut namespaces = std::collections::HashSet::new();
        for c in &self.collections {
            if !is_data_file(&c.file) {
                bail!(
                    "manifest names data file {:?}, which export never writes",
                    c.file
                );
            }
            if !files.insert(c.file.as_str()) {
                bail!("manifest names data file {} twice", c.file);
            }
            if !namespaces.insert((c.database.as_str(), c.collection.as_str())) {
                bail!("manifest lists {}.{} twice", c.database, c.collection);
            }
            ensure!(
                is_hex_sha256(&c.file_sha256) && is_hex_sha256(&c.content_sha256),
                "manifest checksums of {} are malformed",
                c.file
            );
            // Export writes only real collections. A view definition smuggled into the options
            // would make import create a view whose pipeline (`$unionWith`, `$lookup`, `$set`)
            // could hand other tenants' documents to this tenant under the tenant's name.
            ensure!(
                c.options.is_object()
                    && ["viewOn", "pipeline"]
                        .iter()
                        .all(|k| c.options.get(k).is_none()),
                "manifest options of {} are not plain collection options (a view definition, or not a document)",
                c.file
            );
            ensure!(
                c.soft_deleted <= c.documents,
                "manifest counts of {} are inconsistent",
                c.file
            );
        }
        Ok(())
    }

    /// Writes `dir/manifest.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        let path = dir.join(MANIFEST);
        let tmp = dir.join(format!("{MANIFEST}.tmp"));
        let mut text = serde_json::to_string_pretty(self).context("encoding the manifest")?;
        text.push('\n');
        write_synced(&tmp, text.as_bytes())?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}

/// Writes a file and syncs it to disk.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(options: serde_json::Value) -> Manifest {
        Manifest {
            format: FORMAT.into(),
            version: VERSION,
            export_id: "abc123".into(),
            tenant: "bank1".into(),
            tenant_field: "tenantId".into(),
            soft_delete_field: "deletedAt".into(),
            exported_at: "2026-11-27T00:00:00Z".into(),
            tenantgate_version: "0.1.0".into(),
            source: "127.0.0.1:27017".into(),
            registry: None,
            collections: vec![CollectionEntry {
                database: "app".into(),
                collection: "payments".into(),
                file: data_file(0),
                documents: 1,
                soft_deleted: 0,
                bson_bytes: 10,
                file_sha256: "0".repeat(64),
                content_sha256: "0".repeat(64),
                options,
                indexes: Vec::new(),
            }],
            skipped: Vec::new(),
        }
    }

    #[test]
    fn collection_options_may_not_define_a_view() {
        assert!(manifest(serde_json::json!({})).check().is_ok());
        assert!(
            manifest(serde_json::json!({ "validator": { "amount": { "$type": "long" } } }))
                .check()
                .is_ok()
        );
        for bad in [
            serde_json::json!({ "viewOn": "customers" }),
            serde_json::json!({ "pipeline": [ { "$unionWith": "other" } ] }),
            serde_json::json!([]),
        ] {
            let err = manifest(bad.clone()).check().expect_err("refused");
            assert!(
                err.to_string().contains("not plain collection options"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn only_the_files_export_writes_are_accepted() {
        assert!(is_data_file(&data_file(0)));
        assert!(is_data_file(&data_file(12345)));
        for bad in [
            "collections/../../etc/passwd.jsonl",
            "/etc/passwd",
            "collections/01.jsonl",
            "collections/000a.jsonl",
            "other/0001.jsonl",
            "collections/0001.json",
        ] {
            assert!(!is_data_file(bad), "{bad}");
        }
    }
}
