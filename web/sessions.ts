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

/** Limits of a {@link SessionStore}: the most sessions and the most mask/logit bytes it keeps. */
export interface SessionLimits {
  /** The most images whose work is kept (default {@link MAX_SESSIONS}). */
  maxSessions: number;
  /** The most bytes of distinct buffers (masks, logits) the kept sessions hold (default {@link MAX_SESSION_BYTES}). */
  maxBytes: number;
}

/** Default {@link SessionLimits.maxSessions}: 32 images. */
export const MAX_SESSIONS = 32;
/** Default {@link SessionLimits.maxBytes}: 512 MiB (a 4k image's object with its choices is ~50 MB). */
export const MAX_SESSION_BYTES = 512 * 1024 * 1024;

/** What {@link SessionStore.save} did to stay within its limits. */
export interface Eviction {
  /** Names of the images whose sessions were dropped: none had unexported objects. */
  dropped: string[];
  /** Names of the images with unexported objects whose undo/redo history was dropped (the objects are kept). */
  trimmed: string[];
  /** Still over a limit: every session left holds unexported objects, which are never dropped. */
  overLimit: boolean;
}

/** A session with unexported objects: it is never dropped to save memory, only its history. */
function hasUnexportedWork<O, S>(s: Session<O, S>): boolean {
  return s.dirty && s.objects.length > 0;
}

/**
 * The bytes of the distinct buffers among `views` (each `ArrayBuffer` counted once: the undo snapshots
 * share their masks with the objects).
 */
export function distinctBytes(views: Iterable<ArrayBufferView | null | undefined>): number {
  const seen = new Set<ArrayBufferLike>();
  let bytes = 0;
  for (const v of views) {
    if (!v || seen.has(v.buffer)) continue;
    seen.add(v.buffer);
    bytes += v.buffer.byteLength;
  }
  return bytes;
}

/**
 * The sessions of the images shown in this page, by image key, within {@link SessionLimits}. Past a limit,
 * the least recently saved sessions without unexported objects are dropped first; then the least recently
 * saved ones with unexported objects lose their undo/redo history; unexported objects themselves are never
 * dropped (the page warns instead, see {@link Eviction.overLimit}).
 */
export class SessionStore<O, S> {
  /** In order of saving, oldest first (a Map keeps insertion order). */
  private readonly sessions = new Map<string, Session<O, S>>();
  private readonly limits: SessionLimits;

  /**
   * @param buffers the typed arrays a session holds (its objects' and snapshots' masks and logits), to
   *   measure it with {@link distinctBytes}.
   */
  constructor(
    private readonly buffers: (s: Session<O, S>) => Iterable<ArrayBufferView | null | undefined>,
    limits: Partial<SessionLimits> = {},
  ) {
    this.limits = { maxSessions: limits.maxSessions ?? MAX_SESSIONS, maxBytes: limits.maxBytes ?? MAX_SESSION_BYTES };
  }

  /**
   * Keeps `session` for the image `key` as the most recent one (sessions without objects or history are not
   * kept), then drops or trims older ones past the limits, saying which.
   */
  save(key: string, session: Session<O, S>): Eviction {
    this.sessions.delete(key);
    if (session.objects.length > 0 || session.undo.length > 0 || session.redo.length > 0) this.sessions.set(key, session);
    const result: Eviction = { dropped: [], trimmed: [], overLimit: false };
    const over = (): boolean => this.sessions.size > this.limits.maxSessions || this.bytes() > this.limits.maxBytes;
    for (const [k, s] of [...this.sessions]) {
      if (!over()) return result;
      if (!hasUnexportedWork(s)) {
        this.sessions.delete(k);
        result.dropped.push(s.name);
      }
    }
    for (const s of this.sessions.values()) {
      if (this.bytes() <= this.limits.maxBytes) break;
      if (s.undo.length > 0 || s.redo.length > 0) {
        s.undo = [];
        s.redo = [];
        result.trimmed.push(s.name);
      }
    }
    result.overLimit = over();
    return result;
  }

  /** The saved session of image `key`, removed from the store (it becomes the current one), or null. */
  take(key: string): Session<O, S> | null {
    const s = this.sessions.get(key) ?? null;
    this.sessions.delete(key);
    return s;
  }

  /** Names of the stored images whose objects were changed and not exported. */
  unexported(): string[] {
    return [...this.sessions.values()].filter(hasUnexportedWork).map((s) => s.name);
  }

  /** The stored sessions with their image keys, oldest first (for exports; not to be changed). */
  entries(): [string, Session<O, S>][] {
    return [...this.sessions];
  }

  /** Bytes of the distinct buffers the stored sessions hold. */
  bytes(): number {
    return distinctBytes([...this.sessions.values()].flatMap((s) => [...this.buffers(s)]));
  }

  get size(): number {
    return this.sessions.size;
  }
}
