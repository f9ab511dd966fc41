//! `cargo fuzz run npy`: see [`sam_core_fuzz::npy`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sam_core_fuzz::npy(data));
