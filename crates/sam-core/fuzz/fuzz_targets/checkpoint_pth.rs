//! `cargo fuzz run checkpoint_pth`: see [`sam_core_fuzz::checkpoint_pth`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sam_core_fuzz::checkpoint_pth(data));
