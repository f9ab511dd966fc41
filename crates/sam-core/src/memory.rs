//! The memory a checkpoint's model needs, estimated from the checkpoint's directory alone
//! (tensor names, shapes and dtypes; no weight is read), and checked against a backend's
//! limits before anything is loaded (issue 15).
//!
//! - **Weights**: every floating-point tensor of the model, as `f32` (the model holds f32
//!   whatever the stored dtype: a float16 file needs twice its size).
//! - **Activations**: the peak of memory live above the weights while embedding one image
//!   (the image encoder dominates; a click needs far less), modelled per encoder from the
//!   tensors an encoder block holds at once (see [`vit_activations`]). The model is meant to
//!   be an upper bound; `examples/memory_peak.rs` (a counting allocator on the CPU backend,
//!   one thread) measures the real peak to check it against (issue 15: not yet calibrated
//!   for vit_l / vit_h).
//! - **Largest buffer**: the largest single tensor, weight or activation (the attention
//!   slices are at most [`ATTN_CHUNK_BYTES`]): on wgpu no buffer may be larger than the
//!   adapter's `maxBufferSize` / `maxStorageBufferBindingSize` (see
//!   [`crate::amg::max_buffer_bytes`]).
//!
//! The plan per backend ([`MemoryLimits`]): on the CPU backend weights and activations live in
//! the heap (wasm32: at most 4 GiB of linear memory, less what is already in use); on wgpu
//! they live in GPU buffers (the total is not known to WebGPU; each buffer is bounded) and the
//! host heap holds one tensor at a time while loading.

use std::fmt;

use crate::io::checkpoint::Checkpoint;
use crate::modeling::image_encoder::{ATTN_CHUNK_BYTES, ViTConfig};
use crate::{ModelType, Result};

/// One mebibyte.
const MIB: u64 = 1 << 20;

/// wasm32's largest linear memory: 65536 pages of 64 KiB (4 GiB).
pub const WASM32_MAX_MEMORY: u64 = 1 << 32;

/// The memory a checkpoint's model needs. Made by [`MemoryEstimate::of`].
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryEstimate {
    /// The model type read off the checkpoint's keys and shapes.
    pub model_type: ModelType,
    /// The weights as the model holds them (f32), in bytes.
    pub weight_bytes: u64,
    /// The largest single weight tensor as f32, in bytes (also the most the host heap holds
    /// at once while loading onto a GPU).
    pub largest_weight_bytes: u64,
    /// The peak of memory live above the weights while embedding one image, in bytes.
    pub activation_peak_bytes: u64,
    /// The largest single activation tensor, in bytes.
    pub largest_activation_bytes: u64,
}

/// What a backend can hold, for [`MemoryEstimate::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryLimits {
    /// The CPU backend: weights and activations in the heap, of which `available` bytes can
    /// still be allocated (wasm32: [`WASM32_MAX_MEMORY`] less the memory already grown).
    Cpu {
        /// Bytes the heap can still grow by.
        available: u64,
    },
    /// A GPU backend (wgpu): each buffer holds at most `max_buffer` bytes; `total` is the
    /// device memory when known (WebGPU does not tell it).
    Gpu {
        /// The largest buffer, see [`crate::amg::max_buffer_bytes`].
        max_buffer: u64,
        /// The device's memory, if known.
        total: Option<u64>,
    },
}

/// A model that does not fit the chosen backend: refused before any weight is loaded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MemoryError {
    /// Weights plus activations exceed what the CPU backend's heap can still hold.
    #[error(
        "the {model} model needs about {needed} of memory on the CPU backend ({weights} of \
         weights and {activations} while embedding an image), but only {available} can be \
         allocated here (WebAssembly holds at most 4 GiB). {advice}",
        needed = Mib(*needed),
        weights = Mib(*weights),
        activations = Mib(*activations),
        available = Mib(*available),
        advice = advice(model, true)
    )]
    Cpu {
        /// The model type's name.
        model: String,
        /// Weights plus activations, in bytes.
        needed: u64,
        /// The weights, in bytes.
        weights: u64,
        /// The activation peak, in bytes.
        activations: u64,
        /// What the heap can still hold, in bytes.
        available: u64,
    },
    /// One tensor is larger than the GPU's largest buffer.
    #[error(
        "the {model} model needs a GPU buffer of {needed}, but this GPU's largest buffer is \
         {max_buffer}. {advice}",
        needed = Mib(*needed),
        max_buffer = Mib(*max_buffer),
        advice = advice(model, false)
    )]
    GpuBuffer {
        /// The model type's name.
        model: String,
        /// The largest tensor, in bytes.
        needed: u64,
        /// The device's largest buffer, in bytes.
        max_buffer: u64,
    },
    /// Weights plus activations exceed the GPU's memory.
    #[error(
        "the {model} model needs about {needed} of GPU memory, but this GPU has {total}. {advice}",
        needed = Mib(*needed),
        total = Mib(*total),
        advice = advice(model, false)
    )]
    GpuTotal {
        /// The model type's name.
        model: String,
        /// Weights plus activations, in bytes.
        needed: u64,
        /// The device's memory, in bytes.
        total: u64,
    },
}

/// What to do instead, for a model that does not fit.
fn advice(model: &str, cpu: bool) -> &'static str {
    match (model, cpu) {
        ("vit_h" | "vit_l" | "custom_vit", true) => {
            "Use the WebGPU backend, or a smaller model (vit_b or mobile_sam)."
        }
        ("mobile_sam", true) => "Close other tabs, or use the WebGPU backend.",
        (_, true) => "Close other tabs, or use the WebGPU backend or mobile_sam.",
        ("mobile_sam", false) => "Use the CPU backend.",
        (_, false) => "Use the CPU backend, or a smaller model (vit_b or mobile_sam).",
    }
}

/// Bytes shown in MiB (GiB from 1 GiB).
struct Mib(u64);

impl fmt::Display for Mib {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 1 << 30 {
            write!(f, "{:.2} GiB", self.0 as f64 / (1u64 << 30) as f64)
        } else {
            write!(f, "{:.0} MiB", self.0 as f64 / MIB as f64)
        }
    }
}

impl MemoryEstimate {
    /// Estimates from the checkpoint's directory: the model type ([`ModelType::detect`], an
    /// error for a checkpoint of no known type), the weights (every floating-point tensor
    /// under `image_encoder.`, `prompt_encoder.` and `mask_decoder.`, as f32) and the
    /// activation peak of the detected encoder. Reads no tensor data.
    pub fn of(ckpt: &Checkpoint) -> Result<Self> {
        let model_type = ModelType::detect(ckpt)?;
        let mut weight_bytes = 0u64;
        let mut largest_weight_bytes = 0u64;
        for key in ckpt.keys() {
            let used = ["image_encoder.", "prompt_encoder.", "mask_decoder."]
                .iter()
                .any(|p| key.starts_with(p));
            let Some(info) = ckpt.info(key) else { continue };
            if !used || !info.dtype.is_float() {
                continue;
            }
            // numel is bounded by the reader (the storage's bytes exist in the file).
            let bytes = info.numel() as u64 * 4;
            weight_bytes = weight_bytes.saturating_add(bytes);
            largest_weight_bytes = largest_weight_bytes.max(bytes);
        }
        let (activation_peak_bytes, largest_activation_bytes) = activations(&model_type);
        Ok(Self {
            model_type,
            weight_bytes,
            largest_weight_bytes,
            activation_peak_bytes,
            largest_activation_bytes,
        })
    }

    /// Weights plus the activation peak, in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.weight_bytes.saturating_add(self.activation_peak_bytes)
    }

    /// The largest single buffer, weight or activation, in bytes.
    pub fn largest_buffer_bytes(&self) -> u64 {
        self.largest_weight_bytes.max(self.largest_activation_bytes)
    }

    /// Whether the model fits `limits`; a [`MemoryError`] naming the model, the memory it
    /// needs and what to do when it does not.
    pub fn check(&self, limits: MemoryLimits) -> Result<(), MemoryError> {
        let model = self.model_type.name().to_string();
        match limits {
            MemoryLimits::Cpu { available } if self.total_bytes() > available => {
                Err(MemoryError::Cpu {
                    model,
                    needed: self.total_bytes(),
                    weights: self.weight_bytes,
                    activations: self.activation_peak_bytes,
                    available,
                })
            }
            MemoryLimits::Cpu { .. } => Ok(()),
            MemoryLimits::Gpu { max_buffer, .. } if self.largest_buffer_bytes() > max_buffer => {
                Err(MemoryError::GpuBuffer {
                    model,
                    needed: self.largest_buffer_bytes(),
                    max_buffer,
                })
            }
            MemoryLimits::Gpu {
                total: Some(total), ..
            } if self.total_bytes() > total => Err(MemoryError::GpuTotal {
                model,
                needed: self.total_bytes(),
                total,
            }),
            MemoryLimits::Gpu { .. } => Ok(()),
        }
    }
}

/// `(peak above the weights, largest single tensor)` while embedding one image, in bytes.
fn activations(model_type: &ModelType) -> (u64, u64) {
    match model_type.vit_config() {
        Some(c) => vit_activations(&c),
        None => (MOBILE_SAM_ACTIVATION_PEAK, MOBILE_SAM_LARGEST_ACTIVATION),
    }
}

/// MobileSAM's (TinyViT-5M) embedding peak above its weights: a generous bound (not yet
/// checked against `examples/memory_peak.rs`).
const MOBILE_SAM_ACTIVATION_PEAK: u64 = 400 * MIB;
/// MobileSAM's largest activation: the stem's `[1, 64, 256, 256]` f32 map ×2 (the MLP of the
/// first stage is 4× its 64 channels at 256×256).
const MOBILE_SAM_LARGEST_ACTIVATION: u64 = 64 * MIB;

/// A ViT encoder's embedding peak and largest activation. The peak is modelled as
/// `TOKEN_COPIES` copies of the token map `[N, C]` f32 (N = (img/patch)² tokens, padded to
/// whole windows), two of the MLP's hidden map, three attention slices and four copies of the
/// input image (its preprocessing): a bound, not a measurement (module docs).
fn vit_activations(c: &ViTConfig) -> (u64, u64) {
    let grid = (c.img_size / c.patch_size.max(1)) as u64;
    let window = c.window_size.max(1) as u64;
    let padded = grid.div_ceil(window) * window;
    let tokens = (padded * padded).max(grid * grid);
    let dim = c.embed_dim as u64;
    let token_map = tokens * dim * 4;
    let mlp = token_map * c.mlp_ratio as u64;
    let global = grid * grid;
    let slice = global * global * 4;
    let attention = (c.num_heads as u64 * slice).min((ATTN_CHUNK_BYTES as u64).max(slice));
    let image = c.img_size as u64 * c.img_size as u64 * 3 * 4;
    let peak = TOKEN_COPIES * token_map + 2 * mlp + 3 * attention + 4 * image;
    let largest = mlp.max(attention).max(image);
    (peak, largest)
}

/// Copies of the token map live at the peak (see [`vit_activations`]).
const TOKEN_COPIES: u64 = 6;

#[cfg(test)]
mod tests {
    use super::*;

    fn estimate(model_type: ModelType, weight_bytes: u64) -> MemoryEstimate {
        let (activation_peak_bytes, largest_activation_bytes) = activations(&model_type);
        MemoryEstimate {
            model_type,
            weight_bytes,
            largest_weight_bytes: 26 * MIB,
            activation_peak_bytes,
            largest_activation_bytes,
        }
    }

    #[test]
    fn vit_h_fits_an_empty_wasm32_heap_and_not_a_used_one() {
        // ViT-H's f32 weights: 2.56 GB.
        let e = estimate(ModelType::VitH, 2_564_000_000);
        assert!(e.total_bytes() < WASM32_MAX_MEMORY, "{e:?}");
        e.check(MemoryLimits::Cpu {
            available: WASM32_MAX_MEMORY,
        })
        .unwrap();
        let err = e
            .check(MemoryLimits::Cpu { available: 2 << 30 })
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("vit_h") && msg.contains("WebGPU"), "{msg}");
        assert!(msg.contains("GiB"), "{msg}");
    }

    #[test]
    fn gpu_limits_are_per_buffer_and_total() {
        let e = estimate(ModelType::VitB, 375_000_000);
        // WebGPU's default limits: 128 MiB per binding, 256 MiB per buffer.
        e.check(MemoryLimits::Gpu {
            max_buffer: 128 * MIB,
            total: None,
        })
        .unwrap();
        assert!(matches!(
            e.check(MemoryLimits::Gpu {
                max_buffer: 16 * MIB,
                total: None
            }),
            Err(MemoryError::GpuBuffer { .. })
        ));
        assert!(matches!(
            e.check(MemoryLimits::Gpu {
                max_buffer: 128 * MIB,
                total: Some(256 * MIB)
            }),
            Err(MemoryError::GpuTotal { .. })
        ));
    }

    #[test]
    fn activations_grow_with_the_encoder() {
        let b = activations(&ModelType::VitB).0;
        let l = activations(&ModelType::VitL).0;
        let h = activations(&ModelType::VitH).0;
        assert!(b < l && l < h, "{b} {l} {h}");
        // The attention slices stay within ATTN_CHUNK_BYTES: no activation over 128 MiB.
        assert!(activations(&ModelType::VitH).1 <= 128 * MIB);
    }
}
