// Messages between SamClient (page) and the worker. Internal to the package.
import type {
  BackendChoice,
  BackendEvent,
  GenerateOptions,
  ImageInfo,
  ModelInfo,
  ModelType,
  Prediction,
  PrecisionChoice,
  PredictOptions,
  PreviewCanvas,
  PreviewColor,
  PreviewResult,
  ProgressEvent,
  Prompt,
  SamErrorKind,
} from "./types.js";
import type { CocoMaskRecord, CocoSegmentation } from "./coco.js";
import type { MaskPolygon, PolygonOptions } from "./polygons.js";

export type CheckpointPayload =
  | { kind: "bytes"; bytes: Uint8Array }
  | { kind: "blob"; blob: Blob }
  | { kind: "url"; url: string; cache: boolean; cacheName: string };

export type ImagePayload =
  | { kind: "rgba"; data: Uint8Array; width: number; height: number }
  | { kind: "bitmap"; bitmap: ImageBitmap }
  | { kind: "blob"; blob: Blob };

/** Each request and the value its reply carries. */
export interface RequestMap {
  init: { args: { wasmUrl?: string; relaxedWasmUrl?: string; threadsUrl?: string; threads?: number; relaxedSimd?: boolean }; result: { webgpu: boolean } };
  load: {
    args: { source: CheckpointPayload; modelType?: ModelType; backend?: BackendChoice; precision?: PrecisionChoice };
    result: ModelInfo & { webgpuMissing: boolean };
  };
  setImage: { args: { image: ImagePayload }; result: ImageInfo };
  predict: { args: { prompt: Prompt; options?: PredictOptions }; result: Prediction };
  setPreviewCanvas: { args: { canvas: PreviewCanvas | null }; result: null };
  drawPreview: { args: { prompt: Prompt; color: PreviewColor }; result: PreviewResult };
  clearPreview: { args: Record<string, never>; result: null };
  generate: { args: { options: GenerateOptions }; result: { json: string; generateMs: number } };
  exportEmbedding: { args: Record<string, never>; result: { npy: Uint8Array; width: number; height: number } };
  importEmbedding: { args: { npy: Uint8Array; width: number; height: number }; result: null };
  clearImage: { args: Record<string, never>; result: null };
  encodeRle: { args: { masks: Uint8Array[]; height: number; width: number }; result: string[] };
  decodeSa1b: { args: { json: string }; result: { json: string; masks: Uint8Array[] } };
  maskToPolygons: { args: { masks: Uint8Array[]; height: number; width: number; options?: PolygonOptions }; result: MaskPolygon[][] };
  cocoRecords: { args: { masks: Uint8Array[]; height: number; width: number; polygons: boolean; options?: PolygonOptions }; result: CocoMaskRecord[] };
  cocoMasks: { args: { segmentations: CocoSegmentation[]; height: number; width: number }; result: Uint8Array[] };
  dispose: { args: Record<string, never>; result: null };
}

export type RequestType = keyof RequestMap;

export type Request = {
  [K in RequestType]: { kind: "request"; id: number; type: K; args: RequestMap[K]["args"] };
}[RequestType];

/** Cancels request `target` (a download or a generate). */
export interface CancelMessage {
  kind: "cancel";
  target: number;
}

export type ToWorker = Request | CancelMessage;

export interface ErrorPayload {
  message: string;
  kind: SamErrorKind;
  /** The wasm module trapped (panic, out of memory): this worker cannot be used any more. */
  fatal?: boolean;
}

export type FromWorker =
  | { kind: "result"; id: number; value: unknown }
  | { kind: "error"; id: number; error: ErrorPayload }
  | { kind: "progress"; id: number; data: ProgressEvent }
  | { kind: "backend"; id: number; data: BackendEvent };

/** The distinct ArrayBuffers under a set of views, for a transfer list. */
export function buffersOf(views: Iterable<ArrayBufferView | null | undefined>): ArrayBuffer[] {
  const set = new Set<ArrayBuffer>();
  for (const v of views) {
    if (v && v.buffer instanceof ArrayBuffer) set.add(v.buffer);
  }
  return [...set];
}
