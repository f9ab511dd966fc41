//! Segment Anything in the browser: a thin wasm-bindgen binding over `sam-core`.
//!
//! JavaScript sees one class, [`Segmenter`] (create from checkpoint bytes, `setImage`,
//! `predict`, `generate`, `exportEmbedding`/`importEmbedding`, `free`), and a few functions on
//! masks and SA-1B files ([`encode_coco_rle`], [`decode_coco_rle`], [`normalize_sa1b`]).
//! Everything that computes lives in `sam-core`; this crate only converts values between JS and
//! Rust, picks the backend ([`backend`]) and turns errors into JS `Error`s ([`error`]).
//!
//! Every method that touches the model is `async` and reads the GPU back with
//! `into_data_async`, so nothing blocks on `Atomics.wait`; run it in a Web Worker so that the
//! CPU backend's long synchronous embedding does not freeze the page.

use wasm_bindgen::prelude::*;

pub mod backend;
pub mod blob;
pub mod convert;
mod ctors;
pub mod error;
pub mod masks;
pub mod polygons;
#[cfg(all(feature = "webgpu", target_family = "wasm"))]
pub mod preview;
pub mod segmenter;
pub mod source;
pub mod threads;

pub use masks::{decode_coco_rle, encode_coco_rle, normalize_sa1b};
pub use segmenter::Segmenter;

/// Large blocks on a cache line: the module's dlmalloc aligns to 8 bytes only, and the CPU
/// backend's vector loads of a block 8 bytes off a 16-byte boundary straddle cache lines
/// ([`sam_core::CacheAligned`]).
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: sam_core::CacheAligned = sam_core::CacheAligned;

/// Installs the panic hook (a Rust panic then shows its message in the console) and runs the
/// static constructors ([`ctors`]) once, when the module is instantiated.
#[wasm_bindgen(start)]
pub fn start() {
    ctors::run_once();
    console_error_panic_hook::set_once();
}

/// The TypeScript types of the plain objects the API takes and returns.
#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &str = r#"
export type ModelTypeName = "vit_h" | "vit_l" | "vit_b" | "mobile_sam";
export type BackendName = "webgpu" | "cpu";
export type PrecisionName = "f32" | "f16";

export interface SegmenterOptions {
  /** Omit to detect from the checkpoint's keys; naming a type the file does not hold is an error. */
  modelType?: ModelTypeName;
  /** "auto" (default): WebGPU when navigator.gpu gives a hardware adapter, else CPU (software adapters such as SwiftShader, llvmpipe, lavapipe or isFallbackAdapter are skipped). "webgpu": any adapter, fail without one. "cpu": never touch the GPU. */
  backend?: "auto" | "webgpu" | "cpu";
  /** "f32" (default, the official model's precision). "f16": WebGPU on an adapter with shader-f16 only (an error elsewhere). "auto": f16 where the adapter has shader-f16, else f32. The first model on a worker's WebGPU device fixes its precision. */
  precision?: "f32" | "f16" | "auto";
  /** Called while tensors load: (loaded, total). */
  onProgress?: (loaded: number, total: number) => void;
}

export interface PromptInput {
  /** Clicks in original image pixels, [x, y]. */
  points?: [number, number][];
  /** One per point: 1 = positive (foreground), 0 = negative (background). */
  labels?: number[];
  /** [x0, y0, x1, y1] in original image pixels. */
  box?: [number, number, number, number];
  /** A previous low-res logit mask (256*256 floats, row-major), e.g. lowResLogits[i] of an earlier result. */
  maskInput?: Float32Array;
  /** true: three masks; false (default): one. */
  multimask?: boolean;
}

/** What predict returns besides the prompt's answer; omit for everything. */
export interface PredictOptions {
  /** "all" (default): every mask of the prompt (3 with multimask). "best": only the one of the highest score (a hover preview), a third of the work after the decoder. */
  masks?: "all" | "best";
  /** false: no low-res logits (lowResLogits is empty), for a result that is not refined later. Default true. */
  lowResLogits?: boolean;
}

export interface PredictResult {
  width: number;
  height: number;
  /** One per mask: width*height bytes, 1 inside, 0 outside, row-major. */
  masks: Uint8Array[];
  /** Predicted IoU of each mask. */
  scores: number[];
  /** One per mask: 256*256 low-res logits, to feed back as maskInput (empty with options.lowResLogits false). */
  lowResLogits: Float32Array[];
  /** Index of the mask with the highest score. */
  best: number;
}

/** Options of the automatic mask generator; omitted fields take the official defaults, except
 * pointsPerBatch (16 here, to keep GPU buffers small). */
export interface GenerateOptions {
  pointsPerSide?: number;
  pointsPerBatch?: number;
  predIouThresh?: number;
  stabilityScoreThresh?: number;
  stabilityScoreOffset?: number;
  boxNmsThresh?: number;
  cropNLayers?: number;
  cropNmsThresh?: number;
  cropOverlapRatio?: number;
  cropNPointsDownscaleFactor?: number;
  minMaskRegionArea?: number;
  /** file_name written in the SA-1B "image" record. */
  fileName?: string;
}

export interface GenerateProgress {
  batchesDone: number;
  batchesTotal: number;
  cropIndex: number;
  cropsTotal: number;
}
"#;
