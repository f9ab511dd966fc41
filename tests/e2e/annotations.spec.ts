// The demo as annotation tools use it (issue 20): an official-checkpoint preset (?model=mobile_sam)
// downloaded from a mirror (here a local server on another origin standing in for the CORS mirror:
// no internet on the test machines), a click, a category, the whole session exported as COCO with
// polygons, and that export loaded back as the same objects. A mirror that sends no CORS headers must
// give the "download the file and pick it" message. The export is kept in artifacts/ (coco-export.json
// with coco-export.masks.json) for scripts/check-coco.py under pycocotools (not in CI).
import { createReadStream, mkdirSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { Page } from "@playwright/test";
import { artifacts, expect, hookObjects, overlayAlpha, screenPoint, selectedMask, status, test, waitPredicted, waitReady, type Env } from "./fixtures.js";
import { maskIou, tagFor } from "./reference.js";

/** A server of one file, /mobile_sam.pt (the kit's MobileSAM checkpoint), with or without CORS headers. */
async function mirror(env: Env, cors: boolean): Promise<{ url: string; close(): Promise<void> }> {
  const file = join(env.refDir, `${tagFor(env.refDir, "mobile_sam")}.pth`);
  const server: Server = createServer((req, res) => {
    if ((req.url ?? "").split("?")[0] !== "/mobile_sam.pt") {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, {
      "content-type": "application/octet-stream",
      "content-length": String(statSync(file).size),
      ...(cors ? { "access-control-allow-origin": "*" } : {}),
    });
    if (req.method === "HEAD") res.end();
    else createReadStream(file).pipe(res);
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/`, close: () => new Promise<void>((ok) => server.close(() => ok())) };
}

function pageUrl(env: Env, mirrorUrl: string): string {
  return `${env.server.url}/?backend=cpu&model=mobile_sam&mirror=${encodeURIComponent(mirrorUrl)}&image=${env.images.objects?.url}&cache=0&hover=0`;
}

async function cocoExport(page: Page, format: "polygons" | "rle"): Promise<string> {
  await page.selectOption("#coco-format", format);
  const before = await page.evaluate(() => (window as unknown as { __sam: { lastCocoJson(): string | null } }).__sam.lastCocoJson());
  await page.click("#export-coco");
  await page.waitForFunction((b) => (window as unknown as { __sam: { lastCocoJson(): string | null } }).__sam.lastCocoJson() !== b, before);
  return page.evaluate(() => (window as unknown as { __sam: { lastCocoJson(): string | null } }).__sam.lastCocoJson() ?? "");
}

async function loadCoco(page: Page, json: string, name: string): Promise<void> {
  await page.setInputFiles("#load-coco", { name, mimeType: "application/json", buffer: Buffer.from(json) });
}

test("a preset from a CORS mirror, a click, COCO polygons and RLE exported and loaded back as the same objects", async ({ page, env }) => {
  test.setTimeout(600_000);
  const m = await mirror(env, true);
  try {
    await page.goto(pageUrl(env, m.url));
    const s = await waitReady(page);
    expect(s.modelType).toBe("mobile_sam");
    expect(await page.inputValue("#model-preset")).toBe("mobile_sam");
    const img = env.images.objects!;
    const p = await screenPoint(page, Math.floor(img.width / 2), Math.floor(img.height / 2));
    const n = (await status(page)).predictCount;
    await page.mouse.click(p.x, p.y);
    await waitPredicted(page, n);
    await page.fill("#object-category", "widget");
    await page.dispatchEvent("#object-category", "change");
    const mask = await selectedMask(page);
    const area = mask.reduce((a, v) => a + (v ? 1 : 0), 0);
    expect(area).toBeGreaterThan(0);

    // Polygons: one image, one annotation of category "widget", flat number lists.
    const polyJson = await cocoExport(page, "polygons");
    const coco = JSON.parse(polyJson) as {
      images: { id: number; width: number; height: number }[];
      annotations: { id: number; image_id: number; category_id: number; segmentation: number[][]; area: number; bbox: number[]; iscrowd: number }[];
      categories: { id: number; name: string }[];
    };
    expect(coco.images).toHaveLength(1);
    expect(coco.images[0]).toMatchObject({ width: img.width, height: img.height });
    expect(coco.categories.map((c) => c.name)).toEqual(["widget"]);
    expect(coco.annotations).toHaveLength(1);
    const ann = coco.annotations[0]!;
    expect(ann).toMatchObject({ image_id: 1, category_id: 1, area, iscrowd: 0 });
    expect(Array.isArray(ann.segmentation) && ann.segmentation.every((poly) => poly.length >= 6 && poly.length % 2 === 0)).toBe(true);
    mkdirSync(artifacts, { recursive: true });
    writeFileSync(join(artifacts, "coco-export.json"), polyJson);

    // Loaded back: one more object, the same category, its mask within the polygons' tolerance (1 px).
    await loadCoco(page, polyJson, "export.json");
    await expect.poll(async () => (await hookObjects(page)).length).toBe(2);
    const objs = await hookObjects(page);
    const back = await page.evaluate((id) => (window as unknown as { __sam: { maskBase64(id?: number): string | null } }).__sam.maskBase64(id), objs[1]!.id);
    const backMask = new Uint8Array(Buffer.from(back ?? "", "base64"));
    const iou = maskIou(mask, backMask);
    console.log(`[measure] coco polygons round trip: IoU ${iou.toFixed(4)}, area ${area} -> ${backMask.reduce((a, v) => a + (v ? 1 : 0), 0)}`);
    expect(iou).toBeGreaterThan(0.9);

    // RLE: loaded back exactly.
    const rleJson = await cocoExport(page, "rle");
    const rleCoco = JSON.parse(rleJson) as { annotations: { segmentation: { size: number[]; counts: string } }[] };
    expect(rleCoco.annotations).toHaveLength(2);
    writeFileSync(join(artifacts, "coco-export.masks.json"), JSON.stringify({ "1": rleCoco.annotations[0]!.segmentation.counts }));
    await loadCoco(page, rleJson, "export-rle.json");
    await expect.poll(async () => (await hookObjects(page)).length).toBe(4);
    const all = await hookObjects(page);
    const exact = await page.evaluate((id) => (window as unknown as { __sam: { maskBase64(id?: number): string | null } }).__sam.maskBase64(id), all[2]!.id);
    expect(Buffer.from(exact ?? "", "base64").equals(Buffer.from(mask))).toBe(true);
    expect(all.map((o) => o.name.split(" ")[0])).toEqual([expect.any(String), "widget", "widget", "widget"]);

    // Outlines: the overlay is redrawn from the polygons (stroked, so pixels outside the masks get ink too).
    const filled = await overlayAlpha(page);
    await page.check("#outline-toggle");
    await expect.poll(async () => Buffer.from(await overlayAlpha(page)).equals(Buffer.from(filled))).toBe(false);
    const outlined = await overlayAlpha(page);
    const outside = outlined.reduce((n, a, i) => n + (a > 0 && !mask[i] ? 1 : 0), 0);
    expect(outside).toBeGreaterThan(0);
  } finally {
    await m.close();
  }
});

test("a preset from a mirror without CORS headers says to download the file and pick it", async ({ page, env }) => {
  const m = await mirror(env, false);
  try {
    await page.goto(pageUrl(env, m.url));
    await page.waitForFunction(() => (window as unknown as { __sam: { status(): { message: { kind: string } | null } } }).__sam.status().message?.kind === "download-preset", undefined, { timeout: 120_000 });
    const s = await status(page);
    expect(s.model).toBe("error");
    expect(s.message?.text).toContain("mobile_sam.pt");
    expect(s.message?.text).toContain("Download the file yourself from https://");
    expect(s.message?.text).toContain("pick it");
  } finally {
    await m.close();
  }
});
