//! The bodies of the fuzz targets, kept out of `fuzz_targets/` so the main workspace's tests can
//! compile the very same files (through `#[path]`) and replay the checked-in corpus without
//! nightly or libFuzzer: `wire/tests/fuzz_regressions.rs` and `policy/tests/fuzz_regressions.rs`.
//! See `docs/fuzzing.md`.

pub mod decode_check;
pub mod grammar;
pub mod policy_check;
pub mod seeds;
