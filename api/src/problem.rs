//! Every error the API returns, in one shape: RFC 9457 `application/problem+json`.
//!
//! ```json
//! { "type": "urn:tenantgate:problem:tenant_not_found", "title": "Tenant not found",
//!   "status": 404, "detail": "no tenant is named bank9", "code": "tenant_not_found",
//!   "instance": "/v1/tenant", "requestId": "3f2a…" }
//! ```
//!
//! `code` is the stable, machine-readable name (the last part of `type`); `detail` is for
//! people and may change. Validation problems add `errors: [{ "field", "message" }]`. The
//! `instance` and `requestId` members are filled in by [`finish`], which also turns any error
//! response that is not yet a problem (a framework rejection, a 405) into one, so no client ever
//! sees a plain-text error.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// The media type of problem bodies.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// One field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field, as a JSON path (`settings.brandColor`, `domains[0]`), a query parameter or a
    /// header (`Idempotency-Key`).
    #[schema(example = "amount")]
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An error response.
#[derive(Debug, Clone)]
pub struct Problem {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: String,
    errors: Vec<FieldError>,
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl Problem {
    /// A problem with a status, stable code, title and detail.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Problem {
        Problem {
            status,
            code,
            title,
            detail: detail.into(),
            errors: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, code, "Bad request", detail)
    }

    /// 401: no or bad credentials.
    pub fn unauthorized(code: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, code, "Unauthorized", detail).with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"tenantgate\""),
        )
    }

    /// 403: authenticated, but not allowed.
    pub fn forbidden(code: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, code, "Forbidden", detail)
    }

    /// 404: no such resource.
    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, code, "Not found", detail)
    }

    /// 409: conflicts with the current state.
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::CONFLICT, code, "Conflict", detail)
    }

    /// 422: well-formed but invalid; names every field at fault.
    pub fn validation(errors: Vec<FieldError>) -> Problem {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            _ => format!("{} fields are invalid", errors.len()),
        };
        Problem {
            errors,
            ..Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "Validation failed",
                detail,
            )
        }
    }

    /// 503: a dependency is down; try again.
    pub fn unavailable(code: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code,
            "Service unavailable",
            detail,
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
    }

    /// 500: our fault; the detail is generic, the cause goes to the log.
    pub fn internal(cause: &dyn std::fmt::Display) -> Problem {
        tracing::error!(target: "tenantgate::api", error = %cause, "internal error");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Internal server error",
            "an unexpected error occurred; the request id identifies it in the logs",
        )
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Problem {
        self.headers.push((name, value));
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    fn body(&self) -> Value {
        let mut body = json!({
            "type": format!("urn:tenantgate:problem:{}", self.code),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
        });
        if !self.errors.is_empty()
            && let Some(map) = body.as_object_mut()
        {
            map.insert("errors".into(), json!(self.errors));
        }
        body
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, CONTENT_TYPE)],
            self.body().to_string(),
        )
            .into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

/// The status' generic problem code, for errors produced outside our handlers.
fn generic_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "route_not_found",
        StatusCode::CONFLICT => "conflict",
        StatusCode::TOO_MANY_REQUESTS => "rate_limit_exceeded",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        s if s.is_server_error() => "internal_error",
        _ => "bad_request",
    }
}

/// Largest error body read back to be rewritten.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Middleware: completes problem bodies with `instance` and `requestId`, and converts any other
/// error response into a problem.
pub async fn finish(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let request_id = request
        .extensions()
        .get::<crate::request_id::RequestId>()
        .map(|r| r.0.clone());
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(CONTENT_TYPE.as_bytes()));
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_ERROR_BODY)
        .await
        .unwrap_or_default();
    let mut object: Map<String, Value> = if is_problem {
        serde_json::from_slice(&bytes).unwrap_or_default()
    } else {
        let text = String::from_utf8_lossy(&bytes);
        let detail: String = text.trim().chars().take(300).collect();
        let code = generic_code(status);
        let mut p = Problem::new(
            status,
            code,
            status.canonical_reason().unwrap_or("Error"),
            if detail.is_empty() {
                status
                    .canonical_reason()
                    .unwrap_or("error")
                    .to_ascii_lowercase()
            } else {
                detail
            },
        );
        p.headers.clear();
        match p.body() {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    };
    object.insert("instance".into(), Value::String(path));
    if let Some(id) = request_id {
        object.insert("requestId".into(), Value::String(id));
    }
    let body = Value::Object(object).to_string();
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_carry_type_code_and_fields() {
        let p = Problem::validation(vec![FieldError::new(
            "settings.brandColor",
            "must be #rrggbb",
        )]);
        let b = p.body();
        assert_eq!(b["status"], 422);
        assert_eq!(b["code"], "validation_failed");
        assert_eq!(b["type"], "urn:tenantgate:problem:validation_failed");
        assert_eq!(b["errors"][0]["field"], "settings.brandColor");
        assert_eq!(b["detail"], "settings.brandColor: must be #rrggbb");
    }
}
