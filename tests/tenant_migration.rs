//! `tenantgate tenant export | import | verify` against the real upstream: one tenant moves
//! from one database to another, nothing of another tenant travels with it, checksums agree
//! on both sides, a second run changes nothing, an interrupted run resumes, and a tampered
//! export is refused before anything is written.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use bson::{Bson, Document, RawDocumentBuf, doc, spec::BinarySubtype};
use common::{fresh_db_name, mongo_client, mongodb_uri};
use futures::TryStreamExt;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// One side of the move: its config file, tenant database and internal database.
struct Side {
    config: PathBuf,
    db: String,
    internal: String,
}

fn side(dir: &Path, name: &str) -> Side {
    let db = fresh_db_name(&format!("mig_{name}"));
    let internal = fresh_db_name(&format!("mig_{name}_int"));
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            r#"
[upstream]
uri = "{uri}"
timeout_ms = 20000

[proxy]
listen = "127.0.0.1:0"

[api]
listen = "127.0.0.1:0"

[policy]
databases = ["{db}"]
internal_database = "{internal}"

[policy.collections.currencies]
mode = "global"
"#,
            uri = mongodb_uri(),
        ),
    )
    .expect("config written");
    Side {
        config,
        db,
        internal,
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(fresh_db_name(name));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn tenantgate(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_tenantgate"))
        .args(args)
        .env_remove("TENANTGATE_CONFIG")
        .output()
        .expect("tenantgate runs");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn must(run: Run) -> Run {
    assert!(
        run.ok,
        "tenantgate failed:\nstdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    run
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Documents covering the BSON types a round trip through Extended JSON could lose.
fn payment(i: i32, tenant: &str) -> Document {
    let mut d = doc! {
        "_id": format!("pay_{tenant}_{i:03}"),
        "tenantId": tenant,
        "amount": i64::from(i) * 1_000,
        "smallInt": i,
        "rate": 0.1 + f64::from(i),
        "negativeZero": -0.0f64,
        "currency": "EUR",
        "exact": bson::Decimal128::from_bytes([i as u8; 16]),
        "createdAt": bson::DateTime::from_millis(1_764_000_000_000 + i64::from(i)),
        "blob": Bson::Binary(bson::Binary { subtype: BinarySubtype::Generic, bytes: vec![0, 1, 2, i as u8] }),
        "oid": bson::oid::ObjectId::from_bytes([i as u8; 12]),
        "nested": { "tags": ["a", Bson::Null, { "deep": [1i32, 2i64, 3.5f64] }], "unicode": "Zürich €" },
        "deletedAt": Bson::Null,
    };
    if i % 4 == 0 {
        d.insert("deletedAt", bson::DateTime::from_millis(1_764_100_000_000));
    }
    d
}

/// Every bank1 document of `db.collection` in `_id` order, as the content digest sees them.
async fn digest(client: &mongodb::Client, db: &str, collection: &str) -> (String, u64) {
    let coll = client.database(db).collection::<RawDocumentBuf>(collection);
    let docs: Vec<RawDocumentBuf> = coll
        .find(doc! { "tenantId": "bank1" })
        .sort(doc! { "_id": 1 })
        .await
        .expect("find")
        .try_collect()
        .await
        .expect("cursor");
    let mut h = Sha256::new();
    for d in &docs {
        h.update(d.as_bytes());
    }
    let hex = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    (hex, docs.len() as u64)
}

async fn count(client: &mongodb::Client, db: &str, collection: &str, filter: Document) -> u64 {
    client
        .database(db)
        .collection::<Document>(collection)
        .count_documents(filter)
        .await
        .expect("count")
}

fn manifest(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).expect("manifest"))
        .expect("manifest is JSON")
}

fn entry<'a>(manifest: &'a Value, collection: &str) -> &'a Value {
    manifest["collections"]
        .as_array()
        .expect("collections")
        .iter()
        .find(|c| c["collection"] == collection)
        .unwrap_or_else(|| panic!("{collection} not in the manifest: {manifest:#}"))
}

fn sha256_file(p: &Path) -> String {
    let bytes = std::fs::read(p).expect("file");
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Seeds the source: bank1 and bank2 payments and customers (some soft-deleted), a global
/// collection, secondary indexes and bank1's registry record.
async fn seed(client: &mongodb::Client, src: &Side) {
    let db = client.database(&src.db);
    let mut payments: Vec<Document> = (1..=9).map(|i| payment(i, "bank1")).collect();
    payments.extend((1..=4).map(|i| payment(i, "bank2")));
    db.collection::<Document>("payments")
        .insert_many(payments)
        .await
        .expect("payments seeded");
    db.collection::<Document>("customers")
        .insert_many([
            doc! { "_id": 1i32, "tenantId": "bank1", "email": "a@bank1.test", "deletedAt": Bson::Null },
            doc! { "_id": 2i64, "tenantId": "bank1", "email": "b@bank1.test", "deletedAt": bson::DateTime::from_millis(1) },
            doc! { "_id": bson::oid::ObjectId::from_bytes([7; 12]), "tenantId": "bank1", "email": "c@bank1.test" },
            doc! { "_id": 3i32, "tenantId": "bank2", "email": "a@bank2.test", "deletedAt": Bson::Null },
        ])
        .await
        .expect("customers seeded");
    db.collection::<Document>("currencies")
        .insert_one(doc! { "_id": "EUR", "digits": 2 })
        .await
        .expect("currencies seeded");
    db.run_command(doc! {
        "createIndexes": "payments",
        "indexes": [ { "key": { "tenantId": 1, "createdAt": -1 }, "name": "tenant_created" } ],
    })
    .await
    .expect("payments index");
    db.run_command(doc! {
        "createIndexes": "customers",
        "indexes": [ { "key": { "tenantId": 1, "email": 1 }, "name": "tenant_email", "unique": true } ],
    })
    .await
    .expect("customers index");
    client
        .database(&src.internal)
        .collection::<Document>("tenants")
        .insert_one(doc! {
            "slug": "bank1", "name": "First National Bank", "tier": "professional",
            "domains": ["pay.bank1.example"], "settings": {}, "limits": {}, "isActive": true,
            "createdAt": bson::DateTime::from_millis(1_700_000_000_000),
            "updatedAt": bson::DateTime::from_millis(1_700_000_000_000),
        })
        .await
        .expect("registry record");
}

fn export(src: &Side, out: &Path) -> Run {
    must(tenantgate(&[
        "tenant",
        "export",
        "--tenant",
        "bank1",
        "--out",
        path(out),
        "--config",
        path(&src.config),
        "--batch-size",
        "4",
    ]))
}

fn import(src: &Side, dst: &Side, dir: &Path, extra: &[&str]) -> Run {
    let map = format!("{}={}", src.db, dst.db);
    let mut args = vec![
        "tenant",
        "import",
        "--in",
        path(dir),
        "--config",
        path(&dst.config),
        "--map-database",
        &map,
        "--batch-size",
        "3",
    ];
    args.extend_from_slice(extra);
    tenantgate(&args)
}

#[tokio::test]
async fn a_tenant_moves_between_databases_with_matching_checksums() {
    let client = mongo_client().await;
    let work = scratch("mig_move");
    let (src, dst) = (side(&work, "src"), side(&work, "dst"));
    seed(&client, &src).await;
    let out = work.join("export");

    let run = export(&src, &out);
    assert!(
        run.stdout.contains("12 documents in 2 collections"),
        "{}",
        run.stdout
    );
    let m = manifest(&out);
    assert_eq!(m["tenant"], "bank1");
    assert_eq!(m["tenantField"], "tenantId");
    assert_eq!(m["registry"]["slug"], "bank1");
    let payments = entry(&m, "payments");
    assert_eq!(payments["documents"], 9);
    assert_eq!(
        payments["softDeleted"], 2,
        "soft-deleted documents are exported too"
    );
    assert_eq!(entry(&m, "customers")["documents"], 3);
    assert_eq!(entry(&m, "customers")["softDeleted"], 1);
    let skipped: Vec<&Value> = m["skipped"].as_array().expect("skipped").iter().collect();
    assert!(
        skipped.iter().any(|s| s["collection"] == "currencies"),
        "the global collection is not the tenant's: {skipped:?}"
    );
    assert!(payments["indexes"].to_string().contains("tenant_created"));

    // Nothing of bank2 is in the files, and SHA256SUMS matches every file.
    for c in m["collections"].as_array().expect("collections") {
        let file = out.join(c["file"].as_str().expect("file"));
        let text = std::fs::read_to_string(&file).expect("data file");
        assert!(
            !text.contains("bank2"),
            "bank2 data leaked into {}",
            file.display()
        );
        assert_eq!(sha256_file(&file), c["fileSha256"]);
    }
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).expect("SHA256SUMS");
    for line in sums.lines() {
        let (sum, name) = line.split_once("  ").expect("sha256sum format");
        assert_eq!(sha256_file(&out.join(name)), sum, "{name}");
    }
    assert!(sums.contains("manifest.json"));

    // The source's own digest is the manifest's.
    let (src_payments, _) = digest(&client, &src.db, "payments").await;
    assert_eq!(payments["contentSha256"], src_payments.as_str());

    let run = import(&src, &dst, &out, &["--register"]);
    assert!(run.ok, "import failed: {}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("12 inserted"), "{}", run.stdout);

    for collection in ["payments", "customers"] {
        let (a, na) = digest(&client, &src.db, collection).await;
        let (b, nb) = digest(&client, &dst.db, collection).await;
        assert_eq!((&a, na), (&b, nb), "{collection}: source and target differ");
        assert_eq!(entry(&m, collection)["contentSha256"], a.as_str());
    }
    assert_eq!(
        count(
            &client,
            &dst.db,
            "payments",
            doc! { "tenantId": { "$ne": "bank1" } }
        )
        .await,
        0,
        "only bank1 arrived"
    );
    assert_eq!(
        count(&client, &dst.db, "currencies", doc! {}).await,
        0,
        "global collections stay behind"
    );
    let indexes: Vec<String> = client
        .database(&dst.db)
        .collection::<Document>("customers")
        .list_index_names()
        .await
        .expect("indexes");
    assert!(indexes.contains(&"tenant_email".to_owned()), "{indexes:?}");
    assert_eq!(
        count(
            &client,
            &dst.internal,
            "tenants",
            doc! { "slug": "bank1", "domains": "pay.bank1.example" }
        )
        .await,
        1,
        "--register copied the registry record"
    );

    // `verify` agrees; after a change to the target it does not.
    let map = format!("{}={}", src.db, dst.db);
    let verify = |config: &Path| {
        tenantgate(&[
            "tenant",
            "verify",
            "--in",
            path(&out),
            "--config",
            path(config),
            "--map-database",
            &map,
        ])
    };
    let run = must(verify(&dst.config));
    assert!(
        run.stdout.contains("all 2 collections match"),
        "{}",
        run.stdout
    );
    client
        .database(&dst.db)
        .collection::<Document>("payments")
        .update_one(
            doc! { "_id": "pay_bank1_005" },
            doc! { "$set": { "amount": 1i64 } },
        )
        .await
        .expect("update");
    let run = verify(&dst.config);
    assert!(!run.ok, "a changed target must not verify");
    assert!(run.stdout.contains("MISMATCH"), "{}", run.stdout);
}

#[tokio::test]
async fn importing_again_changes_nothing_and_an_interrupted_import_resumes() {
    let client = mongo_client().await;
    let work = scratch("mig_again");
    let (src, dst) = (side(&work, "src"), side(&work, "dst"));
    seed(&client, &src).await;
    let out = work.join("export");
    export(&src, &out);
    let run = import(&src, &dst, &out, &[]);
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("not in the target's tenant registry"),
        "without --register the operator is told to register the tenant: {}",
        run.stderr
    );
    let before = digest(&client, &dst.db, "payments").await;

    // Second run: the checkpoints say everything is done.
    let run = import(&src, &dst, &out, &[]);
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("0 inserted"), "{}", run.stdout);
    assert!(run.stdout.contains("12 resumed past"), "{}", run.stdout);

    // Without checkpoints every document is found already there, byte for byte.
    let checkpoints = client
        .database(&dst.internal)
        .collection::<Document>("tenant_imports");
    assert_eq!(
        checkpoints.count_documents(doc! {}).await.expect("count"),
        2
    );
    checkpoints.delete_many(doc! {}).await.expect("clear");
    let run = import(&src, &dst, &out, &[]);
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("0 inserted, 12 already present"),
        "{}",
        run.stdout
    );
    assert_eq!(digest(&client, &dst.db, "payments").await, before);

    // An interruption: the checkpoint says 6 payment lines are done, but only the first 3
    // payments reached the target (the process died mid-batch). The rerun skips 6 lines and
    // the final verification catches the gap instead of reporting success.
    let payments = client.database(&dst.db).collection::<Document>("payments");
    payments
        .delete_many(doc! { "_id": { "$gt": "pay_bank1_003" } })
        .await
        .expect("delete");
    checkpoints.delete_many(doc! {}).await.expect("clear");
    let export_id = manifest(&out)["exportId"].as_str().expect("id").to_owned();
    checkpoints
        .insert_one(doc! {
            "_id": format!("{export_id}/{}/payments", dst.db),
            "exportId": &export_id, "tenant": "bank1", "linesDone": 6i64,
        })
        .await
        .expect("checkpoint");
    let run = import(&src, &dst, &out, &[]);
    assert!(!run.ok, "a target missing documents must not verify");
    assert!(
        run.stderr.contains("differ from the export"),
        "{}",
        run.stderr
    );
    // A consistent checkpoint (the first 3 arrived) resumes and completes: 4–6 are inserted,
    // 7–9 (written by the run above) are found already there.
    checkpoints
        .update_one(
            doc! { "_id": format!("{export_id}/{}/payments", dst.db) },
            doc! { "$set": { "linesDone": 3i64 } },
        )
        .await
        .expect("checkpoint");
    let run = import(&src, &dst, &out, &[]);
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("3 inserted, 3 already present"),
        "{}",
        run.stdout
    );
    assert_eq!(digest(&client, &dst.db, "payments").await, before);
}

/// Copies an export directory.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("collections")).expect("dir");
    for name in ["manifest.json", "SHA256SUMS"] {
        std::fs::copy(from.join(name), to.join(name)).expect("copy");
    }
    for e in std::fs::read_dir(from.join("collections")).expect("read") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join("collections").join(e.file_name())).expect("copy");
    }
}

#[tokio::test]
async fn a_tampered_or_foreign_export_is_refused_before_anything_is_written() {
    let client = mongo_client().await;
    let work = scratch("mig_tamper");
    let (src, dst) = (side(&work, "src"), side(&work, "dst"));
    seed(&client, &src).await;
    let out = work.join("export");
    export(&src, &out);
    let m = manifest(&out);
    let file = entry(&m, "payments")["file"]
        .as_str()
        .expect("file")
        .to_owned();

    // 1. A bank2 document smuggled in, with the file checksum "fixed" in the manifest.
    let foreign = work.join("foreign");
    copy_dir(&out, &foreign);
    let text = std::fs::read_to_string(foreign.join(&file)).expect("file");
    let smuggled = text.replacen("\"tenantId\":\"bank1\"", "\"tenantId\":\"bank2\"", 1);
    assert_ne!(text, smuggled);
    std::fs::write(foreign.join(&file), &smuggled).expect("write");
    let mut mm = m.clone();
    for c in mm["collections"].as_array_mut().expect("collections") {
        if c["file"] == file.as_str() {
            c["fileSha256"] = Value::String(sha256_file(&foreign.join(&file)));
        }
    }
    std::fs::write(foreign.join("manifest.json"), mm.to_string()).expect("write");
    let run = import(&src, &dst, &foreign, &[]);
    assert!(!run.ok, "a foreign document must be refused");
    assert!(
        run.stderr.contains("tenantId is \"bank2\""),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("nothing was imported"),
        "{}",
        run.stderr
    );

    // 2. An edited amount without a fixed checksum.
    let edited = work.join("edited");
    copy_dir(&out, &edited);
    let text = std::fs::read_to_string(edited.join(&file)).expect("file");
    std::fs::write(edited.join(&file), text.replacen("\"1000\"", "\"9000\"", 1)).expect("write");
    let run = import(&src, &dst, &edited, &[]);
    assert!(!run.ok, "an edited file must be refused");
    assert!(run.stderr.contains("SHA-256"), "{}", run.stderr);

    // 3. A manifest pointing outside the directory.
    let escape = work.join("escape");
    copy_dir(&out, &escape);
    let mut mm = m.clone();
    mm["collections"][0]["file"] = Value::String("../../etc/passwd".into());
    std::fs::write(escape.join("manifest.json"), mm.to_string()).expect("write");
    let run = import(&src, &dst, &escape, &[]);
    assert!(!run.ok);
    assert!(
        run.stderr.contains("which export never writes"),
        "{}",
        run.stderr
    );

    let names = client
        .database(&dst.db)
        .list_collection_names()
        .await
        .expect("list");
    assert!(names.is_empty(), "nothing may be written: {names:?}");

    // An export never overwrites another.
    let run = tenantgate(&[
        "tenant",
        "export",
        "--tenant",
        "bank1",
        "--out",
        path(&out),
        "--config",
        path(&src.config),
    ]);
    assert!(!run.ok);
    assert!(run.stderr.contains("not empty"), "{}", run.stderr);
}

#[tokio::test]
async fn another_tenants_document_under_the_same_id_is_never_overwritten() {
    let client = mongo_client().await;
    let work = scratch("mig_conflict");
    let (src, dst) = (side(&work, "src"), side(&work, "dst"));
    seed(&client, &src).await;
    let out = work.join("export");
    export(&src, &out);
    let theirs = doc! { "_id": "pay_bank1_002", "tenantId": "bank2", "amount": 5i64 };
    let payments = client.database(&dst.db).collection::<Document>("payments");
    payments.insert_one(theirs.clone()).await.expect("insert");

    let run = import(&src, &dst, &out, &["--replace"]);
    assert!(!run.ok, "the conflict must fail the import");
    assert!(
        run.stderr.contains("another tenant's document"),
        "{}",
        run.stderr
    );
    let stored = payments
        .find_one(doc! { "_id": "pay_bank1_002" })
        .await
        .expect("find")
        .expect("still there");
    assert_eq!(stored, theirs, "bank2's document is untouched");

    // This tenant's older version is a conflict too, resolved only by --replace.
    payments
        .delete_one(doc! { "_id": "pay_bank1_002" })
        .await
        .expect("delete");
    let mut older = payment(2, "bank1");
    older.insert("amount", 1i64);
    payments.insert_one(older).await.expect("insert");
    client
        .database(&dst.internal)
        .collection::<Document>("tenant_imports")
        .delete_many(doc! {})
        .await
        .expect("clear");
    let run = import(&src, &dst, &out, &[]);
    assert!(!run.ok);
    assert!(run.stderr.contains("--replace"), "{}", run.stderr);
    let run = import(&src, &dst, &out, &["--replace"]);
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("1 replaced"), "{}", run.stdout);
    assert_eq!(
        digest(&client, &dst.db, "payments").await,
        digest(&client, &src.db, "payments").await
    );
}
