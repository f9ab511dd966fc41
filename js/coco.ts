// COCO datasets (instances.json) from masks, and back: one file for several images, with `images`,
// `annotations` (compressed RLE or polygons, `area`, `bbox`, `iscrowd`) and `categories`, as
// pycocotools' COCO() reads it. The segmentations, areas and boxes are computed in the worker by
// sam-core (the same RLE and polygon code as everything else).
import type { PolygonOptions } from "./polygons.js";

/** Compressed COCO RLE. */
export interface CocoRle {
  size: [number, number];
  counts: string;
}

/** An annotation's segmentation: compressed RLE, or flat polygons [x1, y1, x2, y2, ...] (united). */
export type CocoSegmentation = CocoRle | number[][];

/** COCO's fields of one mask, as the worker computes them. */
export interface CocoMaskRecord {
  segmentation: CocoSegmentation;
  /** Pixels inside the mask. */
  area: number;
  /** [x, y, width, height], pycocotools' toBbox (width = last column - first column + 1). */
  bbox: [number, number, number, number];
}

export interface CocoImage {
  id: number;
  file_name: string;
  width: number;
  height: number;
}

export interface CocoAnnotation extends CocoMaskRecord {
  id: number;
  image_id: number;
  category_id: number;
  /** 0: one object (RLE or polygons alike; pycocotools' annToMask reads both). */
  iscrowd: 0 | 1;
  /** The model's predicted IoU, when known (not a COCO field; ignored by pycocotools). */
  score?: number;
}

export interface CocoCategory {
  id: number;
  name: string;
  supercategory: string;
}

/** An instances.json file. */
export interface CocoDataset {
  info: { description: string; version: string; date_created: string };
  licenses: never[];
  images: CocoImage[];
  annotations: CocoAnnotation[];
  categories: CocoCategory[];
}

/** One object to export: its mask (row-major 0/1, width*height bytes) and category name. */
export interface CocoObjectInput {
  mask: Uint8Array;
  category: string;
  score?: number;
}

export interface CocoImageInput {
  fileName: string;
  width: number;
  height: number;
  objects: readonly CocoObjectInput[];
}

export interface CocoExportOptions {
  /** "polygons" (default: what annotation tools ingest) or "rle" (exact, compressed). */
  segmentation?: "polygons" | "rle";
  /** Options of the polygons (default: tolerance 1 px). */
  polygon?: PolygonOptions;
  /** Categories listed first, in this order (ids 1, 2, ...); the objects' other names follow in order of appearance. */
  categories?: readonly string[];
  description?: string;
}

/** What the builders need from a SamClient (its worker computes the records and masks). */
export interface CocoCodec {
  cocoRecords(masks: Uint8Array[], height: number, width: number, polygons: boolean, options?: PolygonOptions): Promise<CocoMaskRecord[]>;
  cocoMasks(segmentations: CocoSegmentation[], height: number, width: number): Promise<Uint8Array[]>;
}

/** The default polygon options of the export: 1 pixel of tolerance. */
export const COCO_POLYGON_DEFAULTS: Readonly<PolygonOptions> = { tolerance: 1 };

/**
 * Builds one COCO instances dataset for several images. Image ids are 1, 2, ... in order, annotation
 * ids 1, 2, ... across images. An object whose segmentation comes out empty (an empty mask, or
 * polygons all under `polygon.minArea`) is left out.
 */
export async function buildCocoDataset(codec: CocoCodec, images: readonly CocoImageInput[], options: CocoExportOptions = {}): Promise<CocoDataset> {
  const polygons = (options.segmentation ?? "polygons") === "polygons";
  const polygonOptions = { ...COCO_POLYGON_DEFAULTS, ...options.polygon };
  const categoryIds = new Map<string, number>();
  const categoryId = (name: string): number => {
    let id = categoryIds.get(name);
    if (id === undefined) {
      id = categoryIds.size + 1;
      categoryIds.set(name, id);
    }
    return id;
  };
  for (const name of options.categories ?? []) categoryId(name);
  const dataset: CocoDataset = {
    info: { description: options.description ?? "sam-browser export", version: "1.0", date_created: new Date().toISOString() },
    licenses: [],
    images: [],
    annotations: [],
    categories: [],
  };
  for (const [i, image] of images.entries()) {
    const imageId = i + 1;
    dataset.images.push({ id: imageId, file_name: image.fileName, width: image.width, height: image.height });
    const records = image.objects.length
      ? await codec.cocoRecords(image.objects.map((o) => o.mask), image.height, image.width, polygons, polygonOptions)
      : [];
    records.forEach((record, j) => {
      const object = image.objects[j];
      if (!object || isEmpty(record.segmentation) || record.area === 0) return;
      const annotation: CocoAnnotation = {
        id: dataset.annotations.length + 1,
        image_id: imageId,
        category_id: categoryId(object.category),
        segmentation: record.segmentation,
        area: record.area,
        bbox: record.bbox,
        iscrowd: 0,
      };
      if (object.score !== undefined) annotation.score = object.score;
      dataset.annotations.push(annotation);
    });
  }
  dataset.categories = [...categoryIds].map(([name, id]) => ({ id, name, supercategory: "object" }));
  return dataset;
}

function isEmpty(s: CocoSegmentation): boolean {
  return Array.isArray(s) && s.length === 0;
}

/** An image of a loaded dataset with its objects' masks. */
export interface CocoLoadedImage {
  image: CocoImage;
  objects: { annotation: CocoAnnotation; category: string; mask: Uint8Array }[];
}

/** Thrown by `parseCocoDataset` for a file that is not a COCO instances dataset; says where. */
export class CocoFormatError extends Error {
  override name = "CocoFormatError";
}

/** The most annotations `parseCocoDataset` accepts (an SA-1B image has ~100; 10^6 is a large dataset). */
export const MAX_COCO_ANNOTATIONS = 1_000_000;

/** Parses and checks an instances.json text: images, annotations (RLE with string counts, or polygons) and categories. */
export function parseCocoDataset(json: string): CocoDataset {
  let data: unknown;
  try {
    data = JSON.parse(json);
  } catch (e) {
    throw new CocoFormatError(`not JSON: ${(e as Error).message}`);
  }
  const fail = (where: string, what: string): never => {
    throw new CocoFormatError(`${where}: ${what}`);
  };
  if (typeof data !== "object" || data === null) return fail("file", "not an object");
  const d = data as Record<string, unknown>;
  for (const key of ["images", "annotations", "categories"]) if (!Array.isArray(d[key])) fail(key, "missing or not an array");
  const images = d.images as CocoImage[];
  const annotations = d.annotations as CocoAnnotation[];
  const categories = d.categories as CocoCategory[];
  if (annotations.length > MAX_COCO_ANNOTATIONS) fail("annotations", `${annotations.length} entries, over the limit of ${MAX_COCO_ANNOTATIONS}`);
  const int = (v: unknown): boolean => Number.isInteger(v) && (v as number) >= 0;
  images.forEach((im, i) => {
    if (!int(im?.id) || !int(im?.width) || !int(im?.height)) fail(`images[${i}]`, "needs integer id, width and height");
  });
  categories.forEach((c, i) => {
    if (!int(c?.id) || typeof c?.name !== "string") fail(`categories[${i}]`, "needs an integer id and a name");
  });
  annotations.forEach((a, i) => {
    if (!int(a?.id) || !int(a?.image_id) || !int(a?.category_id)) fail(`annotations[${i}]`, "needs integer id, image_id and category_id");
    const s = a.segmentation as unknown;
    const polygonsOk = Array.isArray(s) && s.every((p) => Array.isArray(p) && p.every((v) => typeof v === "number"));
    const rle = s as Partial<CocoRle> | null;
    const rleOk = !Array.isArray(s) && typeof rle?.counts === "string" && Array.isArray(rle.size) && rle.size.length === 2;
    if (!polygonsOk && !rleOk) fail(`annotations[${i}].segmentation`, "neither polygons (number[][]) nor RLE with a counts string");
  });
  return data as CocoDataset;
}

/** Every image of a dataset with its objects' masks (decoded in the worker), in the file's order. */
export async function cocoDatasetMasks(codec: CocoCodec, dataset: CocoDataset): Promise<CocoLoadedImage[]> {
  const names = new Map(dataset.categories.map((c) => [c.id, c.name]));
  const out: CocoLoadedImage[] = [];
  for (const image of dataset.images) {
    const anns = dataset.annotations.filter((a) => a.image_id === image.id);
    const masks = anns.length ? await codec.cocoMasks(anns.map((a) => a.segmentation), image.height, image.width) : [];
    out.push({
      image,
      objects: anns.map((annotation, i) => ({ annotation, category: names.get(annotation.category_id) ?? String(annotation.category_id), mask: masks[i] ?? new Uint8Array(0) })),
    });
  }
  return out;
}
