// Runs a wasm32-wasip1 program under Node's WASI (V8, the engine of Chrome's pages), with the
// directories it reads preopened at the same paths. Used by `scripts/bench.sh --wasm` to time
// sam-core's WebAssembly build on the CPU.
//
// Usage: node scripts/wasi-run.mjs PROGRAM.wasm [ARGS...]   (env SAM_WASI_DIRS: dirs, ':'-separated)
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";
import { argv, env, exit } from "node:process";

const [program, ...args] = argv.slice(2);
if (!program) {
  console.error("usage: node scripts/wasi-run.mjs PROGRAM.wasm [ARGS...]");
  exit(2);
}
const preopens = {};
for (const dir of (env.SAM_WASI_DIRS ?? "").split(":").filter(Boolean)) preopens[dir] = dir;
const wasi = new WASI({ version: "preview1", args: [program, ...args], env, preopens, returnOnExit: true });
const module = await WebAssembly.compile(await readFile(program));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
exit(wasi.start(instance));
