//! Per-command options a client passes to tenantgate through the command's `comment`.
//!
//! Every driver can set `comment` on reads and writes, so it is the one channel an application
//! has to talk to the proxy without a custom driver. Two forms are understood:
//!
//! - a document with a `tenantgate` sub-document: `comment: { tenantgate: { includeDeleted: true } }`
//!   (other keys of the comment are kept and forwarded);
//! - a string: `comment: "tenantgate:includeDeleted"`, `"tenantgate:actAs=bank1"`, options
//!   separated by `;`.
//!
//! Options: `includeDeleted` (reads, updates and deletes also see soft-deleted documents: how a
//! tenant lists its bin and restores a document), and `actAs` (`super_admin` only: apply the
//! tenant rules as that tenant). The tenantgate part is removed before the command is forwarded.

use bson::{RawDocument, RawDocumentBuf};

use crate::decision::{Rejection, Rule};
use crate::raw::{DocBuilder, Value, elements, get};

/// Options parsed from `comment`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Options {
    pub include_deleted: bool,
    pub act_as: Option<String>,
    /// Whether the comment carried tenantgate options (and so must be rewritten).
    pub present: bool,
    /// What remains of the comment once tenantgate's part is removed (`None`: drop `comment`).
    pub remaining: Option<RawDocumentBuf>,
}

const PREFIX: &str = "tenantgate:";

/// Reads options from a command body's `comment`.
pub(crate) fn parse(body: &RawDocument) -> Result<Options, Rejection> {
    parse_comment(get(body, "comment")?)
}

/// Reads options from a `comment` element found by the caller's own scan.
pub(crate) fn parse_comment(
    comment: Option<crate::raw::Element<'_>>,
) -> Result<Options, Rejection> {
    let Some(comment) = comment else {
        return Ok(Options::default());
    };
    match comment.value() {
        Value::String(s) => match s.strip_prefix(PREFIX) {
            Some(list) => {
                let mut o = Options {
                    present: true,
                    ..Options::default()
                };
                for item in list.split(';').map(str::trim).filter(|i| !i.is_empty()) {
                    apply(
                        &mut o,
                        item.split_once('=')
                            .map_or((item, None), |(k, v)| (k.trim(), Some(v.trim()))),
                    )?;
                }
                Ok(o)
            }
            None => Ok(Options::default()),
        },
        Value::Document(d) => match get(d, "tenantgate")?.map(|e| e.value()) {
            Some(Value::Document(opts)) => {
                let mut o = Options {
                    present: true,
                    ..Options::default()
                };
                for element in elements(opts) {
                    let e = element?;
                    let value = match e.value() {
                        Value::Bool(true) => None,
                        Value::String(s) => Some(s),
                        Value::Bool(false) => continue,
                        _ => {
                            return Err(bad(&format!("{} has an unsupported value type", e.key())));
                        }
                    };
                    apply(&mut o, (e.key(), value))?;
                }
                o.remaining = without_tenantgate(d)?;
                Ok(o)
            }
            Some(_) => Err(bad("comment.tenantgate must be a document")),
            None => Ok(Options::default()),
        },
        _ => Ok(Options::default()),
    }
}

fn bad(detail: &str) -> Rejection {
    Rejection::new(
        Rule::UnknownField,
        format!("tenantgate comment option: {detail}"),
    )
}

fn apply(o: &mut Options, (name, value): (&str, Option<&str>)) -> Result<(), Rejection> {
    match (name, value) {
        ("includeDeleted", None) | ("includeDeleted", Some("true")) => o.include_deleted = true,
        ("includeDeleted", Some("false")) => o.include_deleted = false,
        ("actAs", Some(t)) if !t.is_empty() => o.act_as = Some(t.to_owned()),
        _ => {
            return Err(bad(&format!(
                "unknown option '{}'",
                crate::audit::clip(name)
            )));
        }
    }
    Ok(())
}

fn without_tenantgate(d: &RawDocument) -> Result<Option<RawDocumentBuf>, Rejection> {
    let mut out = DocBuilder::default();
    for element in elements(d) {
        let e = element?;
        if e.key() != "tenantgate" {
            out.copy(&e);
        }
    }
    Ok(if out.is_empty() {
        None
    } else {
        Some(out.finish())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::rawdoc;

    #[test]
    fn both_forms_parse() {
        let o =
            parse(&rawdoc! { "find": "c", "comment": "tenantgate:includeDeleted" }).expect("ok");
        assert!(o.include_deleted && o.present && o.remaining.is_none());
        let o =
            parse(&rawdoc! { "find": "c", "comment": "tenantgate: actAs=bank2; includeDeleted" })
                .expect("ok");
        assert_eq!(o.act_as.as_deref(), Some("bank2"));
        assert!(o.include_deleted);
        let o = parse(&rawdoc! { "find": "c", "comment": { "tenantgate": { "includeDeleted": true }, "app": "x" } })
            .expect("ok");
        assert!(o.include_deleted);
        assert_eq!(o.remaining, Some(rawdoc! { "app": "x" }));
        let o = parse(&rawdoc! { "find": "c", "comment": "just a comment" }).expect("ok");
        assert_eq!(o, Options::default());
    }

    #[test]
    fn unknown_options_are_refused() {
        assert!(parse(&rawdoc! { "comment": "tenantgate:sudo" }).is_err());
        assert!(parse(&rawdoc! { "comment": { "tenantgate": { "bypass": true } } }).is_err());
        assert!(parse(&rawdoc! { "comment": { "tenantgate": 1 } }).is_err());
    }
}
