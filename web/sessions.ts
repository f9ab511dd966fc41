// Per-image sessions of the demo: the objects, undo/redo history and selection of every image opened in
// this page, so that opening another image (sample, file, drop, paste) and coming back restores the work
// instead of wiping it. Sessions are keyed by the image's content (size and a hash of its pixels), so the
// same picture opened again, under any name, finds its objects.

/** One image's work. `O` is the demo's object type, `S` its undo snapshot type. */
export interface Session<O, S> {
  objects: O[];
  undo: S[];
  redo: S[];
  selectedId: number;
  nextObjectId: number;
  /** Changed since the last SA-1B JSON export (or since it was opened). */
  dirty: boolean;
  /** The name the image had when last shown. */
  name: string;
}

/** At most this many pixel bytes are hashed per image (evenly spread), so a 16k x 16k image keys in ~10 ms. */
const MAX_HASHED_BYTES = 1 << 22;

/**
 * A key of an image's content: `WxH:` and an FNV-1a hash of (a spread sample of) its RGBA bytes.
 * Two different images of the same size almost never share it; the same pixels always do.
 */
export function imageKey(img: ImageData): string {
  const d = img.data;
  const stride = Math.max(1, Math.ceil(d.length / MAX_HASHED_BYTES));
  let h = 0x811c9dc5;
  for (let i = 0; i < d.length; i += stride) {
    h ^= d[i] ?? 0;
    h = Math.imul(h, 0x01000193);
  }
  return `${img.width}x${img.height}:${(h >>> 0).toString(16).padStart(8, "0")}`;
}

export function emptySession<O, S>(name: string): Session<O, S> {
  return { objects: [], undo: [], redo: [], selectedId: -1, nextObjectId: 1, dirty: false, name };
}

/** The sessions of the images shown in this page, by image key. */
export class SessionStore<O, S> {
  private readonly sessions = new Map<string, Session<O, S>>();

  /** Keeps `session` for the image `key` (sessions without objects or history are not kept). */
  save(key: string, session: Session<O, S>): void {
    if (session.objects.length === 0 && session.undo.length === 0 && session.redo.length === 0) this.sessions.delete(key);
    else this.sessions.set(key, session);
  }

  /** The saved session of image `key`, removed from the store (it becomes the current one), or null. */
  take(key: string): Session<O, S> | null {
    const s = this.sessions.get(key) ?? null;
    this.sessions.delete(key);
    return s;
  }

  /** Names of the stored images whose objects were changed and not exported. */
  unexported(): string[] {
    return [...this.sessions.values()].filter((s) => s.dirty && s.objects.length > 0).map((s) => s.name);
  }

  get size(): number {
    return this.sessions.size;
  }
}
