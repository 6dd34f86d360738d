//! The entry point: one command from one principal in, one [`Outcome`] out.
//!
//! Order of checks, for every command: the body names a command and a `$db`; hygiene (duplicate
//! keys, JavaScript, sequence identifiers); tenantgate's comment options; then either the tenant
//! rules (a tenant principal, or `super_admin` acting as a tenant) or the `super_admin` bypass,
//! which forwards the command untouched and audits it. Everything not explicitly handled is
//! rejected.

use bson::{DateTime, RawDocument};
use tenantgate_wire::{DocumentSequence, MAX_BSON_DEPTH, OpMsg, RawDoc};

use crate::audit::{AuditKind, AuditRecord, command_shape};
use crate::config::{CollectionMode, CollectionPolicy, PolicyConfig};
use crate::decision::{Decision, Forward, Outcome, Rejection, ReplyShape, Rule};
use crate::filter::Mentions;
use crate::options::{self, Options};
use crate::principal::Principal;
use crate::raw::Element;
use crate::rewrite;
use crate::scope::Scope;
use crate::update::{Stamp, WriteRules};
use crate::{admin, hygiene};

/// Everything the engine knows besides the command.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Who sent the command.
    pub principal: &'a Principal,
    /// The policy configuration (validated).
    pub config: &'a PolicyConfig,
    /// The current time (injected so tests are deterministic; soft deletes and stamps use it).
    pub now: DateTime,
}

/// One command as the engine sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request<'a> {
    pub name: &'a str,
    /// The body's first element: the command name and its argument (usually the collection).
    pub first: Element<'a>,
    pub db: &'a str,
    pub raw: &'a RawDoc,
    pub body: &'a RawDocument,
    /// The body's top-level elements, read once by [`decide_command`] so the rule that
    /// rebuilds the body does not parse it again.
    pub fields: &'a Fields<'a>,
    pub sequences: &'a [DocumentSequence],
}

impl<'a> Request<'a> {
    /// The body's top-level elements in order, the command name first.
    pub(crate) fn fields(&self) -> FieldsIter<'_, 'a> {
        self.fields.iter()
    }
}

/// Top-level fields kept on the stack. Commands have at most a few dozen fields (their own, the
/// 14 generic ones, the name); a body with more is read again from its bytes when walked.
const KEPT_FIELDS: usize = 24;

/// A document's top-level elements, read once. Up to [`KEPT_FIELDS`] are kept on the stack; past
/// that nothing more is stored and [`Fields::iter`] reads the document again, so a body of
/// millions of tiny fields costs no allocation (a kept list of them would be several times the
/// size of the message).
#[derive(Debug, Clone)]
pub(crate) struct Fields<'a> {
    kept: [Option<Element<'a>>; KEPT_FIELDS],
    count: usize,
    doc: &'a RawDocument,
}

impl<'a> Fields<'a> {
    /// Nothing read yet of `doc`; [`Fields::push`] each of its elements in order.
    #[inline(always)]
    pub(crate) fn new(doc: &'a RawDocument) -> Self {
        Fields {
            kept: [None; KEPT_FIELDS],
            count: 0,
            doc,
        }
    }

    /// Every element of `doc`.
    pub(crate) fn of(doc: &'a RawDocument) -> Result<Self, Rejection> {
        let mut fields = Fields::new(doc);
        for e in crate::raw::elements(doc) {
            fields.push(e?);
        }
        Ok(fields)
    }

    /// The next element of the document, in order.
    #[inline(always)]
    pub(crate) fn push(&mut self, e: Element<'a>) {
        if let Some(slot) = self.kept.get_mut(self.count) {
            *slot = Some(e);
        }
        self.count += 1;
    }

    /// The elements in order: the kept ones, or the document read again when there were more.
    #[inline(always)]
    pub(crate) fn iter(&self) -> FieldsIter<'_, 'a> {
        match self.kept.get(..self.count) {
            Some(kept) => FieldsIter::Kept(kept.iter()),
            None => FieldsIter::Reread(tenantgate_wire::element::elements(self.doc)),
        }
    }
}

/// [`Fields::iter`].
#[derive(Debug)]
pub(crate) enum FieldsIter<'f, 'a> {
    Kept(std::slice::Iter<'f, Option<Element<'a>>>),
    /// Every element was read once without error before, so reading again cannot fail (and
    /// would end the walk if it did).
    Reread(tenantgate_wire::element::Elements<'a>),
}

impl<'a> Iterator for FieldsIter<'_, 'a> {
    type Item = Element<'a>;

    #[inline]
    fn next(&mut self) -> Option<Element<'a>> {
        match self {
            FieldsIter::Kept(it) => it.next().copied().flatten(),
            FieldsIter::Reread(it) => it.next()?.ok(),
        }
    }
}

/// The tenant rules' view of one command.
#[derive(Debug, Clone)]
pub(crate) struct Tenant<'a> {
    pub tenant: &'a str,
    pub config: &'a PolicyConfig,
    pub now: DateTime,
    pub options: Options,
}

impl<'a> Tenant<'a> {
    pub(crate) fn mentions(&self) -> Mentions<'_> {
        Mentions {
            tenant: self.tenant,
            tenant_field: &self.config.tenant_field,
        }
    }

    /// Checks a collection name a tenant command targets.
    pub(crate) fn collection<'c>(
        &self,
        name: &'c str,
    ) -> Result<(&'c str, &'a CollectionPolicy), Rejection> {
        if name.is_empty()
            || name.starts_with("system.")
            || name.bytes().any(|b| b == b'$' || b == 0)
        {
            return Err(Rejection::new(
                Rule::CollectionNotAllowed,
                format!("collection '{name}' is not open to tenants"),
            ));
        }
        let policy = self.config.collection(name);
        match policy.mode {
            CollectionMode::Admin => Err(Rejection::new(
                Rule::CollectionNotAllowed,
                format!("collection '{name}' is reserved for super_admin"),
            )),
            _ => Ok((name, policy)),
        }
    }

    /// The scope of a read of `name`.
    pub(crate) fn read_scope(&self, name: &str) -> Result<Scope<'_>, Rejection> {
        let (_, policy) = self.collection(name)?;
        if policy.mode == CollectionMode::View {
            return Err(Rejection::new(
                Rule::ViewNotAllowed,
                format!("'{name}' is a view; its pipeline would run with the view owner's reach"),
            ));
        }
        Ok(self.scope_for(policy))
    }

    fn scope_for(&self, policy: &CollectionPolicy) -> Scope<'_> {
        Scope {
            tenant: self.tenant,
            tenant_field: &self.config.tenant_field,
            enforce_tenant: policy.mode == CollectionMode::Tenant,
            soft_delete_field: (policy.soft_delete && !self.options.include_deleted)
                .then_some(self.config.soft_delete_field.as_str()),
        }
    }

    /// Access for a write to `name`: its scope (for filters), rules (for documents) and policy.
    pub(crate) fn write_access(
        &self,
        name: &str,
    ) -> Result<(Scope<'_>, WriteRules<'_>, &'a CollectionPolicy), Rejection> {
        let (_, policy) = self.collection(name)?;
        match policy.mode {
            CollectionMode::Global => {
                return Err(Rejection::new(
                    Rule::GlobalWrite,
                    format!("'{name}' is global: only super_admin writes it"),
                ));
            }
            CollectionMode::View => {
                return Err(Rejection::new(
                    Rule::ViewNotAllowed,
                    format!("'{name}' is a view"),
                ));
            }
            _ => {}
        }
        let rules = WriteRules {
            tenant: self.tenant,
            tenant_field: &self.config.tenant_field,
            stamp_tenant: true,
            stamp: policy.timestamps.then_some(Stamp {
                created_field: &self.config.created_at_field,
                updated_field: &self.config.updated_at_field,
                now: self.now,
            }),
        };
        Ok((self.scope_for(policy), rules, policy))
    }
}

/// Levels of nesting a tenant rewrite may add to a command — a filter moved under
/// `$and: [ … ]` sits two levels deeper — with a margin. Commands further than this from
/// [`MAX_BSON_DEPTH`] cannot pass it once rewritten, so only the others pay for a check.
const REWRITE_DEPTH_MARGIN: u32 = 8;

/// Refuses a rewritten command nested deeper than [`MAX_BSON_DEPTH`]: the client's command was
/// within the limit, but scoping deepened it, and the proxy must not send what MongoDB (and its
/// own codec) would refuse as malformed.
fn within_depth(req: &Request<'_>, forward: Forward) -> Result<Forward, Rejection> {
    let near_limit = |d: &RawDoc| {
        d.facts()
            .is_none_or(|f| f.depth + REWRITE_DEPTH_MARGIN > MAX_BSON_DEPTH)
    };
    let inputs = std::iter::once(req.raw).chain(req.sequences.iter().flat_map(|s| &s.documents));
    if !inputs.into_iter().any(near_limit) {
        return Ok(forward);
    }
    let too_deep = |d: &RawDoc| RawDoc::from_bytes(d.bytes().clone(), MAX_BSON_DEPTH).is_err();
    let outputs =
        std::iter::once(&forward.body).chain(forward.sequences.iter().flat_map(|s| &s.documents));
    if outputs.into_iter().any(too_deep) {
        return Err(Rejection::new(
            Rule::MalformedCommand,
            format!(
                "the command nests too deeply: with the tenant scope added it would pass \
                 MongoDB's limit of {MAX_BSON_DEPTH} levels"
            ),
        ));
    }
    Ok(forward)
}

/// Decides one OP_MSG.
pub fn decide(msg: &OpMsg, ctx: &Context<'_>) -> Outcome {
    decide_command(msg.body(), msg.sequences(), ctx)
}

/// Decides one command given as body and document sequences.
pub fn decide_command(body: &RawDoc, sequences: &[DocumentSequence], ctx: &Context<'_>) -> Outcome {
    let raw = body.as_raw();
    // One scan finds the command name (the first key) and the fields every command needs.
    let mut scan = crate::raw::elements(raw);
    let first = match scan.next() {
        Some(Ok(e)) => Some(e),
        _ => None,
    };
    let name = first.map_or("", |e| e.key());
    let audit_base =
        |rule: Rule, kind: AuditKind, message: String, tenant: Option<&str>| AuditRecord {
            kind,
            rule,
            principal: crate::audit::clip(&ctx.principal.name).into_owned(),
            tenant: tenant.map(str::to_owned),
            database: body
                .get_str("$db")
                .map(|d| crate::audit::clip(d).into_owned()),
            collection: match raw.get(name) {
                Ok(Some(bson::RawBsonRef::String(s))) => Some(crate::audit::clip(s).into_owned()),
                _ => None,
            },
            command: crate::audit::clip(name).into_owned(),
            message,
            shape: command_shape(raw, sequences, ctx.config.audit_values),
        };
    let reject = |r: Rejection, tenant: Option<&str>| Outcome {
        audit: Some(audit_base(
            r.rule,
            AuditKind::Rejection,
            r.message.clone(),
            tenant,
        )),
        decision: Decision::Reject(r),
    };
    let own_tenant = ctx.principal.tenant.as_ref().map(|t| t.as_str());

    let Some(first) = first.filter(|_| !name.is_empty()) else {
        return reject(
            Rejection::new(Rule::MalformedCommand, "the command body is empty"),
            own_tenant,
        );
    };
    let (mut db, mut comment) = (None, None);
    let mut fields = Fields::new(raw);
    for element in std::iter::once(Ok(first)).chain(scan) {
        let e = match element {
            Ok(e) => e,
            Err(r) => return reject(r, own_tenant),
        };
        match e.key_bytes() {
            b"$db" if db.is_none() => db = Some(e),
            b"comment" if comment.is_none() => comment = Some(e),
            _ => {}
        }
        fields.push(e);
    }
    let Some(db) = db.and_then(|e| e.as_str()) else {
        return reject(
            Rejection::new(Rule::MalformedCommand, "the command has no string $db"),
            own_tenant,
        );
    };
    if let Err(r) = hygiene::check_command(body, &fields, sequences) {
        return reject(r, own_tenant);
    }
    let opts = match options::parse_comment(comment) {
        Ok(o) => o,
        Err(r) => return reject(r, own_tenant),
    };
    let req = Request {
        name,
        first,
        db,
        raw: body,
        body: raw,
        fields: &fields,
        sequences,
    };

    // Who does the command run as?
    let act_as = opts.act_as.clone();
    let acting: Option<&str> = match (&ctx.principal.tenant, act_as.as_deref()) {
        (Some(own), None) => Some(own.as_str()),
        (Some(own), Some(asked)) if asked == own.as_str() => Some(own.as_str()),
        (Some(_), Some(_)) => {
            return reject(
                Rejection::new(
                    Rule::ActAsNotAllowed,
                    "only super_admin may act as another tenant",
                ),
                own_tenant,
            );
        }
        (None, Some(asked)) if ctx.principal.is_super_admin() => Some(asked),
        (None, Some(_)) => {
            return reject(
                Rejection::new(
                    Rule::ActAsNotAllowed,
                    "only super_admin may act as a tenant",
                ),
                None,
            );
        }
        (None, None) => None,
    };

    if let Some(reply) = admin::local_reply(&req, ctx, acting) {
        return Outcome {
            decision: Decision::Reply(reply),
            audit: None,
        };
    }

    match acting {
        Some(tenant) => {
            let t = Tenant {
                tenant,
                config: ctx.config,
                now: ctx.now,
                options: opts,
            };
            match rewrite::tenant_command(&req, &t).and_then(|f| within_depth(&req, f)) {
                Ok(forward) => {
                    // A super_admin reading or writing as a tenant is still a privileged act.
                    let audit = (ctx.principal.tenant.is_none() && admin::audited_bypass(name))
                        .then(|| {
                            audit_base(
                                Rule::Bypass,
                                AuditKind::Bypass,
                                format!(
                                    "super_admin acting as tenant '{}'",
                                    crate::audit::clip(tenant)
                                ),
                                Some(tenant),
                            )
                        });
                    Outcome {
                        decision: Decision::Forward(forward),
                        audit,
                    }
                }
                Err(r) => reject(r, Some(tenant)),
            }
        }
        None if ctx.principal.is_super_admin() => {
            if !admin::super_admin_allows(name) {
                return reject(
                    Rejection::new(
                        Rule::CommandNotAllowed,
                        format!("'{name}' is not on the super_admin allowlist"),
                    ),
                    None,
                );
            }
            let body = match rewrite::strip_options(&req, &opts) {
                Ok(b) => b,
                Err(r) => return reject(r, None),
            };
            let audit = admin::audited_bypass(name).then(|| {
                audit_base(
                    Rule::Bypass,
                    AuditKind::Bypass,
                    "super_admin command bypassed tenant scoping".into(),
                    None,
                )
            });
            Outcome {
                decision: Decision::Forward(Forward {
                    body,
                    sequences: sequences.to_vec(),
                    reply: ReplyShape::AsIs,
                }),
                audit,
            }
        }
        None => reject(
            Rejection::new(
                Rule::NoTenant,
                "the principal is bound to no tenant and holds no role",
            ),
            None,
        ),
    }
}
