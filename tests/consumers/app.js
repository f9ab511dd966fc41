// The whole consumer app: what a user of sam-browser writes, with no sam-browser-specific settings in
// the app's build. scripts/consumers.sh copies this file into each app (vite/src/main.js,
// webpack/src/index.js, plain/src/main.js) and runs them in headless Chromium (consumers.spec.ts).
// Page parameters: ?model=URL&image=URL&point=x,y. The result lands in window.__consumer.
import { SamClient } from "sam-browser";

async function main() {
  const params = new URLSearchParams(location.search);
  // No options: the package finds its worker (worker.js) and the wasm module by itself.
  const sam = await SamClient.create();
  const model = await sam.load(params.get("model") ?? "", { backend: "cpu", cache: false });
  const image = await (await fetch(params.get("image") ?? "")).blob();
  await sam.setImage(image);
  const [x, y] = (params.get("point") ?? "0,0").split(",").map(Number);
  const p = await sam.predict({ points: [[x, y]], labels: [1], multimask: true });
  // The masks as base64 (0/1 bytes), for the test to compare.
  const b64 = (bytes) => {
    let s = "";
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(s);
  };
  return { modelType: model.modelType, backend: model.backend, width: p.width, height: p.height, best: p.best, scores: p.scores, masks: p.masks.map(b64) };
}

main().then(
  (result) => (window.__consumer = { ok: true, ...result }),
  (e) => (window.__consumer = { ok: false, error: `${e?.name}: ${e?.message}` }),
);
