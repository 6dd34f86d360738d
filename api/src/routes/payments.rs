//! `POST /v1/payments`, `GET /v1/payments`, `GET /v1/payments/{id}` and
//! `POST /v1/payments/{id}/refund`: tenant routes; every handler works through the tenant's
//! [`TenantDb`], so no filter here names a tenant and none needs to.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bson::{Document, doc};
use serde_json::{Map, Value};
use tenantgate_proxy::scoped::DbError;
use tenantgate_proxy::scoped_collection::FindOptions;

use crate::extract::{CurrentTenant, Json, TenantDb};
use crate::guard;
use crate::limits::transactions_per_month;
use crate::openapi::params::{PaymentListQuery, TenantSelector};
use crate::openapi::schemas::{
    ListObject, NewPayment, Payment, PaymentList, Problem as ProblemBody,
};
use crate::payments::idempotency::{self, Claim};
use crate::payments::{self, COLLECTION, Status, input};
use crate::problem::{FieldError, Problem};
use crate::state::ApiState;

/// The routes.
pub fn router(state: &ApiState) -> Router<ApiState> {
    Router::new()
        .route("/v1/payments", guard::tenant(state, get(list).post(create)))
        .route("/v1/payments/{id}", guard::tenant(state, get(read)))
        .route(
            "/v1/payments/{id}/refund",
            guard::tenant(state, post(refund)),
        )
}

/// Maps a database error of a handler to the API's error.
pub fn db_problem(e: DbError) -> Problem {
    match e {
        DbError::Upstream(_) | DbError::TenantInactive(_) => Problem::unavailable(
            "database_unavailable",
            "the database cannot be reached; retry shortly",
        ),
        other => Problem::internal(&other),
    }
}

#[utoipa::path(
    post,
    path = "/v1/payments",
    operation_id = "createPayment",
    tag = "payments",
    summary = "Create a payment",
    description = "Validates the body (a 422 names every field at fault), counts the payment against the tenant's monthly `transactions` quota, stores it `pending` and settles it `succeeded` or `failed` in the same request. With an `Idempotency-Key`, a retry with the same body replays the first response; once started, a payment runs to the end even if the client goes away.",
    params(
        TenantSelector,
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 printable ASCII characters, per tenant, kept 48 h (at least 24 h): the same key with the same body (field order does not matter) returns the original `201` with `Idempotent-Replayed: true`; with a different body it is `422 idempotency_key_reused`; while the first request still runs, `409 idempotency_in_progress`. A key whose request failed can be used again.", min_length = 1, max_length = 255, pattern = "^[\\x20-\\x7E]+$"),
    ),
    request_body(content = NewPayment, content_type = "application/json"),
    security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "The payment, settled.", body = Payment,
            headers(
                ("Location" = String, description = "`/v1/payments/{id}`."),
                ("Idempotent-Replayed" = String, description = "`true` when this is the replay of an earlier request with the same `Idempotency-Key`; absent otherwise."),
            )),
        (status = 409, description = "- `idempotency_in_progress`: a request with this `Idempotency-Key` is still being processed; retry after `Retry-After` seconds.", body = ProblemBody, content_type = "application/problem+json",
            headers(("Retry-After" = i64, description = "Seconds to wait (1)."))),
        (status = 422, description = "- `validation_failed`: a field (or the `Idempotency-Key` header) is invalid; `errors` names each one, unknown fields included.\n- `idempotency_key_reused`: this `Idempotency-Key` was used with a different body.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "- `transaction_quota_exceeded`: the tenant has used its payments for this UTC month.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "- `database_unavailable`: the database cannot be reached; retry.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn create(
    State(state): State<ApiState>,
    current: CurrentTenant,
    db: TenantDb,
    headers: HeaderMap,
    Json(body): Json<Map<String, Value>>,
) -> Result<Response, Problem> {
    let payment = input::new_payment(&body)?;
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => match v.to_str().ok().filter(|k| idempotency::valid_key(k)) {
            Some(k) => Some(k.to_owned()),
            None => {
                return Err(Problem::validation(vec![FieldError::new(
                    "Idempotency-Key",
                    "must be 1 to 255 printable ASCII characters",
                )]));
            }
        },
    };
    // Once started, a payment runs to the end on its own task: a client that gives up (a
    // timeout, a dropped connection) must not leave its key claimed, its payment pending or
    // its transaction uncounted. The client's retry then replays the outcome.
    let task = tokio::spawn(async move { create_owned(state, current, db, payment, key).await });
    match task.await {
        Ok(result) => result,
        Err(e) => Err(Problem::internal(&e)),
    }
}

fn created(body: Value, replayed: bool) -> Result<Response, Problem> {
    let location = HeaderValue::from_str(&format!(
        "/v1/payments/{}",
        body["id"].as_str().unwrap_or_default()
    ))
    .map_err(|e| Problem::internal(&e))?;
    let mut r = (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response();
    if replayed {
        r.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(r)
}

async fn create_owned(
    state: ApiState,
    current: CurrentTenant,
    db: TenantDb,
    payment: input::NewPayment,
    key: Option<String>,
) -> Result<Response, Problem> {
    if let Some(k) = &key {
        match idempotency::claim(&db, k, &idempotency::fingerprint(&payment))
            .await
            .map_err(db_problem)?
        {
            Claim::Owned => {}
            Claim::Replay(_, body) => return created(body, true),
            Claim::Mismatch => {
                return Err(Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
                    "Idempotency key reused",
                    "this Idempotency-Key was used with a different request body",
                ));
            }
            Claim::InProgress => {
                return Err(Problem::conflict(
                    "idempotency_in_progress",
                    "a request with this Idempotency-Key is still being processed; retry shortly",
                )
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("1")));
            }
        }
    }
    let outcome = create_payment(&state, &current, &db, &payment)
        .await
        .and_then(|p| serde_json::to_value(p).map_err(|e| Problem::internal(&e)));
    match (&key, &outcome) {
        (Some(k), Ok(body)) => {
            let _ = idempotency::complete(&db, k, 201, body).await;
        }
        (Some(k), Err(_)) => idempotency::release(&db, k).await,
        _ => {}
    }
    created(outcome?, false)
}

async fn create_payment(
    state: &ApiState,
    current: &CurrentTenant,
    db: &TenantDb,
    payment: &input::NewPayment,
) -> Result<Payment, Problem> {
    let quota = transactions_per_month(&state.services().config.limits, &current.tenant);
    let meter = state.meter();
    // The transaction is counted before the payment exists, atomically with the quota check,
    // so concurrent payments cannot overshoot the quota; a payment that then fails to be
    // created gives its count back.
    // Counted per created payment: a retry with the same Idempotency-Key is replayed before it
    // gets here, so the key itself need not be remembered by the meter.
    let (_, period) = meter
        .reserve_transaction(current.slug(), None, Some(quota))
        .await
        .map_err(|_| {
            Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "transaction_quota_exceeded",
                "Monthly transaction quota exceeded",
                format!(
                    "tenant {} has used its {quota} payments for this month",
                    current.slug()
                ),
            )
        })?;
    let made = insert_and_settle(db, payment).await;
    if made.is_err() {
        meter
            .release_transaction(current.slug(), None, period)
            .await;
    }
    made
}

async fn insert_and_settle(db: &TenantDb, payment: &input::NewPayment) -> Result<Payment, Problem> {
    let id = payments::new_id();
    let metadata: Map<String, Value> = payment
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let status = payments::settle(&metadata);
    let payments = db.collection(COLLECTION);
    payments
        .insert_one(payments::document(&id, payment, Status::Pending))
        .await
        .map_err(db_problem)?;
    let settled = payments
        .find_one_and_update(
            doc! { "_id": &id, "status": Status::Pending.as_str() },
            doc! { "$set": { "status": status.as_str(), "updatedAt": bson::DateTime::now() } },
            true,
            false,
        )
        .await
        .map_err(db_problem)?
        .ok_or_else(|| Problem::internal(&"a payment vanished while it was settled"))?;
    Ok(payments::view(&settled))
}

#[utoipa::path(
    get,
    path = "/v1/payments",
    operation_id = "listPayments",
    tag = "payments",
    summary = "List payments, newest first",
    params(TenantSelector, PaymentListQuery),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "A page of payments.", body = PaymentList),
        (status = 422, description = "- `validation_failed`: a query parameter is invalid or unknown; `errors` names each one.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "- `database_unavailable`: the database cannot be reached; retry.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn list(
    db: TenantDb,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<PaymentList>, Problem> {
    let q = input::list_query(&query)?;
    let mut filter = Document::new();
    if let Some(after) = &q.starting_after {
        filter.insert("_id", doc! { "$lt": after });
    }
    if let Some(status) = &q.status {
        filter.insert("status", status.as_str());
    }
    let mut created = Document::new();
    if let Some(ms) = q.created_gte {
        created.insert("$gte", bson::DateTime::from_millis(ms));
    }
    if let Some(ms) = q.created_lte {
        created.insert("$lte", bson::DateTime::from_millis(ms));
    }
    if !created.is_empty() {
        filter.insert("createdAt", created);
    }
    let mut found = db
        .collection(COLLECTION)
        .find(
            filter,
            FindOptions {
                sort: Some(doc! { "_id": -1 }),
                limit: Some(q.limit + 1),
                ..FindOptions::default()
            },
        )
        .await
        .map_err(db_problem)?;
    let has_more = found.len() as i64 > q.limit;
    found.truncate(usize::try_from(q.limit).unwrap_or(0));
    Ok(Json(PaymentList {
        object: ListObject::List,
        data: found.iter().map(payments::view).collect(),
        has_more,
    }))
}

fn not_found(id: &str) -> Problem {
    Problem::not_found("payment_not_found", format!("no payment {id}"))
}

#[utoipa::path(
    get,
    path = "/v1/payments/{id}",
    operation_id = "getPayment",
    tag = "payments",
    summary = "Read a payment",
    params(TenantSelector, ("id" = String, Path, description = "The payment's id (`pay_…`).")),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The payment.", body = Payment),
        (status = 404, description = "- `payment_not_found`: the tenant has no payment with this id (another tenant's payment is not found either).", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "- `database_unavailable`: the database cannot be reached; retry.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn read(db: TenantDb, Path(id): Path<String>) -> Result<Json<Payment>, Problem> {
    db.collection(COLLECTION)
        .find_one(doc! { "_id": &id })
        .await
        .map_err(db_problem)?
        .map(|d| Json(payments::view(&d)))
        .ok_or_else(|| not_found(&id))
}

#[utoipa::path(
    post,
    path = "/v1/payments/{id}/refund",
    operation_id = "refundPayment",
    tag = "payments",
    summary = "Refund a succeeded payment",
    description = "The whole amount; no body. A payment is refunded once.",
    params(TenantSelector, ("id" = String, Path, description = "The payment's id (`pay_…`).")),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The payment, now `refunded`.", body = Payment),
        (status = 404, description = "- `payment_not_found`: the tenant has no payment with this id.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "- `payment_not_refundable`: the payment is not `succeeded` (already refunded, failed or pending).", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "- `database_unavailable`: the database cannot be reached; retry.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn refund(db: TenantDb, Path(id): Path<String>) -> Result<Json<Payment>, Problem> {
    let payments = db.collection(COLLECTION);
    let refunded = payments
        .find_one_and_update(
            doc! { "_id": &id, "status": Status::Succeeded.as_str() },
            doc! { "$set": { "status": Status::Refunded.as_str(), "updatedAt": bson::DateTime::now() } },
            true,
            false,
        )
        .await
        .map_err(db_problem)?;
    match refunded {
        Some(d) => Ok(Json(payments::view(&d))),
        None => match payments
            .find_one(doc! { "_id": &id })
            .await
            .map_err(db_problem)?
        {
            Some(d) => Err(Problem::conflict(
                "payment_not_refundable",
                format!(
                    "payment {id} is {}; only succeeded payments can be refunded",
                    d.get_str("status").unwrap_or("?")
                ),
            )),
            None => Err(not_found(&id)),
        },
    }
}
