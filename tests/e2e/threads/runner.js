// The worker of threads.spec.ts and the browser benchmarks: loads one sam-wasm module (single-threaded
// pkg or threaded pkg-threads; `job.wasm`: another .wasm for its glue, e.g. its relaxed-SIMD build), starts rayon's pool for the threaded one, runs the given prompts on
// `job.backend` (default "cpu") and returns the masks (base64), scores and timings. With
// `job.firstClicks`, the first case's prompt is also clicked once right after each setImage (the
// binding's first click on that image: `firstClickMs`); with `job.withEmbedding`, the last image's
// embedding comes back as .npy bytes (base64).
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
    await m.default(job.wasm ? { module_or_path: job.wasm } : undefined);
    // The threaded module starts its pool (even of 1 thread: the benchmark's baseline).
    if (m.initThreadPool) await m.initThreadPool(job.threads);
    const bytes = new Uint8Array(await (await fetch(job.checkpoint)).arrayBuffer());
    const tLoad = performance.now();
    const seg = await m.Segmenter.create(bytes, { backend: job.backend ?? "cpu" });
    const loadMs = performance.now() - tLoad;
    const out = { threads: m.threadCount ? m.threadCount() : 1, backendInfo: seg.backendInfo, loadMs, embedMs: {}, firstClickMs: {}, cases: [] };
    for (const image of job.images) {
      const rgba = rgbaOf(image.rgb, image.width, image.height);
      const runs = [];
      const firsts = [];
      for (let r = 0; r < (job.embedRuns ?? 1); r++) {
        let t0 = performance.now();
        await seg.setImage(rgba, image.width, image.height);
        runs.push(performance.now() - t0);
        if (job.firstClicks && image.cases[0]) {
          t0 = performance.now();
          await seg.predict(image.cases[0].prompt);
          firsts.push(performance.now() - t0);
        }
      }
      out.embedMs[image.name] = runs;
      out.firstClickMs[image.name] = firsts;
      if (job.withEmbedding) out.embedding = b64(await seg.exportEmbedding());
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
