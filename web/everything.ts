// "Everything": the automatic mask generator's settings (form and ?pps= / ?amg= URL parameters) and its run,
// whose SA-1B result becomes objects of the store.
import type { GenerateOptions } from "../js/types.js";
import { fmtMs, params, ui } from "./dom.js";
import { clearHover } from "./hover.js";
import { clearMessage, errorText, showMessage } from "./messages.js";
import { setBusy } from "./panels.js";
import { invalidate, Part } from "./render.js";
import { currentClient, reportError } from "./session.js";
import { store } from "./state.js";

/** The ?amg= options beyond the form's fields. */
let extraAmg: GenerateOptions = {};

function numberParam(input: HTMLInputElement): number | undefined {
  const v = input.valueAsNumber;
  return Number.isFinite(v) ? v : undefined;
}

/** Settings from URL: applied to the form once at start. */
export function applyAmgParams(): void {
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

function generateOptions(): GenerateOptions {
  const o: GenerateOptions = { ...extraAmg, fileName: store.imageName };
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

export async function runEverything(): Promise<void> {
  const client = currentClient();
  const img = store.image;
  if (!client || !img || store.imageState !== "ready" || store.generating) return;
  const token = store.imageToken;
  const controller = new AbortController();
  store.generating = controller;
  clearHover();
  clearMessage();
  ui.everythingProgressRow.hidden = false;
  ui.everythingProgress.value = 0;
  ui.everythingProgressText.textContent = "starting…";
  invalidate(Part.status);
  setBusy("segmenting everything…");
  try {
    const r = await client.generate(generateOptions(), { signal: controller.signal });
    if (token !== store.imageToken) return;
    store.lastGenerateJson = r.json;
    store.timings.generateMs = r.generateMs;
    const decoded = await client.decodeSa1b(r.json);
    store.addAnnotations(decoded.file, decoded.masks, "auto");
    ui.everythingProgressText.textContent = `${decoded.masks.length} masks in ${fmtMs(r.generateMs)}`;
  } catch (e) {
    ui.everythingProgressText.textContent = errorText(e).kind === "aborted" ? "cancelled" : "failed";
    await reportError(e, "Segment everything");
  } finally {
    store.generating = null;
    setBusy(null);
    invalidate(Part.status);
  }
}
