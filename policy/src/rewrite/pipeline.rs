//! Aggregation pipelines, at every depth.
//!
//! A pipeline that reads a collection starts with `{$match: <scope>}` — or, when its first stage
//! must stay first (`$geoNear`), gets the scope inside that stage's `query`. Every stage that
//! reads another collection is scoped the same way for *that* collection: `$lookup` (both forms
//! and their combination), `$graphLookup` (`restrictSearchWithMatch`), `$unionWith`, and,
//! recursively, the pipelines inside them and inside `$facet`. A sub-pipeline that starts with
//! `$documents` reads no collection. Stages that write elsewhere or expose other tenants or the
//! server are refused; unknown stages are refused.

use bson::{RawDocument, RawDocumentBuf};

use crate::decision::{Rejection, Rule};
use crate::engine::Tenant;
use crate::filter::{check_expression, check_filter};
use crate::raw::{DocBuilder, Element, Value, elements, get};
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

fn scope_match(scope: &Scope<'_>) -> Result<RawDocumentBuf, Rejection> {
    let mut m = DocBuilder::with_capacity(96);
    m.doc("$match", &scope.conditions()?)?;
    Ok(m.finish())
}

/// Rewrites one pipeline (an array, as its document) read from `input`, in database `db`.
/// Returns the new array document.
pub(super) fn rewrite(
    stages: &RawDocument,
    input: Input<'_>,
    db: &str,
    t: &Tenant<'_>,
) -> Result<RawDocumentBuf, Rejection> {
    let m = t.mentions();
    let mut out = DocBuilder::with_capacity(stages.as_bytes().len() + 128);
    for (i, item) in elements(stages).enumerate() {
        let item = item?;
        let Value::Document(stage) = item.value() else {
            return Err(Rejection::new(
                Rule::MalformedCommand,
                "pipeline stages must be documents",
            ));
        };
        let spec = single_field(stage)?;
        let name = spec.key();
        if i == 0 {
            match (input, name) {
                (Input::Collection(scope), "$geoNear") => {
                    out.push_doc(&geo_near(&spec, &scope, t)?)?;
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
                        out.push_doc(&scope_match(&scope)?)?;
                    }
                }
                (Input::Documents, "$documents") => {
                    check_expression(spec.value(), &m)?;
                    out.push_element(&item)?;
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
                let Value::Document(filter) = spec.value() else {
                    return Err(Rejection::new(
                        Rule::MalformedCommand,
                        "$match must be a document",
                    ));
                };
                check_filter(filter, &m)?;
                out.push_element(&item)?;
            }
            "$lookup" => out.push_doc(&single("$lookup", &lookup(&spec, db, t)?)?)?,
            "$graphLookup" => {
                out.push_doc(&single("$graphLookup", &graph_lookup(&spec, db, t)?)?)?
            }
            "$unionWith" => out.push_doc(&single("$unionWith", &union_with(&spec, db, t)?)?)?,
            "$facet" => out.push_doc(&single("$facet", &facet(&spec, db, t)?)?)?,
            "$geoNear" | "$documents" => {
                return Err(Rejection::new(
                    Rule::StageNotAllowed,
                    format!("{name} is only allowed as the first stage"),
                ));
            }
            _ if SAFE_STAGES.contains(&name) => out.push_element(&item)?,
            _ if DENIED_STAGES.contains(&name) => {
                return Err(Rejection::new(
                    Rule::StageNotAllowed,
                    format!("{name} is not allowed for tenants"),
                ));
            }
            _ => {
                return Err(Rejection::new(
                    Rule::UnknownStage,
                    format!("unknown aggregation stage {}", crate::audit::clip(name)),
                ));
            }
        }
    }
    if let (Input::Collection(scope), true) = (input, out.is_empty()) {
        // An empty pipeline still returns every document of the collection: scope it.
        if !scope.is_empty() {
            out.push_doc(&scope_match(&scope)?)?;
        }
    }
    Ok(out.finish())
}

fn single_field(stage: &RawDocument) -> Result<Element<'_>, Rejection> {
    let mut it = elements(stage);
    match (it.next(), it.next()) {
        (Some(first), None) => first,
        _ => Err(Rejection::new(
            Rule::MalformedCommand,
            "a pipeline stage must have exactly one field",
        )),
    }
}

fn single(name: &str, spec: &RawDocument) -> Result<RawDocumentBuf, Rejection> {
    let mut d = DocBuilder::with_capacity(spec.as_bytes().len() + 16);
    d.doc(name, spec)?;
    Ok(d.finish())
}

fn spec_doc<'a>(spec: &Element<'a>) -> Result<&'a RawDocument, Rejection> {
    spec.as_document().ok_or_else(|| {
        Rejection::new(
            Rule::MalformedCommand,
            format!("{} must be a document", spec.key()),
        )
    })
}

/// `$geoNear` first: the scope goes into its `query`.
fn geo_near(
    spec: &Element<'_>,
    scope: &Scope<'_>,
    t: &Tenant<'_>,
) -> Result<RawDocumentBuf, Rejection> {
    let d = spec_doc(spec)?;
    let mut out = DocBuilder::with_capacity(d.as_bytes().len() + 96);
    let mut saw = false;
    for element in elements(d) {
        let e = element?;
        if e.key() == "query" {
            let Value::Document(q) = e.value() else {
                return Err(Rejection::new(
                    Rule::MalformedCommand,
                    "$geoNear.query must be a document",
                ));
            };
            check_filter(q, &t.mentions())?;
            out.doc("query", &scope.filter(Some(q))?)?;
            saw = true;
        } else {
            out.copy(&e);
        }
    }
    if !saw && !scope.is_empty() {
        out.doc("query", &scope.conditions()?)?;
    }
    single("$geoNear", &out.finish())
}

/// The collection a sub-read names: `from: "c"` or `from: {db, coll}` in the same database.
fn foreign<'v>(v: Value<'v>, db: &str, what: &str) -> Result<&'v str, Rejection> {
    match v {
        Value::String(s) => Ok(s),
        Value::Document(d) => {
            if get(d, "db")?.and_then(|e| e.as_str()) != Some(db) {
                return Err(Rejection::new(
                    Rule::CrossDatabase,
                    format!("{what} may not read another database"),
                ));
            }
            get(d, "coll")?.and_then(|e| e.as_str()).ok_or_else(|| {
                Rejection::new(Rule::MalformedCommand, format!("{what} needs a collection"))
            })
        }
        _ => Err(Rejection::new(
            Rule::MalformedCommand,
            format!("{what} must name a collection"),
        )),
    }
}

fn lookup(spec: &Element<'_>, db: &str, t: &Tenant<'_>) -> Result<RawDocumentBuf, Rejection> {
    const FIELDS: [&str; 6] = [
        "from",
        "localField",
        "foreignField",
        "as",
        "let",
        "pipeline",
    ];
    let d = spec_doc(spec)?;
    let mut from = None;
    let mut pipeline = None;
    for element in elements(d) {
        let e = element?;
        match e.key() {
            "from" => from = Some(foreign(e.value(), db, "$lookup")?),
            "pipeline" => pipeline = Some(as_stages(&e)?),
            "let" => check_expression(e.value(), &t.mentions())?,
            k if FIELDS.contains(&k) => {}
            k => {
                return Err(Rejection::new(
                    Rule::UnknownField,
                    format!("'{}' is not a $lookup field", crate::audit::clip(k)),
                ));
            }
        }
    }
    let sub = match (from, pipeline) {
        (Some(coll), p) => {
            let scope = t.read_scope(coll)?;
            match p {
                Some(p) => Some(rewrite(p, Input::Collection(scope), db, t)?),
                None if scope.is_empty() => None,
                None => {
                    let mut arr = DocBuilder::with_capacity(96);
                    arr.push_doc(&scope_match(&scope)?)?;
                    Some(arr.finish())
                }
            }
        }
        (None, Some(p)) => Some(rewrite(p, Input::Documents, db, t)?),
        (None, None) => {
            return Err(Rejection::new(
                Rule::MalformedCommand,
                "$lookup needs from or pipeline",
            ));
        }
    };
    let mut out = DocBuilder::with_capacity(d.as_bytes().len() + 128);
    for element in elements(d) {
        let e = element?;
        if e.key() != "pipeline" {
            out.copy(&e);
        }
    }
    if let Some(sub) = sub {
        out.array("pipeline", &sub)?;
    }
    Ok(out.finish())
}

fn graph_lookup(spec: &Element<'_>, db: &str, t: &Tenant<'_>) -> Result<RawDocumentBuf, Rejection> {
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
    let d = spec_doc(spec)?;
    let coll = match get(d, "from")? {
        Some(e) => foreign(e.value(), db, "$graphLookup")?,
        None => {
            return Err(Rejection::new(
                Rule::MalformedCommand,
                "$graphLookup needs from",
            ));
        }
    };
    let scope = t.read_scope(coll)?;
    let mut out = DocBuilder::with_capacity(d.as_bytes().len() + 128);
    let mut saw = false;
    for element in elements(d) {
        let e = element?;
        match (e.key(), e.value()) {
            ("restrictSearchWithMatch", Value::Document(f)) => {
                check_filter(f, &t.mentions())?;
                out.doc("restrictSearchWithMatch", &scope.filter(Some(f))?)?;
                saw = true;
            }
            ("restrictSearchWithMatch", _) => {
                return Err(Rejection::new(
                    Rule::MalformedCommand,
                    "restrictSearchWithMatch must be a document",
                ));
            }
            ("startWith", v) => {
                check_expression(v, &t.mentions())?;
                out.element("startWith", &e)?;
            }
            (k, _) if FIELDS.contains(&k) => out.copy(&e),
            (k, _) => {
                return Err(Rejection::new(
                    Rule::UnknownField,
                    format!("'{}' is not a $graphLookup field", crate::audit::clip(k)),
                ));
            }
        }
    }
    if !saw && !scope.is_empty() {
        out.doc("restrictSearchWithMatch", &scope.conditions()?)?;
    }
    Ok(out.finish())
}

fn union_with(spec: &Element<'_>, db: &str, t: &Tenant<'_>) -> Result<RawDocumentBuf, Rejection> {
    let (coll, pipeline) = match spec.value() {
        Value::String(s) => (Some(s), None),
        Value::Document(d) => {
            let mut coll = None;
            let mut pipeline = None;
            for element in elements(d) {
                let e = element?;
                match e.key() {
                    "coll" => coll = Some(foreign(e.value(), db, "$unionWith")?),
                    "pipeline" => pipeline = Some(as_stages(&e)?),
                    k => {
                        return Err(Rejection::new(
                            Rule::UnknownField,
                            format!("'{}' is not a $unionWith field", crate::audit::clip(k)),
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
    let empty = DocBuilder::with_capacity(8).finish();
    let mut out = DocBuilder::with_capacity(256);
    let sub = match coll {
        Some(c) => {
            let scope = t.read_scope(c)?;
            out.str("coll", c)?;
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
    out.array("pipeline", &sub)?;
    Ok(out.finish())
}

fn facet(spec: &Element<'_>, db: &str, t: &Tenant<'_>) -> Result<RawDocumentBuf, Rejection> {
    let d = spec_doc(spec)?;
    let mut out = DocBuilder::with_capacity(d.as_bytes().len() + 64);
    for element in elements(d) {
        let e = element?;
        out.array(e.key(), &rewrite(as_stages(&e)?, Input::Scoped, db, t)?)?;
    }
    Ok(out.finish())
}

fn as_stages<'a>(e: &Element<'a>) -> Result<&'a RawDocument, Rejection> {
    e.as_array()
        .ok_or_else(|| Rejection::new(Rule::MalformedCommand, "a pipeline must be an array"))
}
