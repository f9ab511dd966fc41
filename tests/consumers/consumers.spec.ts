// The smallest apps a user of sam-browser writes (app.js, copied into each), each with the tarball that
// `npm pack ./dist` makes installed, run in headless Chromium: a plain page (import map, no bundler),
// Vite's dev server, a Vite production build and a webpack 5 production build. Each calls
// `SamClient.create()` with no options, loads the tiny reference checkpoint, embeds a reference image on
// the CPU backend and clicks once. Its masks must match the official outputs under the same rule as the
// demo's end-to-end test of the same click (tests/e2e/demo.spec.ts), and be byte-identical across apps.
// Run with scripts/consumers.sh, which packs and installs the package first.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { expect, test, type Page } from "@playwright/test";
import { compareMasks } from "../e2e/fixtures.js";
import { manifest, predictorCase, referenceDir, repoRoot, rgbTensorToPng, SafeTensors } from "../e2e/reference.js";
import { startServer, type StaticServer } from "../e2e/server.js";

const here = join(repoRoot, "tests/consumers");
const artifacts = join(here, "artifacts");
/** At most this many pixels may differ from the reference, each where its logit is within the kit's tolerance of 0 (as the demo's test). */
const MAX_DIFF = 10;
const CASE = "point_multi";

/** The tiny model's tag: the first "tiny" tag of $SAM_REFERENCE_TAGS, else tiny_seed0. */
const TAG = (process.env.SAM_REFERENCE_TAGS ?? "").split(/[,\s]+/).find((t) => t.startsWith("tiny")) ?? "tiny_seed0";

interface ConsumerResult {
  ok: boolean;
  error?: string;
  modelType: string;
  backend: string;
  width: number;
  height: number;
  best: number;
  scores: number[];
  masks: string[];
}

let assets: StaticServer | null = null;
let query = "";
/** SHA-256 of each app's masks, one file each (a failed test restarts Playwright's worker process). */
const hashDir = join(artifacts, "mask-sha256");
const timings: Record<string, number> = {};

function argmax(a: ArrayLike<number>): number {
  let b = 0;
  for (let i = 1; i < a.length; i++) if ((a[i] ?? -Infinity) > (a[b] ?? -Infinity)) b = i;
  return b;
}

test.beforeAll(() => {
  const refDir = referenceDir();
  const man = manifest(refDir, TAG);
  const c = predictorCase(man, CASE);
  const served = join(artifacts, "served");
  mkdirSync(served, { recursive: true });
  const { png } = rgbTensorToPng(new SafeTensors(join(refDir, "preprocess.safetensors")), `image/${c.image}`);
  writeFileSync(join(served, `${c.image}.png`), png);
  const [x, y] = c.inputs.point_coords?.[0] ?? [0, 0];
  query = `model=/__ref/${TAG}.pth&image=/__test/${c.image}.png&point=${x},${y}`;
});

test.afterAll(async () => {
  await assets?.close();
  console.log(`[measure] consumers: ${JSON.stringify(timings)}`);
  const file = join(artifacts, "measurements.json");
  let old: Record<string, number> = {};
  try {
    old = JSON.parse(readFileSync(file, "utf8")) as Record<string, number>;
  } catch {
    // the first test process of this run
  }
  writeFileSync(file, JSON.stringify({ ...old, ...timings }, null, 2));
});

/** Serves `root` at / and the reference files at /__ref/ and /__test/. */
function serve(root: string): Promise<StaticServer> {
  return startServer({ "/": root, "/__ref/": referenceDir(), "/__test/": join(artifacts, "served") });
}

/** Opens the app, waits for app.js's result (the Vite dev server may reload the page once while it optimizes). */
async function runApp(page: Page, name: string, url: string): Promise<ConsumerResult> {
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") console.log(`[${name} ${m.type()}] ${m.text()}`);
  });
  page.on("pageerror", (e) => console.log(`[${name} page error] ${e.message}`));
  page.on("response", (r) => {
    if (r.status() >= 400) console.log(`[${name}] HTTP ${r.status()} ${r.url()}`);
  });
  const t0 = Date.now();
  await page.goto(url);
  const deadline = t0 + 240_000;
  for (;;) {
    const r = await page
      .evaluate(() => (window as unknown as { __consumer?: ConsumerResult }).__consumer)
      .catch(() => undefined); // a reload in between
    if (r) {
      timings[`${name}: page to mask (ms)`] = Date.now() - t0;
      return r;
    }
    if (Date.now() > deadline) throw new Error(`${name}: no result after 240 s`);
    await page.waitForTimeout(250);
  }
}

/** The app's masks against the kit's (the same rule as the demo's test of this click), and against the other apps'. */
function check(name: string, r: ConsumerResult): void {
  expect(r.ok, r.error).toBe(true);
  expect(r.backend).toBe("cpu");
  const refDir = referenceDir();
  const man = manifest(refDir, TAG);
  const c = predictorCase(man, CASE);
  const st = new SafeTensors(join(refDir, `${TAG}_ref.safetensors`));
  const iou = st.f32(c.outputs.iou_predictions);
  const best = argmax(iou);
  expect(r.best).toBe(best);
  expect(r.scores.length).toBe(iou.length);
  for (let i = 0; i < iou.length; i++) expect(Math.abs((r.scores[i] ?? 0) - (iou[i] ?? 0))).toBeLessThan(man.tolerances.suggested.iou_atol);
  const pixels = r.width * r.height;
  const got = new Uint8Array(Buffer.from(r.masks[best] ?? "", "base64"));
  expect(got.length).toBe(pixels);
  const want = st.u8(c.outputs.masks).slice(best * pixels, (best + 1) * pixels);
  const logitsCase = predictorCase(man, `${CASE}_logits`);
  const logits = st.f32(logitsCase.outputs.masks).slice(best * pixels, (best + 1) * pixels);
  const atol = man.tolerances.suggested.full_res_logits_atol;
  const cmp = compareMasks(got, want, logits, atol);
  console.log(`[measure] ${name}: mask area ${cmp.gotArea} (reference ${cmp.wantArea}), ${cmp.diff} pixels differ`);
  expect(cmp.diff).toBeLessThanOrEqual(MAX_DIFF);
  expect(cmp.clearDiff, `pixels differing where the reference logit is not within ${atol} of 0`).toBe(0);
  const hash = createHash("sha256");
  for (const m of r.masks) hash.update(Buffer.from(m, "base64"));
  mkdirSync(hashDir, { recursive: true });
  writeFileSync(join(hashDir, name), hash.digest("hex"));
}

function build(dir: string, bin: string, args: string[], name: string): void {
  const t0 = Date.now();
  execFileSync(join(dir, "node_modules/.bin", bin), args, { cwd: dir, stdio: "inherit" });
  timings[`${name}: build (ms)`] = Date.now() - t0;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((ok) => s.listen(0, "127.0.0.1", ok));
  const a = s.address();
  await new Promise<void>((ok) => s.close(() => ok()));
  if (a === null || typeof a === "string") throw new Error("no port");
  return a.port;
}

test("plain page (ES modules, import map)", async ({ page }) => {
  const server = await serve(join(here, "plain"));
  try {
    check("plain", await runApp(page, "plain", `${server.url}/index.html?${query}`));
  } finally {
    await server.close();
  }
});

test("Vite dev server", async ({ page }) => {
  const dir = join(here, "vite");
  assets ??= await serve(join(artifacts, "served"));
  const port = await freePort();
  const t0 = Date.now();
  const vite: ChildProcess = spawn(join(dir, "node_modules/.bin/vite"), ["--port", String(port), "--strictPort", "--host", "127.0.0.1"], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  try {
    let log = "";
    await new Promise<void>((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`vite did not start:\n${log}`)), 60_000);
      const read = (d: Buffer): void => {
        log += d.toString().replace(/\x1b\[[0-9;]*m/g, "");
        if (log.includes(`:${port}/`)) {
          clearTimeout(timer);
          ok();
        }
      };
      vite.stdout?.on("data", read);
      vite.stderr?.on("data", read);
      vite.on("exit", (code) => fail(new Error(`vite exited (${code}):\n${log}`)));
    });
    vite.stdout?.on("data", (d: Buffer) => process.stdout.write(`[vite] ${d.toString()}`));
    vite.stderr?.on("data", (d: Buffer) => process.stdout.write(`[vite] ${d.toString()}`));
    timings["vite dev: server start (ms)"] = Date.now() - t0;
    // The model and the image come from another origin here (the assets server sends CORS headers).
    const q = query.replace(/=\/__(ref|test)\//g, (_m, p: string) => `=${assets?.url}/__${p}/`);
    check("vite dev", await runApp(page, "vite dev", `http://127.0.0.1:${port}/?${q}`));
  } finally {
    vite.kill();
  }
});

test("Vite production build", async ({ page }) => {
  const dir = join(here, "vite");
  build(dir, "vite", ["build"], "vite build");
  const server = await serve(join(dir, "dist"));
  try {
    check("vite build", await runApp(page, "vite build", `${server.url}/index.html?${query}`));
  } finally {
    await server.close();
  }
});

test("webpack 5 production build", async ({ page }) => {
  const dir = join(here, "webpack");
  build(dir, "webpack", ["--mode", "production"], "webpack");
  const server = await serve(dir);
  try {
    check("webpack", await runApp(page, "webpack", `${server.url}/index.html?${query}`));
  } finally {
    await server.close();
  }
});

test("every app got the same masks", () => {
  const hashes = new Map(readdirSync(hashDir).map((n) => [n, readFileSync(join(hashDir, n), "utf8")]));
  console.log(`[measure] mask hashes: ${JSON.stringify(Object.fromEntries(hashes))}`);
  expect([...hashes.keys()].sort()).toEqual(["plain", "vite build", "vite dev", "webpack"]);
  expect(new Set(hashes.values()).size).toBe(1);
});
