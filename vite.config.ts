// Builds the demo page (web/) into web/dist. The npm package (dist/) is built by js/build-lib.mjs.
import { defineConfig, type Plugin } from "vite";
import { cpSync, existsSync, createReadStream, realpathSync, statSync } from "node:fs";
import { join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const here = (p: string): string => fileURLToPath(new URL(p, import.meta.url));

/** The npm package (dist/) is served at /sam-browser/ next to the demo, for web/public/examples/embed.html. */
function packageBesideDemo(): Plugin {
  const dist = here("./dist");
  return {
    name: "sam-browser-package",
    configureServer(server) {
      server.middlewares.use("/sam-browser", (req, res, next) => {
        const file = normalize(join(dist, (req.url ?? "/").split("?")[0] ?? "/"));
        if (!file.startsWith(dist) || !existsSync(file) || !statSync(file).isFile()) return next();
        const type = file.endsWith(".wasm") ? "application/wasm" : file.endsWith(".js") ? "text/javascript" : "application/octet-stream";
        res.setHeader("content-type", type);
        createReadStream(file).pipe(res);
      });
    },
    closeBundle() {
      if (existsSync(join(dist, "index.js"))) cpSync(dist, here("./web/dist/sam-browser"), { recursive: true });
    },
  };
}

// crates/sam-wasm/pkg may be a symlink to a build elsewhere: let the dev server read it there too.
const pkgDir = here("./crates/sam-wasm/pkg");
const allow = [here(".")];
if (existsSync(pkgDir)) allow.push(realpathSync(pkgDir));

export default defineConfig({
  plugins: [packageBesideDemo()],
  root: here("./web"),
  base: "./",
  publicDir: here("./web/public"),
  resolve: {
    alias: { "sam-wasm": here("./crates/sam-wasm/pkg/sam_wasm.js") },
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
  server: { port: 8080, strictPort: true, fs: { allow } },
  preview: { port: 8080, strictPort: true },
});
