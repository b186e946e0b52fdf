//! `cargo fuzz run engine_inputs`: see `ocala_vectors::fuzz::engine_inputs` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ocala_vectors::fuzz::engine_inputs(data));
