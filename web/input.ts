// Input: pointer clicks and drags on the image, keys, buttons, file pickers, drop and paste, each turned into
// a command of the store or of the session; the store's change then schedules the render (render.ts).
import { ui } from "./dom.js";
import { runEverything } from "./everything.js";
import { exportCutout, exportJson, exportMasks, guardExport, loadSa1bJson } from "./export.js";
import { clearHover, hoverEnabled, scheduleHover } from "./hover.js";
import { setImageFromBlob } from "./image.js";
import { showMessage } from "./messages.js";
import { invalidate, Part } from "./render.js";
import { loadModel, predictObject } from "./session.js";
import { store, type Box, type SamObject } from "./state.js";

/** A pointer press on the image: a click, or a box once it moved DRAG_THRESHOLD_PX. */
export interface Drag {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  moved: boolean;
  button: number;
  shift: boolean;
  pointerId: number;
}

let drag: Drag | null = null;

/** The box being dragged, or null. */
export function currentDrag(): Drag | null {
  return drag;
}

/** Undo and redo of the store, dropping the hover preview. */
function undo(): void {
  if (store.undoStep()) clearHover();
}

function redo(): void {
  if (store.redoStep()) clearHover();
}

function isCheckpointName(name: string): boolean {
  return /\.(pth|pt|safetensors|bin|ckpt)$/i.test(name);
}

async function openFile(f: File): Promise<void> {
  if (f.type.startsWith("image/")) await setImageFromBlob(f, f.name);
  else if (f.type === "application/json" || /\.json$/i.test(f.name)) await loadSa1bJson(f);
  else if (isCheckpointName(f.name)) await loadModel(f);
  else showMessage(`Don't know what to do with ${f.name}: drop an image, a checkpoint or an SA-1B JSON.`, "warn", "unknown-file");
}

/** Runs a prompt command (a click or a box) and predicts the object it changed. */
function command(run: () => SamObject | null): void {
  if (store.imageState !== "ready") return;
  clearHover();
  const o = run();
  if (o) void predictObject(o);
}

function toImage(ev: MouseEvent): { x: number; y: number } {
  const c = ui.uiCanvas;
  const r = c.getBoundingClientRect();
  const x = Math.floor(((ev.clientX - r.left) * c.width) / r.width);
  const y = Math.floor(((ev.clientY - r.top) * c.height) / r.height);
  return { x: Math.min(c.width - 1, Math.max(0, x)), y: Math.min(c.height - 1, Math.max(0, y)) };
}

export function normBox(d: { x0: number; y0: number; x1: number; y1: number }): Box {
  return [Math.min(d.x0, d.x1), Math.min(d.y0, d.y1), Math.max(d.x0, d.x1), Math.max(d.y0, d.y1)];
}

const DRAG_THRESHOLD_PX = 5;
let dragStartClient = { x: 0, y: 0 };

/** Wires the page's controls (once, at start). */
export function mountInput(): void {
  ui.uiCanvas.addEventListener("contextmenu", (ev) => ev.preventDefault());
  ui.uiCanvas.addEventListener("pointerdown", (ev) => {
    if (store.imageState !== "ready" || (ev.button !== 0 && ev.button !== 2)) return;
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
      if (drag.moved) invalidate(Part.canvasUi);
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
      if (b[2] > b[0] && b[3] > b[1]) command(() => store.setBox(b));
      else invalidate(Part.canvasUi);
    } else {
      const negative = d.button === 2 || d.shift || ev.shiftKey;
      command(() => store.addPoint(d.x0, d.y0, negative ? 0 : 1));
    }
  });
  ui.uiCanvas.addEventListener("pointercancel", () => {
    drag = null;
    invalidate(Part.canvasUi);
  });
  ui.uiCanvas.addEventListener("pointerleave", () => {
    if (!drag) clearHover();
  });

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
  ui.cancelDownload.addEventListener("click", () => store.downloading?.abort());
  ui.imageFile.addEventListener("change", () => {
    const f = ui.imageFile.files?.[0];
    if (f) void setImageFromBlob(f, f.name);
    ui.imageFile.value = "";
  });
  ui.newObject.addEventListener("click", () => {
    if (store.imageState !== "ready") return;
    clearHover();
    store.addEmptyObject();
  });
  ui.undo.addEventListener("click", undo);
  ui.redo.addEventListener("click", redo);
  ui.clear.addEventListener("click", () => {
    if (store.objects.length === 0) return;
    clearHover();
    store.clearObjects();
  });
  ui.hoverToggle.addEventListener("change", () => clearHover());
  ui.everything.addEventListener("click", () => void runEverything());
  ui.cancelEverything.addEventListener("click", () => store.generating?.abort());
  ui.exportCutout.addEventListener("click", () => void guardExport("cut-out", exportCutout));
  ui.exportMasks.addEventListener("click", () => void guardExport("masks", exportMasks));
  ui.exportJson.addEventListener("click", () => void exportJson());
  ui.loadJson.addEventListener("change", () => {
    const f = ui.loadJson.files?.[0];
    if (f) void loadSa1bJson(f);
    ui.loadJson.value = "";
  });

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
      const s = store.selected();
      if (s) store.removeObject(s.id);
    } else if (ev.key === "Escape") {
      drag = null;
      clearHover();
      invalidate(Part.canvasUi);
    }
  });
}
