// window.__sam: a test and debug hook (not an API) that tests/e2e read: the state, the masks and the last
// exports of the page, so that tests wait for states and read results without scraping the UI.
import type { SamClient } from "../js/client.js";
import { maskArea } from "../js/masks.js";
import { ctx2d, ui } from "./dom.js";
import { gpuPreviewStatus } from "./hover.js";
import { unexportedImages } from "./image.js";
import { currentMessage } from "./messages.js";
import { isBusy } from "./panels.js";
import { flushRender } from "./render.js";
import { currentClient } from "./session.js";
import { store, type Box, type ImageState, type ModelState, type Point } from "./state.js";

/** window.__sam: a test and debug hook (not an API): state, masks and exports of the page. */
export interface SamDebugHook {
  status(): {
    model: ModelState;
    image: ImageState;
    backend: string | null;
    /** Why that backend runs (ModelInfo.backendReason). */
    backendReason: string | null;
    /** Threads of the CPU backend (ModelInfo.threads; more than 1 on the threaded module). */
    threads: number | null;
    /** Whether the CPU backend runs the relaxed-SIMD build (ModelInfo.relaxedSimd). */
    relaxedSimd: boolean | null;
    modelType: string | null;
    /** Whether the weights came from Cache Storage (URL loads). */
    fromCache: boolean;
    webgpuAvailable: boolean;
    busy: boolean;
    generating: boolean;
    pendingPredicts: number;
    predictCount: number;
    /** Whether the worker draws hover previews on the GPU (WebGPU backend), and how many it drew. */
    gpuPreview: boolean;
    gpuPreviews: number;
    objects: number;
    selectedId: number;
    width: number;
    height: number;
    /** Images with objects not exported since they changed (what beforeunload warns about). */
    unexported: string[];
    message: { level: string; kind: string; text: string } | null;
    timings: typeof store.timings;
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

/** Installs window.__sam. */
export function installDebugHook(): void {
  const hook: SamDebugHook = {
    status: () => ({
      model: store.modelState,
      image: store.imageState,
      backend: store.modelInfo?.backend ?? null,
      backendReason: store.modelInfo?.backendReason ?? null,
      threads: store.modelInfo?.threads ?? null,
      relaxedSimd: store.modelInfo?.relaxedSimd ?? null,
      modelType: store.modelInfo?.modelType ?? null,
      fromCache: store.modelInfo?.fromCache ?? false,
      webgpuAvailable: currentClient()?.webgpuAvailable ?? false,
      busy: isBusy(),
      generating: store.generating !== null,
      pendingPredicts: store.pendingPredicts,
      predictCount: store.predictCount,
      ...gpuPreviewStatus(),
      objects: store.objects.length,
      selectedId: store.selectedId,
      width: store.image?.width ?? 0,
      height: store.image?.height ?? 0,
      unexported: unexportedImages(),
      message: currentMessage(),
      timings: { ...store.timings },
    }),
    objects: () =>
      store.objects.map((o) => ({
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
      const o = id === undefined ? store.selected() : store.objects.find((x) => x.id === id);
      return o?.mask ? toBase64(o.mask) : null;
    },
    overlayAlphaBase64: () => {
      flushRender();
      const c = ui.overlayCanvas;
      const d = ctx2d(c).getImageData(0, 0, c.width, c.height).data;
      const a = new Uint8Array(c.width * c.height);
      for (let i = 0; i < a.length; i++) a[i] = d[i * 4 + 3] ?? 0;
      return toBase64(a);
    },
    lastSa1bJson: () => store.lastSa1bJson,
    lastGenerateJson: () => store.lastGenerateJson,
    lastCocoJson: () => store.lastCocoJson,
    client: () => currentClient(),
  };
  (window as unknown as { __sam: SamDebugHook }).__sam = hook;
}
