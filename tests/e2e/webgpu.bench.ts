// Benchmark (not a test; `scripts/bench-ort.sh webgpu`): WebGPU side by side in the same headless Chromium on a
// cross-origin isolated page: ONNX Runtime Web's `webgpu` execution provider (threads/ort-runner.js) on the ONNX
// export of the kit's mobile_sam checkpoint (scripts/export_onnx.py), and our single-threaded module with the
// backend forced to "webgpu" (threads/runner.js; `auto` would pick the CPU on a software adapter), the same
// checkpoint, image and click: the kit's predictor case `point_multi` (one point, three masks at the image size).
// ORT's encoder gets the kit's preprocessed input, ours the image's pixels (setImage preprocesses).
// Recorded: loading / session creation, each encoder run (the first is the cold one: shaders compiled), each
// click; for ours also the first click after each setImage against the later ones (issue 16: first <= 1.2x).
// Outputs cross-checked: the embeddings (max |diff|) and the three masks (IoU, pixels that differ) of ORT and
// ours against each other and against the official outputs of the kit; the scores.
// On a machine without a GPU the adapter is SwiftShader, a CPU emulation: the times then say nothing about
// GPU speed, and are slow (a minute a click for ORT): keep the runs few.
// Env: SAM_ORT_DIR (as ort.bench.ts), SAM_BENCH_IMPLS ("ours,ort": ours runs first), SAM_BENCH_EMBEDS (3: one cold, two warm),
// SAM_BENCH_CLICKS (3 for ORT; for ours the clicks after the per-image first clicks). JSON to
// tests/e2e/artifacts/bench-webgpu.json.
import { test } from "@playwright/test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { median } from "./bench-stats.js";
import { manifest, maskIou, predictorCase, referenceDir, repoRoot, SafeTensors, tagFor } from "./reference.js";
import { startServer } from "./server.js";

type OrtOut = { createMs: number; embedMs: number[]; clickMs: number[]; masks: string[]; scores: number[]; embedding: string };
type OursOut = {
  backendInfo: string;
  loadMs: number;
  embedMs: Record<string, number[]>;
  firstClickMs: Record<string, number[]>;
  cases: { masks: string[]; scores: number[]; ms: number[] }[];
  embedding: string;
};

const bytesOf = (b64: string): Uint8Array => new Uint8Array(Buffer.from(b64, "base64"));

/** The float32 data of `.npy` bytes (version 1, little-endian `<f4`), as sam-wasm's exportEmbedding writes it. */
function npyF32(npy: Uint8Array): Float32Array {
  const headerLen = npy[8]! | (npy[9]! << 8);
  const header = Buffer.from(npy.subarray(10, 10 + headerLen)).toString("latin1");
  if (!header.includes("'<f4'")) throw new Error(`npy header ${header}: not <f4`);
  const data = npy.slice(10 + headerLen);
  return new Float32Array(data.buffer, data.byteOffset, data.byteLength / 4);
}

const maxAbsDiff = (a: Float32Array, b: Float32Array): number => {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] ?? 0) - (b[i] ?? 0)));
  return m;
};

const differing = (a: Uint8Array, b: Uint8Array): number => {
  let n = 0;
  for (let i = 0; i < a.length; i++) n += (a[i] ? 1 : 0) ^ (b[i] ? 1 : 0);
  return n;
};

const round = (x: number, digits = 0): number => Number(x.toFixed(digits));

test("bench: WebGPU, ONNX Runtime Web's webgpu EP beside ours, outputs cross-checked", async ({ page }) => {
  const dir = referenceDir();
  const tag = tagFor(dir, "mobile_sam");
  const man = manifest(dir, tag);
  const c = predictorCase(man, "point_multi");
  const point = c.inputs.point_coords?.[0];
  if (!point) throw new Error("point_multi has no point");
  const pre = new SafeTensors(join(dir, "preprocess.safetensors"));
  const ref = new SafeTensors(join(dir, `${tag}_ref.safetensors`));
  const [height, width] = pre.info(`image/${c.image}`).shape as [number, number];
  const ortDir = process.env.SAM_ORT_DIR ?? join(homedir(), ".cache/sam-ort-bench");
  const impls = (process.env.SAM_BENCH_IMPLS ?? "ours,ort").split(",");
  const embedRuns = Number(process.env.SAM_BENCH_EMBEDS ?? 3);
  const clicks = Number(process.env.SAM_BENCH_CLICKS ?? 3);
  const scratch = mkdtempSync(join(tmpdir(), "sam-webgpu-bench-"));
  writeFileSync(join(scratch, "input.f32"), pre.raw(`input/${c.image}`));
  const server = await startServer({
    "/__threads/": join(repoRoot, "tests/e2e/threads"),
    "/__ort/": join(ortDir, "node_modules/onnxruntime-web/dist"),
    "/__models/": join(ortDir, "models"),
    "/pkg/": join(repoRoot, "crates/sam-wasm/pkg"),
    "/__ckpt/": dir,
    "/__input/": scratch,
  });
  try {
    page.on("console", (m) => console.log(`[page ${m.type()}] ${m.text()}`));
    await page.goto(`${server.url}/__threads/index.html`);
    await page.waitForFunction(() => (window as unknown as { harnessReady?: boolean }).harnessReady === true);
    const adapter = await page.evaluate(async () => {
      const a = await navigator.gpu?.requestAdapter();
      if (!a) return null;
      const { vendor, architecture, device, description } = a.info;
      return { vendor, architecture, device, description, isFallbackAdapter: (a.info as { isFallbackAdapter?: boolean }).isFallbackAdapter };
    });
    const browser = page.context().browser()?.version();
    console.log(`browser ${browser}, adapter ${JSON.stringify(adapter)}`);
    const run = <T>(job: object): Promise<T> => page.evaluate((j) => (window as unknown as { runModule(j: object): Promise<T> }).runModule(j), job);

    const artifacts = join(repoRoot, "tests/e2e/artifacts");
    mkdirSync(artifacts, { recursive: true });
    const file = join(artifacts, "bench-webgpu.json");
    const header = { browser, adapter, model: tag, image: [width, height], case: c.name };
    const rows: Record<string, unknown>[] = [];
    // Written after each implementation too: a long run on SwiftShader keeps what it measured.
    const save = (extra: object = {}): void => writeFileSync(file, JSON.stringify({ ...header, rows, ...extra }, null, 2) + "\n");
    let ort: OrtOut | undefined;
    let ours: OursOut | undefined;
    if (impls.includes("ours")) {
      const rgb = pre.u8(`image/${c.image}`);
      ours = await run<OursOut>({
        module: "/pkg/sam_wasm.js",
        backend: "webgpu",
        threads: 1,
        checkpoint: `/__ckpt/${tag}.pth`,
        embedRuns,
        predictRuns: clicks,
        firstClicks: true,
        withEmbedding: true,
        images: [{ name: c.image, width, height, rgb: Buffer.from(rgb).toString("base64"), cases: [{ name: c.name, prompt: { points: [point], labels: [1], multimask: true } }] }],
      });
      const embeds = ours.embedMs[c.image] ?? [];
      const firsts = ours.firstClickMs[c.image] ?? [];
      const later = ours.cases[0]?.ms ?? [];
      const row = {
        impl: "sam-wasm, backend webgpu",
        backendInfo: ours.backendInfo,
        loadMs: round(ours.loadMs),
        encoderColdMs: round(embeds[0] ?? NaN),
        encoderWarmMs: round(median(embeds.slice(1))),
        encoderRuns: embeds.map((x) => round(x)),
        firstClickAfterSetImageMs: firsts.map((x) => round(x)),
        laterClickMs: later.map((x) => round(x)),
        firstOverLater: round(median(firsts) / median(later), 2),
        firstOfColdImageOverLater: round((firsts[0] ?? NaN) / median(later), 2),
      };
      console.log(JSON.stringify(row));
      rows.push(row);
      save();
    }

    if (impls.includes("ort")) {
      ort = await run<OrtOut>({
        runner: "./ort-runner.js",
        ep: "webgpu",
        threads: 1,
        encoder: "/__models/mobile_sam_encoder.onnx",
        decoder: "/__models/mobile_sam_decoder.onnx",
        input: "/__input/input.f32",
        width,
        height,
        point,
        embedRuns,
        predictRuns: clicks,
        withOutputs: true,
      });
      const row = {
        impl: "onnxruntime-web webgpu EP",
        sessionsMs: round(ort.createMs),
        encoderColdMs: round(ort.embedMs[0] ?? NaN),
        encoderWarmMs: round(median(ort.embedMs.slice(1))),
        encoderRuns: ort.embedMs.map((x) => round(x)),
        clickColdMs: round(ort.clickMs[0] ?? NaN),
        clickWarmMs: round(median(ort.clickMs.slice(1))),
        clickRuns: ort.clickMs.map((x) => round(x)),
      };
      console.log(JSON.stringify(row));
      rows.push(row);
      save();
    }
    // Cross-checks: embeddings, masks (tokens 1..3 of SamOnnxModel's four: the multimask ones) and scores.
    const refEmbed = ref.f32(`embed/${c.image}`);
    const refMasks = ref.u8(c.outputs.masks);
    const refScores = Array.from(ref.f32(c.outputs.iou_predictions));
    const n = width * height;
    const three = (ms: Uint8Array[]): Uint8Array[] => (ms.length === 4 ? ms.slice(1) : ms);
    const sets: Record<string, { embedding: Float32Array; masks: Uint8Array[]; scores: number[] }> = {
      official: { embedding: refEmbed, masks: [0, 1, 2].map((i) => refMasks.subarray(i * n, (i + 1) * n)), scores: refScores },
    };
    if (ort) {
      const e = bytesOf(ort.embedding);
      sets["ort"] = { embedding: new Float32Array(e.buffer, e.byteOffset, e.byteLength / 4), masks: three(ort.masks.map(bytesOf)), scores: ort.scores.length === 4 ? ort.scores.slice(1) : ort.scores };
    }
    if (ours) sets["ours"] = { embedding: npyF32(bytesOf(ours.embedding)), masks: (ours.cases[0]?.masks ?? []).map(bytesOf), scores: ours.cases[0]?.scores ?? [] };
    const checks: Record<string, unknown>[] = [];
    const names = Object.keys(sets);
    for (let i = 0; i < names.length; i++)
      for (let j = i + 1; j < names.length; j++) {
        const [a, b] = [sets[names[i]!]!, sets[names[j]!]!];
        const check = {
          pair: `${names[j]} vs ${names[i]}`,
          embeddingMaxAbsDiff: Number(maxAbsDiff(a.embedding, b.embedding).toExponential(2)),
          maskIou: a.masks.map((m, k) => round(maskIou(m, b.masks[k] ?? new Uint8Array(n)), 5)),
          maskPixelsDiffering: a.masks.map((m, k) => differing(m, b.masks[k] ?? new Uint8Array(n))),
          scoresMaxAbsDiff: Number(Math.max(...a.scores.map((s, k) => Math.abs(s - (b.scores[k] ?? NaN)))).toExponential(2)),
        };
        console.log(JSON.stringify(check));
        checks.push(check);
      }
    save({ checks });
  } finally {
    await server.close();
    rmSync(scratch, { recursive: true, force: true });
  }
});
