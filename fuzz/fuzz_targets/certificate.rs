//! `cargo fuzz run certificate`: see `ocala_vectors::fuzz::certificate` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ocala_vectors::fuzz::certificate(data));
