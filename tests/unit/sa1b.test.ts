// js/sa1b.ts: masks -> one SA-1B file, the package's builder the demo's export uses.
import assert from "node:assert/strict";
import { test } from "node:test";
import { buildSa1bFile, type Sa1bEncoder } from "../../js/sa1b.js";
import type { Sa1bAnnotation } from "../../js/types.js";

/** An encoder that writes each mask's pixel count and remembers its calls. */
function fakeEncoder(): Sa1bEncoder & { calls: number[] } {
  const calls: number[] = [];
  return {
    calls,
    encodeRle: (masks, height, width) => {
      calls.push(masks.length);
      assert.ok(masks.every((m) => m.length === height * width));
      return Promise.resolve(masks.map((m) => `n${m.reduce((a, v) => a + v, 0)}`));
    },
  };
}

function mask(width: number, height: number, pixels: [number, number][]): Uint8Array {
  const m = new Uint8Array(width * height);
  for (const [x, y] of pixels) m[y * width + x] = 1;
  return m;
}

const image = { width: 5, height: 4, fileName: "cat.png" };

test("prompt objects are encoded in one call, with box, area, score, crop box and clicks", async () => {
  const enc = fakeEncoder();
  const file = await buildSa1bFile(enc, image, [
    {
      mask: mask(5, 4, [
        [1, 1],
        [3, 2],
      ]),
      points: [
        { x: 1, y: 1, label: 1 },
        { x: 4, y: 0, label: 0 },
      ],
      score: 0.75,
    },
    { mask: mask(5, 4, [[0, 3]]), box: [0, 2, 2, 4] },
  ]);
  assert.deepEqual(enc.calls, [2]);
  assert.deepEqual(file.image, { image_id: 0, width: 5, height: 4, file_name: "cat.png" });
  const [a, b] = file.annotations;
  assert.deepEqual(a, {
    id: 0,
    segmentation: { size: [4, 5], counts: "n2" },
    bbox: [1, 1, 2, 1],
    area: 2,
    predicted_iou: 0.75,
    stability_score: null,
    crop_box: [0, 0, 5, 4],
    point_coords: [[1, 1]],
  });
  assert.equal(b?.id, 1);
  assert.equal(b?.predicted_iou, null);
  assert.deepEqual(b?.point_coords, [[1, 3]], "a box alone: its centre");
  assert.equal(b?.segmentation.counts, "n1");
});

test("generated or loaded annotations are kept as they were, renumbered", async () => {
  const enc = fakeEncoder();
  const kept: Sa1bAnnotation = {
    id: 17,
    segmentation: { size: [4, 5], counts: "original" },
    bbox: [0, 0, 1, 1],
    area: 4,
    predicted_iou: 0.9,
    stability_score: 0.97,
    crop_box: [0, 0, 5, 4],
    point_coords: [[0.5, 0.5]],
  };
  const file = await buildSa1bFile(enc, { ...image, imageId: 3 }, [
    { mask: mask(5, 4, [[2, 2]]), points: [] },
    { mask: mask(5, 4, [[0, 0]]), annotation: kept },
  ]);
  assert.deepEqual(enc.calls, [1]);
  assert.equal(file.image.image_id, 3);
  assert.deepEqual(file.annotations[1], { ...kept, id: 1 });
  assert.deepEqual(file.annotations[0]?.point_coords, []);
  const none = await buildSa1bFile(enc, image, [{ mask: mask(5, 4, []), annotation: kept }]);
  assert.deepEqual(enc.calls, [1], "nothing to encode: no call");
  assert.equal(none.annotations.length, 1);
});

test("a mask of the wrong size is a RangeError", async () => {
  await assert.rejects(buildSa1bFile(fakeEncoder(), image, [{ mask: new Uint8Array(3) }]), RangeError);
});
