//! Subcommands of the `tenantgate` binary, one module each.

pub mod serve;
pub mod tenant;
pub mod wire;
