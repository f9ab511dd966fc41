// Masks -> one SA-1B annotation file (the format the official SamAutomaticMaskGenerator writes and
// SamClient.generate returns), for masks made interactively as well as generated or loaded ones.
import { maskArea, maskBBox } from "./masks.js";
import type { Sa1bAnnotation, Sa1bFile } from "./types.js";

/** One object of the file: its mask and what produced it. */
export interface Sa1bObjectInput {
  /** Row-major 0/1 mask, width*height bytes. */
  mask: Uint8Array;
  /** The annotation it came from (generated or loaded): written as it was, with its `id` renumbered. */
  annotation?: Sa1bAnnotation | null;
  /** The clicks that made it (image pixels): the positive ones become `point_coords`. */
  points?: readonly { x: number; y: number; label: 0 | 1 }[];
  /** The box prompt [x0, y0, x1, y1]: its centre is the `point_coords` of a box-only object. */
  box?: readonly [number, number, number, number] | null;
  /** The predicted IoU of the mask (`predicted_iou`), null when unknown. */
  score?: number | null;
  /** The mask's bounding box [x, y, w, h] when already known (else computed). */
  bbox?: [number, number, number, number] | null;
}

/** The image the file describes. */
export interface Sa1bImageInput {
  width: number;
  height: number;
  fileName: string;
  /** SA-1B `image_id` (default 0). */
  imageId?: number;
}

/** What the builder needs from a SamClient: the worker's COCO RLE encoder (sam-core's rle module). */
export interface Sa1bEncoder {
  encodeRle(masks: Uint8Array[], height: number, width: number): Promise<string[]>;
}

/**
 * Builds one SA-1B file of `objects` (annotation ids 0, 1, ... in order). Objects with an `annotation`
 * are written as they were (only renumbered); the others are RLE-encoded (one worker call for all) with
 * their bounding box, area, predicted IoU, the whole image as crop box and their positive clicks (or their
 * box's centre) as point coordinates; `stability_score` is null (not computed for interactive masks).
 * Throws a RangeError when a mask is not width*height bytes.
 */
export async function buildSa1bFile(encoder: Sa1bEncoder, image: Sa1bImageInput, objects: readonly Sa1bObjectInput[]): Promise<Sa1bFile> {
  const { width, height } = image;
  objects.forEach((o, i) => {
    if (o.mask.length !== width * height) throw new RangeError(`object ${i}: mask of ${o.mask.length} bytes, expected ${width}x${height}`);
  });
  const toEncode = objects.filter((o) => !o.annotation);
  const counts = toEncode.length > 0 ? await encoder.encodeRle(toEncode.map((o) => o.mask), height, width) : [];
  const countOf = new Map(toEncode.map((o, i) => [o, counts[i] ?? ""]));
  const annotations: Sa1bAnnotation[] = objects.map((o, i) => {
    if (o.annotation) return { ...o.annotation, id: i };
    const pos = (o.points ?? []).filter((p) => p.label === 1).map((p): [number, number] => [p.x, p.y]);
    const bx = o.box;
    const pointCoords: [number, number][] = pos.length > 0 ? pos : bx ? [[(bx[0] + bx[2]) / 2, (bx[1] + bx[3]) / 2]] : [];
    return {
      id: i,
      segmentation: { size: [height, width], counts: countOf.get(o) ?? "" },
      bbox: o.bbox ?? maskBBox(o.mask, width, height),
      area: maskArea(o.mask),
      predicted_iou: o.score ?? null,
      stability_score: null,
      crop_box: [0, 0, width, height],
      point_coords: pointCoords,
    };
  });
  return { image: { image_id: image.imageId ?? 0, width, height, file_name: image.fileName }, annotations };
}
