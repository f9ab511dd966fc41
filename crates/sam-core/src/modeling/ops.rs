//! The ops layer: the operations of the model files, tensors in and tensors out, each run by
//! the best kernel the tensor's device has. It is the only place that chooses a kernel.
//!
//! Today there are two kinds:
//! - burn's own operations, on every device (the reference path);
//! - host kernels ([`super::cpu`], plain slices in and out) for f32 tensors on burn's CPU
//!   backend (`Device::flex()`, feature `flex`), where burn's kernels are slow for SAM's
//!   shapes (scalar `erff`/`expf`, a zeroed scratch buffer per depthwise convolution, gemm's
//!   WebAssembly kernel for products). The values are read in place ([`host_values`]) and the
//!   result wrapped back into a tensor on the same device.
//!
//! Each op here has the form `if <a kernel for this tensor> { that kernel } else { burn }`:
//! the model files call `ops::gelu(x)` and read like the official math. Composite ops that
//! only some devices fuse ([`upscale_masks`], [`window_attention`], [`resample_planes`])
//! return `Option`: `None` means "no fused kernel here", and the model file runs the official
//! composition of burn operations itself.
//!
//! **Adding a kernel.** A fused WebGPU kernel (e.g. cubecl, for the mask upscaling or the
//! attention core) goes in as one more arm of the op it replaces, chosen by the tensor's
//! device, beside the host arm; the model files do not change. Threads are a property of the
//! kernels, not of this layer: the host kernels split their work with `cpu::for_each_chunk`
//! and rayon (natively always, in WebAssembly with the `threads` feature).
//!
//! **Switch.** [`set_host_kernels`]`(false)`, or the environment variable
//! `SAM_HOST_KERNELS=0` natively, makes every op take burn's own path on the CPU backend too:
//! for debugging a kernel, and for measuring what each one buys (`examples/bench.rs`). The
//! reference parity holds either way (tests/host_kernels.rs).

use burn::tensor::Tensor;
use burn::tensor::activation;
use burn::tensor::module::{conv2d as burn_conv2d, linear as burn_linear};
use burn::tensor::ops::ConvOptions;
#[cfg(feature = "flex")]
use burn::tensor::{DType, Device, TensorData};
#[cfg(feature = "flex")]
use std::sync::atomic::{AtomicU8, Ordering};

#[cfg(feature = "flex")]
use super::cpu;

/// Whether the host kernels are enabled: 0 not decided yet (read `SAM_HOST_KERNELS`), 1 on,
/// 2 off.
#[cfg(feature = "flex")]
static HOST_KERNELS: AtomicU8 = AtomicU8::new(0);

/// Enables (the default) or disables the host kernels of the CPU backend for the whole
/// process: disabled, every op runs burn's own operation. Without the `flex` feature there
/// are no host kernels and this does nothing.
pub fn set_host_kernels(enabled: bool) {
    #[cfg(feature = "flex")]
    HOST_KERNELS.store(if enabled { 1 } else { 2 }, Ordering::Relaxed);
    #[cfg(not(feature = "flex"))]
    let _ = enabled;
}

/// Whether the host kernels are enabled: [`set_host_kernels`]'s last value, else natively
/// the environment variable `SAM_HOST_KERNELS` (`0`, `off` or `false` disable them), else on.
pub fn host_kernels() -> bool {
    #[cfg(feature = "flex")]
    {
        match HOST_KERNELS.load(Ordering::Relaxed) {
            1 => true,
            2 => false,
            _ => {
                let on = std::env::var("SAM_HOST_KERNELS")
                    .map(|v| !matches!(v.trim(), "0" | "off" | "false"))
                    .unwrap_or(true);
                // A concurrent setter wins over the environment.
                let _ = HOST_KERNELS.compare_exchange(
                    0,
                    if on { 1 } else { 2 },
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                HOST_KERNELS.load(Ordering::Relaxed) == 1
            }
        }
    }
    #[cfg(not(feature = "flex"))]
    false
}

/// `x [..., d_in] · weight [d_in, d_out] + bias [d_out]` → `[..., d_out]` (`nn.Linear` with
/// its weight kept transposed). Host kernel: [`cpu::linear`], see [`products_on_host`].
pub fn linear<const D: usize>(
    x: Tensor<D>,
    weight: &Tensor<2>,
    bias: Option<&Tensor<1>>,
) -> Tensor<D> {
    linear_then(x, weight, bias, false)
}

/// `gelu(linear(x, weight, bias))`, the GELU fused into the host kernel's product (applied as
/// it stores its values).
pub fn linear_gelu<const D: usize>(
    x: Tensor<D>,
    weight: &Tensor<2>,
    bias: Option<&Tensor<1>>,
) -> Tensor<D> {
    linear_then(x, weight, bias, true)
}

fn linear_then<const D: usize>(
    x: Tensor<D>,
    weight: &Tensor<2>,
    bias: Option<&Tensor<1>>,
    then_gelu: bool,
) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if products_on_host(&x, x.shape().num_elements() / weight.dims()[0].max(1)) {
        let [d_in, d_out] = weight.dims();
        let mut dims = x.dims();
        dims[D - 1] = d_out;
        let device = x.device();
        let data = host_values(x);
        let bias = bias.cloned().map(host_values);
        let out = cpu::linear(
            &data,
            &host_values(weight.clone()),
            bias.as_deref(),
            (d_in, d_out),
            then_gelu,
        );
        return Tensor::from_data(TensorData::new(out, dims), &device);
    }
    let y = burn_linear(x, weight.clone(), bias.cloned());
    if then_gelu { gelu(y) } else { y }
}

/// `conv2d(x, weight, bias)`, then GELU if `then_gelu`: `[B, C_in, H, W]` →
/// `[B, C_out, H', W']`. Host kernels (bias and GELU fused): [`cpu::depthwise_conv2d`] for a
/// depthwise convolution, [`cpu::conv2d`] for one group; square stride, symmetric padding.
pub fn conv2d(
    x: Tensor<4>,
    weight: &Tensor<4>,
    bias: Option<&Tensor<1>>,
    options: &ConvOptions<2>,
    then_gelu: bool,
) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if is_host_depthwise(&x, x.dims()[1], weight, options) {
        let [b, c, h, w] = x.dims();
        let d = depthwise_shape(c, h, w, weight, options);
        let device = x.device();
        let data = host_values(x);
        let bias = bias_or_zeros(bias, c);
        let out = cpu::depthwise_conv2d(&data, &host_values(weight.clone()), &bias, d, then_gelu);
        let (oh, ow) = d.out_hw();
        return Tensor::from_data(TensorData::new(out, [b, c, oh, ow]), &device);
    }
    #[cfg(feature = "flex")]
    if is_host_product(&x, weight, options) {
        let [c_out, _, k, _] = weight.dims();
        let [batch, c_in, height, width] = x.dims();
        let c = cpu::Conv {
            batch,
            c_in,
            height,
            width,
            c_out,
            kernel: k,
            stride: options.stride[0],
            padding: options.padding[0].0,
        };
        let device = x.device();
        let data = host_values(x);
        let bias = bias.cloned().map(host_values);
        let w = host_values(weight.clone());
        let out = cpu::conv2d(&data, &w, bias.as_deref(), c, then_gelu);
        let (oh, ow) = c.out_hw();
        return Tensor::from_data(TensorData::new(out, [batch, c_out, oh, ow]), &device);
    }
    let y = burn_conv2d(x, weight.clone(), bias.cloned(), options.clone());
    if then_gelu { gelu(y) } else { y }
}

/// [`conv2d`] on channels-last values: `[B, H, W, C_in]` → `[B, H', W', C_out]`. Host kernel
/// for a depthwise convolution: [`cpu::depthwise_conv2d_channels_last`] (in place, no
/// transposes); otherwise the values are transposed around [`conv2d`].
pub fn conv2d_channels_last(
    x: Tensor<4>,
    weight: &Tensor<4>,
    bias: Option<&Tensor<1>>,
    options: &ConvOptions<2>,
) -> Tensor<4> {
    #[cfg(feature = "flex")]
    {
        let [b, h, w, c] = x.dims();
        if is_host_depthwise(&x, c, weight, options) {
            let d = depthwise_shape(c, h, w, weight, options);
            let device = x.device();
            let data = host_values(x);
            let bias = bias_or_zeros(bias, c);
            let w = host_values(weight.clone());
            let out = cpu::depthwise_conv2d_channels_last(&data, &w, &bias, d);
            let (oh, ow) = d.out_hw();
            return Tensor::from_data(TensorData::new(out, [b, oh, ow, c]), &device);
        }
    }
    conv2d(x.permute([0, 3, 1, 2]), weight, bias, options, false).permute([0, 2, 3, 1])
}

/// Whether `weight` is a depthwise convolution (one filter per channel, square stride,
/// symmetric padding) of `x`'s `c` channels on the host.
#[cfg(feature = "flex")]
fn is_host_depthwise(x: &Tensor<4>, c: usize, weight: &Tensor<4>, o: &ConvOptions<2>) -> bool {
    let [c_out, per_group, _, _] = weight.dims();
    on_host(x) && per_group == 1 && o.groups == c && c_out == c && is_square(o)
}

/// Whether `weight` is a convolution with one group, a square kernel, square stride and
/// symmetric padding of `x` on the host.
#[cfg(feature = "flex")]
fn is_host_product(x: &Tensor<4>, weight: &Tensor<4>, o: &ConvOptions<2>) -> bool {
    let [_, _, kh, kw] = weight.dims();
    on_host(x) && o.groups == 1 && kh == kw && is_square(o)
}

/// Square stride, the same padding on every side, no dilation: the convolutions the host
/// kernels take.
#[cfg(feature = "flex")]
fn is_square(o: &ConvOptions<2>) -> bool {
    o.stride[0] == o.stride[1]
        && o.padding[0] == o.padding[1]
        && o.padding[0].0 == o.padding[0].1
        && o.dilation == [1, 1]
}

#[cfg(feature = "flex")]
fn depthwise_shape(
    channels: usize,
    height: usize,
    width: usize,
    weight: &Tensor<4>,
    o: &ConvOptions<2>,
) -> cpu::Depthwise {
    cpu::Depthwise {
        channels,
        height,
        width,
        kernel: weight.dims()[2],
        stride: o.stride[0],
        padding: o.padding[0].0,
    }
}

/// A bias's values, or `c` zeros without one.
#[cfg(feature = "flex")]
fn bias_or_zeros(bias: Option<&Tensor<1>>, c: usize) -> Vec<f32> {
    bias.map_or_else(|| vec![0.0; c], |b| host_values(b.clone()).to_vec())
}

/// `LayerNorm(x + y)` over the last dimension for `x`, `y` of the same shape. Host kernel:
/// one pass in place on `y`'s values ([`cpu::layer_norm_rows`]).
pub fn layer_norm_sum<const D: usize>(
    x: Tensor<D>,
    y: Tensor<D>,
    weight: &Tensor<1>,
    bias: &Tensor<1>,
    eps: f64,
) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if on_host(&x) && on_host(&y) && x.dims() == y.dims() {
        let (x, w, b) = (
            host_values(x),
            host_values(weight.clone()),
            host_values(bias.clone()),
        );
        return in_place_on_host(y, |v| cpu::layer_norm_rows(v, Some(&x), &w, &b, eps as f32));
    }
    burn::tensor::module::layer_norm(x + y, weight.clone(), Some(bias.clone()), eps)
}

/// Exact (erf) GELU, as `nn.GELU()`: `x · (1 + erf(x / √2)) / 2`, any shape.
///
/// Host kernel: in place with a rational erf that the compiler vectorises
/// ([`cpu::erf_f32`]), on all cores natively; burn's own CPU kernel calls a scalar `erff` per
/// value, which took ~15% of a click and of an embedding.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if on_host(&x) {
        return in_place_on_host(x, cpu::gelu_in_place);
    }
    activation::gelu(x)
}

/// `x [..., d] + bias [d]`. Host kernel: in place on `x`'s values.
pub fn add_bias<const D: usize>(x: Tensor<D>, bias: &Tensor<1>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if on_host(&x) && x.dims()[D - 1] == bias.dims()[0] {
        let b = host_values(bias.clone());
        return in_place_on_host(x, |v| cpu::add_row_bias(v, &b));
    }
    x + bias.clone().unsqueeze()
}

/// Softmax over the last dimension, any shape. Host kernel: in place ([`cpu::softmax_rows`],
/// a vectorised `exp`); burn's CPU kernel calls a scalar `expf` per value.
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

/// `a [..., m, k] · b [..., k, n]`, batch dimensions broadcast as burn's `matmul` does. Host
/// kernel: [`cpu::batched_matmul`], see [`products_on_host`].
pub fn matmul<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if products_on_host(&a, a.dims()[D - 2]) && on_host(&b) {
        return matmul_on_host(a, b, false, 1.0);
    }
    a.matmul(b)
}

/// `scale · a [..., m, k] · bᵀ` for `b` `[..., n, k]` (attention logits from queries and
/// keys). Host kernel: `b` read transposed in place (see [`products_on_host`]); otherwise `a`
/// is scaled, then multiplied by burn's `matmul`.
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

/// The same tensor with its values laid out row-major. burn has no operation for it: on the
/// CPU backend a transposed view makes every later element-wise op take a scalar strided
/// path, so there the values are copied once through host memory. Other backends read
/// strided layouts in their kernels: there it is the identity.
pub fn contiguous<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if x.device() == Device::flex() {
        let device = x.device();
        return Tensor::from_data(x.into_data(), &device);
    }
    x
}

/// The weights of SAM's `output_upscaling` (ConvTranspose 2x2/2, LayerNorm2d, GELU,
/// ConvTranspose 2x2/2, GELU) for [`upscale_masks`], each ConvTranspose per pixel
/// (`[C_in, 4·C_out]`, columns (di, dj, channel), see `ConvTranspose2d::pixel_weights`).
pub struct UpscaleParams<'a> {
    pub w0: &'a Tensor<2>,
    pub b0: &'a Tensor<1>,
    pub ln_w: &'a Tensor<1>,
    pub ln_b: &'a Tensor<1>,
    pub eps: f64,
    pub w3: &'a Tensor<2>,
    pub b3: &'a Tensor<1>,
}

/// The mask decoder's `output_upscaling` and mask products fused, where the device has a
/// fused kernel: image rows `src` `[B, h·w, C]`, hypernetwork outputs `hyper_in` `[B, T,
/// C/8]` → low-res masks `[B, T, 4h, 4w]`. Host kernel: [`cpu::upscale_masks`], one grid row
/// at a time (the upscaled embedding is never made). `None`: run the official composition.
pub fn upscale_masks(
    src: &Tensor<3>,
    hyper_in: &Tensor<3>,
    p: &UpscaleParams,
    (h, w): (usize, usize),
) -> Option<Tensor<4>> {
    #[cfg(feature = "flex")]
    if on_host(src) && on_host(hyper_in) {
        let device = src.device();
        let [b, hw, c] = src.dims();
        let t = hyper_in.dims()[1];
        let (w0, b0) = (host_values(p.w0.clone()), host_values(p.b0.clone()));
        let (w3, b3) = (host_values(p.w3.clone()), host_values(p.b3.clone()));
        let (ln_w, ln_b) = (host_values(p.ln_w.clone()), host_values(p.ln_b.clone()));
        let wt = cpu::UpscaleWeights {
            w0: &w0,
            b0: &b0,
            ln_w: &ln_w,
            ln_b: &ln_b,
            w3: &w3,
            b3: &b3,
        };
        let u = cpu::Upscale {
            h,
            w,
            c,
            c1: c / 4,
            c2: c / 8,
            masks: t,
            eps: p.eps as f32,
        };
        let src = host_values(src.clone());
        let hyper = host_values(hyper_in.clone());
        let mut out = Vec::with_capacity(b * t * 16 * hw);
        for k in 0..b {
            out.extend(cpu::upscale_masks(
                &src[k * hw * c..(k + 1) * hw * c],
                &hyper[k * t * (c / 8)..(k + 1) * t * (c / 8)],
                &wt,
                u,
            ));
        }
        return Some(Tensor::from_data(
            TensorData::new(out, [b, t, 4 * h, 4 * w]),
            &device,
        ));
    }
    let _ = (src, hyper_in, p, h, w);
    None
}

/// Where each head's q, k and v sit in a token's qkv projection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum QkvLayout {
    /// Per head `[q | k | v]`: TinyViT's `qkv.view(B, N, heads, -1).split([kd, kd, d])`.
    PerHead,
    /// `[q of every head | k of every head | v of every head]`: the ViT's `qkv.reshape(B, N,
    /// 3, heads, hd)`.
    Split,
}

/// Shape of a [`window_attention`]: `heads` heads of `key_dim` (q and k) and `val_dim` (v),
/// logits scaled by `scale`, over windows of `window x window` tokens, the qkv projection laid
/// out as `layout` says.
#[derive(Clone, Copy, Debug)]
pub struct WindowAttentionSpec {
    pub heads: usize,
    pub key_dim: usize,
    pub val_dim: usize,
    pub window: usize,
    pub scale: f64,
    pub layout: QkvLayout,
}

/// What [`window_attention`] adds to the scaled logits.
#[derive(Clone, Copy, Debug)]
pub enum WindowBias<'a> {
    /// TinyViT's attention bias, `[1, heads, N, N]` (`N = window²`).
    Table(&'a Tensor<4>),
    /// The ViT's decomposed relative positions: `get_rel_pos` of `rel_pos_h` and of
    /// `rel_pos_w`, each `[window, window, key_dim]`.
    RelPos(&'a Tensor<3>, &'a Tensor<3>),
}

/// The image encoders' attention core over windows (global attention: one window the size of
/// the grid), where the device has a fused kernel: from the qkv projection of a token grid
/// `[B, H, W, heads·(2·key_dim + val_dim)]`, the projection `pad` `[1, heads·(2·key_dim +
/// val_dim)]` of the zero tokens that pad the grid to whole windows, and the bias, to
/// `softmax(q·kᵀ·scale + bias)·v` of the grid's tokens, `[B, H, W, heads·val_dim]`. Host
/// kernel: [`cpu::window_attention`] (windows gathered and scattered in place, no copies for
/// the padding, the partition or the heads; the logits a block of queries at a time, never
/// the whole `[heads, N, N]` matrix). `None`: run the official composition.
pub fn window_attention(
    qkv: &Tensor<4>,
    pad: &Tensor<2>,
    bias: WindowBias,
    s: WindowAttentionSpec,
) -> Option<Tensor<4>> {
    #[cfg(feature = "flex")]
    {
        let bias_on_host = match bias {
            WindowBias::Table(t) => on_host(t),
            WindowBias::RelPos(h, w) => on_host(h) && on_host(w),
        };
        if on_host(qkv) && on_host(pad) && bias_on_host {
            let device = qkv.device();
            let [b, h, w, _] = qkv.dims();
            let a = cpu::WindowAttention {
                heads: s.heads,
                key_dim: s.key_dim,
                val_dim: s.val_dim,
                window: s.window,
                batch: b,
                height: h,
                width: w,
                scale: s.scale as f32,
                layout: s.layout,
            };
            let (qkv, pad) = (host_values(qkv.clone()), host_values(pad.clone()));
            let out = match bias {
                WindowBias::Table(t) => {
                    let t = host_values(t.clone());
                    cpu::window_attention(&qkv, &pad, cpu::AttentionBias::Table(&t), a)
                }
                WindowBias::RelPos(th, tw) => {
                    let (th, tw) = (host_values(th.clone()), host_values(tw.clone()));
                    let rel = cpu::AttentionBias::RelPos { h: &th, w: &tw };
                    cpu::window_attention(&qkv, &pad, rel, a)
                }
            };
            return Some(Tensor::from_data(
                TensorData::new(out, [b, h, w, s.heads * s.val_dim]),
                &device,
            ));
        }
    }
    let _ = (qkv, pad, bias, s);
    None
}

/// Separable resampling of every plane of `x` `[B, C, H, W]` to `[B, C, out.0, out.1]`, where
/// the device has a kernel for it: each output value is `Σ ty[y]·tx[x]·x[.., i, j]` over up to
/// four taps per axis (`taps()` gives the row taps `[out.0]` and the column taps `[out.1]`,
/// each `(input index, weight)`, unused ones weight 0). Host kernel:
/// [`cpu::resample_separable`]. `None`: run the official resizes.
pub fn resample_planes(
    x: &Tensor<4>,
    out: (usize, usize),
    taps: impl FnOnce() -> (Vec<[(u32, f32); 4]>, Vec<[(u32, f32); 4]>),
) -> Option<Tensor<4>> {
    #[cfg(feature = "flex")]
    if on_host(x) {
        let device = x.device();
        let [b, c, in_h, in_w] = x.dims();
        let (ty, tx) = taps();
        let src = host_values(x.clone());
        let values = cpu::resample_separable(&src, (b * c, in_h, in_w), &ty, &tx);
        return Some(Tensor::from_data(
            TensorData::new(values, [b, c, out.0, out.1]),
            &device,
        ));
    }
    let _ = (x, out, taps);
    None
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
pub(crate) fn products_on_host<const D: usize>(x: &Tensor<D>, rows: usize) -> bool {
    const MIN_NATIVE_ROWS: usize = 64;
    on_host(x) && (cfg!(target_family = "wasm") || rows >= MIN_NATIVE_ROWS)
}

/// Whether `x` takes the host kernels: f32 values on the CPU backend (in host memory
/// already), with the host kernels enabled ([`host_kernels`]). Everything else takes burn's
/// operations.
#[cfg(feature = "flex")]
pub(crate) fn on_host<const D: usize>(x: &Tensor<D>) -> bool {
    x.device() == Device::flex() && x.dtype() == DType::F32 && host_kernels()
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
pub(crate) fn host_values<const D: usize>(x: Tensor<D>) -> HostValues {
    if let Ok(t) = x.clone().try_into_primitive::<burn_flex::Flex>()
        && t.as_slice::<f32>().is_some()
    {
        return HostValues::InPlace(t);
    }
    HostValues::Copied(x.into_data().convert::<f32>())
}

/// The values of [`host_values`].
#[cfg(feature = "flex")]
pub(crate) enum HostValues {
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
