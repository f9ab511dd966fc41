// The demo must not lose work, and "auto" must not pick a software WebGPU adapter (issues 18 and 16):
// - a wrong checkpoint after a good one leaves the good one loaded and usable;
// - opening another image and coming back restores the objects and their undo history, and leaving the
//   page with unexported objects asks first;
// - "auto" in headless Chromium (whose adapter is SwiftShader) runs on the CPU and the badge says why;
//   "webgpu" still runs on that adapter.
// - a trap of the worker's wasm module (forced through js/worker.ts's test hook) restarts the worker, loads
//   the model and embeds the image again without user action, keeping the objects;
// - the per-image session store keeps within its count and byte limits without dropping unexported objects
//   (a unit test, no page);
// On the CPU backend, with the tiny reference checkpoint of the kit (any seed).
import { join } from "node:path";
import { test as unitTest, expect as unitExpect, type Page, type Worker } from "@playwright/test";
import { distinctBytes, emptySession, SessionStore, type Session } from "../../web/sessions.js";
import { artifacts, clickDespiteMessage, expect, screenPoint, status, test, waitPredicted, waitReady, type Env } from "./fixtures.js";
import { tagFor } from "./reference.js";

function demoUrl(env: Env, backend: string, image: string, extra = ""): string {
  const img = env.images[image];
  if (!img) throw new Error(`no test image ${image}`);
  return `${env.server.url}/?backend=${backend}&model=/__ref/${tagFor(env.refDir, "tiny")}.pth&image=${img.url}&cache=0&hover=0${extra}`;
}

function logPage(page: Page): string[] {
  const errors: string[] = [];
  page.on("pageerror", (e) => {
    errors.push(e.message);
    console.log(`[page error] ${e.message}`);
  });
  page.on("console", (m) => {
    if (m.type() === "error") console.log(`[page error] ${m.text()}`);
  });
  return errors;
}

async function clickImage(page: Page, x: number, y: number): Promise<void> {
  const before = (await status(page)).predictCount;
  const p = await screenPoint(page, x, y);
  await page.mouse.click(p.x, p.y);
  await waitPredicted(page, before);
}

async function selectedMaskB64(page: Page): Promise<string | null> {
  return page.evaluate(() => (window as unknown as { __sam: { maskBase64(): string | null } }).__sam.maskBase64());
}

interface Extra {
  backendReason: string | null;
  unexported: string[];
}
async function extra(page: Page): Promise<Extra> {
  return page.evaluate(() => (window as unknown as { __sam: { status(): Extra } }).__sam.status());
}

/** Opens an image file through the page's file input and waits until it is embedded. */
async function openImage(page: Page, file: string, width: number): Promise<void> {
  await page.locator("#image-file").setInputFiles(file);
  await expect.poll(async () => (await status(page)).width).toBe(width);
  await waitReady(page);
}

test("a wrong checkpoint after a good one leaves the good model loaded and usable", async ({ page, env }) => {
  const errors = logPage(page);
  await page.goto(demoUrl(env, "cpu", "landscape"));
  await waitReady(page);
  await clickImage(page, 416, 192);
  const before = await status(page);
  await page.locator("#model-file").setInputFiles(join(artifacts, "served/not-a-checkpoint.jpg"));
  await expect(page.locator("#message")).toHaveAttribute("data-kind", "not-a-checkpoint");
  await expect(page.locator("#message")).toContainText("previous model");
  await expect(page.locator("#message")).toContainText("still loaded");
  const s = await status(page);
  expect(s.model).toBe("ready");
  expect(s.image).toBe("ready");
  expect(s.backend).toBe("cpu");
  expect(s.modelType).toBe(before.modelType);
  expect(s.objects).toBe(1);
  // The old model still decodes on the image it had embedded (no second embedding was needed).
  await clickDespiteMessage(page, 200, 300);
  expect((await status(page)).predictCount).toBe(before.predictCount + 1);
  expect(errors).toEqual([]);
});

test("switching to another image and back restores its objects and undo history", async ({ page, env }) => {
  const errors = logPage(page);
  await page.goto(demoUrl(env, "cpu", "landscape"));
  await waitReady(page);
  await clickImage(page, 416, 192);
  const mask = await selectedMaskB64(page);
  expect(mask).not.toBeNull();
  expect((await extra(page)).unexported).toEqual(["landscape.png"]);

  const served = join(artifacts, "served");
  await openImage(page, join(served, "tiny.png"), env.images.tiny?.width ?? 0);
  expect((await status(page)).objects).toBe(0);
  // The landscape's work is still counted as unexported while another image shows.
  expect((await extra(page)).unexported).toEqual(["landscape.png"]);

  await openImage(page, join(served, "landscape.png"), env.images.landscape?.width ?? 0);
  await expect(page.locator("#message")).toHaveAttribute("data-kind", "session-restored");
  const s = await status(page);
  expect(s.objects).toBe(1);
  expect(await selectedMaskB64(page)).toBe(mask);
  await expect(page.locator("#undo")).toBeEnabled();
  await page.locator("#undo").click();
  expect((await status(page)).objects).toBe(0);
  await page.locator("#redo").click();
  expect((await status(page)).objects).toBe(1);

  // Exporting the SA-1B JSON clears the warning; another change brings it back.
  const download = page.waitForEvent("download");
  await page.locator("#export-json").click();
  await download;
  expect((await extra(page)).unexported).toEqual([]);
  await clickImage(page, 200, 300);
  expect((await extra(page)).unexported).toEqual(["landscape.png"]);

  // Leaving the page with unexported objects asks first.
  const dialog = new Promise<string>((resolve) =>
    page.once("dialog", (d) => {
      resolve(d.type());
      void d.accept();
    }),
  );
  await page.close({ runBeforeUnload: true });
  expect(await dialog).toBe("beforeunload");
  expect(errors).toEqual([]);
});

/** The page's model worker (the one SamClient names "sam-browser"), of those alive now. */
async function modelWorker(page: Page): Promise<Worker> {
  for (const w of page.workers()) {
    if ((await w.evaluate(() => self.name).catch(() => "")) === "sam-browser") return w;
  }
  throw new Error(`no model worker among ${page.workers().length} workers`);
}

test("a trap of the worker's wasm module restarts the worker, reloads the model and re-embeds the image, keeping the objects", async ({ page, env }) => {
  const errors = logPage(page);
  await page.goto(demoUrl(env, "cpu", "landscape"));
  await waitReady(page);
  await clickImage(page, 416, 192);
  const before = await status(page);
  expect(before.objects).toBe(1);
  const mask = await selectedMaskB64(page);

  // The next decode traps (js/worker.ts's test hook: a WebAssembly.RuntimeError, as a panic or abort gives).
  const first = await modelWorker(page);
  const firstClosed = new Promise<void>((resolve) => first.once("close", () => resolve()));
  await first.evaluate(() => {
    (self as unknown as { __samTrapNext?: string }).__samTrapNext = "predict";
  });
  const p = await screenPoint(page, 200, 300);
  await page.mouse.click(p.x, p.y);

  // Without any user action: a new worker, the model loaded again, the image embedded again.
  await expect(page.locator("#message")).toHaveAttribute("data-kind", "recovered", { timeout: 300_000 });
  await firstClosed;
  const s = await waitReady(page);
  expect(s.model).toBe("ready");
  expect(s.image).toBe("ready");
  expect(s.modelType).toBe(before.modelType);
  const second = await modelWorker(page);
  expect(second).not.toBe(first);
  // The objects live in the page: the object and its mask are still there.
  expect(s.objects).toBe(before.objects);
  expect(await selectedMaskB64(page)).toBe(mask);
  // And the new worker decodes (on its own embedding of the image).
  await clickImage(page, 200, 300);
  expect((await status(page)).message?.level).not.toBe("error");
  expect(errors).toEqual([]);
});

interface AdapterSeen {
  vendor: string;
  architecture: string;
  description: string;
  fallback: boolean;
}

/** The adapter this browser gives a page (null without one). */
async function adapterOf(page: Page, env: Env): Promise<AdapterSeen | null> {
  await page.goto(`${env.server.url}/__probe`);
  return page.evaluate(async () => {
    const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
    const a = await gpu?.requestAdapter();
    if (!a) return null;
    const info = a.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
    const old = a as GPUAdapter & { isFallbackAdapter?: boolean };
    return {
      vendor: info.vendor,
      architecture: info.architecture,
      description: info.description,
      fallback: info.isFallbackAdapter === true || old.isFallbackAdapter === true,
    };
  });
}

function isSoftware(a: AdapterSeen): boolean {
  return a.fallback || /swiftshader|llvmpipe|lavapipe/i.test(`${a.vendor} ${a.architecture} ${a.description}`);
}

test("'auto' skips a software WebGPU adapter (SwiftShader) and the badge says why", async ({ page, env }) => {
  const adapter = await adapterOf(page, env);
  test.skip(adapter === null, "this chromium gives no WebGPU adapter (the no-WebGPU case is in demo.spec.ts)");
  if (!adapter) return;
  console.log(`[adapter] ${JSON.stringify(adapter)}`);
  const errors = logPage(page);
  await page.goto(demoUrl(env, "auto", "tiny"));
  await waitReady(page);
  const s = await status(page);
  const badge = page.locator("#backend-badge");
  if (isSoftware(adapter)) {
    expect(s.backend).toBe("cpu");
    expect((await extra(page)).backendReason).toMatch(/software fallback/);
    await expect(badge).toContainText(/^CPU \(the WebGPU adapter is .*software fallback; use \?backend=webgpu to force it\)$/);
    if (/swiftshader/i.test(`${adapter.architecture} ${adapter.description}`)) await expect(badge).toContainText("SwiftShader");
    await expect(badge).toHaveAttribute("title", /WebGPU not used/);
    // An adapter is there: no "WebGPU is missing" warning.
    await expect(page.locator("#message")).not.toHaveAttribute("data-kind", "webgpu-missing");
  } else {
    // A hardware adapter (a machine with a GPU): "auto" takes it.
    expect(s.backend).toBe("webgpu");
    await expect(badge).toHaveText("WebGPU");
  }
  console.log(`[badge] ${await badge.textContent()} | ${await badge.getAttribute("title")}`);
  await page.screenshot({ path: join(artifacts, "auto-backend-badge.png") });
  expect(errors).toEqual([]);
});

test("'webgpu' still runs on a software adapter when asked", async ({ page, env }) => {
  test.skip(process.env.SAM_E2E_SKIP_WEBGPU === "1", "SAM_E2E_SKIP_WEBGPU=1");
  const adapter = await adapterOf(page, env);
  test.skip(adapter === null, "this chromium gives no WebGPU adapter");
  if (!adapter) return;
  await page.goto(demoUrl(env, "webgpu", "tiny"));
  // Only the choice: the model built on the adapter (embedding on SwiftShader is slow, not waited for).
  await page.waitForFunction(
    () => {
      const m = (window as unknown as { __sam?: { status(): { model: string } } }).__sam?.status().model;
      return m === "ready" || m === "error";
    },
    undefined,
    { timeout: 300_000, polling: 200 },
  );
  const s = await status(page);
  expect(s.model).toBe("ready");
  expect(s.backend).toBe("webgpu");
  await expect(page.locator("#backend-badge")).toHaveText("WebGPU");
  if (isSoftware(adapter)) await expect(page.locator("#backend-badge")).toHaveAttribute("title", /software fallback, used because "webgpu" was asked/);
});

// ---------- the session store's memory limits (web/sessions.ts), no page ----------

interface TestObject {
  mask: Uint8Array;
}
interface TestSnapshot {
  objects: TestObject[];
}
type TestSession = Session<TestObject, TestSnapshot>;

/** A session of `name` with one object of a `bytes`-byte mask and `history` undo steps sharing it (or not). */
function sessionOf(name: string, bytes: number, dirty: boolean, history = 0, sharedHistory = true): TestSession {
  const s = emptySession<TestObject, TestSnapshot>(name);
  const mask = new Uint8Array(bytes);
  s.objects = [{ mask }];
  s.undo = Array.from({ length: history }, () => ({ objects: [{ mask: sharedHistory ? mask : new Uint8Array(bytes) }] }));
  s.dirty = dirty;
  return s;
}

function testStore(maxSessions: number, maxBytes: number): SessionStore<TestObject, TestSnapshot> {
  return new SessionStore<TestObject, TestSnapshot>(
    function* (s) {
      for (const objects of [s.objects, ...s.undo.map((u) => u.objects), ...s.redo.map((r) => r.objects)])
        for (const o of objects) yield o.mask;
    },
    { maxSessions, maxBytes },
  );
}

unitTest("session store: a buffer shared by objects and snapshots is counted once", () => {
  const a = new Uint8Array(100);
  unitExpect(distinctBytes([a, a, a.subarray(10), null, new Float32Array(10)])).toBe(140);
  const store = testStore(10, 10_000);
  store.save("k", sessionOf("shared", 100, true, 5));
  unitExpect(store.bytes()).toBe(100);
  store.save("k2", sessionOf("copied", 100, true, 5, false));
  unitExpect(store.bytes()).toBe(100 + 600);
});

unitTest("session store: past the count limit the oldest exported session goes, unexported ones stay", () => {
  const store = testStore(3, 1 << 30);
  unitExpect(store.save("a", sessionOf("a", 10, true))).toEqual({ dropped: [], trimmed: [], overLimit: false });
  store.save("b", sessionOf("b", 10, false));
  store.save("c", sessionOf("c", 10, false));
  // "a" is the oldest but holds unexported objects: "b", the oldest exported one, goes.
  unitExpect(store.save("d", sessionOf("d", 10, false))).toEqual({ dropped: ["b"], trimmed: [], overLimit: false });
  unitExpect(store.size).toBe(3);
  unitExpect(store.take("b")).toBeNull();
  // Saving again makes a session the most recent: "c" is now the oldest exported one.
  const c = store.take("c");
  unitExpect(c?.name).toBe("c");
  store.save("c", c as TestSession);
  unitExpect(store.save("e", sessionOf("e", 10, false))).toEqual({ dropped: ["d"], trimmed: [], overLimit: false });
  unitExpect(store.unexported()).toEqual(["a"]);
});

unitTest("session store: past the byte limit exported sessions go, then unexported ones lose only their history", () => {
  const store = testStore(100, 1000);
  store.save("old-dirty", sessionOf("old-dirty", 300, true, 2, false)); // 900 bytes with its history
  unitExpect(store.save("clean", sessionOf("clean", 100, false))).toEqual({ dropped: [], trimmed: [], overLimit: false });
  // 900 + 100 + 300 > 1000: the exported session goes first (1200), then the oldest history (300 + 300).
  const e = store.save("new-dirty", sessionOf("new-dirty", 300, true));
  unitExpect(e).toEqual({ dropped: ["clean"], trimmed: ["old-dirty"], overLimit: false });
  unitExpect(store.bytes()).toBe(600);
  const kept = store.take("old-dirty");
  unitExpect(kept?.objects.length).toBe(1);
  unitExpect(kept?.undo).toEqual([]);
  store.save("old-dirty", kept as TestSession);
  // Unexported objects alone over the limit: kept, and said so.
  const over = store.save("big-dirty", sessionOf("big-dirty", 2000, true));
  unitExpect(over).toEqual({ dropped: [], trimmed: [], overLimit: true });
  unitExpect(store.unexported().sort()).toEqual(["big-dirty", "new-dirty", "old-dirty"]);
  // An empty session is not kept, and saving it drops the image's old one.
  store.save("new-dirty", emptySession<TestObject, TestSnapshot>("new-dirty"));
  unitExpect(store.take("new-dirty")).toBeNull();
});
