//! The web console: a small single-page app (plain HTML, CSS and JavaScript modules, no build
//! step, no framework, nothing fetched from a CDN) compiled into the binary, so it works
//! offline and always matches the API it talks to. The page itself is public and the same for
//! every tenant; it asks the API who the tenant is (`GET /v1/tenant`, resolved from the host
//! like any API call) and what the signed-in token may see, so the console holds no authority
//! of its own.
//!
//! Responses carry a strict Content-Security-Policy: scripts, styles and API calls only from
//! this origin, images from here or `https:` (a tenant's logo), no framing.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::problem::Problem;
use crate::state::ApiState;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

/// One embedded file of `api/console/`, by name and content type.
macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_str!(concat!("../../console/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the console, embedded at compile time from `api/console/`.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("chart.js", JS),
    asset!("money.js", JS),
    asset!("pages.js", JS),
    asset!("favicon.svg", "image/svg+xml"),
];

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data: https:; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// The routes: `/console` redirects to `/console/`, which serves the app; `/console/config.json`
/// tells the app whether dev mode is on.
pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/", get(root))
        .route("/console", get(bare))
        .route("/console/", get(index))
        .route("/console/config.json", get(config))
        .route("/console/{file}", get(asset))
}

#[utoipa::path(
    get,
    path = "/",
    operation_id = "getRoot",
    tag = "console",
    summary = "Redirects to the web console",
    responses((status = 307, description = "To `/console/`.",
        headers(("Location" = String, description = "`/console/`."))))
)]
pub(crate) async fn root() -> Redirect {
    Redirect::temporary("/console/")
}

#[utoipa::path(
    get,
    path = "/console",
    operation_id = "getConsoleBare",
    tag = "console",
    summary = "Redirects to the web console",
    responses((status = 307, description = "To `/console/`.",
        headers(("Location" = String, description = "`/console/`."))))
)]
pub(crate) async fn bare() -> Redirect {
    Redirect::temporary("/console/")
}

#[utoipa::path(
    get,
    path = "/console/",
    operation_id = "getConsole",
    tag = "console",
    summary = "The web console's page",
    description = "A single-page app (plain HTML, CSS and JavaScript modules compiled into the binary; nothing from a CDN). Public and the same for every tenant: it asks the API for the tenant and what the signed-in token may see. Served with a strict `Content-Security-Policy`, `X-Frame-Options: DENY` and `Cache-Control: no-cache`.",
    responses((status = 200, description = "`index.html`.", body = String, content_type = "text/html"))
)]
pub(crate) async fn index() -> Response {
    serve("index.html")
}

#[utoipa::path(
    get,
    path = "/console/{file}",
    operation_id = "getConsoleFile",
    tag = "console",
    summary = "One file of the web console",
    description = "The files the page loads: `index.html`, `style.css`, `app.js`, `api.js`, `chart.js`, `money.js`, `pages.js`, `favicon.svg`. Served with the page's security headers and `Cache-Control: no-cache`.",
    params(("file" = String, Path, description = "The file name, e.g. `app.js`.")),
    responses(
        (status = 200, description = "The file.", content(
            (String = "text/html"),
            (String = "text/css"),
            (String = "text/javascript"),
            (String = "image/svg+xml"),
        )),
        (status = 404, description = "- `route_not_found`: no console file has this name.", body = crate::openapi::schemas::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn asset(Path(file): Path<String>) -> Response {
    serve(&file)
}

/// What the console learns of the API before anyone signs in.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleConfig {
    /// Whether `[api] dev_mode` is on (the page then offers to mint tokens).
    pub dev_mode: bool,
    /// `[api] base_domains`.
    pub base_domains: Vec<String>,
    /// Every accepted ISO 4217 currency and its number of minor-unit digits.
    pub currencies: std::collections::BTreeMap<String, u8>,
}

#[utoipa::path(
    get,
    path = "/console/config.json",
    operation_id = "getConsoleConfig",
    tag = "console",
    summary = "The console's settings: dev mode, base domains, the currency table",
    responses((status = 200, description = "Never cached.", body = ConsoleConfig))
)]
pub(crate) async fn config(State(state): State<ApiState>) -> Response {
    let config = &state.services().config;
    let mut r = axum::Json(ConsoleConfig {
        dev_mode: config.api.dev_mode,
        base_domains: config.api.base_domains.clone(),
        currencies: crate::currency::all()
            .map(|(code, digits)| (code.to_owned(), digits))
            .collect(),
    })
    .into_response();
    harden(&mut r, "no-store");
    r
}

fn serve(name: &str) -> Response {
    let Some(a) = ASSETS.iter().find(|a| a.name == name) else {
        return Problem::not_found("route_not_found", "no such console file").into_response();
    };
    let mut r = (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(a.content_type),
        )],
        a.body,
    )
        .into_response();
    // The files change only with the binary; `no-cache` makes browsers revalidate, which is
    // cheap, and never run a stale script against a newer API.
    harden(&mut r, "no-cache");
    r
}

fn harden(r: &mut Response, cache: &'static str) {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}
