//! `cargo fuzz run rle_string`: see [`sam_core_fuzz::rle_string`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sam_core_fuzz::rle_string(data));
