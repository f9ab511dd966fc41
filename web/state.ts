// The demo's state: the store (model/image status, objects, selection) and the commands that change the
// objects with undo/redo. No DOM and no worker here (unit-tested under node: web/test/state.test.ts); every
// change calls the store's listeners, which schedule one render for the next frame (render.ts).
import { maskBBox } from "../js/masks.js";
import type { ImageInfo, ModelInfo, Prediction, Sa1bFile } from "../js/types.js";
import { cloneObject, colorFor, DEFAULT_CATEGORY, HISTORY_LIMIT, type Box, type SamObject, type Snapshot, type ModelState, type ImageState } from "./objects.js";
import type { Session } from "./sessions.js";

export * from "./objects.js";

/** The page's state. Fields are read freely; the object commands below keep history and notify. */
export class DemoStore {
  modelState: ModelState = "none";
  modelInfo: ModelInfo | null = null;
  imageState: ImageState = "none";
  imageInfo: ImageInfo | null = null;
  /** The current image's pixels (display and cut-outs), name and content key (sessions.ts). */
  image: ImageData | null = null;
  imageName = "image";
  imageKey = "";
  /** The current image's objects changed since the last SA-1B JSON export. */
  dirty = false;
  /** The last checkpoint that loaded: what a worker restart loads again. */
  modelSource: File | string | null = null;
  /** Bumped for every new image: results for older images are dropped. */
  imageToken = 0;
  embeddedToken = -1;
  objects: SamObject[] = [];
  selectedId = -1;
  nextObjectId = 1;
  undo: Snapshot[] = [];
  redo: Snapshot[] = [];
  generating: AbortController | null = null;
  downloading: AbortController | null = null;
  predictCount = 0;
  pendingPredicts = 0;
  lastSa1bJson: string | null = null;
  lastGenerateJson: string | null = null;
  lastCocoJson: string | null = null;
  lastError: { kind: string; message: string } | null = null;
  timings = { downloadMs: 0, buildMs: 0, embedMs: 0, decodeMs: 0, generateMs: 0 };
  /** The category new objects get: the last one typed. */
  category = DEFAULT_CATEGORY;
  private readonly listeners: (() => void)[] = [];

  /** Calls `fn` after every change of the objects or the selection. */
  onChange(fn: () => void): void {
    this.listeners.push(fn);
  }

  /** Tells the listeners that something changed (status fields set directly call this too). */
  changed(): void {
    for (const fn of this.listeners) fn();
  }

  selected(): SamObject | null {
    return this.objects.find((o) => o.id === this.selectedId) ?? null;
  }

  /** A new, empty object with the next id and colour (not added). */
  newObject(source: SamObject["source"] = "prompt", name?: string): SamObject {
    const id = this.nextObjectId++;
    return {
      id,
      name: name ?? `Object ${id}`,
      color: colorFor(id - 1),
      source,
      points: [],
      box: null,
      mask: null,
      score: null,
      lowRes: null,
      choices: [],
      chosen: 0,
      version: 0,
      annotation: null,
      bbox: null,
      category: this.category,
    };
  }

  /** The colour the next new object gets (the hover preview's). */
  nextColor(): [number, number, number] {
    return colorFor(this.nextObjectId - 1);
  }

  private snapshot(): Snapshot {
    return { objects: this.objects.map(cloneObject), selectedId: this.selectedId, nextObjectId: this.nextObjectId };
  }

  /** Records the state before a change (for undo); the redo steps are dropped. */
  pushHistory(): void {
    this.dirty = true;
    this.undo.push(this.snapshot());
    if (this.undo.length > HISTORY_LIMIT) this.undo.shift();
    this.redo = [];
  }

  private restore(s: Snapshot): void {
    this.dirty = true;
    this.objects = s.objects.map(cloneObject);
    this.selectedId = s.selectedId;
    this.nextObjectId = s.nextObjectId;
    // Results of predictions asked before the undo/redo must not land on the restored objects.
    for (const o of this.objects) o.version += 1_000_000;
    this.changed();
  }

  /** One step back (false: none). */
  undoStep(): boolean {
    const s = this.undo.pop();
    if (!s) return false;
    this.redo.push(this.snapshot());
    this.restore(s);
    return true;
  }

  /** Goes one step forward again; false when there is none. */
  redoStep(): boolean {
    const s = this.redo.pop();
    if (!s) return false;
    this.undo.push(this.snapshot());
    this.restore(s);
    return true;
  }

  /** Selects an object (-1: none). */
  select(id: number): void {
    this.selectedId = id;
    this.changed();
  }

  /** Adds an empty prompt object and selects it (with history). */
  addEmptyObject(): SamObject {
    this.pushHistory();
    const o = this.newObject();
    this.objects.push(o);
    this.selectedId = o.id;
    this.changed();
    return o;
  }

  /** Removes an object (with history); the last object is selected when it was the selected one. */
  removeObject(id: number): void {
    this.pushHistory();
    this.objects = this.objects.filter((o) => o.id !== id);
    if (this.selectedId === id) this.selectedId = this.objects.at(-1)?.id ?? -1;
    this.changed();
  }

  /** Removes every object (with history); false when there was none. */
  clearObjects(): boolean {
    if (this.objects.length === 0) return false;
    this.pushHistory();
    this.objects = [];
    this.selectedId = -1;
    this.changed();
    return true;
  }

  /** The object that clicks go to: the selected prompt object, or a new one (added and selected). */
  private targetObject(): SamObject {
    const sel = this.selected();
    if (sel && sel.source === "prompt") return sel;
    const o = this.newObject();
    this.objects.push(o);
    this.selectedId = o.id;
    return o;
  }

  /** Adds a click to the target object (with history); the object to predict, or null before the image is ready. */
  addPoint(x: number, y: number, label: 0 | 1): SamObject | null {
    if (this.imageState !== "ready") return null;
    this.pushHistory();
    const o = this.targetObject();
    o.points.push({ x, y, label });
    this.changed();
    return o;
  }

  /** Sets the target object's box (with history); the object to predict, or null before the image is ready. */
  setBox(box: Box): SamObject | null {
    if (this.imageState !== "ready") return null;
    this.pushHistory();
    const o = this.targetObject();
    o.box = box;
    this.changed();
    return o;
  }

  /** Chooses mask `i` of the selected object's last multimask prediction (with history). */
  chooseMask(i: number): void {
    const o = this.selected();
    const c = o?.choices[i];
    if (!o || !c || !this.image) return;
    this.pushHistory();
    o.chosen = i;
    o.mask = c.mask;
    o.score = c.score;
    o.lowRes = c.lowRes;
    o.bbox = maskBBox(c.mask, this.image.width, this.image.height);
    this.changed();
  }

  /** Clears the mask of an object that has no prompt left. */
  clearMask(o: SamObject): void {
    Object.assign<SamObject, Partial<SamObject>>(o, { mask: null, choices: [], lowRes: null, score: null, bbox: null });
    this.changed();
  }

  /**
   * Applies a prediction asked for `version` of object `id` on image `token`: dropped (false) when the
   * object is gone, was prompted again, undone, or the image changed meanwhile.
   */
  applyPrediction(id: number, version: number, token: number, r: Prediction): boolean {
    const o = this.objects.find((x) => x.id === id);
    if (!o || o.version !== version || token !== this.imageToken) return false;
    o.choices = r.masks.map((mask, i) => ({ mask, score: r.scores[i] ?? 0, lowRes: r.lowResLogits[i] ?? null }));
    o.chosen = r.best;
    const c = o.choices[r.best];
    o.mask = c?.mask ?? null;
    o.score = c?.score ?? null;
    o.lowRes = c?.lowRes ?? null;
    o.bbox = o.mask ? maskBBox(o.mask, r.width, r.height) : null;
    this.predictCount++;
    this.changed();
    return true;
  }

  /** Adds one object per annotation of an SA-1B file (generated: "auto", read: "file"), with history. */
  addAnnotations(file: Sa1bFile, masks: readonly Uint8Array[], source: "auto" | "file"): void {
    this.pushHistory();
    const { width, height } = file.image;
    file.annotations.forEach((a, i) => {
      const mask = masks[i];
      if (!mask) return;
      const o = this.newObject(source, `${source === "auto" ? "Auto" : "Loaded"} ${i + 1}`);
      o.mask = mask;
      o.score = a.predicted_iou;
      o.annotation = a;
      o.bbox = maskBBox(mask, width, height);
      this.objects.push(o);
    });
    if (file.annotations.length > 0) this.selectedId = this.objects.at(-1)?.id ?? -1;
    this.changed();
  }

  /** Adds loaded masks (a COCO file's) as "file" objects with their category and score, with history. */
  addLoaded(items: readonly { name: string; mask: Uint8Array; category: string; score: number | null }[]): void {
    if (!this.image) return;
    this.pushHistory();
    for (const it of items) {
      const o = this.newObject("file", it.name);
      o.mask = it.mask;
      o.category = it.category;
      o.score = it.score;
      o.bbox = maskBBox(it.mask, this.image.width, this.image.height);
      this.objects.push(o);
    }
    this.selectedId = this.objects.at(-1)?.id ?? -1;
    this.changed();
  }

  /** Sets the category of new objects and of the selected one (with history when it changes). */
  setCategory(name: string): void {
    this.category = name;
    const o = this.selected();
    if (o && o.category !== name) {
      this.pushHistory();
      o.category = name;
      this.changed();
    }
  }

  /** The current image's work as a session (sessions.ts). */
  session(): Session<SamObject, Snapshot> {
    const { objects, undo, redo, selectedId, nextObjectId, dirty, imageName: name } = this;
    return { objects, undo, redo, selectedId, nextObjectId, dirty, name };
  }

  /** Makes `session` (of image `key`, shown as `name`) the current one. */
  enterSession(key: string, name: string, session: Session<SamObject, Snapshot>): void {
    this.imageKey = key;
    this.imageName = name;
    this.objects = session.objects;
    this.undo = session.undo;
    this.redo = session.redo;
    this.selectedId = session.selectedId;
    this.nextObjectId = session.nextObjectId;
    this.dirty = session.dirty;
    this.changed();
  }
}


/** The page's one store (tests make their own). */
export const store = new DemoStore();
