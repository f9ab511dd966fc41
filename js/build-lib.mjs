// Builds the npm package into dist/: index.js (the client), worker.js (the worker with the wasm glue),
// sam_wasm_bg.wasm, and the .d.ts files. Needs crates/sam-wasm/pkg (wasm-pack build, see scripts/web.sh).
// Usage: node js/build-lib.mjs   (npm run build:lib)
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, rmSync } from "node:fs";
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
  alias: { "sam-wasm": "./crates/sam-wasm/pkg/sam_wasm.js" },
  logLevel: "info",
});
// The glue loads the module from new URL("sam_wasm_bg.wasm", import.meta.url): next to worker.js.
copyFileSync(join(pkg, "sam_wasm_bg.wasm"), join(dist, "sam_wasm_bg.wasm"));
execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", join(root, "tsconfig.lib.json")], { stdio: "inherit" });
console.log("dist/ ready");
