// Benchmark (not a test; never run by scripts/e2e.sh or CI): the demo's own worker-side `decodeMs`
// (js/worker.ts: `predict` of the page's module, masks handed back as transferable arrays) of clicks on
// the CPU backend in headless Chromium, for the kit's mobile_sam checkpoint on the landscape test image:
// the first click after the image is embedded and the later ones, each a new object with one point
// (no mask input), hover previews off (`hover=0`) so that only clicks run. Compare with
// `node scripts/bench-binding.mjs --width W --height H` at the same image size (printed here).
// JSON to tests/e2e/artifacts/bench-decode.json.
// Run: npx playwright test -c tests/e2e/bench.config.ts decode   (after scripts/web.sh --build-only)
// Env: SAM_BENCH_CLICKS (default 10), SAM_BENCH_THREADS (default 1: the single-threaded module, as
// bench-binding.mjs runs it; more: the threaded module on that many threads).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { artifacts, screenPoint, status, test, waitPredicted, waitReady } from "./fixtures.js";
import { tagFor } from "./reference.js";
import { median } from "./bench-stats.js";

test("bench: the demo's decodeMs of a click, first and later (CPU backend)", async ({ page, env }) => {
  const img = env.images["landscape"];
  if (!img) throw new Error("no landscape test image");
  const tag = tagFor(env.refDir, "mobile_sam");
  const threads = Number(process.env.SAM_BENCH_THREADS ?? 1);
  page.on("console", (m) => {
    if (m.type() === "error") console.log(`[page error] ${m.text()}`);
  });
  await page.goto(`${env.server.url}/?backend=cpu&model=/__ref/${tag}.pth&image=${img.url}&cache=0&hover=0&threads=${threads}`);
  const ready = await waitReady(page);
  const clicks = Number(process.env.SAM_BENCH_CLICKS ?? 10);
  const decodeMs: number[] = [];
  const clickToMaskMs: number[] = [];
  for (let i = 0; i < clicks; i++) {
    await page.locator("#new-object").click();
    const before = (await status(page)).predictCount;
    // Points along the middle row, away from each other (each a new object, one point, three masks).
    const p = await screenPoint(page, Math.round(img.width * (0.3 + (0.4 * i) / clicks)), Math.round(img.height / 2));
    const t0 = Date.now();
    await page.mouse.click(p.x, p.y);
    const s = await waitPredicted(page, before);
    clickToMaskMs.push(Date.now() - t0);
    decodeMs.push(s.timings.decodeMs);
  }
  const later = decodeMs.slice(1);
  const out = {
    model: tag,
    backend: ready.backend,
    threads: ready.threads,
    image: [img.width, img.height],
    embedMs: Math.round(ready.timings.embedMs),
    decodeMs: decodeMs.map((x) => Math.round(x * 10) / 10),
    firstDecodeMs: Math.round((decodeMs[0] ?? NaN) * 10) / 10,
    laterDecodeMedianMs: Math.round(median(later) * 10) / 10,
    firstOverLater: Math.round(((decodeMs[0] ?? NaN) / median(later)) * 100) / 100,
    clickToMaskMedianMs: median(clickToMaskMs),
    userAgent: await page.evaluate(() => navigator.userAgent),
  };
  console.log(JSON.stringify(out, null, 2));
  mkdirSync(artifacts, { recursive: true });
  writeFileSync(join(artifacts, "bench-decode.json"), `${JSON.stringify(out, null, 2)}\n`);
});
