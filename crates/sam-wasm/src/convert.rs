//! JS values to sam-core types and back. Plain objects are read field by field with clear
//! messages (`prompt.points[2] must be [x, y]`) rather than a generic deserialisation error.

use js_sys::{Array, Float32Array, Object, Reflect, Uint8Array};
use sam_core::ModelType;
use sam_core::Precision;
use sam_core::Prompt;
use sam_core::amg::{AmgOptions, AmgProgress, OutputMode};
use sam_core::predictor::MaskChoice;
use wasm_bindgen::prelude::*;

use crate::backend::BackendChoice;
use crate::error::type_error;

/// `obj[name]`, or `None` when `obj` is null/undefined or the field is undefined/null.
pub fn field(obj: &JsValue, name: &str) -> Result<Option<JsValue>, JsValue> {
    if obj.is_undefined() || obj.is_null() {
        return Ok(None);
    }
    if !obj.is_object() {
        return Err(type_error(&format!(
            "expected an options object, got {obj:?}"
        )));
    }
    let v = Reflect::get(obj, &name.into())?;
    Ok((!v.is_undefined() && !v.is_null()).then_some(v))
}

fn number(v: &JsValue, what: &str) -> Result<f64, JsValue> {
    v.as_f64()
        .ok_or_else(|| type_error(&format!("{what} must be a number, got {v:?}")))
}

fn count(v: &JsValue, what: &str) -> Result<usize, JsValue> {
    let n = number(v, what)?;
    if n.fract() != 0.0 || !(0.0..=1e9).contains(&n) {
        return Err(type_error(&format!(
            "{what} must be a non-negative integer, got {n}"
        )));
    }
    Ok(n as usize)
}

fn boolean(v: &JsValue, what: &str) -> Result<bool, JsValue> {
    v.as_bool()
        .ok_or_else(|| type_error(&format!("{what} must be true or false, got {v:?}")))
}

fn numbers(v: &JsValue, what: &str) -> Result<Vec<f64>, JsValue> {
    if !Array::is_array(v) && !v.is_instance_of::<Float32Array>() {
        return Err(type_error(&format!("{what} must be an array of numbers")));
    }
    Array::from(v)
        .iter()
        .enumerate()
        .map(|(i, x)| number(&x, &format!("{what}[{i}]")))
        .collect()
}

/// The `options` of `Segmenter.create`.
pub struct SegmenterOptions {
    /// The model type, or `None` to detect it from the checkpoint's keys.
    pub model_type: Option<ModelType>,
    pub backend: BackendChoice,
    pub precision: Precision,
    pub on_progress: Option<js_sys::Function>,
}

/// Reads the `options` of `Segmenter.create`: `{ modelType?, backend?, precision?,
/// onProgress? }`.
pub fn segmenter_options(options: &JsValue) -> Result<SegmenterOptions, JsValue> {
    let model_type = match field(options, "modelType")? {
        None => None,
        Some(v) => {
            let name = v
                .as_string()
                .ok_or_else(|| type_error("options.modelType must be a string"))?;
            Some(match name.as_str() {
                "vit_h" | "default" => ModelType::VitH,
                "vit_l" => ModelType::VitL,
                "vit_b" => ModelType::VitB,
                "mobile_sam" | "vit_t" => ModelType::MobileSam,
                other => {
                    return Err(type_error(&format!(
                        "unknown modelType {other:?} (expected vit_h, vit_l, vit_b or mobile_sam)"
                    )));
                }
            })
        }
    };
    let backend = match field(options, "backend")? {
        None => BackendChoice::Auto,
        Some(v) => BackendChoice::parse(
            &v.as_string()
                .ok_or_else(|| type_error("options.backend must be a string"))?,
        )?,
    };
    let precision = match field(options, "precision")? {
        None => Precision::F32,
        Some(v) => precision(
            &v.as_string()
                .ok_or_else(|| type_error("options.precision must be a string"))?,
        )
        .map_err(|e| type_error(&e))?,
    };
    let on_progress = match field(options, "onProgress")? {
        None => None,
        Some(v) => Some(
            v.dyn_into::<js_sys::Function>()
                .map_err(|_| type_error("options.onProgress must be a function"))?,
        ),
    };
    Ok(SegmenterOptions {
        model_type,
        backend,
        precision,
        on_progress,
    })
}

/// `"f32"`, `"f16"` or `"auto"` as a [`Precision`].
pub fn precision(name: &str) -> Result<Precision, String> {
    match name {
        "f32" => Ok(Precision::F32),
        "f16" => Ok(Precision::F16),
        "auto" => Ok(Precision::Auto),
        other => Err(format!(
            "unknown precision {other:?} (expected \"f32\", \"f16\" or \"auto\")"
        )),
    }
}

/// A `PromptInput` object as a sam-core [`Prompt`] (checked further by sam-core).
pub fn prompt(input: &JsValue) -> Result<Prompt, JsValue> {
    if !input.is_object() {
        return Err(type_error(
            "predict() takes a prompt object: { points?, labels?, box?, maskInput?, multimask? }",
        ));
    }
    let mut p = Prompt::default();
    if let Some(points) = field(input, "points")? {
        if !Array::is_array(&points) {
            return Err(type_error("prompt.points must be an array of [x, y]"));
        }
        for (i, pt) in Array::from(&points).iter().enumerate() {
            let xy = numbers(&pt, &format!("prompt.points[{i}]"))?;
            let [x, y] = xy[..] else {
                return Err(type_error(&format!("prompt.points[{i}] must be [x, y]")));
            };
            p.points.push([x as f32, y as f32]);
        }
    }
    if let Some(labels) = field(input, "labels")? {
        for (i, l) in numbers(&labels, "prompt.labels")?.into_iter().enumerate() {
            if l.fract() != 0.0 {
                return Err(type_error(&format!(
                    "prompt.labels[{i}] must be 1 (positive) or 0 (negative), got {l}"
                )));
            }
            p.labels.push(l as i32);
        }
    } else if !p.points.is_empty() {
        // Clicks without labels are positive, as a user would expect.
        p.labels = vec![1; p.points.len()];
    }
    if let Some(b) = field(input, "box")? {
        let v = numbers(&b, "prompt.box")?;
        let [x0, y0, x1, y1] = v[..] else {
            return Err(type_error("prompt.box must be [x0, y0, x1, y1]"));
        };
        p.bbox = Some([x0 as f32, y0 as f32, x1 as f32, y1 as f32]);
    }
    if let Some(m) = field(input, "maskInput")? {
        let values: Vec<f32> = if let Some(f) = m.dyn_ref::<Float32Array>() {
            f.to_vec()
        } else {
            numbers(&m, "prompt.maskInput")?
                .into_iter()
                .map(|v| v as f32)
                .collect()
        };
        p.mask_input = Some(values);
    }
    if let Some(m) = field(input, "multimask")? {
        p.multimask_output = boolean(&m, "prompt.multimask")?;
    }
    Ok(p)
}

/// Points per batch of the browser's generator: 16 prompts make 48 low-res masks and 16
/// image-sized transformer activations, far below WebGPU's 128-256 MiB buffer limits
/// (the official 64 needs 256 MB tensors in the decoder).
pub const BROWSER_POINTS_PER_BATCH: usize = 16;

/// `GenerateOptions` as [`AmgOptions`] (COCO RLE output) plus the file name to record.
pub fn generate_options(options: &JsValue) -> Result<(AmgOptions, String), JsValue> {
    let mut o = AmgOptions {
        points_per_batch: BROWSER_POINTS_PER_BATCH,
        output_mode: OutputMode::CocoRle,
        ..AmgOptions::default()
    };
    let f = |name: &str| field(options, name);
    let what = |name: &str| format!("options.{name}");
    if let Some(v) = f("pointsPerSide")? {
        o.points_per_side = Some(count(&v, &what("pointsPerSide"))?);
    }
    if let Some(v) = f("pointsPerBatch")? {
        o.points_per_batch = count(&v, &what("pointsPerBatch"))?;
    }
    for (name, slot) in [
        ("predIouThresh", &mut o.pred_iou_thresh),
        ("stabilityScoreThresh", &mut o.stability_score_thresh),
        ("stabilityScoreOffset", &mut o.stability_score_offset),
        ("boxNmsThresh", &mut o.box_nms_thresh),
        ("cropNmsThresh", &mut o.crop_nms_thresh),
        ("cropOverlapRatio", &mut o.crop_overlap_ratio),
    ] {
        if let Some(v) = f(name)? {
            *slot = number(&v, &what(name))?;
        }
    }
    if let Some(v) = f("cropNLayers")? {
        o.crop_n_layers = count(&v, &what("cropNLayers"))?;
    }
    if let Some(v) = f("cropNPointsDownscaleFactor")? {
        o.crop_n_points_downscale_factor = count(&v, &what("cropNPointsDownscaleFactor"))?;
    }
    if let Some(v) = f("minMaskRegionArea")? {
        o.min_mask_region_area = count(&v, &what("minMaskRegionArea"))?;
    }
    let file_name = match f("fileName")? {
        None => String::new(),
        Some(v) => v
            .as_string()
            .ok_or_else(|| type_error("options.fileName must be a string"))?,
    };
    Ok((o, file_name))
}

/// A `GenerateProgress` object.
pub fn progress_object(p: AmgProgress) -> JsValue {
    let o = Object::new();
    for (k, v) in [
        ("batchesDone", p.batches_done),
        ("batchesTotal", p.batches_total),
        ("cropIndex", p.crop_index),
        ("cropsTotal", p.crops_total),
    ] {
        let _ = Reflect::set(&o, &k.into(), &JsValue::from(v as f64));
    }
    o.into()
}

/// Sets `obj[name] = value` (on a fresh object this cannot fail).
pub fn set(obj: &Object, name: &str, value: &JsValue) {
    let _ = Reflect::set(obj, &name.into(), value);
}

/// What a `predict` call asks for besides the prompt (`PredictOptions`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PredictOptions {
    /// `masks: "all"` (default) or `"best"`: the mask of the highest score only.
    pub masks: MaskChoice,
    /// `lowResLogits` (default true): return the 256x256 logits of each mask.
    pub low_res_logits: bool,
}

impl Default for PredictOptions {
    fn default() -> Self {
        Self {
            masks: MaskChoice::All,
            low_res_logits: true,
        }
    }
}

/// The `options` of `predict` (undefined or null: everything, as before).
pub fn predict_options(options: &JsValue) -> Result<PredictOptions, JsValue> {
    let mut o = PredictOptions::default();
    if let Some(v) = field(options, "masks")? {
        o.masks = match v.as_string().as_deref() {
            Some("all") => MaskChoice::All,
            Some("best") => MaskChoice::Best,
            _ => {
                return Err(type_error(&format!(
                    "options.masks must be \"all\" or \"best\", got {v:?}"
                )));
            }
        };
    }
    if let Some(v) = field(options, "lowResLogits")? {
        o.low_res_logits = boolean(&v, "options.lowResLogits")?;
    }
    Ok(o)
}

/// A colour `[r, g, b]`, each an integer in 0..=255 (`drawPreview`'s).
pub fn color(v: &JsValue) -> Result<[u8; 3], JsValue> {
    let values = numbers(v, "color")?;
    match values[..] {
        [r, g, b]
            if values
                .iter()
                .all(|c| c.fract() == 0.0 && (0.0..=255.0).contains(c)) =>
        {
            Ok([r as u8, g as u8, b as u8])
        }
        _ => Err(type_error(&format!(
            "color must be [r, g, b], integers in 0..=255, got {values:?}"
        ))),
    }
}

/// A `PredictResult` object from host values: `masks` (C x H x W row-major bytes, 0 or 1),
/// `scores` (C) and `low_res` (C x 256 x 256; `None`: an empty `lowResLogits`). Each mask is
/// copied once, from wasm memory into its own `Uint8Array`.
pub fn predict_result(
    (height, width): (usize, usize),
    masks: &[u8],
    scores: &[f32],
    low_res: Option<&[f32]>,
) -> JsValue {
    let c = scores.len();
    let hw = height * width;
    let out = Object::new();
    set(&out, "width", &JsValue::from(width as f64));
    set(&out, "height", &JsValue::from(height as f64));
    let mask_list = Array::new();
    for m in masks.chunks(hw.max(1)).take(c) {
        mask_list.push(&Uint8Array::from(m));
    }
    set(&out, "masks", &mask_list);
    let score_list = Array::new();
    for &s in scores {
        score_list.push(&JsValue::from(s as f64));
    }
    set(&out, "scores", &score_list);
    let low = Array::new();
    if let Some(low_res) = low_res {
        let per = low_res.len() / c.max(1);
        for l in low_res.chunks(per.max(1)).take(c) {
            low.push(&Float32Array::from(l));
        }
    }
    set(&out, "lowResLogits", &low);
    let best = scores
        .iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |acc, (i, &s)| {
                if s > acc.1 { (i, s) } else { acc }
            },
        )
        .0;
    set(&out, "best", &JsValue::from(best as f64));
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precisions_parse_and_others_are_named() {
        assert_eq!(precision("f32"), Ok(Precision::F32));
        assert_eq!(precision("f16"), Ok(Precision::F16));
        assert_eq!(precision("auto"), Ok(Precision::Auto));
        let e = precision("fp16").unwrap_err();
        assert!(e.contains("\"fp16\"") && e.contains("\"f16\""), "{e}");
    }
}
