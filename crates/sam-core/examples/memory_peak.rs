//! Measures the memory a model takes on the CPU backend: the live heap held by its weights
//! after loading, and the peak of live heap above that during `set_image` (preprocessing and
//! embedding of a 1024x768 image) and one click. These are the figures `sam_core::memory`'s
//! activation peaks come from (issue 15).
//!
//! ```text
//! RAYON_NUM_THREADS=1 cargo run -p sam-core --example memory_peak -- vit_b [vit_l vit_h mobile_sam]
//! ```
//! Each model's checkpoint is written by the fixture writer into memory (random weights, seed 0)
//! and dropped once loaded. One JSON line per model on stdout (bytes). Counting is done by a
//! global allocator wrapper (the same numbers on wasm32, where the heap is the linear memory).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Cursor;
use std::sync::atomic::{AtomicUsize, Ordering};

use sam_core::fixture::write_checkpoint;
use sam_core::io::checkpoint::Checkpoint;
use sam_core::memory::MemoryEstimate;
use sam_core::{ModelType, Prompt, Sam};

use common::synthetic_image;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Counts live bytes and their peak.
struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let now = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size
                    - layout.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Restarts the peak at the live bytes now, and returns them.
fn reset_peak() -> usize {
    let now = live();
    PEAK.store(now, Ordering::Relaxed);
    now
}

fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

fn main() {
    let device = burn::tensor::Device::flex();
    for name in std::env::args().skip(1) {
        let model: ModelType = name.parse().expect("model type");
        let start = live();
        let bytes = write_checkpoint(Cursor::new(Vec::new()), "archive", &model, 0)
            .expect("fixture")
            .into_inner();
        let estimate =
            MemoryEstimate::of(&Checkpoint::from_bytes(&bytes).expect("open")).expect("estimate");
        let base = reset_peak();
        let sam = Sam::from_bytes(&bytes, None, &device).expect("load");
        let load_peak = peak().saturating_sub(base);
        drop(bytes);
        let weights = reset_peak();
        let embedding = sam
            .set_image(&synthetic_image(1024, 768))
            .expect("set_image");
        let _ = embedding.features.clone().into_data();
        let embed_peak = peak().saturating_sub(weights);
        let with_embedding = reset_peak();
        let prompt = Prompt {
            points: vec![[500.0, 400.0]],
            labels: vec![1],
            multimask_output: true,
            ..Default::default()
        };
        let pred = sam.predict(&embedding, &prompt).expect("predict");
        let _ = pred.masks().into_data();
        let click_peak = peak().saturating_sub(with_embedding);
        println!(
            "{}",
            serde_json::json!({
                "model": name,
                "weights_live": weights.saturating_sub(start),
                "load_peak_above_file": load_peak,
                "embed_peak_above_weights": embed_peak,
                "click_peak_above_embedding": click_peak,
                "estimate_weights": estimate.weight_bytes,
                "estimate_activations": estimate.activation_peak_bytes,
            })
        );
    }
}
