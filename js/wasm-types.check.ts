// The wasm binding's TypeScript types (crates/sam-wasm: its typescript_custom_section, in the
// generated crates/sam-wasm/pkg/sam_wasm.d.ts) against the package's own (js/types.ts,
// js/polygons.ts, js/coco.ts), which are kept by hand: `npm run typecheck` fails when the two
// drift apart. Nothing here is exported or run; it is a compile-time check only.
import type * as Wasm from "sam-wasm";
import type * as Coco from "./coco.js";
import type * as Polygons from "./polygons.js";
import type * as Types from "./types.js";

/** `true` when A and B are assignable both ways (the same shape), else `false`. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

export const agree: [
  Same<Wasm.ModelTypeName, Types.ModelType>,
  Same<Wasm.BackendName, Types.Backend>,
  Same<NonNullable<Wasm.SegmenterOptions["backend"]>, Types.BackendChoice>,
  Same<Wasm.PrecisionName, Types.Precision>,
  Same<NonNullable<Wasm.SegmenterOptions["precision"]>, Types.PrecisionChoice>,
  Same<Wasm.PromptInput, Types.Prompt>,
  Same<Wasm.PredictOptions, Types.PredictOptions>,
  // The client adds the worker's decode time to the binding's result.
  Same<Wasm.PredictResult & { decodeMs: number }, Types.Prediction>,
  Same<Wasm.PolygonOptions, Polygons.PolygonOptions>,
  Same<Wasm.MaskPolygon, Polygons.MaskPolygon>,
  Same<Wasm.CocoMaskRecord, Coco.CocoMaskRecord>,
  Same<Wasm.GenerateOptions, Types.GenerateOptions>,
] = [true, true, true, true, true, true, true, true, true, true, true, true];
