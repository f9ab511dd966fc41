//! `cargo fuzz run sa1b`: see [`sam_core_fuzz::sa1b`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sam_core_fuzz::sa1b(data));
