//! Kernels on host memory for the CPU backend (`Device::flex()`), where burn's own are slow
//! for our shapes: plain f32 slices in and out, no tensors. Their only caller is the ops layer
//! ([`super::ops`]), which picks them for f32 tensors on that device (unless switched off,
//! `ops::set_host_kernels`); every other device keeps burn's operations. Natively they run
//! on all cores (rayon, [`for_each_chunk`]) with the widest x86 vectors the processor has,
//! chosen at run time ([`widest`]); in wasm they run with the module's SIMD on one thread, or
//! on rayon's pool of Web Workers in the threaded module (feature `threads`).
//!
//! Matrix products are in `gemm` and `products`, the separable mask resampling in `resize`.

#[cfg(any(not(target_family = "wasm"), feature = "threads"))]
use rayon::prelude::*;

mod gemm;
mod products;
mod resize;

use gemm::{Rhs, matmul, matmul_by};
pub use products::{Conv, batched_matmul, conv2d, linear};
pub use resize::resample_separable;

/// Runs `f` (which should be an `#[inline(always)]` closure over `#[inline(always)]` code)
/// compiled for AVX-512 or AVX2 when the processor has them: x86-64 builds target SSE2
/// unless told otherwise.
#[inline(always)]
fn widest<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the processor has AVX-512F.
            return unsafe { with_avx512(f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the processor has AVX2.
            return unsafe { with_avx2(f) };
        }
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Runs `f(index, chunk)` on the `chunk`-long pieces of `values`: on all cores when `parallel`
/// (natively, and in the threaded WebAssembly module), one after the other otherwise and in
/// the single-threaded WebAssembly module.
fn for_each_chunk<T: Send>(
    values: &mut [T],
    chunk: usize,
    parallel: bool,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    #[cfg(any(not(target_family = "wasm"), feature = "threads"))]
    if parallel {
        values
            .par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
        return;
    }
    let _ = parallel;
    values
        .chunks_mut(chunk)
        .enumerate()
        .for_each(|(i, c)| f(i, c));
}

/// Exact (erf) GELU in place, as `nn.GELU()`, with [`erf_f32`].
pub fn gelu_in_place(values: &mut [f32]) {
    let parallel = values.len() >= 1 << 16;
    for_each_chunk(values, 1 << 14, parallel, |_, chunk| gelu_chunk(chunk));
}

fn gelu_chunk(values: &mut [f32]) {
    widest(
        #[inline(always)]
        || gelu_values(values),
    )
}

#[inline(always)]
fn gelu_values(values: &mut [f32]) {
    for v in values {
        *v = 0.5 * *v * (1.0 + erf_f32(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// erf for `f32`: the rational approximation of degree 13/8 on [-4, 4] that Eigen and XLA use
/// for float32 (within 1e-7 of erf; beyond ±4 erf rounds to ±1 in single precision). Plain
/// multiply-adds: `mul_add` is a library call on targets without FMA.
#[inline(always)]
pub fn erf_f32(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = x2 * -2.726_142_4e-10 + 2.770_681_5e-8;
    let p = x2 * p + -2.101_024e-6;
    let p = x2 * p + -5.692_506_2e-5;
    let p = x2 * p + -7.349_906_4e-4;
    let p = x2 * p + -2.954_6e-3;
    let p = x2 * p + -1.609_603_3e-2;
    let q = x2 * -1.456_607_15e-5 + -2.133_740_5e-4;
    let q = x2 * q + -1.682_827e-3;
    let q = x2 * q + -7.373_329_3e-3;
    let q = x2 * q + -1.426_473_9e-2;
    x * p / q
}

/// Shape of a depthwise convolution (`groups` = channels, one `k x k` filter per channel,
/// symmetric zero padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Depthwise {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl Depthwise {
    /// Output `(height, width)`, as `nn.Conv2d` computes it.
    pub fn out_hw(&self) -> (usize, usize) {
        conv_out_hw(
            (self.height, self.width),
            self.kernel,
            self.stride,
            self.padding,
        )
    }
}

/// A convolution's output `(height, width)` for an input of `(height, width)`, a square
/// kernel, stride and padding, as `nn.Conv2d` computes it.
fn conv_out_hw(
    (height, width): (usize, usize),
    kernel: usize,
    stride: usize,
    padding: usize,
) -> (usize, usize) {
    let out = |n: usize| (n + 2 * padding - kernel) / stride + 1;
    (out(height), out(width))
}

/// Depthwise convolution of NCHW planes: `input` `[B, C, H, W]`, `weight` `[C, k, k]`, `bias`
/// `[C]` → `[B, C, H', W']`, then GELU if `gelu`. Each output row starts from the bias, takes
/// every tap that lands inside the image (padding contributes nothing) and, fused, the GELU
/// while it is in cache. burn-flex's own depthwise path adds taps into a zeroed buffer it
/// reads first, which on Linux maps the shared zero page and then faults again on the write,
/// with a TLB shootdown across threads: ~15% of a MobileSAM embedding went there.
pub fn depthwise_conv2d(
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
    d: Depthwise,
    gelu: bool,
) -> Vec<f32> {
    let (c, k) = (d.channels, d.kernel);
    let plane = d.height * d.width;
    assert!(
        plane > 0 && input.len().is_multiple_of(c * plane),
        "depthwise input shape"
    );
    assert_eq!(weight.len(), c * k * k, "depthwise weight shape");
    assert_eq!(bias.len(), c, "depthwise bias shape");
    assert!(
        d.height + 2 * d.padding >= k && d.width + 2 * d.padding >= k && d.stride > 0,
        "depthwise kernel larger than the padded input"
    );
    let (oh, ow) = d.out_hw();
    let planes = input.len() / plane;
    let mut out = vec![0.0f32; planes * oh * ow];
    let run = |bc: usize, out_plane: &mut [f32]| {
        let ch = bc % c;
        let x = &input[bc * plane..(bc + 1) * plane];
        let w = &weight[ch * k * k..(ch + 1) * k * k];
        widest(
            #[inline(always)]
            || depthwise_plane(x, w, bias[ch], d, out_plane, gelu),
        )
    };
    for_each_chunk(&mut out, oh * ow, true, run);
    out
}

/// [`depthwise_conv2d`] of channels-last values: `input` `[B, H, W, C]`, `weight` `[C, k, k]`,
/// `bias` `[C]` → `[B, H', W', C]` (TinyViT's `local_conv` between its `[B, H, W, C]` blocks:
/// no transposes on either side). Each output pixel starts from the bias and adds its taps
/// in the same order as [`depthwise_conv2d`], vectorised across the channels.
pub fn depthwise_conv2d_channels_last(
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
    d: Depthwise,
) -> Vec<f32> {
    let (c, k, s, p) = (d.channels, d.kernel, d.stride, d.padding);
    let (h, w) = (d.height, d.width);
    assert!(
        c > 0 && h * w > 0 && input.len().is_multiple_of(h * w * c),
        "depthwise input shape"
    );
    assert_eq!(weight.len(), c * k * k, "depthwise weight shape");
    assert_eq!(bias.len(), c, "depthwise bias shape");
    assert!(
        h + 2 * p >= k && w + 2 * p >= k && s > 0,
        "depthwise kernel larger than the padded input"
    );
    let (oh, ow) = d.out_hw();
    // The taps as [k·k, C]: one contiguous row of weights per tap.
    let taps: Vec<f32> = (0..k * k * c)
        .map(|i| weight[(i % c) * k * k + i / c])
        .collect();
    let images = input.len() / (h * w * c);
    let mut out = vec![0.0f32; images * oh * ow * c];
    let run = |r: usize, row: &mut [f32]| {
        let (y, img) = (r % oh, &input[r / oh * h * w * c..(r / oh + 1) * h * w * c]);
        for (x, px) in row.chunks_exact_mut(c).enumerate() {
            px.copy_from_slice(bias);
            for ky in 0..k {
                let iy = (y * s + ky).wrapping_sub(p);
                if iy >= h {
                    continue;
                }
                for kx in 0..k {
                    let ix = (x * s + kx).wrapping_sub(p);
                    if ix >= w {
                        continue;
                    }
                    let src = &img[(iy * w + ix) * c..(iy * w + ix + 1) * c];
                    let tap = &taps[(ky * k + kx) * c..(ky * k + kx + 1) * c];
                    for ((o, &v), &t) in px.iter_mut().zip(src).zip(tap) {
                        *o += t * v;
                    }
                }
            }
        }
    };
    for_each_chunk(&mut out, ow * c, true, |r, row| {
        widest(
            #[inline(always)]
            || run(r, row),
        )
    });
    out
}

/// One channel of [`depthwise_conv2d`]: `x` `[H, W]`, `w` `[k, k]` → `out` `[H', W']`.
#[inline(always)]
fn depthwise_plane(x: &[f32], w: &[f32], bias: f32, d: Depthwise, out: &mut [f32], gelu: bool) {
    let (k, s, p) = (d.kernel, d.stride, d.padding);
    let (oh, ow) = d.out_hw();
    // Output columns whose every tap is inside the image: `a..b`.
    let a = p.div_ceil(s).min(ow);
    let b = if d.width + p >= k {
        ((d.width + p - k) / s + 1).clamp(a, ow)
    } else {
        a
    };
    for (o, row) in out.chunks_exact_mut(ow).enumerate().take(oh) {
        // Kernel rows inside the image for this output row.
        let kh_lo = p.saturating_sub(o * s);
        let kh_hi = (d.height + p).saturating_sub(o * s).min(k);
        let x_row = |kh: usize| {
            let ih = o * s + kh - p;
            &x[ih * d.width..(ih + 1) * d.width]
        };
        // The interior in blocks of L columns, the sums kept in registers across all taps
        // (32: 8 WebAssembly vectors, twice as fast there as 16; 2 AVX-512 vectors natively).
        const L: usize = 32;
        let mut c = a;
        while c + L <= b || (c < b && b - a >= L) {
            // The interior's tail as one more block, overlapping the one before: the columns
            // one at a time below were ~half of WebAssembly's time at 256 columns.
            c = c.min(b - L);
            let mut acc = [bias; L];
            for kh in kh_lo..kh_hi {
                let xr = x_row(kh);
                for kw in 0..k {
                    let wv = w[kh * k + kw];
                    let start = c * s + kw - p;
                    if s == 1 {
                        let src = &xr[start..start + L];
                        for i in 0..L {
                            acc[i] += wv * src[i];
                        }
                    } else {
                        let src = &xr[start..start + (L - 1) * s + 1];
                        for i in 0..L {
                            acc[i] += wv * src[i * s];
                        }
                    }
                }
            }
            row[c..c + L].copy_from_slice(&acc);
            c += L;
        }
        // The other columns (borders, the interior's tail): one at a time.
        for col in (0..a).chain(c..ow) {
            let mut acc = bias;
            for kh in kh_lo..kh_hi {
                let xr = x_row(kh);
                for kw in 0..k {
                    if let Some(iw) = (col * s + kw).checked_sub(p).filter(|&i| i < d.width) {
                        acc += w[kh * k + kw] * xr[iw];
                    }
                }
            }
            row[col] = acc;
        }
        if gelu {
            gelu_values(row);
        }
    }
}

/// `exp` for `f32`, vectorisable (no library call): `2^n · e^r` with `n` the nearest integer to
/// `x·log2(e)` (the 1.5·2²³ rounding trick, which also leaves `n` in the low bits), `r` by a
/// two-constant Cody-Waite reduction and `e^r` by Cephes' degree-6 polynomial for `expf`
/// (within 2 ulp). Inputs below -87.3 give ~1e-38 instead of 0, which is the same to a softmax.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const SHIFT: f32 = 12_582_912.0; // 1.5 · 2^23
    let x = x.clamp(-87.3, 88.7);
    let t = x * std::f32::consts::LOG2_E + SHIFT;
    let n = t - SHIFT;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let p = r * 1.987_569_1e-4 + 1.398_2e-3;
    let p = r * p + 8.333_452e-3;
    let p = r * p + 4.166_579_6e-2;
    let p = r * p + 1.666_666_5e-1;
    let p = r * p + 0.5;
    let e_r = p * r * r + r + 1.0;
    // 2^n: n sits in t's low mantissa bits, offset by 0x4B40_0000.
    let two_n = f32::from_bits((t.to_bits().wrapping_sub(0x4B40_0000).wrapping_add(127)) << 23);
    e_r * two_n
}

/// Shape of a [`window_attention`]: `heads` heads of `key_dim` (q and k) and `val_dim` (v)
/// over windows of `tokens` tokens.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowAttention {
    pub heads: usize,
    pub key_dim: usize,
    pub val_dim: usize,
    pub tokens: usize,
    pub scale: f32,
}

/// TinyViT's attention core on host memory: for every window and head,
/// `softmax(q·kᵀ·scale + bias) · v`. q, k and v are read in place from the qkv projection
/// `[windows, tokens, heads·(2·key_dim + val_dim)]` (per head `[q | k | v]`, the official
/// split) and the result is written as `[windows, tokens, heads·val_dim]`, ready for the
/// output projection: no copies for the head split or merge. `bias` is `[heads, tokens,
/// tokens]`. The two products go through gemm (the kernel burn's CPU backend uses) and the
/// softmax through the vectorised [`exp_f32`]; burn-flex's own attention takes a scalar `expf`
/// per score.
pub fn window_attention(qkv: &[f32], bias: &[f32], a: WindowAttention) -> Vec<f32> {
    let (nh, kd, d, n) = (a.heads, a.key_dim, a.val_dim, a.tokens);
    let row = nh * (2 * kd + d);
    assert!(
        n > 0 && qkv.len().is_multiple_of(n * row),
        "window attention qkv shape"
    );
    assert_eq!(bias.len(), nh * n * n, "window attention bias shape");
    let windows = qkv.len() / (n * row);
    let mut out = vec![0.0f32; windows * n * nh * d];
    let run = |scores: &mut Vec<f32>, (win, out): (usize, &mut [f32])| {
        let qkv = &qkv[win * n * row..(win + 1) * n * row];
        for h in 0..nh {
            let base = h * (2 * kd + d);
            // SAFETY: every operand lies inside `qkv`, `scores` or this window's `out`, with
            // the strides given (rows of `row` values; k read transposed).
            unsafe {
                matmul(
                    [n, n, kd],
                    (scores.as_mut_ptr(), n),
                    (qkv.as_ptr().add(base), row),
                    (qkv.as_ptr().add(base + kd), 1, row),
                    a.scale,
                );
            }
            let b = &bias[h * n * n..(h + 1) * n * n];
            widest(
                #[inline(always)]
                || softmax_rows_with_bias(scores, b, n),
            );
            unsafe {
                matmul(
                    [n, d, n],
                    (out.as_mut_ptr().add(h * d), nh * d),
                    (scores.as_ptr(), n),
                    (qkv.as_ptr().add(base + 2 * kd), row, 1),
                    1.0,
                );
            }
        }
    };
    let window_out = n * nh * d;
    #[cfg(any(not(target_family = "wasm"), feature = "threads"))]
    out.par_chunks_mut(window_out)
        .enumerate()
        .for_each_init(|| vec![0.0f32; n * n], run);
    #[cfg(all(target_family = "wasm", not(feature = "threads")))]
    {
        let mut scores = vec![0.0f32; n * n];
        out.chunks_mut(window_out)
            .enumerate()
            .for_each(|item| run(&mut scores, item));
    }
    out
}

/// Softmax over rows of `n` values, in place (`values.len()` a multiple of `n`).
pub fn softmax_rows(values: &mut [f32], n: usize) {
    assert!(n > 0 && values.len().is_multiple_of(n), "softmax rows");
    let parallel = values.len() >= 1 << 15;
    for_each_chunk(
        values,
        n * (1usize << 14).div_ceil(n),
        parallel,
        |_, rows| {
            widest(
                #[inline(always)]
                || {
                    if n < SOFTMAX_LANES {
                        softmax_short_rows(rows, n)
                    } else {
                        for row in rows.chunks_exact_mut(n) {
                            softmax_row(row, None)
                        }
                    }
                },
            )
        },
    );
}

/// Softmax over rows shorter than a vector of lanes (the decoder's image-to-token attention:
/// 7 tokens a head), where [`softmax_row`] would be all scalar tail: the max of each row is
/// subtracted, then one vectorised `exp` runs over the whole block, then each row is scaled.
#[inline(always)]
fn softmax_short_rows(rows: &mut [f32], n: usize) {
    for row in rows.chunks_exact_mut(n) {
        let max = row
            .iter()
            .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
        for v in row.iter_mut() {
            *v -= max;
        }
    }
    for v in rows.iter_mut() {
        *v = exp_f32(*v);
    }
    for row in rows.chunks_exact_mut(n) {
        let inv = 1.0 / row.iter().sum::<f32>();
        for v in row.iter_mut() {
            *v *= inv;
        }
    }
}

/// Row-wise `softmax(scores + bias)` over rows of `n`, in place.
#[inline(always)]
fn softmax_rows_with_bias(scores: &mut [f32], bias: &[f32], n: usize) {
    for (s, b) in scores.chunks_exact_mut(n).zip(bias.chunks_exact(n)) {
        softmax_row(s, Some(b));
    }
}

/// Lanes of [`softmax_row`]'s reductions.
const SOFTMAX_LANES: usize = 16;

/// `softmax(row + bias)` in place. The max and the sum are kept per lane (`L` of them) so
/// that the compiler can vectorise both reductions.
#[inline(always)]
fn softmax_row(s: &mut [f32], bias: Option<&[f32]>) {
    const L: usize = SOFTMAX_LANES;
    let split = s.len() - s.len() % L;
    if let Some(b) = bias {
        for (v, &bv) in s.iter_mut().zip(b) {
            *v += bv;
        }
    }
    let mut maxes = [f32::NEG_INFINITY; L];
    for sc in s[..split].chunks_exact(L) {
        for i in 0..L {
            maxes[i] = if sc[i] > maxes[i] { sc[i] } else { maxes[i] };
        }
    }
    // Not `f32::max`: its NaN rule makes it a library call (`fmaxf`) in WebAssembly.
    let max = s[split..]
        .iter()
        .chain(&maxes)
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    let mut sums = [0.0f32; L];
    for sc in s[..split].chunks_exact_mut(L) {
        for i in 0..L {
            sc[i] = exp_f32(sc[i] - max);
            sums[i] += sc[i];
        }
    }
    let mut sum: f32 = sums.iter().sum();
    for v in &mut s[split..] {
        *v = exp_f32(*v - max);
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in s.iter_mut() {
        *v *= inv;
    }
}

/// `LayerNorm(values + residual)` over rows of `weight.len()` values, in place (`residual`,
/// if any, the same length as `values`), a row at a time ([`normalize_row`]).
pub fn layer_norm_rows(
    values: &mut [f32],
    residual: Option<&[f32]>,
    weight: &[f32],
    bias: &[f32],
    eps: f32,
) {
    let d = weight.len();
    assert!(
        d > 0 && bias.len() == d && values.len().is_multiple_of(d),
        "layer norm shapes"
    );
    if let Some(r) = residual {
        assert_eq!(r.len(), values.len(), "layer norm residual shape");
    }
    let rows_per_chunk = (1usize << 14).div_ceil(d);
    for_each_chunk(
        values,
        rows_per_chunk * d,
        values.len() >= 1 << 16,
        |i, chunk| {
            let residual = residual.map(|r| &r[i * rows_per_chunk * d..][..chunk.len()]);
            widest(
                #[inline(always)]
                || {
                    for (k, row) in chunk.chunks_exact_mut(d).enumerate() {
                        if let Some(r) = residual {
                            for (v, &r) in row.iter_mut().zip(&r[k * d..(k + 1) * d]) {
                                *v += r;
                            }
                        }
                        normalize_row(row, weight, bias, eps);
                    }
                },
            )
        },
    );
}

/// One row of a LayerNorm, in place: the mean, then the variance of the centred values,
/// each summed in vectorised partial sums ([`lane_sum`]), then the affine map.
#[inline(always)]
fn normalize_row(row: &mut [f32], weight: &[f32], bias: &[f32], eps: f32) {
    let d = row.len() as f32;
    let mean = lane_sum(row, |x| x) / d;
    for v in row.iter_mut() {
        *v -= mean;
    }
    let inv = 1.0 / (lane_sum(row, |x| x * x) / d + eps).sqrt();
    for ((v, &g), &b) in row.iter_mut().zip(weight).zip(bias) {
        *v = *v * inv * g + b;
    }
}

/// `values += bias` on every row of `bias.len()` values, in place.
pub fn add_row_bias(values: &mut [f32], bias: &[f32]) {
    let d = bias.len();
    assert!(d > 0 && values.len().is_multiple_of(d), "bias shape");
    let rows_per_chunk = (1usize << 14).div_ceil(d);
    for_each_chunk(
        values,
        rows_per_chunk * d,
        values.len() >= 1 << 16,
        |_, chunk| {
            for row in chunk.chunks_exact_mut(d) {
                row.iter_mut().zip(bias).for_each(|(v, &b)| *v += b);
            }
        },
    );
}

/// `Σ f(v)` over `values`, summed in `SOFTMAX_LANES` interleaved partial sums so that it
/// vectorises (a single running sum is a chain of dependent scalar adds).
#[inline(always)]
fn lane_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    const L: usize = SOFTMAX_LANES;
    let mut sums = [0.0f32; L];
    let mut chunks = values.chunks_exact(L);
    for c in &mut chunks {
        for i in 0..L {
            sums[i] += f(c[i]);
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|&x| f(x)).sum();
    sums.iter().sum::<f32>() + tail
}

/// Shape of [`upscale_masks`]: an `h` x `w` grid of `c`-channel pixels, upscaled twice by 2
/// (to `c1`, then `c2` channels), then `masks` products with the hypernetwork outputs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Upscale {
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub c1: usize,
    pub c2: usize,
    pub masks: usize,
    /// The LayerNorm2d's eps.
    pub eps: f32,
}

/// The weights of [`upscale_masks`], on the host.
pub struct UpscaleWeights<'a> {
    /// First ConvTranspose 2x2/2 per pixel: `[c, 4·c1]`, columns (di, dj, channel), and bias.
    pub w0: &'a [f32],
    pub b0: &'a [f32],
    /// LayerNorm2d weight and bias `[c1]`.
    pub ln_w: &'a [f32],
    pub ln_b: &'a [f32],
    /// Second ConvTranspose 2x2/2 per pixel: `[c1, 4·c2]`, columns (ei, ej, channel), and bias.
    pub w3: &'a [f32],
    pub b3: &'a [f32],
}

/// SAM's mask decoder output on host memory, for one image: `output_upscaling` (ConvTranspose,
/// LayerNorm2d, GELU, ConvTranspose, GELU) and the product with the hypernetwork outputs,
/// one row of the grid at a time, so that the upscaled embedding (`[c2, 4h, 4w]`, 8 MiB) is
/// never made: `src` `[h·w, c]` (pixel (i, j), channels last), `hyper` `[masks, c2]` →
/// `[masks, 4h, 4w]`, mask `m` at (4i + 2di + ei, 4j + 2dj + ej) being
/// `hyper[m] · GELU(GELU(LN(src[i, j]·w0 + b0)[di, dj])·w3 + b3)[ei, ej]`.
pub fn upscale_masks(src: &[f32], hyper: &[f32], wt: &UpscaleWeights, u: Upscale) -> Vec<f32> {
    let Upscale {
        h,
        w,
        c,
        c1,
        c2,
        masks,
        eps,
    } = u;
    assert_eq!(src.len(), h * w * c, "upscale input shape");
    assert_eq!(hyper.len(), masks * c2, "hypernetwork output shape");
    assert_eq!(wt.w0.len(), c * 4 * c1, "first upscaling weight shape");
    assert_eq!(wt.w3.len(), c1 * 4 * c2, "second upscaling weight shape");
    assert!(
        wt.b0.len() == 4 * c1 && wt.b3.len() == 4 * c2,
        "upscaling bias shapes"
    );
    assert!(
        wt.ln_w.len() == c1 && wt.ln_b.len() == c1,
        "LayerNorm2d shapes"
    );
    let (w0, w3) = (Rhs::new(wt.w0, c, 4 * c1), Rhs::new(wt.w3, c1, 4 * c2));
    // The mask products as the official `hyper_in @ upscaled`: a matrix product by the
    // hypernetwork outputs, transposed to [c2, masks].
    let hyper_t: Vec<f32> = (0..c2 * masks)
        .map(|i| hyper[(i % masks) * c2 + i / masks])
        .collect();
    let hyper_t = Rhs::new(&hyper_t, c2, masks);
    // The two upscaled rows and the products are scratch buffers reused row after row (one
    // set per thread): the products overwrite them whole.
    let scratch = || {
        (
            vec![0.0f32; w * 4 * c1],
            vec![0.0f32; 4 * w * 4 * c2],
            vec![0.0f32; 16 * w * masks],
        )
    };
    type Scratch = (Vec<f32>, Vec<f32>, Vec<f32>);
    // One grid row i → output rows 4i..4i+4 of every mask: [masks, 4, 4w].
    let row = |(y1, y2, products): &mut Scratch, i: usize| -> Vec<f32> {
        // SAFETY: the operands are these buffers with the given row-major shapes.
        unsafe {
            matmul_by(
                w,
                (y1.as_mut_ptr(), 4 * c1),
                (src.as_ptr().add(i * w * c), c),
                &w0,
            );
        }
        // Rows (j, di, dj) of c1 channels: bias, LayerNorm, GELU.
        widest(
            #[inline(always)]
            || {
                for (k, v) in y1.chunks_exact_mut(c1).enumerate() {
                    let b = &wt.b0[(k % 4) * c1..(k % 4 + 1) * c1];
                    for (x, &bv) in v.iter_mut().zip(b) {
                        *x += bv;
                    }
                    normalize_row(v, wt.ln_w, wt.ln_b, eps);
                    gelu_values(v);
                }
            },
        );
        unsafe { matmul_by(4 * w, (y2.as_mut_ptr(), 4 * c2), (y1.as_ptr(), c1), &w3) };
        // Rows (j, di, dj, ei, ej) of c2 channels: bias, GELU, then the mask products.
        widest(
            #[inline(always)]
            || {
                for (k, v) in y2.chunks_exact_mut(c2).enumerate() {
                    let b = &wt.b3[(k % 4) * c2..(k % 4 + 1) * c2];
                    for (x, &bv) in v.iter_mut().zip(b) {
                        *x += bv;
                    }
                    gelu_values(v);
                }
            },
        );
        unsafe {
            matmul_by(
                16 * w,
                (products.as_mut_ptr(), masks),
                (y2.as_ptr(), c2),
                &hyper_t,
            )
        };
        let mut out = vec![0.0f32; masks * 4 * 4 * w];
        for (k, p) in products.chunks_exact(masks).enumerate() {
            let (j, di, dj, ei, ej) = (k / 16, k / 8 % 2, k / 4 % 2, k / 2 % 2, k % 2);
            let (r, col) = (2 * di + ei, 4 * j + 2 * dj + ej);
            for (m, &v) in p.iter().enumerate() {
                out[(m * 4 + r) * 4 * w + col] = v;
            }
        }
        out
    };
    #[cfg(any(not(target_family = "wasm"), feature = "threads"))]
    let rows: Vec<Vec<f32>> = (0..h).into_par_iter().map_init(scratch, row).collect();
    #[cfg(all(target_family = "wasm", not(feature = "threads")))]
    let rows: Vec<Vec<f32>> = {
        let mut buffers = scratch();
        (0..h).map(|i| row(&mut buffers, i)).collect()
    };
    let mut masks_out = vec![0.0f32; masks * 16 * h * w];
    for (i, block) in rows.iter().enumerate() {
        for m in 0..masks {
            let dst = (m * 4 * h + 4 * i) * 4 * w;
            masks_out[dst..dst + 16 * w].copy_from_slice(&block[m * 16 * w..(m + 1) * 16 * w]);
        }
    }
    masks_out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_known_values() {
        for (x, e) in [
            (0.0f32, 0.0f32),
            (0.5, 0.520_499_9),
            (1.0, 0.842_700_8),
            (2.0, 0.995_322_3),
            (-3.0, -0.999_977_9),
            (10.0, 1.0),
        ] {
            assert!((erf_f32(x) - e).abs() < 2e-7, "erf({x}) = {}", erf_f32(x));
        }
    }

    /// The direct definition: every tap, padding read as zero.
    fn naive(x: &[f32], w: &[f32], b: &[f32], d: Depthwise) -> Vec<f32> {
        let (oh, ow) = d.out_hw();
        let (c, k, h, wd) = (d.channels, d.kernel, d.height, d.width);
        let planes = x.len() / (h * wd);
        let mut out = Vec::new();
        for bc in 0..planes {
            let ch = bc % c;
            for i in 0..oh {
                for j in 0..ow {
                    let mut acc = b[ch] as f64;
                    for kh in 0..k {
                        for kw in 0..k {
                            let (y, xx) =
                                ((i * d.stride + kh) as isize, (j * d.stride + kw) as isize);
                            let (y, xx) = (y - d.padding as isize, xx - d.padding as isize);
                            if y >= 0 && xx >= 0 && (y as usize) < h && (xx as usize) < wd {
                                let v = x[bc * h * wd + y as usize * wd + xx as usize];
                                acc += (w[ch * k * k + kh * k + kw] * v) as f64;
                            }
                        }
                    }
                    out.push(acc as f32);
                }
            }
        }
        out
    }

    /// The channels-last kernel gives exactly what the NCHW one gives on the transposed values.
    #[test]
    fn depthwise_channels_last_matches_nchw() {
        let val = |i: usize| ((i * 7919 % 1000) as f32 / 500.0) - 1.0;
        for (h, w, c, k, stride, padding) in
            [(7, 9, 5, 3, 1, 1), (8, 8, 6, 3, 2, 1), (5, 6, 3, 5, 1, 2)]
        {
            let d = Depthwise {
                channels: c,
                height: h,
                width: w,
                kernel: k,
                stride,
                padding,
            };
            let nchw: Vec<f32> = (0..2 * c * h * w).map(val).collect();
            let nhwc: Vec<f32> = (0..2 * h * w * c)
                .map(|i| {
                    let (b, y, x, ch) = (i / (h * w * c), i / (w * c) % h, i / c % w, i % c);
                    nchw[((b * c + ch) * h + y) * w + x]
                })
                .collect();
            let weight: Vec<f32> = (0..c * k * k).map(|i| val(i + 3)).collect();
            let bias: Vec<f32> = (0..c).map(|i| val(i + 11)).collect();
            let want = depthwise_conv2d(&nchw, &weight, &bias, d, false);
            let got = depthwise_conv2d_channels_last(&nhwc, &weight, &bias, d);
            let (oh, ow) = d.out_hw();
            for (i, &g) in got.iter().enumerate() {
                let (b, y, x, ch) = (i / (oh * ow * c), i / (ow * c) % oh, i / c % ow, i % c);
                assert_eq!(g, want[((b * c + ch) * oh + y) * ow + x], "{d:?} at {i}");
            }
        }
    }

    #[test]
    fn depthwise_matches_the_definition() {
        let val = |i: usize| ((i * 7919 % 1000) as f32 / 500.0) - 1.0;
        for (h, wd, k, stride, padding) in [
            (9, 11, 3, 1, 1),
            (9, 11, 3, 2, 1),
            (8, 8, 3, 2, 1),
            (5, 40, 5, 1, 2),
            (4, 3, 3, 1, 0),
            (6, 70, 3, 2, 1),
            (3, 50, 3, 1, 1),
            (3, 37, 3, 1, 0),
            (4, 100, 3, 1, 1),
            (4, 131, 3, 2, 1),
            (1, 1, 3, 1, 1),
        ] {
            let d = Depthwise {
                channels: 3,
                height: h,
                width: wd,
                kernel: k,
                stride,
                padding,
            };
            let x: Vec<f32> = (0..2 * 3 * h * wd).map(val).collect();
            let w: Vec<f32> = (0..3 * k * k).map(|i| val(i + 13)).collect();
            let b = [0.25, -0.5, 0.125];
            let want = naive(&x, &w, &b, d);
            let got = depthwise_conv2d(&x, &w, &b, d, false);
            assert_eq!(got.len(), want.len(), "{d:?}");
            for (g, e) in got.iter().zip(&want) {
                assert!((g - e).abs() < 1e-5, "{d:?}: {g} vs {e}");
            }
            let mut want_gelu = want.clone();
            gelu_in_place(&mut want_gelu);
            let got_gelu = depthwise_conv2d(&x, &w, &b, d, true);
            for (g, e) in got_gelu.iter().zip(&want_gelu) {
                assert!((g - e).abs() < 1e-5, "{d:?} with GELU: {g} vs {e}");
            }
        }
    }

    #[test]
    fn exp_is_within_two_ulp() {
        let mut worst = 0.0f64;
        for i in 0..=200_000 {
            let x = -87.0 + i as f32 * (175.0 / 200_000.0);
            let want = (x as f64).exp();
            let rel = ((exp_f32(x) as f64 - want) / want).abs();
            worst = worst.max(rel);
        }
        assert!(worst < 2.5e-7, "max relative error {worst}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(-1000.0) < 1e-37 && exp_f32(f32::NEG_INFINITY) < 1e-37);
    }

    #[test]
    fn window_attention_matches_the_definition() {
        let (windows, nh, kd, d, n) = (3, 2, 4, 5, 7);
        let row = nh * (2 * kd + d);
        let val = |i: usize| ((i * 7919 % 1000) as f32 / 250.0) - 2.0;
        let qkv: Vec<f32> = (0..windows * n * row).map(val).collect();
        let bias: Vec<f32> = (0..nh * n * n).map(|i| val(i + 3) / 2.0).collect();
        let a = WindowAttention {
            heads: nh,
            key_dim: kd,
            val_dim: d,
            tokens: n,
            scale: 0.5,
        };
        let got = window_attention(&qkv, &bias, a);
        assert_eq!(got.len(), windows * n * nh * d);
        for w in 0..windows {
            for h in 0..nh {
                let at = |t: usize, c: usize| qkv[(w * n + t) * row + h * (2 * kd + d) + c] as f64;
                for i in 0..n {
                    let logits: Vec<f64> = (0..n)
                        .map(|j| {
                            let dot: f64 = (0..kd).map(|c| at(i, c) * at(j, kd + c)).sum();
                            dot * 0.5 + bias[(h * n + i) * n + j] as f64
                        })
                        .collect();
                    let max = logits.iter().cloned().fold(f64::MIN, f64::max);
                    let e: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
                    let sum: f64 = e.iter().sum();
                    for c in 0..d {
                        let want: f64 = (0..n).map(|j| e[j] / sum * at(j, 2 * kd + c)).sum();
                        let g = got[(w * n + i) * nh * d + h * d + c] as f64;
                        assert!(
                            (g - want).abs() < 1e-5,
                            "window {w} head {h} token {i}: {g} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn layer_norm_rows_match_the_definition() {
        for d in [1usize, 7, 16, 64, 256] {
            let rows = 5;
            let x: Vec<f32> = (0..rows * d)
                .map(|i| ((i * 7919 % 1000) as f32 / 100.0) - 3.0)
                .collect();
            let r: Vec<f32> = (0..rows * d).map(|i| (i % 13) as f32 * 0.25).collect();
            let w: Vec<f32> = (0..d).map(|i| 0.5 + i as f32 * 0.01).collect();
            let b: Vec<f32> = (0..d).map(|i| i as f32 * -0.02).collect();
            let eps = 1e-5f32;
            let mut got = x.clone();
            layer_norm_rows(&mut got, Some(&r), &w, &b, eps);
            let mut biased = x.clone();
            add_row_bias(&mut biased, &b);
            for row in 0..rows {
                let v: Vec<f64> = (0..d)
                    .map(|j| x[row * d + j] as f64 + r[row * d + j] as f64)
                    .collect();
                let mean = v.iter().sum::<f64>() / d as f64;
                let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / d as f64;
                for j in 0..d {
                    let want =
                        (v[j] - mean) / (var + eps as f64).sqrt() * w[j] as f64 + b[j] as f64;
                    let g = got[row * d + j] as f64;
                    assert!(
                        (g - want).abs() < 1e-4,
                        "d {d} row {row} col {j}: {g} vs {want}"
                    );
                    assert_eq!(biased[row * d + j], x[row * d + j] + b[j]);
                }
            }
        }
    }

    #[test]
    fn softmax_rows_match_the_definition() {
        for n in [1usize, 5, 7, 16, 37, 4096] {
            let rows = 3;
            let mut v: Vec<f32> = (0..rows * n)
                .map(|i| ((i * 7919 % 1000) as f32 / 40.0) - 12.0)
                .collect();
            let want: Vec<f64> = v
                .chunks(n)
                .flat_map(|r| {
                    let m = r.iter().cloned().fold(f32::MIN, f32::max) as f64;
                    let s: f64 = r.iter().map(|&x| (x as f64 - m).exp()).sum();
                    r.iter()
                        .map(move |&x| (x as f64 - m).exp() / s)
                        .collect::<Vec<_>>()
                })
                .collect();
            softmax_rows(&mut v, n);
            for (g, e) in v.iter().zip(&want) {
                assert!((*g as f64 - e).abs() < 1e-6, "n {n}: {g} vs {e}");
            }
        }
    }

    #[test]
    fn upscale_masks_match_the_definition() {
        let u = Upscale {
            h: 3,
            w: 5,
            c: 8,
            c1: 4,
            c2: 6,
            masks: 2,
            eps: 1e-6,
        };
        let val = |i: usize, s: f32| (((i * 7919 + 13) % 1000) as f32 / 500.0 - 1.0) * s;
        let v =
            |n: usize, off: usize, s: f32| (0..n).map(|i| val(i + off, s)).collect::<Vec<f32>>();
        let src = v(u.h * u.w * u.c, 0, 1.0);
        let hyper = v(u.masks * u.c2, 1, 1.0);
        let (w0, b0) = (v(u.c * 4 * u.c1, 2, 0.5), v(4 * u.c1, 3, 0.2));
        let (ln_w, ln_b) = (v(u.c1, 4, 1.0), v(u.c1, 5, 0.3));
        let (w3, b3) = (v(u.c1 * 4 * u.c2, 6, 0.5), v(4 * u.c2, 7, 0.2));
        let wt = UpscaleWeights {
            w0: &w0,
            b0: &b0,
            ln_w: &ln_w,
            ln_b: &ln_b,
            w3: &w3,
            b3: &b3,
        };
        let got = upscale_masks(&src, &hyper, &wt, u);
        let gelu = |x: f64| {
            let mut v = [x as f32];
            gelu_in_place(&mut v);
            v[0] as f64
        };
        let (c, c1, c2) = (u.c, u.c1, u.c2);
        for i in 0..u.h {
            for j in 0..u.w {
                let px = &src[(i * u.w + j) * c..][..c];
                for s1 in 0..4 {
                    let mut y: Vec<f64> = (0..c1)
                        .map(|ch| {
                            let col = s1 * c1 + ch;
                            b0[col] as f64
                                + (0..c)
                                    .map(|k| px[k] as f64 * w0[k * 4 * c1 + col] as f64)
                                    .sum::<f64>()
                        })
                        .collect();
                    let mean = y.iter().sum::<f64>() / c1 as f64;
                    let var = y.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / c1 as f64;
                    for (ch, x) in y.iter_mut().enumerate() {
                        *x = gelu(
                            (*x - mean) / (var + 1e-6).sqrt() * ln_w[ch] as f64 + ln_b[ch] as f64,
                        );
                    }
                    for s2 in 0..4 {
                        let z: Vec<f64> = (0..c2)
                            .map(|ch| {
                                let col = s2 * c2 + ch;
                                gelu(
                                    b3[col] as f64
                                        + (0..c1)
                                            .map(|k| y[k] * w3[k * 4 * c2 + col] as f64)
                                            .sum::<f64>(),
                                )
                            })
                            .collect();
                        let (di, dj, ei, ej) = (s1 / 2, s1 % 2, s2 / 2, s2 % 2);
                        let (r, col) = (4 * i + 2 * di + ei, 4 * j + 2 * dj + ej);
                        for m in 0..u.masks {
                            let want: f64 =
                                (0..c2).map(|ch| z[ch] * hyper[m * c2 + ch] as f64).sum();
                            let g = got[(m * 4 * u.h + r) * 4 * u.w + col] as f64;
                            assert!(
                                (g - want).abs() < 1e-4,
                                "mask {m} at ({r}, {col}): {g} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}
