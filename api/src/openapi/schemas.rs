//! The API's JSON objects as Rust types, for the OpenAPI document and — where a handler builds
//! the object — for the handler itself.
//!
//! Response objects (`Payment`, `Customer`, `Usage`, the tenant views, the lists) are what the
//! handlers serialize, so the document cannot describe a field the code does not send. Request
//! bodies are validated by hand (so that one 422 names every field at fault, see
//! [`crate::payments::input`], [`crate::routes::customers`] and
//! [`crate::routes::admin::tenant_input`]); their types here only describe those rules, and
//! `tests/api_openapi.rs` checks them against the live server. Objects read back as stored
//! (audit events) are described with their known fields and left open.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

use crate::problem::FieldError;

/// Control characters (`char::is_control`), which no text field accepts.
const NO_CONTROLS: &str = r"^[^\x00-\x1F\x7F-\x9F]+$";

// ---------------------------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------------------------

/// The `object` member of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ListObject {
    /// A page of results.
    List,
}

/// A tenant's service tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// The entry tier (the default of a new tenant): 60 requests per minute unless configured.
    #[default]
    Starter,
    /// 600 requests per minute unless configured.
    Professional,
    /// 6,000 requests per minute unless configured.
    Enterprise,
}

impl From<tenantgate_proxy::registry::Tier> for Tier {
    fn from(t: tenantgate_proxy::registry::Tier) -> Self {
        use tenantgate_proxy::registry::Tier as T;
        match t {
            T::Starter => Tier::Starter,
            T::Professional => Tier::Professional,
            T::Enterprise => Tier::Enterprise,
        }
    }
}

/// Metadata as returned: string keys and string values, in the order they were sent.
fn metadata_out() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some("String keys and string values, as they were sent."))
        .additional_properties(Some(ObjectBuilder::new().schema_type(Type::String)))
        .build()
}

/// Metadata as accepted: at most 20 keys of 1 to 40 characters (no `$` at the start, no `.`,
/// no control characters), values of 1 to 500 printable characters.
fn metadata_in() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "At most 20 keys of 1 to 40 characters, without `$` at the start, `.` or control \
             characters; values are strings of 1 to 500 printable characters.",
        ))
        .max_properties(Some(20))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(40))
                .pattern(Some(r"^[^$.\x00-\x1F\x7F-\x9F][^.\x00-\x1F\x7F-\x9F]*$")),
        ))
        .additional_properties(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(500))
                .pattern(Some(NO_CONTROLS)),
        ))
        .build()
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// An RFC 9457 problem: the body of every error response (`application/problem+json`).
///
/// `code` is the stable, machine-readable name of the error (the last part of `type`); each
/// response of the document lists the codes it can carry. `detail` is for people and may
/// change.
#[derive(Debug, Clone, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// `urn:tenantgate:problem:<code>`.
    #[serde(rename = "type")]
    #[schema(
        format = "uri",
        pattern = "^urn:tenantgate:problem:[a-z0-9_]+$",
        example = "urn:tenantgate:problem:validation_failed"
    )]
    pub problem_type: String,
    /// A short summary of the status, e.g. `Validation failed`.
    pub title: String,
    /// The HTTP status, repeated.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// What went wrong, for people.
    pub detail: String,
    /// The stable error code.
    #[schema(pattern = "^[a-z0-9_]+$", example = "validation_failed")]
    pub code: String,
    /// The request's path.
    #[schema(format = "uri-reference", example = "/v1/payments")]
    pub instance: String,
    /// The request's `X-Request-Id`, also in the response header and the logs.
    #[schema(example = "3f2a9c0d1e4b5a6978a1b2c3")]
    pub request_id: String,
    /// Present on `validation_failed` (422): every field at fault.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

// ---------------------------------------------------------------------------------------------
// Health
// ---------------------------------------------------------------------------------------------

/// `status` of `GET /health`.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// The process answers.
    Ok,
}

/// `GET /health`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: HealthStatus,
    /// The running version of tenantgate.
    #[schema(example = "0.1.0")]
    pub version: String,
}

/// `status` of `GET /ready`.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReadyStatus {
    /// Traffic can be served.
    Ready,
}

/// The upstream check of `GET /ready` (a failed one is a 503 instead).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamCheck {
    /// The upstream answered a ping within 2 s.
    Ok,
}

/// The Redis check of `GET /ready`: Redis is not required to serve (see the limiter's failure
/// modes), so it never fails readiness.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RedisCheck {
    /// Redis answered a ping within 200 ms.
    Ok,
    /// Redis is configured but did not answer.
    Degraded,
    /// No `[redis]` section is configured.
    NotConfigured,
}

/// The checks of `GET /ready`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReadyChecks {
    /// The upstream MongoDB.
    pub upstream: UpstreamCheck,
    /// Redis.
    pub redis: RedisCheck,
}

/// `GET /ready`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Ready {
    /// Always `ready`.
    pub status: ReadyStatus,
    /// What was checked.
    pub checks: ReadyChecks,
}

// ---------------------------------------------------------------------------------------------
// Tenants
// ---------------------------------------------------------------------------------------------

/// A tenant's theming and locale. Unset settings are absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantSettings {
    /// Name shown to the tenant's users (1 to 100 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 100, nullable = false)]
    pub display_name: Option<String>,
    /// `#rrggbb`, lower case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^#[0-9a-fA-F]{6}$", example = "#0a3d62", nullable = false)]
    pub brand_color: Option<String>,
    /// An `https://` URL of at most 2048 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        format = "uri",
        max_length = 2048,
        pattern = "^https://[^/]",
        nullable = false
    )]
    pub logo_url: Option<String>,
    /// An IANA time zone such as `Europe/Zurich`, or `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 64,
        example = "Europe/Zurich",
        nullable = false
    )]
    pub time_zone: Option<String>,
    /// A circulating ISO 4217 currency code such as `EUR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Z]{3}$", example = "EUR", nullable = false)]
    pub currency: Option<String>,
}

impl From<&tenantgate_proxy::registry::Settings> for TenantSettings {
    fn from(s: &tenantgate_proxy::registry::Settings) -> Self {
        // Destructured, so a new registry setting does not compile until it is described here.
        let tenantgate_proxy::registry::Settings {
            display_name,
            brand_color,
            logo_url,
            time_zone,
            currency,
        } = s;
        TenantSettings {
            display_name: display_name.clone(),
            brand_color: brand_color.clone(),
            logo_url: logo_url.clone(),
            time_zone: time_zone.clone(),
            currency: currency.clone(),
        }
    }
}

/// Per-tenant overrides of the tier's limits; an absent limit is the tier's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantLimits {
    /// API requests per minute of every endpoint group without its own limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64, nullable = false)]
    pub requests_per_minute: Option<u64>,
    /// Payments per UTC month (`POST /v1/payments` past it is `429 transaction_quota_exceeded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64, nullable = false)]
    pub transactions_per_month: Option<u64>,
    /// Proxy commands per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 10_000_000, nullable = false)]
    pub commands_per_second: Option<u32>,
    /// Proxy client connections at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 10_000_000, nullable = false)]
    pub connections: Option<u32>,
    /// Proxy commands in flight at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 10_000_000, nullable = false)]
    pub in_flight: Option<u32>,
    /// API requests per minute of single endpoint groups, by the first path segment after
    /// `/v1/` (`{"payments": 120}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, u64>,
}

impl From<&tenantgate_proxy::registry::LimitOverrides> for TenantLimits {
    fn from(l: &tenantgate_proxy::registry::LimitOverrides) -> Self {
        // Destructured, so a new registry limit does not compile until it is described here.
        let tenantgate_proxy::registry::LimitOverrides {
            requests_per_minute,
            transactions_per_month,
            commands_per_second,
            connections,
            in_flight,
            groups,
        } = l;
        TenantLimits {
            requests_per_minute: *requests_per_minute,
            transactions_per_month: *transactions_per_month,
            commands_per_second: *commands_per_second,
            connections: *connections,
            in_flight: *in_flight,
            groups: groups.clone(),
        }
    }
}

/// `GET /v1/tenant`: the tenant the request resolved to, and how.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CurrentTenantView {
    /// The tenant's id (its slug).
    #[schema(example = "bank1")]
    pub tenant_id: String,
    /// Legal or display name.
    pub name: String,
    /// Service tier.
    pub tier: Tier,
    /// Theming and locale.
    pub settings: TenantSettings,
    /// Which input named the tenant.
    pub resolved_by: crate::extract::ResolvedBy,
}

/// A tenant as the registry stores it (`/v1/admin/tenants`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantRecord {
    /// The slug (tenants are identified by it).
    pub id: String,
    /// 1 to 63 lowercase letters, digits or hyphens; stored in every document of the tenant.
    #[schema(example = "bank1")]
    pub slug: String,
    /// Legal or display name.
    pub name: String,
    /// Service tier.
    pub tier: Tier,
    /// Custom domains, normalised (lower case, no trailing dot).
    pub domains: Vec<String>,
    /// Theming and locale.
    pub settings: TenantSettings,
    /// Overrides of the tier's limits.
    pub limits: TenantLimits,
    /// An inactive tenant is refused everywhere (`403 tenant_inactive`).
    pub is_active: bool,
    /// When it was created (RFC 3339, UTC); `null` for tenants seeded without one.
    #[schema(format = DateTime, required = true)]
    pub created_at: Option<String>,
    /// When it last changed (RFC 3339, UTC).
    #[schema(format = DateTime, required = true)]
    pub updated_at: Option<String>,
}

/// A page of tenants, ordered by slug.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TenantList {
    /// The tenants.
    pub data: Vec<TenantRecord>,
    /// Whether more follow (pass the last slug as `starting_after`).
    pub has_more: bool,
}

/// Settings of a new tenant; unknown settings are refused.
#[derive(Debug, Clone, Default, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewTenantSettings {
    /// 1 to 100 printable characters.
    #[schema(min_length = 1, max_length = 100, required = false)]
    pub display_name: String,
    /// `#rrggbb` (stored lower case).
    #[schema(pattern = "^#[0-9a-fA-F]{6}$", required = false)]
    pub brand_color: String,
    /// An `https://` URL of at most 2048 characters, without quotes, angle brackets,
    /// backslashes or backticks.
    #[schema(
        format = "uri",
        max_length = 2048,
        pattern = "^https://[^/]",
        required = false
    )]
    pub logo_url: String,
    /// An IANA time zone such as `Europe/Zurich`, or `UTC`.
    #[schema(min_length = 1, max_length = 64, required = false)]
    pub time_zone: String,
    /// A circulating ISO 4217 currency code, upper case.
    #[schema(pattern = "^[A-Z]{3}$", required = false)]
    pub currency: String,
}

/// Limits of a new tenant; unknown limits are refused.
#[derive(Debug, Clone, Default, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewTenantLimits {
    /// 1 to 10^12.
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64, required = false)]
    pub requests_per_minute: u64,
    /// 1 to 10^12.
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64, required = false)]
    pub transactions_per_month: u64,
    /// 1 to 10^7.
    #[schema(minimum = 1, maximum = 10_000_000, required = false)]
    pub commands_per_second: u64,
    /// 1 to 10^7.
    #[schema(minimum = 1, maximum = 10_000_000, required = false)]
    pub connections: u64,
    /// 1 to 10^7.
    #[schema(minimum = 1, maximum = 10_000_000, required = false)]
    pub in_flight: u64,
    /// Endpoint group (lowercase slug) → requests per minute, 1 to 10^12 each.
    #[schema(required = false)]
    pub groups: BTreeMap<String, u64>,
}

/// `POST /v1/admin/tenants`.
#[derive(Debug, Clone, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewTenant {
    /// 1 to 63 lowercase letters, digits or hyphens, not starting or ending with a hyphen; not
    /// reserved, and not the first label of a base domain. It cannot change later.
    #[schema(pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", example = "bank3")]
    pub slug: String,
    /// 1 to 200 printable characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Default `starter`.
    #[schema(required = false)]
    pub tier: Tier,
    /// At most 20 custom domains, none inside a base domain.
    #[schema(max_items = 20, required = false)]
    pub domains: Vec<String>,
    /// Theming and locale.
    #[schema(required = false)]
    pub settings: NewTenantSettings,
    /// Overrides of the tier's limits.
    #[schema(required = false)]
    pub limits: NewTenantLimits,
    /// Default `true`.
    #[schema(required = false)]
    pub is_active: bool,
}

/// A settings merge patch: a setting set to `null` is removed.
#[derive(Debug, Clone, Default, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantSettingsPatch {
    /// See [`NewTenantSettings`].
    pub display_name: Option<String>,
    /// `#rrggbb`.
    pub brand_color: Option<String>,
    /// An `https://` URL.
    pub logo_url: Option<String>,
    /// An IANA time zone, or `UTC`.
    pub time_zone: Option<String>,
    /// An ISO 4217 code.
    pub currency: Option<String>,
}

/// A limits merge patch: a limit set to `null` returns to the tier's default.
#[derive(Debug, Clone, Default, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantLimitsPatch {
    /// 1 to 10^12.
    pub requests_per_minute: Option<u64>,
    /// 1 to 10^12.
    pub transactions_per_month: Option<u64>,
    /// 1 to 10^7.
    pub commands_per_second: Option<u64>,
    /// 1 to 10^7.
    pub connections: Option<u64>,
    /// 1 to 10^7.
    pub in_flight: Option<u64>,
    /// Replaces every group limit.
    pub groups: Option<BTreeMap<String, u64>>,
}

/// `PATCH /v1/admin/tenants/{slug}`: JSON merge patch. Absent fields are left alone; `slug`,
/// `id`, `createdAt` and `updatedAt` are refused (422).
#[derive(Debug, Clone, Default, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantPatch {
    /// 1 to 200 printable characters.
    #[schema(min_length = 1, max_length = 200, required = false)]
    pub name: String,
    /// The new tier (applies on the next request).
    #[schema(required = false)]
    pub tier: Tier,
    /// `false` deactivates the tenant everywhere; `true` reactivates it.
    #[schema(required = false)]
    pub is_active: bool,
    /// Replaces every custom domain (at most 20).
    #[schema(max_items = 20, required = false)]
    pub domains: Vec<String>,
    /// Merged setting by setting.
    #[schema(required = false)]
    pub settings: TenantSettingsPatch,
    /// Merged limit by limit.
    #[schema(required = false)]
    pub limits: TenantLimitsPatch,
}

/// `GET /v1/admin/tenants/{slug}/domains`: every custom domain, in one page.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DomainList {
    /// The domains.
    pub data: Vec<String>,
    /// Always `false`.
    pub has_more: bool,
}

/// `POST /v1/admin/tenants/{slug}/domains`.
#[derive(Debug, Clone, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDomain {
    /// A domain name outside every base domain; normalised (lower case, no trailing dot).
    #[schema(example = "pay.thirdbank.example")]
    pub domain: String,
}

/// The answer to `POST /v1/admin/tenants/{slug}/domains`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DomainAdded {
    /// The domain, normalised.
    pub domain: String,
    /// The tenant.
    pub tenant_id: String,
    /// Every custom domain of the tenant now.
    pub domains: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Usage
// ---------------------------------------------------------------------------------------------

/// Where a month's figures came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UsageSource {
    /// Redis' live counters.
    Live,
    /// The immutable month-end snapshot.
    Snapshot,
    /// Neither has the month: every figure is 0.
    None,
}

/// Whether a snapshot's checksum matches its figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UsageIntegrity {
    /// Live figures, or a snapshot as it was written.
    Ok,
    /// The snapshot was changed behind tenantgate's back.
    ChecksumMismatch,
}

/// The limits a month's usage is measured against.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageLimits {
    /// Payments allowed per month.
    pub transactions: u64,
    /// `transactions` used, in percent, two decimals.
    #[schema(example = 2.42)]
    pub percent_used: f64,
    /// API requests per minute of the `default` endpoint group.
    pub requests_per_minute: u64,
}

/// A month's figures.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageFigures {
    /// API requests billed to the tenant.
    pub api_calls: i64,
    /// Payments created.
    pub transactions: i64,
    /// Bytes stored.
    pub storage_bytes: i64,
    /// Request and response body bytes billed to the tenant.
    pub bandwidth_bytes: i64,
    /// The limits in force.
    pub limits: UsageLimits,
}

/// One tenant's usage in one UTC month.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// The tenant.
    pub tenant_id: String,
    /// The month, `YYYY-MM`.
    #[schema(pattern = "^[0-9]{4}-[0-9]{2}$", example = "2026-11")]
    pub period: String,
    /// The figures.
    pub usage: UsageFigures,
    /// Where they came from.
    pub source: UsageSource,
    /// Whether a snapshot was found intact.
    pub integrity: UsageIntegrity,
}

/// `GET /v1/admin/usage`: a page of tenants' usage in one month, ordered by slug.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageList {
    /// The month, `YYYY-MM`.
    #[schema(pattern = "^[0-9]{4}-[0-9]{2}$")]
    pub period: String,
    /// One entry per tenant.
    pub data: Vec<Usage>,
    /// Whether more tenants follow (pass the last `tenantId` as `starting_after`).
    pub has_more: bool,
}

// ---------------------------------------------------------------------------------------------
// Payments
// ---------------------------------------------------------------------------------------------

/// The `object` member of a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PaymentObject {
    /// A payment.
    Payment,
}

/// A payment.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    /// `pay_` and 24 hex digits; ids sort by creation time.
    #[schema(
        pattern = "^pay_[0-9a-f]{24}$",
        example = "pay_6b09482aba600eb8e48c067d"
    )]
    pub id: String,
    /// Always `payment`.
    pub object: PaymentObject,
    /// Minor units of `currency` (cents for EUR, yen for JPY).
    #[schema(minimum = 1, example = 1050)]
    pub amount: i64,
    /// ISO 4217, upper case.
    #[schema(pattern = "^[A-Z]{3}$", example = "EUR")]
    pub currency: String,
    /// The customer reference, if one was given.
    #[schema(required = true)]
    pub customer: Option<String>,
    /// Free text, if given.
    #[schema(required = true)]
    pub description: Option<String>,
    /// String keys and values, as sent.
    #[schema(schema_with = metadata_out)]
    pub metadata: Map<String, Value>,
    /// `pending` → `succeeded` or `failed`; `succeeded` → `refunded`.
    #[schema(value_type = crate::payments::Status)]
    pub status: String,
    /// The tenant that owns it.
    pub tenant_id: String,
    /// RFC 3339, UTC.
    #[schema(format = DateTime, required = true)]
    pub created_at: Option<String>,
    /// RFC 3339, UTC.
    #[schema(format = DateTime, required = true)]
    pub updated_at: Option<String>,
}

/// A page of payments, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PaymentList {
    /// Always `list`.
    pub object: ListObject,
    /// The payments.
    pub data: Vec<Payment>,
    /// Whether older payments follow (pass the last `id` as `starting_after`).
    pub has_more: bool,
}

/// `POST /v1/payments`. Unknown fields are refused (422).
#[derive(Debug, Clone, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPayment {
    /// A whole number of minor units (no decimals, no strings), 1 to 99,999,999,999.
    #[schema(minimum = 1, maximum = 99_999_999_999_i64, example = 1050)]
    pub amount: i64,
    /// A circulating ISO 4217 code (any case; stored upper case). Fund codes, metals and
    /// withdrawn codes are refused.
    #[schema(pattern = "^[A-Za-z]{3}$", example = "EUR")]
    pub currency: String,
    /// A customer reference, 1 to 64 printable characters.
    #[schema(min_length = 1, max_length = 64, pattern = r"^[^\x00-\x1F\x7F-\x9F]+$")]
    pub customer: Option<String>,
    /// 1 to 500 printable characters.
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]+$"
    )]
    pub description: Option<String>,
    /// The test processor declines a payment whose metadata has `"simulate": "decline"`.
    #[schema(schema_with = metadata_in)]
    pub metadata: Option<Map<String, Value>>,
}

// ---------------------------------------------------------------------------------------------
// Customers
// ---------------------------------------------------------------------------------------------

/// The `object` member of a customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CustomerObject {
    /// A customer.
    Customer,
}

/// A customer.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    /// `cus_` and 24 hex digits.
    #[schema(
        pattern = "^cus_[0-9a-f]{24}$",
        example = "cus_6b09486bf0d6b13b9e923013"
    )]
    pub id: String,
    /// Always `customer`.
    pub object: CustomerObject,
    /// The customer's name.
    pub name: String,
    /// Lower case, if known.
    #[schema(format = Email, required = true)]
    pub email: Option<String>,
    /// String keys and values, as sent.
    #[schema(schema_with = metadata_out)]
    pub metadata: Map<String, Value>,
    /// The tenant that owns it.
    pub tenant_id: String,
    /// RFC 3339, UTC.
    #[schema(format = DateTime, required = true)]
    pub created_at: Option<String>,
    /// RFC 3339, UTC.
    #[schema(format = DateTime, required = true)]
    pub updated_at: Option<String>,
    /// When it was soft-deleted (RFC 3339, UTC), or `null`.
    #[schema(format = DateTime, required = true)]
    pub deleted_at: Option<String>,
}

/// A page of customers, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CustomerList {
    /// Always `list`.
    pub object: ListObject,
    /// The customers.
    pub data: Vec<Customer>,
    /// Whether older customers follow (pass the last `id` as `starting_after`).
    pub has_more: bool,
}

/// `POST /v1/customers`. Unknown fields are refused (422).
#[derive(Debug, Clone, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCustomer {
    /// 1 to 200 printable characters (trimmed).
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// An email address, at most 254 characters (stored lower case).
    #[schema(format = Email, max_length = 254, required = false)]
    pub email: String,
    /// String keys and values.
    #[schema(schema_with = metadata_in, required = false)]
    pub metadata: Map<String, Value>,
}

/// `PATCH /v1/customers/{id}`: the fields to change. Unknown fields are refused (422).
#[derive(Debug, Clone, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerUpdate {
    /// 1 to 200 printable characters (trimmed).
    #[schema(min_length = 1, max_length = 200, required = false)]
    pub name: String,
    /// An email address, or `null` to remove it.
    #[schema(format = Email, max_length = 254)]
    pub email: Option<String>,
    /// Replaces the metadata as a whole.
    #[schema(schema_with = metadata_in, required = false)]
    pub metadata: Map<String, Value>,
}

/// `DELETE /v1/customers/{id}?hard=true`: the customer is gone.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CustomerHardDeleted {
    /// The customer's id.
    pub id: String,
    /// Always `customer`.
    pub object: CustomerObject,
    /// Always `true`.
    pub deleted: bool,
    /// Always `true`.
    pub hard: bool,
}

/// The answer to `DELETE /v1/customers/{id}`: the soft-deleted customer (with `deletedAt`),
/// or, for `?hard=true`, a deletion receipt.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum CustomerDeletion {
    /// A hard delete.
    Hard(CustomerHardDeleted),
    /// A soft delete.
    Soft(Box<Customer>),
}

// ---------------------------------------------------------------------------------------------
// Audit
// ---------------------------------------------------------------------------------------------

/// What an audit event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// A refused command or request.
    Rejection,
    /// A `super_admin` command that bypassed tenant scoping, or a `super_admin` acting as a
    /// tenant.
    Bypass,
    /// A failed authentication (proxy SCRAM or API bearer token).
    AuthFailure,
    /// A change made through the admin API.
    Admin,
}

/// Where an audit event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuditSource {
    /// The wire-protocol proxy.
    Proxy,
    /// The HTTP API.
    Api,
}

/// One audit event, as stored. Command values never appear: the policy engine redacted them
/// into `shape` before the event existed. Fields depend on the source; more may be added.
#[derive(Debug, Clone, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// `evt_` and 24 hex digits.
    #[schema(pattern = "^evt_[0-9a-f]{24}$")]
    pub id: String,
    /// When it happened (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub at: String,
    /// What happened.
    pub kind: AuditKind,
    /// The rule involved, e.g. `tenant_conflict`, `authentication`, `tenant_admin`.
    pub rule: String,
    /// Who: a JWT subject, a proxy user, or `anonymous`.
    pub principal: String,
    /// The tenant involved, if any (absent on proxy authentication failures).
    pub tenant: Option<String>,
    /// A proxy command's name, or an API request as `METHOD /path`.
    #[schema(required = false)]
    pub command: String,
    /// What happened, without secrets or document values.
    pub message: String,
    /// Where it came from.
    pub source: AuditSource,
    /// The client's address (`ip` for the API, `ip:port` for the proxy; empty when unknown).
    pub peer: String,
    /// Policy events: the database.
    pub database: Option<String>,
    /// Policy events: the collection.
    pub collection: Option<String>,
    /// Policy events: the command's shape, values redacted.
    #[schema(value_type = Option<Object>)]
    pub shape: Option<Value>,
    /// API events: the request's `X-Request-Id`.
    #[schema(required = false)]
    pub request_id: String,
    /// Proxy events: the proxy's connection number.
    #[schema(required = false)]
    pub connection: i64,
    /// Proxy authentication failures: the SASL mechanism.
    #[schema(required = false)]
    pub mechanism: String,
}

/// A page of audit events, newest first.
#[derive(Debug, Clone, ToSchema)]
pub struct AuditEventList {
    /// Always `list`.
    pub object: ListObject,
    /// The events.
    pub data: Vec<AuditEvent>,
    /// Whether older events follow (pass the last `id` as `starting_after`).
    pub has_more: bool,
}

/// Events per UTC day, tenant, rule and kind.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditSummaryRow {
    /// `YYYY-MM-DD`.
    #[schema(format = Date, required = true)]
    pub day: Option<String>,
    /// The tenant, or `null` for events without one.
    #[schema(required = true)]
    pub tenant: Option<String>,
    /// The rule.
    #[schema(required = true)]
    pub rule: Option<String>,
    /// The kind (see `AuditKind`).
    #[schema(required = true)]
    pub kind: Option<String>,
    /// How many events.
    #[schema(minimum = 1)]
    pub count: i64,
}

/// `GET /v1/admin/audit/summary`: at most 10,000 rows, ordered by day, tenant and rule.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditSummary {
    /// Always `list`.
    pub object: ListObject,
    /// The rows.
    pub data: Vec<AuditSummaryRow>,
    /// Always `false`.
    pub has_more: bool,
}
