// The side panels and the header: the mask choices, the object list, the backend badge, the status and
// progress lines and the busy spinner. They read the store; clicks go to its commands.
import type { ModelInfo, ProgressEvent } from "../js/types.js";
import { maskArea } from "../js/masks.js";
import { fmtBytes, fmtMs, ui } from "./dom.js";
import { cocoControls } from "./export.js";
import { clearHover } from "./hover.js";
import { store } from "./state.js";

export function renderChoices(): void {
  ui.choices.replaceChildren();
  const o = store.selected();
  if (!o || o.choices.length < 2) return;
  const best = o.choices.reduce((bi, c, i, a) => (c.score > (a[bi]?.score ?? -Infinity) ? i : bi), 0);
  o.choices.forEach((c, i) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = `Mask ${i + 1}: ${c.score.toFixed(3)}${i === best ? " ★" : ""}`;
    b.title = i === best ? "highest predicted IoU" : "predicted IoU";
    b.dataset.index = String(i);
    b.classList.toggle("active", i === o.chosen);
    b.onclick = () => store.chooseMask(i);
    ui.choices.append(b);
  });
}

export function renderList(): void {
  ui.objectList.replaceChildren();
  for (const o of store.objects) {
    const li = document.createElement("li");
    li.dataset.id = String(o.id);
    li.classList.toggle("selected", o.id === store.selectedId);
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
      store.removeObject(o.id);
    };
    li.append(sw, name, meta, del);
    li.onclick = () => {
      clearHover();
      store.select(o.id);
    };
    ui.objectList.append(li);
  }
}

let busyText: string | null = null;

/** Whether the busy spinner shows. */
export function isBusy(): boolean {
  return busyText !== null;
}

export function setBusy(text: string | null): void {
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
    b.textContent = store.modelState === "loading" ? "loading…" : "no model";
    b.title = "backend";
  } else {
    const why = badgeReason(m);
    const label = document.createElement("span");
    label.textContent = (m.backend === "webgpu" ? "WebGPU" : "CPU") + (m.precision === "f16" ? " · f16" : "");
    const reason = document.createElement("span");
    reason.className = "why";
    reason.textContent = why ? ` (${why})` : "";
    b.replaceChildren(label, reason);
    b.title = m.backendInfo;
  }
  b.className = `badge ${m?.backend ?? ""}`;
  b.dataset.backend = m?.backend ?? "";
}

export function updateStatus(): void {
  const m = store.modelInfo;
  renderBadge(m);
  ui.modelType.textContent = m ? m.modelType : "";
  ui.embedTime.textContent = store.imageInfo ? `embedding ${fmtMs(store.imageInfo.embedMs)}` : store.imageState === "embedding" ? "embedding…" : "";
  ui.decodeTime.textContent = store.timings.decodeMs > 0 ? `decode ${fmtMs(store.timings.decodeMs)}` : "";
  const ready = store.imageState === "ready";
  const generating = store.generating !== null;
  ui.everything.disabled = !ready || generating;
  ui.cancelEverything.hidden = !generating;
  ui.undo.disabled = store.undo.length === 0;
  ui.redo.disabled = store.redo.length === 0;
  ui.clear.disabled = store.objects.length === 0;
  ui.newObject.disabled = !ready;
  const sel = store.selected();
  ui.exportCutout.disabled = !sel?.mask || !store.image;
  const any = store.objects.some((o) => o.mask);
  ui.exportMasks.disabled = !any;
  ui.exportJson.disabled = !any;
  const coco = cocoControls();
  if (coco) {
    coco.category.value = sel?.category ?? "";
    coco.category.disabled = !sel;
  }
  if (!store.image) ui.stageHint.textContent = store.modelState === "ready" ? "Pick an image." : "Load a model and pick an image.";
  document.body.dataset.modelState = store.modelState;
  document.body.dataset.imageState = store.imageState;
}

export function onProgress(p: ProgressEvent): void {
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
