//! Request parameters shared by several operations: the tenant selector and the query strings of
//! the list routes. Handlers parse queries by hand (so that an unknown or bad parameter is
//! named in a 422); these types describe those rules for the document.

use utoipa::IntoParams;

/// The tenant selector of every tenant route. Its presence on an operation is also what marks
/// the operation as a tenant route for [`super::decorate`] (rate-limit headers, 429, the tenant
/// resolution errors).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct TenantSelector {
    /// Names the request's tenant when the bearer token has no `tenantId` claim (and the host
    /// does not name it). With a token that names another tenant it is refused
    /// (`403 tenant_conflict`); a `super_admin` token may use it to act as any tenant (audited).
    #[param(
        rename = "X-Tenant-ID",
        pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
        example = "bank1"
    )]
    pub x_tenant_id: Option<String>,
}

/// `GET /v1/payments`. Unknown parameters are refused (422).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PaymentListQuery {
    /// Page size.
    #[param(minimum = 1, maximum = 100, default = 10)]
    pub limit: Option<i64>,
    /// A payment id: return payments older than it (the last `id` of the previous page).
    #[param(pattern = "^pay_[0-9a-fA-F]{24}$")]
    pub starting_after: Option<String>,
    /// Only payments with this status.
    #[param(value_type = Option<crate::payments::Status>)]
    pub status: Option<String>,
    /// Created at or after: Unix seconds or an RFC 3339 time.
    #[param(rename = "created[gte]", example = "2026-11-01T00:00:00Z")]
    pub created_gte: Option<String>,
    /// Created at or before: Unix seconds or an RFC 3339 time.
    #[param(rename = "created[lte]", example = "1795000000")]
    pub created_lte: Option<String>,
}

/// `GET /v1/customers`. Other parameters are ignored.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CustomerListQuery {
    /// Page size.
    #[param(minimum = 1, maximum = 100, default = 10)]
    pub limit: Option<i64>,
    /// A customer id: return customers older than it (the last `id` of the previous page).
    pub starting_after: Option<String>,
    /// `true` lists soft-deleted customers too.
    #[param(default = false)]
    pub include_deleted: Option<bool>,
}

/// `?include_deleted` of `GET /v1/customers/{id}`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IncludeDeleted {
    /// `true` finds the customer even if it is soft-deleted.
    #[param(default = false)]
    pub include_deleted: Option<bool>,
}

/// `?hard` of `DELETE /v1/customers/{id}`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HardDelete {
    /// `true` deletes the document for good, through the audited bypass handle
    /// (`super_admin` only; others get `403 role_required`). Otherwise the delete is soft: the
    /// policy engine sets `deletedAt`.
    #[param(default = false)]
    pub hard: Option<bool>,
}

/// `?period` of the usage routes.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeriodQuery {
    /// A UTC month, `YYYY-MM`, not in the future; default the current month.
    #[param(pattern = "^[0-9]{4}-[0-9]{2}$", example = "2026-11")]
    pub period: Option<String>,
}

/// Paging of the admin lists (tenants are ordered by slug).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AdminPage {
    /// Page size.
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<i64>,
    /// A tenant slug: return tenants after it (the last one of the previous page).
    pub starting_after: Option<String>,
}

/// The filters of both audit routes. Unknown parameters are refused (422).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    /// Only events of this tenant (1 to 128 characters).
    #[param(min_length = 1, max_length = 128)]
    pub tenant: Option<String>,
    /// Only events of this rule, e.g. `tenant_conflict`.
    #[param(min_length = 1, max_length = 128)]
    pub rule: Option<String>,
    /// Only events of this principal.
    #[param(min_length = 1, max_length = 128)]
    pub principal: Option<String>,
    /// Only events of this kind: `rejection`, `bypass`, `auth_failure` or `admin`.
    #[param(min_length = 1, max_length = 128)]
    pub kind: Option<String>,
    /// Only events from `proxy` or `api`.
    #[param(min_length = 1, max_length = 128)]
    pub source: Option<String>,
    /// Events at or after: Unix seconds or an RFC 3339 time.
    pub from: Option<String>,
    /// Events before: Unix seconds or an RFC 3339 time.
    pub to: Option<String>,
}

/// Paging of `GET /v1/admin/audit`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditPage {
    /// Page size.
    #[param(minimum = 1, maximum = 100, default = 50)]
    pub limit: Option<i64>,
    /// An event id (`evt_…`): return events older than it.
    #[param(pattern = "^evt_[0-9a-fA-F]{24}$")]
    pub starting_after: Option<String>,
}
