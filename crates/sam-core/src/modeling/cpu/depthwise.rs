//! Depthwise convolutions (one filter per channel), NCHW and channels-last, bias and GELU fused.

use super::*;

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
pub(super) fn conv_out_hw(
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
pub(super) fn depthwise_plane(
    x: &[f32],
    w: &[f32],
    bias: f32,
    d: Depthwise,
    out: &mut [f32],
    gelu: bool,
) {
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
            let all_rows = kh_lo == 0 && kh_hi == k;
            let acc = match (k, s) {
                // MobileSAM's: the taps unrolled.
                (3, 1) if all_rows => interior_block::<3, 1, L>(x, d.width, o - p, w, bias, c - p),
                (3, 2) if all_rows => {
                    interior_block::<3, 2, L>(x, d.width, 2 * o - p, w, bias, 2 * c - p)
                }
                _ => {
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
                    acc
                }
            };
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

/// `L` output columns of one output row of [`depthwise_plane`] where all `K` kernel rows and
/// columns are inside the image, with the kernel size and stride known at compile time: the
/// `K x K` taps unrolled, so the sums stay in registers (with a run-time kernel size they went
/// through memory at every tap: 1.6-1.9 GMAC/s in WebAssembly, 3.6 unrolled). `top` is the
/// input row of the first kernel row, `left` the input column of the first tap of the first
/// output column. The same additions in the same order as the general loop.
#[inline(always)]
fn interior_block<const K: usize, const S: usize, const L: usize>(
    x: &[f32],
    width: usize,
    top: usize,
    w: &[f32],
    bias: f32,
    left: usize,
) -> [f32; L] {
    let w = &w[..K * K];
    let mut acc = [bias; L];
    for kh in 0..K {
        let xr = &x[(top + kh) * width..(top + kh + 1) * width];
        for kw in 0..K {
            let wv = w[kh * K + kw];
            let src = &xr[left + kw..left + kw + (L - 1) * S + 1];
            for i in 0..L {
                acc[i] += wv * src[i * S];
            }
        }
    }
    acc
}
