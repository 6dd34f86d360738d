//! Aggregation pipelines, at every depth.
//!
//! A pipeline that reads a collection starts with `{$match: <scope>}` — or, when its first stage
//! must stay first (`$geoNear`), gets the scope inside that stage's `query`. Every stage that
//! reads another collection is scoped the same way for *that* collection: `$lookup` (both forms
//! and their combination), `$graphLookup` (`restrictSearchWithMatch`), `$unionWith`, and,
//! recursively, the pipelines inside them and inside `$facet`. A sub-pipeline that starts with
//! `$documents` reads no collection. Stages that write elsewhere or expose other tenants or the
//! server are refused; unknown stages are refused.

use bson::RawDocument;

use super::listed;
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

/// Appends `{$match: <scope>}` as the next stage.
fn push_scope_match(scope: &Scope<'_>, out: &mut DocBuilder) -> Result<(), Rejection> {
    let stage = out.push_open(false)?;
    scope.write_conditions_doc(out, "$match")?;
    out.close(stage);
    Ok(())
}

/// Rewrites one pipeline (an array, as its document) read from `input`, in database `db`,
/// appending its stages to the array open in `out` (see [`DocBuilder::open`]).
pub(super) fn rewrite(
    stages: &RawDocument,
    input: Input<'_>,
    db: &str,
    t: &Tenant<'_>,
    out: &mut DocBuilder,
) -> Result<(), Rejection> {
    let m = t.mentions();
    let mut written = false;
    for (i, item) in elements(stages).enumerate() {
        let item = item?;
        let Value::Document(stage) = item.value() else {
            return Err(Rejection::new(
                Rule::MalformedCommand,
                "pipeline stages must be documents",
            ));
        };
        let spec = single_field(stage)?;
        let name = spec.key_bytes();
        written = true;
        if i == 0 {
            match (input, name) {
                (Input::Collection(scope), b"$geoNear") => {
                    geo_near(&spec, &scope, t, out)?;
                    continue;
                }
                (Input::Collection(scope), _) => {
                    if name == b"$documents" {
                        return Err(Rejection::new(
                            Rule::MalformedCommand,
                            "$documents must start a pipeline that reads no collection",
                        ));
                    }
                    if !scope.is_empty() {
                        push_scope_match(&scope, out)?;
                    }
                }
                (Input::Documents, b"$documents") => {
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
            b"$match" => {
                let Value::Document(filter) = spec.value() else {
                    return Err(Rejection::new(
                        Rule::MalformedCommand,
                        "$match must be a document",
                    ));
                };
                check_filter(filter, &m)?;
                out.push_element(&item)?;
            }
            b"$lookup" => lookup(&spec, db, t, out)?,
            b"$graphLookup" => graph_lookup(&spec, db, t, out)?,
            b"$unionWith" => union_with(&spec, db, t, out)?,
            b"$facet" => facet(&spec, db, t, out)?,
            b"$geoNear" | b"$documents" => {
                return Err(Rejection::new(
                    Rule::StageNotAllowed,
                    format!("{} is only allowed as the first stage", spec.key()),
                ));
            }
            _ if listed(&SAFE_STAGES, name) => out.push_element(&item)?,
            _ if listed(&DENIED_STAGES, name) => {
                return Err(Rejection::new(
                    Rule::StageNotAllowed,
                    format!("{} is not allowed for tenants", spec.key()),
                ));
            }
            _ => {
                return Err(Rejection::new(
                    Rule::UnknownStage,
                    format!(
                        "unknown aggregation stage {}",
                        crate::audit::clip(spec.key())
                    ),
                ));
            }
        }
    }
    if let (Input::Collection(scope), false) = (input, written) {
        // An empty pipeline still returns every document of the collection: scope it.
        if !scope.is_empty() {
            push_scope_match(&scope, out)?;
        }
    }
    Ok(())
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

/// Opens the next stage, `{name: {…}}`; close both with [`close_stage`].
fn open_stage(
    name: &str,
    out: &mut DocBuilder,
) -> Result<
    (
        tenantgate_wire::element::Opened,
        tenantgate_wire::element::Opened,
    ),
    Rejection,
> {
    let stage = out.push_open(false)?;
    let spec = out.open(name, false)?;
    Ok((stage, spec))
}

fn close_stage(
    out: &mut DocBuilder,
    (stage, spec): (
        tenantgate_wire::element::Opened,
        tenantgate_wire::element::Opened,
    ),
) {
    out.close(spec);
    out.close(stage);
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
    out: &mut DocBuilder,
) -> Result<(), Rejection> {
    let d = spec_doc(spec)?;
    let opened = open_stage("$geoNear", out)?;
    let mut saw = false;
    for element in elements(d) {
        let e = element?;
        if e.key_bytes() == b"query" {
            let Value::Document(q) = e.value() else {
                return Err(Rejection::new(
                    Rule::MalformedCommand,
                    "$geoNear.query must be a document",
                ));
            };
            check_filter(q, &t.mentions())?;
            scope.write_filter(out, "query", Some(q))?;
            saw = true;
        } else {
            out.copy(&e);
        }
    }
    if !saw && !scope.is_empty() {
        scope.write_conditions_doc(out, "query")?;
    }
    close_stage(out, opened);
    Ok(())
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

fn lookup(
    spec: &Element<'_>,
    db: &str,
    t: &Tenant<'_>,
    out: &mut DocBuilder,
) -> Result<(), Rejection> {
    const FIELDS: [&str; 6] = [
        "from",
        "localField",
        "foreignField",
        "as",
        "let",
        "pipeline",
    ];
    let d = spec_doc(spec)?;
    // One pass checks each field and copies it; the pipeline is written last, scoped. (An error
    // refuses the whole command, so a half-written stage is never sent.)
    let opened = open_stage("$lookup", out)?;
    let mut from = None;
    let mut pipeline = None;
    for element in elements(d) {
        let e = element?;
        match e.key_bytes() {
            b"from" => from = Some(foreign(e.value(), db, "$lookup")?),
            b"pipeline" => {
                pipeline = Some(as_stages(&e)?);
                continue;
            }
            b"let" => check_expression(e.value(), &t.mentions())?,
            k if listed(&FIELDS, k) => {}
            _ => {
                return Err(Rejection::new(
                    Rule::UnknownField,
                    format!("'{}' is not a $lookup field", crate::audit::clip(e.key())),
                ));
            }
        }
        out.copy(&e);
    }
    let input = match (from, pipeline) {
        (Some(coll), p) => {
            let scope = t.read_scope(coll)?;
            match p {
                None if scope.is_empty() => None,
                _ => Some(Input::Collection(scope)),
            }
        }
        (None, Some(_)) => Some(Input::Documents),
        (None, None) => {
            return Err(Rejection::new(
                Rule::MalformedCommand,
                "$lookup needs from or pipeline",
            ));
        }
    };
    if let Some(input) = input {
        let sub = out.open("pipeline", true)?;
        let stages = match pipeline {
            Some(p) => p,
            None => empty_pipeline()?,
        };
        rewrite(stages, input, db, t, out)?;
        out.close(sub);
    }
    close_stage(out, opened);
    Ok(())
}

/// `[]`: a pipeline of no stages.
fn empty_pipeline() -> Result<&'static RawDocument, Rejection> {
    static EMPTY: [u8; 5] = [5, 0, 0, 0, 0];
    RawDocument::from_bytes(&EMPTY)
        .map_err(|_| Rejection::new(Rule::MalformedCommand, "empty pipeline"))
}

fn graph_lookup(
    spec: &Element<'_>,
    db: &str,
    t: &Tenant<'_>,
    out: &mut DocBuilder,
) -> Result<(), Rejection> {
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
    let opened = open_stage("$graphLookup", out)?;
    let mut saw = false;
    for element in elements(d) {
        let e = element?;
        match (e.key(), e.value()) {
            ("restrictSearchWithMatch", Value::Document(f)) => {
                check_filter(f, &t.mentions())?;
                scope.write_filter(out, "restrictSearchWithMatch", Some(f))?;
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
        scope.write_conditions_doc(out, "restrictSearchWithMatch")?;
    }
    close_stage(out, opened);
    Ok(())
}

fn union_with(
    spec: &Element<'_>,
    db: &str,
    t: &Tenant<'_>,
    out: &mut DocBuilder,
) -> Result<(), Rejection> {
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
    let (stages, input) = match (coll, pipeline) {
        (Some(c), p) => {
            let scope = t.read_scope(c)?;
            (
                match p {
                    Some(p) => p,
                    None => empty_pipeline()?,
                },
                Input::Collection(scope),
            )
        }
        (None, Some(p)) => (p, Input::Documents),
        (None, None) => {
            return Err(Rejection::new(
                Rule::MalformedCommand,
                "$unionWith needs coll or pipeline",
            ));
        }
    };
    let opened = open_stage("$unionWith", out)?;
    if let Some(c) = coll {
        out.str("coll", c)?;
    }
    let sub = out.open("pipeline", true)?;
    rewrite(stages, input, db, t, out)?;
    out.close(sub);
    close_stage(out, opened);
    Ok(())
}

fn facet(
    spec: &Element<'_>,
    db: &str,
    t: &Tenant<'_>,
    out: &mut DocBuilder,
) -> Result<(), Rejection> {
    let d = spec_doc(spec)?;
    let opened = open_stage("$facet", out)?;
    for element in elements(d) {
        let e = element?;
        let stages = as_stages(&e)?;
        let branch = out.open(e.key(), true)?;
        rewrite(stages, Input::Scoped, db, t, out)?;
        out.close(branch);
    }
    close_stage(out, opened);
    Ok(())
}

fn as_stages<'a>(e: &Element<'a>) -> Result<&'a RawDocument, Rejection> {
    e.as_array()
        .ok_or_else(|| Rejection::new(Rule::MalformedCommand, "a pipeline must be an array"))
}
