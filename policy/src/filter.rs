//! Override detection in query filters and aggregation expressions.
//!
//! The scoped filter ([`crate::scope`]) already makes escaping impossible; this module finds the
//! *attempts*, so they are refused and audited rather than silently answered with nothing. A
//! filter may name the tenant field only to say what the scope says anyway — `T`, `{$eq: T}`,
//! `{$in: [T]}`, or in `$expr` exactly `{$eq: ["$tenantId", T]}` (at its top or under its
//! `$and`/`$or`, never negated or nested in another operator). Any other mention, anywhere
//! (`$or`/`$and`/`$nor`/`$not`/`$elemMatch`, dotted paths, `$expr` field paths and `$getField`,
//! `$jsonSchema`, `$ne`, `$in`, `$regex`…), is `tenant_override`. The check is deliberately
//! conservative: a field named like the tenant field inside `$elemMatch` counts too.
//!
//! Unknown top-level query operators are refused (default deny).

use bson::RawDocument;

use crate::decision::{Rejection, Rule};
use crate::raw::{Value, elements, first, get, is_operator_doc, items};

/// Query operators allowed at the top level of a filter (besides field paths).
const TOP_LEVEL_OPERATORS: [&str; 9] = [
    "$and",
    "$or",
    "$nor",
    "$expr",
    "$jsonSchema",
    "$text",
    "$comment",
    "$alwaysTrue",
    "$alwaysFalse",
];

/// Names the engine needs while checking.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mentions<'a> {
    pub tenant: &'a str,
    pub tenant_field: &'a str,
}

fn override_attempt(m: &Mentions<'_>, detail: &str) -> Rejection {
    Rejection::new(
        Rule::TenantOverride,
        format!(
            "{detail} names '{}' with a value other than the caller's tenant",
            m.tenant_field
        ),
    )
}

impl Mentions<'_> {
    fn is_tenant_path(&self, path: &[u8]) -> bool {
        let field = self.tenant_field.as_bytes();
        path == field || (path.starts_with(field) && path.get(field.len()) == Some(&b'.'))
    }

    /// A field-path string in an expression that reaches the tenant field: `$tenantId…`, or any
    /// variable path `$$<var>.tenantId…` (`$$ROOT`, `$$CURRENT`, or a `$let` alias of them —
    /// conservatively, every variable).
    fn is_tenant_ref(&self, s: &str) -> bool {
        let Some(rest) = s.strip_prefix('$') else {
            return false;
        };
        match rest.strip_prefix('$') {
            Some(var_path) => var_path
                .split_once('.')
                .is_some_and(|(_, path)| self.is_tenant_path(path.as_bytes())),
            None => self.is_tenant_path(rest.as_bytes()),
        }
    }
}

/// Checks a query filter.
pub(crate) fn check_filter(filter: &RawDocument, m: &Mentions<'_>) -> Result<(), Rejection> {
    check_query(filter, m, false)
}

/// `negated`: under `$nor`, where even `tenantId: T` asks for *other* tenants' documents.
fn check_query(filter: &RawDocument, m: &Mentions<'_>, negated: bool) -> Result<(), Rejection> {
    for element in elements(filter) {
        let e = element?;
        let key = e.key_bytes();
        if key.first() == Some(&b'$') {
            match key {
                b"$and" | b"$or" | b"$nor" => {
                    let op = e.key();
                    let Value::Array(arr) = e.value() else {
                        return Err(Rejection::new(
                            Rule::MalformedCommand,
                            format!("{op} must be an array"),
                        ));
                    };
                    for item in items(arr) {
                        match item? {
                            Value::Document(d) => check_query(d, m, negated || op == "$nor")?,
                            _ => {
                                return Err(Rejection::new(
                                    Rule::MalformedCommand,
                                    format!("{op} must hold documents"),
                                ));
                            }
                        }
                    }
                }
                // Under `$nor` the own-tenant equality asks for other tenants' documents.
                b"$expr" => check_expr(e.value(), m, !negated)?,
                b"$jsonSchema" => {
                    if mentions_anywhere(e.value(), m)? {
                        return Err(override_attempt(m, "$jsonSchema"));
                    }
                }
                _ if crate::rewrite::listed(&TOP_LEVEL_OPERATORS, key) => {}
                _ => {
                    return Err(Rejection::new(
                        Rule::UnknownField,
                        format!(
                            "unknown top-level query operator {}",
                            crate::audit::clip(e.key())
                        ),
                    ));
                }
            }
        } else if m.is_tenant_path(key) {
            if negated || !is_own_tenant_condition(e.value(), m)? {
                return Err(override_attempt(m, "the filter"));
            }
        } else {
            check_field_condition(e.value(), m)?;
        }
    }
    Ok(())
}

/// `T`, `{$eq: T}` or `{$in: [T, …]}`.
fn is_own_tenant_condition(value: Value<'_>, m: &Mentions<'_>) -> Result<bool, Rejection> {
    Ok(match value {
        Value::String(s) => s == m.tenant,
        Value::Document(d) => {
            let mut it = elements(d);
            let (Some(op), None) = (it.next().transpose()?, it.next()) else {
                return Ok(false);
            };
            match (op.key_bytes(), op.value()) {
                (b"$eq", Value::String(s)) => s == m.tenant,
                (b"$in", Value::Array(a)) => {
                    let mut any = false;
                    for item in items(a) {
                        match item? {
                            Value::String(s) if s == m.tenant => any = true,
                            _ => return Ok(false),
                        }
                    }
                    any
                }
                _ => false,
            }
        }
        _ => false,
    })
}

/// The value of a non-tenant field path: an equality literal, or an operator document whose
/// nested queries (`$elemMatch`, `$not`, `$all` of `$elemMatch`) are checked in turn.
fn check_field_condition(value: Value<'_>, m: &Mentions<'_>) -> Result<(), Rejection> {
    let Value::Document(d) = value else {
        return Ok(());
    };
    if !is_operator_doc(d) {
        // An equality match against an embedded document: literal data, but a key named like
        // the tenant field inside it is still treated as an attempt.
        return check_literal(d, m);
    }
    check_operators(d, m)
}

fn check_operators(ops: &RawDocument, m: &Mentions<'_>) -> Result<(), Rejection> {
    for element in elements(ops) {
        let e = element?;
        match (e.key_bytes(), e.value()) {
            (b"$elemMatch", Value::Document(inner)) => {
                let operator_form = matches!(first(inner)?, Some(k) if k.key_bytes().first() == Some(&b'$')
                    && !matches!(k.key_bytes(), b"$and" | b"$or" | b"$nor" | b"$expr"));
                if operator_form {
                    check_operators(inner, m)?
                } else {
                    check_filter(inner, m)?
                }
            }
            (b"$not", Value::Document(inner)) => check_operators(inner, m)?,
            (b"$all", Value::Array(a)) => {
                for item in items(a) {
                    if let d @ Value::Document(_) = item? {
                        check_field_condition(d, m)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_literal(d: &RawDocument, m: &Mentions<'_>) -> Result<(), Rejection> {
    for element in elements(d) {
        let e = element?;
        let v = e.value();
        if e.key_bytes() == m.tenant_field.as_bytes()
            && !matches!(v, Value::String(s) if s == m.tenant)
        {
            return Err(override_attempt(m, "an embedded document in the filter"));
        }
        if let Value::Document(inner) = v {
            check_literal(inner, m)?;
        }
    }
    Ok(())
}

/// Whether a key or string equal to the tenant field appears anywhere below `value`.
fn mentions_anywhere(value: Value<'_>, m: &Mentions<'_>) -> Result<bool, Rejection> {
    match value {
        Value::String(s) => Ok(s == m.tenant_field || m.is_tenant_ref(s)),
        Value::Document(d) | Value::Array(d) => {
            let is_array = matches!(value, Value::Array(_));
            for element in elements(d) {
                let e = element?;
                if (!is_array && m.is_tenant_path(e.key_bytes()))
                    || mentions_anywhere(e.value(), m)?
                {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        _ => Ok(false),
    }
}

/// Checks an aggregation expression (`$expr`, `let`, stage expressions that filter).
pub(crate) fn check_expression(value: Value<'_>, m: &Mentions<'_>) -> Result<(), Rejection> {
    check_expr(value, m, true)
}

/// `affirmative`: the expression's truth selects documents (the top of `$expr`, and `$and` /
/// `$or` below it). Only there does `{$eq: ["$tenantId", T]}` say what the scope says; under
/// `$not`, `$cond`, a comparison or a query `$nor`, the same equality asks for other tenants.
fn check_expr(value: Value<'_>, m: &Mentions<'_>, affirmative: bool) -> Result<(), Rejection> {
    match value {
        Value::String(s) if m.is_tenant_ref(s) => Err(override_attempt(m, "an expression")),
        Value::Array(a) => {
            for item in items(a) {
                check_expr(item?, m, affirmative)?;
            }
            Ok(())
        }
        Value::Document(d) => {
            if affirmative && is_own_tenant_expression(d, m)? {
                return Ok(());
            }
            for element in elements(d) {
                let e = element?;
                let v = e.value();
                match e.key_bytes() {
                    b"$literal" => {}
                    b"$getField" => {
                        let field = match v {
                            Value::String(s) => Some(s),
                            Value::Document(args) => match get(args, "field")?.map(|f| f.value()) {
                                Some(Value::String(s)) => Some(s),
                                // `{field: {$literal: "tenantId"}}` names the field just the same.
                                Some(Value::Document(f)) => {
                                    get(f, "$literal")?.and_then(|l| l.as_str())
                                }
                                _ => None,
                            },
                            _ => None,
                        };
                        if field.is_some_and(|f| m.is_tenant_path(f.as_bytes())) {
                            return Err(override_attempt(m, "$getField"));
                        }
                        check_expr(v, m, false)?;
                    }
                    b"$and" | b"$or" => check_expr(v, m, affirmative)?,
                    _ => check_expr(v, m, false)?,
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// `{$eq: ["$tenantId", T]}` or `{$eq: [T, "$tenantId"]}`.
fn is_own_tenant_expression(d: &RawDocument, m: &Mentions<'_>) -> Result<bool, Rejection> {
    let mut it = elements(d);
    let (Some(op), None) = (it.next().transpose()?, it.next()) else {
        return Ok(false);
    };
    let (true, Value::Array(args)) = (op.key_bytes() == b"$eq", op.value()) else {
        return Ok(false);
    };
    let mut args = items(args);
    let (Some(a), Some(b), None) = (
        args.next().transpose()?,
        args.next().transpose()?,
        args.next(),
    ) else {
        return Ok(false);
    };
    Ok(match (a, b) {
        (Value::String(a), Value::String(b)) => {
            (m.is_tenant_ref(a) && b == m.tenant) || (m.is_tenant_ref(b) && a == m.tenant)
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::rawdoc;

    const M: Mentions<'static> = Mentions {
        tenant: "bank1",
        tenant_field: "tenantId",
    };

    fn rule(f: bson::RawDocumentBuf) -> Option<Rule> {
        check_filter(&f, &M).err().map(|r| r.rule)
    }

    #[test]
    fn own_tenant_mentions_are_allowed() {
        for f in [
            rawdoc! {},
            rawdoc! { "tenantId": "bank1" },
            rawdoc! { "tenantId": { "$eq": "bank1" } },
            rawdoc! { "tenantId": { "$in": ["bank1"] } },
            rawdoc! { "$and": [ { "tenantId": "bank1" }, { "amount": { "$gt": 5 } } ] },
            rawdoc! { "$expr": { "$eq": ["$tenantId", "bank1"] } },
            rawdoc! { "$expr": { "$gt": ["$amount", 100] } },
            rawdoc! { "items": { "$elemMatch": { "qty": { "$gt": 1 } } } },
            rawdoc! { "scores": { "$elemMatch": { "$gte": 80, "$lt": 85 } } },
            rawdoc! { "status": { "$not": { "$eq": "failed" } } },
            rawdoc! { "$text": { "$search": "invoice" } },
        ] {
            assert_eq!(rule(f.clone()), None, "{f:?}");
        }
    }

    #[test]
    fn every_other_mention_is_an_override() {
        for f in [
            rawdoc! { "tenantId": "bank2" },
            rawdoc! { "tenantId": { "$ne": "bank1" } },
            rawdoc! { "tenantId": { "$in": ["bank1", "bank2"] } },
            rawdoc! { "tenantId": { "$nin": ["bank1"] } },
            rawdoc! { "tenantId": { "$regex": "bank" } },
            rawdoc! { "tenantId": { "$exists": true } },
            rawdoc! { "tenantId": { "$gt": "" } },
            rawdoc! { "tenantId": { "$eq": "bank1", "$ne": "x" } },
            rawdoc! { "tenantId.x": 1 },
            rawdoc! { "$or": [ { "tenantId": "bank2" }, { "a": 1 } ] },
            rawdoc! { "$nor": [ { "tenantId": "bank1" } ] },
            rawdoc! { "$and": [ { "$or": [ { "tenantId": { "$not": { "$eq": "bank1" } } } ] } ] },
            rawdoc! { "items": { "$elemMatch": { "tenantId": "bank2" } } },
            rawdoc! { "$expr": { "$ne": ["$tenantId", "bank1"] } },
            rawdoc! { "$expr": { "$eq": ["$$ROOT.tenantId", "bank2"] } },
            rawdoc! { "$expr": { "$eq": [{ "$getField": "tenantId" }, "bank2"] } },
            rawdoc! { "$expr": { "$in": ["$tenantId", ["bank1", "bank2"]] } },
            rawdoc! { "$jsonSchema": { "properties": { "tenantId": { "enum": ["bank2"] } } } },
            rawdoc! { "meta": { "tenantId": "bank2" } },
        ] {
            assert_eq!(rule(f.clone()), Some(Rule::TenantOverride), "{f:?}");
        }
    }

    #[test]
    fn unknown_top_level_operators_are_refused() {
        assert_eq!(rule(rawdoc! { "$unknown": 1 }), Some(Rule::UnknownField));
        assert_eq!(
            rule(rawdoc! { "$or": { "a": 1 } }),
            Some(Rule::MalformedCommand)
        );
    }
}
