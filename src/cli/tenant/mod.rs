//! `tenantgate tenant export|import|verify`: move one tenant's data between upstreams.
//!
//! A tenant outgrows a shared cluster, needs its data in another region, or leaves: its
//! documents must move without touching anyone else's. tenantgate already knows which
//! collections are tenant-scoped and which field names the tenant, so the tool lives here and
//! reads the same `tenantgate.toml` as `serve`. See docs/migrations.md for the procedure.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use tenantgate_proxy::{Config, ProcessEnv};

mod db;
mod digest;
mod export;
mod import;
mod manifest;
mod verify;

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Write one tenant's documents (soft-deleted included) from every tenant-scoped
    /// collection to a directory, with a manifest and checksums.
    Export(ExportArgs),
    /// Load an export into an upstream: checks every checksum and every document's tenant
    /// first, then inserts idempotently and resumably, then verifies the result.
    Import(ImportArgs),
    /// Compare an upstream's documents for the exported tenant with an export's checksums.
    Verify(VerifyArgs),
}

/// Where the data is.
#[derive(Debug, Args)]
pub struct Upstream {
    /// The configuration file: its `[upstream] uri` and `[policy]` (databases, tenant field,
    /// collection modes, internal database) say where tenant data lives.
    #[arg(
        long,
        short,
        env = "TENANTGATE_CONFIG",
        default_value = "tenantgate.toml"
    )]
    config: PathBuf,
    /// Connect to this MongoDB URI instead of the config's `[upstream] uri`.
    #[arg(long, value_name = "URI")]
    upstream_uri: Option<String>,
    /// Documents per read or insert batch.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch_size: u32,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The tenant's slug.
    #[arg(long)]
    tenant: String,
    /// The export directory; created, and must be empty.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Export only this database (repeatable); default: every database in `[policy] databases`.
    #[arg(long = "database", value_name = "DB")]
    databases: Vec<String>,
    #[command(flatten)]
    upstream: Upstream,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The export directory.
    #[arg(long = "in", value_name = "DIR")]
    dir: PathBuf,
    /// Load the export's database FROM into TO (repeatable).
    #[arg(long = "map-database", value_name = "FROM=TO", value_parser = parse_mapping)]
    map: Vec<(String, String)>,
    /// Replace this tenant's documents whose stored version differs from the export's (a
    /// catch-up import after a newer export). Another tenant's document is never replaced.
    #[arg(long)]
    replace: bool,
    /// Insert the tenant's registry record (slug, tier, domains, settings, limits) when the
    /// target's registry has none.
    #[arg(long)]
    register: bool,
    #[command(flatten)]
    upstream: Upstream,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The export directory.
    #[arg(long = "in", value_name = "DIR")]
    dir: PathBuf,
    /// Compare the export's database FROM with the upstream's TO (repeatable).
    #[arg(long = "map-database", value_name = "FROM=TO", value_parser = parse_mapping)]
    map: Vec<(String, String)>,
    #[command(flatten)]
    upstream: Upstream,
}

fn parse_mapping(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((from, to)) if !from.is_empty() && !to.is_empty() => {
            Ok((from.to_owned(), to.to_owned()))
        }
        _ => Err(format!("expected FROM=TO, got {s:?}")),
    }
}

fn mapping(pairs: Vec<(String, String)>) -> Result<HashMap<String, String>> {
    let mut map = HashMap::new();
    for (from, to) in pairs {
        if map.insert(from.clone(), to).is_some() {
            bail!("--map-database {from}=… given twice");
        }
    }
    Ok(map)
}

/// The loaded config, the URI to use and a connection.
async fn open(upstream: &Upstream) -> Result<(Config, String, db::Db)> {
    let config = Config::load(&upstream.config, &ProcessEnv)
        .with_context(|| format!("loading {}", upstream.config.display()))?;
    let uri = upstream
        .upstream_uri
        .clone()
        .unwrap_or_else(|| config.upstream.uri.clone());
    let db = db::Db::connect(&config.upstream, &uri).await?;
    Ok((config, uri, db))
}

fn batch(upstream: &Upstream) -> i32 {
    i32::try_from(upstream.batch_size).unwrap_or(1000)
}

pub fn run(cmd: TenantCommand) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        match cmd {
            TenantCommand::Export(args) => run_export(args).await,
            TenantCommand::Import(args) => run_import(args).await,
            TenantCommand::Verify(args) => run_verify(args).await,
        }
    })
}

async fn run_export(args: ExportArgs) -> Result<()> {
    let (config, uri, db) = open(&args.upstream).await?;
    let manifest = export::export(
        &db,
        &export::Plan {
            tenant: &args.tenant,
            out: &args.out,
            databases: &args.databases,
            batch_size: batch(&args.upstream),
            policy: &config.policy,
            source_uri: &uri,
        },
    )
    .await?;
    let documents: u64 = manifest.collections.iter().map(|c| c.documents).sum();
    println!(
        "exported tenant {} ({} documents in {} collections) to {} (export {})",
        manifest.tenant,
        documents,
        manifest.collections.len(),
        args.out.display(),
        manifest.export_id
    );
    Ok(())
}

async fn run_import(args: ImportArgs) -> Result<()> {
    let (config, _, db) = open(&args.upstream).await?;
    let map = mapping(args.map)?;
    let (manifest, totals) = import::import(
        &db,
        &import::Plan {
            dir: &args.dir,
            map: &map,
            batch_size: args.upstream.batch_size as usize,
            replace: args.replace,
            register: args.register,
            policy: &config.policy,
        },
    )
    .await?;
    println!(
        "imported tenant {} (export {}): {} inserted, {} already present, {} replaced, {} \
         resumed past; the target matches the export's checksums",
        manifest.tenant,
        manifest.export_id,
        totals.inserted,
        totals.present,
        totals.replaced,
        totals.resumed
    );
    Ok(())
}

async fn run_verify(args: VerifyArgs) -> Result<()> {
    let (_, _, db) = open(&args.upstream).await?;
    let map = mapping(args.map)?;
    let manifest = manifest::Manifest::read(&args.dir)?;
    let outcomes = verify::compare(
        &db,
        &manifest,
        |d| map.get(d).cloned().unwrap_or_else(|| d.to_owned()),
        batch(&args.upstream),
    )
    .await?;
    let mut differ = 0;
    for o in &outcomes {
        println!("{}", o.describe());
        if !o.matches() {
            differ += 1;
        }
    }
    if differ > 0 {
        bail!(
            "{differ} of {} collections differ from the export",
            outcomes.len()
        );
    }
    println!(
        "tenant {}: all {} collections match export {}",
        manifest.tenant,
        outcomes.len(),
        manifest.export_id
    );
    Ok(())
}
