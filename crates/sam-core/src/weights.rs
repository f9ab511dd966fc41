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
    /// Called after each tensor is loaded (see [`WeightLoader::with_on_tensor`]).
    on_tensor: Option<&'c dyn Fn()>,
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
            on_tensor: None,
        }
    }

    /// This loader, and the child loaders made from it, calling `on_tensor` after each tensor
    /// they load ([`tensor`](Self::tensor) or [`ints`](Self::ints)), e.g. to report progress.
    pub fn with_on_tensor(mut self, on_tensor: &'c dyn Fn()) -> Self {
        self.on_tensor = Some(on_tensor);
        self
    }

    fn loaded(&self) {
        if let Some(f) = self.on_tensor {
            f();
        }
    }

    /// The loader for a child module: `pb("blocks").pb(3)` reads `blocks.3.*`.
    pub fn pb(&self, name: impl std::fmt::Display) -> Self {
        Self {
            ckpt: self.ckpt,
            device: self.device,
            prefix: format!("{}{}.", self.prefix, name),
            on_tensor: self.on_tensor,
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
        let tensor = Tensor::from_data(TensorData::new(values, shape), self.device);
        self.loaded();
        Ok(tensor)
    }

    /// Loads an integer tensor's values (e.g. index buffers) to the host.
    pub fn ints(&self, name: &str) -> Result<Vec<i64>> {
        let values = self.ckpt.read_i64(&self.key(name))?;
        self.loaded();
        Ok(values)
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
