//! Fuzzes the wire decoder (see `src/decode_check.rs` for what it checks).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tenantgate_fuzz::decode_check::run(data));
