//! `cargo fuzz run engines`: see `ocala_vectors::fuzz::engines` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ocala_vectors::fuzz::engines(data));
