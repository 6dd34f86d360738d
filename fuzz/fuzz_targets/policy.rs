//! Fuzzes the policy engine through the wire codec (see `src/policy_check.rs` for the invariants
//! and the input format).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tenantgate_fuzz::policy_check::run(data));
