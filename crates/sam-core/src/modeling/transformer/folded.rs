//! The folded attention of the two-way transformer: the same function as the official
//! `Attention.forward`, with the algebra rearranged for SAM's shapes.
//!
//! **What it folds.** The decoder attends between a handful of prompt tokens (N ≈ 7) and the
//! 4096 image tokens. The official forward projects both sides to `dim / 2` channels, then
//! multiplies per head. Where one side is the image, its projection is never formed: by
//! associativity each image-side projection is folded into the token side, so the image is
//! multiplied by `[dim, heads·N]` matrices (56 columns) instead of `[dim, dim/2]` ones (128
//! columns). Biases that only shift every logit of a row drop out of the softmax; value biases
//! pass through it because every row of the attention sums to 1.
//!
//! - [`Attention::tokens_to_image`]: tokens attend to the image (keys and values folded).
//! - [`Attention::image_to_tokens`]: the image attends to the tokens (queries and output
//!   projection folded), through [`Attention::attend_tokens`].
//! - [`Attention::tokens_to_projected`] and [`Attention::projected_to_tokens`]: the first
//!   layer, whose image side does not depend on the prompt, takes it projected once per image
//!   ([`ImageKeys`], [`TwoWayTransformer::image_keys`]); every click then runs
//!   [`TwoWayTransformer::forward_with`] ([`TwoWayAttentionBlock::forward_first`]).
//!
//! **Why.** The mask decoder runs at every click (and on every hover in the demo): these
//! products were most of its time. The official `Attention::forward` stays for the tokens'
//! self-attention, and the tests below check each variant against it on random weights.

use burn::tensor::Tensor;

use super::{Attention, TwoWayAttentionBlock, TwoWayTransformer, pixel_rows};
use crate::modeling::ops::{add_bias, contiguous, matmul, matmul_t, softmax_last};

impl TwoWayTransformer {
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

impl TwoWayAttentionBlock {
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
}

impl Attention {
    /// [`Attention::forward`] for few queries (tokens `q` `[B, Nq, C]`) over many keys and
    /// values (the image, `k`, `v` `[B, Nk, C]`) → `[B, Nq, C]`.
    ///
    /// Per head, the logits `q_h (k W_k,h + b_k,h)ᵀ` are `(q_h W_k,hᵀ) kᵀ` plus `q_h·b_k,h` in
    /// every column of a row, which the softmax ignores; the values give
    /// `P (v W_v,h + b_v,h) = (P v) W_v,h + b_v,h` as each row of `P` sums to 1.
    pub(super) fn tokens_to_image(&self, q: Tensor<3>, k: Tensor<3>, v: Tensor<3>) -> Tensor<3> {
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
    pub(super) fn image_to_tokens(&self, q: Tensor<3>, k: Tensor<3>, v: Tensor<3>) -> Tensor<3> {
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

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Tensor};

    use super::Attention;
    use crate::io::checkpoint::Checkpoint;
    use crate::modeling::{max_abs_diff, random_checkpoint, random_tensor};
    use crate::weights::WeightLoader;

    const DIM: usize = 32;
    const HEADS: usize = 4;

    /// An `Attention(DIM, HEADS, downsample 2)` with random weights.
    fn attention(device: &Device) -> Attention {
        let internal = DIM / 2;
        let mut keys = Vec::new();
        for (p, shape) in [
            ("q_proj", [internal, DIM]),
            ("k_proj", [internal, DIM]),
            ("v_proj", [internal, DIM]),
            ("out_proj", [DIM, internal]),
        ] {
            keys.push((format!("{p}.weight"), shape.to_vec()));
            keys.push((format!("{p}.bias"), vec![shape[0]]));
        }
        let keys: Vec<(&str, Vec<usize>)> =
            keys.iter().map(|(k, s)| (k.as_str(), s.clone())).collect();
        let bytes = random_checkpoint(&keys, 7);
        let ckpt = Checkpoint::from_bytes(&bytes).unwrap();
        Attention::new(&WeightLoader::new(&ckpt, device), DIM, HEADS, 2).unwrap()
    }

    /// Tokens `[B, 7, DIM]` and an image `[B, 96, DIM]` (random, scaled up so that the
    /// softmax is far from uniform).
    fn inputs(b: usize, device: &Device) -> (Tensor<3>, Tensor<3>) {
        let tokens = random_tensor([b, 7, DIM], 1, device).mul_scalar(4.0);
        let image = random_tensor([b, 96, DIM], 2, device).mul_scalar(4.0);
        (tokens, image)
    }

    /// Each folded variant against the official forward, on the CPU backend (host kernels)
    /// for one and two prompts.
    #[test]
    fn folded_variants_equal_the_official_forward() {
        let device = Device::flex();
        let a = attention(&device);
        for b in [1, 2] {
            let (t, img) = inputs(b, &device);
            let tol = 1e-4;
            let official = a.forward(t.clone(), img.clone(), img.clone());
            let folded = a.tokens_to_image(t.clone(), img.clone(), img.clone());
            let err = max_abs_diff(folded, official.clone());
            assert!(err < tol, "tokens_to_image B={b}: {err}");

            let k = a.separate_heads(a.k_proj.forward(img.clone()));
            let v = a.separate_heads(a.v_proj.forward(img.clone()));
            if b == 1 {
                let err = max_abs_diff(a.tokens_to_projected(t.clone(), &k, &v), official);
                assert!(err < tol, "tokens_to_projected: {err}");
            }

            let official = a.forward(img.clone(), t.clone(), t.clone());
            let folded = a.image_to_tokens(img.clone(), t.clone(), t.clone());
            let err = max_abs_diff(folded, official.clone());
            assert!(
                err < tol,
                "image_to_tokens (through attend_tokens) B={b}: {err}"
            );
            if b == 1 {
                let q = a.separate_heads(a.q_proj.forward(img));
                let err = max_abs_diff(a.projected_to_tokens(&q, t.clone(), t), official);
                assert!(err < tol, "projected_to_tokens: {err}");
            }
        }
    }
}
