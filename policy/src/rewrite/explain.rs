//! `explain` applies the same rules to the command it wraps; the explained command is rewritten
//! exactly as if it had been sent on its own (so the plan shown is the plan that would run).

use tenantgate_wire::RawDoc;

use super::{GENERIC_FIELDS, no_sequences, tenant_command};
use crate::decision::{Forward, Rejection, ReplyShape, Rule};
use crate::engine::{Request, Tenant};
use crate::options;
use crate::raw::{DocBuilder, elements, finish, get};

const FIELDS: [&str; 1] = ["verbosity"];
const EXPLAINABLE: [&str; 8] = [
    "find",
    "count",
    "distinct",
    "aggregate",
    "update",
    "delete",
    "findAndModify",
    "findandmodify",
];

pub(super) fn explain(req: &Request<'_>, t: &Tenant<'_>) -> Result<Forward, Rejection> {
    no_sequences(req)?;
    let Some(inner) = get(req.body, "explain")?.and_then(|e| e.as_document()) else {
        return Err(Rejection::new(
            Rule::MalformedCommand,
            "explain must wrap a command document",
        ));
    };
    let inner_raw = RawDoc::from_raw(inner).map_err(|_| {
        Rejection::new(
            Rule::MalformedCommand,
            "the explained command is not valid BSON",
        )
    })?;
    let name = inner_raw.first_key().unwrap_or("");
    if !EXPLAINABLE.contains(&name) {
        return Err(Rejection::new(
            Rule::CommandNotAllowed,
            format!("'{name}' cannot be explained through tenantgate"),
        ));
    }
    if let Some(db) = inner_raw.get_str("$db")
        && db != req.db
    {
        return Err(Rejection::new(
            Rule::CrossDatabase,
            "the explained command names another database",
        ));
    }
    let mut inner_options = options::parse(inner)?;
    // The outer command decided who this runs as; an inner `actAs` may only agree with it.
    if inner_options
        .act_as
        .as_deref()
        .is_some_and(|asked| asked != t.tenant)
    {
        return Err(Rejection::new(
            Rule::ActAsNotAllowed,
            "the explained command asks to act as another tenant",
        ));
    }
    inner_options.include_deleted |= t.options.include_deleted;
    let inner_tenant = Tenant {
        tenant: t.tenant,
        config: t.config,
        now: t.now,
        options: inner_options,
    };
    // The name check above refused an empty command.
    let Some(first) = crate::raw::first(inner)? else {
        return Err(Rejection::new(
            Rule::MalformedCommand,
            "explain must wrap a command document",
        ));
    };
    let inner_fields = crate::engine::Fields::of(inner)?;
    let inner_req = Request {
        name,
        first,
        db: req.db,
        raw: &inner_raw,
        body: inner,
        fields: &inner_fields,
        sequences: &[],
    };
    let rewritten = tenant_command(&inner_req, &inner_tenant)?;
    if !rewritten.sequences.is_empty() {
        return Err(Rejection::new(
            Rule::MalformedCommand,
            "explained commands carry no document sequences",
        ));
    }
    let mut out = DocBuilder::with_capacity(rewritten.body.len() + req.body.as_bytes().len());
    out.doc("explain", rewritten.body.as_raw())?;
    for element in elements(req.body).skip(1) {
        let e = element?;
        let k = e.key();
        if k == "comment" && t.options.present {
            if let Some(rest) = &t.options.remaining {
                out.doc(k, rest)?;
            }
        } else if GENERIC_FIELDS.contains(&k) || FIELDS.contains(&k) {
            out.copy(&e);
        } else {
            return Err(Rejection::new(
                Rule::UnknownField,
                format!(
                    "'{}' is not a field tenantgate understands for explain",
                    crate::audit::clip(k)
                ),
            ));
        }
    }
    Ok(Forward {
        body: finish(out)?,
        sequences: Vec::new(),
        reply: ReplyShape::AsIs,
    })
}
