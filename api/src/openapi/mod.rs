//! `GET /openapi.json`: the OpenAPI 3.1 document of this API, generated from the code.
//!
//! Why generated: the handlers are the truth about routes, bodies and errors, and a document
//! written by hand drifts from them. Every handler carries a `#[utoipa::path]` annotation next
//! to its code, the objects it returns are the typed structs of [`schemas`] (so a field cannot
//! be sent without being described), and [`ApiDoc`] lists every annotated handler.
//!
//! What the annotations do not say is added once, here, by [`decorate`], from facts the router
//! itself encodes, rather than being repeated on every operation:
//!
//! - **Tenant routes** (those wrapped in [`crate::guard::tenant`]) are the operations that take
//!   the `X-Tenant-ID` parameter ([`params::TenantSelector`]). Each gets the rate-limit
//!   response headers on every response, a `429`, and the errors of tenant resolution.
//! - **Signed-in routes** declare the `bearerAuth` security scheme: a bad token is `401`; a
//!   requirement without the anonymous alternative adds `401 authentication_required`; role
//!   names in the requirement (OpenAPI 3.1 allows them for non-OAuth schemes) add
//!   `403 role_required`.
//! - **JSON bodies** get the body extractor's errors (`400`, `413`, `415`, `422`); **path
//!   parameters** the path extractor's (`400 bad_request`).
//! - **Every response** carries `X-Request-Id`; every operation accepts one.
//!
//! utoipa models neither reusable header components nor reusable parameters, so that step works
//! on the serialized JSON. The document is built once, on first use, and served as the same
//! bytes afterwards. It is public like `/health`: no token, no tenant, no rate limit.
//!
//! To document a new route: annotate its handler with `#[utoipa::path(...)]` (an
//! `operation_id`, a tag, its parameters — `params::TenantSelector` if it is a tenant route —
//! its body, and its own responses with their problem `code`s as "- `code`: when" lines), add
//! the handler to `paths(...)` of [`ApiDoc`], and add the route to the list in
//! `tests/api_openapi.rs`.

pub mod params;
pub mod schemas;

use std::sync::OnceLock;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::problem::Problem;
use crate::routes;
use crate::state::ApiState;

/// The API's OpenAPI description: every annotated handler.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "tenantgate API",
        description = include_str!("overview.md"),
        license(name = "Apache-2.0 OR MIT", identifier = "Apache-2.0 OR MIT"),
    ),
    paths(
        routes::health::health,
        routes::health::ready,
        routes::dev::mint,
        routes::console::root,
        routes::console::bare,
        routes::console::index,
        routes::console::asset,
        routes::console::config,
        routes::metrics::metrics,
        openapi_json,
        routes::tenant::current,
        routes::usage::tenant_usage,
        routes::usage::all_usage,
        routes::payments::create,
        routes::payments::list,
        routes::payments::read,
        routes::payments::refund,
        routes::customers::create,
        routes::customers::list,
        routes::customers::read,
        routes::customers::update,
        routes::customers::remove,
        routes::customers::restore,
        routes::audit::events,
        routes::audit::summary,
        routes::admin::tenants::create,
        routes::admin::tenants::list,
        routes::admin::tenants::read,
        routes::admin::tenants::update,
        routes::admin::tenants::list_domains,
        routes::admin::tenants::add_domain,
        routes::admin::tenants::remove_domain,
    ),
    components(schemas(schemas::Problem)),
    modifiers(&BearerAuth),
    tags(
        (name = "health", description = "Liveness, readiness, metrics and this document. Public."),
        (name = "tenant", description = "The tenant a request resolved to."),
        (name = "usage", description = "Monthly usage against the quota."),
        (name = "payments", description = "Payments of the tenant."),
        (name = "customers", description = "Customers of the tenant, with soft delete."),
        (name = "audit", description = "The audit trail, for `security_auditor` and `super_admin`."),
        (name = "admin", description = "The tenant registry, for `super_admin`."),
        (name = "console", description = "The web console's page, files and settings. Public."),
        (name = "dev", description = "Development only (`[api] dev_mode = true`)."),
    )
)]
pub struct ApiDoc;

/// Adds the `bearerAuth` scheme.
#[derive(Debug)]
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearerAuth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT from the platform's identity provider, HS256 or RS256 as the \
                         `[jwt]` section configures; `exp` and `nbf` are checked, and `iss` / \
                         `aud` when configured. Claims: `sub` (who, for the audit trail), \
                         `tenantId` (the caller's tenant: it resolves the request's tenant and \
                         grants access to that tenant's data) and `roles` (`super_admin`: the \
                         admin routes, acting as any tenant with `X-Tenant-ID`, hard deletes; \
                         `security_auditor`: the audit routes). A token that does not verify is \
                         refused (`401 invalid_token` / `token_expired`) and audited, never \
                         treated as anonymous. The role names in an operation's requirement are \
                         the roles it needs.",
                    ))
                    .build(),
            ),
        );
    }
}

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "getOpenApiDocument",
    tag = "health",
    summary = "This OpenAPI 3.1 document",
    description = "Generated from the code at build time and served as is. Public: no token, \
                   no tenant, no rate limit.",
    responses(
        (status = 200, description = "The document.", body = Object, content_type = "application/json"),
        (status = 500, description = "- `internal_error`: the document could not be built.", body = schemas::Problem, content_type = "application/problem+json"),
    )
)]
async fn openapi_json() -> Response {
    match document() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            text,
        )
            .into_response(),
        Err(e) => Problem::internal(e).into_response(),
    }
}

/// The route (public, like health and metrics).
pub fn router() -> Router<ApiState> {
    Router::new().route("/openapi.json", get(openapi_json))
}

/// The document as JSON text, built on first use.
pub fn document() -> Result<&'static str, &'static String> {
    static DOCUMENT: OnceLock<Result<String, String>> = OnceLock::new();
    DOCUMENT
        .get_or_init(|| {
            let mut doc = serde_json::to_value(ApiDoc::openapi()).map_err(|e| e.to_string())?;
            decorate(&mut doc);
            serde_json::to_string(&doc).map_err(|e| e.to_string())
        })
        .as_ref()
        .map(String::as_str)
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn header_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/headers/{name}") })
}

/// The rate-limit response fields of every tenant route (see [`crate::limits::headers`]).
const RATE_LIMIT_HEADERS: [&str; 5] = [
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "RateLimit-Policy",
    "RateLimit",
];

/// The reusable response headers.
fn header_components() -> Value {
    let limited = "Present on every response of a tenant route once the request got past \
                   authentication and tenant resolution, while `[limits]` is enabled.";
    json!({
        "X-RateLimit-Limit": {
            "description": format!("Requests allowed per window (60 s) to this endpoint group for this tenant (for an anonymous caller: for this tenant and client address). {limited}"),
            "schema": { "type": "integer", "minimum": 0 },
            "example": 600,
        },
        "X-RateLimit-Remaining": {
            "description": format!("Requests left in the current window. {limited}"),
            "schema": { "type": "integer", "minimum": 0 },
            "example": 597,
        },
        "X-RateLimit-Reset": {
            "description": format!("Seconds to wait until a slot frees (delta seconds, never an epoch time). {limited}"),
            "schema": { "type": "integer", "minimum": 0 },
            "example": 42,
        },
        "RateLimit-Policy": {
            "description": format!("IETF draft-ietf-httpapi-ratelimit-headers policy: `\"<group>\";q=<limit>;w=<window seconds>`. The group is the first path segment after `/v1/` when limits are configured for it, else `default`. {limited}"),
            "schema": { "type": "string" },
            "example": "\"default\";q=600;w=60",
        },
        "RateLimit": {
            "description": format!("IETF draft-ietf-httpapi-ratelimit-headers state: `\"<group>\";r=<remaining>;t=<seconds to reset>`. {limited}"),
            "schema": { "type": "string" },
            "example": "\"default\";r=597;t=42",
        },
        "Retry-After": {
            "description": "Seconds to wait before retrying: the rate-limit reset on 429, 1 on 503 and on `409 idempotency_in_progress`.",
            "schema": { "type": "integer", "minimum": 1 },
            "example": 1,
        },
        "X-Request-Id": {
            "description": "The request's id: the caller's `X-Request-Id` when it is 1 to 64 of `A-Za-z0-9._-`, else a fresh one. Also in problem bodies (`requestId`), the logs and audit events.",
            "schema": { "type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$" },
        },
        "WWW-Authenticate": {
            "description": "The authentication scheme the API expects.",
            "schema": { "type": "string" },
            "example": "Bearer realm=\"tenantgate\"",
        },
    })
}

/// The reusable request parameters (the tenant selector is lifted out of the operations).
fn parameter_components() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(
        "X-Request-Id".into(),
        json!({
            "name": "X-Request-Id",
            "in": "header",
            "required": false,
            "description": "An id for this request, kept when it is 1 to 64 of `A-Za-z0-9._-` (a load balancer's, so traces join up); anything else is replaced. Echoed in the response.",
            "schema": { "type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$" },
        }),
    );
    m
}

fn problem_response(description: String) -> Value {
    json!({
        "description": description,
        "content": {
            "application/problem+json": {
                "schema": { "$ref": "#/components/schemas/Problem" }
            }
        }
    })
}

/// Lines "- `code`: when" of a response description.
fn lines(errors: &[(&str, &str)]) -> String {
    errors
        .iter()
        .map(|(code, when)| format!("- `{code}`: {when}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Adds error `codes` to the response `status` of `responses`, creating it if needed.
fn add_errors(responses: &mut Map<String, Value>, status: &str, errors: &[(&str, &str)]) {
    let text = lines(errors);
    match responses.get_mut(status) {
        Some(Value::Object(r)) if !r.contains_key("$ref") => {
            let description = r
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let joined = if description.is_empty() {
                text
            } else {
                format!("{description}\n{text}")
            };
            r.insert("description".into(), Value::String(joined));
        }
        Some(_) => {}
        None => {
            responses.insert(status.to_owned(), problem_response(text));
        }
    }
}

/// How an operation is guarded, read from its annotation.
#[derive(Debug, Default)]
struct Guards {
    tenant: bool,
    authenticated: bool,
    token_required: bool,
    roles_required: bool,
    json_body: bool,
    path_params: bool,
}

fn guards(op: &Map<String, Value>) -> Guards {
    let parameters: &[Value] = op
        .get("parameters")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let tenant = parameters.iter().any(is_tenant_selector);
    // axum's Path extractor refuses a segment that does not decode to UTF-8 (a plain-text 400
    // that `problem::finish` turns into `bad_request`).
    let path_params = parameters.iter().any(|p| p["in"] == "path");
    let requirements: Vec<&Map<String, Value>> = op
        .get("security")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default();
    let bearer = |r: &&Map<String, Value>| r.contains_key("bearerAuth");
    let authenticated = requirements.iter().any(bearer);
    let token_required = authenticated && requirements.iter().all(bearer);
    let roles_required = token_required
        && requirements.iter().all(|r| {
            r.get("bearerAuth")
                .and_then(Value::as_array)
                .is_some_and(|roles| !roles.is_empty())
        });
    Guards {
        tenant,
        authenticated,
        token_required,
        roles_required,
        json_body: op.contains_key("requestBody"),
        path_params,
    }
}

/// A header or query value is text, never JSON `null`: utoipa marks optional parameters of
/// `Option` type nullable, which would tell generated clients otherwise.
fn not_null(parameter: &mut Value) {
    if let Some(Value::Array(types)) = parameter.pointer_mut("/schema/type") {
        types.retain(|t| t != "null");
        if let [only] = types.as_slice() {
            let only = only.clone();
            parameter["schema"]["type"] = only;
        }
    }
}

fn is_tenant_selector(p: &Value) -> bool {
    p["in"] == "header" && p["name"] == "X-Tenant-ID"
}

/// Adds what the router's guards and middleware add to every operation (see the module docs).
pub fn decorate(doc: &mut Value) {
    let mut tenant_selector: Option<Value> = None;
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for method in METHODS {
                if let Some(Value::Object(op)) = item.get_mut(method) {
                    decorate_operation(op, &mut tenant_selector);
                }
            }
        }
    }
    let Some(root) = doc.as_object_mut() else {
        return;
    };
    let components = root
        .entry("components")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    let Some(components) = components else {
        return;
    };
    components.insert("headers".into(), header_components());
    let mut parameters = parameter_components();
    if let Some(p) = tenant_selector {
        parameters.insert("X-Tenant-ID".into(), p);
    }
    components.insert("parameters".into(), Value::Object(parameters));
    let mut too_many = problem_response(lines(&[(
        "rate_limit_exceeded",
        "the tenant's requests per minute to this endpoint group are used up; retry after `Retry-After` seconds. Nothing about a refused request is counted.",
    )]));
    let mut headers = Map::new();
    for name in RATE_LIMIT_HEADERS
        .iter()
        .copied()
        .chain(["Retry-After", "X-Request-Id"])
    {
        headers.insert(name.into(), header_ref(name));
    }
    too_many["headers"] = Value::Object(headers);
    if let Some(responses) = components
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut()
    {
        responses.insert("TooManyRequests".into(), too_many);
    }
}

fn decorate_operation(op: &mut Map<String, Value>, tenant_selector: &mut Option<Value>) {
    let g = guards(op);
    // Parameters: the tenant selector and X-Request-Id by reference.
    let params = op
        .entry("parameters")
        .or_insert_with(|| json!([]))
        .as_array_mut();
    if let Some(params) = params {
        if let Some(i) = params.iter().position(is_tenant_selector) {
            let mut p = params.remove(i);
            not_null(&mut p);
            tenant_selector.get_or_insert(p);
            params.insert(i, json!({ "$ref": "#/components/parameters/X-Tenant-ID" }));
        }
        params.push(json!({ "$ref": "#/components/parameters/X-Request-Id" }));
        for p in params.iter_mut() {
            not_null(p);
        }
    }
    let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
        return;
    };
    if g.path_params {
        add_errors(
            responses,
            "400",
            &[(
                "bad_request",
                "a path parameter is not valid UTF-8 once percent-decoded",
            )],
        );
    }
    if g.json_body {
        add_errors(
            responses,
            "400",
            &[
                ("invalid_json", "the body is not well-formed JSON"),
                ("invalid_body", "the body could not be read"),
            ],
        );
        add_errors(
            responses,
            "413",
            &[("payload_too_large", "the body is larger than 2 MiB")],
        );
        add_errors(
            responses,
            "415",
            &[(
                "unsupported_media_type",
                "the body was not sent as `Content-Type: application/json`",
            )],
        );
        add_errors(
            responses,
            "422",
            &[(
                "validation_failed",
                "the body is JSON but not an object (`errors[0].field` is `body`)",
            )],
        );
    }
    if g.authenticated {
        add_errors(
            responses,
            "401",
            &[
                (
                    "invalid_token",
                    "the `Authorization` header is not `Bearer <JWT>`, or the token does not verify (audited)",
                ),
                ("token_expired", "the bearer token has expired"),
            ],
        );
    }
    if g.token_required {
        add_errors(
            responses,
            "401",
            &[(
                "authentication_required",
                "no `Authorization: Bearer <JWT>` header",
            )],
        );
    }
    if g.roles_required {
        add_errors(
            responses,
            "403",
            &[("role_required", "the token lacks the role this route needs")],
        );
    }
    if g.tenant {
        let tenant_required = if g.token_required {
            "the token names no tenant (no `tenantId`), and neither `X-Tenant-ID` nor the host does; without a token this is `401 authentication_required`"
        } else {
            "nothing names a tenant: no token `tenantId`, no `X-Tenant-ID`, no tenant host"
        };
        add_errors(
            responses,
            "400",
            &[
                ("tenant_required", tenant_required),
                (
                    "invalid_tenant_id",
                    "`X-Tenant-ID` is not a tenant id, or is sent more than once",
                ),
            ],
        );
        if g.token_required {
            add_errors(
                responses,
                "403",
                &[(
                    "tenant_access_denied",
                    "the token names no tenant, or another one, and is not `super_admin`",
                )],
            );
        }
        add_errors(
            responses,
            "403",
            &[
                ("tenant_inactive", "the tenant is deactivated"),
                (
                    "tenant_conflict",
                    "the token names one tenant and `X-Tenant-ID` or the host another (audited)",
                ),
            ],
        );
        add_errors(
            responses,
            "404",
            &[(
                "tenant_not_found",
                "no tenant has this id, subdomain or custom domain",
            )],
        );
        if !responses.contains_key("429") {
            responses.insert(
                "429".into(),
                json!({ "$ref": "#/components/responses/TooManyRequests" }),
            );
        } else {
            add_errors(
                responses,
                "429",
                &[(
                    "rate_limit_exceeded",
                    "the tenant's requests per minute to this endpoint group are used up; retry after `Retry-After` seconds",
                )],
            );
        }
        add_errors(
            responses,
            "503",
            &[
                (
                    "registry_unavailable",
                    "the tenant registry cannot be reached",
                ),
                (
                    "rate_limiter_unavailable",
                    "Redis is down and this endpoint group's failure mode is `closed`",
                ),
            ],
        );
    }
    if g.authenticated || g.tenant {
        add_errors(
            responses,
            "500",
            &[(
                "internal_error",
                "an unexpected error; the request id identifies it in the logs",
            )],
        );
    }
    // Response headers: the shared ones by reference.
    let shared = header_components();
    for (status, response) in responses.iter_mut() {
        let Some(r) = response.as_object_mut() else {
            continue;
        };
        if r.contains_key("$ref") {
            continue;
        }
        let headers = r.entry("headers").or_insert_with(|| json!({}));
        let Some(headers) = headers.as_object_mut() else {
            continue;
        };
        for (name, header) in headers.iter_mut() {
            if shared.get(name).is_some() {
                *header = header_ref(name);
            }
        }
        headers.insert("X-Request-Id".into(), header_ref("X-Request-Id"));
        if g.tenant {
            for name in RATE_LIMIT_HEADERS {
                headers.insert(name.into(), header_ref(name));
            }
        }
        if status == "429" || status == "503" {
            headers.insert("Retry-After".into(), header_ref("Retry-After"));
        }
        if status == "401" {
            headers.insert("WWW-Authenticate".into(), header_ref("WWW-Authenticate"));
        }
    }
    // Statuses in order.
    let mut sorted: Vec<(String, Value)> = std::mem::take(responses).into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    responses.extend(sorted);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        let text = document().expect("the document builds");
        serde_json::from_str(text).expect("the document is JSON")
    }

    #[test]
    fn the_document_is_openapi_3_1() {
        let d = doc();
        assert!(d["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")));
        assert!(d["components"]["securitySchemes"]["bearerAuth"].is_object());
        assert!(d["components"]["parameters"]["X-Tenant-ID"].is_object());
    }

    #[test]
    fn request_limits_match_the_validators() {
        let d = doc();
        let amount = &d["components"]["schemas"]["NewPayment"]["properties"]["amount"];
        assert_eq!(
            amount["maximum"].as_i64(),
            Some(crate::payments::input::MAX_AMOUNT)
        );
        let domains = &d["components"]["schemas"]["NewTenant"]["properties"]["domains"];
        assert_eq!(
            domains["maxItems"].as_u64(),
            Some(crate::routes::admin::tenant_input::MAX_DOMAINS as u64)
        );
    }
}
