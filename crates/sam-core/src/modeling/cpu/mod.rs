//! Kernels on host memory for the CPU backend (`Device::flex()`), where burn's own are slow
//! for our shapes: plain f32 slices in and out, no tensors. Their only caller is the ops layer
//! ([`super::ops`]), which picks them for f32 tensors on that device (unless switched off,
//! `ops::set_host_kernels`); every other device keeps burn's operations. Natively they run
//! on all cores (rayon, [`for_each_chunk`]) with the widest x86 vectors the processor has,
//! chosen at run time ([`widest`]); in wasm they run with the module's SIMD on one thread, or
//! on rayon's pool of Web Workers in the threaded module (feature `threads`).
//!
//! One file per concept: `elementwise` (GELU, exp, row bias), `softmax`, `norm` (LayerNorm
//! rows), `depthwise` (convolutions), `attention` (the image encoders' attention core),
//! `upscale` (the mask decoder's output), `resize` (mask resampling), `gemm` and `products`
//! (matrix products and the convolutions made of them), `aligned` (the page's allocator,
//! [`CacheAligned`]). This file holds what they share:
//! [`widest`], [`for_each_chunk`], [`for_each_index`] and [`lane_sum`].

#[cfg(any(not(target_family = "wasm"), feature = "threads"))]
use rayon::prelude::*;

mod aligned;
mod attention;
mod depthwise;
mod elementwise;
mod gemm;
mod norm;
mod products;
mod resize;
mod softmax;
mod upscale;

pub use aligned::CacheAligned;
pub use attention::*;
pub use depthwise::*;
pub use elementwise::*;
pub use norm::*;
pub use softmax::*;
pub use upscale::*;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use core::arch::wasm32::v128;
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

/// `a·b + c`, lane by lane: a multiply, then an add (simd128 has no fused multiply-add).
#[cfg(all(
    target_arch = "wasm32",
    target_feature = "simd128",
    not(feature = "relaxed-simd")
))]
#[inline(always)]
fn madd(a: v128, b: v128, c: v128) -> v128 {
    use core::arch::wasm32::*;
    f32x4_add(c, f32x4_mul(a, b))
}

/// `a·b + c`, lane by lane, with relaxed SIMD: fused (one rounding) where the processor
/// has FMA, else a multiply then an add. With FMA the matrix kernel issues one instruction a
/// multiply-add instead of two: 4096x256x256 ran at 26.4 GMAC/s instead of 22.7 on an Intel Xeon
/// (BENCHMARKS.md); a Zen 4, whose two add and two multiply pipes match its two FMA pipes,
/// did not gain. The softmax's exponential (`softmax::exp_x4`) uses it too.
#[cfg(all(
    target_arch = "wasm32",
    target_feature = "simd128",
    feature = "relaxed-simd"
))]
#[target_feature(enable = "relaxed-simd")]
fn madd(a: v128, b: v128, c: v128) -> v128 {
    core::arch::wasm32::f32x4_relaxed_madd(a, b, c)
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

/// Runs `f(scratch, i)` for every `i` in `0..count`: on all cores when `parallel` (natively,
/// and in the threaded WebAssembly module), each thread's `scratch` made by `init`; in order
/// otherwise and in the single-threaded WebAssembly module.
fn for_each_index<S>(
    count: usize,
    parallel: bool,
    init: impl Fn() -> S + Sync + Send,
    f: impl Fn(&mut S, usize) + Sync + Send,
) {
    #[cfg(any(not(target_family = "wasm"), feature = "threads"))]
    if parallel {
        (0..count).into_par_iter().for_each_init(init, f);
        return;
    }
    let _ = parallel;
    let mut scratch = init();
    (0..count).for_each(|i| f(&mut scratch, i));
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

    /// The official composition in f64: pad the grid with the padding row, partition into
    /// windows, per head `softmax(q·kᵀ·scale + bias)·v`, unpartition and crop. `bias(head, i,
    /// j, q)` is the term added to the logit of the window's query `i` and key `j` (`q` is the
    /// query, unscaled).
    fn window_attention_definition(
        qkv: &[f32],
        pad: &[f32],
        a: WindowAttention,
        bias: impl Fn(usize, usize, usize, &[f64]) -> f64,
    ) -> Vec<f64> {
        let (nh, kd, d, ws) = (a.heads, a.key_dim, a.val_dim, a.window);
        let (hh, ww, row, n) = (a.height, a.width, a.row(), ws * ws);
        let mut out = vec![f64::NAN; a.batch * hh * ww * nh * d];
        for img in 0..a.batch {
            for (wy, wx) in
                (0..hh.div_ceil(ws)).flat_map(|y| (0..ww.div_ceil(ws)).map(move |x| (y, x)))
            {
                // The padded window's token t: its grid position if inside.
                let pos = |t: usize| {
                    let (y, x) = (wy * ws + t / ws, wx * ws + t % ws);
                    (y < hh && x < ww).then_some((img * hh + y) * ww + x)
                };
                let at = |t: usize, c: usize| match pos(t) {
                    Some(p) => qkv[p * row + c] as f64,
                    None => pad[c] as f64,
                };
                for h in 0..nh {
                    let (qo, ko, vo) = a.offsets(h);
                    for i in 0..n {
                        let Some(p) = pos(i) else { continue };
                        let q: Vec<f64> = (0..kd).map(|c| at(i, qo + c)).collect();
                        let logits: Vec<f64> = (0..n)
                            .map(|j| {
                                let dot: f64 = (0..kd).map(|c| q[c] * at(j, ko + c)).sum();
                                dot * a.scale as f64 + bias(h, i, j, &q)
                            })
                            .collect();
                        let max = logits.iter().cloned().fold(f64::MIN, f64::max);
                        let e: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
                        let sum: f64 = e.iter().sum();
                        for c in 0..d {
                            out[p * nh * d + h * d + c] =
                                (0..n).map(|j| e[j] / sum * at(j, vo + c)).sum();
                        }
                    }
                }
            }
        }
        out
    }

    fn assert_close(got: &[f32], want: &[f64], tol: f64, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!((g as f64 - w).abs() < tol, "{what}: value {i}: {g} vs {w}");
        }
    }

    fn attention_inputs(a: WindowAttention, seed: usize) -> (Vec<f32>, Vec<f32>) {
        let val = |i: usize| (((i + seed) * 7919 % 1000) as f32 / 250.0) - 2.0;
        let qkv = (0..a.batch * a.height * a.width * a.row())
            .map(val)
            .collect();
        let pad = (0..a.row()).map(|i| val(i + 11) / 3.0).collect();
        (qkv, pad)
    }

    /// TinyViT's layout and bias table: two 5x7 grids in windows of 3 (the last row and
    /// column of windows padded), against the official composition.
    #[test]
    fn window_attention_matches_the_definition() {
        let a = WindowAttention {
            heads: 2,
            key_dim: 4,
            val_dim: 5,
            window: 3,
            batch: 2,
            height: 5,
            width: 7,
            scale: 0.5,
            layout: QkvLayout::PerHead,
        };
        let (qkv, pad) = attention_inputs(a, 0);
        let n = 9;
        let table: Vec<f32> = (0..a.heads * n * n)
            .map(|i| ((i * 7919 + 3) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let got = window_attention(&qkv, &pad, AttentionBias::Table(&table), a);
        let want = window_attention_definition(&qkv, &pad, a, |h, i, j, _| {
            table[(h * n + i) * n + j] as f64
        });
        assert_close(&got, &want, 1e-5, "TinyViT window attention");
    }

    /// The ViT's layout and decomposed relative positions: windows of 3 over two 5x7 grids
    /// (padded windows, right and bottom), and global attention over a 24x24 grid (one window;
    /// its 576 queries go in two blocks).
    #[test]
    fn vit_attention_matches_the_definition() {
        for (batch, hh, ww, ws) in [(2, 5, 7, 3), (1, 24, 24, 24)] {
            let a = WindowAttention {
                heads: 2,
                key_dim: 6,
                val_dim: 6,
                window: ws,
                batch,
                height: hh,
                width: ww,
                scale: 0.4,
                layout: QkvLayout::Split,
            };
            let (qkv, pad) = attention_inputs(a, 5);
            let table = |s: usize| -> Vec<f32> {
                (0..ws * ws * a.key_dim)
                    .map(|i| ((i * 104_729 + s) % 997) as f32 / 498.5 - 1.0)
                    .collect()
            };
            if batch == 1 {
                assert!(
                    hh * ww * hh * ww > LOGITS_BLOCK,
                    "more than one block of queries"
                );
            }
            let (th, tw) = (table(1), table(2));
            let got = window_attention(&qkv, &pad, AttentionBias::RelPos { h: &th, w: &tw }, a);
            let kd = a.key_dim;
            let dot = |t: &[f32], r: usize, k: usize, q: &[f64]| -> f64 {
                (0..kd)
                    .map(|c| q[c] * t[(r * ws + k) * kd + c] as f64)
                    .sum()
            };
            let want = window_attention_definition(&qkv, &pad, a, |_, i, j, q| {
                let ((qy, qx), (ky, kx)) = ((i / ws, i % ws), (j / ws, j % ws));
                dot(&th, qy, ky, q) + dot(&tw, qx, kx, q)
            });
            assert_close(&got, &want, 1e-5, &format!("ViT attention, window {ws}"));
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

    /// The softmax of each row of `n` values, in f64.
    fn softmax_definition(v: &[f32], n: usize) -> Vec<f64> {
        v.chunks(n)
            .flat_map(|r| {
                let m = r.iter().cloned().fold(f32::MIN, f32::max) as f64;
                let s: f64 = r.iter().map(|&x| (x as f64 - m).exp()).sum();
                r.iter()
                    .map(move |&x| (x as f64 - m).exp() / s)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Logits spread over 200 (a sharp attention row): the probabilities below 5e-32 are 0,
    /// none is subnormal, and the others are those of the definition.
    #[test]
    fn softmax_rows_have_no_subnormals() {
        for n in [7usize, 4096] {
            let mut v: Vec<f32> = (0..3 * n)
                .map(|i| ((i * 7919 % 1000) as f32 / 5.0) - 100.0)
                .collect();
            let want = softmax_definition(&v, n);
            softmax_rows(&mut v, n);
            assert!(
                want.iter().any(|&e| e < 1e-38),
                "n {n}: some subnormal probabilities"
            );
            for (g, e) in v.iter().zip(&want) {
                assert!(!g.is_subnormal(), "n {n}: {g} is subnormal");
                assert!((*g as f64 - e).abs() < 1e-6, "n {n}: {g} vs {e}");
                assert!(*g != 0.0 || *e < 5e-32, "n {n}: 0 for {e}");
            }
        }
    }

    /// The softmax's exponential pass, written by hand with WebAssembly SIMD there, gives the
    /// scalar `exp_flushed` of each logit less the max: the same values without relaxed SIMD,
    /// within 2e-7 of them (relative) with its fused multiply-adds; zeros at the same places;
    /// NaN stays NaN. Rows of several lengths, so that both the vector loop and its tail run.
    /// The GELU every kernel applies ([`elementwise::gelu_values`]: four lanes with fused
    /// multiply-adds in the relaxed WebAssembly module) gives the scalar formula within a few
    /// ulp, at every length (the last partial group included), and keeps NaN.
    #[test]
    fn gelu_values_match_the_scalar_gelu() {
        for n in [1usize, 3, 4, 5, 9, 16, 37, 1000] {
            let x: Vec<f32> = (0..n)
                .map(|i| (i * 7919 % 1000) as f32 / 50.0 - 10.0)
                .collect();
            let mut g = x.clone();
            elementwise::gelu_values(&mut g);
            for (&g, &x) in g.iter().zip(&x) {
                let want = gelu_f32(x);
                assert!(
                    (g - want).abs() <= 4e-7 * x.abs(),
                    "n {n}: gelu({x}) = {g}, scalar {want}"
                );
            }
        }
        let mut v = [0.5, f32::NAN, -1.0, 0.0, f32::NAN];
        elementwise::gelu_values(&mut v);
        assert!(v[1].is_nan() && v[4].is_nan() && v[3] == 0.0);
    }

    #[test]
    fn exp_row_matches_the_scalar_exp() {
        for n in [1usize, 7, 8, 37, 4096] {
            let row: Vec<f32> = (0..n)
                .map(|i| -((i * 7919 % 1000) as f32) / 9.0 + 3.0)
                .collect();
            let max = row.iter().cloned().fold(f32::MIN, f32::max);
            let mut s = row.clone();
            let inv = softmax::exp_row(&mut s, None);
            let mut sum = 0.0f64;
            for (&g, &x) in s.iter().zip(&row) {
                let want = softmax::exp_flushed(x - max);
                sum += want as f64;
                if cfg!(feature = "relaxed-simd") {
                    assert!((g - want).abs() <= 2e-7 * want, "n {n}: {g} vs {want}");
                } else {
                    assert_eq!(g.to_bits(), want.to_bits(), "n {n}: {g} vs {want}");
                }
            }
            assert!((1.0 / inv as f64 - sum).abs() < 1e-5 * sum, "n {n}: sum");
        }
        let mut s = vec![0.0f32; 16];
        s[3] = f32::NAN;
        softmax::exp_row(&mut s, None);
        assert!(s[3].is_nan());
    }

    #[test]
    fn softmax_rows_match_the_definition() {
        for n in [1usize, 5, 7, 16, 37, 4096] {
            let rows = 3;
            let mut v: Vec<f32> = (0..rows * n)
                .map(|i| ((i * 7919 % 1000) as f32 / 40.0) - 12.0)
                .collect();
            let want = softmax_definition(&v, n);
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
