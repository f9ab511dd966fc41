// Small helpers for the 0/1 masks that predict() and decodeSa1b() return (row-major, width*height bytes).

export type Rgba = readonly [number, number, number, number];

/** Paints a mask into RGBA pixels: `color` inside, transparent outside (or drawn into `into`, keeping its other pixels). */
export function maskToImageData(mask: Uint8Array, width: number, height: number, color: Rgba, into?: ImageData): ImageData {
  const img = into ?? new ImageData(width, height);
  const d = img.data;
  const [r, g, b, a] = color;
  for (let i = 0, j = 0; i < mask.length; i++, j += 4) {
    if (mask[i]) {
      d[j] = r;
      d[j + 1] = g;
      d[j + 2] = b;
      d[j + 3] = a;
    }
  }
  return img;
}

/** Number of pixels inside the mask. */
export function maskArea(mask: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < mask.length; i++) n += mask[i] ? 1 : 0;
  return n;
}

/** Bounding box [x, y, w, h] as SA-1B writes it (w = x1 - x0, no +1); [0, 0, 0, 0] for an empty mask. */
export function maskBBox(mask: Uint8Array, width: number, height: number): [number, number, number, number] {
  let x0 = width;
  let y0 = height;
  let x1 = -1;
  let y1 = -1;
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) {
      if (mask[row + x]) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        y1 = y;
      }
    }
  }
  if (x1 < 0) return [0, 0, 0, 0];
  return [x0, y0, x1 - x0, y1 - y0];
}

/** The image's pixels inside the mask, transparent outside, cropped to the mask's bounding box. */
export function cutout(image: ImageData, mask: Uint8Array): ImageData | null {
  const { width, height } = image;
  const [x, y, w, h] = maskBBox(mask, width, height);
  if (w === 0 && h === 0 && !mask[y * width + x]) return null;
  const out = new ImageData(w + 1, h + 1);
  for (let yy = 0; yy <= h; yy++) {
    for (let xx = 0; xx <= w; xx++) {
      const si = (y + yy) * width + (x + xx);
      if (!mask[si]) continue;
      const di = (yy * (w + 1) + xx) * 4;
      out.data[di] = image.data[si * 4] ?? 0;
      out.data[di + 1] = image.data[si * 4 + 1] ?? 0;
      out.data[di + 2] = image.data[si * 4 + 2] ?? 0;
      out.data[di + 3] = image.data[si * 4 + 3] ?? 255;
    }
  }
  return out;
}
