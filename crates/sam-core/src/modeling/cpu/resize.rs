//! Separable resampling of planes (the predictor's mask postprocessing on the CPU backend).

use std::mem::MaybeUninit;

use super::for_each_chunk;

/// Resamples each of `planes` `in_h` x `in_w` planes of `src` to `ty.len()` x `tx.len()`:
/// output `(y, x)` of a plane is `Σ ty[y][s].1 · tx[x][t].1 · src[ty[y][s].0, tx[x][t].0]`
/// over the four taps of each axis (`(input index, weight)`, unused ones weight 0 and
/// skipped when every output has them so). The two axes one after the other: first each
/// input row that an output reads is resampled across (a gather of up to four taps per
/// output column, on those few rows only), then every output row is a weighted sum of up
/// to four of those rows (contiguous, vectorised). Both passes row by row on all cores
/// ([`for_each_chunk`]); both buffers are written once, value by value, without zeroing them
/// first (in WebAssembly a `memset` of 12 MiB a click).
pub fn resample_separable(
    src: &[f32],
    (planes, in_h, in_w): (usize, usize, usize),
    ty: &[[(u32, f32); 4]],
    tx: &[[(u32, f32); 4]],
) -> Vec<f32> {
    assert_eq!(src.len(), planes * in_h * in_w, "resample input shape");
    let (h, w) = (ty.len(), tx.len());
    let in_range = |taps: &[[(u32, f32); 4]], len: usize| {
        taps.iter().flatten().all(|&(i, _)| (i as usize) < len)
    };
    assert!(in_range(ty, in_h) && in_range(tx, in_w), "resample taps");
    // Taps past the last one with a weight are skipped; so are input rows no output reads.
    let used = |taps: &[[(u32, f32); 4]]| {
        taps.iter()
            .map(|t| t.iter().rposition(|x| x.1 != 0.0).map_or(0, |i| i + 1))
            .max()
            .unwrap_or(0)
    };
    let (ny, nx) = (used(ty), used(tx));
    let rows = ty
        .iter()
        .flat_map(|t| t[..ny].iter().map(|x| x.0 as usize + 1))
        .max()
        .unwrap_or(0);
    if planes * h * w == 0 || w == 0 {
        return vec![0.0; planes * h * w];
    }
    let parallel = planes * h * w >= 1 << 16;

    // Across: [plane, row < rows, w].
    let mut across = Vec::with_capacity(planes * rows * w);
    for_each_chunk(
        &mut across.spare_capacity_mut()[..planes * rows * w],
        w,
        parallel,
        |k, dst| {
            let (plane, i) = (k / rows, k % rows);
            let line = &src[(plane * in_h + i) * in_w..][..in_w];
            for (d, t) in dst.iter_mut().zip(tx) {
                d.write(t[..nx].iter().map(|&(j, wt)| wt * line[j as usize]).sum());
            }
        },
    );
    // SAFETY: every value was written above (each of the planes·rows chunks of w values).
    unsafe { across.set_len(planes * rows * w) };

    // Down: [plane, h, w], each output row from up to four rows of `across`.
    let mut out = Vec::with_capacity(planes * h * w);
    if rows == 0 {
        return vec![0.0; planes * h * w];
    }
    for_each_chunk(
        &mut out.spare_capacity_mut()[..planes * h * w],
        w,
        parallel,
        |k, dst| {
            let (plane, y) = (k / h, k % h);
            let across = &across[plane * rows * w..][..rows * w];
            let taps = &ty[y];
            let line = |t: usize| (&across[taps[t].0 as usize * w..][..w], taps[t].1);
            match ny {
                1 => weighted_sum(dst, [line(0)]),
                2 => weighted_sum(dst, [line(0), line(1)]),
                3 => weighted_sum(dst, [line(0), line(1), line(2)]),
                _ => weighted_sum(dst, [line(0), line(1), line(2), line(3)]),
            }
        },
    );
    // SAFETY: every value was written above (each of the planes·h rows of w values).
    unsafe { out.set_len(planes * h * w) };
    out
}

/// `dst = Σ weight · line` over `N` (line, weight) pairs, summed in order.
#[inline(always)]
fn weighted_sum<const N: usize>(dst: &mut [MaybeUninit<f32>], lines: [(&[f32], f32); N]) {
    let lines = lines.map(|(line, wt)| (&line[..dst.len()], wt));
    for (x, d) in dst.iter_mut().enumerate() {
        let mut v = lines[0].1 * lines[0].0[x];
        for &(line, wt) in &lines[1..] {
            v += wt * line[x];
        }
        d.write(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition: every output the double sum over its taps.
    #[test]
    fn resample_matches_the_definition() {
        let (planes, in_h, in_w) = (3, 9, 7);
        let src: Vec<f32> = (0..planes * in_h * in_w)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let taps = |n: usize, len: usize, k: usize| -> Vec<[(u32, f32); 4]> {
            (0..n)
                .map(|o| {
                    let mut t = [(0u32, 0f32); 4];
                    for (s, tap) in t.iter_mut().enumerate().take(k) {
                        *tap = (((o + s * 3) % len) as u32, 0.1 + 0.2 * s as f32);
                    }
                    t
                })
                .collect()
        };
        for (ky, kx) in [(1, 2), (2, 2), (3, 4), (4, 1)] {
            let (ty, tx) = (taps(11, in_h, ky), taps(300, in_w, kx));
            let out = resample_separable(&src, (planes, in_h, in_w), &ty, &tx);
            for p in 0..planes {
                for (y, row_taps) in ty.iter().enumerate() {
                    for (x, col_taps) in tx.iter().enumerate() {
                        let mut e = 0.0f64;
                        for &(i, wy) in row_taps {
                            for &(j, wx) in col_taps {
                                let v = src[(p * in_h + i as usize) * in_w + j as usize];
                                e += wy as f64 * wx as f64 * v as f64;
                            }
                        }
                        let got = out[(p * 11 + y) * 300 + x];
                        assert!(
                            (got as f64 - e).abs() < 1e-4,
                            "({p}, {y}, {x}): {got} vs {e}"
                        );
                    }
                }
            }
        }
    }
}
