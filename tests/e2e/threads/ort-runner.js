// The peer of runner.js for the ONNX Runtime Web benchmark (scripts/bench-ort.sh): ORT-web's wasm
// backend (ort.wasm.min.mjs served at /__ort/) on `threads` threads runs the ONNX export of the same
// checkpoint (scripts/export_onnx.py): the encoder on a 1x3x1024x1024 input, and a click (the official
// SamOnnxModel: one point plus the padding point, three masks upscaled to the image size, thresholded
// to bytes as our predict returns them). Returns the times.
self.onmessage = async ({ data: job }) => {
  try {
    const ort = await import("/__ort/ort.wasm.min.mjs");
    ort.env.wasm.wasmPaths = "/__ort/";
    ort.env.wasm.numThreads = job.threads;
    const options = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
    const encoder = await ort.InferenceSession.create(job.encoder, options);
    const decoder = await ort.InferenceSession.create(job.decoder, options);
    const input = new Float32Array(3 * 1024 * 1024);
    for (let i = 0; i < input.length; i++) input[i] = Math.sin(i * 0.001);
    const embedMs = [];
    let embedding;
    for (let r = 0; r < job.embedRuns; r++) {
      const t0 = performance.now();
      const out = await encoder.run({ [encoder.inputNames[0]]: new ort.Tensor("float32", input, [1, 3, 1024, 1024]) });
      embedMs.push(performance.now() - t0);
      embedding = out[encoder.outputNames[0]];
    }
    const [h, w] = [job.height, job.width];
    const scale = 1024 / Math.max(h, w);
    const clickMs = [];
    for (let k = 0; k < job.predictRuns; k++) {
      const t0 = performance.now();
      const feeds = {
        image_embeddings: embedding,
        point_coords: new ort.Tensor("float32", new Float32Array([(w / 2 + k) * scale, (h / 2) * scale, 0, 0]), [1, 2, 2]),
        point_labels: new ort.Tensor("float32", new Float32Array([1, -1]), [1, 2]),
        mask_input: new ort.Tensor("float32", new Float32Array(256 * 256), [1, 1, 256, 256]),
        has_mask_input: new ort.Tensor("float32", new Float32Array([0]), [1]),
        orig_im_size: new ort.Tensor("float32", new Float32Array([h, w]), [2]),
      };
      const out = await decoder.run(feeds);
      const logits = out.masks.data;
      const masks = new Uint8Array(logits.length);
      for (let i = 0; i < logits.length; i++) masks[i] = logits[i] > 0 ? 1 : 0;
      clickMs.push(performance.now() - t0);
    }
    self.postMessage({ ok: { embedMs, clickMs } });
  } catch (e) {
    self.postMessage({ error: String((e && e.stack) || e) });
  }
};
