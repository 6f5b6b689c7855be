//! Fuzz target: see `relshm_fuzz::untrusted_image`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| relshm_fuzz::untrusted_image(data));
