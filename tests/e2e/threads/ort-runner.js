// The peer of runner.js for the ONNX Runtime Web benchmarks (scripts/bench-ort.sh): ORT-web (served at
// /__ort/) runs the ONNX export of the same checkpoint (scripts/export_onnx.py) with the execution
// provider `job.ep`: "wasm" (ort.wasm.min.mjs, on `threads` threads) or "webgpu" (ort.webgpu.min.mjs).
// The encoder runs on a 1x3x1024x1024 input (`job.input`: the URL of the kit's preprocessed image as
// raw float32, else a synthetic one), and a click (the official SamOnnxModel: one point plus the
// padding point, the mask tokens upscaled to the image size, thresholded to bytes as our predict
// returns them) at `job.point` (image pixels; else near the centre, moving a pixel a click).
// Returns the times (session creation, each encoder run, each click: the first of each is the cold
// one) and, with `job.withOutputs`, the last embedding (float32, base64), the first click's masks
// (bytes, base64, one per mask token) and scores.
const b64 = (bytes) => {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
};

self.onmessage = async ({ data: job }) => {
  try {
    const ep = job.ep ?? "wasm";
    const ort = await import(ep === "webgpu" ? "/__ort/ort.webgpu.min.mjs" : "/__ort/ort.wasm.min.mjs");
    ort.env.wasm.wasmPaths = "/__ort/";
    ort.env.wasm.numThreads = job.threads;
    const options = { executionProviders: [ep], graphOptimizationLevel: "all" };
    let t0 = performance.now();
    const encoder = await ort.InferenceSession.create(job.encoder, options);
    const decoder = await ort.InferenceSession.create(job.decoder, options);
    const createMs = performance.now() - t0;
    let input;
    if (job.input) {
      input = new Float32Array(await (await fetch(job.input)).arrayBuffer());
      if (input.length !== 3 * 1024 * 1024) throw new Error(`${job.input}: ${input.length} floats, not 3x1024x1024`);
    } else {
      input = new Float32Array(3 * 1024 * 1024);
      for (let i = 0; i < input.length; i++) input[i] = Math.sin(i * 0.001);
    }
    const embedMs = [];
    let embedding;
    for (let r = 0; r < job.embedRuns; r++) {
      t0 = performance.now();
      const out = await encoder.run({ [encoder.inputNames[0]]: new ort.Tensor("float32", input, [1, 3, 1024, 1024]) });
      embedMs.push(performance.now() - t0);
      embedding = out[encoder.outputNames[0]];
    }
    const [h, w] = [job.height, job.width];
    const scale = 1024 / Math.max(h, w);
    const clickMs = [];
    const result = { createMs, embedMs, clickMs };
    for (let k = 0; k < job.predictRuns; k++) {
      const [x, y] = job.point ?? [w / 2 + k, h / 2];
      t0 = performance.now();
      const feeds = {
        image_embeddings: embedding,
        point_coords: new ort.Tensor("float32", new Float32Array([x * scale, y * scale, 0, 0]), [1, 2, 2]),
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
      if (job.withOutputs && k === 0) {
        const n = h * w;
        result.masks = Array.from({ length: masks.length / n }, (_, i) => b64(masks.subarray(i * n, (i + 1) * n)));
        result.scores = Array.from(out.iou_predictions.data);
      }
    }
    if (job.withOutputs) result.embedding = b64(new Uint8Array(embedding.data.buffer, embedding.data.byteOffset, embedding.data.byteLength));
    self.postMessage({ ok: result });
  } catch (e) {
    self.postMessage({ error: String((e && e.stack) || e) });
  }
};
