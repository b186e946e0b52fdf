//! `cargo fuzz run tun_offload`: see `ocala_vectors::fuzz::tun_offload` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ocala_vectors::fuzz::tun_offload(data));
