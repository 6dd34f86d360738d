//! The tenant scope of one command, and the filter that enforces it.
//!
//! Every read and write filter a tenant sends is replaced by
//! `{ <tenant_field>: T, <soft_delete_field>: null, $and: [ <user filter> ] }`: the tenant
//! conjunction always sits at the top, so no operator inside the user's filter can widen the
//! result beyond T's live documents. Top-level equalities also mean an upsert inserts with
//! `tenantId: T`, and the planner can use an index on `tenantId`.

use bson::{RawDocument, RawDocumentBuf};

use crate::decision::Rejection;
use crate::raw::{DocBuilder, Value, elements};

/// What a scoped filter must enforce for one collection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scope<'a> {
    /// The caller's tenant (used for override detection even where it is not enforced).
    pub tenant: &'a str,
    /// The tenant field name.
    pub tenant_field: &'a str,
    /// Add `tenant_field: tenant` (false for `global` collections).
    pub enforce_tenant: bool,
    /// The soft-delete field, when live-only filtering applies.
    pub soft_delete_field: Option<&'a str>,
}

impl Scope<'_> {
    fn write_conditions(&self, out: &mut DocBuilder) -> Result<(), Rejection> {
        if self.enforce_tenant {
            out.str(self.tenant_field, self.tenant)?;
        }
        if let Some(sd) = self.soft_delete_field {
            out.null(sd)?;
        }
        Ok(())
    }

    /// The scope's own conditions, without any user filter.
    pub(crate) fn conditions(&self) -> Result<RawDocumentBuf, Rejection> {
        let mut out = DocBuilder::with_capacity(64);
        self.write_conditions(&mut out)?;
        Ok(out.finish())
    }

    /// The scoped filter: the scope's conditions at the top, the user's filter (if any and not
    /// empty) under `$and`.
    ///
    /// A top-level condition in the user's filter that repeats the scope — `tenantId: T`
    /// (already checked to be the caller's own) or `deletedAt: null` — is dropped from the copy
    /// under `$and`: an upsert refuses a path matched by equality twice.
    pub(crate) fn filter(&self, user: Option<&RawDocument>) -> Result<RawDocumentBuf, Rejection> {
        let user = user.filter(|u| !u.is_empty());
        let mut out = DocBuilder::with_capacity(64 + user.map_or(0, |u| u.as_bytes().len()));
        self.write_conditions(&mut out)?;
        if let Some(user) = user {
            let repeats = |e: &crate::raw::Element<'_>| {
                (self.enforce_tenant && e.key() == self.tenant_field)
                    || (Some(e.key()) == self.soft_delete_field && e.value() == Value::Null)
            };
            let mut any_repeat = false;
            for e in elements(user) {
                any_repeat |= repeats(&e?);
            }
            let mut and = DocBuilder::with_capacity(user.as_bytes().len() + 16);
            if any_repeat {
                let mut kept = DocBuilder::with_capacity(user.as_bytes().len());
                for e in elements(user) {
                    let e = e?;
                    if !repeats(&e) {
                        kept.element(e.key(), &e)?;
                    }
                }
                if kept.is_empty() {
                    return Ok(out.finish());
                }
                and.push_doc(&kept.finish())?;
            } else {
                and.push_doc(user)?;
            }
            out.array("$and", &and.finish())?;
        }
        Ok(out.finish())
    }

    /// Whether the scope adds nothing (a global collection without soft delete).
    pub(crate) fn is_empty(&self) -> bool {
        !self.enforce_tenant && self.soft_delete_field.is_none()
    }
}
