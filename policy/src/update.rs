//! Update documents: operator updates, replacements and update pipelines.
//!
//! A tenant may change anything but the tenant field. Operator updates are checked path by path
//! (`$set`, `$unset`, `$rename` source and target, `$inc`, `$push`, dotted and positional paths
//! such as `tenantId.x` or `tenantId.$[]`…); setting the field to the caller's own tenant is the
//! only write allowed. A replacement document gets `tenant_field: T` (another value is refused).
//! An update pipeline always gets a final `{$set: {tenant_field: {$literal: T}}}`, so whatever its
//! stages compute, the document leaves with T; explicit attempts in its stages are still refused
//! so they are audited. Optional `updatedAt` / `createdAt` stamping happens here too.

use bson::{DateTime, RawDocument, RawDocumentBuf};

use crate::decision::{Rejection, Rule};
use crate::raw::{DocBuilder, Value, elements, get, items};

/// A rewritten update: a document (operators or replacement) or a pipeline (as its array
/// document).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Updated {
    Document(RawDocumentBuf),
    Pipeline(RawDocumentBuf),
}

impl Updated {
    /// Appends the rewritten update under `key`.
    pub(crate) fn append_to(&self, out: &mut DocBuilder, key: &str) -> Result<(), Rejection> {
        match self {
            Updated::Document(d) => out.doc(key, d)?,
            Updated::Pipeline(a) => out.array(key, a)?,
        }
        Ok(())
    }
}

/// Update operators MongoDB defines. Anything else is refused.
const OPERATORS: [&str; 15] = [
    "$set",
    "$unset",
    "$inc",
    "$mul",
    "$rename",
    "$setOnInsert",
    "$min",
    "$max",
    "$currentDate",
    "$push",
    "$addToSet",
    "$pop",
    "$pull",
    "$pullAll",
    "$bit",
];

/// Stages allowed in an update pipeline (MongoDB's own list).
const PIPELINE_STAGES: [&str; 6] = [
    "$addFields",
    "$set",
    "$project",
    "$unset",
    "$replaceRoot",
    "$replaceWith",
];

/// Timestamps to stamp on a write.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp<'a> {
    pub created_field: &'a str,
    pub updated_field: &'a str,
    pub now: DateTime,
}

/// What a write may and must do to documents.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriteRules<'a> {
    pub tenant: &'a str,
    pub tenant_field: &'a str,
    /// Whether the collection is tenant-scoped (false: `global`, written by `super_admin` only,
    /// who never reaches this module unless acting as a tenant).
    pub stamp_tenant: bool,
    pub stamp: Option<Stamp<'a>>,
}

/// The top-level field a dotted path starts with, as bytes.
fn first_segment(path: &[u8]) -> &[u8] {
    path.split(|&b| b == b'.').next().unwrap_or(path)
}

fn field_write(w: &WriteRules<'_>, detail: &str) -> Rejection {
    Rejection::new(
        Rule::TenantFieldWrite,
        format!("{detail} would change '{}'", w.tenant_field),
    )
}

/// Checks and rewrites the `u` of an update statement (or `update` of findAndModify).
/// Returns `None` when the original can be forwarded unchanged.
pub(crate) fn rewrite_update(
    u: Value<'_>,
    w: &WriteRules<'_>,
) -> Result<Option<Updated>, Rejection> {
    match u {
        Value::Document(d) if crate::raw::is_operator_doc(d) => {
            rewrite_operators(d, w).map(|o| o.map(Updated::Document))
        }
        Value::Document(d) => rewrite_replacement(d, w).map(|o| o.map(Updated::Document)),
        Value::Array(stages) => rewrite_pipeline(stages, w).map(|a| Some(Updated::Pipeline(a))),
        _ => Err(Rejection::new(
            Rule::MalformedCommand,
            "an update must be a document or a pipeline",
        )),
    }
}

fn rewrite_operators(
    d: &RawDocument,
    w: &WriteRules<'_>,
) -> Result<Option<RawDocumentBuf>, Rejection> {
    let mut touches_stamps = false;
    for element in elements(d) {
        let e = element?;
        let op_bytes = e.key_bytes();
        if !crate::rewrite::listed(&OPERATORS, op_bytes) {
            let op = e.key();
            return Err(Rejection::new(
                Rule::UnknownField,
                if op.starts_with('$') {
                    format!("unknown update operator {}", crate::audit::clip(op))
                } else {
                    format!(
                        "update mixes operators with the plain field '{}'",
                        crate::audit::clip(op)
                    )
                },
            ));
        }
        let Value::Document(paths) = e.value() else {
            return Err(Rejection::new(
                Rule::MalformedCommand,
                format!("{} must be a document", e.key()),
            ));
        };
        let tenant_field = w.tenant_field.as_bytes();
        for element in elements(paths) {
            let pe = element?;
            let (path, value) = (pe.key_bytes(), pe.value());
            if first_segment(path) == tenant_field {
                let own = matches!(op_bytes, b"$set" | b"$setOnInsert")
                    && path == tenant_field
                    && matches!(value, Value::String(s) if s == w.tenant);
                if !own {
                    return Err(field_write(
                        w,
                        &format!("{} on '{}'", e.key(), crate::audit::clip(pe.key())),
                    ));
                }
            }
            if op_bytes == b"$rename" {
                match value {
                    Value::String(target) if first_segment(target.as_bytes()) == tenant_field => {
                        return Err(field_write(w, "$rename"));
                    }
                    Value::String(target) => {
                        if let Some(s) = w.stamp {
                            let seg = first_segment(target.as_bytes());
                            touches_stamps |= seg == s.created_field.as_bytes()
                                || seg == s.updated_field.as_bytes();
                        }
                    }
                    _ => {
                        return Err(Rejection::new(
                            Rule::MalformedCommand,
                            "$rename targets must be strings",
                        ));
                    }
                }
            }
            if let Some(s) = w.stamp {
                let seg = first_segment(path);
                let updated = s.updated_field.as_bytes();
                // Only `$set` of the whole updated field is replaced by the stamp; any other
                // write under either field would conflict with it, so nothing is stamped then.
                touches_stamps |= seg == s.created_field.as_bytes()
                    || (seg == updated && !(op_bytes == b"$set" && path == updated));
            }
        }
    }
    match w.stamp {
        Some(s) if !touches_stamps => stamp_operators(d, s).map(Some),
        _ => Ok(None),
    }
}

/// Adds `$set: {updated: now}` (replacing a client value) and `$setOnInsert: {created: now}`.
fn stamp_operators(d: &RawDocument, s: Stamp<'_>) -> Result<RawDocumentBuf, Rejection> {
    let now = s.now.timestamp_millis();
    let mut out = DocBuilder::with_capacity(d.as_bytes().len() + 64);
    let mut saw_set = false;
    let mut saw_set_on_insert = false;
    for element in elements(d) {
        let e = element?;
        match (e.key(), e.value()) {
            ("$set", Value::Document(paths)) => {
                saw_set = true;
                let mut set = DocBuilder::with_capacity(paths.as_bytes().len() + 32);
                for element in elements(paths) {
                    let pe = element?;
                    if pe.key() != s.updated_field {
                        set.element(pe.key(), &pe)?;
                    }
                }
                set.datetime(s.updated_field, now)?;
                out.doc("$set", &set.finish())?;
            }
            ("$setOnInsert", Value::Document(paths)) => {
                saw_set_on_insert = true;
                let mut soi = DocBuilder::extending(paths, 32);
                soi.datetime(s.created_field, now)?;
                out.doc("$setOnInsert", &soi.finish())?;
            }
            _ => out.copy(&e),
        }
    }
    if !saw_set {
        let mut set = DocBuilder::with_capacity(32);
        set.datetime(s.updated_field, now)?;
        out.doc("$set", &set.finish())?;
    }
    if !saw_set_on_insert {
        let mut soi = DocBuilder::with_capacity(32);
        soi.datetime(s.created_field, now)?;
        out.doc("$setOnInsert", &soi.finish())?;
    }
    Ok(out.finish())
}

/// A replacement (or inserted) document: tenant field T (refused if another value), optional
/// stamps. `None` when the document can be forwarded as it is.
pub(crate) fn rewrite_replacement(
    d: &RawDocument,
    w: &WriteRules<'_>,
) -> Result<Option<RawDocumentBuf>, Rejection> {
    Ok(match replacement_plan(d, w)? {
        None => None,
        Some(needs_tenant) => {
            let mut out = DocBuilder::with_capacity(d.as_bytes().len() + 64);
            write_replacement(d, w, needs_tenant, &mut out)?;
            Some(out.finish())
        }
    })
}

/// Checks a replacement (or inserted) document's tenant field: `None` when the document can be
/// forwarded as it is, else whether the tenant field must be added.
pub(crate) fn replacement_plan(
    d: &RawDocument,
    w: &WriteRules<'_>,
) -> Result<Option<bool>, Rejection> {
    let needs_tenant = match get(d, w.tenant_field)?.map(|e| e.value()) {
        Some(Value::String(s)) if s == w.tenant => false,
        Some(_) => return Err(field_write(w, "a document carrying another tenant's id")),
        None => w.stamp_tenant,
    };
    Ok((needs_tenant || w.stamp.is_some()).then_some(needs_tenant))
}

/// Appends the elements of the rewritten replacement to the document open in `out`.
pub(crate) fn write_replacement(
    d: &RawDocument,
    w: &WriteRules<'_>,
    needs_tenant: bool,
    out: &mut DocBuilder,
) -> Result<(), Rejection> {
    match w.stamp {
        None => {
            out.extend_elements(d);
            if needs_tenant {
                out.str(w.tenant_field, w.tenant)?;
            }
        }
        Some(s) => {
            let now = s.now.timestamp_millis();
            let mut has_created = false;
            for element in elements(d) {
                let e = element?;
                has_created |= e.key_bytes() == s.created_field.as_bytes();
                if e.key_bytes() != s.updated_field.as_bytes() {
                    out.copy(&e);
                }
            }
            if needs_tenant {
                out.str(w.tenant_field, w.tenant)?;
            }
            if !has_created {
                out.datetime(s.created_field, now)?;
            }
            out.datetime(s.updated_field, now)?;
        }
    }
    Ok(())
}

fn rewrite_pipeline(stages: &RawDocument, w: &WriteRules<'_>) -> Result<RawDocumentBuf, Rejection> {
    let mut out = DocBuilder::with_capacity(stages.as_bytes().len() + 64);
    for element in elements(stages) {
        let item = element?;
        let Value::Document(stage) = item.value() else {
            return Err(Rejection::new(
                Rule::MalformedCommand,
                "update pipeline stages must be documents",
            ));
        };
        let mut it = elements(stage);
        let spec = match (it.next(), it.next()) {
            (Some(first), None) => first?,
            _ => {
                return Err(Rejection::new(
                    Rule::MalformedCommand,
                    "a pipeline stage must have exactly one field",
                ));
            }
        };
        let name = spec.key();
        if !PIPELINE_STAGES.contains(&name) {
            return Err(Rejection::new(
                Rule::StageNotAllowed,
                format!(
                    "{} is not allowed in an update pipeline",
                    crate::audit::clip(name)
                ),
            ));
        }
        check_pipeline_stage(name, spec.value(), w)?;
        out.push_element(&item)?;
    }
    let mut literal = DocBuilder::with_capacity(32);
    literal.str("$literal", w.tenant)?;
    let mut set = DocBuilder::with_capacity(64);
    set.doc(w.tenant_field, &literal.finish())?;
    if let Some(s) = w.stamp {
        set.datetime(s.updated_field, s.now.timestamp_millis())?;
    }
    let mut stage = DocBuilder::with_capacity(64);
    stage.doc("$set", &set.finish())?;
    out.push_doc(&stage.finish())?;
    Ok(out.finish())
}

fn check_pipeline_stage(name: &str, spec: Value<'_>, w: &WriteRules<'_>) -> Result<(), Rejection> {
    let touches = |path: &[u8]| first_segment(path) == w.tenant_field.as_bytes();
    match (name, spec) {
        ("$set" | "$addFields", Value::Document(d)) => {
            for element in elements(d) {
                let e = element?;
                if touches(e.key_bytes()) && !matches!(e.value(), Value::String(s) if s == w.tenant)
                {
                    return Err(field_write(
                        w,
                        &format!("{name} on '{}'", crate::audit::clip(e.key())),
                    ));
                }
            }
        }
        ("$unset", Value::String(s)) if touches(s.as_bytes()) => {
            return Err(field_write(w, "$unset"));
        }
        ("$unset", Value::Array(a)) => {
            for item in items(a) {
                if matches!(item?, Value::String(s) if touches(s.as_bytes())) {
                    return Err(field_write(w, "$unset"));
                }
            }
        }
        ("$project", Value::Document(d)) => {
            for element in elements(d) {
                let e = element?;
                let v = e.value();
                let excluded = matches!(v, Value::Bool(false) | Value::Int32(0) | Value::Int64(0));
                let computed = !matches!(
                    v,
                    Value::Bool(_) | Value::Int32(_) | Value::Int64(_) | Value::Double(_)
                );
                if touches(e.key_bytes()) && (excluded || computed) {
                    return Err(field_write(w, "$project"));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, rawdoc};

    const W: WriteRules<'static> = WriteRules {
        tenant: "bank1",
        tenant_field: "tenantId",
        stamp_tenant: true,
        stamp: None,
    };

    fn stages(holder: RawDocumentBuf) -> RawDocumentBuf {
        let arr = crate::raw::get(&holder, "p")
            .expect("ok")
            .and_then(|e| e.as_array())
            .expect("array");
        arr.to_owned()
    }

    fn decoded(d: &RawDocumentBuf) -> bson::Document {
        bson::Document::try_from(d.as_ref()).expect("decodes")
    }

    fn rule(u: RawDocumentBuf) -> Option<Rule> {
        rewrite_update(Value::Document(&u), &W)
            .err()
            .map(|r| r.rule)
    }

    #[test]
    fn operator_updates_may_not_touch_the_tenant_field() {
        for u in [
            rawdoc! { "$set": { "tenantId": "bank2" } },
            rawdoc! { "$set": { "tenantId.x": 1 } },
            rawdoc! { "$unset": { "tenantId": "" } },
            rawdoc! { "$rename": { "tenantId": "t" } },
            rawdoc! { "$rename": { "owner": "tenantId" } },
            rawdoc! { "$setOnInsert": { "tenantId": "bank2" } },
            rawdoc! { "$inc": { "tenantId": 1 } },
            rawdoc! { "$push": { "tenantId": "x" } },
            rawdoc! { "$set": { "tenantId.$[]": "x" } },
            rawdoc! { "$currentDate": { "tenantId": true } },
        ] {
            assert_eq!(rule(u.clone()), Some(Rule::TenantFieldWrite), "{u:?}");
        }
        assert_eq!(
            rule(rawdoc! { "$evil": { "a": 1 } }),
            Some(Rule::UnknownField)
        );
        assert_eq!(
            rule(rawdoc! { "$set": { "a": 1 }, "b": 2 }),
            Some(Rule::UnknownField)
        );
    }

    #[test]
    fn harmless_updates_pass_unchanged() {
        for u in [
            rawdoc! { "$set": { "status": "succeeded", "tenantIdentity": 1 } },
            rawdoc! { "$set": { "tenantId": "bank1" } },
            rawdoc! { "$inc": { "n": 1 }, "$push": { "log": "x" } },
        ] {
            assert_eq!(
                rewrite_update(Value::Document(&u), &W).expect("allowed"),
                None,
                "{u:?}"
            );
        }
    }

    #[test]
    fn replacements_get_the_tenant() {
        let out = rewrite_update(Value::Document(&rawdoc! { "a": 1 }), &W).expect("allowed");
        let Some(Updated::Document(d)) = out else {
            panic!("rewritten")
        };
        assert_eq!(decoded(&d), doc! { "a": 1, "tenantId": "bank1" });
        assert_eq!(
            rule(rawdoc! { "a": 1, "tenantId": "bank2" }),
            Some(Rule::TenantFieldWrite)
        );
        assert_eq!(
            rewrite_update(Value::Document(&rawdoc! { "tenantId": "bank1" }), &W).expect("ok"),
            None
        );
    }

    #[test]
    fn pipelines_end_with_the_tenant() {
        let p = stages(rawdoc! { "p": [ { "$set": { "total": { "$add": ["$a", "$b"] } } } ] });
        let Some(Updated::Pipeline(out)) = rewrite_update(Value::Array(&p), &W).expect("allowed")
        else {
            panic!("pipeline")
        };
        let last = crate::raw::elements(&out)
            .last()
            .and_then(Result::ok)
            .and_then(|e| e.as_document().map(|d| d.to_owned()));
        assert_eq!(
            last.map(|d| decoded(&d)),
            Some(doc! { "$set": { "tenantId": { "$literal": "bank1" } } })
        );
        for bad in [
            stages(rawdoc! { "p": [ { "$set": { "tenantId": "bank2" } } ] }),
            stages(rawdoc! { "p": [ { "$unset": "tenantId" } ] }),
            stages(rawdoc! { "p": [ { "$unset": ["a", "tenantId"] } ] }),
            stages(rawdoc! { "p": [ { "$project": { "tenantId": 0 } } ] }),
            stages(rawdoc! { "p": [ { "$set": { "tenantId": "$other" } } ] }),
        ] {
            assert_eq!(
                rewrite_update(Value::Array(&bad), &W).err().map(|r| r.rule),
                Some(Rule::TenantFieldWrite),
                "{bad:?}"
            );
        }
        let lookup = stages(rawdoc! { "p": [ { "$lookup": { "from": "x", "as": "y" } } ] });
        assert_eq!(
            rewrite_update(Value::Array(&lookup), &W)
                .err()
                .map(|r| r.rule),
            Some(Rule::StageNotAllowed)
        );
    }

    #[test]
    fn stamps_are_added_without_conflicts() {
        let w = WriteRules {
            stamp: Some(Stamp {
                created_field: "createdAt",
                updated_field: "updatedAt",
                now: DateTime::from_millis(5),
            }),
            ..W
        };
        let u = rawdoc! { "$set": { "status": "x", "updatedAt": 1 } };
        let Some(Updated::Document(d)) = rewrite_update(Value::Document(&u), &w).expect("ok")
        else {
            panic!("stamped")
        };
        assert_eq!(
            decoded(&d),
            doc! { "$set": { "status": "x", "updatedAt": DateTime::from_millis(5) }, "$setOnInsert": { "createdAt": DateTime::from_millis(5) } }
        );
    }
}
