// The hover preview: the mask a click at the pointer would give, asked of the worker as the pointer moves.
// "Latest wins": SamClient.predictLatest drops a request still queued when a newer one comes, and a result
// for an older hover (the pointer left, a click came, the image changed) is not drawn.
// With ?gpuHover=1 on WebGPU the worker draws it itself (SamClient.drawPreview) on a canvas of its own over the
// hover canvas: the mask goes from the decoder to the screen on the GPU, with no readback.
import type { SamClient } from "../js/client.js";
import { params, ui } from "./dom.js";
import { currentDrag } from "./input.js";
import { isFatal } from "./recovery.js";
import { clearCanvas, drawHover, outlines } from "./render.js";
import { currentClient, reportError } from "./session.js";
import { promptFor, store } from "./state.js";

/** The canvas the worker draws previews on (WebGPU backend), or null: previews come back as masks. */
let gpuCanvas: HTMLCanvasElement | null = null;
/** Whether the GPU canvas may show a preview (a draw was sent since the last clear). */
let gpuShown = false;
/** GPU previews drawn so far (the debug hook's `gpuPreviews`). */
let gpuDrawn = 0;

/**
 * After a model loaded, with `?gpuHover=1` on the WebGPU backend: a fresh canvas over the hover canvas, handed
 * to the worker (a canvas is transferred once, so each model gets its own). Opt-in: a WebGPU canvas could not be
 * shown on this project's test machines (headless chromium on SwiftShader, whose GPU process then loses its
 * devices), so the default stays the read-back preview.
 */
export async function attachGpuPreview(client: SamClient, backend: string): Promise<void> {
  gpuCanvas?.remove();
  gpuCanvas = null;
  gpuShown = false;
  if (backend !== "webgpu" || params.get("gpuHover") !== "1") return;
  const c = document.createElement("canvas");
  c.id = "hover-gpu-canvas";
  c.width = ui.hoverCanvas.width;
  c.height = ui.hoverCanvas.height;
  ui.hoverCanvas.after(c);
  try {
    await client.setPreviewCanvas(c.transferControlToOffscreen());
    gpuCanvas = c;
  } catch (e) {
    c.remove();
    console.warn("hover previews are read back: the worker could not draw on a canvas", e);
  }
}

/** GPU previews drawn so far, and whether the worker draws them (tests). */
export function gpuPreviewStatus(): { gpuPreview: boolean; gpuPreviews: number } {
  return { gpuPreview: gpuCanvas !== null, gpuPreviews: gpuDrawn };
}

/** At most one hover prediction per this many milliseconds. */
const HOVER_MIN_INTERVAL_MS = 40;

let hoverEpoch = 0;
let hoverPoint: { x: number; y: number } | null = null;
let hoverScheduled = false;
let lastHoverAt = 0;

/** Drops the preview and any hover request in flight. */
export function clearHover(): void {
  hoverEpoch++;
  hoverPoint = null;
  const client = currentClient();
  client?.cancelLatest("hover");
  clearCanvas(ui.hoverCanvas);
  if (gpuShown && client) {
    // Queued in the worker after a draw still running, so that one is cleared too.
    gpuShown = false;
    client.clearPreview().catch(() => undefined);
  }
}

export function hoverEnabled(): boolean {
  return ui.hoverToggle.checked && store.imageState === "ready" && !store.generating && currentDrag() === null;
}

/** Asks for the preview at image pixel (x, y) at the next frame, at most every HOVER_MIN_INTERVAL_MS. */
export function scheduleHover(x: number, y: number): void {
  hoverPoint = { x, y };
  if (hoverScheduled) return;
  hoverScheduled = true;
  const wait = Math.max(0, HOVER_MIN_INTERVAL_MS - (performance.now() - lastHoverAt));
  setTimeout(() => requestAnimationFrame(runHover), wait);
}

function runHover(): void {
  hoverScheduled = false;
  const p = hoverPoint;
  const client = currentClient();
  if (!p || !client || !hoverEnabled()) return;
  lastHoverAt = performance.now();
  const epoch = hoverEpoch;
  const sel = store.selected();
  const base = sel && sel.source === "prompt" ? sel : null;
  const prompt = promptFor([...(base?.points ?? []), { x: p.x, y: p.y, label: 1 }], base?.box ?? null, base?.lowRes ?? null);
  const color = base?.color ?? store.nextColor();
  if (gpuCanvas && !outlines.enabled) {
    gpuShown = true;
    client.drawPreviewLatest(prompt, color, "hover").then(
      (r) => {
        if (r) gpuDrawn++;
      },
      (e: unknown) => {
        if (isFatal(e)) void reportError(e, "Hover preview");
      },
    );
    return;
  }
  // The preview shows the best mask only: ask for it alone, without low-res logits.
  client.predictLatest(prompt, "hover", { masks: "best", lowResLogits: false }).then(
    (r) => {
      if (!r || epoch !== hoverEpoch || !store.image) return;
      const mask = r.masks[r.best];
      if (mask) drawHover(mask, color);
    },
    (e: unknown) => {
      // A hover error is not worth a message (the click will report it), but a dead worker is restarted.
      if (isFatal(e)) void reportError(e, "Hover preview");
    },
  );
}
