//! `tenantgate tenant import`: load an export into another upstream, safely and repeatably.
//!
//! Three guarantees, in this order:
//! 1. **Nothing foreign gets in.** Before a single write, every file is checked against its
//!    SHA-256, every document's tenant field must be exactly the manifest's tenant, and the
//!    documents re-encoded from the file must hash to the export's content digest (so the
//!    Extended JSON round trip lost nothing). One bad document stops the whole import.
//! 2. **Running it again is harmless.** Inserts are unordered; a duplicate `_id` whose stored
//!    document is byte-identical counts as already imported. A different document under that
//!    `_id` is a conflict: never overwritten if it is another tenant's, replaced only with
//!    `--replace` if it is this tenant's older version.
//! 3. **It resumes.** Progress per collection is checkpointed in the target's internal
//!    database (`tenant_imports`), so an interrupted import continues where it stopped.
//!
//! It ends by comparing the target's content digests with the manifest's.

use std::collections::HashMap;
use std::io::{BufRead, Read};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use bson::{Bson, Document, RawDocumentBuf, doc};
use tenantgate_policy::{CollectionMode, PolicyConfig};

use super::db::{self, Db};
use super::digest::{ContentDigest, FileDigest};
use super::manifest::{CollectionEntry, Manifest};
use super::verify;

/// The collection of import checkpoints, in the target's internal database.
pub const CHECKPOINTS: &str = "tenant_imports";

/// Longest data-file line accepted (one document as canonical Extended JSON).
const MAX_LINE_BYTES: u64 = 128 << 20;

/// Largest insert batch in bytes (MongoDB accepts 48 MB messages; smaller keeps memory low).
const BATCH_BYTES: usize = 8 << 20;

/// What to import.
#[derive(Debug)]
pub struct Plan<'a> {
    /// The export directory.
    pub dir: &'a Path,
    /// Exported database name → target database name.
    pub map: &'a HashMap<String, String>,
    /// Documents per insert batch.
    pub batch_size: usize,
    /// Replace this tenant's documents that differ from the export's version.
    pub replace: bool,
    /// Insert the tenant's registry record when the target has none.
    pub register: bool,
    /// The target's policy.
    pub policy: &'a PolicyConfig,
}

/// What happened, for the summary.
#[derive(Debug, Default)]
pub struct Totals {
    /// Documents inserted.
    pub inserted: u64,
    /// Documents already present, byte for byte.
    pub present: u64,
    /// Documents replaced (`--replace`).
    pub replaced: u64,
    /// Documents skipped because a checkpoint said they were done.
    pub resumed: u64,
}

impl Plan<'_> {
    fn target_db(&self, exported: &str) -> String {
        self.map
            .get(exported)
            .cloned()
            .unwrap_or_else(|| exported.to_owned())
    }
}

/// Checks the export, imports it, verifies the target.
pub async fn import(db: &Db, plan: &Plan<'_>) -> Result<(Manifest, Totals)> {
    let manifest = Manifest::read(plan.dir)?;
    check_target_policy(&manifest, plan)?;
    for entry in &manifest.collections {
        check_file(plan.dir, &manifest, entry)?;
    }
    eprintln!(
        "checked {} files: every document belongs to {:?}, every checksum matches",
        manifest.collections.len(),
        manifest.tenant
    );
    registry(db, &manifest, plan).await?;
    let mut totals = Totals::default();
    for entry in &manifest.collections {
        import_collection(db, &manifest, entry, plan, &mut totals).await?;
    }
    let outcomes = verify::compare(db, &manifest, |d| plan.target_db(d), 1000).await?;
    let mut mismatched = Vec::new();
    for o in &outcomes {
        eprintln!("{}", o.describe());
        if !o.matches() {
            mismatched.push(format!("{}.{}", o.database, o.entry.collection));
        }
    }
    if !mismatched.is_empty() {
        bail!(
            "the target's documents for {} differ from the export in {} (it held other \
             documents of this tenant before the import, or they changed meanwhile)",
            manifest.tenant,
            mismatched.join(", ")
        );
    }
    let now = bson::DateTime::now();
    db.run(
        &plan.policy.internal_database,
        doc! {
            "update": CHECKPOINTS,
            "updates": [ { "q": { "exportId": &manifest.export_id }, "u": { "$set": { "verifiedAt": now } }, "multi": true } ],
        },
    )
    .await?;
    Ok((manifest, totals))
}

/// The target must treat the data the way the source did.
fn check_target_policy(manifest: &Manifest, plan: &Plan<'_>) -> Result<()> {
    let policy = plan.policy;
    if policy.tenant_field != manifest.tenant_field {
        bail!(
            "the export's tenant field is {:?} but the target's policy.tenant_field is {:?}",
            manifest.tenant_field,
            policy.tenant_field
        );
    }
    for from in plan.map.keys() {
        if !manifest.collections.iter().any(|c| &c.database == from) {
            bail!("--map-database {from}=…: the export holds no database {from}");
        }
    }
    for entry in &manifest.collections {
        let target = plan.target_db(&entry.database);
        if !policy.tenant_database(&target) {
            bail!(
                "{target} is not in the target's [policy] databases: the tenant could not reach \
                 {}.{} there (map it with --map-database {}=DB)",
                target,
                entry.collection,
                entry.database
            );
        }
        if policy.collection(&entry.collection).mode != CollectionMode::Tenant {
            bail!(
                "the target's policy does not treat {} as tenant-scoped",
                entry.collection
            );
        }
    }
    Ok(())
}

/// Reads a data file document by document, checking each one's tenant, and hashing the file.
struct DocReader<'a> {
    reader: std::io::BufReader<std::fs::File>,
    digest: FileDigest,
    line: String,
    number: u64,
    manifest: &'a Manifest,
    entry: &'a CollectionEntry,
}

impl<'a> DocReader<'a> {
    fn open(dir: &Path, manifest: &'a Manifest, entry: &'a CollectionEntry) -> Result<Self> {
        let path = dir.join(&entry.file);
        let file =
            std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        Ok(DocReader {
            reader: std::io::BufReader::with_capacity(1 << 20, file),
            digest: FileDigest::default(),
            line: String::new(),
            number: 0,
            manifest,
            entry,
        })
    }

    /// The next document: its line number, BSON bytes and value.
    fn next_doc(&mut self) -> Result<Option<(u64, Vec<u8>, Document)>> {
        let (manifest, entry) = (self.manifest, self.entry);
        self.line.clear();
        // One document is at most 16 MiB of BSON; its Extended JSON a few times that. A longer
        // line is not a document export wrote, and must not be read into memory whole.
        let n = (&mut self.reader)
            .take(MAX_LINE_BYTES + 1)
            .read_line(&mut self.line)
            .with_context(|| format!("reading {}", entry.file))?;
        if n == 0 {
            return Ok(None);
        }
        if n as u64 > MAX_LINE_BYTES {
            bail!(
                "{} line {}: longer than {} MiB, not a document export wrote",
                entry.file,
                self.number + 1,
                MAX_LINE_BYTES >> 20
            );
        }
        self.number += 1;
        let number = self.number;
        self.digest.update(self.line.as_bytes());
        let at = || {
            format!(
                "{} line {number} ({}.{})",
                entry.file, entry.database, entry.collection
            )
        };
        let value: serde_json::Value = serde_json::from_str(self.line.trim_end_matches('\n'))
            .with_context(|| format!("{}: not JSON", at()))?;
        let Bson::Document(doc) =
            Bson::try_from(value).with_context(|| format!("{}: not Extended JSON", at()))?
        else {
            bail!("{}: not a document", at());
        };
        match doc.get(&manifest.tenant_field) {
            Some(Bson::String(t)) if *t == manifest.tenant => {}
            other => bail!(
                "{}: {} is {}, but the export is of tenant {:?}; refused",
                at(),
                manifest.tenant_field,
                other.map_or("missing".into(), |v| v.to_string()),
                manifest.tenant
            ),
        }
        if !doc.contains_key("_id") {
            bail!("{}: the document has no _id", at());
        }
        let bytes = doc
            .to_vec()
            .with_context(|| format!("{}: does not encode", at()))?;
        Ok(Some((number, bytes, doc)))
    }

    /// The SHA-256 of everything read.
    fn finish(self) -> String {
        self.digest.finish()
    }
}

/// The pre-flight check of one file: checksums, counts, tenant of every document.
fn check_file(dir: &Path, manifest: &Manifest, entry: &CollectionEntry) -> Result<()> {
    let mut content = ContentDigest::default();
    let mut reader = DocReader::open(dir, manifest, entry)?;
    while let Some((_, bytes, _)) = reader
        .next_doc()
        .map_err(|e| e.context("nothing was imported"))?
    {
        content.add(&bytes);
    }
    let file_sha = reader.finish();
    if file_sha != entry.file_sha256 {
        bail!(
            "{}: SHA-256 is {file_sha}, the manifest says {}; the file was changed or damaged",
            entry.file,
            entry.file_sha256
        );
    }
    let content = content.finish();
    if content.documents != entry.documents || content.sha256 != entry.content_sha256 {
        bail!(
            "{}: {} documents with content digest {}, the manifest says {} with {}",
            entry.file,
            content.documents,
            content.sha256,
            entry.documents,
            entry.content_sha256
        );
    }
    Ok(())
}

fn checkpoint_id(manifest: &Manifest, database: &str, collection: &str) -> String {
    format!("{}/{database}/{collection}", manifest.export_id)
}

async fn import_collection(
    db: &Db,
    manifest: &Manifest,
    entry: &CollectionEntry,
    plan: &Plan<'_>,
    totals: &mut Totals,
) -> Result<()> {
    let database = plan.target_db(&entry.database);
    let collection = entry.collection.as_str();
    let internal = plan.policy.internal_database.as_str();
    let checkpoint = checkpoint_id(manifest, &database, collection);
    let done = db
        .collect(
            internal,
            doc! { "find": CHECKPOINTS, "filter": { "_id": &checkpoint }, "limit": 1, "singleBatch": true },
        )
        .await?
        .into_iter()
        .next()
        .and_then(|d| d.get_i64("linesDone").ok())
        .unwrap_or(0)
        .max(0) as u64;
    prepare_collection(db, &database, entry).await?;

    // Read the file again and insert batch by batch. It was checked, but a file can change
    // between two reads, so the tenant check runs again on every line.
    let mut reader = DocReader::open(plan.dir, manifest, entry)?;
    let mut batch: Vec<(Vec<u8>, Document)> = Vec::new();
    let mut batch_bytes = 0usize;
    let mut skipped = 0u64;
    loop {
        let next = reader.next_doc()?;
        let at_end = next.is_none();
        if let Some((number, bytes, doc)) = next {
            if number <= done {
                skipped += 1;
                continue;
            }
            batch_bytes += bytes.len();
            batch.push((bytes, doc));
        }
        let full = batch.len() >= plan.batch_size || batch_bytes >= BATCH_BYTES;
        if !batch.is_empty() && (full || at_end) {
            let through_line = reader.number;
            let docs = std::mem::take(&mut batch);
            batch_bytes = 0;
            insert_batch(
                db,
                manifest,
                &database,
                collection,
                docs,
                plan.replace,
                totals,
            )
            .await?;
            save_checkpoint(
                db,
                internal,
                &checkpoint,
                manifest,
                &database,
                collection,
                through_line,
            )
            .await?;
        }
        if at_end {
            break;
        }
    }
    if reader.finish() != entry.file_sha256 {
        bail!("{} changed while it was being imported", entry.file);
    }
    totals.resumed += skipped;
    eprintln!(
        "imported {database}.{collection}: {} documents{}",
        entry.documents,
        if skipped > 0 {
            format!(" ({skipped} done by an earlier run)")
        } else {
            String::new()
        }
    );
    Ok(())
}

async fn save_checkpoint(
    db: &Db,
    internal: &str,
    checkpoint: &str,
    manifest: &Manifest,
    database: &str,
    collection: &str,
    through_line: u64,
) -> Result<()> {
    let now = bson::DateTime::now();
    db.run(
        internal,
        doc! {
            "update": CHECKPOINTS,
            "updates": [ {
                "q": { "_id": checkpoint },
                "u": {
                    "$set": { "linesDone": i64::try_from(through_line)?, "updatedAt": now },
                    "$setOnInsert": {
                        "exportId": &manifest.export_id, "tenant": &manifest.tenant,
                        "database": database, "collection": collection, "startedAt": now,
                    },
                },
                "upsert": true,
            } ],
        },
    )
    .await?;
    Ok(())
}

/// Creates the collection with the exported options when the target lacks it, and its
/// indexes. An index that exists with other options is reported and left alone.
async fn prepare_collection(db: &Db, database: &str, entry: &CollectionEntry) -> Result<()> {
    let exists = !db
        .collect(
            database,
            doc! { "listCollections": 1, "filter": { "name": &entry.collection }, "nameOnly": true },
        )
        .await?
        .is_empty();
    if !exists {
        let options = match Bson::try_from(entry.options.clone()) {
            Ok(Bson::Document(d)) => d,
            _ => bail!("manifest options of {} are not a document", entry.file),
        };
        let mut create = doc! { "create": &entry.collection };
        create.extend(options);
        if let Err(e) = db.run(database, create).await
            && db::error_code(&e) != Some(db::NAMESPACE_EXISTS)
        {
            return Err(e);
        }
    }
    if entry.indexes.is_empty() {
        return Ok(());
    }
    let mut specs = Vec::new();
    for spec in &entry.indexes {
        match Bson::try_from(spec.clone()) {
            Ok(Bson::Document(d)) => specs.push(Bson::Document(d)),
            _ => bail!("manifest index of {} is not a document", entry.file),
        }
    }
    if let Err(e) = db
        .run(
            database,
            doc! { "createIndexes": &entry.collection, "indexes": specs },
        )
        .await
    {
        // IndexOptionsConflict / IndexKeySpecsConflict: the target already has its own
        // version of an index; the data is still imported.
        if matches!(db::error_code(&e), Some(85 | 86)) {
            eprintln!("warning: {database}.{}: {e:#}", entry.collection);
        } else {
            return Err(e);
        }
    }
    Ok(())
}

async fn insert_batch(
    db: &Db,
    manifest: &Manifest,
    database: &str,
    collection: &str,
    batch: Vec<(Vec<u8>, Document)>,
    replace: bool,
    totals: &mut Totals,
) -> Result<()> {
    let raw = batch
        .iter()
        .map(|(_, d)| RawDocumentBuf::try_from(d).context("encoding a document"))
        .collect::<Result<Vec<_>>>()?;
    let reply = db.insert(database, collection, raw).await?;
    let inserted = reply.get_i32("n").unwrap_or(0).max(0) as u64;
    totals.inserted += inserted;
    let mut duplicates = Vec::new();
    if let Ok(errors) = reply.get_array("writeErrors") {
        for e in errors.iter().filter_map(Bson::as_document) {
            let code = e.get_i32("code").unwrap_or(0);
            let index = e.get_i32("index").unwrap_or(-1);
            let item = usize::try_from(index)
                .ok()
                .and_then(|i| batch.get(i))
                .ok_or_else(|| {
                    anyhow!("insert into {database}.{collection}: a write error names no document")
                })?;
            if code != db::DUPLICATE_KEY {
                bail!(
                    "insert into {database}.{collection}: document _id {} refused ({code}): {}",
                    item.1.get("_id").map_or("?".into(), |v| v.to_string()),
                    e.get_str("errmsg").unwrap_or("")
                );
            }
            duplicates.push((item, e.get_str("errmsg").unwrap_or("").to_owned()));
        }
    }
    if let Some(Bson::Document(wce)) = reply.get("writeConcernError") {
        bail!(
            "insert into {database}.{collection}: write concern error: {}",
            wce.get_str("errmsg").unwrap_or("")
        );
    }
    if duplicates.is_empty() {
        return Ok(());
    }
    // Look the duplicates up by _id (whoever owns them) and compare bytes.
    let ids: Vec<Bson> = duplicates
        .iter()
        .filter_map(|((_, d), _)| d.get("_id").cloned())
        .collect();
    let mut existing: HashMap<Vec<u8>, Document> = HashMap::new();
    for d in db
        .collect(
            database,
            doc! { "find": collection, "filter": { "_id": { "$in": ids } }, "batchSize": 1000 },
        )
        .await?
    {
        if let Some(id) = d.get("_id") {
            existing.insert(id_key(id)?, d);
        }
    }
    let mut conflicts = Vec::new();
    for ((bytes, doc), errmsg) in duplicates {
        let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
        match existing.get(&id_key(&id)?) {
            Some(current) if current.to_vec()? == *bytes => totals.present += 1,
            Some(current)
                if replace
                    && current.get(&manifest.tenant_field)
                        == Some(&Bson::String(manifest.tenant.clone())) =>
            {
                let reply = db
                    .run(
                        database,
                        doc! {
                            "update": collection,
                            "updates": [ {
                                "q": { "_id": id.clone(), manifest.tenant_field.as_str(): &manifest.tenant },
                                "u": doc.clone(),
                            } ],
                        },
                    )
                    .await?;
                if reply.get_i32("n").unwrap_or(0) != 1 || reply.contains_key("writeErrors") {
                    bail!("replacing _id {id} in {database}.{collection} failed: {reply}");
                }
                totals.replaced += 1;
            }
            Some(current)
                if current.get(&manifest.tenant_field)
                    == Some(&Bson::String(manifest.tenant.clone())) =>
            {
                conflicts.push(format!(
                    "_id {id}: the target holds a different version of this tenant's document \
                     (rerun with --replace to take the export's)"
                ));
            }
            Some(_) => conflicts.push(format!(
                "_id {id}: the target holds another tenant's document under this _id; it is \
                 never overwritten"
            )),
            None => conflicts.push(format!(
                "_id {id}: duplicates a unique index entry: {errmsg}"
            )),
        }
    }
    if !conflicts.is_empty() {
        let shown: Vec<_> = conflicts.iter().take(5).cloned().collect();
        bail!(
            "{} conflicting documents in {database}.{collection}; first: {}",
            conflicts.len(),
            shown.join("; ")
        );
    }
    Ok(())
}

/// A hashable key for an `_id` value: its BSON encoding inside a one-field document.
fn id_key(id: &Bson) -> Result<Vec<u8>> {
    Ok(doc! { "_id": id.clone() }.to_vec()?)
}

/// Inserts the tenant's registry record when asked to and the target has none.
async fn registry(db: &Db, manifest: &Manifest, plan: &Plan<'_>) -> Result<()> {
    let internal = plan.policy.internal_database.as_str();
    let registry = tenantgate_proxy::registry::COLLECTION;
    let present = !db
        .collect(
            internal,
            doc! { "find": registry, "filter": { "slug": &manifest.tenant }, "limit": 1, "singleBatch": true },
        )
        .await?
        .is_empty();
    if present {
        return Ok(());
    }
    if !plan.register {
        eprintln!(
            "note: {:?} is not in the target's tenant registry; register it (POST \
             /v1/admin/tenants, [[tenants]] in the config, or --register) before routing traffic",
            manifest.tenant
        );
        return Ok(());
    }
    let Some(record) = &manifest.registry else {
        bail!(
            "--register: the export holds no registry record for {:?}",
            manifest.tenant
        );
    };
    let record = match Bson::try_from(record.clone()) {
        Ok(Bson::Document(d)) if d.get_str("slug").ok() == Some(manifest.tenant.as_str()) => d,
        _ => bail!(
            "the manifest's registry record is not {:?}'s",
            manifest.tenant
        ),
    };
    let reply = db
        .run(internal, doc! { "insert": registry, "documents": [record] })
        .await?;
    if reply.contains_key("writeErrors") {
        bail!(
            "registering {:?} at the target failed (a slug or domain already belongs to another \
             tenant there?): {reply}",
            manifest.tenant
        );
    }
    eprintln!(
        "registered {:?} in the target's tenant registry (running instances see it once their \
         negative cache entry expires)",
        manifest.tenant
    );
    Ok(())
}
