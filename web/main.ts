// The demo page: load a SAM checkpoint, pick an image, click/drag to segment, "everything", export.
// All model work runs in the sam-browser worker (js/). This file wires the modules at start:
//   store.ts (store, objects, undo/redo; no DOM)  session.ts (worker, model, embedding, predictions)
//   input.ts -> store commands -> render.ts (one render per frame)  panels.ts  hover.ts  image.ts
//   everything.ts  export.ts  debug-hook.ts (window.__sam)  dom.ts (elements, URL parameters)
//
// URL parameters (handy for links and for the end-to-end tests):
//   ?model=URL          load this checkpoint at start (downloaded once, then from Cache Storage)
//   ?model=mobile_sam   a preset of the model menu (web/models.ts: mobile_sam, vit_b, vit_l, vit_h)
//   ?mirror=URL         download the presets from URL<file> (a local mirror)
//   ?outlines=1         draw objects as polygon outlines
//   ?backend=auto|webgpu|cpu
//   ?precision=f32|f16|auto   what the model computes in (f16: WebGPU with shader-f16 only; default f32)
//   ?threads=N          CPU threads on this cross-origin isolated page (default: the cores, at most 8; 1: one thread)
//   ?image=URL | sample:NAME   start with this image (default: the first bundled sample)
//   ?hover=0            no hover preview
//   ?gpuHover=1         on WebGPU, hover previews drawn by the worker on the GPU, nothing read back (opt-in)
//   ?cache=0            do not use Cache Storage for ?model downloads
//   ?pps=N              points per side of "Everything"
//   ?amg={"predIouThresh":0.5,...}   any GenerateOptions of "Everything" (JSON)
//
// Test/debug hook: window.__sam (debug-hook.ts) exposes the state, the masks and
// the last exported SA-1B JSON so that tests can wait for states and read results without scraping the UI.
import { installDebugHook } from "./debug-hook.js";
import { params, ui } from "./dom.js";
import { applyAmgParams } from "./everything.js";
import { mountCoco } from "./export.js";
import { setImageFromUrl, unexportedImages } from "./image.js";
import { mountInput } from "./input.js";
import { errorText, showMessage } from "./messages.js";
import { downloadFailedMessage, mountModelMenu, presetNamed, presetUrl, type ModelPreset } from "./models.js";
import { invalidate, mountOutlines, Part } from "./render.js";
import { loadModel, reportError, startClient } from "./session.js";
import { store } from "./state.js";

const SAMPLES = ["dog.jpg", "dogs.jpg", "groceries.jpg", "truck.jpg"];

function sampleUrl(name: string): string {
  return new URL(`samples/${name}`, document.baseURI).href;
}

/** The bundled sample images as buttons. */
function mountSamples(): void {
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
}

/** Loads a preset of the model menu; a failed download says to download the file and pick it. */
async function loadPreset(p: ModelPreset): Promise<void> {
  const url = presetUrl(p, params.get("mirror"));
  ui.modelUrl.value = url;
  if (!(await loadModel(url)) && store.lastError?.kind === "download") {
    showMessage(downloadFailedMessage(p, url, store.lastError.message), "error", "download-preset");
  }
}

async function main(): Promise<void> {
  store.onChange(() => invalidate());
  mountInput();
  mountSamples();
  mountOutlines();
  mountCoco();
  const presetMenu = mountModelMenu(ui.modelUrlForm, (p) => void loadPreset(p));
  installDebugHook();
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
  const backend = params.get("backend");
  if (backend === "cpu" || backend === "webgpu" || backend === "auto") ui.backend.value = backend;
  if (params.get("hover") === "0") ui.hoverToggle.checked = false;
  if (params.get("cache") === "0") ui.useCache.checked = false;
  applyAmgParams();
  invalidate(Part.status);
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
