//! Fuzz target: see `relshm_fuzz::swizzle_roundtrip`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| relshm_fuzz::swizzle_roundtrip(data));
