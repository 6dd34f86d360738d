//! The tenant scope of one command, and the filter that enforces it.
//!
//! Every read and write filter a tenant sends is replaced by
//! `{ <tenant_field>: T, <soft_delete_field>: null, $and: [ <user filter> ] }`: the tenant
//! conjunction always sits at the top, so no operator inside the user's filter can widen the
//! result beyond T's live documents. Top-level equalities also mean an upsert inserts with
//! `tenantId: T`, and the planner can use an index on `tenantId`.

use bson::{RawBsonRef, RawDocument, RawDocumentBuf};

use crate::decision::Rejection;
use crate::raw::key;

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
    /// The scope's own conditions, without any user filter.
    pub(crate) fn conditions(&self) -> Result<RawDocumentBuf, Rejection> {
        let mut out = RawDocumentBuf::new();
        if self.enforce_tenant {
            out.append(key(self.tenant_field)?, self.tenant);
        }
        if let Some(sd) = self.soft_delete_field {
            out.append(key(sd)?, RawBsonRef::Null);
        }
        Ok(out)
    }

    /// The scoped filter: the scope's conditions at the top, the user's filter (if any and not
    /// empty) under `$and`.
    pub(crate) fn filter(&self, user: Option<&RawDocument>) -> Result<RawDocumentBuf, Rejection> {
        let mut out = self.conditions()?;
        if let Some(user) = user.filter(|u| !u.is_empty()) {
            let mut and = bson::RawArrayBuf::new();
            and.push(user);
            out.append(bson::raw::cstr!("$and"), and);
        }
        Ok(out)
    }

    /// Whether the scope adds nothing (a global collection without soft delete).
    pub(crate) fn is_empty(&self) -> bool {
        !self.enforce_tenant && self.soft_delete_field.is_none()
    }
}
