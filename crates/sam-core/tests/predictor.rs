//! Parity of the predictor path (official `SamPredictor` and `SamOnnxModel`) from the ORIGINAL
//! images and original-pixel prompts: preprocessing, prompt transforms, decoding, mask
//! upscaling, thresholding, stability scores and the ONNX single-mask rule, on burn's CPU
//! backend, for the kit's two models (`common::model_tags`, any seed).

mod common;

use burn::tensor::{Device, Tensor};
use common::*;
use pollster::block_on;
use sam_core::predictor::{MaskChoice, OnnxInputs, OnnxOptions, postprocess_masks};
use sam_core::preprocess::RgbImage;
use sam_core::readback::{read_bool, read_f32};
use sam_core::{ImageEmbedding, Prompt, Sam, SamError};
use serde_json::Value;

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    block_on(read_f32(t)).unwrap().1
}

fn max_err(ours: &[f32], reference: &[f32]) -> f32 {
    assert_eq!(ours.len(), reference.len());
    ours.iter()
        .zip(reference)
        .map(|(a, b)| {
            if a.is_nan() != b.is_nan() {
                f32::INFINITY
            } else if a.is_nan() {
                0.0
            } else {
                (a - b).abs()
            }
        })
        .fold(0.0, f32::max)
}

/// The reference's full-resolution logits of a case whose reference stores only boolean masks:
/// its low-res logits `[C, 256, 256]` through our `postprocess_masks` (the official
/// upscaling, which the `return_logits` cases check against the reference's own full-res
/// logits within `full_res_logits_atol`).
fn reference_full_res_logits(manifest: &Value, image: &str, low: &RefTensor) -> Vec<f32> {
    let image = &manifest["images"][image];
    let pair = |v: &Value| {
        let v = f32s(v);
        (v[0] as usize, v[1] as usize)
    };
    let c = low.data.len() / (256 * 256);
    let low = RefTensor {
        shape: vec![1, c, 256, 256],
        data: low.data.clone(),
    }
    .to_device::<4>(&Device::flex());
    host(postprocess_masks(
        low,
        pair(&image["input_size"]),
        pair(&image["orig_size"]),
    ))
}

/// Boolean masks may differ from the reference's only where the REFERENCE's logit is within
/// `tol` of the threshold (where float32 noise of at most `tol` in our logit may flip the
/// pixel), and at most at `max_flips` pixels.
fn check_masks(
    name: &str,
    logits: &[f32],
    masks: &[bool],
    reference: &[f32],
    reference_logits: &[f32],
    tol: f32,
    max_flips: usize,
) -> usize {
    assert_eq!(masks.len(), reference.len());
    assert_eq!(reference_logits.len(), reference.len());
    let mut flips = 0;
    for (((&l, &m), &r), &rl) in logits
        .iter()
        .zip(masks)
        .zip(reference)
        .zip(reference_logits)
    {
        assert_eq!(m, l > 0.0);
        if m != (r > 0.5) {
            flips += 1;
            assert!(
                rl.abs() < tol,
                "{name}: mask differs where the reference logit is {rl} (ours {l}, tol {tol})"
            );
        }
    }
    println!(
        "{name}: {flips} of {} mask pixels differ (at most {max_flips}), all where the \
         reference logit is within {tol:.1e} of 0",
        masks.len()
    );
    assert!(
        flips <= max_flips,
        "{name}: {flips} mask pixels differ, more than {max_flips}"
    );
    flips
}

/// Compares full-size outputs with the reference, which stores logits or, per the manifest's
/// `masks_dtype`, thresholded booleans (then `reference_logits` gives the reference's logits,
/// see [`reference_full_res_logits`]). Returns the number of mask pixels that differ.
///
/// The flip cap of a boolean case is the manifest's `full_res_logit_stats.n_ambiguous_1e2`:
/// the reference pixels whose logit is within 1e-2 (>= `tol`) of 0, the only ones that may
/// flip.
fn compare_masks(
    name: &str,
    case: &Value,
    logits: Vec<f32>,
    masks: &[bool],
    reference: &RefTensor,
    reference_logits: Option<&[f32]>,
    tol: f32,
) -> usize {
    if case["masks_dtype"].as_str().unwrap().starts_with("bool") {
        assert!(
            tol <= 1e-2,
            "the flip cap counts reference logits within 1e-2 of 0"
        );
        let max_flips = case["full_res_logit_stats"]["n_ambiguous_1e2"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name}: no full_res_logit_stats.n_ambiguous_1e2"))
            as usize;
        check_masks(
            &format!("{name} masks"),
            &logits,
            masks,
            &reference.data,
            reference_logits.expect("reference logits of a boolean case"),
            tol,
            max_flips,
        )
    } else {
        check(
            &format!("{name} logits"),
            max_err(&logits, &reference.data),
            tol,
        );
        // Our masks are the logits' signs: they agree wherever the reference logit is
        // further than `tol` from 0.
        let flips = logits
            .iter()
            .zip(&reference.data)
            .filter(|(a, b)| (**a > 0.0) != (**b > 0.0))
            .count();
        assert!(masks.iter().zip(&logits).all(|(&m, &l)| m == (l > 0.0)));
        flips
    }
}

fn image(pre: &RefFile, name: &str) -> RgbImage {
    let t = pre.get(&format!("image/{name}"));
    let (h, w) = (t.shape[0], t.shape[1]);
    RgbImage::new(w, h, t.data.iter().map(|&v| v as u8).collect()).unwrap()
}

fn run(tag: &str) {
    let manifest = manifest(tag);
    let refs = RefFile::open(&format!("{tag}_ref.safetensors"));
    let pre = RefFile::open("preprocess.safetensors");
    let device = Device::flex();
    let sam = Sam::from_bytes(&read(&format!("{tag}.pth")), None, &device).unwrap();
    let emb_tol = tolerance(&manifest, "embedding_atol");
    let low_tol = tolerance(&manifest, "low_res_logits_atol");
    let iou_tol = tolerance(&manifest, "iou_atol");
    let full_tol = tolerance(&manifest, "full_res_logits_atol");

    // Mask pixels that differ from the reference's, and pixels compared, over all cases.
    let (mut flips, mut pixels) = (0usize, 0usize);
    let mut embeddings = std::collections::HashMap::<String, ImageEmbedding>::new();
    for name in ["landscape", "portrait", "tiny"] {
        let emb = sam.set_image(&image(&pre, name)).unwrap();
        check(
            &format!("{tag} set_image({name})"),
            max_err(
                &host(emb.features.clone()),
                &refs.get(&format!("embed/{name}")).data,
            ),
            emb_tol,
        );
        embeddings.insert(name.into(), emb);
    }

    for case in manifest["predictor_cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let prompt = case_prompt(case, &refs);
        let emb = &embeddings[case["image"].as_str().unwrap()];
        let pred = sam.predict(emb, &prompt).unwrap();
        let key = |k: &str| format!("pred/{name}/{k}");
        check(
            &format!("{tag} {name} iou"),
            max_err(
                &host(pred.iou_predictions.clone()),
                &refs.get(&key("iou_predictions")).data,
            ),
            iou_tol,
        );
        check(
            &format!("{tag} {name} low_res"),
            max_err(
                &host(pred.low_res_logits.clone()),
                &refs.get(&key("low_res_masks")).data,
            ),
            low_tol,
        );
        let masks = block_on(read_bool(pred.masks())).unwrap().1;
        let reference_logits = case["masks_dtype"]
            .as_str()
            .unwrap()
            .starts_with("bool")
            .then(|| {
                reference_full_res_logits(
                    &manifest,
                    case["image"].as_str().unwrap(),
                    refs.get(&key("low_res_masks")),
                )
            });
        if !case["masks_dtype"].as_str().unwrap().starts_with("bool") {
            // The reconstruction of the reference's full-res logits from its low-res ones,
            // which the boolean cases rely on, against the reference's own full-res logits.
            let rebuilt = reference_full_res_logits(
                &manifest,
                case["image"].as_str().unwrap(),
                refs.get(&key("low_res_masks")),
            );
            check(
                &format!("{tag} {name} reference upscaled"),
                max_err(&rebuilt, &refs.get(&key("masks")).data),
                full_tol,
            );
        }
        flips += compare_masks(
            &format!("{tag} {name}"),
            case,
            host(pred.logits.clone()),
            &masks,
            refs.get(&key("masks")),
            reference_logits.as_deref(),
            full_tol,
        );
        pixels += masks.len();
    }

    for case in manifest["onnx_cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let inputs = &case["inputs"];
        let opts = &case["options"];
        let size = f32s(&inputs["orig_im_size"]);
        let onnx = OnnxInputs {
            point_coords: points(&inputs["point_coords"][0]),
            point_labels: f32s(&inputs["point_labels"][0]),
            mask_input: inputs["mask_input"]["key"]
                .as_str()
                .map(|k| refs.get(k).data.clone()),
            has_mask_input: f32s(&inputs["has_mask_input"])[0] == 1.0,
            orig_im_size: (size[0] as usize, size[1] as usize),
        };
        let options = OnnxOptions {
            return_single_mask: opts["return_single_mask"].as_bool().unwrap(),
            use_stability_score: opts["use_stability_score"].as_bool().unwrap(),
            return_extra_metrics: opts["return_extra_metrics"].as_bool().unwrap(),
        };
        let image = inputs["image_embeddings"]
            .as_str()
            .unwrap()
            .trim_start_matches("embed/");
        let out = sam
            .predict_onnx(&embeddings[image].features, &onnx, options)
            .unwrap();
        let key = |k: &str| format!("onnx/{name}/{k}");
        if options.use_stability_score {
            // The scores are then the stability of the low-res masks: a ratio of pixel counts,
            // which moves by a pixel wherever a reference logit is within tolerance of ±1.
            check_stability(
                &format!("{tag} onnx {name} scores"),
                &host(out.scores.clone()),
                &refs.get(&key("scores")).data,
                &refs.get(&key("low_res_masks")).data,
                low_tol,
            );
        } else {
            check(
                &format!("{tag} onnx {name} scores"),
                max_err(&host(out.scores.clone()), &refs.get(&key("scores")).data),
                iou_tol,
            );
        }
        check(
            &format!("{tag} onnx {name} low_res"),
            max_err(
                &host(out.low_res_masks.clone()),
                &refs.get(&key("low_res_masks")).data,
            ),
            low_tol,
        );
        let logits = host(out.masks.clone());
        let masks: Vec<bool> = logits.iter().map(|&l| l > 0.0).collect();
        let reference_logits = case["masks_dtype"]
            .as_str()
            .unwrap()
            .starts_with("bool")
            .then(|| reference_full_res_logits(&manifest, image, refs.get(&key("low_res_masks"))));
        flips += compare_masks(
            &format!("{tag} onnx {name}"),
            case,
            logits,
            &masks,
            refs.get(&key("masks")),
            reference_logits.as_deref(),
            full_tol,
        );
        pixels += masks.len();
        if let Some(stability) = out.stability_scores {
            check(
                &format!("{tag} onnx {name} stability"),
                max_err(&host(stability), &refs.get(&key("stability_scores")).data),
                1e-3,
            );
            let areas = host(out.areas.unwrap());
            let ref_areas = &refs.get(&key("areas")).data;
            let diff = max_err(&areas, ref_areas);
            println!("{tag} onnx {name} areas: ours {areas:?} ref {ref_areas:?}");
            // An area may differ by the pixels whose logit is within tolerance of 0.
            let ambiguous = case["full_res_logit_stats"]["n_ambiguous_1e3"]
                .as_f64()
                .unwrap_or(0.0) as f32;
            assert!(diff <= ambiguous.max(0.0) + 0.5, "areas differ by {diff}");
        }
    }
    // All cases together: at most 10x (the kit's tolerance rule) the official code's own
    // float32-vs-float64 flip rate (at least one flip counted), over our pixel count.
    let t = &manifest["tolerances"];
    let measured = t["mask_pixel_flips_f32_vs_f64"].as_u64().unwrap() as usize;
    let compared = t["mask_pixels_compared"].as_u64().unwrap() as usize;
    let cap = 10 * measured.max(1) * pixels.div_ceil(compared);
    println!(
        "{tag}: {flips} of {pixels} mask pixels differ from the reference, at most {cap} \
         (float32 vs float64 in the official code: {measured} of {compared})"
    );
    assert!(
        flips <= cap,
        "{tag}: {flips} mask pixels differ, more than {cap}"
    );
}

/// Checks stability scores (`count(logit > 1) / count(logit > -1)` per mask) against the range
/// the reference logits allow: each pixel whose reference logit is within `tol` of +1 or -1
/// may fall on either side, as the reference kit lets mask pixels within tolerance of 0 flip.
/// `ours` and `reference_scores` have one score per mask of `reference` (row-major masks of
/// equal size).
fn check_stability(
    name: &str,
    ours: &[f32],
    reference_scores: &[f32],
    reference: &[f32],
    tol: f32,
) {
    let size = reference.len() / ours.len();
    let masks = ours
        .iter()
        .zip(reference_scores)
        .zip(reference.chunks_exact(size));
    for (m, ((&score, &reference_score), logits)) in masks.enumerate() {
        let count = |f: &dyn Fn(f32) -> bool| logits.iter().filter(|&&l| f(l)).count() as f32;
        let (inter, union) = (count(&|l| l > 1.0), count(&|l| l > -1.0));
        let (near_hi, near_lo) = (
            count(&|l| (l - 1.0).abs() < tol),
            count(&|l| (l + 1.0).abs() < tol),
        );
        let low = (inter - near_hi) / (union + near_lo);
        let high = (inter + near_hi) / (union - near_lo).max(1.0);
        let exact = inter / union;
        assert!(
            (exact - reference_score).abs() < 1e-6,
            "{name}[{m}]: the reference logits give {exact}, its score is {reference_score}"
        );
        println!(
            "{name}[{m}]: ours {score}, reference {exact}, allowed [{low}, {high}] \
             ({near_hi} logits within {tol:e} of +1, {near_lo} of -1)"
        );
        assert!(
            score >= low - 1e-6 && score <= high + 1e-6,
            "{name}[{m}]: {score} outside [{low}, {high}]"
        );
    }
}

#[test]
fn tiny_predictor_and_onnx_cases() {
    run(&tiny_tag());
}

#[test]
fn mobile_sam_predictor_and_onnx_cases() {
    run(&mobile_sam_tag());
}

#[test]
fn bad_prompts_are_errors_not_panics() {
    let device = Device::flex();
    let sam = Sam::from_bytes(&read(&format!("{}.pth", tiny_tag())), None, &device).unwrap();
    let img = RgbImage::new(8, 6, vec![128; 8 * 6 * 3]).unwrap();
    let emb = sam.set_image(&img).unwrap();
    let cases: Vec<(&str, Prompt)> = vec![
        ("empty", Prompt::default()),
        (
            "NaN point",
            Prompt {
                points: vec![[f32::NAN, 1.0]],
                labels: vec![1],
                ..Default::default()
            },
        ),
        (
            "point far outside",
            Prompt {
                points: vec![[1e6, 1.0]],
                labels: vec![1],
                ..Default::default()
            },
        ),
        (
            "label count",
            Prompt {
                points: vec![[1.0, 1.0]],
                labels: vec![],
                ..Default::default()
            },
        ),
        (
            "label value",
            Prompt {
                points: vec![[1.0, 1.0]],
                labels: vec![7],
                ..Default::default()
            },
        ),
        (
            "empty box",
            Prompt {
                bbox: Some([3.0, 3.0, 3.0, 5.0]),
                ..Default::default()
            },
        ),
        (
            "inverted box",
            Prompt {
                bbox: Some([5.0, 3.0, 2.0, 5.0]),
                ..Default::default()
            },
        ),
        (
            "box outside",
            Prompt {
                bbox: Some([100.0, 100.0, 200.0, 200.0]),
                ..Default::default()
            },
        ),
        (
            "NaN box",
            Prompt {
                bbox: Some([0.0, f32::NAN, 2.0, 5.0]),
                ..Default::default()
            },
        ),
        (
            "mask shape",
            Prompt {
                points: vec![[1.0, 1.0]],
                labels: vec![1],
                mask_input: Some(vec![0.0; 64 * 64]),
                ..Default::default()
            },
        ),
        (
            "mask NaN",
            Prompt {
                points: vec![[1.0, 1.0]],
                labels: vec![1],
                mask_input: Some(vec![f32::NAN; 256 * 256]),
                ..Default::default()
            },
        ),
    ];
    for (what, prompt) in cases {
        match sam.predict(&emb, &prompt) {
            Err(SamError::Prompt(msg)) => println!("{what}: {msg}"),
            other => panic!("{what}: expected a prompt error, got {other:?}"),
        }
    }
    // A box partly outside is clamped to the image.
    let clamped = Prompt {
        bbox: Some([-5.0, -5.0, 4.0, 4.0]),
        ..Default::default()
    };
    let pred = sam.predict(&emb, &clamped).unwrap();
    assert_eq!(pred.logits.dims(), [1, 1, 6, 8]);
}

/// The decoder on an image prepared once (`image_keys` + `decode_with`, what `predict` uses
/// without a mask input) gives what the plain `decode` gives, for a batch of prompts too.
#[test]
fn prepared_image_decodes_like_plain_decode() {
    let device = Device::flex();
    let sam = Sam::from_bytes(&read(&format!("{}.pth", tiny_tag())), None, &device).unwrap();
    let features = Tensor::<4>::random(
        [1, 256, 64, 64],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    let coords = points_tensor(
        vec![[500.0, 400.0], [0.0, 0.0], [120.0, 700.0], [0.0, 0.0]],
        &device,
    )
    .reshape([2, 2, 2]);
    let labels = [vec![1, -1], vec![1, -1]];
    let sparse = sam.prompt_encoder.embed_points(coords, &labels).unwrap();
    let plain = sam
        .decode(
            features.clone(),
            sparse.clone(),
            sam.prompt_encoder.no_mask_dense(2),
        )
        .unwrap();
    let keys = sam.image_keys(features).unwrap();
    let prepared = sam.decode_with(&keys, sparse).unwrap();
    let low = max_err(&host(prepared.low_res_masks), &host(plain.low_res_masks));
    let iou = max_err(
        &host(prepared.iou_predictions),
        &host(plain.iou_predictions),
    );
    assert!(low < 1e-3 && iou < 1e-5, "low-res {low}, IoU {iou}");
}

/// `predict_masks` with `MaskChoice::Best` gives the mask, score and low-res logits of the
/// highest score among those of `predict`, alone; `prepare_prompts` changes no output.
#[test]
fn best_mask_choice_is_the_best_of_all() {
    let device = Device::flex();
    let sam = Sam::from_bytes(&read(&format!("{}.pth", tiny_tag())), None, &device).unwrap();
    let (w, h) = (96, 64);
    let pixels = (0..w * h)
        .flat_map(|i| {
            let (x, y) = (i % w, i / w);
            let inside = (30..70).contains(&x) && (20..50).contains(&y);
            if inside {
                [220, 40, 40]
            } else {
                [20, (x * 2) as u8, (y * 3) as u8]
            }
        })
        .collect();
    let emb = sam
        .set_image(&RgbImage::new(w, h, pixels).unwrap())
        .unwrap();
    for multimask in [true, false] {
        let prompt = Prompt {
            points: vec![[50.0, 35.0]],
            labels: vec![1],
            multimask_output: multimask,
            ..Default::default()
        };
        let all = sam.predict(&emb, &prompt).unwrap();
        let best = sam.predict_masks(&emb, &prompt, MaskChoice::Best).unwrap();
        let scores = host(all.iou_predictions.clone());
        let b = scores
            .iter()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |a, (i, &s)| if s > a.1 { (i, s) } else { a },
            )
            .0;
        let c = scores.len();
        assert_eq!(c, if multimask { 3 } else { 1 });
        assert_eq!(host(best.iou_predictions.clone()), vec![scores[b]]);
        let [_, _, lh, lw] = all.low_res_logits.dims();
        assert_eq!(best.low_res_logits.dims(), [1, 1, lh, lw]);
        let pick = |t: Tensor<4>| {
            let [_, _, th, tw] = t.dims();
            t.slice([0..1, b..b + 1, 0..th, 0..tw])
        };
        assert_eq!(
            host(best.low_res_logits),
            host(pick(all.low_res_logits.clone()))
        );
        assert_eq!(best.logits.dims(), [1, 1, h, w]);
        assert_eq!(host(best.logits), host(pick(all.logits.clone())));
    }
    // Prepared before the first prompt: the same prediction as prepared by it.
    let again = sam
        .set_image(&RgbImage::new(w, h, vec![7; w * h * 3]).unwrap())
        .unwrap();
    sam.prepare_prompts(&again).unwrap();
    let prompt = Prompt {
        points: vec![[10.0, 10.0]],
        labels: vec![1],
        multimask_output: true,
        ..Default::default()
    };
    let prepared = sam.predict(&again, &prompt).unwrap();
    let plain = sam
        .predict(
            &sam.set_image(&RgbImage::new(w, h, vec![7; w * h * 3]).unwrap())
                .unwrap(),
            &prompt,
        )
        .unwrap();
    assert_eq!(host(prepared.low_res_logits), host(plain.low_res_logits));
}

/// `read_prediction` (one transaction: one GPU round trip on wgpu) reads what separate reads
/// of the masks, scores and low-res logits read, on every device.
#[test]
fn one_transaction_reads_what_separate_reads_read() {
    use burn::tensor::Distribution::Normal;
    use sam_core::predictor::Prediction;
    use sam_core::readback::{read_bool_bytes, read_prediction};
    for (name, device) in devices() {
        let pred = Prediction {
            logits: Tensor::<4>::random([1, 3, 40, 56], Normal(0.0, 1.0), &device),
            iou_predictions: Tensor::<2>::random([1, 3], Normal(0.0, 1.0), &device),
            low_res_logits: Tensor::<4>::random([1, 3, 256, 256], Normal(0.0, 1.0), &device),
        };
        let (shape, masks) = block_on(read_bool_bytes(pred.masks())).unwrap();
        let scores = host(pred.iou_predictions.clone());
        let low_res = host(pred.low_res_logits.clone());
        for with_low_res in [true, false] {
            let got = block_on(read_prediction(pred.clone(), with_low_res)).unwrap();
            assert_eq!(got.mask_shape, shape, "{name}");
            assert_eq!(got.masks, masks, "{name}");
            assert!(masks.contains(&1) && masks.contains(&0), "{name}");
            assert_eq!(got.scores, scores, "{name}");
            let want = with_low_res.then(|| low_res.clone());
            assert_eq!(got.low_res_logits, want, "{name}");
        }
    }
}
