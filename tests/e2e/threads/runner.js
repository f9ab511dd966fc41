// The worker of threads.spec.ts: loads one sam-wasm module (single-threaded pkg or threaded
// pkg-threads), starts rayon's pool for the threaded one, runs the given prompts on the CPU
// backend and returns the masks (base64), scores and timings.
const b64 = (bytes) => {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
};
const rgbaOf = (rgbBase64, width, height) => {
  const rgb = Uint8Array.from(atob(rgbBase64), (c) => c.charCodeAt(0));
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0, j = 0; i < width * height; i++, j += 3) {
    rgba[4 * i] = rgb[j];
    rgba[4 * i + 1] = rgb[j + 1];
    rgba[4 * i + 2] = rgb[j + 2];
    rgba[4 * i + 3] = 255;
  }
  return rgba;
};

self.onmessage = async ({ data: job }) => {
  try {
    const m = await import(job.module);
    await m.default();
    // The threaded module starts its pool (even of 1 thread: the benchmark's baseline).
    if (m.initThreadPool) await m.initThreadPool(job.threads);
    const bytes = new Uint8Array(await (await fetch(job.checkpoint)).arrayBuffer());
    const seg = await m.Segmenter.create(bytes, { backend: "cpu" });
    const out = { threads: m.threadCount ? m.threadCount() : 1, backendInfo: seg.backendInfo, embedMs: {}, cases: [] };
    for (const image of job.images) {
      const rgba = rgbaOf(image.rgb, image.width, image.height);
      const runs = [];
      for (let r = 0; r < (job.embedRuns ?? 1); r++) {
        const t0 = performance.now();
        await seg.setImage(rgba, image.width, image.height);
        runs.push(performance.now() - t0);
      }
      out.embedMs[image.name] = runs;
      for (const c of image.cases) {
        const times = [];
        let r;
        for (let k = 0; k < (job.predictRuns ?? 1); k++) {
          const t0 = performance.now();
          r = await seg.predict(c.prompt);
          times.push(performance.now() - t0);
        }
        out.cases.push({ name: c.name, masks: job.withMasks === false ? [] : r.masks.map(b64), scores: Array.from(r.scores), ms: times });
      }
    }
    if (job.generate) {
      const t0 = performance.now();
      await seg.generate(job.generate, () => true);
      out.generateMs = performance.now() - t0;
    }
    seg.free();
    self.postMessage({ ok: out });
  } catch (e) {
    self.postMessage({ error: String((e && e.stack) || e) });
  }
};
