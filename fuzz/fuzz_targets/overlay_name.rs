//! `cargo fuzz run overlay_name`: see `ocala_vectors::fuzz::overlay_name` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ocala_vectors::fuzz::overlay_name(data));
