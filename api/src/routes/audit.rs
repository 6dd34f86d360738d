//! `GET /v1/admin/audit` and `GET /v1/admin/audit/summary`: the security team's view of the
//! audit trail — rejections, authentication failures, tenant conflicts, bypasses and admin
//! changes, from the proxy and the API — for `super_admin` and `security_auditor`.
//!
//! Events are read from the `tenantgate_audit` collection of tenantgate's own database as they
//! were stored: command values were redacted into shapes before an event existed, so this route
//! never shows document values (unless a non-production deployment turned `audit_values` on).

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::routing::get;
use bson::{Bson, Document, doc, oid::ObjectId};
use serde_json::{Value, json};
use tenantgate_policy::Role;
use tenantgate_proxy::audit::COLLECTION;

use crate::extract::Json;
use crate::extract::caller::require_role;
use crate::guard;
use crate::openapi::params::{AuditFilter, AuditPage};
use crate::openapi::schemas::{
    AuditEventList, AuditSummary, AuditSummaryRow, ListObject, Problem as ProblemBody,
};
use crate::paging::{IdKind, Page};
use crate::problem::{FieldError, Problem};
use crate::state::ApiState;

/// The routes.
pub fn router(state: &ApiState) -> Router<ApiState> {
    Router::new()
        .route("/v1/admin/audit", guard::signed_in(state, get(events)))
        .route(
            "/v1/admin/audit/summary",
            guard::signed_in(state, get(summary)),
        )
}

/// `super_admin` or `security_auditor`.
fn auditor(parts: &Parts) -> Result<(), Problem> {
    match require_role(parts, &Role::SecurityAuditor) {
        Ok(_) => Ok(()),
        Err(e) if e.status() == axum::http::StatusCode::UNAUTHORIZED => Err(e),
        Err(_) => require_role(parts, &Role::SuperAdmin)
            .map(|_| ())
            .map_err(|_| {
                Problem::forbidden(
                    "role_required",
                    "this route needs the security_auditor or super_admin role",
                )
            }),
    }
}

fn instant(field: &str, s: &str, errors: &mut Vec<FieldError>) -> Option<bson::DateTime> {
    if let Ok(secs) = s.parse::<i64>() {
        return secs.checked_mul(1000).map(bson::DateTime::from_millis);
    }
    match bson::DateTime::parse_rfc3339_str(s) {
        Ok(t) => Some(t),
        Err(_) => {
            errors.push(FieldError::new(
                field,
                "must be Unix seconds or an RFC 3339 time",
            ));
            None
        }
    }
}

/// The filter of the shared query parameters.
fn filter(q: &HashMap<String, String>, extra: &[&str]) -> Result<Document, Problem> {
    let mut errors = Vec::new();
    let mut f = Document::new();
    let mut at = Document::new();
    for (k, v) in q {
        match k.as_str() {
            "tenant" | "rule" | "principal" | "kind" | "source" => {
                if v.is_empty() || v.len() > 128 {
                    errors.push(FieldError::new(k.as_str(), "must be 1 to 128 characters"));
                } else {
                    f.insert(k.as_str(), v.as_str());
                }
            }
            "from" => {
                if let Some(t) = instant("from", v, &mut errors) {
                    at.insert("$gte", t);
                }
            }
            "to" => {
                if let Some(t) = instant("to", v, &mut errors) {
                    at.insert("$lt", t);
                }
            }
            other if extra.contains(&other) => {}
            other => errors.push(FieldError::new(other, "is not an audit query parameter")),
        }
    }
    if !at.is_empty() {
        f.insert("at", at);
    }
    if errors.is_empty() {
        Ok(f)
    } else {
        Err(Problem::validation(errors))
    }
}

fn to_json(d: &Document) -> Value {
    let mut out = serde_json::Map::new();
    for (k, v) in d {
        let value = match (k.as_str(), v) {
            ("_id", Bson::ObjectId(id)) => {
                out.insert("id".into(), Value::String(format!("evt_{}", id.to_hex())));
                continue;
            }
            (_, Bson::DateTime(t)) => t
                .try_to_rfc3339_string()
                .map(Value::String)
                .unwrap_or(Value::Null),
            _ => v.clone().into_relaxed_extjson(),
        };
        out.insert(k.clone(), value);
    }
    Value::Object(out)
}

async fn run(state: &ApiState, cmd: Document) -> Result<Document, Problem> {
    let mut cmd = cmd;
    cmd.insert(
        "$db",
        state.services().config.policy.internal_database.as_str(),
    );
    let raw = bson::RawDocumentBuf::try_from(&cmd).map_err(|e| Problem::internal(&e))?;
    let reply = state.services().upstream.command(raw).await.map_err(|_| {
        Problem::unavailable(
            "database_unavailable",
            "the audit trail cannot be read right now; retry shortly",
        )
    })?;
    if reply.get_f64("ok").unwrap_or(0.0) != 1.0 {
        return Err(Problem::internal(&format!("audit query failed: {reply}")));
    }
    Ok(reply)
}

fn batch(reply: &Document) -> Vec<Document> {
    reply
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .map(|b| b.iter().filter_map(|d| d.as_document().cloned()).collect())
        .unwrap_or_default()
}

#[utoipa::path(
    get,
    path = "/v1/admin/audit",
    operation_id = "listAuditEvents",
    tag = "audit",
    summary = "Audit events, newest first",
    description = "Events as they were stored, from the proxy and the API: rejections, authentication failures, tenant conflicts, bypasses and admin changes. Command values never appear.",
    params(AuditFilter, AuditPage),
    security(("bearerAuth" = ["security_auditor"]), ("bearerAuth" = ["super_admin"])),
    responses(
        (status = 200, description = "A page of events.", body = AuditEventList),
        (status = 422, description = "- `validation_failed`: a query parameter is invalid or unknown; `errors` names each one.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "- `database_unavailable`: the audit trail cannot be read right now; retry.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn events(
    State(state): State<ApiState>,
    parts: Parts,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Problem> {
    auditor(&parts)?;
    let mut page = Page::new(50);
    let mut errors = Vec::new();
    for (k, v) in &q {
        page.take(k, v, EVENT_IDS, &mut errors);
    }
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let mut f = filter(&q, &["limit", "starting_after"])?;
    let limit = page.limit;
    if let Some(after) = &page.starting_after {
        // Checked by `Page`: `evt_` and 24 hex digits.
        let id = ObjectId::parse_str(&after[EVENT_IDS.prefix.len()..])
            .map_err(|e| Problem::internal(&e))?;
        f.insert("_id", doc! { "$lt": id });
    }
    let reply = run(
        &state,
        doc! { "find": COLLECTION, "filter": f, "sort": { "_id": -1 }, "limit": limit + 1, "singleBatch": true },
    )
    .await?;
    let mut found = batch(&reply);
    let has_more = found.len() as i64 > limit;
    found.truncate(usize::try_from(limit).unwrap_or(0));
    Ok(Json(json!({
        "object": "list",
        "data": found.iter().map(to_json).collect::<Vec<_>>(),
        "has_more": has_more,
    })))
}

/// Event ids as a list cursor: `evt_` and the stored ObjectId.
const EVENT_IDS: IdKind = IdKind {
    prefix: "evt_",
    message: "must be an event id",
};

/// The most (day, tenant, rule, kind) groups one summary returns.
const SUMMARY_GROUPS: i32 = 10_000;

#[utoipa::path(
    get,
    path = "/v1/admin/audit/summary",
    operation_id = "summarizeAuditEvents",
    tag = "audit",
    summary = "Audit event counts per day, tenant, rule and kind",
    params(AuditFilter),
    security(("bearerAuth" = ["security_auditor"]), ("bearerAuth" = ["super_admin"])),
    responses(
        (status = 200, description = "The counts, at most 10,000 rows; `has_more` is true when there were more (narrow `from`/`to`).", body = AuditSummary),
        (status = 422, description = "- `validation_failed`: a query parameter is invalid or unknown; `errors` names each one.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "- `database_unavailable`: the audit trail cannot be read right now; retry.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn summary(
    State(state): State<ApiState>,
    parts: Parts,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<AuditSummary>, Problem> {
    auditor(&parts)?;
    let f = filter(&q, &[])?;
    let reply = run(
        &state,
        doc! {
            "aggregate": COLLECTION,
            "pipeline": [
                { "$match": f },
                { "$group": {
                    "_id": {
                        "day": { "$dateToString": { "format": "%Y-%m-%d", "date": "$at" } },
                        // A missing field and null are one group, whatever the writer did.
                        "tenant": { "$ifNull": [ "$tenant", Bson::Null ] },
                        "rule": { "$ifNull": [ "$rule", Bson::Null ] },
                        "kind": { "$ifNull": [ "$kind", Bson::Null ] },
                    },
                    "count": { "$sum": 1 },
                } },
                { "$sort": { "_id.day": 1, "_id.tenant": 1, "_id.rule": 1 } },
                { "$limit": SUMMARY_GROUPS + 1 },
            ],
            "cursor": { "batchSize": SUMMARY_GROUPS + 1 },
        },
    )
    .await?;
    let text = |d: &Document, key: &str| d.get_str(key).ok().map(str::to_owned);
    let mut groups = batch(&reply);
    // More groups than are returned: the range is too wide; `has_more` says so and the
    // caller narrows `from`/`to`.
    let has_more = groups.len() > SUMMARY_GROUPS as usize;
    groups.truncate(SUMMARY_GROUPS as usize);
    let data: Vec<AuditSummaryRow> = groups
        .iter()
        .map(|d| {
            let id = d.get_document("_id").cloned().unwrap_or_default();
            AuditSummaryRow {
                day: text(&id, "day"),
                tenant: text(&id, "tenant"),
                rule: text(&id, "rule"),
                kind: text(&id, "kind"),
                count: match d.get("count") {
                    Some(Bson::Int32(n)) => i64::from(*n),
                    Some(Bson::Int64(n)) => *n,
                    _ => 0,
                },
            }
        })
        .collect();
    Ok(Json(AuditSummary {
        object: ListObject::List,
        data,
        has_more,
    }))
}
