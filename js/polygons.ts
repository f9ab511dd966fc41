// Masks as polygons (computed in the worker by sam-core's polygon module: pixel-edge tracing,
// holes, Douglas-Peucker), and drawing them as outlines.

/** [x, y] in pixel-edge image coordinates: pixel (x, y) is the square [x, x+1] x [y, y+1]. */
export type Point = [number, number];

/** Options of `SamClient.maskToPolygons` and of the COCO export's polygons. */
export interface PolygonOptions {
  /** Douglas-Peucker tolerance in pixels; 0 (default) keeps every corner: the polygons cover exactly the mask's pixels. */
  tolerance?: number;
  /** Parts of fewer pixels are dropped and holes enclosing fewer pixels are filled. Default 0. */
  minArea?: number;
  /** Only the part with the most pixels. Default false. */
  largestOnly?: boolean;
}

/** One 8-connected part of a mask. */
export interface MaskPolygon {
  /** Outer ring (open: the first point is not repeated), clockwise on screen. */
  exterior: Point[];
  /** Hole rings (4-connected background enclosed by the part), counter-clockwise on screen. */
  holes: Point[][];
  /** Pixels of the part in the mask (before simplification). */
  pixelArea: number;
  /**
   * The COCO flat polygon [x1, y1, x2, y2, ...]: the exterior, then each hole joined to the exterior's
   * first point by a zero-width bridge. COCO unites the lists of one `segmentation`, so a hole cannot be
   * a list of its own; pycocotools fills one list by the even-odd rule, which leaves the bridged hole out.
   */
  coco: number[];
}

/**
 * A Path2D of the polygons' rings (exteriors and holes), scaled by `scale` (canvas pixels per image
 * pixel): stroke it for outlines, or fill it with the "evenodd" rule to paint the mask.
 */
export function polygonsToPath(polygons: readonly MaskPolygon[], scale = 1): Path2D {
  const path = new Path2D();
  for (const p of polygons) {
    for (const ring of [p.exterior, ...p.holes]) {
      ring.forEach(([x, y], i) => (i === 0 ? path.moveTo(x * scale, y * scale) : path.lineTo(x * scale, y * scale)));
      path.closePath();
    }
  }
  return path;
}
