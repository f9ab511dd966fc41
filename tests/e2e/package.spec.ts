// The npm package's API conventions, through the built package (dist/, served at /sam-browser/ beside
// the demo) in a blank page: an aborted call rejects as `fetch` does, with an error whose `name` is
// "AbortError", which is still a SamError of kind "aborted"; the client keeps working after it. The
// precision option: f32 unless f16 is asked for on an adapter that has it.
import type { Page } from "@playwright/test";
import { expect, test } from "./fixtures.js";
import { tagFor } from "./reference.js";

type Package = typeof import("../../js/index.js");

interface Caught {
  name: string;
  kind: string;
  message: string;
  isSamError: boolean;
  isError: boolean;
}

/** A blank page of the test server (where the package is served at /sam-browser/), its console errors logged. */
async function openBlankPage(page: Page, server: string): Promise<void> {
  page.on("console", (m) => {
    if (m.type() === "error") console.log(`[page error] ${m.text()}`);
  });
  await page.route("**/__package-test.html", (r) => r.fulfill({ contentType: "text/html", body: "<!doctype html><title>sam-browser package</title>" }));
  await page.goto(`${server}/__package-test.html`);
}

test("package: an aborted generate rejects with name 'AbortError', a SamError of kind 'aborted'", async ({ page, env }) => {
  await openBlankPage(page, env.server.url);
  const r = await page.evaluate(
    async ({ model, image }) => {
      const url = "/sam-browser/index.js";
      const { SamClient, SamError } = (await import(url)) as Package;
      const caught = (e: unknown): Caught => {
        const x = e as { name?: unknown; kind?: unknown; message?: unknown };
        return { name: String(x.name), kind: String(x.kind), message: String(x.message), isSamError: e instanceof SamError, isError: e instanceof Error };
      };
      const sam = await SamClient.create();
      await sam.load(model, { backend: "cpu", cache: false });
      await sam.setImage(await (await fetch(image)).blob());
      // A signal aborted before the call: rejected at once.
      const before = await sam.generate({}, { signal: AbortSignal.abort() }).then(() => null, caught);
      // Aborted while it runs (at its first progress event): rejected between two batches.
      const ac = new AbortController();
      let batches = 0;
      sam.on("progress", (p) => {
        if (p.stage === "generate" && ++batches === 1) ac.abort();
      });
      const during = await sam.generate({ pointsPerSide: 16 }, { signal: ac.signal }).then(() => null, caught);
      // The client still works afterwards.
      const p = await sam.predict({ points: [[100, 100]], labels: [1] });
      await sam.dispose();
      return { before, during, batches, masksAfter: p.masks.length };
    },
    { model: `/__ref/${tagFor(env.refDir, "tiny")}.pth`, image: env.images.landscape?.url ?? "" },
  );
  console.log(`[measure] package/abort: ${JSON.stringify(r)}`);
  for (const e of [r.before, r.during]) {
    expect(e).not.toBeNull();
    expect(e?.name).toBe("AbortError");
    expect(e?.kind).toBe("aborted");
    expect(e?.isSamError).toBe(true);
    expect(e?.isError).toBe(true);
  }
  expect(r.masksAfter).toBe(1);
});

test("package: precision is f32 by default and for 'auto' on the CPU; 'f16' without a shader-f16 adapter is refused and the model before stays usable", async ({ page, env }) => {
  await openBlankPage(page, env.server.url);
  const r = await page.evaluate(
    async ({ model, image }) => {
      const pkg = "/sam-browser/index.js";
      const { SamClient, SamError } = (await import(pkg)) as Package;
      const sam = await SamClient.create();
      const plain = await sam.load(model, { backend: "cpu", cache: false });
      const auto = await sam.load(model, { backend: "cpu", precision: "auto", cache: false });
      await sam.setImage(await (await fetch(image)).blob());
      const f16 = await sam.load(model, { backend: "cpu", precision: "f16", cache: false }).then(
        () => null,
        (e: { kind?: unknown; message?: unknown }) => ({ kind: String(e.kind), message: String(e.message), isSamError: e instanceof SamError }),
      );
      // The model loaded before, and its image, are still there.
      const p = await sam.predict({ points: [[100, 100]], labels: [1] });
      await sam.dispose();
      return { plain: plain.precision, auto: auto.precision, autoInfo: auto.backendInfo, f16, masksAfter: p.masks.length };
    },
    { model: `/__ref/${tagFor(env.refDir, "tiny")}.pth`, image: env.images.landscape?.url ?? "" },
  );
  console.log(`[measure] package/precision: ${JSON.stringify(r)}`);
  expect(r.plain).toBe("f32");
  expect(r.auto).toBe("f32");
  expect(r.autoInfo).not.toContain("f16");
  expect(r.f16).not.toBeNull();
  expect(r.f16?.isSamError).toBe(true);
  expect(r.f16?.kind).toBe("no-webgpu");
  expect(r.f16?.message).toContain("shader-f16");
  expect(r.masksAfter).toBe(1);
});
