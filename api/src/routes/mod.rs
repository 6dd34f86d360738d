//! Routes, one module per resource.

pub mod admin;
pub mod health;
pub mod metrics;
pub mod tenant;
pub mod usage;
