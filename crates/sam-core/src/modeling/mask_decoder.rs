//! The mask decoder of SAM (official `modeling/mask_decoder.py`): image embedding + prompt
//! embeddings → low-res mask logits `[B, 4, 256, 256]` and IoU predictions `[B, 4]`.

use burn::tensor::Tensor;
use burn::tensor::activation::relu;

use super::common::{ConvTranspose2d, LayerNorm, Linear};
use super::ops::{self, UpscaleParams, gelu};
use super::transformer::{ImageKeys, TwoWayTransformer};
use crate::error::Result;
use crate::weights::WeightLoader;

/// Number of mask tokens (one single-mask output plus three multimask outputs).
pub const NUM_MASK_TOKENS: usize = 4;

/// The official `MaskDecoder` (transformer width 256, 3 multimask outputs, IoU head 3x256).
#[derive(Clone, Debug)]
pub struct MaskDecoder {
    transformer: TwoWayTransformer,
    /// `[5, 256]`: the IoU token, then the 4 mask tokens.
    output_tokens: Tensor<2>,
    upscale_conv0: ConvTranspose2d,
    /// `LayerNorm2d` (eps 1e-6), applied to channels-last pixels.
    upscale_norm1: LayerNorm,
    upscale_conv3: ConvTranspose2d,
    output_hypernetworks_mlps: Vec<Mlp>,
    iou_prediction_head: Mlp,
}

/// Everything the decoder computes for a batch of prompts: all four mask tokens.
#[derive(Clone, Debug)]
pub struct DecoderOutput {
    /// `[B, 4, 256, 256]` low-res mask logits; token 0 is the single-mask output.
    pub low_res_masks: Tensor<4>,
    /// `[B, 4]` predicted IoU per token.
    pub iou_predictions: Tensor<2>,
}

impl DecoderOutput {
    /// The official `multimask_output` selection: tokens 1..4 if `multimask`, else token 0.
    pub fn select(self, multimask: bool) -> (Tensor<4>, Tensor<2>) {
        let (start, len) = if multimask { (1, 3) } else { (0, 1) };
        (
            self.low_res_masks.narrow(1, start, len),
            self.iou_predictions.narrow(1, start, len),
        )
    }
}

impl MaskDecoder {
    /// Loads from `mask_decoder.*` keys.
    pub fn new(w: &WeightLoader) -> Result<Self> {
        let dim = 256;
        let iou_token = w.tensor::<2>("iou_token.weight", [1, dim])?;
        let mask_tokens = w.tensor::<2>("mask_tokens.weight", [NUM_MASK_TOKENS, dim])?;
        let up = w.pb("output_upscaling");
        Ok(Self {
            transformer: TwoWayTransformer::new(&w.pb("transformer"), 2, dim, 8, 2048)?,
            output_tokens: Tensor::cat(vec![iou_token, mask_tokens], 0),
            upscale_conv0: ConvTranspose2d::new(&up.pb(0), dim, dim / 4, 2)?,
            upscale_norm1: LayerNorm::new(&up.pb(1), dim / 4, 1e-6)?,
            upscale_conv3: ConvTranspose2d::new(&up.pb(3), dim / 4, dim / 8, 2)?,
            output_hypernetworks_mlps: (0..NUM_MASK_TOKENS)
                .map(|i| {
                    Mlp::new(
                        &w.pb("output_hypernetworks_mlps").pb(i),
                        dim,
                        dim,
                        dim / 8,
                        3,
                    )
                })
                .collect::<Result<Vec<_>>>()?,
            iou_prediction_head: Mlp::new(
                &w.pb("iou_prediction_head"),
                dim,
                256,
                NUM_MASK_TOKENS,
                3,
            )?,
        })
    }

    /// The official `predict_masks` for `B` prompts on one image.
    ///
    /// `image_embeddings` `[1, 256, 64, 64]` (or `[B, ...]`), `image_pe` `[1, 256, 64, 64]`,
    /// `sparse` `[B, N, 256]`, `dense` `[B, 256, 64, 64]`.
    pub fn forward(
        &self,
        image_embeddings: Tensor<4>,
        image_pe: Tensor<4>,
        sparse: Tensor<3>,
        dense: Tensor<4>,
    ) -> DecoderOutput {
        let [b, _, c] = sparse.dims();
        let [eb, _, h, w] = image_embeddings.dims();
        let tokens = self.tokens(sparse);
        let src = if eb == b {
            image_embeddings
        } else {
            image_embeddings.expand([b, c, h, w])
        };
        let src = src + dense;
        let pos_src = image_pe.expand([b, c, h, w]);
        let (hs, src) = self.transformer.forward(src, pos_src, tokens);
        self.output(hs, src, (h, w))
    }

    /// The prompt-independent work of [`MaskDecoder::forward`] for one image:
    /// `image_embeddings` `[1, 256, 64, 64]` plus the dense prompt `dense` `[1, 256, 64, 64]`
    /// (the no-mask embedding: a mask input changes it per prompt), with `image_pe`.
    pub fn image_keys(
        &self,
        image_embeddings: Tensor<4>,
        image_pe: Tensor<4>,
        dense: Tensor<4>,
    ) -> ImageKeys {
        self.transformer
            .image_keys(image_embeddings + dense, image_pe)
    }

    /// [`MaskDecoder::forward`] for `B` prompts `sparse` `[B, N, 256]` on an image prepared
    /// by [`MaskDecoder::image_keys`].
    pub fn forward_with(&self, image: &ImageKeys, sparse: Tensor<3>) -> DecoderOutput {
        let (hs, src) = self.transformer.forward_with(image, self.tokens(sparse));
        self.output(hs, src, image.size())
    }

    /// The decoder's tokens `[B, 5 + N, 256]`: IoU token, mask tokens, then the prompts.
    fn tokens(&self, sparse: Tensor<3>) -> Tensor<3> {
        let [b, _, c] = sparse.dims();
        Tensor::cat(
            vec![
                self.output_tokens
                    .clone()
                    .unsqueeze::<3>()
                    .expand([b, 5, c]),
                sparse,
            ],
            1,
        )
    }

    /// Masks and IoU from the transformer's tokens `hs` `[B, 5 + N, C]` and image rows
    /// `src` `[B, hw, C]` of an `h` x `w` embedding.
    fn output(&self, hs: Tensor<3>, src: Tensor<3>, (h, w): (usize, usize)) -> DecoderOutput {
        let iou_token_out: Tensor<2> = hs.clone().narrow(1, 0, 1).squeeze_dim(1);

        let hyper_in = Tensor::stack::<3>(
            self.output_hypernetworks_mlps
                .iter()
                .enumerate()
                .map(|(i, mlp)| mlp.forward(hs.clone().narrow(1, 1 + i, 1).squeeze_dim::<2>(1)))
                .collect(),
            1,
        ); // [B, 4, c/8]
        let low_res_masks = self.masks(src, hyper_in, (h, w));
        DecoderOutput {
            low_res_masks,
            iou_predictions: self.iou_prediction_head.forward(iou_token_out),
        }
    }

    /// The low-res masks `[B, 4, 4h, 4w]` from the image rows `src` `[B, hw, C]` and the
    /// hypernetwork outputs `hyper_in` `[B, 4, C/8]`.
    fn masks(&self, src: Tensor<3>, hyper_in: Tensor<3>, (h, w): (usize, usize)) -> Tensor<4> {
        let ((w0, b0), (w3, b3)) = (
            self.upscale_conv0.pixel_weights(),
            self.upscale_conv3.pixel_weights(),
        );
        let (ln_w, ln_b, eps) = self.upscale_norm1.params();
        let p = UpscaleParams {
            w0: &w0,
            b0: &b0,
            ln_w: &ln_w,
            ln_b: &ln_b,
            eps,
            w3: &w3,
            b3: &b3,
        };
        if let Some(masks) = ops::upscale_masks(&src, &hyper_in, &p, (h, w)) {
            return masks;
        }
        let [b, _, c] = src.dims();
        // output_upscaling (ConvT 2x2/2, LayerNorm2d, GELU, ConvT 2x2/2, GELU) pixel by pixel,
        // channels last: `src` rows are the pixels (i, j); after the two layers the rows are
        // (i, j, di, dj) and the columns (ei, ej, channel), for the output pixel
        // (4i + 2di + ei, 4j + 2dj + ej).
        let up = self
            .upscale_conv0
            .forward_pixels(src) // [B, hw, 4·c/4]
            .reshape([b, h * w * 4, c / 4]);
        let up = gelu(self.upscale_norm1.forward(up));
        let up = gelu(self.upscale_conv3.forward_pixels(up)); // [B, 4hw, 4·c/8]
        let up = up.reshape([b, h * w * 16, c / 8]);

        let t = NUM_MASK_TOKENS;
        up.matmul(hyper_in.swap_dims(1, 2)) // [B, (i, j, di, dj, ei, ej), t]
            .reshape([b, h, w, 2, 2, 4 * t])
            .permute([0, 1, 3, 2, 4, 5]) // [B, i, di, j, dj, (ei, ej, t)]
            .reshape([b, 2 * h, 2 * w, 2, 2, t])
            .permute([0, 5, 1, 3, 2, 4]) // [B, t, 2i + di, ei, 2j + dj, ej]
            .reshape([b, t, 4 * h, 4 * w])
    }
}

/// The decoder's `MLP`: `num_layers` linear layers with ReLU between them.
#[derive(Clone, Debug)]
pub struct Mlp {
    layers: Vec<Linear>,
}

impl Mlp {
    pub fn new(
        w: &WeightLoader,
        d_in: usize,
        hidden: usize,
        d_out: usize,
        num_layers: usize,
    ) -> Result<Self> {
        let layers = (0..num_layers)
            .map(|i| {
                let a = if i == 0 { d_in } else { hidden };
                let b = if i + 1 == num_layers { d_out } else { hidden };
                Linear::new(&w.pb("layers").pb(i), a, b, true)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { layers })
    }

    /// `[..., d_in]` → `[..., d_out]`.
    pub fn forward<const D: usize>(&self, mut x: Tensor<D>) -> Tensor<D> {
        let n = self.layers.len();
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if i + 1 < n {
                x = relu(x);
            }
        }
        x
    }
}
