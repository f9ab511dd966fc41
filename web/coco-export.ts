// The demo's COCO side: a category per object, one instances.json for every image of the session
// (polygons or RLE), and loading such a file back as objects. The dataset is built by the package
// (js/coco.ts); this file only gathers the session's images and adds the controls.
import { buildCocoDataset, cocoDatasetMasks, parseCocoDataset, type CocoCodec, type CocoDataset, type CocoImageInput, type CocoLoadedImage } from "../js/coco.js";
import { DEFAULT_CATEGORY } from "./objects.js";


/** An image of the session and its objects with masks. */
export interface SessionImage {
  name: string;
  width: number;
  height: number;
  objects: readonly { mask: Uint8Array | null; category?: string; score: number | null }[];
}

/** The width and height in a sessions.ts image key ("WxH:hash"). */
export function sizeOfKey(key: string): { width: number; height: number } | null {
  const m = /^(\d+)x(\d+):/.exec(key);
  return m ? { width: Number(m[1]), height: Number(m[2]) } : null;
}

/** One instances.json (pretty-printed text and dataset) of the session's images that have objects. */
export async function buildSessionCoco(codec: CocoCodec, images: readonly SessionImage[], segmentation: "polygons" | "rle"): Promise<{ json: string; dataset: CocoDataset }> {
  const inputs: CocoImageInput[] = images
    .map((im) => ({
      fileName: im.name,
      width: im.width,
      height: im.height,
      objects: im.objects.flatMap((o) => (o.mask ? [{ mask: o.mask, category: o.category || DEFAULT_CATEGORY, ...(o.score !== null ? { score: o.score } : {}) }] : [])),
    }))
    .filter((im) => im.objects.length > 0);
  const dataset = await buildCocoDataset(codec, inputs, { segmentation });
  return { json: JSON.stringify(dataset), dataset };
}

/** A COCO file's images with their objects' masks. */
export async function readCocoFile(codec: CocoCodec, text: string): Promise<CocoLoadedImage[]> {
  return cocoDatasetMasks(codec, parseCocoDataset(text));
}

/** The loaded image that belongs to the shown one: the same file name, else the only one of its size. */
export function matchImage(loaded: readonly CocoLoadedImage[], name: string, width: number, height: number): CocoLoadedImage | null {
  const sized = loaded.filter((l) => l.image.width === width && l.image.height === height);
  return sized.find((l) => l.image.file_name === name) ?? (sized.length === 1 ? (sized[0] ?? null) : null);
}

export interface CocoControls {
  category: HTMLInputElement;
  format: HTMLSelectElement;
  exportButton: HTMLButtonElement;
  loadInput: HTMLInputElement;
}

/**
 * Adds, after `anchor`: the selected object's category (with the names used so far), the COCO export
 * (polygons or RLE) of all images, and a COCO file input.
 */
export function mountCocoControls(
  anchor: HTMLElement,
  handlers: { setCategory(name: string): void; export(format: "polygons" | "rle"): void; load(file: File): void },
): CocoControls {
  const row = document.createElement("div");
  row.className = "row coco";
  const category = document.createElement("input");
  category.id = "object-category";
  category.placeholder = "category";
  category.setAttribute("aria-label", "category of the selected object");
  category.setAttribute("list", "object-categories");
  const list = document.createElement("datalist");
  list.id = "object-categories";
  category.addEventListener("change", () => {
    const name = category.value.trim() || DEFAULT_CATEGORY;
    if (![...list.options].some((o) => o.value === name)) list.append(new Option(name, name));
    handlers.setCategory(name);
  });
  const format = document.createElement("select");
  format.id = "coco-format";
  format.append(new Option("COCO polygons", "polygons"), new Option("COCO RLE", "rle"));
  const exportButton = document.createElement("button");
  exportButton.type = "button";
  exportButton.id = "export-coco";
  exportButton.textContent = "All images as COCO";
  exportButton.addEventListener("click", () => handlers.export(format.value === "rle" ? "rle" : "polygons"));
  const load = document.createElement("label");
  load.textContent = "Load COCO ";
  const loadInput = document.createElement("input");
  loadInput.type = "file";
  loadInput.id = "load-coco";
  loadInput.accept = ".json,application/json";
  loadInput.addEventListener("change", () => {
    const f = loadInput.files?.[0];
    if (f) handlers.load(f);
    loadInput.value = "";
  });
  load.append(loadInput);
  row.append(category, list, format, exportButton, load);
  anchor.after(row);
  return { category, format, exportButton, loadInput };
}
