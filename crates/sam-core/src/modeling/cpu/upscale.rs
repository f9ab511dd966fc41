//! The mask decoder's output upscaling and mask products, one grid row at a time.

use super::*;

/// Shape of [`upscale_masks`]: an `h` x `w` grid of `c`-channel pixels, upscaled twice by 2
/// (to `c1`, then `c2` channels), then `masks` products with the hypernetwork outputs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Upscale {
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub c1: usize,
    pub c2: usize,
    pub masks: usize,
    /// The LayerNorm2d's eps.
    pub eps: f32,
}

/// The weights of [`upscale_masks`], on the host.
pub struct UpscaleWeights<'a> {
    /// First ConvTranspose 2x2/2 per pixel: `[c, 4·c1]`, columns (di, dj, channel), and bias.
    pub w0: &'a [f32],
    pub b0: &'a [f32],
    /// LayerNorm2d weight and bias `[c1]`.
    pub ln_w: &'a [f32],
    pub ln_b: &'a [f32],
    /// Second ConvTranspose 2x2/2 per pixel: `[c1, 4·c2]`, columns (ei, ej, channel), and bias.
    pub w3: &'a [f32],
    pub b3: &'a [f32],
}

/// SAM's mask decoder output on host memory, for one image: `output_upscaling` (ConvTranspose,
/// LayerNorm2d, GELU, ConvTranspose, GELU) and the product with the hypernetwork outputs,
/// one row of the grid at a time, so that the upscaled embedding (`[c2, 4h, 4w]`, 8 MiB) is
/// never made: `src` `[h·w, c]` (pixel (i, j), channels last), `hyper` `[masks, c2]` →
/// `[masks, 4h, 4w]`, mask `m` at (4i + 2di + ei, 4j + 2dj + ej) being
/// `hyper[m] · GELU(GELU(LN(src[i, j]·w0 + b0)[di, dj])·w3 + b3)[ei, ej]`.
pub fn upscale_masks(src: &[f32], hyper: &[f32], wt: &UpscaleWeights, u: Upscale) -> Vec<f32> {
    let Upscale {
        h,
        w,
        c,
        c1,
        c2,
        masks,
        eps,
    } = u;
    assert_eq!(src.len(), h * w * c, "upscale input shape");
    assert_eq!(hyper.len(), masks * c2, "hypernetwork output shape");
    assert_eq!(wt.w0.len(), c * 4 * c1, "first upscaling weight shape");
    assert_eq!(wt.w3.len(), c1 * 4 * c2, "second upscaling weight shape");
    assert!(
        wt.b0.len() == 4 * c1 && wt.b3.len() == 4 * c2,
        "upscaling bias shapes"
    );
    assert!(
        wt.ln_w.len() == c1 && wt.ln_b.len() == c1,
        "LayerNorm2d shapes"
    );
    let (w0, w3) = (Rhs::new(wt.w0, c, 4 * c1), Rhs::new(wt.w3, c1, 4 * c2));
    // The mask products as the official `hyper_in @ upscaled`: a matrix product by the
    // hypernetwork outputs, transposed to [c2, masks].
    let hyper_t: Vec<f32> = (0..c2 * masks)
        .map(|i| hyper[(i % masks) * c2 + i / masks])
        .collect();
    let hyper_t = Rhs::new(&hyper_t, c2, masks);
    // The two upscaled rows and the products are scratch buffers reused row after row (one
    // set per thread): the products overwrite them whole.
    let scratch = || {
        (
            vec![0.0f32; w * 4 * c1],
            vec![0.0f32; 4 * w * 4 * c2],
            vec![0.0f32; 16 * w * masks],
        )
    };
    type Scratch = (Vec<f32>, Vec<f32>, Vec<f32>);
    // One grid row i → output rows 4i..4i+4 of every mask: [masks, 4, 4w].
    let row = |(y1, y2, products): &mut Scratch, i: usize| -> Vec<f32> {
        // SAFETY: the operands are these buffers with the given row-major shapes.
        unsafe {
            matmul_by(
                w,
                (y1.as_mut_ptr(), 4 * c1),
                (src.as_ptr().add(i * w * c), c),
                &w0,
                1.0,
            );
        }
        // Rows (j, di, dj) of c1 channels: bias, LayerNorm, GELU.
        widest(
            #[inline(always)]
            || {
                for (k, v) in y1.chunks_exact_mut(c1).enumerate() {
                    let b = &wt.b0[(k % 4) * c1..(k % 4 + 1) * c1];
                    for (x, &bv) in v.iter_mut().zip(b) {
                        *x += bv;
                    }
                    normalize_row(v, wt.ln_w, wt.ln_b, eps);
                    gelu_values(v);
                }
            },
        );
        unsafe {
            matmul_by(
                4 * w,
                (y2.as_mut_ptr(), 4 * c2),
                (y1.as_ptr(), c1),
                &w3,
                1.0,
            )
        };
        // Rows (j, di, dj, ei, ej) of c2 channels: bias, GELU, then the mask products.
        widest(
            #[inline(always)]
            || {
                for (k, v) in y2.chunks_exact_mut(c2).enumerate() {
                    let b = &wt.b3[(k % 4) * c2..(k % 4 + 1) * c2];
                    for (x, &bv) in v.iter_mut().zip(b) {
                        *x += bv;
                    }
                    gelu_values(v);
                }
            },
        );
        unsafe {
            matmul_by(
                16 * w,
                (products.as_mut_ptr(), masks),
                (y2.as_ptr(), c2),
                &hyper_t,
                1.0,
            )
        };
        let mut out = vec![0.0f32; masks * 4 * 4 * w];
        for (k, p) in products.chunks_exact(masks).enumerate() {
            let (j, di, dj, ei, ej) = (k / 16, k / 8 % 2, k / 4 % 2, k / 2 % 2, k % 2);
            let (r, col) = (2 * di + ei, 4 * j + 2 * dj + ej);
            for (m, &v) in p.iter().enumerate() {
                out[(m * 4 + r) * 4 * w + col] = v;
            }
        }
        out
    };
    #[cfg(any(not(target_family = "wasm"), feature = "threads"))]
    let rows: Vec<Vec<f32>> = (0..h).into_par_iter().map_init(scratch, row).collect();
    #[cfg(all(target_family = "wasm", not(feature = "threads")))]
    let rows: Vec<Vec<f32>> = {
        let mut buffers = scratch();
        (0..h).map(|i| row(&mut buffers, i)).collect()
    };
    let mut masks_out = vec![0.0f32; masks * 16 * h * w];
    for (i, block) in rows.iter().enumerate() {
        for m in 0..masks {
            let dst = (m * 4 * h + 4 * i) * 4 * w;
            masks_out[dst..dst + 16 * w].copy_from_slice(&block[m * 16 * w..(m + 1) * 16 * w]);
        }
    }
    masks_out
}
