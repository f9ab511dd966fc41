/// <reference lib="webworker" />
// The Web Worker that owns the wasm module and the model. The page talks to it through
// SamClient (client.ts); every model call runs here, one at a time, so the page stays responsive.
import type { GenerateProgress, Segmenter, SegmenterOptions } from "sam-wasm";
import { hasRelaxedSimd, Modules, threadCount } from "./modules.js";
import { buffersOf, type CheckpointPayload, type ErrorPayload, type FromWorker, type ImagePayload, type Request, type RequestMap, type RequestType, type ToWorker } from "./protocol.js";
import type { Prediction, Sa1bFile, SamErrorKind } from "./types.js";
import type { CocoMaskRecord } from "./coco.js";

declare const self: DedicatedWorkerGlobalScope;

let segmenter: Segmenter | null = null;
let wasmMemory: WebAssembly.Memory | null = null;
/** The wasm modules (modules.ts): set by init, instantiated on first use. */
let modules: Modules | null = null;
let webgpu = false;
/** Requests asked to stop: downloads and generations look here between steps. */
const cancelled = new Set<number>();
const downloads = new Map<number, AbortController>();
/** The last thing the wasm module printed with console.error (its panic hook writes panics there). */
let lastConsoleError = "";
let crashed = "";

const consoleError = console.error.bind(console);
console.error = (...args: unknown[]): void => {
  lastConsoleError = args.map((a) => (a instanceof Error ? a.message : String(a))).join(" ");
  consoleError(...args);
};

class WorkerError extends Error {
  constructor(
    message: string,
    readonly kind: SamErrorKind,
  ) {
    super(message);
  }
}

function post(msg: FromWorker, transfer: Transferable[] = []): void {
  const memBuf = wasmMemory?.buffer;
  self.postMessage(
    msg,
    transfer.filter((t) => t !== memBuf),
  );
}

function messageOf(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  if (typeof e === "string") return e;
  try {
    return JSON.stringify(e);
  } catch {
    return String(e);
  }
}

const MEMORY_RE = /out of memory|memory allocation|allocation failed|Maximum memory size|Memory\.grow|could not allocate|OutOfMemory|OOM\b|failed to grow/i;

/** Sorts an error into a kind the page can explain. `stage` says which call failed. */
function classify(e: unknown, stage: RequestType): ErrorPayload {
  if (e instanceof WorkerError) return { message: e.message, kind: e.kind };
  let message = messageOf(e);
  const name = e !== null && typeof e === "object" && "name" in e ? String((e as { name: unknown }).name) : "";
  if (name === "AbortError" || message === "cancelled" || message === "aborted") return { message: "cancelled", kind: "aborted" };
  // Refused before loading (sam_core::memory): nothing was allocated, the worker stays usable.
  if (name === "ModelTooLargeError") return { message, kind: "out-of-memory" };
  const isTrap = e instanceof WebAssembly.RuntimeError || /unreachable|RuntimeError/.test(message);
  if (isTrap) {
    // A Rust panic or abort: the module may be unusable now. The panic hook logged the reason.
    const detail = lastConsoleError && !lastConsoleError.includes(message) ? ` (${lastConsoleError})` : "";
    if (MEMORY_RE.test(message + detail) || !lastConsoleError) {
      crashed = "out of memory";
      return {
        message: `The model ran out of memory (${message}${detail}). Reload the page; try a smaller model (MobileSAM) or a smaller image.`,
        kind: "out-of-memory",
      };
    }
    crashed = message + detail;
    return { message: `The model crashed: ${message}${detail}. Reload the page.`, kind: "other" };
  }
  if (e instanceof RangeError || MEMORY_RE.test(message)) {
    return {
      message: `Out of memory: ${message}. Try a smaller model (MobileSAM) or a smaller image.`,
      kind: "out-of-memory",
    };
  }
  // The binding names each sam-core error kind (crates/sam-wasm/src/error.rs): the name, not the wording.
  if (name === "CheckpointError" || name === "ModelTypeError") return { message, kind: "not-a-checkpoint" };
  if (name === "PromptError") return { message, kind: "bad-prompt" };
  if (stage === "load") {
    // The precision asked for (crates/sam-wasm/src/backend.rs set_precision): f16 without a shader-f16
    // adapter, or a precision other than the one this worker's WebGPU device was fixed to.
    if (name === "NotSupportedError") return { message, kind: "no-webgpu" };
    if (name === "InvalidStateError") return { message, kind: "other" };
    if (/webgpu|adapter|navigator\.gpu/i.test(message)) return { message, kind: "no-webgpu" };
    if (/download|fetch|HTTP/i.test(message)) return { message, kind: "download" };
    message = message || "the file could not be read as a checkpoint";
    return { message, kind: "not-a-checkpoint" };
  }
  if (/no image|image is not set|set_image|setImage first/i.test(message)) return { message, kind: "no-image" };
  if (name === "NotSupportedError") return { message, kind: "no-webgpu" };
  if (stage === "predict") return { message, kind: "bad-prompt" };
  return { message, kind: "other" };
}

function needModules(): Modules {
  if (!modules) throw new WorkerError("The worker is not initialised: create the client with SamClient.create().", "worker");
  return modules;
}

function needModel(): Segmenter {
  if (crashed) throw new WorkerError(`The model is unusable after an earlier failure (${crashed}). Reload the page.`, "other");
  if (!segmenter) throw new WorkerError("No model is loaded: call load() first.", "no-model");
  return segmenter;
}

/** Why a download from another origin may fail where the same URL opens in a tab: CORS (and COEP). */
function crossOriginHint(url: string): string {
  if (new URL(url).origin === self.location.origin) return "";
  const coep = self.crossOriginIsolated ? "; this page is cross-origin isolated (COEP), so the response also needs CORS or Cross-Origin-Resource-Policy: cross-origin" : "";
  return ` (the file is on another origin: its server must send Access-Control-Allow-Origin${coep})`;
}

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

/**
 * The checkpoint as the model reads it: a Uint8Array given by the page, or a Blob read in slices by the
 * wasm module (FileReaderSync), never one buffer of the whole file (browsers refuse one past ~2 GiB).
 * A Cache Storage hit is the cached Response's Blob; a download streams into Cache Storage and is
 * then read back from it as a Blob; without Cache Storage (or when it refuses the file) the
 * downloaded chunks become a Blob.
 */
async function readCheckpoint(
  id: number,
  source: CheckpointPayload,
): Promise<{ data: Uint8Array | Blob; bytes: number; fromCache: boolean; downloadMs: number }> {
  if (source.kind === "bytes") return { data: source.bytes, bytes: source.bytes.byteLength, fromCache: false, downloadMs: 0 };
  if (source.kind === "blob") return { data: source.blob, bytes: source.blob.size, fromCache: false, downloadMs: 0 };
  const t0 = performance.now();
  const progress = (loaded: number, total: number, fromCache: boolean): void =>
    post({ kind: "progress", id, data: { stage: "download", loaded, total, fromCache } });
  const cache = source.cache && typeof caches !== "undefined" ? await caches.open(source.cacheName).catch(() => null) : null;
  if (cache) {
    const hit = await cache.match(source.url);
    if (hit) {
      const blob = await hit.blob();
      progress(blob.size, blob.size, true);
      return { data: blob, bytes: blob.size, fromCache: true, downloadMs: performance.now() - t0 };
    }
  }
  const controller = new AbortController();
  downloads.set(id, controller);
  const failed = (e: unknown): WorkerError =>
    controller.signal.aborted
      ? new WorkerError("aborted", "aborted")
      : new WorkerError(`Download of ${source.url} failed: ${messageOf(e)}${crossOriginHint(source.url)}`, "download");
  try {
    let response: Response;
    try {
      response = await fetch(source.url, { signal: controller.signal });
    } catch (e) {
      throw failed(e);
    }
    if (!response.ok) throw new WorkerError(`Download of ${source.url} failed: HTTP ${response.status} ${response.statusText}`, "download");
    const total = Number(response.headers.get("content-length") ?? 0) || 0;
    let loaded = 0;
    let lastPost = 0;
    const count = (chunk: Uint8Array): void => {
      loaded += chunk.byteLength;
      const now = performance.now();
      if (now - lastPost > 50) {
        lastPost = now;
        progress(loaded, total, false);
      }
    };
    if (cache && response.body) {
      // Stream into Cache Storage (the file never is in memory), then read it back from there as a Blob.
      const counted = response.body.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, out) {
            count(chunk);
            out.enqueue(chunk);
          },
        }),
      );
      const headers = { "content-type": "application/octet-stream" };
      let cached: Response | undefined;
      try {
        await cache.put(source.url, new Response(counted, { headers }));
        cached = await cache.match(source.url);
      } catch (e) {
        if (controller.signal.aborted) throw failed(e);
        // Quota exceeded or no storage: download again, into memory.
        console.warn(`sam-browser: could not cache ${source.url}: ${messageOf(e)}`);
      }
      if (cached) {
        const blob = await cached.blob();
        progress(blob.size, blob.size, false);
        return { data: blob, bytes: blob.size, fromCache: false, downloadMs: performance.now() - t0 };
      }
      try {
        response = await fetch(source.url, { signal: controller.signal });
      } catch (e) {
        throw failed(e);
      }
      loaded = 0;
    }
    const chunks: Uint8Array<ArrayBuffer>[] = [];
    try {
      const reader = response.body?.getReader();
      if (!reader) chunks.push(new Uint8Array(await response.arrayBuffer()));
      else {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          chunks.push(value as Uint8Array<ArrayBuffer>);
          count(value);
        }
      }
    } catch (e) {
      throw failed(e);
    }
    // A Blob of the chunks: no single buffer of the whole file (the browser may keep it on disk).
    const blob = new Blob(chunks, { type: "application/octet-stream" });
    progress(blob.size, blob.size, false);
    return { data: blob, bytes: blob.size, fromCache: false, downloadMs: performance.now() - t0 };
  } finally {
    downloads.delete(id);
  }
}

async function toRgba(image: ImagePayload): Promise<{ data: Uint8Array; width: number; height: number }> {
  if (image.kind === "rgba") return image;
  const bitmap =
    image.kind === "bitmap"
      ? image.bitmap
      : await createImageBitmap(image.blob, { premultiplyAlpha: "none", colorSpaceConversion: "none" });
  const { width, height } = bitmap;
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  if (!ctx) throw new WorkerError("OffscreenCanvas 2d context is not available", "other");
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const data = ctx.getImageData(0, 0, width, height).data;
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width, height };
}

type Handler<K extends RequestType> = (id: number, args: RequestMap[K]["args"]) => Promise<{ value: RequestMap[K]["result"]; transfer?: Transferable[] }>;

const handlers: { [K in RequestType]: Handler<K> } = {
  async init(_id, { wasmUrl, relaxedWasmUrl, threadsUrl, threads, relaxedSimd }) {
    if (!modules) {
      // No module is downloaded yet: the first load picks the one that fits its backend.
      webgpu = await navigator.gpu?.requestAdapter().then((a) => a !== null, () => false) ?? false;
      modules = new Modules(
        {
          wasmUrl,
          relaxedWasmUrl,
          threadsUrl,
          threads: threadCount(threads, navigator.hardwareConcurrency),
          relaxedSimd: (relaxedSimd ?? true) && hasRelaxedSimd(),
        },
        webgpu,
      );
    }
    return { value: { webgpu } };
  },

  async load(id, { source, modelType, backend, precision }) {
    if (crashed) throw new WorkerError(`The model is unusable after an earlier failure (${crashed}). Reload the page.`, "other");
    const { data, bytes, fromCache, downloadMs } = await readCheckpoint(id, source);
    const t0 = performance.now();
    const options: SegmenterOptions = {
      backend: backend ?? "auto",
      onProgress: (loaded: number, total: number) => post({ kind: "progress", id, data: { stage: "load", loaded, total } }),
    };
    if (modelType) options.modelType = modelType;
    if (precision) options.precision = precision;
    const module = await needModules().forBackend(backend ?? "auto");
    wasmMemory = module.memory;
    applyMemoryHeadroom(module.wasm, module.memory);
    // The new model is built next to the old one, which is freed only once the new one exists: a wrong
    // file leaves the previous model (and its image) usable. Peak memory is both models for a moment.
    const built = await module.wasm.Segmenter.create(data, options);
    segmenter?.free();
    segmenter = built;
    const buildMs = performance.now() - t0;
    const webgpuMissing = (backend ?? "auto") === "auto" && built.backend === "cpu" && !webgpu;
    const backendReason = built.backendReason;
    const threads = built.backend === "cpu" ? module.threads : 1;
    const relaxedSimd = built.backend === "cpu" && module.relaxedSimd;
    const where = [threads > 1 ? `on ${threads} threads` : "", relaxedSimd ? "relaxed SIMD" : ""].filter((w) => w !== "");
    const backendInfo = where.length > 0 ? `${built.backendInfo}, ${where.join(", ")}` : built.backendInfo;
    post({
      kind: "backend",
      id,
      data: { backend: built.backend, backendInfo, backendReason, precision: built.precision, modelType: built.modelType, webgpuMissing, threads, relaxedSimd },
    });
    return {
      value: {
        backend: built.backend,
        backendInfo,
        backendReason,
        precision: built.precision,
        threads,
        relaxedSimd,
        modelType: built.modelType,
        fromCache,
        bytes,
        downloadMs,
        buildMs,
        webgpuMissing,
      },
    };
  },

  async setImage(id, { image }) {
    const sam = needModel();
    const { data, width, height } = await toRgba(image);
    post({ kind: "progress", id, data: { stage: "embed", loaded: 0, total: 1 } });
    const t0 = performance.now();
    await sam.setImage(data, width, height);
    const embedMs = performance.now() - t0;
    post({ kind: "progress", id, data: { stage: "embed", loaded: 1, total: 1 } });
    return { value: { width, height, embedMs } };
  },

  async predict(_id, { prompt, options }) {
    const sam = needModel();
    const t0 = performance.now();
    const r = await sam.predict(prompt, options ?? null);
    const value: Prediction = {
      width: r.width,
      height: r.height,
      masks: r.masks,
      scores: Array.from(r.scores),
      lowResLogits: r.lowResLogits,
      best: r.best,
      decodeMs: performance.now() - t0,
    };
    return { value, transfer: buffersOf([...r.masks, ...r.lowResLogits]) };
  },

  async setPreviewCanvas(_id, { canvas }) {
    needModel().setPreviewCanvas(canvas as OffscreenCanvas | null);
    return { value: null };
  },

  async drawPreview(_id, { prompt, color }) {
    const sam = needModel();
    const t0 = performance.now();
    await sam.drawPreview(prompt, color);
    return { value: { drawMs: performance.now() - t0 } };
  },

  async clearPreview() {
    await needModel().clearPreview();
    return { value: null };
  },

  async generate(id, { options }) {
    const sam = needModel();
    const t0 = performance.now();
    const json = await sam.generate(options, async (p: GenerateProgress) => {
      post({
        kind: "progress",
        id,
        data: { stage: "generate", loaded: p.batchesDone, total: p.batchesTotal, cropIndex: p.cropIndex, cropsTotal: p.cropsTotal },
      });
      // Let a "cancel" message in before the next batch.
      await yieldToEventLoop();
      return !cancelled.has(id);
    });
    return { value: { json, generateMs: performance.now() - t0 } };
  },

  async exportEmbedding() {
    const sam = needModel();
    const npy = await sam.exportEmbedding();
    return { value: { npy, width: sam.imageWidth, height: sam.imageHeight }, transfer: buffersOf([npy]) };
  },

  async importEmbedding(_id, { npy, width, height }) {
    needModel().importEmbedding(npy, width, height);
    return { value: null };
  },

  async clearImage() {
    segmenter?.clearImage();
    return { value: null };
  },

  async encodeRle(_id, { masks, height, width }) {
    const { wasm } = await needModules().any();
    return { value: masks.map((m) => wasm.encodeCocoRle(m, height, width)) };
  },

  async decodeSa1b(_id, { json }) {
    const { wasm } = await needModules().any();
    const { decodeCocoRle } = wasm;
    const normalized = wasm.normalizeSa1b(json);
    const file = JSON.parse(normalized) as Sa1bFile;
    const masks = file.annotations.map((a) => decodeCocoRle(a.segmentation.counts, a.segmentation.size[0], a.segmentation.size[1]));
    return { value: { json: normalized, masks }, transfer: buffersOf(masks) };
  },

  async maskToPolygons(_id, { masks, height, width, options }) {
    const { wasm } = await needModules().any();
    return { value: masks.map((m) => wasm.maskToPolygons(m, height, width, options)) };
  },

  async cocoRecords(_id, { masks, height, width, polygons, options }) {
    const { wasm } = await needModules().any();
    return { value: masks.map((m) => wasm.cocoMaskRecord(m, height, width, polygons, options) as CocoMaskRecord) };
  },

  async cocoMasks(_id, { segmentations, height, width }) {
    const { wasm } = await needModules().any();
    const masks = segmentations.map((s) => (Array.isArray(s) ? wasm.cocoPolygonsToMask(s, height, width) : wasm.decodeCocoRle(s.counts, s.size[0], s.size[1])));
    return { value: masks, transfer: buffersOf(masks) };
  },

  async dispose() {
    segmenter?.free();
    segmenter = null;
    return { value: null };
  },
};

/**
 * Test hook: `self.__samTrapNext = "<request type>"` (set in this worker by tests/e2e/reliability.spec.ts
 * through Playwright's `worker.evaluate`) makes the next call of that type fail as a trap of the wasm module
 * does (a `WebAssembly.RuntimeError`), once. Nothing in the page or the package sets it.
 */
function trapIfArmed(type: RequestType): void {
  const hook = self as unknown as { __samTrapNext?: string };
  if (hook.__samTrapNext !== type) return;
  delete hook.__samTrapNext;
  throw new WebAssembly.RuntimeError("unreachable (trap forced by the test hook __samTrapNext)");
}

/**
 * Test hook: `self.__samMemoryHeadroom = bytes` (set by tests/e2e/memory.spec.ts through Playwright's
 * `worker.evaluate`) makes the next loads on the CPU backend check the model against that many bytes above
 * the wasm memory grown so far, in place of wasm32's 4 GiB (the binding's `setMemoryLimit`): the real
 * estimate of the real file, against a smaller heap. Nothing in the page or the package sets it.
 */
function applyMemoryHeadroom(wasm: { setMemoryLimit(bytes?: number | null): void }, memory: WebAssembly.Memory | null): void {
  const headroom = (self as unknown as { __samMemoryHeadroom?: number }).__samMemoryHeadroom;
  if (headroom === undefined || !memory) return;
  wasm.setMemoryLimit(memory.buffer.byteLength + headroom);
}

/**
 * Benchmark hook: `self.__samWasmMemoryBytes()` (read by tests/e2e/big.bench.ts through `worker.evaluate`)
 * is the byte length of the wasm module's linear memory, which never shrinks: its peak so far.
 */
(self as unknown as { __samWasmMemoryBytes?: () => number }).__samWasmMemoryBytes = () => wasmMemory?.buffer.byteLength ?? 0;

/** Calls that touch the model run one at a time, in order; the pure helpers do not wait. */
const QUEUED: ReadonlySet<RequestType> = new Set<RequestType>(["load", "setImage", "predict", "setPreviewCanvas", "drawPreview", "clearPreview", "generate", "exportEmbedding", "importEmbedding", "clearImage", "dispose"]);
let queue: Promise<void> = Promise.resolve();

async function run(req: Request): Promise<void> {
  try {
    const handler = handlers[req.type] as Handler<typeof req.type>;
    if (cancelled.has(req.id)) throw new WorkerError("aborted", "aborted");
    lastConsoleError = "";
    trapIfArmed(req.type);
    const { value, transfer } = await handler(req.id, req.args);
    post({ kind: "result", id: req.id, value }, transfer);
  } catch (e) {
    const error = classify(e, req.type);
    if (crashed) error.fatal = true;
    post({ kind: "error", id: req.id, error });
  } finally {
    cancelled.delete(req.id);
  }
}

self.onmessage = (ev: MessageEvent<ToWorker>) => {
  const msg = ev.data;
  if (msg.kind === "cancel") {
    cancelled.add(msg.target);
    downloads.get(msg.target)?.abort();
    return;
  }
  if (QUEUED.has(msg.type)) queue = queue.then(() => run(msg));
  else void run(msg);
};
