//! Reads model parameters out of a [`Checkpoint`] onto a device, one tensor at a time, checking
//! each key and shape. Holding a [`WeightLoader`] costs nothing: the only copy made is the one
//! tensor being moved to the device.

use burn::tensor::{Device, Tensor, TensorData};

use crate::error::Result;
use crate::io::checkpoint::Checkpoint;

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

    /// Loads `name` (stored with `shape`) with its axes permuted by `perm` (as
    /// `Tensor::permute`), laid out row-major on the device: a weight that is used transposed
    /// is rearranged once, here, instead of at every call.
    pub fn tensor_permuted<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
        perm: [usize; D],
    ) -> Result<Tensor<D>> {
        let values = self.ckpt.read_f32_shaped(&self.key(name), &shape)?;
        let out_shape = perm.map(|p| shape[p]);
        let values = permute_host(&values, &shape, &perm);
        let tensor = Tensor::from_data(TensorData::new(values, out_shape), self.device);
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

/// Row-major `values` of `shape`, with the axes permuted by `perm`, row-major again.
fn permute_host(values: &[f32], shape: &[usize], perm: &[usize]) -> Vec<f32> {
    let d = shape.len();
    let mut in_strides = vec![1usize; d];
    for i in (0..d.saturating_sub(1)).rev() {
        in_strides[i] = in_strides[i + 1] * shape[i + 1];
    }
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let strides: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    if d == 2 && perm == [1, 0] {
        // A blocked transpose (the Linear weights, most of a checkpoint).
        let (rows, cols) = (shape[0], shape[1]);
        let mut out = vec![0f32; values.len()];
        const T: usize = 32;
        for r0 in (0..rows).step_by(T) {
            for c0 in (0..cols).step_by(T) {
                for r in r0..(r0 + T).min(rows) {
                    for c in c0..(c0 + T).min(cols) {
                        out[c * rows + r] = values[r * cols + c];
                    }
                }
            }
        }
        return out;
    }
    let mut out = Vec::with_capacity(values.len());
    let mut idx = vec![0usize; d];
    for _ in 0..values.len() {
        out.push(values[idx.iter().zip(&strides).map(|(i, s)| i * s).sum::<usize>()]);
        for k in (0..d).rev() {
            idx[k] += 1;
            if idx[k] < out_shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[cfg(feature = "flex")]
    use burn::tensor::Device;

    use super::{WeightLoader, permute_host};
    use crate::ModelType;
    use crate::fixture::checkpoint_bytes;
    use crate::io::checkpoint::Checkpoint;
    use crate::modeling::tiny_vit::{TinyViT, TinyViTConfig};

    /// A TinyViT configuration that does not fit the checkpoint's weights is an error, not a
    /// panic (on a random-weight MobileSAM written by [`crate::fixture`]).
    #[cfg(feature = "flex")]
    #[test]
    fn tiny_vit_config_that_does_not_fit_is_an_error() {
        let bytes = checkpoint_bytes(&ModelType::MobileSam, 0, "mobile_sam").unwrap();
        let ckpt = Checkpoint::from_bytes(&bytes).unwrap();
        let device = Device::flex();
        let w = WeightLoader::new(&ckpt, &device);
        let we = w.pb("image_encoder");
        let mut wrong = TinyViTConfig::mobile_sam();
        wrong.num_heads[2] = 4;
        assert!(TinyViT::with_config(&we, &wrong).is_err());
        let mut wrong = TinyViTConfig::mobile_sam();
        wrong.depths[2] = 7;
        assert!(TinyViT::with_config(&we, &wrong).is_err());
        let mut wrong = TinyViTConfig::mobile_sam();
        wrong.embed_dims[3] = 256; // the last merge would downsample to 32x32
        assert!(TinyViT::with_config(&we, &wrong).is_err());
        assert!(TinyViT::with_config(&we, &TinyViTConfig::mobile_sam()).is_ok());
    }

    #[test]
    fn permute_host_matches_index_arithmetic() {
        let shape = [2usize, 3, 4, 5];
        let values: Vec<f32> = (0..120).map(|v| v as f32).collect();
        let out = permute_host(&values, &shape, &[0, 2, 3, 1]);
        // out[a, c, d, b] = in[a, b, c, d]
        for a in 0..2 {
            for b in 0..3 {
                for c in 0..4 {
                    for d in 0..5 {
                        assert_eq!(
                            out[((a * 4 + c) * 5 + d) * 3 + b],
                            values[((a * 3 + b) * 4 + c) * 5 + d]
                        );
                    }
                }
            }
        }
        let t: Vec<f32> = (0..70 * 33).map(|v| v as f32).collect();
        let out = permute_host(&t, &[70, 33], &[1, 0]);
        for r in 0..70 {
            for c in 0..33 {
                assert_eq!(out[c * 70 + r], t[r * 33 + c]);
            }
        }
    }
}
