//! The native side of the browser test of a fixture checkpoint (issue 15, tests/e2e/fixture.spec.ts):
//! writes a random-weight checkpoint with the fixture writer (`sam_core::fixture`, official
//! `.pth` format), loads that file on the CPU backend, embeds the reference kit's `landscape`
//! image and decodes one click, and writes what the browser must reproduce.
//!
//! ```text
//! cargo run -p sam-core --example fixture_prediction -- <vit_b|vit_l|vit_h|mobile_sam> <seed> <out_dir>
//! ```
//!
//! In `out_dir`:
//! - `<model>_seed<seed>.pth`: the checkpoint;
//! - `expected.safetensors`: `masks` U8 `[C, H, W]` (0/1), `logits` F32 `[C, H, W]` (the
//!   full-resolution mask logits, for the kit's rule that masks may differ only where
//!   `|logit| < full_res_logits_atol`), `scores` F32 `[C]`;
//! - `expected.json`: the checkpoint's file name, model type, seed, image name and size, the
//!   prompt (image pixels), the scores and the native timings (ms).
//!
//! The kit is `SAM_REFERENCE_DIR` (else `../shared/reference`); the image is its
//! `preprocess.safetensors` `image/landscape` (the e2e tests serve the same pixels as a PNG).

mod common;

use std::io::BufWriter;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use pollster::block_on;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use sam_core::fixture::write_checkpoint;
use sam_core::preprocess::RgbImage;
use sam_core::readback::{read_f32, read_prediction};
use sam_core::{ModelType, Prompt, Sam};

use common::reference;

/// The image of the kit the click is made on.
const IMAGE: &str = "landscape";
/// The click, in image pixels (the kit's `point_multi` case on `landscape`), and its label.
const POINT: [f32; 2] = [416.0, 192.0];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, seed, out] = args.as_slice() else {
        eprintln!("usage: fixture_prediction <vit_h|vit_l|vit_b|mobile_sam> <seed> <out_dir>");
        return ExitCode::from(2);
    };
    match run(model, seed, Path::new(out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fixture_prediction: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(model: &str, seed: &str, out: &Path) -> Result<(), String> {
    let model_type: ModelType = model.parse().map_err(|e| format!("{e}"))?;
    let seed: u64 = seed.parse().map_err(|e| format!("seed {seed:?}: {e}"))?;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;

    // The checkpoint, written as the browser will read it.
    let name = format!("{model}_seed{seed}");
    let ckpt_path = out.join(format!("{name}.pth"));
    let t = Instant::now();
    let file =
        std::fs::File::create(&ckpt_path).map_err(|e| format!("{}: {e}", ckpt_path.display()))?;
    write_checkpoint(BufWriter::new(file), &name, &model_type, seed)
        .map_err(|e| format!("{}: {e}", ckpt_path.display()))?
        .into_inner()
        .map_err(|e| format!("{}: {}", ckpt_path.display(), e.error()))?;
    let write_ms = t.elapsed().as_secs_f64() * 1e3;

    // The kit's image (HWC RGB u8).
    let pre = reference("preprocess.safetensors");
    let pre = SafeTensors::deserialize(&pre).map_err(|e| format!("preprocess.safetensors: {e}"))?;
    let img = pre
        .tensor(&format!("image/{IMAGE}"))
        .map_err(|e| format!("preprocess.safetensors image/{IMAGE}: {e}"))?;
    let &[height, width, 3] = img.shape() else {
        return Err(format!(
            "image/{IMAGE}: shape {:?} is not HWC RGB",
            img.shape()
        ));
    };
    let image = RgbImage::new(width, height, img.data().to_vec())
        .map_err(|e| format!("image/{IMAGE}: {e}"))?;

    // The same file, loaded back on the CPU backend.
    let device = burn::tensor::Device::flex();
    let t = Instant::now();
    let bytes = std::fs::read(&ckpt_path).map_err(|e| format!("{}: {e}", ckpt_path.display()))?;
    let sam = Sam::from_bytes(&bytes, None, &device).map_err(|e| format!("load: {e}"))?;
    drop(bytes);
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    if sam.model_type != model_type {
        return Err(format!(
            "the fixture loads as {}, not {model}",
            sam.model_type
        ));
    }
    let t = Instant::now();
    let embedding = sam
        .set_image(&image)
        .map_err(|e| format!("set_image: {e}"))?;
    let _ = embedding.features.clone().into_data();
    let embed_ms = t.elapsed().as_secs_f64() * 1e3;
    let prompt = Prompt {
        points: vec![POINT],
        labels: vec![1],
        multimask_output: true,
        ..Default::default()
    };
    let t = Instant::now();
    let pred = sam
        .predict(&embedding, &prompt)
        .map_err(|e| format!("predict: {e}"))?;
    let (logit_shape, logits) =
        block_on(read_f32(pred.logits.clone())).map_err(|e| format!("read logits: {e}"))?;
    let host =
        block_on(read_prediction(pred, false)).map_err(|e| format!("read prediction: {e}"))?;
    let click_ms = t.elapsed().as_secs_f64() * 1e3;
    let count = host.scores.len();
    if logit_shape != [1, count, height, width] || host.masks.len() != count * height * width {
        return Err(format!(
            "unexpected prediction shapes: logits {logit_shape:?}, {count} scores, {} mask bytes",
            host.masks.len()
        ));
    }

    // The expected outputs.
    let shape = vec![count, height, width];
    let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let (logit_bytes, score_bytes) = (f32_bytes(&logits), f32_bytes(&host.scores));
    let tensors = vec![
        ("masks", view(Dtype::U8, shape.clone(), &host.masks)?),
        ("logits", view(Dtype::F32, shape, &logit_bytes)?),
        ("scores", view(Dtype::F32, vec![count], &score_bytes)?),
    ];
    let st_path = out.join("expected.safetensors");
    safetensors::serialize_to_file(tensors, None, &st_path)
        .map_err(|e| format!("{}: {e}", st_path.display()))?;
    let json = serde_json::json!({
        "checkpoint": format!("{name}.pth"),
        "model_type": model_type.name(),
        "seed": seed,
        "image": IMAGE,
        "width": width,
        "height": height,
        "prompt": { "points": [POINT], "labels": [1], "multimask": true },
        "scores": host.scores,
        "tensors": "expected.safetensors",
        "native_ms": { "write": write_ms, "load": load_ms, "embed": embed_ms, "click": click_ms },
    });
    let json_path = out.join("expected.json");
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("{}: {e}", json_path.display()))?;
    eprintln!(
        "fixture_prediction: {name}: write {write_ms:.0} ms, load {load_ms:.0} ms, embed {embed_ms:.0} ms, click {click_ms:.0} ms; scores {:?}",
        host.scores
    );
    Ok(())
}

/// A tensor view for `safetensors::serialize_to_file`.
fn view(dtype: Dtype, shape: Vec<usize>, data: &[u8]) -> Result<TensorView<'_>, String> {
    TensorView::new(dtype, shape, data).map_err(|e| format!("{e}"))
}
