//! The GPU work of one embedding and one click on wgpu, phase by phase, as the page's binding
//! does them (`crates/sam-wasm/src/segmenter.rs`): kernel launches (compute dispatches), the
//! distinct kernels among them, kernels seen for the first time (pipelines compiled, autotune
//! candidates), readbacks (count and bytes) and wall time. With `--timing`, each launch is also
//! timed on the device (timestamp queries where the adapter has them, else host time around a
//! blocking submit, as reported) and the costliest kernels are listed.
//!
//! ```text
//! cargo run --release -p sam-core --example gpu_profile -- --model mobile_sam [--timing]
//! ```
//! `--model mobile_sam|tiny` loads the reference kit's file, `--checkpoint FILE` any
//! checkpoint; `--width W --height H` (default 1024x768); `--precision f32|f16|auto` (default
//! f32, `sam_core::precision`); `--kernels` lists each phase's most launched kernels on stderr
//! (the JSON always has them). With sam-core's default features it profiles burn's fused
//! kernels (`fusion`); `--no-default-features --features flex,wgpu` profiles the unfused ones,
//! and `--features autotune` adds burn's autotune; the JSON says which build ran. With fusion,
//! burn queues operations and launches them when a result is read, so a phase's launches are
//! counted where they run: the last queued work of one phase may be counted in the next. One
//! JSON object goes to stdout, a table to stderr. Launches are counted by cubecl's launch observer
//! (`cubecl_runtime::logging::LaunchObserver`), on the thread that issues them; readbacks are
//! the awaited reads this program makes, which are the binding's.
//!
//! The phases: `load`; `set_image` cold and warm (preprocessing + encoder); `prepare_prompts`
//! (the decoder's per-image keys, made once at `setImage`); the warm-up click the binding makes
//! at `setImage`; a `click` (three masks at the image size, scores, low-res logits), first and
//! later; a `hover` (the best mask only, no low-res logits); a `hover drawn on the GPU` (the
//! binding's `drawPreview`: the best mask's logits painted into a texture of the image's size by
//! `sam_core::preview::MaskPainter`, here an offscreen one in place of the page's canvas, and
//! nothing read back: the phase ends when the device is idle).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use burn::tensor::{Device, Tensor};
use cubecl_runtime::logging::{
    Duration, LaunchObservation, LaunchObserver, ProfileDuration, TimingMethod, TimingRequest,
};
use pollster::block_on;
use sam_core::precision::{Precision, set_precision};
use sam_core::predictor::{MaskChoice, Prediction};
use sam_core::preview::{MaskPainter, gpu_buffer, rgba8_target, wgpu};
use sam_core::readback::{read_f32, read_prediction};
use sam_core::{ImageEmbedding, Prompt, Sam};

use common::{arg, flag, reference, synthetic_image};

/// What the observer saw during one phase.
#[derive(Default)]
struct Seen {
    launches: BTreeMap<&'static str, usize>,
    timings: Vec<(&'static str, Timing)>,
    method: Option<TimingMethod>,
}

/// A launch's time on the device: unread (read once the phase is over), or already read.
enum Timing {
    Unread(ProfileDuration),
    Read(Duration),
}

/// Counts every launch (and keeps its unread device timing under `--timing`).
struct Observer {
    timing: bool,
    seen: Mutex<Seen>,
}

impl LaunchObserver for Observer {
    fn launched(&self, kernel: &'static str) {
        *self
            .seen
            .lock()
            .unwrap()
            .launches
            .entry(kernel)
            .or_default() += 1;
    }
    fn timing(&self) -> TimingRequest {
        if self.timing {
            TimingRequest::Deferred
        } else {
            TimingRequest::None
        }
    }
    fn profiled(&self, kernel: &'static str, profile: ProfileDuration) {
        let mut seen = self.seen.lock().unwrap();
        seen.method = Some(profile.timing_method());
        seen.timings.push((kernel, Timing::Unread(profile)));
    }
    fn timed(&self, kernel: &'static str, d: Duration, m: TimingMethod) {
        let mut seen = self.seen.lock().unwrap();
        seen.method = Some(m);
        seen.timings.push((kernel, Timing::Read(d)));
    }
}

/// The readbacks of a phase: how many awaited reads, how many bytes came back.
#[derive(Default)]
struct Reads {
    count: usize,
    bytes: usize,
}

impl Reads {
    /// A click's results as the binding reads them: one transaction.
    fn prediction(&mut self, pred: Prediction, low_res: bool) {
        let host = block_on(read_prediction(pred, low_res)).expect("read prediction");
        self.count += 1;
        self.bytes += host.masks.len()
            + 4 * host.scores.len()
            + 4 * host.low_res_logits.map_or(0, |v| v.len());
    }
    fn floats<const D: usize>(&mut self, t: Tensor<D>) -> usize {
        let (_, v) = block_on(read_f32(t)).expect("read floats");
        self.count += 1;
        self.bytes += v.len() * 4;
        v.len()
    }
}

/// Runs `work` as one phase and returns its profile as JSON (and prints a line).
fn phase(
    name: &str,
    observer: &Arc<Observer>,
    known: &mut BTreeSet<&'static str>,
    work: impl FnOnce(&mut Reads),
) -> serde_json::Value {
    *observer.seen.lock().unwrap() = Seen::default();
    let mut reads = Reads::default();
    let t = Instant::now();
    work(&mut reads);
    let wall_ms = t.elapsed().as_secs_f64() * 1e3;
    let seen = std::mem::take(&mut *observer.seen.lock().unwrap());
    let launches: usize = seen.launches.values().sum();
    let new: Vec<&str> = seen
        .launches
        .keys()
        .filter(|k| !known.contains(*k))
        .copied()
        .collect();
    known.extend(seen.launches.keys().copied());
    let mut out = serde_json::json!({
        "phase": name,
        "wall_ms": (wall_ms * 100.0).round() / 100.0,
        "dispatches": launches,
        "distinct_kernels": seen.launches.len(),
        "new_kernels": new.len(),
        "readbacks": reads.count,
        "readback_bytes": reads.bytes,
    });
    let short = |k: &str| {
        cubecl_runtime::config::type_name_format(
            k,
            cubecl_runtime::config::TypeNameFormatLevel::Short,
        )
    };
    // The most launched kernels (what fusion would merge): name and launches.
    let mut most: Vec<(&&str, &usize)> = seen.launches.iter().collect();
    most.sort_by(|a, b| b.1.cmp(a.1));
    most.truncate(6);
    out["most_launched"] = most
        .iter()
        .map(|(k, n)| serde_json::json!([short(k), n]))
        .collect();
    let mut line = format!(
        "{name:<22} {wall_ms:>9.1} ms  {launches:>6} dispatches  {:>4} kernels ({:>3} new)  {} reads, {} bytes",
        seen.launches.len(),
        new.len(),
        reads.count,
        reads.bytes
    );
    if flag("--kernels") {
        for (k, n) in &most {
            line += &format!("\n    {n:>6} x {}", short(k));
        }
    }
    if !seen.timings.is_empty() {
        // Per kernel name: device milliseconds and launches.
        let mut by_kernel: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
        let mut total = 0.0;
        for (k, p) in seen.timings {
            let d = match p {
                Timing::Unread(p) => block_on(p.resolve()).map(|t| t.duration()),
                Timing::Read(d) => Some(d),
            };
            if let Some(d) = d {
                let ms = d.as_secs_f64() * 1e3;
                total += ms;
                let e = by_kernel.entry(k).or_default();
                e.0 += ms;
                e.1 += 1;
            }
        }
        let mut top: Vec<(&str, (f64, usize))> = by_kernel.into_iter().collect();
        top.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
        top.truncate(8);
        out["kernel_ms"] = ((total * 100.0).round() / 100.0).into();
        out["timing"] = format!("{:?}", seen.method).into();
        out["top_kernels_ms_launches"] = top
            .iter()
            .map(|(k, (ms, n))| serde_json::json!([short(k), (ms * 100.0).round() / 100.0, n]))
            .collect();
        line += &format!("  kernels {total:.1} ms");
    }
    eprintln!("{line}");
    out
}

fn main() {
    let width: usize = arg("--width").and_then(|r| r.parse().ok()).unwrap_or(1024);
    let height: usize = arg("--height").and_then(|r| r.parse().ok()).unwrap_or(768);
    let model = arg("--model").unwrap_or_else(|| "mobile_sam".into());
    let bytes = match arg("--checkpoint") {
        Some(path) => std::fs::read(path).expect("checkpoint file"),
        None => reference(&format!("{model}_seed0.pth")),
    };
    let (mut device, setup) = Device::wgpu_options()
        .init_with_setup()
        .expect("wgpu adapter");
    let precision = match arg("--precision").as_deref() {
        None | Some("f32") => Precision::F32,
        Some("f16") => Precision::F16,
        Some("auto") => Precision::Auto,
        Some(other) => panic!("--precision f32|f16|auto, not {other}"),
    };
    let dtype = set_precision(&mut device, precision).expect("precision");
    let observer = Arc::new(Observer {
        timing: flag("--timing"),
        seen: Mutex::new(Seen::default()),
    });
    let _watching = LaunchObservation::new(observer.clone());
    let mut known = BTreeSet::new();
    let mut phases = Vec::new();

    let mut sam = None;
    phases.push(phase("load", &observer, &mut known, |_| {
        sam = Some(Sam::from_bytes(&bytes, None, &device).expect("load"));
        device.sync().ok();
    }));
    let sam = sam.unwrap();
    let image = synthetic_image(width, height);
    let mut embedding: Option<ImageEmbedding> = None;
    for name in ["set_image (cold)", "set_image (warm)"] {
        phases.push(phase(name, &observer, &mut known, |reads| {
            let e = sam.set_image(&image).expect("set_image");
            // The binding waits for the embedding with one value read back.
            reads.floats(e.features.clone().slice([0..1, 0..1, 0..1, 0..1]));
            embedding = Some(e);
        }));
    }
    let embedding = embedding.unwrap();
    phases.push(phase("prepare_prompts", &observer, &mut known, |reads| {
        sam.prepare_prompts(&embedding).expect("prepare");
        reads.floats(embedding.features.clone().slice([0..1, 0..1, 0..1, 0..1]));
    }));
    let (sam, embedding) = (&sam, &embedding);
    // One positive point at (x, the middle row), decoded to `choice`'s masks on the device.
    let decode = move |x: f32, choice: MaskChoice| {
        let prompt = Prompt {
            points: vec![[x, height as f32 / 2.0]],
            labels: vec![1],
            multimask_output: true,
            ..Default::default()
        };
        sam.predict_masks(embedding, &prompt, choice)
            .expect("predict")
    };
    let click = |x: f32, choice: MaskChoice, low_res: bool| {
        move |reads: &mut Reads| reads.prediction(decode(x, choice), low_res)
    };
    let cx = width as f32 / 2.0;
    phases.push(phase(
        "warm-up click",
        &observer,
        &mut known,
        click(cx, MaskChoice::All, true),
    ));
    for (i, name) in ["click (first)", "click (second)", "click (third)"]
        .iter()
        .enumerate()
    {
        let x = cx * 0.5 + 37.0 * i as f32;
        phases.push(phase(
            name,
            &observer,
            &mut known,
            click(x, MaskChoice::All, true),
        ));
    }
    for (i, name) in ["hover (first)", "hover (second)"].iter().enumerate() {
        let x = cx * 1.4 + 23.0 * i as f32;
        phases.push(phase(
            name,
            &observer,
            &mut known,
            click(x, MaskChoice::Best, false),
        ));
    }
    // The page's canvas, here a texture of the image's size.
    let target = rgba8_target(&setup.device, width as u32, height as u32);
    let painter = MaskPainter::new(&setup.device, target.format());
    let view = target.create_view(&Default::default());
    for (i, name) in [
        "hover drawn on the GPU (first)",
        "hover drawn on the GPU (second)",
    ]
    .iter()
    .enumerate()
    {
        let x = cx * 1.4 + 23.0 * i as f32;
        phases.push(phase(name, &observer, &mut known, |_| {
            let values = gpu_buffer(decode(x, MaskChoice::Best).logits)
                .expect("gpu buffer")
                .expect("a wgpu tensor");
            let size = Some((&values, width as u32, height as u32));
            painter
                .paint(&setup.device, &setup.queue, &view, size, [30, 144, 255])
                .expect("paint");
            setup
                .device
                .poll(wgpu::PollType::wait_indefinitely())
                .expect("device idle");
        }));
    }
    let out = serde_json::json!({
        "impl": "sam-core",
        "model": model,
        "device": "wgpu",
        "float": format!("{dtype:?}"),
        // burn's `fusion` and `autotune` (sam-core features of the same names).
        "fusion": cfg!(feature = "fusion"),
        "autotune": cfg!(feature = "autotune"),
        "image": [width, height],
        "phases": phases,
    });
    println!("{out}");
}
