//! The SAM network, one file per official module.

pub mod common;
#[cfg(feature = "flex")]
pub mod cpu;
pub mod image_encoder;
pub mod mask_decoder;
pub mod prompt_encoder;
pub mod sam;
pub mod tiny_vit;
pub mod transformer;
