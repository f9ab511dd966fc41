// The threaded CPU module (crates/sam-wasm/pkg-threads, scripts/build-wasm.sh --threads) against
// the single-threaded one (crates/sam-wasm/pkg) and the reference kit, in headless Chromium on a
// cross-origin isolated page (threads/index.html, served with COOP/COEP): each module runs in a
// worker (threads/runner.js) on the CPU backend, the threaded one with a pool of 2 threads.
// The masks must be within the kit's tolerances (as demo.spec.ts: at most the case's count of
// reference logits within 1e-2 of 0 may differ; IoU predictions within iou_atol) and equal to the
// single-threaded module's. Skipped when pkg-threads is not built. Both builds of each module where
// the relaxed-SIMD ones are built (scripts/build-wasm.sh): plain SIMD, then relaxed SIMD (fused
// multiply-adds), each within the tolerances and the two modules of a build equal.
// Every predictor case of the kit's tiny and mobile_sam tags, except those with a mask input.
// And the demo: served cross-origin isolated (tests/e2e/server.ts) it runs the threaded module; served
// without isolation it still works, on the single-threaded one.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { manifest, referenceDir, repoRoot, SafeTensors, tagFor, type Manifest, type PredictorCase } from "./reference.js";
import { startServer, type StaticServer } from "./server.js";
import { expect, status, test, waitPredicted, waitReady, screenPoint } from "./fixtures.js";

const pkgThreads = join(repoRoot, "crates/sam-wasm/pkg-threads");
const THREADS = 2;

interface Output {
  threads: number;
  backendInfo: string;
  embedMs: Record<string, number[]>;
  cases: { name: string; masks: string[]; scores: number[]; ms: number[] }[];
}

let server: StaticServer;
test.beforeAll(async () => {
  server = await startServer({
    "/__threads/": join(repoRoot, "tests/e2e/threads"),
    "/pkg/": join(repoRoot, "crates/sam-wasm/pkg"),
    "/pkg-threads/": pkgThreads,
    "/__ref/": referenceDir(),
  });
});
test.afterAll(async () => server?.close());

/** The job for runner.js: the tag's checkpoint, its images (RGB, base64) and prompts. */
function job(man: Manifest, tag: string, cases: PredictorCase[]): object {
  const pre = new SafeTensors(join(referenceDir(), "preprocess.safetensors"));
  const names = [...new Set(cases.map((c) => c.image))];
  return {
    checkpoint: `/__ref/${tag}.pth`,
    images: names.map((name) => {
      const info = man.images[name];
      if (!info) throw new Error(`image ${name} not in the manifest`);
      const [height, width] = info.orig_size;
      return {
        name,
        width,
        height,
        rgb: Buffer.from(pre.u8(`image/${name}`)).toString("base64"),
        cases: cases
          .filter((c) => c.image === name)
          .map((c) => ({
            name: c.name,
            prompt: {
              ...(c.inputs.point_coords ? { points: c.inputs.point_coords, labels: c.inputs.point_labels } : {}),
              ...(c.inputs.box ? { box: c.inputs.box } : {}),
              multimask: c.inputs.multimask_output,
            },
          })),
      };
    }),
  };
}

/** The relaxed-SIMD builds beside the plain ones (scripts/build-wasm.sh), when built. */
const relaxedBuilt = ["pkg", "pkg-threads"].every((d) => existsSync(join(repoRoot, "crates/sam-wasm", d, "sam_wasm_relaxed_bg.wasm")));

for (const config of ["tiny", "mobile_sam"] as const) {
  test(`threads: ${config} on 2 threads matches the reference and the single-threaded module`, async ({ page }) => {
    test.skip(!existsSync(join(pkgThreads, "sam_wasm.js")), "crates/sam-wasm/pkg-threads is not built (scripts/build-wasm.sh --threads)");
    page.on("console", (m) => {
      if (m.type() === "error") console.log(`[page error] ${m.text()}`);
    });
    const dir = referenceDir();
    const tag = tagFor(dir, config);
    const man = manifest(dir, tag);
    const cases = man.predictor_cases.filter((c) => !("mask_input" in c.inputs));
    expect(cases.length).toBeGreaterThan(0);
    await page.goto(`${server.url}/__threads/index.html`);
    expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
    await page.waitForFunction(() => (window as unknown as { harnessReady?: boolean }).harnessReady === true);
    const run = (module: string, threads: number, wasm?: string): Promise<Output> =>
      page.evaluate(([j, module, threads, wasm]) => (window as unknown as { runModule(j: object): Promise<Output> }).runModule({ ...j, module, threads, wasm }), [job(man, tag, cases), module, threads, wasm] as const);
    // The plain SIMD builds, then (where built) the relaxed-SIMD ones: Chromium has relaxed SIMD.
    const builds: [string, string | undefined][] = [["plain SIMD", undefined]];
    if (relaxedBuilt) builds.push(["relaxed SIMD", "sam_wasm_relaxed_bg.wasm"]);
    const ref = new SafeTensors(join(dir, `${tag}_ref.safetensors`));
    const tol = man.tolerances.suggested;
    for (const [build, wasm] of builds) {
      const single = await run("/pkg/sam_wasm.js", 1, wasm && `/pkg/${wasm}`);
      const threaded = await run("/pkg-threads/sam_wasm.js", THREADS, wasm && `/pkg-threads/${wasm}`);
      console.log(`${tag} (${build}): embed ms single ${JSON.stringify(single.embedMs)}, threaded ${JSON.stringify(threaded.embedMs)} (${threaded.threads} threads)`);
      expect(threaded.threads).toBe(THREADS);
      expect(single.backendInfo).toContain("CPU");

      for (const c of cases) {
        const s = single.cases.find((x) => x.name === c.name);
        const t = threaded.cases.find((x) => x.name === c.name);
        if (!s || !t) throw new Error(`${c.name}: no result`);
        const [height, width] = man.images[c.image]?.orig_size ?? [0, 0];
        const pixels = height * width;
        // Cases with return_logits hold the logits: the mask is where they are above 0.
        const wantAll = ref.info(c.outputs.masks).dtype === "F32" ? Uint8Array.from(ref.f32(c.outputs.masks), (v) => (v > 0 ? 1 : 0)) : ref.u8(c.outputs.masks);
        const wantIou = ref.f32(c.outputs.iou_predictions);
        for (const [module, out] of [["single-threaded", s], ["threaded", t]] as const) {
          expect(out.masks.length, `${c.name} (${build}, ${module}): mask count`).toBe(wantIou.length);
          for (let i = 0; i < out.masks.length; i++) {
            const got = Buffer.from(out.masks[i] ?? "", "base64");
            const want = wantAll.subarray(i * pixels, (i + 1) * pixels);
            let diff = 0;
            for (let p = 0; p < pixels; p++) if ((got[p] ? 1 : 0) !== (want[p] ? 1 : 0)) diff++;
            expect(diff, `${c.name} mask ${i} (${build}, ${module}): ${diff} of ${pixels} pixels differ from the reference`).toBeLessThanOrEqual(
              c.full_res_logit_stats.n_ambiguous_1e2,
            );
            expect(Math.abs((out.scores[i] ?? NaN) - (wantIou[i] ?? NaN)), `${c.name} IoU ${i} (${build}, ${module})`).toBeLessThanOrEqual(tol.iou_atol);
          }
        }
        // The threaded module's masks equal the single-threaded module's of the same build, byte for byte.
        for (let i = 0; i < t.masks.length; i++)
          expect(t.masks[i] === s.masks[i], `${c.name} mask ${i} (${build}): threaded and single-threaded masks differ`).toBe(true);
      }
    }
  });
}

for (const isolated of [true, false]) {
  test(`threads: the demo ${isolated ? "is cross-origin isolated and runs the threaded module" : "without isolation runs on one thread"}`, async ({ page, env }) => {
    test.skip(isolated && !existsSync(join(repoRoot, "web/dist/sam-wasm-threads/sam_wasm.js")), "the demo was built without the threaded module");
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") console.log(`[page ${m.type()}] ${m.text()}`);
    });
    const plain = isolated ? null : await startServer({ "/": join(repoRoot, "web/dist"), "/__ref/": env.refDir, "/__test/": join(repoRoot, "tests/e2e/artifacts/served") }, 0, { isolated: false });
    try {
      const base = plain?.url ?? env.server.url;
      const img = env.images["landscape"];
      if (!img) throw new Error("no landscape test image");
      await page.goto(`${base}/?backend=cpu&threads=${THREADS}&model=/__ref/${tagFor(env.refDir, "tiny")}.pth&image=${img.url}&cache=0`);
      expect(await page.evaluate(() => crossOriginIsolated)).toBe(isolated);
      const s = await waitReady(page);
      expect(s.backend).toBe("cpu");
      expect(s.threads).toBe(isolated ? THREADS : 1);
      // Chromium has relaxed SIMD: the relaxed build runs where it was built.
      expect(s.relaxedSimd).toBe(relaxedBuilt);
      // A click segments.
      const p = await screenPoint(page, img.width / 2, img.height / 2);
      await page.mouse.click(p.x, p.y);
      const after = await waitPredicted(page, s.predictCount);
      expect(after.objects).toBeGreaterThan(0);
      expect((await status(page)).message?.level).not.toBe("error");
    } finally {
      await plain?.close();
    }
  });
}
