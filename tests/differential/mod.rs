//! Shared parts of `tests/policy_differential.rs`: seed data, generators and the oracle, kept
//! apart so each file reads as one thing.

pub mod generators;
pub mod oracle;
pub mod seed;
