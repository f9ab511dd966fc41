// web/state.ts: the demo's store, its object commands and undo/redo (no DOM, no worker).
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Prediction, Sa1bFile } from "../../js/types.js";
import { colorFor, DemoStore, HISTORY_LIMIT, promptFor, sessionBuffers } from "../../web/state.js";

/** A store with a "ready" 4x3 image. */
function readyStore(): DemoStore {
  const s = new DemoStore();
  s.image = { width: 4, height: 3, data: new Uint8ClampedArray(48), colorSpace: "srgb" } as ImageData;
  s.imageState = "ready";
  return s;
}

/** A prediction of `n` masks of the 4x3 image, mask i covering pixel i. */
function prediction(n: number, best = 0): Prediction {
  const masks = Array.from({ length: n }, (_, i) => {
    const m = new Uint8Array(12);
    m[i] = 1;
    return m;
  });
  return {
    masks,
    scores: masks.map((_, i) => 0.5 + i / 10),
    lowResLogits: masks.map(() => new Float32Array(4)),
    best,
    width: 4,
    height: 3,
    decodeMs: 1,
  } as Prediction;
}

test("a click before the image is ready does nothing", () => {
  const s = new DemoStore();
  assert.equal(s.addPoint(1, 1, 1), null);
  assert.equal(s.objects.length, 0);
  assert.equal(s.undo.length, 0);
});

test("clicks go to the selected prompt object, a new one otherwise", () => {
  const s = readyStore();
  const a = s.addPoint(1, 1, 1);
  assert.ok(a);
  assert.equal(s.objects.length, 1);
  assert.equal(s.selectedId, a.id);
  assert.equal(s.addPoint(2, 1, 0), a);
  assert.deepEqual(a.points, [
    { x: 1, y: 1, label: 1 },
    { x: 2, y: 1, label: 0 },
  ]);
  s.addEmptyObject();
  const b = s.setBox([0, 0, 2, 2]);
  assert.notEqual(b, a);
  assert.equal(s.objects.length, 2);
  assert.deepEqual(b?.box, [0, 0, 2, 2]);
  assert.equal(a.name, "Object 1");
  assert.equal(b?.name, "Object 2");
  assert.deepEqual(b?.color, colorFor(1));
});

test("undo and redo restore objects, selection and ids; a new command drops the redo steps", () => {
  const s = readyStore();
  const a = s.addPoint(1, 1, 1);
  s.addPoint(2, 2, 1);
  assert.equal(s.undo.length, 2);
  assert.ok(s.undoStep());
  assert.equal(s.objects[0]?.points.length, 1);
  assert.equal(s.redo.length, 1);
  assert.ok(s.undoStep());
  assert.equal(s.objects.length, 0);
  assert.equal(s.selectedId, -1);
  assert.equal(s.nextObjectId, 1);
  assert.equal(s.undoStep(), false);
  assert.ok(s.redoStep());
  assert.ok(s.redoStep());
  assert.equal(s.redoStep(), false);
  assert.equal(s.objects[0]?.points.length, 2);
  assert.equal(s.selectedId, a?.id);
  // The restored objects are copies: changing them leaves the history alone.
  s.objects[0]?.points.push({ x: 0, y: 0, label: 1 });
  s.undoStep();
  assert.equal(s.objects[0]?.points.length, 1);
  s.addPoint(3, 0, 1);
  assert.equal(s.redo.length, 0);
  assert.ok(s.dirty);
});

test("the history keeps the last HISTORY_LIMIT steps", () => {
  const s = readyStore();
  for (let i = 0; i < HISTORY_LIMIT + 5; i++) s.addPoint(i % 4, 0, 1);
  assert.equal(s.undo.length, HISTORY_LIMIT);
});

test("a prediction applies only to the version and image it was asked for", () => {
  const s = readyStore();
  const o = s.addPoint(0, 0, 1);
  assert.ok(o);
  const version = ++o.version;
  assert.equal(s.applyPrediction(o.id, version, s.imageToken + 1, prediction(3)), false, "another image");
  assert.equal(s.applyPrediction(o.id, version - 1, s.imageToken, prediction(3)), false, "an older prompt");
  assert.equal(s.predictCount, 0);
  assert.ok(s.applyPrediction(o.id, version, s.imageToken, prediction(3, 2)));
  assert.equal(s.predictCount, 1);
  assert.equal(o.choices.length, 3);
  assert.equal(o.chosen, 2);
  assert.equal(o.mask?.[2], 1);
  assert.deepEqual(o.bbox, [2, 0, 0, 0]);
  // Undo bumps the versions: a result asked before it does not land.
  s.addPoint(1, 0, 1);
  s.undoStep();
  assert.equal(s.applyPrediction(o.id, version, s.imageToken, prediction(3)), false);
});

test("choosing a mask of a multimask prediction is a step of its own", () => {
  const s = readyStore();
  const o = s.addPoint(0, 0, 1);
  assert.ok(o);
  s.applyPrediction(o.id, ++o.version, s.imageToken, prediction(3, 0));
  s.chooseMask(1);
  assert.equal(s.selected()?.chosen, 1);
  assert.equal(s.selected()?.mask?.[1], 1);
  assert.deepEqual(s.selected()?.bbox, [1, 0, 0, 0]);
  s.undoStep();
  assert.equal(s.selected()?.chosen, 0);
});

test("remove, clear, select and categories", () => {
  const s = readyStore();
  const a = s.addPoint(0, 0, 1);
  s.addEmptyObject();
  const b = s.addPoint(1, 1, 1);
  s.select(a?.id ?? -1);
  s.setCategory("dog");
  assert.equal(s.selected()?.category, "dog");
  assert.equal(s.newObject().category, "dog");
  s.removeObject(a?.id ?? -1);
  assert.equal(s.selectedId, b?.id);
  assert.ok(s.clearObjects());
  assert.equal(s.clearObjects(), false);
  assert.equal(s.objects.length, 0);
  s.undoStep();
  assert.equal(s.objects.length, 1);
});

test("every change notifies the listeners", () => {
  const s = readyStore();
  let calls = 0;
  s.onChange(() => calls++);
  s.addPoint(0, 0, 1);
  s.undoStep();
  s.redoStep();
  s.clearObjects();
  assert.equal(calls, 4);
});

test("SA-1B annotations become objects, with history", () => {
  const s = readyStore();
  const file: Sa1bFile = {
    image: { image_id: 0, width: 4, height: 3, file_name: "x.png" },
    annotations: [0, 1].map((id) => ({
      id,
      segmentation: { size: [3, 4], counts: "" },
      bbox: [0, 0, 0, 0],
      area: 1,
      predicted_iou: 0.9,
      stability_score: 0.95,
      crop_box: [0, 0, 4, 3],
      point_coords: [[0, 0]],
    })),
  };
  const mask = new Uint8Array(12);
  mask[5] = 1;
  s.addAnnotations(file, [mask, mask], "auto");
  assert.deepEqual(
    s.objects.map((o) => [o.name, o.source, o.score, o.bbox]),
    [
      ["Auto 1", "auto", 0.9, [1, 1, 0, 0]],
      ["Auto 2", "auto", 0.9, [1, 1, 0, 0]],
    ],
  );
  assert.equal(s.selectedId, s.objects[1]?.id);
  assert.equal(s.objects[0]?.annotation, file.annotations[0]);
  s.undoStep();
  assert.equal(s.objects.length, 0);
});

test("a session leaves and comes back with its objects and history", () => {
  const s = readyStore();
  s.imageName = "a.png";
  const o = s.addPoint(0, 0, 1);
  assert.ok(o);
  s.applyPrediction(o.id, ++o.version, s.imageToken, prediction(3));
  s.addPoint(1, 0, 1);
  const saved = s.session();
  s.enterSession("k2", "b.png", { objects: [], undo: [], redo: [], selectedId: -1, nextObjectId: 1, dirty: false, name: "b.png" });
  assert.equal(s.objects.length, 0);
  s.enterSession("k1", "a.png", saved);
  assert.equal(s.objects.length, 1);
  assert.equal(s.undo.length, 2);
  assert.equal(s.imageName, "a.png");
  // The buffers of the objects and of the snapshots: the snapshot shares the object's masks (3 choices,
  // chosen mask and logits), so its buffers repeat the object's.
  const buffers = [...sessionBuffers(saved)].filter((b) => b !== null);
  assert.equal(buffers.length, 2 * (2 + 3 * 2));
  assert.equal(new Set(buffers.map((b) => b?.buffer)).size, 6);
});

test("prompts follow the official predictor's use", () => {
  assert.deepEqual(promptFor([{ x: 1, y: 2, label: 1 }], null, null), { points: [[1, 2]], labels: [1], multimask: true });
  const low = new Float32Array(4);
  assert.deepEqual(promptFor([{ x: 1, y: 2, label: 1 }], null, low), { points: [[1, 2]], labels: [1], multimask: false, maskInput: low });
  assert.deepEqual(promptFor([], [0, 0, 2, 2], null), { box: [0, 0, 2, 2], multimask: false });
});
