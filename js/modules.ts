// Which wasm module the worker runs: the single-threaded one (WebGPU and CPU; bundled with the
// worker as "sam-wasm", its .wasm fetched only when used) or the threaded CPU-only one
// (crates/sam-wasm/pkg-threads, loaded from a URL: its rayon pool starts Web Workers that import
// its JS again by URL, so it stays unbundled). Only the module that runs is downloaded.
//
// The threaded module runs when the page is cross-origin isolated (SharedArrayBuffer), more than
// one thread is allowed, its URL is known, and the CPU backend will run: backend "cpu", or "auto"
// where the browser gives no WebGPU adapter at all. A later load that needs the other module
// (backend "webgpu" after a threaded CPU load) loads that one too.
import * as single from "sam-wasm";
import type { BackendChoice } from "./types.js";

/** The API both modules share (the threaded one adds initThreadPool). */
export type Wasm = typeof single;
type Threaded = Wasm & { initThreadPool(threads: number): Promise<unknown>; threadCount(): number };

/** The most threads a page gets by default: past 8, a model's layers split too thin to gain. */
export const DEFAULT_MAX_THREADS = 8;
/** The most threads a caller may ask for (rayon's pool, one Web Worker each). */
export const MAX_THREADS = 64;

/** What init() was told: the single module's .wasm, the threaded module's JS, the thread count. */
export interface ModuleConfig {
  wasmUrl?: string;
  threadsUrl?: string;
  /** Threads for the threaded module; 1 never loads it. */
  threads: number;
}

export interface Loaded {
  wasm: Wasm;
  /** The threaded module (CPU only). */
  threaded: boolean;
  /** Threads that run the CPU backend: 1 in the single-threaded module. */
  threads: number;
  memory: WebAssembly.Memory | null;
}

/** The thread count asked for (`SamClientOptions.threads`), else navigator.hardwareConcurrency capped at DEFAULT_MAX_THREADS. */
export function threadCount(asked: number | undefined, hardware: number | undefined): number {
  if (asked !== undefined) {
    if (!Number.isInteger(asked) || asked < 1 || asked > MAX_THREADS) throw new RangeError(`threads must be an integer from 1 to ${MAX_THREADS}, got ${asked}`);
    return asked;
  }
  return Math.max(1, Math.min(hardware ?? 1, DEFAULT_MAX_THREADS));
}

export class Modules {
  private single: Promise<Loaded> | null = null;
  private threaded: Promise<Loaded> | null = null;
  private current: Loaded | null = null;

  constructor(
    private readonly config: ModuleConfig,
    /** Whether the browser gives a WebGPU adapter (any kind). */
    private readonly webgpu: boolean,
  ) {}

  /** Whether a load with `backend` runs on the threaded module. */
  wantsThreads(backend: BackendChoice): boolean {
    const isolated = typeof crossOriginIsolated !== "undefined" && crossOriginIsolated && typeof SharedArrayBuffer !== "undefined";
    const cpu = backend === "cpu" || (backend === "auto" && !this.webgpu);
    return isolated && cpu && this.config.threads > 1 && this.config.threadsUrl !== undefined;
  }

  /** The module for a load with `backend` (instantiated on first use). */
  async forBackend(backend: BackendChoice): Promise<Loaded> {
    const threaded = this.wantsThreads(backend);
    if (this.current?.threaded === threaded) return this.current;
    if (threaded) {
      try {
        this.current = await this.loadThreaded();
        return this.current;
      } catch (e) {
        // Not served (e.g. a bundler that did not copy threads/), or no Workers: one thread still works.
        console.warn(`sam-browser: the threaded module did not start (${e instanceof Error ? e.message : String(e)}); running on one thread`);
        this.config.threads = 1;
      }
    }
    this.current = await this.loadSingle();
    return this.current;
  }

  /** The module in use, else the one "auto" would take (for the helpers that need no model). */
  async any(): Promise<Loaded> {
    return this.current ?? this.forBackend("auto");
  }

  private loadSingle(): Promise<Loaded> {
    this.single ??= (async () => {
      const { wasmUrl } = this.config;
      const out = (await single.default(wasmUrl ? { module_or_path: wasmUrl } : undefined)) as { memory?: WebAssembly.Memory } | undefined;
      return { wasm: single, threaded: false, threads: 1, memory: out?.memory ?? null };
    })();
    return this.single;
  }

  private loadThreaded(): Promise<Loaded> {
    this.threaded ??= (async () => {
      const url = this.config.threadsUrl ?? "";
      const m = (await import(/* @vite-ignore */ /* webpackIgnore: true */ url)) as Threaded;
      const out = (await m.default()) as { memory?: WebAssembly.Memory } | undefined;
      await m.initThreadPool(this.config.threads);
      return { wasm: m, threaded: true, threads: m.threadCount(), memory: out?.memory ?? null };
    })();
    return this.threaded;
  }
}
