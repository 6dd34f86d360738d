//! Update documents: operator updates, replacements and update pipelines.
//!
//! A tenant may change anything but the tenant field. Operator updates are checked path by path
//! (`$set`, `$unset`, `$rename` source and target, `$inc`, `$push`, dotted and positional paths
//! such as `tenantId.x` or `tenantId.$[]`…); setting the field to the caller's own tenant is the
//! only write allowed. A replacement document gets `tenant_field: T` (another value is refused).
//! An update pipeline always gets a final `{$set: {tenant_field: {$literal: T}}}`, so whatever its
//! stages compute, the document leaves with T; explicit attempts in its stages are still refused
//! so they are audited. Optional `updatedAt` / `createdAt` stamping happens here too.

use bson::{DateTime, RawArray, RawArrayBuf, RawBson, RawBsonRef, RawDocument, RawDocumentBuf};

use crate::decision::{Rejection, Rule};
use crate::raw::{elements, items, key, with_string_field};

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

fn first_segment(path: &str) -> &str {
    path.split('.').next().unwrap_or(path)
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
    u: RawBsonRef<'_>,
    w: &WriteRules<'_>,
) -> Result<Option<RawBson>, Rejection> {
    match u {
        RawBsonRef::Document(d) => {
            let operator_form =
                matches!(d.iter().next(), Some(Ok((k, _))) if k.as_str().starts_with('$'));
            if operator_form {
                rewrite_operators(d, w).map(|o| o.map(RawBson::Document))
            } else {
                rewrite_replacement(d, w).map(|o| o.map(RawBson::Document))
            }
        }
        RawBsonRef::Array(stages) => rewrite_pipeline(stages, w).map(|a| Some(RawBson::Array(a))),
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
        let (op, v) = element?;
        if !OPERATORS.contains(&op) {
            return Err(Rejection::new(
                Rule::UnknownField,
                if op.starts_with('$') {
                    format!("unknown update operator {op}")
                } else {
                    format!("update mixes operators with the plain field '{op}'")
                },
            ));
        }
        let RawBsonRef::Document(paths) = v else {
            return Err(Rejection::new(
                Rule::MalformedCommand,
                format!("{op} must be a document"),
            ));
        };
        for element in elements(paths) {
            let (path, value) = element?;
            if first_segment(path) == w.tenant_field {
                let own = matches!(op, "$set" | "$setOnInsert")
                    && path == w.tenant_field
                    && matches!(value, RawBsonRef::String(s) if s == w.tenant);
                if !own {
                    return Err(field_write(w, &format!("{op} on '{path}'")));
                }
            }
            if op == "$rename" {
                match value {
                    RawBsonRef::String(target) if first_segment(target) == w.tenant_field => {
                        return Err(field_write(w, "$rename"));
                    }
                    RawBsonRef::String(_) => {}
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
                // Only `$set` of the whole updated field is replaced by the stamp; any other
                // write under either field would conflict with it, so nothing is stamped then.
                touches_stamps |= seg == s.created_field
                    || (seg == s.updated_field && !(op == "$set" && path == s.updated_field));
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
    let mut out = RawDocumentBuf::new();
    let mut saw_set = false;
    let mut saw_set_on_insert = false;
    for element in elements(d) {
        let (op, v) = element?;
        match (op, v) {
            ("$set", RawBsonRef::Document(paths)) => {
                saw_set = true;
                let mut set = RawDocumentBuf::new();
                for element in elements(paths) {
                    let (p, pv) = element?;
                    if p != s.updated_field {
                        set.append(key(p)?, pv);
                    }
                }
                set.append(key(s.updated_field)?, s.now);
                out.append(key(op)?, set);
            }
            ("$setOnInsert", RawBsonRef::Document(paths)) => {
                saw_set_on_insert = true;
                let mut soi = paths.to_owned();
                soi.append(key(s.created_field)?, s.now);
                out.append(key(op)?, soi);
            }
            _ => out.append(key(op)?, v),
        }
    }
    if !saw_set {
        let mut set = RawDocumentBuf::new();
        set.append(key(s.updated_field)?, s.now);
        out.append(bson::raw::cstr!("$set"), set);
    }
    if !saw_set_on_insert {
        let mut soi = RawDocumentBuf::new();
        soi.append(key(s.created_field)?, s.now);
        out.append(bson::raw::cstr!("$setOnInsert"), soi);
    }
    Ok(out)
}

/// A replacement document: tenant field T (refused if another value), optional stamps.
pub(crate) fn rewrite_replacement(
    d: &RawDocument,
    w: &WriteRules<'_>,
) -> Result<Option<RawDocumentBuf>, Rejection> {
    let existing = d
        .get(w.tenant_field)
        .map_err(|_| Rejection::new(Rule::MalformedCommand, "malformed document"))?;
    let needs_tenant = match existing {
        Some(RawBsonRef::String(s)) if s == w.tenant => false,
        Some(_) => return Err(field_write(w, "a document carrying another tenant's id")),
        None => w.stamp_tenant,
    };
    match w.stamp {
        None if !needs_tenant => Ok(None),
        None => Ok(Some(with_string_field(d, w.tenant_field, w.tenant))),
        Some(s) => {
            let mut out = RawDocumentBuf::new();
            let mut has_created = false;
            for element in elements(d) {
                let (k, v) = element?;
                has_created |= k == s.created_field;
                if k != s.updated_field {
                    out.append(key(k)?, v);
                }
            }
            if needs_tenant {
                out.append(key(w.tenant_field)?, w.tenant);
            }
            if !has_created {
                out.append(key(s.created_field)?, s.now);
            }
            out.append(key(s.updated_field)?, s.now);
            Ok(Some(out))
        }
    }
}

fn rewrite_pipeline(stages: &RawArray, w: &WriteRules<'_>) -> Result<RawArrayBuf, Rejection> {
    let mut out = RawArrayBuf::new();
    for item in items(stages) {
        let RawBsonRef::Document(stage) = item? else {
            return Err(Rejection::new(
                Rule::MalformedCommand,
                "update pipeline stages must be documents",
            ));
        };
        let mut it = elements(stage);
        let (name, spec) = match (it.next(), it.next()) {
            (Some(first), None) => first?,
            _ => {
                return Err(Rejection::new(
                    Rule::MalformedCommand,
                    "a pipeline stage must have exactly one field",
                ));
            }
        };
        if !PIPELINE_STAGES.contains(&name) {
            return Err(Rejection::new(
                Rule::StageNotAllowed,
                format!("{name} is not allowed in an update pipeline"),
            ));
        }
        check_pipeline_stage(name, spec, w)?;
        out.push(stage);
    }
    let mut set = RawDocumentBuf::new();
    let mut literal = RawDocumentBuf::new();
    literal.append(bson::raw::cstr!("$literal"), w.tenant);
    set.append(key(w.tenant_field)?, literal);
    if let Some(s) = w.stamp {
        set.append(key(s.updated_field)?, s.now);
    }
    let mut stage = RawDocumentBuf::new();
    stage.append(bson::raw::cstr!("$set"), set);
    out.push(stage);
    Ok(out)
}

fn check_pipeline_stage(
    name: &str,
    spec: RawBsonRef<'_>,
    w: &WriteRules<'_>,
) -> Result<(), Rejection> {
    let touches = |path: &str| first_segment(path) == w.tenant_field;
    match (name, spec) {
        ("$set" | "$addFields", RawBsonRef::Document(d)) => {
            for element in elements(d) {
                let (k, v) = element?;
                if touches(k) && !matches!(v, RawBsonRef::String(s) if s == w.tenant) {
                    return Err(field_write(w, &format!("{name} on '{k}'")));
                }
            }
        }
        ("$unset", RawBsonRef::String(s)) if touches(s) => return Err(field_write(w, "$unset")),
        ("$unset", RawBsonRef::Array(a)) => {
            for item in items(a) {
                if matches!(item?, RawBsonRef::String(s) if touches(s)) {
                    return Err(field_write(w, "$unset"));
                }
            }
        }
        ("$project", RawBsonRef::Document(d)) => {
            for element in elements(d) {
                let (k, v) = element?;
                let excluded = matches!(
                    v,
                    RawBsonRef::Boolean(false) | RawBsonRef::Int32(0) | RawBsonRef::Int64(0)
                );
                let computed = !matches!(
                    v,
                    RawBsonRef::Boolean(_)
                        | RawBsonRef::Int32(_)
                        | RawBsonRef::Int64(_)
                        | RawBsonRef::Double(_)
                );
                if touches(k) && (excluded || computed) {
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

    fn stages(holder: RawDocumentBuf) -> RawArrayBuf {
        holder.get_array("p").expect("array").to_owned()
    }

    fn decoded(d: &RawDocumentBuf) -> bson::Document {
        bson::Document::try_from(d.as_ref()).expect("decodes")
    }

    fn rule(u: RawBson) -> Option<Rule> {
        rewrite_update(u.as_raw_bson_ref(), &W)
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
            assert_eq!(
                rule(RawBson::Document(u.clone())),
                Some(Rule::TenantFieldWrite),
                "{u:?}"
            );
        }
        assert_eq!(
            rule(RawBson::Document(rawdoc! { "$evil": { "a": 1 } })),
            Some(Rule::UnknownField)
        );
        assert_eq!(
            rule(RawBson::Document(rawdoc! { "$set": { "a": 1 }, "b": 2 })),
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
                rewrite_update(RawBsonRef::Document(&u), &W).expect("allowed"),
                None,
                "{u:?}"
            );
        }
    }

    #[test]
    fn replacements_get_the_tenant() {
        let out = rewrite_update(RawBsonRef::Document(&rawdoc! { "a": 1 }), &W).expect("allowed");
        let Some(RawBson::Document(d)) = out else {
            panic!("rewritten")
        };
        assert_eq!(decoded(&d), doc! { "a": 1, "tenantId": "bank1" });
        assert_eq!(
            rule(RawBson::Document(rawdoc! { "a": 1, "tenantId": "bank2" })),
            Some(Rule::TenantFieldWrite)
        );
        assert_eq!(
            rewrite_update(RawBsonRef::Document(&rawdoc! { "tenantId": "bank1" }), &W).expect("ok"),
            None
        );
    }

    #[test]
    fn pipelines_end_with_the_tenant() {
        let p = stages(rawdoc! { "p": [ { "$set": { "total": { "$add": ["$a", "$b"] } } } ] });
        let Some(RawBson::Array(out)) = rewrite_update(RawBsonRef::Array(&p), &W).expect("allowed")
        else {
            panic!("pipeline")
        };
        let last = out
            .into_iter()
            .last()
            .and_then(Result::ok)
            .and_then(|v| v.as_document().map(|d| d.to_owned()));
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
                rewrite_update(RawBsonRef::Array(&bad), &W)
                    .err()
                    .map(|r| r.rule),
                Some(Rule::TenantFieldWrite),
                "{bad:?}"
            );
        }
        let lookup = stages(rawdoc! { "p": [ { "$lookup": { "from": "x", "as": "y" } } ] });
        assert_eq!(
            rewrite_update(RawBsonRef::Array(&lookup), &W)
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
        let Some(RawBson::Document(d)) = rewrite_update(RawBsonRef::Document(&u), &w).expect("ok")
        else {
            panic!("stamped")
        };
        assert_eq!(
            decoded(&d),
            doc! { "$set": { "status": "x", "updatedAt": DateTime::from_millis(5) }, "$setOnInsert": { "createdAt": DateTime::from_millis(5) } }
        );
    }
}
