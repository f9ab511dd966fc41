//! The binding in a real browser (`wasm-pack test --headless --chrome`, see
//! `scripts/test-wasm.sh`): the reference kit's ViT test model (the `tiny` tag of any seed,
//! picked by `build.rs` like sam-core's tests: `SAM_REFERENCE_TAGS`) on its reference cases
//! (embedding, one point, one box, mask input) through the JS-facing API, on WebGPU and on the
//! CPU fallback, plus errors, embeddings and the automatic mask generator.
//!
//! The reference data is a ~4 MB extract of the kit made by `build.rs`, with the tag's
//! manifest: the prompts are the manifest's, and the CPU tolerances are its
//! `tolerances.suggested` (embedding, low-res logits, IoU); boolean masks may differ only at
//! pixels whose reference logit is near zero, which we bound by the manifest's count of them
//! (`full_res_logit_stats.n_ambiguous_1e2`, logits within 1e-2 of zero).
#![cfg(target_arch = "wasm32")]

use js_sys::{Array, Float32Array, Object, Reflect, Uint8Array};
use safetensors::{Dtype, SafeTensors};
use sam_core::io::npy::read_npy_f32;
use sam_wasm::{Segmenter, decode_coco_rle, encode_coco_rle, normalize_sa1b};
use serde_json::Value;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

static REFERENCE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/test_reference.safetensors"));
static CHECKPOINT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/tiny.pth"));
static MANIFEST: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/tiny_manifest.json"));

/// The manifest of the kit's tiny tag.
fn manifest() -> Value {
    reference();
    serde_json::from_slice(MANIFEST).unwrap()
}

/// The manifest's predictor case `name`.
fn case(name: &str) -> Value {
    manifest()["predictor_cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no predictor case {name} in the manifest"))
        .clone()
}

/// Tolerances of one backend.
struct Tol {
    embed: f32,
    low_res: f32,
    iou: f32,
    /// Mask pixels allowed to differ in a case (`None`: the manifest's count of the case's
    /// reference logits within 1e-2 of zero, the only pixels float32 noise may flip).
    mask_pixels: Option<usize>,
}

/// The kit's tolerances (`tolerances.suggested` of the manifest): the CPU backend (and native
/// wgpu on Vulkan, see sam-core's tests) meets them.
fn cpu_tol() -> Tol {
    let m = manifest();
    let t = |k: &str| {
        m["tolerances"]["suggested"][k]
            .as_f64()
            .unwrap_or_else(|| panic!("no tolerance {k}")) as f32
    };
    Tol {
        embed: t("embedding_atol"),
        low_res: t("low_res_logits_atol"),
        iou: t("iou_atol"),
        mask_pixels: None,
    }
}

/// WebGPU in headless Chromium runs on SwiftShader, whose WGSL `exp`, division and
/// `inverseSqrt` use the looser precision WGSL allows (e.g. `exp`: 3 + 2|x| ULP, division
/// 2.5 ULP, where the CPU is correctly rounded). The embedding still meets the kit's bound
/// (measured 1.1e-5 on seed 0), but the decoder's softmaxes over 4096 image tokens and its x12
/// hypernetwork scaling (logits ~ +-30) amplify it: measured 1.44e-3 on the low-res logits
/// (a relative 5e-5), 1.45e-5 on IoU and 21 mask pixels of 921,600 on seed 0; 3.41e-3 on the
/// low-res logits of seed 2's `points2_maskin_single`, whose kit bound is twice seed 0's. The
/// same binary on the CPU backend in the same browser is within the kit's bounds, so this is
/// the GPU's arithmetic, not our code. The reference README allows a documented looser bound for
/// a GPU backend's transcendentals: these are fixed multiples of the kit's own (so they follow
/// the kit's seed), equal on seed 0 to the bounds used before (embedding 5e-5, low-res 3e-3,
/// IoU 3e-5: about 2x the error measured there).
fn webgpu_tol() -> Tol {
    let cpu = cpu_tol();
    Tol {
        embed: cpu.embed,
        low_res: 6.0 * cpu.low_res,
        iou: 3.0 * cpu.iou,
        mask_pixels: Some(50),
    }
}

fn tol(backend: &str) -> Tol {
    if backend == "webgpu" {
        webgpu_tol()
    } else {
        cpu_tol()
    }
}

fn reference() -> SafeTensors<'static> {
    assert!(
        !REFERENCE.is_empty() && !CHECKPOINT.is_empty(),
        "the reference kit was not found when building: set SAM_REFERENCE_DIR or put it in \
         ../shared/reference beside the repository"
    );
    SafeTensors::deserialize(REFERENCE).unwrap()
}

/// A reference tensor as f32 (booleans as 0/1), with its shape.
fn tensor(name: &str) -> (Vec<usize>, Vec<f32>) {
    let st = reference();
    let t = st.tensor(name).unwrap();
    let data = match t.dtype() {
        Dtype::F32 => t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::BOOL | Dtype::U8 => t.data().iter().map(|&b| b as f32).collect(),
        other => panic!("{name}: unexpected dtype {other:?}"),
    };
    (t.shape().to_vec(), data)
}

/// `image/<name>` as RGBA bytes with its (width, height).
fn image_rgba(name: &str) -> (Vec<u8>, usize, usize) {
    let (shape, rgb) = tensor(&format!("image/{name}"));
    let (h, w) = (shape[0], shape[1]);
    let mut rgba = Vec::with_capacity(h * w * 4);
    for px in rgb.chunks_exact(3) {
        rgba.extend([px[0] as u8, px[1] as u8, px[2] as u8, 255]);
    }
    (rgba, w, h)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn get(obj: &JsValue, name: &str) -> JsValue {
    Reflect::get(obj, &name.into()).unwrap()
}

fn options(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        Reflect::set(&o, &(*k).into(), v).unwrap();
    }
    o.into()
}

fn message(err: &JsValue) -> String {
    err.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .unwrap_or_else(|| format!("{err:?}"))
}

fn error_name(err: &JsValue) -> String {
    err.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.name()))
        .unwrap_or_default()
}

async fn segmenter(backend: &str) -> Segmenter {
    let bytes = Uint8Array::from(CHECKPOINT);
    // The calls are collected and checked after loading: `Segmenter::create` ignores an
    // exception thrown by the callback, so an assertion inside it could not fail the test.
    let calls = std::rc::Rc::new(std::cell::RefCell::new(Vec::<(f64, f64)>::new()));
    let seen = calls.clone();
    let on_progress = Closure::<dyn FnMut(f64, f64)>::new(move |loaded, total| {
        seen.borrow_mut().push((loaded, total));
    });
    let seg = Segmenter::create(
        bytes.into(),
        options(&[
            ("backend", backend.into()),
            ("onProgress", on_progress.as_ref().clone()),
        ]),
    )
    .await
    .unwrap_or_else(|e| panic!("creating a {backend} segmenter: {}", message(&e)));
    let calls = calls.borrow().clone();
    assert!(!calls.is_empty(), "no load progress");
    let total = calls[0].1;
    for (i, &(loaded, t)) in calls.iter().enumerate() {
        assert_eq!(t, total, "progress call {i}: the total changed");
        assert!(loaded <= total, "progress call {i}: {loaded} of {total}");
        if i > 0 {
            assert!(
                loaded > calls[i - 1].0,
                "progress call {i} does not go up: {calls:?}"
            );
        }
    }
    let (loaded, _) = calls[calls.len() - 1];
    assert!(
        total > 100.0 && loaded == total,
        "load progress ended at {loaded}/{total}"
    );
    assert_eq!(seg.backend(), backend);
    assert_eq!(
        seg.model_type(),
        "custom_vit",
        "the tiny test model: vit_b's keys, a smaller encoder"
    );
    console_log!("{backend}: {}", seg.backend_info());
    seg
}

fn now() -> f64 {
    js_sys::Date::now()
}

/// A prompt object from points, labels, box, mask input and multimask.
fn prompt(
    points: &[[f64; 2]],
    labels: &[f64],
    bbox: Option<[f64; 4]>,
    mask_input: Option<&[f32]>,
    multimask: bool,
) -> JsValue {
    let o = Object::new();
    if !points.is_empty() {
        let arr = Array::new();
        for p in points {
            arr.push(&Array::of2(&p[0].into(), &p[1].into()));
        }
        Reflect::set(&o, &"points".into(), &arr).unwrap();
        let l = Array::new();
        for &v in labels {
            l.push(&v.into());
        }
        Reflect::set(&o, &"labels".into(), &l).unwrap();
    }
    if let Some(b) = bbox {
        let arr = Array::new();
        for v in b {
            arr.push(&v.into());
        }
        Reflect::set(&o, &"box".into(), &arr).unwrap();
    }
    if let Some(m) = mask_input {
        Reflect::set(&o, &"maskInput".into(), &Float32Array::from(m)).unwrap();
    }
    Reflect::set(&o, &"multimask".into(), &multimask.into()).unwrap();
    o.into()
}

/// The prompt of the manifest's predictor case `name`, from its original-pixel inputs.
fn case_prompt(name: &str) -> JsValue {
    let c = case(name);
    let inputs = &c["inputs"];
    let nums = |v: &Value| -> Vec<f64> {
        v.as_array()
            .map(|a| a.iter().map(|x| x.as_f64().unwrap()).collect())
            .unwrap_or_default()
    };
    let points: Vec<[f64; 2]> = inputs["point_coords"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    let p = nums(p);
                    [p[0], p[1]]
                })
                .collect()
        })
        .unwrap_or_default();
    let labels = nums(&inputs["point_labels"]);
    let bbox = inputs["box"].as_array().map(|_| {
        let b = nums(&inputs["box"]);
        [b[0], b[1], b[2], b[3]]
    });
    let mask = inputs["mask_input"]["key"].as_str().map(|k| tensor(k).1);
    prompt(
        &points,
        &labels,
        bbox,
        mask.as_deref(),
        inputs["multimask_output"].as_bool().unwrap(),
    )
}

/// Runs one reference case and compares masks, IoU and low-res logits.
async fn check_case(seg: &Segmenter, backend: &str, case: &str, prompt: JsValue) {
    let t0 = now();
    let result = seg
        .predict(prompt.clone(), JsValue::UNDEFINED)
        .await
        .unwrap_or_else(|e| panic!("{case}: {}", message(&e)));
    let ms = now() - t0;
    let (mask_shape, ref_masks) = tensor(&format!("pred/{case}/masks"));
    let (_, ref_iou) = tensor(&format!("pred/{case}/iou_predictions"));
    let (_, ref_low) = tensor(&format!("pred/{case}/low_res_masks"));
    let c = mask_shape[0];
    let hw = mask_shape[1] * mask_shape[2];
    assert_eq!(get(&result, "width").as_f64(), Some(mask_shape[2] as f64));
    assert_eq!(get(&result, "height").as_f64(), Some(mask_shape[1] as f64));

    let masks = Array::from(&get(&result, "masks"));
    let scores: Vec<f32> = Array::from(&get(&result, "scores"))
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let low: Vec<f32> = Array::from(&get(&result, "lowResLogits"))
        .iter()
        .flat_map(|v| Float32Array::from(v).to_vec())
        .collect();
    assert_eq!(masks.length() as usize, c, "{case}: mask count");
    let iou_err = max_abs_diff(&scores, &ref_iou);
    let low_err = max_abs_diff(&low, &ref_low);
    let mut flips = 0;
    for (i, m) in masks.iter().enumerate() {
        let m = Uint8Array::from(m).to_vec();
        assert_eq!(m.len(), hw);
        flips += m
            .iter()
            .zip(&ref_masks[i * hw..(i + 1) * hw])
            .filter(|&(&a, &b)| (a != 0) != (b != 0.0))
            .count();
    }
    let best = get(&result, "best").as_f64().unwrap() as usize;
    let ref_best = ref_iou
        .iter()
        .enumerate()
        .fold((0, f32::MIN), |a, (i, &v)| if v > a.1 { (i, v) } else { a })
        .0;
    console_log!(
        "{backend} {case}: {ms:.0} ms, |d iou| {iou_err:.2e}, |d low-res| {low_err:.2e}, \
         {flips} of {} mask pixels differ",
        c * hw
    );
    // One JSON line per measurement (`grep '^BENCH '` in the test output).
    console_log!(
        "BENCH {{\"backend\":\"{backend}\",\"case\":\"{case}\",\"click_ms\":{ms:.1},\"width\":{},\"height\":{}}}",
        mask_shape[2],
        mask_shape[1]
    );
    let tol = tol(backend);
    let mask_pixels = tol.mask_pixels.unwrap_or_else(|| {
        self::case(case)["full_res_logit_stats"]["n_ambiguous_1e2"]
            .as_u64()
            .unwrap() as usize
    });
    assert!(iou_err <= tol.iou, "{case}: IoU error {iou_err}");
    assert!(low_err <= tol.low_res, "{case}: low-res error {low_err}");
    assert!(
        flips <= mask_pixels,
        "{case}: {flips} mask pixels differ (at most {mask_pixels})"
    );
    assert_eq!(best, ref_best, "{case}: best mask");

    // The light request of a hover preview: the same best mask and score alone, no logits.
    let options = js_sys::Object::new();
    js_sys::Reflect::set(&options, &"masks".into(), &"best".into()).unwrap();
    js_sys::Reflect::set(&options, &"lowResLogits".into(), &false.into()).unwrap();
    let light = seg
        .predict(prompt, options.into())
        .await
        .unwrap_or_else(|e| panic!("{case} (best only): {}", message(&e)));
    let light_masks = Array::from(&get(&light, "masks"));
    assert_eq!(light_masks.length(), 1, "{case}: one mask");
    assert_eq!(
        Uint8Array::from(light_masks.get(0)).to_vec(),
        Uint8Array::from(masks.get(best as u32)).to_vec(),
        "{case}: the best mask"
    );
    let light_scores = Array::from(&get(&light, "scores"));
    assert_eq!(light_scores.length(), 1);
    assert_eq!(
        light_scores.get(0).as_f64().map(|v| v as f32),
        Some(scores[best]),
        "{case}: the best score"
    );
    assert_eq!(Array::from(&get(&light, "lowResLogits")).length(), 0);
    assert_eq!(get(&light, "best").as_f64(), Some(0.0));
}

/// Embedding + the three prompt kinds against the reference, on one backend.
/// Bytes of wasm linear memory (it only grows).
fn wasm_memory_bytes() -> f64 {
    let memory: js_sys::WebAssembly::Memory = wasm_bindgen::memory().unchecked_into();
    memory
        .buffer()
        .unchecked_into::<js_sys::ArrayBuffer>()
        .byte_length() as f64
}

async fn reference_cases(backend: &str) {
    let mem0 = wasm_memory_bytes();
    let t0 = now();
    let seg = segmenter(backend).await;
    let load_ms = now() - t0;
    console_log!(
        "{backend}: wasm memory {:.1} -> {:.1} MiB while loading a {:.1} MiB checkpoint",
        mem0 / 1048576.0,
        wasm_memory_bytes() / 1048576.0,
        CHECKPOINT.len() as f64 / 1048576.0
    );
    let (rgba, w, h) = image_rgba("landscape");
    let t0 = now();
    seg.set_image(Uint8Array::from(&rgba[..]).into(), w, h)
        .await
        .unwrap_or_else(|e| panic!("setImage: {}", message(&e)));
    let embed_ms = now() - t0;
    assert!(seg.has_image());
    assert_eq!((seg.image_width(), seg.image_height()), (w, h));

    let npy = seg.export_embedding().await.unwrap();
    let ours = read_npy_f32(&npy).unwrap();
    let (shape, theirs) = tensor("embed/landscape");
    assert_eq!(ours.shape, shape);
    let embed_err = max_abs_diff(&ours.data, &theirs);
    console_log!(
        "{backend}: load {load_ms:.0} ms, setImage {embed_ms:.0} ms, |d embedding| {embed_err:.2e}"
    );
    console_log!(
        "BENCH {{\"backend\":\"{backend}\",\"model\":\"{}\",\"load_ms\":{load_ms:.1},\"set_image_ms\":{embed_ms:.1},\"wasm_memory_mib\":{:.1}}}",
        manifest()["tag"].as_str().unwrap(),
        wasm_memory_bytes() / 1048576.0
    );
    assert!(
        embed_err <= tol(backend).embed,
        "embedding error {embed_err}"
    );

    for name in ["point_multi", "box_single", "points2_maskin_single"] {
        assert_eq!(case(name)["image"], "landscape", "{name}");
        check_case(&seg, backend, name, case_prompt(name)).await;
    }

    #[cfg(feature = "webgpu")]
    if backend == "webgpu" {
        preview_draws_the_best_mask(&seg, w, h).await;
    }

    // The embedding exported and imported again gives the same prediction.
    let seg2 = segmenter(backend).await;
    seg2.import_embedding(&npy, w, h).unwrap();
    check_case(&seg2, backend, "point_multi", case_prompt("point_multi")).await;
}

/// The hover preview drawn by the GPU (`drawPreview`): `sam_core::preview::MaskPainter` on this
/// browser's WebGPU device paints the decoder's logits, from the decoder's own buffer, into a
/// texture read back here: `predict`'s best mask of the same prompt in the demo's rule (alpha
/// 90 inside, 230 on the edge, 0 outside). The canvas itself is not tested here: in headless
/// chromium on SwiftShader a WebGPU canvas's frames come out blank (`transferToImageBitmap`,
/// `drawImage`, screenshots), and once one is presented the GPU process loses every device
/// ("A valid external Instance reference no longer exists"), this test's included.
#[cfg(feature = "webgpu")]
async fn preview_draws_the_best_mask(seg: &Segmenter, w: usize, h: usize) {
    use sam_core::preview::{MaskPainter, gpu_buffer, read_rgba8, rgba8_target};
    let prompt = case_prompt("point_multi");
    let best = seg
        .predict(
            prompt.clone(),
            options(&[("masks", "best".into()), ("lowResLogits", false.into())]),
        )
        .await
        .unwrap();
    let mask = Uint8Array::from(Array::from(&get(&best, "masks")).get(0)).to_vec();
    assert_eq!(mask.len(), w * h);

    let setup = sam_wasm::backend::wgpu_setup().expect("the WebGPU device's handles");
    let t0 = now();
    let logits = seg.preview_logits(&prompt).unwrap();
    assert_eq!(logits.dims(), [1, 1, h, w]);
    let values = gpu_buffer(logits)
        .unwrap()
        .expect("a WebGPU tensor has a buffer");
    let texture = rgba8_target(&setup.device, w as u32, h as u32);
    let painter = MaskPainter::new(&setup.device, texture.format());
    let view = texture.create_view(&Default::default());
    painter
        .paint(
            &setup.device,
            &setup.queue,
            &view,
            Some((&values, w as u32, h as u32)),
            [250, 120, 7],
        )
        .unwrap();
    let rgba = read_rgba8(&setup.device, &setup.queue, &texture)
        .await
        .unwrap();
    drop(values);
    let inside = |x: isize, y: isize| {
        x >= 0
            && y >= 0
            && (x as usize) < w
            && (y as usize) < h
            && mask[y as usize * w + x as usize] == 1
    };
    let mut wrong = 0;
    let mut area = 0;
    for y in 0..h as isize {
        for x in 0..w as isize {
            let i = 4 * (y as usize * w + x as usize);
            let want = if !inside(x, y) {
                0
            } else if inside(x - 1, y) && inside(x + 1, y) && inside(x, y - 1) && inside(x, y + 1) {
                90
            } else {
                230
            };
            area += usize::from(inside(x, y));
            if (rgba[i + 3] as i32 - want).abs() > 1 {
                wrong += 1;
            }
        }
    }
    console_log!(
        "webgpu: preview of {w}x{h} decoded, painted and read back in {:.0} ms; mask area {area}, pixels off the rule {wrong}",
        now() - t0
    );
    assert!(area > 0, "the best mask of point_multi is empty");
    assert_eq!(wrong, 0, "pixels whose alpha breaks the rule");
}

/// The module's allocator puts every large block on a cache line (`sam_core::CacheAligned`:
/// the module's dlmalloc alone aligns to 8 bytes, and the CPU kernels' vector loads of a
/// block 8 bytes off straddle cache lines), wherever the blocks before it left the heap.
#[wasm_bindgen_test]
fn large_blocks_start_on_a_cache_line() {
    let mut kept = Vec::new();
    for i in 0..32usize {
        // Small blocks of odd sizes between the large ones move the heap's next free byte.
        let small = vec![1u8; 1 + 3 * i];
        let large = vec![0.0f32; 1024 + 37 * i];
        assert!(
            (large.as_ptr() as usize).is_multiple_of(64),
            "block {i} of {} bytes at {:p}",
            4 * large.len(),
            large.as_ptr()
        );
        kept.push((small, large));
    }
}

#[wasm_bindgen_test]
async fn cpu_matches_the_reference() {
    reference_cases("cpu").await;
}

#[wasm_bindgen_test]
async fn webgpu_matches_the_reference() {
    assert!(
        sam_wasm::backend::webgpu_available().await,
        "no WebGPU adapter in this browser: run Chrome with --enable-unsafe-webgpu (see \
         crates/sam-wasm/webdriver.json)"
    );
    reference_cases("webgpu").await;
}

#[wasm_bindgen_test]
async fn errors_are_readable_js_errors() {
    // Not a checkpoint.
    let jpeg = Uint8Array::from(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F', b'I', b'F', 0][..]);
    let err = Segmenter::create(jpeg.clone().into(), options(&[("backend", "cpu".into())]))
        .await
        .err()
        .expect("a JPEG is not a checkpoint");
    console_log!(
        "JPEG as checkpoint: {}: {}",
        error_name(&err),
        message(&err)
    );
    assert!(message(&err).contains("JPEG"), "{}", message(&err));
    assert_eq!(error_name(&err), "CheckpointError", "{}", message(&err));
    // Truncated.
    let cut = Uint8Array::from(&CHECKPOINT[..CHECKPOINT.len() / 2]);
    let err = Segmenter::create(cut.into(), options(&[("backend", "cpu".into())]))
        .await
        .err()
        .expect("half a checkpoint");
    console_log!("truncated checkpoint: {}", message(&err));
    assert_eq!(error_name(&err), "CheckpointError", "{}", message(&err));
    assert!(message(&err).contains("truncated"), "{}", message(&err));
    // Bad options.
    let err = Segmenter::create(jpeg.into(), options(&[("backend", "tpu".into())]))
        .await
        .err()
        .unwrap();
    assert!(message(&err).contains("backend"), "{}", message(&err));
    assert_eq!(error_name(&err), "TypeError", "{}", message(&err));
    let bytes = Uint8Array::from(CHECKPOINT);
    let err = Segmenter::create(
        bytes.clone().into(),
        options(&[("modelType", "mobile_sam".into())]),
    )
    .await
    .err()
    .expect("the tiny ViT is not MobileSAM");
    console_log!("wrong model type: {}: {}", error_name(&err), message(&err));
    assert!(message(&err).contains("mobile_sam"), "{}", message(&err));
    // A Blob is read with FileReaderSync, which the page's main thread does not have.
    let parts = js_sys::Array::of1(&bytes);
    let blob = web_sys::Blob::new_with_u8_array_sequence(&parts).unwrap();
    let err = Segmenter::create(blob.into(), options(&[("backend", "cpu".into())]))
        .await
        .err()
        .expect("no FileReaderSync outside a worker");
    console_log!(
        "Blob on the main thread: {}: {}",
        error_name(&err),
        message(&err)
    );
    assert_eq!(error_name(&err), "TypeError", "{}", message(&err));
    assert!(message(&err).contains("Worker"), "{}", message(&err));
    // Something else.
    let err = Segmenter::create(JsValue::from(3), options(&[("backend", "cpu".into())]))
        .await
        .err()
        .expect("a number is no checkpoint");
    assert_eq!(error_name(&err), "TypeError", "{}", message(&err));

    let seg = segmenter("cpu").await;
    // No image yet.
    let err = seg
        .predict(
            prompt(&[[1.0, 1.0]], &[1.0], None, None, false),
            JsValue::UNDEFINED,
        )
        .await
        .unwrap_err();
    assert_eq!(error_name(&err), "InvalidStateError", "{}", message(&err));
    // Wrong buffer size.
    let err = seg
        .set_image(Uint8Array::new_with_length(10).into(), 4, 4)
        .await
        .unwrap_err();
    assert!(message(&err).contains("bytes"), "{}", message(&err));
    assert_eq!(error_name(&err), "TypeError", "{}", message(&err));
    let (rgba, w, h) = image_rgba("tiny");
    seg.set_image(Uint8Array::from(&rgba[..]).into(), w, h)
        .await
        .unwrap();
    // Bad prompts.
    // Bad prompts: values sam-core rejects are `PromptError`s; a value of the wrong JS type
    // is a `TypeError`.
    for (p, what, name) in [
        (
            prompt(&[[1.0, 1.0]], &[5.0], None, None, false),
            "label",
            "PromptError",
        ),
        (
            prompt(&[[1e9, 1.0]], &[1.0], None, None, false),
            "outside",
            "PromptError",
        ),
        (
            prompt(&[], &[], Some([10.0, 10.0, 5.0, 5.0]), None, false),
            "box",
            "PromptError",
        ),
        (
            prompt(&[], &[], None, Some(&[0.0; 10]), false),
            "mask",
            "PromptError",
        ),
        (JsValue::from("click"), "prompt object", "TypeError"),
    ] {
        let err = seg.predict(p, JsValue::UNDEFINED).await.unwrap_err();
        console_log!(
            "bad prompt ({what}): {}: {}",
            error_name(&err),
            message(&err)
        );
        assert!(!message(&err).is_empty());
        assert_eq!(error_name(&err), name, "{what}: {}", message(&err));
    }
    // Bad predict options: TypeErrors naming the field.
    for (field, value) in [("masks", JsValue::from("some")), ("lowResLogits", 1.into())] {
        let options = js_sys::Object::new();
        js_sys::Reflect::set(&options, &field.into(), &value).unwrap();
        let p = prompt(&[[1.0, 1.0]], &[1.0], None, None, true);
        let err = seg.predict(p, options.into()).await.unwrap_err();
        assert_eq!(error_name(&err), "TypeError", "{}", message(&err));
        assert!(message(&err).contains(field), "{}", message(&err));
    }
    // A bad embedding file: an Error naming the file problem.
    let err = seg.import_embedding(&[1, 2, 3], 10, 10).unwrap_err();
    console_log!("bad embedding: {}: {}", error_name(&err), message(&err));
    assert!(err.is_instance_of::<js_sys::Error>());
    assert!(
        message(&err).contains("embedding file"),
        "{}",
        message(&err)
    );
}

#[wasm_bindgen_test]
async fn generate_reports_progress_cancels_and_writes_sa1b() {
    let seg = segmenter("cpu").await;
    let (rgba, w, h) = image_rgba("tiny");
    seg.set_image(Uint8Array::from(&rgba[..]).into(), w, h)
        .await
        .unwrap();
    // Each call's `batchesTotal`, checked after the run (not inside the callback, whose
    // exceptions the binding may not pass on).
    let calls = std::rc::Rc::new(std::cell::RefCell::new(Vec::<Option<f64>>::new()));
    let counter = calls.clone();
    let on_progress = Closure::<dyn FnMut(JsValue) -> JsValue>::new(move |p: JsValue| {
        counter.borrow_mut().push(get(&p, "batchesTotal").as_f64());
        // Yield to the event loop, as a worker does to let a "cancel" message in.
        js_sys::Promise::resolve(&JsValue::TRUE).into()
    });
    let opts = options(&[
        ("pointsPerSide", 4.into()),
        ("predIouThresh", 0.into()),
        ("stabilityScoreThresh", 0.into()),
        ("fileName", "tiny.png".into()),
    ]);
    let json = seg
        .generate(opts.clone(), on_progress.as_ref().clone())
        .await
        .unwrap_or_else(|e| panic!("generate: {}", message(&e)))
        .as_string()
        .unwrap();
    // 16 points in batches of 16: the crop start and one batch.
    let calls = calls.borrow().clone();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(
        calls.iter().all(|t| t.is_some_and(|t| t >= 1.0)),
        "batchesTotal: {calls:?}"
    );
    let file = sam_core::io::sa1b::parse_sa1b(&json).unwrap();
    assert_eq!((file.image.width, file.image.height), (w, h));
    assert_eq!(file.image.file_name, "tiny.png");
    console_log!("generate: {} masks", file.annotations.len());
    assert!(!file.annotations.is_empty());
    // The normalised file is the same, and each mask decodes and encodes back.
    let again = sam_core::io::sa1b::parse_sa1b(&normalize_sa1b(&json).unwrap()).unwrap();
    assert_eq!(again.annotations.len(), file.annotations.len());
    for a in &file.annotations {
        let sam_core::io::sa1b::Segmentation::CocoRle { size, counts } = &a.segmentation else {
            panic!("coco_rle expected");
        };
        let mask = decode_coco_rle(counts, size[0], size[1]).unwrap();
        assert_eq!(mask.iter().filter(|&&v| v != 0).count() as u64, a.area);
        assert_eq!(&encode_coco_rle(&mask, size[0], size[1]).unwrap(), counts);
    }
    assert!(normalize_sa1b("{\"annotations\": 3}").is_err());
    assert!(decode_coco_rle("!!!", 4, 4).is_err());

    // Cancel from the callback (a promise of false).
    let cancel = Closure::<dyn FnMut(JsValue) -> JsValue>::new(|_p: JsValue| {
        js_sys::Promise::resolve(&JsValue::FALSE).into()
    });
    let err = seg
        .generate(opts, cancel.as_ref().clone())
        .await
        .unwrap_err();
    assert_eq!(error_name(&err), "AbortError");
    assert_eq!(message(&err), "cancelled");
}
