//! The matrix product under every host kernel: gemm natively (AVX-512 / AVX2 kernels chosen at
//! run time, optionally on all cores), and in WebAssembly our own `simd128` kernel.
//!
//! gemm's WebAssembly kernel keeps 12 accumulators and their operands live, more vector
//! registers than V8 allocates on x86-64 (15): it spills in its inner loop and ran at
//! ~5.7 GMAC/s under Node 20, where a 2 x 16 tile (8 accumulators) runs at 24-29 GMAC/s on the
//! same machine (see BENCHMARKS.md).

/// `dst = scale · lhs · rhs` on one thread (callers parallelise over their own blocks), for an
/// `m x k` by `k x n` product (`[m, n, k]`): `dst` and `lhs` are row-major with the given row
/// strides, `rhs` has the given (row, column) strides (a transposed operand swaps them).
///
/// # Safety
/// Every element addressed through a pointer and its strides must be valid (`dst`'s for
/// writing), and `dst` must not overlap `lhs` or `rhs`.
pub unsafe fn matmul(
    shape: [usize; 3],
    dst: (*mut f32, usize),
    lhs: (*const f32, usize),
    rhs: (*const f32, usize, usize),
    scale: f32,
) {
    // SAFETY: as promised by the caller.
    unsafe { product(shape, dst, lhs, rhs, scale, false) }
}

/// [`matmul`] on all cores natively (for products large enough to share); in WebAssembly,
/// which has one thread, the same as [`matmul`].
///
/// # Safety
/// As [`matmul`].
pub unsafe fn matmul_parallel(
    shape: [usize; 3],
    dst: (*mut f32, usize),
    lhs: (*const f32, usize),
    rhs: (*const f32, usize, usize),
    scale: f32,
) {
    // SAFETY: as promised by the caller.
    unsafe { product(shape, dst, lhs, rhs, scale, true) }
}

/// `len` values, every one written by `write` through the pointer (a product's destination)
/// before anything reads them: no zeroing first, which in WebAssembly is a `memset` of the
/// whole output.
///
/// # Safety
/// `write` must write all `len` values and read none it has not written.
pub unsafe fn written_by(len: usize, write: impl FnOnce(*mut f32)) -> Vec<f32> {
    let mut values = Vec::with_capacity(len);
    write(values.as_mut_ptr());
    // SAFETY: the capacity is `len` and `write` initialised every value (caller).
    unsafe { values.set_len(len) };
    values
}

/// A right-hand operand used for several products ([`matmul_by`]), e.g. a weight multiplied
/// by one block of rows at a time: in WebAssembly it is packed for the kernel once.
pub struct Rhs<'a> {
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    values: &'a [f32],
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    k: usize,
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    n: usize,
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    packed: simd128::Packed,
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    _values: core::marker::PhantomData<&'a [f32]>,
}

impl<'a> Rhs<'a> {
    /// A row-major `k x n` operand.
    pub fn new(values: &'a [f32], k: usize, n: usize) -> Self {
        assert_eq!(values.len(), k * n, "matrix operand shape");
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        return Self {
            // SAFETY: `values` holds k x n row-major values.
            packed: unsafe { simd128::pack_rhs(k, n, (values.as_ptr(), n, 1)) },
            _values: core::marker::PhantomData,
        };
        #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
        Self { values, k, n }
    }
}

/// [`matmul`] by a prepared right-hand operand: `dst = lhs · rhs` for `m` rows of `lhs`.
///
/// # Safety
/// `m` rows of `lhs` (`k` values each, row stride given) must be valid for reading and
/// `m x n` of `dst` for writing, not overlapping `lhs`.
pub unsafe fn matmul_by(m: usize, dst: (*mut f32, usize), lhs: (*const f32, usize), rhs: &Rhs) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    // SAFETY: as promised by the caller.
    unsafe {
        simd128::multiply(m, dst, lhs, &rhs.packed, 1.0)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    // SAFETY: as promised by the caller; `rhs.values` holds k x n row-major values.
    unsafe {
        matmul(
            [m, rhs.n, rhs.k],
            dst,
            lhs,
            (rhs.values.as_ptr(), rhs.n, 1),
            1.0,
        )
    }
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
unsafe fn product(
    [m, n, k]: [usize; 3],
    (dst, dst_rs): (*mut f32, usize),
    (lhs, lhs_rs): (*const f32, usize),
    (rhs, rhs_rs, rhs_cs): (*const f32, usize, usize),
    scale: f32,
    parallel: bool,
) {
    // gemm splits products of at least this many multiply-adds over the cores.
    const PARALLEL_MACS: usize = 1 << 20;
    let parallelism = if parallel && m * n * k >= PARALLEL_MACS {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: as promised by the caller.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            false,
            lhs,
            1,
            lhs_rs as isize,
            rhs,
            rhs_cs as isize,
            rhs_rs as isize,
            0.0,
            scale,
            false,
            false,
            false,
            parallelism,
        )
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
unsafe fn product(
    shape: [usize; 3],
    dst: (*mut f32, usize),
    lhs: (*const f32, usize),
    rhs: (*const f32, usize, usize),
    scale: f32,
    _parallel: bool,
) {
    // SAFETY: as promised by the caller.
    unsafe { simd128::matmul(shape, dst, lhs, rhs, scale) }
}

/// A blocked product in the usual layout (BLIS's): `rhs` is packed a block of `KC` rows at a
/// time into panels of `NR` columns, `lhs` a block of `MC x KC` at a time into panels of `MR`
/// rows, and the micro-kernel adds one `MR x NR` tile of `dst` per panel pair, its 8
/// accumulators in registers. The panel of `rhs` (16 KiB) stays in L1 while the `lhs` block
/// (~120 KiB) streams from L2.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128 {
    use core::arch::wasm32::*;

    /// Rows of a tile.
    const MR: usize = 2;
    /// 128-bit vectors across a tile.
    const NV: usize = 4;
    /// Columns of a tile.
    const NR: usize = 4 * NV;
    /// Depth of a packed block.
    const KC: usize = 256;
    /// Rows of a packed `lhs` block.
    const MC: usize = 120;

    /// As [`super::matmul`].
    pub unsafe fn matmul(
        [m, n, k]: [usize; 3],
        dst: (*mut f32, usize),
        lhs: (*const f32, usize),
        rhs: (*const f32, usize, usize),
        scale: f32,
    ) {
        if m == 0 || n == 0 {
            return;
        }
        // SAFETY: as promised by the caller.
        let packed = unsafe { pack_rhs(k, n, rhs) };
        unsafe { multiply(m, dst, lhs, &packed, scale) };
    }

    /// A `k x n` right-hand operand packed for [`multiply`]: for each block of `KC` rows,
    /// its panels of `NR` columns, `NR` values per row (zero past column `n`).
    pub struct Packed {
        k: usize,
        n: usize,
        values: Vec<f32>,
    }

    /// Packs the `k x n` operand at `rhs` with the given (row, column) strides.
    ///
    /// # Safety
    /// Every element addressed must be valid for reading.
    pub unsafe fn pack_rhs(
        k: usize,
        n: usize,
        (rhs, rs, cs): (*const f32, usize, usize),
    ) -> Packed {
        let n_panels = n.div_ceil(NR);
        let mut values = vec![0.0f32; k * n_panels * NR];
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            let block = &mut values[pc * n_panels * NR..(pc + kc) * n_panels * NR];
            for (p, panel) in block.chunks_exact_mut(kc * NR).enumerate() {
                let j0 = p * NR;
                let cols = NR.min(n - j0);
                if rs == 1 {
                    // A transposed operand: each column is contiguous.
                    for j in 0..cols {
                        // SAFETY: rows pc..pc+kc of column j0 + j are valid (caller).
                        let src =
                            unsafe { core::slice::from_raw_parts(rhs.add((j0 + j) * cs + pc), kc) };
                        for (kk, &v) in src.iter().enumerate() {
                            panel[kk * NR + j] = v;
                        }
                    }
                    continue;
                }
                for (kk, row) in panel.chunks_exact_mut(NR).enumerate() {
                    // SAFETY: rows pc..pc+kc and columns j0..j0+cols are valid (caller).
                    let src = unsafe { rhs.add((pc + kk) * rs + j0 * cs) };
                    for (j, v) in row[..cols].iter_mut().enumerate() {
                        *v = unsafe { *src.add(j * cs) };
                    }
                }
            }
        }
        Packed { k, n, values }
    }

    /// `dst = scale · lhs · rhs` for an `m x k` `lhs` (row stride given) and a packed `rhs`.
    ///
    /// # Safety
    /// `m` rows of `lhs` (`k` values each) must be valid for reading and `m x n` of `dst` for
    /// writing, not overlapping `lhs`.
    pub unsafe fn multiply(
        m: usize,
        (dst, dst_rs): (*mut f32, usize),
        (lhs, lhs_rs): (*const f32, usize),
        rhs: &Packed,
        scale: f32,
    ) {
        let (k, n) = (rhs.k, rhs.n);
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            for i in 0..m {
                // SAFETY: row i of dst is valid for writing (caller).
                unsafe { core::slice::from_raw_parts_mut(dst.add(i * dst_rs), n).fill(0.0) };
            }
            return;
        }
        let n_panels = n.div_ceil(NR);
        let mut packed_lhs = vec![0.0f32; KC.min(k) * MC.min(m).div_ceil(MR) * MR];
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            let block = &rhs.values[pc * n_panels * NR..(pc + kc) * n_panels * NR];
            for ic in (0..m).step_by(MC) {
                let mc = MC.min(m - ic);
                let m_panels = mc.div_ceil(MR);
                for (p, panel) in packed_lhs[..m_panels * kc * MR]
                    .chunks_exact_mut(kc * MR)
                    .enumerate()
                {
                    let i0 = ic + p * MR;
                    let rows = MR.min(m - i0);
                    for r in 0..MR {
                        if r < rows {
                            // SAFETY: row i0 + r, columns pc..pc+kc of lhs are valid (caller).
                            let src = unsafe {
                                core::slice::from_raw_parts(lhs.add((i0 + r) * lhs_rs + pc), kc)
                            };
                            for (kk, &v) in src.iter().enumerate() {
                                panel[kk * MR + r] = v;
                            }
                        } else {
                            for kk in 0..kc {
                                panel[kk * MR + r] = 0.0;
                            }
                        }
                    }
                }
                for jp in 0..n_panels {
                    let j0 = jp * NR;
                    let cols = NR.min(n - j0);
                    for ip in 0..m_panels {
                        let i0 = ic + ip * MR;
                        let tile = Tile {
                            dst: unsafe { dst.add(i0 * dst_rs + j0) },
                            rs: dst_rs,
                            rows: MR.min(m - i0),
                            cols,
                            accumulate: pc > 0,
                            scale,
                        };
                        // SAFETY: the panels hold kc x MR and kc x NR values; the tile lies in
                        // dst (caller).
                        unsafe {
                            kernel(
                                kc,
                                packed_lhs.as_ptr().add(ip * kc * MR),
                                block.as_ptr().add(jp * kc * NR),
                                tile,
                            )
                        };
                    }
                }
            }
        }
    }

    /// Where a micro-kernel's result goes: `rows x cols` values of `dst` (row stride `rs`),
    /// scaled, added to what is there when `accumulate`.
    #[derive(Clone, Copy)]
    struct Tile {
        dst: *mut f32,
        rs: usize,
        rows: usize,
        cols: usize,
        accumulate: bool,
        scale: f32,
    }

    /// One `MR x NR` tile from `kc` steps of a packed `lhs` panel (`MR` values a step) and a
    /// packed `rhs` panel (`NR` values a step). WebAssembly SIMD has no fused multiply-add
    /// (relaxed SIMD's was no faster here): a multiply, then an add.
    #[inline(always)]
    unsafe fn kernel(kc: usize, a: *const f32, b: *const f32, t: Tile) {
        let mut acc = [[f32x4_splat(0.0); NV]; MR];
        for s in 0..kc {
            // SAFETY: step s of both panels is in bounds (caller).
            unsafe {
                let b = b.add(s * NR);
                let bv: [v128; NV] = core::array::from_fn(|j| v128_load(b.add(4 * j).cast()));
                for (i, acc) in acc.iter_mut().enumerate() {
                    let ai = v128_load32_splat(a.add(s * MR + i).cast());
                    for (acc, &bv) in acc.iter_mut().zip(&bv) {
                        *acc = f32x4_add(*acc, f32x4_mul(ai, bv));
                    }
                }
            }
        }
        let scale = f32x4_splat(t.scale);
        if t.rows == MR && t.cols == NR {
            for (i, acc) in acc.iter().enumerate() {
                for (j, &v) in acc.iter().enumerate() {
                    // SAFETY: the full tile lies in dst (caller).
                    unsafe {
                        let p = t.dst.add(i * t.rs + 4 * j).cast::<v128>();
                        let v = f32x4_mul(v, scale);
                        let v = if t.accumulate {
                            f32x4_add(v128_load(p), v)
                        } else {
                            v
                        };
                        v128_store(p, v);
                    }
                }
            }
        } else {
            let mut values = [[0.0f32; NR]; MR];
            for (row, acc) in values.iter_mut().zip(&acc) {
                for (j, &v) in acc.iter().enumerate() {
                    // SAFETY: 4 values of the row.
                    unsafe { v128_store(row.as_mut_ptr().add(4 * j).cast(), f32x4_mul(v, scale)) };
                }
            }
            for (i, row) in values.iter().enumerate().take(t.rows) {
                for (j, &v) in row.iter().enumerate().take(t.cols) {
                    // SAFETY: rows x cols of the tile lie in dst (caller).
                    unsafe {
                        let p = t.dst.add(i * t.rs + j);
                        *p = if t.accumulate { *p + v } else { v };
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Products of every edge case (partial tiles, several depth and row blocks, transposed
    /// and strided operands, a scale) against a plain f64 triple loop.
    #[test]
    fn matmul_matches_definition() {
        let value = |i: usize| ((i * 7919 % 1013) as f32) / 1013.0 - 0.5;
        for &(m, n, k) in &[
            (1, 1, 1),
            (2, 16, 3),
            (3, 17, 300),
            (121, 33, 257),
            (250, 5, 600),
            (7, 64, 0),
        ] {
            for transposed in [false, true] {
                let (lhs_rs, dst_rs) = (k + 3, n + 2);
                let lhs: Vec<f32> = (0..m * lhs_rs).map(value).collect();
                let rhs: Vec<f32> = (0..k * n).map(|i| value(i + 17)).collect();
                // rhs element (r, c) at r·rs + c·cs.
                let (rs, cs) = if transposed { (1, k) } else { (n, 1) };
                let mut dst = vec![f32::NAN; m * dst_rs];
                let scale = 0.75;
                // SAFETY: the buffers hold the shapes and strides given.
                unsafe {
                    matmul(
                        [m, n, k],
                        (dst.as_mut_ptr(), dst_rs),
                        (lhs.as_ptr(), lhs_rs),
                        (rhs.as_ptr(), rs, cs),
                        scale,
                    )
                };
                for i in 0..m {
                    for j in 0..n {
                        let want: f64 = (0..k)
                            .map(|p| lhs[i * lhs_rs + p] as f64 * rhs[p * rs + j * cs] as f64)
                            .sum::<f64>()
                            * scale as f64;
                        let got = dst[i * dst_rs + j] as f64;
                        assert!(
                            (got - want).abs() < 1e-4,
                            "[{m}, {n}, {k}] transposed {transposed} at ({i}, {j}): {got} vs {want}"
                        );
                    }
                    for j in n..dst_rs {
                        assert!(dst[i * dst_rs + j].is_nan(), "wrote outside the row");
                    }
                }
            }
        }
    }
}
