// Public types of the sam-browser package. They mirror the wasm module's API
// (crates/sam-wasm) but do not depend on it, so the package's .d.ts stands alone.

export type ModelType = "vit_h" | "vit_l" | "vit_b" | "mobile_sam";
export type Backend = "webgpu" | "cpu";
export type BackendChoice = "auto" | Backend;
/** The float type the model computes in. */
export type Precision = "f32" | "f16";
/** What `LoadOptions.precision` asks for. */
export type PrecisionChoice = "auto" | Precision;

/**
 * A checkpoint: bytes, a Blob (a picked or dropped File: read in slices by the worker, never as one
 * buffer, so files past the ~2 GiB an ArrayBuffer may hold load), or a URL to download (absolute, or
 * relative to the page).
 */
export type CheckpointSource = ArrayBuffer | Uint8Array | Blob | URL | string;

/**
 * What setImage accepts: what `createImageBitmap` takes (an ImageBitmap, <img>, <canvas>, OffscreenCanvas,
 * <video>, VideoFrame, Blob) and ImageData. An ImageData is copied unless `transfer` is set.
 * (The DOM library's own name, so that the types also compile with TypeScript 4.7, whose DOM has no OffscreenCanvas.)
 */
export type ImageSource = ImageBitmapSource;

export interface LoadOptions {
  /** Omit to detect from the checkpoint's keys. */
  modelType?: ModelType;
  /** "auto" (default): WebGPU when an adapter is there, else CPU. */
  backend?: BackendChoice;
  /**
   * "f32" (default): the official model's precision, on every backend. "f16": half the GPU memory and,
   * on GPUs fast at it, faster; only on WebGPU with an adapter that has `shader-f16` (elsewhere the load
   * rejects, kind "no-webgpu"). Its outputs are not the official ones: masks agree on ~99.7% of pixels,
   * differing near their edges (BENCHMARKS.md, "f16 on wgpu"). "auto": f16 where the adapter has
   * `shader-f16`, else f32. The first model loaded on a client's WebGPU device fixes its precision; a
   * later load asking for the other one rejects (kind "other"): use another client.
   */
  precision?: PrecisionChoice;
  /** Keep downloaded weights in Cache Storage (default true) so a reload does not download again. */
  cache?: boolean;
  /** Cache Storage bucket name (default "sam-browser-weights"). */
  cacheName?: string;
  /**
   * Aborts the download (not the model build once it started); the promise then rejects with a
   * `SamError` whose `name` is "AbortError" and `kind` "aborted".
   */
  signal?: AbortSignal;
}

export interface ModelInfo {
  backend: Backend;
  /** One sentence: the backend, the adapter, and why it runs. */
  backendInfo: string;
  /**
   * Why this backend runs, in a few words without its name, e.g. "the WebGPU adapter is SwiftShader, a
   * software fallback" ("auto" skips software adapters), "no WebGPU adapter"; empty when it was asked for.
   */
  backendReason: string;
  /** The float type the model computes in (`LoadOptions.precision`). */
  precision: Precision;
  /** Threads that run the model: more than 1 on the threaded CPU module (cross-origin isolated pages, `SamClientOptions.threads`). */
  threads: number;
  /**
   * Whether the CPU backend runs the relaxed-SIMD build of the module (fused multiply-adds in its matrix
   * kernel; `SamClientOptions.relaxedSimd`). False on WebGPU.
   */
  relaxedSimd: boolean;
  modelType: string;
  /** Whether the weights came from Cache Storage (URL loads only). */
  fromCache: boolean;
  /** Checkpoint size in bytes. */
  bytes: number;
  downloadMs: number;
  buildMs: number;
}

export interface ImageInfo {
  width: number;
  height: number;
  /** Time the worker spent embedding, in milliseconds. */
  embedMs: number;
}

export interface SetImageOptions {
  /** Transfer the ImageData's buffer to the worker instead of copying it (the ImageData is emptied). */
  transfer?: boolean;
}

export interface Prompt {
  /** Clicks in original image pixels, [x, y]. */
  points?: [number, number][];
  /** One per point: 1 = positive (foreground), 0 = negative (background). */
  labels?: number[];
  /** [x0, y0, x1, y1] in original image pixels. */
  box?: [number, number, number, number];
  /** A previous low-res logit mask (256*256 floats), e.g. `lowResLogits[best]` of an earlier result. */
  maskInput?: Float32Array;
  /** true: three masks; false (default): one. */
  multimask?: boolean;
}

/** What a predict returns besides the prompt's answer; omit for everything (the default). */
export interface PredictOptions {
  /**
   * "all" (default): every mask of the prompt (3 with `multimask`). "best": only the mask of the
   * highest score, e.g. for a hover preview (`best` is then 0); a third of the work after the decoder.
   */
  masks?: "all" | "best";
  /** false: no low-res logits (`lowResLogits` is empty), for a result that is not refined later. Default true. */
  lowResLogits?: boolean;
}

export interface Prediction {
  width: number;
  height: number;
  /** One per mask: width*height bytes, 1 inside, 0 outside, row-major. */
  masks: Uint8Array[];
  /** Predicted IoU of each mask. */
  scores: number[];
  /** One per mask: 256*256 low-res logits, feed back as `maskInput` to refine (empty with `lowResLogits: false`). */
  lowResLogits: Float32Array[];
  /** Index of the mask with the highest score. */
  best: number;
  /** Time the worker spent decoding, in milliseconds. */
  decodeMs: number;
}

/**
 * What setPreviewCanvas takes: an OffscreenCanvas, from `canvas.transferControlToOffscreen()`, moved to the worker.
 * (Typed as the DOM's Transferable, so that the types also compile with TypeScript 4.7, whose DOM has no OffscreenCanvas.)
 */
export type PreviewCanvas = Transferable;

/** An object's colour for drawPreview: red, green, blue, integers in 0..255. */
export type PreviewColor = [number, number, number];

/** What drawPreview resolves to once the GPU has drawn the mask. */
export interface PreviewResult {
  /** Time the worker spent decoding and drawing (until the GPU finished), in milliseconds. */
  drawMs: number;
}

/** Options of the automatic mask generator; omitted fields take the official defaults. */
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

export interface GenerateCallOptions {
  /**
   * Aborting cancels the generation between two batches; the promise then rejects with a `SamError`
   * whose `name` is "AbortError" (as `fetch` rejects) and `kind` "aborted".
   */
  signal?: AbortSignal;
}

/** One SA-1B annotation (COCO RLE segmentation). */
export interface Sa1bAnnotation {
  id: number;
  segmentation: { size: [number, number]; counts: string };
  /** [x, y, w, h] */
  bbox: [number, number, number, number];
  area: number;
  predicted_iou: number | null;
  /** null where the official code gives NaN (an empty mask). */
  stability_score: number | null;
  /** [x, y, w, h] */
  crop_box: [number, number, number, number];
  point_coords: [number, number][];
}

/** An SA-1B JSON file. */
export interface Sa1bFile {
  image: { image_id: number; width: number; height: number; file_name: string };
  annotations: Sa1bAnnotation[];
}

export interface GenerateResult {
  /** The SA-1B JSON text exactly as the generator wrote it. */
  json: string;
  /** The same, parsed. */
  file: Sa1bFile;
  generateMs: number;
}

/** An SA-1B file decoded: its annotations and one mask (height*width bytes of 0/1) per annotation. */
export interface DecodedSa1b {
  file: Sa1bFile;
  masks: Uint8Array[];
}

export type ProgressStage = "download" | "load" | "embed" | "generate";

export interface ProgressEvent {
  stage: ProgressStage;
  /** Units done: bytes (download), tensors or bytes (load), batches (generate), 0/1 (embed). */
  loaded: number;
  /** Units in all; 0 when unknown (a download without Content-Length). */
  total: number;
  /** generate: the crop being processed (0-based) and the number of crops. */
  cropIndex?: number;
  cropsTotal?: number;
  /** download: whether the bytes come from Cache Storage. */
  fromCache?: boolean;
}

export interface BackendEvent {
  backend: Backend;
  backendInfo: string;
  /** As `ModelInfo.backendReason`. */
  backendReason: string;
  /** As `ModelInfo.precision`. */
  precision: Precision;
  modelType: string;
  /** Whether WebGPU was asked for ("auto" or "webgpu") but no adapter was there, so the CPU runs. */
  webgpuMissing: boolean;
  /** As `ModelInfo.threads`. */
  threads: number;
  /** As `ModelInfo.relaxedSimd`. */
  relaxedSimd: boolean;
}

export interface SamEvents {
  progress: ProgressEvent;
  backend: BackendEvent;
}

/**
 * Where the worker and the wasm module come from. Omit all of them in a plain page and in the bundlers
 * that follow `new Worker(new URL("./worker.js", import.meta.url))` (Vite 8, webpack 5): the worker
 * is `worker.js` next to the package's `index.js`, and the module `sam_wasm_bg.wasm` next to the worker.
 */
export interface SamClientOptions {
  /** URL of the package's worker.js, for setups that serve the package's files themselves (e.g. esbuild, Rollup). */
  workerUrl?: string | URL;
  /** Or a factory, e.g. `() => new Worker(new URL("sam-browser/worker.js", import.meta.url), { type: "module" })`. */
  worker?: () => Worker;
  /** URL of sam_wasm_bg.wasm (default: next to the worker script). */
  wasmUrl?: string | URL;
  /**
   * Run the relaxed-SIMD build of the module (its CPU matrix kernel with fused multiply-adds: about 10%
   * faster embeddings and 15% faster clicks where the processor has FMA) where the browser has relaxed
   * SIMD (Chrome/Edge 114+, Firefox 145+); default true. False always runs the plain WebAssembly SIMD build.
   * The relaxed .wasm is `sam_wasm_relaxed_bg.wasm`, next to the plain one (and in `threads/`).
   */
  relaxedSimd?: boolean;
  /** URL of sam_wasm_relaxed_bg.wasm when `wasmUrl` is given (without it, a custom `wasmUrl` runs the plain build). */
  relaxedWasmUrl?: string | URL;
  /**
   * CPU threads on a cross-origin isolated page (COOP `same-origin` + COEP `require-corp` or
   * `credentialless`): default `navigator.hardwareConcurrency`, at most 8; from 1 to 64. With more
   * than 1, a CPU load (backend "cpu", or "auto" without a WebGPU adapter) runs the threaded module
   * instead of the single-threaded one. Without isolation the CPU backend runs on one thread.
   */
  threads?: number;
  /**
   * URL of the threaded module's sam_wasm.js (default: threads/sam_wasm.js next to index.js, as in the package). Its
   * directory (sam_wasm.js, sam_wasm_bg.wasm, snippets/) is served as it is: bundlers must copy `sam-browser/threads/`
   * and pass its URL here. A module that does not start falls back to one thread, with a console warning.
   */
  threadsUrl?: string | URL;
}

/** Error kinds a call can reject with (`SamError.kind`). */
export type SamErrorKind =
  | "not-a-checkpoint"
  | "out-of-memory"
  | "no-webgpu"
  | "no-model"
  | "no-image"
  | "bad-prompt"
  | "download"
  /** Stopped through an `AbortSignal`; such a `SamError`'s `name` is "AbortError". */
  | "aborted"
  | "superseded"
  | "disposed"
  | "worker"
  | "other";
