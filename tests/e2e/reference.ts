// Reads the reference kit (shared/reference): safetensors tensors, the manifest, test images as PNG,
// and COCO RLE strings. Used by the end-to-end tests to compare the page's masks with the official outputs.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { PNG } from "pngjs";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** The kit's manifests, `<tag>_manifest.json`: their tags, sorted. */
function manifestTags(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith("_manifest.json"))
    .map((f) => f.slice(0, -"_manifest.json".length))
    .sort();
}

/** $SAM_REFERENCE_DIR, else ../shared/reference beside the clone, else /work/shared/reference: the first holding a manifest. */
export function referenceDir(): string {
  const candidates = [process.env.SAM_REFERENCE_DIR, join(repoRoot, "../shared/reference"), "/work/shared/reference"];
  for (const c of candidates) if (c && manifestTags(c).length > 0) return resolve(c);
  throw new Error(`reference kit not found (tried ${candidates.filter(Boolean).join(", ")}); set SAM_REFERENCE_DIR`);
}

/** The tags used when $SAM_REFERENCE_TAGS is unset and the kit holds no manifest. */
export const DEFAULT_TAGS = "tiny_seed0,mobile_sam_seed0";

/**
 * The kit's tags, any seed (as sam-core's tests/common/mod.rs reads them): $SAM_REFERENCE_TAGS
 * (comma-separated), else every `<tag>_manifest.json` of the kit, else DEFAULT_TAGS.
 */
export function referenceTags(dir: string): string[] {
  const env = process.env.SAM_REFERENCE_TAGS;
  if (env !== undefined) return env.split(",").map((t) => t.trim()).filter((t) => t.length > 0);
  const found = manifestTags(dir);
  return found.length > 0 ? found : DEFAULT_TAGS.split(",");
}

/** The tag of referenceTags(dir) whose manifest's `config` is `config` (e.g. "tiny_seed0" for "tiny"). */
export function tagFor(dir: string, config: "tiny" | "mobile_sam"): string {
  const tags = referenceTags(dir);
  for (const tag of tags) {
    const m = manifest(dir, tag);
    if (m.tag !== tag) throw new Error(`${tag}_manifest.json says its tag is ${m.tag}`);
    if (m.config === config) return tag;
  }
  throw new Error(`no ${config} tag among the reference tags ${tags.join(", ")} (SAM_REFERENCE_TAGS)`);
}

export interface TensorInfo {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** A safetensors file: 8-byte little-endian header length, JSON header, then the raw data. */
export class SafeTensors {
  readonly header: Record<string, TensorInfo>;
  private readonly bytes: Buffer;
  private readonly dataStart: number;

  constructor(path: string) {
    this.bytes = readFileSync(path);
    const n = Number(this.bytes.readBigUInt64LE(0));
    const json = JSON.parse(this.bytes.subarray(8, 8 + n).toString("utf8")) as Record<string, TensorInfo | Record<string, string>>;
    delete json["__metadata__"];
    this.header = json as Record<string, TensorInfo>;
    this.dataStart = 8 + n;
  }

  info(name: string): TensorInfo {
    const t = this.header[name];
    if (!t) throw new Error(`tensor ${name} not in file`);
    return t;
  }

  raw(name: string): Uint8Array {
    const t = this.info(name);
    const [a, b] = t.data_offsets;
    return new Uint8Array(this.bytes.buffer, this.bytes.byteOffset + this.dataStart + a, b - a);
  }

  u8(name: string): Uint8Array {
    const t = this.info(name);
    if (t.dtype !== "U8" && t.dtype !== "BOOL") throw new Error(`${name} is ${t.dtype}, not U8/BOOL`);
    return this.raw(name).slice();
  }

  f32(name: string): Float32Array {
    const t = this.info(name);
    if (t.dtype !== "F32") throw new Error(`${name} is ${t.dtype}, not F32`);
    const r = this.raw(name).slice();
    return new Float32Array(r.buffer, r.byteOffset, r.byteLength / 4);
  }
}

/** An HWC uint8 RGB image tensor encoded as a PNG (lossless: the page gets the exact pixels). */
export function rgbTensorToPng(st: SafeTensors, name: string): { png: Buffer; width: number; height: number } {
  const t = st.info(name);
  const [h, w, c] = t.shape;
  if (h === undefined || w === undefined || c !== 3) throw new Error(`${name}: expected HWC RGB, got ${t.shape.join("x")}`);
  const rgb = st.u8(name);
  const png = new PNG({ width: w, height: h, colorType: 6 });
  for (let i = 0, j = 0; i < w * h; i++, j += 3) {
    png.data[i * 4] = rgb[j] ?? 0;
    png.data[i * 4 + 1] = rgb[j + 1] ?? 0;
    png.data[i * 4 + 2] = rgb[j + 2] ?? 0;
    png.data[i * 4 + 3] = 255;
  }
  return { png: PNG.sync.write(png), width: w, height: h };
}

/** Statistics of a case's reference logits: `n_ambiguous_1e2` counts the pixels whose logit is within 1e-2 of 0. */
export interface LogitStats {
  frac_positive: number;
  mean_abs: number;
  max_abs: number;
  n_ambiguous_1e3: number;
  n_ambiguous_1e2: number;
}

export interface PredictorCase {
  name: string;
  image: string;
  inputs: {
    point_coords?: [number, number][];
    point_labels?: number[];
    box?: [number, number, number, number];
    multimask_output: boolean;
  };
  outputs: { masks: string; iou_predictions: string; low_res_masks: string };
  full_res_logit_stats: LogitStats;
}

export interface AmgCase {
  name: string;
  image: string;
  settings: Record<string, number>;
  files: Record<string, string>;
  num_masks: number;
}

export interface Manifest {
  tag: string;
  config: string;
  images: Record<string, { orig_size: [number, number]; input_size: [number, number] }>;
  predictor_cases: PredictorCase[];
  amg_cases: AmgCase[];
  tolerances: { suggested: { embedding_atol: number; low_res_logits_atol: number; full_res_logits_atol: number; iou_atol: number } };
}

export function manifest(dir: string, tag: string): Manifest {
  return JSON.parse(readFileSync(join(dir, `${tag}_manifest.json`), "utf8")) as Manifest;
}

export function predictorCase(m: Manifest, name: string): PredictorCase {
  const c = m.predictor_cases.find((x) => x.name === name);
  if (!c) throw new Error(`predictor case ${name} not in manifest`);
  return c;
}

/** Decodes a pycocotools compressed counts string into row-major 0/1 bytes (COCO RLE is column-major). */
export function decodeCocoRle(counts: string, h: number, w: number): Uint8Array {
  const runs: number[] = [];
  let p = 0;
  while (p < counts.length) {
    let x = 0;
    let k = 0;
    let more = true;
    while (more) {
      const c = counts.charCodeAt(p) - 48;
      x |= (c & 0x1f) << (5 * k);
      more = (c & 0x20) !== 0;
      p++;
      k++;
      if (!more && c & 0x10) x |= -1 << (5 * k);
    }
    if (runs.length > 2) x += runs[runs.length - 2] ?? 0;
    runs.push(x);
  }
  const out = new Uint8Array(h * w);
  let idx = 0;
  let v = 0;
  for (const r of runs) {
    for (let i = 0; i < r; i++, idx++) {
      if (v) {
        const col = Math.floor(idx / h);
        const row = idx % h;
        out[row * w + col] = 1;
      }
    }
    v ^= 1;
  }
  return out;
}

export function maskIou(a: Uint8Array, b: Uint8Array): number {
  let inter = 0;
  let union = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] ? 1 : 0;
    const y = b[i] ? 1 : 0;
    inter += x & y;
    union += x | y;
  }
  return union === 0 ? 1 : inter / union;
}
