//! Times checkpoint loading, `set_image` (preprocessing + embedding) and one click (three
//! masks at the image's size, read back to the host; and the decoder alone) on a synthetic
//! 1024x768 image. Progress goes to stderr, one JSON object to stdout (milliseconds: median,
//! min, max), the same fields as `scripts/bench_torch.py` prints for the official PyTorch code.
//!
//! ```text
//! cargo run --release -p sam-core --example bench -- --model vit_b --device flex --runs 3
//! ```
//! `--clicks N` (default 10), `--width W --height H` (default 1024x768).
//! `--model vit_b|vit_l|vit_h` builds a full-size checkpoint with random weights in memory
//! (official keys and shapes; prompt encoder and decoder taken from the reference kit, as they
//! are the same in every SAM), `--model mobile_sam|tiny` loads the reference kit's file, and
//! `--checkpoint FILE` loads any checkpoint. `--device flex|wgpu`.
//!
//! It also builds for `wasm32-wasip1` (CPU backend, one thread, WebAssembly SIMD: what a page
//! gets) and runs under Node's WASI, to time our WebAssembly against the same PyTorch run:
//! `scripts/bench.sh --wasm`.

mod common;

use std::time::Instant;

use burn::tensor::Device;
use pollster::block_on;
use sam_core::io::checkpoint::Checkpoint;
use sam_core::modeling::image_encoder::ViTConfig;
use sam_core::readback::read_bool;
use sam_core::{ModelType, Prompt, Sam};

use common::{arg, reference, synthetic_image};

/// In WebAssembly: the peak of live heap allocations so far, in MiB (the linear memory is
/// made large up front for this build, see `.cargo/config.toml`, so its size says nothing).
#[cfg(target_family = "wasm")]
fn peak_rss_mib() -> f64 {
    heap::PEAK.load(std::sync::atomic::Ordering::Relaxed) as f64 / (1 << 20) as f64
}

/// A global allocator that counts live bytes and their peak (WebAssembly only).
#[cfg(target_family = "wasm")]
mod heap {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    pub static PEAK: AtomicUsize = AtomicUsize::new(0);
    static LIVE: AtomicUsize = AtomicUsize::new(0);

    struct Counting;

    fn grew(by: usize) {
        let now = LIVE.fetch_add(by, Relaxed) + by;
        PEAK.fetch_max(now, Relaxed);
    }

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            grew(layout.size());
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            grew(layout.size());
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            LIVE.fetch_sub(layout.size(), Relaxed);
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            LIVE.fetch_sub(layout.size(), Relaxed);
            grew(new_size);
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static ALLOCATOR: Counting = Counting;
}

/// Peak resident memory of this process so far (Linux `VmHWM`), in MiB.
#[cfg(not(target_family = "wasm"))]
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

/// A small deterministic generator (xorshift) for random weights.
struct Rng(u64);
impl Rng {
    fn uniform(&mut self, scale: f32) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
    }
}

/// The official `image_encoder.*` keys and shapes of a ViT configuration.
fn vit_keys(c: &ViTConfig) -> Vec<(String, Vec<usize>)> {
    let e = c.embed_dim;
    let g = c.img_size / c.patch_size;
    let hd = e / c.num_heads;
    let mut keys = vec![
        ("pos_embed".to_string(), vec![1, g, g, e]),
        (
            "patch_embed.proj.weight".into(),
            vec![e, 3, c.patch_size, c.patch_size],
        ),
        ("patch_embed.proj.bias".into(), vec![e]),
    ];
    for i in 0..c.depth {
        let size = if c.global_attn_indexes.contains(&i) {
            g
        } else {
            c.window_size
        };
        let b = |n: &str| format!("blocks.{i}.{n}");
        keys.extend([
            (b("norm1.weight"), vec![e]),
            (b("norm1.bias"), vec![e]),
            (b("attn.rel_pos_h"), vec![2 * size - 1, hd]),
            (b("attn.rel_pos_w"), vec![2 * size - 1, hd]),
            (b("attn.qkv.weight"), vec![3 * e, e]),
            (b("attn.qkv.bias"), vec![3 * e]),
            (b("attn.proj.weight"), vec![e, e]),
            (b("attn.proj.bias"), vec![e]),
            (b("norm2.weight"), vec![e]),
            (b("norm2.bias"), vec![e]),
            (b("mlp.lin1.weight"), vec![e * c.mlp_ratio, e]),
            (b("mlp.lin1.bias"), vec![e * c.mlp_ratio]),
            (b("mlp.lin2.weight"), vec![e, e * c.mlp_ratio]),
            (b("mlp.lin2.bias"), vec![e]),
        ]);
    }
    let o = c.out_chans;
    keys.extend([
        ("neck.0.weight".into(), vec![o, e, 1, 1]),
        ("neck.1.weight".into(), vec![o]),
        ("neck.1.bias".into(), vec![o]),
        ("neck.2.weight".into(), vec![o, o, 3, 3]),
        ("neck.3.weight".into(), vec![o]),
        ("neck.3.bias".into(), vec![o]),
    ]);
    keys.into_iter()
        .map(|(k, s)| (format!("image_encoder.{k}"), s))
        .collect()
}

/// A `.safetensors` file holding a random ViT encoder of config `c` plus the prompt encoder
/// and mask decoder of the tiny reference checkpoint.
fn random_vit_checkpoint(c: &ViTConfig) -> Vec<u8> {
    let tiny = reference("tiny_seed0.safetensors");
    let tiny = Checkpoint::from_bytes(&tiny).unwrap();
    let mut rng = Rng(0x5eed);
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    for (key, shape) in vit_keys(c) {
        let n: usize = shape.iter().product();
        let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
        let scale = if key.ends_with("norm1.weight") || key.ends_with("norm2.weight") {
            1.0
        } else {
            (3.0 / fan_in as f32).sqrt()
        };
        tensors.push((key, shape, (0..n).map(|_| rng.uniform(scale)).collect()));
    }
    for key in tiny.keys().filter(|k| !k.starts_with("image_encoder.")) {
        let shape = tiny.info(key).unwrap().shape.clone();
        tensors.push((key.to_string(), shape, tiny.read_f32(key).unwrap()));
    }
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (key, shape, data) in &tensors {
        let end = offset + data.len() * 4;
        header.insert(
            key.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut header = serde_json::to_vec(&header).unwrap();
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    for (_, _, data) in tensors {
        for v in data {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Prints one timing line and returns its JSON (`median_ms`, `first_ms`, `min_ms`, `max_ms`,
/// `runs`): the first run is the cold one (pipeline compiles and autotuning on wgpu).
fn stats(name: &str, v: &[f64]) -> serde_json::Value {
    let min = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = v.iter().cloned().fold(0.0, f64::max);
    let med = median(v.to_vec());
    eprintln!(
        "{name}: median {med:.1} ms, min {min:.1}, max {max:.1} ({} runs)",
        v.len()
    );
    let r = |x: f64| (x * 100.0).round() / 100.0;
    serde_json::json!({"median_ms": r(med), "first_ms": r(v[0]), "min_ms": r(min), "max_ms": r(max), "runs": v.len()})
}

fn main() {
    let model = arg("--model").unwrap_or_else(|| "vit_b".into());
    let device_name = arg("--device").unwrap_or_else(|| "flex".into());
    let runs: usize = arg("--runs").and_then(|r| r.parse().ok()).unwrap_or(3);
    let clicks: usize = arg("--clicks").and_then(|r| r.parse().ok()).unwrap_or(10);
    let width: usize = arg("--width").and_then(|r| r.parse().ok()).unwrap_or(1024);
    let height: usize = arg("--height").and_then(|r| r.parse().ok()).unwrap_or(768);
    let device = match device_name.as_str() {
        "flex" => Device::flex(),
        #[cfg(feature = "wgpu")]
        "wgpu" => Device::wgpu_options().init().expect("wgpu adapter"),
        other => panic!("unknown device {other}"),
    };
    let bytes = match (arg("--checkpoint"), model.as_str()) {
        (Some(path), _) => std::fs::read(path).expect("checkpoint file"),
        (None, "mobile_sam") => reference("mobile_sam_seed0.pth"),
        (None, "tiny") => reference("tiny_seed0.pth"),
        (None, name) => {
            let t = Instant::now();
            let config = name
                .parse::<ModelType>()
                .ok()
                .and_then(|m| m.vit_config())
                .expect("--model vit_b|vit_l|vit_h|mobile_sam|tiny");
            let b = random_vit_checkpoint(&config);
            eprintln!(
                "built random {name} checkpoint: {:.0} MiB in {:.1} s",
                b.len() as f64 / (1 << 20) as f64,
                t.elapsed().as_secs_f64()
            );
            b
        }
    };
    let mut out = serde_json::json!({
        "impl": "sam-core",
        "model": model,
        "device": device_name,
        "checkpoint_mib": (bytes.len() as f64 / (1 << 20) as f64 * 10.0).round() / 10.0,
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "image": [width, height],
    });
    let rss_before = peak_rss_mib();
    let t = Instant::now();
    let sam = Sam::from_bytes(&bytes, None, &device).expect("load");
    device.sync().ok();
    out["load"] = stats("load", &[t.elapsed().as_secs_f64() * 1e3]);
    out["peak_rss_mib_before_load"] = rss_before.round().into();
    out["peak_rss_mib_after_load"] = peak_rss_mib().round().into();
    out["model_type"] = sam.model_type.to_string().into();
    drop(bytes);

    // set_image: preprocessing + embedding, read back to the host once to wait for it.
    let image = synthetic_image(width, height);
    let mut embed_ms = Vec::new();
    let mut embedding = None;
    for _ in 0..runs {
        let t = Instant::now();
        let e = sam.set_image(&image).expect("set_image");
        let _ = e.features.clone().into_data();
        embed_ms.push(t.elapsed().as_secs_f64() * 1e3);
        embedding = Some(e);
    }
    out["set_image"] = stats("set_image", &embed_ms);
    let embedding = embedding.unwrap();

    // One click as a person makes it: three masks at the image's size, on the host.
    let mut click_ms = Vec::new();
    let mut decode_ms = Vec::new();
    for i in 0..clicks.max(1) {
        let prompt = Prompt {
            points: vec![[500.0 + i as f32, 400.0]],
            labels: vec![1],
            multimask_output: true,
            ..Default::default()
        };
        let t = Instant::now();
        let pred = sam.predict(&embedding, &prompt).expect("predict");
        let (shape, _masks) = block_on(read_bool(pred.masks())).expect("masks");
        let _ = pred.iou_predictions.into_data();
        click_ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(shape, [1, 3, height, width]);

        // The decoder alone: low-res logits and IoU.
        let t = Instant::now();
        let pred = sam.predict(&embedding, &prompt).expect("predict");
        let _ = (
            pred.low_res_logits.into_data(),
            pred.iou_predictions.into_data(),
        );
        decode_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    out["click_full_res"] = stats("click (3 masks at the image size, on the host)", &click_ms);
    out["decode_low_res"] = stats("decode (3 low-res masks)", &decode_ms);
    out["peak_rss_mib"] = peak_rss_mib().round().into();
    println!("{out}");
}
