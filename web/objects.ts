// The demo's objects: their types, colours, history copies and prompts. No DOM (unit-tested under node).
import type { Prompt, Sa1bAnnotation } from "../js/types.js";
import type { Session } from "./sessions.js";

/** A box prompt [x0, y0, x1, y1] in image pixels (also a mask's cached bounding box [x, y, w, h]). */
export type Box = [number, number, number, number];

/** A click in image pixels; label 1 adds, 0 removes. */
export interface Point {
  x: number;
  y: number;
  label: 0 | 1;
}

/** One mask of a multimask prediction. */
export interface Choice {
  mask: Uint8Array;
  score: number;
  lowRes: Float32Array | null;
}

export interface SamObject {
  id: number;
  name: string;
  color: [number, number, number];
  source: "prompt" | "auto" | "file";
  points: Point[];
  box: Box | null;
  /** The chosen mask (image size) and its score and low-res logits (fed back as mask input). */
  mask: Uint8Array | null;
  score: number | null;
  lowRes: Float32Array | null;
  /** The masks of the last multimask prediction, to choose from. */
  choices: Choice[];
  chosen: number;
  /** Bumped on every prompt change; a prediction result applies only to the version it was asked for. */
  version: number;
  /** For "auto"/"file" objects: the annotation they came from. */
  annotation: Sa1bAnnotation | null;
  /** Cached bounding box of the mask [x, y, w, h]. */
  bbox: Box | null;
  /** COCO category name. */
  category: string;
}

/** An undo/redo step: the objects (masks shared, never written in place), selection and next id. */
export interface Snapshot {
  objects: SamObject[];
  selectedId: number;
  nextObjectId: number;
}

export type ModelState = "none" | "loading" | "ready" | "error";
export type ImageState = "none" | "decoding" | "waiting-for-model" | "embedding" | "ready" | "error" | "display-only";

/** The category of objects nobody named. */
export const DEFAULT_CATEGORY = "object";
/** Undo steps kept: each keeps its masks alive (a few MB for a large image). */
export const HISTORY_LIMIT = 40;

/** Distinct hues (golden angle), fixed saturation/lightness, as RGB. */
export function colorFor(i: number): [number, number, number] {
  const h = ((i * 137.508 + 200) % 360) / 360;
  const s = 0.75;
  const l = 0.5;
  const f = (n: number): number => {
    const k = (n + h * 12) % 12;
    const a = s * Math.min(l, 1 - l);
    return Math.round(255 * (l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [f(0), f(8), f(4)];
}

/** A copy for the history: masks and logits are never written in place, so they are shared, not copied. */
export function cloneObject(o: SamObject): SamObject {
  return { ...o, points: o.points.map((p) => ({ ...p })), box: o.box ? [...o.box] : null, choices: [...o.choices] };
}

/**
 * The prompt for an object's points and box, as the official predictor is used: one click alone gives
 * three masks (ambiguity), the best is chosen; more points or a box give one mask, with the previous
 * chosen low-res mask fed back as mask input when there is one (refinement).
 */
export function promptFor(points: readonly Point[], box: Box | null, lowRes: Float32Array | null): Prompt {
  const prompt: Prompt = {};
  if (points.length > 0) {
    prompt.points = points.map((p) => [p.x, p.y]);
    prompt.labels = points.map((p) => p.label);
  }
  if (box) prompt.box = box;
  prompt.multimask = points.length === 1 && !box && !lowRes;
  if (lowRes) prompt.maskInput = lowRes;
  return prompt;
}

/** The masks and logits a session holds, in its objects and its undo/redo snapshots (shared ones repeat). */
export function* sessionBuffers(s: Session<SamObject, Snapshot>): Generator<ArrayBufferView | null> {
  for (const objects of [s.objects, ...s.undo.map((u) => u.objects), ...s.redo.map((r) => r.objects)])
    for (const o of objects) {
      yield o.mask;
      yield o.lowRes;
      for (const c of o.choices) yield* [c.mask, c.lowRes];
    }
}
