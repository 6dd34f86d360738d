//! The tenant rules, one command family per file.
//!
//! Each handler checks its command's fields against a list of the fields it understands
//! (unknown fields are refused), rewrites what must be rewritten, and copies the rest. The
//! generic fields every command may carry (sessions, transactions, read/write concern, API
//! version) are handled here once.

mod aggregate;
mod catalog;
mod cursor;
mod delete;
mod explain;
mod find_and_modify;
mod insert;
mod pipeline;
mod read;
mod update;

use tenantgate_wire::RawDoc;

use crate::decision::{Forward, Rejection, ReplyShape, Rule};
use crate::engine::{Request, Tenant};
use crate::options::Options;
use crate::raw::{DocBatch, DocBuilder, Element, Value, elements, finish, get, truthy};

/// Fields any command may carry.
pub(crate) const GENERIC_FIELDS: [&str; 14] = [
    "$db",
    "lsid",
    "txnNumber",
    "startTransaction",
    "autocommit",
    "$clusterTime",
    "$readPreference",
    "readConcern",
    "writeConcern",
    "maxTimeMS",
    "comment",
    "apiVersion",
    "apiStrict",
    "apiDeprecationErrors",
];

/// Whether `key` is one of [`GENERIC_FIELDS`], compared as bytes (a `match` the compiler turns
/// into a length switch rather than fourteen string comparisons).
pub(crate) fn is_generic_field(key: &[u8]) -> bool {
    matches!(
        key,
        b"$db"
            | b"lsid"
            | b"txnNumber"
            | b"startTransaction"
            | b"autocommit"
            | b"$clusterTime"
            | b"$readPreference"
            | b"readConcern"
            | b"writeConcern"
            | b"maxTimeMS"
            | b"comment"
            | b"apiVersion"
            | b"apiStrict"
            | b"apiDeprecationErrors"
    )
}

/// Whether `key` is one of `names`, compared as bytes.
pub(crate) fn listed(names: &[&str], key: &[u8]) -> bool {
    // Length and first byte rule out almost every name before a byte comparison is called.
    names.iter().any(|n| {
        let n = n.as_bytes();
        n.len() == key.len() && n.first() == key.first() && n == key
    })
}

/// Commands answered by the proxy's connection handler; reaching the engine means a bug or a
/// client sending them out of place.
const PROXY_COMMANDS: [&str; 8] = [
    "hello",
    "isMaster",
    "ismaster",
    "saslStart",
    "saslContinue",
    "authenticate",
    "logout",
    "getnonce",
];

/// Applies the tenant rules to one command.
pub(crate) fn tenant_command(req: &Request<'_>, t: &Tenant<'_>) -> Result<Forward, Rejection> {
    let data_db = || {
        if t.config.tenant_database(req.db) {
            Ok(())
        } else {
            Err(Rejection::new(
                Rule::DatabaseNotAllowed,
                format!("database '{}' is not open to tenants", req.db),
            ))
        }
    };
    match req.name {
        "find" | "count" | "distinct" => {
            data_db()?;
            read::read(req, t)
        }
        "aggregate" => {
            data_db()?;
            aggregate::aggregate(req, t)
        }
        "insert" => {
            data_db()?;
            insert::insert(req, t)
        }
        "update" => {
            data_db()?;
            update::update(req, t)
        }
        "delete" => {
            data_db()?;
            delete::delete(req, t)
        }
        "findAndModify" | "findandmodify" => {
            data_db()?;
            find_and_modify::find_and_modify(req, t)
        }
        "explain" => {
            data_db()?;
            explain::explain(req, t)
        }
        "getMore" | "killCursors" => {
            data_db()?;
            cursor::cursor(req, t)
        }
        "listCollections" | "listIndexes" => {
            data_db()?;
            catalog::catalog(req, t)
        }
        "endSessions" | "refreshSessions" | "commitTransaction" | "abortTransaction"
        | "buildInfo" => unchanged_with_options(req, t),
        "mapReduce" | "eval" | "$eval" => Err(Rejection::new(
            Rule::Javascript,
            format!("'{}' runs server-side JavaScript", req.name),
        )),
        name if PROXY_COMMANDS.contains(&name) => Err(Rejection::new(
            Rule::CommandNotAllowed,
            format!("'{name}' is answered by the proxy's handshake, not forwarded"),
        )),
        "bulkWrite" => Err(Rejection::new(
            Rule::CommandNotAllowed,
            "the cross-collection bulkWrite command is not available to tenants; use the collection-level bulk API",
        )),
        "create" => {
            let view = get(req.body, "viewOn")?.is_some();
            let rule = if view {
                Rule::ViewNotAllowed
            } else {
                Rule::CommandNotAllowed
            };
            Err(Rejection::new(
                rule,
                "tenants may not create collections or views",
            ))
        }
        name => Err(Rejection::new(
            Rule::CommandNotAllowed,
            format!("'{name}' is not on the tenant allowlist"),
        )),
    }
}

/// Forwards the command as it is, except for tenantgate's comment options.
fn unchanged_with_options(req: &Request<'_>, t: &Tenant<'_>) -> Result<Forward, Rejection> {
    Ok(Forward {
        body: strip_options(req, &t.options)?,
        sequences: req.sequences.to_vec(),
        reply: ReplyShape::AsIs,
    })
}

/// The body with tenantgate's comment options removed (the original when there were none).
pub(crate) fn strip_options(req: &Request<'_>, options: &Options) -> Result<RawDoc, Rejection> {
    if !options.present {
        return Ok(req.raw.clone());
    }
    let mut out = DocBuilder::with_capacity(req.body.as_bytes().len());
    for e in req.fields() {
        if e.key_bytes() == b"comment" {
            if let Some(rest) = &options.remaining {
                out.doc("comment", rest)?;
            }
        } else {
            out.copy(&e);
        }
    }
    finish(out)
}

/// `collation` changes how every string comparison in a command behaves — including the
/// scope's `tenantId: T`: with `strength: 1` or `2`, `alternate: "shifted"` or
/// `numericOrdering`, ids such as `bank-1` / `bank1` or `bank01` / `bank1` compare equal. Tenants
/// may only ask for the simple (binary) collation.
pub(crate) fn check_collation(e: &Element<'_>) -> Result<(), Rejection> {
    let simple = match e.value() {
        Value::Document(d) => {
            let mut it = elements(d);
            match (it.next().transpose()?, it.next()) {
                (Some(locale), None) => {
                    locale.key() == "locale" && locale.as_str() == Some("simple")
                }
                _ => false,
            }
        }
        _ => false,
    };
    if simple {
        Ok(())
    } else {
        Err(Rejection::new(
            Rule::CollationNotAllowed,
            "only {locale: \"simple\"} is allowed: a collation would also loosen the tenant condition",
        ))
    }
}

/// Rebuilds a command body field by field: the command name (renamed to `rename` if given) and
/// generic fields are copied (the comment without tenantgate's options), fields in `known` go
/// through `field`, which appends whatever should be forwarded, and anything else is refused as
/// unknown. `collation` and `bypassDocumentValidation` are checked here for every command that
/// knows them.
pub(crate) fn rebuild<'b>(
    req: &Request<'b>,
    options: &Options,
    rename: Option<&str>,
    known: &[&str],
    mut field: impl FnMut(&Element<'b>, &mut DocBuilder) -> Result<(), Rejection>,
) -> Result<DocBuilder, Rejection> {
    let mut out = DocBuilder::with_capacity(req.body.as_bytes().len() + 96);
    for (i, e) in req.fields().enumerate() {
        let k = e.key_bytes();
        if i == 0 {
            match rename {
                Some(name) => out.element(name, &e)?,
                None => out.copy(&e),
            }
        } else if k == b"comment" && options.present {
            if let Some(rest) = &options.remaining {
                out.doc("comment", rest)?;
            }
        } else if is_generic_field(k) {
            out.copy(&e);
        } else if listed(known, k) {
            match k {
                b"collation" => check_collation(&e)?,
                b"bypassDocumentValidation" if truthy(e.value()) => {
                    return Err(Rejection::new(
                        Rule::CommandNotAllowed,
                        "bypassDocumentValidation is reserved for super_admin",
                    ));
                }
                _ => {}
            }
            field(&e, &mut out)?;
        } else {
            return Err(Rejection::new(
                Rule::UnknownField,
                format!(
                    "'{}' is not a field tenantgate understands for {}",
                    crate::audit::clip(e.key()),
                    req.name
                ),
            ));
        }
    }
    Ok(out)
}

/// The statements of a write command sent as document sequences: only `identifier` is accepted;
/// each statement is rewritten by `rewrite` (which appends the new statement's elements to the
/// builder it is given) and the sequence is sent as `rename`. A sequence's statements are built
/// in one shared buffer.
pub(crate) fn statement_sequences(
    req: &Request<'_>,
    identifier: &str,
    rename: &str,
    mut rewrite: impl FnMut(&bson::RawDocument, &mut DocBuilder) -> Result<(), Rejection>,
) -> Result<Vec<tenantgate_wire::DocumentSequence>, Rejection> {
    let mut out = Vec::with_capacity(req.sequences.len());
    for seq in req.sequences {
        if seq.identifier != identifier {
            return Err(Rejection::new(
                Rule::UnknownField,
                format!(
                    "document sequence '{}' is not understood for {}",
                    crate::audit::clip(&seq.identifier),
                    req.name
                ),
            ));
        }
        let bytes: usize = seq.documents.iter().map(RawDoc::len).sum();
        let mut batch =
            DocBatch::with_capacity(seq.documents.len(), bytes + 96 * seq.documents.len());
        for d in &seq.documents {
            let opened = batch.open()?;
            rewrite(d.as_raw(), batch.builder())?;
            batch.close(opened);
        }
        out.push(tenantgate_wire::DocumentSequence {
            identifier: rename.to_owned(),
            documents: batch.finish()?,
        });
    }
    Ok(out)
}

/// The statements of a write command sent in the body (`updates: [...]`), each rewritten by
/// `rewrite` (see [`statement_sequences`]), appended to `out` as the array `key`.
pub(crate) fn statement_array(
    e: &Element<'_>,
    key: &str,
    out: &mut DocBuilder,
    mut rewrite: impl FnMut(&bson::RawDocument, &mut DocBuilder) -> Result<(), Rejection>,
) -> Result<(), Rejection> {
    let Value::Array(stmts) = e.value() else {
        return Err(Rejection::new(
            Rule::MalformedCommand,
            format!("{} must be an array", e.key()),
        ));
    };
    let arr = out.open(key, true)?;
    for item in elements(stmts) {
        let Value::Document(stmt) = item?.value() else {
            return Err(Rejection::new(
                Rule::MalformedCommand,
                format!("{} must hold documents", e.key()),
            ));
        };
        let opened = out.push_open(false)?;
        rewrite(stmt, out)?;
        out.close(opened);
    }
    out.close(arr);
    Ok(())
}

/// Refuses document sequences on commands that take none.
pub(crate) fn no_sequences(req: &Request<'_>) -> Result<(), Rejection> {
    match req.sequences.first() {
        None => Ok(()),
        Some(s) => Err(Rejection::new(
            Rule::UnknownField,
            format!(
                "document sequence '{}' is not understood for {}",
                crate::audit::clip(&s.identifier),
                req.name
            ),
        )),
    }
}

/// The collection a collection-level command targets (its first field's string value).
pub(crate) fn target_collection<'b>(req: &Request<'b>) -> Result<&'b str, Rejection> {
    match req.first.as_str() {
        Some(s) => Ok(s),
        None => Err(Rejection::new(
            Rule::MalformedCommand,
            format!("'{}' must name a collection as a string", req.name),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generic_field_match_is_the_generic_field_list() {
        for f in GENERIC_FIELDS {
            assert!(is_generic_field(f.as_bytes()), "{f}");
        }
        for f in [
            "",
            "db",
            "$DB",
            "lsid2",
            "comments",
            "filter",
            "apiStrict\0",
        ] {
            assert!(!is_generic_field(f.as_bytes()), "{f}");
        }
    }
}
