//! Row-wise softmax with a vectorised exp (short rows, rows with a bias).

use super::*;

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
pub(super) fn softmax_short_rows(rows: &mut [f32], n: usize) {
    for row in rows.chunks_exact_mut(n) {
        let max = row
            .iter()
            .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
        for v in row.iter_mut() {
            *v -= max;
        }
    }
    for v in rows.iter_mut() {
        *v = exp_flushed(*v);
    }
    for row in rows.chunks_exact_mut(n) {
        let inv = 1.0 / row.iter().sum::<f32>();
        for v in row.iter_mut() {
            *v *= inv;
        }
    }
}

/// `exp(x)` for `x ≤ 0` (a logit less the row's max), but 0 below -72 (`exp(-72)` ≈ 5e-32).
/// A softmax row sums to at least 1 before it is scaled, so every probability it keeps stays
/// at least `5e-32 / n`, a normal float for rows of up to 2^20 values: none is subnormal.
/// Subnormal operands cost x86 processors a microcode assist on every multiply (WebAssembly
/// cannot flush them to zero), and the product of the probabilities by the values met them
/// wherever attention is sharp: 25 G multiply-adds of ViT-B's global attention ran at 0.4
/// GMAC/s on random logits of a wide range, instead of 25. The official softmax keeps those
/// probabilities; each one it keeps is less than 5e-32.
#[inline(always)]
fn exp_flushed(x: f32) -> f32 {
    if x < -72.0 { 0.0 } else { exp_f32(x) }
}

/// Lanes of [`softmax_row`]'s reductions.
pub(super) const SOFTMAX_LANES: usize = 16;

/// `softmax(row + bias)` in place. The max and the sum are kept per lane (`L` of them) so
/// that the compiler can vectorise both reductions.
#[inline(always)]
pub(super) fn softmax_row(s: &mut [f32], bias: Option<&[f32]>) {
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
            sc[i] = exp_flushed(sc[i] - max);
            sums[i] += sc[i];
        }
    }
    let mut sum: f32 = sums.iter().sum();
    for v in &mut s[split..] {
        *v = exp_flushed(*v - max);
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in s.iter_mut() {
        *v *= inv;
    }
}
