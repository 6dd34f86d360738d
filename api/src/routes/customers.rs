//! Customers: `POST /v1/customers`, `GET /v1/customers[?include_deleted=true]`,
//! `GET /v1/customers/{id}`, `PATCH /v1/customers/{id}`, `DELETE /v1/customers/{id}` (a soft
//! delete: the policy engine turns it into `deletedAt: <now>`), `POST /v1/customers/{id}/restore`,
//! and `DELETE /v1/customers/{id}?hard=true` for `super_admin` only (a real delete through the
//! audited bypass handle). Soft-deleted customers disappear from every list, lookup and join —
//! the engine adds `deletedAt: null` to every read — unless a read asks for them explicitly.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bson::{Bson, Document, doc, oid::ObjectId};
use serde_json::{Map, Value};
use tenantgate_proxy::scoped::ScopedDb;

use super::payments::db_problem;
use crate::extract::{CurrentTenant, Json, TenantDb, origin};
use crate::guard;
use crate::openapi::params::{CustomerListQuery, HardDelete, IncludeDeleted, TenantSelector};
use crate::openapi::schemas::{
    Customer, CustomerDeletion, CustomerHardDeleted, CustomerList, CustomerObject, CustomerUpdate,
    ListObject, NewCustomer, Problem as ProblemBody,
};
use crate::paging::{IdKind, Page};
use crate::payments::{rfc3339, string_map};
use crate::problem::{FieldError, Problem};
use crate::state::ApiState;

/// The tenant collection holding customers.
pub const COLLECTION: &str = "customers";
/// Reads and writes that also see soft-deleted documents (the policy's `includeDeleted`).
const INCLUDE_DELETED: &str = "tenantgate:includeDeleted";

/// The routes.
pub fn router(state: &ApiState) -> Router<ApiState> {
    Router::new()
        .route(
            "/v1/customers",
            guard::tenant(state, get(list).post(create)),
        )
        .route(
            "/v1/customers/{id}",
            guard::tenant(state, get(read).patch(update).delete(remove)),
        )
        .route(
            "/v1/customers/{id}/restore",
            guard::tenant(state, post(restore)),
        )
}

/// The API object of a stored customer.
fn view(d: &Document, db: &TenantDb) -> Customer {
    let policy = db.policy();
    Customer {
        id: d.get_str("_id").unwrap_or_default().to_owned(),
        object: CustomerObject::Customer,
        name: d.get_str("name").unwrap_or_default().to_owned(),
        email: d.get_str("email").ok().map(str::to_owned),
        metadata: string_map(d, "metadata"),
        tenant_id: d
            .get_str(&policy.tenant_field)
            .unwrap_or_default()
            .to_owned(),
        created_at: rfc3339(d, "createdAt"),
        updated_at: rfc3339(d, "updatedAt"),
        deleted_at: rfc3339(d, &policy.soft_delete_field),
    }
}

fn text(v: &Value, field: &str, max: usize, errors: &mut Vec<FieldError>) -> Option<String> {
    match v.as_str().map(str::trim) {
        Some(s)
            if !s.is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control) =>
        {
            Some(s.to_owned())
        }
        _ => {
            errors.push(FieldError::new(
                field,
                format!("must be a string of 1 to {max} printable characters"),
            ));
            None
        }
    }
}

fn email(v: &Value, errors: &mut Vec<FieldError>) -> Option<String> {
    let e = text(v, "email", 254, errors)?;
    let valid = e.matches('@').count() == 1
        && e.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty() && d.contains('.') && !d.starts_with('.') && !e.contains(' ')
        });
    if valid {
        Some(e.to_ascii_lowercase())
    } else {
        errors.push(FieldError::new("email", "must be an email address"));
        None
    }
}

fn metadata(v: &Value, errors: &mut Vec<FieldError>) -> Option<Document> {
    let Some(m) = v.as_object() else {
        errors.push(FieldError::new("metadata", "must be an object of strings"));
        return None;
    };
    if m.len() > 20 {
        errors.push(FieldError::new("metadata", "at most 20 keys"));
    }
    let mut out = Document::new();
    for (k, v) in m {
        let field = format!("metadata.{k}");
        if !(1..=40).contains(&k.chars().count())
            || k.starts_with('$')
            || k.contains('.')
            || k.chars().any(char::is_control)
        {
            errors.push(FieldError::new(
                field,
                "keys are 1 to 40 characters, without '$' at the start, '.' or control characters",
            ));
        } else if let Some(s) = text(v, &field, 500, errors) {
            out.insert(k.clone(), s);
        }
    }
    Some(out)
}

/// Validates a body's fields into `$set` pairs; `create` requires `name`.
fn fields(body: &Map<String, Value>, create: bool) -> Result<Document, Problem> {
    let mut errors = Vec::new();
    let mut set = Document::new();
    for (k, v) in body {
        match k.as_str() {
            "name" => {
                if let Some(n) = text(v, "name", 200, &mut errors) {
                    set.insert("name", n);
                }
            }
            "email" if v.is_null() && !create => {
                set.insert("email", Bson::Null);
            }
            "email" => {
                if let Some(e) = email(v, &mut errors) {
                    set.insert("email", e);
                }
            }
            "metadata" => {
                if let Some(m) = metadata(v, &mut errors) {
                    set.insert("metadata", m);
                }
            }
            other => errors.push(FieldError::new(other, "is not a customer field")),
        }
    }
    if create && !body.contains_key("name") {
        errors.push(FieldError::new("name", "is required"));
    }
    if errors.is_empty() {
        Ok(set)
    } else {
        Err(Problem::validation(errors))
    }
}

fn not_found(id: &str) -> Problem {
    Problem::not_found("customer_not_found", format!("no customer {id}"))
}

/// The customer `id`, soft-deleted ones included when `deleted` says so.
async fn find(db: &ScopedDb, id: &str, deleted: bool) -> Result<Option<Document>, Problem> {
    let mut cmd =
        doc! { "find": COLLECTION, "filter": { "_id": id }, "limit": 1_i64, "singleBatch": true };
    if deleted {
        cmd.insert("comment", INCLUDE_DELETED);
    }
    let reply = db.run(cmd).await.map_err(db_problem)?;
    Ok(reply
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .ok()
        .and_then(|b| b.first())
        .and_then(Bson::as_document)
        .cloned())
}

/// Customer ids as a list cursor (`cus_` and an ObjectId, as [`create`] makes them).
const CUSTOMER_IDS: IdKind = IdKind {
    prefix: "cus_",
    message: "must be a customer id",
};

fn include_deleted(q: &HashMap<String, String>) -> Result<bool, Problem> {
    match q.get("include_deleted").map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(Problem::validation(vec![FieldError::new(
            "include_deleted",
            "must be true or false",
        )])),
    }
}

#[utoipa::path(
    post,
    path = "/v1/customers",
    operation_id = "createCustomer",
    tag = "customers",
    summary = "Create a customer",
    params(TenantSelector),
    request_body(content = NewCustomer, content_type = "application/json"),
    security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "The customer.", body = Customer,
            headers(("Location" = String, description = "`/v1/customers/{id}`."))),
        (status = 422, description = "- `validation_failed`: a field is invalid, missing or unknown; `errors` names each one.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "- `database_unavailable`: the database cannot be reached; retry.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn create(db: TenantDb, Json(body): Json<Map<String, Value>>) -> Result<Response, Problem> {
    let mut d = fields(&body, true)?;
    let id = format!("cus_{}", ObjectId::new().to_hex());
    let now = bson::DateTime::now();
    d.insert("_id", id.as_str());
    d.insert("createdAt", now);
    d.insert("updatedAt", now);
    if !d.contains_key("metadata") {
        d.insert("metadata", Document::new());
    }
    db.collection(COLLECTION)
        .insert_one(d)
        .await
        .map_err(db_problem)?;
    let stored = find(&db, &id, false).await?.ok_or_else(|| not_found(&id))?;
    let location =
        HeaderValue::from_str(&format!("/v1/customers/{id}")).map_err(|e| Problem::internal(&e))?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(view(&stored, &db)),
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/v1/customers",
    operation_id = "listCustomers",
    tag = "customers",
    summary = "List customers, newest first",
    description = "Soft-deleted customers are left out unless `include_deleted=true`.",
    params(TenantSelector, CustomerListQuery),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "A page of customers.", body = CustomerList),
        (status = 422, description = "- `validation_failed`: `limit`, `starting_after` or `include_deleted` is invalid, or a parameter is unknown; `errors` names each one.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "- `database_unavailable`: the database cannot be reached; retry.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn list(
    db: TenantDb,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<CustomerList>, Problem> {
    let mut errors = Vec::new();
    let mut page = Page::new(10);
    for (k, v) in &q {
        if !page.take(k, v, CUSTOMER_IDS, &mut errors) && k != "include_deleted" {
            errors.push(FieldError::new(
                k.as_str(),
                "is not a customer list parameter",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let deleted = include_deleted(&q)?;
    let limit = page.limit;
    let mut filter = Document::new();
    if let Some(after) = &page.starting_after {
        filter.insert("_id", doc! { "$lt": after.as_str() });
    }
    let mut cmd = doc! {
        "find": COLLECTION, "filter": filter, "sort": { "_id": -1 },
        "limit": limit + 1, "singleBatch": true,
    };
    if deleted {
        cmd.insert("comment", INCLUDE_DELETED);
    }
    let reply = db.run(cmd).await.map_err(db_problem)?;
    let mut found: Vec<Document> = reply
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .map(|b| b.iter().filter_map(|d| d.as_document().cloned()).collect())
        .unwrap_or_default();
    let has_more = found.len() as i64 > limit;
    found.truncate(usize::try_from(limit).unwrap_or(0));
    Ok(Json(CustomerList {
        object: ListObject::List,
        data: found.iter().map(|d| view(d, &db)).collect(),
        has_more,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/customers/{id}",
    operation_id = "getCustomer",
    tag = "customers",
    summary = "Read a customer",
    params(TenantSelector, ("id" = String, Path, description = "The customer's id (`cus_…`)."), IncludeDeleted),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The customer.", body = Customer),
        (status = 404, description = "- `customer_not_found`: the tenant has no such customer (or it is soft-deleted and `include_deleted` is not `true`).", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "- `validation_failed`: `include_deleted` is not `true` or `false`.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "- `database_unavailable`: the database cannot be reached; retry.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn read(
    db: TenantDb,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Customer>, Problem> {
    let deleted = include_deleted(&q)?;
    find(&db, &id, deleted)
        .await?
        .map(|d| Json(view(&d, &db)))
        .ok_or_else(|| not_found(&id))
}

#[utoipa::path(
    patch,
    path = "/v1/customers/{id}",
    operation_id = "updateCustomer",
    tag = "customers",
    summary = "Change a customer",
    description = "Only the fields sent change; `metadata` is replaced as a whole. A soft-deleted customer is not found.",
    params(TenantSelector, ("id" = String, Path, description = "The customer's id (`cus_…`).")),
    request_body(content = CustomerUpdate, content_type = "application/json"),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The customer as changed.", body = Customer),
        (status = 404, description = "- `customer_not_found`: the tenant has no such (undeleted) customer.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "- `validation_failed`: a field is invalid or unknown; `errors` names each one.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "- `database_unavailable`: the database cannot be reached; retry.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn update(
    db: TenantDb,
    Path(id): Path<String>,
    Json(body): Json<Map<String, Value>>,
) -> Result<Json<Customer>, Problem> {
    let mut set = fields(&body, false)?;
    set.insert("updatedAt", bson::DateTime::now());
    let updated = db
        .collection(COLLECTION)
        .find_one_and_update(doc! { "_id": &id }, doc! { "$set": set }, true, false)
        .await
        .map_err(db_problem)?;
    updated
        .map(|d| Json(view(&d, &db)))
        .ok_or_else(|| not_found(&id))
}

#[utoipa::path(
    delete,
    path = "/v1/customers/{id}",
    operation_id = "deleteCustomer",
    tag = "customers",
    summary = "Delete a customer (soft, or hard for super_admin)",
    description = "A soft delete: the policy engine sets `deletedAt` and the customer disappears from every list, lookup and `$lookup` until restored. With `hard=true` (`super_admin` only) the document is deleted for good through the audited bypass handle.",
    params(TenantSelector, ("id" = String, Path, description = "The customer's id (`cus_…`)."), HardDelete),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The soft-deleted customer (with `deletedAt`), or for `hard=true` a deletion receipt.", body = CustomerDeletion),
        (status = 403, description = "- `role_required`: `hard=true` without the `super_admin` role.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "- `customer_not_found`: the tenant has no such (undeleted, for a soft delete) customer.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "- `validation_failed`: `hard` is not `true` or `false`.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "- `database_unavailable`: the database cannot be reached; retry.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn remove(
    State(state): State<ApiState>,
    current: CurrentTenant,
    db: TenantDb,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    parts: axum::http::request::Parts,
) -> Result<Json<CustomerDeletion>, Problem> {
    let hard = match q.get("hard").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(Problem::validation(vec![FieldError::new(
                "hard",
                "must be true or false",
            )]));
        }
    };
    if hard {
        let Some(admin) = current.caller.as_ref().filter(|p| p.is_super_admin()) else {
            return Err(Problem::forbidden(
                "role_required",
                "a hard delete needs the super_admin role",
            ));
        };
        // The audited bypass handle, filtered to this tenant by hand: nothing else may match.
        let bypass = state
            .services()
            .engine
            .bypass(&admin.name, state.database(), origin(&parts));
        let field = state.services().config.policy.tenant_field.clone();
        let reply = bypass
            .run(doc! {
                "delete": COLLECTION,
                "deletes": [ { "q": { "_id": &id, field: current.slug() }, "limit": 1 } ],
            })
            .await
            .map_err(db_problem)?;
        if reply.get_i32("n").unwrap_or(0) == 0 {
            return Err(not_found(&id));
        }
        return Ok(Json(CustomerDeletion::Hard(CustomerHardDeleted {
            id,
            object: CustomerObject::Customer,
            deleted: true,
            hard: true,
        })));
    }
    let n = db
        .collection(COLLECTION)
        .delete(doc! { "_id": &id }, false)
        .await
        .map_err(db_problem)?;
    if n == 0 {
        return Err(not_found(&id));
    }
    let stored = find(&db, &id, true).await?.ok_or_else(|| not_found(&id))?;
    Ok(Json(CustomerDeletion::Soft(Box::new(view(&stored, &db)))))
}

#[utoipa::path(
    post,
    path = "/v1/customers/{id}/restore",
    operation_id = "restoreCustomer",
    tag = "customers",
    summary = "Restore a soft-deleted customer",
    params(TenantSelector, ("id" = String, Path, description = "The customer's id (`cus_…`).")),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The customer, `deletedAt` cleared.", body = Customer),
        (status = 404, description = "- `customer_not_found`: the tenant has no such customer.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "- `customer_not_deleted`: the customer is not deleted.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "- `database_unavailable`: the database cannot be reached; retry.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn restore(db: TenantDb, Path(id): Path<String>) -> Result<Json<Customer>, Problem> {
    let deleted = db.policy().soft_delete_field.clone();
    let reply = db
        .run(doc! {
            "findAndModify": COLLECTION,
            "query": { "_id": &id, &deleted: { "$ne": Bson::Null } },
            "update": { "$set": { &deleted: Bson::Null, "updatedAt": bson::DateTime::now() } },
            "new": true,
            "comment": INCLUDE_DELETED,
        })
        .await
        .map_err(db_problem)?;
    match reply.get_document("value") {
        Ok(d) => Ok(Json(view(d, &db))),
        Err(_) => match find(&db, &id, false).await? {
            Some(_) => Err(Problem::conflict(
                "customer_not_deleted",
                format!("customer {id} is not deleted"),
            )),
            None => Err(not_found(&id)),
        },
    }
}
