// The page's elements (web/index.html), its URL parameters and small DOM and formatting helpers.

/** The page's URL parameters (see main.ts). */
export const params = new URLSearchParams(location.search);

export function $<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el as T;
}

export const ui = {
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

export function ctx2d(c: HTMLCanvasElement): CanvasRenderingContext2D {
  const ctx = c.getContext("2d", { willReadFrequently: true });
  if (!ctx) throw new Error("no 2d canvas context");
  return ctx;
}

export function fmtBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(0)} KiB`;
  return `${n} B`;
}

export function fmtMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`;
}

/** Saves `blob` as file `name` (a download). */
export function download(blob: Blob, name: string): void {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
}
