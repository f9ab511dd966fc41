// The API of the wasm module built from crates/sam-wasm by
//   wasm-pack build crates/sam-wasm --release --target web --out-dir pkg   (=> crates/sam-wasm/pkg/)
// Files there: sam_wasm.js (ES module), sam_wasm.d.ts, sam_wasm_bg.wasm.
// This is the contract; the generated sam_wasm.d.ts will declare the same names.

/** Loads the wasm module. Call once (in the Web Worker) before anything else. */
export default function init(
  module_or_path?: { module_or_path: RequestInfo | URL | Response | BufferSource | WebAssembly.Module } | RequestInfo | URL,
): Promise<unknown>;

export type ModelTypeName = "vit_h" | "vit_l" | "vit_b" | "mobile_sam";
export type BackendName = "webgpu" | "cpu";

export interface SegmenterOptions {
  /** Omit to detect from the checkpoint's keys; naming a type the file does not hold is an error. */
  modelType?: ModelTypeName;
  /** "auto" (default): WebGPU when navigator.gpu gives an adapter, else CPU. "webgpu": fail without an adapter. "cpu": never touch the GPU. */
  backend?: "auto" | "webgpu" | "cpu";
  /** Called while tensors load: (loaded, total). */
  onProgress?: (loaded: number, total: number) => void;
}

export interface PromptInput {
  /** Clicks in ORIGINAL image pixels, [x, y]. */
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

export interface PredictResult {
  /** Image size. */
  width: number;
  height: number;
  /** One per mask: width*height bytes, 1 inside the mask, 0 outside, row-major. */
  masks: Uint8Array[];
  /** Predicted IoU of each mask. */
  scores: number[];
  /** One per mask: 256*256 low-res logits, feed back as maskInput to refine. */
  lowResLogits: Float32Array[];
  /** Index of the mask with the highest score. */
  best: number;
}

/** Options of the automatic mask generator; omitted fields take the official defaults
 * (pointsPerSide 32, pointsPerBatch 16 in the browser, predIouThresh 0.88, stabilityScoreThresh 0.95,
 * stabilityScoreOffset 1, boxNmsThresh 0.7, cropNLayers 0, cropNmsThresh 0.7,
 * cropOverlapRatio 512/1500, cropNPointsDownscaleFactor 1, minMaskRegionArea 0). */
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

export class Segmenter {
  private constructor();
  free(): void;
  /** Builds the model from checkpoint bytes (official .pth, mobile_sam.pt or .safetensors).
   * Rejects with an Error whose message says what is wrong (not a checkpoint, truncated, no WebGPU adapter...). */
  static create(checkpoint: Uint8Array, options?: SegmenterOptions | null): Promise<Segmenter>;
  /** "webgpu" or "cpu". */
  readonly backend: BackendName;
  /** e.g. "vit_b", "mobile_sam" (detected or named). */
  readonly modelType: string;
  /** Human-readable description of the adapter / backend. */
  readonly backendInfo: string;
  /** Embeds an image (RGBA bytes, width*height*4, e.g. ImageData.data). The heavy step. */
  setImage(rgba: Uint8Array | Uint8ClampedArray, width: number, height: number): Promise<void>;
  readonly hasImage: boolean;
  readonly imageWidth: number;
  readonly imageHeight: number;
  /** Decodes a prompt on the current image (fast). Rejects if no image is set or the prompt is invalid. */
  predict(prompt: PromptInput): Promise<PredictResult>;
  /** "Segment everything". onProgress is called before each crop and after each batch; return false
   * (or a Promise of false) to cancel: the call then rejects with an Error whose message is "cancelled".
   * It may return a Promise: the generator awaits it, which lets a worker handle messages between batches.
   * Resolves to an SA-1B JSON string: {"image": {image_id, width, height, file_name}, "annotations": [
   *   {id, segmentation: {size: [h, w], counts: "<COCO RLE string>"}, bbox: [x, y, w, h], area,
   *    predicted_iou, stability_score, crop_box: [x, y, w, h], point_coords: [[x, y]]}, ...], ...}. */
  generate(
    options?: GenerateOptions | null,
    onProgress?: ((p: GenerateProgress) => boolean | void | Promise<boolean | void>) | null,
  ): Promise<string>;
  /** The current image's embedding as .npy bytes ([1, 256, 64, 64] float32, numpy format). */
  exportEmbedding(): Promise<Uint8Array>;
  /** Sets the current image from an embedding (.npy bytes) of an image of width x height, without the image itself
   * (generate() then needs setImage). */
  importEmbedding(npy: Uint8Array, width: number, height: number): void;
  /** Drops the current image and its embedding. */
  clearImage(): void;
}

/** COCO RLE (pycocotools compressed counts string) of a row-major 0/1 mask of height x width. */
export function encodeCocoRle(mask: Uint8Array, height: number, width: number): string;
/** Row-major 0/1 bytes (height*width) of a COCO RLE counts string. Throws on malformed RLE. */
export function decodeCocoRle(counts: string, height: number, width: number): Uint8Array;
/** Validates an SA-1B JSON file (or a bare annotation list) and returns it normalised as an SA-1B JSON string
 * with compressed counts; throws with a readable message on malformed JSON or RLE. */
export function normalizeSa1b(json: string): string;
/** Whether navigator.gpu gives an adapter in this context. */
export function webgpuAvailable(): Promise<boolean>;
