//! The SAM network, one file per official module.

pub mod common;
#[cfg(all(feature = "flex", not(feature = "kernels-bench")))]
pub(crate) mod cpu;
#[cfg(all(feature = "flex", feature = "kernels-bench"))]
pub mod cpu;
pub mod image_encoder;
pub mod mask_decoder;
pub mod ops;
pub mod prompt_encoder;
pub mod sam;
pub mod tiny_vit;
pub mod transformer;

/// A safetensors checkpoint of the given `(key, shape)` tensors with deterministic
/// pseudo-random f32 values in about [-0.5, 0.5) (`seed` picks them), for the unit tests
/// of the layers (load it with `Checkpoint::from_bytes` and a `WeightLoader`).
#[cfg(test)]
pub(crate) fn random_checkpoint(tensors: &[(&str, Vec<usize>)], seed: u64) -> Vec<u8> {
    use safetensors::tensor::{Dtype, TensorView};
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, shape)| {
            (0..shape.iter().product::<usize>())
                .flat_map(|_| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5).to_le_bytes()
                })
                .collect()
        })
        .collect();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((k, shape), b)| {
            let view = TensorView::new(Dtype::F32, shape.clone(), b).expect("tensor view");
            (k.to_string(), view)
        })
        .collect();
    safetensors::serialize(views, None).expect("safetensors")
}

/// Random `[dims]` values in about [-0.5, 0.5) as a tensor on `device`.
#[cfg(test)]
pub(crate) fn random_tensor<const D: usize>(
    dims: [usize; D],
    seed: u64,
    device: &burn::tensor::Device,
) -> burn::tensor::Tensor<D> {
    let bytes = random_checkpoint(&[("x", dims.to_vec())], seed);
    let ckpt = crate::io::checkpoint::Checkpoint::from_bytes(&bytes).expect("checkpoint");
    crate::weights::WeightLoader::new(&ckpt, device)
        .tensor("x", dims)
        .expect("tensor")
}

/// The largest `|a - b|` of two tensors of the same shape.
#[cfg(test)]
pub(crate) fn max_abs_diff<const D: usize>(
    a: burn::tensor::Tensor<D>,
    b: burn::tensor::Tensor<D>,
) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let d = (a - b)
        .abs()
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32 values");
    d.into_iter().fold(0.0, f32::max)
}
