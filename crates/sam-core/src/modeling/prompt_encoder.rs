//! The prompt encoder of SAM (official `modeling/prompt_encoder.py`): points, box corners and
//! a low-res mask → sparse `[B, N, 256]` and dense `[B, 256, 64, 64]` embeddings.

use burn::tensor::{Int, Tensor, TensorData};

use super::common::{Activation, Conv2d, Conv2dSpec, LayerNorm2d};
use crate::error::{Result, SamError};
use crate::weights::WeightLoader;

/// Label of a padding point (ignored by the decoder).
pub const LABEL_PAD: i32 = -1;
/// Label of a background (negative) click.
pub const LABEL_NEGATIVE: i32 = 0;
/// Label of a foreground (positive) click.
pub const LABEL_POSITIVE: i32 = 1;
/// Label of a box's top-left corner.
pub const LABEL_BOX_TOP_LEFT: i32 = 2;
/// Label of a box's bottom-right corner.
pub const LABEL_BOX_BOTTOM_RIGHT: i32 = 3;

/// The official `PositionEmbeddingRandom`: random Fourier features of normalised coordinates.
#[derive(Clone, Debug)]
pub struct PositionEmbeddingRandom {
    /// `[2, num_pos_feats]`.
    gaussian: Tensor<2>,
}

impl PositionEmbeddingRandom {
    pub fn new(w: &WeightLoader, num_pos_feats: usize) -> Result<Self> {
        Ok(Self {
            gaussian: w.tensor("positional_encoding_gaussian_matrix", [2, num_pos_feats])?,
        })
    }

    /// Coordinates in `[0, 1]`, `[..., 2]` → `[..., 2 * num_pos_feats]` as [sin, cos].
    pub fn pe_encoding<const D: usize>(&self, coords: Tensor<D>) -> Tensor<D> {
        let coords = coords.mul_scalar(2.0).sub_scalar(1.0);
        let coords = coords.matmul(self.gaussian.clone().unsqueeze::<D>());
        let coords = coords.mul_scalar(2.0 * std::f64::consts::PI);
        Tensor::cat(vec![coords.clone().sin(), coords.cos()], D - 1)
    }

    /// The dense positional encoding of an `h x w` grid: `[2 * num_pos_feats, h, w]`.
    pub fn forward(&self, h: usize, w: usize) -> Tensor<3> {
        let mut grid = Vec::with_capacity(h * w * 2);
        for i in 0..h {
            for j in 0..w {
                // cumsum of ones minus 0.5, over the size: computed as torch does in f32.
                grid.push(((j + 1) as f32 - 0.5) / w as f32);
                grid.push(((i + 1) as f32 - 0.5) / h as f32);
            }
        }
        let device = self.gaussian.device();
        let grid = Tensor::<3>::from_data(TensorData::new(grid, [h, w, 2]), &device);
        self.pe_encoding(grid).permute([2, 0, 1])
    }
}

/// The official `PromptEncoder`.
#[derive(Clone, Debug)]
pub struct PromptEncoder {
    pub embed_dim: usize,
    pub image_embedding_size: (usize, usize),
    pub input_image_size: (usize, usize),
    pe_layer: PositionEmbeddingRandom,
    /// Rows: not_a_point, point_embeddings 0..4 (negative, positive, box corners).
    label_table: Tensor<2>,
    mask_conv0: Conv2d,
    mask_norm1: LayerNorm2d,
    mask_conv3: Conv2d,
    mask_norm4: LayerNorm2d,
    mask_conv6: Conv2d,
    no_mask_embed: Tensor<2>,
}

impl PromptEncoder {
    /// Loads from `prompt_encoder.*` keys (SAM: embed 256, 64x64 embedding, 1024 input, 16 mask channels).
    pub fn new(w: &WeightLoader) -> Result<Self> {
        let embed_dim = 256;
        let mask_in_chans = 16;
        let row = |name: String| w.tensor::<2>(&name, [1, embed_dim]);
        let mut rows = vec![row("not_a_point_embed.weight".into())?];
        for i in 0..4 {
            rows.push(row(format!("point_embeddings.{i}.weight"))?);
        }
        let md = w.pb("mask_downscaling");
        Ok(Self {
            embed_dim,
            image_embedding_size: (64, 64),
            input_image_size: (1024, 1024),
            pe_layer: PositionEmbeddingRandom::new(&w.pb("pe_layer"), embed_dim / 2)?,
            label_table: Tensor::cat(rows, 0),
            mask_conv0: Conv2d::new(
                &md.pb(0),
                Conv2dSpec::new(1, mask_in_chans / 4, 2).stride(2),
            )?,
            mask_norm1: LayerNorm2d::new(&md.pb(1), mask_in_chans / 4)?,
            mask_conv3: Conv2d::new(
                &md.pb(3),
                Conv2dSpec::new(mask_in_chans / 4, mask_in_chans, 2).stride(2),
            )?,
            mask_norm4: LayerNorm2d::new(&md.pb(4), mask_in_chans)?,
            mask_conv6: Conv2d::new(&md.pb(6), Conv2dSpec::new(mask_in_chans, embed_dim, 1))?,
            no_mask_embed: w.tensor("no_mask_embed.weight", [1, embed_dim])?,
        })
    }

    /// The positional encoding of the image embedding grid: `[1, 256, 64, 64]`.
    pub fn get_dense_pe(&self) -> Tensor<4> {
        let (h, w) = self.image_embedding_size;
        self.pe_layer.forward(h, w).unsqueeze()
    }

    /// Embeds labelled points given in the 1024-pixel input frame.
    ///
    /// `coords` `[B, N, 2]` as (x, y) in input pixels, `labels` `[B][N]` each one of
    /// [`LABEL_PAD`], [`LABEL_NEGATIVE`], [`LABEL_POSITIVE`], [`LABEL_BOX_TOP_LEFT`],
    /// [`LABEL_BOX_BOTTOM_RIGHT`]. Returns `[B, N, 256]`. This is both the official
    /// `_embed_points`/`_embed_boxes` (a box is two points labelled 2 and 3) and the ONNX
    /// wrapper's `_embed_points`.
    pub fn embed_points(&self, coords: Tensor<3>, labels: &[Vec<i32>]) -> Result<Tensor<3>> {
        let [b, n, _] = coords.dims();
        if labels.len() != b || labels.iter().any(|l| l.len() != n) {
            return Err(SamError::Prompt(format!(
                "{b}x{n} points but labels of shape {}x{:?}",
                labels.len(),
                labels.first().map(Vec::len)
            )));
        }
        let mut keep = Vec::with_capacity(b * n);
        let mut rows = Vec::with_capacity(b * n);
        for &l in labels.iter().flatten() {
            if !(LABEL_PAD..=LABEL_BOX_BOTTOM_RIGHT).contains(&l) {
                return Err(SamError::Prompt(format!(
                    "point label {l} (expected -1 pad, 0 negative, 1 positive, 2/3 box corners)"
                )));
            }
            keep.push(if l == LABEL_PAD { 0.0f32 } else { 1.0 });
            rows.push((l + 1) as i64);
        }
        let device = coords.device();
        let (ih, iw) = self.input_image_size;
        let scale = Tensor::<3>::from_data(
            TensorData::new(vec![1.0 / iw as f32, 1.0 / ih as f32], [1, 1, 2]),
            &device,
        );
        let pe = self.pe_layer.pe_encoding(coords.add_scalar(0.5) * scale);
        let keep = Tensor::<3>::from_data(TensorData::new(keep, [b, n, 1]), &device);
        let rows = Tensor::<1, Int>::from_data(TensorData::new(rows, [b * n]), &device);
        let added = self
            .label_table
            .clone()
            .select(0, rows)
            .reshape([b, n, self.embed_dim]);
        Ok(pe * keep + added)
    }

    /// The official `_embed_masks`: `[B, 1, 256, 256]` → `[B, 256, 64, 64]`.
    pub fn embed_masks(&self, masks: Tensor<4>) -> Tensor<4> {
        let gelu = Activation::Gelu;
        let x = gelu.forward(self.mask_norm1.forward(self.mask_conv0.forward(masks)));
        let x = gelu.forward(self.mask_norm4.forward(self.mask_conv3.forward(x)));
        self.mask_conv6.forward(x)
    }

    /// The dense embedding when there is no mask: `no_mask_embed` broadcast to `[B, 256, 64, 64]`.
    pub fn no_mask_dense(&self, b: usize) -> Tensor<4> {
        let (h, w) = self.image_embedding_size;
        self.no_mask_embed
            .clone()
            .reshape([1, self.embed_dim, 1, 1])
            .expand([b, self.embed_dim, h, w])
    }

    /// The ONNX wrapper's dense embedding: `has_mask * embed_masks(mask) + (1 - has_mask) * no_mask_embed`.
    pub fn onnx_dense(&self, mask_input: Tensor<4>, has_mask_input: f32) -> Tensor<4> {
        let b = mask_input.dims()[0];
        self.embed_masks(mask_input).mul_scalar(has_mask_input)
            + self.no_mask_dense(b).mul_scalar(1.0 - has_mask_input)
    }
}
