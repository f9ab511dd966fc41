//! The official `SamAutomaticMaskGenerator` ("segment everything"): a grid of single-point
//! prompts over the image and over overlapping crops of it, each giving three masks, filtered
//! by predicted IoU and stability, deduplicated by box NMS within and across crops, optionally
//! cleaned of small holes and islands.
//!
//! The algorithm follows `segment_anything/automatic_mask_generator.py` step by step
//! (`_generate_masks`, `_process_crop`, `_process_batch`, `postprocess_small_regions`) with the
//! host helpers of [`utils`]. What differs is only where the work happens, to keep
//! memory bounded (the official code holds a whole batch of full-size logits, 600 MB for 64
//! points on a 1024x768 image):
//!
//! - the predicted-IoU filter runs on the host on the `[B, 3]` scores before any upscaling;
//! - the surviving low-res masks are upscaled to the crop size in chunks of
//!   [`MASKS_PER_UPSCALE`], their stability scores computed on the device;
//! - only the masks that pass the stability filter come back, as bits packed 16 per float
//!   (exact), and are boxed, edge-filtered and run-length encoded on the host at once.
//!
//! Everything is single-threaded, touches no file system and reads tensors back only with
//! `into_data_async`, so it runs unchanged in a browser (wasm + WebGPU).
//!
//! Differences from the official code, all on inputs where it fails: no mask at all gives an
//! empty list (the official `generate` raises `IndexError`); an empty point grid for a crop
//! layer gives no masks for those crops (the official code raises `KeyError`); options it
//! would accept silently but that make no sense (e.g. an IoU threshold of 2, grid points
//! outside `[0, 1]`) are rejected by [`AmgOptions::validate`].

pub mod utils;

use std::fmt;
use std::str::FromStr;

use burn::tensor::{Int, Tensor, TensorData};
use serde_json::{Value, json};

use crate::Sam;
use crate::error::{Result, SamError};
use crate::io::rle::{CocoRle, Rle};
use crate::io::sa1b::{Annotation, ImageInfo, Sa1bFile, Segmentation};
use crate::modeling::prompt_encoder::{LABEL_PAD, LABEL_POSITIVE};
use crate::predictor::{
    ImageEmbedding, LOW_RES_SIZE, MASK_THRESHOLD, calculate_stability_score, postprocess_masks,
};
use crate::preprocess::{self, IMG_SIZE, RgbImage};
use crate::readback::read_f32;

/// Distance in pixels under which a box counts as touching a crop edge (official `atol=20`).
pub const CROP_EDGE_ATOL: f32 = 20.0;

/// How many masks are upscaled to the crop size at once. Each one goes through a
/// 1024x1024 float intermediate (4 MiB), so a chunk stays near 64 MiB of device memory plus
/// its crop-size logits, well inside WebGPU's default 128 MiB storage-binding limit.
pub const MASKS_PER_UPSCALE: usize = 16;

/// Device bytes of the largest tensor the mask decoder holds for one prompt: the upscaled
/// embedding `[4hw, 4·C/8]` = `[65536, 32]` f32 of `output_upscaling` (8 MiB; the image rows
/// repeated per prompt and the transformer's keys are `[4096, 256]`, 4 MiB). A batch of
/// `B` points needs one buffer of `B` times this, so [`points_per_decode`] splits a batch
/// to keep it within the device's largest buffer.
pub const DECODER_BYTES_PER_POINT: u64 = 65536 * 32 * 4;

/// The largest buffer the device allocates, in bytes: for wgpu (WebGPU, Vulkan, Metal) the
/// smaller of the adapter's `maxBufferSize` and `maxStorageBufferBindingSize`, as the
/// runtime reads them; `None` on the CPU backend (host memory has no such limit).
pub fn max_buffer_bytes(device: &burn::tensor::Device) -> Option<u64> {
    match device.as_dispatch() {
        #[cfg(feature = "wgpu")]
        burn_dispatch::DispatchDevice::Cube(d) => {
            Some(d.client().properties().memory.max_page_size)
        }
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// How many of `points_per_batch` points are decoded at once on a device whose largest
/// buffer is `max_buffer` bytes (see [`max_buffer_bytes`]): all of them when there is no
/// limit or they fit, else as many as fit in one buffer of [`DECODER_BYTES_PER_POINT`] each,
/// at least 1. The official batch is split only for the decoder: every point is decoded on
/// its own (batch rows never mix), so the masks are the same.
pub fn points_per_decode(points_per_batch: usize, max_buffer: Option<u64>) -> usize {
    let Some(max) = max_buffer else {
        return points_per_batch;
    };
    let fit = usize::try_from(max / DECODER_BYTES_PER_POINT).unwrap_or(usize::MAX);
    points_per_batch.min(fit).max(1)
}

/// Mask bits packed into one float when reading masks back (an integer below 2^16 is exact
/// in f32, whatever order the device sums in).
const PACK_BITS: usize = 16;

/// The most crop layers accepted (layer `i` has `4^i` crops; 8 layers are already 87,381
/// image embeddings).
pub const MAX_CROP_LAYERS: usize = 8;

/// The most points per side of the AMG grid: 1024, one per pixel of the model input (the
/// official default is 32; the grid has `n^2` points). Enforced by [`AmgOptions::validate`].
pub const MAX_POINTS_PER_SIDE: usize = 1024;

/// The most points decoded in one batch: 1024 (the official default is 64; every point
/// holds three 256x256 low-res masks and a full-resolution upscaled copy). Enforced by
/// [`AmgOptions::validate`].
pub const MAX_POINTS_PER_BATCH: usize = 1024;

/// The largest `crop_n_points_downscale_factor`: 1024 (any larger factor gives the same
/// one-point grids). Enforced by [`AmgOptions::validate`].
pub const MAX_POINTS_DOWNSCALE_FACTOR: usize = 1024;

/// The most points in all explicit `point_grids` together: 2^20 (1024^2, the largest
/// `points_per_side` grid). Enforced by [`AmgOptions::validate`].
pub const MAX_GRID_POINTS: usize = 1 << 20;

/// The form of each mask in the output (official `output_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OutputMode {
    /// `"binary_mask"` (the official default): an `h x w` boolean array.
    #[default]
    BinaryMask,
    /// `"uncompressed_rle"`: `{"size": [h, w], "counts": [..]}`.
    UncompressedRle,
    /// `"coco_rle"`: `{"size": [h, w], "counts": "<pycocotools string>"}`.
    CocoRle,
}

impl OutputMode {
    /// The official name (`binary_mask`, `uncompressed_rle`, `coco_rle`).
    pub fn name(self) -> &'static str {
        match self {
            OutputMode::BinaryMask => "binary_mask",
            OutputMode::UncompressedRle => "uncompressed_rle",
            OutputMode::CocoRle => "coco_rle",
        }
    }
}

impl fmt::Display for OutputMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OutputMode {
    type Err = SamError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "binary_mask" => Ok(OutputMode::BinaryMask),
            "uncompressed_rle" => Ok(OutputMode::UncompressedRle),
            "coco_rle" => Ok(OutputMode::CocoRle),
            other => Err(SamError::Input(format!(
                "unknown output_mode {other:?} (expected binary_mask, uncompressed_rle or coco_rle)"
            ))),
        }
    }
}

/// The arguments of the official `SamAutomaticMaskGenerator.__init__`, with its defaults
/// ([`AmgOptions::default`]).
#[derive(Clone, Debug, PartialEq)]
pub struct AmgOptions {
    /// Points sampled along one side of the image (the grid has `n^2` points). Exactly one
    /// of this and `point_grids` must be given.
    pub points_per_side: Option<usize>,
    /// Points run through the decoder together (more is faster and takes more memory).
    pub points_per_batch: usize,
    /// Masks whose predicted IoU is not `>` this are dropped (no filter when `<= 0`).
    pub pred_iou_thresh: f64,
    /// Masks whose stability score is not `>=` this are dropped (no filter when `<= 0`).
    pub stability_score_thresh: f64,
    /// The logit offset of the stability score (thresholds `0 ± offset`).
    pub stability_score_offset: f64,
    /// Box IoU above which the lower-scoring of two masks of one crop is dropped.
    pub box_nms_thresh: f64,
    /// Crop layers beyond the full image: layer `i` splits it into `2^i x 2^i` crops.
    pub crop_n_layers: usize,
    /// Box IoU above which masks from different crops are deduplicated (smaller crop wins).
    pub crop_nms_thresh: f64,
    /// Overlap of neighbouring crops, as a fraction of the image's short side (layer 1).
    pub crop_overlap_ratio: f64,
    /// Layer `i` samples `points_per_side / factor^i` points per side.
    pub crop_n_points_downscale_factor: usize,
    /// Explicit grids in `[0, 1]^2` as `[x, y]`, one per layer (layer 0 = full image), used
    /// instead of `points_per_side`.
    pub point_grids: Option<Vec<Vec<[f64; 2]>>>,
    /// When > 0, holes and islands smaller than this many pixels are removed from each
    /// mask, and the changed masks go through one more NMS.
    pub min_mask_region_area: usize,
    /// The form of the returned masks.
    pub output_mode: OutputMode,
}

impl Default for AmgOptions {
    fn default() -> Self {
        Self {
            points_per_side: Some(32),
            points_per_batch: 64,
            pred_iou_thresh: 0.88,
            stability_score_thresh: 0.95,
            stability_score_offset: 1.0,
            box_nms_thresh: 0.7,
            crop_n_layers: 0,
            crop_nms_thresh: 0.7,
            crop_overlap_ratio: 512.0 / 1500.0,
            crop_n_points_downscale_factor: 1,
            point_grids: None,
            min_mask_region_area: 0,
            output_mode: OutputMode::BinaryMask,
        }
    }
}

impl AmgOptions {
    /// Checks the options, with a message naming the offending one.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(SamError::Input(format!("AMG options: {msg}")));
        match (self.points_per_side, &self.point_grids) {
            (Some(_), Some(_)) | (None, None) => {
                return bad("give exactly one of points_per_side and point_grids".into());
            }
            (Some(n), None) if !(1..=MAX_POINTS_PER_SIDE).contains(&n) => {
                return bad(format!(
                    "points_per_side {n} must be in 1..={MAX_POINTS_PER_SIDE}"
                ));
            }
            _ => {}
        }
        if !(1..=MAX_POINTS_PER_BATCH).contains(&self.points_per_batch) {
            return bad(format!(
                "points_per_batch {} must be in 1..={MAX_POINTS_PER_BATCH}",
                self.points_per_batch
            ));
        }
        if self.crop_n_points_downscale_factor > MAX_POINTS_DOWNSCALE_FACTOR {
            return bad(format!(
                "crop_n_points_downscale_factor {} is above the maximum of \
                 {MAX_POINTS_DOWNSCALE_FACTOR}",
                self.crop_n_points_downscale_factor
            ));
        }
        if let Some(grids) = &self.point_grids {
            let total = grids.iter().try_fold(0usize, |a, g| a.checked_add(g.len()));
            if total.is_none_or(|n| n > MAX_GRID_POINTS) {
                return bad(format!(
                    "the point grids hold more than {MAX_GRID_POINTS} points in all"
                ));
            }
        }
        if self.crop_n_layers > MAX_CROP_LAYERS {
            return bad(format!(
                "crop_n_layers {} is above the supported maximum of {MAX_CROP_LAYERS}",
                self.crop_n_layers
            ));
        }
        if self.crop_n_points_downscale_factor == 0 {
            return bad("crop_n_points_downscale_factor must be at least 1".into());
        }
        for (name, v) in [
            ("pred_iou_thresh", self.pred_iou_thresh),
            ("stability_score_thresh", self.stability_score_thresh),
        ] {
            if !v.is_finite() {
                return bad(format!("{name} {v} is not finite"));
            }
        }
        if !(self.stability_score_offset.is_finite() && self.stability_score_offset >= 0.0) {
            return bad(format!(
                "stability_score_offset {} must be finite and >= 0",
                self.stability_score_offset
            ));
        }
        for (name, v) in [
            ("box_nms_thresh", self.box_nms_thresh),
            ("crop_nms_thresh", self.crop_nms_thresh),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(format!("{name} {v} is not an IoU in [0, 1]"));
            }
        }
        if !(0.0..1.0).contains(&self.crop_overlap_ratio) {
            return bad(format!(
                "crop_overlap_ratio {} must be in [0, 1)",
                self.crop_overlap_ratio
            ));
        }
        if let Some(grids) = &self.point_grids {
            if grids.len() <= self.crop_n_layers {
                return bad(format!(
                    "{} point grids for {} crop layers (need one per layer, plus the full image)",
                    grids.len(),
                    self.crop_n_layers
                ));
            }
            for (layer, grid) in grids.iter().enumerate() {
                if let Some(p) = grid
                    .iter()
                    .find(|p| !p.iter().all(|v| (0.0..=1.0).contains(v)))
                {
                    return bad(format!(
                        "point grid {layer} holds {p:?}; grid points are fractions of the crop in [0, 1]"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The point grid of each layer (`build_all_layer_point_grids`, or the explicit grids).
    pub fn layer_point_grids(&self) -> Vec<Vec<[f64; 2]>> {
        match (&self.point_grids, self.points_per_side) {
            (Some(grids), _) => grids.clone(),
            (None, Some(n)) => utils::build_all_layer_point_grids(
                n,
                self.crop_n_layers,
                self.crop_n_points_downscale_factor,
            ),
            (None, None) => Vec::new(),
        }
    }

    /// The options as the `settings` object of an annotation file (official argument names).
    /// Explicit grids are written as `point_grids`.
    pub fn settings_json(&self) -> Value {
        let mut v = json!({
            "points_per_side": self.points_per_side,
            "points_per_batch": self.points_per_batch,
            "pred_iou_thresh": self.pred_iou_thresh,
            "stability_score_thresh": self.stability_score_thresh,
            "stability_score_offset": self.stability_score_offset,
            "box_nms_thresh": self.box_nms_thresh,
            "crop_n_layers": self.crop_n_layers,
            "crop_nms_thresh": self.crop_nms_thresh,
            "crop_overlap_ratio": self.crop_overlap_ratio,
            "crop_n_points_downscale_factor": self.crop_n_points_downscale_factor,
            "min_mask_region_area": self.min_mask_region_area,
            "output_mode": self.output_mode.name(),
        });
        if let Some(grids) = &self.point_grids {
            v["point_grids"] = json!(grids);
        }
        v
    }
}

/// Where a run stands, passed to the progress callback of
/// [`SamAutomaticMaskGenerator::generate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AmgProgress {
    /// Point batches decoded so far, over all crops.
    pub batches_done: usize,
    /// Point batches of the whole run.
    pub batches_total: usize,
    /// The crop being processed (0 is the full image).
    pub crop_index: usize,
    /// Crops of the run (1 without crop layers).
    pub crops_total: usize,
}

/// A mask in the requested [`OutputMode`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MaskSegmentation {
    /// Row-major `h x w` booleans; `size` is `[h, w]`.
    BinaryMask { size: [usize; 2], mask: Vec<bool> },
    /// Uncompressed COCO RLE (column-major runs, zeros first).
    UncompressedRle(Rle),
    /// Compressed COCO RLE (pycocotools string).
    CocoRle(CocoRle),
}

impl MaskSegmentation {
    /// `[h, w]` of the mask.
    pub fn size(&self) -> [usize; 2] {
        match self {
            MaskSegmentation::BinaryMask { size, .. } => *size,
            MaskSegmentation::UncompressedRle(r) => r.size,
            MaskSegmentation::CocoRle(c) => c.size,
        }
    }

    /// The mask as uncompressed RLE.
    pub fn to_rle(&self) -> Result<Rle> {
        match self {
            MaskSegmentation::BinaryMask { size, mask } => {
                if mask.len() != size[0] * size[1] {
                    return Err(SamError::Input(format!(
                        "binary mask of {} values for size {size:?}",
                        mask.len()
                    )));
                }
                Ok(Rle::encode(mask, size[0], size[1]))
            }
            MaskSegmentation::UncompressedRle(r) => Ok(r.clone()),
            MaskSegmentation::CocoRle(c) => Ok(c.to_rle()?),
        }
    }

    /// The mask as row-major `h x w` booleans.
    pub fn to_mask(&self) -> Result<Vec<bool>> {
        match self {
            MaskSegmentation::BinaryMask { mask, .. } => Ok(mask.clone()),
            other => Ok(other.to_rle()?.decode()?),
        }
    }

    /// The same mask in another output mode.
    pub fn to_mode(&self, mode: OutputMode) -> Result<MaskSegmentation> {
        Ok(match mode {
            OutputMode::BinaryMask => MaskSegmentation::BinaryMask {
                size: self.size(),
                mask: self.to_mask()?,
            },
            OutputMode::UncompressedRle => MaskSegmentation::UncompressedRle(self.to_rle()?),
            OutputMode::CocoRle => MaskSegmentation::CocoRle(self.to_rle()?.to_coco()),
        })
    }
}

/// One generated mask: the official record (`segmentation`, `area`, `bbox`, `predicted_iou`,
/// `point_coords`, `stability_score`, `crop_box`).
#[derive(Clone, Debug, PartialEq)]
pub struct MaskRecord {
    /// The mask, at the image size.
    pub segmentation: MaskSegmentation,
    /// Foreground pixels.
    pub area: u64,
    /// Tight box `[x, y, w, h]` in pixels with `w = x1 - x0` for an inclusive `x1` (the
    /// official convention: a one-pixel mask has width 0); `[0, 0, 0, 0]` for an empty mask.
    pub bbox: [usize; 4],
    /// The decoder's IoU prediction (a float32 value).
    pub predicted_iou: f64,
    /// The prompt point `[x, y]` in image pixels (one, as a list like the official record).
    pub point_coords: Vec<[f64; 2]>,
    /// The stability score (a float32 value); NaN when no logit exceeds `-offset`.
    pub stability_score: f64,
    /// The crop the mask was generated in, `[x, y, w, h]`.
    pub crop_box: [usize; 4],
}

impl MaskRecord {
    /// The record as an SA-1B annotation with id `id`. A binary mask is stored as COCO RLE,
    /// the SA-1B format (JSON has no room for the array); NaN stability becomes `None`.
    pub fn to_annotation(&self, id: u64) -> Result<Annotation> {
        let segmentation = match &self.segmentation {
            MaskSegmentation::CocoRle(c) => Segmentation::from(c.clone()),
            MaskSegmentation::UncompressedRle(r) => Segmentation::from(r.clone()),
            m @ MaskSegmentation::BinaryMask { .. } => Segmentation::from(m.to_rle()?.to_coco()),
        };
        let mut ann = Annotation {
            id,
            segmentation,
            bbox: self.bbox.map(|v| v as f64),
            area: self.area,
            predicted_iou: self.predicted_iou,
            stability_score: None,
            crop_box: self.crop_box.map(|v| v as f64),
            point_coords: self.point_coords.clone(),
        };
        ann.set_stability_score(self.stability_score);
        Ok(ann)
    }
}

/// Records as SA-1B annotations, numbered from 0 in generation order.
pub fn records_to_annotations(records: &[MaskRecord]) -> Result<Vec<Annotation>> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| r.to_annotation(i as u64))
        .collect()
}

/// Records as an SA-1B file for an image of `(height, width)`, with the generator's settings
/// (write it with [`crate::io::sa1b::to_json`]).
pub fn records_to_sa1b(
    records: &[MaskRecord],
    image_size: (usize, usize),
    image_id: u64,
    file_name: &str,
    options: &AmgOptions,
) -> Result<Sa1bFile> {
    Ok(Sa1bFile {
        image: ImageInfo {
            image_id,
            width: image_size.1,
            height: image_size.0,
            file_name: file_name.to_owned(),
        },
        generator: Some("SamAutomaticMaskGenerator".into()),
        output_mode: Some(options.output_mode.name().into()),
        notes: None,
        settings: Some(options.settings_json()),
        annotations: records_to_annotations(records)?,
    })
}

/// A mask kept so far: its RLE at the image size and everything NMS and the record need.
struct Candidate {
    rle: Rle,
    /// XYXY, inclusive max, in the image frame.
    box_xyxy: [f32; 4],
    iou: f32,
    stability: f32,
    /// In the image frame.
    point: [f64; 2],
    /// XYXY.
    crop_box: [usize; 4],
}

/// The official automatic mask generator on a [`Sam`].
#[derive(Clone, Debug)]
pub struct SamAutomaticMaskGenerator<'a> {
    pub sam: &'a Sam,
    pub options: AmgOptions,
}

impl<'a> SamAutomaticMaskGenerator<'a> {
    /// A generator with checked options.
    pub fn new(sam: &'a Sam, options: AmgOptions) -> Result<Self> {
        options.validate()?;
        Ok(Self { sam, options })
    }

    /// Segments everything in `image`, returning the masks in the official order.
    ///
    /// `progress` is called before each crop is embedded and after each batch of points is
    /// decoded; when it returns `false` the run stops with [`SamError::Cancelled`]. An image
    /// with no surviving mask gives an empty list.
    pub async fn generate(
        &self,
        image: &RgbImage,
        progress: &mut dyn FnMut(AmgProgress) -> bool,
    ) -> Result<Vec<MaskRecord>> {
        self.generate_with(image, None, |p| std::future::ready(progress(p)))
            .await
    }

    /// [`generate`](Self::generate) with an asynchronous progress callback (a browser binding
    /// awaits a JS promise there, letting its event loop run between batches) and, optionally,
    /// the image's embedding from [`Sam::set_image`], reused for the full-image crop instead of
    /// embedding the image again. An embedding of another image size is an error.
    pub async fn generate_with<F, Fut>(
        &self,
        image: &RgbImage,
        embedding: Option<&ImageEmbedding>,
        mut progress: F,
    ) -> Result<Vec<MaskRecord>>
    where
        F: FnMut(AmgProgress) -> Fut,
        Fut: Future<Output = bool>,
    {
        let o = &self.options;
        o.validate()?;
        image.validate()?;
        let (h, w) = (image.height, image.width);
        if let Some(e) = embedding
            && e.original_size != (h, w)
        {
            return Err(SamError::Input(format!(
                "the embedding is of a {}x{} image, not of this {w}x{h} one",
                e.original_size.1, e.original_size.0
            )));
        }
        let grids = o.layer_point_grids();
        let (crop_boxes, layers) =
            utils::generate_crop_boxes((h, w), o.crop_n_layers, o.crop_overlap_ratio);
        if let Some(b) = crop_boxes.iter().find(|b| b[2] <= b[0] || b[3] <= b[1]) {
            return Err(SamError::Input(format!(
                "the {w}x{h} image is too small for {} crop layers (crop box {b:?} is empty)",
                o.crop_n_layers
            )));
        }
        let mut state = AmgProgress {
            batches_done: 0,
            batches_total: layers
                .iter()
                .map(|&l| grids[l].len().div_ceil(o.points_per_batch))
                .sum(),
            crop_index: 0,
            crops_total: crop_boxes.len(),
        };

        let mut data = Vec::new();
        for (ci, (&crop_box, &layer)) in crop_boxes.iter().zip(&layers).enumerate() {
            state.crop_index = ci;
            if !progress(state).await {
                return Err(SamError::Cancelled);
            }
            let full = crop_box == [0, 0, w, h];
            let crop = self
                .process_crop(
                    image,
                    crop_box,
                    &grids[layer],
                    embedding.filter(|_| full),
                    &mut state,
                    &mut progress,
                )
                .await?;
            data.extend(crop);
        }

        // Deduplicate across crops, preferring masks from smaller crops.
        if crop_boxes.len() > 1 && !data.is_empty() {
            let boxes: Vec<[f32; 4]> = data.iter().map(|c| c.box_xyxy).collect();
            let scores: Vec<f32> = data
                .iter()
                .map(|c| utils::crop_nms_score(c.crop_box))
                .collect();
            let keep = utils::batched_nms(&boxes, &scores, &vec![0; data.len()], o.crop_nms_thresh);
            data = take(data, &keep);
        }

        if o.min_mask_region_area > 0 && !data.is_empty() {
            let mut rles: Vec<Rle> = data.iter().map(|c| c.rle.clone()).collect();
            let mut boxes: Vec<[f32; 4]> = data.iter().map(|c| c.box_xyxy).collect();
            let keep = utils::postprocess_small_regions(
                &mut rles,
                &mut boxes,
                o.min_mask_region_area as f64,
                o.box_nms_thresh.max(o.crop_nms_thresh),
            )?;
            for ((c, rle), b) in data.iter_mut().zip(rles).zip(boxes) {
                c.rle = rle;
                c.box_xyxy = b;
            }
            data = take(data, &keep);
        }

        data.into_iter()
            .map(|c| self.record(c))
            .collect::<Result<Vec<_>>>()
    }

    fn record(&self, c: Candidate) -> Result<MaskRecord> {
        let [h, w] = c.rle.size;
        let segmentation = match self.options.output_mode {
            OutputMode::BinaryMask => MaskSegmentation::BinaryMask {
                size: [h, w],
                mask: c.rle.decode()?,
            },
            OutputMode::UncompressedRle => MaskSegmentation::UncompressedRle(c.rle.clone()),
            OutputMode::CocoRle => MaskSegmentation::CocoRle(c.rle.to_coco()),
        };
        Ok(MaskRecord {
            area: c.rle.area(),
            segmentation,
            bbox: utils::box_xyxy_to_xywh(c.box_xyxy).map(|v| v as usize),
            predicted_iou: f64::from(c.iou),
            point_coords: vec![c.point],
            stability_score: f64::from(c.stability),
            crop_box: utils::box_xyxy_to_xywh(c.crop_box),
        })
    }

    /// Official `_process_crop`: embed the crop, run its points in batches, NMS within it.
    async fn process_crop<F, Fut>(
        &self,
        image: &RgbImage,
        crop_box: [usize; 4],
        grid: &[[f64; 2]],
        embedding: Option<&ImageEmbedding>,
        state: &mut AmgProgress,
        progress: &mut F,
    ) -> Result<Vec<Candidate>>
    where
        F: FnMut(AmgProgress) -> Fut,
        Fut: Future<Output = bool>,
    {
        if grid.is_empty() {
            return Ok(Vec::new());
        }
        let (ch, cw) = (crop_box[3] - crop_box[1], crop_box[2] - crop_box[0]);
        let emb = match embedding {
            Some(e) => e.clone(),
            None => self.sam.set_image(&crop_image(image, crop_box)?)?,
        };
        let points: Vec<[f64; 2]> = grid
            .iter()
            .map(|p| [p[0] * cw as f64, p[1] * ch as f64])
            .collect();
        // The official batches (progress counts them), each decoded in parts that fit the
        // device's largest buffer.
        let per_decode = points_per_decode(
            self.options.points_per_batch,
            max_buffer_bytes(self.sam.device()),
        );
        let mut data = Vec::new();
        for batch in points.chunks(self.options.points_per_batch) {
            for part in batch.chunks(per_decode) {
                let found = self
                    .process_batch(
                        &emb.features,
                        emb.input_size,
                        part,
                        (ch, cw),
                        crop_box,
                        image,
                    )
                    .await?;
                data.extend(found);
            }
            state.batches_done += 1;
            if !progress(*state).await {
                return Err(SamError::Cancelled);
            }
        }
        if data.is_empty() {
            return Ok(data);
        }
        // NMS in the crop frame, as the official code does before uncropping the boxes (the
        // result is the same: the boxes are integers).
        let [x0, y0, ..] = crop_box.map(|v| v as f32);
        let boxes: Vec<[f32; 4]> = data
            .iter()
            .map(|c| {
                let b = c.box_xyxy;
                [b[0] - x0, b[1] - y0, b[2] - x0, b[3] - y0]
            })
            .collect();
        let scores: Vec<f32> = data.iter().map(|c| c.iou).collect();
        let keep = utils::batched_nms(
            &boxes,
            &scores,
            &vec![0; data.len()],
            self.options.box_nms_thresh,
        );
        Ok(take(data, &keep))
    }

    /// Official `_process_batch` for points in the crop frame.
    async fn process_batch(
        &self,
        features: &Tensor<4>,
        input_size: (usize, usize),
        points: &[[f64; 2]],
        crop_size: (usize, usize),
        crop_box: [usize; 4],
        image: &RgbImage,
    ) -> Result<Vec<Candidate>> {
        let o = &self.options;
        let sam = self.sam;
        let device = sam.device();
        let b = points.len();
        let (ch, cw) = crop_size;

        // The official code feeds float64 points: `(p + 0.5) / 1024` is computed in float64
        // and then rounded to float32. `t - 0.5` with `t = f32(p + 0.5)` is exact in f32, so
        // the prompt encoder's own `(x + 0.5) / 1024` in f32 gives that same value.
        let transformed = preprocess::apply_coords_f64(points, crop_size, IMG_SIZE);
        let mut coords = Vec::with_capacity(b * 4);
        for p in &transformed {
            coords.extend([
                (p[0] + 0.5) as f32 - 0.5,
                (p[1] + 0.5) as f32 - 0.5,
                0.0,
                0.0,
            ]);
        }
        let coords = Tensor::<3>::from_data(TensorData::new(coords, [b, 2, 2]), device);
        let labels = vec![vec![LABEL_POSITIVE, LABEL_PAD]; b];
        let sparse = sam.prompt_encoder.embed_points(coords, &labels)?;
        let dense = sam.prompt_encoder.no_mask_dense(b);
        let (low_res, iou) = sam.decode(features.clone(), sparse, dense)?.select(true);
        let n_out = low_res.dims()[1];
        let low_res = low_res.reshape([b * n_out, 1, LOW_RES_SIZE, LOW_RES_SIZE]);
        let (_, iou) = read_f32(iou).await?;

        // Predicted-IoU filter (float32 comparison, as torch compares a float32 tensor with a
        // Python float).
        let iou_thresh = o.pred_iou_thresh as f32;
        let kept: Vec<usize> = (0..b * n_out)
            .filter(|&i| o.pred_iou_thresh <= 0.0 || iou[i] > iou_thresh)
            .collect();

        let stab_thresh = o.stability_score_thresh as f32;
        let offset = o.stability_score_offset as f32;
        let orig_box = [0, 0, image.width, image.height];
        let mut out = Vec::new();
        for chunk in kept.chunks(MASKS_PER_UPSCALE) {
            let k = chunk.len();
            let logits = postprocess_masks(
                low_res.clone().select(0, index_tensor(chunk, device)),
                input_size,
                crop_size,
            ); // [k, 1, ch, cw]
            let (_, stability) = read_f32(calculate_stability_score(
                logits.clone(),
                MASK_THRESHOLD,
                offset,
            ))
            .await?;
            let passed: Vec<usize> = (0..k)
                .filter(|&j| o.stability_score_thresh <= 0.0 || stability[j] >= stab_thresh)
                .collect();
            if passed.is_empty() {
                continue;
            }
            let selected = if passed.len() == k {
                logits
            } else {
                logits.select(0, index_tensor(&passed, device))
            };
            let packed = pack_positive(selected.reshape([passed.len(), ch * cw]));
            let (_, packed) = read_f32(packed).await?;
            let groups = (ch * cw).div_ceil(PACK_BITS);
            for (pi, &j) in passed.iter().enumerate() {
                let mask = unpack(&packed[pi * groups..(pi + 1) * groups], ch * cw);
                let bx = utils::batched_mask_to_box(&mask, ch, cw);
                if utils::is_box_near_crop_edge(&[bx], crop_box, orig_box, CROP_EDGE_ATOL)[0] {
                    continue;
                }
                let full = utils::uncrop_mask(&mask, crop_box, image.height, image.width);
                let i = chunk[j];
                out.push(Candidate {
                    rle: Rle::encode(&full, image.height, image.width),
                    box_xyxy: utils::uncrop_boxes_xyxy(&[bx], crop_box)[0],
                    iou: iou[i],
                    stability: stability[j],
                    point: utils::uncrop_points(&[points[i / n_out]], crop_box)[0],
                    crop_box,
                });
            }
        }
        Ok(out)
    }
}

/// The elements of `v` at `keep`, in that order.
fn take<T>(v: Vec<T>, keep: &[usize]) -> Vec<T> {
    let mut slots: Vec<Option<T>> = v.into_iter().map(Some).collect();
    keep.iter().filter_map(|&i| slots[i].take()).collect()
}

fn index_tensor(indices: &[usize], device: &burn::tensor::Device) -> Tensor<1, Int> {
    let n = indices.len();
    Tensor::from_data(
        TensorData::new(indices.iter().map(|&i| i as i64).collect::<Vec<_>>(), [n]),
        device,
    )
}

/// `[k, n]` logits → `[k, ceil(n / 16)]` floats whose bit `j` of value `g` is
/// `logit[16 g + j] > 0` (exact integers below 2^16).
fn pack_positive(logits: Tensor<2>) -> Tensor<2> {
    let [k, n] = logits.dims();
    let device = logits.device();
    let groups = n.div_ceil(PACK_BITS);
    let mut bits = logits.greater_elem(MASK_THRESHOLD).float();
    if groups * PACK_BITS != n {
        bits = Tensor::cat(
            vec![bits, Tensor::zeros([k, groups * PACK_BITS - n], &device)],
            1,
        );
    }
    let weights: Vec<f32> = (0..PACK_BITS).map(|j| (1u32 << j) as f32).collect();
    let weights = Tensor::<3>::from_data(TensorData::new(weights, [1, 1, PACK_BITS]), &device);
    (bits.reshape([k, groups, PACK_BITS]) * weights)
        .sum_dim(2)
        .reshape([k, groups])
}

/// The first `n` bits of packed values (see [`pack_positive`]).
fn unpack(packed: &[f32], n: usize) -> Vec<bool> {
    let mut out = Vec::with_capacity(packed.len() * PACK_BITS);
    for &v in packed {
        let v = v as u32;
        out.extend((0..PACK_BITS).map(|j| (v >> j) & 1 == 1));
    }
    out.truncate(n);
    out
}

/// The `[x0, y0, x1, y1]` crop of an image (`image[y0:y1, x0:x1]`).
fn crop_image(image: &RgbImage, crop_box: [usize; 4]) -> Result<RgbImage> {
    let [x0, y0, x1, y1] = crop_box;
    if crop_box == [0, 0, image.width, image.height] {
        return Ok(image.clone());
    }
    let mut data = Vec::with_capacity((x1 - x0) * (y1 - y0) * 3);
    for y in y0..y1 {
        let row = (y * image.width + x0) * 3;
        data.extend_from_slice(&image.data[row..row + (x1 - x0) * 3]);
    }
    Ok(RgbImage::new(x1 - x0, y1 - y0, data)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_round_trip_on_the_host() {
        let mask: Vec<bool> = (0..37).map(|i| i % 3 == 0 || i == 36).collect();
        let packed: Vec<f32> = mask
            .chunks(PACK_BITS)
            .map(|c| {
                c.iter()
                    .enumerate()
                    .map(|(j, &b)| if b { (1u32 << j) as f32 } else { 0.0 })
                    .sum()
            })
            .collect();
        assert_eq!(unpack(&packed, mask.len()), mask);
    }

    #[test]
    fn batches_split_to_the_device_buffer() {
        // The CPU backend: no limit, the official batch.
        assert_eq!(points_per_decode(64, None), 64);
        // WebGPU's default 128 MiB binding limit: 16 points of 8 MiB; 256 MiB: 32.
        assert_eq!(points_per_decode(64, Some(128 << 20)), 16);
        assert_eq!(points_per_decode(64, Some(256 << 20)), 32);
        // A batch that fits is not split; a device too small for one point still decodes one.
        assert_eq!(points_per_decode(8, Some(128 << 20)), 8);
        assert_eq!(points_per_decode(64, Some(1 << 20)), 1);
        assert_eq!(points_per_decode(64, Some(0)), 1);
        assert_eq!(points_per_decode(1024, Some(u64::MAX)), 1024);
        // A 64-point batch in 128 MiB: four parts of 16 points, each within the buffer.
        assert_eq!(64usize.div_ceil(points_per_decode(64, Some(128 << 20))), 4);
        const { assert!(16 * DECODER_BYTES_PER_POINT <= 128 << 20) };
    }

    #[test]
    fn take_keeps_order() {
        assert_eq!(
            take(vec!['a', 'b', 'c', 'd'], &[3, 0, 2]),
            vec!['d', 'a', 'c']
        );
    }
}
