//! The prompt → mask path of the official `SamPredictor` (and the `SamOnnxModel` wrapper that
//! browser demos run): an image of any size is embedded once, then prompts in its pixel
//! coordinates give masks at its size.
//!
//! Everything here returns device tensors; [`crate::readback`] brings them to the host
//! (asynchronously, as WebGPU requires).

use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Bool, Device, Tensor, TensorData};

use std::sync::OnceLock;

use crate::Sam;
use crate::error::{Result, SamError};
use crate::io::npy;
use crate::modeling::mask_decoder::NUM_MASK_TOKENS;
use crate::modeling::ops;
use crate::modeling::prompt_encoder::{
    LABEL_BOX_BOTTOM_RIGHT, LABEL_BOX_TOP_LEFT, LABEL_NEGATIVE, LABEL_PAD, LABEL_POSITIVE,
};
use crate::modeling::transformer::ImageKeys;
use crate::preprocess::{self, IMG_SIZE, ImageError, MAX_IMAGE_PIXELS, RgbImage};
use crate::readback::read_f32;

/// Side of the low-res masks the decoder outputs and takes back as `mask_input`.
pub const LOW_RES_SIZE: usize = 256;
/// Logit threshold of a mask pixel (strictly greater is inside).
pub const MASK_THRESHOLD: f32 = 0.0;

/// An image's embedding with the sizes needed to map prompts and masks (the predictor's
/// state after `set_image`).
#[derive(Clone, Debug)]
pub struct ImageEmbedding {
    /// `[1, 256, 64, 64]`.
    pub features: Tensor<4>,
    /// (height, width) of the original image.
    pub original_size: (usize, usize),
    /// (height, width) after ResizeLongestSide, before padding.
    pub input_size: (usize, usize),
    /// The decoder's prompt-independent work on `features`, made at the first prompt without
    /// a mask input and reused by the next ones ([`Sam::image_keys`]).
    decoder_keys: OnceLock<ImageKeys>,
}

impl ImageEmbedding {
    /// The embedding as `.npy` bytes: what the official demo saves with
    /// `np.save(path, predictor.get_image_embedding().cpu().numpy())` (`[1, 256, 64, 64]` f32).
    pub async fn to_npy(&self) -> Result<Vec<u8>> {
        let (shape, values) = read_f32(self.features.clone()).await?;
        Ok(npy::write_npy_f32(&shape, &values))
    }

    /// An embedding from `.npy` bytes (as written by [`ImageEmbedding::to_npy`] or numpy) for an
    /// image of `original_size` (height, width), which the file does not record. The size is
    /// held to [`MAX_IMAGE_PIXELS`] like `set_image`'s images ([`SamError::Image`]); the file
    /// to the limits of [`npy::read_npy_f32`].
    pub fn from_npy(bytes: &[u8], original_size: (usize, usize), device: &Device) -> Result<Self> {
        let (h, w) = original_size;
        if h == 0 || w == 0 {
            return Err(SamError::Input(format!("image size {h}x{w} is empty")));
        }
        // The masks of every prediction are this large: the limit of `set_image`'s images.
        if h.checked_mul(w).is_none_or(|n| n > MAX_IMAGE_PIXELS) {
            return Err(SamError::Image(ImageError::TooLarge {
                width: w,
                height: h,
                max: MAX_IMAGE_PIXELS,
            }));
        }
        let array = npy::read_npy_f32(bytes)?;
        if array.shape != [1, 256, 64, 64] {
            return Err(SamError::Input(format!(
                "the embedding file holds an array of shape {:?}; a SAM image embedding is [1, 256, 64, 64]",
                array.shape
            )));
        }
        if array.data.iter().any(|v| !v.is_finite()) {
            return Err(SamError::Input(
                "the embedding holds NaN or infinite values".into(),
            ));
        }
        Ok(Self {
            features: Tensor::from_data(TensorData::new(array.data, [1, 256, 64, 64]), device),
            original_size,
            input_size: preprocess::preprocess_shape(h, w, IMG_SIZE),
            decoder_keys: OnceLock::new(),
        })
    }
}

/// A prompt in original-image pixel coordinates (the arguments of `SamPredictor.predict`).
#[derive(Clone, Debug, Default)]
pub struct Prompt {
    /// Clicks as (x, y).
    pub points: Vec<[f32; 2]>,
    /// One per point: 1 foreground, 0 background.
    pub labels: Vec<i32>,
    /// A box as (x0, y0, x1, y1).
    pub bbox: Option<[f32; 4]>,
    /// A previous low-res logit mask, 256x256 row-major (e.g. from [`Prediction::low_res_logits`]).
    pub mask_input: Option<Vec<f32>>,
    /// Three masks (true) or one (false).
    pub multimask_output: bool,
}

/// Which of a prompt's masks [`Sam::predict_masks`] upscales and returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MaskChoice {
    /// All of them: three with `multimask_output`, else one (the official predictor).
    #[default]
    All,
    /// The one of the highest predicted IoU (e.g. for a hover preview): a third of the
    /// upscaling and of the read back with `multimask_output`.
    Best,
}

/// What a prompt gives, on the device.
#[derive(Clone, Debug)]
pub struct Prediction {
    /// `[1, C, H, W]` mask logits at the original size (C = 3 with multimask, else 1);
    /// a pixel is in the mask when its logit is > 0 ([`Prediction::masks`]).
    pub logits: Tensor<4>,
    /// `[1, C]` predicted IoU of each mask.
    pub iou_predictions: Tensor<2>,
    /// `[1, C, 256, 256]` low-res logits, to feed back as `mask_input`.
    pub low_res_logits: Tensor<4>,
}

impl Prediction {
    /// `[1, C, H, W]` boolean masks (`logits > 0`).
    pub fn masks(&self) -> Tensor<4, Bool> {
        self.logits.clone().greater_elem(MASK_THRESHOLD)
    }
}

/// Inputs of the ONNX decoder (`SamOnnxModel`), with points already in the 1024 frame.
#[derive(Clone, Debug)]
pub struct OnnxInputs {
    /// Points in the resized-input frame, as the ONNX model takes them, including the
    /// (0, 0) pad point (label -1) when there is no box, and box corners (labels 2, 3).
    pub point_coords: Vec<[f32; 2]>,
    /// One label per point: -1 pad, 0 negative, 1 positive, 2/3 box corners.
    pub point_labels: Vec<f32>,
    /// 256x256 previous mask logits, used when `has_mask_input`.
    pub mask_input: Option<Vec<f32>>,
    pub has_mask_input: bool,
    /// (height, width) of the original image.
    pub orig_im_size: (usize, usize),
}

/// Options of `SamOnnxModel`.
#[derive(Clone, Copy, Debug, Default)]
pub struct OnnxOptions {
    pub return_single_mask: bool,
    pub use_stability_score: bool,
    pub return_extra_metrics: bool,
}

/// Outputs of `SamOnnxModel`.
#[derive(Clone, Debug)]
pub struct OnnxOutputs {
    /// `[1, C, H, W]` mask logits at the original size.
    pub masks: Tensor<4>,
    /// `[1, C]` IoU predictions (or stability scores with `use_stability_score`).
    pub scores: Tensor<2>,
    /// `[1, C, 256, 256]`.
    pub low_res_masks: Tensor<4>,
    /// `[1, C]` stability of the full-size masks (`return_extra_metrics`).
    pub stability_scores: Option<Tensor<2>>,
    /// `[1, C]` pixel counts of the full-size masks (`return_extra_metrics`).
    pub areas: Option<Tensor<2>>,
}

impl Sam {
    /// The official `set_image`: preprocesses an RGB image of any size and embeds it.
    pub fn set_image(&self, image: &RgbImage) -> Result<ImageEmbedding> {
        image.validate()?;
        let (chw, input_size) = preprocess::preprocess(image);
        let input = Tensor::<4>::from_data(
            TensorData::new(chw, [1, 3, IMG_SIZE, IMG_SIZE]),
            self.device(),
        );
        Ok(ImageEmbedding {
            features: self.embed(input)?,
            original_size: (image.height, image.width),
            input_size,
            decoder_keys: OnceLock::new(),
        })
    }

    /// Does now the decoder's prompt-independent work on `emb` ([`Sam::image_keys`]), which
    /// [`Sam::predict`] otherwise does at the first prompt without a mask input: call it after
    /// [`Sam::set_image`] so that the first click costs what the later ones do.
    pub fn prepare_prompts(&self, emb: &ImageEmbedding) -> Result<()> {
        self.decoder_keys(emb).map(|_| ())
    }

    /// The cached [`ImageKeys`] of `emb`, made at the first call.
    fn decoder_keys<'e>(&self, emb: &'e ImageEmbedding) -> Result<&'e ImageKeys> {
        match emb.decoder_keys.get() {
            Some(keys) => Ok(keys),
            None => {
                let keys = self.image_keys(emb.features.clone())?;
                Ok(emb.decoder_keys.get_or_init(|| keys))
            }
        }
    }

    /// The official `SamPredictor.predict` on an embedded image, without the host copy:
    /// the prompt is checked, moved to the 1024 frame, decoded, and the masks upscaled to the
    /// image size.
    pub fn predict(&self, emb: &ImageEmbedding, prompt: &Prompt) -> Result<Prediction> {
        self.predict_masks(emb, prompt, MaskChoice::All)
    }

    /// [`Sam::predict`] keeping `choice` of the masks: with [`MaskChoice::Best`], only the
    /// mask of the highest predicted IoU (the first of equals) is upscaled, and the
    /// [`Prediction`] holds that one (`C` = 1), chosen on the device (nothing is read back).
    pub fn predict_masks(
        &self,
        emb: &ImageEmbedding,
        prompt: &Prompt,
        choice: MaskChoice,
    ) -> Result<Prediction> {
        let (coords, labels) = sparse_prompt(prompt, emb.original_size)?;
        let n = labels.len();
        let device = self.device();
        let coords = Tensor::<3>::from_data(
            TensorData::new(coords.into_iter().flatten().collect::<Vec<_>>(), [1, n, 2]),
            device,
        );
        let sparse = self.prompt_encoder.embed_points(coords, &[labels])?;
        let out = match &prompt.mask_input {
            Some(mask) => {
                let dense = self.prompt_encoder.embed_masks(mask_tensor(mask, device)?);
                self.decode(emb.features.clone(), sparse, dense)?
            }
            None => self.decode_with(self.decoder_keys(emb)?, sparse)?,
        };
        let (mut low_res, mut iou) = out.select(prompt.multimask_output);
        if choice == MaskChoice::Best && iou.dims()[1] > 1 {
            let [b, _, h, w] = low_res.dims();
            let best = iou.clone().argmax(1); // [B, 1]
            iou = iou.gather(1, best.clone());
            low_res = low_res.gather(1, best.reshape([b, 1, 1, 1]).expand([b, 1, h, w]));
        }
        Ok(Prediction {
            logits: postprocess_masks(low_res.clone(), emb.input_size, emb.original_size),
            iou_predictions: iou,
            low_res_logits: low_res,
        })
    }

    /// The ONNX decoder (`SamOnnxModel.forward`) on an image embedding `[1, 256, 64, 64]`.
    pub fn predict_onnx(
        &self,
        features: &Tensor<4>,
        inputs: &OnnxInputs,
        options: OnnxOptions,
    ) -> Result<OnnxOutputs> {
        let n = inputs.point_coords.len();
        if n == 0 || inputs.point_labels.len() != n {
            return Err(SamError::Prompt(format!(
                "{n} points with {} labels (the ONNX decoder needs at least one point, one label each)",
                inputs.point_labels.len()
            )));
        }
        let (h, w) = inputs.orig_im_size;
        if h == 0 || w == 0 {
            return Err(SamError::Input(format!("orig_im_size {h}x{w} is empty")));
        }
        let mut labels = Vec::with_capacity(n);
        for (p, &l) in inputs.point_coords.iter().zip(&inputs.point_labels) {
            if !p[0].is_finite() || !p[1].is_finite() {
                return Err(SamError::Prompt(format!("point {p:?} is not finite")));
            }
            if l.fract() != 0.0 || !(-1.0..=3.0).contains(&l) {
                return Err(SamError::Prompt(format!(
                    "point label {l} is not one of -1, 0, 1, 2, 3"
                )));
            }
            labels.push(l as i32);
        }
        let device = self.device();
        let coords = Tensor::<3>::from_data(
            TensorData::new(
                inputs
                    .point_coords
                    .iter()
                    .flatten()
                    .copied()
                    .collect::<Vec<_>>(),
                [1, n, 2],
            ),
            device,
        );
        let sparse = self.prompt_encoder.embed_points(coords, &[labels])?;
        let mask = match (&inputs.mask_input, inputs.has_mask_input) {
            (Some(m), _) => mask_tensor(m, device)?,
            (None, false) => Tensor::zeros([1, 1, LOW_RES_SIZE, LOW_RES_SIZE], device),
            (None, true) => {
                return Err(SamError::Prompt(
                    "has_mask_input is set but no mask_input given".into(),
                ));
            }
        };
        let dense = self
            .prompt_encoder
            .onnx_dense(mask, if inputs.has_mask_input { 1.0 } else { 0.0 });
        let out = self.decode(features.clone(), sparse, dense)?;
        let (mut masks, mut scores) = (out.low_res_masks, out.iou_predictions);
        if options.use_stability_score {
            scores = calculate_stability_score(masks.clone(), MASK_THRESHOLD, 1.0);
        }
        if options.return_single_mask {
            (masks, scores) = select_masks(masks, scores, n);
        }
        let upscaled = onnx_mask_postprocessing(masks.clone(), inputs.orig_im_size);
        let (stability_scores, areas) = if options.return_extra_metrics {
            let stability = calculate_stability_score(upscaled.clone(), MASK_THRESHOLD, 1.0);
            let areas = count_above(upscaled.clone(), MASK_THRESHOLD);
            (Some(stability), Some(areas))
        } else {
            (None, None)
        };
        Ok(OnnxOutputs {
            masks: upscaled,
            scores,
            low_res_masks: masks,
            stability_scores,
            areas,
        })
    }
}

/// Checks a prompt and builds the decoder's point list in the 1024 frame, as the official
/// predictor does: the points, a (0, 0)/-1 pad point when there is no box, then the box
/// corners labelled 2 and 3.
///
/// Errors: non-finite values, a label other than 0/1, points and labels of different
/// lengths, a point outside the image, an inverted or empty box, no point and no box.
/// A box reaching outside the image is clamped to it (documented clamp).
pub fn sparse_prompt(
    prompt: &Prompt,
    original_size: (usize, usize),
) -> Result<(Vec<[f32; 2]>, Vec<i32>)> {
    let (h, w) = original_size;
    let (wf, hf) = (w as f32, h as f32);
    if prompt.points.len() != prompt.labels.len() {
        return Err(SamError::Prompt(format!(
            "{} points but {} labels",
            prompt.points.len(),
            prompt.labels.len()
        )));
    }
    if prompt.points.is_empty() && prompt.bbox.is_none() {
        return Err(SamError::Prompt("give at least one point or a box".into()));
    }
    for (p, &l) in prompt.points.iter().zip(&prompt.labels) {
        if !p[0].is_finite() || !p[1].is_finite() {
            return Err(SamError::Prompt(format!("point {p:?} is not finite")));
        }
        if p[0] < 0.0 || p[1] < 0.0 || p[0] > wf || p[1] > hf {
            return Err(SamError::Prompt(format!(
                "point ({}, {}) is outside the {w}x{h} image",
                p[0], p[1]
            )));
        }
        if l != LABEL_POSITIVE && l != LABEL_NEGATIVE {
            return Err(SamError::Prompt(format!(
                "label {l}: use 1 for a foreground point, 0 for background"
            )));
        }
    }
    let mut points = prompt.points.clone();
    let mut labels = prompt.labels.clone();
    if let Some(b) = prompt.bbox {
        if b.iter().any(|v| !v.is_finite()) {
            return Err(SamError::Prompt(format!("box {b:?} is not finite")));
        }
        let [x0, y0, x1, y1] = [
            b[0].clamp(0.0, wf),
            b[1].clamp(0.0, hf),
            b[2].clamp(0.0, wf),
            b[3].clamp(0.0, hf),
        ];
        if x1 <= x0 || y1 <= y0 {
            return Err(SamError::Prompt(format!(
                "box {b:?} is empty or inverted within the {w}x{h} image (need x0 < x1, y0 < y1)"
            )));
        }
        points.push([x0, y0]);
        points.push([x1, y1]);
    }
    let mut coords = preprocess::apply_coords(&points, original_size, IMG_SIZE);
    if prompt.bbox.is_some() {
        labels.extend([LABEL_BOX_TOP_LEFT, LABEL_BOX_BOTTOM_RIGHT]);
    } else {
        coords.push([0.0, 0.0]);
        labels.push(LABEL_PAD);
    }
    Ok((coords, labels))
}

/// A 256x256 host mask as a `[1, 1, 256, 256]` tensor, checking its size and values.
fn mask_tensor(mask: &[f32], device: &Device) -> Result<Tensor<4>> {
    if mask.len() != LOW_RES_SIZE * LOW_RES_SIZE {
        return Err(SamError::Prompt(format!(
            "mask_input has {} values; it must be the 256x256 low-res logits of a previous prediction",
            mask.len()
        )));
    }
    if mask.iter().any(|v| !v.is_finite()) {
        return Err(SamError::Prompt(
            "mask_input holds NaN or infinite values".into(),
        ));
    }
    Ok(Tensor::from_data(
        TensorData::new(mask.to_vec(), [1, 1, LOW_RES_SIZE, LOW_RES_SIZE]),
        device,
    ))
}

fn bilinear(x: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
    let mut opts = InterpolateOptions::new(InterpolateMode::Bilinear);
    opts.align_corners = false;
    opts.output_size = Some(size);
    interpolate(x, opts)
}

/// The official `Sam.postprocess_masks`: low-res logits `[B, C, 256, 256]` → bilinear to
/// 1024 → crop to the resized input → bilinear to the original size `[B, C, H, W]`.
///
/// On the CPU backend the two resizes and the crop run as one separable resampling with the
/// composed taps (at most 4 per axis, [`composite_taps`]; [`ops::resample_planes`]): the same
/// linear map, ~5x less work than two generic bilinear passes. Other devices run the official
/// steps.
pub fn postprocess_masks(
    low_res: Tensor<4>,
    input_size: (usize, usize),
    original_size: (usize, usize),
) -> Tensor<4> {
    let [_, _, in_h, in_w] = low_res.dims();
    let (h, w) = original_size;
    let taps = || {
        (
            composite_taps(in_h, IMG_SIZE, input_size.0, h),
            composite_taps(in_w, IMG_SIZE, input_size.1, w),
        )
    };
    if let Some(masks) = ops::resample_planes(&low_res, original_size, taps) {
        return masks;
    }
    let [b, c, _, _] = low_res.dims();
    let masks = bilinear(low_res, [IMG_SIZE, IMG_SIZE]);
    let masks = masks.slice([0..b, 0..c, 0..input_size.0, 0..input_size.1]);
    bilinear(masks, [original_size.0, original_size.1])
}

/// The taps of one bilinear resize (align_corners=False, as `F.interpolate`): for each of the
/// `out_len` outputs, the two inputs and their weights.
fn bilinear_taps(in_len: usize, out_len: usize) -> Vec<[(usize, f64); 2]> {
    let scale = in_len as f64 / out_len as f64;
    (0..out_len)
        .map(|o| {
            let src = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (src.floor() as usize).min(in_len - 1);
            let i1 = (i0 + 1).min(in_len - 1);
            let l1 = src - i0 as f64;
            [(i0, 1.0 - l1), (i1, l1)]
        })
        .collect()
}

/// One axis of [`postprocess_masks`] as a single resampling: bilinear `in_len` → `mid_len`,
/// keep the first `crop` samples, bilinear `crop` → `out_len`. For each output, four
/// (input index, weight) taps (repeated indices merged, unused ones weight 0).
pub fn composite_taps(
    in_len: usize,
    mid_len: usize,
    crop: usize,
    out_len: usize,
) -> Vec<[(u32, f32); 4]> {
    let first = bilinear_taps(in_len, mid_len);
    bilinear_taps(crop, out_len)
        .into_iter()
        .map(|outer| {
            let mut taps = [(0u32, 0f64); 4];
            let mut n = 0;
            for (m, wm) in outer {
                for (i, wi) in first[m] {
                    match taps[..n].iter_mut().find(|t| t.0 == i as u32) {
                        Some(t) => t.1 += wm * wi,
                        None => {
                            taps[n] = (i as u32, wm * wi);
                            n += 1;
                        }
                    }
                }
            }
            taps.map(|(i, w)| (i, w as f32))
        })
        .collect()
}

/// The ONNX wrapper's `mask_postprocessing`: like [`postprocess_masks`], with the resized
/// size computed in float32 as `floor(size * 1024 / longest + 0.5)`.
pub fn onnx_mask_postprocessing(masks: Tensor<4>, orig_im_size: (usize, usize)) -> Tensor<4> {
    let (h, w) = orig_im_size;
    let scale = IMG_SIZE as f32 / h.max(w) as f32;
    let ph = ((scale * h as f32 + 0.5).floor() as usize).clamp(1, IMG_SIZE);
    let pw = ((scale * w as f32 + 0.5).floor() as usize).clamp(1, IMG_SIZE);
    postprocess_masks(masks, (ph, pw), orig_im_size)
}

/// Per mask, the number of logits above `threshold`: `[B, C, H, W]` → `[B, C]`.
fn count_above(masks: Tensor<4>, threshold: f32) -> Tensor<2> {
    let [b, c, _, _] = masks.dims();
    masks
        .greater_elem(threshold)
        .float()
        .sum_dim(3)
        .sum_dim(2)
        .reshape([b, c])
}

/// The official `calculate_stability_score`: IoU of the masks thresholded at
/// `threshold + offset` and `threshold - offset`, `[B, C, H, W]` → `[B, C]` (NaN when empty).
pub fn calculate_stability_score(masks: Tensor<4>, threshold: f32, offset: f32) -> Tensor<2> {
    let intersections = count_above(masks.clone(), threshold + offset);
    let unions = count_above(masks, threshold - offset);
    intersections / unions
}

/// The ONNX wrapper's `select_masks`: one mask per prompt, the best of tokens 1..3 for a
/// single click or a box alone, token 0 otherwise (`argmax(iou + (n - 2.5) * [1000, 0, 0, 0])`,
/// `n` counting pad points and box corners). `[B, 4, h, w]`, `[B, 4]` → `[B, 1, h, w]`, `[B, 1]`.
pub fn select_masks(masks: Tensor<4>, iou: Tensor<2>, num_points: usize) -> (Tensor<4>, Tensor<2>) {
    let [b, c, h, w] = masks.dims();
    let device = iou.device();
    let mut reweight = vec![0.0f32; c];
    reweight[0] = 1000.0 * (num_points as f32 - 2.5);
    let reweight = Tensor::<2>::from_data(TensorData::new(reweight, [1, c]), &device);
    let best = (iou.clone() + reweight).argmax(1); // [B, 1]
    let iou = iou.gather(1, best.clone());
    let idx = best.reshape([b, 1, 1, 1]).expand([b, 1, h, w]);
    debug_assert_eq!(c, NUM_MASK_TOKENS);
    (masks.gather(1, idx), iou)
}
