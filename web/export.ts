// Exports and imports: the selected object's cut-out, the masks as PNG, the SA-1B JSON of the shown image
// (built by the package: js/sa1b.ts), COCO instances of every image (coco-export.ts), and loading both back.
import { cutout } from "../js/masks.js";
import { buildSa1bFile } from "../js/sa1b.js";
import { buildSessionCoco, matchImage, mountCocoControls, readCocoFile, sizeOfKey, type CocoControls, type SessionImage } from "./coco-export.js";
import { ctx2d, download, ui } from "./dom.js";
import { sessions, showImage } from "./image.js";
import { isFatal, isSuperseded } from "./recovery.js";
import { errorText, showMessage } from "./messages.js";
import { flushRender } from "./render.js";
import { getClient, reportError } from "./session.js";
import { store, type SamObject } from "./state.js";

export function baseName(): string {
  return store.imageName.replace(/\.[^.]*$/, "") || "image";
}

async function canvasBlob(c: HTMLCanvasElement): Promise<Blob> {
  return new Promise((resolve, reject) => c.toBlob((b) => (b ? resolve(b) : reject(new Error("toBlob failed"))), "image/png"));
}

/** Runs an export, turning its failure (e.g. `toBlob` giving nothing for a huge canvas) into a message. */
export async function guardExport(what: string, run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (e) {
    await reportError(e, `Export of the ${what}`);
  }
}

export async function exportCutout(): Promise<void> {
  const o = store.selected();
  if (!o?.mask || !store.image) return;
  const out = cutout(store.image, o.mask);
  if (!out) {
    showMessage("The selected mask is empty.", "warn", "empty-mask");
    return;
  }
  const c = document.createElement("canvas");
  c.width = out.width;
  c.height = out.height;
  ctx2d(c).putImageData(out, 0, 0);
  download(await canvasBlob(c), `${baseName()}-${o.name.replace(/\s+/g, "-").toLowerCase()}.png`);
}

export async function exportMasks(): Promise<void> {
  flushRender();
  download(await canvasBlob(ui.overlayCanvas), `${baseName()}-masks.png`);
}

/** All objects with a mask as one SA-1B file: generated/loaded annotations as they were, prompt objects encoded now. */
async function buildSa1b(): Promise<string> {
  const img = store.image;
  if (!img) throw new Error("no image");
  const withMask = store.objects.filter((o): o is SamObject & { mask: Uint8Array } => o.mask !== null);
  const file = await buildSa1bFile(await getClient(), { width: img.width, height: img.height, fileName: store.imageName }, withMask);
  return JSON.stringify(file);
}

export async function exportJson(): Promise<void> {
  try {
    const json = await buildSa1b();
    store.lastSa1bJson = json;
    download(new Blob([json], { type: "application/json" }), `${baseName()}-sa1b.json`);
    store.dirty = false;
  } catch (e) {
    await reportError(e, "Export");
  }
}

export async function loadSa1bJson(file: File): Promise<void> {
  try {
    const client = await getClient();
    const decoded = await client.decodeSa1b(await file.text());
    const { width, height, file_name } = decoded.file.image;
    if (!store.image) {
      // No picture: show the masks on a grey canvas of the annotated size.
      const blank = new ImageData(width, height);
      blank.data.fill(200);
      showImage(blank, file_name || file.name, true);
    } else if (store.image.width !== width || store.image.height !== height) {
      showMessage(
        `${file.name} annotates a ${width}×${height} image, but the current image is ${store.image.width}×${store.image.height}.`,
        "error",
        "size-mismatch",
      );
      return;
    }
    store.addAnnotations(decoded.file, decoded.masks, "file");
    showMessage(`Loaded ${decoded.masks.length} annotations from ${file.name}.`, "info", "loaded-json");
  } catch (e) {
    if (isFatal(e) || isSuperseded(e)) await reportError(e, `Reading ${file.name}`);
    else showMessage(`${file.name} is not a valid SA-1B / COCO RLE JSON: ${errorText(e).message}`, "error", "bad-json");
  }
}

/** Every image of the page with objects: the shown one and the stored sessions. */
function sessionImages(): SessionImage[] {
  const out: SessionImage[] = [];
  if (store.image) out.push({ name: store.imageName, width: store.image.width, height: store.image.height, objects: store.objects });
  for (const [key, s] of sessions.entries()) {
    const size = sizeOfKey(key);
    if (size && s.objects.length > 0) out.push({ name: s.name, ...size, objects: s.objects });
  }
  return out;
}

async function exportCoco(format: "polygons" | "rle"): Promise<void> {
  try {
    const { json } = await buildSessionCoco(await getClient(), sessionImages(), format);
    store.lastCocoJson = json;
    download(new Blob([json], { type: "application/json" }), `${baseName()}-coco-${format}.json`);
  } catch (e) {
    await reportError(e, "COCO export");
  }
}

/** Adds the objects a COCO file holds for the shown image (same file name, else the only image of its size). */
async function loadCoco(file: File): Promise<void> {
  try {
    const img = store.image;
    if (!img) throw new Error("open the image first");
    const loaded = await readCocoFile(await getClient(), await file.text());
    const match = matchImage(loaded, store.imageName, img.width, img.height);
    if (!match) throw new Error(`${file.name} has no image named ${store.imageName} or of size ${img.width}x${img.height}`);
    store.addLoaded(match.objects.map(({ annotation, category, mask }) => ({ name: `${category} ${annotation.id}`, mask, category, score: annotation.score ?? null })));
  } catch (e) {
    await reportError(e, "Loading COCO");
  }
}

let coco: CocoControls | null = null;

/** The COCO controls (category, format, export, load), once mounted. */
export function cocoControls(): CocoControls | null {
  return coco;
}

/** Adds the COCO controls after the SA-1B export button. */
export function mountCoco(): void {
  coco = mountCocoControls(ui.exportJson, {
    setCategory: (name) => store.setCategory(name),
    export: (format) => void exportCoco(format),
    load: (file) => void loadCoco(file),
  });
}
