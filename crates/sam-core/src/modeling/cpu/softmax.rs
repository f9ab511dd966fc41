//! Row-wise softmax with a vectorised exp (short rows, rows with a bias).

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use super::madd;
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
pub(super) fn exp_flushed(x: f32) -> f32 {
    if x < -72.0 { 0.0 } else { exp_f32(x) }
}

/// Lanes of [`softmax_row`]'s reductions.
pub(super) const SOFTMAX_LANES: usize = 16;

/// `softmax(row + bias)` in place.
#[inline(always)]
pub(super) fn softmax_row(s: &mut [f32], bias: Option<&[f32]>) {
    let inv = exp_row(s, bias);
    for v in s.iter_mut() {
        *v *= inv;
    }
}

/// The softmax of `row + bias` left unnormalised: `s` becomes `exp(s + bias - max)` (flushed
/// as [`exp_flushed`]) and the return value is `1 / Σ`, so that attention can scale its `d`
/// outputs a query instead of its `n` probabilities. The max is kept per lane (`L` of them)
/// so that the compiler vectorises it.
#[inline(always)]
pub(super) fn exp_row(s: &mut [f32], bias: Option<&[f32]>) -> f32 {
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
    1.0 / exp_sum(s, max)
}

/// `s[i] = exp_flushed(s[i] - max)`, returning their sum (in `L` lanes, so that it
/// vectorises).
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
#[inline(always)]
fn exp_sum(s: &mut [f32], max: f32) -> f32 {
    const L: usize = SOFTMAX_LANES;
    let split = s.len() - s.len() % L;
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
    sum
}

/// [`exp_sum`] in WebAssembly SIMD: [`exp_f32`]'s steps on four lanes, its multiply-adds
/// fused where the module has relaxed SIMD ([`madd`]), and the flush as a mask. This pass is
/// most of a softmax (ViT-B's global attention exponentiates 12 x 4096 x 4096 logits a block),
/// and the compiler's own vectorisation of the scalar code could not fuse. Without relaxed
/// SIMD its values are those of the scalar code; with it, within an ulp or two of them.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn exp_sum(s: &mut [f32], max: f32) -> f32 {
    use core::arch::wasm32::*;
    let (body, tail) = s.split_at_mut(s.len() - s.len() % 8);
    // SAFETY: `body` holds whole groups of 8 values.
    let sums = unsafe { exp_sum_x8(body.as_mut_ptr(), body.len() / 8, max) };
    let mut lanes = [0.0f32; 4];
    // SAFETY: 4 values.
    unsafe { v128_store(lanes.as_mut_ptr().cast(), sums) };
    let mut sum: f32 = lanes.iter().sum();
    for v in tail {
        *v = exp_flushed(*v - max);
        sum += *v;
    }
    sum
}

/// The vector loop of [`exp_sum`] over `groups` groups of 8 values at `s`; returns the sums of
/// the 4 lanes.
///
/// # Safety
/// `s` must hold `8 · groups` values.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[cfg_attr(feature = "relaxed-simd", target_feature(enable = "relaxed-simd"))]
unsafe fn exp_sum_x8(s: *mut f32, groups: usize, max: f32) -> core::arch::wasm32::v128 {
    use core::arch::wasm32::*;
    let max = f32x4_splat(max);
    let (mut sum0, mut sum1) = (f32x4_splat(0.0), f32x4_splat(0.0));
    for g in 0..groups {
        // SAFETY: values 8g..8g+8 of `s` (caller).
        unsafe {
            let p = s.add(8 * g).cast::<v128>();
            let (a, b) = (
                exp_x4(f32x4_sub(v128_load(p), max)),
                exp_x4(f32x4_sub(v128_load(p.add(1)), max)),
            );
            v128_store(p, a);
            v128_store(p.add(1), b);
            sum0 = f32x4_add(sum0, a);
            sum1 = f32x4_add(sum1, b);
        }
    }
    f32x4_add(sum0, sum1)
}

/// [`exp_flushed`] on four lanes of `x ≤ 0`: [`exp_f32`]'s steps with [`madd`], and 0 where
/// `x < -72` (NaN stays NaN). (V8 builds the constants once, before the loop that uses them.)
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[cfg_attr(
    feature = "relaxed-simd",
    target_feature(enable = "relaxed-simd"),
    inline
)]
#[cfg_attr(not(feature = "relaxed-simd"), inline(always))]
fn exp_x4(x: core::arch::wasm32::v128) -> core::arch::wasm32::v128 {
    use core::arch::wasm32::*;
    let c = f32x4_splat;
    const SHIFT: f32 = 12_582_912.0; // 1.5 · 2^23
    let t = madd(x, c(std::f32::consts::LOG2_E), c(SHIFT));
    let n = f32x4_sub(t, c(SHIFT));
    let r = madd(n, c(-0.693_359_4), x);
    let r = madd(n, c(2.121_944_4e-4), r);
    let p = madd(r, c(1.987_569_1e-4), c(1.398_2e-3));
    let p = madd(r, p, c(8.333_452e-3));
    let p = madd(r, p, c(4.166_579_6e-2));
    let p = madd(r, p, c(1.666_666_5e-1));
    let p = madd(r, p, c(0.5));
    let e_r = f32x4_add(madd(f32x4_mul(p, r), r, r), c(1.0));
    // 2^n: n sits in t's low mantissa bits, offset by 0x4B40_0000.
    let two_n = i32x4_shl(i32x4_add(t, i32x4_splat(127 - 0x4B40_0000)), 23);
    v128_andnot(f32x4_mul(e_r, two_n), f32x4_lt(x, c(-72.0)))
}
