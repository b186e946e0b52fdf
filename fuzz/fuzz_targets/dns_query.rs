//! `cargo fuzz run dns_query`: see `ocala_vectors::fuzz::dns_query` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ocala_vectors::fuzz::dns_query(data));
