// sam-browser: Segment Anything in the browser (Rust -> WebAssembly, WebGPU or CPU), in a Web Worker.
export { SamClient, SamError } from "./client.js";
// Named, not `export type *` (TypeScript >= 5.0): the published types work from TypeScript 4.7.
export type {
  Backend,
  BackendChoice,
  BackendEvent,
  CheckpointSource,
  DecodedSa1b,
  GenerateCallOptions,
  GenerateOptions,
  GenerateResult,
  ImageInfo,
  ImageSource,
  LoadOptions,
  ModelInfo,
  ModelType,
  Precision,
  PrecisionChoice,
  Prediction,
  PredictOptions,
  PreviewCanvas,
  PreviewColor,
  PreviewResult,
  ProgressEvent,
  ProgressStage,
  Prompt,
  Sa1bAnnotation,
  Sa1bFile,
  SamClientOptions,
  SamErrorKind,
  SamEvents,
  SetImageOptions,
} from "./types.js";
export { maskToImageData, maskBBox, maskArea, cutout } from "./masks.js";
export type { Rgba } from "./masks.js";
export { buildSa1bFile } from "./sa1b.js";
export type { Sa1bEncoder, Sa1bImageInput, Sa1bObjectInput } from "./sa1b.js";
export { polygonsToPath } from "./polygons.js";
export type { MaskPolygon, Point, PolygonOptions } from "./polygons.js";
export { buildCocoDataset, cocoDatasetMasks, parseCocoDataset, CocoFormatError, COCO_POLYGON_DEFAULTS, MAX_COCO_ANNOTATIONS } from "./coco.js";
export type { CocoAnnotation, CocoCategory, CocoCodec, CocoDataset, CocoExportOptions, CocoImage, CocoImageInput, CocoLoadedImage, CocoMaskRecord, CocoObjectInput, CocoRle, CocoSegmentation } from "./coco.js";
