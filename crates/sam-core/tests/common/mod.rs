//! Shared helpers of the reference-parity tests: the `../shared/reference` kit, devices, and
//! error measures. The reference tensors are read with the `safetensors` crate directly, not
//! through the code under test.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
#[cfg(feature = "wgpu")]
use std::sync::OnceLock;

use burn::tensor::{Device, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};
use sam_core::Sam;
use sam_core::modeling::prompt_encoder::{LABEL_BOX_BOTTOM_RIGHT, LABEL_BOX_TOP_LEFT, LABEL_PAD};
use serde_json::Value;

/// `$SAM_REFERENCE_DIR`, else `shared/reference` beside the repository.
pub fn reference_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("SAM_REFERENCE_DIR") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference")
}

pub fn read(name: &str) -> Vec<u8> {
    let path = reference_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

pub fn manifest(tag: &str) -> Value {
    serde_json::from_slice(&read(&format!("{tag}_manifest.json"))).unwrap()
}

/// The tags used when `$SAM_REFERENCE_TAGS` is unset and the kit holds no manifest.
pub const DEFAULT_TAGS: &str = "tiny_seed0,mobile_sam_seed0";

/// The kit's tags (`<tag>.pth`, `<tag>_manifest.json`, `<tag>_ref.safetensors`), any seed:
/// `$SAM_REFERENCE_TAGS` (comma-separated), else every `<tag>_manifest.json` of the kit
/// (sorted), else [`DEFAULT_TAGS`].
pub fn reference_tags() -> Vec<String> {
    if let Ok(tags) = std::env::var("SAM_REFERENCE_TAGS") {
        return tags
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect();
    }
    let mut found: Vec<String> = std::fs::read_dir(reference_dir())
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix("_manifest.json").map(String::from)
        })
        .collect();
    found.sort();
    if found.is_empty() {
        DEFAULT_TAGS.split(',').map(String::from).collect()
    } else {
        found
    }
}

/// The tag of [`reference_tags`] whose manifest's `config` is `config` (`"tiny"` or
/// `"mobile_sam"`); checks the manifest's own `tag` agrees with its file name.
pub fn tag_for(config: &str) -> String {
    let tags = reference_tags();
    for tag in &tags {
        let m = manifest(tag);
        assert_eq!(m["tag"].as_str(), Some(tag.as_str()), "{tag}_manifest.json");
        if m["config"].as_str() == Some(config) {
            return tag.clone();
        }
    }
    panic!("no {config} tag among the reference tags {tags:?} (SAM_REFERENCE_TAGS)")
}

/// The kit's ViT test model (`config: tiny`), e.g. `tiny_seed0`.
pub fn tiny_tag() -> String {
    tag_for("tiny")
}

/// The kit's MobileSAM (`config: mobile_sam`), e.g. `mobile_sam_seed0`.
pub fn mobile_sam_tag() -> String {
    tag_for("mobile_sam")
}

/// Both model tags of the kit: `[tiny, mobile_sam]`.
pub fn model_tags() -> [String; 2] {
    [tiny_tag(), mobile_sam_tag()]
}

/// A reference tensor, as f32 (bool tensors as 0/1).
#[derive(Clone, Debug)]
pub struct RefTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl RefTensor {
    pub fn to_device<const D: usize>(&self, device: &Device) -> Tensor<D> {
        Tensor::from_data(
            TensorData::new(self.data.clone(), self.shape.clone()),
            device,
        )
    }
}

/// All tensors of a reference safetensors file.
pub struct RefFile(HashMap<String, RefTensor>);

impl RefFile {
    pub fn open(name: &str) -> Self {
        let bytes = read(name);
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let mut map = HashMap::new();
        for (key, view) in st.tensors() {
            let raw = view.data();
            let data: Vec<f32> = match view.dtype() {
                Dtype::F32 => raw
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                Dtype::BOOL | Dtype::U8 => raw.iter().map(|&b| b as f32).collect(),
                Dtype::I64 => raw
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32)
                    .collect(),
                other => panic!("{key}: unexpected dtype {other:?}"),
            };
            map.insert(
                key.to_string(),
                RefTensor {
                    shape: view.shape().to_vec(),
                    data,
                },
            );
        }
        Self(map)
    }

    pub fn get(&self, key: &str) -> &RefTensor {
        self.0
            .get(key)
            .unwrap_or_else(|| panic!("reference tensor {key} missing"))
    }

    pub fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }
}

/// The devices parity tests run on: burn's CPU backend (`flex`) and wgpu (Mesa lavapipe on
/// CI machines). `SAM_SKIP_WGPU=1` leaves wgpu out on a machine with no Vulkan driver.
pub fn devices() -> Vec<(&'static str, Device)> {
    #[allow(unused_mut)]
    let mut out = vec![("flex", Device::flex())];
    #[cfg(feature = "wgpu")]
    if std::env::var("SAM_SKIP_WGPU").is_err() {
        out.push(("wgpu", wgpu_device()));
    }
    out
}

#[cfg(feature = "wgpu")]
pub fn wgpu_device() -> Device {
    static DEVICE: OnceLock<Device> = OnceLock::new();
    DEVICE
        .get_or_init(|| {
            Device::wgpu_options()
                .init()
                .expect("no wgpu adapter: install mesa-vulkan-drivers or set SAM_SKIP_WGPU=1")
        })
        .clone()
}

pub fn to_vec<const D: usize>(t: Tensor<D>) -> (Vec<usize>, Vec<f32>) {
    let data = t.into_data();
    let shape = data.shape().to_vec();
    (shape, data.try_to_vec::<f32>().unwrap())
}

/// Max |a - b|, checking shapes agree.
pub fn max_abs_diff<const D: usize>(ours: Tensor<D>, reference: &RefTensor, what: &str) -> f32 {
    let (shape, data) = to_vec(ours);
    let ref_numel: usize = reference.shape.iter().product();
    assert_eq!(
        data.len(),
        ref_numel,
        "{what}: shape {shape:?} vs reference {:?}",
        reference.shape
    );
    data.iter()
        .zip(&reference.data)
        .map(|(a, b)| {
            if a.is_nan() || b.is_nan() {
                f32::INFINITY
            } else {
                (a - b).abs()
            }
        })
        .fold(0.0, f32::max)
}

/// The manifest's suggested tolerance `name` (e.g. `embedding_atol`).
pub fn tolerance(manifest: &Value, name: &str) -> f32 {
    manifest["tolerances"]["suggested"][name]
        .as_f64()
        .unwrap_or_else(|| panic!("no tolerance {name}")) as f32
}

/// Prints and asserts one measured error against its tolerance.
pub fn check(name: &str, err: f32, tol: f32) {
    println!("{name}: max abs err {err:.3e} (tol {tol:.1e})");
    assert!(err <= tol, "{name}: max abs err {err:e} > {tol:e}");
}

/// The sparse prompt of a predictor case, as the official predictor builds it: points, then a
/// (0,0)/-1 pad point when there is no box, then the box corners labelled 2 and 3.
pub fn sparse_prompt(case: &Value) -> (Vec<[f32; 2]>, Vec<i32>) {
    let mut pts = Vec::new();
    let mut labels = Vec::new();
    if let Some(coords) = case["transformed"]["point_coords"].as_array() {
        for (p, l) in coords
            .iter()
            .zip(case["inputs"]["point_labels"].as_array().unwrap())
        {
            pts.push([p[0].as_f64().unwrap() as f32, p[1].as_f64().unwrap() as f32]);
            labels.push(l.as_i64().unwrap() as i32);
        }
    }
    match case["transformed"]["box"].as_array() {
        Some(b) => {
            let b: Vec<f32> = b[0]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            pts.push([b[0], b[1]]);
            pts.push([b[2], b[3]]);
            labels.extend([LABEL_BOX_TOP_LEFT, LABEL_BOX_BOTTOM_RIGHT]);
        }
        None => {
            pts.push([0.0, 0.0]);
            labels.push(LABEL_PAD);
        }
    }
    (pts, labels)
}

pub fn points_tensor(pts: Vec<[f32; 2]>, device: &Device) -> Tensor<3> {
    let n = pts.len();
    Tensor::from_data(
        TensorData::new(pts.into_iter().flatten().collect::<Vec<_>>(), [1, n, 2]),
        device,
    )
}

/// A reference mask input `[1, 256, 256]` or `[1, 1, 256, 256]` as `[1, 1, 256, 256]`.
pub fn mask_input(refs: &RefFile, key: &str, device: &Device) -> Tensor<4> {
    RefTensor {
        shape: vec![1, 1, 256, 256],
        data: refs.get(key).data.clone(),
    }
    .to_device(device)
}

/// Every `SamPredictor.predict` case of a manifest, from the reference's transformed prompts:
/// sparse embeddings, low-res logits and IoU, given each image's embedding.
pub fn check_predictor_cases(
    sam: &Sam,
    manifest: &Value,
    refs: &RefFile,
    embeddings: &HashMap<String, Tensor<4>>,
    device_name: &str,
    device: &Device,
) {
    let emb_tol = tolerance(manifest, "embedding_atol");
    let low_tol = tolerance(manifest, "low_res_logits_atol");
    let iou_tol = tolerance(manifest, "iou_atol");
    for case in manifest["predictor_cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let image = case["image"].as_str().unwrap();
        let multimask = case["inputs"]["multimask_output"].as_bool().unwrap();
        let (pts, labels) = sparse_prompt(case);
        let sparse = sam
            .prompt_encoder
            .embed_points(points_tensor(pts, device), &[labels])
            .unwrap();
        check(
            &format!("{device_name} {name} sparse"),
            max_abs_diff(
                sparse.clone(),
                refs.get(&format!("pred/{name}/sparse_embeddings")),
                "sparse",
            ),
            emb_tol,
        );
        let dense = match case["inputs"]["mask_input"]["key"].as_str() {
            Some(key) => sam
                .prompt_encoder
                .embed_masks(mask_input(refs, key, device)),
            None => sam.prompt_encoder.no_mask_dense(1),
        };
        let out = sam
            .decode(embeddings[image].clone(), sparse, dense)
            .unwrap();
        let (low_res, iou) = out.select(multimask);
        check(
            &format!("{device_name} {name} low_res_masks"),
            max_abs_diff(
                low_res,
                refs.get(&format!("pred/{name}/low_res_masks")),
                "low_res",
            ),
            low_tol,
        );
        check(
            &format!("{device_name} {name} iou"),
            max_abs_diff(
                iou,
                refs.get(&format!("pred/{name}/iou_predictions")),
                "iou",
            ),
            iou_tol,
        );
    }
}

/// A JSON array of numbers as `f32`s.
pub fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// A JSON array of `[x, y]` pairs (none when absent).
pub fn points(v: &Value) -> Vec<[f32; 2]> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    let p = f32s(p);
                    [p[0], p[1]]
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The prompt of a manifest's predictor case (`inputs`: points, labels, box, the key of a
/// previous low-res mask in `refs`, multimask), as the official `SamPredictor.predict` got it.
pub fn case_prompt(case: &Value, refs: &RefFile) -> sam_core::Prompt {
    let inputs = &case["inputs"];
    sam_core::Prompt {
        points: points(&inputs["point_coords"]),
        labels: inputs["point_labels"]
            .as_array()
            .map(|a| a.iter().map(|l| l.as_i64().unwrap() as i32).collect())
            .unwrap_or_default(),
        bbox: inputs["box"].as_array().map(|_| {
            let b = f32s(&inputs["box"]);
            [b[0], b[1], b[2], b[3]]
        }),
        mask_input: inputs["mask_input"]["key"]
            .as_str()
            .map(|k| refs.get(k).data.clone()),
        multimask_output: inputs["multimask_output"].as_bool().unwrap(),
    }
}
