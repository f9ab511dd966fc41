// Benchmark (not a test; scripts/bench-threads.sh): the single-threaded and the threaded CPU module in
// headless Chromium on a cross-origin isolated page, through threads/runner.js (a worker per run, as
// the package's worker): setImage (encoder) and a click (predict of one point, three masks at the
// image size), for the kit's mobile_sam checkpoint (or SAM_BENCH_CHECKPOINT, e.g. a ViT-B .pth) on
// the landscape test image (640x480). Medians; JSON to tests/e2e/artifacts/bench-threads.json.
// Env: SAM_BENCH_SINGLE=0 (the threaded module only), SAM_BENCH_THREADS (default "1,2"; "" for the single-threaded module only), SAM_BENCH_EMBEDS (3), SAM_BENCH_CLICKS (20),
//      SAM_BENCH_CHECKPOINT (a path), SAM_BENCH_AMG=1 adds "segment everything" (32x32 points),
//      SAM_BENCH_PKG / SAM_BENCH_PKG_THREADS (module directories, default crates/sam-wasm/pkg{,-threads}:
//      e.g. copies of release builds, so that a rebuild of the tree's modules does not change a sitting),
//      SAM_BENCH_RELAXED ("both", default: each run on the plain then the relaxed-SIMD build; "0": plain only; "1": relaxed only).
import { test } from "@playwright/test";
import { mkdirSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { referenceDir, repoRoot, SafeTensors, tagFor } from "./reference.js";
import { startServer } from "./server.js";
import { median } from "./bench-stats.js";

test("bench: threaded CPU module, 1 vs N threads", async ({ page }) => {
  const dir = referenceDir();
  const checkpoint = process.env.SAM_BENCH_CHECKPOINT ?? join(dir, `${tagFor(dir, "mobile_sam")}.pth`);
  const server = await startServer({
    "/__threads/": join(repoRoot, "tests/e2e/threads"),
    "/pkg/": process.env.SAM_BENCH_PKG ?? join(repoRoot, "crates/sam-wasm/pkg"),
    "/pkg-threads/": process.env.SAM_BENCH_PKG_THREADS ?? join(repoRoot, "crates/sam-wasm/pkg-threads"),
    "/__ckpt/": dirname(checkpoint),
  });
  try {
    page.on("console", (m) => console.log(`[page ${m.type()}] ${m.text()}`));
    await page.goto(`${server.url}/__threads/index.html`);
    await page.waitForFunction(() => (window as unknown as { harnessReady?: boolean }).harnessReady === true);
    const pre = new SafeTensors(join(dir, "preprocess.safetensors"));
    const [height, width] = pre.info("image/landscape").shape;
    const job = {
      checkpoint: `/__ckpt/${basename(checkpoint)}`,
      embedRuns: Number(process.env.SAM_BENCH_EMBEDS ?? 3),
      predictRuns: Number(process.env.SAM_BENCH_CLICKS ?? 20),
      withMasks: false,
      ...(process.env.SAM_BENCH_AMG === "1" ? { generate: { pointsPerSide: 32 } } : {}),
      images: [
        {
          name: "landscape",
          width,
          height,
          rgb: Buffer.from(pre.u8("image/landscape")).toString("base64"),
          cases: [{ name: "click", prompt: { points: [[(width ?? 0) / 2, (height ?? 0) / 2]], labels: [1], multimask: true } }],
        },
      ],
    };
    type Out = { threads: number; embedMs: Record<string, number[]>; cases: { ms: number[] }[]; generateMs?: number };
    const run = (module: string, threads: number, wasm?: string): Promise<Out> =>
      page.evaluate(([j, module, threads, wasm]) => (window as unknown as { runModule(j: object): Promise<Out> }).runModule({ ...j, module, threads, wasm }), [job, module, threads, wasm] as const);
    const relaxed = process.env.SAM_BENCH_RELAXED ?? "both";
    const builds: [string, string | undefined][] = [];
    if (relaxed !== "1") builds.push(["", undefined]);
    if (relaxed !== "0") builds.push([", relaxed SIMD", "sam_wasm_relaxed_bg.wasm"]);
    const rows: Record<string, unknown>[] = [];
    const runs: [string, string, number][] = process.env.SAM_BENCH_SINGLE === "0" ? [] : [["single-threaded module", "/pkg/sam_wasm.js", 1]];
    for (const n of (process.env.SAM_BENCH_THREADS ?? "1,2").split(",").filter((t) => t.trim() !== "").map(Number)) runs.push([`threaded module, ${n} thread(s)`, "/pkg-threads/sam_wasm.js", n]);
    for (const [name, module, threads, wasm] of runs.flatMap((r) => builds.map(([b, wasm]) => [`${r[0]}${b}`, r[1], r[2], wasm] as const))) {
      const out = await run(module, threads, wasm && module.replace("sam_wasm.js", wasm));
      // The first embedding warms up (allocations, the pool's first tasks): the median of the others.
      const embeds = out.embedMs["landscape"] ?? [];
      const row = {
        module: name,
        threads: out.threads,
        encoderMs: median(embeds.length > 1 ? embeds.slice(1) : embeds),
        encoderRuns: embeds.map(Math.round),
        clickMs: median(out.cases[0]?.ms.slice(1) ?? []),
        ...(out.generateMs !== undefined ? { everythingMs: Math.round(out.generateMs) } : {}),
      };
      console.log(JSON.stringify(row));
      rows.push(row);
    }
    const artifacts = join(repoRoot, "tests/e2e/artifacts");
    mkdirSync(artifacts, { recursive: true });
    writeFileSync(join(artifacts, "bench-threads.json"), JSON.stringify({ checkpoint: basename(checkpoint), width, height, rows }, null, 2) + "\n");
  } finally {
    await server.close();
  }
});
