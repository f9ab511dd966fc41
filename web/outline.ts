// The demo's "outlines" view: objects and the hover preview drawn as the polygons of their masks
// (SamClient.maskToPolygons: the worker's sam-core tracing), as annotation tools show them.
import type { MaskPolygon } from "../js/polygons.js";
import { polygonsToPath } from "../js/polygons.js";

/** Tolerance of the drawn outlines, in image pixels. */
export const OUTLINE_TOLERANCE = 0.5;

export interface OutlineItem {
  mask: Uint8Array;
  color: [number, number, number];
  /** Line width in image pixels. */
  lineWidth: number;
}

type PolygonSource = (masks: Uint8Array[], height: number, width: number) => Promise<MaskPolygon[][]>;

/** Draws masks as outlines on a canvas of the image's size; polygons are cached per mask buffer. */
export class OutlineRenderer {
  enabled = false;
  private readonly cache = new WeakMap<Uint8Array, MaskPolygon[]>();
  private epoch = new WeakMap<HTMLCanvasElement, number>();

  constructor(private readonly polygonsOf: PolygonSource) {}

  /** Clears `canvas` and strokes the items' polygons (fetching the missing ones first; a newer call wins). */
  async draw(canvas: HTMLCanvasElement, items: readonly OutlineItem[]): Promise<void> {
    const mine = (this.epoch.get(canvas) ?? 0) + 1;
    this.epoch.set(canvas, mine);
    const { width, height } = canvas;
    const missing = items.filter((it) => !this.cache.has(it.mask) && it.mask.length === width * height);
    if (missing.length) {
      const polys = await this.polygonsOf(missing.map((it) => it.mask), height, width);
      missing.forEach((it, i) => this.cache.set(it.mask, polys[i] ?? []));
    }
    if (this.epoch.get(canvas) !== mine) return;
    const ctx = canvas.getContext("2d");
    if (!ctx) return;
    ctx.clearRect(0, 0, width, height);
    ctx.lineJoin = "round";
    for (const it of items) {
      const polys = this.cache.get(it.mask);
      if (!polys) continue;
      const path = polygonsToPath(polys);
      const [r, g, b] = it.color;
      ctx.fillStyle = `rgba(${r}, ${g}, ${b}, 0.15)`;
      ctx.fill(path, "evenodd");
      ctx.strokeStyle = `rgb(${r}, ${g}, ${b})`;
      ctx.lineWidth = it.lineWidth;
      ctx.stroke(path);
    }
  }

  /** The toggle: a checkbox before `anchor`'s end. `onChange` redraws. */
  mount(anchor: HTMLElement, onChange: () => void): HTMLInputElement {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.id = "outline-toggle";
    box.checked = this.enabled;
    box.addEventListener("change", () => {
      this.enabled = box.checked;
      onChange();
    });
    label.append(box, " outlines (polygons)");
    anchor.append(label);
    return box;
  }
}
