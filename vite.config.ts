// Builds the demo page (web/) into web/dist. The npm package (dist/) is built by js/build-lib.mjs.
import { defineConfig, type Plugin, type ViteDevServer } from "vite";
import { cpSync, existsSync, createReadStream, realpathSync, statSync } from "node:fs";
import { join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const here = (p: string): string => fileURLToPath(new URL(p, import.meta.url));

/** Serves the files of `dir` at `prefix` on the dev server. */
function serveDir(server: ViteDevServer, prefix: string, dir: string): void {
  server.middlewares.use(prefix, (req, res, next) => {
    const file = normalize(join(dir, (req.url ?? "/").split("?")[0] ?? "/"));
    if (!file.startsWith(dir) || !existsSync(file) || !statSync(file).isFile()) return next();
    const type = file.endsWith(".wasm") ? "application/wasm" : file.endsWith(".js") ? "text/javascript" : "application/octet-stream";
    res.setHeader("content-type", type);
    createReadStream(file).pipe(res);
  });
}

/** The npm package (dist/) is served at /sam-browser/ next to the demo, for web/public/examples/embed.html. */
function packageBesideDemo(): Plugin {
  const dist = here("./dist");
  return {
    name: "sam-browser-package",
    configureServer(server) {
      serveDir(server, "/sam-browser", dist);
    },
    closeBundle() {
      if (existsSync(join(dist, "index.js"))) cpSync(dist, here("./web/dist/sam-browser"), { recursive: true });
    },
  };
}

/**
 * The threaded CPU module (crates/sam-wasm/pkg-threads, scripts/build-wasm.sh --threads) at
 * /sam-wasm-threads/, unbundled: its rayon pool's workers import its JS again by URL. The demo
 * passes that URL to SamClient (threadsUrl); without the build, it runs on one thread.
 */
function threadedModule(): Plugin {
  const pkg = here("./crates/sam-wasm/pkg-threads");
  return {
    name: "sam-wasm-threads",
    configureServer(server) {
      serveDir(server, "/sam-wasm-threads", pkg);
    },
    closeBundle() {
      if (existsSync(join(pkg, "sam_wasm.js"))) cpSync(pkg, here("./web/dist/sam-wasm-threads"), { recursive: true });
    },
  };
}

/**
 * Cross-origin isolation (crossOriginIsolated, SharedArrayBuffer) for the threaded module, on
 * the dev server (`npm run dev`) and the preview server (scripts/web.sh).
 */
const isolation = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
};

// crates/sam-wasm/pkg may be a symlink to a build elsewhere: let the dev server read it there too.
const pkgDir = here("./crates/sam-wasm/pkg");
const allow = [here(".")];
if (existsSync(pkgDir)) allow.push(realpathSync(pkgDir));

export default defineConfig({
  plugins: [packageBesideDemo(), threadedModule()],
  root: here("./web"),
  base: "./",
  publicDir: here("./web/public"),
  resolve: {
    alias: {
      "sam-wasm": here("./crates/sam-wasm/pkg/sam_wasm.js"),
      "sam-wasm-relaxed": here("./crates/sam-wasm/pkg/sam_wasm_relaxed.js"),
    },
  },
  worker: { format: "es" },
  build: {
    outDir: here("./web/dist"),
    emptyOutDir: true,
    target: "es2022",
    sourcemap: true,
    rollupOptions: {
      input: { main: here("./web/index.html") },
    },
  },
  server: { port: 8080, strictPort: true, fs: { allow }, headers: isolation },
  preview: { port: 8080, strictPort: true, headers: isolation },
});
