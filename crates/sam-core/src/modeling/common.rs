//! Building blocks shared by the SAM modules (the official `modeling/common.py` plus the
//! torch.nn layers it uses), each loaded from official state-dict keys.

use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::module::layer_norm;
use burn::tensor::ops::ConvOptions;

use super::ops::{self, gelu};
use crate::error::Result;
use crate::weights::WeightLoader;

/// `nn.Linear`: `[..., d_in]` → `[..., d_out]`. The weight is kept as `[d_in, d_out]`.
#[derive(Clone, Debug)]
pub struct Linear {
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
}

impl Linear {
    /// Loads `weight` (stored `[d_out, d_in]`, kept transposed) and, if `bias`, `bias` `[d_out]`.
    pub fn new(w: &WeightLoader, d_in: usize, d_out: usize, bias: bool) -> Result<Self> {
        let weight = w.tensor_permuted("weight", [d_out, d_in], [1, 0])?;
        let bias = if bias {
            Some(w.tensor("bias", [d_out])?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    /// `[..., d_in]` → `[..., d_out]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        ops::linear(x, &self.weight, self.bias.as_ref())
    }

    /// `act(linear(x))`: `[..., d_in]` → `[..., d_out]`, a GELU fused where it can be.
    pub fn forward_act<const D: usize>(&self, x: Tensor<D>, act: Activation) -> Tensor<D> {
        match act {
            Activation::Gelu => ops::linear_gelu(x, &self.weight, self.bias.as_ref()),
            act => act.forward(self.forward(x)),
        }
    }

    /// The weight as `[d_in, d_out]` (the transpose of the stored `[d_out, d_in]`).
    pub fn weight(&self) -> Tensor<2> {
        self.weight.clone()
    }

    /// The bias `[d_out]`, if any.
    pub fn bias(&self) -> Option<Tensor<1>> {
        self.bias.clone()
    }
}

/// `nn.Conv2d` with square kernel, symmetric padding: `[B, C_in, H, W]` → `[B, C_out, H', W']`.
#[derive(Clone, Debug)]
pub struct Conv2d {
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
}

/// Shape and hyper-parameters of a [`Conv2d`].
#[derive(Clone, Copy, Debug)]
pub struct Conv2dSpec {
    pub c_in: usize,
    pub c_out: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub groups: usize,
    pub bias: bool,
}

impl Conv2dSpec {
    /// A plain convolution (stride 1, no padding, one group, with bias).
    pub fn new(c_in: usize, c_out: usize, kernel: usize) -> Self {
        Self {
            c_in,
            c_out,
            kernel,
            stride: 1,
            padding: 0,
            groups: 1,
            bias: true,
        }
    }
    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }
    pub fn padding(mut self, padding: usize) -> Self {
        self.padding = padding;
        self
    }
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }
}

impl Conv2d {
    /// Loads `weight` `[C_out, C_in/groups, k, k]` and optionally `bias` `[C_out]`.
    pub fn new(w: &WeightLoader, s: Conv2dSpec) -> Result<Self> {
        let weight = w.tensor("weight", [s.c_out, s.c_in / s.groups, s.kernel, s.kernel])?;
        let bias = if s.bias {
            Some(w.tensor("bias", [s.c_out])?)
        } else {
            None
        };
        Ok(Self::from_parts(weight, bias, s))
    }

    /// A convolution from already-loaded (e.g. BatchNorm-folded) parameters.
    pub fn from_parts(weight: Tensor<4>, bias: Option<Tensor<1>>, s: Conv2dSpec) -> Self {
        let options = ConvOptions::new(
            [s.stride, s.stride],
            [s.padding, s.padding],
            [1, 1],
            s.groups,
        );
        Self {
            weight,
            bias,
            options,
        }
    }

    /// `[B, C_in, H, W]` → `[B, C_out, H', W']`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_then(x, false)
    }

    /// `gelu(conv(x))`: `[B, C_in, H, W]` → `[B, C_out, H', W']`, fused where it can be.
    pub fn forward_gelu(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_then(x, true)
    }

    fn forward_then(&self, x: Tensor<4>, then_gelu: bool) -> Tensor<4> {
        let bias = self.bias.as_ref();
        ops::conv2d(x, &self.weight, bias, &self.options, then_gelu)
    }

    /// [`Conv2d::forward`] on channels-last values: `[B, H, W, C_in]` → `[B, H', W', C_out]`
    /// (TinyViT's `local_conv` between its `[B, H, W, C]` blocks).
    pub fn forward_channels_last(&self, x: Tensor<4>) -> Tensor<4> {
        ops::conv2d_channels_last(x, &self.weight, self.bias.as_ref(), &self.options)
    }
}

/// `nn.ConvTranspose2d(c_in, c_out, kernel_size=k, stride=k)` as used by SAM's upscaling
/// (weight stored `[C_in, C_out, k, k]`). With kernel = stride every input pixel gives its own
/// k x k output patch, so the layer is a matrix product per pixel, on channels-last rows
/// ([`ConvTranspose2d::forward_pixels`]).
#[derive(Clone, Debug)]
pub struct ConvTranspose2d {
    /// `[C_in, k·k·C_out]`, columns in (di, dj, c_out) order.
    pixel_weight: Tensor<2>,
    /// `[k·k·C_out]`.
    pixel_bias: Tensor<1>,
}

impl ConvTranspose2d {
    pub fn new(w: &WeightLoader, c_in: usize, c_out: usize, k: usize) -> Result<Self> {
        Ok(Self {
            pixel_weight: w
                .tensor_permuted("weight", [c_in, c_out, k, k], [0, 2, 3, 1])?
                .reshape([c_in, k * k * c_out]),
            pixel_bias: w.tensor("bias", [c_out])?.repeat_dim(0, k * k),
        })
    }

    /// The per-pixel weight `[C_in, k·k·C_out]` (columns (di, dj, c_out)) and bias.
    pub fn pixel_weights(&self) -> (Tensor<2>, Tensor<1>) {
        (self.pixel_weight.clone(), self.pixel_bias.clone())
    }

    /// `[B, N, C_in]` pixels → `[B, N, k·k·C_out]`: each row the (di, dj, c_out) output patch
    /// of its input pixel (output pixel `(k·i + di, k·j + dj)` of input pixel `(i, j)`).
    pub fn forward_pixels(&self, x: Tensor<3>) -> Tensor<3> {
        ops::linear(x, &self.pixel_weight, Some(&self.pixel_bias))
    }
}

/// `nn.LayerNorm` over the last dimension.
#[derive(Clone, Debug)]
pub struct LayerNorm {
    weight: Tensor<1>,
    bias: Tensor<1>,
    eps: f64,
}

impl LayerNorm {
    pub fn new(w: &WeightLoader, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: w.tensor("weight", [dim])?,
            bias: w.tensor("bias", [dim])?,
            eps,
        })
    }

    /// `[..., dim]` → `[..., dim]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        layer_norm(x, self.weight.clone(), Some(self.bias.clone()), self.eps)
    }

    /// `LayerNorm(x + y)` for `x`, `y` of the same shape.
    pub fn forward_sum<const D: usize>(&self, x: Tensor<D>, y: Tensor<D>) -> Tensor<D> {
        ops::layer_norm_sum(x, y, &self.weight, &self.bias, self.eps)
    }

    /// Weight, bias and eps.
    pub fn params(&self) -> (Tensor<1>, Tensor<1>, f64) {
        (self.weight.clone(), self.bias.clone(), self.eps)
    }
}

/// The official `LayerNorm2d`: normalises over channels of `[B, C, H, W]`, eps 1e-6.
#[derive(Clone, Debug)]
pub struct LayerNorm2d {
    weight: Tensor<4>,
    bias: Tensor<4>,
    eps: f64,
}

impl LayerNorm2d {
    pub fn new(w: &WeightLoader, channels: usize) -> Result<Self> {
        Ok(Self {
            weight: w.tensor("weight", [channels])?.reshape([1, channels, 1, 1]),
            bias: w.tensor("bias", [channels])?.reshape([1, channels, 1, 1]),
            eps: 1e-6,
        })
    }

    /// `[B, C, H, W]` → `[B, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let u = x.clone().mean_dim(1);
        let xc = x - u;
        let s = xc.clone().square().mean_dim(1);
        let x = xc / s.add_scalar(self.eps).sqrt();
        x * self.weight.clone() + self.bias.clone()
    }
}

/// Activation of an [`MlpBlock`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// Exact (erf) GELU, as `nn.GELU()`.
    Gelu,
    Relu,
}

impl Activation {
    pub fn forward<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Gelu => gelu(x),
            Activation::Relu => relu(x),
        }
    }
}

/// The official `MLPBlock`: `lin1` → act → `lin2`.
#[derive(Clone, Debug)]
pub struct MlpBlock {
    lin1: Linear,
    lin2: Linear,
    act: Activation,
}

impl MlpBlock {
    pub fn new(w: &WeightLoader, dim: usize, mlp_dim: usize, act: Activation) -> Result<Self> {
        Ok(Self {
            lin1: Linear::new(&w.pb("lin1"), dim, mlp_dim, true)?,
            lin2: Linear::new(&w.pb("lin2"), mlp_dim, dim, true)?,
            act,
        })
    }

    /// `[..., dim]` → `[..., dim]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.lin2.forward(self.lin1.forward_act(x, self.act))
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;
    use burn::tensor::module::conv_transpose2d;
    use burn::tensor::ops::ConvTransposeOptions;

    use super::*;
    use crate::io::checkpoint::Checkpoint;
    use crate::modeling::{max_abs_diff, random_checkpoint, random_tensor};

    /// `forward_channels_last` against `forward` between transposes, for a depthwise
    /// convolution (TinyViT's `local_conv`: the host kernel) and a plain one.
    #[test]
    fn conv2d_channels_last_equals_forward() {
        let device = Device::flex();
        let x = random_tensor([2, 11, 9, 8], 3, &device); // [B, H, W, C]
        for (spec, seed) in [
            (Conv2dSpec::new(8, 8, 3).padding(1).groups(8), 4),
            (Conv2dSpec::new(8, 8, 3).padding(1).groups(8).stride(2), 5),
            (Conv2dSpec::new(8, 6, 3).padding(1), 6),
        ] {
            let weight = random_tensor([spec.c_out, spec.c_in / spec.groups, 3, 3], seed, &device);
            let bias = random_tensor([spec.c_out], seed + 10, &device);
            let conv = Conv2d::from_parts(weight, Some(bias), spec);
            let plain = conv
                .forward(x.clone().permute([0, 3, 1, 2]))
                .permute([0, 2, 3, 1]);
            let err = max_abs_diff(conv.forward_channels_last(x.clone()), plain);
            assert!(err < 1e-5, "{spec:?}: {err}");
        }
    }

    /// `forward_pixels` against burn's `conv_transpose2d` (kernel 2, stride 2) with the
    /// stored weight, pixels rearranged.
    #[test]
    fn conv_transpose_pixels_equal_the_convolution() {
        let device = Device::flex();
        let (c_in, c_out, k, h, w) = (8, 4, 2, 5, 3);
        let keys = [("weight", vec![c_in, c_out, k, k]), ("bias", vec![c_out])];
        let bytes = random_checkpoint(&keys, 9);
        let ckpt = Checkpoint::from_bytes(&bytes).unwrap();
        let loader = WeightLoader::new(&ckpt, &device);
        let layer = ConvTranspose2d::new(&loader, c_in, c_out, k).unwrap();
        let x = random_tensor([1, c_in, h, w], 8, &device);
        let plain = conv_transpose2d(
            x.clone(),
            loader.tensor("weight", [c_in, c_out, k, k]).unwrap(),
            Some(loader.tensor("bias", [c_out]).unwrap()),
            ConvTransposeOptions::new([k, k], [0, 0], [0, 0], [1, 1], 1),
        ); // [1, c_out, k·h, k·w]
        let rows = x.flatten::<3>(2, 3).swap_dims(1, 2); // [1, h·w, c_in]
        let ours = layer
            .forward_pixels(rows) // [1, (i, j), (di, dj, c_out)]
            .reshape([1, h, w, k, k, c_out])
            .permute([0, 5, 1, 3, 2, 4]) // [1, c_out, i, di, j, dj]
            .reshape([1, c_out, k * h, k * w]);
        let err = max_abs_diff(ours, plain);
        assert!(err < 1e-5, "{err}");
    }
}
