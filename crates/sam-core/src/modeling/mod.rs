//! The SAM network, one file per official module.

pub mod common;
pub mod cpu;
pub mod image_encoder;
pub mod mask_decoder;
pub mod prompt_encoder;
pub mod sam;
pub mod tiny_vit;
pub mod transformer;
