// The demo page: load a SAM checkpoint, pick an image, click/drag to segment, "everything", export.
// All model work runs in the sam-browser worker (js/); this file is UI only.
//
// URL parameters (handy for links and for the end-to-end tests):
//   ?model=URL          load this checkpoint at start (downloaded once, then from Cache Storage)
//   ?model=mobile_sam   a preset of the model menu (web/models.ts: mobile_sam, vit_b, vit_l, vit_h)
//   ?mirror=URL         download the presets from URL<file> (a local mirror)
//   ?outlines=1         draw objects as polygon outlines
//   ?backend=auto|webgpu|cpu
//   ?threads=N          CPU threads on this cross-origin isolated page (default: the cores, at most 8; 1: one thread)
//   ?image=URL | sample:NAME   start with this image (default: the first bundled sample)
//   ?hover=0            no hover preview
//   ?cache=0            do not use Cache Storage for ?model downloads
//   ?pps=N              points per side of "Everything"
//   ?amg={"predIouThresh":0.5,...}   any GenerateOptions of "Everything" (JSON)
//
// Test/debug hook: window.__sam (see the SamDebugHook interface below) exposes the state, the masks and
// the last exported SA-1B JSON so that tests can wait for states and read results without scraping the UI.
import { SamClient, SamError } from "../js/client.js";
import { cutout, maskArea, maskBBox } from "../js/masks.js";
import { isFatal, isSuperseded, RestartLimiter } from "./recovery.js";
import { emptySession, imageKey, SessionStore, type Eviction, type Session } from "./sessions.js";
import { buildSessionCoco, DEFAULT_CATEGORY, matchImage, mountCocoControls, readCocoFile, sizeOfKey, type SessionImage } from "./coco-export.js";
import { downloadFailedMessage, mountModelMenu, presetNamed, presetUrl, type ModelPreset } from "./models.js";
import { OUTLINE_TOLERANCE, OutlineRenderer } from "./outline.js";
import type {
  BackendChoice,
  GenerateOptions,
  ImageInfo,
  ModelInfo,
  Prediction,
  Prompt,
  ProgressEvent,
  Sa1bAnnotation,
  Sa1bFile,
} from "../js/types.js";

// ---------- DOM ----------

function $<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el as T;
}

const ui = {
  backendBadge: $("backend-badge"),
  modelType: $("model-type"),
  embedTime: $("embed-time"),
  decodeTime: $("decode-time"),
  message: $("message"),
  modelFile: $<HTMLInputElement>("model-file"),
  modelUrlForm: $<HTMLFormElement>("model-url-form"),
  modelUrl: $<HTMLInputElement>("model-url"),
  backend: $<HTMLSelectElement>("backend"),
  useCache: $<HTMLInputElement>("use-cache"),
  modelProgressRow: $("model-progress-row"),
  modelProgress: $<HTMLProgressElement>("model-progress"),
  modelProgressText: $("model-progress-text"),
  cancelDownload: $<HTMLButtonElement>("cancel-download"),
  modelInfo: $("model-info"),
  imageFile: $<HTMLInputElement>("image-file"),
  samples: $("samples"),
  imageInfo: $("image-info"),
  newObject: $<HTMLButtonElement>("new-object"),
  undo: $<HTMLButtonElement>("undo"),
  redo: $<HTMLButtonElement>("redo"),
  clear: $<HTMLButtonElement>("clear"),
  hoverToggle: $<HTMLInputElement>("hover-toggle"),
  choices: $("choices"),
  objectList: $<HTMLUListElement>("object-list"),
  amgPps: $<HTMLInputElement>("amg-pps"),
  amgPpb: $<HTMLInputElement>("amg-ppb"),
  amgIou: $<HTMLInputElement>("amg-iou"),
  amgStab: $<HTMLInputElement>("amg-stab"),
  amgNms: $<HTMLInputElement>("amg-nms"),
  amgCrops: $<HTMLInputElement>("amg-crops"),
  amgMinArea: $<HTMLInputElement>("amg-minarea"),
  everything: $<HTMLButtonElement>("everything"),
  cancelEverything: $<HTMLButtonElement>("cancel-everything"),
  everythingProgressRow: $("everything-progress-row"),
  everythingProgress: $<HTMLProgressElement>("everything-progress"),
  everythingProgressText: $("everything-progress-text"),
  exportCutout: $<HTMLButtonElement>("export-cutout"),
  exportMasks: $<HTMLButtonElement>("export-masks"),
  exportJson: $<HTMLButtonElement>("export-json"),
  loadJson: $<HTMLInputElement>("load-json"),
  stage: $("stage"),
  imageCanvas: $<HTMLCanvasElement>("image-canvas"),
  overlayCanvas: $<HTMLCanvasElement>("overlay-canvas"),
  hoverCanvas: $<HTMLCanvasElement>("hover-canvas"),
  uiCanvas: $<HTMLCanvasElement>("ui-canvas"),
  stageHint: $("stage-hint"),
  busy: $("busy"),
  busyText: $("busy-text"),
};

function ctx2d(c: HTMLCanvasElement): CanvasRenderingContext2D {
  const ctx = c.getContext("2d", { willReadFrequently: true });
  if (!ctx) throw new Error("no 2d canvas context");
  return ctx;
}

// ---------- state ----------

type Box = [number, number, number, number];
interface Point {
  x: number;
  y: number;
  label: 0 | 1;
}
interface Choice {
  mask: Uint8Array;
  score: number;
  lowRes: Float32Array | null;
}
interface SamObject {
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

type ModelState = "none" | "loading" | "ready" | "error";
type ImageState = "none" | "decoding" | "waiting-for-model" | "embedding" | "ready" | "error" | "display-only";

const params = new URLSearchParams(location.search);
const state = {
  client: null as SamClient | null,
  modelState: "none" as ModelState,
  modelInfo: null as ModelInfo | null,
  imageState: "none" as ImageState,
  imageInfo: null as ImageInfo | null,
  /** The current image's pixels (display and cut-outs), name and content key (sessions.ts). */
  image: null as ImageData | null,
  imageName: "image",
  imageKey: "",
  /** The current image's objects changed since the last SA-1B JSON export. */
  dirty: false,
  /** The last checkpoint that loaded: what a worker restart loads again. */
  modelSource: null as File | string | null,
  /** Bumped for every new image: results for older images are dropped. */
  imageToken: 0,
  embeddedToken: -1,
  objects: [] as SamObject[],
  selectedId: -1,
  nextObjectId: 1,
  undo: [] as Snapshot[],
  redo: [] as Snapshot[],
  generating: null as AbortController | null,
  downloading: null as AbortController | null,
  predictCount: 0,
  pendingPredicts: 0,
  lastSa1bJson: null as string | null,
  lastGenerateJson: null as string | null,
  lastError: null as { kind: string; message: string } | null,
  timings: { downloadMs: 0, buildMs: 0, embedMs: 0, decodeMs: 0, generateMs: 0 },
  hoverEpoch: 0,
};

interface Snapshot {
  objects: SamObject[];
  selectedId: number;
  nextObjectId: number;
}

/** The other images' work (the current image's lives in `state`), within sessions.ts's memory limits. */
const sessions = new SessionStore<SamObject, Snapshot>(sessionBuffers);

/** The masks and logits a session holds, in its objects and its undo/redo snapshots (shared ones repeat). */
function* sessionBuffers(s: Session<SamObject, Snapshot>): Generator<ArrayBufferView | null> {
  for (const objects of [s.objects, ...s.undo.map((u) => u.objects), ...s.redo.map((r) => r.objects)])
    for (const o of objects) {
      yield o.mask;
      yield o.lowRes;
      for (const c of o.choices) yield* [c.mask, c.lowRes];
    }
}

// ---------- messages ----------

function showMessage(text: string, level: "info" | "warn" | "error", kind = ""): void {
  ui.message.textContent = text;
  ui.message.className = `message ${level}`;
  ui.message.dataset.kind = kind;
  ui.message.dataset.level = level;
  ui.message.hidden = false;
  if (level === "error") state.lastError = { kind, message: text };
}

function clearMessage(): void {
  ui.message.hidden = true;
  ui.message.textContent = "";
  ui.message.dataset.kind = "";
}

function errorText(e: unknown): { kind: string; message: string; fatal: boolean } {
  if (e instanceof SamError) return { kind: e.kind, message: e.message, fatal: e.fatal };
  if (e instanceof Error) return { kind: "other", message: e.message, fatal: false };
  return { kind: "other", message: String(e), fatal: false };
}

/**
 * Shows an error of `context` (and `suffix`, e.g. what still works); after a fatal one (the worker's wasm
 * module trapped, or the worker died) restarts the worker and reloads the model (recoverWorker).
 */
async function reportError(e: unknown, context: string, suffix = ""): Promise<void> {
  if (isSuperseded(e)) return; // a call to a worker that a restart replaced
  const { kind, message } = errorText(e);
  const fatal = isFatal(e);
  if (kind === "aborted") {
    showMessage(`${context}: cancelled.`, "info", "aborted");
    return;
  }
  let text: string;
  switch (kind) {
    case "not-a-checkpoint":
      text = `That file is not a SAM checkpoint. ${message}`;
      break;
    case "out-of-memory":
      text = `Out of memory. ${message}`;
      break;
    case "no-webgpu":
      text = `Cannot run on WebGPU. ${message}`;
      break;
    case "download":
      text = message;
      break;
    default:
      text = `${context} failed: ${message}`;
  }
  showMessage(suffix ? `${text} ${suffix}` : text, "error", kind);
  if (fatal) recoverWorker(text);
}

const restarts = new RestartLimiter();
let recovering = false;
/** A fatal error met while recovering (by the new worker): recover once more afterwards. */
let recoverAgain: string | null = null;

/**
 * The one recovery path after a fatal error (whichever call met it): a fresh worker, the last model that
 * loaded loaded again, and the current image embedded again, without user action. The objects live in
 * the page and are kept. A call during a recovery runs one more after it; more than 3 in 2 minutes stop
 * and ask for a reload.
 */
function recoverWorker(why: string): void {
  if (recovering) {
    recoverAgain = why;
    return;
  }
  recovering = true;
  void (async () => {
    const old = state.client;
    state.client = null;
    state.modelState = "none";
    state.modelInfo = null;
    state.embeddedToken = -1;
    state.generating?.abort();
    if (state.imageState === "ready" || state.imageState === "embedding") state.imageState = "waiting-for-model";
    clearHover();
    updateStatus();
    void old?.dispose();
    if (!restarts.allow()) {
      showMessage(`${why} The model keeps failing; reload the page (your objects are lost on reload: export them first).`, "error", "crash-loop");
      return;
    }
    try {
      await startClient();
    } catch (e) {
      showMessage(`${why} Could not restart the model worker: ${errorText(e).message}`, "error", "worker");
      return;
    }
    const source = state.modelSource;
    if (!source) return;
    showMessage(`${why} Restarting the model…`, "warn", "recovering");
    if (await loadModel(source, true)) showMessage(`${why} The model was restarted and loaded again; your objects are kept.`, "warn", "recovered");
  })().finally(() => {
    recovering = false;
    const again = recoverAgain;
    recoverAgain = null;
    if (again) recoverWorker(again);
    updateStatus();
  });
}

// ---------- the client ----------

function fmtBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(0)} KiB`;
  return `${n} B`;
}

function fmtMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`;
}

function onProgress(p: ProgressEvent): void {
  if (p.stage === "download" || p.stage === "load") {
    ui.modelProgressRow.hidden = false;
    ui.cancelDownload.hidden = p.stage !== "download" || p.fromCache === true;
    if (p.total > 0) {
      ui.modelProgress.max = p.total;
      ui.modelProgress.value = p.loaded;
    } else ui.modelProgress.removeAttribute("value");
    if (p.stage === "download") {
      const pct = p.total > 0 ? ` (${((100 * p.loaded) / p.total).toFixed(0)}%)` : "";
      ui.modelProgressText.textContent = p.fromCache ? `from cache ${fmtBytes(p.loaded)}` : `download ${fmtBytes(p.loaded)}${pct}`;
    } else ui.modelProgressText.textContent = `reading the weights ${fmtBytes(p.loaded)}${p.total > 0 ? ` of ${fmtBytes(p.total)}` : ""}`;
  } else if (p.stage === "generate") {
    ui.everythingProgressRow.hidden = false;
    ui.everythingProgress.max = Math.max(1, p.total);
    ui.everythingProgress.value = p.loaded;
    const crop = (p.cropsTotal ?? 1) > 1 ? `crop ${(p.cropIndex ?? 0) + 1}/${p.cropsTotal}, ` : "";
    ui.everythingProgressText.textContent = `${crop}batch ${p.loaded}/${p.total}`;
  } else if (p.stage === "embed") {
    setBusy(p.loaded < p.total ? "embedding the image…" : null);
  }
}

async function startClient(): Promise<SamClient> {
  const client = await SamClient.create({
    worker: () => new Worker(new URL("../js/worker.ts", import.meta.url), { type: "module", name: "sam-browser" }),
    // The threaded CPU module (vite.config.ts serves it there); ?threads=N sets its thread count (1: one thread).
    threadsUrl: new URL("./sam-wasm-threads/sam_wasm.js", location.href),
    ...(new URLSearchParams(location.search).has("threads") ? { threads: Number(new URLSearchParams(location.search).get("threads")) } : {}),
  });
  client.on("progress", onProgress);
  client.on("backend", (b) => {
    if (b.webgpuMissing)
      showMessage("WebGPU is not available in this browser (no adapter), so the model runs on the CPU (slower).", "warn", "webgpu-missing");
  });
  state.client = client;
  return client;
}

async function getClient(): Promise<SamClient> {
  return state.client ?? (await startClient());
}

// ---------- model ----------

/**
 * Loads a checkpoint (after a restart: `recovering`, messages kept). A failure keeps the previous model,
 * which the worker frees only once the new one is built, so the page goes on with it and says so.
 * Resolves to whether the new model loaded; never rejects.
 */
async function loadModel(source: File | string, recovering = false): Promise<boolean> {
  const backend = ui.backend.value as BackendChoice;
  const previous = state.modelState === "ready" ? { info: state.modelInfo, embedded: state.embeddedToken, image: state.imageState } : null;
  state.modelState = "loading";
  state.modelInfo = null;
  state.embeddedToken = -1;
  if (state.imageState === "ready") state.imageState = "waiting-for-model";
  if (!recovering) clearMessage();
  let loaded = false;
  clearHover();
  ui.modelInfo.textContent = "";
  ui.modelProgressRow.hidden = false;
  ui.modelProgress.value = 0;
  ui.modelProgressText.textContent = "";
  updateStatus();
  const name = typeof source === "string" ? source : source.name;
  setBusy(`loading ${name.split("/").pop() ?? name}…`);
  try {
    const client = await getClient();
    let info: ModelInfo;
    if (typeof source === "string") {
      state.downloading = new AbortController();
      info = await client.load(source, { backend, cache: ui.useCache.checked, signal: state.downloading.signal });
    } else {
      // The File itself: the worker reads it in slices (a 2.4 GiB ViT-H never is one buffer).
      info = await client.load(source, { backend });
    }
    state.modelInfo = info;
    state.modelState = "ready";
    state.modelSource = source;
    loaded = true;
    state.timings.downloadMs = info.downloadMs;
    state.timings.buildMs = info.buildMs;
    const from = typeof source === "string" ? (info.fromCache ? ", from Cache Storage" : `, downloaded in ${fmtMs(info.downloadMs)}`) : "";
    ui.modelInfo.textContent = `${info.modelType}, ${fmtBytes(info.bytes)}${from}; built in ${fmtMs(info.buildMs)}. ${info.backendInfo}`;
    ui.modelProgressRow.hidden = true;
  } catch (e) {
    ui.modelProgressRow.hidden = true;
    if (previous?.info && !isFatal(e) && !isSuperseded(e) && state.client) {
      // The worker still holds the previous model and its image's embedding.
      state.modelState = "ready";
      state.modelInfo = previous.info;
      state.embeddedToken = previous.embedded;
      if (previous.embedded === state.imageToken && previous.image === "ready") state.imageState = "ready";
      await reportError(e, "Loading the model", `The previous model (${previous.info.modelType}, ${previous.info.backend}) is still loaded and usable.`);
    } else {
      state.modelState = "error";
      await reportError(e, "Loading the model");
    }
  } finally {
    state.downloading = null;
    setBusy(null);
    updateStatus();
  }
  if (state.modelState === "ready") await embedCurrentImage();
  return loaded;
}

// ---------- image ----------

async function decodeImage(blob: Blob): Promise<ImageData> {
  // No colour-space conversion: the model sees the file's own RGB values (what the reference code does).
  const bitmap = await createImageBitmap(blob, { premultiplyAlpha: "none", colorSpaceConversion: "none" });
  const c = document.createElement("canvas");
  c.width = bitmap.width;
  c.height = bitmap.height;
  const ctx = ctx2d(c);
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  return ctx.getImageData(0, 0, c.width, c.height);
}

async function setImageFromBlob(blob: Blob, name: string): Promise<void> {
  state.imageState = "decoding";
  updateStatus();
  let img: ImageData;
  try {
    img = await decodeImage(blob);
  } catch (e) {
    state.imageState = "error";
    showMessage(`Could not read ${name} as an image: ${errorText(e).message}`, "error", "bad-image");
    updateStatus();
    return;
  }
  try {
    showImage(img, name);
  } catch (e) {
    state.imageState = "error";
    showMessage(`Could not show ${name}: ${errorText(e).message}`, "error", "bad-image");
    updateStatus();
    return;
  }
  await embedCurrentImage();
}

async function setImageFromUrl(url: string): Promise<void> {
  const name = decodeURIComponent(url.split("/").pop()?.split("?")[0] ?? "image");
  try {
    const res = await fetch(url);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    await setImageFromBlob(await res.blob(), name);
  } catch (e) {
    state.imageState = "error";
    showMessage(`Could not load the image ${url}: ${errorText(e).message}`, "error", "bad-image");
    updateStatus();
  }
}

/** The current image's work as a session (sessions.ts). */
function currentSession(): Session<SamObject, Snapshot> {
  return {
    objects: state.objects,
    undo: state.undo,
    redo: state.redo,
    selectedId: state.selectedId,
    nextObjectId: state.nextObjectId,
    dirty: state.dirty,
    name: state.imageName,
  };
}

/** Says what the session store dropped to stay within its memory limits (nothing unexported is dropped). */
function reportEviction(e: Eviction): void {
  const parts: string[] = [];
  if (e.dropped.length > 0) parts.push(`the objects of ${e.dropped.join(", ")} (all exported) were let go`);
  if (e.trimmed.length > 0) parts.push(`the undo history of ${e.trimmed.join(", ")} was dropped (the objects are kept)`);
  if (e.overLimit) parts.push("the images with unexported objects still use a lot of memory: export them (SA-1B JSON)");
  if (parts.length > 0) showMessage(`To save memory, ${parts.join("; ")}.`, "warn", "sessions-evicted");
}

/** Shows an image; the previous image's objects and history are kept, and this image's come back. */
function showImage(img: ImageData, name: string, displayOnly = false): void {
  const key = imageKey(img);
  const eviction = state.image ? sessions.save(state.imageKey, currentSession()) : null;
  const session = sessions.take(key) ?? emptySession<SamObject, Snapshot>(name);
  state.image = img;
  state.imageName = name;
  state.imageKey = key;
  state.imageToken++;
  state.imageInfo = null;
  state.imageState = displayOnly ? "display-only" : "waiting-for-model";
  for (const c of [ui.imageCanvas, ui.overlayCanvas, ui.hoverCanvas, ui.uiCanvas]) {
    c.width = img.width;
    c.height = img.height;
  }
  ctx2d(ui.imageCanvas).putImageData(img, 0, 0);
  state.objects = session.objects;
  state.undo = session.undo;
  state.redo = session.redo;
  state.selectedId = session.selectedId;
  state.nextObjectId = session.nextObjectId;
  state.dirty = session.dirty;
  if (session.objects.length > 0)
    showMessage(`${name}: ${session.objects.length} object${session.objects.length === 1 ? "" : "s"} from before restored (undo history too).`, "info", "session-restored");
  if (eviction) reportEviction(eviction);
  ui.stageHint.hidden = true;
  ui.imageInfo.textContent = `${name}: ${img.width}×${img.height}`;
  for (const b of ui.samples.querySelectorAll("button")) b.classList.toggle("active", b.dataset.name === name);
  clearHover();
  renderAll();
}

async function embedCurrentImage(): Promise<void> {
  const client = state.client;
  const img = state.image;
  if (!client || !img || state.modelState !== "ready" || state.imageState === "display-only") {
    updateStatus();
    return;
  }
  const token = state.imageToken;
  if (state.embeddedToken === token) return;
  state.imageState = "embedding";
  state.embeddedToken = -1;
  updateStatus();
  setBusy("embedding the image…");
  try {
    const info = await client.setImage(img);
    if (token !== state.imageToken) return; // a newer image came meanwhile
    state.imageInfo = info;
    state.embeddedToken = token;
    state.imageState = "ready";
    state.timings.embedMs = info.embedMs;
    // Prompts whose prediction was dropped (the image changed, or the worker restarted) are predicted now.
    for (const o of state.objects) if (o.source === "prompt" && !o.mask && (o.points.length > 0 || o.box)) void predictObject(o);
  } catch (e) {
    if (token !== state.imageToken || isSuperseded(e)) return;
    state.imageState = "error";
    await reportError(e, "Embedding the image");
  } finally {
    setBusy(null);
    updateStatus();
  }
}

// ---------- objects and history ----------

const GOLDEN = 137.508;
function colorFor(i: number): [number, number, number] {
  // Distinct hues (golden angle), fixed saturation/lightness, as RGB.
  const h = ((i * GOLDEN + 200) % 360) / 360;
  const s = 0.75;
  const l = 0.5;
  const f = (n: number): number => {
    const k = (n + h * 12) % 12;
    const a = s * Math.min(l, 1 - l);
    return Math.round(255 * (l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [f(0), f(8), f(4)];
}

function newObject(source: SamObject["source"] = "prompt", name?: string): SamObject {
  const id = state.nextObjectId++;
  return {
    id,
    name: name ?? `Object ${id}`,
    color: colorFor(id - 1),
    source,
    points: [],
    box: null,
    mask: null,
    score: null,
    lowRes: null,
    choices: [],
    chosen: 0,
    version: 0,
    annotation: null,
    bbox: null,
    category: lastCategory,
  };
}

function cloneObject(o: SamObject): SamObject {
  // Masks and logits are never written in place, so they are shared, not copied.
  return { ...o, points: o.points.map((p) => ({ ...p })), box: o.box ? [...o.box] : null, choices: [...o.choices] };
}

function snapshot(): Snapshot {
  return { objects: state.objects.map(cloneObject), selectedId: state.selectedId, nextObjectId: state.nextObjectId };
}

/** Records the state before a change (for undo). */
function pushHistory(): void {
  state.dirty = true;
  state.undo.push(snapshot());
  // Each step keeps its masks alive (a few MB for a large image): keep the last 40.
  if (state.undo.length > 40) state.undo.shift();
  state.redo = [];
}

function restore(s: Snapshot): void {
  state.dirty = true;
  state.objects = s.objects.map(cloneObject);
  state.selectedId = s.selectedId;
  state.nextObjectId = s.nextObjectId;
  // Results of predictions asked before the undo/redo must not land on the restored objects.
  for (const o of state.objects) o.version += 1_000_000;
  clearHover();
  renderAll();
}

function undo(): void {
  const s = state.undo.pop();
  if (!s) return;
  state.redo.push(snapshot());
  restore(s);
}

function redo(): void {
  const s = state.redo.pop();
  if (!s) return;
  state.undo.push(snapshot());
  restore(s);
}

function selected(): SamObject | null {
  return state.objects.find((o) => o.id === state.selectedId) ?? null;
}

/** The object that clicks go to: the selected prompt object, or a new one. */
function targetObject(): SamObject {
  const sel = selected();
  if (sel && sel.source === "prompt") return sel;
  const o = newObject();
  state.objects.push(o);
  state.selectedId = o.id;
  return o;
}

/**
 * The prompt for an object's points and box, as the official predictor is used: one click alone gives
 * three masks (ambiguity), the best is chosen; more points or a box give one mask, with the previous
 * chosen low-res mask fed back as mask input when there is one (refinement).
 */
function promptFor(points: Point[], box: Box | null, lowRes: Float32Array | null): Prompt {
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

function applyPrediction(o: SamObject, r: Prediction): void {
  o.choices = r.masks.map((mask, i) => ({ mask, score: r.scores[i] ?? 0, lowRes: r.lowResLogits[i] ?? null }));
  o.chosen = r.best;
  const c = o.choices[r.best];
  o.mask = c?.mask ?? null;
  o.score = c?.score ?? null;
  o.lowRes = c?.lowRes ?? null;
  o.bbox = o.mask ? maskBBox(o.mask, r.width, r.height) : null;
}

async function predictObject(o: SamObject): Promise<void> {
  const client = state.client;
  if (!client || state.imageState !== "ready") return;
  if (o.points.length === 0 && !o.box) {
    o.mask = null;
    o.choices = [];
    o.lowRes = null;
    o.score = null;
    o.bbox = null;
    renderAll();
    return;
  }
  const version = ++o.version;
  const token = state.imageToken;
  // Refinement: feed back the low-res mask of the previous prediction (not for the very first prompt).
  const prompt = promptFor(o.points, o.box, o.lowRes);
  state.pendingPredicts++;
  updateStatus();
  try {
    const r = await client.predict(prompt);
    state.timings.decodeMs = r.decodeMs;
    const live = state.objects.find((x) => x.id === o.id);
    if (!live || live.version !== version || token !== state.imageToken) return;
    applyPrediction(live, r);
    state.predictCount++;
    // Keep the undo entry that this prediction completes in step with it.
    renderAll();
  } catch (e) {
    await reportError(e, "Prediction");
  } finally {
    state.pendingPredicts--;
    updateStatus();
  }
}

function addPoint(x: number, y: number, label: 0 | 1): void {
  if (state.imageState !== "ready") return;
  pushHistory();
  const o = targetObject();
  o.points.push({ x, y, label });
  clearHover();
  renderAll();
  void predictObject(o);
}

function setBox(box: Box): void {
  if (state.imageState !== "ready") return;
  pushHistory();
  const o = targetObject();
  o.box = box;
  clearHover();
  renderAll();
  void predictObject(o);
}

function chooseMask(i: number): void {
  const o = selected();
  const c = o?.choices[i];
  if (!o || !c || !state.image) return;
  pushHistory();
  o.chosen = i;
  o.mask = c.mask;
  o.score = c.score;
  o.lowRes = c.lowRes;
  o.bbox = maskBBox(c.mask, state.image.width, state.image.height);
  renderAll();
}

// ---------- hover preview ----------

let hoverPoint: { x: number; y: number } | null = null;
let hoverScheduled = false;
let lastHoverAt = 0;
const HOVER_MIN_INTERVAL_MS = 40;

function clearHover(): void {
  state.hoverEpoch++;
  hoverPoint = null;
  state.client?.cancelLatest("hover");
  const c = ui.hoverCanvas;
  ctx2d(c).clearRect(0, 0, c.width, c.height);
}

function hoverEnabled(): boolean {
  return ui.hoverToggle.checked && state.imageState === "ready" && !state.generating && drag === null;
}

function scheduleHover(x: number, y: number): void {
  hoverPoint = { x, y };
  if (hoverScheduled) return;
  hoverScheduled = true;
  const wait = Math.max(0, HOVER_MIN_INTERVAL_MS - (performance.now() - lastHoverAt));
  setTimeout(() => requestAnimationFrame(runHover), wait);
}

function runHover(): void {
  hoverScheduled = false;
  const p = hoverPoint;
  const client = state.client;
  if (!p || !client || !hoverEnabled()) return;
  lastHoverAt = performance.now();
  const epoch = state.hoverEpoch;
  const sel = selected();
  const base = sel && sel.source === "prompt" ? sel : null;
  const prompt = promptFor([...(base?.points ?? []), { x: p.x, y: p.y, label: 1 }], base?.box ?? null, base?.lowRes ?? null);
  // The preview shows the best mask only: ask for it alone, without low-res logits.
  client.predictLatest(prompt, "hover", { masks: "best", lowResLogits: false }).then(
    (r) => {
      if (!r || epoch !== state.hoverEpoch || !state.image) return;
      const mask = r.masks[r.best];
      if (mask) drawHover(mask, base?.color ?? colorFor(state.nextObjectId - 1));
    },
    (e: unknown) => {
      // A hover error is not worth a message (the click will report it), but a dead worker is restarted.
      if (isFatal(e)) void reportError(e, "Hover preview");
    },
  );
}

function drawHover(mask: Uint8Array, color: [number, number, number]): void {
  const c = ui.hoverCanvas;
  if (outlines.enabled) return void outlines.draw(c, [{ mask, color, lineWidth: 1.5 }]);
  const ctx = ctx2d(c);
  const img = ctx.createImageData(c.width, c.height);
  paintMask(img, mask, color, 90, null, true);
  ctx.putImageData(img, 0, 0);
}

// ---------- drawing ----------

/** Paints a mask into an RGBA buffer (inside `bbox` only, when given); edges drawn opaque when `outline`. */
function paintMask(img: ImageData, mask: Uint8Array, color: [number, number, number], alpha: number, bbox: Box | null, outline: boolean): void {
  const { width, height, data } = img;
  const [r, g, b] = color;
  const x0 = bbox ? bbox[0] : 0;
  const y0 = bbox ? bbox[1] : 0;
  const x1 = bbox ? bbox[0] + bbox[2] : width - 1;
  const y1 = bbox ? bbox[1] + bbox[3] : height - 1;
  for (let y = y0; y <= y1; y++) {
    const row = y * width;
    for (let x = x0; x <= x1; x++) {
      const i = row + x;
      if (!mask[i]) continue;
      const edge =
        outline && (x === 0 || y === 0 || x === width - 1 || y === height - 1 || !mask[i - 1] || !mask[i + 1] || !mask[i - width] || !mask[i + width]);
      const j = i * 4;
      data[j] = r;
      data[j + 1] = g;
      data[j + 2] = b;
      data[j + 3] = edge ? 230 : alpha;
    }
  }
}

/** The overlay: every object's mask in its colour, at the image's resolution (tests read these pixels). */
function renderOverlay(): void {
  const c = ui.overlayCanvas;
  if (outlines.enabled) {
    const items = state.objects.flatMap((o) => (o.mask ? [{ mask: o.mask, color: o.color, lineWidth: o.id === state.selectedId ? 3 : 1.5 }] : []));
    return void outlines.draw(c, items).catch((e: unknown) => reportError(e, "Outlines"));
  }
  const ctx = ctx2d(c);
  const img = ctx.createImageData(c.width, c.height);
  const sel = state.selectedId;
  for (const o of state.objects) {
    if (!o.mask || o.id === sel) continue;
    paintMask(img, o.mask, o.color, 110, o.bbox, false);
  }
  const s = selected();
  if (s?.mask) paintMask(img, s.mask, s.color, 150, s.bbox, true);
  ctx.putImageData(img, 0, 0);
}

let drag: { x0: number; y0: number; x1: number; y1: number; moved: boolean; button: number; shift: boolean; pointerId: number } | null = null;

function renderUi(): void {
  const c = ui.uiCanvas;
  const ctx = ctx2d(c);
  ctx.clearRect(0, 0, c.width, c.height);
  const s = Math.max(c.width, c.height) / 100;
  const sel = selected();
  const drawBox = (b: Box, color: string, dash: boolean): void => {
    ctx.save();
    ctx.lineWidth = Math.max(2, s * 0.35);
    ctx.strokeStyle = color;
    if (dash) ctx.setLineDash([s, s * 0.6]);
    ctx.strokeRect(b[0], b[1], b[2] - b[0], b[3] - b[1]);
    ctx.restore();
  };
  if (sel?.box) drawBox(sel.box, `rgb(${sel.color.join(",")})`, false);
  if (drag?.moved) drawBox(normBox(drag), "#ffffff", true);
  if (sel) {
    for (const p of sel.points) {
      ctx.beginPath();
      ctx.arc(p.x + 0.5, p.y + 0.5, Math.max(4, s * 0.7), 0, Math.PI * 2);
      ctx.fillStyle = p.label === 1 ? "#22c55e" : "#ef4444";
      ctx.fill();
      ctx.lineWidth = Math.max(1.5, s * 0.2);
      ctx.strokeStyle = "#ffffff";
      ctx.stroke();
    }
  }
}

function renderChoices(): void {
  ui.choices.replaceChildren();
  const o = selected();
  if (!o || o.choices.length < 2) return;
  const best = o.choices.reduce((bi, c, i, a) => (c.score > (a[bi]?.score ?? -Infinity) ? i : bi), 0);
  o.choices.forEach((c, i) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = `Mask ${i + 1}: ${c.score.toFixed(3)}${i === best ? " ★" : ""}`;
    b.title = i === best ? "highest predicted IoU" : "predicted IoU";
    b.dataset.index = String(i);
    b.classList.toggle("active", i === o.chosen);
    b.onclick = () => chooseMask(i);
    ui.choices.append(b);
  });
}

function renderList(): void {
  ui.objectList.replaceChildren();
  for (const o of state.objects) {
    const li = document.createElement("li");
    li.dataset.id = String(o.id);
    li.classList.toggle("selected", o.id === state.selectedId);
    const sw = document.createElement("span");
    sw.className = "swatch";
    sw.style.background = `rgb(${o.color.join(",")})`;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = o.name;
    const meta = document.createElement("span");
    meta.className = "meta";
    const area = o.mask ? maskArea(o.mask) : 0;
    meta.textContent = o.mask ? `${area} px${o.score !== null ? ` · ${o.score.toFixed(3)}` : ""}` : o.points.length || o.box ? "…" : "empty";
    const del = document.createElement("button");
    del.type = "button";
    del.className = "del";
    del.textContent = "×";
    del.title = "remove";
    del.onclick = (ev) => {
      ev.stopPropagation();
      removeObject(o.id);
    };
    li.append(sw, name, meta, del);
    li.onclick = () => {
      state.selectedId = o.id;
      clearHover();
      renderAll();
    };
    ui.objectList.append(li);
  }
}

function removeObject(id: number): void {
  pushHistory();
  state.objects = state.objects.filter((o) => o.id !== id);
  if (state.selectedId === id) state.selectedId = state.objects.at(-1)?.id ?? -1;
  renderAll();
}

function renderAll(): void {
  renderOverlay();
  renderUi();
  renderChoices();
  renderList();
  updateStatus();
}

let busyText: string | null = null;
function setBusy(text: string | null): void {
  busyText = text;
  ui.busy.hidden = text === null;
  ui.busyText.textContent = text ?? "";
}

/** Why the CPU runs, for the badge: the worker's reason, and how to force a software WebGPU adapter. */
function badgeReason(m: ModelInfo): string {
  if (m.backend !== "cpu" || !m.backendReason) return "";
  // "auto" skipped a software adapter, which "webgpu" would use.
  const force = /software/.test(m.backendReason) ? "; use ?backend=webgpu to force it" : "";
  return `${m.backendReason}${force}`;
}

function renderBadge(m: ModelInfo | null): void {
  const b = ui.backendBadge;
  if (!m) {
    b.textContent = state.modelState === "loading" ? "loading…" : "no model";
    b.title = "backend";
  } else {
    const why = badgeReason(m);
    const label = document.createElement("span");
    label.textContent = m.backend === "webgpu" ? "WebGPU" : "CPU";
    const reason = document.createElement("span");
    reason.className = "why";
    reason.textContent = why ? ` (${why})` : "";
    b.replaceChildren(label, reason);
    b.title = m.backendInfo;
  }
  b.className = `badge ${m?.backend ?? ""}`;
  b.dataset.backend = m?.backend ?? "";
}

function updateStatus(): void {
  const m = state.modelInfo;
  renderBadge(m);
  ui.modelType.textContent = m ? m.modelType : "";
  ui.embedTime.textContent = state.imageInfo ? `embedding ${fmtMs(state.imageInfo.embedMs)}` : state.imageState === "embedding" ? "embedding…" : "";
  ui.decodeTime.textContent = state.timings.decodeMs > 0 ? `decode ${fmtMs(state.timings.decodeMs)}` : "";
  const ready = state.imageState === "ready";
  const generating = state.generating !== null;
  ui.everything.disabled = !ready || generating;
  ui.cancelEverything.hidden = !generating;
  ui.undo.disabled = state.undo.length === 0;
  ui.redo.disabled = state.redo.length === 0;
  ui.clear.disabled = state.objects.length === 0;
  ui.newObject.disabled = !ready;
  const sel = selected();
  ui.exportCutout.disabled = !sel?.mask || !state.image;
  const any = state.objects.some((o) => o.mask);
  ui.exportMasks.disabled = !any;
  ui.exportJson.disabled = !any;
  coco.category.value = sel?.category ?? "";
  coco.category.disabled = !sel;
  if (!state.image) ui.stageHint.textContent = state.modelState === "ready" ? "Pick an image." : "Load a model and pick an image.";
  document.body.dataset.modelState = state.modelState;
  document.body.dataset.imageState = state.imageState;
}

// ---------- pointer input ----------

function toImage(ev: MouseEvent): { x: number; y: number } {
  const c = ui.uiCanvas;
  const r = c.getBoundingClientRect();
  const x = Math.floor(((ev.clientX - r.left) * c.width) / r.width);
  const y = Math.floor(((ev.clientY - r.top) * c.height) / r.height);
  return { x: Math.min(c.width - 1, Math.max(0, x)), y: Math.min(c.height - 1, Math.max(0, y)) };
}

function normBox(d: { x0: number; y0: number; x1: number; y1: number }): Box {
  return [Math.min(d.x0, d.x1), Math.min(d.y0, d.y1), Math.max(d.x0, d.x1), Math.max(d.y0, d.y1)];
}

const DRAG_THRESHOLD_PX = 5;
let dragStartClient = { x: 0, y: 0 };

ui.uiCanvas.addEventListener("contextmenu", (ev) => ev.preventDefault());
ui.uiCanvas.addEventListener("pointerdown", (ev) => {
  if (state.imageState !== "ready" || (ev.button !== 0 && ev.button !== 2)) return;
  ev.preventDefault();
  ui.uiCanvas.setPointerCapture(ev.pointerId);
  const p = toImage(ev);
  dragStartClient = { x: ev.clientX, y: ev.clientY };
  drag = { x0: p.x, y0: p.y, x1: p.x, y1: p.y, moved: false, button: ev.button, shift: ev.shiftKey, pointerId: ev.pointerId };
});
ui.uiCanvas.addEventListener("pointermove", (ev) => {
  const p = toImage(ev);
  if (drag && drag.pointerId === ev.pointerId) {
    drag.x1 = p.x;
    drag.y1 = p.y;
    if (!drag.moved && Math.hypot(ev.clientX - dragStartClient.x, ev.clientY - dragStartClient.y) >= DRAG_THRESHOLD_PX && drag.button === 0) {
      drag.moved = true;
      clearHover();
    }
    if (drag.moved) renderUi();
    return;
  }
  if (hoverEnabled()) scheduleHover(p.x, p.y);
});
ui.uiCanvas.addEventListener("pointerup", (ev) => {
  const d = drag;
  if (!d || d.pointerId !== ev.pointerId) return;
  drag = null;
  const p = toImage(ev);
  d.x1 = p.x;
  d.y1 = p.y;
  if (d.moved) {
    const b = normBox(d);
    if (b[2] > b[0] && b[3] > b[1]) setBox(b);
    else renderUi();
  } else {
    const negative = d.button === 2 || d.shift || ev.shiftKey;
    addPoint(d.x0, d.y0, negative ? 0 : 1);
  }
});
ui.uiCanvas.addEventListener("pointercancel", () => {
  drag = null;
  renderUi();
});
ui.uiCanvas.addEventListener("pointerleave", () => {
  if (!drag) clearHover();
});

// ---------- everything ----------

function numberParam(input: HTMLInputElement): number | undefined {
  const v = input.valueAsNumber;
  return Number.isFinite(v) ? v : undefined;
}

/** Settings from URL: applied to the form once at start. */
function applyAmgParams(): void {
  const pps = params.get("pps");
  if (pps) ui.amgPps.value = pps;
  const amg = params.get("amg");
  if (!amg) return;
  try {
    const o = JSON.parse(amg) as GenerateOptions;
    const set = (input: HTMLInputElement, v: number | undefined): void => {
      if (typeof v === "number") input.value = String(v);
    };
    set(ui.amgPps, o.pointsPerSide);
    set(ui.amgPpb, o.pointsPerBatch);
    set(ui.amgIou, o.predIouThresh);
    set(ui.amgStab, o.stabilityScoreThresh);
    set(ui.amgNms, o.boxNmsThresh);
    set(ui.amgCrops, o.cropNLayers);
    set(ui.amgMinArea, o.minMaskRegionArea);
    extraAmg = o;
  } catch (e) {
    showMessage(`?amg= is not valid JSON: ${errorText(e).message}`, "warn", "bad-param");
  }
}
let extraAmg: GenerateOptions = {};

function generateOptions(): GenerateOptions {
  const o: GenerateOptions = { ...extraAmg, fileName: state.imageName };
  const put = (k: keyof GenerateOptions, input: HTMLInputElement): void => {
    const v = numberParam(input);
    if (v !== undefined) (o as Record<string, unknown>)[k] = v;
  };
  put("pointsPerSide", ui.amgPps);
  put("pointsPerBatch", ui.amgPpb);
  put("predIouThresh", ui.amgIou);
  put("stabilityScoreThresh", ui.amgStab);
  put("boxNmsThresh", ui.amgNms);
  put("cropNLayers", ui.amgCrops);
  put("minMaskRegionArea", ui.amgMinArea);
  return o;
}

async function runEverything(): Promise<void> {
  const client = state.client;
  const img = state.image;
  if (!client || !img || state.imageState !== "ready" || state.generating) return;
  const token = state.imageToken;
  const controller = new AbortController();
  state.generating = controller;
  clearHover();
  clearMessage();
  ui.everythingProgressRow.hidden = false;
  ui.everythingProgress.value = 0;
  ui.everythingProgressText.textContent = "starting…";
  updateStatus();
  setBusy("segmenting everything…");
  try {
    const r = await client.generate(generateOptions(), { signal: controller.signal });
    if (token !== state.imageToken) return;
    state.lastGenerateJson = r.json;
    state.timings.generateMs = r.generateMs;
    const decoded = await client.decodeSa1b(r.json);
    pushHistory();
    addAnnotations(decoded.file, decoded.masks, "auto");
    ui.everythingProgressText.textContent = `${decoded.masks.length} masks in ${fmtMs(r.generateMs)}`;
  } catch (e) {
    ui.everythingProgressText.textContent = errorText(e).kind === "aborted" ? "cancelled" : "failed";
    await reportError(e, "Segment everything");
  } finally {
    state.generating = null;
    setBusy(null);
    updateStatus();
  }
}

function addAnnotations(file: Sa1bFile, masks: Uint8Array[], source: "auto" | "file"): void {
  const w = file.image.width;
  const h = file.image.height;
  file.annotations.forEach((a, i) => {
    const mask = masks[i];
    if (!mask) return;
    const o = newObject(source, `${source === "auto" ? "Auto" : "Loaded"} ${i + 1}`);
    o.mask = mask;
    o.score = a.predicted_iou;
    o.annotation = a;
    o.bbox = maskBBox(mask, w, h);
    state.objects.push(o);
  });
  if (file.annotations.length > 0) state.selectedId = state.objects.at(-1)?.id ?? -1;
  renderAll();
}

// ---------- export / import ----------

function download(blob: Blob, name: string): void {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
}

function baseName(): string {
  return state.imageName.replace(/\.[^.]*$/, "") || "image";
}

async function canvasBlob(c: HTMLCanvasElement): Promise<Blob> {
  return new Promise((resolve, reject) => c.toBlob((b) => (b ? resolve(b) : reject(new Error("toBlob failed"))), "image/png"));
}

/** Runs an export, turning its failure (e.g. `toBlob` giving nothing for a huge canvas) into a message. */
async function guardExport(what: string, run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (e) {
    await reportError(e, `Export of the ${what}`);
  }
}

async function exportCutout(): Promise<void> {
  const o = selected();
  if (!o?.mask || !state.image) return;
  const out = cutout(state.image, o.mask);
  if (!out) {
    showMessage("The selected mask is empty.", "warn", "empty-mask");
    return;
  }
  const c = document.createElement("canvas");
  c.width = out.width;
  c.height = out.height;
  ctx2d(c).putImageData(out, 0, 0);
  download(await canvasBlob(c), `${baseName()}-${o.name.replace(/\s+/g, "-").toLowerCase()}.png`);
}

async function exportMasks(): Promise<void> {
  renderOverlay();
  download(await canvasBlob(ui.overlayCanvas), `${baseName()}-masks.png`);
}

/** All objects as one SA-1B file: generated/loaded annotations as they were, prompt objects encoded now. */
async function buildSa1b(): Promise<string> {
  const client = await getClient();
  const img = state.image;
  if (!img) throw new Error("no image");
  const { width, height } = img;
  const withMask = state.objects.filter((o): o is SamObject & { mask: Uint8Array } => o.mask !== null);
  const toEncode = withMask.filter((o) => !o.annotation);
  const counts = await client.encodeRle(
    toEncode.map((o) => o.mask),
    height,
    width,
  );
  const countOf = new Map(toEncode.map((o, i) => [o.id, counts[i] ?? ""]));
  const annotations: Sa1bAnnotation[] = withMask.map((o, i) => {
    if (o.annotation) return { ...o.annotation, id: i };
    const pos = o.points.filter((p) => p.label === 1).map((p): [number, number] => [p.x, p.y]);
    const bx = o.box;
    const pointCoords: [number, number][] = pos.length > 0 ? pos : bx ? [[(bx[0] + bx[2]) / 2, (bx[1] + bx[3]) / 2]] : [];
    return {
      id: i,
      segmentation: { size: [height, width], counts: countOf.get(o.id) ?? "" },
      bbox: o.bbox ?? maskBBox(o.mask, width, height),
      area: maskArea(o.mask),
      predicted_iou: o.score,
      // Not computed for interactive masks (the decoder's logits stay in the worker).
      stability_score: null,
      crop_box: [0, 0, width, height],
      point_coords: pointCoords,
    };
  });
  const file: Sa1bFile = { image: { image_id: 0, width, height, file_name: state.imageName }, annotations };
  return JSON.stringify(file);
}

async function exportJson(): Promise<void> {
  try {
    const json = await buildSa1b();
    state.lastSa1bJson = json;
    download(new Blob([json], { type: "application/json" }), `${baseName()}-sa1b.json`);
    state.dirty = false;
  } catch (e) {
    await reportError(e, "Export");
  }
}

async function loadSa1bJson(file: File): Promise<void> {
  try {
    const client = await getClient();
    const decoded = await client.decodeSa1b(await file.text());
    const { width, height, file_name } = decoded.file.image;
    if (!state.image) {
      // No picture: show the masks on a grey canvas of the annotated size.
      const blank = new ImageData(width, height);
      blank.data.fill(200);
      showImage(blank, file_name || file.name, true);
    } else if (state.image.width !== width || state.image.height !== height) {
      showMessage(
        `${file.name} annotates a ${width}×${height} image, but the current image is ${state.image.width}×${state.image.height}.`,
        "error",
        "size-mismatch",
      );
      return;
    }
    pushHistory();
    addAnnotations(decoded.file, decoded.masks, "file");
    showMessage(`Loaded ${decoded.masks.length} annotations from ${file.name}.`, "info", "loaded-json");
  } catch (e) {
    if (isFatal(e) || isSuperseded(e)) await reportError(e, `Reading ${file.name}`);
    else showMessage(`${file.name} is not a valid SA-1B / COCO RLE JSON: ${errorText(e).message}`, "error", "bad-json");
  }
}

// ---------- wiring ----------

ui.modelFile.addEventListener("change", () => {
  const f = ui.modelFile.files?.[0];
  if (f) void loadModel(f);
  ui.modelFile.value = "";
});
ui.modelUrlForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const url = ui.modelUrl.value.trim();
  if (url) void loadModel(url);
});
ui.cancelDownload.addEventListener("click", () => state.downloading?.abort());
ui.imageFile.addEventListener("change", () => {
  const f = ui.imageFile.files?.[0];
  if (f) void setImageFromBlob(f, f.name);
  ui.imageFile.value = "";
});
ui.newObject.addEventListener("click", () => {
  if (state.imageState !== "ready") return;
  pushHistory();
  const o = newObject();
  state.objects.push(o);
  state.selectedId = o.id;
  clearHover();
  renderAll();
});
ui.undo.addEventListener("click", undo);
ui.redo.addEventListener("click", redo);
ui.clear.addEventListener("click", () => {
  if (state.objects.length === 0) return;
  pushHistory();
  state.objects = [];
  state.selectedId = -1;
  clearHover();
  renderAll();
});
ui.hoverToggle.addEventListener("change", () => clearHover());
ui.everything.addEventListener("click", () => void runEverything());
ui.cancelEverything.addEventListener("click", () => state.generating?.abort());
ui.exportCutout.addEventListener("click", () => void guardExport("cut-out", exportCutout));
ui.exportMasks.addEventListener("click", () => void guardExport("masks", exportMasks));
ui.exportJson.addEventListener("click", () => void exportJson());
ui.loadJson.addEventListener("change", () => {
  const f = ui.loadJson.files?.[0];
  if (f) void loadSa1bJson(f);
  ui.loadJson.value = "";
});

function isCheckpointName(name: string): boolean {
  return /\.(pth|pt|safetensors|bin|ckpt)$/i.test(name);
}

async function openFile(f: File): Promise<void> {
  if (f.type.startsWith("image/")) await setImageFromBlob(f, f.name);
  else if (f.type === "application/json" || /\.json$/i.test(f.name)) await loadSa1bJson(f);
  else if (isCheckpointName(f.name)) await loadModel(f);
  else showMessage(`Don't know what to do with ${f.name}: drop an image, a checkpoint or an SA-1B JSON.`, "warn", "unknown-file");
}

ui.stage.addEventListener("dragover", (ev) => {
  ev.preventDefault();
  ui.stage.classList.add("dragover");
});
ui.stage.addEventListener("dragleave", () => ui.stage.classList.remove("dragover"));
ui.stage.addEventListener("drop", (ev) => {
  ev.preventDefault();
  ui.stage.classList.remove("dragover");
  const f = ev.dataTransfer?.files[0];
  if (f) void openFile(f);
});
document.addEventListener("paste", (ev) => {
  const items = ev.clipboardData?.items;
  if (!items) return;
  for (const item of items) {
    if (item.kind === "file" && item.type.startsWith("image/")) {
      const f = item.getAsFile();
      if (f) {
        ev.preventDefault();
        void setImageFromBlob(f, f.name || "pasted.png");
        return;
      }
    }
  }
});
document.addEventListener("keydown", (ev) => {
  const t = ev.target as HTMLElement | null;
  if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT")) return;
  const mod = ev.ctrlKey || ev.metaKey;
  if (mod && ev.key.toLowerCase() === "z") {
    ev.preventDefault();
    if (ev.shiftKey) redo();
    else undo();
  } else if (mod && ev.key.toLowerCase() === "y") {
    ev.preventDefault();
    redo();
  } else if (!mod && ev.key.toLowerCase() === "n") ui.newObject.click();
  else if (ev.key === "Delete" || ev.key === "Backspace") {
    const s = selected();
    if (s) removeObject(s.id);
  } else if (ev.key === "Escape") {
    drag = null;
    clearHover();
    renderUi();
  }
});

const SAMPLES = ["dog.jpg", "dogs.jpg", "groceries.jpg", "truck.jpg"];
function sampleUrl(name: string): string {
  return new URL(`samples/${name}`, document.baseURI).href;
}
for (const name of SAMPLES) {
  const b = document.createElement("button");
  b.type = "button";
  b.title = name;
  b.dataset.name = name;
  const img = document.createElement("img");
  img.src = sampleUrl(name);
  img.alt = name;
  img.loading = "lazy";
  b.append(img);
  b.onclick = () => void setImageFromUrl(sampleUrl(name));
  ui.samples.append(b);
}

// ---------- no lost work ----------

/** Names of the images whose objects changed since their last SA-1B JSON export. */
function unexportedImages(): string[] {
  const here = state.dirty && state.objects.length > 0 ? [state.imageName] : [];
  return [...here, ...sessions.unexported()];
}

window.addEventListener("beforeunload", (ev) => {
  if (unexportedImages().length === 0) return;
  // Browsers show their own text; this asks them to confirm leaving.
  ev.preventDefault();
  ev.returnValue = "";
});

// A last resort: no promise of the page fails silently.
window.addEventListener("unhandledrejection", (ev) => {
  ev.preventDefault();
  void reportError(ev.reason, "An operation");
});

// ---------- test / debug hook ----------

/** window.__sam: a test and debug hook (not an API): state, masks and exports of the page. */
interface SamDebugHook {
  status(): {
    model: ModelState;
    image: ImageState;
    backend: string | null;
    /** Why that backend runs (ModelInfo.backendReason). */
    backendReason: string | null;
    /** Threads of the CPU backend (ModelInfo.threads; more than 1 on the threaded module). */
    threads: number | null;
    modelType: string | null;
    /** Whether the weights came from Cache Storage (URL loads). */
    fromCache: boolean;
    webgpuAvailable: boolean;
    busy: boolean;
    generating: boolean;
    pendingPredicts: number;
    predictCount: number;
    objects: number;
    selectedId: number;
    width: number;
    height: number;
    /** Images with objects not exported since they changed (what beforeunload warns about). */
    unexported: string[];
    message: { level: string; kind: string; text: string } | null;
    timings: typeof state.timings;
  };
  objects(): {
    id: number;
    name: string;
    source: string;
    points: Point[];
    box: Box | null;
    score: number | null;
    area: number;
    choices: number[];
    chosen: number;
    color: [number, number, number];
  }[];
  /** The mask of an object (default: the selected one), as base64 of its width*height 0/1 bytes. */
  maskBase64(id?: number): string | null;
  /** Alpha channel of the overlay canvas (width*height bytes) as base64. */
  overlayAlphaBase64(): string;
  lastSa1bJson(): string | null;
  lastGenerateJson(): string | null;
  /** The last COCO export (instances.json text). */
  lastCocoJson(): string | null;
  client(): SamClient | null;
}

function toBase64(bytes: Uint8Array): string {
  let s = "";
  const CH = 0x8000;
  for (let i = 0; i < bytes.length; i += CH) s += String.fromCharCode(...bytes.subarray(i, i + CH));
  return btoa(s);
}

const hook: SamDebugHook = {
  status: () => ({
    model: state.modelState,
    image: state.imageState,
    backend: state.modelInfo?.backend ?? null,
    backendReason: state.modelInfo?.backendReason ?? null,
    threads: state.modelInfo?.threads ?? null,
    modelType: state.modelInfo?.modelType ?? null,
    fromCache: state.modelInfo?.fromCache ?? false,
    webgpuAvailable: state.client?.webgpuAvailable ?? false,
    busy: busyText !== null,
    generating: state.generating !== null,
    pendingPredicts: state.pendingPredicts,
    predictCount: state.predictCount,
    objects: state.objects.length,
    selectedId: state.selectedId,
    width: state.image?.width ?? 0,
    height: state.image?.height ?? 0,
    unexported: unexportedImages(),
    message: ui.message.hidden
      ? null
      : { level: ui.message.dataset.level ?? "", kind: ui.message.dataset.kind ?? "", text: ui.message.textContent ?? "" },
    timings: { ...state.timings },
  }),
  objects: () =>
    state.objects.map((o) => ({
      id: o.id,
      name: o.name,
      source: o.source,
      points: o.points.map((p) => ({ ...p })),
      box: o.box ? [...o.box] : null,
      score: o.score,
      area: o.mask ? maskArea(o.mask) : 0,
      choices: o.choices.map((c) => c.score),
      chosen: o.chosen,
      color: o.color,
    })),
  maskBase64: (id) => {
    const o = id === undefined ? selected() : state.objects.find((x) => x.id === id);
    return o?.mask ? toBase64(o.mask) : null;
  },
  overlayAlphaBase64: () => {
    const c = ui.overlayCanvas;
    const d = ctx2d(c).getImageData(0, 0, c.width, c.height).data;
    const a = new Uint8Array(c.width * c.height);
    for (let i = 0; i < a.length; i++) a[i] = d[i * 4 + 3] ?? 0;
    return toBase64(a);
  },
  lastSa1bJson: () => state.lastSa1bJson,
  lastGenerateJson: () => state.lastGenerateJson,
  lastCocoJson: () => lastCocoJson,
  client: () => state.client,
};
(window as unknown as { __sam: SamDebugHook }).__sam = hook;

// ---------- COCO, model menu, outlines (coco-export.ts, models.ts, outline.ts) ----------

/** The category new objects get: the last one typed. */
let lastCategory = DEFAULT_CATEGORY;
let lastCocoJson: string | null = null;

const outlines = new OutlineRenderer(async (masks, height, width) => (await getClient()).maskToPolygons(masks, height, width, { tolerance: OUTLINE_TOLERANCE }));
outlines.enabled = params.get("outlines") === "1";
outlines.mount(ui.hoverToggle.closest("div, section, fieldset") ?? document.body, () => {
  renderOverlay();
  ctx2d(ui.hoverCanvas).clearRect(0, 0, ui.hoverCanvas.width, ui.hoverCanvas.height);
});

/** Every image of the page with objects: the shown one and the stored sessions. */
function sessionImages(): SessionImage[] {
  const out: SessionImage[] = [];
  if (state.image) out.push({ name: state.imageName, width: state.image.width, height: state.image.height, objects: state.objects });
  for (const [key, s] of sessions.entries()) {
    const size = sizeOfKey(key);
    if (size && s.objects.length > 0) out.push({ name: s.name, ...size, objects: s.objects });
  }
  return out;
}

async function exportCoco(format: "polygons" | "rle"): Promise<void> {
  try {
    const { json } = await buildSessionCoco(await getClient(), sessionImages(), format);
    lastCocoJson = json;
    download(new Blob([json], { type: "application/json" }), `${baseName()}-coco-${format}.json`);
  } catch (e) {
    await reportError(e, "COCO export");
  }
}

/** Adds the objects a COCO file holds for the shown image (same file name, else the only image of its size). */
async function loadCoco(file: File): Promise<void> {
  try {
    const img = state.image;
    if (!img) throw new Error("open the image first");
    const loaded = await readCocoFile(await getClient(), await file.text());
    const match = matchImage(loaded, state.imageName, img.width, img.height);
    if (!match) throw new Error(`${file.name} has no image named ${state.imageName} or of size ${img.width}x${img.height}`);
    pushHistory();
    for (const { annotation, category, mask } of match.objects) {
      const o = newObject("file", `${category} ${annotation.id}`);
      o.mask = mask;
      o.category = category;
      o.score = annotation.score ?? null;
      o.bbox = maskBBox(mask, img.width, img.height);
      state.objects.push(o);
    }
    state.selectedId = state.objects.at(-1)?.id ?? -1;
    renderAll();
  } catch (e) {
    await reportError(e, "Loading COCO");
  }
}

const coco = mountCocoControls(ui.exportJson, {
  setCategory: (name) => {
    lastCategory = name;
    const o = selected();
    if (o && o.category !== name) {
      pushHistory();
      o.category = name;
    }
  },
  export: (format) => void exportCoco(format),
  load: (file) => void loadCoco(file),
});

/** Loads a preset of the model menu; a failed download says to download the file and pick it. */
async function loadPreset(p: ModelPreset): Promise<void> {
  const url = presetUrl(p, params.get("mirror"));
  ui.modelUrl.value = url;
  if (!(await loadModel(url)) && state.lastError?.kind === "download") {
    showMessage(downloadFailedMessage(p, url, state.lastError.message), "error", "download-preset");
  }
}
const presetMenu = mountModelMenu(ui.modelUrlForm, (p) => void loadPreset(p));

// ---------- start ----------

async function main(): Promise<void> {
  const backend = params.get("backend");
  if (backend === "cpu" || backend === "webgpu" || backend === "auto") ui.backend.value = backend;
  if (params.get("hover") === "0") ui.hoverToggle.checked = false;
  if (params.get("cache") === "0") ui.useCache.checked = false;
  applyAmgParams();
  updateStatus();
  try {
    await startClient();
  } catch (e) {
    showMessage(`Could not start the model worker: ${errorText(e).message}`, "error", "worker");
    return;
  }
  const image = params.get("image");
  const imageTask =
    image === null
      ? setImageFromUrl(sampleUrl(SAMPLES[0] ?? "dog.jpg"))
      : image.startsWith("sample:")
        ? setImageFromUrl(sampleUrl(image.slice(7)))
        : setImageFromUrl(new URL(image, location.href).href);
  const model = params.get("model");
  const preset = model ? presetNamed(model) : null;
  if (preset) {
    presetMenu.value = preset.id;
    presetMenu.dispatchEvent(new Event("change"));
    await Promise.all([imageTask, loadPreset(preset)]);
  } else if (model) {
    ui.modelUrl.value = model;
    await Promise.all([imageTask, loadModel(new URL(model, location.href).href)]);
  } else {
    await imageTask;
    showMessage("Choose a SAM checkpoint (official .pth, mobile_sam.pt or .safetensors) or give its URL to start.", "info", "need-model");
  }
}

void main();
