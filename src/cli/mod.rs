//! Subcommands of the `tenantgate` binary, one module each.

pub mod serve;
pub mod wire;
