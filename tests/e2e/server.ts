// A tiny static server for the end-to-end tests: the built demo (web/dist) at /, the reference
// kit's files at /__ref/, and files the tests generate (PNG test images) at /__test/.
// Cross-origin isolated by default (COOP/COEP, as scripts/web.sh and `npm run dev`): the demo
// then runs the threaded CPU module; `isolated: false` serves a page without SharedArrayBuffer.
import { createReadStream, existsSync, statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, normalize, resolve } from "node:path";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".svg": "image/svg+xml",
  ".map": "application/json",
};

export interface StaticServer {
  url: string;
  close(): Promise<void>;
  /** Bytes sent per path (to check that a reload does not download the weights again). */
  hits: Map<string, number>;
}

/** The headers that make a page cross-origin isolated (crossOriginIsolated, SharedArrayBuffer). */
export const ISOLATION_HEADERS = {
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-embedder-policy": "require-corp",
} as const;

export async function startServer(mounts: Record<string, string>, port = 0, options: { isolated?: boolean } = {}): Promise<StaticServer> {
  const isolation = options.isolated === false ? {} : ISOLATION_HEADERS;
  const roots = Object.entries(mounts)
    .map(([prefix, dir]) => [prefix, resolve(dir)] as const)
    .sort((a, b) => b[0].length - a[0].length);
  const hits = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent((req.url ?? "/").split("?")[0] ?? "/");
    const mount = roots.find(([prefix]) => path.startsWith(prefix));
    if (!mount) {
      res.writeHead(404).end("not found");
      return;
    }
    const [prefix, dir] = mount;
    let file = normalize(join(dir, path.slice(prefix.length)));
    if (!file.startsWith(dir)) {
      res.writeHead(403).end("forbidden");
      return;
    }
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, "index.html");
    if (!existsSync(file)) {
      res.writeHead(404).end("not found");
      return;
    }
    const size = statSync(file).size;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    res.writeHead(200, {
      "content-type": TYPES[extname(file).toLowerCase()] ?? "application/octet-stream",
      "content-length": String(size),
      "cache-control": "no-store",
      // The consumer apps' Vite dev server fetches the reference files from here (another origin).
      "access-control-allow-origin": "*",
      // Other origins' isolated pages may load our files (the consumer apps' dev servers).
      "cross-origin-resource-policy": "cross-origin",
      ...isolation,
    });
    if (req.method === "HEAD") res.end();
    else createReadStream(file).pipe(res);
  });
  await new Promise<void>((ok) => server.listen(port, "127.0.0.1", ok));
  const { port: p } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${p}`,
    hits,
    // Closing also ends the page's open connections (kept alive, or a download it stopped reading), so
    // that a test never waits on the browser to let go of them.
    close: () =>
      new Promise<void>((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
      }),
  };
}
