//! `cargo fuzz run ip_packet`: see `ocala_vectors::fuzz::ip_packet` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ocala_vectors::fuzz::ip_packet(data));
