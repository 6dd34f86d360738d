//! Commands against one upstream, over the proxy's own pool (the same URI, credentials and TLS
//! handling `serve` uses), with cursors followed to the end.
//!
//! The tool talks to MongoDB directly, not through a tenantgate listener: it must read
//! soft-deleted documents and write with the documents' own `tenantId`, which is exactly what
//! the proxy exists to stop tenants from doing. It is an operator's tool, run with the
//! upstream's credentials.

use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use bson::{Bson, Document, RawDocumentBuf, doc};
use tenantgate_proxy::config::UpstreamConfig;
use tenantgate_proxy::upstream::Upstream;
use tenantgate_wire::{Message, OpMsg, Payload, RawDoc};

/// MongoDB's `NamespaceExists`.
pub const NAMESPACE_EXISTS: i32 = 48;
/// MongoDB's `DuplicateKey`.
pub const DUPLICATE_KEY: i32 = 11000;

/// A command MongoDB answered with `ok: 0`.
#[derive(Debug, thiserror::Error)]
#[error("{command} on {database} failed ({code} {code_name}): {message}")]
pub struct CommandFailed {
    /// The command name.
    pub command: String,
    /// The database it ran on.
    pub database: String,
    /// MongoDB's error code.
    pub code: i32,
    /// MongoDB's code name.
    pub code_name: String,
    /// MongoDB's message.
    pub message: String,
}

/// One upstream.
#[derive(Debug, Clone)]
pub struct Db {
    upstream: Arc<Upstream>,
}

fn ok(reply: &Document) -> bool {
    match reply.get("ok") {
        Some(Bson::Double(v)) => *v == 1.0,
        Some(Bson::Int32(v)) => *v == 1,
        Some(Bson::Int64(v)) => *v == 1,
        _ => false,
    }
}

fn command_name(body: &Document) -> String {
    body.keys().next().cloned().unwrap_or_default()
}

impl Db {
    /// Connects to `uri` with the pool settings of `base`.
    pub async fn connect(base: &UpstreamConfig, uri: &str) -> Result<Db> {
        let config = UpstreamConfig {
            uri: uri.to_owned(),
            ..base.clone()
        };
        let upstream = Upstream::connect(&config)
            .await
            .with_context(|| format!("connecting to {}", redacted(uri)))?;
        Ok(Db { upstream })
    }

    /// Runs `body` on `database`; `ok: 0` becomes a [`CommandFailed`].
    pub async fn run(&self, database: &str, mut body: Document) -> Result<Document> {
        let name = command_name(&body);
        body.insert("$db", database);
        let raw = RawDocumentBuf::try_from(&body).context("encoding a command")?;
        let reply = self
            .upstream
            .command(raw)
            .await
            .with_context(|| format!("{name} on {database}"))?;
        check(&name, database, reply)
    }

    /// Runs a cursor-returning command and hands every document to `each`, following the
    /// cursor with `getMore` until it is exhausted.
    pub async fn for_each(
        &self,
        database: &str,
        body: Document,
        batch_size: i32,
        mut each: impl FnMut(Document) -> Result<()>,
    ) -> Result<()> {
        let mut reply = self.run(database, body).await?;
        let mut first = true;
        loop {
            let cursor = reply
                .get_document_mut("cursor")
                .map_err(|_| anyhow!("reply on {database} has no cursor"))?;
            let batch = cursor
                .remove(if first { "firstBatch" } else { "nextBatch" })
                .ok_or_else(|| anyhow!("reply on {database} has no batch"))?;
            let Bson::Array(batch) = batch else {
                return Err(anyhow!("reply on {database} has a malformed batch"));
            };
            for doc in batch {
                match doc {
                    Bson::Document(d) => each(d)?,
                    _ => return Err(anyhow!("a cursor on {database} returned a non-document")),
                }
            }
            let id = cursor.get_i64("id").unwrap_or(0);
            if id == 0 {
                return Ok(());
            }
            let ns = cursor.get_str("ns").unwrap_or_default().to_owned();
            let collection = ns.split_once('.').map_or("", |(_, c)| c).to_owned();
            reply = self
                .run(
                    database,
                    doc! { "getMore": id, "collection": collection, "batchSize": batch_size },
                )
                .await?;
            first = false;
        }
    }

    /// The documents a cursor command returns, collected.
    pub async fn collect(&self, database: &str, body: Document) -> Result<Vec<Document>> {
        let mut out = Vec::new();
        self.for_each(database, body, 1000, |d| {
            out.push(d);
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// `insert` with the documents in an OP_MSG document sequence (as drivers send them, so a
    /// batch is not bounded by the 16 MiB command body). Returns the reply, write errors and all.
    pub async fn insert(
        &self,
        database: &str,
        collection: &str,
        documents: Vec<RawDocumentBuf>,
    ) -> Result<Document> {
        let body = RawDocumentBuf::try_from(&doc! {
            "insert": collection,
            "ordered": false,
            "$db": database,
        })
        .context("encoding insert")?;
        let body = RawDoc::from_buf(body).map_err(|_| anyhow!("encoding insert"))?;
        let docs = documents
            .into_iter()
            .map(|d| RawDoc::from_buf(d).map_err(|_| anyhow!("a document does not encode")))
            .collect::<Result<Vec<_>>>()?;
        let msg = OpMsg::new(body).with_sequence("documents", docs);
        let reply = self
            .upstream
            .round_trip(Message::new(0, 0, Payload::Msg(msg)))
            .await
            .with_context(|| format!("insert into {database}.{collection}"))?;
        let Payload::Msg(m) = reply.payload else {
            return Err(anyhow!(
                "insert into {database}.{collection}: not an OP_MSG reply"
            ));
        };
        let reply = m
            .body()
            .to_document()
            .context("decoding the insert reply")?;
        check("insert", database, reply)
    }
}

fn check(command: &str, database: &str, reply: Document) -> Result<Document> {
    if ok(&reply) {
        return Ok(reply);
    }
    Err(CommandFailed {
        command: command.to_owned(),
        database: database.to_owned(),
        code: reply.get_i32("code").unwrap_or(0),
        code_name: reply.get_str("codeName").unwrap_or("").to_owned(),
        message: reply.get_str("errmsg").unwrap_or("").to_owned(),
    }
    .into())
}

/// The MongoDB error code behind `err`, when it is a [`CommandFailed`].
pub fn error_code(err: &anyhow::Error) -> Option<i32> {
    err.downcast_ref::<CommandFailed>().map(|e| e.code)
}

/// The URI's hosts, without credentials or options, for messages and the manifest.
pub fn redacted(uri: &str) -> String {
    tenantgate_proxy::upstream::first_host(uri).unwrap_or_else(|| "(unparsable URI)".into())
}
