// The model worker's lifecycle: the SamClient, loading a checkpoint, embedding the shown image, predicting an
// object's prompts, and the one recovery path after a fatal error (a new worker, the model and image again).
import { SamClient } from "../js/client.js";
import type { BackendChoice, ModelInfo, PrecisionChoice } from "../js/types.js";
import { fmtBytes, fmtMs, params, ui } from "./dom.js";
import { attachGpuPreview, clearHover } from "./hover.js";
import { clearMessage, errorText, showMessage } from "./messages.js";
import { onProgress, setBusy } from "./panels.js";
import { isFatal, isSuperseded, RestartLimiter } from "./recovery.js";
import { invalidate, Part } from "./render.js";
import { promptFor, store, type SamObject } from "./state.js";

let client: SamClient | null = null;

/** The running client, or null (none yet, or being replaced after a crash). */
export function currentClient(): SamClient | null {
  return client;
}

/**
 * Shows an error of `context` (and `suffix`, e.g. what still works); after a fatal one (the worker's wasm
 * module trapped, or the worker died) restarts the worker and reloads the model (recoverWorker).
 */
export async function reportError(e: unknown, context: string, suffix = ""): Promise<void> {
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
    const old = client;
    client = null;
    store.modelState = "none";
    store.modelInfo = null;
    store.embeddedToken = -1;
    store.generating?.abort();
    if (store.imageState === "ready" || store.imageState === "embedding") store.imageState = "waiting-for-model";
    clearHover();
    invalidate(Part.status);
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
    const source = store.modelSource;
    if (!source) return;
    showMessage(`${why} Restarting the model…`, "warn", "recovering");
    if (await loadModel(source, true)) showMessage(`${why} The model was restarted and loaded again; your objects are kept.`, "warn", "recovered");
  })().finally(() => {
    recovering = false;
    const again = recoverAgain;
    recoverAgain = null;
    if (again) recoverWorker(again);
    invalidate(Part.status);
  });
}

export async function startClient(): Promise<SamClient> {
  const created = await SamClient.create({
    worker: () => new Worker(new URL("../js/worker.ts", import.meta.url), { type: "module", name: "sam-browser" }),
    // The threaded CPU module (vite.config.ts serves it there); ?threads=N sets its thread count (1: one thread).
    threadsUrl: new URL("./sam-wasm-threads/sam_wasm.js", location.href),
    ...(params.has("threads") ? { threads: Number(params.get("threads")) } : {}),
  });
  created.on("progress", onProgress);
  created.on("backend", (b) => {
    if (b.webgpuMissing)
      showMessage("WebGPU is not available in this browser (no adapter), so the model runs on the CPU (slower).", "warn", "webgpu-missing");
  });
  client = created;
  return created;
}

export async function getClient(): Promise<SamClient> {
  return client ?? (await startClient());
}

/**
 * Loads a checkpoint (after a restart: `recovering`, messages kept). A failure keeps the previous model,
 * which the worker frees only once the new one is built, so the page goes on with it and says so.
 * Resolves to whether the new model loaded; never rejects.
 */
export async function loadModel(source: File | string, recovering = false): Promise<boolean> {
  const backend = ui.backend.value as BackendChoice;
  const p = params.get("precision");
  const precision: PrecisionChoice = p === "f16" || p === "auto" ? p : "f32";
  const previous = store.modelState === "ready" ? { info: store.modelInfo, embedded: store.embeddedToken, image: store.imageState } : null;
  store.modelState = "loading";
  store.modelInfo = null;
  store.embeddedToken = -1;
  if (store.imageState === "ready") store.imageState = "waiting-for-model";
  if (!recovering) clearMessage();
  let loaded = false;
  clearHover();
  ui.modelInfo.textContent = "";
  ui.modelProgressRow.hidden = false;
  ui.modelProgress.value = 0;
  ui.modelProgressText.textContent = "";
  invalidate(Part.status);
  const name = typeof source === "string" ? source : source.name;
  setBusy(`loading ${name.split("/").pop() ?? name}…`);
  try {
    const c = await getClient();
    let info: ModelInfo;
    if (typeof source === "string") {
      store.downloading = new AbortController();
      info = await c.load(source, { backend, precision, cache: ui.useCache.checked, signal: store.downloading.signal });
    } else {
      // The File itself: the worker reads it in slices (a 2.4 GiB ViT-H never is one buffer).
      info = await c.load(source, { backend, precision });
    }
    store.modelInfo = info;
    store.modelState = "ready";
    store.modelSource = source;
    loaded = true;
    // On WebGPU the worker draws hover previews itself (no readback).
    await attachGpuPreview(c, info.backend);
    store.timings.downloadMs = info.downloadMs;
    store.timings.buildMs = info.buildMs;
    const from = typeof source === "string" ? (info.fromCache ? ", from Cache Storage" : `, downloaded in ${fmtMs(info.downloadMs)}`) : "";
    ui.modelInfo.textContent = `${info.modelType}, ${fmtBytes(info.bytes)}${from}; built in ${fmtMs(info.buildMs)}. ${info.backendInfo}`;
    ui.modelProgressRow.hidden = true;
  } catch (e) {
    ui.modelProgressRow.hidden = true;
    if (previous?.info && !isFatal(e) && !isSuperseded(e) && client) {
      // The worker still holds the previous model and its image's embedding.
      store.modelState = "ready";
      store.modelInfo = previous.info;
      store.embeddedToken = previous.embedded;
      if (previous.embedded === store.imageToken && previous.image === "ready") store.imageState = "ready";
      await reportError(e, "Loading the model", `The previous model (${previous.info.modelType}, ${previous.info.backend}) is still loaded and usable.`);
    } else {
      store.modelState = "error";
      await reportError(e, "Loading the model");
    }
  } finally {
    store.downloading = null;
    setBusy(null);
    invalidate(Part.status);
  }
  if (store.modelState === "ready") await embedCurrentImage();
  return loaded;
}

export async function embedCurrentImage(): Promise<void> {
  const c = client;
  const img = store.image;
  if (!c || !img || store.modelState !== "ready" || store.imageState === "display-only") {
    invalidate(Part.status);
    return;
  }
  const token = store.imageToken;
  if (store.embeddedToken === token) return;
  store.imageState = "embedding";
  store.embeddedToken = -1;
  invalidate(Part.status);
  setBusy("embedding the image…");
  try {
    const info = await c.setImage(img);
    if (token !== store.imageToken) return; // a newer image came meanwhile
    store.imageInfo = info;
    store.embeddedToken = token;
    store.imageState = "ready";
    store.timings.embedMs = info.embedMs;
    // Prompts whose prediction was dropped (the image changed, or the worker restarted) are predicted now.
    for (const o of store.objects) if (o.source === "prompt" && !o.mask && (o.points.length > 0 || o.box)) void predictObject(o);
  } catch (e) {
    if (token !== store.imageToken || isSuperseded(e)) return;
    store.imageState = "error";
    await reportError(e, "Embedding the image");
  } finally {
    setBusy(null);
    invalidate(Part.status);
  }
}

export async function predictObject(o: SamObject): Promise<void> {
  const c = client;
  if (!c || store.imageState !== "ready") return;
  if (o.points.length === 0 && !o.box) return store.clearMask(o);
  const version = ++o.version;
  const token = store.imageToken;
  // Refinement: feed back the low-res mask of the previous prediction (not for the very first prompt).
  const prompt = promptFor(o.points, o.box, o.lowRes);
  store.pendingPredicts++;
  invalidate(Part.status);
  try {
    const r = await c.predict(prompt);
    store.timings.decodeMs = r.decodeMs;
    store.applyPrediction(o.id, version, token, r);
  } catch (e) {
    await reportError(e, "Prediction");
  } finally {
    store.pendingPredicts--;
    invalidate(Part.status);
  }
}

