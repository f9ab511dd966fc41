//! `cargo fuzz run rle_json`: see [`sam_core_fuzz::rle_json`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sam_core_fuzz::rle_json(data));
