//! `cargo fuzz run wire_message`: see `ocala_vectors::fuzz::wire_message` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ocala_vectors::fuzz::wire_message(data));
