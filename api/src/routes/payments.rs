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
    let Some(k) = key else {
        let id = payments::new_id();
        return match create_payment(&state, &current, &db, &payment, &id).await {
            Ok(body) => created(body, false),
            Err(failure) => Err(failure.problem),
        };
    };
    let (id, resumed) = match idempotency::claim(
        &db,
        &k,
        &idempotency::fingerprint(&payment),
        &payments::new_id(),
    )
    .await
    .map_err(db_problem)?
    {
        Claim::Owned { id, resumed } => (id, resumed),
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
    };
    // An earlier attempt with this key stopped part way: finish its payment if it wrote one.
    let existing = if resumed {
        settle_existing(&db, &id).await.map_err(db_problem)?
    } else {
        None
    };
    let outcome = match existing {
        Some(body) => Ok(body),
        None => create_payment(&state, &current, &db, &payment, &id).await,
    };
    match outcome {
        Ok(body) => {
            // Stored twice at most; if both fail the record stays `started` and a retry after
            // the stale period resumes it, finding the payment already made.
            if idempotency::complete(&db, &k, 201, &body).await.is_err() {
                let _ = idempotency::complete(&db, &k, 201, &body).await;
            }
            created(body, resumed)
        }
        Err(failure) => {
            if failure.nothing_written {
                idempotency::release(&db, &k).await;
            }
            Err(failure.problem)
        }
    }
}

/// A failed creation: the error for the client, and whether the payment certainly does not
/// exist (so its idempotency key and counted transaction can be given back).
struct Failure {
    problem: Problem,
    nothing_written: bool,
}

async fn create_payment(
    state: &ApiState,
    current: &CurrentTenant,
    db: &TenantDb,
    payment: &input::NewPayment,
    id: &str,
) -> Result<Value, Failure> {
    let quota = transactions_per_month(&state.services().config.limits, &current.tenant);
    let meter = state.meter();
    // The transaction is counted before the payment exists, atomically with the quota check,
    // so concurrent payments cannot overshoot the quota; a payment that then certainly was not
    // written gives its count back. One that may exist keeps it: it will be finished.
    // Counted per created payment: a retry with the same Idempotency-Key is replayed or resumed
    // before it gets here, so the key itself need not be remembered by the meter.
    let (_, period) = meter
        .reserve_transaction(current.slug(), None, Some(quota))
        .await
        .map_err(|_| Failure {
            problem: Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "transaction_quota_exceeded",
                "Monthly transaction quota exceeded",
                format!(
                    "tenant {} has used its {quota} payments for this month",
                    current.slug()
                ),
            ),
            nothing_written: true,
        })?;
    let made = insert_and_settle(db, payment, id).await;
    if made.as_ref().is_err_and(|f| f.nothing_written) {
        meter
            .release_transaction(current.slug(), None, period)
            .await;
    }
    made
}

async fn insert_and_settle(
    db: &TenantDb,
    payment: &input::NewPayment,
    id: &str,
) -> Result<Value, Failure> {
    let simulate = payment.metadata.iter().find(|(k, _)| k == "simulate");
    let status = payments::settle(simulate.map(|(_, v)| v.as_str()));
    let payments = db.collection(COLLECTION);
    if let Err(e) = payments
        .insert_one(payments::document(id, payment, Status::Pending))
        .await
        && !e.is_duplicate_key()
    {
        // Did the insert happen anyway (a reply lost after the write)? Only a clean "no"
        // lets the key go.
        let absent = matches!(payments.find_one(doc! { "_id": id }).await, Ok(None));
        return Err(Failure {
            problem: db_problem(e),
            nothing_written: absent,
        });
    }
    settle(db, id, status).await.map_err(|e| Failure {
        problem: db_problem(e),
        nothing_written: false,
    })
}

/// Moves payment `id` from `pending` to `status` and returns its view; a payment another
/// attempt settled first is returned as it is.
async fn settle(db: &TenantDb, id: &str, status: Status) -> Result<Value, DbError> {
    let payments = db.collection(COLLECTION);
    let settled = payments
        .find_one_and_update(
            doc! { "_id": id, "status": Status::Pending.as_str() },
            doc! { "$set": { "status": status.as_str(), "updatedAt": bson::DateTime::now() } },
            true,
            false,
        )
        .await?;
    match settled {
        Some(d) => to_value(payments::view(&d, db.policy())),
        None => match payments.find_one(doc! { "_id": id }).await? {
            Some(d) => to_value(payments::view(&d, db.policy())),
            None => Err(DbError::Invalid(
                "a payment vanished while it was settled".into(),
            )),
        },
    }
}

/// The payment a stopped attempt wrote, settled if it was left pending; `None` if it never
/// wrote one.
async fn settle_existing(db: &TenantDb, id: &str) -> Result<Option<Value>, DbError> {
    let Some(found) = db
        .collection(COLLECTION)
        .find_one(doc! { "_id": id })
        .await?
    else {
        return Ok(None);
    };
    if found.get_str("status").ok() != Some(Status::Pending.as_str()) {
        return to_value(payments::view(&found, db.policy())).map(Some);
    }
    let simulate = found
        .get_document("metadata")
        .ok()
        .and_then(|m| m.get_str("simulate").ok());
    settle(db, id, payments::settle(simulate)).await.map(Some)
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
        data: found
            .iter()
            .map(|d| payments::view(d, db.policy()))
            .collect(),
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
        .map(|d| Json(payments::view(&d, db.policy())))
        .ok_or_else(|| not_found(&id))
}

#[utoipa::path(
    post,
    path = "/v1/payments/{id}/refund",
    operation_id = "refundPayment",
    tag = "payments",
    summary = "Refund a succeeded payment",
    description = "Always the whole amount: the body is empty or `{}` (an `amount` is refused, 422). A payment is refunded once.",
    params(TenantSelector, ("id" = String, Path, description = "The payment's id (`pay_…`).")),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The payment, now `refunded`.", body = Payment),
        (status = 422, description = "- `validation_failed`: the body names a field (`amount`: partial refunds are not supported).", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "- `payment_not_found`: the tenant has no payment with this id.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "- `payment_not_refundable`: the payment is not `succeeded` (already refunded, failed or pending).", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "- `database_unavailable`: the database cannot be reached; retry.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn refund(
    db: TenantDb,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Payment>, Problem> {
    refund_body(&body)?;
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
        Some(d) => Ok(Json(payments::view(&d, db.policy()))),
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

/// A refund is always of the whole payment: the body may be empty or `{}`, and a field such as
/// `amount` is refused rather than ignored (a partial refund silently made whole would move
/// money the caller did not ask for).
fn refund_body(body: &[u8]) -> Result<(), Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return Err(Problem::bad_request(
            "invalid_json",
            "the body of a refund must be empty or a JSON object",
        ));
    };
    let errors: Vec<FieldError> = fields
        .keys()
        .map(|k| match k.as_str() {
            "amount" => FieldError::new(
                "amount",
                "partial refunds are not supported: a refund is always for the whole payment",
            ),
            other => FieldError::new(other, "is not a refund field"),
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Problem::validation(errors))
    }
}

/// A payment as the JSON body stored for idempotent replays.
fn to_value(p: Payment) -> Result<Value, DbError> {
    serde_json::to_value(p).map_err(|e| DbError::Invalid(e.to_string()))
}
