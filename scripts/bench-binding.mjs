// Times the page's own module (the wasm-bindgen binding, crates/sam-wasm/pkg) from Node on the
// CPU backend, one thread, as a page's worker runs it: `Segmenter.create` from a Uint8Array,
// `setImage` of the same synthetic 1024x768 image as sam-core's `bench` example, the first
// click after each `setImage` (cold; median of the runs, and the one after the module's first
// image apart) and later clicks (warm, median). A click is `predict` of one point,
// three masks at the image size: by default the full result a page gets (masks, scores and
// low-res logits as JS typed arrays); `--light` also times the lighter request a hover preview
// makes (one mask, no low-res logits).
//
// With `--core FILE` (the JSON of sam-core's `bench` example under Node's WASI, as
// `scripts/bench.sh --wasm --binding` makes it) it prints both side by side with the ratios
// (binding / core: 1.0 means the binding costs nothing). One JSON object goes to stdout, the
// table to stderr. Not part of the tests.
//
// Usage: node scripts/bench-binding.mjs [--pkg DIR] [--checkpoint FILE] [--runs N]
//          [--clicks N] [--loads N] [--width W] [--height H] [--core FILE] [--light]
import { readFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { argv, env, exit, stderr } from "node:process";
import { performance } from "node:perf_hooks";
import { fileURLToPath, pathToFileURL } from "node:url";
import path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = argv.slice(2);
function arg(name, fallback) {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
}
const flag = (name) => args.includes(name);
const refDir = env.SAM_REFERENCE_DIR ?? path.resolve(root, "../shared/reference");
const pkg = path.resolve(arg("--pkg", path.join(root, "crates/sam-wasm/pkg")));
const checkpoint = arg("--checkpoint", path.join(refDir, "mobile_sam_seed0.pth"));
const runs = Number(arg("--runs", "3"));
const clicks = Number(arg("--clicks", "10"));
const loads = Number(arg("--loads", "1"));
const width = Number(arg("--width", "1024"));
const height = Number(arg("--height", "768"));
const coreFile = arg("--core", undefined);
const light = flag("--light");
if (![runs, clicks, loads, width, height].every((n) => Number.isInteger(n) && n > 0)) {
  console.error("--runs, --clicks, --loads, --width and --height take positive integers");
  exit(2);
}
if (!existsSync(path.join(pkg, "sam_wasm_bg.wasm"))) {
  console.error(`no module in ${pkg}: build it with scripts/build-wasm.sh (release)`);
  exit(2);
}

const log = (s) => stderr.write(`${s}\n`);
const round = (x) => Math.round(x * 100) / 100;
function stats(name, v) {
  const sorted = [...v].sort((a, b) => a - b);
  const med = sorted[Math.floor(sorted.length / 2)];
  log(`${name}: median ${med.toFixed(1)} ms, min ${sorted[0].toFixed(1)}, max ${sorted.at(-1).toFixed(1)} (${v.length} runs)`);
  return { median_ms: round(med), min_ms: round(sorted[0]), max_ms: round(sorted.at(-1)), runs: v.length, ms: v.map(round) };
}

/** The synthetic image of sam-core's bench example (`synthetic_image`), as RGBA bytes. */
function syntheticImage(w, h) {
  const data = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const u = Math.fround(x / w), v = Math.fround(y / h);
      const disc = (u - 0.65) ** 2 + (v - 0.4) ** 2 < 0.03;
      const rect = u >= 0.1 && u < 0.4 && v >= 0.55 && v < 0.85;
      const px = disc ? [230, 40, 40] : rect ? [30, 200, 60]
        : [40 + 180 * u, 30 + 200 * v, 200 - 150 * u * v].map(Math.trunc);
      data.set([...px, 255], (y * w + x) * 4);
    }
  }
  return data;
}

const glue = await import(pathToFileURL(path.join(pkg, "sam_wasm.js")).href);
const wasmBytes = await readFile(path.join(pkg, "sam_wasm_bg.wasm"));
let t = performance.now();
const exports = await glue.default({ module_or_path: wasmBytes });
const instantiateMs = performance.now() - t;
const bytes = new Uint8Array(await readFile(checkpoint));
const out = {
  impl: "sam-wasm (the page's module)",
  pkg: path.relative(root, pkg) || ".",
  wasm_mib: round(wasmBytes.length / 2 ** 20),
  checkpoint: path.resolve(checkpoint),
  checkpoint_mib: round(bytes.length / 2 ** 20),
  image: [width, height],
  instantiate_ms: round(instantiateMs),
};

const loadMs = [];
let seg;
for (let i = 0; i < loads; i++) {
  seg?.free();
  t = performance.now();
  seg = await glue.Segmenter.create(bytes, { backend: "cpu" });
  loadMs.push(performance.now() - t);
}
out.load = stats("load (Segmenter.create)", loadMs);
out.model_type = seg.modelType;
out.backend = seg.backend;

/** One click as the bench example makes it: point i, three masks; `options` the request's. */
async function click(i, options) {
  // (500 + i, 400) at 1024x768, as the bench example; the same place on other sizes.
  const x = Math.round((500 * width) / 1024) + i, y = Math.round((400 * height) / 768);
  const prompt = { points: [[x, y]], labels: [1], multimask: true };
  const t0 = performance.now();
  const r = options === undefined ? await seg.predict(prompt) : await seg.predict(prompt, options);
  const ms = performance.now() - t0;
  if (r.width !== width || r.height !== height || r.masks[0].length !== width * height) {
    throw new Error(`unexpected result ${r.width}x${r.height}, ${r.masks.length} masks`);
  }
  return { ms, r };
}

// Each setImage, then the first click after it (the page's user waits for this one too: the
// first image of the module is the page's first image); the later clicks after the last one.
const rgba = syntheticImage(width, height);
const embedMs = [];
const coldMs = [];
for (let i = 0; i < runs; i++) {
  t = performance.now();
  await seg.setImage(rgba, width, height);
  embedMs.push(performance.now() - t);
  const cold = await click(0);
  if (cold.r.masks.length !== 3 || cold.r.lowResLogits.length !== 3) throw new Error("expected 3 masks");
  coldMs.push(cold.ms);
}
out.set_image = stats("setImage", embedMs);
out.click_cold = stats("first click after setImage (one per setImage)", coldMs);
out.click_cold_first_image_ms = round(coldMs[0]);
const warm = [];
for (let i = 1; i <= clicks; i++) warm.push((await click(i)).ms);
out.click_full_res = stats("click (3 masks at the image size, as JS arrays)", warm);
out.first_click_over_later = round(out.click_cold.median_ms / out.click_full_res.median_ms);
out.first_image_click_over_later = round(out.click_cold_first_image_ms / out.click_full_res.median_ms);
log(`first click / later click: ${out.first_click_over_later} (median of the runs), ${out.first_image_click_over_later} (after the first image)`);
if (light) {
  const hover = [];
  for (let i = 1; i <= clicks; i++) {
    const { ms, r } = await click(i, { masks: "best", lowResLogits: false });
    if (r.masks.length !== 1 || r.lowResLogits.length !== 0) {
      log("this module ignores predict options (no hover request to time)");
      break;
    }
    hover.push(ms);
  }
  if (hover.length) out.click_light = stats("hover request (best mask only, no low-res logits)", hover);
}
out.wasm_memory_mib = round(exports.memory.buffer.byteLength / 2 ** 20);
seg.free();

if (coreFile) {
  const core = JSON.parse(await readFile(coreFile, "utf8"));
  const ratio = (a, b) => round(a / b);
  out.core = {
    load_ms: core.load.median_ms,
    set_image_ms: core.set_image.median_ms,
    click_ms: core.click_full_res.median_ms,
  };
  out.ratios = {
    load: ratio(out.load.median_ms, core.load.median_ms),
    set_image: ratio(out.set_image.median_ms, core.set_image.median_ms),
    click: ratio(out.click_full_res.median_ms, core.click_full_res.median_ms),
    first_click_over_later: ratio(out.click_cold.median_ms, out.click_full_res.median_ms),
  };
  const row = (name, a, b, r) => `| ${name} | ${a} | ${b} | ${r} |`;
  const ms = (x) => `${x.toFixed(1)} ms`;
  log(`\n${core.model}, one thread, image ${width}x${height}; the binding on the CPU backend from Node ${process.version}`);
  log("| step | sam-core `bench` (WASI) | the page's module (binding) | binding / core |");
  log("| --- | --- | --- | --- |");
  log(row("load the checkpoint", ms(core.load.median_ms), ms(out.load.median_ms), `${out.ratios.load.toFixed(2)}x`));
  log(row("`set_image`", ms(core.set_image.median_ms), ms(out.set_image.median_ms), `${out.ratios.set_image.toFixed(2)}x`));
  log(row("one click, 3 masks at full size (median)", ms(core.click_full_res.median_ms), ms(out.click_full_res.median_ms), `${out.ratios.click.toFixed(2)}x`));
  log(row("first click after `set_image` (median of the runs)", "", ms(out.click_cold.median_ms), `${out.ratios.first_click_over_later.toFixed(2)}x a later click`));
  log(row("first click after the module's first image", "", ms(out.click_cold_first_image_ms), `${ratio(out.click_cold_first_image_ms, out.click_full_res.median_ms).toFixed(2)}x a later click`));
  if (out.click_light) log(row("hover request: 1 mask, no low-res logits", "", ms(out.click_light.median_ms), `${ratio(out.click_light.median_ms, core.click_full_res.median_ms).toFixed(2)}x`));
}
console.log(JSON.stringify(out));
