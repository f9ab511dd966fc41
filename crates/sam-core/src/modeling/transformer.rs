//! The two-way transformer of SAM's mask decoder (official `modeling/transformer.py`):
//! tokens attend to the image and the image attends back to the tokens.

use burn::tensor::Tensor;

use super::common::{
    Activation, LayerNorm, Linear, MlpBlock, add_bias, contiguous, matmul, matmul_t, softmax_last,
};
use crate::error::Result;
use crate::weights::WeightLoader;

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

    /// What the first layer computes from the image alone: `image_embedding` `[1, C, H, W]`
    /// (with the dense prompt added) and `image_pe` `[1, C, H, W]` as pixel rows, and the
    /// attention projections of the image side of its two cross-attentions.
    pub fn image_keys(&self, image_embedding: Tensor<4>, image_pe: Tensor<4>) -> ImageKeys {
        let [_, _, h, w] = image_embedding.dims();
        let keys = pixel_rows(image_embedding);
        let key_pe = pixel_rows(image_pe);
        let first = &self.layers[0];
        let k = keys.clone() + key_pe.clone();
        let t2i = &first.cross_attn_token_to_image;
        let i2t = &first.cross_attn_image_to_token;
        // Laid out per head once here, not by every prompt's products.
        ImageKeys {
            t2i_k: contiguous(t2i.separate_heads(t2i.k_proj.forward(k.clone()))),
            t2i_v: contiguous(t2i.separate_heads(t2i.v_proj.forward(keys.clone()))),
            i2t_q: contiguous(i2t.separate_heads(i2t.q_proj.forward(k))),
            keys,
            key_pe,
            size: (h, w),
        }
    }

    /// [`TwoWayTransformer::forward`] on an image whose first-layer work is done
    /// ([`TwoWayTransformer::image_keys`]), for `B` prompts `point_embedding` `[B, N, C]`.
    pub fn forward_with(
        &self,
        image: &ImageKeys,
        point_embedding: Tensor<3>,
    ) -> (Tensor<3>, Tensor<3>) {
        let (mut queries, mut keys) =
            self.layers[0].forward_first(point_embedding.clone(), image, &point_embedding);
        for layer in &self.layers[1..] {
            (queries, keys) = layer.forward(queries, keys, &point_embedding, &image.key_pe);
        }
        self.finish(queries, keys, point_embedding, &image.key_pe)
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

/// The prompt-independent part of the first two-way layer for one image (batch 1): the same
/// for every prompt without a mask input, so it is computed once per image
/// ([`TwoWayTransformer::image_keys`]).
#[derive(Clone, Debug)]
pub struct ImageKeys {
    /// The image (embedding + dense prompt) as pixel rows `[1, HW, C]`.
    keys: Tensor<3>,
    /// The positional encoding as pixel rows `[1, HW, C]`.
    key_pe: Tensor<3>,
    /// First layer, token-to-image keys and values per head `[1, heads, HW, hd]`.
    t2i_k: Tensor<4>,
    t2i_v: Tensor<4>,
    /// First layer, image-to-token queries per head `[1, heads, HW, hd]`.
    i2t_q: Tensor<4>,
    /// (H, W) of the embedding.
    size: (usize, usize),
}

impl ImageKeys {
    /// (H, W) of the image embedding.
    pub fn size(&self) -> (usize, usize) {
        self.size
    }
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

    /// [`TwoWayAttentionBlock::forward`] of the first layer (no positional encoding in its
    /// self-attention) with the image side already projected.
    fn forward_first(
        &self,
        queries: Tensor<3>,
        image: &ImageKeys,
        query_pe: &Tensor<3>,
    ) -> (Tensor<3>, Tensor<3>) {
        debug_assert!(self.skip_first_layer_pe);
        let queries = self
            .self_attn
            .forward(queries.clone(), queries.clone(), queries);
        let queries = self.norm1.forward(queries);
        let q = queries.clone() + query_pe.clone();
        let queries = self.norm2.forward(
            queries
                + self
                    .cross_attn_token_to_image
                    .tokens_to_projected(q, &image.t2i_k, &image.t2i_v),
        );
        let queries = self
            .norm3
            .forward(queries.clone() + self.mlp.forward(queries));
        let q = queries.clone() + query_pe.clone();
        let keys = self.norm4.forward_sum(
            image.keys.clone(),
            self.cross_attn_image_to_token
                .projected_to_tokens(&image.i2t_q, q, queries.clone()),
        );
        (queries, keys)
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
/// Between the few prompt tokens (N ≈ 7) and the 4096 image tokens, the projections of the
/// image side are never formed: each is folded into the token side by associativity, so the
/// image is multiplied by `[dim, heads·N]` matrices (56 columns) instead of `[dim, dim/2]` ones
/// (128 columns). Same function, fewer than half the multiply-adds:
/// [`Attention::tokens_to_image`] and [`Attention::image_to_tokens`].
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

    /// [`Attention::forward`] for few queries (tokens `q` `[B, Nq, C]`) over many keys and
    /// values (the image, `k`, `v` `[B, Nk, C]`) → `[B, Nq, C]`.
    ///
    /// Per head, the logits `q_h (k W_k,h + b_k,h)ᵀ` are `(q_h W_k,hᵀ) kᵀ` plus `q_h·b_k,h` in
    /// every column of a row, which the softmax ignores; the values give
    /// `P (v W_v,h + b_v,h) = (P v) W_v,h + b_v,h` as each row of `P` sums to 1.
    fn tokens_to_image(&self, q: Tensor<3>, k: Tensor<3>, v: Tensor<3>) -> Tensor<3> {
        let [b, nq, _] = q.dims();
        let [_, _, dim] = k.dims();
        let nh = self.num_heads;
        let q = self.separate_heads(self.q_proj.forward(q)); // [B, nh, Nq, hd]
        let hd = q.dims()[3];
        let qk = matmul(q, self.k_heads_t.clone()).reshape([b, nh * nq, dim]);
        let attn = matmul_t(qk, k, 1.0 / (hd as f64).sqrt());
        let attn = softmax_last(attn); // [B, nh·Nq, Nk]
        let pv = matmul(attn, v).reshape([b, nh, nq, dim]);
        let out = matmul(pv, self.v_heads.clone()) + self.v_bias_heads.clone(); // [B, nh, Nq, hd]
        self.out_proj
            .forward(out.swap_dims(1, 2).reshape([b, nq, nh * hd]))
    }

    /// [`Attention::forward`] for tokens `q` `[B, Nq, C]` over image keys and values already
    /// projected and split into heads (`k`, `v` `[1, heads, Nk, hd]`) → `[B, Nq, C]`.
    fn tokens_to_projected(&self, q: Tensor<3>, k: &Tensor<4>, v: &Tensor<4>) -> Tensor<3> {
        let q = self.separate_heads(self.q_proj.forward(q)); // [B, nh, Nq, hd]
        let [b, nh, nq, hd] = q.dims();
        let attn = matmul_t(q, k.clone(), 1.0 / (hd as f64).sqrt());
        let out = matmul(softmax_last(attn), v.clone()); // [B, nh, Nq, hd]
        self.out_proj
            .forward(out.swap_dims(1, 2).reshape([b, nq, nh * hd]))
    }

    /// [`Attention::image_to_tokens`] with the image queries already projected and split into
    /// heads (`q` `[1, heads, Nq, hd]`), over tokens `k`, `v` `[B, Nk, C]` → `[B, Nq, C]`.
    fn projected_to_tokens(&self, q: &Tensor<4>, k: Tensor<3>, v: Tensor<3>) -> Tensor<3> {
        let [b, nk, _] = k.dims();
        let [_, nh, nq, hd] = q.dims();
        let k = self.separate_heads(self.k_proj.forward(k)); // [B, nh, Nk, hd]
        let attn = matmul_t(q.clone(), k, 1.0 / (hd as f64).sqrt()); // [B, nh, Nq, Nk]
        let attn = softmax_last(attn).swap_dims(1, 2).reshape([b, nq, nh * nk]);
        self.attend_tokens(attn, v)
    }

    /// [`Attention::forward`] for many queries (the image, `q` `[B, Nq, C]`) over few keys
    /// and values (tokens, `k`, `v` `[B, Nk, C]`) → `[B, Nq, C]`.
    ///
    /// Per head, the logits `(q W_q,h + b_q,h) k_hᵀ` are `q (W_q,h k_hᵀ) + b_q,h k_hᵀ`, and
    /// the output projection of `P_h v_h` is `P_h (v_h W_out,h)`, summed over the heads.
    fn image_to_tokens(&self, q: Tensor<3>, k: Tensor<3>, v: Tensor<3>) -> Tensor<3> {
        let [b, nq, dim] = q.dims();
        let [_, nk, _] = k.dims();
        let nh = self.num_heads;
        let k = self.separate_heads(self.k_proj.forward(k)); // [B, nh, Nk, hd]
        let hd = k.dims()[3];
        let kt = k.swap_dims(2, 3); // [B, nh, hd, Nk]
        // The scale on the small factors, not on the [Nq, nh·Nk] logits.
        let scale = 1.0 / (hd as f64).sqrt();
        let m = matmul(self.q_heads.clone(), kt.clone()) // [B, nh, dim, Nk]
            .swap_dims(1, 2)
            .reshape([b, dim, nh * nk])
            .mul_scalar(scale);
        let c = matmul(self.q_bias_heads.clone(), kt) // [B, nh, 1, Nk]
            .reshape([b, 1, nh * nk])
            .mul_scalar(scale);
        let attn = if b == 1 {
            add_bias(matmul(q, m), &c.reshape([nh * nk]))
        } else {
            matmul(q, m) + c
        }; // [B, Nq, nh·Nk]
        let attn = softmax_last(attn.reshape([b, nq, nh, nk])).reshape([b, nq, nh * nk]);
        self.attend_tokens(attn, v)
    }

    /// The output of many queries over few tokens from their attention weights `attn`
    /// `[B, Nq, heads·Nk]` and the tokens' values `v` `[B, Nk, C]`: `Σ_h P_h (v_h W_out,h)`
    /// plus the output bias → `[B, Nq, C]`.
    fn attend_tokens(&self, attn: Tensor<3>, v: Tensor<3>) -> Tensor<3> {
        let [b, nk, _] = v.dims();
        let dim = self.out_bias.dims()[0];
        let v = self.separate_heads(self.v_proj.forward(v)); // [B, nh, Nk, hd]
        let n = matmul(v, self.out_heads.clone()) // [B, nh, Nk, dim]
            .reshape([b, self.num_heads * nk, dim]);
        add_bias(matmul(attn, n), &self.out_bias)
    }
}
