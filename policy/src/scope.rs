//! The tenant scope of one command, and the filter that enforces it.
//!
//! Every read and write filter a tenant sends is replaced by
//! `{ <tenant_field>: T, <soft_delete_field>: null, <the user's conditions> }`: the tenant
//! conditions always sit at the top level, which MongoDB evaluates as a conjunction of all its
//! fields, so no operator inside the user's filter can widen the result beyond T's live
//! documents. The user's top-level conditions join them at that level when none of them names
//! a field the scope sets (the engine has already refused duplicate keys, so each field appears
//! once); otherwise the user's filter goes under `$and: [ <user filter> ]`, where a second
//! condition on the same field cannot replace the scope's. Top-level equalities also mean an
//! upsert inserts with `tenantId: T`, and the planner can use an index on `tenantId` — and, with
//! the flat form, on `_id` or any other field the user names, on planners that do not flatten a
//! one-clause `$and` themselves.

use bson::RawDocument;

use crate::decision::Rejection;
use crate::raw::{DocBuilder, Element, Value, elements};

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
    /// Appends the scope's own conditions to the document being built.
    pub(crate) fn write_conditions(&self, out: &mut DocBuilder) -> Result<(), Rejection> {
        if self.enforce_tenant {
            out.str(self.tenant_field, self.tenant)?;
        }
        if let Some(sd) = self.soft_delete_field {
            out.null(sd)?;
        }
        Ok(())
    }

    /// Appends `key: {<the scope's conditions>}`, without any user filter.
    pub(crate) fn write_conditions_doc(
        &self,
        out: &mut DocBuilder,
        key: &str,
    ) -> Result<(), Rejection> {
        let doc = out.open(key, false)?;
        self.write_conditions(out)?;
        out.close(doc);
        Ok(())
    }

    /// A top-level condition of a user filter on a field the scope itself sets.
    fn collides(&self, e: &Element<'_>) -> bool {
        let k = e.key_bytes();
        (self.enforce_tenant && k == self.tenant_field.as_bytes())
            || self.soft_delete_field.map(str::as_bytes) == Some(k)
    }

    /// A top-level condition of a user filter that repeats the scope.
    fn repeats(&self, e: &Element<'_>) -> bool {
        let k = e.key_bytes();
        (self.enforce_tenant && k == self.tenant_field.as_bytes())
            || (self.soft_delete_field.map(str::as_bytes) == Some(k) && e.value() == Value::Null)
    }

    /// Appends `key: <the scoped filter>`: the scope's conditions at the top, then the user's
    /// filter (if any and not empty) — its conditions at the same level when none of them is on
    /// a field the scope sets, otherwise under `$and` — written straight into `out`.
    ///
    /// A top-level condition in the user's filter that repeats the scope — `tenantId: T`
    /// (already checked to be the caller's own) or `deletedAt: null` — is dropped from the copy
    /// under `$and`: an upsert refuses a path matched by equality twice.
    pub(crate) fn write_filter(
        &self,
        out: &mut DocBuilder,
        key: &str,
        user: Option<&RawDocument>,
    ) -> Result<(), Rejection> {
        let doc = out.open(key, false)?;
        self.write_conditions(out)?;
        if let Some(user) = user.filter(|u| !u.is_empty()) {
            // One pass copies the user's conditions flat, as almost every filter ends up; a
            // condition on a field the scope sets undoes the copy and takes the `$and` form.
            let start = out.len();
            let (mut repeated, mut flat) = (0usize, true);
            for e in elements(user) {
                let e = e?;
                if self.repeats(&e) {
                    repeated += 1;
                } else if self.collides(&e) {
                    flat = false;
                } else if flat {
                    out.copy(&e);
                }
            }
            if !flat {
                out.truncate(start);
                let and = out.open("$and", true)?;
                if repeated == 0 {
                    out.push_doc(user)?;
                } else {
                    let inner = out.push_open(false)?;
                    for e in elements(user) {
                        let e = e?;
                        if !self.repeats(&e) {
                            out.copy(&e);
                        }
                    }
                    out.close(inner);
                }
                out.close(and);
            }
        }
        out.close(doc);
        Ok(())
    }

    /// Whether the scope adds nothing (a global collection without soft delete).
    pub(crate) fn is_empty(&self) -> bool {
        !self.enforce_tenant && self.soft_delete_field.is_none()
    }
}
