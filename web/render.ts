// Drawing: the flow is input -> command -> state -> one invalidate() -> render. Changes mark parts of the
// page as stale; one render per frame redraws them (canvases at the image's resolution, panels, status).
import { ctx2d, params, ui } from "./dom.js";
import { currentDrag, normBox } from "./input.js";
import { OUTLINE_TOLERANCE, OutlineRenderer } from "./outline.js";
import { renderChoices, renderList, updateStatus } from "./panels.js";
import { getClient, reportError } from "./session.js";
import { store, type Box } from "./state.js";

/** Parts of the page that invalidate() marks stale. */
export const Part = { overlay: 1, canvasUi: 2, panels: 4, status: 8, all: 15 } as const;

let stale = 0;
let scheduled = false;

/** Marks `parts` (default: all) stale; they are drawn once at the next frame. */
export function invalidate(parts: number = Part.all): void {
  stale |= parts;
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(flushRender);
  // A hidden page gets no frames: draw anyway, a little later.
  setTimeout(flushRender, 250);
}

/** Draws the stale parts now (the test hook and the masks export read the canvases right after). */
export function flushRender(): void {
  scheduled = false;
  const parts = stale;
  stale = 0;
  if (parts & Part.overlay) renderOverlay();
  if (parts & Part.canvasUi) renderUi();
  if (parts & Part.panels) {
    renderChoices();
    renderList();
  }
  if (parts & Part.status) updateStatus();
}

/** Objects and the hover preview drawn as polygon outlines instead of filled masks (?outlines=1). */
export const outlines = new OutlineRenderer(async (masks, height, width) => (await getClient()).maskToPolygons(masks, height, width, { tolerance: OUTLINE_TOLERANCE }));
outlines.enabled = params.get("outlines") === "1";

/** Adds the outlines toggle to the page. */
export function mountOutlines(): void {
  outlines.mount(ui.hoverToggle.closest("div, section, fieldset") ?? document.body, () => {
    renderOverlay();
    clearCanvas(ui.hoverCanvas);
  });
}

export function clearCanvas(c: HTMLCanvasElement): void {
  ctx2d(c).clearRect(0, 0, c.width, c.height);
}

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

/** The hover preview's mask on its own canvas (drawn at once, not per frame: a newer hover replaces it). */
export function drawHover(mask: Uint8Array, color: [number, number, number]): void {
  const c = ui.hoverCanvas;
  if (outlines.enabled) return void outlines.draw(c, [{ mask, color, lineWidth: 1.5 }]);
  const ctx = ctx2d(c);
  const img = ctx.createImageData(c.width, c.height);
  paintMask(img, mask, color, 90, null, true);
  ctx.putImageData(img, 0, 0);
}

/** The overlay: every object's mask in its colour, at the image's resolution (tests read these pixels). */
function renderOverlay(): void {
  const c = ui.overlayCanvas;
  if (outlines.enabled) {
    const items = store.objects.flatMap((o) => (o.mask ? [{ mask: o.mask, color: o.color, lineWidth: o.id === store.selectedId ? 3 : 1.5 }] : []));
    return void outlines.draw(c, items).catch((e: unknown) => reportError(e, "Outlines"));
  }
  const ctx = ctx2d(c);
  const img = ctx.createImageData(c.width, c.height);
  const sel = store.selectedId;
  for (const o of store.objects) {
    if (!o.mask || o.id === sel) continue;
    paintMask(img, o.mask, o.color, 110, o.bbox, false);
  }
  const s = store.selected();
  if (s?.mask) paintMask(img, s.mask, s.color, 150, s.bbox, true);
  ctx.putImageData(img, 0, 0);
}

/** The prompts of the selected object (points, box) and the box being dragged. */
function renderUi(): void {
  const c = ui.uiCanvas;
  const ctx = ctx2d(c);
  ctx.clearRect(0, 0, c.width, c.height);
  const s = Math.max(c.width, c.height) / 100;
  const sel = store.selected();
  const drawBox = (b: Box, color: string, dash: boolean): void => {
    ctx.save();
    ctx.lineWidth = Math.max(2, s * 0.35);
    ctx.strokeStyle = color;
    if (dash) ctx.setLineDash([s, s * 0.6]);
    ctx.strokeRect(b[0], b[1], b[2] - b[0], b[3] - b[1]);
    ctx.restore();
  };
  if (sel?.box) drawBox(sel.box, `rgb(${sel.color.join(",")})`, false);
  const drag = currentDrag();
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
