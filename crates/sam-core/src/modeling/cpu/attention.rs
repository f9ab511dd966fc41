//! TinyViT's windowed attention core, from the qkv projection to the heads' outputs.

use super::*;

/// Shape of a [`window_attention`]: `heads` heads of `key_dim` (q and k) and `val_dim` (v),
/// over the `window x window` windows of a `[batch, height, width]` grid of tokens (the last
/// windows of a row or column padded past the grid).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowAttention {
    pub heads: usize,
    pub key_dim: usize,
    pub val_dim: usize,
    pub window: usize,
    pub batch: usize,
    pub height: usize,
    pub width: usize,
    pub scale: f32,
}

impl WindowAttention {
    /// Values of one token's qkv projection: per head `[q | k | v]`.
    fn row(&self) -> usize {
        self.heads * (2 * self.key_dim + self.val_dim)
    }
}

/// TinyViT's attention core on host memory, window by window: for every head,
/// `softmax(q·kᵀ·scale + bias) · v`, from the qkv projection of the token grid `qkv`
/// `[batch, height, width, heads·(2·key_dim + val_dim)]` (per head `[q | k | v]`, the official
/// split) and `pad`, the projection of one padding token (the official block pads its input
/// with zeros to whole windows: their q, k and v are all this row). Returns the heads' outputs of
/// the grid's tokens, `[batch, height, width, heads·val_dim]`, ready for the output projection:
/// the windows are gathered and scattered here, with no copies for the padding, the partition or
/// the head split. `bias` is `[heads, n, n]` (`n = window²`). The two products go through our
/// matrix kernel and the softmax through the vectorised [`exp_f32`]; burn-flex's own attention
/// takes a scalar `expf` per score.
pub fn window_attention(qkv: &[f32], pad: &[f32], bias: &[f32], a: WindowAttention) -> Vec<f32> {
    let (nh, kd, d, ws) = (a.heads, a.key_dim, a.val_dim, a.window);
    let (row, n, od) = (a.row(), ws * ws, a.heads * a.val_dim);
    let (h, w) = (a.height, a.width);
    assert!(ws > 0, "window attention: window size 0");
    assert_eq!(
        qkv.len(),
        a.batch * h * w * row,
        "window attention qkv shape"
    );
    assert_eq!(pad.len(), row, "window attention padding row");
    assert_eq!(bias.len(), nh * n * n, "window attention bias shape");
    let (rows, cols) = (h.div_ceil(ws), w.div_ceil(ws));
    let windows = a.batch * rows * cols;
    let mut out = vec![0.0f32; a.batch * h * w * od];
    // Raw pointers are not `Send`: the windows get the output's address. Each window writes
    // its own tokens only.
    let dst = out.as_mut_ptr() as usize;
    type Scratch = (Vec<f32>, Vec<f32>, Vec<f32>);
    let scratch = || {
        (
            vec![0.0f32; n * n],
            vec![0.0f32; n * row],
            vec![0.0f32; n * od],
        )
    };
    let run = |(scores, local, heads): &mut Scratch, win: usize| {
        let (img, wy, wx) = (win / (rows * cols), win / cols % rows, win % cols);
        // The window's tokens in row-major order, padding past the grid.
        let token = |t: usize| {
            let (y, x) = (wy * ws + t / ws, wx * ws + t % ws);
            (y < h && x < w).then_some((img * h + y) * w + x)
        };
        for (t, r) in local.chunks_exact_mut(row).enumerate() {
            r.copy_from_slice(match token(t) {
                Some(p) => &qkv[p * row..(p + 1) * row],
                None => pad,
            });
        }
        for hd in 0..nh {
            let base = hd * (2 * kd + d);
            // SAFETY: every operand lies inside `local`, `scores` or `heads`, with the strides
            // given (rows of `row` values; k read transposed).
            unsafe {
                matmul(
                    [n, n, kd],
                    (scores.as_mut_ptr(), n),
                    (local.as_ptr().add(base), row),
                    (local.as_ptr().add(base + kd), 1, row),
                    a.scale,
                );
            }
            let b = &bias[hd * n * n..(hd + 1) * n * n];
            widest(
                #[inline(always)]
                || softmax_rows_with_bias(scores, b, n),
            );
            unsafe {
                matmul(
                    [n, d, n],
                    (heads.as_mut_ptr().add(hd * d), od),
                    (scores.as_ptr(), n),
                    (local.as_ptr().add(base + 2 * kd), row, 1),
                    1.0,
                );
            }
        }
        for (t, r) in heads.chunks_exact(od).enumerate() {
            if let Some(p) = token(t) {
                // SAFETY: token p of the output grid, written by this window only.
                unsafe {
                    core::slice::from_raw_parts_mut((dst as *mut f32).add(p * od), od)
                        .copy_from_slice(r)
                };
            }
        }
    };
    #[cfg(any(not(target_family = "wasm"), feature = "threads"))]
    (0..windows).into_par_iter().for_each_init(scratch, run);
    #[cfg(all(target_family = "wasm", not(feature = "threads")))]
    {
        let mut buffers = scratch();
        (0..windows).for_each(|win| run(&mut buffers, win));
    }
    out
}
