// Shared setup of the end-to-end tests: one static server per worker with the built demo, the
// reference kit and the test images (made from preprocess.safetensors), plus page helpers.
import { test as base, expect, type Page } from "@playwright/test";
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { referenceDir, repoRoot, rgbTensorToPng, SafeTensors } from "./reference.js";
import { startServer, type StaticServer } from "./server.js";

export const artifacts = join(repoRoot, "tests/e2e/artifacts");

export interface Env {
  server: StaticServer;
  refDir: string;
  /** Test images served at /__test/<name>.png: landscape, objects, portrait, tiny. */
  images: Record<string, { url: string; width: number; height: number }>;
}

export const test = base.extend<{}, { env: Env }>({
  env: [
    async ({}, use) => {
      const dist = join(repoRoot, "web/dist");
      if (!existsSync(join(dist, "index.html"))) throw new Error("web/dist is missing: build the demo first (scripts/e2e.sh does)");
      const refDir = referenceDir();
      const testDir = join(artifacts, "served");
      mkdirSync(testDir, { recursive: true });
      const pre = new SafeTensors(join(refDir, "preprocess.safetensors"));
      const images: Env["images"] = {};
      for (const name of ["landscape", "objects", "tiny"]) {
        const { png, width, height } = rgbTensorToPng(pre, `image/${name}`);
        writeFileSync(join(testDir, `${name}.png`), png);
        images[name] = { url: `/__test/${name}.png`, width, height };
      }
      // A JPEG that is not a checkpoint, for the bad-file test.
      copyFileSync(join(repoRoot, "web/public/samples/dog.jpg"), join(testDir, "not-a-checkpoint.jpg"));
      const server = await startServer({ "/": dist, "/__ref/": refDir, "/__test/": testDir });
      await use({ server, refDir, images });
      await server.close();
    },
    { scope: "worker" },
  ],
});

export { expect };

export interface HookStatus {
  model: string;
  image: string;
  backend: string | null;
  /** Threads of the CPU backend (more than 1 on the threaded module). */
  threads: number | null;
  relaxedSimd: boolean | null;
  modelType: string | null;
  fromCache: boolean;
  webgpuAvailable: boolean;
  busy: boolean;
  generating: boolean;
  pendingPredicts: number;
  predictCount: number;
  /** Whether the worker draws hover previews on the GPU (WebGPU backend), and how many it drew. */
  gpuPreview: boolean;
  gpuPreviews: number;
  objects: number;
  selectedId: number;
  width: number;
  height: number;
  message: { level: string; kind: string; text: string } | null;
  timings: { downloadMs: number; buildMs: number; embedMs: number; decodeMs: number; generateMs: number };
}

interface HookWindow {
  __sam?: {
    status(): HookStatus;
    maskBase64(id?: number): string | null;
    overlayAlphaBase64(): string;
    objects(): { id: number; name: string; area: number; choices: number[]; chosen: number; score: number | null; box: number[] | null }[];
    lastSa1bJson(): string | null;
  };
}

export async function status(page: Page): Promise<HookStatus> {
  return page.evaluate(() => {
    const h = (window as unknown as HookWindow).__sam;
    if (!h) throw new Error("no window.__sam");
    return h.status();
  });
}

/** Waits until the model is built and the image embedded (or fails with the page's message). */
export async function waitReady(page: Page, timeout = 300_000): Promise<HookStatus> {
  await page.waitForFunction(
    () => {
      const s = (window as unknown as HookWindow).__sam?.status();
      return !!s && ((s.model === "ready" && s.image === "ready") || s.model === "error" || s.image === "error");
    },
    undefined,
    { timeout, polling: 100 },
  );
  const s = await status(page);
  if (s.model !== "ready" || s.image !== "ready") throw new Error(`page not ready: ${JSON.stringify(s)}`);
  return s;
}

/** Waits until `predictCount` passed `after` and no prediction is pending. */
export async function waitPredicted(page: Page, after: number, timeout = 120_000): Promise<HookStatus> {
  await page.waitForFunction(
    (n) => {
      const s = (window as unknown as HookWindow).__sam?.status();
      return !!s && ((s.predictCount > n && s.pendingPredicts === 0) || s.message?.level === "error");
    },
    after,
    { timeout, polling: 50 },
  );
  const s = await status(page);
  if (s.message?.level === "error") throw new Error(`prediction failed: ${s.message.text}`);
  return s;
}

/** A click at image pixel (x, y) that resolves once it is decoded, even while an earlier error is
 * still shown (waitPredicted stops at any error message). */
export async function clickDespiteMessage(page: Page, x: number, y: number): Promise<void> {
  const before = (await status(page)).predictCount;
  const p = await screenPoint(page, x, y);
  await page.mouse.click(p.x, p.y);
  await expect.poll(async () => {
    const s = await status(page);
    return s.predictCount > before && s.pendingPredicts === 0;
  }).toBe(true);
}

export async function selectedMask(page: Page): Promise<Uint8Array> {
  const b64 = await page.evaluate(() => (window as unknown as HookWindow).__sam?.maskBase64() ?? null);
  if (!b64) throw new Error("no selected mask");
  return new Uint8Array(Buffer.from(b64, "base64"));
}

export async function overlayAlpha(page: Page): Promise<Uint8Array> {
  const b64 = await page.evaluate(() => (window as unknown as HookWindow).__sam?.overlayAlphaBase64() ?? "");
  return new Uint8Array(Buffer.from(b64, "base64"));
}

export async function hookObjects(page: Page): Promise<ReturnType<NonNullable<HookWindow["__sam"]>["objects"]>> {
  return page.evaluate(() => (window as unknown as HookWindow).__sam?.objects() ?? []);
}

/** Screen coordinates of the centre of image pixel (x, y) on the interaction canvas. */
export async function screenPoint(page: Page, x: number, y: number): Promise<{ x: number; y: number }> {
  const r = await page.locator("#ui-canvas").evaluate((c: HTMLCanvasElement) => {
    const b = c.getBoundingClientRect();
    return { left: b.left, top: b.top, width: b.width, height: b.height, w: c.width, h: c.height };
  });
  return { x: r.left + ((x + 0.5) * r.width) / r.w, y: r.top + ((y + 0.5) * r.height) / r.h };
}

/** Pixels where two masks differ, and how many of those have a reference logit at least `atol` from 0. */
export function compareMasks(got: Uint8Array, want: Uint8Array, logits: Float32Array | null, atol: number): { diff: number; clearDiff: number; wantArea: number; gotArea: number } {
  if (got.length !== want.length) throw new Error(`mask sizes differ: ${got.length} vs ${want.length}`);
  let diff = 0;
  let clearDiff = 0;
  let wantArea = 0;
  let gotArea = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i] ? 1 : 0;
    const w = want[i] ? 1 : 0;
    wantArea += w;
    gotArea += g;
    if (g !== w) {
      diff++;
      if (!logits || Math.abs(logits[i] ?? 0) >= atol) clearDiff++;
    }
  }
  return { diff, clearDiff, wantArea, gotArea };
}
