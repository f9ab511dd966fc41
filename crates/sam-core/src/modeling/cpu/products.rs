//! The layers that are matrix products, on host memory through [`super::gemm`]: `nn.Linear`,
//! `nn.Conv2d` with one group (1x1 straight on the NCHW planes, larger kernels through
//! im2col a band of output rows at a time) and batched `matmul`.

use std::mem::MaybeUninit;

use super::gemm::{Bias, Epilogue, matmul, matmul_parallel, matmul_parallel_with, written_by};
use super::{conv_out_hw, for_each_chunk};

/// Values of an im2col band (4 MiB): the band is as many output rows as fit.
const BAND_VALUES: usize = 1 << 20;

/// `nn.Linear` on row-major values: `x` `[rows, d_in]` · `w` `[d_in, d_out]` (+ `bias`
/// `[d_out]`), then GELU if `gelu` → `[rows, d_out]`. The bias and the GELU are applied as the
/// product stores its values.
pub fn linear(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    (d_in, d_out): (usize, usize),
    gelu: bool,
) -> Vec<f32> {
    assert!(
        d_in > 0 && x.len().is_multiple_of(d_in) && w.len() == d_in * d_out,
        "linear shapes"
    );
    if let Some(bias) = bias {
        assert_eq!(bias.len(), d_out, "linear bias shape");
    }
    let rows = x.len() / d_in;
    let epilogue = Epilogue {
        bias: bias.map(Bias::Columns),
        gelu,
    };
    // SAFETY: the product writes all rows x d_out values; the buffers hold the row-major
    // shapes given.
    unsafe {
        written_by(rows * d_out, |out| {
            matmul_parallel_with(
                [rows, d_out, d_in],
                (out, d_out),
                (x.as_ptr(), d_in),
                (w.as_ptr(), d_out, 1),
                1.0,
                epilogue,
            )
        })
    }
}

/// Shape of a convolution with one group: `[batch, c_in, height, width]` by a `[c_out, c_in,
/// kernel, kernel]` weight, square stride, the same zero padding on every side.
#[derive(Clone, Copy, Debug)]
pub struct Conv {
    pub batch: usize,
    pub c_in: usize,
    pub height: usize,
    pub width: usize,
    pub c_out: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl Conv {
    /// The output's `(height, width)`.
    pub fn out_hw(&self) -> (usize, usize) {
        conv_out_hw(
            (self.height, self.width),
            self.kernel,
            self.stride,
            self.padding,
        )
    }
}

/// `nn.Conv2d` (one group) with its bias and, if `gelu`, a GELU: NCHW `x` → NCHW
/// `[batch, c_out, h', w']`. Per image the output planes are `weight [c_out, c_in·k·k]` times
/// the im2col matrix `[c_in·k·k, h'·w']`; a 1x1 convolution with stride 1 and no padding
/// multiplies the input planes themselves. The bias (one per output channel: a row of the
/// product) and the GELU are applied as the product stores its values.
pub fn conv2d(x: &[f32], weight: &[f32], bias: Option<&[f32]>, c: Conv, gelu: bool) -> Vec<f32> {
    let (k, s, p) = (c.kernel, c.stride, c.padding);
    assert!(
        k > 0 && s > 0 && c.height + 2 * p >= k && c.width + 2 * p >= k,
        "convolution shape"
    );
    let plane = c.height * c.width;
    assert_eq!(x.len(), c.batch * c.c_in * plane, "convolution input shape");
    let depth = c.c_in * k * k;
    assert_eq!(weight.len(), c.c_out * depth, "convolution weight shape");
    if let Some(bias) = bias {
        assert_eq!(bias.len(), c.c_out, "convolution bias shape");
    }
    let epilogue = Epilogue {
        bias: bias.map(Bias::Rows),
        gelu,
    };
    let (oh, ow) = c.out_hw();
    let out_plane = oh * ow;
    let pointwise = k == 1 && s == 1 && p == 0;
    let band_rows = (BAND_VALUES / (depth * ow).max(1)).clamp(1, oh);
    let mut cols = vec![0.0f32; if pointwise { 0 } else { depth * band_rows * ow }];
    // Image by image, the products write every output value (all c_out rows of every band).
    let images = |out: *mut f32| {
        for (i, img) in x.chunks_exact(c.c_in * plane).enumerate() {
            // SAFETY: image i's c_out output planes.
            let out = unsafe { out.add(i * c.c_out * out_plane) };
            if pointwise {
                // SAFETY: weight [c_out, c_in], the image [c_in, plane], out [c_out, plane].
                unsafe {
                    matmul_parallel_with(
                        [c.c_out, plane, c.c_in],
                        (out, plane),
                        (weight.as_ptr(), c.c_in),
                        (img.as_ptr(), plane, 1),
                        1.0,
                        epilogue,
                    )
                };
                continue;
            }
            for y0 in (0..oh).step_by(band_rows) {
                let px = band_rows.min(oh - y0) * ow;
                let band = &mut cols[..depth * px];
                // Row (ci, ky, kx) of the band: input value (y·s + ky - p, x·s + kx - p) of
                // channel ci for every output pixel (y, x) of the band, zero in the padding.
                for_each_chunk(band, px, depth * px >= 1 << 16, |r, row| {
                    let (ci, ky, kx) = (r / (k * k), r / k % k, r % k);
                    let src = &img[ci * plane..(ci + 1) * plane];
                    // The output columns whose input column lies inside the image: `lo..hi`.
                    let lo = p.saturating_sub(kx).div_ceil(s).min(ow);
                    let hi = (c.width + p).saturating_sub(kx).div_ceil(s).clamp(lo, ow);
                    for (dy, row) in row.chunks_exact_mut(ow).enumerate() {
                        let iy = ((y0 + dy) * s + ky).wrapping_sub(p);
                        if iy >= c.height {
                            row.fill(0.0);
                            continue;
                        }
                        let (left, rest) = row.split_at_mut(lo);
                        let (inside, right) = rest.split_at_mut(hi - lo);
                        left.fill(0.0);
                        right.fill(0.0);
                        if inside.is_empty() {
                            continue;
                        }
                        // Input column of output column `lo`.
                        let first = iy * c.width + lo * s + kx - p;
                        if s == 1 {
                            inside.copy_from_slice(&src[first..first + inside.len()]);
                        } else {
                            let src = src[first..].iter().step_by(s);
                            inside.iter_mut().zip(src).for_each(|(v, &x)| *v = x);
                        }
                    }
                });
                // SAFETY: weight [c_out, depth], the band [depth, px], and the band's columns
                // y0·ow.. of the output planes (row stride out_plane).
                unsafe {
                    matmul_parallel_with(
                        [c.c_out, px, depth],
                        (out.add(y0 * ow), out_plane),
                        (weight.as_ptr(), depth),
                        (band.as_ptr(), px, 1),
                        1.0,
                        epilogue,
                    )
                };
            }
        }
    };
    // SAFETY: `images` writes all batch x c_out x out_plane values.
    unsafe { written_by(c.batch * c.c_out * out_plane, images) }
}

/// `scale · a [..., m, k] · b [..., k, n]` on row-major values (with `b` given as
/// `[..., n, k]` and read transposed when `b_transposed`), the leading (batch) dimensions
/// broadcast as `torch.matmul` does (each pair equal, or one of them 1; both the same count)
/// → the output's dimensions and values.
pub fn batched_matmul(
    (a, a_dims): (&[f32], &[usize]),
    (b, b_dims, b_transposed): (&[f32], &[usize], bool),
    scale: f32,
) -> (Vec<usize>, Vec<f32>) {
    let d = a_dims.len();
    assert!(d >= 2 && b_dims.len() == d, "matmul ranks");
    let (m, k) = (a_dims[d - 2], a_dims[d - 1]);
    let (b_k, n) = if b_transposed {
        (b_dims[d - 1], b_dims[d - 2])
    } else {
        (b_dims[d - 2], b_dims[d - 1])
    };
    assert_eq!(b_k, k, "matmul inner dimensions");
    assert_eq!(
        a.len(),
        a_dims.iter().product::<usize>(),
        "matmul lhs values"
    );
    assert_eq!(
        b.len(),
        b_dims.iter().product::<usize>(),
        "matmul rhs values"
    );
    let batch: Vec<usize> = a_dims[..d - 2]
        .iter()
        .zip(&b_dims[..d - 2])
        .map(|(&x, &y)| {
            assert!(x == y || x == 1 || y == 1, "matmul batch dimensions");
            if x == 1 { y } else { x }
        })
        .collect();
    // Each operand's matrix index for an output batch index (0 stride where broadcast).
    let index = |dims_of: &[usize], mut i: usize| -> usize {
        let (mut at, mut stride) = (0, 1);
        for (&out, &own) in batch.iter().zip(dims_of).rev() {
            if own != 1 {
                at += (i % out) * stride;
            }
            i /= out;
            stride *= own;
        }
        at
    };
    let batches: usize = batch.iter().product();
    let dims: Vec<usize> = batch.iter().copied().chain([m, n]).collect();
    // Every value is written by its product: no zeroing first.
    let len = batches * m * n;
    let mut out = Vec::with_capacity(len);
    if len == 0 {
        return (dims, out);
    }
    let product = |i: usize, out: &mut [MaybeUninit<f32>], parallel: bool| {
        let a = &a[index(&a_dims[..d - 2], i) * m * k..][..m * k];
        let b = &b[index(&b_dims[..d - 2], i) * k * n..][..k * n];
        let (rs, cs) = if b_transposed { (1, k) } else { (n, 1) };
        let operands = (
            (out.as_mut_ptr().cast(), n),
            (a.as_ptr(), k),
            (b.as_ptr(), rs, cs),
        );
        // SAFETY: the slices hold the row-major matrices given.
        unsafe {
            if parallel {
                matmul_parallel([m, n, k], operands.0, operands.1, operands.2, scale)
            } else {
                matmul([m, n, k], operands.0, operands.1, operands.2, scale)
            }
        }
    };
    let values = &mut out.spare_capacity_mut()[..len];
    if batches == 1 {
        product(0, values, true);
    } else {
        for_each_chunk(values, m * n, true, |i, out| product(i, out, false));
    }
    // SAFETY: the products wrote all `len` values.
    unsafe { out.set_len(len) };
    (dims, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i + seed) * 7919 % 1013) as f32) / 1013.0 - 0.5)
            .collect()
    }

    /// Convolutions of several shapes (pointwise, strided, padded, the ViT patch embedding's
    /// non-overlapping kernel, bands of output rows) against the definition in f64.
    #[test]
    fn conv2d_matches_definition() {
        let cases = [
            (2, 3, 9, 7, 5, 1, 1, 0),
            (1, 4, 10, 11, 6, 3, 1, 1),
            (1, 3, 17, 16, 8, 3, 2, 1),
            (1, 3, 32, 32, 7, 16, 16, 0),
            (1, 64, 70, 70, 3, 3, 1, 1),
            (1, 2, 12, 13, 3, 3, 2, 1),
            (1, 2, 9, 8, 3, 5, 3, 2),
            (1, 2, 4, 3, 2, 5, 1, 2),
        ];
        for (batch, c_in, height, width, c_out, kernel, stride, padding) in cases {
            let c = Conv {
                batch,
                c_in,
                height,
                width,
                c_out,
                kernel,
                stride,
                padding,
            };
            let x = values(batch * c_in * height * width, 1);
            let w = values(c_out * c_in * kernel * kernel, 2);
            let bias = values(c_out, 3);
            let got = conv2d(&x, &w, Some(&bias), c, false);
            let (oh, ow) = c.out_hw();
            assert_eq!(got.len(), batch * c_out * oh * ow);
            for (i, &g) in got.iter().enumerate() {
                let (bi, co, y, xo) = (
                    i / (c_out * oh * ow),
                    i / (oh * ow) % c_out,
                    i / ow % oh,
                    i % ow,
                );
                let mut want = bias[co] as f64;
                for ci in 0..c_in {
                    for ky in 0..kernel {
                        for kx in 0..kernel {
                            let (iy, ix) = (y * stride + ky, xo * stride + kx);
                            if iy < padding || ix < padding {
                                continue;
                            }
                            let (iy, ix) = (iy - padding, ix - padding);
                            if iy >= height || ix >= width {
                                continue;
                            }
                            want += x[((bi * c_in + ci) * height + iy) * width + ix] as f64
                                * w[((co * c_in + ci) * kernel + ky) * kernel + kx] as f64;
                        }
                    }
                }
                assert!(
                    (g as f64 - want).abs() < 1e-4,
                    "{c:?} at {i}: {g} vs {want}"
                );
            }
        }
    }

    /// Linear with a bias, and batched products with broadcast batch dimensions.
    #[test]
    fn linear_and_batched_matmul_match_definition() {
        let (rows, d_in, d_out) = (37, 19, 23);
        let (x, w, bias) = (
            values(rows * d_in, 1),
            values(d_in * d_out, 2),
            values(d_out, 3),
        );
        let got = linear(&x, &w, Some(&bias), (d_in, d_out), false);
        for r in 0..rows {
            for o in 0..d_out {
                let want: f64 = bias[o] as f64
                    + (0..d_in)
                        .map(|i| x[r * d_in + i] as f64 * w[i * d_out + o] as f64)
                        .sum::<f64>();
                assert!((got[r * d_out + o] as f64 - want).abs() < 1e-4);
            }
        }
        // With the GELU fused: the same values as the GELU applied after.
        let mut want = got.clone();
        super::super::gelu_in_place(&mut want);
        let fused = linear(&x, &w, Some(&bias), (d_in, d_out), true);
        assert!(
            fused
                .iter()
                .zip(&want)
                .all(|(f, w)| f.to_bits() == w.to_bits())
        );
        let (a_dims, b_dims) = ([2, 1, 5, 7], [1, 3, 7, 4]);
        let a = values(2 * 5 * 7, 4);
        let b = values(3 * 7 * 4, 5);
        // The same b transposed: [1, 3, 4, 7].
        let bt: Vec<f32> = (0..3 * 4 * 7)
            .map(|i| b[(i / 28 * 7 + i % 7) * 4 + i / 7 % 4])
            .collect();
        for (dims, got) in [
            batched_matmul((&a, &a_dims), (&b, &b_dims, false), 0.5),
            batched_matmul((&a, &a_dims), (&bt, &[1, 3, 4, 7], true), 0.5),
        ] {
            assert_eq!(dims, [2, 3, 5, 4]);
            for (i, &g) in got.iter().enumerate() {
                let (p, q, r, c) = (i / 60, i / 20 % 3, i / 4 % 5, i % 4);
                let want: f64 = (0..7)
                    .map(|j| a[(p * 5 + r) * 7 + j] as f64 * b[(q * 7 + j) * 4 + c] as f64)
                    .sum::<f64>()
                    * 0.5;
                assert!((g as f64 - want).abs() < 1e-4, "at {i}: {g} vs {want}");
            }
        }
    }
}
