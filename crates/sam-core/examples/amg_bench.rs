//! Times the automatic mask generator ("segment everything") with the official default
//! options (32x32 points, batches of 64, one crop) on a 1024x768 image: the reference kit's
//! `objects` image upscaled with the Pillow-exact resampler.
//!
//! ```text
//! cargo run --release -p sam-core --example amg_bench -- --model mobile_sam --device flex
//! ```
//! `--model mobile_sam|tiny` loads the reference kit's checkpoint (`--checkpoint FILE` any
//! other), `--device flex|wgpu`, `--runs N` (default 2; the first includes warm-up such as
//! shader compilation), `--points-per-side N`, `--points-per-batch N`, and `--nofilter`
//! (IoU and stability thresholds 0, so every mask is upscaled, read back and encoded: the
//! worst case of the post-processing). The kit's weights are random, so with the default
//! thresholds few or no masks survive; the decoder work is the same as with real weights.

use std::time::Instant;

use burn::tensor::Device;
use pollster::block_on;
use safetensors::SafeTensors;
use sam_core::Sam;
use sam_core::amg::{AmgOptions, SamAutomaticMaskGenerator};
use sam_core::preprocess::{RgbImage, resize_rgb};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

fn reference(name: &str) -> Vec<u8> {
    let dir = std::env::var("SAM_REFERENCE_DIR").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/reference").to_string()
    });
    std::fs::read(format!("{dir}/{name}"))
        .unwrap_or_else(|e| panic!("reading {dir}/{name} (set SAM_REFERENCE_DIR): {e}"))
}

/// Peak resident memory of this process so far (Linux `VmHWM`), in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}

fn objects_image() -> RgbImage {
    let bytes = reference("preprocess.safetensors");
    let st = SafeTensors::deserialize(&bytes).expect("preprocess.safetensors");
    let view = st.tensor("image/objects").expect("image/objects");
    let shape = view.shape();
    RgbImage::new(shape[1], shape[0], view.data().to_vec()).expect("HWC u8 image")
}

fn main() {
    let model = arg("--model").unwrap_or_else(|| "mobile_sam".into());
    let device_name = arg("--device").unwrap_or_else(|| "flex".into());
    let runs: usize = arg("--runs").map_or(2, |v| v.parse().expect("--runs N"));
    let device = match device_name.as_str() {
        "flex" => Device::flex(),
        #[cfg(feature = "wgpu")]
        "wgpu" => Device::wgpu_options().init().expect("no wgpu adapter"),
        other => panic!("unknown device {other} (flex or wgpu)"),
    };
    let bytes = match arg("--checkpoint") {
        Some(path) => std::fs::read(&path).expect("checkpoint file"),
        None => reference(match model.as_str() {
            "mobile_sam" => "mobile_sam_seed0.pth",
            "tiny" => "tiny_seed0.pth",
            other => panic!("unknown model {other} (mobile_sam, tiny, or --checkpoint FILE)"),
        }),
    };
    let t = Instant::now();
    let sam = Sam::from_bytes(&bytes, None, &device).expect("checkpoint loads");
    println!(
        "model {} on {device_name}: loaded in {:.0} ms",
        sam.model_type,
        t.elapsed().as_secs_f64() * 1e3
    );

    let objects = objects_image();
    let image = resize_rgb(&objects, 1024, 768);
    let mut options = AmgOptions::default();
    if let Some(n) = arg("--points-per-side") {
        options.points_per_side = Some(n.parse().expect("--points-per-side N"));
    }
    if let Some(n) = arg("--points-per-batch") {
        options.points_per_batch = n.parse().expect("--points-per-batch N");
    }
    if flag("--nofilter") {
        options.pred_iou_thresh = 0.0;
        options.stability_score_thresh = 0.0;
    }
    println!(
        "image {}x{}, points_per_side {:?}, points_per_batch {}, pred_iou_thresh {}, stability_score_thresh {}",
        image.width,
        image.height,
        options.points_per_side,
        options.points_per_batch,
        options.pred_iou_thresh,
        options.stability_score_thresh
    );
    let amg = SamAutomaticMaskGenerator::new(&sam, options).expect("options");

    for run in 0..runs {
        let start = Instant::now();
        let mut last = start;
        let mut batch_ms: Vec<f64> = Vec::new();
        let records = block_on(amg.generate(&image, &mut |p| {
            let now = Instant::now();
            if p.batches_done > batch_ms.len() {
                batch_ms.push((now - last).as_secs_f64() * 1e3);
            }
            last = now;
            true
        }))
        .expect("generate");
        let total = start.elapsed().as_secs_f64() * 1e3;
        // The first batch also waits for the image embedding (lazy backends run it then).
        let rest = &batch_ms[1.min(batch_ms.len())..];
        let per_batch = rest.iter().sum::<f64>() / rest.len().max(1) as f64;
        println!(
            "run {run}: total {total:.0} ms, {} masks, {} batches: first (with embedding) {:.0} ms, \
             then {per_batch:.0} ms per batch; peak RSS {:.0} MiB",
            records.len(),
            batch_ms.len(),
            batch_ms.first().copied().unwrap_or(0.0),
            peak_rss_mib()
        );
    }
}
