// Builds the npm package sam-browser into dist/, a directory that stands on its own: index.js (the
// client), worker.js (the worker with the wasm glue), sam_wasm_bg.wasm, the .d.ts files, and the
// package's own package.json (metadata from the repository's package.json), README.md (js/README.md)
// and LICENSE. Needs crates/sam-wasm/pkg (scripts/build-wasm.sh).
// Usage: node js/build-lib.mjs   (npm run build:lib); then `npm pack ./dist` (npm run pack:lib) or `npm publish ./dist`.
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = join(root, "crates/sam-wasm/pkg");
const dist = join(root, "dist");
if (!existsSync(join(pkg, "sam_wasm.js"))) {
  console.error(`missing ${pkg}/sam_wasm.js: run wasm-pack build crates/sam-wasm --release --target web first (scripts/web.sh does)`);
  process.exit(1);
}
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

await build({
  absWorkingDir: root,
  entryPoints: { index: "js/index.ts", worker: "js/worker.ts" },
  outdir: dist,
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  sourcemap: true,
  alias: { "sam-wasm": "./crates/sam-wasm/pkg/sam_wasm.js", "sam-wasm-relaxed": "./crates/sam-wasm/pkg/sam_wasm_relaxed.js" },
  logLevel: "info",
});
// The wasm-bindgen glue loads the module from `new URL("sam_wasm_bg.wasm", import.meta.url)`: next to
// worker.js. Bundlers that follow that pattern (Vite 8, webpack 5) emit the .wasm from it.
const worker = readFileSync(join(dist, "worker.js"), "utf8");
if (!/new URL\(["']sam_wasm_bg\.wasm["'], import\.meta\.url\)/.test(worker)) {
  console.error("dist/worker.js does not load the wasm module through new URL(\"sam_wasm_bg.wasm\", import.meta.url): bundlers would not find it");
  process.exit(1);
}
// And the client starts the worker with a literal `new Worker(new URL("./worker.js", import.meta.url), ...)`.
if (!/new Worker\(new URL\("\.\/worker\.js", import\.meta\.url\)/.test(readFileSync(join(dist, "index.js"), "utf8"))) {
  console.error("dist/index.js does not start the worker with new Worker(new URL(\"./worker.js\", import.meta.url)): bundlers would not find it");
  process.exit(1);
}
copyFileSync(join(pkg, "sam_wasm_bg.wasm"), join(dist, "sam_wasm_bg.wasm"));
// Its relaxed-SIMD build (scripts/build-wasm.sh), found the same way: new URL("sam_wasm_relaxed_bg.wasm", import.meta.url).
if (existsSync(join(pkg, "sam_wasm_relaxed_bg.wasm"))) {
  if (!/new URL\(["']sam_wasm_relaxed_bg\.wasm["'], import\.meta\.url\)/.test(worker)) {
    console.error("dist/worker.js does not load the relaxed-SIMD module through new URL(\"sam_wasm_relaxed_bg.wasm\", import.meta.url)");
    process.exit(1);
  }
  copyFileSync(join(pkg, "sam_wasm_relaxed_bg.wasm"), join(dist, "sam_wasm_relaxed_bg.wasm"));
} else console.warn("crates/sam-wasm/pkg has no sam_wasm_relaxed_bg.wasm: the package runs the plain SIMD build only");
// The threaded CPU module (scripts/build-wasm.sh --threads), as wasm-bindgen wrote it: dist/threads/
// (sam_wasm.js, sam_wasm_bg.wasm, snippets/ with the rayon pool's worker). Loaded by URL, never bundled.
const pkgThreads = join(root, "crates/sam-wasm/pkg-threads");
const threads = existsSync(join(pkgThreads, "sam_wasm.js"));
if (threads) cpSync(pkgThreads, join(dist, "threads"), { recursive: true, filter: (f) => !f.endsWith(".gitignore") });
else console.warn("crates/sam-wasm/pkg-threads is not built: the package has no threaded module (CPU on one thread)");
execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", join(root, "tsconfig.lib.json")], { stdio: "inherit" });
// The worker script has no exports; its .d.ts says so, so that every subpath of `exports` has types.
writeFileSync(
  join(dist, "worker.d.ts"),
  "// The sam-browser Web Worker (start it with `new Worker(url, { type: \"module\" })`): it has no exports.\nexport {};\n",
);

// The package's manifest: the repository's metadata, the package's entry points.
const repo = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const manifest = {
  name: "sam-browser",
  version: repo.version,
  description: repo.description,
  keywords: repo.keywords,
  license: repo.license,
  repository: repo.repository,
  homepage: repo.homepage,
  bugs: repo.bugs,
  type: "module",
  main: "./index.js",
  module: "./index.js",
  types: "./index.d.ts",
  exports: {
    ".": { types: "./index.d.ts", import: "./index.js", default: "./index.js" },
    "./worker.js": { types: "./worker.d.ts", default: "./worker.js" },
    "./sam_wasm_bg.wasm": "./sam_wasm_bg.wasm",
    "./sam_wasm_relaxed_bg.wasm": "./sam_wasm_relaxed_bg.wasm",
    "./threads/*": "./threads/*",
    "./package.json": "./package.json",
  },
  files: ["*.js", "*.js.map", "*.d.ts", "sam_wasm_bg.wasm", "sam_wasm_relaxed_bg.wasm", ...(threads ? ["threads/"] : [])],
  // Importing index.js does nothing by itself; worker.js runs when a worker starts it.
  sideEffects: ["./worker.js"],
};
writeFileSync(join(dist, "package.json"), JSON.stringify(manifest, null, 2) + "\n");
copyFileSync(join(root, "js/README.md"), join(dist, "README.md"));
copyFileSync(join(root, "LICENSE"), join(dist, "LICENSE"));
console.log("dist/ ready (npm pack ./dist makes the tarball)");
