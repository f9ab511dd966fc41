//! Checkpoint bytes given by JS, read where they are.
//!
//! The checkpoint stays in its JS `Uint8Array` (outside wasm memory); sam-core's reader asks
//! for the zip directory, the pickle and then one tensor at a time, and only those bytes are
//! copied into wasm memory. Peak wasm memory while loading is therefore the model (on the CPU
//! backend; on WebGPU the weights go to the GPU) plus one tensor, not file + model: a 2.5 GB
//! `vit_h` checkpoint does not have to fit in wasm32's 4 GiB next to its own weights.

use js_sys::Uint8Array;
use sam_core::io::checkpoint::ByteSource;

/// A [`ByteSource`] over a JS `Uint8Array`.
pub struct JsBytes(pub Uint8Array);

impl ByteSource for JsBytes {
    fn len(&self) -> u64 {
        u64::from(self.0.length())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.len())
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "read of {} bytes at {offset} past the end ({} bytes)",
                        buf.len(),
                        self.len()
                    ),
                )
            })?;
        self.0.subarray(offset as u32, end as u32).copy_to(buf);
        Ok(())
    }
}
