// Which wasm module the worker runs: the single-threaded one (WebGPU and CPU; bundled with the
// worker as "sam-wasm", its .wasm fetched only when used) or the threaded CPU-only one
// (crates/sam-wasm/pkg-threads, loaded from a URL: its rayon pool starts Web Workers that import
// its JS again by URL, so it stays unbundled). Only the module that runs is downloaded.
//
// The threaded module runs when the page is cross-origin isolated (SharedArrayBuffer), more than
// one thread is allowed, its URL is known, and the CPU backend will run: backend "cpu", or "auto"
// where the browser gives no WebGPU adapter at all. A later load that needs the other module
// (backend "webgpu" after a threaded CPU load) loads that one too.
//
// Each module comes in two builds with the same JS glue: plain WebAssembly SIMD (sam_wasm_bg.wasm)
// and relaxed SIMD (sam_wasm_relaxed_bg.wasm, its CPU matrix kernel with fused multiply-adds:
// faster where the processor has FMA). The relaxed one runs where the browser validates relaxed
// SIMD, unless SamClientOptions.relaxedSimd is false; one that does not start falls back to the plain one.
import * as single from "sam-wasm";
import { relaxedWasmUrl } from "sam-wasm-relaxed";
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
  /** The single module's relaxed-SIMD .wasm, when `wasmUrl` is given (else the package's, beside the worker). */
  relaxedWasmUrl?: string;
  threadsUrl?: string;
  /** Threads for the threaded module; 1 never loads it. */
  threads: number;
  /** Whether the relaxed-SIMD builds may run (they do where the browser has relaxed SIMD). */
  relaxedSimd: boolean;
}

/**
 * A module of one function that returns `f32x4.relaxed_madd` of three `f32x4.splat(1.0)`: valid where
 * the browser has relaxed SIMD.
 */
const RELAXED_SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // types: () -> v128
  0x03, 0x02, 0x01, 0x00, // functions: one of type 0
  0x0a, 0x1c, 0x01, 0x1a, 0x00, // code: one body of 26 bytes, no locals
  ...[0, 1, 2].flatMap(() => [0x43, 0x00, 0x00, 0x80, 0x3f, 0xfd, 0x13]), // f32.const 1, f32x4.splat (x3)
  0xfd, 0x85, 0x02, // f32x4.relaxed_madd
  0x0b, // end
]);

/** Whether this browser's WebAssembly has relaxed SIMD. */
export function hasRelaxedSimd(): boolean {
  try {
    return WebAssembly.validate(RELAXED_SIMD_PROBE);
  } catch {
    return false;
  }
}

export interface Loaded {
  wasm: Wasm;
  /** The threaded module (CPU only). */
  threaded: boolean;
  /** Threads that run the CPU backend: 1 in the single-threaded module. */
  threads: number;
  /** Whether it is the relaxed-SIMD build. */
  relaxedSimd: boolean;
  memory: WebAssembly.Memory | null;
}

/**
 * Starts a module from its relaxed-SIMD .wasm when there is one to try, else (or if that fails, with a
 * console warning) from its plain one. `start(url)` instantiates the module (the plain default for undefined).
 */
async function startBuild<T>(relaxedUrl: string | URL | null, start: (url: string | URL | undefined) => Promise<T>): Promise<{ out: T; relaxedSimd: boolean }> {
  if (relaxedUrl !== null) {
    try {
      return { out: await start(relaxedUrl), relaxedSimd: true };
    } catch (e) {
      console.warn(`sam-browser: the relaxed-SIMD module did not start (${e instanceof Error ? e.message : String(e)}); running the plain one`);
    }
  }
  return { out: await start(undefined), relaxedSimd: false };
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
      const { wasmUrl, relaxedSimd } = this.config;
      // With a wasmUrl of the caller's, the relaxed build runs only if its URL was given too.
      const relaxedUrl = !relaxedSimd ? null : wasmUrl ? (this.config.relaxedWasmUrl ?? null) : relaxedWasmUrl;
      const { out, relaxedSimd: relaxed } = await startBuild(relaxedUrl, async (url) => {
        const path = url ?? wasmUrl;
        return (await single.default(path ? { module_or_path: path } : undefined)) as { memory?: WebAssembly.Memory } | undefined;
      });
      return { wasm: single, threaded: false, threads: 1, relaxedSimd: relaxed, memory: out?.memory ?? null };
    })();
    return this.single;
  }

  private loadThreaded(): Promise<Loaded> {
    this.threaded ??= (async () => {
      const url = this.config.threadsUrl ?? "";
      const m = (await import(/* @vite-ignore */ /* webpackIgnore: true */ url)) as Threaded;
      // The relaxed build sits beside the plain one (scripts/build-wasm.sh --threads); where it was not
      // built, its fetch fails and the plain one starts.
      const relaxedUrl = this.config.relaxedSimd ? new URL("sam_wasm_relaxed_bg.wasm", url) : null;
      const { out, relaxedSimd } = await startBuild(relaxedUrl, async (path) =>
        (await m.default(path ? { module_or_path: path } : undefined)) as { memory?: WebAssembly.Memory } | undefined,
      );
      await m.initThreadPool(this.config.threads);
      return { wasm: m, threaded: true, threads: m.threadCount(), relaxedSimd, memory: out?.memory ?? null };
    })();
    return this.threaded;
  }
}
