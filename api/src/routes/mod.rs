//! Routes, one module per resource.

pub mod admin;
pub mod audit;
pub mod console;
pub mod customers;
pub mod dev;
pub mod health;
pub mod metrics;
pub mod payments;
pub mod tenant;
pub mod usage;
