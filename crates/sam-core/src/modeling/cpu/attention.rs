//! The image encoders' attention core, from the qkv projection to the heads' outputs: TinyViT's
//! window attention (a learned bias per head) and the ViT's window and global attention
//! (decomposed relative positions), one head of one window at a time, a block of queries at a
//! time.

use super::*;
pub use crate::modeling::ops::QkvLayout;

/// Shape of a [`window_attention`]: `heads` heads of `key_dim` (q and k) and `val_dim` (v),
/// over the `window x window` windows of a `[batch, height, width]` grid of tokens (the last
/// windows of a row or column padded past the grid). Global attention is one window the size
/// of the grid.
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
    pub layout: QkvLayout,
}

/// What [`window_attention`] adds to the scaled logits before the softmax.
#[derive(Clone, Copy, Debug)]
pub enum AttentionBias<'a> {
    /// TinyViT's learned bias, `[heads, n, n]` (`n = window²`).
    Table(&'a [f32]),
    /// The ViT's decomposed relative positions, `get_rel_pos` tables `[window, window,
    /// key_dim]` along the rows (`h`) and the columns (`w`) of the window: the logit of query
    /// (qy, qx) and key (ky, kx) gets `(logit + q·h[qy, ky]) + q·w[qx, kx]`, of the unscaled
    /// query (the official `add_decomposed_rel_pos`).
    RelPos { h: &'a [f32], w: &'a [f32] },
}

impl WindowAttention {
    /// Values of one token's qkv projection.
    pub(super) fn row(&self) -> usize {
        self.heads * (2 * self.key_dim + self.val_dim)
    }

    /// Offsets of head `h`'s q, k and v in a token's qkv projection.
    pub(super) fn offsets(&self, h: usize) -> (usize, usize, usize) {
        let (kd, d) = (self.key_dim, self.val_dim);
        match self.layout {
            QkvLayout::PerHead => {
                let base = h * (2 * kd + d);
                (base, base + kd, base + 2 * kd)
            }
            QkvLayout::Split => {
                let keys = self.heads * kd;
                (h * kd, keys + h * kd, 2 * keys + h * d)
            }
        }
    }
}

/// The largest block of logits (values) computed at once for one head: 1 MiB, so that a
/// block of ViT-B's global attention (64 queries by 4096 keys) stays in L2 from its product
/// through the softmax into the product by the values, instead of a 64 MiB matrix a head
/// going out to memory and back three times.
pub const LOGITS_BLOCK: usize = 1 << 18;

/// The attention core on host memory: for every head of every window,
/// `softmax(q·kᵀ·scale + bias) · v`, from the qkv projection of the token grid `qkv`
/// `[batch, height, width, heads·(2·key_dim + val_dim)]` (laid out as `a.layout` says) and
/// `pad`, the projection of one padding token (the official blocks pad to whole windows with
/// zero tokens: their q, k and v are all this row). Returns the heads' outputs of the grid's
/// tokens, `[batch, height, width, heads·val_dim]`, ready for the output projection.
///
/// Each (window, head) gathers its q, k and v (no copies for the padding, the partition or
/// the head split), and its queries go through in blocks of at most [`LOGITS_BLOCK`] logits:
/// product by the keys, bias and softmax while the block is in cache, product by the values
/// (the softmax's normalisation applied to the outputs).
/// The padding's queries, whose outputs the official block crops away, are skipped. Both
/// products go through our matrix kernel and the softmax through the vectorised [`exp_f32`].
/// Windows, heads and blocks of queries are shared out over the cores.
pub fn window_attention(
    qkv: &[f32],
    pad: &[f32],
    bias: AttentionBias,
    a: WindowAttention,
) -> Vec<f32> {
    let (nh, ws, od) = (a.heads, a.window, a.heads * a.val_dim);
    let (h, w, n) = (a.height, a.width, ws * ws);
    assert!(ws > 0, "window attention: window size 0");
    assert_eq!(
        qkv.len(),
        a.batch * h * w * a.row(),
        "window attention qkv shape"
    );
    assert_eq!(pad.len(), a.row(), "window attention padding row");
    match bias {
        AttentionBias::Table(t) => assert_eq!(t.len(), nh * n * n, "window attention bias"),
        AttentionBias::RelPos { h: th, w: tw } => assert!(
            th.len() == n * a.key_dim && tw.len() == n * a.key_dim,
            "window attention relative position tables"
        ),
    }
    let windows = a.batch * h.div_ceil(ws) * w.div_ceil(ws);
    let mut out = vec![0.0f32; a.batch * h * w * od];
    // Raw pointers are not `Send`: the tasks get the output's address. Each (window, head)
    // writes its own tokens' columns of its head only.
    let dst = out.as_mut_ptr() as usize;
    for_each_index(
        windows * nh,
        true,
        || (),
        |_, item| attend_window_head(qkv, pad, bias, a, item / nh, item % nh, dst),
    );
    out
}

/// One head of one window of [`window_attention`], its outputs written to the grid at `dst`.
fn attend_window_head(
    qkv: &[f32],
    pad: &[f32],
    bias: AttentionBias,
    a: WindowAttention,
    window: usize,
    head: usize,
    dst: usize,
) {
    let (kd, d, ws, row) = (a.key_dim, a.val_dim, a.window, a.row());
    let (h, w, n, od) = (a.height, a.width, ws * ws, a.heads * a.val_dim);
    let (rows, cols) = (h.div_ceil(ws), w.div_ceil(ws));
    let (img, wy, wx) = (window / (rows * cols), window / cols % rows, window % cols);
    // Rows and columns of the window inside the grid.
    let (inside_h, inside_w) = (ws.min(h - wy * ws), ws.min(w - wx * ws));
    // The window's tokens in row-major order, padding past the grid.
    let token = |t: usize| {
        let (y, x) = (wy * ws + t / ws, wx * ws + t % ws);
        (y < h && x < w).then_some((img * h + y) * w + x)
    };
    let (qo, ko, vo) = a.offsets(head);
    let (mut q, mut k, mut v) = (
        Vec::with_capacity(n * kd),
        Vec::with_capacity(n * kd),
        Vec::with_capacity(n * d),
    );
    for t in 0..n {
        let r = match token(t) {
            Some(p) => &qkv[p * row..(p + 1) * row],
            None => pad,
        };
        q.extend_from_slice(&r[qo..qo + kd]);
        k.extend_from_slice(&r[ko..ko + kd]);
        v.extend_from_slice(&r[vo..vo + d]);
    }
    let (keys, values) = (Rhs::transposed(&k, kd, n), Rhs::new(&v, n, d));
    let rel = match bias {
        AttentionBias::RelPos { h: th, w: tw } => {
            rel_positions(&q, (th, tw), (ws, kd), (inside_h, inside_w))
        }
        AttentionBias::Table(_) => Vec::new(),
    };
    // Blocks of queries inside the grid: whole rows of the window at a time, or each row's
    // tokens inside the grid where the window crosses the grid's right edge.
    let per_block = (LOGITS_BLOCK / n).max(1);
    let blocks: Vec<(usize, usize)> = if inside_w == ws {
        (0..inside_h * ws)
            .step_by(per_block)
            .map(|t0| (t0, (t0 + per_block).min(inside_h * ws)))
            .collect()
    } else {
        (0..inside_h).map(|y| (y * ws, y * ws + inside_w)).collect()
    };
    let longest = blocks.iter().map(|&(t0, t1)| t1 - t0).max().unwrap_or(0);
    let scratch = || {
        (
            vec![0.0f32; longest * n],
            vec![0.0f32; longest * d],
            vec![0.0f32; longest],
        )
    };
    for_each_index(
        blocks.len(),
        blocks.len() > 1,
        scratch,
        |(logits, heads, inv), b| {
            let (t0, t1) = blocks[b];
            let m = t1 - t0;
            // SAFETY: `m` rows of `q` from t0 (kd values each), `m x n` of `logits`.
            unsafe {
                matmul_by(
                    m,
                    (logits.as_mut_ptr(), n),
                    (q.as_ptr().add(t0 * kd), kd),
                    &keys,
                    a.scale,
                )
            };
            widest(
                #[inline(always)]
                || {
                    let rows = logits[..m * n].chunks_exact_mut(n).zip(inv.iter_mut());
                    for (i, (s, inv)) in rows.enumerate() {
                        let t = t0 + i;
                        *inv = match bias {
                            AttentionBias::Table(table) => {
                                let base = (head * n + t) * n;
                                exp_row(s, Some(&table[base..base + n]))
                            }
                            AttentionBias::RelPos { .. } => {
                                let (rh, rw) = rel[t * 2 * ws..(t + 1) * 2 * ws].split_at(ws);
                                add_rel_pos_row(s, rh, rw);
                                exp_row(s, None)
                            }
                        }
                    }
                },
            );
            // SAFETY: `m x n` of `logits`, `m x d` of `heads`.
            unsafe {
                matmul_by(
                    m,
                    (heads.as_mut_ptr(), d),
                    (logits.as_ptr(), n),
                    &values,
                    1.0,
                )
            };
            // Each query's outputs scaled by its 1 / Σ (the softmax's normalisation, done on
            // its d outputs instead of its n probabilities).
            for (i, (r, &inv)) in heads[..m * d].chunks_exact(d).zip(&*inv).enumerate() {
                let p = token(t0 + i).expect("a query inside the grid");
                // SAFETY: head `head`'s columns of token p of the output grid, written by this
                // (window, head) only.
                let out = unsafe {
                    core::slice::from_raw_parts_mut((dst as *mut f32).add(p * od + head * d), d)
                };
                out.iter_mut().zip(r).for_each(|(o, &v)| *o = v * inv);
            }
        },
    );
}

/// The decomposed relative-position terms of a window's queries inside the grid: for query `t`
/// = (qy, qx), `[q·h[qy, ky] for ky | q·w[qx, kx] for kx]` (`2·ws` values at `t·2·ws`; the
/// padding's rows stay 0). `q` is the window's `[ws², kd]` queries, unscaled; the tables are
/// `[ws, ws, kd]`. One product per row of queries (by `h[qy]ᵀ`) and per column (by `w[qx]ᵀ`),
/// as the official einsums.
fn rel_positions(
    q: &[f32],
    (th, tw): (&[f32], &[f32]),
    (ws, kd): (usize, usize),
    (inside_h, inside_w): (usize, usize),
) -> Vec<f32> {
    let mut rel = vec![0.0f32; ws * ws * 2 * ws];
    for qy in 0..inside_h {
        // SAFETY: `inside_w` queries of row qy (kd apart) by the kd x ws transpose of h[qy],
        // into their rows' first ws values.
        unsafe {
            matmul(
                [inside_w, ws, kd],
                (rel.as_mut_ptr().add(qy * ws * 2 * ws), 2 * ws),
                (q.as_ptr().add(qy * ws * kd), kd),
                (th.as_ptr().add(qy * ws * kd), 1, kd),
                1.0,
            )
        };
    }
    for qx in 0..inside_w {
        // SAFETY: `inside_h` queries of column qx (ws·kd apart) by the transpose of w[qx],
        // into their rows' last ws values.
        unsafe {
            matmul(
                [inside_h, ws, kd],
                (rel.as_mut_ptr().add(qx * 2 * ws + ws), ws * 2 * ws),
                (q.as_ptr().add(qx * kd), ws * kd),
                (tw.as_ptr().add(qx * ws * kd), 1, kd),
                1.0,
            )
        };
    }
    rel
}
