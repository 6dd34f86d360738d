//! Tenant resolution: before any tenant route's handler runs, the request is tied to exactly
//! one active tenant, or refused.
//!
//! Priority, highest first: the verified JWT's `tenantId` claim; the `X-Tenant-ID` header; the
//! host (a subdomain of a base domain, or a tenant's custom domain). A JWT that names one tenant
//! while the header or host names another is refused (403, audited) — except that a
//! `super_admin` may target any tenant with the header. See `docs/tenancy.md`.

pub mod host;
pub mod middleware;
pub mod resolve;

pub use host::HostName;
pub use middleware::{require_tenant, require_tenant_signed_in};
