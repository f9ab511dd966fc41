//! `cargo fuzz run checkpoint_safetensors`: see [`sam_core_fuzz::checkpoint_safetensors`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sam_core_fuzz::checkpoint_safetensors(data));
