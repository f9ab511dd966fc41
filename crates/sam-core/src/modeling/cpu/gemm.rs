//! The matrix product under every host kernel: gemm natively (AVX-512 / AVX2 kernels chosen at
//! run time, optionally on all cores), and in WebAssembly our own `simd128` kernel.
//!
//! gemm's WebAssembly kernel keeps 12 accumulators and their operands live, more vector
//! registers than V8 allocates on x86-64 (15): it spills in its inner loop and ran at
//! ~5.7 GMAC/s under Node 20, where our 2 x 16 tile (8 accumulators) ran at 24-29 GMAC/s on the
//! same machine. Our tile is now 3 x 12 (9 accumulators), faster in Chromium (see BENCHMARKS.md).

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
    unsafe { product(shape, dst, lhs, rhs, scale, false, Epilogue::NONE) }
}

/// [`matmul`] on all cores natively and in the threaded WebAssembly module (for products
/// large enough to share); in the single-threaded module the same as [`matmul`].
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
    unsafe { product(shape, dst, lhs, rhs, scale, true, Epilogue::NONE) }
}

/// [`matmul_parallel`] followed by `epilogue` on every value of `dst`, done as each tile is
/// stored in WebAssembly (while it is in cache: no second pass over the output), after the
/// product elsewhere. The values are those of the product followed by [`Epilogue::apply`].
///
/// # Safety
/// As [`matmul`]; the epilogue's bias holds a value per column (`n`) or per row (`m`).
pub unsafe fn matmul_parallel_with(
    shape: [usize; 3],
    dst: (*mut f32, usize),
    lhs: (*const f32, usize),
    rhs: (*const f32, usize, usize),
    scale: f32,
    epilogue: Epilogue,
) {
    epilogue.check(shape[0], shape[1]);
    // SAFETY: as promised by the caller.
    unsafe { product(shape, dst, lhs, rhs, scale, true, epilogue) }
}

/// What a product does to each of its values once they are summed: add a bias (a linear's,
/// one per column, or a convolution's, one per output channel = row), then GELU if `gelu`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    pub bias: Option<Bias<'a>>,
    pub gelu: bool,
}

/// An [`Epilogue`]'s bias.
#[derive(Clone, Copy, Debug)]
pub enum Bias<'a> {
    /// One value per column of the product.
    Columns(&'a [f32]),
    /// One value per row of the product.
    Rows(&'a [f32]),
}

impl<'a> Epilogue<'a> {
    /// Nothing after the product.
    pub const NONE: Self = Self {
        bias: None,
        gelu: false,
    };

    fn is_none(&self) -> bool {
        self.bias.is_none() && !self.gelu
    }

    /// Panics unless the bias fits an `m x n` product.
    fn check(&self, m: usize, n: usize) {
        match self.bias {
            Some(Bias::Columns(b)) => assert_eq!(b.len(), n, "product bias per column"),
            Some(Bias::Rows(b)) => assert_eq!(b.len(), m, "product bias per row"),
            None => {}
        }
    }

    /// The epilogue of the part of the product from row `i0` and column `j0`.
    #[cfg_attr(
        not(all(target_arch = "wasm32", target_feature = "simd128")),
        allow(dead_code)
    )]
    fn from(self, i0: usize, j0: usize) -> Self {
        let bias = self.bias.map(|b| match b {
            Bias::Columns(b) => Bias::Columns(&b[j0..]),
            Bias::Rows(b) => Bias::Rows(&b[i0..]),
        });
        Self { bias, ..self }
    }

    /// The epilogue on `values`, row `i` of the part of the product it is for (its first
    /// columns): the one place both [`Epilogue::apply`] and the WebAssembly kernel's tiles take
    /// it from.
    #[inline(always)]
    fn apply_to_row(&self, i: usize, values: &mut [f32]) {
        match self.bias {
            Some(Bias::Columns(b)) => values.iter_mut().zip(b).for_each(|(v, &b)| *v += b),
            Some(Bias::Rows(b)) => values.iter_mut().for_each(|v| *v += b[i]),
            None => {}
        }
        if self.gelu {
            super::gelu_values(values);
        }
    }

    /// The plain version: the epilogue applied to the `m x n` values at `dst` (row stride
    /// given), a pass over them after the product (on all cores when `parallel`).
    ///
    /// # Safety
    /// The `m x n` values must be valid for reading and writing.
    pub unsafe fn apply(&self, m: usize, n: usize, (dst, rs): (*mut f32, usize), parallel: bool) {
        if self.is_none() || m == 0 || n == 0 {
            return;
        }
        // Raw pointers are not `Send`: the rows get the address.
        let d = dst as usize;
        let row = |i: usize| {
            // SAFETY: row i of the block (caller); each row is one task's.
            let values = unsafe { core::slice::from_raw_parts_mut((d as *mut f32).add(i * rs), n) };
            super::widest(
                #[inline(always)]
                || self.apply_to_row(i, values),
            )
        };
        #[cfg(any(not(target_family = "wasm"), feature = "threads"))]
        if parallel && m * n >= 1 << 16 {
            use rayon::prelude::*;
            (0..m).into_par_iter().for_each(row);
            return;
        }
        let _ = parallel;
        (0..m).for_each(row);
    }
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
    /// (row, column) strides of `values`.
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    strides: (usize, usize),
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    packed: simd128::Packed,
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    _values: core::marker::PhantomData<&'a [f32]>,
}

impl<'a> Rhs<'a> {
    /// A row-major `k x n` operand.
    pub fn new(values: &'a [f32], k: usize, n: usize) -> Self {
        Self::with_strides(values, k, n, (n, 1))
    }

    /// The `k x n` transpose of the row-major `n x k` matrix `values` (attention keys `[n,
    /// k]` for the logits `q·kᵀ`), read with swapped strides: nothing is copied natively,
    /// and WebAssembly packs it like any other operand.
    pub fn transposed(values: &'a [f32], k: usize, n: usize) -> Self {
        Self::with_strides(values, k, n, (1, k))
    }

    fn with_strides(values: &'a [f32], k: usize, n: usize, strides: (usize, usize)) -> Self {
        assert_eq!(values.len(), k * n, "matrix operand shape");
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        return Self {
            // SAFETY: with either stride pair, `values` holds the k x n elements addressed.
            packed: unsafe { simd128::pack_rhs(k, n, (values.as_ptr(), strides.0, strides.1)) },
            _values: core::marker::PhantomData,
        };
        #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
        Self {
            values,
            k,
            n,
            strides,
        }
    }
}

/// [`matmul`] by a prepared right-hand operand: `dst = scale · lhs · rhs` for `m` rows of
/// `lhs`.
///
/// # Safety
/// `m` rows of `lhs` (`k` values each, row stride given) must be valid for reading and
/// `m x n` of `dst` for writing, not overlapping `lhs`.
pub unsafe fn matmul_by(
    m: usize,
    dst: (*mut f32, usize),
    lhs: (*const f32, usize),
    rhs: &Rhs,
    scale: f32,
) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    // SAFETY: as promised by the caller.
    unsafe {
        simd128::multiply(m, dst, lhs, &rhs.packed, scale, Epilogue::NONE)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    // SAFETY: as promised by the caller; `rhs.values` holds the k x n values at its strides.
    unsafe {
        let (rs, cs) = rhs.strides;
        matmul(
            [m, rhs.n, rhs.k],
            dst,
            lhs,
            (rhs.values.as_ptr(), rs, cs),
            scale,
        )
    }
}

/// Whether an `m x n x k` product is large enough (at least 2^20 multiply-adds) to split over
/// threads. Counted with saturation: `usize` is 32 bits on wasm32, where ViT-B's MLP product
/// (4096 x 3072 x 768) overflows it.
#[cfg(any(
    not(all(target_arch = "wasm32", target_feature = "simd128")),
    feature = "threads"
))]
fn worth_splitting([m, n, k]: [usize; 3]) -> bool {
    const PARALLEL_MACS: usize = 1 << 20;
    m.saturating_mul(n).saturating_mul(k) >= PARALLEL_MACS
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
unsafe fn product(
    [m, n, k]: [usize; 3],
    (dst, dst_rs): (*mut f32, usize),
    (lhs, lhs_rs): (*const f32, usize),
    (rhs, rhs_rs, rhs_cs): (*const f32, usize, usize),
    scale: f32,
    parallel: bool,
    epilogue: Epilogue,
) {
    // gemm splits products worth it over the cores.
    let parallelism = if parallel && worth_splitting([m, n, k]) {
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
        );
        epilogue.apply(m, n, (dst, dst_rs), parallel);
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
unsafe fn product(
    shape: [usize; 3],
    dst: (*mut f32, usize),
    lhs: (*const f32, usize),
    rhs: (*const f32, usize, usize),
    scale: f32,
    parallel: bool,
    epilogue: Epilogue,
) {
    // The threaded module splits the products worth splitting over rayon's pool.
    #[cfg(feature = "threads")]
    {
        let threads = rayon::current_num_threads();
        if parallel && threads > 1 && shape[0] >= 2 * threads && worth_splitting(shape) {
            // SAFETY: as promised by the caller.
            unsafe { simd128::matmul_parallel(shape, dst, lhs, rhs, scale, threads, epilogue) };
            return;
        }
    }
    let _ = parallel;
    // SAFETY: as promised by the caller.
    unsafe { simd128::matmul(shape, dst, lhs, rhs, scale, epilogue) }
}

/// A blocked product in the usual layout (BLIS's), but for `lhs`: `rhs` is packed a block of
/// `KC` rows at a time into panels of `NR` columns, and the micro-kernel adds one `MR x NR`
/// tile of `dst` per panel and `MR` rows of `lhs`, its 9 accumulators in registers. The panel
/// of `rhs` (12 KiB) stays in L1 while a block of `MC x KC` of `lhs` (48 KiB) streams from
/// L2. A block of `MC` rows goes through all the depth blocks before the next, so that its
/// rows of `dst` (`MC x n`, 576 KiB for ViT-B's widest) stay in L2 while each depth block adds
/// to them. (The depth blocks outermost, as BLIS has them, send all of `dst` out to memory and
/// back once a depth block: ViT-B's MLP and projections ran 5-9% slower that way in our kernel
/// timings, under Node's WASI and in Chromium, though the page's whole ViT-B embedding did not
/// move beyond the machine's noise; BENCHMARKS.md "Session 14".) `lhs` is read in place: with
/// a few rows a tile its rows are as many sequential streams, and packing it had cost more than
/// it saved (4096x256x256: 26 → 28 GMAC/s without).
///
/// The tile is 3 x 12 (three rows, three vectors): 9 accumulators, and each step loads 3
/// vectors of the panel and 3 values of `lhs` for 9 multiply-adds, where a 2 x 16 tile loaded
/// 6 for 8. 9 chains of multiply-adds also cover the 2 x 4 cycles of two pipes' latency with
/// one to spare, and with the 4 operands they take 13 of the 15 vector registers V8 gives
/// WebAssembly on x86-64: 5 x 8 and 6 x 8 (10 and 12 accumulators) ran slower, a 2 x 16 loop
/// unrolled twice spilled and ran at half speed. In Chromium the page's ViT-B embedding got
/// 3.5-12% faster with it; under Node 20, whose V8 is older, ~5% slower (BENCHMARKS.md
/// "Session 16"): the tile follows the browser.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128 {
    use super::super::madd;
    use super::Epilogue;
    use core::arch::wasm32::*;

    /// Rows of a tile.
    const MR: usize = 3;
    /// 128-bit vectors across a tile.
    const NV: usize = 3;
    /// Columns of a tile.
    const NR: usize = 4 * NV;
    /// Depth of a packed block.
    const KC: usize = 256;
    /// Rows of an `lhs` block (a multiple of every tile's rows: a tile never crosses blocks).
    const MC: usize = 48;
    const _: () = assert!(
        MC.is_multiple_of(8) && MC.is_multiple_of(MR),
        "MC: whole tiles"
    );
    /// At most this many rows of `lhs` make a product of "few rows" ([`matmul`]).
    const FEW_ROWS: usize = 64;
    /// Panels packed together ([`pack_panels`]), 96 columns: each row of `rhs` gives them
    /// 384 contiguous bytes, and the group's panels are written as 8 sequential streams. (All
    /// panels of a row at once, 4096 of them for a 1x1 convolution over 256x256 pixels, made
    /// every write a new page: 4.5 ns a value.)
    const PACK_GROUP: usize = 8;
    /// The widest row stride (values) of an `rhs` read in place: the panel's rows would fall
    /// in too few cache sets beyond (56x256x2048: 26 GMAC/s packed, 14 in place).
    const IN_PLACE_ROW: usize = 512;

    /// As [`super::matmul`], then `epi` ([`super::matmul_parallel_with`]).
    pub unsafe fn matmul(
        [m, n, k]: [usize; 3],
        dst: (*mut f32, usize),
        lhs: (*const f32, usize),
        rhs: (*const f32, usize, usize),
        scale: f32,
        epi: Epilogue,
    ) {
        if m == 0 || n == 0 {
            return;
        }
        let (b, rs, cs) = rhs;
        // Few rows against a wide operand (the decoder's 56 token-head rows against the 4096
        // pixels, its 7 tokens through the MLP): packing all of `rhs` would cost about as much
        // as the product.
        if m <= FEW_ROWS && n >= 4 * m && k > 0 {
            if cs == 1 && rs <= IN_PLACE_ROW {
                // Row-major: whole panels read in place, a narrow last one packed.
                let full = n - n % NR;
                // SAFETY: as promised by the caller.
                unsafe { multiply_in_place([m, full, k], dst, lhs, (b, rs), scale, epi) };
                if full < n {
                    let packed = unsafe { pack_rhs(k, n - full, (b.add(full), rs, 1)) };
                    let (dst, epi) = ((dst.0.wrapping_add(full), dst.1), epi.from(0, full));
                    unsafe { multiply(m, dst, lhs, &packed, scale, epi) };
                }
                return;
            }
            if rs == 1 {
                // Transposed (attention logits q·kᵀ): the product's transpose `rhsᵀ · lhsᵀ`
                // reads `rhsᵀ` in place as its left operand and packs only `lhsᵀ`.
                let (lhs, lhs_rs) = lhs;
                let packed = unsafe { pack_rhs(k, m, (lhs, 1, lhs_rs)) };
                let mut t = vec![0.0f32; n * m];
                let none = Epilogue::NONE;
                unsafe { multiply(n, (t.as_mut_ptr(), m), (b, cs), &packed, scale, none) };
                // Transposed back a block of columns at a time (the block stays in L1).
                let (dst, dst_rs) = dst;
                for (jb, block) in t.chunks(64 * m).enumerate() {
                    for i in 0..m {
                        for (j, col) in block.chunks_exact(m).enumerate() {
                            // SAFETY: (i, 64·jb + j) lies in dst (caller).
                            unsafe { *dst.add(i * dst_rs + 64 * jb + j) = col[i] };
                        }
                    }
                }
                // SAFETY: the m x n values of dst (caller).
                unsafe { epi.apply(m, n, (dst, dst_rs), false) };
                return;
            }
        }
        // SAFETY: as promised by the caller.
        let packed = unsafe { pack_rhs(k, n, rhs) };
        unsafe { multiply(m, dst, lhs, &packed, scale, epi) };
    }

    /// [`matmul`] on rayon's pool (the threaded module), `threads` threads. `rhs` is packed
    /// once for all of them (its panels in parallel), then the rows go out in bands of about
    /// a quarter of a thread's share, taken by whichever thread is free: a thread held up
    /// elsewhere (woken late, or descheduled) leaves its bands to the others instead of
    /// making everyone wait for its half. (One band a thread, each packing all of `rhs` for
    /// itself, ran 2 threads at 1.4-1.6x one.) A product of few rows against a wide operand
    /// keeps [`matmul`]'s in-place paths, a block of columns a task.
    ///
    /// # Safety
    /// As [`matmul`].
    #[cfg(feature = "threads")]
    pub unsafe fn matmul_parallel(
        [m, n, k]: [usize; 3],
        dst: (*mut f32, usize),
        lhs: (*const f32, usize),
        rhs: (*const f32, usize, usize),
        scale: f32,
        threads: usize,
        epi: Epilogue,
    ) {
        use rayon::prelude::*;
        // Raw pointers are not `Send`: the bands pass them as addresses.
        let (d, l) = (dst.0 as usize, lhs.0 as usize);
        let band_at = |first: usize| {
            (
                (d as *mut f32).wrapping_add(first * dst.1),
                (l as *const f32).wrapping_add(first * lhs.1),
            )
        };
        if m <= FEW_ROWS && n >= 4 * m || k == 0 {
            // Few rows against a wide operand: the columns go out in blocks of whole panels,
            // a quarter of a thread's share each, so that each thread reads (or packs) only its
            // own columns of `rhs`. (Bands of rows made every thread read or pack all of `rhs`:
            // a 1x1 convolution to 64 channels over 256x256 pixels packed its 64 MiB operand
            // once per thread.) Each block is [`matmul`] of all the rows, so the values are
            // those of the single-threaded product.
            let block = n.div_ceil(4 * threads).next_multiple_of(NR);
            let r = rhs.0 as usize;
            (0..n.div_ceil(block)).into_par_iter().for_each(|b| {
                let (first, cols) = (b * block, block.min(n - b * block));
                // SAFETY: as promised by the caller; the blocks' columns of `dst` do not
                // overlap.
                unsafe {
                    matmul(
                        [m, cols, k],
                        ((d as *mut f32).wrapping_add(first), dst.1),
                        (l as *const f32, lhs.1),
                        ((r as *const f32).wrapping_add(first * rhs.2), rhs.1, rhs.2),
                        scale,
                        epi.from(0, first),
                    )
                }
            });
            return;
        }
        // SAFETY: as promised by the caller.
        let packed = unsafe { pack_rhs_parallel(k, n, rhs) };
        let band = m.div_ceil(4 * threads).next_multiple_of(MR).max(2 * MR);
        (0..m.div_ceil(band)).into_par_iter().for_each(|b| {
            let (first, rows) = (b * band, band.min(m - b * band));
            let (dst_b, lhs_b) = band_at(first);
            // SAFETY: as promised by the caller; the bands' rows of `dst` do not overlap.
            let epi = epi.from(first, 0);
            unsafe { multiply(rows, (dst_b, dst.1), (lhs_b, lhs.1), &packed, scale, epi) }
        });
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
    pub unsafe fn pack_rhs(k: usize, n: usize, rhs: (*const f32, usize, usize)) -> Packed {
        // SAFETY: as promised by the caller.
        unsafe { pack_rhs_on(k, n, rhs, false) }
    }

    /// [`pack_rhs`] with each depth block's panels packed in parallel, a group of panels a
    /// task (the threaded module).
    ///
    /// # Safety
    /// As [`pack_rhs`].
    #[cfg(feature = "threads")]
    unsafe fn pack_rhs_parallel(k: usize, n: usize, rhs: (*const f32, usize, usize)) -> Packed {
        // SAFETY: as promised by the caller.
        unsafe { pack_rhs_on(k, n, rhs, true) }
    }

    /// [`pack_rhs`], each depth block's groups of panels on all cores when `parallel` (in the
    /// threaded module; one after the other otherwise).
    ///
    /// # Safety
    /// As [`pack_rhs`].
    unsafe fn pack_rhs_on(
        k: usize,
        n: usize,
        (rhs, rs, cs): (*const f32, usize, usize),
        parallel: bool,
    ) -> Packed {
        let n_panels = n.div_ceil(NR);
        let len = k * n_panels * NR;
        // Every value is written once below (zero past column n): no zeroing first.
        let mut values = Vec::with_capacity(len);
        let out = &mut values.spare_capacity_mut()[..len];
        // Raw pointers are not `Sync`: the tasks get the address.
        let r = rhs as usize;
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            let block = &mut out[pc * n_panels * NR..(pc + kc) * n_panels * NR];
            super::super::for_each_chunk(block, PACK_GROUP * kc * NR, parallel, |g, group| {
                // SAFETY: rows pc..pc + kc of the group's panels are valid (caller).
                unsafe { pack_panels(group, pc, kc, g * PACK_GROUP, n, (r as *const f32, rs, cs)) };
            });
        }
        // SAFETY: every value was written above.
        unsafe { values.set_len(len) };
        Packed { k, n, values }
    }

    /// Packs rows `pc..pc + kc` of the panels from `first` (as many as `out` holds, `kc x
    /// NR` values each) of the `k x n` operand at `rhs`.
    ///
    /// # Safety
    /// Every element addressed must be valid for reading.
    unsafe fn pack_panels(
        out: &mut [core::mem::MaybeUninit<f32>],
        pc: usize,
        kc: usize,
        first: usize,
        n: usize,
        (rhs, rs, cs): (*const f32, usize, usize),
    ) {
        let panels = out.len() / (kc * NR);
        if rs == 1 {
            // A transposed operand: each column is contiguous.
            for (p, panel) in out.chunks_exact_mut(kc * NR).enumerate() {
                let j0 = (first + p) * NR;
                let cols = NR.min(n - j0);
                for j in 0..NR {
                    if j >= cols {
                        (0..kc).for_each(|kk| _ = panel[kk * NR + j].write(0.0));
                        continue;
                    }
                    // SAFETY: rows pc..pc+kc of column j0 + j are valid (caller).
                    let src =
                        unsafe { core::slice::from_raw_parts(rhs.add((j0 + j) * cs + pc), kc) };
                    for (kk, &v) in src.iter().enumerate() {
                        panel[kk * NR + j].write(v);
                    }
                }
            }
            return;
        }
        // Row by row, each row read in order and dealt out to the panels.
        for kk in 0..kc {
            // SAFETY: row pc + kk, columns 0..n are valid (caller).
            let src = unsafe { rhs.add((pc + kk) * rs) };
            for p in 0..panels {
                let (j0, cols) = ((first + p) * NR, NR.min(n - (first + p) * NR));
                let dst = &mut out[(p * kc + kk) * NR..][..NR];
                if cols == NR && cs == 1 {
                    // SAFETY: NR values from column j0 (caller).
                    let v = unsafe { src.add(j0).cast::<[f32; NR]>().read_unaligned() };
                    dst.iter_mut().zip(v).for_each(|(d, v)| _ = d.write(v));
                } else {
                    for (j, d) in dst.iter_mut().enumerate() {
                        // SAFETY: column j0 + j < n of the row (caller).
                        d.write(if j < cols {
                            unsafe { *src.add((j0 + j) * cs) }
                        } else {
                            0.0
                        });
                    }
                }
            }
        }
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
        epi: Epilogue,
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
            // SAFETY: as above.
            unsafe { epi.apply(m, n, (dst, dst_rs), false) };
            return;
        }
        let n_panels = n.div_ceil(NR);
        for ic in (0..m).step_by(MC) {
            let mc = MC.min(m - ic);
            for pc in (0..k).step_by(KC) {
                let kc = KC.min(k - pc);
                let block = &rhs.values[pc * n_panels * NR..(pc + kc) * n_panels * NR];
                for jp in 0..n_panels {
                    let j0 = jp * NR;
                    let cols = NR.min(n - j0);
                    let b = block[jp * kc * NR..].as_ptr();
                    // The epilogue comes with the last depth block.
                    let last = (pc + kc == k).then(|| epi.from(0, j0));
                    let at = (dst, dst_rs, j0, cols, pc > 0, scale, last);
                    // SAFETY (the three): the rows hold kc values from pc, the panel kc x NR;
                    // the tiles lie in dst (caller).
                    // A narrow last panel (the mask products' 4 columns, 56 = 4·12 + 8, 64 =
                    // 5·12 + 4) takes a taller tile, 8 accumulators, instead of multiplying
                    // zeros.
                    let (a, b) = ((lhs, lhs_rs, pc), (b, NR));
                    if cols <= 4 {
                        unsafe { tiles::<8, 1>(ic..ic + mc, m, a, kc, b, at) }
                    } else if cols <= 8 {
                        unsafe { tiles::<4, 2>(ic..ic + mc, m, a, kc, b, at) }
                    } else {
                        unsafe { tiles::<MR, NV>(ic..ic + mc, m, a, kc, b, at) }
                    }
                }
            }
        }
    }

    /// [`multiply`] by the first `n` columns (a multiple of `NR`) of a row-major `rhs` (row
    /// stride given) read in place.
    ///
    /// # Safety
    /// As [`multiply`], with `k x n` values of `rhs` valid for reading.
    unsafe fn multiply_in_place(
        [m, n, k]: [usize; 3],
        (dst, dst_rs): (*mut f32, usize),
        (lhs, lhs_rs): (*const f32, usize),
        (rhs, rhs_rs): (*const f32, usize),
        scale: f32,
        epi: Epilogue,
    ) {
        debug_assert!(n.is_multiple_of(NR));
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            for j0 in (0..n).step_by(NR) {
                let last = (pc + kc == k).then(|| epi.from(0, j0));
                let at = (dst, dst_rs, j0, NR, pc > 0, scale, last);
                // SAFETY: the rows hold kc values from pc, rows pc..pc+kc of rhs hold NR
                // values from j0; the tiles lie in dst (caller).
                unsafe {
                    let b = rhs.add(pc * rhs_rs + j0);
                    tiles::<MR, NV>(0..m, m, (lhs, lhs_rs, pc), kc, (b, rhs_rs), at)
                }
            }
        }
    }

    /// The `R x 4V` tiles of rows `rows` (of `m`) against one panel `b` (`kc` steps, row
    /// stride given: `NR` when packed), columns `j0..j0 + cols` of `dst`. With relaxed SIMD this
    /// loop is compiled for it too, so that [`kernel`] (and the epilogue's GELU) inline into it:
    /// one call a panel instead of one a tile (ViT-B's embedding -2%, MobileSAM's -3 to -6%
    /// under WASI, BENCHMARKS.md "Session 12").
    ///
    /// # Safety
    /// As [`kernel`], for every tile.
    #[cfg_attr(not(feature = "relaxed-simd"), inline(always))]
    #[cfg_attr(
        feature = "relaxed-simd",
        target_feature(enable = "relaxed-simd"),
        inline
    )]
    unsafe fn tiles<const R: usize, const V: usize>(
        rows: core::ops::Range<usize>,
        m: usize,
        (lhs, lhs_rs, pc): (*const f32, usize, usize),
        kc: usize,
        b: (*const f32, usize),
        at: TileAt,
    ) {
        let (dst, dst_rs, j0, cols, accumulate, scale, last) = at;
        for i0 in rows.step_by(R) {
            let rows = R.min(m - i0);
            let tile = Tile {
                dst: unsafe { dst.add(i0 * dst_rs + j0) },
                rs: dst_rs,
                rows,
                cols,
                accumulate,
                scale,
            };
            // Rows past the last are read from the last (and not written).
            let a: [*const f32; R] =
                core::array::from_fn(|r| unsafe { lhs.add((i0 + r.min(rows - 1)) * lhs_rs + pc) });
            unsafe { kernel::<R, V>(kc, a, b, tile) };
            // The epilogue on the tile just stored, while it is in cache (the kernel itself is
            // left as it is: an epilogue inside it slowed its loop down).
            if let Some(e) = last {
                // SAFETY: the tile's rows x cols lie in dst (caller).
                unsafe { tile_epilogue(e.from(i0, 0), tile) };
            }
        }
    }

    /// Where [`tiles`] go: `dst` and its row stride, the first column, the columns, whether
    /// to add to what is there, the scale, and the epilogue (from column `j0`) when this is
    /// the last depth block.
    type TileAt<'a> = (
        *mut f32,
        usize,
        usize,
        usize,
        bool,
        f32,
        Option<Epilogue<'a>>,
    );

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

    /// [`Epilogue::apply`] on one stored tile (`e` from the tile's first row and column).
    ///
    /// # Safety
    /// The tile's `rows x cols` values must lie in `dst`.
    #[inline(always)]
    unsafe fn tile_epilogue(e: Epilogue, t: Tile) {
        for i in 0..t.rows {
            // SAFETY: row i of the tile (caller).
            let row = unsafe { core::slice::from_raw_parts_mut(t.dst.add(i * t.rs), t.cols) };
            e.apply_to_row(i, row);
        }
    }

    /// One `R x 4V` tile (at most `MR x NR`) from `kc` steps of `R` rows of `lhs` (read in
    /// place, one value a step each) and a panel of `rhs` (`4V` values a step, steps `b_rs`
    /// apart: `NR` when packed, the row stride when read in place), each step's products added
    /// by [`madd`]. With relaxed SIMD the kernel is compiled for it, and inlined into [`tiles`].
    ///
    /// # Safety
    /// Each row pointer must hold `kc` values, each of the panel's `kc` steps `4V` values, and
    /// the tile's `rows x cols` must lie in `dst`.
    #[cfg_attr(not(feature = "relaxed-simd"), inline(always))]
    #[cfg_attr(
        feature = "relaxed-simd",
        target_feature(enable = "relaxed-simd"),
        inline
    )]
    unsafe fn kernel<const R: usize, const V: usize>(
        kc: usize,
        a: [*const f32; R],
        (b, b_rs): (*const f32, usize),
        t: Tile,
    ) {
        let mut acc = [[f32x4_splat(0.0); V]; R];
        for s in 0..kc {
            // SAFETY: step s of both panels is in bounds (caller).
            unsafe {
                let b = b.add(s * b_rs);
                let bv: [v128; V] = core::array::from_fn(|j| v128_load(b.add(4 * j).cast()));
                for (i, acc) in acc.iter_mut().enumerate() {
                    let ai = v128_load32_splat(a[i].add(s).cast());
                    for (acc, &bv) in acc.iter_mut().zip(&bv) {
                        *acc = madd(ai, bv, *acc);
                    }
                }
            }
        }
        let scale = f32x4_splat(t.scale);
        if t.rows == R && t.cols == 4 * V {
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
            let mut values = [[0.0f32; NR]; R];
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

    /// The epilogue done as the tiles are stored ([`matmul_parallel_with`]) gives the values of
    /// the product followed by the plain pass ([`Epilogue::apply`]), bit for bit, on every
    /// path of the product (few rows read in place or packed, transposed, several depth
    /// blocks, narrow last panels, no depth at all) and for both kinds of bias, with and
    /// without GELU.
    #[test]
    fn epilogue_matches_plain_pass() {
        let value = |i: usize| ((i * 7919 % 1013) as f32) / 1013.0 - 0.5;
        for &(m, n, k) in &[
            (2, 16, 3),
            (3, 17, 300),
            (121, 33, 257),
            (8, 200, 40),
            (56, 260, 600),
            (64, 4096, 16),
            (5, 20, 0),
        ] {
            for transposed in [false, true] {
                let (lhs_rs, dst_rs) = (k + 3, n + 2);
                let lhs: Vec<f32> = (0..m * lhs_rs).map(value).collect();
                let rhs: Vec<f32> = (0..k * n).map(|i| value(i + 17) * 4.0).collect();
                let (rs, cs) = if transposed { (1, k) } else { (n, 1) };
                let col_bias: Vec<f32> = (0..n).map(|i| value(i + 5)).collect();
                let row_bias: Vec<f32> = (0..m).map(|i| value(i + 9)).collect();
                for bias in [
                    None,
                    Some(Bias::Columns(&col_bias)),
                    Some(Bias::Rows(&row_bias)),
                ] {
                    for gelu in [false, true] {
                        let epi = Epilogue { bias, gelu };
                        let mut fused = vec![f32::NAN; m * dst_rs];
                        let mut plain = vec![f32::NAN; m * dst_rs];
                        let operands = |dst: &mut Vec<f32>| {
                            (
                                (dst.as_mut_ptr(), dst_rs),
                                (lhs.as_ptr(), lhs_rs),
                                (rhs.as_ptr(), rs, cs),
                            )
                        };
                        // SAFETY: the buffers hold the shapes and strides given.
                        unsafe {
                            let (d, l, r) = operands(&mut fused);
                            matmul_parallel_with([m, n, k], d, l, r, 0.75, epi);
                            let (d, l, r) = operands(&mut plain);
                            matmul_parallel([m, n, k], d, l, r, 0.75);
                            epi.apply(m, n, d, true);
                        }
                        for (i, (f, p)) in fused.iter().zip(&plain).enumerate() {
                            assert!(
                                f.to_bits() == p.to_bits(),
                                "[{m}, {n}, {k}] transposed {transposed} {epi:?} at {i}: {f} vs {p}"
                            );
                        }
                    }
                }
            }
        }
    }

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
            (37, 4, 40),
            (19, 56, 70),
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
