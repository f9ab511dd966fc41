// The shown image: decoding a file, URL, drop or paste, showing it, and the per-image sessions (sessions.ts)
// that keep every image's objects and history when another image is shown.
import { ctx2d, ui } from "./dom.js";
import { clearHover } from "./hover.js";
import { errorText, showMessage } from "./messages.js";
import { invalidate, Part } from "./render.js";
import { embedCurrentImage } from "./session.js";
import { emptySession, imageKey, SessionStore, type Eviction } from "./sessions.js";
import { sessionBuffers, store, type SamObject, type Snapshot } from "./state.js";

/** The other images' work (the current image's lives in the store), within sessions.ts's memory limits. */
export const sessions = new SessionStore<SamObject, Snapshot>(sessionBuffers);

async function decodeImage(blob: Blob): Promise<ImageData> {
  // No colour-space conversion: the model sees the file's own RGB values (what the reference code does).
  const bitmap = await createImageBitmap(blob, { premultiplyAlpha: "none", colorSpaceConversion: "none" });
  const c = document.createElement("canvas");
  c.width = bitmap.width;
  c.height = bitmap.height;
  const ctx = ctx2d(c);
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  return ctx.getImageData(0, 0, c.width, c.height);
}

export async function setImageFromBlob(blob: Blob, name: string): Promise<void> {
  store.imageState = "decoding";
  invalidate(Part.status);
  let img: ImageData;
  try {
    img = await decodeImage(blob);
  } catch (e) {
    store.imageState = "error";
    showMessage(`Could not read ${name} as an image: ${errorText(e).message}`, "error", "bad-image");
    invalidate(Part.status);
    return;
  }
  try {
    showImage(img, name);
  } catch (e) {
    store.imageState = "error";
    showMessage(`Could not show ${name}: ${errorText(e).message}`, "error", "bad-image");
    invalidate(Part.status);
    return;
  }
  await embedCurrentImage();
}

export async function setImageFromUrl(url: string): Promise<void> {
  const name = decodeURIComponent(url.split("/").pop()?.split("?")[0] ?? "image");
  try {
    const res = await fetch(url);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    await setImageFromBlob(await res.blob(), name);
  } catch (e) {
    store.imageState = "error";
    showMessage(`Could not load the image ${url}: ${errorText(e).message}`, "error", "bad-image");
    invalidate(Part.status);
  }
}

/** Says what the session store dropped to stay within its memory limits (nothing unexported is dropped). */
function reportEviction(e: Eviction): void {
  const parts: string[] = [];
  if (e.dropped.length > 0) parts.push(`the objects of ${e.dropped.join(", ")} (all exported) were let go`);
  if (e.trimmed.length > 0) parts.push(`the undo history of ${e.trimmed.join(", ")} was dropped (the objects are kept)`);
  if (e.overLimit) parts.push("the images with unexported objects still use a lot of memory: export them (SA-1B JSON)");
  if (parts.length > 0) showMessage(`To save memory, ${parts.join("; ")}.`, "warn", "sessions-evicted");
}

/** Shows an image; the previous image's objects and history are kept, and this image's come back. */
export function showImage(img: ImageData, name: string, displayOnly = false): void {
  const key = imageKey(img);
  const eviction = store.image ? sessions.save(store.imageKey, store.session()) : null;
  const session = sessions.take(key) ?? emptySession<SamObject, Snapshot>(name);
  store.image = img;
  store.imageToken++;
  store.imageInfo = null;
  store.imageState = displayOnly ? "display-only" : "waiting-for-model";
  for (const c of [ui.imageCanvas, ui.overlayCanvas, ui.hoverCanvas, ui.uiCanvas]) {
    c.width = img.width;
    c.height = img.height;
  }
  ctx2d(ui.imageCanvas).putImageData(img, 0, 0);
  clearHover();
  store.enterSession(key, name, session);
  if (session.objects.length > 0)
    showMessage(`${name}: ${session.objects.length} object${session.objects.length === 1 ? "" : "s"} from before restored (undo history too).`, "info", "session-restored");
  if (eviction) reportEviction(eviction);
  ui.stageHint.hidden = true;
  ui.imageInfo.textContent = `${name}: ${img.width}×${img.height}`;
  for (const b of ui.samples.querySelectorAll("button")) b.classList.toggle("active", b.dataset.name === name);
  invalidate();
}

/** Names of the images whose objects changed since their last SA-1B JSON export. */
export function unexportedImages(): string[] {
  const here = store.dirty && store.objects.length > 0 ? [store.imageName] : [];
  return [...here, ...sessions.unexported()];
}
