//! `cargo fuzz run overlay_headers`: see `ocala_vectors::fuzz::overlay_headers` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ocala_vectors::fuzz::overlay_headers(data));
