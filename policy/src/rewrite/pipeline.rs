//! Aggregation pipelines, at every depth.
//!
//! A pipeline that reads a collection starts with `{$match: <scope>}` — or, when its first stage
//! must stay first (`$geoNear`), gets the scope inside that stage's `query`. Every stage that
//! reads another collection is scoped the same way for *that* collection: `$lookup` (both forms
//! and their combination), `$graphLookup` (`restrictSearchWithMatch`), `$unionWith`, and,
//! recursively, the pipelines inside them and inside `$facet`. A sub-pipeline that starts with
//! `$documents` reads no collection. Stages that write elsewhere or expose other tenants or the
//! server are refused; unknown stages are refused.

use bson::{RawArray, RawArrayBuf, RawBsonRef, RawDocument, RawDocumentBuf};

use crate::decision::{Rejection, Rule};
use crate::engine::Tenant;
use crate::filter::{check_expression, check_filter};
use crate::raw::{elements, items, key};
use crate::scope::Scope;

/// Stages that read only their input documents.
const SAFE_STAGES: [&str; 20] = [
    "$project",
    "$addFields",
    "$set",
    "$unset",
    "$sort",
    "$limit",
    "$skip",
    "$group",
    "$count",
    "$unwind",
    "$sortByCount",
    "$bucket",
    "$bucketAuto",
    "$replaceRoot",
    "$replaceWith",
    "$sample",
    "$redact",
    "$densify",
    "$fill",
    "$setWindowFields",
];

/// Stages a tenant may never run.
const DENIED_STAGES: [&str; 19] = [
    "$out",
    "$merge",
    "$collStats",
    "$indexStats",
    "$currentOp",
    "$listSessions",
    "$listLocalSessions",
    "$planCacheStats",
    "$changeStream",
    "$changeStreamSplitLargeEvent",
    "$search",
    "$searchMeta",
    "$vectorSearch",
    "$listSearchIndexes",
    "$shardedDataDistribution",
    "$listSampledQueries",
    "$queryStats",
    "$querySettings",
    "$listCatalog",
];

/// What a pipeline's input is.
#[derive(Debug, Clone, Copy)]
pub(super) enum Input<'s> {
    /// Documents of a collection, to be scoped.
    Collection(Scope<'s>),
    /// No collection: the pipeline must start with `$documents`.
    Documents,
    /// Documents already scoped upstream (`$facet` branches).
    Scoped,
}

/// Rewrites one pipeline read from `input`, in database `db`.
pub(super) fn rewrite(
    stages: &RawArray,
    input: Input<'_>,
    db: &str,
    t: &Tenant<'_>,
) -> Result<RawArrayBuf, Rejection> {
    let m = t.mentions();
    let mut out = RawArrayBuf::new();
    for (i, item) in items(stages).enumerate() {
        let RawBsonRef::Document(stage) = item? else {
            return Err(Rejection::new(
                Rule::MalformedCommand,
                "pipeline stages must be documents",
            ));
        };
        let (name, spec) = single_field(stage)?;
        if i == 0 {
            match (input, name) {
                (Input::Collection(scope), "$geoNear") => {
                    out.push(&geo_near(spec, &scope, t)?);
                    continue;
                }
                (Input::Collection(scope), _) => {
                    if name == "$documents" {
                        return Err(Rejection::new(
                            Rule::MalformedCommand,
                            "$documents must start a pipeline that reads no collection",
                        ));
                    }
                    if !scope.is_empty() {
                        let mut m = RawDocumentBuf::new();
                        m.append(bson::raw::cstr!("$match"), scope.conditions()?);
                        out.push(&m);
                    }
                }
                (Input::Documents, "$documents") => {
                    check_expression(spec, &m)?;
                    out.push(stage);
                    continue;
                }
                (Input::Documents, _) => {
                    return Err(Rejection::new(
                        Rule::StageNotAllowed,
                        "a pipeline that reads no collection must start with $documents",
                    ));
                }
                (Input::Scoped, _) => {}
            }
        }
        match name {
            "$match" => {
                let RawBsonRef::Document(filter) = spec else {
                    return Err(Rejection::new(
                        Rule::MalformedCommand,
                        "$match must be a document",
                    ));
                };
                check_filter(filter, &m)?;
                out.push(stage);
            }
            "$lookup" => out.push(&single("$lookup", lookup(spec, db, t)?)?),
            "$graphLookup" => out.push(&single("$graphLookup", graph_lookup(spec, db, t)?)?),
            "$unionWith" => out.push(&single("$unionWith", union_with(spec, db, t)?)?),
            "$facet" => out.push(&single("$facet", facet(spec, db, t)?)?),
            "$geoNear" | "$documents" => {
                return Err(Rejection::new(
                    Rule::StageNotAllowed,
                    format!("{name} is only allowed as the first stage"),
                ));
            }
            _ if SAFE_STAGES.contains(&name) => out.push(stage),
            _ if DENIED_STAGES.contains(&name) => {
                return Err(Rejection::new(
                    Rule::StageNotAllowed,
                    format!("{name} is not allowed for tenants"),
                ));
            }
            _ => {
                return Err(Rejection::new(
                    Rule::UnknownStage,
                    format!("unknown aggregation stage {name}"),
                ));
            }
        }
    }
    if let (Input::Collection(scope), true) = (input, out.is_empty()) {
        // An empty pipeline still returns every document of the collection: scope it.
        if !scope.is_empty() {
            let mut m = RawDocumentBuf::new();
            m.append(bson::raw::cstr!("$match"), scope.conditions()?);
            out.push(&m);
        }
    }
    Ok(out)
}

fn single_field(stage: &RawDocument) -> Result<(&str, RawBsonRef<'_>), Rejection> {
    let mut it = elements(stage);
    match (it.next(), it.next()) {
        (Some(first), None) => first,
        _ => Err(Rejection::new(
            Rule::MalformedCommand,
            "a pipeline stage must have exactly one field",
        )),
    }
}

fn single(name: &str, spec: RawDocumentBuf) -> Result<RawDocumentBuf, Rejection> {
    let mut d = RawDocumentBuf::new();
    d.append(key(name)?, spec);
    Ok(d)
}

/// `$geoNear` first: the scope goes into its `query`.
fn geo_near(
    spec: RawBsonRef<'_>,
    scope: &Scope<'_>,
    t: &Tenant<'_>,
) -> Result<RawDocumentBuf, Rejection> {
    let RawBsonRef::Document(d) = spec else {
        return Err(Rejection::new(
            Rule::MalformedCommand,
            "$geoNear must be a document",
        ));
    };
    let mut out = RawDocumentBuf::new();
    let mut saw = false;
    for element in elements(d) {
        let (k, v) = element?;
        if k == "query" {
            let RawBsonRef::Document(q) = v else {
                return Err(Rejection::new(
                    Rule::MalformedCommand,
                    "$geoNear.query must be a document",
                ));
            };
            check_filter(q, &t.mentions())?;
            out.append(key(k)?, scope.filter(Some(q))?);
            saw = true;
        } else {
            out.append(key(k)?, v);
        }
    }
    if !saw && !scope.is_empty() {
        out.append(bson::raw::cstr!("query"), scope.conditions()?);
    }
    single("$geoNear", out)
}

/// The collection a sub-read names: `from: "c"` or `from: {db, coll}` in the same database.
fn foreign<'v>(v: RawBsonRef<'v>, db: &str, what: &str) -> Result<&'v str, Rejection> {
    match v {
        RawBsonRef::String(s) => Ok(s),
        RawBsonRef::Document(d) => {
            if !matches!(d.get("db"), Ok(Some(RawBsonRef::String(x))) if x == db) {
                return Err(Rejection::new(
                    Rule::CrossDatabase,
                    format!("{what} may not read another database"),
                ));
            }
            match d.get("coll") {
                Ok(Some(RawBsonRef::String(s))) => Ok(s),
                _ => Err(Rejection::new(
                    Rule::MalformedCommand,
                    format!("{what} needs a collection"),
                )),
            }
        }
        _ => Err(Rejection::new(
            Rule::MalformedCommand,
            format!("{what} must name a collection"),
        )),
    }
}

fn lookup(spec: RawBsonRef<'_>, db: &str, t: &Tenant<'_>) -> Result<RawDocumentBuf, Rejection> {
    const FIELDS: [&str; 6] = [
        "from",
        "localField",
        "foreignField",
        "as",
        "let",
        "pipeline",
    ];
    let RawBsonRef::Document(d) = spec else {
        return Err(Rejection::new(
            Rule::MalformedCommand,
            "$lookup must be a document",
        ));
    };
    let mut from = None;
    let mut pipeline = None;
    for element in elements(d) {
        let (k, v) = element?;
        match k {
            "from" => from = Some(foreign(v, db, "$lookup")?),
            "pipeline" => pipeline = Some(v),
            "let" => check_expression(v, &t.mentions())?,
            _ if FIELDS.contains(&k) => {}
            _ => {
                return Err(Rejection::new(
                    Rule::UnknownField,
                    format!("'{k}' is not a $lookup field"),
                ));
            }
        }
    }
    let sub = match (from, pipeline) {
        (Some(coll), p) => {
            let scope = t.read_scope(coll)?;
            match p {
                Some(p) => Some(rewrite(as_stages(p)?, Input::Collection(scope), db, t)?),
                None if scope.is_empty() => None,
                None => {
                    let mut arr = RawArrayBuf::new();
                    let mut m = RawDocumentBuf::new();
                    m.append(bson::raw::cstr!("$match"), scope.conditions()?);
                    arr.push(&m);
                    Some(arr)
                }
            }
        }
        (None, Some(p)) => Some(rewrite(as_stages(p)?, Input::Documents, db, t)?),
        (None, None) => {
            return Err(Rejection::new(
                Rule::MalformedCommand,
                "$lookup needs from or pipeline",
            ));
        }
    };
    let mut out = RawDocumentBuf::new();
    for element in elements(d) {
        let (k, v) = element?;
        if k != "pipeline" {
            out.append(key(k)?, v);
        }
    }
    if let Some(sub) = sub {
        out.append(bson::raw::cstr!("pipeline"), sub);
    }
    Ok(out)
}

fn graph_lookup(
    spec: RawBsonRef<'_>,
    db: &str,
    t: &Tenant<'_>,
) -> Result<RawDocumentBuf, Rejection> {
    const FIELDS: [&str; 8] = [
        "from",
        "startWith",
        "connectFromField",
        "connectToField",
        "as",
        "maxDepth",
        "depthField",
        "restrictSearchWithMatch",
    ];
    let RawBsonRef::Document(d) = spec else {
        return Err(Rejection::new(
            Rule::MalformedCommand,
            "$graphLookup must be a document",
        ));
    };
    let coll = match d.get("from") {
        Ok(Some(v)) => foreign(v, db, "$graphLookup")?,
        _ => {
            return Err(Rejection::new(
                Rule::MalformedCommand,
                "$graphLookup needs from",
            ));
        }
    };
    let scope = t.read_scope(coll)?;
    let mut out = RawDocumentBuf::new();
    let mut saw = false;
    for element in elements(d) {
        let (k, v) = element?;
        match k {
            "restrictSearchWithMatch" => {
                let RawBsonRef::Document(f) = v else {
                    return Err(Rejection::new(
                        Rule::MalformedCommand,
                        "restrictSearchWithMatch must be a document",
                    ));
                };
                check_filter(f, &t.mentions())?;
                out.append(key(k)?, scope.filter(Some(f))?);
                saw = true;
            }
            "startWith" => {
                check_expression(v, &t.mentions())?;
                out.append(key(k)?, v);
            }
            _ if FIELDS.contains(&k) => out.append(key(k)?, v),
            _ => {
                return Err(Rejection::new(
                    Rule::UnknownField,
                    format!("'{k}' is not a $graphLookup field"),
                ));
            }
        }
    }
    if !saw && !scope.is_empty() {
        out.append(
            bson::raw::cstr!("restrictSearchWithMatch"),
            scope.conditions()?,
        );
    }
    Ok(out)
}

fn union_with(spec: RawBsonRef<'_>, db: &str, t: &Tenant<'_>) -> Result<RawDocumentBuf, Rejection> {
    let (coll, pipeline) = match spec {
        RawBsonRef::String(s) => (Some(s), None),
        RawBsonRef::Document(d) => {
            let mut coll = None;
            let mut pipeline = None;
            for element in elements(d) {
                let (k, v) = element?;
                match k {
                    "coll" => coll = Some(foreign(v, db, "$unionWith")?),
                    "pipeline" => pipeline = Some(as_stages(v)?),
                    _ => {
                        return Err(Rejection::new(
                            Rule::UnknownField,
                            format!("'{k}' is not a $unionWith field"),
                        ));
                    }
                }
            }
            (coll, pipeline)
        }
        _ => {
            return Err(Rejection::new(
                Rule::MalformedCommand,
                "$unionWith must name a collection",
            ));
        }
    };
    let empty = RawArrayBuf::new();
    let mut out = RawDocumentBuf::new();
    let sub = match coll {
        Some(c) => {
            let scope = t.read_scope(c)?;
            out.append(bson::raw::cstr!("coll"), c);
            rewrite(pipeline.unwrap_or(&empty), Input::Collection(scope), db, t)?
        }
        None => match pipeline {
            Some(p) => rewrite(p, Input::Documents, db, t)?,
            None => {
                return Err(Rejection::new(
                    Rule::MalformedCommand,
                    "$unionWith needs coll or pipeline",
                ));
            }
        },
    };
    out.append(bson::raw::cstr!("pipeline"), sub);
    Ok(out)
}

fn facet(spec: RawBsonRef<'_>, db: &str, t: &Tenant<'_>) -> Result<RawDocumentBuf, Rejection> {
    let RawBsonRef::Document(d) = spec else {
        return Err(Rejection::new(
            Rule::MalformedCommand,
            "$facet must be a document",
        ));
    };
    let mut out = RawDocumentBuf::new();
    for element in elements(d) {
        let (k, v) = element?;
        out.append(key(k)?, rewrite(as_stages(v)?, Input::Scoped, db, t)?);
    }
    Ok(out)
}

fn as_stages(v: RawBsonRef<'_>) -> Result<&RawArray, Rejection> {
    match v {
        RawBsonRef::Array(a) => Ok(a),
        _ => Err(Rejection::new(
            Rule::MalformedCommand,
            "a pipeline must be an array",
        )),
    }
}
