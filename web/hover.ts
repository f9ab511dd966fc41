// The hover preview: the mask a click at the pointer would give, asked of the worker as the pointer moves.
// "Latest wins": SamClient.predictLatest drops a request still queued when a newer one comes, and a result
// for an older hover (the pointer left, a click came, the image changed) is not drawn.
import { ui } from "./dom.js";
import { currentDrag } from "./input.js";
import { isFatal } from "./recovery.js";
import { clearCanvas, drawHover } from "./render.js";
import { currentClient, reportError } from "./session.js";
import { promptFor, store } from "./state.js";

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
  currentClient()?.cancelLatest("hover");
  clearCanvas(ui.hoverCanvas);
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
  // The preview shows the best mask only: ask for it alone, without low-res logits.
  client.predictLatest(prompt, "hover", { masks: "best", lowResLogits: false }).then(
    (r) => {
      if (!r || epoch !== hoverEpoch || !store.image) return;
      const mask = r.masks[r.best];
      if (mask) drawHover(mask, base?.color ?? store.nextColor());
    },
    (e: unknown) => {
      // A hover error is not worth a message (the click will report it), but a dead worker is restarted.
      if (isFatal(e)) void reportError(e, "Hover preview");
    },
  );
}
