//! LayerNorm over rows, with an optional residual added in the same pass.

use super::*;

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
pub(super) fn normalize_row(row: &mut [f32], weight: &[f32], bias: &[f32], eps: f32) {
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
