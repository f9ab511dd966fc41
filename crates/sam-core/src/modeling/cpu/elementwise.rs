//! Element-wise kernels: exact GELU with a vectorisable erf, a vectorisable exp, row biases.

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use super::madd;
use super::*;

/// Exact (erf) GELU in place, as `nn.GELU()`, with [`erf_f32`].
pub fn gelu_in_place(values: &mut [f32]) {
    let parallel = values.len() >= 1 << 16;
    for_each_chunk(values, 1 << 14, parallel, |_, chunk| gelu_chunk(chunk));
}

pub(super) fn gelu_chunk(values: &mut [f32]) {
    widest(
        #[inline(always)]
        || gelu_values(values),
    )
}

/// Exact (erf) GELU of each value in place: the scalar formula (vectorised by the compiler)
/// natively, [`gelu_x4`] in WebAssembly.
#[inline(always)]
pub(super) fn gelu_values(values: &mut [f32]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    // SAFETY: the module has simd128 (and relaxed SIMD with the feature).
    unsafe {
        gelu_simd(values)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    for v in values {
        *v = gelu_f32(*v);
    }
}

/// `nn.GELU()` of one value: `0.5·x·(1 + erf(x/√2))` with [`erf_f32`]. (WebAssembly uses
/// [`gelu_x4`]; the tests compare it with this.)
#[cfg_attr(
    all(target_arch = "wasm32", target_feature = "simd128"),
    allow(dead_code)
)]
#[inline(always)]
pub fn gelu_f32(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_f32(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// [`gelu_values`] in WebAssembly SIMD: four values at a time by [`gelu_x4`], a last partial
/// group too (padded), so that every value gets the same arithmetic wherever a row starts or
/// ends (the matrix product's epilogue on a tile and the plain pass agree bit for bit).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[cfg_attr(feature = "relaxed-simd", target_feature(enable = "relaxed-simd"))]
unsafe fn gelu_simd(values: &mut [f32]) {
    use core::arch::wasm32::*;
    let (groups, tail) = values.as_chunks_mut::<4>();
    for g in groups {
        // SAFETY: 4 values.
        unsafe { v128_store(g.as_mut_ptr().cast(), gelu_x4(v128_load(g.as_ptr().cast()))) };
    }
    if !tail.is_empty() {
        let mut g = [0.0f32; 4];
        g[..tail.len()].copy_from_slice(tail);
        // SAFETY: 4 values.
        unsafe { v128_store(g.as_mut_ptr().cast(), gelu_x4(v128_load(g.as_ptr().cast()))) };
        tail.copy_from_slice(&g[..tail.len()]);
    }
}

/// [`gelu_f32`] on four lanes: [`erf_f32`]'s polynomials by [`madd`] (fused with relaxed
/// SIMD), its clamp as `pmin`/`pmax` (NaN stays NaN), and `0.5·x + 0.5·x·erf` as one more
/// [`madd`]. Within a few ulp of the scalar formula. The GELU follows every MLP's first
/// product (ViT-B: 151 M values an embedding), where the compiler's vectorisation of the scalar
/// code could not fuse.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[cfg_attr(
    feature = "relaxed-simd",
    target_feature(enable = "relaxed-simd"),
    inline
)]
#[cfg_attr(not(feature = "relaxed-simd"), inline(always))]
fn gelu_x4(v: core::arch::wasm32::v128) -> core::arch::wasm32::v128 {
    use core::arch::wasm32::*;
    let c = f32x4_splat;
    let x = f32x4_mul(v, c(std::f32::consts::FRAC_1_SQRT_2));
    let x = f32x4_pmin(f32x4_pmax(x, c(-4.0)), c(4.0));
    let x2 = f32x4_mul(x, x);
    let p = madd(x2, c(-2.726_142_4e-10), c(2.770_681_5e-8));
    let p = madd(x2, p, c(-2.101_024e-6));
    let p = madd(x2, p, c(-5.692_506_2e-5));
    let p = madd(x2, p, c(-7.349_906_4e-4));
    let p = madd(x2, p, c(-2.954_6e-3));
    let p = madd(x2, p, c(-1.609_603_3e-2));
    let q = madd(x2, c(-1.456_607_15e-5), c(-2.133_740_5e-4));
    let q = madd(x2, q, c(-1.682_827e-3));
    let q = madd(x2, q, c(-7.373_329_3e-3));
    let q = madd(x2, q, c(-1.426_473_9e-2));
    let erf = f32x4_div(f32x4_mul(x, p), q);
    let half = f32x4_mul(v, c(0.5));
    madd(half, erf, half)
}

/// erf for `f32`: the rational approximation of degree 13/8 on [-4, 4] that Eigen and XLA use
/// for float32 (within 1e-7 of erf; beyond ±4 erf rounds to ±1 in single precision). Plain
/// multiply-adds: `mul_add` is a library call on targets without FMA.
#[cfg_attr(
    all(target_arch = "wasm32", target_feature = "simd128"),
    allow(dead_code)
)]
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

/// The decomposed relative positions added to one query's attention logits, in place: `keys`
/// holds the logits of the keys (k_h, k_w) row-major, `rel_h` one term per key row and
/// `rel_w` one per key column; (k_h, k_w) gets `(logit + rel_h[k_h]) + rel_w[k_w]`, the
/// official `attn.view(B, q_h, q_w, k_h, k_w) + rel_h[..., None] + rel_w[..., None, :]` in the
/// same order.
#[inline(always)]
pub fn add_rel_pos_row(keys: &mut [f32], rel_h: &[f32], rel_w: &[f32]) {
    let w = rel_w.len();
    debug_assert_eq!(keys.len(), rel_h.len() * w, "rel-pos row shape");
    for (row, &b) in keys.chunks_exact_mut(w).zip(rel_h) {
        row.iter_mut()
            .zip(rel_w)
            .for_each(|(v, &c)| *v = *v + b + c);
    }
}
