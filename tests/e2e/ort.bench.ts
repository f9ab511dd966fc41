// Peer benchmark (not a test; scripts/bench-ort.sh): ONNX Runtime Web on the ONNX export of the same
// random-weight checkpoint (scripts/export_onnx.py), in the same headless Chromium on a cross-origin isolated
// page: the encoder and a click (threads/ort-runner.js), with the `wasm` execution provider on 1 and N threads,
// or the `webgpu` one (SAM_ORT_EP=webgpu). Compare with threads.bench.ts (CPU) and webgpu.bench.ts (both on
// WebGPU, outputs cross-checked). Medians of the runs after the first (the first, cold, apart);
// JSON to tests/e2e/artifacts/bench-ort[-webgpu].json.
// Env: SAM_ORT_DIR (default ~/.cache/sam-ort-bench: node_modules/onnxruntime-web and models/), SAM_BENCH_MODEL
// (mobile_sam), SAM_ORT_EP (wasm | webgpu), SAM_BENCH_THREADS ("1,2"; "1" for webgpu), SAM_BENCH_EMBEDS (3),
// SAM_BENCH_CLICKS (20).
import { test } from "@playwright/test";
import { mkdirSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { repoRoot } from "./reference.js";
import { startServer } from "./server.js";
import { median } from "./bench-stats.js";

const ep = process.env.SAM_ORT_EP ?? "wasm";
if (ep !== "wasm" && ep !== "webgpu") throw new Error(`SAM_ORT_EP=${ep}: wasm or webgpu`);

test(`bench: ONNX Runtime Web (${ep})`, async ({ page }) => {
  const dir = process.env.SAM_ORT_DIR ?? join(homedir(), ".cache/sam-ort-bench");
  const model = process.env.SAM_BENCH_MODEL ?? "mobile_sam";
  const server = await startServer({
    "/__threads/": join(repoRoot, "tests/e2e/threads"),
    "/__ort/": join(dir, "node_modules/onnxruntime-web/dist"),
    "/__models/": join(dir, "models"),
  });
  try {
    page.on("console", (m) => console.log(`[page ${m.type()}] ${m.text()}`));
    await page.goto(`${server.url}/__threads/index.html`);
    await page.waitForFunction(() => (window as unknown as { harnessReady?: boolean }).harnessReady === true);
    const rows: Record<string, unknown>[] = [];
    for (const threads of (process.env.SAM_BENCH_THREADS ?? (ep === "wasm" ? "1,2" : "1")).split(",").map(Number)) {
      const job = {
        runner: "./ort-runner.js",
        ep,
        threads,
        encoder: `/__models/${model}_encoder.onnx`,
        decoder: `/__models/${model}_decoder.onnx`,
        width: 640,
        height: 480,
        embedRuns: Number(process.env.SAM_BENCH_EMBEDS ?? 3),
        predictRuns: Number(process.env.SAM_BENCH_CLICKS ?? 20),
      };
      type Out = { createMs: number; embedMs: number[]; clickMs: number[] };
      const out = await page.evaluate((j) => (window as unknown as { runModule(j: object): Promise<Out> }).runModule(j), job);
      const row = {
        impl: `onnxruntime-web ${ep}`,
        model,
        threads,
        sessionsMs: Math.round(out.createMs),
        encoderMs: median(out.embedMs.length > 1 ? out.embedMs.slice(1) : out.embedMs),
        encoderRuns: out.embedMs.map(Math.round),
        clickMs: median(out.clickMs.slice(1)),
        clickRuns: out.clickMs.map(Math.round),
      };
      console.log(JSON.stringify(row));
      rows.push(row);
    }
    const artifacts = join(repoRoot, "tests/e2e/artifacts");
    mkdirSync(artifacts, { recursive: true });
    writeFileSync(join(artifacts, ep === "wasm" ? "bench-ort.json" : `bench-ort-${ep}.json`), JSON.stringify({ model, ep, rows }, null, 2) + "\n");
  } finally {
    await server.close();
  }
});
