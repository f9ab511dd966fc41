//! TinyViT's windowed attention core, from the qkv projection to the heads' outputs.

use super::*;

/// Shape of a [`window_attention`]: `heads` heads of `key_dim` (q and k) and `val_dim` (v)
/// over windows of `tokens` tokens.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowAttention {
    pub heads: usize,
    pub key_dim: usize,
    pub val_dim: usize,
    pub tokens: usize,
    pub scale: f32,
}

/// TinyViT's attention core on host memory: for every window and head,
/// `softmax(q·kᵀ·scale + bias) · v`. q, k and v are read in place from the qkv projection
/// `[windows, tokens, heads·(2·key_dim + val_dim)]` (per head `[q | k | v]`, the official
/// split) and the result is written as `[windows, tokens, heads·val_dim]`, ready for the
/// output projection: no copies for the head split or merge. `bias` is `[heads, tokens,
/// tokens]`. The two products go through gemm (the kernel burn's CPU backend uses) and the
/// softmax through the vectorised [`exp_f32`]; burn-flex's own attention takes a scalar `expf`
/// per score.
pub fn window_attention(qkv: &[f32], bias: &[f32], a: WindowAttention) -> Vec<f32> {
    let (nh, kd, d, n) = (a.heads, a.key_dim, a.val_dim, a.tokens);
    let row = nh * (2 * kd + d);
    assert!(
        n > 0 && qkv.len().is_multiple_of(n * row),
        "window attention qkv shape"
    );
    assert_eq!(bias.len(), nh * n * n, "window attention bias shape");
    let windows = qkv.len() / (n * row);
    let mut out = vec![0.0f32; windows * n * nh * d];
    let run = |scores: &mut Vec<f32>, (win, out): (usize, &mut [f32])| {
        let qkv = &qkv[win * n * row..(win + 1) * n * row];
        for h in 0..nh {
            let base = h * (2 * kd + d);
            // SAFETY: every operand lies inside `qkv`, `scores` or this window's `out`, with
            // the strides given (rows of `row` values; k read transposed).
            unsafe {
                matmul(
                    [n, n, kd],
                    (scores.as_mut_ptr(), n),
                    (qkv.as_ptr().add(base), row),
                    (qkv.as_ptr().add(base + kd), 1, row),
                    a.scale,
                );
            }
            let b = &bias[h * n * n..(h + 1) * n * n];
            widest(
                #[inline(always)]
                || softmax_rows_with_bias(scores, b, n),
            );
            unsafe {
                matmul(
                    [n, d, n],
                    (out.as_mut_ptr().add(h * d), nh * d),
                    (scores.as_ptr(), n),
                    (qkv.as_ptr().add(base + 2 * kd), row, 1),
                    1.0,
                );
            }
        }
    };
    let window_out = n * nh * d;
    #[cfg(any(not(target_family = "wasm"), feature = "threads"))]
    out.par_chunks_mut(window_out)
        .enumerate()
        .for_each_init(|| vec![0.0f32; n * n], run);
    #[cfg(all(target_family = "wasm", not(feature = "threads")))]
    {
        let mut scores = vec![0.0f32; n * n];
        out.chunks_mut(window_out)
            .enumerate()
            .for_each(|item| run(&mut scores, item));
    }
    out
}
