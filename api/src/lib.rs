//! The tenantgate HTTP API (axum).
//!
//! Tenant resolution, per-tenant rate limiting and usage metering, the payments API, audit queries
//! and the web console. Built in the API issues; the crate exists now so the workspace shows the
//! architecture from the first commit.
#![forbid(unsafe_code)]
