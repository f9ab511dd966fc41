//! Checkpoint bytes given by JS.

use js_sys::Uint8Array;

/// The checkpoint's bytes in wasm memory.
pub fn checkpoint_bytes(checkpoint: &Uint8Array) -> Vec<u8> {
    checkpoint.to_vec()
}
