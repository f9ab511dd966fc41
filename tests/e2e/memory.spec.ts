// A checkpoint too large for the chosen backend is refused before loading, with a message that names the
// model, the memory it needs and what to do, and the model loaded before stays usable (issue 15).
// The demo on the CPU backend with the kit's tiny checkpoint; the wasm heap is made smaller through
// js/worker.ts's test hook `__samMemoryHeadroom` (the binding's setMemoryLimit: that many bytes above the
// memory grown so far, in place of wasm32's 4 GiB). The estimate is the real one (sam_core::memory, from
// the real file's directory): the kit's tiny checkpoint needs ~276 MiB (weights and the embedding's
// activation bound) and fits 360 MiB; its mobile_sam checkpoint needs ~438 MiB and does not. Both figures
// depend on the architectures only (shapes, not weights), so they hold for a kit of any seed.
import { join } from "node:path";
import type { Page, Worker } from "@playwright/test";
import { clickDespiteMessage, expect, screenPoint, status, test, waitPredicted, waitReady, type Env } from "./fixtures.js";
import { tagFor } from "./reference.js";

const MIB = 1 << 20;
/** Between the tiny checkpoint's estimate (~276 MiB) and mobile_sam's (~438 MiB). */
const HEADROOM = 360 * MIB;

function demoUrl(env: Env): string {
  const img = env.images["landscape"];
  if (!img) throw new Error("no landscape test image");
  return `${env.server.url}/?backend=cpu&model=/__ref/${tagFor(env.refDir, "tiny")}.pth&image=${img.url}&cache=0&hover=0`;
}

/** The page's model worker (the one SamClient names "sam-browser"). */
async function modelWorker(page: Page): Promise<Worker> {
  for (const w of page.workers()) {
    if ((await w.evaluate(() => self.name).catch(() => "")) === "sam-browser") return w;
  }
  throw new Error(`no model worker among ${page.workers().length} workers`);
}

test("memory: a checkpoint too large for the CPU backend is refused before loading, and the previous model stays usable", async ({ page, env }) => {
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => {
    if (m.type() === "error") console.log(`[page error] ${m.text()}`);
  });
  await page.goto(demoUrl(env));
  const first = await waitReady(page);
  expect(first.backend).toBe("cpu");
  const before = (await status(page)).predictCount;
  const p = await screenPoint(page, 416, 192);
  await page.mouse.click(p.x, p.y);
  await waitPredicted(page, before);

  const worker = await modelWorker(page);
  await worker.evaluate((headroom) => {
    (self as unknown as { __samMemoryHeadroom?: number }).__samMemoryHeadroom = headroom;
  }, HEADROOM);

  // The same tiny checkpoint fits the smaller heap: it loads again (the check does not refuse everything).
  const tiny = join(env.refDir, `${tagFor(env.refDir, "tiny")}.pth`);
  await page.locator("#model-file").setInputFiles(tiny);
  await expect.poll(async () => {
    const s = await status(page);
    return s.model === "ready" && s.image === "ready" && s.timings.buildMs !== first.timings.buildMs;
  }, { timeout: 300_000 }).toBe(true);
  expect((await status(page)).message?.level ?? "none").not.toBe("error");
  const reloaded = await status(page);

  // mobile_sam does not: refused with kind out-of-memory, a message naming the model, the memory and what to do.
  const t0 = Date.now();
  await page.locator("#model-file").setInputFiles(join(env.refDir, `${tagFor(env.refDir, "mobile_sam")}.pth`));
  const message = page.locator("#message");
  await expect(message).toHaveAttribute("data-kind", "out-of-memory");
  const refusedMs = Date.now() - t0;
  const text = (await message.textContent()) ?? "";
  console.log(`[measure] memory/refusal: ${refusedMs} ms: ${text}`);
  expect(text).toContain("mobile_sam");
  expect(text).toMatch(/needs about \d+ MiB/);
  const available = Number(/only (\d+) MiB can be allocated/.exec(text)?.[1]);
  expect(available).toBeGreaterThan(0);
  expect(available).toBeLessThanOrEqual(HEADROOM / MIB);
  expect(text).toContain("WebGPU");
  expect(text).toContain("still loaded and usable");

  // Refused, not crashed: the same worker, the previous model and its embedding, no recovery.
  const s = await status(page);
  expect(s.model).toBe("ready");
  expect(s.image).toBe("ready");
  expect(s.backend).toBe("cpu");
  expect(s.modelType).toBe(reloaded.modelType);
  expect(s.timings.buildMs).toBe(reloaded.timings.buildMs);
  expect(await modelWorker(page)).toBe(worker);
  // A click still segments, on the embedding it had.
  await clickDespiteMessage(page, 200, 300);
  const after = await status(page);
  expect(after.predictCount).toBe(s.predictCount + 1);
  expect(after.objects).toBeGreaterThan(0);
  expect(errors).toEqual([]);
});
