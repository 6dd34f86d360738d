//! ISO 4217 currencies: the table lives with the tenant registry (a tenant's default currency
//! is validated against it too); re-exported here for the payments API and the console.

pub use tenantgate_proxy::registry::currency::*;
