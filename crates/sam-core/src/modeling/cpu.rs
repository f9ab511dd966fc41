//! Kernels on host memory for the CPU backend (`Device::flex()`), where burn's own are slow
//! for our shapes. The callers in [`super::common`] pick them only on that device; every
//! other device keeps burn's operations. Natively they run on all cores (rayon) with the
//! widest x86 vectors the processor has, chosen at run time ([`widest`]); in wasm they run
//! on one thread with the module's SIMD.

#[cfg(not(target_family = "wasm"))]
use rayon::prelude::*;

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

/// Exact (erf) GELU in place, as `nn.GELU()`, with [`erf_f32`].
pub fn gelu_in_place(values: &mut [f32]) {
    #[cfg(not(target_family = "wasm"))]
    if values.len() >= 1 << 16 {
        values.par_chunks_mut(1 << 14).for_each(gelu_chunk);
        return;
    }
    gelu_chunk(values)
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
        let out = |n: usize| (n + 2 * self.padding - self.kernel) / self.stride + 1;
        (out(self.height), out(self.width))
    }

    /// Output positions `o` (half-open) whose input index `o·stride + k - padding` is inside
    /// `0..n`, for kernel offset `k`.
    fn valid(&self, k: usize, n: usize, out_n: usize) -> (usize, usize) {
        let (s, p) = (self.stride, self.padding);
        let lo = p.saturating_sub(k).div_ceil(s);
        let hi = if n + p > k {
            (n + p - k).div_ceil(s).min(out_n)
        } else {
            0
        };
        (lo.min(hi), hi)
    }
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
        plane > 0 && input.len() % (c * plane) == 0,
        "depthwise input shape"
    );
    assert_eq!(weight.len(), c * k * k, "depthwise weight shape");
    assert_eq!(bias.len(), c, "depthwise bias shape");
    let (oh, ow) = d.out_hw();
    let planes = input.len() / plane;
    let mut out = vec![0.0f32; planes * oh * ow];
    let run = |(bc, out_plane): (usize, &mut [f32])| {
        let ch = bc % c;
        let x = &input[bc * plane..(bc + 1) * plane];
        let w = &weight[ch * k * k..(ch + 1) * k * k];
        widest(
            #[inline(always)]
            || depthwise_plane(x, w, bias[ch], d, out_plane, gelu),
        )
    };
    #[cfg(not(target_family = "wasm"))]
    out.par_chunks_mut(oh * ow).enumerate().for_each(run);
    #[cfg(target_family = "wasm")]
    out.chunks_mut(oh * ow).enumerate().for_each(run);
    out
}

/// One channel of [`depthwise_conv2d`]: `x` `[H, W]`, `w` `[k, k]` → `out` `[H', W']`.
#[inline(always)]
fn depthwise_plane(x: &[f32], w: &[f32], bias: f32, d: Depthwise, out: &mut [f32], gelu: bool) {
    let (k, s, p) = (d.kernel, d.stride, d.padding);
    let (oh, ow) = d.out_hw();
    for (o, row) in out.chunks_exact_mut(ow).enumerate().take(oh) {
        row.fill(bias);
        for kh in 0..k {
            let Some(ih) = (o * s + kh).checked_sub(p).filter(|&i| i < d.height) else {
                continue;
            };
            let x_row = &x[ih * d.width..(ih + 1) * d.width];
            for kw in 0..k {
                let wv = w[kh * k + kw];
                let (lo, hi) = d.valid(kw, d.width, ow);
                if lo >= hi {
                    continue;
                }
                let start = lo * s + kw - p;
                if s == 1 {
                    let src = &x_row[start..start + (hi - lo)];
                    for (y, &xv) in row[lo..hi].iter_mut().zip(src) {
                        *y += wv * xv;
                    }
                } else {
                    for (y, &xv) in row[lo..hi].iter_mut().zip(x_row[start..].iter().step_by(s)) {
                        *y += wv * xv;
                    }
                }
            }
        }
        if gelu {
            gelu_values(row);
        }
    }
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

    #[test]
    fn depthwise_matches_the_definition() {
        let val = |i: usize| ((i * 7919 % 1000) as f32 / 500.0) - 1.0;
        for (h, wd, k, stride, padding) in [
            (9, 11, 3, 1, 1),
            (9, 11, 3, 2, 1),
            (8, 8, 3, 2, 1),
            (5, 40, 5, 1, 2),
            (4, 3, 3, 1, 0),
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
}
