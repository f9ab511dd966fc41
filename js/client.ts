// SamClient: the page side of sam-browser. Every call is a message to the worker (worker.ts).
import type { CocoMaskRecord, CocoSegmentation } from "./coco.js";
import type { MaskPolygon, PolygonOptions } from "./polygons.js";
import { buffersOf, type FromWorker, type ImagePayload, type RequestMap, type RequestType, type ToWorker } from "./protocol.js";
import type {
  DecodedSa1b,
  GenerateCallOptions,
  GenerateOptions,
  GenerateResult,
  ImageInfo,
  ImageSource,
  LoadOptions,
  ModelInfo,
  Prediction,
  PredictOptions,
  PreviewCanvas,
  PreviewColor,
  PreviewResult,
  Prompt,
  Sa1bFile,
  SamClientOptions,
  SamErrorKind,
  SamEvents,
  SetImageOptions,
  CheckpointSource,
} from "./types.js";

/**
 * The error every SamClient call rejects with. Its `name` is "SamError", except for a call stopped
 * through its `AbortSignal` (kind "aborted"): then it is "AbortError", as `fetch` gives, so
 * `e.name === "AbortError"` checks work unchanged (and `e instanceof SamError` still holds).
 */
export class SamError extends Error {
  override name: "SamError" | "AbortError";
  constructor(
    message: string,
    readonly kind: SamErrorKind,
    /** The worker's wasm module trapped (a panic or out of memory): dispose this client and create a new one. */
    readonly fatal = false,
  ) {
    super(message);
    this.name = kind === "aborted" ? "AbortError" : "SamError";
  }
}

type Listener<T> = (event: T) => void;

/** The prompt to send, its mask input copied (the copy is transferred: callers usually keep theirs for the next refinement). */
function withCopiedMaskInput(prompt: Prompt): Prompt {
  return prompt.maskInput ? { ...prompt, maskInput: prompt.maskInput.slice() } : prompt;
}

/** The threaded module's JS in the package, relative to index.js (served as is: see SamClientOptions.threadsUrl). */
const THREADS_JS = "threads/sam_wasm.js";

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: SamError) => void;
  type: RequestType;
}

/** A queued "latest wins" request (a predict or a preview) not yet sent to the worker. */
interface Waiting {
  send: () => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: SamError) => void;
}

interface Channel {
  busy: boolean;
  waiting: Waiting | null;
}

export class SamClient {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners: { [K in keyof SamEvents]: Set<Listener<SamEvents[K]>> } = {
    progress: new Set(),
    backend: new Set(),
  };
  private readonly channels = new Map<string, Channel>();
  private disposed = false;
  /** Whether the browser gives a WebGPU adapter (in the worker). */
  webgpuAvailable = false;
  /** The loaded model, once load() resolved. */
  model: ModelInfo | null = null;
  /** The current image, once setImage() resolved. */
  image: ImageInfo | null = null;

  private constructor(worker: Worker) {
    this.worker = worker;
    worker.onmessage = (ev: MessageEvent<FromWorker>) => this.onMessage(ev.data);
    worker.onerror = (ev: ErrorEvent) => {
      ev.preventDefault();
      this.failAll(new SamError(`The worker failed: ${ev.message || "could not start it (wrong workerUrl?)"}`, "worker"));
    };
    worker.onmessageerror = () => this.failAll(new SamError("A worker message could not be read", "worker"));
  }

  /** Starts the worker and the wasm module. */
  static async create(options: SamClientOptions = {}): Promise<SamClient> {
    let worker: Worker;
    if (options.worker) worker = options.worker();
    else if (options.workerUrl !== undefined) worker = new Worker(options.workerUrl, { type: "module", name: "sam-browser" });
    // Written out literally, in this form only: Vite 8 (dev and build) and webpack 5 recognise it (tests/consumers),
    // bundle dist/worker.js as a worker and emit the .wasm it refers to; a plain page finds both next
    // to index.js. Do not build the URL from a variable: no bundler would see the worker then.
    else worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module", name: "sam-browser" });
    const client = new SamClient(worker);
    const href = (u: string | URL): string => (u instanceof URL ? u.href : new URL(u, location.href).href);
    const args: RequestMap["init"]["args"] = {};
    if (options.wasmUrl !== undefined) args.wasmUrl = href(options.wasmUrl);
    // The threaded module sits beside the worker (dist/threads/) unless told otherwise.
    // Not `new URL(..., import.meta.url)` written out: with a literal, bundlers would emit the .js alone,
    // without its .wasm; with a variable, webpack 5 makes it a failing context module. A bundled app
    // whose threaded module is not served there runs on one thread (see SamClientOptions.threadsUrl).
    const here = import.meta.url;
    args.threadsUrl = href(options.threadsUrl ?? new URL(THREADS_JS, here));
    if (options.threads !== undefined) args.threads = options.threads;
    if (options.relaxedWasmUrl !== undefined) args.relaxedWasmUrl = href(options.relaxedWasmUrl);
    if (options.relaxedSimd !== undefined) args.relaxedSimd = options.relaxedSimd;
    const { webgpu } = await client.call("init", args);
    client.webgpuAvailable = webgpu;
    return client;
  }

  /** Adds an event listener; returns a function that removes it. */
  on<K extends keyof SamEvents>(type: K, listener: Listener<SamEvents[K]>): () => void {
    this.listeners[type].add(listener);
    return () => this.off(type, listener);
  }

  off<K extends keyof SamEvents>(type: K, listener: Listener<SamEvents[K]>): void {
    this.listeners[type].delete(listener);
  }

  /**
   * Loads a checkpoint (official .pth, mobile_sam.pt or .safetensors): bytes, or a URL that the worker
   * downloads with `progress` events ("download", then "load") and keeps in Cache Storage.
   * Bytes given as an ArrayBuffer or Uint8Array are transferred to the worker (the caller's copy is emptied).
   */
  async load(checkpoint: CheckpointSource, options: LoadOptions = {}): Promise<ModelInfo> {
    let source: RequestMap["load"]["args"]["source"];
    const transfer: Transferable[] = [];
    if (typeof checkpoint === "string" || checkpoint instanceof URL) {
      const url = new URL(String(checkpoint), typeof location === "undefined" ? undefined : location.href).href;
      source = { kind: "url", url, cache: options.cache ?? true, cacheName: options.cacheName ?? "sam-browser-weights" };
    } else if (checkpoint instanceof Uint8Array || checkpoint instanceof ArrayBuffer) {
      const bytes = checkpoint instanceof Uint8Array ? checkpoint : new Uint8Array(checkpoint);
      source = { kind: "bytes", bytes };
      transfer.push(...buffersOf([bytes]));
    } else {
      // A Blob (File): cloned to the worker by reference, its bytes are not copied.
      source = { kind: "blob", blob: checkpoint };
    }
    const args: RequestMap["load"]["args"] = { source };
    if (options.modelType) args.modelType = options.modelType;
    if (options.backend) args.backend = options.backend;
    if (options.precision) args.precision = options.precision;
    // Until the new model is built, the worker keeps the previous one (and its image): a failed load leaves both.
    const { webgpuMissing: _w, ...info } = await this.call("load", args, transfer, options.signal);
    this.model = info;
    this.image = null;
    return info;
  }

  /** Embeds an image (the heavy step). */
  async setImage(image: ImageSource, options: SetImageOptions = {}): Promise<ImageInfo> {
    let payload: ImagePayload;
    const transfer: Transferable[] = [];
    if (typeof ImageData !== "undefined" && image instanceof ImageData) {
      const data = options.transfer ? image.data : image.data.slice();
      payload = { kind: "rgba", data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: image.width, height: image.height };
      transfer.push(data.buffer);
    } else if (typeof Blob !== "undefined" && image instanceof Blob) {
      payload = { kind: "blob", blob: image };
    } else {
      const bitmap =
        typeof ImageBitmap !== "undefined" && image instanceof ImageBitmap
          ? image
          : await createImageBitmap(image, { premultiplyAlpha: "none", colorSpaceConversion: "none" });
      payload = { kind: "bitmap", bitmap };
      transfer.push(bitmap);
    }
    this.image = null;
    const info = await this.call("setImage", { image: payload }, transfer);
    this.image = info;
    return info;
  }

  /**
   * Decodes a prompt on the current image (fast). `options` asks for less: `{ masks: "best",
   * lowResLogits: false }` returns the best mask alone, without low-res logits (a hover preview).
   */
  predict(prompt: Prompt, options?: PredictOptions): Promise<Prediction> {
    const sent = withCopiedMaskInput(prompt);
    return this.call("predict", options ? { prompt: sent, options } : { prompt: sent }, buffersOf([sent.maskInput]));
  }

  /**
   * "Latest wins" predict for hover previews: at most one request per channel runs in the worker and
   * at most one waits here; a newer call replaces the waiting one, whose promise resolves to null
   * without ever reaching the worker. So a fast-moving cursor never builds a queue of stale requests.
   */
  predictLatest(prompt: Prompt, channel = "hover", options?: PredictOptions): Promise<Prediction | null> {
    return this.latest(channel, () => this.predict(prompt, options));
  }

  /**
   * WebGPU backend: makes `canvas` (an OffscreenCanvas from `<canvas>.transferControlToOffscreen()`; it is
   * transferred to the worker) the target of drawPreview, whose masks then go from the GPU's decoder to that canvas
   * without being read back; `null` drops it. Rejects with kind "no-webgpu" on the CPU backend, where
   * predict's masks are drawn instead. A new model (load) needs the canvas again, and a canvas can be transferred once.
   * Experimental: what the GPU paints is tested, but a WebGPU canvas could not be shown on the project's test machines
   * (headless Chromium on SwiftShader, whose GPU process loses its devices once such a canvas is presented).
   */
  async setPreviewCanvas(canvas: PreviewCanvas | null): Promise<void> {
    await this.call("setPreviewCanvas", { canvas }, canvas ? [canvas] : []);
  }

  /**
   * Decodes `prompt` and draws its best mask on the preview canvas (setPreviewCanvas) in `color`, as a hover
   * preview: alpha 90/255 inside, 230/255 on the edge, transparent elsewhere; the canvas takes the image's size.
   * Resolves once the GPU has drawn it. WebGPU backend only.
   */
  drawPreview(prompt: Prompt, color: PreviewColor): Promise<PreviewResult> {
    return this.call("drawPreview", { prompt: withCopiedMaskInput(prompt), color: [color[0], color[1], color[2]] });
  }

  /** drawPreview, "latest wins" on `channel`, as predictLatest: a replaced request resolves to null without running. */
  drawPreviewLatest(prompt: Prompt, color: PreviewColor, channel = "hover"): Promise<PreviewResult | null> {
    return this.latest(channel, () => this.drawPreview(prompt, color));
  }

  /** Clears the preview canvas (transparent). */
  async clearPreview(): Promise<void> {
    await this.call("clearPreview", {});
  }

  private latest<T>(channel: string, send: () => Promise<T>): Promise<T | null> {
    let ch = this.channels.get(channel);
    if (!ch) {
      ch = { busy: false, waiting: null };
      this.channels.set(channel, ch);
    }
    return new Promise<T | null>((resolve, reject) => {
      const c = ch;
      if (c.waiting) c.waiting.resolve(null);
      c.waiting = { send, resolve: resolve as (value: unknown) => void, reject };
      this.pump(c);
    });
  }

  /** Drops a channel's waiting request (it resolves to null); the one already running still finishes. */
  cancelLatest(channel = "hover"): void {
    const ch = this.channels.get(channel);
    if (ch?.waiting) {
      ch.waiting.resolve(null);
      ch.waiting = null;
    }
  }

  private pump(ch: Channel): void {
    if (ch.busy || !ch.waiting) return;
    const w = ch.waiting;
    ch.waiting = null;
    ch.busy = true;
    w.send().then(
      (r) => {
        ch.busy = false;
        w.resolve(r);
        this.pump(ch);
      },
      (e: SamError) => {
        ch.busy = false;
        w.reject(e);
        this.pump(ch);
      },
    );
  }

  /** Automatic mask generation ("segment everything"), with `progress` events (stage "generate"). */
  async generate(options: GenerateOptions = {}, call: GenerateCallOptions = {}): Promise<GenerateResult> {
    const { json, generateMs } = await this.call("generate", { options }, [], call.signal);
    return { json, file: JSON.parse(json) as Sa1bFile, generateMs };
  }

  /** The current image's embedding as .npy bytes (float32 [1, 256, 64, 64]) plus the image size. */
  exportEmbedding(): Promise<{ npy: Uint8Array; width: number; height: number }> {
    return this.call("exportEmbedding", {});
  }

  /** Sets the current image from an exported embedding (predict works; generate needs setImage). */
  async importEmbedding(npy: Uint8Array | ArrayBuffer, width: number, height: number): Promise<void> {
    const bytes = npy instanceof Uint8Array ? npy.slice() : new Uint8Array(npy.slice(0));
    await this.call("importEmbedding", { npy: bytes, width, height }, buffersOf([bytes]));
    this.image = { width, height, embedMs: 0 };
  }

  async clearImage(): Promise<void> {
    await this.call("clearImage", {});
    this.image = null;
  }

  /** COCO RLE counts strings of row-major 0/1 masks (height*width bytes each). */
  encodeRle(masks: Uint8Array[], height: number, width: number): Promise<string[]> {
    return this.call("encodeRle", { masks, height, width });
  }

  /** Validates an SA-1B JSON text (file or bare annotation list) and decodes every mask. */
  async decodeSa1b(json: string): Promise<DecodedSa1b> {
    const r = await this.call("decodeSa1b", { json });
    return { file: JSON.parse(r.json) as Sa1bFile, masks: r.masks };
  }

  /** The polygons of each mask (row-major 0/1, height*width bytes): one per 8-connected part, with holes, in pixel-edge coordinates. */
  maskToPolygons(masks: Uint8Array[], height: number, width: number, options?: PolygonOptions): Promise<MaskPolygon[][]> {
    return this.call("maskToPolygons", { masks, height, width, options });
  }

  /** COCO's segmentation (compressed RLE, or with `polygons` the flat polygons), area and bbox of each mask (see buildCocoDataset). */
  cocoRecords(masks: Uint8Array[], height: number, width: number, polygons: boolean, options?: PolygonOptions): Promise<CocoMaskRecord[]> {
    return this.call("cocoRecords", { masks, height, width, polygons, options });
  }

  /** The masks of COCO segmentations (compressed RLE, or polygons united, each filled even-odd) on a height x width image. */
  cocoMasks(segmentations: CocoSegmentation[], height: number, width: number): Promise<Uint8Array[]> {
    return this.call("cocoMasks", { segmentations, height, width });
  }

  /** Frees the model and stops the worker. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    try {
      await this.call("dispose", {});
    } catch {
      // The worker goes away anyway.
    }
    this.disposed = true;
    this.worker.terminate();
    this.failAll(new SamError("SamClient was disposed", "disposed"));
  }

  private call<K extends RequestType>(type: K, args: RequestMap[K]["args"], transfer: Transferable[] = [], signal?: AbortSignal): Promise<RequestMap[K]["result"]> {
    if (this.disposed) return Promise.reject(new SamError("SamClient was disposed", "disposed"));
    if (signal?.aborted) return Promise.reject(new SamError("aborted", "aborted"));
    const id = this.nextId++;
    return new Promise<RequestMap[K]["result"]>((resolve, reject) => {
      const onAbort = (): void => this.post({ kind: "cancel", target: id });
      signal?.addEventListener("abort", onAbort, { once: true });
      this.pending.set(id, {
        resolve: (v) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(v as RequestMap[K]["result"]);
        },
        reject: (e) => {
          signal?.removeEventListener("abort", onAbort);
          reject(e);
        },
        type,
      });
      this.post({ kind: "request", id, type, args } as ToWorker, transfer);
    });
  }

  private post(msg: ToWorker, transfer: Transferable[] = []): void {
    this.worker.postMessage(msg, transfer);
  }

  private onMessage(msg: FromWorker): void {
    switch (msg.kind) {
      case "result": {
        const p = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        p?.resolve(msg.value);
        break;
      }
      case "error": {
        const p = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        p?.reject(new SamError(msg.error.message, msg.error.kind, msg.error.fatal ?? false));
        break;
      }
      case "progress":
        for (const l of this.listeners.progress) l(msg.data);
        break;
      case "backend":
        for (const l of this.listeners.backend) l(msg.data);
        break;
    }
  }

  private failAll(error: SamError): void {
    for (const [, p] of this.pending) p.reject(error);
    this.pending.clear();
    for (const ch of this.channels.values()) {
      ch.waiting?.reject(error);
      ch.waiting = null;
    }
  }
}
