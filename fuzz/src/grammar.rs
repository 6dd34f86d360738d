//! A small byte-driven grammar of MongoDB commands, so the policy fuzz target reaches the deep
//! rules (pipelines inside `$lookup` inside `$facet`, updates, explain, comment options) that
//! random bytes almost never spell as valid BSON.
//!
//! Every choice reads one byte of the fuzzer's input (zero once it runs out, so generation
//! always ends), which keeps the mapping stable: libFuzzer's mutations of those bytes become
//! mutations of the command. Vocabulary is deliberately hostile: the tenant field under every
//! spelling (`tenantId`, `tenantId.x`, `$tenantId`, `$$ROOT.tenantId`), other tenants' ids,
//! JavaScript operators, denied stages and cross-database reads, next to the ordinary fields a
//! driver sends. The generator uses no crates beyond `bson`, so the same file compiles in the
//! cargo-fuzz crate and in the replay test of the main workspace.

use bson::raw::CString;
use bson::spec::BinarySubtype;
use bson::{Binary, Bson, DateTime, Document, JavaScriptCodeWithScope, Regex, doc};

/// Reads choices from the fuzzer's bytes.
#[derive(Debug)]
pub struct Gen<'a> {
    data: &'a [u8],
    pos: usize,
}

const MAX_DEPTH: u32 = 6;

const TENANTS: [&str; 6] = ["bank1", "bank1", "bank2", "bank3", "", "BANK1"];
const COLLECTIONS: [&str; 12] = [
    "payments",
    "payments",
    "invoices",
    "ledger",
    "currencies",
    "rates",
    "tenantgate_secrets",
    "payment_summary",
    "system.users",
    "",
    "a$b",
    "payments.archive",
];
const DATABASES: [&str; 8] = [
    "payments",
    "payments",
    "payments",
    "reports",
    "tenantgate",
    "admin",
    "local",
    "",
];
const PATHS: [&str; 16] = [
    "tenantId",
    "tenantId",
    "tenantId.x",
    "tenantId.0",
    "deletedAt",
    "amount",
    "status",
    "_id",
    "meta.tenantId",
    "items",
    "items.$[e].tenantId",
    "createdAt",
    "updatedAt",
    "tenantIdentity",
    "owner.tenant",
    "a.b.c",
];
const TOP_OPERATORS: [&str; 10] = [
    "$and",
    "$or",
    "$nor",
    "$expr",
    "$where",
    "$jsonSchema",
    "$text",
    "$comment",
    "$alwaysTrue",
    "$sampleRate",
];
const FIELD_OPERATORS: [&str; 16] = [
    "$eq",
    "$ne",
    "$gt",
    "$lte",
    "$in",
    "$nin",
    "$exists",
    "$not",
    "$elemMatch",
    "$regex",
    "$type",
    "$all",
    "$size",
    "$where",
    "$function",
    "$expr",
];
const EXPRESSION_OPERATORS: [&str; 14] = [
    "$eq",
    "$ne",
    "$and",
    "$cond",
    "$getField",
    "$setField",
    "$let",
    "$literal",
    "$function",
    "$accumulator",
    "$concat",
    "$ifNull",
    "$mergeObjects",
    "$unsetField",
];
const FIELD_REFS: [&str; 8] = [
    "$tenantId",
    "$tenantId.x",
    "$$ROOT",
    "$$ROOT.tenantId",
    "$$CURRENT.tenantId",
    "$amount",
    "$$NOW",
    "$$v",
];
const STAGES: [&str; 28] = [
    "$match",
    "$match",
    "$lookup",
    "$lookup",
    "$unionWith",
    "$graphLookup",
    "$facet",
    "$project",
    "$addFields",
    "$set",
    "$unset",
    "$group",
    "$sort",
    "$limit",
    "$unwind",
    "$replaceRoot",
    "$replaceWith",
    "$documents",
    "$geoNear",
    "$out",
    "$merge",
    "$collStats",
    "$currentOp",
    "$search",
    "$redact",
    "$setWindowFields",
    "$count",
    "$unknownStage",
];
const UPDATE_OPERATORS: [&str; 14] = [
    "$set",
    "$set",
    "$unset",
    "$rename",
    "$inc",
    "$setOnInsert",
    "$push",
    "$addToSet",
    "$pull",
    "$currentDate",
    "$bit",
    "$min",
    "$mul",
    "$unknownOp",
];
const COMMANDS: [&str; 24] = [
    "find",
    "find",
    "aggregate",
    "aggregate",
    "count",
    "distinct",
    "insert",
    "update",
    "update",
    "delete",
    "delete",
    "findAndModify",
    "explain",
    "getMore",
    "killCursors",
    "listCollections",
    "listIndexes",
    "endSessions",
    "create",
    "mapReduce",
    "bulkWrite",
    "listDatabases",
    "ping",
    "drop",
];
const COMMENTS: [&str; 7] = [
    "tenantgate:includeDeleted",
    "tenantgate:actAs=bank2",
    "tenantgate:actAs=bank1",
    "tenantgate:actAs=bank1;includeDeleted",
    "tenantgate:bogus",
    "just a comment",
    "tenantgate:",
];

impl<'a> Gen<'a> {
    /// A generator reading `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Gen { data, pos: 0 }
    }

    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[usize::from(self.byte()) % items.len()]
    }

    /// True about once in `n` (never once the input is used up).
    fn one_in(&mut self, n: u8) -> bool {
        self.byte() % n == n - 1
    }

    fn count(&mut self, max: u8) -> usize {
        usize::from(self.byte() % (max + 1))
    }

    fn int(&mut self) -> i32 {
        i32::from(self.byte() as i8)
    }

    /// A string taken straight from the input (lossy UTF-8), for names no list holds.
    fn raw_string(&mut self) -> String {
        let n = self.count(12);
        let bytes: Vec<u8> = (0..n).map(|_| self.byte()).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn tenant(&mut self) -> Bson {
        match self.byte() % 8 {
            0 => Bson::Null,
            1 => Bson::Int32(1),
            _ => Bson::String(self.pick(&TENANTS).to_owned()),
        }
    }

    fn path(&mut self) -> String {
        if self.one_in(16) {
            self.raw_string()
        } else {
            self.pick(&PATHS).to_owned()
        }
    }

    fn scalar(&mut self) -> Bson {
        match self.byte() % 14 {
            0 | 1 => self.tenant(),
            2 => Bson::Int32(self.int()),
            3 => Bson::Int64(i64::from(self.int()) << 33),
            4 => Bson::Double(f64::from(self.int()) / 2.0),
            5 => Bson::Boolean(self.byte() & 1 == 1),
            6 => Bson::Null,
            7 => Bson::String(self.pick(&FIELD_REFS).to_owned()),
            8 => Bson::JavaScriptCode("return true".into()),
            9 => Bson::JavaScriptCodeWithScope(JavaScriptCodeWithScope {
                code: "this.tenantId".into(),
                scope: doc! { "t": "bank2" },
            }),
            10 => match (CString::try_from("^bank"), CString::try_from("i")) {
                (Ok(pattern), Ok(options)) => Bson::RegularExpression(Regex { pattern, options }),
                _ => Bson::Null,
            },
            11 => Bson::DateTime(DateTime::from_millis(i64::from(self.int()))),
            12 => Bson::Binary(Binary {
                subtype: BinarySubtype::Uuid,
                bytes: vec![self.byte(); 16],
            }),
            _ => Bson::String(self.raw_string()),
        }
    }

    fn value(&mut self, depth: u32) -> Bson {
        if depth >= MAX_DEPTH {
            return self.scalar();
        }
        match self.byte() % 6 {
            0 => Bson::Document(self.filter(depth + 1)),
            1 => Bson::Array((0..self.count(3)).map(|_| self.value(depth + 1)).collect()),
            2 => self.expression(depth + 1),
            _ => self.scalar(),
        }
    }

    /// A query filter.
    pub fn filter(&mut self, depth: u32) -> Document {
        let mut d = Document::new();
        if depth >= MAX_DEPTH {
            return d;
        }
        for _ in 0..self.count(3) {
            if self.one_in(4) {
                let op = self.pick(&TOP_OPERATORS);
                let v = match op {
                    "$and" | "$or" | "$nor" => Bson::Array(
                        (0..self.count(3))
                            .map(|_| Bson::Document(self.filter(depth + 1)))
                            .collect(),
                    ),
                    "$expr" => self.expression(depth + 1),
                    "$where" => Bson::JavaScriptCode("this.tenantId == 'bank2'".into()),
                    _ => self.value(depth + 1),
                };
                d.insert(op, v);
            } else {
                let path = self.path();
                let v = if self.one_in(2) {
                    let mut ops = Document::new();
                    for _ in 0..=self.count(1) {
                        let op = self.pick(&FIELD_OPERATORS);
                        let v = match op {
                            "$in" | "$nin" | "$all" => {
                                Bson::Array((0..self.count(3)).map(|_| self.tenant()).collect())
                            }
                            "$not" | "$elemMatch" => Bson::Document(self.filter(depth + 1)),
                            _ => self.value(depth + 1),
                        };
                        ops.insert(op, v);
                    }
                    Bson::Document(ops)
                } else {
                    self.value(depth + 1)
                };
                d.insert(path, v);
            }
        }
        d
    }

    /// An aggregation expression.
    pub fn expression(&mut self, depth: u32) -> Bson {
        if depth >= MAX_DEPTH || self.one_in(3) {
            return match self.byte() % 3 {
                0 => Bson::String(self.pick(&FIELD_REFS).to_owned()),
                _ => self.scalar(),
            };
        }
        let op = self.pick(&EXPRESSION_OPERATORS);
        let arg = match op {
            "$getField" | "$unsetField" => {
                Bson::Document(doc! { "field": self.path(), "input": self.expression(depth + 1) })
            }
            "$setField" => Bson::Document(doc! {
                "field": self.path(), "input": "$$ROOT", "value": self.tenant(),
            }),
            "$let" => Bson::Document(doc! {
                "vars": { "v": self.expression(depth + 1) }, "in": self.expression(depth + 1),
            }),
            "$function" => Bson::Document(doc! {
                "body": "function() { return 1 }", "args": [], "lang": "js",
            }),
            _ => Bson::Array(
                (0..self.count(3))
                    .map(|_| self.expression(depth + 1))
                    .collect(),
            ),
        };
        Bson::Document(doc! { op: arg })
    }

    fn collection(&mut self) -> String {
        if self.one_in(20) {
            self.raw_string()
        } else {
            self.pick(&COLLECTIONS).to_owned()
        }
    }

    /// A `from` / `coll` for a sub-read: a name, or `{db, coll}` in this or another database.
    fn foreign(&mut self) -> Bson {
        if self.one_in(5) {
            Bson::Document(doc! { "db": self.pick(&DATABASES), "coll": self.collection() })
        } else {
            Bson::String(self.collection())
        }
    }

    /// A pipeline.
    pub fn pipeline(&mut self, depth: u32) -> Vec<Bson> {
        if depth >= MAX_DEPTH {
            return Vec::new();
        }
        (0..self.count(4))
            .map(|_| Bson::Document(self.stage(depth + 1)))
            .collect()
    }

    fn stage(&mut self, depth: u32) -> Document {
        let name = self.pick(&STAGES);
        let spec: Bson = match name {
            "$match" => Bson::Document(self.filter(depth)),
            "$lookup" => {
                let mut s = Document::new();
                if !self.one_in(6) {
                    s.insert("from", self.foreign());
                }
                if self.one_in(2) {
                    s.insert("localField", self.path());
                    s.insert("foreignField", self.path());
                }
                if self.one_in(2) {
                    s.insert("let", doc! { "t": self.expression(depth) });
                }
                if self.one_in(2) {
                    s.insert("pipeline", self.pipeline(depth));
                }
                s.insert("as", "joined");
                if self.one_in(12) {
                    s.insert("unexpected", 1);
                }
                Bson::Document(s)
            }
            "$unionWith" => {
                if self.one_in(3) {
                    Bson::String(self.collection())
                } else {
                    let mut s = Document::new();
                    if !self.one_in(5) {
                        s.insert("coll", self.foreign());
                    }
                    if self.one_in(2) {
                        s.insert("pipeline", self.pipeline(depth));
                    }
                    Bson::Document(s)
                }
            }
            "$graphLookup" => {
                let mut s = doc! {
                    "from": self.foreign(),
                    "startWith": self.expression(depth),
                    "connectFromField": self.path(),
                    "connectToField": self.path(),
                    "as": "tree",
                };
                if self.one_in(2) {
                    s.insert("restrictSearchWithMatch", self.filter(depth));
                }
                Bson::Document(s)
            }
            "$facet" => {
                let mut s = Document::new();
                for i in 0..self.count(2) {
                    s.insert(format!("f{i}"), self.pipeline(depth));
                }
                Bson::Document(s)
            }
            "$geoNear" => {
                let mut s = doc! { "near": [0.0, 0.0], "distanceField": "d" };
                if self.one_in(2) {
                    s.insert("query", self.filter(depth));
                }
                Bson::Document(s)
            }
            "$documents" => Bson::Array(
                (0..self.count(2))
                    .map(|_| Bson::Document(self.document(depth)))
                    .collect(),
            ),
            "$limit" | "$count" => Bson::Int32(self.int()),
            "$unwind" => Bson::String("$items".into()),
            "$out" | "$merge" => self.foreign(),
            "$replaceRoot" => Bson::Document(doc! { "newRoot": self.expression(depth) }),
            _ => {
                let mut s = Document::new();
                for _ in 0..self.count(2) {
                    s.insert(self.path(), self.expression(depth));
                }
                Bson::Document(s)
            }
        };
        let mut stage = doc! { name: spec };
        if self.one_in(16) {
            stage.insert("$match", Document::new());
        }
        stage
    }

    /// A document to insert (or replace with).
    fn document(&mut self, depth: u32) -> Document {
        let mut d = Document::new();
        for _ in 0..self.count(3) {
            let key = self.path();
            let v = if key == "tenantId" {
                self.tenant()
            } else {
                self.value(depth + 1)
            };
            d.insert(key, v);
        }
        d
    }

    /// An update: operators, a replacement or a pipeline.
    fn update(&mut self, depth: u32) -> Bson {
        match self.byte() % 5 {
            0 => Bson::Document(self.document(depth)),
            1 => Bson::Array(self.pipeline(depth)),
            _ => {
                let mut d = Document::new();
                for _ in 0..=self.count(2) {
                    let op = self.pick(&UPDATE_OPERATORS);
                    let mut fields = Document::new();
                    for _ in 0..=self.count(1) {
                        let path = self.path();
                        let v = match op {
                            "$rename" => Bson::String(self.path()),
                            "$currentDate" => Bson::Boolean(true),
                            _ if path.starts_with("tenantId") => self.tenant(),
                            _ => self.value(depth + 1),
                        };
                        fields.insert(path, v);
                    }
                    d.insert(op, fields);
                }
                Bson::Document(d)
            }
        }
    }

    fn collation(&mut self) -> Bson {
        match self.byte() % 3 {
            0 => Bson::Document(doc! { "locale": "simple" }),
            1 => Bson::Document(doc! { "locale": "en", "strength": 1 }),
            _ => Bson::String("simple".into()),
        }
    }

    fn comment(&mut self) -> Bson {
        match self.byte() % 4 {
            0 => Bson::String(self.pick(&COMMENTS).to_owned()),
            1 => Bson::Document(doc! { "tenantgate": { "includeDeleted": true }, "app": "x" }),
            2 => Bson::Document(doc! { "tenantgate": { "actAs": self.tenant() } }),
            _ => self.value(3),
        }
    }

    fn update_statement(&mut self, depth: u32) -> Document {
        let mut s = Document::new();
        if !self.one_in(10) {
            s.insert("q", self.filter(depth));
        }
        if !self.one_in(10) {
            s.insert("u", self.update(depth));
        }
        for _ in 0..self.count(2) {
            match self.byte() % 7 {
                0 => s.insert("upsert", Bson::Boolean(true)),
                1 => s.insert("multi", Bson::Boolean(self.byte() & 1 == 1)),
                2 => s.insert("arrayFilters", vec![Bson::Document(self.filter(depth))]),
                3 => s.insert("collation", self.collation()),
                4 => s.insert("c", doc! { "t": self.expression(depth) }),
                5 => s.insert("hint", doc! { "tenantId": 1 }),
                _ => s.insert(self.path(), self.value(depth)),
            };
        }
        s
    }

    fn delete_statement(&mut self, depth: u32) -> Document {
        let mut s = Document::new();
        if !self.one_in(10) {
            s.insert("q", self.filter(depth));
        }
        if !self.one_in(10) {
            let limit = match self.byte() % 4 {
                0 => Bson::Int32(0),
                1 => Bson::Int32(1),
                2 => Bson::Double(1.0),
                _ => self.scalar(),
            };
            s.insert("limit", limit);
        }
        match self.byte() % 6 {
            0 => {
                s.insert("collation", self.collation());
            }
            1 => {
                s.insert(self.path(), self.value(depth));
            }
            _ => {}
        }
        s
    }

    /// The value for field `key` of a command.
    fn field(&mut self, key: &str) -> Bson {
        match key {
            "filter" | "query" => Bson::Document(self.filter(1)),
            "pipeline" => Bson::Array(self.pipeline(1)),
            "update" => self.update(1),
            "documents" => Bson::Array(
                (0..self.count(3))
                    .map(|_| Bson::Document(self.document(1)))
                    .collect(),
            ),
            "updates" => Bson::Array(
                (0..self.count(2))
                    .map(|_| Bson::Document(self.update_statement(1)))
                    .collect(),
            ),
            "deletes" => Bson::Array(
                (0..self.count(2))
                    .map(|_| Bson::Document(self.delete_statement(1)))
                    .collect(),
            ),
            "let" => Bson::Document(doc! { "v": self.expression(2) }),
            "collation" => self.collation(),
            "comment" => self.comment(),
            "sort" | "projection" | "hint" | "fields" => Bson::Document(doc! { self.path(): 1 }),
            "limit" | "skip" | "batchSize" | "maxTimeMS" | "txnNumber" => Bson::Int32(self.int()),
            "remove"
            | "new"
            | "upsert"
            | "ordered"
            | "singleBatch"
            | "allowDiskUse"
            | "bypassDocumentValidation"
            | "startTransaction"
            | "autocommit" => Bson::Boolean(self.byte() & 1 == 1),
            "cursor" => Bson::Document(doc! { "batchSize": self.int() }),
            "key" => Bson::String(self.path()),
            "viewOn" => Bson::String(self.collection()),
            "lsid" => Bson::Document(doc! { "id": Binary {
                subtype: BinarySubtype::Uuid, bytes: vec![7; 16],
            } }),
            "readConcern" => Bson::Document(doc! { "level": "majority" }),
            "cursors" => Bson::Array(vec![Bson::Int64(i64::from(self.int()))]),
            "arrayFilters" => Bson::Array(vec![Bson::Document(self.filter(2))]),
            _ => self.value(2),
        }
    }

    /// A command body (its first key is the command name) and its document sequences.
    pub fn command(&mut self, depth: u32) -> (Document, Vec<(String, Vec<Document>)>) {
        let name = if self.one_in(32) {
            self.raw_string()
        } else {
            self.pick(&COMMANDS).to_owned()
        };
        let fields: &[&str] = match name.as_str() {
            "find" => &[
                "filter",
                "sort",
                "projection",
                "limit",
                "skip",
                "hint",
                "collation",
                "let",
                "singleBatch",
                "batchSize",
            ],
            "count" => &["query", "limit", "skip", "hint", "collation", "fields"],
            "distinct" => &["key", "query", "collation"],
            "aggregate" => &[
                "pipeline",
                "cursor",
                "allowDiskUse",
                "collation",
                "let",
                "hint",
            ],
            "insert" => &["documents", "ordered", "bypassDocumentValidation"],
            "update" => &["updates", "ordered", "let", "bypassDocumentValidation"],
            "delete" => &["deletes", "ordered", "let"],
            "findAndModify" => &[
                "query",
                "update",
                "remove",
                "new",
                "upsert",
                "sort",
                "fields",
                "collation",
                "arrayFilters",
                "let",
            ],
            "getMore" => &["collection", "batchSize"],
            "killCursors" => &["cursors"],
            "create" => &["viewOn", "pipeline"],
            "listCollections" => &["filter", "nameOnly"],
            _ => &["filter", "pipeline"],
        };
        let first: Bson = match name.as_str() {
            "aggregate" if self.one_in(4) => Bson::Int32(1),
            "explain" if depth < 2 => {
                let (inner, _) = self.command(depth + 1);
                Bson::Document(inner)
            }
            "getMore" => Bson::Int64(i64::from(self.int())),
            "listCollections" | "endSessions" | "ping" | "listDatabases" => Bson::Int32(1),
            _ if self.one_in(24) => self.scalar(),
            _ => Bson::String(self.collection()),
        };
        let mut body = doc! { name.as_str(): first };
        // Known fields, plus now and then one no rule knows or a generic one.
        for _ in 0..=self.count(3) {
            let key = if self.one_in(8) {
                self.pick(&[
                    "lsid",
                    "txnNumber",
                    "readConcern",
                    "maxTimeMS",
                    "$readPreference",
                    "comment",
                    "apiVersion",
                    "unknownField",
                    "$db",
                    "$where",
                ])
            } else {
                self.pick(fields)
            };
            if key == "$db" || body.contains_key(key) {
                continue;
            }
            let v = self.field(key);
            body.insert(key, v);
        }
        if depth == 0 && self.one_in(3) {
            let c = self.comment();
            body.insert("comment", c);
        }
        if depth == 0 && !self.one_in(16) {
            body.insert("$db", self.pick(&DATABASES));
        }
        let mut sequences = Vec::new();
        if depth == 0 {
            for _ in 0..self.count(1) {
                let identifier = if self.one_in(6) {
                    self.raw_string()
                } else {
                    self.pick(&["documents", "updates", "deletes"]).to_owned()
                };
                let docs = (0..=self.count(2))
                    .map(|_| match identifier.as_str() {
                        "updates" => self.update_statement(1),
                        "deletes" => self.delete_statement(1),
                        _ => self.document(1),
                    })
                    .collect();
                sequences.push((identifier, docs));
            }
        }
        (body, sequences)
    }
}

/// OP_MSG sections (kind 0 body, then kind 1 sequences) for a generated command, as they follow
/// the flag bits on the wire. `None` when the `bson` crate refuses to encode the command (a key
/// with NUL from [`Gen::raw_string`]).
pub fn sections(body: &Document, sequences: &[(String, Vec<Document>)]) -> Option<Vec<u8>> {
    let mut out = vec![0u8];
    out.extend(body.to_vec().ok()?);
    for (identifier, docs) in sequences {
        let mut payload = Vec::new();
        payload.extend(identifier.as_bytes());
        payload.push(0);
        for d in docs {
            payload.extend(d.to_vec().ok()?);
        }
        out.push(1);
        out.extend(i32::try_from(payload.len() + 4).ok()?.to_le_bytes());
        out.extend(payload);
    }
    Some(out)
}
