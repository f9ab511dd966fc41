//! Building blocks shared by the SAM modules (the official `modeling/common.py` plus the
//! torch.nn layers it uses), each loaded from official state-dict keys.

use burn::tensor::Tensor;
use burn::tensor::activation::{self, relu};
use burn::tensor::module::{conv2d, layer_norm, linear};
use burn::tensor::ops::ConvOptions;
#[cfg(feature = "flex")]
use burn::tensor::{DType, Device, TensorData};

#[cfg(feature = "flex")]
use super::cpu;
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

    /// `[..., d_in]` → `[..., d_out]`. In WebAssembly on the CPU backend a product on host
    /// memory ([`cpu::linear`]; see [`products_on_host`]).
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        #[cfg(feature = "flex")]
        if products_on_host(&x, x.shape().num_elements() / self.weight.dims()[0].max(1)) {
            let [d_in, d_out] = self.weight.dims();
            let mut dims = x.dims();
            dims[D - 1] = d_out;
            let device = x.device();
            let data = host_values(x);
            let bias = self.bias.clone().map(host_values);
            let out = cpu::linear(
                &data,
                &host_values(self.weight.clone()),
                bias.as_deref(),
                d_in,
                d_out,
            );
            return Tensor::from_data(TensorData::new(out, dims), &device);
        }
        linear(x, self.weight.clone(), self.bias.clone())
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
        #[cfg(feature = "flex")]
        if self.is_host_depthwise(&x, x.dims()[1]) {
            return self.depthwise_on_host(x, then_gelu);
        }
        #[cfg(feature = "flex")]
        if self.is_host_product(&x) {
            return self.product_on_host(x, then_gelu);
        }
        let y = conv2d(
            x,
            self.weight.clone(),
            self.bias.clone(),
            self.options.clone(),
        );
        if then_gelu { gelu(y) } else { y }
    }

    /// Whether this is a depthwise convolution (one filter per channel, square stride,
    /// symmetric padding) of `x`'s `c` channels, f32 values on the CPU backend: those run on
    /// host memory.
    #[cfg(feature = "flex")]
    fn is_host_depthwise(&self, x: &Tensor<4>, c: usize) -> bool {
        let [c_out, per_group, _, _] = self.weight.dims();
        let o = &self.options;
        on_host(x) && per_group == 1 && o.groups == c && c_out == c && self.is_square()
    }

    /// Square stride, the same padding on every side, no dilation: the convolutions the
    /// host kernels take.
    #[cfg(feature = "flex")]
    fn is_square(&self) -> bool {
        let o = &self.options;
        o.stride[0] == o.stride[1]
            && o.padding[0] == o.padding[1]
            && o.padding[0].0 == o.padding[0].1
            && o.dilation == [1, 1]
    }

    /// Whether this is a convolution with one group (square stride, symmetric padding) of f32
    /// values on the CPU backend: those run on host memory as matrix products.
    #[cfg(feature = "flex")]
    fn is_host_product(&self, x: &Tensor<4>) -> bool {
        let [_, _, kh, kw] = self.weight.dims();
        on_host(x) && self.options.groups == 1 && kh == kw && self.is_square()
    }

    /// A convolution with one group on host memory ([`cpu::conv2d`]), its bias and the
    /// optional GELU fused; for the cases [`Conv2d::is_host_product`] accepts.
    #[cfg(feature = "flex")]
    fn product_on_host(&self, x: Tensor<4>, gelu: bool) -> Tensor<4> {
        let [c_out, _, k, _] = self.weight.dims();
        let [batch, c_in, height, width] = x.dims();
        let c = cpu::Conv {
            batch,
            c_in,
            height,
            width,
            c_out,
            kernel: k,
            stride: self.options.stride[0],
            padding: self.options.padding[0].0,
        };
        let device = x.device();
        let data = host_values(x);
        let bias = self.bias.clone().map(host_values);
        let out = cpu::conv2d(
            &data,
            &host_values(self.weight.clone()),
            bias.as_deref(),
            c,
            gelu,
        );
        let (oh, ow) = c.out_hw();
        Tensor::from_data(TensorData::new(out, [batch, c_out, oh, ow]), &device)
    }

    /// [`Conv2d::forward`] on channels-last values: `[B, H, W, C_in]` → `[B, H', W', C_out]`. A
    /// depthwise convolution on the CPU backend reads them in place
    /// ([`cpu::depthwise_conv2d_channels_last`]); otherwise the values are transposed around
    /// [`Conv2d::forward`].
    pub fn forward_channels_last(&self, x: Tensor<4>) -> Tensor<4> {
        #[cfg(feature = "flex")]
        {
            let [b, h, w, c] = x.dims();
            if self.is_host_depthwise(&x, c) {
                let o = &self.options;
                let d = cpu::Depthwise {
                    channels: c,
                    height: h,
                    width: w,
                    kernel: self.weight.dims()[2],
                    stride: o.stride[0],
                    padding: o.padding[0].0,
                };
                let device = x.device();
                let data = host_values(x);
                let bias = self.bias.clone().map(host_values);
                let zeros = vec![0.0; c];
                let out = cpu::depthwise_conv2d_channels_last(
                    &data,
                    &host_values(self.weight.clone()),
                    bias.as_deref().unwrap_or(&zeros),
                    d,
                );
                let (oh, ow) = d.out_hw();
                return Tensor::from_data(TensorData::new(out, [b, oh, ow, c]), &device);
            }
        }
        self.forward(x.permute([0, 3, 1, 2])).permute([0, 2, 3, 1])
    }

    /// A depthwise convolution on host memory with its bias and the optional GELU fused
    /// ([`cpu::depthwise_conv2d`]); for the cases [`Conv2d::is_host_depthwise`] accepts.
    #[cfg(feature = "flex")]
    fn depthwise_on_host(&self, x: Tensor<4>, gelu: bool) -> Tensor<4> {
        let k = self.weight.dims()[2];
        let [b, c, h, w] = x.dims();
        let o = &self.options;
        let device = x.device();
        let data = host_values(x);
        let weight = host_values(self.weight.clone());
        let bias = self.bias.clone().map(host_values);
        let zeros = vec![0.0; c];
        let d = cpu::Depthwise {
            channels: c,
            height: h,
            width: w,
            kernel: k,
            stride: o.stride[0],
            padding: o.padding[0].0,
        };
        let bias = bias.as_deref().unwrap_or(&zeros);
        let out = cpu::depthwise_conv2d(&data, &weight, bias, d, gelu);
        let (oh, ow) = d.out_hw();
        Tensor::from_data(TensorData::new(out, [b, c, oh, ow]), &device)
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
        linear(x, self.pixel_weight.clone(), Some(self.pixel_bias.clone()))
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

    /// `LayerNorm(x + y)` for `x`, `y` of the same shape: on the CPU backend one pass in
    /// place on `y`'s values ([`cpu::layer_norm_rows`]), else burn's add and `layer_norm`.
    pub fn forward_sum<const D: usize>(&self, x: Tensor<D>, y: Tensor<D>) -> Tensor<D> {
        #[cfg(feature = "flex")]
        if on_host(&x) && on_host(&y) && x.dims() == y.dims() {
            let (x, w, b) = (
                host_values(x),
                host_values(self.weight.clone()),
                host_values(self.bias.clone()),
            );
            return in_place_on_host(y, |v| {
                cpu::layer_norm_rows(v, Some(&x), &w, &b, self.eps as f32)
            });
        }
        self.forward(x + y)
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
        self.lin2.forward(self.act.forward(self.lin1.forward(x)))
    }
}

/// Exact (erf) GELU, as `nn.GELU()`: `x · (1 + erf(x / √2)) / 2`, any shape.
///
/// On the CPU backend the values are computed in place on the host with a rational erf that
/// the compiler vectorises ([`cpu::erf_f32`]), on all cores natively; burn's own CPU kernel calls a
/// scalar `erff` per value, which took ~15% of a click and of an embedding. Other devices use
/// burn's `gelu`.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if on_host(&x) {
        return in_place_on_host(x, cpu::gelu_in_place);
    }
    activation::gelu(x)
}

/// `x [..., d] + bias [d]`: on the CPU backend in place on `x`'s values.
pub fn add_bias<const D: usize>(x: Tensor<D>, bias: &Tensor<1>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if on_host(&x) && x.dims()[D - 1] == bias.dims()[0] {
        let b = host_values(bias.clone());
        return in_place_on_host(x, |v| cpu::add_row_bias(v, &b));
    }
    x + bias.clone().unsqueeze()
}

/// Softmax over the last dimension, any shape. On the CPU backend the values are computed in
/// place on the host ([`cpu::softmax_rows`], a vectorised `exp`); burn's CPU kernel calls a
/// scalar `expf` per value. Other devices use burn's `softmax`.
pub fn softmax_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    {
        let n = x.dims()[D - 1];
        if on_host(&x) && n > 0 {
            return in_place_on_host(x, |values| cpu::softmax_rows(values, n));
        }
    }
    activation::softmax(x, D - 1)
}

/// `a [..., m, k] · b [..., k, n]`, batch dimensions broadcast as burn's `matmul` does. In
/// WebAssembly on the CPU backend a product on host memory ([`cpu::batched_matmul`]; see
/// [`products_on_host`]); burn's otherwise.
pub fn matmul<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if products_on_host(&a, a.dims()[D - 2]) && on_host(&b) {
        return matmul_on_host(a, b, false, 1.0);
    }
    a.matmul(b)
}

/// `scale · a [..., m, k] · bᵀ` for `b` `[..., n, k]` (attention logits from queries and
/// keys). In WebAssembly on the CPU backend `b` is read transposed in place (see
/// [`products_on_host`]); elsewhere `a` is scaled, then multiplied by burn's `matmul`.
pub fn matmul_t<const D: usize>(a: Tensor<D>, b: Tensor<D>, scale: f64) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if products_on_host(&a, a.dims()[D - 2]) && on_host(&b) {
        return matmul_on_host(a, b, true, scale as f32);
    }
    let a = if scale == 1.0 { a } else { a.mul_scalar(scale) };
    a.matmul(b.swap_dims(D - 2, D - 1))
}

#[cfg(feature = "flex")]
fn matmul_on_host<const D: usize>(
    a: Tensor<D>,
    b: Tensor<D>,
    b_transposed: bool,
    scale: f32,
) -> Tensor<D> {
    let device = a.device();
    let (a_dims, b_dims) = (a.dims(), b.dims());
    let (a, b) = (host_values(a), host_values(b));
    let (dims, out) = cpu::batched_matmul((&a, &a_dims), (&b, &b_dims, b_transposed), scale);
    Tensor::from_data(TensorData::new(out, dims), &device)
}

/// Whether a linear layer or matmul with left operand `x` goes to the host products
/// ([`cpu::linear`], [`cpu::batched_matmul`]): f32 values on the CPU backend, in WebAssembly
/// always (burn's CPU backend multiplies there with gemm's WebAssembly kernel: ~6 GMAC/s
/// under V8 here, ours 26-29), natively for products of at least 64 rows. Natively burn's
/// `linear` and `matmul` call the same gemm on the tensors' own storage and strides; the
/// threshold was measured when the host path still copied every weight (a click took
/// 14.7 → 17.2 ms with every product on the host; [`host_values`] now reads contiguous
/// tensors in place, but a strided operand is still copied), while for the encoder's
/// thousands of rows the host path is faster (burn's adds the bias in a second pass:
/// mobile_sam `set_image` 590 → 410-450 ms). In WebAssembly the threshold would cost more
/// than it saves (a click 47.8 → 49.3 ms).
/// `rows`: the rows of one product (a linear layer's input rows; a matmul's `m`).
#[cfg(feature = "flex")]
pub fn products_on_host<const D: usize>(x: &Tensor<D>, rows: usize) -> bool {
    const MIN_NATIVE_ROWS: usize = 64;
    on_host(x) && (cfg!(target_family = "wasm") || rows >= MIN_NATIVE_ROWS)
}

/// Whether `x` holds f32 values on the CPU backend: those take the host kernels of
/// [`cpu`] (in host memory already), everything else burn's operations.
#[cfg(feature = "flex")]
pub fn on_host<const D: usize>(x: &Tensor<D>) -> bool {
    x.device() == Device::flex() && x.dtype() == DType::F32
}

/// `x` with `f` applied to its values in place, for an [`on_host`] tensor. Without a copy:
/// `TensorData::try_into_vec` would copy (the backend's buffers are over-aligned).
#[cfg(feature = "flex")]
fn in_place_on_host<const D: usize>(x: Tensor<D>, f: impl FnOnce(&mut [f32])) -> Tensor<D> {
    let device = x.device();
    let mut data = x.into_data();
    f(data.as_mut_slice::<f32>().expect("f32 tensor data"));
    Tensor::from_data(data, &device)
}

/// A tensor's values on the host as an f32 slice, for the [`cpu`] kernels: read in place
/// when the CPU backend holds them row-major, else copied out once. (`into_data` copies a
/// shared tensor, such as a weight, twice: out of the shared buffer, then again to align it.)
#[cfg(feature = "flex")]
pub fn host_values<const D: usize>(x: Tensor<D>) -> HostValues {
    if let Ok(t) = x.clone().try_into_primitive::<burn_flex::Flex>()
        && t.as_slice::<f32>().is_some()
    {
        return HostValues::InPlace(t);
    }
    HostValues::Copied(x.into_data().convert::<f32>())
}

/// The values of [`host_values`].
#[cfg(feature = "flex")]
pub enum HostValues {
    InPlace(burn_flex::FlexTensor),
    Copied(TensorData),
}

#[cfg(feature = "flex")]
impl std::ops::Deref for HostValues {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        match self {
            HostValues::InPlace(t) => t.as_slice::<f32>(),
            HostValues::Copied(d) => d.as_slice::<f32>().ok(),
        }
        .expect("f32 tensor values")
    }
}

/// The same tensor with its values laid out row-major. burn has no operation for it: on the
/// CPU backend a transposed view makes every later element-wise op take a scalar strided
/// path, so there the values are copied once through host memory (a tiled transpose). Other
/// backends read strided layouts in their kernels: there it is the identity.
pub fn contiguous<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if x.device() == Device::flex() {
        let device = x.device();
        return Tensor::from_data(x.into_data(), &device);
    }
    x
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;

    /// The host GELU against burn's (scalar `erff`) on the CPU backend.
    #[test]
    fn gelu_matches_burns_gelu() {
        let device = Device::flex();
        let xs: Vec<f32> = (0..200_001).map(|i| -12.0 + i as f32 * 1.2e-4).collect();
        let x = Tensor::<1>::from_data(TensorData::new(xs.clone(), [xs.len()]), &device);
        let ours = gelu(x.clone()).into_data().try_to_vec::<f32>().unwrap();
        let burns = activation::gelu(x).into_data().try_to_vec::<f32>().unwrap();
        let max = ours
            .iter()
            .zip(&burns)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max < 2e-6, "max |ours - burn| = {max}");
    }
}
