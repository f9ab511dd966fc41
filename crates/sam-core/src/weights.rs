//! Reads model parameters out of a [`Checkpoint`] onto a device, one tensor at a time, checking
//! each key and shape. Holding a [`WeightLoader`] costs nothing: the only copy made is the one
//! tensor being moved to the device.

use burn::tensor::{Device, Tensor, TensorData};

use crate::checkpoint::Checkpoint;
use crate::error::Result;

/// A view of a checkpoint under a key prefix (`image_encoder.blocks.0.`), bound to a device.
#[derive(Clone)]
pub struct WeightLoader<'c, 'a> {
    ckpt: &'c Checkpoint<'a>,
    device: &'c Device,
    prefix: String,
}

impl<'c, 'a> WeightLoader<'c, 'a> {
    /// A loader at the root of `ckpt` (keys as stored, e.g. `image_encoder.pos_embed`).
    pub fn new(ckpt: &'c Checkpoint<'a>, device: &'c Device) -> Self {
        Self::with_prefix(ckpt, device, "")
    }

    /// A loader whose keys all start with `prefix` (e.g. `module.` for some re-saved files).
    pub fn with_prefix(ckpt: &'c Checkpoint<'a>, device: &'c Device, prefix: &str) -> Self {
        Self {
            ckpt,
            device,
            prefix: prefix.to_string(),
        }
    }

    /// The loader for a child module: `pb("blocks").pb(3)` reads `blocks.3.*`.
    pub fn pb(&self, name: impl std::fmt::Display) -> Self {
        Self {
            ckpt: self.ckpt,
            device: self.device,
            prefix: format!("{}{}.", self.prefix, name),
        }
    }

    /// The device tensors are loaded onto.
    pub fn device(&self) -> &Device {
        self.device
    }

    /// The full key of `name` under this loader.
    pub fn key(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    /// Whether the checkpoint has `name` under this loader.
    pub fn contains(&self, name: &str) -> bool {
        self.ckpt.contains(&self.key(name))
    }

    /// The stored shape of `name`, if present.
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.ckpt.info(&self.key(name)).map(|i| i.shape.clone())
    }

    /// Loads `name` as an f32 tensor, checking that its shape is `shape`.
    pub fn tensor<const D: usize>(&self, name: &str, shape: [usize; D]) -> Result<Tensor<D>> {
        let values = self.ckpt.read_f32_shaped(&self.key(name), &shape)?;
        Ok(Tensor::from_data(
            TensorData::new(values, shape),
            self.device,
        ))
    }

    /// Loads an integer tensor's values (e.g. index buffers) to the host.
    pub fn ints(&self, name: &str) -> Result<Vec<i64>> {
        Ok(self.ckpt.read_i64(&self.key(name))?)
    }
}

/// Shapes and presence of keys under a prefix, without a device (for detecting configs).
pub struct KeyShapes<'c, 'a> {
    pub ckpt: &'c Checkpoint<'a>,
    pub prefix: &'c str,
}

impl KeyShapes<'_, '_> {
    /// Whether `prefix + name` is in the checkpoint.
    pub fn contains(&self, name: &str) -> bool {
        self.ckpt.contains(&format!("{}{}", self.prefix, name))
    }

    /// The stored shape of `prefix + name`, if present.
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.ckpt
            .info(&format!("{}{}", self.prefix, name))
            .map(|i| i.shape.clone())
    }
}
