//! Collection operations on a [`ScopedDb`](crate::scoped::ScopedDb): the handful a handler
//! needs, each built as the MongoDB command a driver would send and run through the policy
//! engine. Nothing here adds the tenant — the engine does, which is the point.

use bson::{Bson, Document, doc};
use serde::de::DeserializeOwned;

use crate::scoped::{DbError, MAX_DOCUMENTS, ScopedDb};

/// Options of [`Collection::find`].
#[derive(Debug, Clone, Default)]
pub struct FindOptions {
    /// Sort order.
    pub sort: Option<Document>,
    /// Most documents to return.
    pub limit: Option<i64>,
    /// Documents to skip.
    pub skip: Option<i64>,
    /// Fields to return.
    pub projection: Option<Document>,
}

/// What an update did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateResult {
    /// Documents matched.
    pub matched: i64,
    /// Documents changed.
    pub modified: i64,
    /// Whether an upsert inserted one.
    pub upserted: bool,
}

/// One collection of a scoped handle.
#[derive(Debug)]
pub struct Collection<'a> {
    db: &'a ScopedDb,
    name: String,
}

fn count_of(reply: &Document, key: &str) -> i64 {
    match reply.get(key) {
        Some(Bson::Int32(n)) => i64::from(*n),
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Double(n)) => *n as i64,
        _ => 0,
    }
}

impl<'a> Collection<'a> {
    pub(crate) fn new(db: &'a ScopedDb, name: &str) -> Self {
        Collection {
            db,
            name: name.to_owned(),
        }
    }

    /// Reads every batch of the cursor in `reply`, up to `limit` documents (and
    /// [`MAX_DOCUMENTS`]), closing the cursor if documents remain.
    async fn drain(&self, reply: Document, limit: usize) -> Result<Vec<Document>, DbError> {
        let limit = limit.min(MAX_DOCUMENTS);
        let cursor = reply
            .get_document("cursor")
            .map_err(|_| DbError::Invalid("reply has no cursor".into()))?;
        let mut docs: Vec<Document> = cursor
            .get_array("firstBatch")
            .map(|b| b.iter().filter_map(|d| d.as_document().cloned()).collect())
            .unwrap_or_default();
        let mut id = cursor.get_i64("id").unwrap_or(0);
        while id != 0 && docs.len() < limit {
            let more = self
                .db
                .run(doc! { "getMore": id, "collection": self.name.as_str() })
                .await?;
            let cursor = more
                .get_document("cursor")
                .map_err(|_| DbError::Invalid("getMore reply has no cursor".into()))?;
            if let Ok(batch) = cursor.get_array("nextBatch") {
                docs.extend(batch.iter().filter_map(|d| d.as_document().cloned()));
            }
            id = cursor.get_i64("id").unwrap_or(0);
        }
        if id != 0 {
            let _ = self
                .db
                .run(doc! { "killCursors": self.name.as_str(), "cursors": [id] })
                .await;
        }
        docs.truncate(limit);
        Ok(docs)
    }

    /// Documents matching `filter`.
    pub async fn find(
        &self,
        filter: Document,
        options: FindOptions,
    ) -> Result<Vec<Document>, DbError> {
        let mut cmd = doc! { "find": self.name.as_str(), "filter": filter };
        if let Some(sort) = options.sort {
            cmd.insert("sort", sort);
        }
        if let Some(projection) = options.projection {
            cmd.insert("projection", projection);
        }
        if let Some(skip) = options.skip {
            cmd.insert("skip", skip);
        }
        let limit = match options.limit {
            Some(l) if l > 0 => {
                cmd.insert("limit", l);
                usize::try_from(l).unwrap_or(MAX_DOCUMENTS)
            }
            _ => MAX_DOCUMENTS,
        };
        let reply = self.db.run(cmd).await?;
        self.drain(reply, limit).await
    }

    /// Documents matching `filter`, deserialised.
    pub async fn find_as<T: DeserializeOwned>(
        &self,
        filter: Document,
        options: FindOptions,
    ) -> Result<Vec<T>, DbError> {
        self.find(filter, options)
            .await?
            .into_iter()
            .map(|d| {
                bson::deserialize_from_document(d).map_err(|e| DbError::Invalid(e.to_string()))
            })
            .collect()
    }

    /// The first document matching `filter`.
    pub async fn find_one(&self, filter: Document) -> Result<Option<Document>, DbError> {
        let reply = self
            .db
            .run(doc! { "find": self.name.as_str(), "filter": filter, "limit": 1_i64, "singleBatch": true })
            .await?;
        Ok(self.drain(reply, 1).await?.into_iter().next())
    }

    /// Inserts documents (the engine stamps the tenant).
    pub async fn insert_many(&self, documents: Vec<Document>) -> Result<i64, DbError> {
        let reply = self
            .db
            .run(doc! { "insert": self.name.as_str(), "documents": documents, "ordered": true })
            .await?;
        Ok(count_of(&reply, "n"))
    }

    /// Inserts one document.
    pub async fn insert_one(&self, document: Document) -> Result<(), DbError> {
        self.insert_many(vec![document]).await.map(|_| ())
    }

    async fn update(
        &self,
        filter: Document,
        update: Document,
        multi: bool,
        upsert: bool,
    ) -> Result<UpdateResult, DbError> {
        let reply = self
            .db
            .run(doc! {
                "update": self.name.as_str(),
                "updates": [ { "q": filter, "u": update, "multi": multi, "upsert": upsert } ],
            })
            .await?;
        Ok(UpdateResult {
            matched: count_of(&reply, "n"),
            modified: count_of(&reply, "nModified"),
            upserted: reply.get_array("upserted").is_ok_and(|u| !u.is_empty()),
        })
    }

    /// Updates the first document matching `filter`.
    pub async fn update_one(
        &self,
        filter: Document,
        update: Document,
        upsert: bool,
    ) -> Result<UpdateResult, DbError> {
        self.update(filter, update, false, upsert).await
    }

    /// Updates every document matching `filter`.
    pub async fn update_many(
        &self,
        filter: Document,
        update: Document,
    ) -> Result<UpdateResult, DbError> {
        self.update(filter, update, true, false).await
    }

    /// Deletes (softly, for tenant collections) documents matching `filter`; returns how many.
    pub async fn delete(&self, filter: Document, many: bool) -> Result<i64, DbError> {
        let reply = self
            .db
            .run(doc! {
                "delete": self.name.as_str(),
                "deletes": [ { "q": filter, "limit": if many { 0_i32 } else { 1_i32 } } ],
            })
            .await?;
        Ok(count_of(&reply, "n"))
    }

    /// Live documents matching `filter`.
    pub async fn count(&self, filter: Document) -> Result<i64, DbError> {
        let reply = self
            .db
            .run(doc! {
                "aggregate": self.name.as_str(),
                "pipeline": [ { "$match": filter }, { "$count": "n" } ],
                "cursor": {},
            })
            .await?;
        Ok(self
            .drain(reply, 1)
            .await?
            .first()
            .map(|d| count_of(d, "n"))
            .unwrap_or(0))
    }

    /// Runs an aggregation pipeline.
    pub async fn aggregate(&self, pipeline: Vec<Document>) -> Result<Vec<Document>, DbError> {
        let reply = self
            .db
            .run(doc! { "aggregate": self.name.as_str(), "pipeline": pipeline, "cursor": {} })
            .await?;
        self.drain(reply, MAX_DOCUMENTS).await
    }

    /// Updates the first document matching `filter` and returns it as it is afterwards (or
    /// before, with `return_new: false`).
    pub async fn find_one_and_update(
        &self,
        filter: Document,
        update: Document,
        return_new: bool,
        upsert: bool,
    ) -> Result<Option<Document>, DbError> {
        let reply = self
            .db
            .run(doc! {
                "findAndModify": self.name.as_str(),
                "query": filter, "update": update, "new": return_new, "upsert": upsert,
            })
            .await?;
        Ok(reply.get_document("value").ok().cloned())
    }
}
