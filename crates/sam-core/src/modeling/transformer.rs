//! The two-way transformer of SAM's mask decoder (official `modeling/transformer.py`):
//! tokens attend to the image and the image attends back to the tokens.

use burn::tensor::Tensor;

use super::common::{Activation, LayerNorm, Linear, MlpBlock};
use super::ops::{contiguous, matmul, matmul_t, softmax_last};
use crate::error::Result;
use crate::weights::WeightLoader;

mod folded;
pub use folded::ImageKeys;

/// The official `TwoWayTransformer` (depth 2, width 256, MLP 2048, 8 heads, downsample 2).
#[derive(Clone, Debug)]
pub struct TwoWayTransformer {
    layers: Vec<TwoWayAttentionBlock>,
    final_attn_token_to_image: Attention,
    norm_final_attn: LayerNorm,
}

impl TwoWayTransformer {
    pub fn new(
        w: &WeightLoader,
        depth: usize,
        dim: usize,
        num_heads: usize,
        mlp_dim: usize,
    ) -> Result<Self> {
        let layers = (0..depth)
            .map(|i| {
                TwoWayAttentionBlock::new(&w.pb("layers").pb(i), dim, num_heads, mlp_dim, i == 0)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            layers,
            final_attn_token_to_image: Attention::new(
                &w.pb("final_attn_token_to_image"),
                dim,
                num_heads,
                2,
            )?,
            norm_final_attn: LayerNorm::new(&w.pb("norm_final_attn"), dim, 1e-5)?,
        })
    }

    /// The final token-to-image attention and norm.
    fn finish(
        &self,
        queries: Tensor<3>,
        keys: Tensor<3>,
        point_embedding: Tensor<3>,
        key_pe: &Tensor<3>,
    ) -> (Tensor<3>, Tensor<3>) {
        let q = queries.clone() + point_embedding;
        let k = keys.clone() + key_pe.clone();
        let attn_out = self
            .final_attn_token_to_image
            .tokens_to_image(q, k, keys.clone());
        let queries = self.norm_final_attn.forward(queries + attn_out);
        (queries, keys)
    }

    /// `image_embedding`, `image_pe` `[B, C, H, W]`, `point_embedding` `[B, N, C]` →
    /// (processed tokens `[B, N, C]`, processed image `[B, HW, C]`).
    pub fn forward(
        &self,
        image_embedding: Tensor<4>,
        image_pe: Tensor<4>,
        point_embedding: Tensor<3>,
    ) -> (Tensor<3>, Tensor<3>) {
        let keys = pixel_rows(image_embedding);
        let key_pe = pixel_rows(image_pe);
        let mut queries = point_embedding.clone();
        let mut keys = keys;
        for layer in &self.layers {
            (queries, keys) = layer.forward(queries, keys, &point_embedding, &key_pe);
        }
        self.finish(queries, keys, point_embedding, &key_pe)
    }
}

/// `[B, C, H, W]` → rows of pixels `[B, HW, C]`, materialised once.
fn pixel_rows(x: Tensor<4>) -> Tensor<3> {
    contiguous(x.flatten::<3>(2, 3).swap_dims(1, 2))
}

/// The official `TwoWayAttentionBlock`.
#[derive(Clone, Debug)]
struct TwoWayAttentionBlock {
    self_attn: Attention,
    norm1: LayerNorm,
    cross_attn_token_to_image: Attention,
    norm2: LayerNorm,
    mlp: MlpBlock,
    norm3: LayerNorm,
    norm4: LayerNorm,
    cross_attn_image_to_token: Attention,
    skip_first_layer_pe: bool,
}

impl TwoWayAttentionBlock {
    fn new(
        w: &WeightLoader,
        dim: usize,
        num_heads: usize,
        mlp_dim: usize,
        skip_first_layer_pe: bool,
    ) -> Result<Self> {
        Ok(Self {
            self_attn: Attention::new(&w.pb("self_attn"), dim, num_heads, 1)?,
            norm1: LayerNorm::new(&w.pb("norm1"), dim, 1e-5)?,
            cross_attn_token_to_image: Attention::new(
                &w.pb("cross_attn_token_to_image"),
                dim,
                num_heads,
                2,
            )?,
            norm2: LayerNorm::new(&w.pb("norm2"), dim, 1e-5)?,
            mlp: MlpBlock::new(&w.pb("mlp"), dim, mlp_dim, Activation::Relu)?,
            norm3: LayerNorm::new(&w.pb("norm3"), dim, 1e-5)?,
            norm4: LayerNorm::new(&w.pb("norm4"), dim, 1e-5)?,
            cross_attn_image_to_token: Attention::new(
                &w.pb("cross_attn_image_to_token"),
                dim,
                num_heads,
                2,
            )?,
            skip_first_layer_pe,
        })
    }

    fn forward(
        &self,
        queries: Tensor<3>,
        keys: Tensor<3>,
        query_pe: &Tensor<3>,
        key_pe: &Tensor<3>,
    ) -> (Tensor<3>, Tensor<3>) {
        // Self attention of the tokens; the first layer replaces the queries outright.
        let queries = if self.skip_first_layer_pe {
            self.self_attn
                .forward(queries.clone(), queries.clone(), queries)
        } else {
            let q = queries.clone() + query_pe.clone();
            queries.clone() + self.self_attn.forward(q.clone(), q, queries)
        };
        let queries = self.norm1.forward(queries);

        // Tokens attend to the image.
        let q = queries.clone() + query_pe.clone();
        let k = keys.clone() + key_pe.clone();
        let queries = self.norm2.forward(
            queries
                + self
                    .cross_attn_token_to_image
                    .tokens_to_image(q, k.clone(), keys.clone()),
        );

        let queries = self
            .norm3
            .forward(queries.clone() + self.mlp.forward(queries));

        // The image attends to the tokens.
        let q = queries.clone() + query_pe.clone();
        let attn_out = self
            .cross_attn_image_to_token
            .image_to_tokens(k, q, queries.clone());
        let keys = self.norm4.forward_sum(keys, attn_out);
        (queries, keys)
    }
}

/// The official transformer `Attention`: projections to an internal width `dim / downsample`,
/// split into heads, scaled dot-product attention, output projection.
///
/// [`Attention::forward`] is the official forward, used for the tokens' self-attention. The
/// attentions between the tokens and the image take the folded variants of [`folded`] (the
/// same function, fewer than half the multiply-adds); the per-head weights below are theirs.
#[derive(Clone, Debug)]
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    num_heads: usize,
    /// `q_proj` weight per head, `[1, heads, dim, hd]`.
    q_heads: Tensor<4>,
    /// `q_proj` bias per head, `[1, heads, 1, hd]`.
    q_bias_heads: Tensor<4>,
    /// `k_proj` weight per head, transposed: `[1, heads, hd, dim]`.
    k_heads_t: Tensor<4>,
    /// `v_proj` weight per head, `[1, heads, dim, hd]`.
    v_heads: Tensor<4>,
    /// `v_proj` bias per head, `[1, heads, 1, hd]`.
    v_bias_heads: Tensor<4>,
    /// `out_proj` weight per head, `[1, heads, hd, dim]`.
    out_heads: Tensor<4>,
    /// `out_proj` bias, `[dim]`.
    out_bias: Tensor<1>,
}

impl Attention {
    fn new(w: &WeightLoader, dim: usize, num_heads: usize, downsample: usize) -> Result<Self> {
        let internal = dim / downsample;
        let hd = internal / num_heads;
        let q_proj = Linear::new(&w.pb("q_proj"), dim, internal, true)?;
        let k_proj = Linear::new(&w.pb("k_proj"), dim, internal, true)?;
        let v_proj = Linear::new(&w.pb("v_proj"), dim, internal, true)?;
        let out_proj = Linear::new(&w.pb("out_proj"), internal, dim, true)?;
        // [dim, internal] → [1, heads, dim, hd]
        let heads = |l: &Linear| {
            l.weight()
                .reshape([dim, num_heads, hd])
                .swap_dims(0, 1)
                .unsqueeze::<4>()
        };
        let bias_heads = |l: &Linear| {
            l.bias()
                .expect("attention projections have a bias")
                .reshape([1, num_heads, 1, hd])
        };
        Ok(Self {
            q_heads: heads(&q_proj),
            q_bias_heads: bias_heads(&q_proj),
            k_heads_t: heads(&k_proj).swap_dims(2, 3),
            v_heads: heads(&v_proj),
            v_bias_heads: bias_heads(&v_proj),
            out_heads: out_proj
                .weight()
                .reshape([num_heads, hd, dim])
                .unsqueeze::<4>(),
            out_bias: out_proj.bias().expect("attention projections have a bias"),
            q_proj,
            k_proj,
            v_proj,
            out_proj,
            num_heads,
        })
    }

    /// `[B, N, C]` → `[B, heads, N, C / heads]`.
    fn separate_heads(&self, x: Tensor<3>) -> Tensor<4> {
        let [b, n, c] = x.dims();
        x.reshape([b, n, self.num_heads, c / self.num_heads])
            .swap_dims(1, 2)
    }

    /// The official forward: `q` `[B, Nq, C]`, `k`, `v` `[B, Nk, C]` → `[B, Nq, C]`.
    fn forward(&self, q: Tensor<3>, k: Tensor<3>, v: Tensor<3>) -> Tensor<3> {
        let q = self.separate_heads(self.q_proj.forward(q));
        let k = self.separate_heads(self.k_proj.forward(k));
        let v = self.separate_heads(self.v_proj.forward(v));
        let [b, h, n, hd] = q.dims();
        let attn = matmul_t(q, k, 1.0 / (hd as f64).sqrt());
        let attn = softmax_last(attn);
        let out = matmul(attn, v).swap_dims(1, 2).reshape([b, n, h * hd]);
        self.out_proj.forward(out)
    }
}
